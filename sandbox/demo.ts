// `npm run demo`: reselqos doing its whole job on a sandbox gateway, with one command.
// Private slapd and MariaDB seeded with a sample campus, the users / gateway / wan
// namespaces, the real daemon started with `reselqos start` acting on the gateway
// namespace, a traffic feeder writing netacct rows as nacctd would, and real iperf3
// flows through the shaper. Prints a live table every cycle. Removes everything it
// created at the end, on Ctrl-C, or on error.
//
//   node build/sandbox/demo.js [--duration SECONDS] [--keep]

import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { startIperfServer, runIperf } from './netns.js';
import { probe, startBannerServer } from './tcp.js';
import { freePort } from './proc.js';
import { readIpsets } from '../src/kernel/read.js';
import { askDaemon } from '../src/daemon/control.js';
import type { StatusJson } from '../src/daemon/daemon.js';
import type { ExplainJson } from '../src/metrics/explain.js';
import { formatRate, formatSize } from '../src/config/units.js';
import { bringUp, cli, guardStage, newStage, reselqos, sampleCampus, say, sleep, trafficFeeder } from './stage.js';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { duration: { type: 'string', default: '60' }, keep: { type: 'boolean', default: false } } });
  const duration = Number(values.duration);
  if (!Number.isFinite(duration) || duration <= 0) throw new Error(`--duration: expected seconds, got "${values.duration}"`);
  if (process.getuid?.() !== 0) throw new Error('the sandbox creates network namespaces and servers: run as root');
  const sb = await newStage('demo');
  const dir = sb.dir;
  const { stopping, takeDown } = guardStage(sb);

  try {
    const { campus, unpaid, banned } = sampleCampus();
    const active = campus.machines.filter((m) => m.active);
    say(
      `reselqos demo: a sample campus of ${campus.people.length} people and ${campus.orgs.length} clubs, ${campus.machines.length} machines (${campus.machines.length - active.length} inactive), ${unpaid} unpaid, ${banned} banned`,
    );
    say('starting slapd, MariaDB and the users / gateway / wan namespaces ...');
    const httpPort = await freePort();
    await bringUp(sb, 'demo', campus, {
      down: '50Mbit',
      up: '20Mbit',
      qos: 'classSeperationBase = 200MB\ncount = active',
      metrics: `listen = 127.0.0.1:${httpPort}`,
      publish: 'enabled = 1',
      site: 'name = demo',
    });

    // The iperf3 users: one that will climb fast, one slowly, one that stays light.
    const people = campus.people.filter((p) => p.uid !== unpaid && p.uid !== banned);
    const firstIp = (uid: string): string => campus.machinesOf(uid).find((m) => m.active)!.ip;
    const iperfUsers = people.slice(3, 6).map((p) => ({ uid: p.uid, ip: firstIp(p.uid) }));
    const rates = new Map<string, number>([
      [iperfUsers[0]!.ip, 160e6],
      [iperfUsers[1]!.ip, 40e6],
      [iperfUsers[2]!.ip, 2e6],
    ]);
    // Ten more users with some traffic of the day; the rest idle.
    for (const p of people.slice(6, 16)) rates.set(firstIp(p.uid), 5e6 + (p.uid.length % 5) * 15e6);

    say('starting the daemon: reselqos start ...');
    say('  ' + (await reselqos(sb, 'start')).split('\n').join('\n  '));
    sb.daemonStarted = true;

    const gw = sb.gw!;
    sb.servers.push(await startBannerServer(gw.names.wan, [80]));
    const refusedLine = async (uid: string): Promise<string> => `${uid}: ${await probe(gw.names.users, gw.wanIp, 80, firstIp(uid))}`;
    say(
      `firewall: ${await refusedLine(iperfUsers[2]!.uid)} (paid)  |  ${await refusedLine(unpaid)} (unpaid)  |  ${await refusedLine(banned)} (banned)`,
    );

    const feed = trafficFeeder(sb.db!, rates);

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
    say(`published state: mariadb -S ${sb.db!.socket} qos -e 'SELECT * FROM classes'\n`);
    while (!stopping() && (Date.now() - started) / 1000 < duration) {
      await feed();
      await sleep(2000);
      const st = (await askDaemon(join(dir, 'run'), { cmd: 'status' }).catch(() => null))?.['status'] as StatusJson | undefined;
      if (!st) continue;
      // Users who just moved, from the sets in the kernel.
      const sets = await readIpsets(exec, (n) => /^qos_[du]\d+$/.test(n));
      const now = new Map<string, string>();
      for (const [name, info] of sets)
        for (const ip of info.entries) {
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
      const lines = [
        `t=${t}s  ${st.lastCycle?.summary ?? ''}`,
        '         download                              upload',
        'group    users  class rate   per user         users  class rate   per user',
      ];
      for (let g = 0; g < 6; g++) {
        const d = st.classes.find((c) => c.direction === 'down' && c.group === g)!;
        const u = st.classes.find((c) => c.direction === 'up' && c.group === g)!;
        const cell = (c: typeof d): string =>
          `${String(c.users).padStart(5)}  ${formatRate(c.rateBps).padStart(10)}   ${(c.users ? formatRate(Math.floor(c.rateBps / c.users)) : '-').padStart(10)}`;
        lines.push(`  ${g}    ${cell(d)}      ${cell(u)}`);
      }
      lines.push(`moved: ${moved.length ? moved.join(', ') : '-'}`);
      for (const u of iperfUsers) {
        const e = (await askDaemon(join(dir, 'run'), { cmd: 'explain', who: u.uid }).catch(() => null))?.['explain'] as
          ExplainJson | undefined;
        const m = measured.get(u.uid);
        lines.push(
          `iperf3 ${u.uid.padEnd(18)} ${e ? `${formatSize(e.down.bytes).padStart(9)} today  group ${e.down.group}  rate ${formatRate(e.down.perUserRateBps).padStart(10)} per user (class ${formatRate(e.down.classRateBps)}, ceil = link)` : ''}  measured ${m ? formatRate(Math.round(m)) : '...'}`,
        );
      }
      say(lines.join('\n') + '\n');
    }
    flows = false;
    await Promise.allSettled(loops);
    if (values.keep && !stopping()) {
      say('\n--keep: the sandbox stays up (the daemon keeps cycling). Press Ctrl-C here to take it down.');
      await new Promise(() => undefined);
    }
  } finally {
    await takeDown();
  }
}

main().then(
  () => process.exit(0),
  (e: Error) => {
    process.stderr.write(`demo failed: ${e.stack ?? e.message}\n`);
    process.exit(1);
  },
);
