// The daemon and its service verbs as an operator uses them: real processes (start puts
// the daemon in the background), real slapd and MariaDB, a real kernel in namespaces.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, chmodSync, readFileSync, renameSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSlapd, type SlapdServer, PEOPLE_BASE, MACHINES_BASE } from '../../sandbox/slapd.js';
import { startMariadb, type MariadbServer } from '../../sandbox/mariadb.js';
import { createGateway, type Gateway } from '../../sandbox/netns.js';
import { sandboxConf } from '../../sandbox/conf.js';
import { readTc, tcReportedRate } from '../../src/kernel/read.js';
import { isAlive, readPid } from '../../src/daemon/pidfile.js';
import { ourSets, assertRulesOnce, runCli } from '../helpers/kernel.js';
import { waitLogLine } from '../helpers/log.js';

let slapd: SlapdServer;
let slapd2: SlapdServer;
let db: MariadbServer;
let gw: Gateway;
let dir: string;
let conf: string;

const person = (uid: string): string =>
  `dn: uid=${uid},${PEOPLE_BASE}\nobjectClass: genericPerson\nobjectClass: reselPerson\nuid: ${uid}\nendInternet: 20300101000000Z\n\n`;
const machine = (host: string, uid: string, ip: string): string =>
  `dn: host=${host},${MACHINES_BASE}\nobjectClass: reselMachine\nhost: ${host}\nuidProprio: uid=${uid},${PEOPLE_BASE}\nipHostNumber: ${ip}\nzone: Brest\nzone: User\n\n`;
const BASE_LDIF = person('alice') + machine('pc-alice', 'alice', '200.3') + person('bob') + machine('pc-bob', 'bob', '201.1');

function writeConf(opts: { ldapUrl?: string; down?: string; raw?: string } = {}): void {
  const text =
    opts.raw ??
    sandboxConf({
      ldapUrl: opts.ldapUrl ?? slapd.url,
      db: { host: db.host, port: db.port, user: db.user, password: db.password },
      dir,
      firewall: `netns = ${gw.names.gw}`,
      down: opts.down ?? '50Mbit',
      up: '50Mbit',
      timezone: 'UTC',
    });
  writeFileSync(conf, text);
  chmodSync(conf, 0o600);
}

const c = (verb: string, ...extra: string[]): ReturnType<typeof runCli> => runCli([verb, '-c', conf, ...extra]);
const logText = (): string => readFileSync(join(dir, 'log', 'reselqos.log'), 'utf8');
const pidFile = (): string => join(dir, 'run', 'reselqos.pid');
const gwExec = (): ReturnType<Gateway['execIn']> => gw.execIn('gw');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function status(): Promise<{
  running: boolean;
  pid: number;
  sources: { ldap: string; mysql: string };
  lastCycle: { at: string; ok: boolean; ms: number } | null;
  classes: { direction: string; group: number; users: number; rateBps: number }[];
}> {
  const r = await c('status', '--json');
  return JSON.parse(r.stdout);
}

async function killDaemon(): Promise<void> {
  const pid = await readPid(pidFile());
  if (pid && isAlive(pid)) {
    process.kill(pid, 'SIGKILL');
    while (isAlive(pid)) await sleep(50);
  }
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rq-daemon-'));
  conf = join(dir, 'qos.conf');
  [slapd, slapd2, db, gw] = await Promise.all([
    startSlapd(),
    startSlapd(),
    startMariadb({ timezone: '+00:00' }),
    createGateway({ userIps: ['172.22.200.3', '172.22.201.1', '172.22.202.1', '172.22.203.1'] }),
  ]);
  await slapd.add(BASE_LDIF);
  await slapd2.add(BASE_LDIF + person('carol') + machine('pc-carol', 'carol', '202.1'));
  writeConf();
});

after(async () => {
  await killDaemon().catch(() => undefined);
  await Promise.allSettled([slapd?.stop(), slapd2?.stop(), db?.stop(), gw?.destroy()]);
  rmSync(dir, { recursive: true, force: true });
});

