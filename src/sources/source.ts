// What a cycle needs of its sources, as two small interfaces: a directory (LDAP: fetched in full
// or patched from a change search, else the last good one) and the volumes since the daily reset
// (netacct). The Sources facade (src/state/sources.ts) implements both over LDAP, MySQL and the
// snapshots; a test passes its own. Types only: no behaviour, no I/O.

import type { DateTime } from 'luxon';
import type { Directory, Usage } from './types.js';

export interface DirectoryResult {
  readonly directory: Directory;
  /** false when the fetch failed or was refused and the last good snapshot is used */
  readonly fresh: boolean;
  readonly error: string | null;
  /** a fetch is still running (a large directory): the last good one is used meanwhile */
  readonly refreshing?: boolean;
  /**
   * What happened to the directory since the previous call: 'none' = `directory` is the very
   * object the previous call returned (===); 'patch' = a new object, the previous one with the
   * owners and machines below changed; 'full' = a new object from a full fetch (anything may differ).
   */
  readonly change: 'none' | 'patch' | 'full';
  /** with change 'patch': uids of the owners added or changed */
  readonly changedOwners?: readonly string[];
  /** with change 'patch': DNs of the machines added, changed or gone from the machine list */
  readonly changedMachines?: readonly string[];
}

export interface DirectoryFetchOptions {
  /** past the entry-count rule */
  readonly force?: boolean;
  /** past the entitlement guard too (update --accept) */
  readonly accept?: boolean;
  /** how long to wait for a slow fetch before answering with the last good directory */
  readonly waitMs?: number;
  /** a full fetch, awaited, rather than a change search */
  readonly full?: boolean;
}

export interface DirectorySource {
  /** The last good directory (memory, else disk), null when there is none. */
  readonly lastDirectory: Directory | null;
  /**
   * The directory for a cycle: fresh (a full fetch or a patch), else the last good one with the
   * reason; rejects (NoDirectoryError) when there is no directory at all.
   */
  fetchDirectory(now: Date, opts?: DirectoryFetchOptions): Promise<DirectoryResult>;
}

export interface UsageResult {
  readonly usage: Usage;
  readonly fresh: boolean;
  readonly error: string | null;
}

export interface UsageSource {
  /** The volumes since `resetAt`, counting the IPs of `directory` (default: the last good one). */
  fetchUsage(now: Date, resetAt: DateTime, directory?: Directory): Promise<UsageResult>;
  /** `first` (read beside the directory fetch), read again when `directory` holds an IP it did not count. */
  completeUsage(first: UsageResult, directory: Directory, now: Date, resetAt: DateTime): Promise<UsageResult>;
}
