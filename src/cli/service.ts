// The service verbs: run (foreground daemon), start, stop, restart, update, reload,
// status, explain. Each talks to the running daemon over its control socket and prints
// a result, not just "signal sent".
// Exit codes (LSB-like): 0 ok, 1 failed, 2 invalid configuration, 3 not running
// (status), 7 not running (update, reload), 64 usage.

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveConfigPath, type Config } from '../config/config.js';
import type { Clock } from '../clock.js';
import { Daemon, type StatusJson } from '../daemon/daemon.js';
import { askDaemon, NotRunningError, lockPath } from '../daemon/control.js';
import { takeLock, AlreadyRunningError, isAlive, type HeldLock } from '../daemon/pidfile.js';
import { fileLogger, openRuntime } from '../daemon/runtime.js';
import { explain, explainText, type ExplainJson } from '../metrics/explain.js';
import { KernelFeatureError, checkKernel } from '../kernel/features.js';
import { realExec } from '../exec/exec.js';
import { planDesired } from '../plan/desired.js';
import { resetInstant } from '../policy/policy.js';
import { formatRate } from '../config/units.js';
import { NoDirectoryError } from '../sources/types.js';
import { fetchAndPlan } from './plan.js';
import { savedVolumesAge, seconds, snapshotAge } from '../daemon/startup.js';
import { EXIT, UsageError, loadConfigOrReport, runDirOf, type Io } from './common.js';

export const NOT_RUNNING_STATUS = 3;
export const NOT_RUNNING = 7;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** A field of a daemon answer as text (answers are JSON: strings, numbers, or absent). */
const text = (v: unknown): string => (typeof v === 'string' ? v : v === undefined ? '' : JSON.stringify(v));
const cliPath = (): string => fileURLToPath(new URL('../cli.js', import.meta.url));

async function running(config: Pick<Config, 'paths'>): Promise<StatusJson | null> {
  try {
    const a = await askDaemon(config.paths.run, { cmd: 'status' }, 10_000);
    return a.ok ? (a['status'] as StatusJson) : null;
  } catch (e) {
    if (e instanceof NotRunningError) return null;
    throw e;
  }
}

/** `reselqos run` in the foreground (what systemd starts). */
export async function runForeground(configFlag: string | undefined, io: Io, clock: Clock): Promise<number> {
  const config = await loadConfigOrReport(configFlag, io);
  if (!config) return EXIT.invalid;
  const log = fileLogger(config, true);
  const daemon = new Daemon(resolveConfigPath(configFlag), config, log, clock);
  try {
    await daemon.start();
  } catch (e) {
    if (e instanceof KernelFeatureError) for (const p of e.problems) log.error(p);
    else log.error(`cannot start: ${(e as Error).message}`);
    await log.close();
    return EXIT.failed;
  }
  await daemon.whenStopped();
  await log.close();
  return daemon.crashed ? EXIT.failed : EXIT.ok;
}

/**
 * `start`: a fresh snapshot first (or the one on disk, when younger than [ldap] refresh), then
 * remove and rebuild every object in one go, then the daemon in the background.
 */
