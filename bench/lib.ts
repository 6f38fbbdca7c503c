// bench/lib.ts — what the benchmark's orchestrator (bench.ts) and its daemon-side worker
// (worker.ts) share: the IPC message shapes, the summary of one cycle, small statistics.
// Benchmark-only code; never used by the daemon.

import { readFileSync } from 'node:fs';
import type { PlanCounts } from '../src/kernel/diff.js';
import type { StartPhase } from './startphase.js';

export type Timings = { ldapMs: number; mysqlMs: number; planMs: number; readMs: number; diffMs: number; applyMs: number; totalMs: number };

/** A set change of one cycle, as the daemon planned it (SetOp without the member lists of created sets). */
export interface SetMove {
  name: string;
  family: 'inet' | 'inet6';
  maxelem: number;
  add: string[];
  del: string[];
}

export interface CycleSummary {
  ok: boolean;
  error: string | null;
  users: number;
  ips: number;
  skipped: number;
  moves: { down: number; up: number };
  tc: number;
  counts: PlanCounts | null;
  applied: boolean;
  fullRead: boolean;
  /** the set operations were the planner's delta (no set diffed) */
  incremental: boolean;
  /** processes the daemon spawned during the cycle (tool and first argument) */
  spawns: string[];
  timings: Timings;
  /** set changes (only when asked for, and never for created sets) */
  sets: SetMove[] | null;
  /** bytes of each batch the daemon sent */
  batchBytes: { ipset: number; ipt4: number; ipt6: number; tc: number; destroy: number };
  /** warnings and errors the daemon logged during the cycle */
  warnings: string[];
  rssMB: number;
  maxRssMB: number;
  heapUsedMB: number;
}

export interface PickedRow {
  ip: string;
  input: number;
  output: number;
}

export interface Picked {
  uids: string[];
  /** IPs of the picked users (both families), i.e. the set members expected to move per direction */
  ips: number;
  rows: PickedRow[];
}

