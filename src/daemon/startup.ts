// What a start does with the directory snapshot a previous process left on disk: `start`
// and the daemon's first cycle apply a snapshot younger than [ldap] refresh at once and let
// the full LDAP fetch run in the background (its result is applied by the next cycles, through
// the usual checks); an older snapshot, or none, waits for the fetch as before. With a young
// directory snapshot, `start` also takes the volumes saved beside it when they are of this reset
// period and as young (the daemon's first cycle reads them fresh). Pure: the clock is passed in.
// Never reads files or the kernel.

import type { Directory, Usage } from '../sources/types.js';

export interface SnapshotAge {
  /** the snapshot may be applied without waiting for LDAP */
  readonly young: boolean;
  /** now − the snapshot's fetchedAt, ms (null: no snapshot, or an unreadable date) */
  readonly ageMs: number | null;
  /** why not, for the log (null when young) */
  readonly why: string | null;
}

/**
 * Whether `snapshot` (the last good directory loaded from [path] state) is young enough to be
 * applied without waiting for a full fetch: fetched less than `refreshMs` ago, the period after
 * which a running daemon would fetch it in full again anyway. refresh = 0 (a full fetch every
 * cycle) never is; a snapshot dated in the future (the clock went back) is not either.
 */
export function snapshotAge(snapshot: Pick<Directory, 'fetchedAt'> | null, refreshMs: number, nowMs: number): SnapshotAge {
  if (!snapshot) return { young: false, ageMs: null, why: 'no snapshot on disk' };
  const at = Date.parse(snapshot.fetchedAt);
  if (!Number.isFinite(at)) return { young: false, ageMs: null, why: `snapshot date ${JSON.stringify(snapshot.fetchedAt)} unreadable` };
  const ageMs = nowMs - at;
  if (refreshMs <= 0) return { young: false, ageMs, why: '[ldap] refresh = 0 (a full fetch every cycle)' };
  if (ageMs < 0) return { young: false, ageMs, why: `snapshot of ${snapshot.fetchedAt} is dated in the future` };
  if (ageMs >= refreshMs)
    return { young: false, ageMs, why: `snapshot of ${snapshot.fetchedAt} is ${seconds(ageMs)} old, not younger than [ldap] refresh` };
  return { young: true, ageMs, why: null };
}

/**
 * Whether the volumes saved on disk (the store's last usage, written every minute and at stop)
 * may stand for a fresh read in `start`: of this reset period (`resetMs`: after the daily reset
 * yesterday's bytes are not today's), fetched less than `refreshMs` ago and not in the future.
 * Only with a young directory snapshot (the caller's rule): a start that fetches the directory
 * reads the volumes too.
 */
export function savedVolumesAge(
  saved: Pick<Usage, 'fetchedAt' | 'resetAt'> | null,
  resetMs: number,
  refreshMs: number,
  nowMs: number,
): SnapshotAge {
  if (!saved) return { young: false, ageMs: null, why: 'no volumes on disk' };
  if (Date.parse(saved.resetAt) !== resetMs)
    return { young: false, ageMs: null, why: `volumes of the period from ${saved.resetAt}, not this one` };
  const r = snapshotAge(saved, refreshMs, nowMs);
  return r.young ? r : { ...r, why: (r.why ?? '').replace(/^snapshot/, 'volumes') };
}

export function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`;
}