export async function runStart(configFlag: string | undefined, io: Io, clock: Clock): Promise<number> {
  const config = await loadConfigOrReport(configFlag, io);
  if (!config) return EXIT.invalid;
  const file = resolveConfigPath(configFlag);
  const already = await running(config);
  if (already) {
    io.out(`reselqos already running (pid ${already.pid})`);
    return EXIT.ok;
  }
  let startLock: HeldLock;
  try {
    startLock = await takeLock(join(config.paths.run, 'start.lock'), 'start');
  } catch (e) {
    if (!(e instanceof AlreadyRunningError)) throw e;
    // Another `start` is at work: wait for its daemon.
    for (let i = 0; i < 240; i++) {
      const s = await running(config);
      if (s) {
        io.out(`reselqos already running (pid ${s.pid})`);
        return EXIT.ok;
      }
      if (e.pid === null || !isAlive(e.pid)) break;
      await sleep(250);
    }
    io.err(`reselqos start: another start (pid ${e.pid}) did not bring the daemon up`);
    return EXIT.failed;
  }
  // The file gets the log; the operator's terminal gets the result lines (io) and errors.
  const log = fileLogger(config, false);
  let kernelLock: HeldLock | null = null;
  try {
    const s = await running(config);
    if (s) {
      io.out(`reselqos already running (pid ${s.pid})`);
      return EXIT.ok;
    }
    // The daemon's lock for the rebuild: no daemon, run --once or clear acts meanwhile.
    try {
      kernelLock = await takeLock(lockPath(config.paths.run), 'start');
    } catch (e) {
      if (!(e instanceof AlreadyRunningError)) throw e;
      io.err(`reselqos start: ${e.message}${e.what === 'daemon' ? ' but does not answer on its socket' : ''}`);
      return EXIT.failed;
    }
    // The kernel's features (global: probed from our own namespace) are probed while the
    // snapshots are read from disk: both take a while at ISP size, neither needs the other.
    const t0 = performance.now();
    const [checked, opened] = await Promise.allSettled([checkKernel(config, realExec), openRuntime(config, { log, clock })]);
    if (checked.status === 'rejected') {
      if (opened.status === 'fulfilled') await opened.value.close();
      const e: unknown = checked.reason;
      if (e instanceof KernelFeatureError) {
        for (const p of e.problems) {
          log.error(p);
          io.err(`reselqos start: ${p}`);
        }
        return EXIT.failed;
      }
      throw e;
    }
    if (opened.status === 'rejected') throw opened.reason;
    const rt = opened.value;
    // 1. A fresh snapshot before touching anything, unless the one on disk is younger than
    // [ldap] refresh: then it is applied at once and the daemon fetches in the background.
    try {
      const at = clock().setZone(config.qos.timezone);
      const reset = resetInstant(config.qos, at);
      const t1 = performance.now();
      const snapshot = rt.sources.store.lastDirectory;
      const age = snapshotAge(snapshot, config.ldap.refreshMs, at.toMillis());
      let directory;
      if (age.young && snapshot) {
        directory = snapshot;
        const line = `start: using the snapshot of ${snapshot.fetchedAt} (${seconds(age.ageMs ?? 0)} old, younger than [ldap] refresh); the daemon fetches the directory in the background`;
        log.info(line);
        io.out(line);
      } else {
        let dir;
        try {
          dir = await rt.sources.fetchDirectory(at.toJSDate());
        } catch (e) {
          if (e instanceof NoDirectoryError) {
            log.error(`start: ${e.message}; the kernel was not touched`);
            io.err(`reselqos start: ${e.message}; the kernel was not touched`);
            return EXIT.failed;
          }
          throw e;
        }
        if (!dir.fresh) io.out(`LDAP unreachable (${dir.error}): rebuilding from the snapshot of ${dir.directory.fetchedAt}`);
        directory = dir.directory;
      }
      const t2 = performance.now();
      // With the young snapshot, the volumes saved beside it when as young and of this period.
      const saved = rt.sources.store.lastUsage;
      const vAge = age.young ? savedVolumesAge(saved, reset.toMillis(), config.ldap.refreshMs, at.toMillis()) : null;
      let usage;
      if (vAge?.young && saved) {
        usage = { usage: saved, fresh: false, error: null };
        const line = `start: using the volumes of ${saved.fetchedAt} (${seconds(vAge.ageMs ?? 0)} old); the daemon reads them fresh at its first cycle`;
        log.info(line);
        io.out(line);
      } else {
        usage = await rt.sources.fetchUsage(at.toJSDate(), reset);
        if (!usage.fresh) io.out(`MySQL unreachable (${usage.error}): using the volumes of ${usage.usage.fetchedAt}`);
      }
      // Sites sharing the global rates: this site's allocation, not its cap, from the first apply.
      const totals = config.sharing.enabled ? await rt.sharing.before(at) : null;
      const t3 = performance.now();
      const desired = planDesired(config, directory, usage.usage, at, reset, totals ? { site: config.site.name, totals } : undefined);
      const t4 = performance.now();
      // 2. Remove and rebuild in one go.
      const r = await rt.reconciler.rebuild(desired);
      const ms = (a: number, b: number): number => Math.round(b - a);
      const line =
        `start: rebuilt ${r.sets} sets with ${r.ips} IPs for ${desired.users.length} users: filled in ${Math.round(r.fillMs)} ms, switched in ${r.gapMs.toFixed(1)} ms` +
        ` (kernel probed and state read in ${ms(t0, t1)} ms, directory ${ms(t1, t2)} ms, volumes ${ms(t2, t3)} ms, plan ${ms(t3, t4)} ms)`;
      log.info(line);
      io.out(line);
      if (totals) await rt.sharing.after(true, { down: 0, up: 0 });
      await rt.sources.persist({ forceUsage: true });
    } finally {
      await rt.close();
    }
    await kernelLock.release(); // the daemon takes it
    // 3. The daemon, in the background.
    const child = spawn(process.execPath, [cliPath(), 'run', '-c', file], {
      detached: true,
      stdio: 'ignore',
      env: { ...process.env, RESELQOS_CONF: file },
    });
    child.unref();
    for (let i = 0; i < 240; i++) {
      const st = await running(config);
      if (st) {
        io.out(`reselqos started (pid ${st.pid})`);
        return EXIT.ok;
      }
      if (child.exitCode !== null || (child.pid !== undefined && !isAlive(child.pid))) break;
      await sleep(250);
    }
    io.err(`reselqos start: the daemon did not come up; see ${join(config.paths.log, 'reselqos.log')}`);
    return EXIT.failed;
  } finally {
    await kernelLock?.release();
    await startLock.release();
    await log.close();
  }
}

