// src/exec/exec.ts — the one module of the product that runs the kernel tools.
//
// The rule: every command the daemon runs (ipset, iptables-restore, tc, ip, the *-save
// read-backs) goes through the `Exec` seam defined here (and, from the daemon, through the spawn
// helper exec-helper.ts, which runs the same realExec). The other spawns in src/ run no kernel
// tool: `reselqos start` forking the daemon itself (src/cli/service.ts: node running our own
// cli.js, detached) and flock(1) holding the kernel lock (src/daemon/pidfile.ts). Test and
// sandbox processes live in sandbox/ (sandbox/spawn.ts).
//
// Owns: running a command as an argv array (child_process.spawn, never a shell), feeding it
// stdin, collecting stdout/stderr, enforcing a timeout (default 30 s, never infinite), turning a
// failure into an ExecError (exec-errors.ts, re-exported with the batch error lines), running
// commands inside a network namespace (`ip netns exec`), and starting the spawn helper (a small
// Node child that spawns for the daemon so that a spawn forks it, not the daemon's large heap:
// exec-helper.ts is the program, exec-via-helper.ts the Exec that talks to it).
//
// Must never: use a shell (`shell: true`, `sh -c`), interpolate arguments into a command
// string, wait forever, or decide policy. Higher layers build commands and interpret results.

import { spawn, type ChildProcess } from 'node:child_process';
import { ExecError } from './exec-errors.js';

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
  /**
   * Written to the child's stdin, which is then closed. Without it stdin is /dev/null. Pieces
   * (an iterable, e.g. a generator rendering a large batch) are pulled one at a time as the
   * child reads: rendering goes on while the tool works, and no single giant string is built.
   */
  input?: string | Iterable<string>;
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
export const KILL_GRACE_MS = 2_000;

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

    const input = opts.input;
    const stdin = child.stdin;
    if (input !== undefined && stdin) {
      // A child that exits before reading all its input gives EPIPE; its exit code tells the story.
      let broken = false;
      stdin.on('error', () => {
        broken = true;
      });
      if (typeof input === 'string') stdin.end(input, 'utf8');
      else {
        const pieces = input[Symbol.iterator]();
        // One piece is rendered ahead while the child reads the last one: it never waits for us.
        let ahead: IteratorResult<string> | null = null;
        const take = (): IteratorResult<string> | null => {
          try {
            const n = ahead ?? pieces.next();
            ahead = null;
            return n;
          } catch {
            // The input could not be produced: the tool must not apply half of it quietly.
            child.kill('SIGKILL');
            stdin.destroy();
            return null;
          }
        };
        const pump = (): void => {
          for (;;) {
            if (broken || settled) return;
            const next = take();
            if (next === null) return;
            if (next.done) {
              stdin.end();
              return;
            }
            if (!stdin.write(next.value, 'utf8')) {
              const peek = take();
              if (peek === null) return;
              ahead = peek;
              stdin.once('drain', pump);
              return;
            }
          }
        };
        pump();
      }
    }
  });
};

/** An Exec that runs every command inside network namespace `netns` (`ip netns exec`). */
export function inNetns(exec: Exec, netns: string): Exec {
  if (!/^[A-Za-z0-9_.-]+$/.test(netns)) throw new Error(`inNetns: bad namespace name ${JSON.stringify(netns)}`);
  return (cmd, args, opts) => exec('ip', ['netns', 'exec', netns, cmd, ...args], opts);
}

/**
 * Starts a long-lived child with an IPC channel (advanced serialization), stdin and stdout
 * closed, stderr piped: the spawn helper (exec-via-helper.ts), the only such child. An argv, no shell.
 */
export function spawnWithChannel(cmd: string, args: readonly string[]): ChildProcess {
  return spawn(cmd, [...args], {
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    serialization: 'advanced',
    shell: false,
    env: { ...process.env, LC_ALL: 'C' },
  });
}

/** Collects a child's stream (exec-via-helper.ts reads the helper's stderr with it). */
export function collectStream(stream: NodeJS.ReadableStream | null): () => string {
  return collect(stream);
}
