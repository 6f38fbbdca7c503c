// [ratesrules]: the rate rules (ruleNFrom/To/GlobalUp/GlobalDown/Up/Down), their time windows on
// the wall clock (crossing midnight allowed) and the check that no two windows overlap.

import type { RateRule } from './types.js';
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

export function inWindow(rule: { from: number; to: number }, minute: number): boolean {
  return rule.from < rule.to ? minute >= rule.from && minute < rule.to : minute >= rule.from || minute < rule.to;
}

function windowsOverlap(a: RateRule, b: RateRule): boolean {
  // A window starts at its From minute; two windows overlap iff one contains the other's start.
  return inWindow(a, b.from) || inWindow(b, a.from);
}
