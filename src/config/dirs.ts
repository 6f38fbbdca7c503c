// The directories qos.conf names ([path] run, state, log) must be reselqos's own: whoever can
// write in one can replace the control socket, plant a snapshot that is read back at start, or
// put a symlink where reselqos.log is appended to as root. Owns telling why a directory is not
// (each problem naming the key, file:line and the risk). Only stats; never creates or changes a
// directory (the daemon creates a missing one, mode 0700 / 0750, and never chmods one).

import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Config, ConfigProblem } from './config.js';

type PathKey = 'run' | 'state' | 'log';

const WHY: Record<PathKey, string> = {
  run: 'it holds the control socket, the pid file and the kernel lock: whoever can write there can put their own socket in place of ours (and answer the reselqos verbs) or hold the lock',
  state: 'it holds the snapshots read back at start (who is allowed out): whoever can write there can plant one',
  log: 'reselqos.log is appended to there as root: whoever can write there can plant a symlink and make reselqos write into another file',
};

const EXAMPLE: Record<PathKey, string> = { run: '/run/reselqos', state: '/var/lib/reselqos', log: '/var/log/reselqos' };

/** Directories every user may write to (by design), refused whatever their mode here. */
const SHARED = new Set(['/', '/tmp', '/var/tmp', '/dev/shm', '/run/shm', '/run/lock', '/var/lock']);

const octal = (mode: number): string => (mode & 0o7777).toString(8).padStart(4, '0');

interface Meta {
  mode: number;
  uid: number;
  gid: number;
  isDirectory(): boolean;
}

async function statOrNull(path: string): Promise<Meta | null> {
  try {
    return await stat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** The problems (refused) and warnings of one directory; `uid`: who runs reselqos. */
export async function dirFindings(path: string, key: PathKey, uid: number): Promise<{ errors: string[]; warnings: string[] }> {
  const errors: string[] = [];
  const warnings: string[] = [];
  const why = WHY[key];
  const ours = (owner: number): boolean => owner === 0 || owner === uid;
  if (SHARED.has(path)) {
    errors.push(`${path} is a shared system directory: ${why}; use a directory of its own such as ${EXAMPLE[key]}`);
    return { errors, warnings };
  }
  let st: Meta | null;
  try {
    st = await statOrNull(path);
  } catch (e) {
    errors.push(`${path} cannot be checked: ${(e as Error).message}`);
    return { errors, warnings };
  }
  // The nearest directory that exists: the one itself, or where it would be created.
  let existing = path;
  if (st === null) {
    let parent: Meta | null = null;
    while (parent === null && existing !== '/') {
      existing = dirname(existing);
      parent = await statOrNull(existing).catch(() => null);
    }
    if (parent && (parent.mode & 0o002) !== 0) {
      errors.push(
        `${path} does not exist and would be created in ${existing}, which everyone can write (mode ${octal(parent.mode)}): another user can create it first; ` +
          `create it beforehand (install -d -m 0700 ${path}) or use a directory such as ${EXAMPLE[key]}`,
      );
    }
  } else if (!st.isDirectory()) {
    errors.push(`${path} is not a directory`);
    return { errors, warnings };
  } else {
    if ((st.mode & 0o002) !== 0)
      errors.push(`${path} is writable by everyone (mode ${octal(st.mode)}): ${why}; use a directory of its own such as ${EXAMPLE[key]}`);
    if (!ours(st.uid)) errors.push(`${path} is owned by uid ${st.uid}, not root or the daemon's user (uid ${uid}): ${why}`);
    if ((st.mode & 0o020) !== 0 && (st.mode & 0o002) === 0)
      warnings.push(
        `${path} is writable by its group (gid ${st.gid}, mode ${octal(st.mode)}): ${why} (chmod g-w ${path} unless that group is trusted as root)`,
      );
  }
  // Ancestors: who can rename the directory away and put their own in its place.
  for (let a = existing === path ? dirname(path) : existing; ; a = dirname(a)) {
    const m = await statOrNull(a).catch(() => null);
    if (m) {
      if ((m.mode & 0o002) !== 0 && (m.mode & 0o1000) === 0)
        errors.push(
          `${a} is writable by everyone without the sticky bit (mode ${octal(m.mode)}): another user can rename ${path} away and put their own`,
        );
      else if (!ours(m.uid)) errors.push(`${a} is owned by uid ${m.uid}: that user can rename ${path} away and put their own`);
    }
    if (a === '/') break;
  }
  return { errors, warnings };
}

/** The findings of [path] run, state and log, as config problems (errors) and warnings. */
export async function checkDirs(
  config: Config,
  uid = process.getuid?.() ?? 0,
): Promise<{ problems: ConfigProblem[]; warnings: ConfigProblem[] }> {
  const problems: ConfigProblem[] = [];
  const warnings: ConfigProblem[] = [];
  for (const key of ['run', 'state', 'log'] as const) {
    const f = await dirFindings(config.paths[key], key, uid);
    const at = { file: config.file, line: config.lines[`path.${key}`] ?? null, section: 'path', key };
    for (const message of f.errors) problems.push({ ...at, message });
    for (const message of f.warnings) warnings.push({ ...at, message });
  }
  return { problems, warnings };
}
