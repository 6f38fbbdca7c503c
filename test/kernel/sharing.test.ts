// Two sites sharing one global link, end to end on real kernels: two sandbox gateways
// (sandbox/netns.ts, each its own users, gw and wan namespaces), two real daemons
// (`reselqos start`), one shared MariaDB (the `sites` table) and one LDAP, iperf3 downloads
// through both. Global 60 Mbit/s down (and up), each site's cap 50 Mbit/s, interval 2 s,
// stale 3 intervals. Throughput is measured from the byte counters of each gateway's HTB root
// class on int0 (what the users received) over a few seconds, ±10 %.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSlapd, type SlapdServer, PEOPLE_BASE, MACHINES_BASE } from '../../sandbox/slapd.js';
import { startMariadb, type MariadbServer } from '../../sandbox/mariadb.js';
import { createGateway, startIperfServer, type Gateway, type IperfServer } from '../../sandbox/netns.js';
import { spawnBackground, type BackgroundProcess } from '../../sandbox/spawn.js';
import { gatewayConf } from '../../sandbox/conf.js';
import { readClassBytes } from '../../src/kernel/counters.js';
import { askDaemon } from '../../src/daemon/control.js';
import { isAlive, readPid } from '../../src/daemon/pidfile.js';
import type { StatusJson } from '../../src/daemon/daemon.js';
import { runCli } from '../helpers/kernel.js';
import { freePort, parseExposition, value } from '../helpers/metrics.js';
import { waitLogLine } from '../helpers/log.js';

const M = 1_000_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Site {
  name: 'a' | 'b';
  gw: Gateway;
  dir: string;
  conf: string;
  userIp: string;
  server?: IperfServer;
  load?: BackgroundProcess;
}

let slapd: SlapdServer;
let db: MariadbServer;
let root: string;
const sites: Site[] = [];

const person = (uid: string): string =>
  `dn: uid=${uid},${PEOPLE_BASE}\nobjectClass: genericPerson\nobjectClass: reselPerson\nuid: ${uid}\nendInternet: 20300101000000Z\n\n`;
const machine = (host: string, uid: string, ip: string, zone: string): string =>
  `dn: host=${host},${MACHINES_BASE}\nobjectClass: reselMachine\nhost: ${host}\nuidProprio: uid=${uid},${PEOPLE_BASE}\nipHostNumber: ${ip}\nzone: ${zone}\nzone: User\n\n`;

async function status(s: Site): Promise<StatusJson> {
  const a = await askDaemon(join(s.dir, 'run'), { cmd: 'status' });
  return a['status'] as StatusJson;
}

/** Download throughput of a site's users (bit/s) over `ms`, from its HTB root class counters. */
async function throughput(s: Site, ms = 4000): Promise<number> {
  const ex = s.gw.execIn('gw');
  const b0 = await readClassBytes(ex, 'int0', '1:1');
  const t0 = performance.now();
  await sleep(ms);
  const b1 = await readClassBytes(ex, 'int0', '1:1');
  const t1 = performance.now();
  return ((b1! - b0!) * 8) / ((t1 - t0) / 1000);
}

async function loadOn(s: Site): Promise<void> {
  // a long download (iperf3 -R: the wan server sends to the user), stopped by loadOff
  s.load = await spawnBackground('ip', [
    'netns',
    'exec',
    s.gw.names.users,
    'iperf3',
    '-c',
    s.gw.wanIp,
    '-p',
    '5201',
    '-B',
    s.userIp,
    '-R',
    '-t',
    '300',
  ]);
}
async function loadOff(s: Site): Promise<void> {
  await s.load?.stop();
  s.load = undefined;
}

/** Polls both daemons' status until `ok` holds; returns the seconds it took. Checks Σ allocations ≤ global all along. */
async function until(what: string, ok: (a: StatusJson, b: StatusJson | null) => boolean, timeoutS = 40, bAlive = true): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const a = await status(sites[0]!);
    const b = bAlive ? await status(sites[1]!) : null;
    const a2 = bAlive ? await status(sites[0]!) : a;
    // A unchanged around B's answer: a consistent pair, whose sum must fit the global rate
    if (a.sharing.allocation && b?.sharing.allocation && alloc(a) === alloc(a2)) {
      const sum = a.sharing.allocation.down + b.sharing.allocation.down;
      assert.ok(sum <= 60 * M, `${what}: allocations ${a.sharing.allocation.down} + ${b.sharing.allocation.down} above the global rate`);
    }
    if (ok(a, b)) return (Date.now() - t0) / 1000;
    if (Date.now() - t0 > timeoutS * 1000) {
      assert.fail(`${what}: not reached in ${timeoutS} s; A ${JSON.stringify(a.sharing)} B ${JSON.stringify(b?.sharing)}`);
    }
    await sleep(500);
  }
}

const near = (v: number, target: number, tol = 0.1): boolean => v >= target * (1 - tol) && v <= target * (1 + tol);
const alloc = (s: StatusJson): number => s.sharing.allocation?.down ?? 0;
const table: string[] = [];
const mbit = (v: number): string => (v / M).toFixed(1);

