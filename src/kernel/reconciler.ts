// The reconciler: read back what the kernel holds, diff it against the desired state,
// apply the typed plan in the fixed order, remember what was applied.
//
// Apply order (docs/DESIGN.md): create/fill sets -> iptables rules -> tc classes ->
// destroy sets nothing references. Each step is one batch through the exec seam, and
// only when it has something to do: a cycle with nothing to change spawns read-back
// commands only.
//
// Read-back policy: a full `ipset save` at start, every [qos] fullSyncInterval, and
// whenever the cheap check (`ipset list -t` entry counts against what we applied)
// disagrees; our iptables chains and the tc tree every [qos] verifyInterval and after
// any apply that touched more than set members and class rates (between read-backs,
// what we applied is remembered). After any failure the memory is dropped, so the next
// cycle reads everything and converges. Leftovers we own are removed only after the
// first complete sync of this process.
//
// Incremental plans: when the plan's delta starts from the plan last brought to the
// kernel (and the cheap check agrees), the set operations are the delta itself: no
// member of any set is compared. The remembered sets are updated from the operations
// applied, never shared with the planner's.
//
// Over 400 lines: the cycle's read -> diff -> apply, `start`'s rebuild and `clear` share the
// read-back and the memory of one object; the batch runner is in batch.ts, the batches of the
// rebuild and of clear in rebuild.ts, the memory in memory.ts, rule identity in ruleid.ts, the
// read-back in ipset.ts / iptables.ts / tc.ts.

import type { Config } from '../config/config.js';
import type { Desired } from '../plan/desired.js';
import type { Logger } from '../log.js';
import { ExecError, type BatchTool, type Exec } from '../exec/exec.js';
import { runBatch, type BatchInput } from './batch.js';
import {
  readIpsetHeaders,
  readIpsets,
  readTables,
  readTc,
  readTcStats,
  type LeafStats,
  type TableState,
  type TcClassStats,
  type TcState,
} from './read.js';
import { Names } from './names.js';
import { KernelMemory } from './memory.js';
import { buildKernelDesired, TABLES, type TableName } from './model.js';
import {
  countPlan,
  deltaSetOps,
  diffKernel,
  isEmptyPlan,
  tableKey,
  type ActualSet,
  type KernelActual,
  type KernelPlan,
  type PlanCounts,
  type SetOp,
  type TcOp,
} from './diff.js';
import { ipsetLineCount, ipsetPieces, renderPlan, type Batches } from './render.js';
import { clearIptables, rebuildBatches } from './rebuild.js';

/** Above this many lines the ipset part is rendered piece by piece while `ipset restore` reads it (the cold fill). */
const STREAM_IPSET_LINES = 100_000;

/** A configured interface does not exist or cannot be read. */
export class KernelReadError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KernelReadError';
  }
}

/** A read-back started ahead of a reconcile (while the cycle fetches its sources): `reconcile` diffs against it. */
export interface ReadAhead {
  readonly result: Promise<{ actual: KernelActual; full: boolean }>;
  /** how long the read took (ms), once done */
  readMs(): number;
  /** the reconciler's memory generation it was read against (a forget or a reconfigure since voids it) */
  readonly generation: number;
}

export interface ClassCounters {
  readonly stats: ReadonlyMap<string, TcClassStats>;
  /** the leaves' own counters and queues, by the class they hang on */
  readonly leaves: ReadonlyMap<string, LeafStats>;
  /** epoch ms of the read */
  readonly at: number;
}

export interface ReconcileResult {
  readonly plan: KernelPlan;
  readonly counts: PlanCounts;
  readonly batches: Batches;
  readonly applied: boolean;
  readonly fullRead: boolean;
  /** the set operations came from the plan's delta (no set was diffed) */
  readonly incremental: boolean;
  readonly timings: { readMs: number; diffMs: number; applyMs: number };
}

const now = (): number => performance.now();

export class Reconciler {
  private names: Names;
  /** what this process believes the kernel holds (src/kernel/memory.ts) */
  private readonly memory = new KernelMemory();
  /** class counters of the tc read-back of the current reconcile, if it read tc (metrics) */
  private freshStats: Map<string, ClassCounters> | null = null;
  /** bumped whenever what a read-back is judged against changes (forget, reconfigure) */
  private generation = 0;

  constructor(
    private config: Config,
    private readonly exec: Exec,
    private readonly log: Logger,
    private readonly clock: () => number = Date.now,
  ) {
    this.names = new Names(config);
  }

  reconfigure(config: Config): void {
    this.config = config;
    this.names = new Names(config);
    this.generation++;
  }

