// This gateway as one site among several sharing the global rates ([sharing] enabled = 1).
// Each cycle, before the plan: measure the site's throughput from the tc root class counters
// (its demand), exchange rows with the other sites (src/sharing/store.ts), decide the
// allocation (src/sharing/smooth.ts) and hand the site's total to the policy in place of
// [rates] down/up. After the cycle: remember what was applied, and lower the row's claim
// when the allocation went down. Database down: one error line, the conservative fallback,
// the cycle goes on. Owns the sharing state shown by status and the file of the sites last
// seen ([path] state/sharing-sites.json: weights and caps, for a start while the database is
// down). The backup of an HA pair (src/ha/role.ts) reads the rows and writes none: it follows
// the master's row of our site while that is fresh. Never touches the kernel (the policy and the reconciler do) and never fails a cycle.

import type { Config } from '../config/config.js';
import type { Logger } from '../log.js';
import type { Exec } from '../exec/exec.js';
import { readClassCounters, type ClassCounters } from '../kernel/counters.js';
import { Names, ROOT_MINOR, classid } from '../kernel/names.js';
import { effectiveRates } from '../policy/policy.js';
import { formatRate } from '../config/units.js';
import { staticSplit, DIRS, type Pair } from './allocate.js';
import { decide, fallback } from './smooth.js';
import { SiteStore, type ExchangeView, type OwnRow } from './store.js';
import { FaultLog, Writers, checkRow, isFresh, judge, type Judged, type SiteRow } from './peers.js';
import type { DateTime } from 'luxon';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface SharingPeer {
  site: string;
  fresh: boolean;
  ageS: number;
  weight: number;
  cap: Pair;
  demand: Pair;
  allocation: Pair;
}

export interface SharingStatus {
  site: string;
  enabled: boolean;
  /** sharing: allocations from the rows; static: a site is stale; db-down: the database could not be read */
  mode: 'sharing' | 'static' | 'db-down' | null;
  weight: number;
  global: Pair | null;
  cap: Pair | null;
  /** bit/s measured over the last interval */
  demand: Pair | null;
  /** the instantaneous target (what `reselqos share` would print) */
  target: Pair | null;
  /** what this site applies */
  allocation: Pair | null;
  peers: SharingPeer[];
  database: string;
  /** why this site is on the static split because another gateway writes its row (same or case-different name), or null */
  collision: string | null;
  /** this exchange's faults: rows ignored (site, field, value), peers' differing global rates, too many rows */
  problems: string[];
}

/** Overlimits a second of the root class that mean HTB was throttling the site. */
export const LIMITED_PER_S = 5;

interface KnownSite {
  readonly site: string;
  readonly weight: number;
  readonly cap: Pair;
}

export class SharingSite {
  private readonly store: SiteStore;
  private counters: { counters: Record<'down' | 'up', ClassCounters>; atMs: number } | null = null;
  private demand: Pair = { down: 0, up: 0 };
  /** what the kernel applies (after a successful cycle) */
  private current: Pair | null = null;
  /** the decision of the cycle in flight, and our row's claim */
  private pending: { next: Pair; claim: Pair | null } | null = null;
  private peers: SiteRow[] = [];
  /** the other sites last seen (weight, cap), also kept in [path] state for a start while the database is down */
  private known: KnownSite[] | null = null;
  private knownSig = '';
  private lastOkMs: number | null = null;
  private readonly startedMs: number;
  private dbDownSince: string | null = null;
  private status: SharingStatus;
  private users: Pair = { down: 0, up: 0 };
  private readonly faults = new FaultLog();
  private readonly writers = new Writers();
  private collision: string | null = null;
  private problems: string[] = [];

  constructor(
    private config: Config,
    private readonly exec: Exec,
    private readonly log: Logger,
    nowMs: number,
    /** false: the backup of an HA pair (src/ha/role.ts), which reads the rows and writes none */
    private readonly writes: () => boolean = () => true,
  ) {
    this.store = new SiteStore(config);
    this.startedMs = nowMs;
    this.status = this.emptyStatus();
  }

  private emptyStatus(): SharingStatus {
    return {
      site: this.config.site.name,
      enabled: this.config.sharing.enabled,
      mode: null,
      weight: this.config.sharing.weight,
      global: null,
      cap: null,
      demand: null,
      target: null,
      allocation: null,
      peers: [],
      database: 'unknown',
      collision: null,
      problems: [],
    };
  }

