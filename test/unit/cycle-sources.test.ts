// CycleRunner with fake sources and the fake kernel: what the report says of each source when
// one of them fails outright.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DateTime } from 'luxon';
import { parseConfig } from '../../src/config/config.js';
import { CycleRunner, summaryLine } from '../../src/daemon/cycle.js';
import { Reconciler } from '../../src/kernel/reconciler.js';
import { MemoryLogger } from '../../src/log.js';
import type { Sources, DirectoryResult, UsageResult } from '../../src/sources/index.js';
import type { Directory } from '../../src/sources/types.js';
import { FakeKernel } from '../helpers/fake-kernel.js';
import { minimalConf } from './fixtures.js';

const at = DateTime.fromISO('2026-11-22T12:00', { zone: 'UTC' });

const directory: Directory = {
  owners: [
    { uid: 'alice', dn: 'uid=alice,ou=people', kind: 'person', endInternet: Date.UTC(2030, 0, 1), coupure: false, ban: [], cotiz: [] },
  ],
  machines: [{ dn: 'host=a', host: 'a', owner: 'alice', active: true, ips4: ['172.22.200.1'], ips6: [] }],
  skipped: [],
  fetchedAt: at.toISO()!,
};

function fakeSources(fail: { ldap?: Error; mysql?: Error }): Sources {
  const dir: DirectoryResult = { directory, fresh: true, error: null, refreshing: false, change: 'full' };
  const usage: UsageResult = { usage: { byIp: new Map(), resetAt: at.toISO()!, fetchedAt: at.toISO()! }, fresh: true, error: null };
  return {
    store: { lastDirectory: null },
    fetchDirectory: () => (fail.ldap ? Promise.reject(fail.ldap) : Promise.resolve(dir)),
    fetchUsage: () => (fail.mysql ? Promise.reject(fail.mysql) : Promise.resolve(usage)),
    completeUsage: (first: UsageResult) => Promise.resolve(first),
  } as unknown as Sources;
}

for (const [label, fail, want] of [
  ['only MySQL failed', { mysql: new Error('volumes: boom') }, { ldap: 'fresh', mysql: 'none', line: /using=mysql:none: volumes: boom$/ }],
  ['only LDAP failed', { ldap: new Error('ldap: boom') }, { ldap: 'none', mysql: 'fresh', line: /using=ldap:none: ldap: boom$/ }],
  [
    'both failed',
    { ldap: new Error('ldap: boom'), mysql: new Error('volumes: boom') },
    { ldap: 'none', mysql: 'none', line: /using=ldap:none,mysql:none: ldap: boom; volumes: boom$/ },
  ],
] as const) {
  test(`a cycle whose source fetch fails outright names that source, not the other (${label})`, async () => {
    const c = parseConfig(minimalConf({ qos: 'classifier = classify\nleaf = pfifo\nfairness = flow' }), 'q');
    const k = new FakeKernel([c.firewall.ethInt, c.firewall.ethExt]);
    const r = new CycleRunner(c, fakeSources(fail), new Reconciler(c, k.exec, new MemoryLogger(), () => 0), new MemoryLogger(), () => at);
    const report = await r.run();
    assert.equal(report.ok, false);
    assert.deepEqual(report.sources, { ldap: want.ldap, mysql: want.mysql });
    assert.match(summaryLine(report), want.line);
  });
}
