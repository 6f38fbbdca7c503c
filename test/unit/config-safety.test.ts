// Issue 11: defaults that must not leave the gateway open, names that must not widen a rule,
// files that must not leak a password, passwords that must not travel in clear.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig, loadConfig, ConfigError, type ConfigProblem } from '../../src/config/config.js';
import { expiredCa, futureCa, makeCaPem, validCa } from '../helpers/ca.js';
import { minimalConf } from './fixtures.js';

function problems(text: string, opts: { mode?: number; uid?: number; processUid?: number } = {}): ConfigProblem[] {
  try {
    parseConfig(text, 'qos.conf', opts);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return [...e.problems];
  }
  assert.fail('expected a ConfigError');
}

function one(
  text: string,
  section: string,
  key: string | null,
  re: RegExp,
  opts: { mode?: number; uid?: number; processUid?: number } = {},
): ConfigProblem {
  const ps = problems(text, opts);
  const hit = ps.find((p) => p.section === section && p.key === key && re.test(p.message));
  assert.ok(hit, `no problem [${section}] ${key} ~ ${re} in:\n${ps.map((p) => JSON.stringify(p)).join('\n')}`);
  return hit;
}

const noV6 = (extra = ''): string => minimalConf({ firewall: extra }).replace(/^net6 = .*$/m, '');

test('finding 2: firewall and IPv6 on without an IPv6 user network is refused, naming net6 / user6Networks', () => {
  const p = one(noV6(), 'firewall', 'user6Networks', /net6.*user6Networks|user6Networks.*net6/);
  assert.match(p.message, /IPv6/);
  // Either key fixes it; an explicit choice to leave IPv6 alone does too; so does no firewall.
  assert.deepEqual(parseConfig(noV6('net6 = 2001:db8:d000::/36'), 'q').firewall.user6Networks, ['2001:db8:d000::/36']);
  assert.deepEqual(parseConfig(noV6('user6Networks = 2001:db8::/32'), 'q').firewall.user6Networks, ['2001:db8::/32']);
  parseConfig(noV6('v6Enabled = 0'), 'q');
  parseConfig(noV6('enabled = 0'), 'q');
});

