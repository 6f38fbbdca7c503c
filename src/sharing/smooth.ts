// What a site applies, given the instantaneous target of allocate(): smoothing and the
// "never overcommitted" clamp. Pure; used by the daemon only (`reselqos share --json`
// prints the unsmoothed target).
//
// Per direction, from the allocation c in force (null before the first decision):
//   |t − c| ≤ deadband          → c (no tc change for noise; deadband = 2 % of the global rate)
//   t < c                        → t at once (room for the others is released in this cycle)
//   t > c                        → c + 0.6 (t − c), straight to t once within 3 deadbands
// then never above room = G − Σ allocated of the other fresh sites (a stale site counted at its
// static share): a site only takes what the others' rows say they have released. The rows
// are read and written under a lock (src/sharing/store.ts), and a row's allocation is
// written before an increase is applied and after a decrease is, so the sum of what the
// kernels apply stays at or below G while sites change.
// Database unreachable: min(c, static share) at once, the static share itself once `stale`
// intervals have passed since the last exchange (by then every peer has seen this site's
// row go stale and moved to the static split too).

import { allocate, staticSplit, DIRS, type Dir, type Pair, type SiteInput } from './allocate.js';

export const ALPHA = 0.6;
export const DEADBAND = 0.02;

export interface SmoothOptions {
  readonly global: number;
  readonly alpha?: number;
  /** share of the global rate */
  readonly deadband?: number;
}

/** One direction: the next allocation from the current one, the target and the room. */
export function smoothStep(current: number | null, target: number, room: number, o: SmoothOptions): number {
  const band = (o.deadband ?? DEADBAND) * o.global;
  const alpha = o.alpha ?? ALPHA;
  let next: number;
  if (current === null) next = target;
  else if (Math.abs(target - current) <= band) next = current;
  else if (target < current) next = target;
  else {
    const step = Math.ceil(alpha * (target - current));
    next = target - (current + step) <= 3 * band ? target : current + step;
  }
  return Math.max(0, Math.min(next, Math.floor(room)));
}

/** A site's row: `allocated` is what it applied while its demand was measured (saturation);
 *  `applied` what its kernel may be running now (room); absent = `allocated`. */
export interface Row extends SiteInput {
  readonly applied?: Pair | null;
}

export interface Decision {
  /** the instantaneous target (allocate()) */
  readonly target: Pair;
  /** what to apply */
  readonly next: Pair;
  /** true when some site is stale: everybody on the static split */
  readonly staticSplit: boolean;
}

/**
 * The decision of site `self` from every site's row (its own included, with its fresh demand
 * and the allocation it applies now as `allocated`). Rows are sorted by site name so that every
 * site feeds allocate() the same list.
 */
export function decide(
  self: string,
  global: Pair,
  rows: readonly Row[],
  current: Pair | null,
  o: { alpha?: number; deadband?: number } = {},
): Decision {
  const sorted = [...rows].sort((a, b) => (a.site < b.site ? -1 : a.site > b.site ? 1 : 0));
  const me = sorted.findIndex((r) => r.site === self);
  if (me < 0) throw new Error(`decide: no row for site "${self}"`);
  const shares = allocate({ global, sites: sorted.map(({ applied: _a, ...site }) => site) });
  const allFresh = sorted.every((r) => r.fresh);
  const target = { down: shares[me]!.down, up: shares[me]!.up };
  const next = {} as Record<Dir, number>;
  for (const d of DIRS) {
    const st = staticSplit(
      global[d],
      sorted.map((r) => ({ weight: r.weight, cap: r.cap[d] })),
    );
    let others = 0;
    sorted.forEach((r, i) => {
      if (i === me) return;
      const now = r.applied ?? r.allocated;
      others += r.fresh && now ? now[d] : st[i]!;
    });
    next[d] = smoothStep(current ? current[d] : null, target[d], global[d] - others, { global: global[d], ...o });
  }
  return { target, next, staticSplit: !allFresh };
}

/**
 * The database cannot be read: the static share among the sites last seen, at once if that is a
 * decrease, and only once `sinceOkMs` reaches `staleMs` if it is an increase.
 */
export function fallback(current: Pair | null, staticShare: Pair, sinceOkMs: number, staleMs: number): Pair {
  if (current === null || sinceOkMs >= staleMs) return staticShare;
  return { down: Math.min(current.down, staticShare.down), up: Math.min(current.up, staticShare.up) };
}
