// The QoS policy as pure functions: group thresholds, a user's group, per-group
// class rates, rate rules by time of day, the daily reset instant.
// No I/O, no global clock: callers pass the instant (an injected clock).

import { DateTime } from 'luxon';
import { inWindow, type Config, type QosConfig, type RateRule } from '../config/config.js';

export type Direction = 'down' | 'up';
export const DIRECTIONS: readonly Direction[] = ['down', 'up'];

/**
 * Upper volume limit (bytes) of each group but the last: limit(0) = base,
 * limit(n) = limit(n-1) x parameter + base. Length groups - 1.
 * Computed in MB-exact arithmetic: rounding once per step keeps 1250 MB x 1.6
 * at exactly 2000 MB instead of 1999.9999... .
 */
export function thresholds(q: Pick<QosConfig, 'groups' | 'base' | 'parameter'>): number[] {
  const out: number[] = [];
  let limit = q.base;
  for (let n = 0; n < q.groups - 1; n++) {
    out.push(limit);
    limit = Math.round(limit * q.parameter + q.base);
  }
  return out;
}

/** The group of a volume: above limit(n) means group n+1, capped at the last group. */
export function groupOf(volume: number, limits: readonly number[]): number {
  let g = 0;
  while (g < limits.length && volume > limits[g]!) g++;
  return g;
}

export interface ClassRate {
  readonly group: number;
  readonly users: number;
  readonly rateBps: number;
  readonly ceilBps: number;
}

/**
 * Class rates of one direction. With n_k users in group k and f the factor, every user
 * of group k gets r_k = r_0 f^k and sum(n_k r_k) = T (the share of the total left after
 * the default class and the floors of empty groups). An empty group gets `floor`. With
 * no user at all, groups are weighted as if each had one user. Integer bit/s, floored,
 * so the sum never exceeds the total.
 */
export function classRates(
  counts: readonly number[],
  opts: { totalBps: number; factor: number; floorBps: number; defaultBps: number; ceilShare: number },
): ClassRate[] {
  const G = counts.length;
  const anyUser = counts.some((n) => n > 0);
  const weights = counts.map((n, k) => (anyUser ? n : 1) * opts.factor ** k);
  const empties = anyUser ? counts.filter((n) => n === 0).length : 0;
  const shared = Math.max(0, opts.totalBps - opts.defaultBps - empties * opts.floorBps);
  const sum = weights.reduce((a, b) => a + b, 0);
  const ceil = Math.max(1, Math.floor(opts.totalBps * opts.ceilShare));
  const out: ClassRate[] = [];
  for (let k = 0; k < G; k++) {
    const n = counts[k]!;
    const rate = anyUser && n === 0 ? opts.floorBps : Math.max(1, Math.floor((shared * weights[k]!) / sum));
    out.push({ group: k, users: n, rateBps: rate, ceilBps: Math.max(ceil, rate) });
  }
  return out;
}

/** Per-user rate of group k (bit/s) given the class rates. */
export function perUserRate(c: ClassRate): number {
  return c.users > 0 ? Math.floor(c.rateBps / c.users) : c.rateBps;
}

/** Minutes after local midnight of an instant in a zone (wall clock, DST-proof). */
export function minuteOfDay(at: DateTime): number {
  return at.hour * 60 + at.minute;
}

/** The rate rule in force at an instant (evaluated on the wall clock of the zone), or null. */
export function activeRule(rules: readonly RateRule[], at: DateTime): RateRule | null {
  const m = minuteOfDay(at);
  return rules.find((r) => inWindow(r, m)) ?? null;
}

export interface EffectiveRates {
  readonly rule: string | null;
  /** every [rates] key after the rule, bit/s */
  readonly rates: Readonly<Record<string, number>>;
}

/**
 * Rates in force: the rule's up/down/globalUp/globalDown replace the base (0 = unchanged);
 * every other rate whose key ends in Up (Down) is scaled by ruleUp/up (ruleDown/down).
 */
export function effectiveRates(config: Pick<Config, 'rates' | 'rateRules' | 'qos'>, instant: DateTime): EffectiveRates {
  const at = instant.setZone(config.qos.timezone);
  const rule = activeRule(config.rateRules, at);
  const base = config.rates;
  if (!rule) return { rule: null, rates: { ...base } };
  const out: Record<string, number> = { ...base };
  const upRatio = rule.up > 0 ? rule.up / base['up']! : 1;
  const downRatio = rule.down > 0 ? rule.down / base['down']! : 1;
  for (const [key, value] of Object.entries(base)) {
    if (key === 'up' || key === 'down' || key === 'globalUp' || key === 'globalDown') continue;
    if (/up$/i.test(key)) out[key] = Math.round(value * upRatio);
    else if (/down$/i.test(key)) out[key] = Math.round(value * downRatio);
  }
  if (rule.up > 0) out['up'] = rule.up;
  if (rule.down > 0) out['down'] = rule.down;
  if (rule.globalUp > 0) out['globalUp'] = rule.globalUp;
  if (rule.globalDown > 0) out['globalDown'] = rule.globalDown;
  return { rule: rule.name, rates: out };
}

/**
 * Start of today's accounting: resetHour local time today, or yesterday if that is
 * still ahead. On a DST day an hour that does not exist moves forward (luxon's rule).
 */
export function resetInstant(q: Pick<QosConfig, 'resetHour' | 'timezone'>, instant: DateTime): DateTime {
  const local = instant.setZone(q.timezone);
  let reset = local.set({ hour: q.resetHour, minute: 0, second: 0, millisecond: 0 });
  if (reset > local) {
    reset = local.minus({ days: 1 }).set({ hour: q.resetHour, minute: 0, second: 0, millisecond: 0 });
  }
  return reset;
}

/** Next threshold above a volume, or null in the last group. */
export function nextThreshold(volume: number, limits: readonly number[]): number | null {
  const g = groupOf(volume, limits);
  return g < limits.length ? limits[g]! : null;
}

/** The next rate rule to start after `at` (the one in force excluded) and its start instant, or null. */
export function nextRule(rules: readonly RateRule[], at: DateTime): { rule: string; startsAt: DateTime } | null {
  const current = activeRule(rules, at);
  let best: { rule: string; startsAt: DateTime } | null = null;
  for (const r of rules) {
    if (r === current) continue;
    let start = at.startOf('day').plus({ minutes: r.from });
    if (start <= at) start = at.startOf('day').plus({ days: 1, minutes: r.from });
    if (!best || start < best.startsAt) best = { rule: r.name, startsAt: start };
  }
  return best;
}