  /** Forget what we know: the next cycle reads everything back. */
  private forget(): void {
    this.memory.forget();
    this.generation++;
  }

  /**
   * Starts the first pass's read-back now, so that it runs while the cycle fetches LDAP and
   * MySQL (it depends on neither); `reconcile(desired, { readAhead })` then diffs against it
   * instead of reading after the plan. A change made from outside after this read is seen by the
   * next cycle's read, as one made between a read and its apply always was. A forget or a
   * reconfigure in between voids it (the pass reads again). Never rejects unobserved.
   */
  readAhead(): ReadAhead {
    this.freshStats = null;
    const t0 = now();
    let took = 0;
    const result = this.readActual().finally(() => (took = now() - t0));
    result.catch(() => undefined); // observed by the reconcile that takes it, if any
    return { result, readMs: () => took, generation: this.generation };
  }

  private async readSets(forceFull: boolean): Promise<{ sets: Map<string, ActualSet>; full: boolean }> {
    if (!forceFull && !this.memory.fullReadDue(this.clock(), this.config.qos.fullSyncIntervalMs)) {
      const agreed = this.memory.setsIfCountsAgree(await readIpsetHeaders(this.exec), this.names.isOurSet);
      if (agreed) return { sets: agreed, full: false };
      this.log.warn('kernel: our ipsets differ from what was applied (changed from outside?): full read-back');
    }
    // What was just read is what we know; a pass diffs against it before the apply updates it.
    const read = await readIpsets(this.exec, this.names.isOurSet);
    return { sets: this.memory.setsRead(read, this.clock()), full: true };
  }

  private async readTcDev(dev: string): Promise<TcState> {
    try {
      return await readTc(this.exec, dev);
    } catch (e) {
      const msg = e instanceof ExecError ? (e.stderr.trim().split('\n')[0] ?? e.message) : (e as Error).message;
      throw new KernelReadError(`cannot read tc state of interface ${dev}: ${msg}`, { cause: e });
    }
  }

  async readActual(forceFull = false): Promise<{ actual: KernelActual; full: boolean }> {
    const cached = forceFull ? null : this.memory.cachedReadBack(this.clock(), this.config.qos.verifyIntervalMs);
    if (cached) {
      const r = await this.readSets(false);
      if (!r.full) return { actual: { sets: r.sets, tables: cached.tables, tc: cached.tc }, full: false };
      // The sets were changed from outside: read the rest back too.
      const [tables, tc] = await Promise.all([this.readAllTables(), this.readAllTc()]);
      this.memory.readBackDone(tables, tc, this.clock());
      return { actual: { sets: r.sets, tables, tc }, full: true };
    }
    // The read-backs are independent: run them together.
    const [{ sets, full }, tables, tc] = await Promise.all([this.readSets(forceFull), this.readAllTables(), this.readAllTc()]);
    this.memory.readBackDone(tables, tc, this.clock());
    return { actual: { sets, tables, tc }, full };
  }

  private async readAllTc(): Promise<Map<string, TcState>> {
    const devs = [...new Set([this.config.firewall.ethInt, this.config.firewall.ethExt])];
    const tcs = await Promise.all(devs.map((d) => this.readTcDev(d)));
    this.freshStats = new Map(
      tcs.map((t) => [t.dev, { stats: t.stats ?? new Map(), leaves: t.leafStats ?? new Map(), at: t.statsAt ?? Date.now() }]),
    );
    return new Map<string, TcState>(tcs.map((t) => [t.dev, t]));
  }

  /**
   * The HTB class counters of both interfaces (metrics): those of this cycle's tc read-back when
   * it read tc (the verify pass), else one `tc -s class show` per interface.
   */
  async classCounters(opts: { fresh?: boolean } = {}): Promise<Map<string, ClassCounters>> {
    if (this.freshStats && !opts.fresh) return this.freshStats;
    const devs = [...new Set([this.config.firewall.ethInt, this.config.firewall.ethExt])];
    const read = await Promise.all(devs.map(async (d) => [d, await readTcStats(this.exec, d)] as const));
    return new Map(read);
  }

  /** Our chains and hooks in every table, one iptables-save and one ip6tables-save. */
  private async readAllTables(): Promise<Map<string, TableState>> {
    const out = new Map<string, TableState>();
    const both = await Promise.all(
      ([4, 6] as const).map(async (family) => [family, await readTables(this.exec, family, TABLES, this.names.isOurChain)] as const),
    );
    for (const [family, t] of both) for (const [table, state] of t) out.set(tableKey(family, table as TableName), state);
    return out;
  }

