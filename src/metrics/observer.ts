// The daemon's one observer of cycles: after each cycle it sets the Prometheus metrics,
// reads the class counters (the verify read-back's, else one `tc -s class show` per
// interface), keeps the last hour of throughput and the last moves for the dashboard,
// and hands the state to the publisher. Never changes the kernel or a source; nothing
// it does can fail a cycle (its own errors are logged at debug level).

import type { SharingStatus } from '../sharing/site.js';
import type { Config } from '../config/config.js';
import type { Clock } from '../clock.js';
import { redact, type Logger } from '../log.js';
import type { CycleReport } from '../cycle/cycle.js';
import type { Desired, UserPlan } from '../plan/desired.js';
import type { Directory } from '../sources/types.js';
import type { Sources } from '../state/sources.js';
import type { Reconciler } from '../kernel/reconciler.js';
import type { LeafStats } from '../kernel/tc-stats.js';
import { classid, GROUP_MINOR_BASE } from '../kernel/names.js';
import { DIRECTIONS, nextRule, type Direction } from '../policy/policy.js';
import { explain, type ExplainJson } from './explain.js';
import { Timeline } from './timeline.js';
import type { FirewallPlan } from '../plan/firewall.js';
import { Metrics } from './metrics.js';
import { History, MonotonicCounters, type ClassSample } from './counters.js';
import { queueJson, type DashboardState, type MoveJson, type TopJson } from './views.js';

const MAX_MOVES = 50;

export interface Publish {
  publish(desired: Desired, directory: Directory): void;
}

export class Observer {
  readonly metrics = new Metrics();
  private readonly counters = new MonotonicCounters();
  private readonly history = new History(3600);
  private readonly moves: MoveJson[] = [];
  private prevUsers: readonly UserPlan[] | null = null;
  /** every user's group changes since the reset (explain, the dashboard's search); saved with the volumes */
  timeline = new Timeline();
  private timelineLoaded = false;
  private desired: Desired | null = null;
  private last: CycleReport | null = null;
  private lastBps = new Map<string, number | null>();
  /** each group class's leaf queue at the last cycle, by "direction:group" */
  private lastQueues = new Map<string, LeafStats>();
  private fwCache: { dir: Directory; fw: FirewallPlan; counts: NonNullable<DashboardState['firewall']> } | null = null;
  /** the HA role for the dashboard (set by the daemon's wiring, src/daemon/observe.ts) */
  haView: (() => { role: string; since: string }) | null = null;

  constructor(
    private config: Config,
    private readonly sources: Sources,
    private readonly reconciler: Reconciler,
    private readonly log: Logger,
    private readonly clock: Clock,
    private readonly publisher: Publish | null = null,
    /** this site among the sites sharing a global link (null: not wired) */
    private readonly sharingView: (() => SharingStatus) | null = null,
  ) {}

  reconfigure(config: Config): void {
    this.config = config;
  }

  /** Called once after every cycle. */
  async cycle(r: CycleReport): Promise<void> {
    try {
      await this.observe(r);
    } catch (e) {
      this.log.debug(`metrics: ${(e as Error).message}`);
    }
  }

  /** The site's demand, allocation and peers, when sharing is on. */
  private observeSharing(): void {
    const s = this.sharing();
    const m = this.metrics;
    for (const g of [m.siteDemand, m.siteAllocation, m.siteCap, m.siteMode, m.peerFresh, m.peerAllocation]) g.reset();
    if (!s) return;
    for (const direction of DIRECTIONS) {
      if (s.demand) m.siteDemand.set({ direction }, s.demand[direction]);
      if (s.allocation) m.siteAllocation.set({ direction }, s.allocation[direction]);
      if (s.cap) m.siteCap.set({ direction }, s.cap[direction]);
    }
    for (const mode of ['sharing', 'static', 'db-down'] as const) m.siteMode.set({ mode }, s.mode === mode ? 1 : 0);
    for (const p of s.peers) {
      if (p.site === s.site) continue;
      m.peerFresh.set({ site: p.site }, p.fresh ? 1 : 0);
      for (const direction of DIRECTIONS) m.peerAllocation.set({ site: p.site, direction }, p.allocation[direction]);
    }
  }

