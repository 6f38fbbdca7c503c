// Sharing one global link between sites: the allocation, a pure function of the sites'
// rows (weight, cap, measured demand, what each was allocated last cycle, fresh or not).
// Every site runs it on the same rows and so computes the same split without talking to
// the others. Owns the rule (saturation, headroom, weighted water-filling with caps, the
// static fallback, integer rounding) and the validation of `reselqos share --json` input.
// Never does I/O, reads the clock or smooths: smoothing is src/sharing/smooth.ts, used by
// the daemon only.
//
// Per direction, independently, with G the global rate and share_i = G × w_i / Σw:
//   static_i    = min(cap_i, floor(share_i))                (the fallback, and `allocated` when absent)
//   saturated_i = demand_i ≥ 90 % × allocated_i
//   level_i     = cap_i                                     when saturated (its true demand is unknown)
//               = min(cap_i, max(floor(demand_i × 1.2), floor(static_i × 10 %)))   otherwise
//   want_i      = cap_i                                     when saturated
//               = min(cap_i, max(floor(demand_i × 1.25), floor(static_i × 10 %)))  otherwise
//   (20 % over what a site uses keeps a steady site from reading saturated next cycle (KEEP);
//    25 % headroom; an idle site keeps 10 % of its static share so that new traffic is seen:
//    it then measures ≥ 90 % of that and is saturated next cycle.)
//   Three stages, each a weighted water-filling x_i = clamp(λ w_i, lo_i, hi_i) with Σ x = G:
//   1. Σ level ≥ G: lo = 0, hi = level (weighted max-min fairness: every site gets at least
//      min(level_i, share_i), saturated sites share what is left in proportion to weight up to
//      their caps).
//   2. else Σ want ≥ G: lo = level, hi = want: every site fits, so each saturated site has its
//      cap before any other gets headroom above its level.
//   3. else lo = want, hi = cap, Σ x = min(G, Σ cap) (the spare spread by weight, so idle
//      sites sit near their static share and a site whose traffic grows has room at once).
//   Any site not fresh: every site on its static share.
// Integers: each x_i is floored, then the leftover bits (round(Σ x) − Σ floors, one per site
// and pass) go to the sites with the largest fractional parts, ties to the earlier site,
// never above a cap: the sum never exceeds G.

import { SITE_NAME } from '../config/values.js';
import { BPS_MAX, ROW_LIMIT, WEIGHT_MAX, WEIGHT_MIN } from './peers.js';

export type Dir = 'down' | 'up';
export const DIRS: readonly Dir[] = ['down', 'up'];

export interface Pair {
  readonly down: number;
  readonly up: number;
}

export interface SiteInput {
  readonly site: string;
  readonly weight: number;
  readonly cap: Pair;
  readonly demand: Pair;
  /** what the site was allocated last cycle; absent = its static share */
  readonly allocated?: Pair | null;
  readonly fresh: boolean;
}

export interface ShareInput {
  readonly global: Pair;
  readonly sites: readonly SiteInput[];
}

export interface SiteShare {
  readonly site: string;
  readonly down: number;
  readonly up: number;
}

/** A site is saturated when its demand is at least this share of what it was allocated. */
export const SATURATION = 0.9;
/** A site that is not saturated may use this much more than its demand. */
export const HEADROOM = 0.25;
/** An idle site keeps this share of its static share. */
export const IDLE_FLOOR = 0.1;
/**
 * A site that is not saturated is served this much of its demand before saturated sites get
 * more than their max-min share: the least margin that keeps a site whose traffic does not
 * change from reading saturated next cycle (TCP through HTB measures ~96 % of the allocation,
 * ±5 % noise, threshold 90 %: 0.96 × 1.05 / 0.9 ≈ 1.12, and the simulation in
 * test/unit/share.test.ts still flaps at 1.15; 1.0 changed the allocation 179 cycles of 180).
 */
export const KEEP = 1.2;

interface One {
  readonly weight: number;
  readonly cap: number;
  readonly demand: number;
  readonly allocated: number | null;
}

/** min(cap, floor(G × w / Σw)) per site. */
export function staticSplit(global: number, sites: readonly Pick<One, 'weight' | 'cap'>[]): number[] {
  const W = sites.reduce((a, s) => a + s.weight, 0);
  const out = sites.map((s) => (W > 0 ? Math.min(s.cap, Math.floor((global * s.weight) / W)) : 0));
  return fitSum(out, global);
}

