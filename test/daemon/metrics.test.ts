// /metrics and the published tables against the real daemon: `reselqos start` on a sandbox
// gateway (real kernel in rq-* namespaces), private slapd and MariaDB, iperf3 through the shaper.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, chmodSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSlapd, type SlapdServer, PEOPLE_BASE, MACHINES_BASE } from '../../sandbox/slapd.js';
import { startMariadb, type MariadbServer } from '../../sandbox/mariadb.js';
import { createGateway, startIperfServer, runIperf, type Gateway, type IperfServer } from '../../sandbox/netns.js';
import { gatewayConf } from '../../sandbox/conf.js';
import { hourBucket } from '../../sandbox/campus.js';
import { isAlive, readPid } from '../../src/daemon/pidfile.js';
import { runCli } from '../helpers/kernel.js';
import { readTc } from '../../src/kernel/read.js';
import { freePort, get, parseExposition, value, type Sample } from '../helpers/metrics.js';
import { waitLogLine } from '../helpers/log.js';

let slapd: SlapdServer;
let db: MariadbServer;
let gw: Gateway;
let iperf: IperfServer;
let dir: string;
let conf: string;
let port: number;
const SITE = 'gw-test';

const person = (uid: string): string =>
  `dn: uid=${uid},${PEOPLE_BASE}\nobjectClass: genericPerson\nobjectClass: reselPerson\nuid: ${uid}\nendInternet: 20300101000000Z\n\n`;
const machine = (host: string, uid: string, ip: string): string =>
  `dn: host=${host},${MACHINES_BASE}\nobjectClass: reselMachine\nhost: ${host}\nuidProprio: uid=${uid},${PEOPLE_BASE}\nipHostNumber: ${ip}\nzone: Brest\nzone: User\n\n`;
const unpaid = (uid: string): string =>
  `dn: uid=${uid},${PEOPLE_BASE}\nobjectClass: genericPerson\nobjectClass: reselPerson\nuid: ${uid}\nendInternet: 20200101000000Z\n\n`;

function writeConf(extra: { metrics?: string; publish?: string } = {}): void {
  const text = gatewayConf(
    { slapd, db, gw },
    {
      dir,
      down: '40Mbit',
      up: '40Mbit',
      ratesrules: 'rule1From = 12:00\nrule1To = 12:01\nrule1GlobalUp = 0\nrule1GlobalDown = 0\nrule1Up = 0\nrule1Down = 20Mbit',
      metrics: extra.metrics ?? `listen = 127.0.0.1:${port}`,
      publish: extra.publish ?? 'enabled = 1\ntimeout = 3s',
      site: `name = ${SITE}`,
      qos: 'verifyInterval = 2s',
    },
  );
  writeFileSync(conf, text);
  chmodSync(conf, 0o600);
}

const c = (verb: string, ...extra: string[]): ReturnType<typeof runCli> => runCli([verb, '-c', conf, ...extra]);
const url = (path: string): string => `http://127.0.0.1:${port}${path}`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const logText = (): string => readFileSync(join(dir, 'log', 'reselqos.log'), 'utf8');

async function scrape(): Promise<Sample[]> {
  const r = await get(url('/metrics'));
  assert.equal(r.status, 200, r.text);
  assert.match(r.type, /^text\/plain; version=0\.0\.4/);
  return parseExposition(r.text);
}

async function planJson(): Promise<{
  users: { uid: string; down: { bytes: number; group: number }; up: { bytes: number; group: number } }[];
  classes: { direction: string; group: number; users: number; rateBps: number; ceilBps: number }[];
}> {
  const r = await c('plan', '--json');
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rq-metrics-'));
  conf = join(dir, 'qos.conf');
  port = await freePort();
  [slapd, db, gw] = await Promise.all([
    startSlapd(),
    startMariadb({ timezone: '+00:00' }),
    createGateway({ userIps: ['172.22.200.3', '172.22.201.1', '172.22.202.1', '172.22.203.1'] }),
  ]);
  await slapd.add(
    person('alice') +
      machine('pc-alice', 'alice', '200.3') +
      person('bob') +
      machine('pc-bob', 'bob', '201.1') +
      unpaid('zed') +
      machine('pc-zed', 'zed', '203.1'),
  );
  // alice: 2 GB down today -> group 1; bob: a little
  const hour = hourBucket(new Date());
  await db.insertTraffic([
    { ip: '172.22.200.3', time: hour, input: 1_000_000_000, output: 5_000_000 },
    { ip: '172.22.200.3', time: hour, input: 1_000_000_000, output: 0 },
    { ip: '172.22.201.1', time: hour, input: 7_000_000, output: 1_000 },
  ]);
  iperf = await startIperfServer(gw, 5201);
  writeConf();
  const r = await c('start');
  assert.equal(r.code, 0, r.stdout + r.stderr);
});

