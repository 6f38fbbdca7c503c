// The Sources facade: one object the daemon and the CLI use to get a directory and volumes for
// a cycle (it is the cycle's DirectorySource and UsageSource, src/sources/source.ts). Owns the fallback policy: a failed or refused fetch keeps the last good snapshot
// (memory, else disk) and marks the source down or refused, logged once. The LDAP side's state
// (change searches, background full fetches) lives in LdapSync (ldapsync.ts).

import type { DateTime } from 'luxon';
import type { Config } from '../config/config.js';
import type { Logger } from '../log.js';
import { LdapSource } from '../ldap/ldap.js';
import { LdapSync } from './ldapsync.js';
import { VolumeSource } from '../netacct/volumes.js';
import { SnapshotStore } from './snapshot.js';
import { SourceHealth } from './health.js';
import { SourceUnavailableError, type Directory, type Usage } from '../sources/types.js';
import type { DirectoryFetchOptions, DirectoryResult, DirectorySource, UsageResult, UsageSource } from '../sources/source.js';

const NO_DIRECTORY: Directory = Object.freeze({ owners: [], machines: [], skipped: [], fetchedAt: new Date(0).toISOString() });

/** The LDAP and MySQL clients of a configuration (TLS files read): what a reload builds first. */
export interface SourceClients {
  readonly ldap: LdapSource;
  readonly volumes: VolumeSource;
}

/** Builds the clients of `config`; throws (naming the file) if a TLS file cannot be read. Connects nowhere. */
export function openClients(config: Config, log: Logger): SourceClients {
  return { ldap: new LdapSource(config), volumes: new VolumeSource(config, log) };
}

export class Sources implements DirectorySource, UsageSource {
  private volumes: VolumeSource;
  private readonly ldap: LdapSync;
  private readonly persistEnabled: boolean;
  readonly store: SnapshotStore;
  readonly health: { readonly ldap: SourceHealth; readonly mysql: SourceHealth };

  constructor(
    private config: Config,
    private readonly log: Logger,
    opts: { persist?: boolean; changeMarginMs?: number } = {},
  ) {
    this.volumes = new VolumeSource(config, log);
    this.store = new SnapshotStore(config.paths.state, log);
    this.persistEnabled = opts.persist ?? true;
    this.health = { ldap: new SourceHealth('ldap', log), mysql: new SourceHealth('mysql', log) };
    this.ldap = new LdapSync(config, new LdapSource(config), this.store, this.health.ldap, log, opts);
  }

  /** Loads the snapshots (and the guard's baseline) a previous process left on disk. */
  async init(nowMs = Date.now()): Promise<void> {
    await this.store.load(this.config.firewall);
    this.store.seedGuard(this.config.firewall, nowMs);
  }

  /**
   * A new config (reload): connections are reopened with the new servers and credentials.
   * With `clients` built beforehand (openClients), nothing here can fail: the switch is whole.
   */
  async reconfigure(config: Config, clients: SourceClients = openClients(config, this.log)): Promise<void> {
    this.config = config;
    this.ldap.reconfigure(config, clients.ldap);
    const old = this.volumes;
    this.volumes = clients.volumes;
    await old.close().catch((e: unknown) => this.log.debug(() => `mysql: closing the previous pool: ${(e as Error).message}`));
  }

  /** Resolves when no background full fetch is running (tests). */
  whenBackgroundIdle(): Promise<void> {
    return this.ldap.whenBackgroundIdle();
  }

  /** Counts of full and change searches (tests: a cycle did no full fetch). */
  get ldapStats(): LdapSource['stats'] {
    return this.ldap.stats;
  }

  /** The last good directory (memory, else disk). */
  get lastDirectory(): Directory | null {
    return this.store.lastDirectory;
  }

  /** The directory for a cycle (LdapSync.fetchDirectory). */
  fetchDirectory(now: Date, opts: DirectoryFetchOptions = {}): Promise<DirectoryResult> {
    return this.ldap.fetchDirectory(now, opts);
  }

  /**
   * The volumes since `resetAt`, counting only the IPs of `directory` (default: the last good
   * directory; none yet = nothing counted): netacct rows of other addresses are ignored before
   * they cost memory (src/netacct/volumes.ts).
   */
  async fetchUsage(now: Date, resetAt: DateTime, directory?: Directory): Promise<UsageResult> {
    const reset = resetAt.toJSDate();
    this.volumes.setDirectory(directory ?? this.store.lastDirectory ?? NO_DIRECTORY);
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

  /**
   * `first`, a fetchUsage run concurrently with the directory fetch (so counting the IPs of the
   * directory before it), read again for `directory` when that holds an IP `first` did not count
   * (a machine new in this directory): its volume is then exact at once. Rare (registrations).
   */
  async completeUsage(first: UsageResult, directory: Directory, now: Date, resetAt: DateTime): Promise<UsageResult> {
    if (!first.fresh || this.volumes.covers(directory)) return first;
    const again = await this.fetchUsage(now, resetAt, directory);
    return again.fresh ? again : first;
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
