// bench/startphase.ts — the restart measures of the benchmark (issue 16), on the real command
// (dist/cli.js) against the size's slapd, MariaDB and gateway namespace, each time on an emptied
// kernel (`reselqos clear`), so that "the kernel holds the full state" has one meaning:
//   1. `reselqos start` with no snapshot on disk: the full LDAP fetch awaited (as before issue 16);
//      it leaves the snapshot behind;
//   2. `reselqos start` with that snapshot (seconds old, younger than [ldap] refresh):
//      startFromSnapshotMs = from spawning the process to its "start: rebuilt …" line (printed
//      once the switch is done);
//   3. `reselqos run` (the daemon as systemd starts it) with the snapshot: from spawning the
//      process to its first "cycle ok" line; its peak RSS (VmHWM) then.
// After each, the set entries in the kernel are counted (`ipset list -t`) against the IPs of the
// directory, and the daemon is stopped (SIGTERM; a background LDAP fetch still running in it is
// not waited for). Benchmark-only code; never used by the daemon.

import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gateway } from '../sandbox/netns.js';
import { isAlive } from '../src/daemon/pidfile.js';
import { round, vmHwmWithChildrenMB } from './lib.js';

/** The split `start` prints on its result line (ms). */
export interface StartSplit {
  totalMs: number;
  stateReadMs: number | null;
  directoryMs: number | null;
  volumesMs: number | null;
  planMs: number | null;
  fillMs: number | null;
  switchMs: number | null;
  ips: number | null;
}

export interface StartPhase {
  /** `start` with no snapshot on disk (the full fetch awaited): process spawned → kernel rebuilt */
  startCold: StartSplit | null;
  /** `start` with a snapshot younger than [ldap] refresh: process spawned → kernel rebuilt */
  startFromSnapshot: StartSplit | null;
  /** the daemon (`run`) on an empty kernel with that snapshot: process spawned → its first cycle logged */
  runFromSnapshot: { totalMs: number; firstCycle: string; peakRssMB: number | null } | null;
  /** set entries (qos_d*, qos_u*, v6 too) after each, and what the directory's IPs call for (2 per IP) */
  setEntries: { expected: number; startCold: number | null; startFromSnapshot: number | null; runFromSnapshot: number | null };
  /** the daemon `start` spawned: peak RSS (VmHWM) when stopped */
  startDaemonPeakRssMB: number | null;
  warnings: string[];
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** ms from spawn to the first line matching `mark` (stdout or stderr), null if none */
  markMs: number | null;
  markLine: string | null;
}

function runCli(
  cli: string,
  args: string[],
  mark: RegExp | null,
  onMark?: (pid: number) => void,
  extraNodeArgs: string[] = [],
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    // RQ_BENCH_CLI_NODE_ARGS: node options for the measured command, e.g. "--cpu-prof --cpu-prof-dir=/tmp/p"
    const nodeArgs = [...extraNodeArgs, ...(process.env['RQ_BENCH_CLI_NODE_ARGS'] ?? '').split(' ').filter(Boolean)];
    const child = spawn(process.execPath, [...nodeArgs, cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = { stdout: '', stderr: '' };
    let markMs: number | null = null;
    let markLine: string | null = null;
    const watch = (which: 'stdout' | 'stderr') => (d: Buffer) => {
      const before = out[which].length;
      out[which] += d.toString();
      if (mark && markMs === null) {
        const start = out[which].lastIndexOf('\n', before - 1) + 1;
        for (const line of out[which].slice(start).split('\n')) {
          if (mark.test(line)) {
            markMs = performance.now() - t0;
            markLine = line;
            if (child.pid !== undefined) onMark?.(child.pid);
            break;
          }
        }
      }
    };
    child.stdout.on('data', watch('stdout'));
    child.stderr.on('data', watch('stderr'));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, ...out, markMs, markLine }));
  });
}

const num = (re: RegExp, s: string): number | null => {
  const m = re.exec(s);
  return m ? Number(m[1]) : null;
};

function split(totalMs: number, line: string): StartSplit {
  return {
    totalMs: round(totalMs),
    stateReadMs: num(/state read in (\d+) ms/, line),
    directoryMs: num(/directory (\d+) ms/, line),
    volumesMs: num(/volumes (\d+) ms/, line),
    planMs: num(/plan (\d+) ms/, line),
    fillMs: num(/filled in (\d+) ms/, line),
    switchMs: num(/switched in ([\d.]+) ms/, line),
    ips: num(/with (\d+) IPs/, line),
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function setEntries(gw: Gateway): Promise<number> {
  const r = await gw.exec('gw', 'ipset', ['list', '-t'], { timeoutMs: 60_000 });
  let n = 0;
  let ours = false;
  for (const line of r.stdout.split('\n')) {
    const name = /^Name: (\S+)$/.exec(line);
    if (name) ours = /^(v6)?qos_[du]\d+$/.test(name[1]!);
    const count = /^Number of entries: (\d+)$/.exec(line);
    if (count && ours) n += Number(count[1]);
  }
  return n;
}

/**
 * Stops the daemon of `runDir` (SIGTERM, as `reselqos stop` asks): waits until it has removed its
 * pid file (cycle finished, snapshots persisted), then kills what is left (a background LDAP
 * fetch keeps the process alive until it ends). Returns its peak RSS.
 */
async function stopDaemon(runDir: string): Promise<number | null> {
  const file = join(runDir, 'reselqos.pid');
  if (!existsSync(file)) return null;
  const pid = Number(readFileSync(file, 'utf8').trim());
  if (!Number.isInteger(pid) || !isAlive(pid)) return null;
  const peak = vmHwmWithChildrenMB(pid);
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 1200 && existsSync(file) && isAlive(pid); i++) await sleep(100);
  if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 100 && isAlive(pid); i++) await sleep(50);
  return peak;
}

