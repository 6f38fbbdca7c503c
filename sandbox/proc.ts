// sandbox/proc.ts — process plumbing shared by the private test servers (slapd.ts,
// mariadb.ts): free loopback ports, temp dirs that are swept when their owner died,
// daemons spawned so they die with us, bounded stderr tails, one-shot commands with stdin,
// and a synchronous exit hook that kills what is left. Test-only code; never used by the daemon.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { isAlive } from '../src/daemon/pidfile.js';

/** Keeps the last `max` characters written to it (stderr/stdout of a daemon). */
export class Tail {
  private buf = '';
  constructor(private readonly max = 16_384) {}
  push(chunk: Buffer | string): void {
    this.buf += chunk.toString();
    if (this.buf.length > this.max * 2) this.buf = this.buf.slice(-this.max);
  }
  text(): string {
    return this.buf.slice(-this.max);
  }
  clear(): void {
    this.buf = '';
  }
}

/** A TCP port that was free on 127.0.0.1 a moment ago (bind port 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error('freePort: no port'))));
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ temp dirs

const OWNER_FILE = 'owner.pid';

/**
 * Remove `<tmpdir>/<prefix>*` dirs left behind by a test process that died without cleaning up
 * (its pid, written in owner.pid, is gone). Dirs of live processes are never touched.
 */
export function sweepStaleDirs(prefix: string): void {
  let names: string[];
  try {
    names = readdirSync(tmpdir());
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const dir = join(tmpdir(), name);
    try {
      const pid = Number.parseInt(readFileSync(join(dir, OWNER_FILE), 'utf8'), 10);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && !isAlive(pid)) {
        rmSync(dir, { recursive: true, force: true });
      }
    } catch {
      // no owner file (being created right now, or not ours): leave it
    }
  }
}

/** mkdtemp under os.tmpdir() with an owner.pid file so that sweepStaleDirs can reclaim it. */
export function makeTempDir(prefix: string): string {
  sweepStaleDirs(prefix);
  const dir = mkdtempSync(join(tmpdir(), prefix));
  writeFileSync(join(dir, OWNER_FILE), String(process.pid));
  return dir;
}

// ------------------------------------------------------------------ exit hook

const exitHooks = new Set<() => void>();
let exitHookInstalled = false;

/** Run `fn` synchronously when this process exits (best effort). Returns an unregister function. */
export function onProcessExit(fn: () => void): () => void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const hook of [...exitHooks]) {
        try {
          hook();
        } catch {
          // best effort
        }
      }
    });
  }
  exitHooks.add(fn);
  return () => exitHooks.delete(fn);
}

// ------------------------------------------------------------------ daemons

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

/**
 * Spawn a long-running server as our child. When setpriv(1) is available the child gets
 * PR_SET_PDEATHSIG=TERM, so it is told to stop even if node is SIGKILLed (its temp dir then
 * stays until the next start sweeps it). The child does not keep the event loop alive.
 */
export function spawnDaemon(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): ChildProcess {
  const [file, argv] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'TERM', '--', cmd, ...args]] : [cmd, args];
  const child = spawn(file, argv, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    detached: false,
  });
  // A server left running must not keep node alive: when the test code is done, node exits and
  // the onProcessExit hooks kill it.
  child.unref();
  for (const s of [child.stdout, child.stderr]) (s as unknown as { unref?: () => void } | null)?.unref?.();
  return child;
}

/** Resolves with the exit code/signal once `child` has exited (immediately if it already has). */
export function waitExit(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => {
    // The child is unref'd (see spawnDaemon): keep the loop alive while someone waits for it.
    const keepAlive = setInterval(() => undefined, 60_000);
    child.once('exit', (code, signal) => {
      clearInterval(keepAlive);
      resolve({ code, signal });
    });
  });
}

export function isRunning(child: ChildProcess | undefined): child is ChildProcess {
  return child !== undefined && child.exitCode === null && child.signalCode === null;
}

