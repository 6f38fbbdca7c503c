// Issue 11: defaults that must not leave the gateway open, names that must not widen a rule,
// files that must not leak a password, passwords that must not travel in clear.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig, ConfigError, type ConfigProblem } from '../../src/config/config.js';
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
  // no password: anything goes
  parseConfig(minimalConf(), 'qos.conf', { mode: 0o100666, uid: 1000, processUid: 0 });
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