export async function measureStart(o: {
  cli: string;
  confFile: string;
  dir: string;
  gw: Gateway;
  /** IPs of the directory (the cold cycles' count): 2 set entries each */
  ips: number;
  say: (s: string) => void;
  /** the snapshot is on disk already: no start without it (bench/startprobe.ts) */
  skipCold?: boolean;
  /** also `reselqos run` from the snapshot (default true) */
  run?: boolean;
  /** node options of the measured commands (bench --heap-mb) */
  nodeArgs?: string[];
}): Promise<StartPhase> {
  const warnings: string[] = [];
  const runDir = join(o.dir, 'run');
  const expected = o.ips * 2;
  const res: StartPhase = {
    startCold: null,
    startFromSnapshot: null,
    runFromSnapshot: null,
    setEntries: { expected, startCold: null, startFromSnapshot: null, runFromSnapshot: null },
    startDaemonPeakRssMB: null,
    warnings,
  };
  const clear = async (): Promise<void> => {
    const r = await runCli(o.cli, ['clear', '-c', o.confFile], null);
    if (r.code !== 0) throw new Error(`reselqos clear: exit ${r.code}: ${r.stderr.trim()}`);
  };
  const checkEntries = async (what: string): Promise<number> => {
    const n = await setEntries(o.gw);
    if (n !== expected) warnings.push(`${what}: ${n} set entries in the kernel, ${expected} expected (2 per IP)`);
    return n;
  };
  const start = async (what: string): Promise<StartSplit> => {
    await clear();
    const r = await runCli(o.cli, ['start', '-c', o.confFile], /^start: rebuilt /, undefined, o.nodeArgs);
    if (r.code !== 0 || r.markMs === null || r.markLine === null)
      throw new Error(`reselqos start (${what}): exit ${r.code}: ${r.stdout.trim()} ${r.stderr.trim()}`);
    const s = split(r.markMs, r.markLine);
    const fromSnapshot = /start: using the snapshot of/.test(r.stdout);
    if (fromSnapshot !== (what === 'snapshot')) warnings.push(`start (${what}): ${r.stdout.trim().split('\n')[0]}`);
    o.say(`   start (${what}): kernel rebuilt ${Math.round(s.totalMs)} ms after the process started — ${r.markLine}`);
    return s;
  };
  try {
    // 1. no snapshot yet: as before issue 16, the full fetch is awaited; the snapshot is left behind
    if (!o.skipCold) {
      res.startCold = await start('no snapshot');
      res.setEntries.startCold = await checkEntries('start with no snapshot');
      await stopDaemon(runDir);
    }
    // 2. the snapshot just written (seconds old)
    res.startFromSnapshot = await start('snapshot');
    res.setEntries.startFromSnapshot = await checkEntries('start from the snapshot');
    res.startDaemonPeakRssMB = await stopDaemon(runDir);
    // 3. the daemon alone, as systemd starts it, on an empty kernel
    if (o.run === false) return res;
    await clear();
    let peak: number | null = null;
    const stopping: { done: Promise<unknown> | null } = { done: null };
    const run = runCli(
      o.cli,
      ['run', '-c', o.confFile],
      / cycle (ok|failed) /,
      (pid) => {
        peak = vmHwmWithChildrenMB(pid);
        // its first cycle is logged: stop it (the background fetch it started is not waited for)
        stopping.done = stopDaemon(runDir);
      },
      o.nodeArgs,
    );
    const r = await Promise.race([
      run,
      sleep(600_000).then(() => {
        throw new Error('reselqos run: no cycle within 10 minutes');
      }),
    ]);
    await stopping.done;
    if (r.markMs === null || r.markLine === null || !/ cycle ok /.test(r.markLine))
      throw new Error(`reselqos run: first cycle: ${r.markLine ?? r.stderr.trim().slice(-2000)}`);
    res.runFromSnapshot = { totalMs: round(r.markMs), firstCycle: r.markLine.replace(/^.* cycle ok /, 'cycle ok '), peakRssMB: peak };
    if (!/first cycle from the snapshot of/.test(r.stderr)) warnings.push('run: the first cycle did not start from the snapshot');
    res.setEntries.runFromSnapshot = await checkEntries('run from the snapshot');
    o.say(`   run (snapshot): first cycle logged ${Math.round(r.markMs)} ms after the process started — ${res.runFromSnapshot.firstCycle}`);
  } finally {
    await stopDaemon(runDir).catch(() => undefined);
  }
  return res;
}
