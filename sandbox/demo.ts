// `npm run demo`: reselqos doing its whole job on a sandbox gateway, with one command.
// Private slapd and MariaDB seeded with a sample campus, the users / gateway / wan
// namespaces, the real daemon started with `reselqos start` acting on the gateway
// namespace, a traffic feeder writing netacct rows as nacctd would, and real iperf3
// flows through the shaper. Prints a live table every cycle. Removes everything it
// created at the end, on Ctrl-C, or on error.
//
//   node build/sandbox/demo.js [--duration SECONDS] [--keep]

import { parseArgs } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DateTime } from 'luxon';
import { startSlapd, type SlapdServer } from './slapd.js';
import { startMariadb, type MariadbServer, type TrafficRow } from './mariadb.js';
import { generateCampus, loadCampus, prng, type Campus } from './campus.js';
import { createGateway, startIperfServer, runIperf, cleanupStale, type Gateway, type IperfServer } from './netns.js';
import { sandboxConf } from './conf.js';
import { probe, startBannerServer } from './tcp.js';
import { createServer } from 'node:net';
import { realExec } from '../src/kernel/exec.js';
import type { BackgroundProcess } from './spawn.js';
import { readIpsets } from '../src/kernel/read.js';
import { askDaemon } from '../src/daemon/control.js';
import type { StatusJson } from '../src/daemon/daemon.js';
import type { ExplainJson } from '../src/daemon/explain.js';
import { formatRate, formatSize } from '../src/config/units.js';

// The daemon the demo runs is the built product (dist/), not a copy under build/.
const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const say = (s: string): void => {
  if (process.stdout.writable) process.stdout.write(s + '\n');
};

interface Sandbox {
  dir: string;
  conf: string;
  slapd?: SlapdServer;
  db?: MariadbServer;
  gw?: Gateway;
  servers: (IperfServer | BackgroundProcess)[];
  daemonStarted: boolean;
}

async function reselqos(sb: Sandbox, ...args: string[]): Promise<string> {
  const r = await realExec(process.execPath, [cli, ...args, '-c', sb.conf], { timeoutMs: 120_000, okCodes: [0, 1, 2, 3, 7] });
  return (r.stdout + r.stderr).trim();
}

async function teardown(sb: Sandbox): Promise<void> {
  say('\ntaking the sandbox down ...');
  if (sb.daemonStarted) say('  ' + (await reselqos(sb, 'stop').catch((e: Error) => e.message)));
  await Promise.allSettled(sb.servers.map((s) => s.stop()));
  await Promise.allSettled([sb.gw?.destroy(), sb.slapd?.stop(), sb.db?.stop()]);
  rmSync(sb.dir, { recursive: true, force: true });
  say('  namespaces, servers and temp files removed');
}

