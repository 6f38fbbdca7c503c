// `reselqos run --once` (one full cycle: sources -> plan -> apply) and `reselqos clear`
// (remove every kernel object reselqos owns, nothing else).

import { realExec } from '../exec/exec.js';
import { checkKernel, KernelFeatureError } from '../kernel/features.js';
import { Reconciler } from '../kernel/reconciler.js';
import { summaryLine } from '../cycle/cycle.js';
import { fileLogger, kernelExec, openRuntime } from '../daemon/runtime.js';
import { lockPath } from '../daemon/control.js';
import { AlreadyRunningError, takeLock, type HeldLock } from '../daemon/pidfile.js';
import type { Config } from '../config/config.js';
import type { Clock } from '../clock.js';
import type { FileLogger } from '../log.js';
import { EXIT, loadConfigOrReport, type Io } from './common.js';

/** The daemon's lock, or null (refusal printed) when the daemon or another verb holds it. */
async function lockOrRefuse(config: Config, verb: string, io: Io): Promise<HeldLock | null> {
  try {
    return await takeLock(lockPath(config.paths.run), verb);
  } catch (e) {
    if (!(e instanceof AlreadyRunningError)) throw e;
    const who = e.what === 'daemon' ? `the reselqos daemon runs (pid ${e.pid ?? 'unknown'})` : `${e.message}`;
    io.err(
      `reselqos ${verb}: refused, ${who}: ${e.what === 'daemon' ? 'use reselqos update, or stop it first' : 'try again when it is done'}`,
    );
    return null;
  }
}

/**
 * Runs `act` with the configuration loaded, the daemon's kernel lock held (refused, exit 1, while
 * the daemon or another verb holds it) and a file logger open; releases both whatever happens.
 */
async function underKernelLock(
  configFlag: string | undefined,
  verb: string,
  io: Io,
  act: (config: Config, log: FileLogger) => Promise<number>,
): Promise<number> {
  const config = await loadConfigOrReport(configFlag, io);
  if (!config) return EXIT.invalid;
  const lock = await lockOrRefuse(config, verb, io);
  if (!lock) return EXIT.failed;
  const log = fileLogger(config, true);
  try {
    return await act(config, log);
  } finally {
    await log.close();
    await lock.release();
  }
}

export function runOnce(opts: { config?: string; force: boolean }, io: Io, clock: Clock): Promise<number> {
  return underKernelLock(opts.config, 'run --once', io, async (config, log) => {
    try {
      await checkKernel(config, realExec);
    } catch (e) {
      if (e instanceof KernelFeatureError) {
        for (const p of e.problems) log.error(p);
        return EXIT.failed;
      }
      throw e;
    }
    const rt = await openRuntime(config, { log, clock });
    try {
      const report = await rt.cycles.run({ force: opts.force });
      await rt.sources.persist({ forceUsage: true });
      const line = summaryLine(report);
      if (report.ok) log.info(line);
      else log.error(line);
      io.out(line);
      return report.ok ? EXIT.ok : EXIT.failed;
    } finally {
      await rt.close();
    }
  });
}

export function runClear(opts: { config?: string }, io: Io): Promise<number> {
  return underKernelLock(opts.config, 'clear', io, async (config, log) => {
    try {
      const r = await new Reconciler(config, kernelExec(config), log).clear();
      const line = `clear: removed ${r.hooks} hook(s), ${r.chains} chain(s), ${r.qdiscs} root qdisc(s), ${r.sets} set(s)`;
      log.info(line);
      io.out(line);
      return EXIT.ok;
    } catch (e) {
      log.error(`clear failed: ${(e as Error).message}`);
      return EXIT.failed;
    }
  });
}
