// The entitlement guard: what a directory would let through the firewall (machines allowed
// per family, entitled owners, machines with an IP), compared with a baseline that does not
// ratchet down — the largest accepted over the last 24 hours, per measure, kept in hourly
// buckets that the snapshot store persists. Pure: the instant is an argument, no I/O.
// Never judges entry counts (that is checkDirectory's rule in snapshot.ts).
//
// Time passing is not a drop: each measure of the new directory is computed as of the
// instant its baseline was seen (endInternet compared with that instant, not with now), so
// a mass expiry on one date applies, while attributes gone (an ACL hiding ipHostNumber, a
// mistyped ipAttr / endInternetAttr, every machine Inactive) are refused.

import type { FirewallConfig } from '../config/config.js';
import { refusalOf } from '../policy/entitlement.js';
import type { Directory } from '../sources/types.js';

export type GuardFirewall = Pick<
  FirewallConfig,
  'enabled' | 'checkPayment' | 'checkCoupure' | 'checkBan' | 'banServices' | 'checkBlacklist'
>;

/** What a directory lets through at one instant. */
export interface Allowance {
  /** active machines with an IPv4 address whose owner is entitled (every owner when the firewall is off) */
  readonly allowed4: number;
  readonly allowed6: number;
  /** owners (distinct uids) entitled */
  readonly entitled: number;
  /** machines, active or not, with at least one IP */
  readonly withIp: number;
}

export type Measure = keyof Allowance;
export const MEASURES: readonly Measure[] = ['allowed4', 'allowed6', 'entitled', 'withIp'];
const LABEL: Record<Measure, string> = {
  allowed4: 'machines allowed (IPv4)',
  allowed6: 'machines allowed (IPv6)',
  entitled: 'entitled owners',
  withIp: 'machines with an IP',
};

/**
 * What allowanceOf needs from a directory, computed once per directory (and firewall config):
 * per uid (lowercased, several owners merged), whether a rule that does not depend on time
 * refuses it and the earliest end of its paid periods; per machine, its uid and flags. Then
 * each instant costs one pass over typed arrays.
 */
interface Prepared {
  readonly fw: GuardFirewall;
  /** per uid: 1 = no time-independent refusal (cut, banned, blacklisted) for any of its owners */
  readonly staticOk: Uint8Array;
  /** per uid: the earliest endInternet of its owners (-Infinity: one has none) */
  readonly minEnd: Float64Array;
  /** per machine with an IP: its uid's index (-1: owner unknown) */
  readonly owner: Int32Array;
  /** per machine with an IP: 1 active, 2 has IPv4, 4 has IPv6 */
  readonly flags: Uint8Array;
}

const prepared = new WeakMap<Directory, Prepared>();

function prepare(d: Directory, fw: GuardFirewall): Prepared {
  const known = prepared.get(d);
  if (known && known.fw === fw) return known;
  // Owners come sorted by uid: the owners of one exact uid are neighbours. Uids that differ
  // only by case (rare) are merged through `folded`.
  const keyOf = new Map<string, number>();
  const folded = new Map<string, number>();
  const ok: number[] = [];
  const ends: number[] = [];
  // Payment is the only time-dependent rule: judged per instant from minEnd.
  const noPayment = { ...fw, checkPayment: false };
  let prevUid: string | null = null;
  let k = -1;
  for (const o of d.owners) {
    if (o.uid !== prevUid) {
      prevUid = o.uid;
      const lower = o.uid.toLowerCase();
      const same = folded.get(lower);
      if (same === undefined) {
        k = ok.length;
        ok.push(1);
        ends.push(Infinity);
        folded.set(lower, k);
      } else {
        k = same;
      }
      keyOf.set(o.uid, k);
    }
    if (o.coupure || o.ban.length > 0 || o.cotiz.length > 0) {
      if (refusalOf(o, noPayment, 0) !== null) ok[k] = 0;
    }
    const end = o.endInternet ?? -Infinity;
    if (end < ends[k]!) ends[k] = end;
  }
  const ms = d.machines;
  let n = 0;
  for (const m of ms) if (m.ips4.length + m.ips6.length > 0) n++;
  const owner = new Int32Array(n);
  const flags = new Uint8Array(n);
  let i = 0;
  for (const m of ms) {
    if (m.ips4.length + m.ips6.length === 0) continue;
    owner[i] = keyOf.get(m.owner) ?? -1;
    flags[i] = (m.active ? 1 : 0) | (m.ips4.length > 0 ? 2 : 0) | (m.ips6.length > 0 ? 4 : 0);
    i++;
  }
  const p: Prepared = { fw, staticOk: Uint8Array.from(ok), minEnd: Float64Array.from(ends), owner, flags };
  prepared.set(d, p);
  return p;
}

