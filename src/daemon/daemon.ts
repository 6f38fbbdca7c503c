// The long-running daemon (`reselqos run`): a cycle every [qos] interval, never two at
// once; the control socket (status, update, reload, stop, explain); signals (SIGHUP
// reload, SIGTERM/SIGINT stop, SIGUSR2 reopen logs); the kernel lock and the pid file;
// failures nobody awaited (faults.ts). A reload builds its whole runtime before it switches.
// Owns the daemon's mutable state (current config, last cycle, source states) and nothing else: cycles go
// through CycleRunner, kernel work through the Reconciler.
// Never flushes the gateway: stop keeps every kernel object as it is.

import type { Server } from 'node:net';
import { ConfigError, formatProblem, loadConfig, restartOnlyChanges, withRunningRestartKeys, type Config } from '../config/config.js';
import type { Clock } from '../clock.js';
import { registerSecret, type FileLogger } from '../log.js';
import { realExec, type Exec } from '../exec/exec.js';
import { checkKernel } from '../kernel/features.js';
import { openRuntime, type Runtime } from './runtime.js';
import { openClients, type SourceClients } from '../state/sources.js';
import { describeError, guardProcess } from './faults.js';
import { summaryLine, type CycleReport } from '../cycle/cycle.js';
import { explain } from '../metrics/explain.js';
import { completeCandidates } from './complete.js';
import { serveControl, pidPath, lockPath, type ControlAnswer, type ControlRequest } from './control.js';
import { takeLock, writePidFile, removePidFile, type HeldLock } from './pidfile.js';
import { Observability } from './observe.js';
import { seconds, snapshotAge } from './startup.js';
import type { SharingStatus } from '../sharing/site.js';
import { parseRole, writeRoleFile, ROLES, type Role } from '../ha/role.js';
import { HealthTracker, TrackWatch, judgeHealth } from '../ha/health.js';

export interface StatusJson {
  running: true;
  pid: number;
  uptimeS: number;
  config: string;
  sources: { ldap: string; mysql: string };
  lastCycle: { at: string; ok: boolean; ms: number; moves: { down: number; up: number }; summary: string; error: string | null } | null;
  classes: { direction: 'down' | 'up'; group: number; users: number; rateBps: number; ceilBps: number }[];
  /** this site among the sites sharing the global rates (docs/DESIGN.md, "Sites") */
  sharing: SharingStatus;
  /** this gateway's role in an HA pair (src/ha/role.ts; a single gateway is master) and since when */
  role: Role;
  roleSince: string;
}

export class Daemon {
  private rt!: Runtime;
  private watch!: Observability;
  private server: Server | null = null;
  private lock: HeldLock | null = null;
  private timer: NodeJS.Timeout | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private reloads: Promise<unknown> = Promise.resolve();
  /** stopped by an uncaught exception: the process must exit non-zero (a restart) */
  crashed = false;
  private unguard: (() => void) | null = null;
  private stopping = false;
  private last: CycleReport | null = null;
  private failing: string | null = null;
  private readonly startedAt = Date.now();
  /** what `status --health` judges (src/ha/health.ts) */
  private readonly health = new HealthTracker(this.startedAt);
  /** keepalived's track_script asks, to tell a master orphaned by a killed keepalived */
  private readonly track: TrackWatch;
  private stopped!: Promise<void>;
  private resolveStopped!: () => void;

  constructor(
    private readonly configPath: string,
    private config: Config,
    private readonly log: FileLogger,
    private readonly clock: Clock,
    private readonly exec?: Exec,
  ) {
    this.track = new TrackWatch(config.ha.trackTimeoutMs);
  }