test('finding 4: every interface-name key follows the kernel rules, named in the error', () => {
  one(minimalConf({ firewall: 'tunnel_name = +' }), 'firewall', 'tunnel_name', /wildcard/);
  one(minimalConf({ firewall: 'tunnel_name = tun+' }), 'firewall', 'tunnel_name', /wildcard/);
  one(minimalConf().replace('eth_int = int0', 'eth_int = eth+'), 'firewall', 'eth_int', /wildcard/);
  one(minimalConf().replace('eth_ext = ext0', 'eth_ext = a/b'), 'firewall', 'eth_ext', /\//);
  one(minimalConf({ firewall: 'tunnel_name = to rennes' }), 'firewall', 'tunnel_name', /whitespace/);
  one(minimalConf({ firewall: 'tunnel_name = ..' }), 'firewall', 'tunnel_name', /"\.\."/);
  one(minimalConf({ firewall: 'eth_dmz = .' }), 'firewall', 'eth_dmz', /"\."/);
  one(minimalConf({ firewall: 'tunnel_name = abcdefghijklmnop' }), 'firewall', 'tunnel_name', /15 bytes/);
  one(minimalConf({ firewall: 'eth_dmz = éééééééé' }), 'firewall', 'eth_dmz', /15 bytes|letters/);
  one(minimalConf({ firewall: 'tunnel_name = eth0:1' }), 'firewall', 'tunnel_name', /:/);
  // the error carries file:line like every other one
  const p = one(minimalConf({ firewall: 'tunnel_name = +' }), 'firewall', 'tunnel_name', /wildcard/);
  assert.ok(p.line !== null && p.line > 0);
  // valid names pass, and an empty tunnel_name means none
  const c = parseConfig(minimalConf({ firewall: 'tunnel_name = to_rennes.1@x-y' }), 'q');
  assert.equal(c.firewall.tunnelName, 'to_rennes.1@x-y');
  assert.equal(parseConfig(minimalConf({ firewall: 'tunnel_name = abcdefghijklmno' }), 'q').firewall.tunnelName, 'abcdefghijklmno');
  assert.equal(parseConfig(minimalConf(), 'q').firewall.tunnelName, '');
});

test('finding 8: a file holding a password: owner root or us, no group/other write bit, no other read bit', () => {
  const text = minimalConf({ ldap: 'password = s3cret' });
  const fix = /chown root:root qos\.conf && chmod 600 qos\.conf/;
  for (const mode of [0o100620, 0o100602, 0o100604, 0o100644, 0o100660, 0o100666, 0o100622]) {
    const p = one(text, '', null, fix, { mode, uid: 0, processUid: 0 });
    assert.match(p.message, new RegExp(`mode 0${(mode & 0o777).toString(8)}`));
    assert.doesNotMatch(p.message, /s3cret/);
  }
  // a 0600 file owned by another user
  const p = one(text, '', null, fix, { mode: 0o100600, uid: 1000, processUid: 0 });
  assert.match(p.message, /owned by uid 1000/);
  // accepted: root's 0600, 0400, 0640 (group may read); the daemon's own uid
  for (const mode of [0o100600, 0o100400, 0o100640]) parseConfig(text, 'qos.conf', { mode, uid: 0, processUid: 0 });
  parseConfig(text, 'qos.conf', { mode: 0o100600, uid: 1000, processUid: 1000 });
  // no password: anything short of a world-writable file (issue 20, finding 5: refused whatever it holds)
  parseConfig(minimalConf(), 'qos.conf', { mode: 0o100664, uid: 1000, processUid: 0 });
});

test('finding 10: a password in plaintext draws a warning; [database] tls settings', () => {
  const plain = parseConfig(minimalConf({ ldap: 'user = cn=qos\npassword = s3cret' }), 'qos.conf');
  const w = plain.warnings.find((x) => /\[ldap\] password/.test(x));
  assert.ok(w, plain.warnings.join('\n'));
  assert.match(w, /plaintext/);
  assert.match(w, /^qos\.conf:\d+: /);
  assert.doesNotMatch(w, /s3cret/);
  for (const ok of ['host = ldaps://ldap.example.org', 'starttls = 1']) {
    const c = parseConfig(minimalConf({ ldap: `${ok}\npassword = s3cret` }), 'q');
    assert.ok(!c.warnings.some((x) => /plaintext/.test(x)), c.warnings.join('\n'));
  }
  // no password, no warning
  assert.ok(!parseConfig(minimalConf(), 'q').warnings.some((x) => /plaintext/.test(x)));

  // MySQL: a password over TCP to a non-loopback host without TLS
  const db = parseConfig(minimalConf({ database: 'password = s3cret' }), 'q');
  assert.ok(
    db.warnings.some((x) => /\[database\] password.*plaintext/.test(x)),
    db.warnings.join('\n'),
  );
  assert.equal(db.database.tls, false);
  assert.equal(db.database.caFile, null);
  for (const ok of ['host = 127.0.0.1', 'host = localhost:3307', 'host = [::1]', 'socket = /run/mysqld/mysqld.sock', 'tls = 1']) {
    const c = parseConfig(minimalConf({ database: `password = s3cret\n${ok}` }), 'q');
    assert.ok(!c.warnings.some((x) => /plaintext/.test(x)), `${ok}: ${c.warnings.join('\n')}`);
  }
  const tls = parseConfig(minimalConf({ database: 'tls = 1\ncaFile = /etc/ssl/db-ca.pem' }), 'q').database;
  assert.equal(tls.tls, true);
  assert.equal(tls.caFile, '/etc/ssl/db-ca.pem');
  one(minimalConf({ database: 'caFile = /etc/ssl/db-ca.pem' }), 'database', 'caFile', /tls = 1/);
  one(minimalConf({ database: 'tls = maybe' }), 'database', 'tls', /0 or 1/);
});

// The built CLI: `check` exits 2 naming the key and the file:line, as for every other error.
const root = fileURLToPath(new URL('../../../', import.meta.url));
function check(text: string, mode = 0o600): Promise<{ code: number; stdout: string; stderr: string; file: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'rq-safety-'));
  const file = join(dir, 'qos.conf');
  writeFileSync(file, text.replaceAll('@DIR@', dir));
  chmodSync(file, mode);
  return new Promise((resolve) => {
    execFile(process.execPath, [join(root, 'dist/cli.js'), 'check', '-c', file], { cwd: root }, (err, stdout, stderr) => {
      rmSync(dir, { recursive: true, force: true });
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr, file });
    });
  });
}

test('check exits 2 for findings 2, 4, 8 and an unusable caFile; warns for a plaintext password', async () => {
  let r = await check(noV6());
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /qos\.conf:\d+: \[firewall\] user6Networks: .*net6/);
  r = await check(minimalConf({ firewall: 'tunnel_name = +' }));
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /qos\.conf:\d+: \[firewall\] tunnel_name: .*wildcard/);
  r = await check(minimalConf({ ldap: 'password = x' }), 0o620);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /chown root:root .*qos\.conf && chmod 600 .*qos\.conf/);
  r = await check(minimalConf({ ldap: 'caFile = @DIR@/missing.pem', database: 'tls = 1\ncaFile = @DIR@' }));
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /qos\.conf:\d+: \[ldap\] caFile: cannot read .*missing\.pem: file not found/);
  assert.match(r.stderr, /qos\.conf:\d+: \[database\] caFile: cannot read .*: is a directory/);
  r = await check(minimalConf({ ldap: 'caFile = @DIR@/qos.conf' }));
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /\[ldap\] caFile: .*no PEM certificate/);
  r = await check(minimalConf({ ldap: 'user = cn=qos\npassword = x' }));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /warning: .*\[ldap\] password: is sent in plaintext/);
});

