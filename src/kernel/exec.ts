// src/kernel/exec.ts — the one module of the product that runs the kernel tools.
//
// The rule: every command the daemon runs (ipset, iptables-restore, tc, ip, the *-save
// read-backs) goes through the `Exec` seam defined here. The only other spawn in src/ is
// `reselqos start` forking the daemon itself (src/cli/service.ts: node running our own
// cli.js, detached). Test and sandbox processes live in sandbox/ (sandbox/spawn.ts).
//
// Owns: running a command as an argv array (child_process.spawn, never a shell), feeding it
// stdin, collecting stdout/stderr, enforcing a timeout (default 30 s, never infinite), turning a
// failure into an ExecError that names the command and the tool's first meaningful stderr
// line, running commands inside a network namespace (`ip netns exec`), and locating the failing
// input line of a batch tool (`ipset restore`, `tc -batch`, `iptables-restore`).
//
// Must never: use a shell (`shell: true`, `sh -c`), interpolate arguments into a command
// string, wait forever, or decide policy. Higher layers build commands and interpret results.

import { spawn, type ChildProcess } from 'node:child_process';
import { firstErrorLine } from './batch-errors.js';

export { batchErrorLine, batchErrorLines, firstErrorLine, type BatchErrorLine, type BatchTool } from './batch-errors.js';

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

/** A process failed: spawn error, timeout, signal, or an exit code outside okCodes. */
export class ExecError extends Error {
  readonly command: string;
  readonly args: readonly string[];
  readonly code: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;

  constructor(init: {
    command: string;
    args: readonly string[];
    code: number | null;
    signal: string | null;
    stdout: string;
    stderr: string;
    timedOut: boolean;
    cause?: unknown;
    detail?: string;
  }) {
    const what = describeCommand(init.command, init.args);
    let how: string;
    if (init.timedOut) how = 'timed out';
    else if (init.detail !== undefined) how = init.detail;
    else if (init.signal !== null) how = `was killed by ${init.signal}`;
    else how = `exited with code ${String(init.code)}`;
    const line = firstErrorLine(init.stderr);
    super(`${what} ${how}${line ? `: ${line}` : ''}`, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'ExecError';
    this.command = init.command;
    this.args = init.args;
    this.code = init.code;
    this.signal = init.signal;
    this.stdout = init.stdout;
    this.stderr = init.stderr;
    this.timedOut = init.timedOut;
  }
}

/** `ip netns exec rq-gw ipset restore` — the command plus its leading non-option words, bounded. */
export function describeCommand(cmd: string, args: readonly string[]): string {
  const words = [cmd];
  for (const a of args) {
    if (words.length >= 8) {
      words.push('…');
      break;
    }
    words.push(a.length > 40 ? `${a.slice(0, 40)}…` : a);
  }
  return `"${words.join(' ')}"`;
}

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
