// The other sites' rows as read from the `sites` table, judged before anything is computed
// from them: every field in bounds (the same bounds as `reselqos share --json` input), the
// site name a [site] name, freshness by the server's clock with a bounded window, and the
// faults logged once each. Pure but for the logger handed in; never reads the database.
//
// A row out of bounds is ignored (it cannot take the global link away from the others: an
// `applied_down` of 2^64 − 1 left no room, a weight of 1e300 took everything); a row written
// in the future (beyond SKEW_MS) is not fresh; a peer's interval counts at most
// INTERVAL_MAX_MS, so no row stays fresh longer than `stale` × one hour.

import { SITE_NAME, WEIGHT_MAX, WEIGHT_MIN } from '../config/values.js';

export { WEIGHT_MAX, WEIGHT_MIN };
import type { Pair } from './allocate.js';
import type { Row } from './smooth.js';
import type { ExchangeView, OwnRow } from './store.js';

/** At most this many rows are read (and locked) per exchange. */
export const ROW_LIMIT = 256;
/** bit/s above this (10 Tbit/s) are not a rate; 256 × this is still an exact double. */
export const BPS_MAX = 10_000_000_000_000;
export const INTERVAL_MIN_MS = 1000;
export const INTERVAL_MAX_MS = 3_600_000;
export const USERS_MAX = 10_000_000;
/** gateways writing one row under one name (a collision), as that row says */
export const WRITERS_MAX = 64;
/** a row this far in the future by the server's clock is still fresh (clock steps, replication) */
export const SKEW_MS = 2000;

/** A row of `sites` as read back (ours or a peer's): what was written, and its age. */
export interface SiteRow extends OwnRow {
  /** age of the row by the server's clock, ms (negative: written in the future) */
  readonly ageMs: number;
}

export interface Fault {
  readonly site: string;
  readonly field: string;
  readonly value: string;
  readonly why: string;
}

export type Checked = { ok: true; row: SiteRow } | { ok: false; fault: Fault };

const show = (v: unknown): string => {
  try {
    const s = typeof v === 'string' ? JSON.stringify(v) : typeof v === 'bigint' ? `${v}` : (JSON.stringify(v) ?? String(v));
    return s.length > 40 ? `${s.slice(0, 40)}…` : s;
  } catch {
    return '?';
  }
};

/** A number from the driver: a number, or a decimal string (BIGINT beyond 2^53, DECIMAL). */
const num = (v: unknown): number =>
  typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+(\.\d+)?(e[+-]?\d+)?$/i.test(v) ? Number(v) : NaN;

class Bad extends Error {
  constructor(readonly fault: Fault) {
    super(fault.why);
  }
}

