// Wiring: the one place that builds the real collaborators (logger, exec seam,
// sources, reconciler, cycle runner) from a Config. Commands and the daemon call this;
// tests build the same objects with their own logger or exec.

import type { Config } from '../config/config.js';
import { systemClock, type Clock } from '../clock.js';
import { createLogger, registerSecret, type FileLogger, type Logger } from '../log.js';
import { inNetns, realExec, type Exec } from '../exec/exec.js';
import { helperExec, type HelperExec } from '../exec/exec-via-helper.js';
import { Reconciler } from '../kernel/reconciler.js';
import { Sources } from '../state/sources.js';
import { CycleRunner } from '../cycle/cycle.js';
import { SharingSite } from '../sharing/site.js';
import { HaRole, readRoleFile } from '../ha/role.js';

export interface Runtime {
  readonly config: Config;
  readonly log: Logger;
  readonly exec: Exec;
  readonly sources: Sources;
  readonly reconciler: Reconciler;
  readonly cycles: CycleRunner;
  /** this gateway among the sites sharing the global rates (used while [sharing] enabled = 1) */
  readonly sharing: SharingSite;
  /** this gateway's role in an HA pair: only the master writes to the shared database */
  readonly role: HaRole;
  close(): Promise<void>;
}

export function fileLogger(config: Config, stderr: boolean): FileLogger {
  registerSecret(config.ldap.password);
  registerSecret(config.database.password);
  registerSecret(config.publish.password);
  registerSecret(config.metrics.token);
  return createLogger({ level: config.log.level, dir: config.paths.log, stderr });
}

/** The exec seam for the data plane: our own namespace, or [firewall] netns. */
export function kernelExec(config: Config, base: Exec = realExec): Exec {
  return config.firewall.netns ? inNetns(base, config.firewall.netns) : base;
}

/**
 * The exec seam of a long-lived process (the daemon, `run --once`): the same commands as
 * kernelExec, run through the spawn helper (src/exec/exec.ts), which `close()` stops.
 */
export function daemonExec(config: Config, log: Logger): HelperExec {
  return helperExec({ ...(config.firewall.netns ? { netns: config.firewall.netns } : {}), onEvent: (m) => log.warn(`kernel: ${m}`) });
}

export async function openRuntime(config: Config, opts: { log: Logger; exec?: Exec; clock?: Clock; persist?: boolean }): Promise<Runtime> {
  const clock = opts.clock ?? systemClock;
  const sources = new Sources(config, opts.log, { persist: opts.persist ?? true });
  await sources.init();
  const helper = opts.exec ? null : daemonExec(config, opts.log);
  const exec = opts.exec ?? helper!.exec;
  const reconciler = new Reconciler(config, exec, opts.log);
  // The role keepalived last told (a tmpfs file: kept across a restart of the daemon), else [ha] role.
  const role = new HaRole((await readRoleFile(config.paths.run)) ?? config.ha.role, clock().toISO() ?? '');
  const sharing = new SharingSite(config, exec, opts.log, clock().toMillis(), () => role.writes);
  const cycles = new CycleRunner(config, { directory: sources, usage: sources }, reconciler, opts.log, clock, sharing);
  return {
    config,
    log: opts.log,
    exec,
    sources,
    reconciler,
    cycles,
    sharing,
    role,
    close: async () => {
      await sources.close();
      await sharing.close();
      await helper?.close();
    },
  };
}
