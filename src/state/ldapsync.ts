// LDAP kept in step with the server (the LdapSync half of the sources): full fetches (awaited
// or in the background every [ldap] refresh), change searches since a watermark between them,
// the patcher that applies their answers, and the checks of the snapshot store before anything
// is accepted. Owns all of that state; the Sources facade (sources.ts) owns the fallback policy
// towards the daemon and the volumes. Never touches the kernel.

import type { Config } from '../config/config.js';
import { escapeControl as esc, type Logger } from '../log.js';
import type { LdapSource, FullFetch } from '../ldap/ldap.js';
import { DirectoryPatcher } from '../ldap/patch.js';
import type { SnapshotStore } from './snapshot.js';
import type { SourceHealth } from './health.js';
import { NoDirectoryError, SnapshotRefusedError, SourceUnavailableError, type Directory } from '../sources/types.js';
import type { DirectoryFetchOptions, DirectoryResult } from '../sources/source.js';

/**
 * Change searches ask from this long before the newest modifyTimestamp seen (writes in flight,
 * replication) until one of them started this long after that entry was first seen; then from
 * the second after it.
 */
export const CHANGE_MARGIN_MS = 5_000;
/** A background full fetch that failed is retried after at most this long (or [ldap] refresh if shorter). */
const FULL_RETRY_MS = 60_000;