export async function runStop(configFlag: string | undefined, io: Io): Promise<number> {
  const runDir = await runDirOf(configFlag);
  let pid: number;
  try {
    const a = await askDaemon(runDir, { cmd: 'stop' });
    pid = Number(a['pid']);
  } catch (e) {
    if (e instanceof NotRunningError) {
      io.out('reselqos is not running');
      return EXIT.ok;
    }
    throw e;
  }
  for (let i = 0; i < 600; i++) {
    if (!isAlive(pid)) {
      io.out(`reselqos stopped (pid ${pid}); kernel state kept`);
      return EXIT.ok;
    }
    await sleep(100);
  }
  io.err(`reselqos stop: pid ${pid} still running after 60 s`);
  return EXIT.failed;
}

export async function runUpdate(configFlag: string | undefined, opts: { force: boolean; accept: boolean }, io: Io): Promise<number> {
  try {
    const a = await askDaemon(await runDirOf(configFlag), { cmd: 'update', force: opts.force, accept: opts.accept });
    if (a.ok) io.out(text(a['summary']));
    else io.err(text(a['error'] ?? a['summary']));
    if (a['refused']) io.err(`directory refused, the one in force stays: ${text(a['refused'])}`);
    return a.ok ? EXIT.ok : EXIT.failed;
  } catch (e) {
    if (e instanceof NotRunningError) {
      io.err(`${e.message}: start it, or run one cycle with reselqos run --once`);
      return NOT_RUNNING;
    }
    throw e;
  }
}

export async function runReload(configFlag: string | undefined, io: Io): Promise<number> {
  try {
    // The daemon judges the file: an invalid one is rejected with every error.
    const a = await askDaemon(await runDirOf(configFlag), { cmd: 'reload' });
    if (!a.ok) {
      io.err(`reload rejected; the running configuration stays:\n${text(a['error'])}`);
      return EXIT.invalid;
    }
    // The new file's warnings, as check prints them (the daemon logs them once too).
    if (Array.isArray(a['warnings'])) for (const w of a['warnings']) io.err(`warning: ${text(w)}`);
    io.out(text(a['message']));
    if (a['summary']) io.out(text(a['summary']));
    return a['cycleOk'] === false ? EXIT.failed : EXIT.ok;
  } catch (e) {
    if (e instanceof NotRunningError) {
      io.err(e.message);
      return NOT_RUNNING;
    }
    throw e;
  }
}