// Issue 20, finding 5: dangerous settings `check` passed silently.
const warned = (text: string, re: RegExp, opts: { mode?: number; uid?: number; processUid?: number } = {}): string => {
  const c = parseConfig(text, 'qos.conf', opts);
  const w = c.warnings.find((x) => re.test(x));
  assert.ok(w, `no warning ~ ${re} in:\n${c.warnings.join('\n')}`);
  assert.match(w, /^qos\.conf(:\d+)?: /);
  return w;
};
const notWarned = (text: string, re: RegExp, opts: { mode?: number; uid?: number; processUid?: number } = {}): void => {
  const c = parseConfig(text, 'qos.conf', opts);
  assert.ok(!c.warnings.some((x) => re.test(x)), c.warnings.join('\n'));
};

test('finding 5: a world-writable qos.conf is refused whatever it holds; group-writable or another owner is a warning', () => {
  for (const mode of [0o100666, 0o100646, 0o100602]) {
    const p = one(minimalConf(), '', null, /writable by everyone .*rewrite the gateway's policy/, { mode, uid: 0, processUid: 0 });
    assert.match(p.message, new RegExp(`mode 0${(mode & 0o777).toString(8)}`));
    assert.match(p.message, /chmod o-w qos\.conf/);
  }
  const g = warned(minimalConf(), /\[\]: is writable by its group/, { mode: 0o100664, uid: 0, processUid: 0 });
  assert.match(g, /mode 0664.*policy/);
  warned(minimalConf(), /\[\]: is owned by uid 1000/, { mode: 0o100644, uid: 1000, processUid: 0 });
  notWarned(minimalConf(), /\[\]: is (owned|writable)/, { mode: 0o100644, uid: 0, processUid: 0 });
  notWarned(minimalConf(), /\[\]: is (owned|writable)/, { mode: 0o100600, uid: 1000, processUid: 1000 });
});

test('finding 5: openDestinations covering every address is refused, a very broad one is warned about', () => {
  const od = (v: string, extra = ''): string => minimalConf({ firewall: `openDestinations = ${v}${extra}` });
  one(od('0.0.0.0/0'), 'firewall', 'openDestinations', /0\.0\.0\.0\/0.* every IPv4 address.*firewall/);
  one(od('192.0.2.53/32, ::/0'), 'firewall', 'openDestinations', /every IPv6 address/);
  one(od('0.0.0.0/1, 128.0.0.0/1'), 'firewall', 'openDestinations', /together cover every IPv4 address/);
  one(od('::/1, 8000::/1'), 'firewall', 'openDestinations', /together cover every IPv6 address/);
  const w = warned(od('10.0.0.0/7'), /\[firewall\] openDestinations: /);
  assert.match(w, /10\.0\.0\.0\/7 .*shorter than \/8/);
  warned(od('2000::/3'), /\[firewall\] openDestinations: 2000::\/3 .*shorter than \/16/);
  notWarned(od('10.0.0.0/8, 192.0.2.53/32, 2001:db8::/32, 2001::/16'), /openDestinations/);
  // without the firewall nothing is filtered anyway
  parseConfig(od('0.0.0.0/0', '\nenabled = 0'), 'q');
});

test('finding 5: v6Enabled = 0 with the firewall on is warned about: IPv6 passes unfiltered', () => {
  const w = warned(minimalConf({ firewall: 'v6Enabled = 0' }), /\[firewall\] v6Enabled: /);
  assert.match(w, /IPv6 .*unfiltered/);
  assert.match(w, /unpaid|banned/);
  notWarned(minimalConf({ firewall: 'v6Enabled = 0\nenabled = 0' }), /v6Enabled/);
  notWarned(minimalConf(), /v6Enabled/);
});

test('finding 5: an anonymous LDAP read over ldap:// without StartTLS is warned about (the directory can be forged on the path)', () => {
  const w = warned(minimalConf(), /\[ldap\] host: /);
  assert.match(w, /ldap:\/\/ldap\.example\.org .*StartTLS/);
  assert.match(w, /forge/);
  for (const ok of ['starttls = 1', 'host = ldaps://ldap.example.org', 'host = ldap://127.0.0.1', 'host = [::1]', 'host = localhost:389']) {
    const text = ok.startsWith('host') ? minimalConf().replace('host = ldap.example.org', ok) : minimalConf({ ldap: ok });
    notWarned(text, /\[ldap\] host: /);
  }
  // with a password: the password warning says the data can be forged as well, once
  const c = parseConfig(minimalConf({ ldap: 'user = cn=qos\npassword = s3cret' }), 'q');
  assert.ok(!c.warnings.some((x) => /\[ldap\] host: /.test(x)), c.warnings.join('\n'));
  assert.ok(
    c.warnings.some((x) => /\[ldap\] password: is sent in plaintext.*forge/.test(x)),
    c.warnings.join('\n'),
  );
});

/** loadConfig on a temp qos.conf with the CA files given (name -> PEM text, mode); `conf` gets @DIR@. */
async function loadWithCas(
  conf: string,
  cas: Record<string, { pem: string; mode?: number }>,
): Promise<{ problems: ConfigProblem[]; warnings: readonly string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'rq-ca-conf-'));
  try {
    for (const [name, { pem, mode }] of Object.entries(cas)) {
      writeFileSync(join(dir, name), pem);
      chmodSync(join(dir, name), mode ?? 0o644);
    }
    const file = join(dir, 'qos.conf');
    const paths = `run = ${dir}/run\nstate = ${dir}/state\nlog = ${dir}/log`;
    writeFileSync(file, conf.replaceAll('@DIR@', dir).replace(/^\[path\]$/m, `[path]\n${paths}`));
    chmodSync(file, 0o600);
    try {
      const c = await loadConfig(file);
      return { problems: [], warnings: c.warnings };
    } catch (e) {
      assert.ok(e instanceof ConfigError, String(e));
      return { problems: [...e.problems], warnings: [] };
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('finding 5: a CA file must hold certificates valid now; a world-writable one is refused, a group-writable one warned about', async () => {
  const ldapCa = minimalConf({ ldap: 'starttls = 1\ncaFile = @DIR@/ca.pem' });
  const dbCa = minimalConf({ database: 'tls = 1\ncaFile = @DIR@/ca.pem' });
  const DAY = 86_400_000;
  // valid: nothing said
  let r = await loadWithCas(ldapCa, { 'ca.pem': { pem: validCa() } });
  assert.deepEqual(r.problems, []);
  assert.ok(!r.warnings.some((w) => /caFile/.test(w)), r.warnings.join('\n'));
  // expired: refused, naming the file, the key's line and the date
  r = await loadWithCas(ldapCa, { 'ca.pem': { pem: expiredCa() } });
  let p = r.problems.find((x) => x.section === 'ldap' && x.key === 'caFile');
  assert.ok(p, JSON.stringify(r.problems));
  assert.ok(p.line !== null);
  assert.match(p.message, /ca\.pem: certificate 1 \(CN=expired-ca\) expired on \d{4}-\d\d-\d\d/);
  r = await loadWithCas(dbCa, { 'ca.pem': { pem: futureCa() } });
  p = r.problems.find((x) => x.section === 'database' && x.key === 'caFile');
  assert.ok(p, JSON.stringify(r.problems));
  assert.match(p.message, /certificate 1 \(CN=future-ca\) is not valid before \d{4}-\d\d-\d\d/);
  // a bundle where some are expired: the valid ones still verify, a warning names the others
  r = await loadWithCas(ldapCa, { 'ca.pem': { pem: validCa() + expiredCa('old-ca') } });
  assert.deepEqual(r.problems, []);
  assert.ok(
    r.warnings.some((w) => /\[ldap\] caFile: .*ca\.pem: certificate 2 \(CN=old-ca\) expired on/.test(w)),
    r.warnings.join('\n'),
  );
  // expiring within 30 days: a warning with the date
  r = await loadWithCas(ldapCa, { 'ca.pem': { pem: makeCaPem('soon-ca', new Date(Date.now() - DAY), new Date(Date.now() + 10 * DAY)) } });
  assert.deepEqual(r.problems, []);
  assert.ok(
    r.warnings.some((w) => /\[ldap\] caFile: .*CN=soon-ca\) expires on \d{4}-\d\d-\d\d/.test(w)),
    r.warnings.join('\n'),
  );
  // world-writable: anyone could add their own CA and be trusted as the server
  r = await loadWithCas(ldapCa, { 'ca.pem': { pem: validCa(), mode: 0o666 } });
  p = r.problems.find((x) => x.section === 'ldap' && x.key === 'caFile');
  assert.ok(p, JSON.stringify(r.problems));
  assert.match(p.message, /ca\.pem is writable by everyone \(mode 0666\): .*trusted/);
  r = await loadWithCas(dbCa, { 'ca.pem': { pem: validCa(), mode: 0o664 } });
  assert.deepEqual(r.problems, []);
  assert.ok(
    r.warnings.some((w) => /\[database\] caFile: .*ca\.pem is writable by its group \(.*mode 0664\)/.test(w)),
    r.warnings.join('\n'),
  );
});