/** A sample campus: a few dozen people, about 100 machines, some inactive, one unpaid, one banned. */
function sampleCampus(): { campus: Campus; unpaid: string; banned: string } {
  const campus = generateCampus({ users: 36, seed: 42, unpaidShare: 0, cutShare: 0, blacklistShare: 0, banShare: 0, ipv6Share: 0, inactiveShare: 0.04, orgs: 2 });
  const [, unpaid, banned] = campus.people;
  unpaid!.endInternet = '20240101000000Z';
  unpaid!.paid = false;
  banned!.ban = ['internet'];
  return { campus, unpaid: unpaid!.uid, banned: banned!.uid };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { duration: { type: 'string', default: '60' }, keep: { type: 'boolean', default: false } } });
  const duration = Number(values.duration);
  if (!Number.isFinite(duration) || duration <= 0) throw new Error(`--duration: expected seconds, got "${values.duration}"`);
  if (process.getuid?.() !== 0) throw new Error('the sandbox creates network namespaces and servers: run as root');
  await cleanupStale('rq-demo-').catch(() => undefined);

  const dir = mkdtempSync(join(tmpdir(), 'rq-demo-'));
  const sb: Sandbox = { dir, conf: join(dir, 'qos.conf'), servers: [], daemonStarted: false };
  let stopping = false;
  let down: Promise<void> | null = null;
  const takeDown = (): Promise<void> => (down ??= teardown(sb));
  const onSignal = (): void => {
    if (stopping) return;
    stopping = true;
    void takeDown().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  // Output piped to a reader that went away (| head): take everything down all the same.
  process.stdout.on('error', onSignal);

  try {
    const { campus, unpaid, banned } = sampleCampus();
    const active = campus.machines.filter((m) => m.active);
    say(`reselqos demo: a sample campus of ${campus.people.length} people and ${campus.orgs.length} clubs, ${campus.machines.length} machines (${campus.machines.length - active.length} inactive), ${unpaid} unpaid, ${banned} banned`);
    say('starting slapd, MariaDB and the users / gateway / wan namespaces ...');
    [sb.slapd, sb.db, sb.gw] = await Promise.all([
      startSlapd(), startMariadb({ timezone: '+00:00' }),
      createGateway({ prefix: `rq-demo-${process.pid}-`, userIps: campus.machines.map((m) => m.ip) }),
    ]);
    await loadCampus(sb.slapd, campus);
    const httpPort = await freePort();
    writeFileSync(sb.conf, sandboxConf({
      ldapUrl: sb.slapd.url, db: { host: sb.db.host, port: sb.db.port, user: sb.db.user, password: sb.db.password }, dir,
      firewall: `netns = ${sb.gw.names.gw}`, down: '50Mbit', up: '20Mbit', timezone: 'UTC',
      qos: 'classSeperationBase = 200MB\ncount = active',
      metrics: `listen = 127.0.0.1:${httpPort}`, publish: 'enabled = 1', site: 'name = demo',
    }));
    chmodSync(sb.conf, 0o600);

    // The iperf3 users: one that will climb fast, one slowly, one that stays light.
    const people = campus.people.filter((p) => p.uid !== unpaid && p.uid !== banned);
    const firstIp = (uid: string): string => campus.machinesOf(uid).find((m) => m.active)!.ip;
    const iperfUsers = people.slice(3, 6).map((p) => ({ uid: p.uid, ip: firstIp(p.uid) }));
    const rates = new Map<string, number>([[iperfUsers[0]!.uid, 160e6], [iperfUsers[1]!.uid, 40e6], [iperfUsers[2]!.uid, 2e6]]);
    // Ten more users with some traffic of the day; the rest idle.
    for (const p of people.slice(6, 16)) rates.set(p.uid, 5e6 + (p.uid.length % 5) * 15e6);

    say('starting the daemon: reselqos start ...');
    say('  ' + (await reselqos(sb, 'start')).split('\n').join('\n  '));
    sb.daemonStarted = true;

    const gw = sb.gw;
    sb.servers.push(await startBannerServer(gw.names.wan, [80]));
    const refusedLine = async (uid: string): Promise<string> => `${uid}: ${await probe(gw.names.users, gw.wanIp, 80, firstIp(uid))}`;
    say(`firewall: ${await refusedLine(iperfUsers[2]!.uid)} (paid)  |  ${await refusedLine(unpaid)} (unpaid)  |  ${await refusedLine(banned)} (banned)`);

    // Feeder: nacctd-like hour buckets, a new row per IP per flush (rows are summed).
    const rnd = prng(7);
    const feed = async (): Promise<void> => {
      const rows: TrafficRow[] = [];
      const time = DateTime.utc().startOf('hour').toFormat('yyyy-MM-dd HH:mm:ss');
      for (const [uid, perTick] of rates) {
        const input = Math.floor(perTick * (0.7 + 0.6 * rnd()));
        rows.push({ ip: firstIp(uid), time, input, output: Math.floor(input / 6) });
      }
      await sb.db!.insertTraffic(rows);
    };

    // iperf3 downloads, back to back, 3 s each.
    const measured = new Map<string, number>();
    let flows = true;
    const servers = await Promise.all(iperfUsers.map((_, i) => startIperfServer(gw, 5301 + i)));
    sb.servers.push(...servers);
    const loops = iperfUsers.map(async (u, i) => {
      while (flows) {
        const r = await runIperf(gw, { bindIp: u.ip, port: 5301 + i, seconds: 3, reverse: true }).catch(() => null);
        if (r) measured.set(u.uid, r.bitsPerSecond);
      }
    });

    const groupOf = new Map<string, string>();
    const uidOfIp = new Map(campus.machines.map((m) => [m.ip, m.ownerUid]));
    const exec = gw.execIn('gw');
    const started = Date.now();
    say(`\nrunning for ${duration} s (a cycle every 2 s); the daemon's log: ${join(dir, 'log', 'reselqos.log')}`);
    say('try, while it runs (in another terminal):');
    say(`  node ${cli} status -c ${sb.conf}`);
    say(`  node ${cli} explain ${iperfUsers[0]!.uid} -c ${sb.conf}`);
    say(`  node ${cli} plan -c ${sb.conf}`);
    say(`  tail -f ${join(dir, 'log', 'reselqos.log')}`);
    say(`dashboard: http://127.0.0.1:${httpPort}/   Prometheus metrics: http://127.0.0.1:${httpPort}/metrics`);
    say(`published state: mariadb -S ${sb.db.socket} qos -e 'SELECT * FROM classes'\n`);
    while (!stopping && (Date.now() - started) / 1000 < duration) {
      await feed();
      await sleep(2000);
      const st = (await askDaemon(join(dir, 'run'), { cmd: 'status' }).catch(() => null))?.['status'] as StatusJson | undefined;
      if (!st) continue;
      // Users who just moved, from the sets in the kernel.
      const sets = await readIpsets(exec, (n) => /^qos_[du]\d+$/.test(n));
      const now = new Map<string, string>();
      for (const [name, info] of sets) for (const ip of info.entries) {
        const uid = uidOfIp.get(ip);
        if (uid) now.set(`${uid} ${name[4]}`, name.slice(4));
      }
      const moved: string[] = [];
      for (const [k, g] of now) {
        const was = groupOf.get(k);
        if (was !== undefined && was !== g) moved.push(`${k.split(' ')[0]} ${was}->${g}`);
        groupOf.set(k, g);
      }
      const t = Math.round((Date.now() - started) / 1000);
      const lines = [`t=${t}s  ${st.lastCycle?.summary ?? ''}`, '         download                              upload',
        'group    users  class rate   per user         users  class rate   per user'];
      for (let g = 0; g < 6; g++) {
        const d = st.classes.find((c) => c.direction === 'down' && c.group === g)!;
        const u = st.classes.find((c) => c.direction === 'up' && c.group === g)!;
        const cell = (c: typeof d): string => `${String(c.users).padStart(5)}  ${formatRate(c.rateBps).padStart(10)}   ${(c.users ? formatRate(Math.floor(c.rateBps / c.users)) : '-').padStart(10)}`;
        lines.push(`  ${g}    ${cell(d)}      ${cell(u)}`);
      }
      lines.push(`moved: ${moved.length ? moved.join(', ') : '-'}`);
      for (const u of iperfUsers) {
        const e = (await askDaemon(join(dir, 'run'), { cmd: 'explain', who: u.uid }).catch(() => null))?.['explain'] as ExplainJson | undefined;
        const m = measured.get(u.uid);
        lines.push(`iperf3 ${u.uid.padEnd(18)} ${e ? `${formatSize(e.down.bytes).padStart(9)} today  group ${e.down.group}  rate ${formatRate(e.down.perUserRateBps).padStart(10)} per user (class ${formatRate(e.down.classRateBps)}, ceil = link)` : ''}  measured ${m ? formatRate(Math.round(m)) : '...'}`);
      }
      say(lines.join('\n') + '\n');
    }
    flows = false;
    await Promise.allSettled(loops);
    if (values.keep && !stopping) {
      say('\n--keep: the sandbox stays up (the daemon keeps cycling). Press Ctrl-C here to take it down.');
      await new Promise(() => undefined);
    }
  } finally {
    stopping = true;
    await takeDown();
  }
}

main().then(() => process.exit(0), (e: Error) => {
  process.stderr.write(`demo failed: ${e.stack ?? e.message}\n`);
  process.exit(1);
});

/** A TCP port free on loopback right now (the dashboard's). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}
