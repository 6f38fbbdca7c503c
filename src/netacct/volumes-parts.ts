// The sums a volume read builds (src/netacct/volumes.ts reads, these hold): bytes by ipIndex id
// in typed arrays (Dense), a part = the sums of one set of rows of one table with their
// signature and largest row id, and the builder that fills one, from scratch or from a copy of
// an earlier part; the Usage of a fetch's parts (usageOfParts, which warns once of the rows
// ignored). Pure data: no I/O, no parsing of rows, never the Map view unless asked.
// With an off-peak window ([qos] offPeakWeight < 1) a Dense holds the counted bytes (each row at
// its hour's weight: what decides the groups) in down/up and the raw bytes in rawDown/rawUp;
// without one, raw = counted and no second pair of arrays exists.

import { ipIndex } from '../net/ipindex.js';
import type { Usage, Volume } from '../sources/types.js';
import { escapeControl as esc, type Logger } from '../log.js';
import { weighted } from './volumes-window.js';

/** Bytes by ipIndex id (grown as ids appear), and which ids had a row at all. */
export class Dense {
  down: Float64Array;
  up: Float64Array;
  seen: Uint8Array;
  /** the raw bytes (before the off-peak weight); null = the same as down/up (no window) */
  rawDown: Float64Array | null;
  rawUp: Float64Array | null;
  /** the ipIndex generation (and its id -> IP table) these ids belong to */
  readonly generation = ipIndex.generation;
  readonly table = ipIndex.table();

  constructor(base?: Dense, weighted = base ? base.rawDown !== null : false) {
    const n = Math.max(1024, base?.down.length ?? 0, ipIndex.size);
    this.down = new Float64Array(n);
    this.up = new Float64Array(n);
    this.seen = new Uint8Array(n);
    this.rawDown = weighted ? new Float64Array(n) : null;
    this.rawUp = weighted ? new Float64Array(n) : null;
    if (base) {
      this.down.set(base.down);
      this.up.set(base.up);
      this.seen.set(base.seen);
      if (base.rawDown && this.rawDown) {
        this.rawDown.set(base.rawDown);
        this.rawUp!.set(base.rawUp!);
      }
    }
  }

  private grow(id: number): void {
    const n = Math.max(id + 1, this.down.length * 2);
    const d = new Float64Array(n);
    const u = new Float64Array(n);
    const s = new Uint8Array(n);
    d.set(this.down);
    u.set(this.up);
    s.set(this.seen);
    this.down = d;
    this.up = u;
    this.seen = s;
    if (this.rawDown && this.rawUp) {
      const rd = new Float64Array(n);
      const ru = new Float64Array(n);
      rd.set(this.rawDown);
      ru.set(this.rawUp);
      this.rawDown = rd;
      this.rawUp = ru;
    }
  }

  /** Adds a row's bytes; `w` (the off-peak weight of its hour) only in a weighted Dense. */
  add(id: number, down: number, up: number, w = 1): void {
    if (id >= this.down.length) this.grow(id);
    if (this.rawDown) {
      this.rawDown[id]! += down;
      this.rawUp![id]! += up;
      this.down[id]! += weighted(down, w);
      this.up[id]! += weighted(up, w);
    } else {
      this.down[id]! += down;
      this.up[id]! += up;
    }
    this.seen[id] = 1;
  }

  /** Sets id's bytes to the sum of the parts' bytes there. */
  sumAt(id: number, parts: readonly { readonly dense: Dense }[]): void {
    if (id >= this.down.length) this.grow(id);
    let down = 0;
    let up = 0;
    let rawDown = 0;
    let rawUp = 0;
    let seen = 0;
    for (const p of parts) {
      const o = p.dense;
      if (id < o.seen.length && o.seen[id] === 1) {
        down += o.down[id]!;
        up += o.up[id]!;
        rawDown += o.rawDown ? o.rawDown[id]! : o.down[id]!;
        rawUp += o.rawUp ? o.rawUp[id]! : o.up[id]!;
        seen = 1;
      }
    }
    this.down[id] = down;
    this.up[id] = up;
    this.seen[id] = seen;
    if (this.rawDown) {
      this.rawDown[id] = rawDown;
      this.rawUp![id] = rawUp;
    }
  }

