// Shared plumbing of the command line: exit codes, output helpers, config loading
// with errors printed the way operators read them. No verb logic here.

import { ConfigError, loadConfig, resolveConfigPath, type Config } from '../config/config.js';

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
