// Reads a Grafana board as Grafana would for its queries: every "expr" of every panel (rows
// included), the query variables of "templating", and the interval variables ($__interval,
// $__rate_interval, $__range) computed from the board's time range as Grafana computes them.
// Pure; used by test/prometheus/grafana.test.ts.

export interface Target {
  panel: string;
  expr: string;
}
export interface QueryVariable {
  name: string;
  metric: string;
  label: string;
}
/** variable name -> its values (all of them: a multi-value variable at "All") */
export type Variables = Record<string, string[]>;

interface Panel {
  title?: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

export function boardExpressions(board: unknown): { targets: Target[]; variables: QueryVariable[] } {
  const b = board as { panels?: Panel[]; templating?: { list?: { name: string; type: string; query?: unknown; definition?: string }[] } };
  const targets: Target[] = [];
  const walk = (ps: Panel[] | undefined): void => {
    for (const p of ps ?? []) {
      for (const t of p.targets ?? []) if (t.expr) targets.push({ panel: p.title ?? '', expr: t.expr });
      walk(p.panels);
    }
  };
  walk(b.panels);
  const variables: QueryVariable[] = [];
  for (const v of b.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : ((v.query as { query?: string } | undefined)?.query ?? v.definition ?? '');
    const m = /^label_values\(\s*([^,]+?)\s*,\s*(\w+)\s*\)$/.exec(q);
    if (!m) throw new Error(`variable ${v.name}: query ${JSON.stringify(q)} is not label_values(metric, label)`);
    variables.push({ name: v.name, metric: m[1]!, label: m[2]! });
  }
  return { targets, variables };
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** Seconds of a Grafana relative range (`now-6h` .. `now`). */
export function rangeSeconds(time: { from: string; to: string }): number {
  const rel = (s: string): number => {
    if (s === 'now') return 0;
    const m = /^now-(\d+)([smhdw])$/.exec(s);
    if (!m) throw new Error(`time ${s}: not now or now-<n><unit>`);
    return Number(m[1]) * UNITS[m[2]!]!;
  };
  return rel(time.from) - rel(time.to);
}

/** Grafana's rangeutil.roundInterval (milliseconds in, milliseconds out). */
export function roundInterval(ms: number): number {
  const steps: [number, number][] = [
    [15, 10],
    [35, 20],
    [75, 50],
    [150, 100],
    [350, 200],
    [750, 500],
    [1500, 1000],
    [3500, 2000],
    [7500, 5000],
    [12500, 10000],
    [17500, 15000],
    [25000, 20000],
    [45000, 30000],
    [90000, 60000],
    [210000, 120000],
    [450000, 300000],
    [750000, 600000],
    [1050000, 900000],
    [1500000, 1200000],
    [2700000, 1800000],
    [5400000, 3600000],
    [9000000, 7200000],
    [16200000, 10800000],
    [32400000, 21600000],
    [86400000, 43200000],
    [604800000, 86400000],
    [1814400000, 604800000],
    [3628800000, 2592000000],
  ];
  for (const [below, to] of steps) if (ms < below) return to;
  return 31536000000;
}

export interface Intervals {
  interval: string;
  rateInterval: string;
  range: string;
}

/**
 * $__interval = the range over the panel's data points (Grafana's default max: the panel's width
 * in pixels; 1000 here), rounded, never below the data source's scrape interval;
 * $__rate_interval = max($__interval + scrape interval, 4 × scrape interval); $__range in seconds.
 */
export function grafanaInterval(time: { from: string; to: string }, scrapeS: number, maxDataPoints = 1000): Intervals {
  const range = rangeSeconds(time);
  const intervalS = Math.max(roundInterval((range * 1000) / maxDataPoints) / 1000, scrapeS);
  const rate = Math.max(intervalS + scrapeS, 4 * scrapeS);
  const fmt = (s: number): string => (Number.isInteger(s) ? `${s}s` : `${Math.round(s * 1000)}ms`);
  return { interval: fmt(intervalS), rateInterval: fmt(rate), range: fmt(range) };
}

/** A multi-value variable as Grafana's Prometheus data source writes it into a regex: (a|b), each escaped. */
const regexValue = (values: string[]): string => {
  const esc = values.map((v) => v.replace(/[\\^$*+?.()|[\]{}]/g, '\\\\$&'));
  return esc.length === 1 ? esc[0]! : `(${esc.join('|')})`;
};

export function substitute(expr: string, vars: Variables, iv: Intervals): string {
  let q = expr
    .replace(/\$__rate_interval\b|\$\{__rate_interval\}/g, iv.rateInterval)
    .replace(/\$__interval\b|\$\{__interval\}/g, iv.interval)
    .replace(/\$__range\b|\$\{__range\}/g, iv.range);
  for (const [name, values] of Object.entries(vars)) {
    q = q.replace(new RegExp(`\\$\\{${name}(?::\\w+)?\\}|\\$${name}\\b`, 'g'), regexValue(values));
  }
  const left = /\$\{?\w+/.exec(q);
  if (left) throw new Error(`${expr}: variable ${left[0]} left unsubstituted`);
  return q;
}
