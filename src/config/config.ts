// qos.conf -> one typed, frozen Config, built once and passed by constructor.
// Owns: the order in which sections are read and the checks across sections (parseConfig),
// loading the file (loadConfig), and which keys a reload cannot change (from the schema). The
// pieces: types.ts (the Config type), reader.ts (problem collection, typed section getters),
// the sections (section-ldap.ts, section-database.ts with [publish], section-firewall.ts,
// section-qos.ts with [rates], section-site.ts with [sharing], [path], [metrics]), values.ts
// (single-value parsers), rules.ts (rate rules), safety.ts (the file's permissions and settings
// that open the gateway), files.ts (CA files), dirs.ts ([path] directories).
// Never reads anything but the one file (and, in loadConfig, the host name: the default
// [site] name, the CA files it names, and the stat of its directories); never exits the process.

import { readFile, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import * as ini from 'ini';
import { KEYS, SECTIONS, specOf, isPatternKey, type Section } from './schema.js';
import { checkCaFiles } from './files.js';
import { checkDirs } from './dirs.js';
import { checkFileMode } from './safety.js';
import type { Config } from './types.js';
import { ConfigError, Ctx, SectionReader, formatProblem, indexLines } from './reader.js';
import { readRateRules } from './rules.js';
import { readLdap } from './section-ldap.js';
import { readDatabase, readPublish } from './section-database.js';
import { readFirewall } from './section-firewall.js';
import { readQos, readRates } from './section-qos.js';
import { readMetrics, readPaths, readSharing, readSiteName } from './section-site.js';
import { readHa } from './ha.js';

export * from './types.js';
export { ConfigError, formatProblem, type ConfigProblem } from './reader.js';
export { inWindow } from './rules.js';
export { checkIfName } from './values.js';

/**
 * Builds a Config from the text of qos.conf. Pure; throws ConfigError with every problem.
 * `mode` / `uid`: the file's (password check); `processUid`: who will use it (default: us);
 * `hostname`: the default [site] name.
 */
export function parseConfig(
  text: string,
  file: string,
  opts: { mode?: number; uid?: number; processUid?: number; hostname?: string } = {},
): Config {
  const lines = indexLines(text);
  const ctx = new Ctx(file, lines);
  let parsed: Record<string, unknown>;
  try {
    parsed = ini.parse(text);
  } catch (e) {
    throw new ConfigError(file, [{ file, line: null, section: '', key: null, message: `not an INI file: ${(e as Error).message}` }]);
  }
  for (const d of lines.duplicates) ctx.warn(d.section, d.key, `appears twice (line ${d.line} wins)`);

  const sectionObj = (name: Section): Record<string, unknown> | undefined => {
    const hit = Object.keys(parsed).find((s) => s.toLowerCase() === name.toLowerCase());
    const v = hit === undefined ? undefined : parsed[hit];
    return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
  };
  for (const [name, value] of Object.entries(parsed)) {
    if (value === null || typeof value !== 'object') {
      ctx.problem('', name, 'key outside any section');
    } else if (!SECTIONS.some((s) => s.toLowerCase() === name.toLowerCase())) {
      ctx.warn(name, null, 'unknown section (ignored)');
    }
  }

  const readers = new Map<Section, SectionReader>();
  const R = (s: Section): SectionReader => {
    let r = readers.get(s);
    if (!r) {
      r = new SectionReader(s, sectionObj(s), ctx);
      readers.set(s, r);
    }
    return r;
  };

  // Sections in this order (a reader created = its malformed entries reported): each module
  // returns its typed part; a check across sections runs where the later one is read.
  const ldap = readLdap(R('ldap'), ctx);
  const database = readDatabase(R('database'), ctx);
  const firewall = readFirewall(R('firewall'), ctx);
  const rates = readRates(R('rates'), ctx);
  const rateRules = readRateRules(R('ratesrules'), ctx);
  const qos = readQos(R('qos'), ctx, rates, rateRules);
  const siteName = readSiteName(R('site'), opts.hostname);
  const sharing = readSharing(R('sharing'), ctx, rates);
  const paths = readPaths(R('path'));
  const log = { level: R('log').oneOf('level', ['error', 'warn', 'info', 'debug'] as const) };
  const metrics = readMetrics(R('metrics'), ctx);
  const publish = readPublish(R('publish'), ctx, database);

  const ha = readHa(R('ha'), ctx, qos.intervalMs);

  // Unknown keys (warnings), after every reader ran.
  const raw: Record<string, string> = {};
  const keyNames: Record<string, string> = {};
  const keyLines: Record<string, number> = {};
  for (const s of SECTIONS) {
    const r = R(s);
    for (const { key, value } of r.entries()) {
      raw[`${s}.${key.toLowerCase()}`] = value;
      keyNames[`${s}.${key.toLowerCase()}`] = key;
      const line = ctx.lineOf(s, key);
      if (line !== null) keyLines[`${s}.${key.toLowerCase()}`] = line;
      if (!r.used.has(key.toLowerCase()) && !specOf(s, key) && !isPatternKey(s, key)) {
        ctx.warn(s, key, 'unknown key (ignored)');
      } else if (s === 'ratesrules' && !isPatternKey(s, key)) {
        ctx.warn(s, key, 'unknown key (ignored)');
      }
    }
  }

  // Who may read or rewrite qos.conf (a writer could point us at their server, or open the gateway).
  const secret = ldap.password !== '' || database.password !== '' || publish.password !== '' || metrics.token !== '';
  checkFileMode(ctx, file, opts, secret);

  if (ctx.problems.length > 0) throw new ConfigError(file, ctx.problems);
  return deepFreeze({
    file,
    site: { name: siteName },
    sharing,
    ldap,
    database,
    firewall,
    rates,
    rateRules,
    qos,
    paths,
    log,
    metrics,
    publish,
    ha,
    warnings: ctx.warnings,
    raw,
    keyNames,
    lines: keyLines,
  });
}

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as object)) deepFreeze(v);
  }
  return o;
}