  /** Plans (and unless dryRun, applies) one reconciliation. */
  async reconcile(desired: Desired, opts: { dryRun?: boolean; readAhead?: ReadAhead } = {}): Promise<ReconcileResult> {
    const ahead = opts.readAhead && opts.readAhead.generation === this.generation ? opts.readAhead : null;
    if (!ahead) this.freshStats = null;
    const first = await this.pass(desired, opts, this.memory.synced, ahead);
    if (opts.dryRun || this.memory.synced) return first;
    // First complete sync of this process done: now (and only now) sweep leftovers we own.
    this.memory.markSynced();
    const sweep = await this.pass(desired, opts, true);
    if (!sweep.applied) return first;
    return {
      plan: first.plan,
      batches: first.batches,
      applied: true,
      fullRead: first.fullRead,
      incremental: first.incremental,
      counts: addCounts(first.counts, sweep.counts),
      timings: {
        readMs: first.timings.readMs + sweep.timings.readMs,
        diffMs: first.timings.diffMs + sweep.timings.diffMs,
        applyMs: first.timings.applyMs + sweep.timings.applyMs,
      },
    };
  }

  private async pass(
    desired: Desired,
    opts: { dryRun?: boolean },
    sweep: boolean,
    ahead: ReadAhead | null = null,
  ): Promise<ReconcileResult> {
    let t0 = now();
    let read;
    try {
      read = ahead ? await ahead.result : await this.readActual();
    } catch (e) {
      this.forget();
      throw e;
    }
    const t1 = now();
    // a read ahead ran beside the fetches: its own duration is its cost (the wait here is ~0)
    if (ahead) t0 = t1 - ahead.readMs();
    const kd = buildKernelDesired(this.config, desired, this.names);
    const base = this.memory.lastVersion;
    const setOps =
      !read.full && desired.delta !== null && base !== null && desired.delta.base === base
        ? deltaSetOps(kd.sets, desired.delta.sets, read.actual.sets)
        : null;
    const plan = this.memory.withAppliedRates(diffKernel(kd, read.actual, { sweep, setOps: setOps ?? undefined }), kd);
    const stream = !opts.dryRun && ipsetLineCount(plan.sets) > STREAM_IPSET_LINES;
    const batches = renderPlan(plan, { skipIpset: stream });
    const counts = countPlan(plan);
    const t2 = now();
    const incremental = setOps !== null;
    if (opts.dryRun || isEmptyPlan(plan)) {
      if (!opts.dryRun) this.memory.unchanged(desired.version);
      return {
        plan,
        counts,
        batches,
        applied: false,
        fullRead: read.full,
        incremental,
        timings: { readMs: t1 - t0, diffMs: t2 - t1, applyMs: 0 },
      };
    }
    try {
      await this.apply(batches, concurrentTc(plan), stream ? plan.sets : null);
    } catch (e) {
      this.forget(); // re-read everything next cycle
      throw e;
    }
    this.memory.applied(plan, kd, desired.version);
    return {
      plan,
      counts,
      batches,
      applied: true,
      fullRead: read.full,
      incremental,
      timings: { readMs: t1 - t0, diffMs: t2 - t1, applyMs: now() - t2 },
    };
  }

  private run(tool: BatchTool, cmd: string, args: string[], input: BatchInput): Promise<void> {
    return runBatch(this.exec, tool, cmd, args, input);
  }

  /**
   * Runs the batches in the fixed order. `tcAlongside`: the tc batch only changes class
   * rates and nothing else touches rules or creates sets, so it runs alongside the set
   * changes (the order matters only between sets, the rules using them and the classes
   * they lead to, none of which is created or removed then).
   */
  async apply(b: Batches, tcAlongside = false, streamSets: readonly SetOp[] | null = null): Promise<void> {
    // `streamSets`: the set operations whose batch was not rendered (too large): pieces as ipset reads
    const ipset: BatchInput | null = streamSets && streamSets.length > 0 ? () => ipsetPieces(streamSets) : b.ipset;
    if (tcAlongside && ipset && b.tc && !b.iptables[4] && !b.iptables[6] && !b.destroy) {
      const both = await Promise.allSettled([this.run('ipset', 'ipset', ['restore'], ipset), this.run('tc', 'tc', ['-batch', '-'], b.tc)]);
      for (const r of both) if (r.status === 'rejected') throw r.reason;
      return;
    }
    if (ipset) await this.run('ipset', 'ipset', ['restore'], ipset);
    if (b.iptables[4]) await this.run('iptables-restore', 'iptables-restore', ['--noflush', '-w'], b.iptables[4]);
    if (b.iptables[6]) await this.run('iptables-restore', 'ip6tables-restore', ['--noflush', '-w'], b.iptables[6]);
    if (b.tc) await this.run('tc', 'tc', ['-batch', '-'], b.tc);
    if (b.destroy) await this.run('ipset', 'ipset', ['restore'], b.destroy);
  }