  /** Takes the pid file, checks the kernel, opens the sources and the socket, starts the loop. */
  async start(): Promise<void> {
    const pidFile = pidPath(this.config.paths.run);
    this.lock = await takeLock(lockPath(this.config.paths.run), 'daemon');
    try {
      await writePidFile(pidFile);
      // Kernel features are global: probed from our own namespace, while the snapshots are read.
      const [checked, opened] = await Promise.allSettled([
        checkKernel(this.config, realExec),
        openRuntime(this.config, { log: this.log, clock: this.clock, exec: this.exec }),
      ]);
      if (checked.status === 'rejected') {
        if (opened.status === 'fulfilled') await opened.value.close();
        throw checked.reason;
      }
      if (opened.status === 'rejected') throw opened.reason;
      this.rt = opened.value;
      this.watch = new Observability(this.config, this.rt, this.log, this.clock);
      this.server = await serveControl(this.config.paths.run, (req) => this.handle(req));
      await this.watch.open(this.config);
    } catch (e) {
      await removePidFile(pidFile);
      await this.lock.release();
      throw e;
    }
    this.stopped = new Promise((r) => (this.resolveStopped = r));
    // reload() answers every failure; the catch is for a bug, which must not become an unhandled rejection.
    process.on('SIGHUP', () => {
      // A rejection is logged by reload itself (one error line naming every problem).
      this.reload('SIGHUP').then(
        (a) => {
          if (a.ok) this.log.info(`SIGHUP: ${typeof a['message'] === 'string' ? a['message'] : ''}`);
        },
        (e: unknown) => this.log.error(`SIGHUP: reload failed, the running configuration stays: ${describeError(e)}`),
      );
    });
    this.unguard = guardProcess(this.log, () => {
      this.crashed = true;
      process.exitCode = 1;
      setTimeout(() => process.exit(1), 10_000).unref(); // a stop that hangs
      this.stop('uncaught exception').catch(() => process.exit(1));
    });
    process.on('SIGTERM', () => void this.stop('SIGTERM'));
    process.on('SIGINT', () => void this.stop('SIGINT'));
    process.on('SIGUSR2', () => {
      this.log.reopen();
      this.log.info('log file reopened (SIGUSR2)');
    });
    this.log.info(`reselqos started (pid ${process.pid}, config ${this.configPath}, interval ${this.config.qos.intervalMs / 1000}s)`);
    for (const w of this.config.warnings) this.log.warn(`config: ${w}`);
    // A snapshot on disk younger than [ldap] refresh: the first cycle applies it without asking
    // LDAP, then the full fetch starts in the background (the next cycles apply its result): it
    // does not compete with the first apply for this process's time.
    const age = snapshotAge(this.rt.sources.store.lastDirectory, this.config.ldap.refreshMs, this.clock().toMillis());
    if (age.young) {
      this.log.info(
        `first cycle from the snapshot of ${this.rt.sources.store.lastDirectory?.fetchedAt} (${seconds(age.ageMs ?? 0)} old, younger than [ldap] refresh); the full LDAP fetch runs after it, in the background`,
      );
      this.firstFromSnapshot();
    } else {
      this.schedule(0);
    }
  }

