// The counters of the tc tree of one interface (for the metrics, the dashboard and `top`): each
// HTB class's bytes, packets, drops and overlimits (`tc -s class show`, 6.1 text or >= 6.2 JSON)
// and each leaf's queue (`tc -s -j qdisc show`). Pure parsers (unit-tested on captured text)
// and the reader. Never: changes kernel state.

import type { Exec } from '../exec/exec.js';

/** Counters of one class since it was created (`tc -s class show`). */
export interface TcClassStats {
  bytes: number;
  packets: number;
  drops: number;
  overlimits: number;
}

/*
 * `tc -s class show dev X` (iproute2 6.1 text): after each class line,
 *    Sent 1234 bytes 12 pkt (dropped 0, overlimits 3 requeues 0)
 * iproute2 >= 6.2 JSON (-j): "stats": {"bytes":…, "packets":…, "drops":…, "overlimits":…} per class.
 */
export function parseTcClassStats(text: string): Map<string, TcClassStats> {
  const out = new Map<string, TcClassStats>();
  if (text.trimStart().startsWith('[')) {
    for (const o of JSON.parse(text) as Array<Record<string, unknown>>) {
      const st = o.stats as Record<string, unknown> | undefined;
      if (o.class !== 'htb' || !st) continue;
      const n = (k: string): number => {
        const v = st[k];
        return typeof v === 'number' ? v : 0;
      };
      out.set(typeof o.handle === 'string' ? o.handle : '', {
        bytes: n('bytes'),
        packets: n('packets'),
        drops: n('drops'),
        overlimits: n('overlimits'),
      });
    }
    return out;
  }
  let cur: string | null = null;
  for (const raw of text.split('\n')) {
    if (raw.startsWith('class ')) {
      const tok = raw.trim().split(/\s+/);
      cur = tok[1] === 'htb' ? (tok[2] ?? null) : null;
      continue;
    }
    const m = /^\s*Sent (\d+) bytes (\d+) pkt \(dropped (\d+), overlimits (\d+)/.exec(raw);
    if (m && cur !== null) {
      out.set(cur, { bytes: Number(m[1]), packets: Number(m[2]), drops: Number(m[3]), overlimits: Number(m[4]) });
      cur = null;
    }
  }
  return out;
}

/** What a class's leaf qdisc says of its queue (`tc -s -j qdisc show`): the drops and marks of its own AQM included. */
export interface LeafStats {
  readonly kind: string;
  /** bytes and packets waiting now */
  readonly backlogBytes: number;
  readonly qlen: number;
  /** packets the leaf dropped since it was created (cake's and fq_codel's AQM drops included, which the HTB class does not count) */
  readonly drops: number;
  /** packets ECN-marked instead of dropped (fq_codel, cake); null when the leaf does not mark */
  readonly ecnMarks: number | null;
  /** cake: the average and peak queueing delay of its busiest tin, µs; null for other leaves */
  readonly avgDelayUs: number | null;
  readonly peakDelayUs: number | null;
}

/**
 * `tc -s -j qdisc show dev X` (iproute2 6.1 and later print JSON for qdiscs): each leaf by the
 * HTB class it hangs on. Counters at the top level ("drops", "backlog", "qlen"); fq_codel's
 * xstats "ecn_mark" there too; cake's per-tin "tins": [{avg_delay_us, peak_delay_us, drops, ecn_mark}].
 */
export function parseLeafStats(text: string): Map<string, LeafStats> {
  const out = new Map<string, LeafStats>();
  if (!text.trimStart().startsWith('[')) return out;
  const num = (o: Record<string, unknown>, k: string): number | null => (typeof o[k] === 'number' ? o[k] : null);
  for (const o of JSON.parse(text) as Array<Record<string, unknown>>) {
    if (typeof o.parent !== 'string' || typeof o.kind !== 'string') continue;
    const tins = Array.isArray(o.tins) ? (o.tins as Array<Record<string, unknown>>) : [];
    const tinMax = (k: string): number | null => (tins.length ? Math.max(...tins.map((t) => num(t, k) ?? 0)) : null);
    const tinSum = (k: string): number | null => (tins.length ? tins.reduce((a, t) => a + (num(t, k) ?? 0), 0) : null);
    out.set(o.parent, {
      kind: o.kind,
      backlogBytes: num(o, 'backlog') ?? 0,
      qlen: num(o, 'qlen') ?? 0,
      drops: num(o, 'drops') ?? 0,
      ecnMarks: num(o, 'ecn_mark') ?? tinSum('ecn_mark'),
      avgDelayUs: tinMax('avg_delay_us'),
      peakDelayUs: tinMax('peak_delay_us'),
    });
  }
  return out;
}

/** The counters of the HTB classes of `dev` and of their leaves: one `tc -s class show`, one `tc -s -j qdisc show`. */
export async function readTcStats(
  exec: Exec,
  dev: string,
  now: () => number = Date.now,
): Promise<{ stats: Map<string, TcClassStats>; leaves: Map<string, LeafStats>; at: number }> {
  const [c, q] = await Promise.all([
    exec('tc', ['-s', 'class', 'show', 'dev', dev]),
    exec('tc', ['-s', '-j', 'qdisc', 'show', 'dev', dev]),
  ]);
  return { stats: parseTcClassStats(c.stdout), leaves: parseLeafStats(q.stdout), at: now() };
}
