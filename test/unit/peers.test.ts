// The validator of the other sites' rows (src/sharing/peers.ts checkRow) under fast-check:
// random and mutated rows never make it throw, and it accepts only rows whose every field is
// in bounds (the bounds checked here independently of its code).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  checkRow,
  isFresh,
  FaultLog,
  BPS_MAX,
  WEIGHT_MIN,
  WEIGHT_MAX,
  INTERVAL_MIN_MS,
  INTERVAL_MAX_MS,
  USERS_MAX,
  WRITERS_MAX,
  SKEW_MS,
} from '../../src/sharing/peers.js';

const M = 1_000_000;
const good = (): Record<string, unknown> => ({
  site: 'rennes',
  age_ms: 1200,
  interval_ms: 2000,
  weight: 1,
  global_down: 200 * M,
  global_up: 200 * M,
  cap_down: 160 * M,
  cap_up: 160 * M,
  demand_down: 12 * M,
  demand_up: 1 * M,
  users_down: 40,
  users_up: 3,
  allocated_down: 100 * M,
  allocated_up: 100 * M,
  applied_down: 100 * M,
  applied_up: 100 * M,
  writers: 1,
  writer: 'abc',
});
const BPS = ['global', 'cap', 'demand', 'allocated', 'applied'].flatMap((c) => [`${c}_down`, `${c}_up`]);
const FIELDS = Object.keys(good());

/** Any value a driver, a hand-made row or a hostile writer could put in a field. */
const anyValue = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -1, 1e300, -0, NaN, Infinity, 2 ** 53, 2 ** 64 - 1, BPS_MAX, BPS_MAX + 1, 1e-300, 4e9),
  fc.string(),
  fc.constantFrom('18446744073709551615', '12', '1e3', ' 5', '0x10', ''),
  fc.constant(null),
  fc.constant(undefined),
  fc.boolean(),
  fc.bigInt(),
  fc.array(fc.integer(), { maxLength: 2 }),
  fc.object({ maxDepth: 1 }),
);

const asNum = (v: unknown): number =>
  typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+(\.\d+)?(e[+-]?\d+)?$/i.test(v) ? Number(v) : NaN;
const intIn = (v: unknown, lo: number, hi: number): boolean => Number.isSafeInteger(asNum(v)) && asNum(v) >= lo && asNum(v) <= hi;

/** The bounds, written again here from docs/DESIGN.md, not from the code. */
function inBounds(r: Record<string, unknown>): boolean {
  const w = asNum(r['weight']);
  return (
    typeof r['site'] === 'string' &&
    /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(r['site']) &&
    Number.isFinite(w) &&
    w >= WEIGHT_MIN &&
    w <= WEIGHT_MAX &&
    Number.isSafeInteger(asNum(r['age_ms'])) &&
    intIn(r['interval_ms'], INTERVAL_MIN_MS, INTERVAL_MAX_MS) &&
    BPS.every((c) => intIn(r[c], 0, BPS_MAX)) &&
    intIn(r['users_down'], 0, USERS_MAX) &&
    intIn(r['users_up'], 0, USERS_MAX) &&
    (r['writers'] === undefined || intIn(r['writers'], 1, WRITERS_MAX))
  );
}

test('checkRow (fast-check): mutated rows never throw; accepted only when every field is in bounds', () => {
  let accepted = 0;
  let refused = 0;
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom(...FIELDS, 'extra'), anyValue), { maxLength: 4 }), (mutations) => {
      const r = good();
      for (const [k, v] of mutations) r[k] = v;
      const c = checkRow(r);
      assert.equal(
        c.ok,
        inBounds(r),
        JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)),
      );
      if (c.ok) {
        accepted++;
        for (const x of [c.row.weight, c.row.ageMs, c.row.intervalMs, c.row.applied.down, c.row.cap.up]) assert.equal(typeof x, 'number');
      } else {
        refused++;
        assert.ok(FIELDS.includes(c.fault.field), c.fault.field);
        assert.ok(c.fault.value.length <= 41);
      }
    }),
    { seed: 20, numRuns: 5000 },
  );
  assert.ok(accepted > 300 && refused > 2000, `coverage: ${accepted} accepted, ${refused} refused`);
});

test('checkRow (fast-check): anything at all (not even an object) never throws and is refused', () => {
  fc.assert(
    fc.property(fc.anything(), (v) => {
      const c = checkRow(v);
      if (c.ok) assert.ok(inBounds(v as Record<string, unknown>));
    }),
    { seed: 20, numRuns: 2000 },
  );
});

test('checkRow: the rows of the issue are refused, naming field and value', () => {
  for (const [field, value] of [
    ['applied_down', '18446744073709551615'],
    ['weight', 1e300],
    ['interval_ms', 4e9],
    ['site', 'bad name!'],
  ] as const) {
    const c = checkRow({ ...good(), [field]: value });
    assert.ok(!c.ok && c.fault.field === field && c.fault.site === (field === 'site' ? '"bad name!"' : 'rennes'), JSON.stringify(c));
  }
  assert.ok(checkRow({ ...good(), global_down: 1 }).ok, 'a small global is in bounds (and never used as ours)');
});

test('isFresh: by the server clock, a bounded window, nothing from the future', () => {
  assert.ok(isFresh({ ageMs: 5999, intervalMs: 2000 }, 2000, 3));
  assert.ok(!isFresh({ ageMs: 6001, intervalMs: 2000 }, 2000, 3));
  assert.ok(isFresh({ ageMs: -SKEW_MS, intervalMs: 2000 }, 2000, 3));
  assert.ok(!isFresh({ ageMs: -SKEW_MS - 1, intervalMs: 2000 }, 2000, 3));
  assert.ok(!isFresh({ ageMs: 86_400_000, intervalMs: 4e9 }, 2000, 3), 'a day-old row is stale whatever its interval says');
});

test('FaultLog: each fault once while it lasts, again when it comes back', () => {
  const f = new FaultLog();
  assert.deepEqual(f.fresh(['a', 'b']), ['a', 'b']);
  assert.deepEqual(f.fresh(['a', 'b']), []);
  assert.deepEqual(f.fresh(['b']), []);
  assert.deepEqual(f.fresh(['a', 'b']), ['a']);
});
