// One actor on the kernel at a time: the daemon, `run --once`, `clear` and `start`'s rebuild
// all hold the same lock, an exclusive flock(2) on a file under [path] run that is never
// removed. The kernel releases it when the holder's descriptor closes, whatever way the
// process ends: no stale lock, nothing to unlink, no check-then-unlink race.
// Node has no flock(): the file is opened here and its descriptor handed to util-linux's
// `flock --nonblock --exclusive 3` for the one call; the lock belongs to the open file
// description, which this process keeps open (O_CLOEXEC: no other child inherits it).
// The holder writes "<pid> <what>" into the file, only ever read by someone refused.
// Also: the daemon's pid file (for init scripts), written and removed only under the lock.

import { open, readFile, unlink, mkdir, writeFile, type FileHandle } from 'node:fs/promises';
import { constants } from 'node:fs';
import { spawn } from 'node:child_process';
import { dirname } from 'node:path';

export class AlreadyRunningError extends Error {
  constructor(
    readonly pid: number | null,
    readonly what: string,
    readonly path: string,
  ) {
    super(`${what === '' ? 'another reselqos' : what} (pid ${pid ?? 'unknown'}) holds ${path}`);
    this.name = 'AlreadyRunningError';
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function readPid(path: string): Promise<number | null> {
  try {
    const n = Number((await readFile(path, 'utf8')).trim().split(/\s+/)[0]);
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

export interface HeldLock {
  readonly path: string;
  /** Lets the lock go (the file stays). Idempotent. */
  release(): Promise<void>;
}

/** Held locks: a FileHandle that is garbage-collected would close, and the lock with it. */
const held = new Set<FileHandle>();

/** flock(1) on descriptor 3 of the child, which is our `fh`: 0 taken, 1 busy. */
function flockFd(fh: FileHandle): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('flock', ['--nonblock', '--exclusive', '--conflict-exit-code', '75', '3'], {
      stdio: ['ignore', 'ignore', 'pipe', fh.fd],
    });
    let err = '';
    child.stderr?.setEncoding('utf8').on('data', (c: string) => (err += c));
    child.on('error', (e) => reject(new Error(`cannot run flock (util-linux): ${e.message}`)));
    child.on('close', (code) => {
      if (code === 0 || code === 75) resolve(code);
      else reject(new Error(`flock failed (exit ${code ?? 'signal'}): ${err.trim()}`));
    });
  });
}

/**
 * Takes the exclusive lock on `path` for `what` ("daemon", "run --once", ...), without
 * waiting: AlreadyRunningError naming the holder's pid if another process has it.
 */
export async function takeLock(path: string, what: string, pid = process.pid): Promise<HeldLock> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const fh = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  let code: number;
  try {
    code = await flockFd(fh);
  } catch (e) {
    await fh.close();
    throw e;
  }
  if (code !== 0) {
    // The holder writes its pid right after locking: give it a moment.
    let holder = '';
    for (let i = 0; i < 20 && holder === ''; i++) {
      holder = (await fh.readFile({ encoding: 'utf8' }).catch(() => '')).trim();
      if (holder === '') await new Promise((r) => setTimeout(r, 25));
    }
    await fh.close();
    const m = /^([0-9]+)\s*(.*)$/.exec(holder);
    throw new AlreadyRunningError(m ? Number(m[1]) : null, m?.[2] ?? '', path);
  }
  held.add(fh);
  await fh.truncate(0);
  await fh.write(`${pid} ${what}\n`, 0);
  let released = false;
  return {
    path,
    release: async () => {
      if (released) return;
      released = true;
      await fh.truncate(0).catch(() => undefined);
      held.delete(fh);
      await fh.close();
    },
  };
}

/** The daemon's pid file, for init scripts: written once the lock is held. */
export async function writePidFile(path: string, pid = process.pid): Promise<void> {
  await writeFile(path, `${pid}\n`, { mode: 0o644 });
}

/** Removes the pid file if it is ours (called with the lock still held). */
export async function removePidFile(path: string, pid = process.pid): Promise<void> {
  if ((await readPid(path)) === pid) await unlink(path).catch(() => undefined);
}
