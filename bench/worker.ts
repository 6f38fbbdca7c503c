// bench/worker.ts — the daemon side of the benchmark: one process that holds a reselqos
// runtime (openRuntime, as the daemon does) and runs cycles when the orchestrator
// (bench.ts) asks, over the IPC channel of child_process.fork. Kept apart from the
// orchestrator so that its peak RSS is the daemon's, not the fixture generator's.
// It also picks the users to move (from its last plan), replays its own ipset batch,
// and, after the timed cycles, measures where time and memory go piece by piece.
// Benchmark-only code; never used by the daemon.

import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'ldapts';
import { parseConfig, type Config } from '../src/config/config.js';
import { daemonExec, kernelExec, openRuntime, type Runtime } from '../src/daemon/runtime.js';
import type { Exec } from '../src/exec/exec.js';
import type { HelperExec } from '../src/exec/exec-via-helper.js';
import { fixedClock } from '../src/clock.js';
import type { Logger } from '../src/log.js';
import { LdapSource } from '../src/ldap/ldap.js';
import { VolumeSource } from '../src/netacct/volumes.js';
import { buildDirectory, type RawEntry } from '../src/ldap/directory.js';
import { SnapshotStore } from '../src/state/snapshot.js';
import type { Directory, Usage } from '../src/sources/types.js';
import { planDesired, type Desired } from '../src/plan/desired.js';
import { resetInstant } from '../src/policy/policy.js';
import { parseIpsetSave, readIpsetHeaders, readTables, readTc, type TableState } from '../src/kernel/read.js';
import { buildKernelDesired, TABLES, type TableName } from '../src/kernel/model.js';
import { diffKernel, tableKey, type ActualSet, type KernelActual } from '../src/kernel/diff.js';
import { Names } from '../src/kernel/names.js';
import { prng } from '../sandbox/campus.js';
import {
  MB,
  median,
  pssMB,
  type CycleSummary,
  type Envelope,
  type MemInfo,
  type MemStep,
  type Picked,
  type PickedRow,
  type Probe,
  type Reply,
  type SetMove,
} from './lib.js';

class BenchLogger implements Logger {
  lines: string[] = [];
  error(msg: string): void {
    this.push(`error: ${msg}`);
  }
  warn(msg: string): void {
    this.push(`warn: ${msg}`);
  }
  info(): void {}
  debug(): void {}
  private push(s: string): void {
    if (this.lines.length < 20) this.lines.push(s.slice(0, 500));
  }
  take(): string[] {
    const l = this.lines;
    this.lines = [];
    return l;
  }
}

const log = new BenchLogger();
let rt: Runtime | null = null;
let clockIso = '';
/** only what the next pick / replay needs from the last cycle */
let lastUsers: Desired['users'] | null = null;
let lastLimits: readonly number[] = [];
let lastIpsetBatch: string | null = null;
/** the daemon's exec seam (the spawn helper), and a direct spawn for the cost of a fork of this process */
let helper: HelperExec | null = null;
let directExec: Exec | null = null;
/** processes spawned through the runtime's exec seam since the last cycle started */
const spawned: string[] = [];
const picked = new Set<string>();
let order: number[] | null = null;
let cursor = 0;

function mem(): MemInfo {
  const m = process.memoryUsage();
  return {
    maxRssMB: process.resourceUsage().maxRSS / 1024,
    helperMaxRssMB: pssMB(helper?.pid),
    rssMB: m.rss / MB,
    heapUsedMB: m.heapUsed / MB,
    heapTotalMB: m.heapTotal / MB,
    externalMB: m.external / MB,
    arrayBuffersMB: m.arrayBuffers / MB,
  };
}

function runtime(): Runtime {
  if (!rt) throw new Error('worker: not initialised');
  return rt;
}

async function cycle(withSets: boolean): Promise<CycleSummary> {
  const r = runtime();
  lastUsers = null;
  lastIpsetBatch = null;
  log.take();
  spawned.length = 0;
  // As the daemon's timer cycles do (interval 10 s): a slow LDAP fetch goes on in the background.
  const rep = await r.cycles.run({ ldapWaitMs: 5000 });
  const res = rep.result;
  let sets: SetMove[] | null = null;
  if (withSets && res) {
    sets = res.plan.sets
      .filter((s) => !s.create && !s.rebuild)
      .map((s) => ({ name: s.name, family: s.family, maxelem: s.maxelem, add: [...s.add], del: [...s.del] }));
  }
  const b = res?.batches;
  const m = mem();
  const summary: CycleSummary = {
    ok: rep.ok,
    error: rep.error,
    users: rep.users,
    ips: rep.ips,
    skipped: rep.skipped,
    moves: rep.moves,
    tc: rep.tc,
    counts: rep.counts,
    applied: rep.applied,
    fullRead: res?.fullRead ?? false,
    incremental: res?.incremental ?? false,
    spawns: [...spawned],
    timings: { ...rep.timings },
    sets,
    batchBytes: {
      ipset: b?.ipset?.length ?? 0,
      ipt4: b?.iptables[4]?.length ?? 0,
      ipt6: b?.iptables[6]?.length ?? 0,
      tc: b?.tc?.length ?? 0,
      destroy: b?.destroy?.length ?? 0,
    },
    warnings: log.take(),
    rssMB: m.rssMB,
    maxRssMB: m.maxRssMB,
    heapUsedMB: m.heapUsedMB,
  };
  lastUsers = rep.desired?.users ?? null;
  lastLimits = rep.desired?.limits ?? [];
  lastIpsetBatch = b?.ipset ?? null;
  return summary;
}

