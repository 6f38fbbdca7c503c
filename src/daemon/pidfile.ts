// Pid files and start locks: one instance only, even under two concurrent `start`s.
// A file created with O_EXCL holds our pid; a stale one (its process gone) is replaced.

import { open, readFile, unlink, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

export class AlreadyRunningError extends Error {
  constructor(readonly pid: number, readonly path: string) {
    super(`already running (pid ${pid}, ${path})`);
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
    const n = Number((await readFile(path, 'utf8')).trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/** Creates `path` holding `pid`; AlreadyRunningError if a live process holds it. */
export async function acquire(path: string, pid = process.pid): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o644);
      await fh.writeFile(`${pid}\n`);
      await fh.close();
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = await readPid(path);
      if (holder !== null && holder !== pid && isAlive(holder)) throw new AlreadyRunningError(holder, path);
      // stale: remove it, unless someone replaced it meanwhile
      if ((await readPid(path)) === holder) await unlink(path).catch(() => undefined);
    }
  }
  throw new Error(`cannot create ${path}`);
}

export async function release(path: string, pid = process.pid): Promise<void> {
  if ((await readPid(path)) === pid) await unlink(path).catch(() => undefined);
}
