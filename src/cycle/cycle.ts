// One cycle: fetch LDAP and MySQL concurrently (the kernel's read-back beside them), plan,
// reconcile the kernel. Owns the cycle report and its one-line summary; the loop, the control
// socket and the CLI all run cycles through here. Never applies a directory it does not have: with no
// directory at all (no fetch, no snapshot) the cycle fails and the kernel is untouched.

import { formatRate } from '../config/units.js';
import type { Config } from '../config/config.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { planDesired, type Desired } from '../plan/desired.js';
import { Planner } from '../plan/incremental.js';
import { resetInstant } from '../policy/policy.js';
import type { DirectoryResult, DirectorySource, UsageResult, UsageSource } from '../sources/source.js';
import type { Reconciler, ReconcileResult } from '../kernel/reconciler.js';
import type { PlanCounts } from '../kernel/diff.js';
import type { SharingSite, SharingStatus } from '../sharing/site.js';

export interface CycleReport {
  readonly ok: boolean;
  readonly at: string;
  readonly error: string | null;
  readonly users: number;
  readonly ips: number;
  readonly skipped: number;
  readonly moves: { readonly down: number; readonly up: number };
  /** tc class changes */
  readonly tc: number;
  readonly counts: PlanCounts | null;
  readonly applied: boolean;
  /** where each source's data came from; `none`: that source's fetch failed outright (the cycle failed) */
  readonly sources: { readonly ldap: 'fresh' | 'snapshot' | 'refreshing' | 'none'; readonly mysql: 'fresh' | 'snapshot' | 'none' };
  /** what the LDAP fetch of this cycle brought: nothing new, a patch from a change search, a full fetch */
  readonly ldapChange: 'none' | 'patch' | 'full' | null;
  readonly timings: {
    readonly ldapMs: number;
    readonly mysqlMs: number;
    readonly planMs: number;
    readonly readMs: number;
    readonly diffMs: number;
    readonly applyMs: number;
    readonly totalMs: number;
  };
  readonly desired: Desired | null;
  readonly result: ReconcileResult | null;
  /** [sharing] enabled: this site's demand, allocation and peers after this cycle's exchange */
  readonly share?: SharingStatus | null;
}

const ms = (x: number): number => Math.round(x);

export function summaryLine(r: CycleReport): string {
  const t = r.timings;
  const stale = [
    r.sources.ldap !== 'fresh' ? `ldap:${r.sources.ldap}` : '',
    r.sources.mysql !== 'fresh' ? `mysql:${r.sources.mysql}` : '',
  ].filter(Boolean);
  const head = r.ok ? 'cycle ok' : 'cycle failed';
  return (
    `${head} users=${r.users} ips=${r.ips} moves=d${r.moves.down}/u${r.moves.up} tc=${r.tc} skipped=${r.skipped}` +
    ` ldap=${ms(t.ldapMs)}ms${r.sources.ldap === 'fresh' && (r.ldapChange === 'patch' || r.ldapChange === 'full') ? `(${r.ldapChange})` : ''} mysql=${ms(t.mysqlMs)}ms plan=${ms(t.planMs)}ms apply=${ms(t.readMs + t.diffMs + t.applyMs)}ms` +
    (r.share?.allocation
      ? ` share=d${formatRate(r.share.allocation.down)}/u${formatRate(r.share.allocation.up)}${r.share.mode === 'sharing' ? '' : `(${r.share.mode})`}`
      : '') +
    (stale.length ? ` using=${stale.join(',')}` : '') +
    (r.error ? `: ${r.error}` : '')
  );
}