const INT_MAX_ROW = 2_000_000_000; // netacct's counters are signed INT

/**
 * Picks `n` users not picked before, below the last group in both directions and with an
 * IPv4 address, and the traffic rows that push each of them just over the limit of their
 * current group in both directions (so each moves exactly one group up, down and up).
 */
function pick(n: number): Picked {
  const users = lastUsers;
  if (!users) throw new Error('worker: pick needs a completed cycle first');
  const last = lastLimits.length; // groups - 1
  if (!order || order.length !== users.length) {
    const rnd = prng(4242);
    order = users.map((_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    cursor = 0;
  }
  const out: Picked = { uids: [], ips: 0, rows: [] };
  while (out.uids.length < n && cursor < order.length) {
    const u = users[order[cursor++]!]!;
    if (picked.has(u.uid) || u.down.group >= last || u.up.group >= last) continue;
    const v4 = u.ips.find((ip) => !ip.includes(':'));
    if (!v4) continue;
    picked.add(u.uid);
    out.uids.push(u.uid);
    out.ips += u.ips.length;
    let down = lastLimits[u.down.group]! + 1_000_000 - u.down.bytes;
    let up = lastLimits[u.up.group]! + 1_000_000 - u.up.bytes;
    while (down > 0 || up > 0) {
      const row: PickedRow = { ip: v4, input: Math.min(down, INT_MAX_ROW), output: Math.min(up, INT_MAX_ROW) };
      down -= row.input;
      up -= row.output;
      out.rows.push(row);
    }
  }
  if (out.uids.length < n) throw new Error(`worker: only ${out.uids.length} of ${n} users could be picked`);
  return out;
}

async function applyOwnIpset(): Promise<number> {
  const r = runtime();
  if (!lastIpsetBatch) throw new Error('worker: the last cycle had no ipset batch');
  const t0 = performance.now();
  await r.reconciler.apply({ ipset: lastIpsetBatch, iptables: { 4: null, 6: null }, tc: null, destroy: null });
  return performance.now() - t0;
}

const gc = (): void => {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
};
const heapMB = (): number => process.memoryUsage().heapUsed / MB;

async function timeIt<T>(reps: number, fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const times: number[] = [];
  let value: T | undefined;
  for (let i = 0; i < reps; i++) {
    value = undefined; // let the previous result go before the next run
    gc();
    const t0 = performance.now();
    value = await fn();
    times.push(performance.now() - t0);
  }
  return { ms: median(times), value: value as T };
}

/** Piece-by-piece timings and retained sizes (after GC) of one cycle's work. */
async function probe(reps: number): Promise<Probe> {
  const r = runtime();
  const config: Config = r.config;
  const l = config.ldap;
  const a = l.attrs;
  const ownerAttrs = [a.uid, a.endInternet, a.coupure, a.ban, a.cotiz];
  const hostAttrs = [a.host, a.owner, a.ip, a.ip6, a.zone];
  const bases: [string, string, string[]][] = [
    [l.basePeople, l.peopleFilter, ownerAttrs],
    [l.baseOrga, l.orgaFilter, ownerAttrs],
    [l.baseHosts, l.hostsFilter, hostAttrs],
  ];

  // ldapts alone (no normalisation), three concurrent searches on their own connections
  const raw = await timeIt(reps, async () => {
    const counts = await Promise.all(
      bases.map(async ([base, filter, attributes]) => {
        const c = new Client({ url: l.url, timeout: l.timeoutMs, connectTimeout: l.connectTimeoutMs, strictDN: false });
        try {
          const res = await c.search(base, {
            scope: 'sub',
            filter,
            attributes,
            paged: { pageSize: l.pageSize },
            timeLimit: Math.ceil(l.timeoutMs / 1000),
          });
          return res.searchEntries.length;
        } finally {
          await c.unbind().catch(() => undefined);
        }
      }),
    );
    return counts;
  });

  // the daemon's search (ldapts + its entry view), one connection per base; private in TypeScript only
  const src = new LdapSource(config);
  const priv = src as unknown as {
    withClient<T>(fn: (c: Client) => Promise<T>): Promise<T>;
    searchOn(c: Client, base: string, filter: string, attrs: string[], what: string): Promise<RawEntry[]>;
  };
  const search = (b: string, f: string, at: string[], what: string): Promise<RawEntry[]> =>
    priv.withClient((c) => priv.searchOn(c, b, f, at, what));
  const searched = await timeIt(reps, () => Promise.all(bases.map(([b, f, at], i) => search(b, f, at, String(i)))));
  let entries: RawEntry[][] | null = searched.value;
  (searched as { value: RawEntry[][] | null }).value = null;
  const counts = { people: entries[0]!.length, orgas: entries[1]!.length, hosts: entries[2]!.length };
  const opts = { ldap: l, firewall: config.firewall, fetchedAt: new Date().toISOString() };
  gc();
  const h0 = heapMB();
  const built = await timeIt(reps, async () => buildDirectory({ people: entries![0]!, orgas: entries![1]!, hosts: entries![2]! }, opts));
  let directory = built.value;
  gc();
  const h1 = heapMB();
  entries = null;
  gc();
  const h2 = heapMB();
  const rawEntriesHeapMB = h1 - h2;
  const directoryHeapMB = h1 - h0; // the Directory on top of the entries it was built from
  const fetched = await timeIt(reps, () => src.fetch(new Date()));
  directory = fetched.value;

  // volumes
  const at = fixedClock(clockIso)().setZone(config.qos.timezone);
  const reset = resetInstant(config.qos, at);
  const vol = new VolumeSource(config, log);
  gc();
  const h3 = heapMB();
  const usage = await timeIt(reps, () => vol.fetch(reset.toJSDate(), new Date()));
  gc();
  const usageHeapMB = heapMB() - h3;
  await vol.close();

  // plan
  gc();
  const h4 = heapMB();
  const planned = await timeIt(reps, async () => planDesired(config, directory, usage.value, at, reset));
  gc();
  const desiredHeapMB = heapMB() - h4;

  // kernel reads
  const exec = r.exec;
  const names = new Names(config);
  const headers = await timeIt(reps, () => readIpsetHeaders(exec));
  const save = await timeIt(reps, () => exec('ipset', ['save'], { timeoutMs: 120_000 }));
  const parsed = await timeIt(reps, async () => parseIpsetSave(save.value.stdout, names.isOurSet));
  const tables = await timeIt(reps, async () => {
    const out = new Map<string, TableState>();
    for (const family of [4, 6] as const) {
      const t = await readTables(exec, family, TABLES, names.isOurChain);
      for (const [table, state] of t) out.set(tableKey(family, table as TableName), state);
    }
    return out;
  });
  const tc = await timeIt(reps, async () => [await readTc(exec, config.firewall.ethInt), await readTc(exec, config.firewall.ethExt)]);
  const sets = new Map<string, ActualSet>();
  for (const [name, info] of parsed.value)
    sets.set(name, { family: info.family, maxelem: info.maxelem, members: new Set(info.entries), count: info.entries.length });
  const actual: KernelActual = {
    sets,
    tables: tables.value,
    tc: new Map([
      [config.firewall.ethInt, tc.value[0]!],
      [config.firewall.ethExt, tc.value[1]!],
    ]),
  };
  const model = await timeIt(reps, async () => buildKernelDesired(config, planned.value, names));
  const diff = await timeIt(reps, async () => diffKernel(buildKernelDesired(config, planned.value, names), actual, { sweep: true }));

  // snapshot persistence (not done by these cycles: persist: false)
  const dir = mkdtempSync(join(tmpdir(), 'rq-bench-state-'));
  let persist: Probe['persist'];
  try {
    const store = new SnapshotStore(dir, log);
    store.acceptDirectory(directory, 1, { accept: true, fw: config.firewall, nowMs: Date.now() });
    const t0 = performance.now();
    await store.persist();
    const writeMs = performance.now() - t0;
    const again = await src.fetch(new Date(Date.now() + 1000));
    store.acceptDirectory(again, 1, { accept: true, fw: config.firewall, nowMs: Date.now() });
    const t1 = performance.now();
    await store.persist();
    const unchangedMs = performance.now() - t1;
    persist = { writeMs, unchangedMs, fileMB: statSync(join(dir, 'directory.json')).size / MB };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  return {
    ldap: {
      rawSearchMs: raw.ms,
      searchMs: searched.ms,
      buildDirectoryMs: built.ms,
      fetchMs: fetched.ms,
      entries: counts,
      rawEntriesHeapMB,
      directoryHeapMB,
    },
    mysql: { fetchMs: usage.ms, rows: usage.value.byIp.size, usageHeapMB },
    plan: { planMs: planned.ms, desiredHeapMB },
    kernel: {
      headersMs: headers.ms,
      saveExecMs: save.ms,
      saveBytes: save.value.stdout.length,
      saveParseMs: parsed.ms,
      tablesMs: tables.ms,
      tcMs: tc.ms,
      diffFullMs: diff.ms,
      modelMs: model.ms,
    },
    persist,
  };
}

/**
 * In a fresh process: the directory fetch alone, then the volumes, then the plan, each result
 * kept (as the daemon keeps them), then two full cycles of the runtime (its first cycle in this
 * process: full read-back of a populated kernel, as after a restart).
 */
async function memprobe(): Promise<MemStep[]> {
  const r = runtime();
  const config = r.config;
  const steps: MemStep[] = [];
  let t = performance.now();
  const mark = (step: string): void => {
    const ms = performance.now() - t;
    gc();
    const m = mem();
    steps.push({ step, ms, maxRssMB: m.maxRssMB, rssMB: m.rssMB, liveHeapMB: heapMB() });
    t = performance.now();
  };
  mark('process started, runtime opened');
  // what each step produced stays referenced from here until 'all dropped'
  const kept: { directory: Directory | null; usage: Usage | null; desired: Desired | null } = {
    directory: null,
    usage: null,
    desired: null,
  };
  kept.directory = await new LdapSource(config).fetch(new Date());
  mark('LDAP fetch (directory kept)');
  const at = fixedClock(clockIso)().setZone(config.qos.timezone);
  const reset = resetInstant(config.qos, at);
  const vol = new VolumeSource(config, log);
  kept.usage = await vol.fetch(reset.toJSDate(), new Date());
  await vol.close();
  mark('+ MySQL fetch (usage kept)');
  kept.desired = planDesired(config, kept.directory, kept.usage, at, reset);
  mark('+ plan (desired kept)');
  kept.directory = kept.usage = kept.desired = null;
  mark('all dropped');
  const c1 = await r.cycles.run();
  if (!c1.ok) throw new Error(`memprobe cycle: ${c1.error}`);
  mark('+ first cycle of this process (full read-back of a populated kernel)');
  const c2 = await r.cycles.run();
  if (!c2.ok) throw new Error(`memprobe cycle: ${c2.error}`);
  mark('+ second cycle (steady, nothing changes)');
  return steps;
}

async function handle(m: Envelope): Promise<unknown> {
  switch (m.cmd) {
    case 'init': {
      clockIso = m.clockIso;
      const config = parseConfig(m.conf, 'bench qos.conf', { mode: 0o600 });
      // As openRuntime does for the daemon: the tools are spawned by the spawn helper.
      helper = daemonExec(config, log);
      if (!(await helper.ready())) throw new Error('worker: the spawn helper did not start');
      directExec = kernelExec(config);
      const base = helper.exec;
      const recording: Exec = (cmd, args, opts) => {
        spawned.push(`${cmd} ${args.slice(0, 2).join(' ')}`.trim());
        return base(cmd, args, opts);
      };
      rt = await openRuntime(config, { log, persist: false, clock: fixedClock(m.clockIso), exec: recording });
      return mem();
    }
    case 'clear':
      return runtime().reconciler.clear();
    case 'cycle':
      return cycle(m.withSets);
    case 'pick':
      return pick(m.users);
    case 'applyOwnIpset':
      return applyOwnIpset();
    case 'mem': {
      if (!m.gc) return mem();
      gc();
      return { ...mem(), liveHeapMB: heapMB() };
    }
    case 'memprobe':
      return memprobe();
    case 'spawnTrue': {
      const r = runtime();
      const xs: number[] = [];
      for (let i = 0; i < m.n; i++) {
        const t0 = performance.now();
        await (directExec ?? r.exec)('true', []); // a direct spawn: what a fork of this process costs
        xs.push(performance.now() - t0);
      }
      return median(xs);
    }
    case 'probe':
      return probe(m.reps);
    case 'exit':
      await rt?.close();
      await helper?.close();
      setImmediate(() => process.exit(0));
      return null;
  }
}

if (!process.send) {
  console.error('bench/worker.js is started by bench/bench.js (child_process.fork), not by hand');
  process.exit(2);
}
process.on('disconnect', () => process.exit(0));
process.on('message', (m: Envelope) => {
  void handle(m).then(
    (value) => process.send!({ id: m.id, ok: true, value } satisfies Reply),
    (e: unknown) => process.send!({ id: m.id, ok: false, error: e instanceof Error ? (e.stack ?? e.message) : String(e) } satisfies Reply),
  );
});
