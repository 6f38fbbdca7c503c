// Last good snapshots: kept in memory, persisted under [path] state with atomic
// writes, so that a restart while LDAP or MySQL is down still knows every user and
// their volumes of the day. Owns the refusal rules: an empty directory, or one that
// shrank by more than [ldap] maxShrink since the last good one, is refused unless forced.

import { mkdir, readFile, rename, writeFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { SnapshotRefusedError, type Directory, type Usage } from './types.js';

const DIRECTORY_FILE = 'directory.json';
const VOLUMES_FILE = 'volumes.json';
const FORMAT = 1;

export async function atomicWrite(file: string, data: string, mode = 0o600): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, data, { mode });
  const fh = await open(tmp, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
}

/** Refuses an empty directory or one that lost more than maxShrink of its machines. */
export function checkDirectory(next: Directory, prev: Directory | null, maxShrink: number, force: boolean): void {
  if (force) return;
  if (next.owners.length === 0 || next.machines.length === 0) {
    throw new SnapshotRefusedError('ldap', `directory came back with ${next.owners.length} owner(s) and ${next.machines.length} machine(s): refused as empty (wrong base DN or filter?); the last good snapshot stays in force`);
  }
  if (prev && prev.machines.length > 0) {
    const lost = (prev.machines.length - next.machines.length) / prev.machines.length;
    if (lost > maxShrink) {
      throw new SnapshotRefusedError('ldap', `directory shrank from ${prev.machines.length} to ${next.machines.length} machines (-${(lost * 100).toFixed(1)}%, more than maxShrink ${(maxShrink * 100).toFixed(0)}%): refused; force it if this is intended`);
    }
  }
}

export class SnapshotStore {
  private directory: Directory | null = null;
  private usage: Usage | null = null;
  private savedDirectoryAt: string | null = null;
  private savedUsageAtMs = 0;

  constructor(private readonly dir: string, private readonly log: Logger, private readonly usageSaveEveryMs = 60_000) {}

  get lastDirectory(): Directory | null {
    return this.directory;
  }
  get lastUsage(): Usage | null {
    return this.usage;
  }

  /** Loads what a previous process persisted (missing or unreadable files: nothing). */
  async load(): Promise<void> {
    try {
      const j = JSON.parse(await readFile(join(this.dir, DIRECTORY_FILE), 'utf8')) as { format: number; directory: Directory };
      if (j.format === FORMAT && Array.isArray(j.directory?.machines)) {
        this.directory = j.directory;
        this.savedDirectoryAt = j.directory.fetchedAt;
        this.lastSavedDirectory = j.directory;
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn(`state: cannot read ${join(this.dir, DIRECTORY_FILE)}: ${(e as Error).message}`);
    }
    try {
      const j = JSON.parse(await readFile(join(this.dir, VOLUMES_FILE), 'utf8')) as { format: number; resetAt: string; fetchedAt: string; volumes: [string, number, number][] };
      if (j.format === FORMAT && Array.isArray(j.volumes)) {
        this.usage = { resetAt: j.resetAt, fetchedAt: j.fetchedAt, byIp: new Map(j.volumes.map(([ip, down, up]) => [ip, { down, up }])) };
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn(`state: cannot read ${join(this.dir, VOLUMES_FILE)}: ${(e as Error).message}`);
    }
  }

  /** Checks and keeps a fresh directory; throws SnapshotRefusedError (nothing changes then). */
  acceptDirectory(next: Directory, maxShrink: number, force = false): void {
    checkDirectory(next, this.directory, maxShrink, force);
    this.directory = next;
  }

  acceptUsage(next: Usage): void {
    this.usage = next;
  }

  /**
   * Persists what changed since the last save, at most every saveEveryMs (serialising a
   * 100 000-user directory costs seconds: not on every cycle) unless forced (stop, start).
   */
  async persist(opts: { forceUsage?: boolean } = {}): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o750 });
    const d = this.directory;
    const now = Date.now();
    // The common case: the very directory object already on disk (a cycle without changes).
    const due = opts.forceUsage === true || now - this.savedDirectoryAtMs >= this.usageSaveEveryMs;
    if (d && d !== this.lastSavedDirectory && d.fetchedAt !== this.savedDirectoryAt && due) {
      await atomicWrite(join(this.dir, DIRECTORY_FILE), JSON.stringify({ format: FORMAT, directory: d }));
      this.lastSavedDirectory = d;
      this.savedDirectoryAt = d.fetchedAt;
      this.savedDirectoryAtMs = now;
    }
    const u = this.usage;
    if (u && (opts.forceUsage || now - this.savedUsageAtMs >= this.usageSaveEveryMs)) {
      const volumes = [...u.byIp].map(([ip, v]) => [ip, v.down, v.up]);
      await atomicWrite(join(this.dir, VOLUMES_FILE), JSON.stringify({ format: FORMAT, resetAt: u.resetAt, fetchedAt: u.fetchedAt, volumes }));
      this.savedUsageAtMs = now;
    }
  }

  private lastSavedDirectory: Directory | null = null;
  private savedDirectoryAtMs = 0;
}