  /** The ids whose bytes (or seen flag) differ in `o`; null when `o` holds ids of another index generation. */
  diffIds(o: Dense): number[] | null {
    if (o.generation !== this.generation) return null;
    const ids: number[] = [];
    const n = Math.max(this.seen.length, o.seen.length);
    for (let i = 0; i < n; i++) {
      const a = i < this.seen.length ? this.seen[i]! : 0;
      const b = i < o.seen.length ? o.seen[i]! : 0;
      if (a !== b || (a === 1 && (this.down[i] !== o.down[i] || this.up[i] !== o.up[i]))) ids.push(i);
      // the counted bytes can stay while the raw ones grow (an hour at weight 0)
      else if (a === 1 && this.rawDown && o.rawDown && (this.rawDown[i] !== o.rawDown[i] || this.rawUp![i] !== o.rawUp![i])) ids.push(i);
    }
    return ids;
  }

  /** Adds another part's bytes (ids beyond this one's arrays grow it). */
  addAll(o: Dense): void {
    if (o.down.length > this.down.length) this.grow(o.down.length - 1);
    const { down, up, seen } = this;
    const od = o.down;
    const ou = o.up;
    const os = o.seen;
    for (let i = 0; i < od.length; i++) {
      if (os[i] === 0) continue;
      down[i]! += od[i]!;
      up[i]! += ou[i]!;
      seen[i] = 1;
    }
    const rd = this.rawDown;
    const ru = this.rawUp;
    if (rd && ru) {
      const ord = o.rawDown ?? od;
      const oru = o.rawUp ?? ou;
      for (let i = 0; i < od.length; i++) {
        if (os[i] === 0) continue;
        rd[i]! += ord[i]!;
        ru[i]! += oru[i]!;
      }
    }
  }
}

/** The Map view of dense volumes (canonical IP -> bytes), built when first asked for. */
export function mapOf(d: Dense, raw = false): Map<string, Volume> {
  const m = new Map<string, Volume>();
  const { seen, table } = d;
  const down = raw ? (d.rawDown ?? d.down) : d.down;
  const up = raw ? (d.rawUp ?? d.up) : d.up;
  for (let i = 0; i < seen.length; i++) if (seen[i] === 1) m.set(table[i]!, { down: down[i]!, up: up[i]! });
  return m;
}

export const signatureOf = (b: PartBuilder | Part): string =>
  b instanceof PartBuilder ? [b.rows, b.sumDown, b.nDown, b.sumUp, b.nUp].join(' ') : [b.rows, ...b.sums].join(' ');

/** Sums of a set of rows of one table, and what was wrong in them. Never mutated once built. */
export interface Part {
  /** the rows' bytes by ipIndex id */
  readonly dense: Dense;
  /** canonical IPs with a NULL or negative row */
  readonly badRows: ReadonlySet<string>;
  /** raw IP string -> why it is not an address */
  readonly badIps: ReadonlyMap<string, string>;
  readonly rows: number;
  /** the rows' signature numbers (as signatureQuery): sum and count of non-NULL down, then up */
  readonly sums: readonly [number, number, number, number];
  /** the largest row id read (0: none, or no id column; NaN: an id beyond 2^53) */
  readonly maxId: number;
}

export class PartBuilder {
  readonly dense: Dense;
  maxId = 0;
  /** ids whose bytes this builder added to (only when built to derive from a base) */
  readonly touched: number[] | null;
  /** the rows' signature, as signatureQuery computes it on the server: non-NULL sums and counts */
  sumDown = 0;
  nDown = 0;
  sumUp = 0;
  nUp = 0;
  readonly badRows: Set<string>;
  readonly badIps: Map<string, string>;
  rows = 0;