test('start, status, update', async () => {
  const r = await c('start');
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /rebuilt 26 sets with 2 IPs for 2 users: filled in \d+ ms, switched in [\d.]+ ms/);
  assert.match(r.stdout, /reselqos started \(pid \d+\)/);
  const s = await status();
  assert.equal(s.running, true);
  assert.ok(isAlive(s.pid));
  assert.deepEqual(s.sources, { ldap: 'ok', mysql: 'ok' });
  assert.equal(s.lastCycle?.ok, true);
  assert.equal(s.classes.length, 12);
  const u = await c('update');
  assert.equal(u.code, 0, u.stderr);
  assert.match(u.stdout, /^cycle ok users=2 ips=2 moves=d0\/u0 tc=0 /);
  await assertRulesOnce(gwExec());
  const { setOf } = await ourSets(gwExec());
  assert.deepEqual(setOf.get('172.22.200.3'), ['qos_d0', 'qos_u0']);
  const text = await c('status');
  assert.match(text.stdout, /reselqos running \(pid \d+/);
  assert.match(text.stdout, /sources: ldap ok; mysql ok/);
});

test('explain: why is my connection slow', async () => {
  const r = await c('explain', 'alice');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^alice: 172\.22\.200\.3\n/);
  assert.match(r.stdout, /download .* group 0\/5 +next group above 1\.25 GB \(1\.25 GB to go\)/);
  assert.match(r.stdout, /rate now [\d.]+Mbit per user \(class [\d.]+Mbit shared by 2 user\(s\)\)/);
  const j = JSON.parse((await c('explain', '172.22.201.1', '--json')).stdout);
  assert.equal(j.uid, 'bob');
  assert.deepEqual(j.ips, ['172.22.201.1']);
  assert.equal(j.down.group, 0);
  assert.equal(j.down.nextThresholdBytes, 1_250_000_000);
  assert.equal(j.down.usersInGroup, 2);
  assert.equal(j.down.perUserRateBps, Math.floor(j.down.classRateBps / 2));
  const none = await c('explain', 'nobody');
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no user or IP "nobody"/);
});

test('reload: a new rate applies within one cycle; an invalid file is rejected and the old config runs', async () => {
  const pid = (await status()).pid;
  writeConf({ down: '40Mbit' });
  const r = await c('reload');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /configuration reloaded/);
  const tc = await readTc(gwExec(), 'int0');
  const root = tc.classes.find((x) => x.classid === '1:1')!;
  assert.equal(root.rateBps, tcReportedRate(40_000_000, root.exact));
  assert.equal((await status()).pid, pid, 'no restart');

  writeConf({ raw: readFileSync(conf, 'utf8').replace('down = 40Mbit', 'down = 40').replace('interval = 2s', 'interval = soon') });
  const bad = await c('reload');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /\[rates\] down: rate "40" has no unit/);
  assert.match(bad.stderr, /\[qos\] interval: expected a duration/);
  const after = await c('update');
  assert.equal(after.code, 0);
  const tc2 = await readTc(gwExec(), 'int0');
  assert.equal(tc2.classes.find((x) => x.classid === '1:1')!.rateBps, tcReportedRate(40_000_000, root.exact), 'the running config stays');
  await waitLogLine(dir, /reload rejected, the running configuration stays/);
});

test('reload to a second slapd on another port: no restart needed', async () => {
  const pid = (await status()).pid;
  writeConf({ ldapUrl: slapd2.url, down: '40Mbit' });
  const r = await c('reload');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /cycle ok users=3 ips=3 /);
  const { setOf } = await ourSets(gwExec());
  assert.deepEqual(setOf.get('172.22.202.1'), ['qos_d0', 'qos_u0'], 'carol, known only to the second server');
  assert.equal((await status()).pid, pid);
});

test('slapd killed while running: rules unchanged, status says down, one error line, recovery logged', async () => {
  const before = await ourSets(gwExec());
  await slapd2.kill();
  for (let i = 0; i < 3; i++) assert.equal((await c('update')).code, 0, 'cycles go on with the last good directory');
  const s = await status();
  assert.match(s.sources.ldap, /^down since \S+, using snapshot of \S+$/);
  const after = await ourSets(gwExec());
  assert.deepEqual(after.setOf, before.setOf);
  const downLines = logText()
    .split('\n')
    .filter((l) => / error ldap down: /.test(l));
  assert.equal(downLines.length, 1, downLines.join('\n'));
  await slapd2.restart();
  await c('update');
  assert.equal((await status()).sources.ldap, 'ok');
  await waitLogLine(dir, /info ldap recovered after \d+s down/);
});

