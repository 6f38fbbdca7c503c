// Property tests (fast-check, seeded, shrinking) of the allocation between sites
// (src/sharing/allocate.ts): never above the global rate or a cap, saturated sites served up
// to their caps before anybody gets headroom when everything fits, and the same split
// whatever the order of the rows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decide } from '../../src/sharing/smooth.js';
import { allocate, staticSplit, isSaturated, IDLE_FLOOR, KEEP, DIRS, type ShareInput, type SiteInput } from '../../src/sharing/allocate.js';

const SEED = 20;
const bps = (max: number): fc.Arbitrary<number> => fc.oneof(fc.constant(0), fc.integer({ min: 0, max }), fc.integer({ min: 0, max: 1000 }));
const pair = (max: number) => fc.record({ down: bps(max), up: bps(max) });

const siteArb = (g: number): fc.Arbitrary<Omit<SiteInput, 'site'>> =>
  fc.record({
    weight: fc.oneof(fc.constantFrom(1, 2, 0.5, 3, 10), fc.double({ min: 0.001, max: 1000, noNaN: true })),
    cap: pair(Math.floor(g * 1.3)),
    demand: pair(Math.floor(g * 1.3)),
    allocated: fc.option(pair(Math.floor(g * 1.3)), { nil: null }),
    fresh: fc.integer({ min: 0, max: 9 }).map((v) => v > 0),
  });

const inputArb: fc.Arbitrary<ShareInput> = fc
  .integer({ min: 0, max: 10_000_000_000 })
  .chain((g) =>
    fc.record({
      global: fc.record({ down: fc.constant(g), up: fc.integer({ min: 0, max: 2_000_000_000 }) }),
      sites: fc.array(siteArb(g), { minLength: 1, maxLength: 12 }),
    }),
  )
  .map(({ global, sites }) => ({ global, sites: sites.map((s, i) => ({ site: `s${String(i).padStart(2, '0')}`, ...s })) }));

/** What a site uses now: a saturated site its cap (its true demand is unknown), another its demand with the margin KEEP (or the idle floor). */
function levels(input: ShareInput, d: 'down' | 'up'): { sat: boolean[]; level: number[] } {
  const st = staticSplit(
    input.global[d],
    input.sites.map((s) => ({ weight: s.weight, cap: s.cap[d] })),
  );
  const sat = input.sites.map((s, i) => isSaturated(s.demand[d], s.allocated ? s.allocated[d] : st[i]!));
  const level = input.sites.map((s, i) =>
    sat[i] ? s.cap[d] : Math.min(s.cap[d], Math.max(Math.floor(s.demand[d] * KEEP), Math.floor(st[i]! * IDLE_FLOOR))),
  );
  return { sat, level };
}

test('allocate (fast-check): never above the global rate nor a cap; integers', () => {
  fc.assert(
    fc.property(inputArb, (input) => {
      const out = allocate(input);
      for (const d of DIRS) {
        const x = out.map((s) => s[d]);
        assert.ok(
          x.every((v) => Number.isSafeInteger(v) && v >= 0),
          `integers ${d}`,
        );
        assert.ok(x.reduce((a, b) => a + b, 0) <= input.global[d], `sum <= global ${d}`);
        input.sites.forEach((s, i) => assert.ok(x[i]! <= s.cap[d], `site ${s.site} ${d} ${x[i]} <= cap ${s.cap[d]}`));
      }
    }),
    { seed: SEED, numRuns: 2000 },
  );
});

test('allocate (fast-check): when every site fits, each saturated site gets its cap before any other gets headroom', () => {
  let fits = 0;
  fc.assert(
    fc.property(
      inputArb.map((i) => ({ ...i, sites: i.sites.map((s) => ({ ...s, fresh: true })) })),
      (input) => {
        const out = allocate(input);
        for (const d of DIRS) {
          const { sat, level } = levels(input, d);
          if (level.reduce((a, b) => a + b, 0) > input.global[d]) continue;
          fits++;
          input.sites.forEach((s, i) => {
            if (sat[i]) assert.equal(out[i]![d], s.cap[d], `saturated ${s.site} ${d} gets its cap ${s.cap[d]}: ${JSON.stringify(out)}`);
            else assert.ok(out[i]![d] >= level[i]!, `${s.site} ${d} keeps its demand ${level[i]}: ${JSON.stringify(out)}`);
          });
        }
      },
    ),
    { seed: SEED, numRuns: 3000 },
  );
  assert.ok(fits > 300, `coverage: ${fits} directions where every site fits`);
});

test('decide (fast-check): every site computes the same split whatever the order of the rows it reads', () => {
  fc.assert(
    fc.property(
      inputArb.chain((input) => fc.shuffledSubarray([...input.sites], { minLength: input.sites.length }).map((sh) => ({ input, sh }))),
      ({ input, sh }) => {
        const ref = new Map(allocate(input).map((s) => [s.site, s]));
        for (const me of sh) {
          const t = decide(me.site, input.global, sh, null).target;
          assert.deepEqual({ site: me.site, ...t }, ref.get(me.site));
        }
      },
    ),
    { seed: SEED, numRuns: 500 },
  );
});

test('allocate: 256 sites (the row limit) cost milliseconds, not seconds', (t) => {
  const sites: SiteInput[] = [...Array(256).keys()].map((i) => ({
    site: `s${String(i).padStart(3, '0')}`,
    weight: 1 + (i % 7),
    cap: { down: 1_000_000 + i * 7919, up: 1_000_000 },
    demand: { down: (i * 104729) % 1_200_000, up: i % 2 ? 999_000 : 10 },
    allocated: { down: 900_000, up: 900_000 },
    fresh: true,
  }));
  const t0 = performance.now();
  for (let k = 0; k < 10; k++) allocate({ global: { down: 100_000_000, up: 50_000_000 }, sites });
  const ms = (performance.now() - t0) / 10;
  t.diagnostic(`allocate() of 256 sites, both directions: ${ms.toFixed(2)} ms`);
  assert.ok(ms < 200, `${ms} ms`);
});
