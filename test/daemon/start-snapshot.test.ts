// Starting from the snapshot on disk (issue 16): with a directory snapshot younger than [ldap]
// refresh, `start` and the daemon's first cycle apply it without waiting for LDAP (slapd frozen
// with SIGSTOP, as a hung server), the full fetch then runs in the daemon and its result is
// applied by the next cycles; with an older snapshot `start` waits for the fetch as before.
// Real processes, a real slapd and MariaDB, a real kernel in namespaces.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, chmodSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSlapd, type SlapdServer, PEOPLE_BASE, MACHINES_BASE } from '../../sandbox/slapd.js';
import { startMariadb, type MariadbServer } from '../../sandbox/mariadb.js';
import { createGateway, type Gateway } from '../../sandbox/netns.js';
import { sandboxConf } from '../../sandbox/conf.js';
import { isAlive, readPid } from '../../src/daemon/pidfile.js';
import { cli, ourSets, runCli } from '../helpers/kernel.js';
import { freeze } from '../helpers/freeze.js';

let slapd: SlapdServer;
let db: MariadbServer;
let gw: Gateway;
let dir: string;
let conf: string;
let daemon: ChildProcess | null = null;

const person = (uid: string): string =>
  `dn: uid=${uid},${PEOPLE_BASE}\nobjectClass: genericPerson\nobjectClass: reselPerson\nuid: ${uid}\nendInternet: 20300101000000Z\n\n`;
const machine = (host: string, uid: string, ip: string): string =>
  `dn: host=${host},${MACHINES_BASE}\nobjectClass: reselMachine\nhost: ${host}\nuidProprio: uid=${uid},${PEOPLE_BASE}\nipHostNumber: ${ip}\nzone: Brest\nzone: User\n\n`;
const user = (uid: string, ip: string): string => person(uid) + machine(`pc-${uid}`, uid, ip);

/** [ldap] timeout 20 s: a start that waited for the frozen server would not be done before it is thawed. */
function writeConf(interval = '2s'): void {
  const text = sandboxConf({
    ldapUrl: slapd.url,
    db: { host: db.host, port: db.port, user: db.user, password: db.password },
    dir,
    firewall: `netns = ${gw.names.gw}`,
    timezone: 'UTC',
    ldap: 'refresh = 10m',
  })
    .replace(/^timeout = 5s$/m, 'timeout = 20s')
    .replace(/^interval = 2s$/m, `interval = ${interval}`);
  writeFileSync(conf, text);
  chmodSync(conf, 0o600);
}

const c = (verb: string, ...extra: string[]): ReturnType<typeof runCli> => runCli([verb, '-c', conf, ...extra]);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const sets = async (): Promise<Map<string, string[]>> => (await ourSets(gw.execIn('gw'))).setOf;
const snapshotFile = (): string => join(dir, 'state', 'directory.json');
const logText = (): string => readFileSync(join(dir, 'log', 'reselqos.log'), 'utf8');

async function waitFor(what: string, ms: number, cond: () => Promise<boolean>): Promise<void> {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(200);
  }
}

async function stopDaemon(): Promise<void> {
  const r = await c('stop');
  assert.equal(r.code, 0, r.stdout + r.stderr);
}

// Each test starts with no daemon, whatever the previous one left.
beforeEach(async () => {
  if (dir) await c('stop');
});

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rq-startsnap-'));
  conf = join(dir, 'qos.conf');
  [slapd, db, gw] = await Promise.all([
    startSlapd(),
    startMariadb({ timezone: '+00:00' }),
    createGateway({ userIps: ['172.22.200.3', '172.22.201.1', '172.22.202.1', '172.22.203.1', '172.22.204.1'] }),
  ]);
  await slapd.add(user('alice', '200.3') + user('bob', '201.1'));
  writeConf();
});