  /**
   * `start`: remove our rules, chains, queues and sets and rebuild them in one go. The slow
   * part (filling every set) happens in temporary sets while the old state still serves;
   * then sets are swapped, chains rewritten, hooks replaced and the tc tree replaced in
   * quick succession. Returns the time users may see partial state (the switch).
   */
  async rebuild(desired: Desired): Promise<{ fillMs: number; gapMs: number; sets: number; ips: number }> {
    const kd = buildKernelDesired(this.config, desired, this.names);
    const t0 = now();
    let actual: KernelActual;
    try {
      actual = (await this.readActual(true)).actual;
    } catch (e) {
      this.forget();
      throw e;
    }
    // 1. Fill temporary sets (no user-visible change), then 2. the switch: sets, rules, the tc tree.
    const b = rebuildBatches(kd, actual);
    try {
      await this.run('ipset', 'ipset', ['restore'], b.fill);
      const t1 = now();
      await this.run('ipset', 'ipset', ['restore'], b.swap);
      // Every table of a family in one iptables-restore: hooks replaced, chains rewritten.
      if (b.iptables[4]) await this.run('iptables-restore', 'iptables-restore', ['--noflush', '-w'], b.iptables[4]);
      if (b.iptables[6]) await this.run('iptables-restore', 'ip6tables-restore', ['--noflush', '-w'], b.iptables[6]);
      if (b.tc) await this.run('tc', 'tc', ['-batch', '-'], b.tc);
      const t2 = now();
      // 3. Sets nothing uses any more.
      if (b.destroy) await this.run('ipset', 'ipset', ['restore'], b.destroy);
      this.memory.rebuilt(kd, b.maxelemOf, desired.version, this.clock());
      return { fillMs: t1 - t0, gapMs: t2 - t1, sets: kd.sets.length, ips: desired.users.reduce((a, u) => a + u.ips.length, 0) };
    } catch (e) {
      this.forget();
      throw e;
    }
  }

  /** Removes every object reselqos owns (hooks, chains, root qdiscs of our interfaces, sets), nothing else. */
  async clear(): Promise<{ chains: number; hooks: number; qdiscs: number; sets: number }> {
    const out = { chains: 0, hooks: 0, qdiscs: 0, sets: 0 };
    const tables = await this.readAllTables();
    for (const family of [4, 6] as const) {
      const c = clearIptables(tables, family);
      out.hooks += c.hooks;
      out.chains += c.chains;
      if (c.text) await this.run('iptables-restore', family === 4 ? 'iptables-restore' : 'ip6tables-restore', ['--noflush', '-w'], c.text);
    }
    const lines: string[] = [];
    for (const dev of new Set([this.config.firewall.ethInt, this.config.firewall.ethExt])) {
      let st: TcState;
      try {
        st = await readTc(this.exec, dev);
      } catch (e) {
        // no such interface: nothing of ours there; any other failure leaves our root in place
        if (e instanceof ExecError && /Cannot find device/.test(e.stderr)) continue;
        throw e;
      }
      const root = st.qdiscs.find((q) => q.parent === null);
      if (root && root.kind === 'htb' && root.handle === '1:') lines.push(`qdisc del dev ${dev} root`);
    }
    if (lines.length) await this.run('tc', 'tc', ['-batch', '-'], lines.join('\n') + '\n');
    out.qdiscs = lines.length;
    const headers = await readIpsetHeaders(this.exec);
    const ours = [...headers.keys()].filter(this.names.isOurSet).sort();
    if (ours.length) await this.run('ipset', 'ipset', ['restore'], ours.map((n) => `destroy ${n}`).join('\n') + '\n');
    out.sets = ours.length;
    this.memory.cleared();
    return out;
  }
}

/** The plan only changes set members and class rates: tc may run alongside ipset. */
function concurrentTc(plan: KernelPlan): boolean {
  return (
    plan.iptables[4].length === 0 &&
    plan.iptables[6].length === 0 &&
    plan.destroy.length === 0 &&
    plan.sets.every((op: SetOp) => !op.create && !op.rebuild) &&
    plan.tc.every((op: TcOp) => op.kind === 'class' && op.verb === 'change')
  );
}

function addCounts(a: PlanCounts, b: PlanCounts): PlanCounts {
  return {
    ipset: { add: a.ipset.add + b.ipset.add, del: a.ipset.del + b.ipset.del },
    tc: { change: a.tc.change + b.tc.change, add: a.tc.add + b.tc.add },
    iptables: a.iptables + b.iptables,
  };
}