/**
 * x_i = clamp(λ × w_i, lo_i, hi_i) with λ chosen so that Σ x = min(target, Σ hi) (Σ lo ≤ target).
 * Exact sweep over the breakpoints lo_i/w_i and hi_i/w_i of the piecewise linear sum.
 */
export function waterfill(target: number, w: readonly number[], lo_: readonly number[], hi_: readonly number[]): number[] {
  const n = w.length;
  const sumHi = hi_.reduce((a, b) => a + b, 0);
  if (sumHi <= target) return [...hi_];
  const at = (lambda: number): number[] => w.map((wi, i) => Math.min(hi_[i]!, Math.max(lo_[i]!, lambda * wi)));
  const total = (lambda: number): number => at(lambda).reduce((a, b) => a + b, 0);
  const points = [...new Set([0, ...w.flatMap((wi, i) => [lo_[i]! / wi, hi_[i]! / wi])])].sort((a, b) => a - b);
  if (total(0) >= target) return at(0);
  // total() is non-decreasing: binary search for consecutive breakpoints p < q with
  // total(p) < target ≤ total(q) (O(n log n)); total is linear between them.
  let lo = 0;
  let hi = points.length - 1;
  if (total(points[hi]!) < target) return [...hi_];
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (total(points[mid]!) >= target) hi = mid;
    else lo = mid;
  }
  const p = points[lo]!;
  const q = points[hi]!;
  // slope between p and q: the weights of the sites strictly inside their [lo, hi] there
  const m = (p + q) / 2;
  let slope = 0;
  for (let i = 0; i < n; i++) {
    const v = m * w[i]!;
    if (v > lo_[i]! && v < hi_[i]!) slope += w[i]!;
  }
  const lambda = slope > 0 ? p + (target - total(p)) / slope : q;
  return at(Math.min(q, Math.max(p, lambda)));
}

/** Floors real values (within 1e-12 relative, so 29999999.9999999 is 30000000), never above cap, then hands the leftover units out. */
export function integerize(x: readonly number[], cap: readonly number[], target: number): number[] {
  const n = x.length;
  const out = x.map((v, i) => Math.min(cap[i]!, Math.max(0, Math.floor(v + 1e-12 * Math.max(1e6, Math.abs(v))))));
  const frac = x.map((v, i) => v - out[i]!);
  let left = Math.min(target, Math.round(x.reduce((a, b) => a + b, 0))) - out.reduce((a, b) => a + b, 0);
  const order = [...Array(n).keys()].sort((a, b) => frac[b]! - frac[a]! || a - b);
  while (left > 0) {
    let gave = false;
    for (const i of order) {
      if (left <= 0) break;
      if (out[i]! >= cap[i]!) continue;
      out[i]!++;
      frac[i]! -= 1;
      left--;
      gave = true;
    }
    if (!gave) break;
  }
  return fitSum(out, target);
}

/** Guard: takes units back from the largest values (last site first on ties) while the sum exceeds the target. */
function fitSum(values: number[], target: number): number[] {
  let over = values.reduce((a, b) => a + b, 0) - Math.max(0, target);
  while (over > 0) {
    let k = -1;
    for (let i = 0; i < values.length; i++) if (values[i]! > 0 && (k < 0 || values[i]! >= values[k]!)) k = i;
    if (k < 0) break;
    const take = Math.min(over, values[k]!);
    values[k]! -= take;
    over -= take;
  }
  return values;
}

export function isSaturated(demand: number, allocated: number): boolean {
  return demand >= SATURATION * allocated;
}

/** The allocation of one direction. `allFresh` false = the static split. */
export function allocateOne(global: number, sites: readonly One[], allFresh: boolean): number[] {
  const st = staticSplit(global, sites);
  if (!allFresh || sites.length === 0) return st;
  const w = sites.map((s) => s.weight);
  const cap = sites.map((s) => s.cap);
  const floorOf = (i: number): number => Math.floor(st[i]! * IDLE_FLOOR);
  const sat = sites.map((s, i) => isSaturated(s.demand, s.allocated ?? st[i]!));
  // what a site uses: a saturated site its cap (its true demand is unknown), another its demand
  const level = sites.map((s, i) => (sat[i] ? s.cap : Math.min(s.cap, Math.max(Math.floor(s.demand * KEEP), floorOf(i)))));
  const want = sites.map((s, i) => (sat[i] ? s.cap : Math.min(s.cap, Math.max(Math.floor(s.demand * (1 + HEADROOM)), floorOf(i)))));
  const sum = (v: number[]): number => v.reduce((a, b) => a + b, 0);
  const zero = sites.map(() => 0);
  const real =
    sum(level) >= global
      ? waterfill(global, w, zero, level)
      : sum(want) >= global
        ? waterfill(global, w, level, want)
        : waterfill(global, w, want, cap);
  return integerize(real, cap, global);
}