let metricsPort = 0;

/** Site A's /metrics, until `ok` holds for it (metrics are set once per cycle) or 10 s pass. */
async function metricsUntil(ok: (m: ReturnType<typeof parseExposition>) => boolean): Promise<ReturnType<typeof parseExposition>> {
  let m = parseExposition('');
  for (let i = 0; i < 40; i++) {
    m = parseExposition(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text());
    if (ok(m)) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  return m;
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'rq-sharing-'));
  const [sl, d, gwA, gwB] = await Promise.all([
    startSlapd(),
    startMariadb({ timezone: '+00:00' }),
    createGateway({ userIps: ['172.22.200.3'] }),
    createGateway({ userIps: ['172.22.201.1'] }),
  ]);
  slapd = sl;
  db = d;
  await slapd.add(
    person('alice') + machine('pc-alice', 'alice', '200.3', 'Brest') + person('bob') + machine('pc-bob', 'bob', '201.1', 'Rennes'),
  );
  for (const [name, gw, ip, zone] of [
    ['a', gwA, '172.22.200.3', 'Brest'],
    ['b', gwB, '172.22.201.1', 'Rennes'],
  ] as const) {
    const dir = join(root, name);
    mkdirSync(dir);
    const conf = join(dir, 'qos.conf');
    writeFileSync(
      conf,
      gatewayConf(
        { slapd, db, gw },
        {
          dir,
          down: '50Mbit',
          up: '50Mbit',
          ldap: `hostsFilter = (&(objectClass=reselMachine)(zone=${zone}))`,
          ...(name === 'a' ? { metrics: `listen = 127.0.0.1:${(metricsPort = await freePort())}` } : {}),
        },
      ).replace(
        '[ratesrules]',
        `globalDown = 60Mbit\nglobalUp = 60Mbit\n\n[site]\nname = site-${name}\n\n[sharing]\nenabled = 1\nstale = 3\n\n[ratesrules]`,
      ),
    );
    chmodSync(conf, 0o600);
    const site: Site = { name, gw, dir, conf, userIp: ip };
    site.server = await startIperfServer(gw, 5201);
    sites.push(site);
  }
});

after(async () => {
  for (const s of sites) {
    await loadOff(s).catch(() => undefined);
    const pid = await readPid(join(s.dir, 'run', 'reselqos.pid')).catch(() => null);
    if (pid && isAlive(pid)) process.kill(pid, 'SIGKILL');
    await s.server?.stop().catch(() => undefined);
  }
  await Promise.allSettled([slapd?.stop(), db?.stop(), ...sites.map((s) => s.gw.destroy())]);
  rmSync(root, { recursive: true, force: true });
});

