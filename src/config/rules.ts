// [ratesrules]: the rate rules (ruleNFrom/To/GlobalUp/GlobalDown/Up/Down), their time windows on
// the wall clock (crossing midnight allowed) and the check that no two windows overlap; and the
// [qos] off-peak window (offPeakFrom/To/Weight), read the same way.

import type { OffPeakWindow, RateRule } from './types.js';
import type { Ctx, SectionReader } from './reader.js';
import { parseRate, parseTimeOfDay } from './units.js';

const RULE_FIELDS = ['From', 'To', 'GlobalUp', 'GlobalDown', 'Up', 'Down'] as const;

export function readRateRules(r: SectionReader, ctx: Ctx): RateRule[] {
  const byIndex = new Map<number, Map<string, string>>();
  for (const { key, value } of r.entries()) {
    const m = /^rule([0-9]+)(from|to|globalup|globaldown|up|down)$/i.exec(key);
    if (!m) continue; // reported as unknown by the caller
    r.used.add(key.toLowerCase());
    const idx = Number(m[1]);
    if (!byIndex.has(idx)) byIndex.set(idx, new Map());
    byIndex.get(idx)!.set(m[2]!.toLowerCase(), value.trim());
  }
  const rules: RateRule[] = [];
  for (const idx of [...byIndex.keys()].sort((a, b) => a - b)) {
    const fields = byIndex.get(idx)!;
    const name = `rule${idx}`;
    let ok = true;
    const get = (field: (typeof RULE_FIELDS)[number], parse: (raw: string) => number): number => {
      const raw = fields.get(field.toLowerCase());
      const key = `${name}${field}`;
      if (raw === undefined) {
        ctx.problem(
          'ratesrules',
          key,
          `is missing: a rule needs all six fields ${RULE_FIELDS.map((f) => name + f).join(', ')} (0 = leave that rate unchanged)`,
          ctx.lineOf('ratesrules', `${name}From`),
        );
        ok = false;
        return 0;
      }
      try {
        return parse(raw);
      } catch (e) {
        ctx.problem('ratesrules', key, (e as Error).message);
        ok = false;
        return 0;
      }
    };
    const from = get('From', parseTimeOfDay);
    const to = get('To', parseTimeOfDay);
    const rate = (raw: string): number => parseRate(raw, { allowZero: true });
    const rule: RateRule = {
      name,
      index: idx,
      from,
      to,
      globalUp: get('GlobalUp', rate),
      globalDown: get('GlobalDown', rate),
      up: get('Up', rate),
      down: get('Down', rate),
    };
    if (ok && from === to) {
      ctx.problem(
        'ratesrules',
        `${name}To`,
        `window ${name} is empty (From = To); a window crossing midnight is written e.g. 20:00 to 4:00`,
      );
      ok = false;
    }
    if (ok) rules.push(rule);
  }
  // Overlaps: compare minute sets.
  for (let i = 0; i < rules.length; i++) {
    for (let j = i + 1; j < rules.length; j++) {
      const a = rules[i]!;
      const b = rules[j]!;
      if (windowsOverlap(a, b)) {
        ctx.problem('ratesrules', `${b.name}From`, `window ${b.name} overlaps ${a.name}: only one rate rule may be in force at a time`);
      }
    }
  }
  return rules;
}

/**
 * [qos] offPeakFrom, offPeakTo, offPeakWeight: null (off) when the weight is 1 or no window is
 * set. Both ends or neither; From = To is refused (an empty window); a weight below 1 needs a window.
 */
export function readOffPeak(q: SectionReader, ctx: Ctx): OffPeakWindow | null {
  const weight = q.float('offPeakWeight', (n) => (n >= 0 && n <= 1 ? null : 'expected a number with 0 <= w <= 1'));
  const end = (key: 'offPeakFrom' | 'offPeakTo'): number | null => (q.str(key).trim() === '' ? null : q.parse(key, parseTimeOfDay, 0));
  const from = end('offPeakFrom');
  const to = end('offPeakTo');
  if ((from === null) !== (to === null)) {
    ctx.problem('qos', from === null ? 'offPeakFrom' : 'offPeakTo', 'offPeakFrom and offPeakTo go together (both set, or both empty)');
    return null;
  }
  if (from === null || to === null) {
    if (weight < 1) ctx.problem('qos', 'offPeakWeight', `a weight of ${weight} needs a window (offPeakFrom and offPeakTo)`);
    return null;
  }
  if (from === to) {
    ctx.problem('qos', 'offPeakTo', 'the off-peak window is empty (From = To); a window crossing midnight is written e.g. 23:00 to 7:00');
    return null;
  }
  return weight < 1 ? { from, to, weight } : null;
}

export function inWindow(rule: { from: number; to: number }, minute: number): boolean {
  return rule.from < rule.to ? minute >= rule.from && minute < rule.to : minute >= rule.from || minute < rule.to;
}

function windowsOverlap(a: RateRule, b: RateRule): boolean {
  // A window starts at its From minute; two windows overlap iff one contains the other's start.
  return inWindow(a, b.from) || inWindow(b, a.from);
}