/** What `d` lets through at `atMs` (the rules of src/plan/firewall.ts, shared uids merged). */
export function allowanceOf(d: Directory, fw: GuardFirewall, atMs: number): Allowance {
  const p = prepare(d, fw);
  const uids = p.staticOk.length;
  const entitledUid = new Uint8Array(uids);
  let entitled = 0;
  for (let k = 0; k < uids; k++) {
    const yes = !fw.enabled || (p.staticOk[k] === 1 && (!fw.checkPayment || p.minEnd[k]! > atMs));
    if (yes) {
      entitledUid[k] = 1;
      entitled++;
    }
  }
  let allowed4 = 0;
  let allowed6 = 0;
  for (let i = 0; i < p.flags.length; i++) {
    const f = p.flags[i]!;
    const k = p.owner[i]!;
    if ((f & 1) === 0 || k < 0 || entitledUid[k] === 0) continue;
    if (f & 2) allowed4++;
    if (f & 4) allowed6++;
  }
  return { allowed4, allowed6, entitled, withIp: p.flags.length };
}

/** The largest value of one measure in an hour, and when it was seen (epoch ms). */
export interface Peak {
  readonly n: number;
  readonly at: number;
}

/** One hour of accepted directories: the peak of each measure. */
export interface Bucket {
  readonly hour: number;
  readonly peaks: Record<Measure, Peak>;
}

export const WINDOW_MS = 24 * 3600_000;
/**
 * A measure that lost at most this many is never refused: in a small directory one ban is
 * more than maxShrink. The absolute rules (no IP at all, an empty allow set) still hold.
 */
export const GUARD_FLOOR = 10;
const HOUR_MS = 3600_000;

/** Refused by the guard; `absolute` = not even `update --accept` takes it. */
export interface GuardRefusal {
  readonly reason: string;
  readonly absolute: boolean;
}

export class EntitlementGuard {
  private buckets: Bucket[] = [];
  /** bumped on every change, for the store to know when to persist */
  version = 0;

  constructor(buckets: readonly Bucket[] = []) {
    this.buckets = buckets.map((b) => ({ hour: b.hour, peaks: { ...b.peaks } }));
  }

  get state(): readonly Bucket[] {
    return this.buckets;
  }

  /** The baseline at `nowMs`: per measure, the peak of the last 24 h (null = none). */
  baseline(nowMs: number): Record<Measure, Peak | null> {
    const out: Record<Measure, Peak | null> = { allowed4: null, allowed6: null, entitled: null, withIp: null };
    for (const b of this.buckets) {
      if (b.hour * HOUR_MS + HOUR_MS <= nowMs - WINDOW_MS) continue;
      for (const k of MEASURES) {
        const p = b.peaks[k];
        if (p.at > nowMs) continue; // a clock set back: not a baseline from the future
        const best = out[k];
        if (!best || p.n > best.n) out[k] = p;
      }
    }
    return out;
  }

