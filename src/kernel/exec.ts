// src/kernel/exec.ts — the one module of the product that runs the kernel tools.
//
// The rule: every command the daemon runs (ipset, iptables-restore, tc, ip, the *-save
// read-backs) goes through the `Exec` seam defined here. The only other spawn in src/ is
// `reselqos start` forking the daemon itself (src/cli/service.ts: node running our own
// cli.js, detached). Test and sandbox processes live in sandbox/ (sandbox/spawn.ts).
//
// Owns: running a command as an argv array (child_process.spawn, never a shell), feeding it
// stdin, collecting stdout/stderr, enforcing a timeout (default 30 s, never infinite), turning a
// failure into an ExecError (exec-errors.ts, re-exported with the batch error lines), running
// commands inside a network namespace (`ip netns exec`), and the spawn helper: a small Node
// child started once (exec-helper.ts) that spawns for the daemon so that a spawn forks it, not
// the daemon's large heap, falling back to a direct spawn whenever it cannot serve.
//
// Must never: use a shell (`shell: true`, `sh -c`), interpolate arguments into a command
// string, wait forever, or decide policy. Higher layers build commands and interpret results.

import { spawn, type ChildProcess } from 'node:child_process';
import { ExecError, firstErrorLine } from './exec-errors.js';

export {
  batchErrorLine,
  batchErrorLines,
  describeCommand,
  ExecError,
  firstErrorLine,
  type BatchErrorLine,
  type BatchTool,
} from './exec-errors.js';

export interface ExecOptions {
  /** Written to the child's stdin, which is then closed. Without it stdin is /dev/null. */
  input?: string;
  /** Kill the child (SIGTERM, then SIGKILL after 2 s) after this many ms. Default 30 000. */
  timeoutMs?: number;
  /** Exit codes treated as success. Default [0]. */
  okCodes?: number[];
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export type Exec = (cmd: string, args: readonly string[], opts?: ExecOptions) => Promise<ExecResult>;

export const DEFAULT_TIMEOUT_MS = 30_000;
const KILL_GRACE_MS = 2_000;

function collect(stream: NodeJS.ReadableStream | null): () => string {
  const chunks: Buffer[] = [];
  stream?.on('data', (c: Buffer) => chunks.push(c));
  return () => Buffer.concat(chunks).toString('utf8');
}

/** Runs `cmd args…` directly (no shell). Rejects with ExecError unless the exit code is ok. */
export const realExec: Exec = (cmd, args, opts = {}) => {
  const timeoutMs = opts.timeoutMs !== undefined && opts.timeoutMs > 0 ? opts.timeoutMs : DEFAULT_TIMEOUT_MS;
  const okCodes = opts.okCodes ?? [0];
  const argv = [...args];
  return new Promise<ExecResult>((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawn(cmd, argv, {
        stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
        shell: false,
        windowsHide: true,
        // untranslated messages: higher layers match the tools' error texts
        env: { ...process.env, LC_ALL: 'C' },
      });
    } catch (e) {
      reject(
        new ExecError({
          command: cmd,
          args: argv,
          code: null,
          signal: null,
          stdout: '',
          stderr: '',
          timedOut: false,
          cause: e,
          detail: `could not be started (${(e as Error).message})`,
        }),
      );
      return;
    }
    const out = collect(child.stdout);
    const err = collect(child.stderr);
    let timedOut = false;
    let settled = false;
    let killTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
    }, timeoutMs);

    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      fn();
    };

    child.once('error', (e: NodeJS.ErrnoException) => {
      finish(() =>
        reject(
          new ExecError({
            command: cmd,
            args: argv,
            code: null,
            signal: null,
            stdout: out(),
            stderr: err(),
            timedOut: false,
            cause: e,
            detail: `could not be started (${e.code ?? e.message})`,
          }),
        ),
      );
    });
    child.once('close', (code, signal) => {
      finish(() => {
        const stdout = out();
        const stderr = err();
        if (!timedOut && signal === null && code !== null && okCodes.includes(code)) {
          resolve({ stdout, stderr, code });
        } else {
          reject(new ExecError({ command: cmd, args: argv, code, signal, stdout, stderr, timedOut }));
        }
      });
    });

    if (opts.input !== undefined && child.stdin) {
      // A child that exits before reading all its input gives EPIPE; its exit code tells the story.
      child.stdin.on('error', () => undefined);
      child.stdin.end(opts.input, 'utf8');
    }
  });
};

/** An Exec that runs every command inside network namespace `netns` (`ip netns exec`). */
export function inNetns(exec: Exec, netns: string): Exec {
  if (!/^[A-Za-z0-9_.-]+$/.test(netns)) throw new Error(`inNetns: bad namespace name ${JSON.stringify(netns)}`);
  return (cmd, args, opts) => exec('ip', ['netns', 'exec', netns, cmd, ...args], opts);
}

// ------------------------------------------------------------------ the spawn helper (client)

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
  /** inputs longer than this (chars) are run by a direct spawn (the IPC copy costs more than the fork saves) */
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
      c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'advanced', env: { ...process.env, LC_ALL: 'C' } });
    } catch (e) {
      opts.onEvent?.(`exec helper could not be started (${(e as Error).message}): commands are spawned directly`);
      settleWaiters(false);
      return;
    }
    child = c;
    retiring = false;
    const err = collect(c.stderr);
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
    if (closed || c === null || !isReady || (o.input !== undefined && o.input.length > maxInput)) {
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
