// The one info line per cycle: what it says about the sources must be true.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { summaryLine, type CycleReport } from '../../src/cycle/cycle.js';

const base: CycleReport = {
  ok: true,
  at: '2026-12-01T02:07:32.373Z',
  error: null,
  users: 203,
  ips: 517,
  skipped: 94,
  moves: { down: 0, up: 0 },
  tc: 0,
  counts: null,
  applied: false,
  sources: { ldap: 'fresh', mysql: 'fresh' },
  ldapChange: 'full',
  timings: { ldapMs: 248, mysqlMs: 222, planMs: 72, readMs: 1, diffMs: 1, applyMs: 1, totalMs: 300 },
  desired: null,
  result: null,
};

test('a full fetch that answered is marked (full); a patch (patch)', () => {
  assert.match(summaryLine(base), / ldap=248ms\(full\) mysql=222ms /);
  assert.match(summaryLine({ ...base, ldapChange: 'patch' }), / ldap=248ms\(patch\) /);
  assert.doesNotMatch(summaryLine(base), /using=/);
});

test('a cycle on the snapshot (LDAP down at boot) is not marked (full) and says using=ldap:snapshot', () => {
  // The first cycle of a process hands the planner a new directory object (change 'full')
  // even when it comes from the snapshot on disk: the line must not read as a fetch.
  const line = summaryLine({ ...base, sources: { ldap: 'snapshot', mysql: 'snapshot' } });
  assert.match(line, / ldap=248ms mysql=222ms /);
  assert.match(line, / using=ldap:snapshot,mysql:snapshot$/);
});