  /**
   * Why `next` must not be applied, or null. Absolute: no machine has an IP (whatever
   * `accept` says). With the firewall on, an empty allow set is refused unless `accept`; so is a
   * measure that, computed as of the instant its baseline was seen, lost more than maxShrink.
   */
  check(next: Directory, fw: GuardFirewall, nowMs: number, maxShrink: number, accept: boolean): GuardRefusal | null {
    const now = allowanceOf(next, fw, nowMs);
    if (next.machines.length > 0 && now.withIp === 0) {
      return {
        absolute: true,
        reason: `directory came back with ${next.machines.length} machine(s) and not one IP address (IP attribute hidden by an ACL, removed, or a wrong ipAttr?): refused, even with --force or --accept`,
      };
    }
    if (accept) return null;
    const base = this.baseline(nowMs);
    const at = new Map<number, Allowance>([[nowMs, now]]);
    const asOf = (t: number): Allowance => {
      let a = at.get(t);
      if (!a) at.set(t, (a = allowanceOf(next, fw, t)));
      return a;
    };
    if (fw.enabled && next.machines.length > 0 && now.allowed4 + now.allowed6 === 0) {
      // Empty now; only time passing (every paid period ended) if it allowed machines as of the baseline.
      const b = base.allowed4 ?? base.allowed6;
      const then = b ? asOf(b.at) : null;
      if (!then || then.allowed4 + then.allowed6 === 0) {
        return {
          absolute: false,
          reason: `directory would allow no machine through the firewall (${now.entitled} entitled owner(s) of ${next.owners.length}; every machine Inactive, no endInternet?): refused, even with --force; reselqos update --accept takes it`,
        };
      }
    }
    const drops: string[] = [];
    for (const k of MEASURES) {
      const b = base[k];
      if (!b || b.n === 0) continue;
      const then = asOf(b.at);
      const lost = (b.n - then[k]) / b.n;
      if (lost > maxShrink && b.n - then[k] > GUARD_FLOOR) {
        const asOf = b.at === nowMs ? '' : ` as of ${new Date(b.at).toISOString()}`;
        drops.push(`${LABEL[k]} from ${b.n} to ${then[k]}${asOf} (-${(lost * 100).toFixed(1)}%)`);
      }
    }
    if (drops.length === 0) return null;
    return {
      absolute: false,
      reason: `directory would drop ${drops.join(', ')}, more than maxShrink ${(maxShrink * 100).toFixed(0)}% of the largest accepted in the last 24 h: refused; reselqos update --accept takes it`,
    };
  }

  /** Counts an accepted directory. `reset` (a deliberate accept): the baseline starts again from it. */
  record(d: Directory, fw: GuardFirewall, nowMs: number, reset = false): void {
    const a = allowanceOf(d, fw, nowMs);
    const hour = Math.floor(nowMs / HOUR_MS);
    if (reset) this.buckets = [];
    this.buckets = this.buckets.filter((b) => b.hour * HOUR_MS + HOUR_MS > nowMs - WINDOW_MS && b.hour <= hour);
    let b = this.buckets.find((x) => x.hour === hour);
    if (!b) {
      b = {
        hour,
        peaks: {
          allowed4: { n: -1, at: nowMs },
          allowed6: { n: -1, at: nowMs },
          entitled: { n: -1, at: nowMs },
          withIp: { n: -1, at: nowMs },
        },
      };
      this.buckets.push(b);
    }
    let changed = reset;
    for (const k of MEASURES) {
      if (a[k] > b.peaks[k].n) {
        b.peaks[k] = { n: a[k], at: nowMs };
        changed = true;
      }
    }
    if (changed) this.version++;
  }
}

/** Buckets read back from disk; null when the shape is wrong. */
export function parseBuckets(raw: unknown): Bucket[] | null {
  if (!Array.isArray(raw)) return null;
  const ok = (p: unknown): p is Peak => !!p && Number.isFinite((p as Peak).n) && Number.isFinite((p as Peak).at);
  const out: Bucket[] = [];
  for (const b of raw as Bucket[]) {
    if (!b || !Number.isInteger(b.hour) || !b.peaks || !MEASURES.every((k) => ok(b.peaks[k]))) return null;
    out.push(b);
  }
  return out;
}