/** `p`'s value, or null once `ms` have passed first (p goes on; its result is not lost to it). */
async function within<T>(p: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((res) => (timer = setTimeout(() => res(null), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export class LdapSync {
  private readonly changeMarginMs: number;

  constructor(
    private config: Config,
    private ldap: LdapSource,
    private readonly store: SnapshotStore,
    private readonly health: SourceHealth,
    private readonly log: Logger,
    opts: { changeMarginMs?: number } = {},
  ) {
    this.changeMarginMs = opts.changeMarginMs ?? CHANGE_MARGIN_MS;
  }

  /** A new config and client (reload): filters or attributes may have changed, so the next directory is a full fetch. */
  reconfigure(config: Config, ldap: LdapSource): void {
    this.config = config;
    this.ldap = ldap;
    this.patcher = null;
    this.newestMs = null;
    this.pendingFull = null;
    this.generation++;
  }

  /** Resolves when no background full fetch is running (tests). */
  async whenBackgroundIdle(): Promise<void> {
    while (this.background) await this.background;
  }

  /** Counts of full and change searches (tests: a cycle did no full fetch). */
  get stats(): LdapSource['stats'] {
    return this.ldap.stats;
  }

  /** What the store's rules need besides the directory. */
  private acceptOpts(now: Date, opts: { force?: boolean; accept?: boolean } = {}): Parameters<SnapshotStore['acceptDirectory']>[2] {
    return { force: opts.force === true, accept: opts.accept === true, fw: this.config.firewall, nowMs: now.getTime() };
  }

  private inflight: Promise<DirectoryResult> | null = null;
  private lastFetchMs = 0;

  // Incremental state: the patcher holds the directory the change searches patch; it is valid
  // while it is the store's last directory.
  private patcher: DirectoryPatcher | null = null;
  /** newest modifyTimestamp seen (epoch ms, server clock); change searches start CHANGE_MARGIN_MS before */
  private newestMs: number | null = null;
  /** when (our clock) newestMs was last raised */
  private newestSeenWall = 0;
  /** when (our clock) the last change search from newestMs − margin started */
  private lowSearchWall: number | null = null;
  private lastFullStartMs = Number.NEGATIVE_INFINITY;
  private fullRetryAtMs = Number.NEGATIVE_INFINITY;
  /** wall-clock ms of the first undecided patch not yet covered by a full fetch started after it */
  private fullWantedSince: number | null = null;
  private background: Promise<void> | null = null;
  private pendingFull: { full: FullFetch; startedWall: number; newestAtStart: number | null } | null = null;
  private lastReturned: Directory | null = null;
  private serial: Promise<unknown> = Promise.resolve();
  private generation = 0;
  private readonly undecidedLogged = new Set<string>();
  private noTimestampWarned = false;
  private backgroundFailing = false;

  /**
   * The directory for a cycle.
   *
   * With [ldap] refresh > 0 and a directory fully fetched by this process, a cycle runs a
   * change search (entries modified since the newest modifyTimestamp seen, minus a margin) and
   * patches the directory; a full fetch is due every `refresh` and then runs in the background,
   * its result swapped in by the next call (after the shrink/empty checks). Nothing changed =
   * the same Directory object as the previous call (change 'none').
   *
   * Otherwise (first fetch of the process, `force`, `full`, refresh = 0), a full fetch: with
   * `waitMs`, a fetch that takes longer goes on in the background and the cycle uses the last
   * good directory; without it, or with no directory yet, it is awaited. One fetch at a time.
   */
  async fetchDirectory(now: Date, opts: DirectoryFetchOptions = {}): Promise<DirectoryResult> {
    const run = this.serial.then(() => this.fetchDirectorySerial(now, opts));
    this.serial = run.catch(() => undefined);
    let r: DirectoryResult | null;
    const last = this.store.lastDirectory;
    if (opts.waitMs !== undefined && last) {
      // A change search (or a fetch before it) that hangs does not hold the cycle beyond waitMs:
      // it goes on, and what it brings is picked up by a later call.
      r = await within(run, opts.waitMs);
      if (r === null) {
        const d = this.store.lastDirectory ?? last;
        r = { directory: d, fresh: false, error: null, refreshing: true, change: d === this.lastReturned ? 'none' : 'full' };
      }
    } else {
      r = await run;
    }
    this.lastReturned = r.directory;
    return r;
  }

  private async fetchDirectorySerial(now: Date, opts: DirectoryFetchOptions): Promise<DirectoryResult> {
    const incremental =
      this.config.ldap.refreshMs > 0 &&
      !opts.force &&
      !opts.accept &&
      !opts.full &&
      this.inflight === null &&
      (this.pendingFull !== null || (this.patcher !== null && this.patcher.directory === this.store.lastDirectory));
    if (incremental) return this.fetchIncremental(now);
    const r = await this.fetchFull(now, opts);
    return { ...r, change: r.directory === this.lastReturned ? 'none' : 'full' };
  }

  /** A full fetch, one at a time (waitMs: within that budget, else it goes on in the background and the last good directory is used). */
  private async fetchFull(
    now: Date,
    opts: { force?: boolean; accept?: boolean; waitMs?: number },
  ): Promise<Omit<DirectoryResult, 'change'>> {
    const already = this.inflight !== null;
    if (!this.inflight) {
      const t0 = performance.now();
      // Cleared when the fetch settles, before anyone awaiting it resumes: the next call must
      // not find a finished fetch still "in flight" (it would be handed the old result).
      const self: { run: Promise<DirectoryResult> | null } = { run: null };
      self.run = (async () => {
        try {
          return await this.fetchDirectoryNow(now, opts);
        } finally {
          this.lastFetchMs = performance.now() - t0;
          if (this.inflight === self.run) this.inflight = null;
        }
      })();
      this.inflight = self.run;
    }
    const last = this.store.lastDirectory;
    if (opts.waitMs === undefined || !last) return this.inflight;
    // Wait for a fetch started now, and only if fetches are quick enough to fit the budget.
    const wait = already || this.lastFetchMs > opts.waitMs ? 0 : opts.waitMs;
    return (await within(this.inflight, wait)) ?? { directory: last, fresh: false, error: null, refreshing: true };
  }

  private async fetchDirectoryNow(now: Date, opts: { force?: boolean; accept?: boolean }): Promise<DirectoryResult> {
    // A background full fetch started earlier must not be swapped in over this one.
    const generation = ++this.generation;
    this.pendingFull = null;
    const startedWall = Date.now();
    const newestAtStart = this.newestMs;
    this.lastFullStartMs = now.getTime();
    try {
      const full = await this.ldap.fetchFull(now, this.store.holders());
      const d = full.directory;
      this.store.acceptDirectory(d, this.config.ldap.maxShrink, this.acceptOpts(now, opts));
      if (opts.accept)
        this.log.warn(
          `ldap: directory of ${d.fetchedAt} accepted by the operator (--accept), past the guard; the guard's baseline starts again from it`,
        );
      if (generation === this.generation) this.startIncremental(full, startedWall, newestAtStart);
      this.health.accepted(now);
      for (const s of d.skipped) this.log.debug(() => `ldap: skipped ${esc(s.dn)}: ${s.reason}`);
      return { directory: d, fresh: true, error: null, change: 'full' };
    } catch (e) {
      if (!(e instanceof SourceUnavailableError || e instanceof SnapshotRefusedError)) throw e;
      const last = this.store.lastDirectory;
      if (e instanceof SnapshotRefusedError) this.health.refused(now, e.message, last?.fetchedAt ?? null);
      else this.health.failed(now, e.message, last?.fetchedAt ?? null);
      if (!last) throw new NoDirectoryError(e.message);
      return { directory: last, fresh: false, error: e.message, change: 'none' };
    }
  }

  /** A full fetch was accepted: change searches patch it from now on. */
  private startIncremental(full: FullFetch, startedWall: number, newestAtStart: number | null): void {
    if (full.newestMs === null) {
      // No modifyTimestamp in the answers (hidden by ACLs?): change searches would see nothing.
      this.patcher = null;
      this.newestMs = null;
      if (!this.noTimestampWarned && this.config.ldap.refreshMs > 0 && full.directory.owners.length + full.directory.machines.length > 0) {
        this.log.warn(`ldap: the server returns no ${'modifyTimestamp'} (ACL?): no change searches, a full fetch every cycle`);
        this.noTimestampWarned = true;
      }
      return;
    }
    this.patcher = new DirectoryPatcher(full, { ldap: this.config.ldap, firewall: this.config.firewall });
    // Changes made while the full fetch ran may have been read before they happened: ask again
    // from where the watermark was when it started (first one: its start, by our clock, or the
    // newest entry if older).
    this.newestMs = newestAtStart ?? Math.min(full.newestMs, startedWall);
    this.newestSeenWall = Date.now();
    this.lowSearchWall = null;
    if (this.fullWantedSince !== null && startedWall >= this.fullWantedSince) this.fullWantedSince = null;
    this.undecidedLogged.clear();
  }

  /** Starts a full fetch in the background; its result is swapped in by a later call. */
  private startBackgroundFull(now: Date, why: string): void {
    if (this.background) return;
    const generation = this.generation;
    const startedWall = Date.now();
    const newestAtStart = this.newestMs;
    this.lastFullStartMs = now.getTime();
    this.log.debug(() => `ldap: full fetch in the background (${why})`);
    this.background = this.ldap
      .fetchFull(now, this.store.holders())
      .then(
        (full) => {
          this.backgroundFailing = false;
          if (generation === this.generation) this.pendingFull = { full, startedWall, newestAtStart };
        },
        (e: unknown) => {
          this.fullRetryAtMs = now.getTime() + Math.min(this.config.ldap.refreshMs, FULL_RETRY_MS);
          const msg = `ldap: background full fetch failed (the directory stays patched by change searches; retried in a minute at most): ${(e as Error).message}`;
          // Once per run of failures; a server that is down is logged by the change searches (SourceHealth).
          if (this.backgroundFailing || this.health.current.state === 'down') this.log.debug(msg);
          else this.log.warn(msg);
          this.backgroundFailing = true;
        },
      )
      .finally(() => {
        this.background = null;
      });
  }

  private async fetchIncremental(now: Date): Promise<DirectoryResult> {
    const nowMs = now.getTime();
    let swapped = false;
    const pending = this.pendingFull;
    if (pending) {
      this.pendingFull = null;
      try {
        this.store.acceptDirectory(pending.full.directory, this.config.ldap.maxShrink, this.acceptOpts(now));
        this.startIncremental(pending.full, pending.startedWall, pending.newestAtStart);
        this.health.accepted(now);
        for (const s of pending.full.directory.skipped) this.log.debug(() => `ldap: skipped ${esc(s.dn)}: ${s.reason}`);
        swapped = true;
      } catch (e) {
        if (!(e instanceof SnapshotRefusedError)) throw e;
        // Change searches go on patching the directory in force; the refusal stands until a full fetch is accepted.
        this.health.refused(now, `background full fetch: ${e.message}`, this.store.lastDirectory?.fetchedAt ?? null);
        this.fullRetryAtMs = nowMs + Math.min(this.config.ldap.refreshMs, FULL_RETRY_MS);
      }
      if (!this.patcher || this.patcher.directory !== this.store.lastDirectory) {
        // No change searches possible on what is in force (no modifyTimestamp): a full fetch.
        const r = await this.fetchFull(now, {});
        return { ...r, change: r.directory === this.lastReturned ? 'none' : 'full' };
      }
    }
    const patcher = this.patcher!;
    const refresh = this.config.ldap.refreshMs;
    const due = nowMs - this.lastFullStartMs >= refresh || nowMs < this.lastFullStartMs;
    // Not while the server is down: the change search says when it is back.
    if ((due || this.fullWantedSince !== null) && nowMs >= this.fullRetryAtMs && this.health.current.state !== 'down') {
      this.startBackgroundFull(now, due ? 'refresh' : 'a change the patch could not settle');
    }
    const before = patcher.directory;
    try {
      // Writes in flight: ask again from a margin before the newest entry seen, until one such
      // search started long enough (by our clock) after that entry was first seen that nothing
      // older can still appear; then from the next second (else a bulk import would be returned
      // by every cycle).
      const newest = this.newestMs ?? 0;
      const settled = this.lowSearchWall !== null && this.lowSearchWall - this.newestSeenWall > this.changeMarginMs;
      const since = settled ? Math.floor(newest / 1000) * 1000 + 1000 : newest - this.changeMarginMs;
      const searchWall = Date.now();
      const changes = await this.ldap.fetchChanges(since);
      if (!settled) this.lowSearchWall = searchWall;
      const newOwners = patcher.newOwnerDns(changes);
      const extra = newOwners.length > 0 ? await this.ldap.fetchMachinesOf(newOwners) : [];
      const r = patcher.apply({ ...changes, hosts: [...changes.hosts, ...extra] }, now.toISOString());
      if (changes.newestMs !== null && (this.newestMs === null || changes.newestMs > this.newestMs)) {
        this.newestMs = changes.newestMs;
        this.newestSeenWall = Date.now();
      }
      if (r.undecided.length > 0) {
        for (const u of r.undecided) {
          const key = `${u.dn}\n${u.reason}`;
          if (this.undecidedLogged.has(key)) continue;
          this.undecidedLogged.add(key);
          this.log.info(`ldap: change to ${esc(u.dn)} left for the next full fetch (started now): ${u.reason}`);
        }
        this.fullWantedSince ??= Date.now();
        if (nowMs >= this.fullRetryAtMs) this.startBackgroundFull(now, 'a change the patch could not settle');
      }
      if (r.directory !== before) {
        try {
          this.store.acceptDirectory(r.directory, this.config.ldap.maxShrink, this.acceptOpts(now));
        } catch (e) {
          if (!(e instanceof SnapshotRefusedError)) throw e;
          this.patcher = null; // its state went ahead of what is in force: start again from a full fetch
          throw e;
        }
      }
      this.health.ok(now);
      const d = r.directory;
      if (d === this.lastReturned) return { directory: d, fresh: true, error: null, change: 'none' };
      if (!swapped && before === this.lastReturned) {
        this.log.debug(() => `ldap: patched ${r.changedOwners.length} owner(s), ${r.changedMachines.length} machine(s)`);
        return {
          directory: d,
          fresh: true,
          error: null,
          change: 'patch',
          changedOwners: r.changedOwners,
          changedMachines: r.changedMachines,
        };
      }
      return { directory: d, fresh: true, error: null, change: 'full' };
    } catch (e) {
      if (!(e instanceof SourceUnavailableError || e instanceof SnapshotRefusedError)) throw e;
      const last = this.store.lastDirectory!;
      if (e instanceof SnapshotRefusedError) this.health.refused(now, e.message, last.fetchedAt);
      else this.health.failed(now, e.message, last.fetchedAt);
      return { directory: last, fresh: false, error: e.message, change: last === this.lastReturned ? 'none' : 'full' };
    }
  }
}