  /** The first cycle from the snapshot, then the full LDAP fetch started (not awaited), then the timer. */
  private firstFromSnapshot(): void {
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.cycle({ snapshot: true })
        .then(() => {
          const kick = this.queue.then(() => this.rt.sources.fetchDirectory(this.clock().toJSDate(), { waitMs: 0 }));
          this.queue = kick.catch(() => undefined);
          return kick;
        })
        .catch((e: unknown) => this.log.warn(`ldap: the full fetch after the first cycle did not start: ${describeError(e)}`))
        .finally(() => this.schedule(this.config.qos.intervalMs));
    }, 0);
  }

  /** Resolves when the daemon has stopped. */
  whenStopped(): Promise<void> {
    return this.stopped;
  }

  private schedule(delayMs: number): void {
    if (this.stopping) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      // Timer cycles do not wait for a slow directory fetch beyond half an interval.
      void this.cycle({ ldapWaitMs: Math.max(1000, this.config.qos.intervalMs / 2) }).finally(() =>
        this.schedule(this.config.qos.intervalMs),
      );
    }, delayMs);
  }

  /** Runs a cycle after any cycle in flight: cycles never overlap. */
  cycle(
    opts: { force?: boolean; accept?: boolean; ldapWaitMs?: number; fullLdap?: boolean; snapshot?: boolean } = {},
  ): Promise<CycleReport> {
    const run = this.queue.then(() => this.runCycle(opts));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async runCycle(opts: {
    force?: boolean;
    accept?: boolean;
    ldapWaitMs?: number;
    fullLdap?: boolean;
    snapshot?: boolean;
  }): Promise<CycleReport> {
    const orphan = this.track.check(this.rt.role.current, Date.now());
    if (orphan.demote) {
      this.rt.role.set('backup', this.clock().toISO() ?? '');
      this.log.warn(
        `ha: no health check from keepalived for ${(orphan.silentMs / 1000).toFixed(1)}s (more than [ha] trackTimeout): keepalived is gone, this gateway stops writing the shared tables (role backup) until it speaks again`,
      );
    }
    const report = await this.rt.cycles.run(opts);
    this.last = report;
    this.health.cycleEnded(report, Date.now());
    const line = summaryLine(report);
    if (report.ok) {
      if (this.failing !== null) this.log.info(`cycles recovered (failing since ${this.failing})`);
      this.failing = null;
      this.log.info(line);
    } else if (this.failing === null) {
      this.failing = report.at;
      this.log.error(line);
    } else {
      this.log.debug(line);
    }
    await this.watch.cycle(report);
    await this.rt.sources.persist();
    return report;
  }

  /**
   * Reload: first build everything the new configuration needs (the parsed file, its CA files
   * read and checked, the LDAP and MySQL clients), touching nothing that runs; any failure
   * leaves the running configuration whole and is answered with every error. Then the switch,
   * between two cycles, made only of steps that cannot fail. Reloads run one at a time, in order.
   */
  reload(origin: 'socket' | 'SIGHUP' = 'socket'): Promise<ControlAnswer> {
    const run = this.reloads.then(() => this.reloadNow(origin));
    this.reloads = run.catch(() => undefined);
    return run;
  }

  private async reloadNow(origin: 'socket' | 'SIGHUP'): Promise<ControlAnswer> {
    const reject = (error: string, problems: number, oneLine = error): ControlAnswer => {
      this.log.error(`reload rejected, the running configuration stays (${origin}): ${oneLine}`);
      return { ok: false, error, problems };
    };
    let next: Config;
    let clients: SourceClients;
    let applied: Config;
    let restart: string[];
    try {
      next = await loadConfig(this.configPath);
      restart = restartOnlyChanges(this.config, next);
      // Keys that need a restart keep their running values: the kernel object names, paths, interfaces.
      applied = restart.length ? withRunningRestartKeys(this.config, next) : next;
      clients = openClients(applied, this.log);
    } catch (e) {
      if (e instanceof ConfigError) return reject(e.message, e.problems.length, e.problems.map(formatProblem).join('; '));
      return reject(`${this.configPath}: ${describeError(e)}`, 1);
    }
    registerSecret(next.ldap.password);
    registerSecret(next.database.password);
    registerSecret(next.publish.password);
    registerSecret(next.metrics.token);
    // The switch, in the cycle queue: no cycle runs while it happens.
    const switched = this.queue.then(async () => {
      this.config = applied;
      this.rt.reconciler.reconfigure(applied);
      this.rt.cycles.reconfigure(applied);
      this.rt.sharing.reconfigure(applied);
      this.track.reconfigure(applied.ha.trackTimeoutMs);
      this.log.setLevel(applied.log.level);
      await this.rt.sources.reconfigure(applied, clients);
      await this.watch.reconfigure(applied); // never throws: a listen error is logged
    });
    this.queue = switched.catch(() => undefined);
    await switched;
    for (const w of next.warnings) this.log.warn(`reload: ${w}`);
    const message =
      `configuration reloaded from ${this.configPath}` + (restart.length ? `; needs a restart to change: ${restart.join(', ')}` : '');
    this.log.info(message);
    const report = await this.cycle();
    return { ok: true, message, restartNeeded: restart, summary: summaryLine(report), cycleOk: report.ok, warnings: next.warnings };
  }

  status(): StatusJson {
    const r = this.last;
    return {
      running: true,
      pid: process.pid,
      uptimeS: Math.round((Date.now() - this.startedAt) / 1000),
      config: this.configPath,
      sources: { ldap: this.rt.sources.health.ldap.describe(), mysql: this.rt.sources.health.mysql.describe() },
      lastCycle: r
        ? { at: r.at, ok: r.ok, ms: Math.round(r.timings.totalMs), moves: r.moves, summary: summaryLine(r), error: r.error }
        : null,
      classes: (r?.desired?.classes ?? []).map((c) => ({
        direction: c.direction,
        group: c.group,
        users: c.users,
        rateBps: c.rateBps,
        ceilBps: c.ceilBps,
      })),
      sharing: this.rt.sharing.view,
      role: this.rt.role.current,
      roleSince: this.rt.role.since,
    };
  }

  /**
   * `reselqos role` (keepalived's notify script): the role in force, kept in [path] run/ha-role
   * for a restart of the daemon. Only who writes the shared database changes: a new master
   * writes at its next cycle; the kernel is not touched.
   */
  private async setRole(raw: unknown): Promise<ControlAnswer> {
    const role = typeof raw === 'string' ? parseRole(raw) : null;
    if (!role) return { ok: false, error: `expected a role (${ROLES.join(', ')}), got ${JSON.stringify(raw)}` };
    this.track.roleSet();
    const c = this.rt.role.set(role, this.clock().toISO() ?? '');
    if (c.changed)
      this.log.info(`ha: role ${c.from} -> ${c.to}${c.to === 'master' ? ' (writes the shared tables from the next cycle)' : ''}`);
    let kept = true;
    await writeRoleFile(this.config.paths.run, role).catch((e: Error) => {
      kept = false;
      this.log.warn(`ha: cannot keep the role in ${this.config.paths.run}: ${e.message} (a restart takes [ha] role)`);
    });
    return { ok: true, role, from: c.from, changed: c.changed, kept };
  }

  private async handle(req: ControlRequest): Promise<ControlAnswer> {
    switch (req.cmd) {
      case 'status':
        return { ok: true, status: this.status() };
      case 'update': {
        // `reselqos update`: a full directory fetch (deletions are seen by full fetches only).
        // `--accept`: the operator takes a directory the guard refuses.
        const r = await this.cycle({ force: req.force === true, accept: req.accept === true, fullLdap: true });
        const refusal = this.rt.sources.health.ldap.refusal;
        return {
          ok: r.ok && (refusal === null || r.sources.ldap === 'fresh'),
          summary: summaryLine(r),
          ...(refusal ? { refused: refusal.reason } : {}),
        };
      }
      case 'reload':
        return this.reload();
      case 'stop':
        setImmediate(() => void this.stop('stop command'));
        return { ok: true, pid: process.pid };
      case 'explain': {
        const d = this.last?.desired;
        if (!d) return { ok: false, error: 'no cycle has completed yet' };
        const e = explain(d, req.who, this.watch.observer.timeline);
        return e ? { ok: true, explain: e } : { ok: false, error: `no user or IP "${req.who}" in the directory` };
      }
      case 'complete': {
        // bash completion of `explain`: uids and IPs of the last plan (none before the first).
        const d = this.last?.desired;
        return { ok: true, candidates: d && typeof req.prefix === 'string' ? completeCandidates(d, req.prefix) : [] };
      }
      case 'top':
        return { ok: true, top: await this.watch.observer.top() };
      case 'role':
        return this.setRole(req.role);
      case 'health': {
        if (this.track.asked(Date.now()) === 'master' && this.rt.role.current === 'backup') {
          this.rt.role.set('master', this.clock().toISO() ?? '');
          this.log.info('ha: keepalived asks again: master again (role master)');
        }
        const h = judgeHealth(this.health, this.config.ha, Date.now());
        return { ok: true, healthy: h.healthy, reason: h.reason, role: this.rt.role.current };
      }
      default:
        return { ok: false, error: 'unknown command' };
    }
  }

  /** Finishes any cycle in flight, keeps the kernel as it is, and exits the loop. */
  async stop(why: string): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.log.info(`stopping (${why}); kernel state is kept`);
    await this.queue;
    await this.rt.sources.persist({ forceUsage: true });
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    await this.watch.close();
    await this.rt.close();
    await removePidFile(pidPath(this.config.paths.run));
    await this.lock?.release();
    this.log.info('stopped');
    this.unguard?.();
    this.resolveStopped();
  }
}
