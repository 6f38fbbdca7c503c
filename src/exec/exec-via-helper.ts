// src/exec/exec-via-helper.ts — the Exec of a long-lived runtime: commands handed to the spawn
// helper (exec-helper.ts), a small Node child started once, so that each spawn forks it and not
// the daemon's large heap (libuv forks: page tables copied; docs/DESIGN.md, "The spawn helper").
//
// Owns: starting the helper (through exec.ts's spawnWithChannel; inside `ip netns exec <ns>` for
// [firewall] netns), the request/answer protocol (argv, input, timeout, ok codes → output, exit
// code), restarting it (at most every restartDelayMs), and the fallbacks: a direct spawn
// (exec.ts realExec, wrapped in `ip netns exec`) while it is not ready, for inputs that are large
// or in pieces, and when it refuses; a command it was running when it died fails (ExecError "was
// cut off"). Errors name the command as a direct spawn would.
//
// Must never: spawn anything itself (exec.ts does), send a command string, keep its parent
// alive when idle, retry a command that may have run.

import type { ChildProcess } from 'node:child_process';
import {
  DEFAULT_TIMEOUT_MS,
  ExecError,
  KILL_GRACE_MS,
  collectStream,
  firstErrorLine,
  inNetns,
  realExec,
  spawnWithChannel,
  type Exec,
  type ExecOptions,
  type ExecResult,
} from './exec.js';

/** What a HelperExec did so far (tests, the benchmark). */
export interface HelperStats {
  /** commands the helper ran (whatever their exit code) */
  viaHelper: number;
  /** commands run by a direct spawn: helper not ready, refused, input too large */
  direct: number;
  /** helper processes started */
  starts: number;
  /** commands cut off because the helper died while running them */
  cutOff: number;
}

export interface HelperExec {
  readonly exec: Exec;
  readonly stats: HelperStats;
  /** pid of the running helper, or null */
  readonly pid: number | null;
  /** Resolves when the helper is ready (true) or could not be started (false). */
  ready(): Promise<boolean>;
  /** Stops the helper (commands in flight are cut off) and waits until it has exited. */
  close(): Promise<void>;
}

export interface HelperOptions {
  /** the namespace of [firewall] netns: the helper lives there and commands are not wrapped */
  netns?: string;
  /** the helper program (default: exec-helper.js beside this module) */
  script?: string;
  /** inputs longer than this (chars), and inputs in pieces, are run by a direct spawn (the IPC copy costs more than the fork saves) */
  maxInput?: number;
  /** least time between two starts of the helper (ms) */
  restartDelayMs?: number;
  /** told when the helper starts, dies or refuses (a log line) */
  onEvent?: (msg: string) => void;
}

const HELPER_SCRIPT = new URL('./exec-helper.js', import.meta.url).pathname;

/**
 * An Exec that runs commands through the spawn helper (exec-helper.ts), a small Node child
 * started once. Fail-safe: while the helper is not ready (starting, dead, restarting at most
 * every `restartDelayMs`), when it refuses a command (namespace recreated) or when the input is
 * large, the command is run by a direct spawn (`realExec`, through `ip netns exec` with a
 * namespace); a command the helper dies while running fails with an ExecError (it may have
 * run partly: the caller's failure path re-reads the kernel), and the next one starts a new helper.
 */
