// Long-running helper processes of the sandbox and the tests (iperf3 -s, TCP servers, sleepers).
// Owns: starting one without a shell, bounded capture of its output, stopping it.
// Never: used by the daemon (the daemon spawns only through src/exec/exec.ts).
import { spawn } from 'node:child_process';
import { ExecError } from '../src/exec/exec.js';

export interface BackgroundProcess {
  readonly pid: number;
  readonly command: string;
  readonly args: readonly string[];
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  /** Everything printed so far (bounded to the last 64 KiB each). */
  output(): { stdout: string; stderr: string };
  running(): boolean;
  /** SIGTERM, then SIGKILL after graceMs (default 2000); resolves once it is gone. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts a long-running process (no shell, stdin /dev/null). For servers in test sandboxes
 * (iperf3 -s); the daemon itself uses only `realExec`. The caller must stop() it.
 */
export function spawnBackground(cmd: string, args: readonly string[]): Promise<BackgroundProcess> {
  const argv = [...args];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], shell: false });
    const MAX = 65_536;
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => {
      stdout = (stdout + c.toString('utf8')).slice(-MAX);
    });
    child.stderr?.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString('utf8')).slice(-MAX);
    });
    let alive = true;
    const exited = new Promise<{ code: number | null; signal: string | null }>((res) => {
      child.once('close', (code, signal) => {
        alive = false;
        res({ code, signal });
      });
    });
    child.once('error', (e) => {
      alive = false;
      reject(
        new ExecError({
          command: cmd,
          args: argv,
          code: null,
          signal: null,
          stdout,
          stderr,
          timedOut: false,
          cause: e,
          detail: `could not be started (${(e as NodeJS.ErrnoException).code ?? e.message})`,
        }),
      );
    });
    child.once('spawn', () => {
      const pid = child.pid;
      if (pid === undefined) return;
      resolve({
        pid,
        command: cmd,
        args: argv,
        exited,
        output: () => ({ stdout, stderr }),
        running: () => alive,
        stop: async (graceMs = 2_000) => {
          if (!alive) return;
          child.kill('SIGTERM');
          const t = setTimeout(() => {
            if (alive) child.kill('SIGKILL');
          }, graceMs);
          await exited;
          clearTimeout(t);
        },
      });
    });
  });
}