/** Users whose IPs entered a set of that direction in this plan. */
function moves(desired: Desired, result: ReconcileResult): { down: number; up: number } {
  if (result.incremental && desired.delta) return { down: desired.delta.moved.down, up: desired.delta.moved.up };
  const uidOf = new Map<string, string>();
  for (const u of desired.users) for (const ip of u.ips) uidOf.set(ip, u.uid);
  const dirOf = new Map(desired.sets.map((s) => [s.name, s.direction]));
  const moved = { down: new Set<string>(), up: new Set<string>() };
  for (const op of result.plan.sets) {
    const dir = dirOf.get(op.name);
    if (!dir || op.create) continue;
    for (const ip of op.add) {
      const uid = uidOf.get(ip);
      if (uid) moved[dir].add(uid);
    }
  }
  return { down: moved.down.size, up: moved.up.size };
}

export class CycleRunner {
  private readonly planner = new Planner();

  constructor(
    private config: Config,
    private readonly sources: { readonly directory: DirectorySource; readonly usage: UsageSource },
    private readonly reconciler: Reconciler,
    private readonly log: Logger,
    private readonly clock: Clock,
    private readonly sharing: SharingSite | null = null,
  ) {}

  reconfigure(config: Config): void {
    this.config = config;
  }

  /**
   * One cycle. `ldapWaitMs`: how long to wait for a slow LDAP fetch before going on with the last
   * directory. `fullLdap`: a full directory fetch, awaited, rather than a change search.
   * `force`: past the entry-count rule; `accept`: past the entitlement guard too (update --accept).
   * `snapshot`: the last good directory as it is, LDAP not asked (the daemon's first cycle from a
   * young snapshot on disk; it starts the full fetch after it) — a fetch as usual when there is none.
   * `freshOnly`: a source answering with its last good data fails the cycle, naming why (`plan`).
   */
  async run(
    opts: {
      force?: boolean;
      accept?: boolean;
      dryRun?: boolean;
      ldapWaitMs?: number;
      fullLdap?: boolean;
      snapshot?: boolean;
      freshOnly?: boolean;
    } = {},
  ): Promise<CycleReport> {
    const t0 = performance.now();
    const at = this.clock().setZone(this.config.qos.timezone);
    const reset = resetInstant(this.config.qos, at);
    const nowDate = at.toJSDate();
    let ldapMs = 0;
    let mysqlMs = 0;
    const timed = async <T>(fn: () => Promise<T>, set: (x: number) => void): Promise<T> => {
      const s = performance.now();
      try {
        return await fn();
      } finally {
        set(performance.now() - s);
      }
    };
    const base = {
      at: at.toISO() ?? '',
      users: 0,
      ips: 0,
      skipped: 0,
      moves: { down: 0, up: 0 },
      tc: 0,
      counts: null,
      applied: false,
      desired: null,
      result: null,
      ldapChange: null as CycleReport['ldapChange'],
    };
    // Sites sharing the global rates: measure, exchange rows and decide while the sources are fetched.
    const sharing = this.sharing && this.config.sharing.enabled && !opts.dryRun ? this.sharing : null;
    const shareP = sharing
      ? sharing.before(at).catch((e: Error) => {
          this.log.error(`sharing: ${e.message}; [rates] down/up this cycle`);
          return null;
        })
      : Promise.resolve(null);
    const done = async (ok: boolean, d: Desired | null): Promise<SharingStatus | null> => {
      if (!sharing) return null;
      let down = 0,
        up = 0;
      for (const u of d?.users ?? []) {
        if (u.down.bytes > 0) down++;
        if (u.up.bytes > 0) up++;
      }
      await shareP;
      await sharing.after(ok, { down, up });
      return sharing.view;
    };
    // The kernel's read-back depends on neither source: it runs while they are fetched.
    const readAhead = this.reconciler.readAhead();
    const snapshot = opts.snapshot ? this.sources.directory.lastDirectory : null;
    const [dir, usage] = await Promise.allSettled([
      timed(
        async (): Promise<DirectoryResult> =>
          snapshot
            ? { directory: snapshot, fresh: false, error: null, refreshing: true, change: 'full' }
            : this.sources.directory.fetchDirectory(nowDate, {
                force: opts.force,
                accept: opts.accept,
                waitMs: opts.ldapWaitMs,
                full: opts.fullLdap,
              }),
        (x) => (ldapMs = x),
      ),
      timed(
        () => this.sources.usage.fetchUsage(nowDate, reset),
        (x) => (mysqlMs = x),
      ),
    ]);
    // The volumes count only the IPs of the directory known when they were read: a machine new
    // in this one is read again now (rare: registrations), so that its volume is exact at once.
    if (dir.status === 'fulfilled' && usage.status === 'fulfilled') {
      const first = usage.value;
      usage.value = await timed(
        () => this.sources.usage.completeUsage(first, dir.value.directory, nowDate, reset),
        (x) => (mysqlMs += x),
      );
    }
    const timings = { ldapMs, mysqlMs, planMs: 0, readMs: 0, diffMs: 0, applyMs: 0, totalMs: 0 };
    const ldapFrom = (d: DirectoryResult): CycleReport['sources']['ldap'] => (d.fresh ? 'fresh' : d.refreshing ? 'refreshing' : 'snapshot');
    const mysqlFrom = (u: UsageResult): CycleReport['sources']['mysql'] => (u.fresh ? 'fresh' : 'snapshot');
    if (dir.status === 'rejected' || usage.status === 'rejected') {
      // each source says what it gave: the one that failed is `none`, not the other
      const reasons = [dir, usage].flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
      return {
        ...base,
        share: await done(false, null),
        ok: false,
        error: reasons.join('; '),
        sources: {
          ldap: dir.status === 'fulfilled' ? ldapFrom(dir.value) : 'none',
          mysql: usage.status === 'fulfilled' ? mysqlFrom(usage.value) : 'none',
        },
        timings: { ...timings, totalMs: performance.now() - t0 },
      };
    }
    const sources = { ldap: ldapFrom(dir.value), mysql: mysqlFrom(usage.value) };
    if (opts.freshOnly && (!dir.value.fresh || !usage.value.fresh)) {
      const error = !dir.value.fresh ? (dir.value.error ?? 'ldap failed') : (usage.value.error ?? 'mysql failed');
      return {
        ...base,
        share: await done(false, null),
        ok: false,
        error,
        sources,
        timings: { ...timings, totalMs: performance.now() - t0 },
      };
    }
    base.ldapChange = dir.value.change;
    const totals = await shareP;
    const shared = totals ? { site: this.config.site.name, totals } : undefined;
    const tp = performance.now();
    // Dry runs plan from scratch and leave the incremental planner's state alone.
    const desired = opts.dryRun
      ? planDesired(this.config, dir.value.directory, usage.value.usage, at, reset)
      : this.planner.plan(this.config, dir.value.directory, usage.value.usage, at, reset, shared);
    timings.planMs = performance.now() - tp;
    const counted = {
      users: desired.users.length,
      ips: desired.ipCount.inet + desired.ipCount.inet6, // every user IP, counted by the planner (not a pass over the users)
      skipped: desired.skipped.length,
    };
    try {
      const result = await this.reconciler.reconcile(desired, { dryRun: opts.dryRun, readAhead });
      this.log.debug(
        () =>
          `kernel: ${result.fullRead ? 'full' : 'cheap'} read-back, changes ${JSON.stringify(result.counts)}, read ${Math.round(result.timings.readMs)}ms apply ${Math.round(result.timings.applyMs)}ms`,
      );
      timings.readMs = result.timings.readMs;
      timings.diffMs = result.timings.diffMs;
      timings.applyMs = result.timings.applyMs;
      timings.totalMs = performance.now() - t0;
      return {
        ...base,
        ...counted,
        share: await done(true, desired),
        ok: true,
        error: null,
        sources,
        timings,
        desired,
        result,
        moves: moves(desired, result),
        tc: result.counts.tc.change,
        counts: result.counts,
        applied: result.applied,
      };
    } catch (e) {
      timings.totalMs = performance.now() - t0;
      return { ...base, ...counted, share: await done(false, desired), ok: false, error: (e as Error).message, sources, timings, desired };
    }
  }
}