/** Checks one raw row (column name → value as the driver returned it). Never throws. */
export function checkRow(raw: unknown): Checked {
  const r = (raw !== null && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const name = r['site'];
  // a name that is not a site name is shown quoted and escaped (it goes into a log line)
  const site = typeof name === 'string' && SITE_NAME.test(name) ? name : show(name);
  const bad = (field: string, why: string): never => {
    throw new Bad({ site, field, value: show(r[field]), why });
  };
  const int = (field: string, min: number, max: number): number => {
    const v = num(r[field]);
    if (!Number.isSafeInteger(v) || v < min || v > max) bad(field, `expected an integer from ${min} to ${max}`);
    return v;
  };
  const pair = (c: string, max: number): Pair => ({ down: int(`${c}_down`, 0, max), up: int(`${c}_up`, 0, max) });
  try {
    if (typeof name !== 'string' || !SITE_NAME.test(name)) bad('site', 'expected a site name (letters, digits, _ . -, at most 64)');
    const weight = num(r['weight']);
    if (!Number.isFinite(weight) || weight < WEIGHT_MIN || weight > WEIGHT_MAX)
      bad('weight', `expected a number from ${WEIGHT_MIN} to ${WEIGHT_MAX}`);
    const ageMs = num(r['age_ms']);
    if (!Number.isSafeInteger(ageMs)) bad('age_ms', 'expected the age of `updated` in ms');
    const writers = r['writers'] === undefined ? 1 : int('writers', 1, WRITERS_MAX);
    return {
      ok: true,
      row: {
        site: name as string,
        ageMs,
        intervalMs: int('interval_ms', INTERVAL_MIN_MS, INTERVAL_MAX_MS),
        weight,
        global: pair('global', BPS_MAX),
        cap: pair('cap', BPS_MAX),
        demand: pair('demand', BPS_MAX),
        users: pair('users', USERS_MAX),
        allocated: pair('allocated', BPS_MAX),
        applied: pair('applied', BPS_MAX),
        writers,
      },
    };
  } catch (e) {
    if (e instanceof Bad) return { ok: false, fault: e.fault };
    return { ok: false, fault: { site, field: '(row)', value: '?', why: String(e) } };
  }
}

/** Fresh: written at most `stale` intervals ago (the larger of ours and its own, bounded) and not in the future. */
export function isFresh(row: Pick<SiteRow, 'ageMs' | 'intervalMs'>, ourIntervalMs: number, stale: number): boolean {
  const interval = Math.max(ourIntervalMs, Math.min(row.intervalMs, INTERVAL_MAX_MS));
  return row.ageMs >= -SKEW_MS && row.ageMs <= stale * interval;
}

export const faultText = (f: Fault): string => `site "${f.site}": ${f.field} = ${f.value}: ${f.why}`;

/** Logs each fault once while it lasts; one that goes away and comes back is logged again. */
export class FaultLog {
  private seen = new Set<string>();

  /** The faults of this cycle: returns the ones not seen the cycle before. */
  fresh(faults: readonly string[]): string[] {
    const now = new Set(faults);
    const out = [...now].filter((f) => !this.seen.has(f));
    this.seen = now;
    return out;
  }
}

/**
 * Other gateways writing our row (the same [site] name, or one that differs only in case on
 * a case-insensitive key): each writer id with when it was last seen, forgotten once it has
 * not written for `stale` of its intervals.
 */
export class Writers {
  private readonly seen = new Map<string, { atMs: number; windowMs: number }>();

  note(id: string, nowMs: number, windowMs: number): void {
    this.seen.set(id, { atMs: nowMs, windowMs });
  }

  /** The other writers still active at `nowMs`. */
  active(nowMs: number): string[] {
    for (const [id, s] of this.seen) if (nowMs - s.atMs > s.windowMs) this.seen.delete(id);
    return [...this.seen.keys()].sort();
  }
}

export interface JudgeInput {
  readonly self: string;
  readonly nowMs: number;
  readonly intervalMs: number;
  readonly stale: number;
  /** our own global rates: a peer's differing global_* is noted, never used */
  readonly global: Pair;
  readonly view: ExchangeView;
  readonly writers: Writers;
  /** our row for the decision */
  readonly me: Omit<Row, 'site' | 'fresh'>;
}

export interface Judged {
  /** the other sites' valid rows */
  readonly peers: SiteRow[];
  /** every row for decide(): ours, the valid peers, and a copy (never fresh) per extra writer of a shared name */
  readonly rows: Row[];
  /** why this site is on the static split because of its name, or null */
  readonly collision: string | null;
  /** gateways known to write our row, ourselves included */
  readonly writers: number;
  readonly errors: string[];
  readonly warnings: string[];
}

const pairText = (p: Pair): string => `${p.down}/${p.up}`;
/** Copies of a row standing for the other gateways writing it: never fresh (so every site is on the static split), each its weight. */
const copies = (r: Omit<Row, 'fresh'>, n: number): Row[] =>
  [...Array(Math.max(0, n)).keys()].map((k) => ({ ...r, site: `${r.site}\u0000${k + 2}`, applied: null, fresh: false }));

/**
 * The rows of one exchange judged: bad ones ignored (each a warning), a second writer of our
 * row or a fresh row whose name differs from ours only in case (an error: every site on the
 * static split, our weight counted once per writer so the writers together stay within it).
 */
export function judge(i: JudgeInput): Judged {
  const { self, view } = i;
  const warnings: string[] = [];
  const errors: string[] = [];
  const peers: SiteRow[] = [];
  for (const raw of view.rows) {
    const c = checkRow(raw);
    if (c.ok) peers.push(c.row);
    else warnings.push(`sharing: ignoring the row of ${faultText(c.fault)}`);
  }
  if (view.overflow)
    errors.push(`sharing: table sites has more than ${ROW_LIMIT} other rows; only the first ${ROW_LIMIT} by name are read`);
  const fresh = (r: SiteRow): boolean => isFresh(r, i.intervalMs, i.stale);
  for (const p of peers)
    if (fresh(p) && (p.global.down !== i.global.down || p.global.up !== i.global.up))
      warnings.push(
        `sharing: site "${p.site}" has global ${pairText(p.global)} bit/s, this site ${pairText(i.global)}: each site uses its own ([rates] globalDown/globalUp)`,
      );
  const window = (intervalMs: number | undefined): number =>
    i.stale * Math.max(i.intervalMs, Math.min(Number.isFinite(intervalMs) ? intervalMs! : 0, INTERVAL_MAX_MS));
  if (view.foreign !== null) i.writers.note(view.foreign || '(a version without writer ids)', i.nowMs, window(view.own?.intervalMs));
  else if (view.own && view.own.site !== self)
    i.writers.note(view.own.writer || `"${view.own.site}"`, i.nowMs, window(view.own.intervalMs));
  const others = i.writers.active(i.nowMs);
  const cased = peers.filter((p) => p.site.toLowerCase() === self.toLowerCase() && fresh(p)).map((p) => `"${p.site}"`);
  const writers = 1 + others.length;
  const why: string[] = [];
  if (others.length > 0)
    why.push(`another gateway writes the row of site "${self}" (writer ${others.join(', ')}): this site counts ${writers} times`);
  if (cased.length > 0) why.push(`site "${self}" differs only in case from ${cased.join(', ')}`);
  const collision = why.length > 0 ? `${why.join('; ')}: every site on the static split; give each gateway its own [site] name` : null;
  if (collision) errors.push(`sharing: site name collision: ${collision}`);
  const mine: Omit<Row, 'fresh'> = { site: self, ...i.me };
  const rows: Row[] = [{ ...mine, fresh: collision === null }, ...copies(mine, writers - 1)];
  for (const p of peers) {
    const r = { site: p.site, weight: p.weight, cap: p.cap, demand: p.demand, allocated: p.allocated, applied: p.applied };
    rows.push({ ...r, fresh: fresh(p) }, ...copies(r, p.writers - 1));
  }
  return { peers, rows, collision, writers, errors, warnings };
}
