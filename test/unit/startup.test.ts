// snapshotAge: when `start` and the daemon's first cycle may apply the snapshot on disk
// without waiting for LDAP (younger than [ldap] refresh), and when they must wait;
// savedVolumesAge: when `start` may take the volumes saved beside it instead of reading MySQL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { savedVolumesAge, snapshotAge } from '../../src/daemon/startup.js';

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

test('saved volumes: young when of this reset period and younger than refresh; never from an earlier period, in the future, or missing', () => {
  const reset = Date.parse('2026-11-22T05:00:00Z');
  const v = (msAgo: number, resetAt = '2026-11-22T05:00:00.000Z'): { fetchedAt: string; resetAt: string } => ({
    fetchedAt: new Date(NOW - msAgo).toISOString(),
    resetAt,
  });
  assert.deepEqual(savedVolumesAge(v(30_000), reset, TEN_MIN, NOW), { young: true, ageMs: 30_000, why: null });
  const old = savedVolumesAge(v(TEN_MIN), reset, TEN_MIN, NOW);
  assert.equal(old.young, false);
  assert.match(old.why ?? '', /^volumes of .* is 600s old, not younger than \[ldap\] refresh/);
  // yesterday's bytes after the daily reset: not today's, however young the file
  const yesterday = savedVolumesAge(v(1000, '2026-11-21T05:00:00.000Z'), reset, TEN_MIN, NOW);
  assert.equal(yesterday.young, false);
  assert.match(yesterday.why ?? '', /period from 2026-11-21T05:00:00.000Z, not this one/);
  assert.equal(savedVolumesAge(v(-5000), reset, TEN_MIN, NOW).young, false);
  assert.equal(savedVolumesAge(null, reset, TEN_MIN, NOW).young, false);
  assert.equal(savedVolumesAge(v(1000), reset, 0, NOW).young, false);
});