  reconfigure(config: Config): void {
    this.config = config;
    this.store.reconfigure(config);
  }

  get view(): SharingStatus {
    return this.status;
  }

  /**
   * Demand since the last call: the throughput from the root class byte counters, or the
   * allocation in force when HTB held packets back all along (the root's overlimits grew by at
   * least LIMITED_PER_S a second): a throttled site wants at least what it has, and TCP through
   * a shaper delivers only ~90 % of the rate, right at the saturation threshold. Unknown (first
   * read, a rebuilt tree): the last value.
   */
  private async measure(nowMs: number): Promise<void> {
    const names = new Names(this.config);
    const read = (d: 'down' | 'up'): Promise<ClassCounters | null> =>
      readClassCounters(this.exec, names.dev(d), classid(ROOT_MINOR)).catch(() => null);
    const [down, up] = await Promise.all([read('down'), read('up')]);
    const prev = this.counters;
    if (down === null || up === null) {
      this.counters = null;
      return;
    }
    const now = { down, up };
    if (prev && nowMs > prev.atMs) {
      const secs = (nowMs - prev.atMs) / 1000;
      const demand = { ...this.demand };
      for (const d of DIRS) {
        const a = now[d];
        const b = prev.counters[d];
        if (a.bytes < b.bytes || a.overlimits < b.overlimits) continue;
        const rate = Math.round(((a.bytes - b.bytes) * 8) / secs);
        const limited = (a.overlimits - b.overlimits) / secs >= LIMITED_PER_S;
        demand[d] = limited && this.current ? Math.max(rate, this.current[d]) : rate;
      }
      this.demand = demand;
    }
    this.counters = { counters: now, atMs: nowMs };
  }

  /** The site's totals for this cycle's plan. */
  async before(at: DateTime): Promise<Pair> {
    const nowMs = at.toMillis();
    const rates = effectiveRates(this.config, at).rates;
    const cap = { down: rates['down']!, up: rates['up']! };
    const ownGlobal = { down: rates['globalDown'] ?? cap.down, up: rates['globalUp'] ?? cap.up };
    await this.measure(nowMs);
    const self = this.config.site.name;
    const interval = this.config.qos.intervalMs;
    const weight = this.config.sharing.weight;
    let decided: { next: Pair; target: Pair; global: Pair; mode: SharingStatus['mode'] } | null = null;
    try {
      let judged: Judged | null = null;
      const decideRow = (view: ExchangeView): OwnRow => {
        const j = judge({
          self,
          nowMs,
          intervalMs: interval,
          stale: this.config.sharing.stale,
          global: ownGlobal,
          view,
          writers: this.writers,
          me: { weight, cap, demand: this.demand, allocated: this.current, applied: this.current },
        });
        judged = j;
        const d = decide(self, ownGlobal, j.rows, this.current);
        decided = { next: d.next, target: d.target, global: ownGlobal, mode: d.staticSplit ? 'static' : 'sharing' };
        const claim = this.current ? { down: Math.max(this.current.down, d.next.down), up: Math.max(this.current.up, d.next.up) } : d.next;
        this.pending = { next: d.next, claim };
        const own: OwnRow = {
          site: self,
          intervalMs: interval,
          weight,
          global: ownGlobal,
          cap,
          demand: this.demand,
          users: this.users,
          allocated: this.current ?? d.next,
          applied: claim,
          writers: j.writers,
        };
        return own;
      };
      if (this.writes()) await this.store.exchange(self, decideRow);
      else {
        // Backup of an HA pair: read, write nothing; follow the master's allocation (our row,
        // as it writes it) while it is fresh, so that a takeover starts from the same rates.
        const r = await this.store.read(self);
        decideRow(r.view);
        const master = r.ownRow ? checkRow(r.ownRow) : null;
        const d0 = decided as unknown as { next: Pair; target: Pair; global: Pair; mode: SharingStatus['mode'] };
        if (master?.ok && isFresh(master.row, interval, this.config.sharing.stale)) decided = { ...d0, next: master.row.applied };
        this.pending = { next: (decided as unknown as typeof d0).next, claim: null };
      }
      const j = judged!;
      for (const line of this.faults.fresh([...j.errors.map((e) => `E${e}`), ...j.warnings.map((w) => `W${w}`)]))
        if (line.startsWith('E')) this.log.error(line.slice(1));
        else this.log.warn(line.slice(1));
      this.peers = j.peers;
      this.collision = j.collision;
      this.problems = [...j.errors, ...j.warnings];
      this.lastOkMs = nowMs;
      await this.remember(j.peers.map((r) => ({ site: r.site, weight: r.weight, cap: r.cap })));
      if (this.dbDownSince !== null) this.log.info(`sharing: database back after being down since ${this.dbDownSince}; sharing resumes`);
      this.dbDownSince = null;
    } catch (e) {
      const known = [{ weight, cap }, ...(await this.recall())];
      const st = {
        down: staticSplit(
          ownGlobal.down,
          known.map((k) => ({ weight: k.weight, cap: k.cap.down })),
        )[0]!,
        up: staticSplit(
          ownGlobal.up,
          known.map((k) => ({ weight: k.weight, cap: k.cap.up })),
        )[0]!,
      };
      const next = fallback(this.current, st, nowMs - (this.lastOkMs ?? this.startedMs), this.config.sharing.stale * interval);
      decided = { next, target: st, global: ownGlobal, mode: 'db-down' };
      this.pending = { next, claim: null };
      if (this.dbDownSince === null) {
        this.dbDownSince = at.toISO() ?? '';
        this.log.error(
          `sharing: database ${this.config.database.host}/${this.config.sharing.db} unusable: ${(e as Error).message}; ` +
            `static split (${formatRate(st.down)} down, ${formatRate(st.up)} up) once ${this.config.sharing.stale} intervals have passed, lower at once`,
        );
      }
    }
    const d = decided!;
    const freshOf = (r: SiteRow): boolean => d.mode !== 'db-down' && isFresh(r, interval, this.config.sharing.stale);
    this.status = {
      ...this.emptyStatus(),
      mode: d.mode,
      global: d.global,
      cap,
      demand: this.demand,
      target: d.target,
      allocation: d.next,
      peers: this.peers.map((r) => ({
        site: r.site,
        fresh: freshOf(r),
        ageS: Math.round(r.ageMs / 100) / 10,
        weight: r.weight,
        cap: r.cap,
        demand: r.demand,
        allocation: r.applied,
      })),
      database: this.dbDownSince === null ? 'ok' : `down since ${this.dbDownSince}`,
      collision: this.collision,
      problems: this.problems,
    };
    // The policy needs at least the default class and the empty-class floors.
    const q = this.config.qos;
    const reserved = q.defaultRate + q.groups * q.emptyClassRate;
    return { down: Math.max(d.next.down, reserved), up: Math.max(d.next.up, reserved) };
  }