test('two sites share 60 Mbit/s: borrow, split, give back, fall back to the static split and resume', async (t) => {
  const [A, B] = sites as [Site, Site];
  for (const s of sites) {
    const r = await runCli(['start', '-c', s.conf]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  }

  // 0. both idle: the spare capacity spread by weight, 30 / 30
  const t0 = await until('both idle', (a, b) => alloc(a) === 30 * M && alloc(b!) === 30 * M);
  table.push(`both idle | ${mbit(alloc(await status(A)))} / ${mbit(alloc(await status(B)))} | - / - | after ${t0.toFixed(1)} s`);

  // 1. A saturated, B idle: A borrows up to its cap (50), B keeps the spare 10
  await loadOn(A);
  const t1 = await until('A alone', (a, b) => alloc(a) >= 49 * M && alloc(b!) <= 11 * M);
  let [ta, tb] = await Promise.all([throughput(A), throughput(B)]);
  let [sa, sb] = [await status(A), await status(B)];
  table.push(
    `A saturated, B idle | ${mbit(alloc(sa))} / ${mbit(alloc(sb))} | ${mbit(ta)} / ${mbit(tb)} | A at its cap in ${t1.toFixed(1)} s`,
  );
  assert.ok(near(ta, 50 * M), `A alone: ${mbit(ta)} Mbit/s, expected 50 ±10 %`);
  assert.equal(sa.sharing.mode, 'sharing');
  assert.deepEqual(
    sa.sharing.peers.map((p) => [p.site, p.fresh]),
    [['site-b', true]],
  );
  assert.ok(sa.sharing.demand!.down >= 0.9 * 45 * M, `A's demand ${sa.sharing.demand!.down}`);
  // The same state in A's metrics: its allocation, its cap, the mode, the peer.
  const m1 = await metricsUntil((m) => value(m, 'reselqos_site_allocation_bps', { direction: 'down' }) === alloc(sa));
  assert.equal(value(m1, 'reselqos_site_allocation_bps', { direction: 'down' }), alloc(sa));
  assert.equal(value(m1, 'reselqos_site_cap_bps', { direction: 'down' }), 50 * M);
  assert.equal(value(m1, 'reselqos_site_sharing_mode', { mode: 'sharing' }), 1);
  assert.equal(value(m1, 'reselqos_site_peer_fresh', { site: 'site-b' }), 1);
  assert.ok((value(m1, 'reselqos_site_demand_bps', { direction: 'down' }) ?? 0) >= 0.9 * 45 * M);

  // 2. both saturated: 30 / 30
  await loadOn(B);
  const t2 = await until('both', (a, b) => near(alloc(a), 30 * M, 0.05) && near(alloc(b!), 30 * M, 0.05));
  [ta, tb] = await Promise.all([throughput(A), throughput(B)]);
  [sa, sb] = [await status(A), await status(B)];
  table.push(`both saturated | ${mbit(alloc(sa))} / ${mbit(alloc(sb))} | ${mbit(ta)} / ${mbit(tb)} | converged in ${t2.toFixed(1)} s`);
  assert.ok(near(ta, 30 * M) && near(tb, 30 * M), `both: ${mbit(ta)} / ${mbit(tb)} Mbit/s, expected 30 / 30 ±10 %`);
  assert.ok(ta + tb <= 60 * M * 1.05, `sum ${mbit(ta + tb)} Mbit/s above the global rate`);

  // 3. B stops: A climbs back within a few cycles
  await loadOff(B);
  const t3 = await until('B stops', (a) => alloc(a) >= 49 * M);
  ta = await throughput(A);
  sa = await status(A);
  sb = await status(B);
  table.push(
    `B stops | ${mbit(alloc(sa))} / ${mbit(alloc(sb))} | ${mbit(ta)} / - | A back at its cap in ${t3.toFixed(1)} s (${Math.ceil(t3 / 2)} cycles)`,
  );
  assert.ok(near(ta, 50 * M), `A after B stopped: ${mbit(ta)} Mbit/s`);
  assert.ok(t3 <= 12, `A took ${t3} s to climb back`);

  // 4. the database stops: both on the static split (30 / 30) within `stale` intervals, never above 60 meanwhile
  await db.kill();
  const t4 = await until('database down', (a, b) => a.sharing.mode === 'db-down' && alloc(a) === 30 * M && alloc(b!) === 30 * M, 30);
  ta = await throughput(A);
  sa = await status(A);
  sb = await status(B);
  table.push(
    `database stopped, A saturated | ${mbit(alloc(sa))} / ${mbit(alloc(sb))} | ${mbit(ta)} / - | static split in ${t4.toFixed(1)} s`,
  );
  assert.ok(near(ta, 30 * M), `A on the static split: ${mbit(ta)} Mbit/s`);
  assert.ok(t4 <= 3 * 2 + 6, `static split after ${t4} s`);
  assert.match(sa.sharing.database, /^down since /);
  assert.equal(sa.lastCycle?.ok, true, 'the cycle goes on');
  await waitLogLine(A.dir, /sharing: database .* unusable: .*; static split/);

  // 5. the database is back: sharing resumes
  await db.restart();
  const t5 = await until('database back', (a) => a.sharing.mode === 'sharing' && alloc(a) >= 49 * M);
  ta = await throughput(A);
  sa = await status(A);
  sb = await status(B);
  table.push(`database back | ${mbit(alloc(sa))} / ${mbit(alloc(sb))} | ${mbit(ta)} / - | sharing again in ${t5.toFixed(1)} s`);
  assert.ok(near(ta, 50 * M), `A after the database came back: ${mbit(ta)} Mbit/s`);

  // 6. B's daemon is killed: its row goes stale, A falls back to its static share
  const pidB = await readPid(join(B.dir, 'run', 'reselqos.pid'));
  process.kill(pidB!, 'SIGKILL');
  while (isAlive(pidB!)) await sleep(50);
  const t6 = await until('B killed', (a) => a.sharing.mode === 'static' && alloc(a) === 30 * M, 30, false);
  ta = await throughput(A);
  sa = await status(A);
  table.push(
    `B's daemon killed | ${mbit(alloc(sa))} / (B's kernel keeps ${mbit(alloc(sb))}) | ${mbit(ta)} / - | static split in ${t6.toFixed(1)} s`,
  );
  assert.ok(near(ta, 30 * M), `A with B stale: ${mbit(ta)} Mbit/s`);
  assert.deepEqual(
    sa.sharing.peers.map((p) => [p.site, p.fresh]),
    [['site-b', false]],
  );
  assert.ok(t6 <= 3 * 2 + 6, `static split after ${t6} s`);
  const m6 = await metricsUntil((m) => value(m, 'reselqos_site_peer_fresh', { site: 'site-b' }) === 0);
  assert.equal(value(m6, 'reselqos_site_peer_fresh', { site: 'site-b' }), 0);
  assert.equal(value(m6, 'reselqos_site_sharing_mode', { mode: 'static' }), 1);

  const line = (await runCli(['status', '-c', A.conf])).stdout;
  assert.match(line, /site site-a \(a site is stale: static split; global 60Mbit down/);
  await waitLogLine(A.dir, /cycle ok .* share=d50Mbit\/u/);
  t.diagnostic('scenario | allocation A / B (Mbit/s) | measured A / B (Mbit/s) | timing');
  for (const row of table) t.diagnostic(row);
  await runCli(['stop', '-c', A.conf]);
});
