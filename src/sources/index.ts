// The Sources facade: one object the daemon and the CLI use to get a directory and
// volumes for a cycle. Owns the fallback policy: a failed or refused fetch keeps the
// last good snapshot (memory, else disk) and marks the source down, logged once.

import type { DateTime } from 'luxon';
import type { Config } from '../config/config.js';
import type { Logger } from '../log.js';
import { LdapSource } from './ldap.js';
import { VolumeSource } from './volumes.js';
import { SnapshotStore } from './snapshot.js';
import { SourceHealth } from './health.js';
import { SnapshotRefusedError, SourceUnavailableError, type Directory, type Usage } from './types.js';

export * from './types.js';

export interface DirectoryResult {
  readonly directory: Directory;
  /** false when the fetch failed or was refused and the last good snapshot is used */
  readonly fresh: boolean;
  readonly error: string | null;
  /** a fetch is still running (a large directory): the last good one is used meanwhile */
  readonly refreshing?: boolean;
}

export interface UsageResult {
  readonly usage: Usage;
  readonly fresh: boolean;
  readonly error: string | null;
}

/** No directory at all: neither a fresh fetch nor any snapshot. Nothing may be applied. */
export class NoDirectoryError extends Error {
  constructor(readonly reason: string) {
    super(`no directory: ${reason}, and no last good snapshot in memory or on disk`);
    this.name = 'NoDirectoryError';
  }
}

export class Sources {
  private ldap: LdapSource;
  private volumes: VolumeSource;
  readonly store: SnapshotStore;
  readonly health: { readonly ldap: SourceHealth; readonly mysql: SourceHealth };

  constructor(private config: Config, private readonly log: Logger, opts: { persist?: boolean } = {}) {
    this.ldap = new LdapSource(config);
    this.volumes = new VolumeSource(config, log);
    this.store = new SnapshotStore(config.paths.state, log);
    this.persistEnabled = opts.persist ?? true;
    this.health = { ldap: new SourceHealth('ldap', log), mysql: new SourceHealth('mysql', log) };
  }

  private readonly persistEnabled: boolean;

  /** Loads the snapshots a previous process left on disk. */
  async init(): Promise<void> {
    await this.store.load();
  }

  /** A new config (reload): connections are reopened with the new servers and credentials. */
  async reconfigure(config: Config): Promise<void> {
    this.config = config;
    this.ldap = new LdapSource(config);
    const old = this.volumes;
    this.volumes = new VolumeSource(config, this.log);
    await old.close();
  }

  private inflight: Promise<DirectoryResult> | null = null;
  private lastFetchMs = 0;

  /**
   * The directory for a cycle. With `waitMs`, a fetch that takes longer (a 100 000-user
   * directory takes seconds) goes on in the background and the cycle uses the last good
   * directory; the next cycle picks the new one up. Without it, or with no directory yet,
   * the fetch is awaited. One fetch at a time.
   */
  async fetchDirectory(now: Date, opts: { force?: boolean; waitMs?: number } = {}): Promise<DirectoryResult> {
    const already = this.inflight !== null;
    if (!this.inflight) {
      const t0 = performance.now();
      const run = this.fetchDirectoryNow(now, opts);
      this.inflight = run;
      run.then(() => undefined, () => undefined).finally(() => {
        this.lastFetchMs = performance.now() - t0;
        if (this.inflight === run) this.inflight = null;
      });
    }
    const last = this.store.lastDirectory;
    if (opts.waitMs === undefined || !last) return this.inflight;
    // Wait for a fetch started now, and only if fetches are quick enough to fit the budget.
    const wait = already || this.lastFetchMs > opts.waitMs ? 0 : opts.waitMs;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((r) => (timer = setTimeout(() => r(null), wait)));
    const r = await Promise.race([this.inflight, timeout]);
    clearTimeout(timer);
    return r ?? { directory: last, fresh: false, error: null, refreshing: true };
  }

  private async fetchDirectoryNow(now: Date, opts: { force?: boolean }): Promise<DirectoryResult> {
    try {
      const d = await this.ldap.fetch(now);
      this.store.acceptDirectory(d, this.config.ldap.maxShrink, opts.force === true);
      this.health.ldap.ok(now);
      for (const s of d.skipped) this.log.debug(() => `ldap: skipped ${s.dn}: ${s.reason}`);
      return { directory: d, fresh: true, error: null };
    } catch (e) {
      if (!(e instanceof SourceUnavailableError || e instanceof SnapshotRefusedError)) throw e;
      const last = this.store.lastDirectory;
      this.health.ldap.failed(now, e.message, last?.fetchedAt ?? null);
      if (!last) throw new NoDirectoryError(e.message);
      return { directory: last, fresh: false, error: e.message };
    }
  }

  async fetchUsage(now: Date, resetAt: DateTime): Promise<UsageResult> {
    const reset = resetAt.toJSDate();
    try {
      const u = await this.volumes.fetch(reset, now);
      this.store.acceptUsage(u);
      this.health.mysql.ok(now);
      return { usage: u, fresh: true, error: null };
    } catch (e) {
      if (!(e instanceof SourceUnavailableError)) throw e;
      const last = this.store.lastUsage;
      this.health.mysql.failed(now, e.message, last?.fetchedAt ?? null);
      // Volumes of an earlier day are not today's: after the reset everyone restarts at 0.
      const usable = last && Date.parse(last.resetAt) === reset.getTime() ? last : null;
      const usage: Usage = usable ?? { byIp: new Map(), resetAt: reset.toISOString(), fetchedAt: now.toISOString() };
      return { usage, fresh: false, error: e.message };
    }
  }

  async persist(opts: { forceUsage?: boolean } = {}): Promise<void> {
    if (!this.persistEnabled) return;
    try {
      await this.store.persist(opts);
    } catch (e) {
      this.log.warn(`state: cannot write snapshots under ${this.config.paths.state}: ${(e as Error).message}`);
    }
  }

  async close(): Promise<void> {
    await this.volumes.close();
  }
}