after(async () => {
  const pid = await readPid(join(dir, 'run', 'reselqos.pid')).catch(() => null);
  if (pid && isAlive(pid)) process.kill(pid, 'SIGKILL');
  if (daemon?.pid && isAlive(daemon.pid)) daemon.kill('SIGKILL');
  const s = slapd?.pid();
  if (s) process.kill(s, 'SIGCONT');
  await Promise.allSettled([slapd?.stop(), db?.stop(), gw?.destroy()]);
  rmSync(dir, { recursive: true, force: true });
});

test('no snapshot on disk: start fetches the directory first, and leaves a snapshot behind', async () => {
  const r = await c('start');
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.doesNotMatch(r.stdout, /using the snapshot/);
  assert.match(r.stdout, /rebuilt \d+ sets with 2 IPs for 2 users/);
  await stopDaemon();
  const snap = JSON.parse(readFileSync(snapshotFile(), 'utf8')) as { directory: { machines: unknown[] } };
  assert.equal(snap.directory.machines.length, 2);
});

test('young snapshot, slapd frozen: start applies the snapshot without waiting; the daemon applies the fetch once slapd answers', async () => {
  assert.equal((await c('clear')).code, 0);
  assert.equal((await sets()).size, 0);
  await slapd.add(user('carol', '202.1')); // not in the snapshot
  const thaw = await freeze(slapd.pid()!);
  try {
    const t0 = Date.now();
    const r = await c('start');
    const took = Date.now() - t0;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /start: using the snapshot of \S+ \([\d.]+s old, younger than \[ldap\] refresh\); the daemon fetches/);
    assert.doesNotMatch(r.stdout, /LDAP unreachable/);
    assert.match(r.stdout, /rebuilt \d+ sets with 2 IPs for 2 users/);
    assert.ok(took < 20_000, `start took ${took} ms: it waited for the LDAP timeout`);
    const now = await sets();
    assert.deepEqual(now.get('172.22.200.3'), ['qos_d0', 'qos_u0']);
    assert.deepEqual(now.get('172.22.201.1'), ['qos_d0', 'qos_u0']);
    assert.equal(now.get('172.22.202.1'), undefined, 'carol is not in the snapshot');
    const st = JSON.parse((await c('status', '--json')).stdout) as { running: boolean };
    assert.equal(st.running, true, 'the daemon is up while slapd is still frozen');
  } finally {
    thaw();
  }
  // The daemon's background full fetch completes now; a following cycle applies it.
  await waitFor('carol in the kernel', 30_000, async () => (await sets()).get('172.22.202.1')?.join() === 'qos_d0,qos_u0');
  await stopDaemon();
});

test('young snapshot and volumes, slapd and MariaDB frozen: start asks neither, the saved volumes place bob; volumes of an earlier period are read fresh', async () => {
  const volumesFile = join(dir, 'state', 'volumes.json');
  type Saved = { format: number; resetAt: string; fetchedAt: string; volumes: [string, number, number][] };
  const base = JSON.parse(readFileSync(volumesFile, 'utf8')) as Saved; // written by the last start (this period)
  // bob's saved volume: far over every threshold (MariaDB holds no traffic for him)
  const withBob = (resetAt: string): Saved => ({
    ...base,
    resetAt,
    fetchedAt: new Date().toISOString(),
    volumes: [...base.volumes.filter(([ip]) => ip !== '172.22.201.1'), ['172.22.201.1', 1e12, 1e12]],
  });
  assert.equal((await c('clear')).code, 0);
  writeFileSync(volumesFile, JSON.stringify(withBob(base.resetAt)));
  const thawLdap = await freeze(slapd.pid()!);
  const thawDb = await freeze(db.pid()!);
  try {
    const r = await c('start');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /start: using the snapshot of /);
    assert.match(r.stdout, /start: using the volumes of \S+ \([\d.]+s old\); the daemon reads them fresh/);
    assert.doesNotMatch(r.stdout, /MySQL unreachable/, 'MySQL was not asked');
    const bob = (await sets()).get('172.22.201.1') ?? [];
    assert.equal(bob.length, 2);
    assert.ok(!bob.includes('qos_d0') && !bob.includes('qos_u0'), `bob placed by his saved volume: ${bob.join()}`);
  } finally {
    thawDb();
    thawLdap();
  }
  await stopDaemon();

  // the same file from the period before the daily reset: not today's bytes, MySQL is read
  assert.equal((await c('clear')).code, 0);
  const earlier = new Date(Date.parse(base.resetAt) - 86_400_000).toISOString();
  writeFileSync(volumesFile, JSON.stringify(withBob(earlier)));
  const r = await c('start');
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.doesNotMatch(r.stdout, /using the volumes of/);
  assert.deepEqual((await sets()).get('172.22.201.1'), ['qos_d0', 'qos_u0'], "bob from MySQL's bytes (none)");
  await stopDaemon();
});