after(async () => {
  const pid = await readPid(join(dir, 'run', 'reselqos.pid')).catch(() => null);
  if (pid && isAlive(pid)) {
    process.kill(pid, 'SIGKILL');
    while (isAlive(pid)) await sleep(50);
  }
  await iperf?.stop().catch(() => undefined);
  await Promise.allSettled([slapd?.stop(), db?.stop(), gw?.destroy()]);
  rmSync(dir, { recursive: true, force: true });
});

test('/metrics: every metric with its labels; users per group equal plan --json; no secret shown', async () => {
  await c('update');
  const s = await scrape();
  const dg = (name: string): void => {
    for (const direction of ['down', 'up']) {
      for (let g = 0; g < 6; g++)
        assert.notEqual(value(s, name, { direction, group: String(g) }), undefined, `${name}{direction="${direction}",group="${g}"}`);
    }
  };
  for (const n of [
    'reselqos_users',
    'reselqos_class_rate_bps',
    'reselqos_class_ceil_bps',
    'reselqos_class_sent_bytes_total',
    'reselqos_class_sent_packets_total',
    'reselqos_class_dropped_packets_total',
    'reselqos_class_overlimits_total',
    'reselqos_class_backlog_bytes',
    'reselqos_class_backlog_packets',
    'reselqos_class_leaf_dropped_packets_total',
    'reselqos_class_ecn_marked_packets_total',
  ])
    dg(n);
  for (const phase of ['ldap', 'mysql', 'plan', 'apply', 'total']) {
    assert.ok((value(s, 'reselqos_cycle_duration_seconds_count', { phase }) ?? 0) >= 1, phase);
    assert.notEqual(value(s, 'reselqos_cycle_duration_seconds_bucket', { phase, le: '+Inf' }), undefined);
  }
  assert.ok((value(s, 'reselqos_cycles_total', { result: 'ok' }) ?? 0) >= 1);
  assert.equal(value(s, 'reselqos_cycles_total', { result: 'failed' }), 0);
  for (const direction of ['down', 'up']) assert.notEqual(value(s, 'reselqos_moves_total', { direction }), undefined);
  assert.equal(value(s, 'reselqos_source_up', { source: 'ldap' }), 1);
  assert.equal(value(s, 'reselqos_source_up', { source: 'mysql' }), 1);
  for (const source of ['ldap', 'mysql']) assert.equal(value(s, 'reselqos_source_refused', { source }), 0, source);
  assert.equal(value(s, 'reselqos_cycle_interval_seconds', {}), 2, 'sandbox [qos] interval = 2s');
  assert.equal(value(s, 'reselqos_allowed_machines', { family: 'inet' }), 2);
  assert.equal(value(s, 'reselqos_allowed_machines', { family: 'inet6' }), 0);
  assert.equal(value(s, 'reselqos_refused_machines', { reason: 'unpaid' }), 1);
  for (const reason of ['cut', 'banned', 'blacklisted']) assert.equal(value(s, 'reselqos_refused_machines', { reason }), 0);
  assert.equal(value(s, 'reselqos_rate_rule_active', { rule: 'rule1' }), 0);
  const last = value(s, 'reselqos_last_cycle_timestamp_seconds', {})!;
  assert.ok(Math.abs(last - Date.now() / 1000) < 30, `last cycle ${last}`);
  assert.notEqual(value(s, 'process_cpu_user_seconds_total', {}), undefined, 'default process metrics');
  assert.notEqual(value(s, 'nodejs_heap_size_used_bytes', {}), undefined);
  // users and policy per group = plan --json
  const plan = await planJson();
  for (const cl of plan.classes) {
    const labels = { direction: cl.direction, group: String(cl.group) };
    assert.equal(value(s, 'reselqos_users', labels), cl.users, `users ${JSON.stringify(labels)}`);
    assert.equal(value(s, 'reselqos_class_rate_bps', labels), cl.rateBps);
    assert.equal(value(s, 'reselqos_class_ceil_bps', labels), cl.ceilBps);
  }
  assert.equal(value(s, 'reselqos_users', { direction: 'down', group: '1' }), 1, 'alice in group 1');
  const all = (await get(url('/metrics'))).text + (await get(url('/api/state'))).text;
  assert.ok(!all.includes(db.password), 'the database password is never shown');
});