  /** The sharing status when [sharing] is on, else null. */
  private sharing(): SharingStatus | null {
    const s = this.sharingView?.() ?? null;
    return s && s.enabled ? s : null;
  }

  private async observe(r: CycleReport): Promise<void> {
    const m = this.metrics;
    this.last = r;
    m.cycles.inc({ result: r.ok ? 'ok' : 'failed' });
    const t = r.timings;
    m.duration.observe({ phase: 'ldap' }, t.ldapMs / 1000);
    m.duration.observe({ phase: 'mysql' }, t.mysqlMs / 1000);
    if (r.desired) m.duration.observe({ phase: 'plan' }, t.planMs / 1000);
    if (r.result) m.duration.observe({ phase: 'apply' }, (t.readMs + t.diffMs + t.applyMs) / 1000);
    m.duration.observe({ phase: 'total' }, t.totalMs / 1000);
    m.sourceUp.set({ source: 'ldap' }, this.sources.health.ldap.current.state === 'ok' ? 1 : 0);
    m.sourceUp.set({ source: 'mysql' }, this.sources.health.mysql.current.state === 'ok' ? 1 : 0);
    m.sourceRefused.set({ source: 'ldap' }, this.sources.health.ldap.refusal ? 1 : 0);
    m.sourceRefused.set({ source: 'mysql' }, this.sources.health.mysql.refusal ? 1 : 0);
    m.interval.set(this.config.qos.intervalMs / 1000);
    this.observeSharing();
    // Policy gauges show the plan the kernel was last brought to: only successful cycles count.
    const d = r.desired;
    if (!d || !r.ok || !r.result) return;
    for (const c of d.classes) {
      const labels = { direction: c.direction, group: String(c.group) };
      m.users.set(labels, c.users);
      m.rate.set(labels, c.rateBps);
      m.ceil.set(labels, c.ceilBps);
    }
    m.ruleActive.reset();
    for (const rule of this.config.rateRules) m.ruleActive.set({ rule: rule.name }, rule.name === d.rule ? 1 : 0);
    const fw = this.firewallCounts(d);
    m.allowed.reset();
    m.refused.reset();
    if (fw) {
      for (const [family, n] of Object.entries(fw.allowed)) m.allowed.set({ family }, n);
      for (const [reason, n] of Object.entries(fw.refused)) m.refused.set({ reason }, n);
    }
    this.desired = d;
    m.moves.inc({ direction: 'down' }, r.moves.down);
    m.moves.inc({ direction: 'up' }, r.moves.up);
    const caughtUp = this.recordDay(d);
    if (r.moves.down + r.moves.up > 0) this.recordMoves(r.at, d.users, !caughtUp);
    this.prevUsers = d.users;
    m.lastCycle.set(Date.parse(r.at) / 1000 + t.totalMs / 1000);
    await this.readCounters(d);
    if (this.publisher) {
      const dir = this.sources.store.lastDirectory;
      if (dir) this.publisher.publish(d, dir);
    }
  }

  /** The counters of every group class of both directions (`fresh`: read now, not the verify pass's read). */
  private async groupSamples(fresh: boolean): Promise<{ samples: ClassSample[]; at: number }> {
    const read = await this.reconciler.classCounters({ fresh });
    const devOf: Record<Direction, string> = { down: this.config.firewall.ethInt, up: this.config.firewall.ethExt };
    const samples: ClassSample[] = [];
    let at = Date.now();
    for (const direction of DIRECTIONS) {
      const dev = read.get(devOf[direction]);
      if (!dev) continue;
      at = dev.at;
      for (let group = 0; group < this.config.qos.groups; group++) {
        const id = classid(GROUP_MINOR_BASE + group);
        const st = dev.stats.get(id);
        const leaf = dev.leaves.get(id);
        if (st) samples.push({ direction, group, ...st, ...(leaf ? { leaf } : {}) });
      }
    }
    return { samples, at };
  }