test('MariaDB stopped: moves continue from LDAP', async () => {
  await db.kill();
  try {
    await slapd2.add(person('dave') + machine('pc-dave', 'dave', '203.1'));
    const u = await c('update');
    assert.equal(u.code, 0, u.stderr);
    assert.match(u.stdout, /users=4 .*using=mysql:snapshot/);
    const { setOf } = await ourSets(gwExec());
    assert.deepEqual(setOf.get('172.22.203.1'), ['qos_d0', 'qos_u0']);
    assert.match((await status()).sources.mysql, /^down since /);
  } finally {
    await db.restart();
  }
});

test('stop keeps the kernel state; start again makes no duplicates', async () => {
  const pid = (await status()).pid;
  const r = await c('stop');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /stopped .*kernel state kept/);
  assert.ok(!isAlive(pid));
  assert.equal((await c('status')).code, 3);
  const { setOf } = await ourSets(gwExec());
  assert.deepEqual(setOf.get('172.22.200.3'), ['qos_d0', 'qos_u0']);
  await assertRulesOnce(gwExec());
  const tc = await readTc(gwExec(), 'int0');
  assert.equal(tc.classes.length, 8);
  assert.equal((await c('update')).code, 7, 'update with no daemon: not running');
  const again = await c('start');
  assert.equal(again.code, 0, again.stderr);
  await assertRulesOnce(gwExec());
});

test('SIGKILLed daemon: start adopts the state, no duplicate rules', async () => {
  await killDaemon();
  assert.ok(existsSync(pidFile()), 'a stale pid file is left behind');
  const r = await c('start');
  assert.equal(r.code, 0, r.stderr);
  await assertRulesOnce(gwExec());
  assert.equal((await status()).running, true);
});

test('two concurrent starts: one daemon', async () => {
  assert.equal((await c('stop')).code, 0);
  const [a, b] = await Promise.all([c('start'), c('start')]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const pids = [a.stdout, b.stdout].map((o) => Number(/pid (\d+)/.exec(o)?.[1]));
  assert.equal(pids[0], pids[1], `${a.stdout} / ${b.stdout}`);
  assert.ok([a.stdout, b.stdout].some((o) => /already running/.test(o)));
  await assertRulesOnce(gwExec());
});

test('the log is reopened after rotation (SIGUSR2) with no line lost', async () => {
  const log = join(dir, 'log', 'reselqos.log');
  await c('update');
  renameSync(log, `${log}.1`);
  const u1 = await c('update'); // written to the rotated file: the daemon still holds it
  const pid = (await status()).pid;
  process.kill(pid, 'SIGUSR2');
  await sleep(300);
  const u2 = await c('update');
  await sleep(300);
  const old = readFileSync(`${log}.1`, 'utf8');
  const cur = readFileSync(log, 'utf8');
  const line1 = u1.stdout.trim().replace(/ldap=.*$/, '');
  assert.ok(old.includes(line1), 'the line logged before the reopen is in the rotated file');
  assert.match(cur, /log file reopened/);
  assert.ok(cur.includes(u2.stdout.trim().replace(/ldap=.*$/, '')), 'the next line is in the new file');
});

test('start with LDAP unreachable and an old snapshot on disk rebuilds the gateway from the snapshot', async () => {
  assert.equal((await c('stop')).code, 0);
  assert.equal((await c('clear')).code, 0);
  assert.equal((await ourSets(gwExec())).setOf.size, 0);
  // A snapshot older than [ldap] refresh (a younger one is applied without asking LDAP at all:
  // test/daemon/start-snapshot.test.ts).
  const file = join(dir, 'state', 'directory.json');
  const snap = JSON.parse(readFileSync(file, 'utf8')) as { directory: { fetchedAt: string } };
  snap.directory.fetchedAt = new Date(Date.now() - 3_600_000).toISOString();
  writeFileSync(file, JSON.stringify(snap));
  await slapd2.kill();
  try {
    const r = await c('start');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /LDAP unreachable .*rebuilding from the snapshot of \S+/);
    const { setOf } = await ourSets(gwExec());
    assert.equal(setOf.size, 4);
    assert.deepEqual(setOf.get('172.22.203.1'), ['qos_d0', 'qos_u0']);
    await assertRulesOnce(gwExec());
    assert.equal((await c('stop')).code, 0);
  } finally {
    await slapd2.restart();
  }
});
