// Sources against real servers: a private slapd and a private MariaDB.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DateTime } from 'luxon';
import { startSlapd, type SlapdServer, PEOPLE_BASE, ORGS_BASE, MACHINES_BASE } from '../../sandbox/slapd.js';
import { startMariadb, type MariadbServer } from '../../sandbox/mariadb.js';
import { generateCampus, loadCampus } from '../../sandbox/campus.js';
import { sandboxConf } from '../../sandbox/conf.js';
import { parseConfig, type Config } from '../../src/config/config.js';
import { MemoryLogger } from '../../src/log.js';
import { Sources } from '../../src/state/sources.js';
import { LdapSource } from '../../src/ldap/ldap.js';
import { VolumeSource } from '../../src/netacct/volumes.js';
import { NoDirectoryError, SourceUnavailableError } from '../../src/sources/types.js';
import { person, machine as ldifMachine } from '../helpers/ldif.js';

let slapd: SlapdServer;
let db: MariadbServer;
let dir: string;

const machine = (host: string, owner: string, ips: string[], extra = ''): string => ldifMachine(host, owner, ips, extra, true);

const b64 = (s: string): string => Buffer.from(s).toString('base64');

const FIXTURE =
  person('jdupont') +
  person('amartin', 'coupure: TRUE\nban: internet') +
  person('zlast') +
  person("o'brien--1=1", 'cotiz: BLACKLIST2025') + // SQL-looking uid: data, never code
  `dn: uid=clubrezo,${ORGS_BASE}\nobjectClass: reselOrganisation\nobjectClass: reselPerson\nuid: clubrezo\ndisplayName: Club Rezo\nendInternet: 20300815000000Z\n\n` +
  machine('pc-jdupont', `uid=jdupont,${PEOPLE_BASE}`, ['200.3']) +
  machine('tel-jdupont', `uid=jdupont,${PEOPLE_BASE}`, ['200.4', '10.9.8.7']) +
  machine('old-jdupont', `uid=jdupont,${PEOPLE_BASE}`, ['200.5'], 'zone: Inactive') +
  machine('pc-amartin', `uid=amartin,${PEOPLE_BASE}`, ['201.1']) +
  machine('srv-club', `uid=clubrezo,${ORGS_BASE}`, ['199.10']) +
  machine('ghost', `uid=nobody,${PEOPLE_BASE}`, ['202.2']) +
  machine('bad-zero', `uid=zlast,${PEOPLE_BASE}`, ['200.03']) +
  machine('bad-cidr', `uid=zlast,${PEOPLE_BASE}`, ['203.1/24']) +
  machine('bad-shell', `uid=zlast,${PEOPLE_BASE}`, ['203.2;reboot', '$(reboot)']) +
  `dn: host=bad-newline,${MACHINES_BASE}\nobjectClass: reselMachine\nhost: bad-newline\nuidProprio: uid=zlast,${PEOPLE_BASE}\nipHostNumber:: ${b64('203.3\n10.0.0.1')}\nzone: User\n\n` +
  machine('pc-zlast', `uid=zlast,${PEOPLE_BASE}`, ['203.4']) +
  machine('dup-zlast', `uid=zlast,${PEOPLE_BASE}`, ['200.3']) + // also claimed by jdupont: jdupont wins (sorts first)
  machine('pc-robert', `uid=o'brien--1=1,${PEOPLE_BASE}`, ['204.1']);

function configFor(extra: { ldap?: string; database?: string; firewall?: string; qos?: string; state?: string } = {}): Config {
  const text = sandboxConf({
    ldapUrl: slapd.url,
    db: { host: db.host, port: db.port, user: db.user, password: db.password },
    dir: extra.state ?? dir,
    ldap: extra.ldap,
    database: extra.database,
    firewall: extra.firewall,
    qos: extra.qos,
  });
  return parseConfig(text, 'sandbox.conf');
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rq-sources-'));
  [slapd, db] = await Promise.all([startSlapd({ sizeLimit: 50 }), startMariadb({ timezone: '+09:00' })]);
  await slapd.add(FIXTURE);
});