  private async readCounters(d: Desired): Promise<void> {
    const { samples, at } = await this.groupSamples(false);
    const deltas = this.counters.update(samples, at);
    this.lastBps = new Map();
    for (const x of deltas) {
      const labels = { direction: x.direction, group: String(x.group) };
      this.metrics.sent.inc(labels, x.bytes);
      this.metrics.sentPackets.inc(labels, x.packets);
      this.metrics.dropped.inc(labels, x.drops);
      this.metrics.overlimits.inc(labels, x.overlimits);
      this.metrics.leafDrops.inc(labels, x.leafDrops);
      this.metrics.ecnMarks.inc(labels, x.ecnMarks);
      this.lastBps.set(`${x.direction}:${x.group}`, x.bps);
    }
    this.lastQueues = new Map();
    for (const s of samples) {
      const labels = { direction: s.direction, group: String(s.group) };
      const q = s.leaf;
      this.metrics.backlog.set(labels, q?.backlogBytes ?? 0);
      this.metrics.queued.set(labels, q?.qlen ?? 0);
      if (q?.avgDelayUs != null) this.metrics.queueDelay.set({ ...labels, stat: 'avg' }, q.avgDelayUs / 1e6);
      if (q?.peakDelayUs != null) this.metrics.queueDelay.set({ ...labels, stat: 'peak' }, q.peakDelayUs / 1e6);
      if (q) this.lastQueues.set(`${s.direction}:${s.group}`, q);
    }
    const per = (dir: Direction): (number | null)[] =>
      Array.from({ length: this.config.qos.groups }, (_, g) => {
        const v = this.lastBps.get(`${dir}:${g}`);
        return v === undefined || v === null ? null : Math.round(v);
      });
    const rates = (dir: Direction): number[] => d.classes.filter((c) => c.direction === dir).map((c) => c.rateBps);
    this.history.push({ t: Math.round(at / 1000), down: per('down'), up: per('up'), rateDown: rates('down'), rateUp: rates('up') });
  }

  /**
   * The timeline's day: the one a previous process saved when of the same reset; after a reset
   * or a restart every user is compared with the group the timeline last saw (0 at the reset).
   */
  private recordDay(d: Desired): boolean {
    const store = this.sources.store;
    if (!this.timelineLoaded) {
      this.timelineLoaded = true;
      const saved = Timeline.fromJSON(store.savedTimeline);
      if (saved && saved.day(d.resetAt) === false) this.timeline = saved;
      store.timeline = this.timeline;
    }
    // the first plan or a new day: the moves against the previous plan are not the day's
    if (this.prevUsers === null || this.timeline.day(d.resetAt)) {
      this.timeline.catchUp(d);
      return true;
    }
    return false;
  }

  /** Users whose group changed since the previous plan (cheap when the users line up, as between incremental plans). */
  private recordMoves(at: string, users: readonly UserPlan[], toTimeline: boolean): void {
    const prev = this.prevUsers;
    if (!prev || prev === users) return;
    const found: MoveJson[] = [];
    const cmp = (a: UserPlan, b: UserPlan): void => {
      for (const direction of DIRECTIONS) {
        if (a[direction].group !== b[direction].group) {
          found.push({ at, uid: b.uid, direction, from: a[direction].group, to: b[direction].group });
          if (toTimeline) this.timeline.move(at, a, b, direction);
        }
      }
    };
    const aligned = prev.length === users.length && prev.every((u, i) => u.uid === users[i]!.uid);
    if (aligned) {
      for (let i = 0; i < users.length; i++) if (prev[i] !== users[i]) cmp(prev[i]!, users[i]!);
    } else {
      const byUid = new Map(prev.map((u) => [u.uid, u]));
      for (const u of users) {
        const p = byUid.get(u.uid);
        if (p) cmp(p, u);
      }
    }
    this.moves.unshift(...found.slice(0, MAX_MOVES));
    this.moves.length = Math.min(this.moves.length, MAX_MOVES);
  }

  /** Active machines allowed (per family of their addresses) and refused (per reason), computed again only when the directory or the firewall plan changes. */
  private firewallCounts(d: Desired): DashboardState['firewall'] {
    const fw = d.firewall;
    const dir = this.sources.store.lastDirectory;
    if (!fw || !dir) return null;
    if (this.fwCache && this.fwCache.dir === dir && this.fwCache.fw === fw) return this.fwCache.counts;
    const reasonOf = new Map(fw.refused.map((x) => [x.uid, x.reason]));
    const owners = new Set(dir.owners.map((o) => o.uid));
    const counts = { allowed: { inet: 0, inet6: 0 }, refused: { unpaid: 0, cut: 0, banned: 0, blacklisted: 0 } };
    for (const mc of dir.machines) {
      if (!mc.active || !owners.has(mc.owner)) continue;
      const reason = reasonOf.get(mc.owner);
      if (reason) counts.refused[reason]++;
      else {
        if (mc.ips4.length) counts.allowed.inet++;
        if (mc.ips6.length) counts.allowed.inet6++;
      }
    }
    this.fwCache = { dir, fw, counts };
    return counts;
  }

