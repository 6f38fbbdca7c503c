// `reselqos run --once` (one full cycle: sources -> plan -> apply) and `reselqos clear`
// (remove every kernel object reselqos owns, nothing else).

import { realExec } from '../kernel/exec.js';
import { checkKernel, KernelFeatureError } from '../kernel/features.js';
import { Reconciler } from '../kernel/reconciler.js';
import { summaryLine } from '../daemon/cycle.js';
import { fileLogger, kernelExec, openRuntime } from '../daemon/runtime.js';
import type { Clock } from '../clock.js';
import { EXIT, loadConfigOrReport, type Io } from './common.js';

export async function runOnce(opts: { config?: string; force: boolean }, io: Io, clock: Clock): Promise<number> {
  const config = await loadConfigOrReport(opts.config, io);
  if (!config) return EXIT.invalid;
  const log = fileLogger(config, true);
  try {
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
  } finally {
    await log.close();
  }
}

export async function runClear(opts: { config?: string }, io: Io): Promise<number> {
  const config = await loadConfigOrReport(opts.config, io);
  if (!config) return EXIT.invalid;
  const log = fileLogger(config, true);
  try {
    const r = await new Reconciler(config, kernelExec(config), log).clear();
    const line = `clear: removed ${r.hooks} hook(s), ${r.chains} chain(s), ${r.qdiscs} root qdisc(s), ${r.sets} set(s)`;
    log.info(line);
    io.out(line);
    return EXIT.ok;
  } catch (e) {
    log.error(`clear failed: ${(e as Error).message}`);
    return EXIT.failed;
  } finally {
    await log.close();
  }
}