/** A "<field>: N kB" line of a /proc file of a live process, in MB; null when it is gone. */
function procKbMB(pid: number | null | undefined, file: string, field: string): number | null {
  if (pid === null || pid === undefined) return null;
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/${file}`, 'utf8'));
    return m ? Math.round((Number(m[1]) / 1024) * 10) / 10 : null;
  } catch {
    return null;
  }
}

/** Peak RSS (VmHWM) of a live process, MB; null when it is gone. */
export const vmHwmMB = (pid: number | null | undefined): number | null => procKbMB(pid, 'status', 'VmHWM');

/**
 * Proportional set size (/proc/PID/smaps_rollup `Pss`) of a live process, MB; null when it is
 * gone. For the spawn helper: its RSS counts the node binary's pages the daemon maps too (50 MB
 * of RSS for ~24 MB of its own); its PSS charges it its share of them.
 */
export const pssMB = (pid: number | null | undefined): number | null => procKbMB(pid, 'smaps_rollup', 'Pss');

/** The pids of a process's children (/proc/PID/task/PID/children); [] when it is gone. */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Peak RSS of a daemon plus the PSS of its children alive now (the spawn helper), MB. */
export function vmHwmWithChildrenMB(pid: number): number | null {
  const own = vmHwmMB(pid);
  if (own === null) return null;
  return childPids(pid).reduce((a, c) => a + (pssMB(c) ?? 0), own);
}

export interface MemInfo {
  maxRssMB: number;
  /** PSS of the worker's spawn helper (its own process: not in maxRssMB), null when none runs */
  helperMaxRssMB: number | null;
  /** heap still referenced after a full GC (only when asked for) */
  liveHeapMB?: number;
  rssMB: number;
  heapUsedMB: number;
  heapTotalMB: number;
  externalMB: number;
  arrayBuffersMB: number;
}

/** Where the time and memory of one cycle go, measured piece by piece after the timed cycles. */
export interface Probe {
  ldap: {
    /** ldapts Client.search of the three bases (concurrently, as the daemon does), raw entries */
    rawSearchMs: number;
    /** the daemon's LdapSource search (ldapts + normalizeEntry), three bases concurrently */
    searchMs: number;
    /** buildDirectory over the normalized entries */
    buildDirectoryMs: number;
    /** LdapSource.fetch (all of the above) */
    fetchMs: number;
    entries: { people: number; orgas: number; hosts: number };
    /** retained heap (after GC) of the normalized entries and of the Directory */
    rawEntriesHeapMB: number;
    directoryHeapMB: number;
  };
  mysql: { fetchMs: number; rows: number; usageHeapMB: number };
  plan: { planMs: number; desiredHeapMB: number };
  kernel: {
    /** `ipset list -t` (the cheap check of a steady cycle), exec + parse */
    headersMs: number;
    /** `ipset save` exec (full read-back) */
    saveExecMs: number;
    saveBytes: number;
    /** parseIpsetSave of that text */
    saveParseMs: number;
    /** iptables-save + ip6tables-save (every table), exec + parse */
    tablesMs: number;
    /** tc qdisc/class/filter reads of both interfaces */
    tcMs: number;
    /** buildKernelDesired + diffKernel against the full read-back (members known) */
    diffFullMs: number;
    /** buildKernelDesired alone */
    modelMs: number;
  };
  /** SnapshotStore.persist of a fresh directory: first write, then the same content fetched again (the daemon loop's steady case) */
  persist: { writeMs: number; unchangedMs: number; fileMB: number };
}

/** maxRSS after each step of a fresh process (maxRSS only grows: each step's increment is its own peak). */
export interface MemStep {
  step: string;
  ms: number;
  maxRssMB: number;
  rssMB: number;
  /** heap still referenced after a full GC */
  liveHeapMB: number;
}

export type Request =
  | { cmd: 'init'; conf: string; clockIso: string }
  | { cmd: 'clear' }
  | { cmd: 'cycle'; withSets: boolean }
  | { cmd: 'pick'; users: number }
  | { cmd: 'applyOwnIpset' }
  | { cmd: 'mem'; gc?: boolean }
  | { cmd: 'memprobe' }
  /** median ms of `true` spawned through the daemon's kernel exec (ip netns exec), n times */
  | { cmd: 'spawnTrue'; n: number }
  | { cmd: 'probe'; reps: number }
  | { cmd: 'exit' };

/** One size of the benchmark, as written to the result JSON (`sizes[]`). */
export interface SizeResult {
  users: number;
  hosts: number;
  ips: number;
  daemonUsers: number;
  ldapEntries: number;
  trafficRows: number;
  hourBuckets: number;
  coldCycleMs: number;
  steadyCycleMs: number;
  idleCycleMs: number;
  fixedCycleMs: number | null;
  /** median total of the fixed cycles when they move 10 users (the default --fixed-users), else null */
  fixed10Ms: number | null;
  /** `reselqos start` with a snapshot younger than [ldap] refresh: process spawned → kernel holding the full state (null: --no-start) */
  startFromSnapshotMs: number | null;
  /** the restart measures (bench/startphase.ts) */
  start: StartPhase | null;
  applyMs: number;
  ownIpsetApplyMs: number;
  baselineRestoreMs: number;
  baselineSpawnMs: number;
  baselineSpawnShellMs: number;
  baselineSpawnNetnsExecMs: number;
  ldapFetchMs: number;
  baselineLdapsearchMs: number;
  mysqlMs: number;
  baselineMysqlMs: number;
  planMs: number;
  readMs: number;
  diffMs: number;
  /** the daemon's peak RSS plus its spawn helper's PSS, the largest over the cold and steady workers */
  peakRssMB: number;
  /** of which the spawn helper's PSS (the largest seen) */
  helperPeakRssMB: number | null;
  /** steady cycles whose set operations were the planner's delta, of all steady cycles */
  incrementalCycles: { steady: number; of: number };
  /** processes spawned per cycle (median): steady and idle */
  spawnsPerCycle: { steady: number; idle: number; steadyExample: string[] };
  movesPerSteadyCycle: { users: number; ipsetAdds: number; ipsetDels: number; tcChanges: number };
  ratios: {
    applyVsRestore: number;
    ownIpsetVsRestore: number;
    spawnVsApply: number;
    ldapVsLdapsearch: number;
    mysqlVsClient: number;
    /** steady cycle total / optimal restore of its moves (medians) */
    steadyVsRestore: number;
    /** cold first cycle / ldapsearch full fetch (medians) */
    coldVsLdapsearch: number;
  };
  spawnPerOpMs: { direct: number; shell: number; netnsExec: number };
  /** `ip netns exec <gw> true` from the daemon process and from this (smaller) orchestrator */
  spawnTrue: { daemonMs: number; orchestratorMs: number; daemonRssMB: number; orchestratorRssMB: number };
  phases: { cold: Timings; idle: Timings; steady: Timings; fixed: Timings | null };
  fixedMoves: { users: number; ipsetAdds: number; ipsetDels: number } | null;
  cycles: { cold: Timings[]; idle: Timings[]; steady: Timings[]; fixed: Timings[] };
  perSteadyCycle: {
    applyMs: number;
    ownIpsetApplyMs: number;
    baselineRestoreMs: number;
    baselineSpawnMs: number;
    adds: number;
    dels: number;
    tcBytes: number;
  }[];
  memory: {
    coldWorkersMaxRssMB: number[];
    steadyWorker: MemInfo;
    /** maxRSS of the steady worker at the end of each phase */
    maxRssAfter: { cold: number; idle: number; steady: number; fixed: number };
    steps: MemStep[] | null;
  };
  load: { generateMs: number; slapaddMs: number; trafficMs: number };
  /** the machine while this size ran: the orchestrator's and the servers' peak RSS, the least MemAvailable seen */
  machine: { orchestratorMaxRssMB: number; slapdPeakRssMB: number | null; mariadbPeakRssMB: number | null; memAvailableMinMB: number };
  probe: Probe | null;
  warnings: string[];
}

export type Envelope = Request & { id: number };
export type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function round(x: number, digits = 1): number {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export const MB = 1024 * 1024;