/** The allocation of every site, both directions, in input order. */
export function allocate(input: ShareInput): SiteShare[] {
  const allFresh = input.sites.every((s) => s.fresh);
  const per = {} as Record<Dir, number[]>;
  for (const d of DIRS) {
    per[d] = allocateOne(
      input.global[d],
      input.sites.map((s) => ({
        weight: s.weight,
        cap: s.cap[d],
        demand: s.demand[d],
        allocated: s.allocated ? s.allocated[d] : null,
      })),
      allFresh,
    );
  }
  return input.sites.map((s, i) => ({ site: s.site, down: per.down[i]!, up: per.up[i]! }));
}

// ------------------------------------------------------------ input validation (share --json)

export type ParseResult = { ok: true; input: ShareInput } | { ok: false; errors: string[] };

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Checks the JSON of `reselqos share --json`; collects every error, each naming its path. */
export function parseShareInput(doc: unknown): ParseResult {
  const errors: string[] = [];
  const bps = (v: unknown, path: string): number => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > BPS_MAX) {
      errors.push(`${path}: expected a non-negative integer (bit/s) up to ${BPS_MAX}, got ${JSON.stringify(v) ?? 'nothing'}`);
      return 0;
    }
    return v;
  };
  const pair = (v: unknown, path: string): Pair => {
    if (!isObj(v)) {
      errors.push(`${path}: expected an object {"down": bit/s, "up": bit/s}, got ${JSON.stringify(v) ?? 'nothing'}`);
      return { down: 0, up: 0 };
    }
    return { down: bps(v['down'], `${path}.down`), up: bps(v['up'], `${path}.up`) };
  };
  if (!isObj(doc)) return { ok: false, errors: ['(top level): expected an object {"global": …, "sites": […]}'] };
  const global = pair(doc['global'], 'global');
  const sites: SiteInput[] = [];
  const rawSites = doc['sites'];
  if (!Array.isArray(rawSites)) {
    errors.push(`sites: expected an array, got ${JSON.stringify(rawSites) ?? 'nothing'}`);
  } else if (rawSites.length > ROW_LIMIT + 1) {
    errors.push(`sites: at most ${ROW_LIMIT + 1} sites (this one and ${ROW_LIMIT} others), got ${rawSites.length}`);
  } else {
    const seen = new Map<string, number>();
    rawSites.forEach((s: unknown, i) => {
      const p = `sites[${i}]`;
      if (!isObj(s)) {
        errors.push(`${p}: expected an object, got ${JSON.stringify(s)}`);
        return;
      }
      const name = s['site'];
      if (typeof name !== 'string' || !SITE_NAME.test(name)) {
        errors.push(`${p}.site: expected a site name (letters, digits, _ . -, at most 64), got ${JSON.stringify(name) ?? 'nothing'}`);
      } else if (seen.has(name)) {
        errors.push(`${p}.site: duplicate site name "${name}" (also sites[${seen.get(name)}])`);
      } else {
        seen.set(name, i);
      }
      const weight = s['weight'];
      if (typeof weight !== 'number' || !Number.isFinite(weight) || weight < WEIGHT_MIN || weight > WEIGHT_MAX) {
        errors.push(
          `${p}.weight: expected a positive number from ${WEIGHT_MIN} to ${WEIGHT_MAX}, got ${JSON.stringify(weight) ?? 'nothing'}`,
        );
      }
      const cap = pair(s['cap'], `${p}.cap`);
      const demand = pair(s['demand'], `${p}.demand`);
      const allocated = s['allocated'] === undefined || s['allocated'] === null ? null : pair(s['allocated'], `${p}.allocated`);
      const fresh = s['fresh'];
      if (typeof fresh !== 'boolean') errors.push(`${p}.fresh: expected true or false, got ${JSON.stringify(fresh) ?? 'nothing'}`);
      sites.push({
        site: typeof name === 'string' ? name : '',
        weight: typeof weight === 'number' ? weight : 1,
        cap,
        demand,
        allocated,
        fresh: fresh === true,
      });
    });
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, input: { global, sites } };
}