  private readonly topCounters = new MonotonicCounters();

  /**
   * `reselqos top`: each group's throughput since the previous call (one `tc -s class show` per
   * interface, read now), and the users with the largest volumes since the reset (per-IP
   * throughput "now" is not measured: see docs/PERFORMANCE.md).
   */
  async top(limit = 10): Promise<TopJson> {
    const d = this.desired;
    const { samples, at } = await this.groupSamples(true);
    const bps = new Map(this.topCounters.update(samples, at).map((x) => [`${x.direction}:${x.group}`, x.bps]));
    const queues = new Map(samples.map((s) => [`${s.direction}:${s.group}`, s.leaf]));
    return {
      at: new Date(at).toISOString(),
      classes: (d?.classes ?? []).map((c) => ({
        direction: c.direction,
        group: c.group,
        users: c.users,
        rateBps: c.rateBps,
        bps: bps.get(`${c.direction}:${c.group}`) ?? null,
        queue: queueJson(queues.get(`${c.direction}:${c.group}`)),
      })),
      users: this.largest(d, limit),
    };
  }

  private largestCache: { d: Desired; limit: number; users: TopJson['users'] } | null = null;

  /** The `limit` largest volumes per direction, computed once per plan. */
  private largest(d: Desired | null, limit: number): TopJson['users'] {
    if (!d) return [];
    if (this.largestCache?.d === d && this.largestCache.limit === limit) return this.largestCache.users;
    const users: TopJson['users'] = [];
    for (const direction of DIRECTIONS) {
      // a linear pass keeping the `limit` largest: no sort of every user
      const best: UserPlan[] = [];
      for (const u of d.users) {
        if (best.length === limit && u[direction].bytes <= best[best.length - 1]![direction].bytes) continue;
        let i = best.length;
        while (i > 0 && best[i - 1]![direction].bytes < u[direction].bytes) i--;
        best.splice(i, 0, u);
        if (best.length > limit) best.pop();
      }
      for (const u of best) users.push({ direction, uid: u.uid, bytes: u[direction].bytes, group: u[direction].group });
    }
    this.largestCache = { d, limit, users };
    return users;
  }

  explain(who: string): ExplainJson | null {
    return this.desired ? explain(this.desired, who, this.timeline) : null;
  }

  state(): DashboardState {
    const r = this.last;
    const d = this.desired;
    const now = this.clock().setZone(this.config.qos.timezone);
    const next = nextRule(this.config.rateRules, now);
    return {
      site: this.config.site.name,
      at: r?.at ?? null,
      ok: r ? r.ok : null,
      // error texts pass through the logger's redaction of every registered secret
      error: r?.error ? redact(r.error) : null,
      intervalS: this.config.qos.intervalMs / 1000,
      sources: { ldap: redact(this.sources.health.ldap.describe()), mysql: redact(this.sources.health.mysql.describe()) },
      rule: { current: d?.rule ?? null, next: next ? { rule: next.rule, startsAt: next.startsAt.toISO() ?? '' } : null },
      totals: d ? { down: d.totals.down, up: d.totals.up } : null,
      limits: d ? [...d.limits] : [],
      classes: (d?.classes ?? []).map((c) => ({
        direction: c.direction,
        group: c.group,
        users: c.users,
        rateBps: c.rateBps,
        ceilBps: c.ceilBps,
        bps: this.lastBps.get(`${c.direction}:${c.group}`) ?? null,
        queue: queueJson(this.lastQueues.get(`${c.direction}:${c.group}`)),
      })),
      history: [...this.history.all()],
      moves: [...this.moves],
      firewall: d ? (this.fwCache?.counts ?? null) : null,
      sharing: this.sharing(),
      ha: this.haView?.() ?? null,
    };
  }
}