after(async () => {
  await Promise.allSettled([slapd?.stop(), db?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

test('directory: suffix and full IPs, inactive machines, organisations, bad entries named and skipped', async () => {
  const d = await new LdapSource(configFor()).fetch();
  const byHost = new Map(d.machines.map((m) => [m.host, m]));
  assert.deepEqual(byHost.get('pc-jdupont')!.ips4, ['172.22.200.3']);
  // With the firewall on, an address outside [firewall] userNetworks (default: the network of
  // areaPrefix, 172.22.0.0/16) is not a user's: skipped and named (issue 11, finding 5).
  assert.deepEqual(byHost.get('tel-jdupont')!.ips4, ['172.22.200.4']);
  assert.ok(
    d.skipped.some(
      (x) =>
        x.dn === `host=tel-jdupont,${MACHINES_BASE}` &&
        x.reason === 'ipHostNumber "10.9.8.7": 10.9.8.7 is outside [firewall] userNetworks (172.22.0.0/16)',
    ),
    JSON.stringify(d.skipped),
  );
  const wide = await new LdapSource(configFor({ firewall: 'userNetworks = 172.22.0.0/16, 10.9.8.0/24' })).fetch();
  assert.deepEqual(
    wide.machines.find((m) => m.host === 'tel-jdupont')!.ips4,
    ['10.9.8.7', '172.22.200.4'],
    'a full dotted quad inside userNetworks is taken as is',
  );
  const open = await new LdapSource(configFor({ firewall: 'enabled = 0' })).fetch();
  assert.deepEqual(
    open.machines.find((m) => m.host === 'tel-jdupont')!.ips4,
    ['10.9.8.7', '172.22.200.4'],
    'no firewall: no user networks to check',
  );
  assert.equal(byHost.get('old-jdupont')!.active, false);
  assert.equal(byHost.get('srv-club')!.owner, 'clubrezo');
  assert.equal(d.owners.find((o) => o.uid === 'clubrezo')!.kind, 'organisation');
  const amartin = d.owners.find((o) => o.uid === 'amartin')!;
  assert.equal(amartin.coupure, true);
  assert.deepEqual(amartin.ban, ['internet']);
  assert.equal(d.owners.find((o) => o.uid === 'jdupont')!.endInternet, Date.UTC(2030, 7, 15));
  assert.ok(d.owners.find((o) => o.uid === "o'brien--1=1")!.cotiz.includes('BLACKLIST2025'));

  const reasons = (host: string): string[] => d.skipped.filter((s) => s.dn === `host=${host},${MACHINES_BASE}`).map((s) => s.reason);
  assert.match(reasons('ghost').join(), /owner uid=nobody,.* does not exist/);
  assert.match(reasons('bad-zero').join(), /"200\.03": leading zero/);
  assert.match(reasons('bad-cidr').join(), /CIDR/);
  assert.equal(reasons('bad-shell').length, 2);
  assert.ok(reasons('bad-shell').every((r) => /characters that are not part of an IP address/.test(r)));
  assert.match(reasons('bad-newline').join(), /newline/);
  assert.match(reasons('dup-zlast').join(), /IP 172\.22\.200\.3 also claimed by host=pc-jdupont.*owner jdupont/);
  assert.deepEqual(byHost.get('dup-zlast')!.ips4, []);
  assert.ok(!byHost.has('ghost'));
  // the rest of the snapshot stands
  assert.deepEqual(byHost.get('pc-zlast')!.ips4, ['172.22.203.4']);
  assert.deepEqual(byHost.get('pc-robert')!.ips4, ['172.22.204.1']);
});

test('a directory larger than the server size limit comes back whole (paged)', async () => {
  const campus = generateCampus({ users: 120, seed: 7 });
  const local = await startSlapd({ sizeLimit: 50 });
  try {
    await loadCampus(local, campus);
    const text = sandboxConf({
      ldapUrl: local.url,
      db: { host: db.host, port: db.port, user: db.user, password: db.password },
      dir,
      ldap: 'pageSize = 40',
    });
    const d = await new LdapSource(parseConfig(text, 'x')).fetch();
    assert.equal(d.machines.length + d.skipped.filter((s) => /does not exist/.test(s.reason)).length, campus.machines.length);
    assert.ok(d.machines.length > 50);
    assert.equal(d.owners.length, campus.people.length + campus.orgs.length);
  } finally {
    await local.stop();
  }
});

test('a search the server cuts short is a failure, never a shorter list', async () => {
  const campus = generateCampus({ users: 120, seed: 7 });
  const local = await startSlapd({ sizeLimit: 50, pagedTotalLimit: 100 });
  try {
    await loadCampus(local, campus);
    const text = sandboxConf({
      ldapUrl: local.url,
      db: { host: db.host, port: db.port, user: db.user, password: db.password },
      dir,
      ldap: 'pageSize = 40',
    });
    await assert.rejects(
      new LdapSource(parseConfig(text, 'x')).fetch(),
      (e: Error) => e instanceof SourceUnavailableError && /size limit/i.test(e.message),
    );
  } finally {
    await local.stop();
  }
});

test('a wrong base DN is a failure, an empty answer is refused', async () => {
  const wrong = configFor({ ldap: 'basehosts = ou=nowhere,dc=resel,dc=enst-bretagne,dc=fr' });
  await assert.rejects(new LdapSource(wrong).fetch(), (e: Error) => e instanceof SourceUnavailableError && /ou=nowhere/.test(e.message));
  const state = mkdtempSync(join(tmpdir(), 'rq-state-'));
  const empty = configFor({ ldap: 'hostsFilter = (host=does-not-exist)', state });
  const s = new Sources(empty, new MemoryLogger(), { persist: false });
  try {
    await assert.rejects(s.fetchDirectory(new Date()), (e: Error) => e instanceof NoDirectoryError && /refused as empty/.test(e.message));
  } finally {
    await s.close();
    rmSync(state, { recursive: true, force: true });
  }
});

test('volumes: duplicate hour rows summed, reset hour respected in the server time zone, bad rows ignored', async () => {
  // The daemon's zone is Europe/Paris; the server's is +09:00. Reset = 05:00 Paris = 04:00Z = 13:00 server-local.
  await db.query(`USE netacct; DELETE FROM traffic;
    INSERT INTO traffic (ip, time, input, output) VALUES
      ('172.22.200.3', '2026-11-22 12:00:00', 999000000, 999),  -- before the reset (server-local): not counted
      ('172.22.200.3', '2026-11-22 13:00:00', 1000000000, 10),
      ('172.22.200.3', '2026-11-22 13:00:00', 500000000, 20),   -- duplicate bucket: summed
      ('172.22.200.4', '2026-11-22 14:00:00', 300000000, 30),
      ('10.9.8.7',     '2026-11-22 15:00:00', 1, 1),
      ('172.22.201.1', '2026-11-22 13:00:00', -5, 40),           -- negative: ignored with a warning
      ('1'' OR ''1''=''1', '2026-11-22 13:00:00', 7, 7),  -- SQL-looking data, not an IP
      ('172.22.203.4', '2026-11-23 02:00:00', 2000000000, 2000000000);`);
  const config = configFor();
  const reset = DateTime.fromISO('2026-11-22T05:00', { zone: 'Europe/Paris' });
  const log = new MemoryLogger();
  const v = new VolumeSource(config, log);
  try {
    const u = await v.fetch(reset.toJSDate());
    assert.deepEqual(u.byIp.get('172.22.200.3'), { down: 1_500_000_000, up: 30 });
    assert.deepEqual(u.byIp.get('172.22.200.4'), { down: 300_000_000, up: 30 });
    assert.deepEqual(u.byIp.get('172.22.201.1'), { down: 0, up: 40 }, 'only the negative direction is ignored');
    assert.deepEqual(u.byIp.get('172.22.203.4'), { down: 2_000_000_000, up: 2_000_000_000 });
    assert.ok(!u.byIp.has("1' OR '1'='1"));
    assert.ok(
      log.of('warn').some((w) => /NULL or negative.*172\.22\.201\.1/.test(w)),
      log.of('warn').join('\n'),
    );
    assert.ok(
      log.of('warn').some((w) => /not a valid address/.test(w)),
      log.of('warn').join('\n'),
    );
    // One hour later for the reset, the 13:00 buckets drop out.
    const later = await v.fetch(reset.plus({ hours: 1 }).toJSDate());
    assert.equal(later.byIp.get('172.22.200.3'), undefined);
    assert.deepEqual(later.byIp.get('172.22.200.4'), { down: 300_000_000, up: 30 });
  } finally {
    await v.close();
  }
});

test('volumes: an optional second table gives IPv6 volumes', async () => {
  await db.query(`USE netacct; DELETE FROM traffic; DELETE FROM traffic6;
    INSERT INTO traffic (ip, time, input, output) VALUES ('172.22.200.3', '2026-11-22 13:00:00', 100, 10);
    INSERT INTO traffic6 (ip, time, input, output) VALUES
      ('2001:DB8:D200:0000::0003', '2026-11-22 13:00:00', 300, 30),
      ('2001:db8:d200::3', '2026-11-22 14:00:00', 400, 40);`);
  const reset = DateTime.fromISO('2026-11-22T05:00', { zone: 'Europe/Paris' }).toJSDate();
  const v = new VolumeSource(configFor({ database: 'table6 = traffic6' }), new MemoryLogger());
  try {
    const u = await v.fetch(reset);
    assert.deepEqual(u.byIp.get('172.22.200.3'), { down: 100, up: 10 });
    assert.deepEqual(u.byIp.get('2001:db8:d200::3'), { down: 700, up: 70 }, 'IPv6 rows in any spelling meet in canonical form');
  } finally {
    await v.close();
  }
});

test('volumes: exclude peer/direct/local columns when configured', async () => {
  await db.query(`USE netacct; DELETE FROM traffic;
    INSERT INTO traffic (ip, time, input, output, peer_input, peer_output, local_input) VALUES
      ('172.22.200.3', '2026-11-22 13:00:00', 1000, 100, 300, 10, 200);`);
  const reset = DateTime.fromISO('2026-11-22T05:00', { zone: 'Europe/Paris' }).toJSDate();
  const v = new VolumeSource(configFor({ database: 'exclude = peer, local' }), new MemoryLogger());
  try {
    const u = await v.fetch(reset);
    assert.deepEqual(u.byIp.get('172.22.200.3'), { down: 500, up: 90 });
  } finally {
    await v.close();
  }
});

test('slapd and MariaDB stopped mid-run: last good kept, logged once; a restart with both down uses the state on disk', async () => {
  const state = mkdtempSync(join(tmpdir(), 'rq-state-'));
  try {
    await db.query(
      `USE netacct; DELETE FROM traffic; INSERT INTO traffic (ip, time, input, output) VALUES ('172.22.200.3', '2026-11-22 13:00:00', 4000000000 DIV 2, 5);`,
    );
    const config = configFor({ state });
    const reset = DateTime.fromISO('2026-11-22T05:00', { zone: 'Europe/Paris' });
    const log = new MemoryLogger();
    const s = new Sources(config, log);
    await s.init();
    const t0 = new Date('2026-11-22T10:00:00Z');
    const d0 = await s.fetchDirectory(t0);
    const u0 = await s.fetchUsage(t0, reset);
    assert.ok(d0.fresh && u0.fresh);
    await s.persist({ forceUsage: true });

    await slapd.kill();
    await db.kill();
    for (let i = 1; i <= 3; i++) {
      const t = new Date(t0.getTime() + i * 10_000);
      const d = await s.fetchDirectory(t);
      const u = await s.fetchUsage(t, reset);
      assert.equal(d.fresh, false);
      assert.equal(d.directory.machines.length, d0.directory.machines.length, 'the last good directory stays');
      assert.equal(u.fresh, false);
      assert.deepEqual(u.usage.byIp.get('172.22.200.3'), { down: 2_000_000_000, up: 5 }, 'the last volumes stay');
    }
    assert.equal(log.of('error').filter((l) => l.startsWith('ldap down')).length, 1, log.of('error').join('\n'));
    assert.equal(log.of('error').filter((l) => l.startsWith('mysql down')).length, 1, log.of('error').join('\n'));
    assert.match(s.health.ldap.describe(), /^down since .*using snapshot of /);
    // After the next reset while MySQL is still down, volumes restart at zero.
    const nextDay = await s.fetchUsage(new Date('2026-11-23T10:00:00Z'), reset.plus({ days: 1 }));
    assert.equal(nextDay.usage.byIp.size, 0);
    await s.close();

    // A fresh process with both servers down: everything from disk.
    const log2 = new MemoryLogger();
    const s2 = new Sources(config, log2);
    await s2.init();
    const d2 = await s2.fetchDirectory(new Date());
    const u2 = await s2.fetchUsage(new Date(), reset);
    assert.equal(d2.fresh, false);
    assert.deepEqual(d2.directory.machines, d0.directory.machines);
    assert.deepEqual(u2.usage.byIp.get('172.22.200.3'), { down: 2_000_000_000, up: 5 });
    await s2.close();

    // Recovery is logged.
    await Promise.all([slapd.restart(), db.restart()]);
    const d3 = await s.fetchDirectory(new Date());
    assert.equal(d3.fresh, true);
    assert.ok(
      log.of('info').some((l) => /^ldap recovered after/.test(l)),
      log.of('info').join('\n'),
    );
  } finally {
    if (!slapd.running()) await slapd.restart();
    if (!db.running()) await db.restart();
    rmSync(state, { recursive: true, force: true });
  }
});

test('a directory that shrank by more than maxShrink is refused; forcing accepts it', async () => {
  const state = mkdtempSync(join(tmpdir(), 'rq-state-'));
  try {
    const s = new Sources(configFor({ state }), new MemoryLogger(), { persist: false });
    const full = await s.fetchDirectory(new Date());
    assert.ok(full.fresh);
    await s.reconfigure(configFor({ state, ldap: 'hostsFilter = (|(host=pc-jdupont)(host=pc-zlast))' }));
    const shrunk = await s.fetchDirectory(new Date());
    assert.equal(shrunk.fresh, false);
    assert.match(shrunk.error!, /shrank from \d+ to 2 machines/);
    assert.equal(shrunk.directory.machines.length, full.directory.machines.length);
    const forced = await s.fetchDirectory(new Date(), { force: true });
    assert.equal(forced.fresh, true);
    assert.equal(forced.directory.machines.length, 2);
    await s.close();
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
});

test('reselqos plan --json against the real servers', async () => {
  await db.query(`USE netacct; DELETE FROM traffic;`);
  const now = DateTime.now().setZone('Europe/Paris');
  const bucket = now.setZone('UTC+9').startOf('hour').toFormat('yyyy-MM-dd HH:mm:ss');
  await db.insertTraffic([
    { ip: '172.22.200.3', time: bucket, input: 2_000_000_000, output: 1000 },
    { ip: '172.22.200.4', time: bucket, input: 2_000_000_000, output: 1000 },
  ]);
  const f = join(dir, 'plan.conf');
  writeFileSync(f, sandboxConf({ ldapUrl: slapd.url, db: { host: db.host, port: db.port, user: db.user, password: db.password }, dir }));
  chmodSync(f, 0o600);
  const cli = fileURLToPath(new URL('../../../dist/cli.js', import.meta.url));
  const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [cli, 'plan', '-c', f, '--json'], (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code) : 0, stdout, stderr }),
    );
  });
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(j).sort(), ['changes', 'classes', 'skipped', 'users']);
  assert.equal(j.changes, null, 'no int0/ext0 here: the kernel comparison is unknown, said on stderr');
  assert.match(r.stderr, /cannot compare with the live kernel: cannot read tc state of interface/);
  const jd = j.users.find((u: { uid: string }) => u.uid === 'jdupont');
  assert.deepEqual(jd, {
    uid: 'jdupont',
    ips: ['172.22.200.3', '172.22.200.4'],
    down: { bytes: 4_000_000_000, group: 2, rawBytes: 4_000_000_000 },
    up: { bytes: 2000, group: 0, rawBytes: 2000 },
  });
  assert.ok(!j.users.some((u: { uid: string }) => u.uid === 'nobody'));
  assert.equal(j.classes.length, 12);
  for (const dir of ['down', 'up']) {
    const cs = j.classes.filter((c: { direction: string }) => c.direction === dir);
    assert.deepEqual(
      cs.map((c: { group: number }) => c.group),
      [0, 1, 2, 3, 4, 5],
    );
    assert.equal(
      cs.reduce((a: number, c: { users: number }) => a + c.users, 0),
      j.users.length,
    );
    assert.ok(cs.reduce((a: number, c: { rateBps: number }) => a + c.rateBps, 0) <= 50_000_000);
  }
  assert.ok(j.skipped.some((s: { dn: string; reason: string }) => s.dn.startsWith('host=ghost') && /does not exist/.test(s.reason)));
  assert.ok(
    j.skipped.some(
      (s: { dn: string; reason: string }) =>
        s.dn.startsWith('host=tel-jdupont') && /10\.9\.8\.7 is outside \[firewall\] userNetworks/.test(s.reason),
    ),
  );
  // nothing written: plan changes nothing anywhere
  const { existsSync } = await import('node:fs');
  assert.equal(existsSync(join(dir, 'state', 'directory.json')), false);
});

