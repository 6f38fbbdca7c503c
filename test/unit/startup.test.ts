// snapshotAge: when `start` and the daemon's first cycle may apply the snapshot on disk
// without waiting for LDAP (younger than [ldap] refresh), and when they must wait.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { snapshotAge } from '../../src/daemon/startup.js';

const NOW = Date.parse('2026-11-22T12:00:00Z');
const at = (msAgo: number): { fetchedAt: string } => ({ fetchedAt: new Date(NOW - msAgo).toISOString() });
const TEN_MIN = 600_000;

test('younger than refresh: young, with its age', () => {
  assert.deepEqual(snapshotAge(at(0), TEN_MIN, NOW), { young: true, ageMs: 0, why: null });
  assert.deepEqual(snapshotAge(at(TEN_MIN - 1), TEN_MIN, NOW), { young: true, ageMs: TEN_MIN - 1, why: null });
});

test('as old as refresh or older: not young, and says why', () => {
  const r = snapshotAge(at(TEN_MIN), TEN_MIN, NOW);
  assert.equal(r.young, false);
  assert.equal(r.ageMs, TEN_MIN);
  assert.match(r.why ?? '', /is 600s old, not younger than \[ldap\] refresh/);
  assert.equal(snapshotAge(at(3_600_000), TEN_MIN, NOW).young, false);
});

test('no snapshot, refresh = 0, a date in the future or unreadable: never young', () => {
  assert.deepEqual(snapshotAge(null, TEN_MIN, NOW), { young: false, ageMs: null, why: 'no snapshot on disk' });
  assert.match(snapshotAge(at(1000), 0, NOW).why ?? '', /refresh = 0/);
  const future = snapshotAge(at(-5000), TEN_MIN, NOW);
  assert.equal(future.young, false);
  assert.match(future.why ?? '', /dated in the future/);
  assert.equal(snapshotAge({ fetchedAt: 'yesterday' }, TEN_MIN, NOW).young, false);
});