export function statusText(s: StatusJson): string {
  const lines = [
    `reselqos running (pid ${s.pid}, up ${s.uptimeS}s, config ${s.config})`,
    `role: ${s.role} (since ${s.roleSince})`,
    `sources: ldap ${s.sources.ldap}; mysql ${s.sources.mysql}`,
    s.lastCycle
      ? `last cycle: ${s.lastCycle.at} ${s.lastCycle.ok ? 'ok' : 'FAILED'} in ${s.lastCycle.ms} ms, moves d${s.lastCycle.moves.down}/u${s.lastCycle.moves.up}${s.lastCycle.error ? `: ${s.lastCycle.error}` : ''}`
      : 'last cycle: none yet',
  ];
  for (const dir of ['down', 'up'] as const) {
    lines.push(`${dir === 'down' ? 'download' : 'upload'}:`);
    for (const c of s.classes.filter((x) => x.direction === dir)) {
      lines.push(
        `  group ${c.group}: ${String(c.users).padStart(6)} users, class ${formatRate(c.rateBps)}${c.users ? `, ${formatRate(Math.floor(c.rateBps / c.users))} per user` : ''}`,
      );
    }
  }
  const sh = s.sharing;
  if (sh?.enabled && sh.allocation && sh.demand && sh.global && sh.cap) {
    const pair = (p: { down: number; up: number }): string => `${formatRate(p.down)} down, ${formatRate(p.up)} up`;
    lines.push(
      `site ${sh.site} (${sh.mode === 'sharing' ? 'sharing' : sh.mode === 'static' ? (sh.collision ? 'name collision: static split' : 'a site is stale: static split') : `database ${sh.database}: static split`}; global ${pair(sh.global)}, cap ${pair(sh.cap)}):`,
    );
    if (sh.collision) lines.push(`  COLLISION: ${sh.collision}`);
    for (const p of sh.problems ?? []) if (!p.includes('site name collision')) lines.push(`  ${p}`);
    lines.push(`  demand ${pair(sh.demand)}; allocation ${pair(sh.allocation)}`);
    for (const p of sh.peers)
      lines.push(
        `  peer ${p.site}: ${p.fresh ? 'fresh' : 'STALE'} (${p.ageS}s), demand ${pair(p.demand)}, allocation ${pair(p.allocation)}`,
      );
  } else if (sh) {
    lines.push(`site ${sh.site} (sharing off)`);
  }
  return lines.join('\n');
}

export async function runStatus(configFlag: string | undefined, json: boolean, io: Io): Promise<number> {
  const s = await running({ paths: { run: await runDirOf(configFlag), log: '', state: '' } });
  if (!s) {
    io.out(json ? JSON.stringify({ running: false }) : 'reselqos is not running');
    return NOT_RUNNING_STATUS;
  }
  io.out(json ? JSON.stringify(s) : statusText(s));
  return EXIT.ok;
}

/**
 * `explain --complete PREFIX` (bash completion): the running daemon's uids and IPs starting
 * with PREFIX, one a line. Prints nothing and succeeds when the daemon does not answer (not
 * running, socket not ours, slow): completion must never print errors into a command line.
 */
export async function runExplainComplete(configFlag: string | undefined, prefix: string, io: Io): Promise<number> {
  try {
    const a = await askDaemon(await runDirOf(configFlag), { cmd: 'complete', prefix }, 2_000);
    const list = a.ok && Array.isArray(a['candidates']) ? (a['candidates'] as unknown[]) : [];
    const lines = list.filter((c): c is string => typeof c === 'string' && !/\s/.test(c));
    if (lines.length) io.out(lines.join('\n'));
  } catch {
    // not running, or no answer: no candidates
  }
  return EXIT.ok;
}

export async function runExplain(
  configFlag: string | undefined,
  who: string | undefined,
  json: boolean,
  io: Io,
  clock: Clock,
): Promise<number> {
  if (!who) throw new UsageError('explain needs a uid or an IP');
  let e: ExplainJson | null = null;
  let error: string | null = null;
  try {
    const a = await askDaemon(await runDirOf(configFlag), { cmd: 'explain', who });
    if (a.ok) e = a['explain'] as ExplainJson;
    else error = text(a['error']);
  } catch (err) {
    if (!(err instanceof NotRunningError)) throw err;
    // Not running: answer from a fresh fetch.
    const config = await loadConfigOrReport(configFlag, io);
    if (!config) return EXIT.invalid;
    const r = await fetchAndPlan(config, clock, false);
    if ('error' in r) error = r.error;
    else {
      e = explain(r.desired, who);
      if (!e) error = `no user or IP "${who}" in the directory`;
    }
  }
  if (!e) {
    io.err(`reselqos explain: ${error}`);
    return EXIT.failed;
  }
  io.out(json ? JSON.stringify(e) : explainText(e));
  return EXIT.ok;
}