test('a slow directory fetch does not hold a cycle: the last good directory is used meanwhile', async () => {
  const state = mkdtempSync(join(tmpdir(), 'rq-state-'));
  // refresh = 0: a full fetch every cycle (with change searches, see incremental.test.ts).
  const s = new Sources(configFor({ state, ldap: 'refresh = 0' }), new MemoryLogger(), { persist: false });
  try {
    const first = await s.fetchDirectory(new Date(), { waitMs: 0 });
    assert.equal(first.fresh, true, 'no directory yet: the fetch is awaited');
    await slapd.add(person('late') + machine('pc-late', `uid=late,${PEOPLE_BASE}`, ['205.5']));
    const quick = await s.fetchDirectory(new Date(), { waitMs: 0 });
    assert.equal(quick.refreshing, true);
    assert.equal(quick.directory, first.directory, 'the last good directory, untouched');
    const waited = await s.fetchDirectory(new Date());
    assert.equal(waited.fresh, true, 'the same fetch, awaited');
    assert.ok(waited.directory.machines.some((m) => m.host === 'pc-late'));
  } finally {
    await s.close();
    rmSync(state, { recursive: true, force: true });
  }
});

test("volumes count the directory's IPs only: a machine registered since the last cycle is read again at once, an address no machine holds is never interned", async () => {
  const { ipIndex } = await import('../../src/net/ipindex.js');
  const now = DateTime.now();
  const bucket = now.setZone('UTC+9').startOf('hour').toFormat('yyyy-MM-dd HH:mm:ss');
  await db.query('USE netacct; DELETE FROM traffic;');
  await db.insertTraffic([
    { ip: '172.22.200.3', time: bucket, input: 1000, output: 10 },
    { ip: '172.22.207.5', time: bucket, input: 2_000_000_000, output: 30 }, // the machine registered below
    { ip: '10.66.0.1', time: bucket, input: 5000, output: 50 }, // no machine, ever
  ]);
  const s = new Sources(configFor({ ldap: 'refresh = 0', state: mkdtempSync(join(tmpdir(), 'rq-state-')) }), new MemoryLogger(), {
    persist: false,
  });
  const reset = now.startOf('day');
  const newDn = `host=pc-new,${MACHINES_BASE}`;
  let added = false;
  try {
    // the first cycle of a process: no directory before it, so the volumes are read again for it
    const [d1, u1] = await Promise.all([s.fetchDirectory(now.toJSDate()), s.fetchUsage(now.toJSDate(), reset)]);
    assert.equal(u1.usage.byIp.size, 0, 'no directory yet: nothing counted');
    const c1 = await s.completeUsage(u1, d1.directory, now.toJSDate(), reset);
    assert.deepEqual([...c1.usage.byIp], [['172.22.200.3', { down: 1000, up: 10 }]]);

    await slapd.add(machine('pc-new', `uid=zlast,${PEOPLE_BASE}`, ['172.22.207.5']));
    added = true;
    // a cycle: both fetched concurrently; the volumes counted the previous directory's IPs
    const t2 = new Date(now.toMillis() + 10_000);
    const [d2, u2] = await Promise.all([s.fetchDirectory(t2), s.fetchUsage(t2, reset)]);
    assert.ok(d2.directory.machines.some((m) => m.dn === newDn));
    assert.equal(u2.usage.byIp.get('172.22.207.5'), undefined);
    const c2 = await s.completeUsage(u2, d2.directory, t2, reset);
    assert.deepEqual(c2.usage.byIp.get('172.22.207.5'), { down: 2_000_000_000, up: 30 }, "the new machine's volume, in the same cycle");
    assert.equal(c2.usage.byIp.get('10.66.0.1'), undefined);
    assert.equal(ipIndex.peek('10.66.0.1'), undefined, 'never interned');
    // the next cycle: nothing new, no second read
    const t3 = new Date(now.toMillis() + 20_000);
    const [d3, u3] = await Promise.all([s.fetchDirectory(t3), s.fetchUsage(t3, reset)]);
    assert.equal(await s.completeUsage(u3, d3.directory, t3, reset), u3);
  } finally {
    if (added) await slapd.delete(newDn);
    await s.close();
  }
});
