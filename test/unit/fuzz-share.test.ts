// Fuzzing `reselqos share --json` (src/cli/share.ts; the rows' validation and the allocation in
// src/sharing/allocate.ts): random rows documents (valid ones with extreme weights, rates up to
// 2^53-1 and any number of sites; fields of the wrong type, missing or negative; random JSON and
// text) must give exit 0 with an allocation, or exit 2 with errors; never a throw. An allocation
// is integer bit/s per site, never above the site's cap and never above global in sum.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { runShare } from '../../src/cli/share.js';
import type { Io } from '../../src/cli/common.js';
import { fuzz, timed } from '../helpers/fuzz.js';

const MAX = Number.MAX_SAFE_INTEGER;
const bps = fc.oneof(
  fc.constantFrom(0, 1, 999, 1_000_000, 100_000_000, 10_000_000_000, MAX, MAX - 1),
  fc.nat({ max: 2_000_000_000 }),
  fc.integer({ min: 0, max: MAX }),
);
const weight = fc.oneof(
  fc.constantFrom(1, 2, 0.5, 1e-9, 5e-324, 1e-300, 1e300, 1e308, Number.MAX_VALUE, 3.3),
  fc.double({ min: Number.MIN_VALUE, max: Number.MAX_VALUE, noNaN: true }),
);
/** Anything JSON can hold where a field is expected. */
const junk = fc.oneof(
  fc.constantFrom(null, -1, 1.5, 'x', '100', true, [], {}, Number.POSITIVE_INFINITY, -0),
  fc.jsonValue({ maxDepth: 2 }),
);
const maybe = <T>(good: fc.Arbitrary<T>): fc.Arbitrary<unknown> =>
  fc.oneof({ weight: 40, arbitrary: good }, { weight: 1, arbitrary: junk }, { weight: 1, arbitrary: fc.constant(undefined) });
const pair = maybe(fc.record({ down: maybe(bps), up: maybe(bps) }));
const site = (i: number): fc.Arbitrary<unknown> =>
  maybe(
    fc.record(
      {
        site: maybe(fc.constantFrom(`s${i}`, `s${i}`, 's0', 'brest', 'x'.repeat(300), 'é\n')),
        weight: maybe(weight),
        cap: pair,
        demand: pair,
        allocated: fc.oneof(pair, fc.constant(null)),
        fresh: maybe(fc.boolean()),
      },
      { requiredKeys: [] },
    ),
  );
const doc = fc.record({
  global: pair,
  sites: maybe(fc.integer({ min: 0, max: 12 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => site(i))))),
});
const text = fc.oneof(
  { weight: 10, arbitrary: doc.map((d) => JSON.stringify(d)) },
  { weight: 1, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 60 }) },
  { weight: 1, arbitrary: doc.chain((d) => fc.nat().map((n) => JSON.stringify(d).slice(0, n % (JSON.stringify(d).length + 1)))) },
);

/** runShare's exit code and output for `input`. */
function share(input: string, json: boolean): { code: number; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t) };
  const code = timed('share', 2000, () => runShare(input, json, io));
  return { code, out, err };
}

function checkShare(input: string): void {
  const r = share(input, true);
  assert.ok(r.code === 0 || r.code === 2, `exit ${r.code}`);
  if (r.code === 2) {
    assert.equal(r.out.length, 0);
    assert.ok(r.err.length === 1 && /^reselqos share: /.test(r.err[0]!), 'exit 2 says why');
    return;
  }
  const d = JSON.parse(input) as { global: { down: number; up: number }; sites: { site: string; cap: { down: number; up: number } }[] };
  const got = (JSON.parse(r.out[0]!) as { sites: { site: string; down: number; up: number }[] }).sites;
  assert.deepEqual(
    got.map((s) => s.site),
    d.sites.map((s) => s.site),
  );
  for (const dir of ['down', 'up'] as const) {
    let sum = 0;
    got.forEach((s, i) => {
      const v = s[dir];
      assert.ok(Number.isSafeInteger(v) && v >= 0, `${s.site} ${dir} = ${v}: integer bit/s`);
      assert.ok(v <= d.sites[i]!.cap[dir], `${s.site} ${dir} ${v} <= cap ${d.sites[i]!.cap[dir]}`);
      sum += v;
    });
    assert.ok(sum <= d.global[dir], `${dir}: sum ${sum} <= global ${d.global[dir]}`);
  }
  // the text form of the same input does not throw either
  assert.equal(share(input, false).code, 0);
}

test('fuzz: share --json rows: an allocation within caps and global, or exit 2 with the errors; never a throw', () => {
  fuzz(
    'share --json',
    1000,
    fc.property(text, (input) => checkShare(input)),
  );
});