test('old snapshot, slapd frozen: start waits for the fresh fetch, the kernel untouched meanwhile', async () => {
  assert.equal((await c('clear')).code, 0);
  await slapd.add(user('dave', '203.1'));
  // The snapshot as a start an hour later would find it (older than [ldap] refresh = 10m).
  const file = snapshotFile();
  const snap = JSON.parse(readFileSync(file, 'utf8')) as { directory: { fetchedAt: string } };
  snap.directory.fetchedAt = new Date(Date.now() - 3_600_000).toISOString();
  writeFileSync(file, JSON.stringify(snap));
  const thaw = await freeze(slapd.pid()!);
  let done = false;
  let r: Awaited<ReturnType<typeof c>>;
  try {
    const p = c('start').then((x) => {
      done = true;
      return x;
    });
    await sleep(4000);
    assert.equal(done, false, 'start did not wait for LDAP');
    assert.equal((await sets()).size, 0, 'the kernel is not touched before the fetch');
    thaw();
    r = await p;
  } finally {
    thaw();
  }
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.doesNotMatch(r.stdout, /using the snapshot|LDAP unreachable/);
  assert.match(r.stdout, /rebuilt \d+ sets with 4 IPs for 4 users/);
  assert.deepEqual((await sets()).get('172.22.203.1'), ['qos_d0', 'qos_u0'], 'dave, from the fresh fetch');
  await stopDaemon();
});

test('young snapshot, slapd frozen: the daemon (`run`, as systemd starts it) fills an empty kernel in its first cycle without waiting', async () => {
  // interval 30 s: a first cycle that waited for LDAP would wait 15 s (half an interval)
  writeConf('30s');
  assert.equal((await c('clear')).code, 0);
  await slapd.add(user('erin', '204.1')); // not in the snapshot
  const thaw = await freeze(slapd.pid()!);
  try {
    daemon = spawn(process.execPath, [cli, 'run', '-c', conf], { stdio: 'ignore' });
    await waitFor('the snapshot in the kernel', 12_000, async () => (await sets()).get('172.22.203.1')?.join() === 'qos_d0,qos_u0');
    assert.equal((await sets()).get('172.22.204.1'), undefined, 'erin is not in the snapshot');
    // the sets are in the kernel before the cycle's line reaches the log file (the logger writes
    // after the apply, asynchronously): wait for the line, not only for the sets
    const firstLine = (): RegExpExecArray | null => {
      let log: string;
      try {
        log = logText();
      } catch {
        return null;
      }
      const from = log.lastIndexOf('first cycle from the snapshot of');
      return from < 0 ? null : /cycle ok users=4 .* ldap=(\d+)ms/.exec(log.slice(from));
    };
    await waitFor('the first cycle line after the snapshot notice', 5000, async () => firstLine() !== null);
    const first = firstLine();
    assert.ok(first, logText());
    assert.ok(Number(first[1]) < 5000, `the first cycle waited ${first[1]} ms for LDAP`);
  } finally {
    thaw();
  }
  await stopDaemon();
  writeConf();
});
