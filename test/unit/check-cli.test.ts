import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { minimalConf } from './fixtures.js';
import { expiredCa } from '../helpers/ca.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const cli = join(root, 'dist/cli.js');

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { env: { ...process.env, ...env }, cwd: root }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

test('check --json on conf/qos.conf prints exactly one object of the contract shape', async () => {
  const r = await run(['check', '-c', 'conf/qos.conf', '--json', '--at', '2026-11-22T21:30']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1);
  const j = JSON.parse(lines[0]!);
  assert.deepEqual(Object.keys(j).sort(), ['groups', 'rates', 'rule']);
  assert.deepEqual(j.groups, [
    { group: 0, limitBytes: 1250000000 },
    { group: 1, limitBytes: 3250000000 },
    { group: 2, limitBytes: 6450000000 },
    { group: 3, limitBytes: 11570000000 },
    { group: 4, limitBytes: 19762000000 },
    { group: 5, limitBytes: null },
  ]);
  assert.equal(j.rule, 'rule1');
  assert.deepEqual(j.rates, { down: { totalBps: 160000000 }, up: { totalBps: 160000000 } });
  const day = await run(['check', '-c', 'conf/qos.conf', '--json', '--at', '2026-11-22T12:00']);
  const jd = JSON.parse(day.stdout);
  assert.equal(jd.rule, null);
  assert.deepEqual(jd.rates, { down: { totalBps: 100000000 }, up: { totalBps: 100000000 } });
});

test('check refuses an invalid file with every error on stderr, exit 2', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rq-check-'));
  try {
    const f = join(dir, 'qos.conf');
    writeFileSync(f, minimalConf({ qos: 'groups = 0', ratesrules: 'rule2From = 20:00\nrule2To = 25:00' }));
    const r = await run(['check', '-c', f]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /\[qos\] groups: expected an integer from 1 to 64, got 0/);
    assert.match(r.stderr, /\[ratesrules\] rule2To: expected HH:MM, got "25:00"/);
    assert.match(r.stderr, /rule2GlobalUp: is missing/);
    // $RESELQOS_CONF is used when -c is absent
    const viaEnv = await run(['check', '--json'], { RESELQOS_CONF: f });
    assert.equal(viaEnv.code, 2);
    // a missing file is named
    const missing = await run(['check', '-c', join(dir, 'nope.conf')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /nope\.conf.*file not found/);
    // a password in a world-readable file
    writeFileSync(f, minimalConf({ ldap: 'password = hunter2' }));
    chmodSync(f, 0o644);
    const pw = await run(['check', '-c', f]);
    assert.equal(pw.code, 2);
    assert.match(pw.stderr, /chmod 600/);
    assert.doesNotMatch(pw.stderr, /hunter2/);
    chmodSync(f, 0o600);
    assert.equal((await run(['check', '-c', f])).code, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('help lists check; an unknown verb is a usage error', async () => {
  const h = await run(['help']);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /check/);
  const u = await run(['frobnicate']);
  assert.equal(u.code, 64);
  assert.match(u.stderr, /unknown verb/);
  const bad = await run(['check', '--at', 'yesterday-ish', '-c', 'conf/qos.conf']);
  assert.equal(bad.code, 64);
});

test('check says how a group class is shared: fairness host (the default) or flow; sfq defaults to flow, host with it refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rq-check-'));
  try {
    const file = join(dir, 'q.conf');
    writeFileSync(file, minimalConf({ qos: '' }), { mode: 0o600 });
    const host = await run(['check', '-c', file]);
    assert.equal(host.code, 0, host.stderr);
    assert.match(
      host.stdout,
      /^leaf fq_codel, fairness host: each group class shared equally by user address, whatever their number of flows \(fq_codel behind a flow filter hashing dst \(down\) \/ nfct-src \(up\)\)$/m,
    );
    writeFileSync(file, minimalConf({ qos: 'leaf = sfq' }), { mode: 0o600 });
    const sfq = await run(['check', '-c', file]);
    assert.equal(sfq.code, 0, sfq.stderr);
    assert.match(sfq.stdout, /^leaf sfq, fairness flow: each group class shared by flow .*fairness host needs leaf = fq_codel or cake$/m);
    writeFileSync(file, minimalConf({ qos: 'leaf = sfq\nfairness = host' }), { mode: 0o600 });
    const refused = await run(['check', '-c', file]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /\[qos\] fairness.*host needs leaf = fq_codel or cake: sfq keeps each user's packets in one FIFO/);
    writeFileSync(file, minimalConf({ qos: 'leaf = pfifo\nfairness = flow' }), { mode: 0o600 });
    const flow = await run(['check', '-c', file]);
    assert.match(flow.stdout, /^leaf pfifo, fairness flow: each group class shared by flow/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('check: dangerous settings (issue 20, finding 5) are errors (exit 2) or warnings on stderr counted on stdout', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rq-check-'));
  try {
    const f = join(dir, 'qos.conf');
    const own = `run = ${dir}/run\nstate = ${dir}/state\nlog = ${dir}/log`;
    // a world-writable file, without any password
    writeFileSync(f, minimalConf({ path: own }));
    chmodSync(f, 0o666);
    let r = await run(['check', '-c', f]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /qos\.conf: \[\]: is writable by everyone \(mode 0666\): anyone on this host can rewrite the gateway's policy/);
    // warnings: IPv6 unfiltered, an anonymous directory read in clear, a very broad open destination
    writeFileSync(f, minimalConf({ firewall: 'v6Enabled = 0\nopenDestinations = 8.0.0.0/6', path: own }));
    chmodSync(f, 0o600);
    r = await run(['check', '-c', f]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning: .*qos\.conf:\d+: \[firewall\] v6Enabled: .*IPv6 .*unfiltered/);
    assert.match(r.stderr, /warning: .*qos\.conf:\d+: \[ldap\] host: .*forge/);
    assert.match(r.stderr, /warning: .*qos\.conf:\d+: \[firewall\] openDestinations: 8\.0\.0\.0\/6/);
    assert.match(r.stdout, /qos\.conf: valid \(3 warning\(s\)\)/);
    // an open destination covering everything: refused
    writeFileSync(f, minimalConf({ firewall: 'openDestinations = 0.0.0.0/0', path: own }));
    r = await run(['check', '-c', f]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /qos\.conf:\d+: \[firewall\] openDestinations: 0\.0\.0\.0\/0 /);
    // an expired CA: refused, naming the file
    writeFileSync(join(dir, 'ca.pem'), expiredCa());
    writeFileSync(f, minimalConf({ ldap: `starttls = 1\ncaFile = ${dir}/ca.pem`, path: own }));
    r = await run(['check', '-c', f]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /qos\.conf:\d+: \[ldap\] caFile: .*ca\.pem: certificate 1 \(CN=expired-ca\) expired on/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
