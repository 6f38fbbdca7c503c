// Shared plumbing of the command line: exit codes, output helpers, config loading
// with errors printed the way operators read them. No verb logic here.

import { readFile } from 'node:fs/promises';
import * as ini from 'ini';
import { ConfigError, loadConfig, resolveConfigPath, type Config } from '../config/config.js';

const DEFAULT_RUN_DIR = '/run/reselqos';

export const EXIT = { ok: 0, failed: 1, invalid: 2, usage: 64 } as const;

export class UsageError extends Error {}

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

export const processIo: Io = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : t + '\n'),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : t + '\n'),
};

/** Loads the config named by -c / $RESELQOS_CONF / the default; prints problems and returns null if invalid. */
export async function loadConfigOrReport(flag: string | undefined, io: Io): Promise<Config | null> {
  const file = resolveConfigPath(flag);
  try {
    const config = await loadConfig(file);
    for (const w of config.warnings) io.err(`warning: ${w}`);
    return config;
  } catch (e) {
    if (e instanceof ConfigError) {
      io.err(e.message);
      return null;
    }
    throw e;
  }
}

/**
 * The run directory (control socket) named by the config, even when the file is invalid:
 * client verbs must reach the daemon to let it judge a file (reload) or to run a cycle.
 */
export async function runDirOf(flag: string | undefined): Promise<string> {
  const file = resolveConfigPath(flag);
  try {
    return (await loadConfig(file)).paths.run;
  } catch {
    try {
      const raw = ini.parse(await readFile(file, 'utf8')) as Record<string, Record<string, unknown> | undefined>;
      const path = Object.entries(raw).find(([k]) => k.toLowerCase() === 'path')?.[1];
      const run = path && Object.entries(path).find(([k]) => k.toLowerCase() === 'run')?.[1];
      if (typeof run === 'string' && run.startsWith('/')) return run.replace(/\/+$/, '');
    } catch {
      // unreadable: the default
    }
    return DEFAULT_RUN_DIR;
  }
}
