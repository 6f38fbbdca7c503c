// CycleRunner alone (src/cycle/cycle.ts), pure: in-memory sources (test/helpers/fake-sources.ts:
// an upstream that answers, fails, answers empty or is slow, the real snapshot rules between it
// and the cycle) and the fake kernel. What each cycle applies, keeps, and says in its line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DateTime } from 'luxon';
import { parseConfig, type Config } from '../../src/config/config.js';
import { CycleRunner, summaryLine } from '../../src/cycle/cycle.js';
import { Reconciler } from '../../src/kernel/reconciler.js';
import { MemoryLogger } from '../../src/log.js';
import type { Directory, Volume } from '../../src/sources/types.js';
import { FakeKernel } from '../helpers/fake-kernel.js';
import { FakeDirectorySource, FakeUsageSource } from '../helpers/fake-sources.js';
import { minimalConf } from './fixtures.js';

const at = DateTime.fromISO('2026-11-22T12:00', { zone: 'UTC' });
const IP = '172.22.200.1';

const directory: Directory = {
  owners: [
    { uid: 'alice', dn: 'uid=alice,ou=people', kind: 'person', endInternet: Date.UTC(2030, 0, 1), coupure: false, ban: [], cotiz: [] },
  ],
  machines: [{ dn: 'host=a', host: 'a', owner: 'alice', active: true, ips4: [IP], ips6: [] }],
  skipped: [],
  fetchedAt: at.toISO()!,
};
const empty: Directory = { owners: [], machines: [], skipped: [], fetchedAt: at.toISO()! };
const noBytes = new Map<string, Volume>();

interface Rig {
  config: Config;
  kernel: FakeKernel;
  dir: FakeDirectorySource;
  usage: FakeUsageSource;
  runner: CycleRunner;
}

function rig(ldap: Directory | Error = directory, mysql: ReadonlyMap<string, Volume> | Error = noBytes): Rig {
  const config = parseConfig(minimalConf({ qos: 'classifier = classify\nleaf = pfifo\nfairness = flow' }), 'q');
  const kernel = new FakeKernel([config.firewall.ethInt, config.firewall.ethExt]);
  const dir = new FakeDirectorySource(ldap, config.firewall);
  const usage = new FakeUsageSource(mysql, dir);
  const log = new MemoryLogger();
  const reconciler = new Reconciler(config, kernel.exec, log, () => 0);
  return { config, kernel, dir, usage, runner: new CycleRunner(config, { directory: dir, usage }, reconciler, log, () => at) };
}

/** The batches (changes) the kernel received from call `from` on: read-backs are not changes. */
function batchesSince(k: FakeKernel, from: number): string[] {
  return k.calls
    .slice(from)
    .filter(
      (c) =>
        (c.cmd === 'ipset' && c.args[0] === 'restore') ||
        /^ip6?tables-restore$/.test(c.cmd) ||
        (c.cmd === 'tc' && c.args.includes('-batch')),
    )
    .map((c) => `${c.cmd} ${c.args.join(' ')}`);
}

/** The QoS sets (`qos_dN`, `qos_uN`; not the allow set) holding `ip`, as the fake kernel has them. */
function setsOf(k: FakeKernel, ip: string): string[] {
  return [...k.sets].filter(([name, s]) => /_[du]\d+$/.test(name) && s.members.has(ip)).map(([name]) => name);
}

for (const [label, fail, want] of [
  ['only MySQL failed', { mysql: new Error('volumes: boom') }, { ldap: 'fresh', mysql: 'none', line: /using=mysql:none: volumes: boom$/ }],
  [
    'only LDAP failed',
    { ldap: new Error('ldap: boom') },
    { ldap: 'none', mysql: 'fresh', line: /using=ldap:none: no directory: ldap: boom, and no last good/ },
  ],
  [
    'both failed',
    { ldap: new Error('ldap: boom'), mysql: new Error('volumes: boom') },
    { ldap: 'none', mysql: 'none', line: /using=ldap:none,mysql:none: no directory: ldap: boom, .*; volumes: boom$/ },
  ],
] as const) {
  test(`a cycle whose source fetch fails outright names that source, not the other, and leaves the kernel alone (${label})`, async () => {
    const r = rig('ldap' in fail ? fail.ldap : directory, 'mysql' in fail ? fail.mysql : noBytes);
    const report = await r.runner.run();
    assert.equal(report.ok, false);
    assert.equal(report.applied, false);
    assert.deepEqual(report.sources, { ldap: want.ldap, mysql: want.mysql });
    assert.match(summaryLine(report), want.line);
    assert.deepEqual(batchesSince(r.kernel, 0), []);
    assert.equal(r.kernel.sets.size, 0);
  });
}

test('a first cycle applies the directory: the user IP in a set of each direction, one line saying so', async () => {
  const r = rig();
  const report = await r.runner.run();
  assert.equal(report.ok, true, report.error ?? '');
  assert.equal(report.applied, true);
  assert.deepEqual([report.users, report.ips], [1, 1]);
  assert.equal(setsOf(r.kernel, IP).length, 2, 'one download and one upload set');
  assert.match(summaryLine(report), /^cycle ok users=1 ips=1 .* ldap=\d+ms\(full\) /);
  assert.doesNotMatch(summaryLine(report), /using=/);
});