  private get knownFile(): string {
    return join(this.config.paths.state, 'sharing-sites.json');
  }

  /** Keeps the other sites' weights and caps (on disk only when they change). */
  private async remember(sites: KnownSite[]): Promise<void> {
    this.known = sites;
    const sig = JSON.stringify(sites);
    if (sig === this.knownSig) return;
    this.knownSig = sig;
    const tmp = `${this.knownFile}.tmp`;
    await writeFile(tmp, sig + '\n')
      .then(() => rename(tmp, this.knownFile))
      .catch((e: Error) => this.log.warn(`sharing: cannot keep the sites in ${this.knownFile}: ${e.message}`));
  }

  /** The other sites last seen: memory, else the file of a previous run, else none. */
  private async recall(): Promise<KnownSite[]> {
    if (this.known) return this.known;
    try {
      const doc = JSON.parse(await readFile(this.knownFile, 'utf8')) as unknown;
      const ok = (v: unknown): v is KnownSite => {
        const o = v as KnownSite;
        return (
          typeof o?.site === 'string' &&
          typeof o.weight === 'number' &&
          o.weight > 0 &&
          Number.isFinite(o.cap?.down) &&
          Number.isFinite(o.cap?.up)
        );
      };
      this.known = Array.isArray(doc) ? doc.filter(ok).filter((k) => k.site !== this.config.site.name) : [];
    } catch {
      this.known = [];
    }
    return this.known;
  }

  /** After the cycle: `ok` = the kernel now applies the decision; active users for the next row. */
  async after(ok: boolean, users: Pair): Promise<void> {
    this.users = users;
    const p = this.pending;
    this.pending = null;
    if (!p || !ok) return;
    this.current = p.next;
    if (p.claim && (p.claim.down > p.next.down || p.claim.up > p.next.up)) {
      await this.store
        .settle(this.config.site.name, p.next)
        .catch((e: Error) => this.log.debug(() => `sharing: settle failed: ${e.message}`));
    }
  }

  close(): Promise<void> {
    return this.store.close();
  }
}
