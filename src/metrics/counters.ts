// Kernel class counters made monotonic, and the throughput history of the last hour.
// Pure: fed with what `tc -s class show` read and when; owns no I/O. A class that was
// re-created (counters back near zero) continues the total instead of going down.

import type { Direction } from '../policy/policy.js';
import type { LeafStats } from '../kernel/tc-stats.js';

export interface ClassSample {
  readonly direction: Direction;
  readonly group: number;
  readonly bytes: number;
  readonly packets: number;
  readonly drops: number;
  readonly overlimits: number;
  /** the class's leaf qdisc, when it has one */
  readonly leaf?: LeafStats;
}

export interface CounterDelta {
  readonly direction: Direction;
  readonly group: number;
  /** increase since the previous read (the kernel value itself at the first read or after a re-creation) */
  readonly bytes: number;
  readonly packets: number;
  readonly drops: number;
  readonly overlimits: number;
  /** measured throughput since the previous read, bit/s; null at the first read */
  readonly bps: number | null;
  /** increases of the leaf's own drops and ECN marks (its AQM), 0 without a leaf or marks */
  readonly leafDrops: number;
  readonly ecnMarks: number;
}

/** Per class, the last raw kernel values and when they were read. */
export class MonotonicCounters {
  private readonly last = new Map<string, { s: ClassSample; at: number }>();

  /** The increase of every class since the previous call; a value below the previous one means the class was re-created. */
  update(samples: readonly ClassSample[], at: number): CounterDelta[] {
    const out: CounterDelta[] = [];
    for (const s of samples) {
      const key = `${s.direction}:${s.group}`;
      const prev = this.last.get(key);
      const inc = (now: number, before: number | undefined): number => (before === undefined || now < before ? now : now - before);
      const reset = prev !== undefined && s.bytes < prev.s.bytes;
      const bytes = inc(s.bytes, prev?.s.bytes);
      const dt = prev ? (at - prev.at) / 1000 : 0;
      out.push({
        direction: s.direction,
        group: s.group,
        bytes,
        packets: inc(s.packets, reset ? undefined : prev?.s.packets),
        drops: inc(s.drops, reset ? undefined : prev?.s.drops),
        overlimits: inc(s.overlimits, reset ? undefined : prev?.s.overlimits),
        bps: prev && dt > 0 && !reset ? (bytes * 8) / dt : null,
        // a leaf replaced (fairness or leaf changed) starts again from 0: inc() takes its value as the increase
        leafDrops: s.leaf ? inc(s.leaf.drops, reset ? undefined : prev?.s.leaf?.drops) : 0,
        ecnMarks: s.leaf?.ecnMarks != null ? inc(s.leaf.ecnMarks, reset ? undefined : (prev?.s.leaf?.ecnMarks ?? undefined)) : 0,
      });
      this.last.set(key, { s, at });
    }
    return out;
  }
}

export interface HistoryPoint {
  /** epoch seconds */
  readonly t: number;
  /** measured bit/s per group (null = unknown), and the policy rate per group */
  readonly down: readonly (number | null)[];
  readonly up: readonly (number | null)[];
  readonly rateDown: readonly number[];
  readonly rateUp: readonly number[];
}

/** The points of the last `spanS` seconds. */
export class History {
  private readonly points: HistoryPoint[] = [];
  constructor(private readonly spanS = 3600) {}

  push(p: HistoryPoint): void {
    this.points.push(p);
    const oldest = p.t - this.spanS;
    let drop = 0;
    while (drop < this.points.length && this.points[drop]!.t < oldest) drop++;
    if (drop) this.points.splice(0, drop);
  }

  all(): readonly HistoryPoint[] {
    return this.points;
  }
}