test('class byte counters grow by what iperf3 sent (±10%)', async (t) => {
  const labels = { direction: 'down', group: '0' };
  await c('update');
  const before = value(await scrape(), 'reselqos_class_sent_bytes_total', labels)!;
  const run = runIperf(gw, { bindIp: '172.22.201.1', port: iperf.port, seconds: 5, reverse: true });
  // reselqos top, meanwhile: group 0's download throughput now, read over the control socket
  await sleep(2000);
  const top = await c('top', '--once');
  assert.equal(top.code, 0, top.stderr);
  t.diagnostic(top.stdout);
  const g0 = /^download:.*\n\s+0\s+(\d+)\s+\S+\s+([\d.]+)(k|M)bit/m.exec(top.stdout);
  assert.ok(g0, top.stdout);
  assert.equal(g0[1], '2', 'bob and zed in group 0 (alice in 1)');
  assert.ok(g0[3] === 'M' && Number(g0[2]) > 5, `group 0 moves megabits now: ${g0[0]}`);
  assert.match(top.stdout, /largest download volumes since the reset:\n {2}alice\s+2\.00 GB {2}group 1\n {2}bob/);
  const r = await run;
  await c('update');
  const afterV = value(await scrape(), 'reselqos_class_sent_bytes_total', labels)!;
  const sent = (r.json as { end: { sum_sent: { bytes: number } } }).end.sum_sent.bytes;
  const grew = afterV - before;
  t.diagnostic(
    `iperf3 sent ${sent} bytes; reselqos_class_sent_bytes_total{direction="down",group="0"} grew by ${grew} (${((grew / sent - 1) * 100).toFixed(1)} %)`,
  );
  assert.ok(sent > 1_000_000, `iperf3 sent ${sent}`);
  assert.ok(Math.abs(grew - sent) <= 0.1 * sent, `class 1:10 grew by ${grew} bytes, iperf3 sent ${sent}`);
});

test('counters stay monotonic when the classes are re-created (start rebuilds the tc tree)', async () => {
  const labels = { direction: 'down', group: '0' };
  const before = value(await scrape(), 'reselqos_class_sent_bytes_total', labels)!;
  assert.ok(before > 0);
  // Replace the tc tree under the running daemon: its next verify read-back repairs it, the counters restart at 0 in the kernel.
  await gw.exec('gw', 'tc', ['qdisc', 'del', 'dev', 'int0', 'root']);
  // the next verify read-back ([qos] verifyInterval = 2s) re-creates the tree, its counters from 0
  for (let i = 0; ; i++) {
    await c('update');
    const tc = await readTc(gw.execIn('gw'), 'int0');
    if (tc.stats?.get('1:10') !== undefined) {
      assert.ok(tc.stats.get('1:10')!.bytes < before, 'the kernel counter restarted');
      break;
    }
    assert.ok(i < 20, 'the tc tree was not re-created');
    await sleep(500);
  }
  await c('update');
  const afterV = value(await scrape(), 'reselqos_class_sent_bytes_total', labels)!;
  assert.ok(afterV >= before, `counter went from ${before} to ${afterV}`);
});

type Row = Record<string, string | number | null>;
async function tables(server: MariadbServer = db): Promise<{ people: Row[]; classes: Row[] }> {
  const people = await server.select<Row>(`SELECT site, cn, uid, way, \`group\`, amount FROM qos.people_data ORDER BY site, uid, way`);
  const classes = await server.select<Row>(
    `SELECT site, idx, way, tc_index, \`limit\`, rate, ceil, users, active_users FROM qos.classes ORDER BY site, way, idx`,
  );
  return { people, classes };
}

async function assertTablesEqualPlan(server: MariadbServer = db): Promise<void> {
  const plan = await planJson();
  // the daemon publishes beside the cycle: wait until the tables show the plan (or time out)
  let last = '';
  for (let i = 0; i < 50; i++) {
    const t = await tables(server);
    const people = t.people.map((r) => `${r.site} ${r.cn} ${r.uid} ${r.way} ${r.group} ${r.amount}`);
    const want = plan.users
      .flatMap((u) => (['down', 'up'] as const).map((w) => `${SITE} uid=${u.uid},${PEOPLE_BASE} ${u.uid} ${w} ${u[w].group} ${u[w].bytes}`))
      .sort();
    const classes = t.classes.map((r) => `${r.site} ${r.way} ${r.idx} ${r.tc_index} ${r.rate} ${r.ceil} ${r.users}`).sort();
    const wantC = plan.classes
      .map((cl) => `${SITE} ${cl.direction} ${cl.group} ${16 + cl.group} ${cl.rateBps} ${cl.ceilBps} ${cl.users}`)
      .sort();
    last = JSON.stringify({ people, want, classes, wantC });
    if (JSON.stringify(people.sort()) === JSON.stringify(want) && JSON.stringify(classes) === JSON.stringify(wantC)) return;
    await sleep(200);
  }
  assert.fail(`published tables differ from plan --json: ${last}`);
}