/** Send `signal`, wait up to `graceMs`, then SIGKILL and wait. */
export async function terminate(child: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (!isRunning(child)) return;
  const exited = waitExit(child);
  child.kill(signal);
  let t: NodeJS.Timeout | undefined;
  const timer = new Promise<'timeout'>((r) => {
    t = setTimeout(() => r('timeout'), graceMs);
  });
  const first = await Promise.race([exited, timer]);
  clearTimeout(t);
  if (first === 'timeout') {
    child.kill('SIGKILL');
    await exited;
  }
}

// ------------------------------------------------------------------ one-shot commands

export type Input = string | Iterable<string> | AsyncIterable<string>;

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Run a command (argv array, no shell), feed `input` on stdin (with backpressure), collect its
 * output. Never rejects because of the exit status: callers check `code`.
 */
export function run(
  cmd: string,
  args: string[],
  opts: { input?: Input; timeoutMs?: number; env?: NodeJS.ProcessEnv; keepStdout?: boolean; signal?: AbortSignal } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      ...(opts.signal ? { signal: opts.signal, killSignal: 'SIGKILL' as const } : {}),
    });
    const out = new Tail(opts.keepStdout ? 64 * 1024 * 1024 : 16_384);
    const err = new Tail(16_384);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        err.push(`\n[killed after ${opts.timeoutMs} ms]`);
        child.kill('SIGKILL');
      }, opts.timeoutMs);
    }
    child.once('error', (e) => {
      if (e.name === 'AbortError') return; // 'close' follows and resolves
      if (timer) clearTimeout(timer);
      reject(new Error(`${cmd}: ${e.message}`));
    });
    child.once('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout: out.text(), stderr: err.text() });
    });
    // EPIPE when the command exits early: its exit status and stderr tell the story.
    child.stdin.on('error', () => undefined);
    void feed(child.stdin, opts.input).catch(() => undefined);
  });
}

async function feed(stdin: Writable, input: Input | undefined): Promise<void> {
  if (input === undefined) {
    stdin.end();
    return;
  }
  const chunks: Iterable<string> | AsyncIterable<string> = typeof input === 'string' ? [input] : input;
  for await (const chunk of chunks) {
    if (stdin.destroyed || stdin.writableEnded) return; // the command is gone
    if (!stdin.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          stdin.removeListener('drain', done);
          stdin.removeListener('close', done);
          stdin.removeListener('error', done);
          resolve();
        };
        stdin.once('drain', done);
        stdin.once('close', done);
        stdin.once('error', done);
      });
    }
  }
  if (!stdin.destroyed) stdin.end();
}

/** Last `n` lines of a text, for error messages. */
export function tailLines(text: string, n = 20): string {
  const lines = text.trimEnd().split('\n');
  return lines.slice(-n).join('\n');
}

export interface Lifecycle {
  isStopped(): boolean;
  pid(): number | undefined;
  running(): boolean;
  /** SIGTERM, wait, remove the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL (for fault tests); the data stays, restart() brings it back. */
  kill(): Promise<void>;
  /** Start again on the same port with the same data (stops gracefully first if running). */
  restart(): Promise<void>;
}

/** The stop / kill / restart life of a sandbox server (slapd, MariaDB) around its own halt and start. */
export function serverLifecycle(
  name: string,
  o: {
    child: () => ChildProcess | undefined;
    halt: () => Promise<void>;
    start: () => Promise<void>;
    unregister: () => void;
    dir: string;
  },
): Lifecycle {
  let stopped = false;
  return {
    isStopped: () => stopped,
    pid: () => {
      const c = o.child();
      return isRunning(c) ? c.pid : undefined;
    },
    running: () => isRunning(o.child()),
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        await o.halt();
      } finally {
        o.unregister();
        rmSync(o.dir, { recursive: true, force: true });
      }
    },
    async kill() {
      const c = o.child();
      if (isRunning(c)) {
        const exited = waitExit(c);
        c.kill('SIGKILL');
        await exited;
      }
    },
    async restart() {
      if (stopped) throw new Error(`${name}: restart() after stop() (the data is gone)`);
      await o.halt();
      await o.start();
    },
  };
}