export const DEFAULT_CONFIG_PATH = '/etc/reselqos/qos.conf';

export function resolveConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env['RESELQOS_CONF'] ?? DEFAULT_CONFIG_PATH;
}

/** Reads and parses qos.conf; I/O errors become a ConfigError naming the file. */
export async function loadConfig(file: string): Promise<Config> {
  let text: string;
  let st: { mode: number; uid: number };
  try {
    [text, st] = await Promise.all([readFile(file, 'utf8'), stat(file)]);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'file not found' : err.code === 'EACCES' ? 'permission denied' : err.message;
    throw new ConfigError(file, [{ file, line: null, section: '', key: null, message: `cannot read: ${why}` }]);
  }
  const config = parseConfig(text, file, { mode: st.mode, uid: st.uid, hostname: hostname() });
  // The files and directories it names: a CA that cannot be read, a shared directory, is an
  // invalid configuration, found by `check`, `start`, `run` and a reload before anything switches.
  const [ca, dirs] = await Promise.all([checkCaFiles(config), checkDirs(config)]);
  const problems = [...ca.problems, ...dirs.problems];
  if (problems.length > 0) throw new ConfigError(file, problems);
  const warnings = [...ca.warnings, ...dirs.warnings].map(formatProblem);
  return warnings.length === 0 ? config : deepFreeze({ ...config, warnings: [...config.warnings, ...warnings] });
}

/** Keys whose change needs a restart, between two configs. */
export function restartOnlyChanges(a: Config, b: Config): string[] {
  const out: string[] = [];
  for (const spec of KEYS) {
    if (spec.live) continue;
    const id = `${spec.section}.${spec.key.toLowerCase()}`;
    if ((a.raw[id] ?? spec.def) !== (b.raw[id] ?? spec.def)) out.push(`[${spec.section}] ${spec.key}`);
  }
  return out;
}

/**
 * The configuration a reload applies: `next` with every restart-only key (the schema's `live:
 * false`) at its running value. Built by parsing `next`'s values again with those keys swapped,
 * so that the schema alone says which keys wait for a restart and every cross-section check runs
 * on the result (a new rate that leaves nothing for the running number of groups is refused).
 */
export function withRunningRestartKeys(running: Config, next: Config): Config {
  const raw: Record<string, string> = { ...next.raw };
  for (const spec of KEYS) {
    if (spec.live) continue;
    const id = `${spec.section}.${spec.key.toLowerCase()}`;
    const was = running.raw[id];
    if (was === undefined) delete raw[id];
    else raw[id] = was;
  }
  const text = SECTIONS.map((s) =>
    [
      `[${s}]`,
      ...Object.entries(raw)
        .filter(([id]) => id.startsWith(`${s}.`))
        // each key as the file spelt it: a rate named tunnelDown stays tunnelDown (found by fuzz-config)
        .map(([id, v]) => `${next.keyNames[id] ?? running.keyNames[id] ?? id.slice(s.length + 1)} = ${JSON.stringify(v)}`),
    ].join('\n'),
  ).join('\n\n');
  const applied = parseConfig(text, next.file, { hostname: running.site.name });
  return deepFreeze({ ...applied, warnings: next.warnings, lines: next.lines });
}