test('published tables equal plan --json after a cycle; only changed rows are written; after an outage everything is rewritten', async () => {
  await c('update');
  await assertTablesEqualPlan();
  const t = await tables();
  const g1 = t.classes.find((r) => r.way === 'down' && r.idx === 1)!;
  assert.equal(Number(g1.limit), 1_250_000_000 * 1.6 + 1_250_000_000, 'limit of group 1 in bytes');
  assert.equal(g1.active_users, 1);
  // A row changed behind the daemon's back stays as it is while nothing changes (only changed rows are written) …
  await db.query(`UPDATE qos.people_data SET amount = 1 WHERE uid = 'bob' AND way = 'down'`);
  await c('update');
  await sleep(500);
  const tampered = await db.select(`SELECT amount FROM qos.people_data WHERE uid = 'bob' AND way = 'down'`);
  assert.equal(Number(tampered[0]!.amount), 1);
  // … the database goes down: cycles go on, one error line …
  await db.kill();
  try {
    await slapd.add(person('carol') + machine('pc-carol', 'carol', '202.1'));
    for (let i = 0; i < 3; i++) {
      const u = await c('update');
      assert.equal(u.code, 0, u.stdout + u.stderr);
    }
    await sleep(4000); // past the publish timeout
    await c('update');
  } finally {
    await db.restart();
  }
  const errors = logText()
    .split('\n')
    .filter((l) => /publish: cannot write/.test(l));
  assert.equal(errors.length, 1, errors.join('\n'));
  // … and the first success rewrites every row of the site (the tampered one included) and adds carol.
  await c('update');
  await assertTablesEqualPlan();
  await waitLogLine(dir, /publish: .* written again/);
  const carol = await db.select(`SELECT uid FROM qos.people_data WHERE uid = 'carol'`);
  assert.equal(carol.length, 2);
});

test('[publish] host: another server; hung (SIGSTOP) it costs the cycles nothing, the write times out, the next success rewrites all', async () => {
  const db2 = await startMariadb({ timezone: '+00:00' });
  try {
    writeConf({ publish: `enabled = 1\ntimeout = 3s\nhost = ${db2.host}:${db2.port}\nuser = ${db2.user}\npassword = ${db2.password}` });
    const r = await c('reload');
    assert.equal(r.code, 0, r.stderr);
    await c('update');
    await assertTablesEqualPlan(db2);
    const errorsBefore = logText()
      .split('\n')
      .filter((l) => /publish: cannot write/.test(l)).length;
    await db2.query(`UPDATE qos.people_data SET amount = 1 WHERE uid = 'alice' AND way = 'down'`);
    process.kill(db2.pid()!, 'SIGSTOP');
    try {
      await slapd.add(person('erin') + machine('pc-erin', 'erin', '204.1'));
      const t0 = Date.now();
      const u = await c('update');
      assert.equal(u.code, 0, u.stdout + u.stderr);
      assert.ok(Date.now() - t0 < 3000, `a cycle took ${Date.now() - t0} ms while the publish database hangs`);
      await sleep(4000); // past [publish] timeout
      assert.equal((await c('update')).code, 0);
      const errors = logText()
        .split('\n')
        .filter((l) => /publish: cannot write/.test(l));
      assert.equal(errors.length, errorsBefore + 1, errors.join('\n'));
    } finally {
      process.kill(db2.pid()!, 'SIGCONT');
    }
    await c('update');
    await assertTablesEqualPlan(db2);
    const erin = await db2.select(`SELECT uid FROM qos.people_data WHERE uid = 'erin'`);
    assert.equal(erin.length, 2);
  } finally {
    writeConf();
    await c('reload');
    await db2.stop();
  }
});

test('token and listen: reload rebinds; without the bearer token 401; check exits 2 for a public listen without token', async () => {
  const old = port;
  port = await freePort();
  writeConf({ metrics: `listen = 127.0.0.1:${port}\ntoken = s3cret-token-0123456789` });
  const r = await c('reload');
  assert.equal(r.code, 0, r.stderr);
  await assert.rejects(fetch(`http://127.0.0.1:${old}/metrics`), 'the old address is closed');
  assert.equal((await get(url('/metrics'))).status, 401);
  assert.equal((await get(url('/'))).status, 401);
  assert.equal((await get(url('/metrics'), { Authorization: 'Bearer wrong' })).status, 401);
  const ok = await get(url('/metrics'), { Authorization: 'Bearer s3cret-token-0123456789' });
  assert.equal(ok.status, 200);
  assert.ok(!ok.text.includes('s3cret-token-0123456789'));
  writeConf({ metrics: `listen = 127.0.0.1:${port}\ntoken = ab` });
  const short = await c('check');
  assert.notEqual(short.code, 0);
  assert.match(short.stderr, /qos\.conf:\d+: \[metrics\] token: is 2 characters long: use at least 16/);
  writeConf({ metrics: `listen = 0.0.0.0:${port}` });
  const chk = await c('check');
  assert.equal(chk.code, 2);
  assert.match(chk.stderr, /\[metrics\] listen: 0\.0\.0\.0 is not a loopback address: set \[metrics\] token/);
});