export function helperExec(opts: HelperOptions = {}): HelperExec {
  const netns = opts.netns;
  const direct: Exec = netns ? inNetns(realExec, netns) : realExec;
  const maxInput = opts.maxInput ?? 4 << 20;
  const restartDelayMs = opts.restartDelayMs ?? 1000;
  const stats: HelperStats = { viaHelper: 0, direct: 0, starts: 0, cutOff: 0 };
  type Pending = {
    cmd: string;
    args: readonly string[];
    opts: ExecOptions;
    resolve: (r: ExecResult) => void;
    reject: (e: Error) => void;
    timer: NodeJS.Timeout;
  };
  const pending = new Map<number, Pending>();
  let child: ChildProcess | null = null;
  let isReady = false;
  /** the helper refused a command: no new ones go to it, it is stopped when idle */
  let retiring = false;
  let closed = false;
  let lastStart = -Infinity;
  let nextId = 0;
  let waiters: ((ok: boolean) => void)[] = [];
  // The command as the caller would see it run directly (error messages name the same command).
  const shown = (cmd: string, args: readonly string[]): [string, string[]] =>
    netns ? ['ip', ['netns', 'exec', netns, cmd, ...args]] : [cmd, [...args]];
  const hold = (): void => {
    // A pending command keeps the event loop alive; an idle helper does not.
    const ch = child?.channel as { ref?: () => void; unref?: () => void } | undefined;
    if (pending.size > 0) ch?.ref?.();
    else ch?.unref?.();
    // A helper that refused (namespace recreated) goes once its other commands are answered.
    if (retiring && pending.size === 0) child?.kill('SIGKILL');
  };
  const settleWaiters = (ok: boolean): void => {
    const w = waiters;
    waiters = [];
    for (const f of w) f(ok);
  };

  const start = (): void => {
    if (closed || child !== null || performance.now() - lastStart < restartDelayMs) return;
    lastStart = performance.now();
    stats.starts++;
    const script = opts.script ?? HELPER_SCRIPT;
    const [cmd, args] = netns ? ['ip', ['netns', 'exec', netns, process.execPath, script, netns]] : [process.execPath, [script]];
    let c: ChildProcess;
    try {
      c = spawnWithChannel(cmd, args);
    } catch (e) {
      opts.onEvent?.(`exec helper could not be started (${(e as Error).message}): commands are spawned directly`);
      settleWaiters(false);
      return;
    }
    child = c;
    retiring = false;
    const err = collectStream(c.stderr);
    // Neither the process nor its stderr pipe keeps the event loop alive (hold() refs the channel while a command is pending).
    c.unref();
    (c.stderr as { unref?: () => void } | null)?.unref?.();
    c.on('message', (m: { ready?: number } & Partial<{ id: number; refused: string }>) => {
      if (m.ready !== undefined) {
        isReady = true;
        hold();
        settleWaiters(true);
        return;
      }
      if (m.id !== undefined) reply(m as Parameters<typeof reply>[0]);
    });
    c.on('error', () => gone(c, null, null, err()));
    c.on('close', (code, signal) => gone(c, code, signal, err())); // after stderr is read to its end
    hold();
  };

  const gone = (c: ChildProcess, code: number | null, signal: string | null, stderr: string): void => {
    if (child !== c) return;
    child = null;
    const wasReady = isReady;
    isReady = false;
    settleWaiters(false);
    const how = signal ? `was killed by ${signal}` : `exited with code ${String(code)}`;
    // node's own errors start with a source location: the line that names the error says more
    const why = /^.*(?:Error|[Cc]annot).*$/m.exec(stderr)?.[0].trim() ?? firstErrorLine(stderr);
    if (!closed)
      opts.onEvent?.(
        `exec helper ${how}${why ? `: ${why}` : ''}${wasReady ? '' : ' before it was ready'}: commands are spawned directly until it is restarted`,
      );
    for (const [id, p] of pending) {
      pending.delete(id);
      clearTimeout(p.timer);
      stats.cutOff++;
      const [sc, sa] = shown(p.cmd, p.args);
      p.reject(
        new ExecError({
          command: sc,
          args: sa,
          code: null,
          signal: null,
          stdout: '',
          stderr: '',
          timedOut: false,
          detail: `was cut off: the exec helper ${how}`,
        }),
      );
    }
  };

  const reply = (m: {
    id: number;
    refused?: string;
    ok?: boolean;
    stdout?: string;
    stderr?: string;
    code?: number | null;
    signal?: string | null;
    timedOut?: boolean;
    detail?: string;
  }): void => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.refused !== undefined) {
      // Nothing was run: run it ourselves, and replace the helper.
      if (!retiring) opts.onEvent?.(`exec helper refused a command (${m.refused}): replacing it`);
      retiring = true;
      isReady = false;
      hold();
      stats.direct++;
      direct(p.cmd, p.args, p.opts).then(p.resolve, p.reject);
      return;
    }
    hold();
    stats.viaHelper++;
    const [sc, sa] = shown(p.cmd, p.args);
    if (m.ok) p.resolve({ stdout: m.stdout ?? '', stderr: m.stderr ?? '', code: m.code ?? 0 });
    else
      p.reject(
        new ExecError({
          command: sc,
          args: sa,
          code: m.code ?? null,
          signal: m.signal ?? null,
          stdout: m.stdout ?? '',
          stderr: m.stderr ?? '',
          timedOut: m.timedOut ?? false,
          ...(m.detail ? { detail: m.detail } : {}),
        }),
      );
  };

  const exec: Exec = (cmd, args, o = {}) => {
    const c = child;
    const big = o.input !== undefined && (typeof o.input !== 'string' || o.input.length > maxInput);
    if (closed || c === null || !isReady || big) {
      start();
      stats.direct++;
      return direct(cmd, args, o);
    }
    return new Promise<ExecResult>((resolve, reject) => {
      const id = ++nextId;
      const timeoutMs = o.timeoutMs !== undefined && o.timeoutMs > 0 ? o.timeoutMs : DEFAULT_TIMEOUT_MS;
      // The helper enforces the timeout; this one only catches a helper that stopped answering.
      const timer = setTimeout(
        () => {
          if (!pending.has(id)) return;
          opts.onEvent?.(`exec helper did not answer within ${timeoutMs + 2 * KILL_GRACE_MS} ms: killing it`);
          c.kill('SIGKILL');
        },
        timeoutMs + 2 * KILL_GRACE_MS,
      );
      pending.set(id, { cmd, args, opts: o, resolve, reject, timer });
      hold();
      const req = { id, cmd, args: [...args], input: o.input, timeoutMs: o.timeoutMs, okCodes: o.okCodes };
      try {
        c.send(req, (e: Error | null) => {
          if (!e || !pending.has(id)) return;
          // Not handed over (the channel closed under us): nothing ran, run it directly.
          pending.delete(id);
          clearTimeout(timer);
          hold();
          stats.direct++;
          direct(cmd, args, o).then(resolve, reject);
        });
      } catch {
        pending.delete(id);
        clearTimeout(timer);
        hold();
        stats.direct++;
        direct(cmd, args, o).then(resolve, reject);
      }
    });
  };

  return {
    exec,
    stats,
    get pid() {
      return child?.pid ?? null;
    },
    ready: () => {
      if (isReady) return Promise.resolve(true);
      start();
      const c = child;
      if (c === null) return Promise.resolve(false);
      c.ref(); // someone waits for it: keep the event loop alive until it is ready or gone
      return new Promise<boolean>((r) =>
        waiters.push((ok) => {
          c.unref();
          r(ok);
        }),
      );
    },
    close: async () => {
      closed = true;
      const c = child;
      if (!c) return;
      const exited = new Promise<void>((r) => c.once('exit', () => r()));
      if (c.connected) c.disconnect();
      const kill = setTimeout(() => c.kill('SIGKILL'), KILL_GRACE_MS);
      await exited;
      clearTimeout(kill);
    },
  };
}
