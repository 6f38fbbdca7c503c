// The daemon's view of the world, as plain data: the directory (owners and their
// machines) and the usage (bytes per IP since the daily reset). Produced by the
// source modules, consumed by the planner. No behaviour here.

export type OwnerKind = 'person' | 'organisation';

export interface Owner {
  readonly uid: string;
  readonly dn: string;
  readonly kind: OwnerKind;
  /** end of internet rights, epoch ms; null = attribute absent; NaN never (unparsable is skipped) */
  readonly endInternet: number | null;
  readonly coupure: boolean;
  readonly ban: readonly string[];
  readonly cotiz: readonly string[];
}

export interface Machine {
  readonly dn: string;
  readonly host: string;
  /** uid of the owner (an Owner of the same directory) */
  readonly owner: string;
  readonly active: boolean;
  /** canonical, deduplicated, after conflict resolution */
  readonly ips4: readonly string[];
  readonly ips6: readonly string[];
}

export interface Skipped {
  readonly dn: string;
  readonly reason: string;
}

export interface Directory {
  /** sorted by uid */
  readonly owners: readonly Owner[];
  /** sorted by dn */
  readonly machines: readonly Machine[];
  readonly skipped: readonly Skipped[];
  /** ISO instant of the fetch */
  readonly fetchedAt: string;
}

export interface Volume {
  down: number;
  up: number;
}

export interface Usage {
  /** canonical IP -> bytes since resetAt */
  readonly byIp: ReadonlyMap<string, Volume>;
  /**
   * The same bytes indexed by `ipIndex` id (src/net/ipindex.ts; 0 beyond the arrays), when the
   * source built them: the incremental planner sums users' bytes from these, only while
   * `generation` is the index's (a rebuild at the daily reset makes older ids meaningless).
   */
  readonly dense?: { readonly down: Float64Array; readonly up: Float64Array; readonly generation: number };
  /**
   * With an off-peak window ([qos] offPeakWeight < 1): the raw bytes (every row whole); byIp and
   * dense are then the counted bytes (each hour at its weight), which decide the groups. Absent:
   * raw = counted.
   */
  readonly raw?: { readonly byIp: ReadonlyMap<string, Volume> };
  /** ISO instant of the daily reset these volumes count from */
  readonly resetAt: string;
  readonly fetchedAt: string;
  /** identity of these volumes: a later Usage's `changes.from` names it */
  readonly version?: object;
  /**
   * These volumes equal those whose `version` is `from`, except at these ipIndex ids (same index
   * generation; duplicates possible): the incremental planner then looks at their users only.
   */
  readonly changes?: { readonly from: object; readonly ids: readonly number[] };
}

/** The upstream (LDAP, MySQL) could not give a complete answer: skip and keep the last good. */
export class SourceUnavailableError extends Error {
  constructor(
    readonly source: 'ldap' | 'mysql',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${source}: ${message}`, options);
    this.name = 'SourceUnavailableError';
  }
}

/** The upstream answered, but the answer is not safe to apply (empty, shrank too much). */
export class SnapshotRefusedError extends Error {
  constructor(
    readonly source: 'ldap' | 'mysql',
    message: string,
  ) {
    super(`${source}: ${message}`);
    this.name = 'SnapshotRefusedError';
  }
}

/** No directory at all: neither a fresh fetch nor any snapshot. Nothing may be applied. */
export class NoDirectoryError extends Error {
  constructor(readonly reason: string) {
    super(`no directory: ${reason}, and no last good snapshot in memory or on disk`);
    this.name = 'NoDirectoryError';
  }
}
