// In-memory sources for CycleRunner (src/sources/source.ts): an "upstream" LDAP and netacct the
// test sets (a directory, an error, a delay), with the real state room between the directory
// and the cycle (SnapshotStore: the emptiness/shrink rules and the entitlement guard, in memory,
// never persisted), so that a cycle sees what the daemon's would: fresh, the last good, or none.
import type { DateTime } from 'luxon';
import { MemoryLogger } from '../../src/log.js';
import { SnapshotStore } from '../../src/state/snapshot.js';
import type { GuardFirewall } from '../../src/state/guard.js';
import type { DirectoryFetchOptions, DirectoryResult, DirectorySource, UsageResult, UsageSource } from '../../src/sources/source.js';
import { NoDirectoryError, type Directory, type Usage, type Volume } from '../../src/sources/types.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class FakeDirectorySource implements DirectorySource {
  /** what LDAP answers next: a directory, or an error (the server down) */
  upstream: Directory | Error;
  /** how long each fetch takes */
  delayMs = 0;
  /** fetches asked for, and whether one is running now */
  fetches = 0;
  pending = false;
  readonly store = new SnapshotStore('/nonexistent/state', new MemoryLogger());

  constructor(
    upstream: Directory | Error,
    private readonly fw: GuardFirewall,
    private readonly maxShrink = 0.5,
  ) {
    this.upstream = upstream;
  }

  get lastDirectory(): Directory | null {
    return this.store.lastDirectory;
  }

  async fetchDirectory(now: Date, opts: DirectoryFetchOptions = {}): Promise<DirectoryResult> {
    this.fetches++;
    this.pending = true;
    try {
      if (this.delayMs) await sleep(this.delayMs);
      const last = this.store.lastDirectory;
      try {
        if (this.upstream instanceof Error) throw this.upstream;
        this.store.acceptDirectory(this.upstream, this.maxShrink, {
          force: opts.force,
          accept: opts.accept,
          fw: this.fw,
          nowMs: now.getTime(),
        });
        return { directory: this.upstream, fresh: true, error: null, change: 'full' };
      } catch (e) {
        // as the Sources facade does: the last good directory with the reason, none = no directory
        if (!last) throw new NoDirectoryError((e as Error).message);
        return { directory: last, fresh: false, error: (e as Error).message, change: 'none' };
      }
    } finally {
      this.pending = false;
    }
  }
}

export class FakeUsageSource implements UsageSource {
  /** what netacct answers next: bytes per IP, or an error */
  upstream: ReadonlyMap<string, Volume> | Error;
  delayMs = 0;
  /** per fetch: whether the directory fetch was still running when it started (they run concurrently) */
  readonly startedWhileDirectoryPending: boolean[] = [];
  private last: Usage | null = null;

  constructor(
    upstream: ReadonlyMap<string, Volume> | Error,
    private readonly directory?: FakeDirectorySource,
  ) {
    this.upstream = upstream;
  }

  async fetchUsage(now: Date, resetAt: DateTime): Promise<UsageResult> {
    this.startedWhileDirectoryPending.push(this.directory?.pending ?? false);
    if (this.delayMs) await sleep(this.delayMs);
    if (this.upstream instanceof Error) {
      if (this.last && this.last.resetAt === resetAt.toUTC().toISO())
        return { usage: this.last, fresh: false, error: this.upstream.message };
      throw this.upstream;
    }
    this.last = { byIp: this.upstream, resetAt: resetAt.toUTC().toISO()!, fetchedAt: now.toISOString() };
    return { usage: this.last, fresh: true, error: null };
  }

  completeUsage(first: UsageResult): Promise<UsageResult> {
    return Promise.resolve(first);
  }
}