test('a failed LDAP fetch keeps the last directory in force and the kernel untouched; the line says ldap:snapshot', async () => {
  const r = rig();
  assert.equal((await r.runner.run()).ok, true);
  const before = setsOf(r.kernel, IP);
  const from = r.kernel.calls.length;
  r.dir.upstream = new Error('ldap: connect ECONNREFUSED ldap.example.org:389');
  const report = await r.runner.run();
  assert.equal(report.ok, true, report.error ?? '');
  assert.deepEqual(report.sources, { ldap: 'snapshot', mysql: 'fresh' });
  assert.equal(report.users, 1);
  assert.deepEqual(batchesSince(r.kernel, from), []);
  assert.deepEqual(setsOf(r.kernel, IP), before);
  assert.match(summaryLine(report), / using=ldap:snapshot$/);
});

test('an empty directory is never applied as "no users": refused, the last one stays, no batch', async () => {
  const r = rig();
  assert.equal((await r.runner.run()).ok, true);
  const from = r.kernel.calls.length;
  r.dir.upstream = empty;
  const report = await r.runner.run();
  assert.equal(report.ok, true, report.error ?? '');
  assert.equal(report.sources.ldap, 'snapshot');
  assert.equal(report.users, 1);
  assert.equal(setsOf(r.kernel, IP).length, 2);
  assert.deepEqual(batchesSince(r.kernel, from), []);
  assert.equal(r.dir.lastDirectory, directory);
});

test('an empty directory at the first cycle (nothing before it) fails the cycle: nothing is created', async () => {
  const r = rig(empty);
  const report = await r.runner.run();
  assert.equal(report.ok, false);
  assert.equal(report.sources.ldap, 'none');
  assert.match(report.error ?? '', /^no directory: ldap: /);
  assert.deepEqual(batchesSince(r.kernel, 0), []);
});

test('MySQL failing after a good cycle: the day so far is kept, the line names mysql, not ldap', async () => {
  const r = rig(directory, new Map([[IP, { down: 5e9, up: 1e6 }]]));
  const first = await r.runner.run();
  assert.equal(first.ok, true);
  r.usage.upstream = new Error('mysql: connect ETIMEDOUT');
  const report = await r.runner.run();
  assert.equal(report.ok, true, report.error ?? '');
  assert.deepEqual(report.sources, { ldap: 'fresh', mysql: 'snapshot' });
  assert.match(summaryLine(report), / using=mysql:snapshot$/);
  assert.deepEqual(
    report.desired?.users.map((u) => u.down.bytes),
    [5e9],
  );
  assert.deepEqual(report.desired?.users[0]?.down.group, first.desired?.users[0]?.down.group);
});

test('a move is applied: more bytes today put the user in a higher download group, the upload one stays', async () => {
  const r = rig();
  assert.equal((await r.runner.run()).ok, true);
  const before = setsOf(r.kernel, IP);
  r.usage.upstream = new Map([[IP, { down: 1e15, up: 0 }]]);
  const report = await r.runner.run();
  assert.equal(report.ok, true, report.error ?? '');
  assert.deepEqual(report.moves, { down: 1, up: 0 });
  assert.match(summaryLine(report), / moves=d1\/u0 /);
  const after = setsOf(r.kernel, IP);
  assert.equal(after.length, 2);
  const group = report.desired!.users[0]!.down.group;
  assert.ok(group > 0, `group ${group}`);
  assert.notDeepEqual(after, before, 'the download set changed');
  assert.equal(after.filter((s) => before.includes(s)).length, 1, 'the upload set is the same');
});

test('slow sources are fetched concurrently: the volumes are asked while LDAP is still answering', async () => {
  const r = rig();
  r.dir.delayMs = 120;
  const report = await r.runner.run();
  assert.equal(report.ok, true, report.error ?? '');
  assert.deepEqual(r.usage.startedWhileDirectoryPending, [true]);
  assert.ok(report.timings.ldapMs >= 100, `ldap ${report.timings.ldapMs}ms`);
  assert.ok(report.timings.totalMs >= report.timings.ldapMs);
});

test('a dry run plans and compares with the kernel but applies nothing', async () => {
  const r = rig();
  const report = await r.runner.run({ dryRun: true });
  assert.equal(report.ok, true, report.error ?? '');
  assert.equal(report.applied, false);
  assert.ok(report.counts && report.counts.ipset.add > 0, JSON.stringify(report.counts));
  assert.deepEqual(batchesSince(r.kernel, 0), []);
  assert.equal(r.kernel.sets.size, 0);
});

test('the snapshot option runs from the last good directory without asking LDAP', async () => {
  const r = rig();
  assert.equal((await r.runner.run()).ok, true);
  const fetches = r.dir.fetches;
  const report = await r.runner.run({ snapshot: true });
  assert.equal(report.ok, true, report.error ?? '');
  assert.equal(r.dir.fetches, fetches);
  assert.equal(report.sources.ldap, 'refreshing');
});

test('freshOnly (plan): a source answering with its last good data fails the cycle, naming its error; nothing planned or applied', async () => {
  const r = rig();
  assert.equal((await r.runner.run()).ok, true);
  const from = r.kernel.calls.length;
  r.dir.upstream = new Error('ldap: connect ECONNREFUSED ldap.example.org:389');
  const report = await r.runner.run({ dryRun: true, freshOnly: true });
  assert.equal(report.ok, false);
  assert.equal(report.desired, null);
  assert.equal(report.error, 'ldap: connect ECONNREFUSED ldap.example.org:389');
  assert.deepEqual(report.sources, { ldap: 'snapshot', mysql: 'fresh' });
  assert.deepEqual(batchesSince(r.kernel, from), []);
});