  /** Starts from a copy of `base` (its rows, sums and max id too): a built part is never written to. */
  /** `weighted`: the rows go in at their hour's off-peak weight, raw bytes kept beside (a base says it itself). */
  constructor(base?: Part, track = false, weighted = false) {
    this.dense = new Dense(base?.dense, base ? base.dense.rawDown !== null : weighted);
    this.badRows = new Set(base?.badRows);
    this.badIps = new Map(base?.badIps);
    this.rows = base?.rows ?? 0;
    if (base) [this.sumDown, this.nDown, this.sumUp, this.nUp] = base.sums;
    this.maxId = base?.maxId ?? 0;
    this.touched = track ? [] : null;
  }

  add(id: number, down: number, up: number, w = 1): void {
    this.dense.add(id, down, up, w);
    this.touched?.push(id);
  }

  part(): Part {
    return {
      dense: this.dense,
      badRows: this.badRows,
      badIps: this.badIps,
      rows: this.rows,
      sums: [this.sumDown, this.nDown, this.sumUp, this.nUp],
      maxId: this.maxId,
    };
  }
}

export const partOf = (b: PartBuilder): Part => b.part();

export const emptyPart = (weighted = false): Part => new PartBuilder(undefined, false, weighted).part();

/** The Usage from the summed map; the warnings of the parts (pairs per table: closed, recent) once per fetch. */
export function usageOfParts(
  parts: readonly Part[],
  tables: number,
  resetAt: Date,
  now: Date,
  changed: { last: { readonly usage: Usage; readonly total: Dense }; ids: readonly number[] } | null,
  withRaw: boolean,
  log: Logger,
): { usage: Usage; total: Dense } {
  const per = parts.length / tables;
  const badRows: string[] = [];
  const badIps: string[] = [];
  for (let t = 0; t < tables; t++) {
    const mine = parts.slice(t * per, (t + 1) * per);
    badRows.push(...new Set(mine.flatMap((p) => [...p.badRows])));
    const ips = new Map(mine.flatMap((p) => [...p.badIps]));
    for (const [raw, reason] of ips) badIps.push(badIps.length < 5 ? esc(`${JSON.stringify(raw)} (${reason})`) : '');
  }
  if (badRows.length > 0) {
    log.warn(`mysql: ignored rows with NULL or negative byte counts for ${badRows.length} IP(s), e.g. ${badRows.slice(0, 5).join(', ')}`);
  }
  if (badIps.length > 0) {
    log.warn(`mysql: ignored ${badIps.length} row group(s) whose IP is not a valid address, e.g. ${badIps.filter(Boolean).join(', ')}`);
  }
  // The parts' bytes added by IP id (sequential, no lookup); the Map view only if someone asks.
  // Derived from the last total when only some ids can differ: those are summed again.
  let total: Dense;
  if (changed) {
    total = new Dense(changed.last.total);
    for (const id of changed.ids) total.sumAt(id, parts);
  } else {
    total = new Dense(undefined, withRaw);
    for (const p of parts) total.addAll(p.dense);
  }
  let byIp: Map<string, Volume> | null = null;
  let rawByIp: Map<string, Volume> | null = null;
  const usage: Usage = {
    get byIp(): Map<string, Volume> {
      return (byIp ??= mapOf(total));
    },
    ...(withRaw
      ? {
          raw: {
            get byIp(): Map<string, Volume> {
              return (rawByIp ??= mapOf(total, true));
            },
          },
        }
      : {}),
    dense: { down: total.down, up: total.up, generation: total.generation },
    resetAt: resetAt.toISOString(),
    fetchedAt: now.toISOString(),
    version: {},
    ...(changed && changed.last.usage.version ? { changes: { from: changed.last.usage.version, ids: changed.ids } } : {}),
  };
  return { usage, total };
}
