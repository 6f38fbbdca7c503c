// The HA verbs against the real daemon (issue 23): `reselqos start` on a sandbox gateway (real
// kernel in rq-* namespaces, private slapd and MariaDB). `reselqos role` reaches the daemon and
// shows in status, status --json and /metrics, survives a restart of the daemon
// ([path] run/ha-role); `status --health` is 0 while it shapes, stays 0 through an LDAP and
// MySQL outage (both gateways would see it: no flapping), and turns 1 naming the kernel's error
// once the last [ha] failures cycles failed on the kernel.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, chmodSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSlapd, type SlapdServer, PEOPLE_BASE, MACHINES_BASE } from '../../sandbox/slapd.js';
import { startMariadb, type MariadbServer } from '../../sandbox/mariadb.js';
import { createGateway, type Gateway } from '../../sandbox/netns.js';
import { gatewayConf } from '../../sandbox/conf.js';
import { isAlive, readPid } from '../../src/daemon/pidfile.js';
import { runCli } from '../helpers/kernel.js';
import { freePort, get, parseExposition, value } from '../helpers/metrics.js';

let slapd: SlapdServer;
let db: MariadbServer;
let gw: Gateway;
let dir: string;
let conf: string;
let port: number;

const person = (uid: string): string =>
  `dn: uid=${uid},${PEOPLE_BASE}\nobjectClass: genericPerson\nobjectClass: reselPerson\nuid: ${uid}\nendInternet: 20300101000000Z\n\n`;
const machine = (host: string, uid: string, ip: string): string =>
  `dn: host=${host},${MACHINES_BASE}\nobjectClass: reselMachine\nhost: ${host}\nuidProprio: uid=${uid},${PEOPLE_BASE}\nipHostNumber: ${ip}\nzone: Brest\nzone: User\n\n`;

const c = (verb: string, ...extra: string[]): ReturnType<typeof runCli> => runCli([verb, '-c', conf, ...extra]);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function statusJson(): Promise<{ role: string; roleSince: string; sources: { ldap: string; mysql: string } }> {
  const r = await c('status', '--json');
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

async function roleMetric(): Promise<Record<string, number | undefined>> {
  const r = await get(`http://127.0.0.1:${port}/metrics`);
  assert.equal(r.status, 200);
  const s = parseExposition(r.text);
  return Object.fromEntries(['master', 'backup', 'fault'].map((role) => [role, value(s, 'reselqos_ha_role', { role })]));
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rq-ha-daemon-'));
  conf = join(dir, 'qos.conf');
  port = await freePort();
  [slapd, db, gw] = await Promise.all([startSlapd(), startMariadb({ timezone: '+00:00' }), createGateway({ userIps: ['172.22.200.3'] })]);
  await slapd.add(person('alice') + machine('pc-alice', 'alice', '200.3'));
  // verifyInterval 2 s: the tc tree is read back every cycle, so a kernel broken from outside
  // fails the next cycles at once (with the default 30 s, within 30 s)
  const text = gatewayConf(
    { slapd, db, gw },
    { dir, metrics: `listen = 127.0.0.1:${port}`, site: 'name = gw-ha', qos: 'verifyInterval = 2s' },
  );
  writeFileSync(conf, `${text}\n[ha]\nfailures = 2\n`);
  chmodSync(conf, 0o600);
  const r = await c('start');
  assert.equal(r.code, 0, r.stdout + r.stderr);
});

after(async () => {
  const pid = await readPid(join(dir, 'run', 'reselqos.pid')).catch(() => null);
  if (pid && isAlive(pid)) {
    process.kill(pid, 'SIGKILL');
    while (isAlive(pid)) await sleep(50);
  }
  await Promise.allSettled([slapd?.stop(), db?.stop(), gw?.destroy()]);
  rmSync(dir, { recursive: true, force: true });
});

test('role: master by default; reselqos role backup reaches status, --json, /metrics and the log, and survives a restart', async () => {
  assert.equal((await statusJson()).role, 'master');
  assert.deepEqual(await roleMetric(), { master: 1, backup: 0, fault: 0 });
  const r = await c('role', 'backup');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'role master -> backup');
  const s = await statusJson();
  assert.equal(s.role, 'backup');
  assert.ok(Date.now() - Date.parse(s.roleSince) < 10_000, s.roleSince);
  assert.match((await c('status')).stdout, /^role: backup \(since /m);
  assert.deepEqual(await roleMetric(), { master: 0, backup: 1, fault: 0 });
  assert.match(readFileSync(join(dir, 'log', 'reselqos.log'), 'utf8'), /ha: role master -> backup/);
  assert.equal(readFileSync(join(dir, 'run', 'ha-role'), 'utf8'), 'backup\n');
  // a restart of the daemon keeps the role keepalived gave (not [ha] role = master)
  assert.equal((await c('stop')).code, 0);
  const st = await c('start');
  assert.equal(st.code, 0, st.stdout + st.stderr);
  assert.equal((await statusJson()).role, 'backup');
  assert.equal((await c('role', 'master')).stdout.trim(), 'role backup -> master');
});

test('status --health: 0 while shaping and through an LDAP and MySQL outage; 1 after [ha] failures kernel failures, naming the error', async () => {
  // the first cycle of the restarted daemon
  let h = await c('status', '--health');
  for (let i = 0; i < 20 && h.code !== 0; i++) {
    await sleep(500);
    h = await c('status', '--health');
  }
  assert.equal(h.code, 0, h.stdout);
  assert.match(h.stdout, /^healthy \(master\): last cycle ended [0-9.]+s ago, last success [0-9.]+s ago\n$/);
  // both sources down: the snapshot keeps shaping; both gateways would see the same: healthy
  await Promise.all([slapd.kill(), db.stop()]);
  await sleep(7000); // three cycles at 2 s
  const s = await statusJson();
  assert.match(s.sources.ldap, /^down since /);
  h = await c('status', '--health');
  assert.equal(h.code, 0, h.stdout);
  // the kernel fails: the users' interface is gone; after 2 cycles (failures = 2) unhealthy
  await gw.exec('gw', 'ip', ['link', 'del', 'int0']);
  const t0 = Date.now();
  for (;;) {
    h = await c('status', '--health');
    if (h.code !== 0 || Date.now() - t0 > 20_000) break;
    await sleep(500);
  }
  assert.equal(h.code, 1, h.stdout);
  assert.match(h.stdout, /^unhealthy \(master\): the last 2 cycles failed on the kernel \(\[ha\] failures = 2\): .*int0/);
  // a daemon that is gone: unhealthy, exit 1
  assert.equal((await c('stop')).code, 0);
  h = await c('status', '--health');
  assert.equal(h.code, 1);
  assert.match(h.stdout, /^unhealthy: reselqos is not running/);
});
