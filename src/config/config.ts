// qos.conf -> one typed, frozen Config, built once and passed by constructor.
// Owns: INI parsing (the `ini` package), validation that collects EVERY problem
// (each naming file:line, section and key), unknown-key warnings, the password
// permission check. Never reads anything but the one file (and, in loadConfig, the host name:
// the default [site] name); never exits the process.

import { readFile, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import * as ini from 'ini';
import { IANAZone } from 'luxon';
import { KEYS, SECTIONS, type Section, specOf, isPatternKey } from './schema.js';
import { UnitError, parseDuration, parseRate, parseSize, parseTimeOfDay } from './units.js';
import { parseIp, isValidIpv4Prefix, parseCidr, prefixNetwork } from '../net/ip.js';
import { checkCaFiles } from './files.js';

export type Classifier = 'fw' | 'classify';
export type Leaf = 'sfq' | 'fq_codel' | 'cake' | 'pfifo' | 'none';
export type CountMode = 'all' | 'active';
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export type ExcludeKind = 'peer' | 'direct' | 'local';

export interface RateRule {
  readonly name: string; // "rule1"
  readonly index: number;
  readonly from: number; // minutes after local midnight
  readonly to: number;
  /** bit/s; 0 = leave that rate unchanged */
  readonly globalUp: number;
  readonly globalDown: number;
  readonly up: number;
  readonly down: number;
}

export interface LdapConfig {
  readonly url: string;
  readonly starttls: boolean;
  readonly caFile: string | null;
  readonly user: string;
  readonly password: string;
  readonly basePeople: string;
  readonly baseOrga: string;
  readonly baseHosts: string;
  readonly peopleFilter: string;
  readonly orgaFilter: string;
  readonly hostsFilter: string;
  readonly attrs: {
    readonly uid: string; readonly owner: string; readonly ip: string; readonly ip6: string;
    readonly zone: string; readonly host: string; readonly endInternet: string; readonly coupure: string;
    readonly ban: string; readonly cotiz: string;
  };
  readonly inactiveZone: string;
  readonly pageSize: number;
  readonly connectTimeoutMs: number;
  readonly timeoutMs: number;
  readonly maxShrink: number; // share 0..1
  /** most IP values one machine entry may carry (more: the machine keeps no IP) */
  readonly maxIpsPerMachine: number;
  /** period of the full fetch; 0 = full fetch every cycle (no change searches) */
  readonly refreshMs: number;
}

export interface DatabaseConfig {
  readonly host: string;
  readonly port: number;
  readonly socket: string | null;
  readonly user: string;
  readonly password: string;
  readonly db: string;
  readonly table: string;
  readonly table6: string | null;
  readonly columns: { readonly ip: string; readonly time: string; readonly down: string; readonly up: string };
  readonly exclude: readonly ExcludeKind[];
  readonly connectTimeoutMs: number;
  readonly timeoutMs: number;
  /** TLS to the server, certificate always verified (against caFile, else the system CAs) */
  readonly tls: boolean;
  readonly caFile: string | null;
  /** period of the full re-read of closed hour buckets; 0 = no cache */
  readonly closedRefreshMs: number;
}

export interface FirewallConfig {
  readonly enabled: boolean;
  readonly areaPrefix: string;
  readonly areaOtherPrefix: string;
  readonly area6Prefix: string;
  readonly ethExt: string;
  readonly ethInt: string;
  readonly tunnelName: string;
  readonly ipInt: string;
  /** every ip_* key: the gateway's own addresses */
  readonly gatewayIps: Readonly<Record<string, string>>;
  /** every eth_* key */
  readonly interfaces: Readonly<Record<string, string>>;
  /** every net* key */
  readonly networks: Readonly<Record<string, string>>;
  readonly v6Enabled: boolean;
  /** network namespace of the data plane; '' = our own */
  readonly netns: string;
  readonly userNetworks: readonly string[];
  readonly user6Networks: readonly string[];
  readonly checkPayment: boolean;
  readonly checkCoupure: boolean;
  readonly checkBan: boolean;
  /** lowercased */
  readonly banServices: readonly string[];
  readonly checkBlacklist: boolean;
  readonly openDestinations: readonly string[];
  readonly refuse: 'reject' | 'drop';
  readonly portal: { readonly ip: string; readonly port: number } | null;
  readonly portalBan: { readonly ip: string; readonly port: number } | null;
  /** the same pages for IPv6 machines ([IPv6]:port in qos.conf) */
  readonly portal6: { readonly ip: string; readonly port: number } | null;
  readonly portalBan6: { readonly ip: string; readonly port: number } | null;
  readonly portalPorts: readonly number[];
}

export interface QosConfig {
  readonly enabled: boolean;
  readonly groups: number;
  readonly base: number; // bytes
  readonly parameter: number;
  readonly factor: number;
  readonly resetHour: number;
  readonly timezone: string;
  readonly intervalMs: number;
  readonly count: CountMode;
  readonly emptyClassRate: number; // bit/s
  readonly ceilShare: number; // 0..1
  readonly defaultRate: number; // bit/s
  readonly classifier: Classifier;
  readonly leaf: Leaf;
  readonly setPrefix: string;
  readonly set6Prefix: string;
  readonly chainPrefix: string;
  readonly markDown: number;
  readonly markUp: number;
  readonly fullSyncIntervalMs: number;
  readonly verifyIntervalMs: number;
}

export interface MetricsConfig {
  /** null = no HTTP listener */
  readonly listen: { readonly host: string; readonly port: number } | null;
  /** '' = no authentication (loopback only) */
  readonly token: string;
}

export interface PublishConfig {
  readonly enabled: boolean;
  readonly db: string;
  /** the server written to: [publish] host/user/password, else the [database] ones */
  readonly host: string;
  readonly port: number;
  readonly socket: string | null;
  readonly user: string;
  readonly password: string;
  readonly timeoutMs: number;
}

export interface SharingConfig {
  readonly enabled: boolean;
  readonly weight: number;
  /** intervals after which a site's row is stale */
  readonly stale: number;
  readonly db: string;
}

export interface Config {
  readonly file: string;
  /** [site] name: this gateway among the sites (default: the host name) */
  readonly site: { readonly name: string };
  readonly sharing: SharingConfig;
  readonly ldap: LdapConfig;
  readonly database: DatabaseConfig;
  readonly firewall: FirewallConfig;
  /** every [rates] key, bit/s (up, down always present; globalUp/globalDown when set) */
  readonly rates: Readonly<Record<string, number>>;
  readonly rateRules: readonly RateRule[];
  readonly qos: QosConfig;
  readonly paths: { readonly log: string; readonly state: string; readonly run: string };
  readonly log: { readonly level: LogLevel };
  readonly metrics: MetricsConfig;
  readonly publish: PublishConfig;
  readonly warnings: readonly string[];
  /** raw values as written, per "section.key" (lowercased key), to tell what a reload changes */
  readonly raw: Readonly<Record<string, string>>;
  /** line of each key, per "section.key" (lowercased key): later checks of files name it */
  readonly lines: Readonly<Record<string, number>>;
}

export interface ConfigProblem {
  readonly file: string;
  readonly line: number | null;
  readonly section: string;
  readonly key: string | null;
  readonly message: string;
}

export function formatProblem(p: ConfigProblem): string {
  const where = p.line === null ? p.file : `${p.file}:${p.line}`;
  const what = p.key === null ? `[${p.section}]` : `[${p.section}] ${p.key}`;
  return `${where}: ${what}: ${p.message}`;
}

export class ConfigError extends Error {
  constructor(readonly file: string, readonly problems: readonly ConfigProblem[]) {
    super(`${file}: ${problems.length} problem(s) in configuration:\n` + problems.map((p) => '  ' + formatProblem(p)).join('\n'));
    this.name = 'ConfigError';
  }
}

/** Line numbers of sections and keys, scanned the way `ini` reads the file. */
interface LineIndex {
  sections: Map<string, number>;
  keys: Map<string, number>; // "section\0keylower" -> line of the LAST occurrence
  duplicates: { section: string; key: string; line: number }[];
}

function indexLines(text: string): LineIndex {
  const sections = new Map<string, number>();
  const keys = new Map<string, number>();
  const duplicates: LineIndex['duplicates'] = [];
  let section = '';
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith(';') || line.startsWith('#')) return;
    const sec = /^\[([^\]]*)\]/.exec(line);
    if (sec) {
      section = sec[1]!.trim();
      if (!sections.has(section)) sections.set(section, i + 1);
      return;
    }
    const eq = line.indexOf('=');
    const key = (eq < 0 ? line : line.slice(0, eq)).trim();
    const id = `${section}\0${key.toLowerCase()}`;
    if (keys.has(id)) duplicates.push({ section, key, line: i + 1 });
    keys.set(id, i + 1);
  });
  return { sections, keys, duplicates };
}

/** Reads one section, tracking problems; every getter returns a usable value even on error. */
class SectionReader {
  private readonly values = new Map<string, { key: string; value: string }>();
  readonly used = new Set<string>();

  constructor(
    readonly section: Section,
    obj: Record<string, unknown> | undefined,
    private readonly ctx: Ctx,
  ) {
    for (const [key, value] of Object.entries(obj ?? {})) {
      if (value !== null && typeof value === 'object') {
        ctx.problem(section, key, 'expected a value, got a section or array');
        continue;
      }
      // ini turns true/false/null into non-strings: take them back as written.
      this.values.set(key.toLowerCase(), { key, value: value === null ? '' : typeof value === 'string' ? value : JSON.stringify(value) });
    }
  }

  entries(): { key: string; value: string }[] {
    return [...this.values.values()];
  }

  has(key: string): boolean {
    const v = this.values.get(key.toLowerCase());
    return v !== undefined;
  }

  /** Raw string: the value as written or the schema default. */
  str(key: string): string {
    this.used.add(key.toLowerCase());
    const v = this.values.get(key.toLowerCase());
    if (v !== undefined) return v.value.trim();
    const spec = specOf(this.section, key);
    if (spec?.def === undefined) {
      this.ctx.problem(this.section, key, 'is required', null);
      return '';
    }
    return spec.def;
  }

  /** Parses with fn; on error records it and returns fallback. */
  parse<T>(key: string, fn: (raw: string) => T, fallback: T): T {
    const raw = this.str(key);
    if (raw === '' && specOf(this.section, key)?.def === undefined) return fallback; // already reported
    try {
      return fn(raw);
    } catch (e) {
      this.ctx.problem(this.section, key, e instanceof Error ? e.message : String(e));
      return fallback;
    }
  }

  bool(key: string): boolean {
    return this.parse(key, (raw) => {
      const v = raw.toLowerCase();
      if (['1', 'yes', 'true', 'on'].includes(v)) return true;
      if (['0', 'no', 'false', 'off', ''].includes(v)) return false;
      throw new UnitError(`expected 0 or 1, got "${raw}"`);
    }, false);
  }

  int(key: string, min: number, max: number): number {
    return this.parse(key, (raw) => {
      if (!/^-?[0-9]+$/.test(raw)) throw new UnitError(`expected an integer, got "${raw}"`);
      const n = Number(raw);
      if (n < min || n > max) throw new UnitError(`expected an integer from ${min} to ${max}, got ${raw}`);
      return n;
    }, min);
  }

  float(key: string, check: (n: number) => string | null): number {
    return this.parse(key, (raw) => {
      if (!/^[0-9]+(\.[0-9]+)?$/.test(raw)) throw new UnitError(`expected a number, got "${raw}"`);
      const n = Number(raw);
      const bad = check(n);
      if (bad) throw new UnitError(`${bad}, got ${raw}`);
      return n;
    }, 1);
  }

  share(key: string): number {
    return this.parse(key, (raw) => {
      const m = /^([0-9]+(?:\.[0-9]+)?)\s*%$/.exec(raw);
      const n = m ? Number(m[1]) / 100 : /^[0-9.]+$/.test(raw) ? Number(raw) : NaN;
      if (!(n >= 0 && n <= 1)) throw new UnitError(`expected a share such as 20%, got "${raw}"`);
      return n;
    }, 0);
  }

  rate(key: string): number {
    return this.parse(key, (raw) => parseRate(raw), 1);
  }

  duration(key: string, minMs: number): number {
    return this.parse(key, (raw) => {
      const ms = parseDuration(raw);
      if (ms < minMs) throw new UnitError(`must be at least ${minMs} ms, got "${raw}"`);
      return ms;
    }, minMs);
  }

  oneOf<T extends string>(key: string, allowed: readonly T[]): T {
    return this.parse(key, (raw) => {
      const v = raw.toLowerCase();
      const hit = allowed.find((a) => a.toLowerCase() === v);
      if (!hit) throw new UnitError(`expected one of ${allowed.join(', ')}, got "${raw}"`);
      return hit;
    }, allowed[0]!);
  }

  /** A name that will reach the kernel or SQL as an identifier. */
  ident(key: string, re: RegExp, what: string): string {
    return this.parse(key, (raw) => {
      if (!re.test(raw)) throw new UnitError(`expected ${what}, got "${raw}"`);
      return raw;
    }, '');
  }
}

class Ctx {
  readonly problems: ConfigProblem[] = [];
  readonly warnings: string[] = [];
  constructor(readonly file: string, readonly lines: LineIndex) {}

  lineOf(section: string, key: string | null): number | null {
    if (key === null) return this.lines.sections.get(section) ?? null;
    return this.lines.keys.get(`${section}\0${key.toLowerCase()}`) ?? this.lines.sections.get(section) ?? null;
  }

  problem(section: string, key: string | null, message: string, line?: number | null): void {
    this.problems.push({ file: this.file, line: line === undefined ? this.lineOf(section, key) : line, section, key, message });
  }

  warn(section: string, key: string | null, message: string): void {
    this.warnings.push(formatProblem({ file: this.file, line: this.lineOf(section, key), section, key, message }));
  }
}

/**
 * An interface name as the kernel takes it (dev_valid_name: 1 to 15 bytes, not "." or "..",
 * no "/", ":" or whitespace), and never iptables' "+" wildcard (`-o +` matches every
 * interface). Beyond that, only letters, digits and _ . - @ (what reaches iptables and tc).
 */
export function checkIfName(raw: string): string {
  const bytes = Buffer.byteLength(raw, 'utf8');
  if (bytes === 0) throw new UnitError('expected an interface name, got an empty value');
  if (bytes > 15) throw new UnitError(`an interface name has at most 15 bytes, got ${bytes} in "${raw}"`);
  if (raw === '.' || raw === '..') throw new UnitError(`"${raw}" is not an interface name`);
  if (raw.includes('+')) throw new UnitError(`"${raw}": "+" is iptables' interface wildcard (it would match other interfaces), not part of a name`);
  if (raw.includes('/')) throw new UnitError(`"${raw}": an interface name has no "/"`);
  if (raw.includes(':')) throw new UnitError(`"${raw}": an interface name has no ":" (an alias label is not an interface)`);
  if (/\s/.test(raw)) throw new UnitError(`"${raw}": an interface name has no whitespace`);
  if (!/^[A-Za-z0-9_.@-]+$/.test(raw)) throw new UnitError(`"${raw}": expected an interface name of letters, digits, _ . - @`);
  return raw;
}

const LOOPBACK_HOST = /^(localhost|127\.[0-9.]+|::1)$/i;
const SQL_IDENT = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const LDAP_ATTR = /^[A-Za-z][A-Za-z0-9-]*$/;
const SET_PREFIX = /^[A-Za-z][A-Za-z0-9_-]{0,20}$/;
const CHAIN_PREFIX = /^[A-Za-z][A-Za-z0-9_-]{0,15}$/;
const SITE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function parseLdapHost(raw: string): string {
  const v = raw.trim();
  const url = /^(ldaps?):\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?\/?$/.exec(v);
  if (url) {
    const port = url[3] === undefined ? null : Number(url[3]);
    if (port !== null && (port < 1 || port > 65535)) throw new UnitError(`port out of range in "${raw}"`);
    return `${url[1]}://${url[2]}${port === null ? '' : ':' + port}`;
  }
  const hp = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?$/.exec(v);
  if (!hp) throw new UnitError(`expected a host name, host:port or ldap:// / ldaps:// URL, got "${raw}"`);
  const port = hp[2] === undefined ? null : Number(hp[2]);
  if (port !== null && (port < 1 || port > 65535)) throw new UnitError(`port out of range in "${raw}"`);
  return `ldap://${hp[1]}${port === null ? '' : ':' + port}`;
}

function parseDbHost(raw: string): { host: string; port: number | null } {
  const hp = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?$/.exec(raw.trim());
  if (!hp) throw new UnitError(`expected a host name or host:port, got "${raw}"`);
  const port = hp[2] === undefined ? null : Number(hp[2]);
  if (port !== null && (port < 1 || port > 65535)) throw new UnitError(`port out of range in "${raw}"`);
  return { host: hp[1]!.replace(/^\[|\]$/g, ''), port };
}

function systemTimezone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

const RULE_FIELDS = ['From', 'To', 'GlobalUp', 'GlobalDown', 'Up', 'Down'] as const;

function readRateRules(r: SectionReader, ctx: Ctx): RateRule[] {
  const byIndex = new Map<number, Map<string, string>>();
  for (const { key, value } of r.entries()) {
    const m = /^rule([0-9]+)(from|to|globalup|globaldown|up|down)$/i.exec(key);
    if (!m) continue; // reported as unknown by the caller
    r.used.add(key.toLowerCase());
    const idx = Number(m[1]);
    if (!byIndex.has(idx)) byIndex.set(idx, new Map());
    byIndex.get(idx)!.set(m[2]!.toLowerCase(), value.trim());
  }
  const rules: RateRule[] = [];
  for (const idx of [...byIndex.keys()].sort((a, b) => a - b)) {
    const fields = byIndex.get(idx)!;
    const name = `rule${idx}`;
    let ok = true;
    const get = (field: (typeof RULE_FIELDS)[number], parse: (raw: string) => number): number => {
      const raw = fields.get(field.toLowerCase());
      const key = `${name}${field}`;
      if (raw === undefined) {
        ctx.problem('ratesrules', key, `is missing: a rule needs all six fields ${RULE_FIELDS.map((f) => name + f).join(', ')} (0 = leave that rate unchanged)`, ctx.lineOf('ratesrules', `${name}From`));
        ok = false;
        return 0;
      }
      try {
        return parse(raw);
      } catch (e) {
        ctx.problem('ratesrules', key, (e as Error).message);
        ok = false;
        return 0;
      }
    };
    const from = get('From', parseTimeOfDay);
    const to = get('To', parseTimeOfDay);
    const rate = (raw: string): number => parseRate(raw, { allowZero: true });
    const rule: RateRule = {
      name, index: idx, from, to,
      globalUp: get('GlobalUp', rate), globalDown: get('GlobalDown', rate), up: get('Up', rate), down: get('Down', rate),
    };
    if (ok && from === to) {
      ctx.problem('ratesrules', `${name}To`, `window ${name} is empty (From = To); a window crossing midnight is written e.g. 20:00 to 4:00`);
      ok = false;
    }
    if (ok) rules.push(rule);
  }
  // Overlaps: compare minute sets.
  for (let i = 0; i < rules.length; i++) {
    for (let j = i + 1; j < rules.length; j++) {
      const a = rules[i]!;
      const b = rules[j]!;
      if (windowsOverlap(a, b)) {
        ctx.problem('ratesrules', `${b.name}From`, `window ${b.name} overlaps ${a.name}: only one rate rule may be in force at a time`);
      }
    }
  }
  return rules;
}

function inWindow(rule: { from: number; to: number }, minute: number): boolean {
  return rule.from < rule.to ? minute >= rule.from && minute < rule.to : minute >= rule.from || minute < rule.to;
}

function windowsOverlap(a: RateRule, b: RateRule): boolean {
  // A window starts at its From minute; two windows overlap iff one contains the other's start.
  return inWindow(a, b.from) || inWindow(b, a.from);
}

export { inWindow };

/** Builds a Config from the text of qos.conf. Pure; throws ConfigError with every problem. */
/**
 * Builds a Config from the text of qos.conf. Pure; throws ConfigError with every problem.
 * `mode` / `uid`: the file's (password check); `processUid`: who will use it (default: us);
 * `hostname`: the default [site] name.
 */
export function parseConfig(text: string, file: string, opts: { mode?: number; uid?: number; processUid?: number; hostname?: string } = {}): Config {
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

  // [ldap]
  const l = R('ldap');
  const url = l.parse('host', parseLdapHost, 'ldap://127.0.0.1');
  const starttls = l.bool('starttls');
  if (starttls && url.startsWith('ldaps:')) ctx.problem('ldap', 'starttls', 'StartTLS cannot be used with an ldaps:// URL (already TLS)');
  const attr = (key: string): string => l.ident(key, LDAP_ATTR, 'an LDAP attribute name');
  const ldap: LdapConfig = {
    url, starttls,
    caFile: l.parse('caFile', absFile, null),
    user: l.str('user'),
    password: l.str('password'),
    basePeople: l.str('basepeople'),
    baseOrga: l.str('baseorga'),
    baseHosts: l.str('basehosts'),
    peopleFilter: l.parse('peopleFilter', checkFilter, '(uid=*)'),
    orgaFilter: l.parse('orgaFilter', checkFilter, '(uid=*)'),
    hostsFilter: l.parse('hostsFilter', checkFilter, '(objectClass=*)'),
    attrs: {
      uid: attr('uidAttr'), owner: attr('ownerAttr'), ip: attr('ipAttr'), ip6: attr('ip6Attr'),
      zone: attr('zoneAttr'), host: attr('hostAttr'), endInternet: attr('endInternetAttr'),
      coupure: attr('coupureAttr'), ban: attr('banAttr'), cotiz: attr('cotizAttr'),
    },
    inactiveZone: l.str('inactiveZone'),
    pageSize: l.int('pageSize', 1, 100000),
    maxIpsPerMachine: l.int('maxIpsPerMachine', 1, 1_000_000),
    connectTimeoutMs: l.duration('connectTimeout', 100),
    timeoutMs: l.duration('timeout', 100),
    maxShrink: l.share('maxShrink'),
    refreshMs: l.duration('refresh', 0),
  };
  if (ldap.basePeople === '') ctx.problem('ldap', 'basepeople', 'must not be empty');
  if (ldap.password !== '' && url.startsWith('ldap:') && !starttls) {
    ctx.warn('ldap', 'password', `is sent in plaintext: ${url} without StartTLS (use ldaps:// or starttls = 1, with caFile)`);
  }
  if (ldap.baseHosts === '') ctx.problem('ldap', 'basehosts', 'must not be empty');

  // [database]
  const d = R('database');
  const dbHost = d.parse('host', parseDbHost, { host: '127.0.0.1', port: null });
  const dbPort = d.int('port', 1, 65535);
  const sqlIdent = (key: string): string => d.ident(key, SQL_IDENT, 'an SQL identifier (letters, digits, _)');
  const table6 = d.str('table6');
  if (table6 !== '' && !SQL_IDENT.test(table6)) ctx.problem('database', 'table6', `expected an SQL identifier (letters, digits, _), got "${table6}"`);
  const database: DatabaseConfig = {
    host: dbHost.host,
    port: dbHost.port ?? dbPort,
    socket: d.str('socket') || null,
    user: d.str('user'),
    password: d.str('password'),
    db: sqlIdent('db'),
    table: sqlIdent('table'),
    table6: table6 || null,
    columns: { ip: sqlIdent('ipColumn'), time: sqlIdent('timeColumn'), down: sqlIdent('downColumn'), up: sqlIdent('upColumn') },
    exclude: d.parse('exclude', (raw) => {
      const parts = raw.split(/[,\s]+/).filter(Boolean).map((p) => p.toLowerCase());
      for (const p of parts) if (!['peer', 'direct', 'local'].includes(p)) throw new UnitError(`expected a list of peer, direct, local, got "${p}"`);
      return [...new Set(parts)] as ExcludeKind[];
    }, [] as ExcludeKind[]),
    connectTimeoutMs: d.duration('connectTimeout', 100),
    timeoutMs: d.duration('timeout', 100),
    tls: d.bool('tls'),
    caFile: d.parse('caFile', absFile, null),
    closedRefreshMs: d.duration('closedRefresh', 0),
  };

  if (database.caFile !== null && !database.tls) ctx.problem('database', 'caFile', 'is only used with tls = 1 (set tls = 1, or remove caFile)');
  if (database.password !== '' && !database.tls && database.socket === null && !LOOPBACK_HOST.test(database.host)) {
    ctx.warn('database', 'password', `is sent in plaintext to ${database.host}:${database.port} (set tls = 1 with caFile, or use a loopback host or a socket)`);
  }

  // [firewall]
  const f = R('firewall');
  const prefix4 = (key: string): string => f.parse(key, (raw) => {
    if (raw !== '' && !isValidIpv4Prefix(raw)) throw new UnitError(`expected an IPv4 prefix such as 172.22. (one to three octets and a dot), got "${raw}"`);
    return raw;
  }, '');
  const ifname = (key: string): string => f.parse(key, checkIfName, '');
  const gatewayIps: Record<string, string> = {};
  const interfaces: Record<string, string> = {};
  const networks: Record<string, string> = {};
  for (const { key, value } of f.entries()) {
    const lower = key.toLowerCase();
    if (lower.startsWith('eth_')) {
      interfaces[key] = ifname(key);
    } else if (lower.startsWith('ip_')) {
      f.used.add(lower);
      const ip = parseIp(value.trim());
      if (!ip.ok) ctx.problem('firewall', key, `expected an IP address, got "${value}" (${ip.reason})`);
      else gatewayIps[key] = ip.ip;
    } else if (lower.startsWith('net') && lower !== 'netns') {
      f.used.add(lower);
      networks[key] = value.trim();
    }
  }
  const areaPrefix = prefix4('areaPrefix');
  // Defaults: the network of the campus prefix, and net6.
  let userNetworks = f.parse('userNetworks', (raw) => cidrList(raw, 4), [] as string[]);
  if (userNetworks.length === 0) userNetworks = [prefixNetwork(areaPrefix)].filter((x): x is string => x !== null);
  let user6Networks = f.parse('user6Networks', (raw) => cidrList(raw, 6), [] as string[]);
  if (user6Networks.length === 0) {
    user6Networks = Object.entries(networks).filter(([key]) => key.toLowerCase() === 'net6')
      .flatMap(([key, v]) => {
        const r = parseCidr(v);
        if (r.ok && r.family !== 6) ctx.problem('firewall', key, `"${v}" is not an IPv6 network`);
        return r.ok && r.family === 6 ? [r.cidr] : [];
      });
  }
  const firewall: FirewallConfig = {
    enabled: f.bool('enabled'),
    areaPrefix,
    areaOtherPrefix: prefix4('areaOtherPrefix'),
    area6Prefix: f.str('area6Prefix'),
    ethExt: ifname('eth_ext'),
    ethInt: ifname('eth_int'),
    tunnelName: f.parse('tunnel_name', (raw) => (raw === '' ? '' : checkIfName(raw)), ''),
    ipInt: gatewayIps['ip_int'] ?? '',
    gatewayIps, interfaces, networks,
    v6Enabled: f.bool('v6Enabled'),
    netns: f.parse('netns', (raw) => {
      if (raw !== '' && !/^[A-Za-z0-9_.-]{1,64}$/.test(raw)) throw new UnitError(`expected a network namespace name (letters, digits, _ . -), got "${raw}"`);
      return raw;
    }, ''),
    userNetworks,
    user6Networks,
    checkPayment: f.bool('checkPayment'),
    checkCoupure: f.bool('checkCoupure'),
    checkBan: f.bool('checkBan'),
    banServices: f.str('banServices').split(',').map((x) => x.trim().toLowerCase()).filter(Boolean),
    checkBlacklist: f.bool('checkBlacklist'),
    openDestinations: f.parse('openDestinations', (raw) => cidrList(raw, null), [] as string[]),
    refuse: f.oneOf('refuse', ['reject', 'drop'] as const),
    portal: f.parse('portal', parseEndpoint, null),
    portalBan: f.parse('portalBan', parseEndpoint, null),
    portal6: f.parse('portal6', parseEndpoint6, null),
    portalBan6: f.parse('portalBan6', parseEndpoint6, null),
    portalPorts: f.parse('portalPorts', (raw) => raw.split(',').map((x) => x.trim()).filter(Boolean).map((x) => {
      if (!/^[0-9]{1,5}$/.test(x) || Number(x) < 1 || Number(x) > 65535) throw new UnitError(`expected TCP ports such as 80, got "${x}"`);
      return Number(x);
    }), [80]),
  };
  for (const [key, value] of Object.entries(firewall.networks)) {
    const r = parseCidr(value);
    if (value !== '' && !r.ok) ctx.problem('firewall', key, r.reason);
  }
  if (firewall.enabled && firewall.v6Enabled && user6Networks.length === 0) {
    // The IPv6 chains would refuse nothing: every IPv6 user would be out, unfiltered.
    ctx.problem('firewall', 'user6Networks',
      'the firewall filters IPv6 (enabled = 1, v6Enabled = 1) but no IPv6 user network is configured, so IPv6 would pass unfiltered: set net6 or user6Networks (or v6Enabled = 0 to let IPv6 through deliberately)',
      ctx.lineOf('firewall', f.has('user6Networks') ? 'user6Networks' : f.has('net6') ? 'net6' : 'v6Enabled'));
  }
  for (const key of ['portal6', 'portalBan6'] as const) {
    if (firewall[key] && !firewall.v6Enabled) ctx.problem('firewall', key, 'IPv6 is off (v6Enabled = 0): no IPv6 portal');
  }
  if (firewall.ethExt !== '' && firewall.ethExt === firewall.ethInt) {
    ctx.problem('firewall', 'eth_int', `must differ from eth_ext (both "${firewall.ethExt}")`);
  }

  // [rates]
  const ra = R('rates');
  const rates: Record<string, number> = {};
  rates['down'] = ra.rate('down');
  rates['up'] = ra.rate('up');
  for (const { key, value } of ra.entries()) {
    const lower = key.toLowerCase();
    if (lower === 'up' || lower === 'down') continue;
    ra.used.add(lower);
    const canonical = lower === 'globalup' ? 'globalUp' : lower === 'globaldown' ? 'globalDown' : key;
    if (value.trim() === '' && (canonical === 'globalUp' || canonical === 'globalDown')) continue;
    try {
      rates[canonical] = parseRate(value);
    } catch (e) {
      ctx.problem('rates', key, (e as Error).message);
    }
  }

  // [ratesrules]
  const rr = R('ratesrules');
  const rateRules = readRateRules(rr, ctx);

  // [qos]
  const q = R('qos');
  const groups = q.int('groups', 1, 64);
  const tzRaw = q.str('timezone');
  const timezone = tzRaw === '' ? systemTimezone() : tzRaw;
  if (!IANAZone.isValidZone(timezone)) ctx.problem('qos', 'timezone', `unknown time zone "${timezone}" (expected an IANA name such as Europe/Paris)`);
  const qos: QosConfig = {
    enabled: q.bool('enabled'),
    groups,
    base: q.parse('classSeperationBase', (raw) => {
      const b = parseSize(raw);
      if (b <= 0) throw new UnitError(`must be positive, got "${raw}"`);
      return b;
    }, 1),
    parameter: q.float('classSeperationParameter', (n) => (n >= 1 ? null : 'expected a number >= 1')),
    factor: q.float('classRateFactor', (n) => (n > 0 && n <= 1 ? null : 'expected a number with 0 < f <= 1')),
    resetHour: q.int('resetHour', 0, 23),
    timezone,
    intervalMs: q.duration('interval', 1000),
    count: q.oneOf('count', ['all', 'active'] as const),
    emptyClassRate: q.rate('emptyClassRate'),
    ceilShare: q.share('ceil'),
    defaultRate: q.rate('defaultRate'),
    classifier: q.oneOf('classifier', ['fw', 'classify'] as const),
    leaf: q.oneOf('leaf', ['sfq', 'fq_codel', 'cake', 'pfifo', 'none'] as const),
    setPrefix: q.ident('setPrefix', SET_PREFIX, 'letters, digits, _ or - (at most 21 characters)'),
    set6Prefix: q.ident('set6Prefix', SET_PREFIX, 'letters, digits, _ or - (at most 21 characters)'),
    chainPrefix: q.ident('chainPrefix', CHAIN_PREFIX, 'letters, digits, _ or - (at most 16 characters)'),
    markDown: q.int('markDown', 1, 0x7fff0000),
    markUp: q.int('markUp', 1, 0x7fff0000),
    fullSyncIntervalMs: q.duration('fullSyncInterval', 1000),
    verifyIntervalMs: q.duration('verifyInterval', 0),
  };
  if (qos.ceilShare === 0) ctx.problem('qos', 'ceil', 'must be above 0%');
  if (qos.setPrefix === qos.set6Prefix) ctx.problem('qos', 'set6Prefix', `must differ from setPrefix ("${qos.setPrefix}")`);
  if (Math.abs(qos.markDown - qos.markUp) < groups) {
    ctx.problem('qos', 'markUp', `marks ${qos.markDown}+X and ${qos.markUp}+X overlap for ${groups} groups`);
  }
  for (const dir of ['down', 'up'] as const) {
    const total = rates[dir]!;
    const reserved = qos.defaultRate + qos.emptyClassRate * groups;
    if (total > 0 && reserved >= total) {
      ctx.problem('rates', dir, `${total} bit/s leaves nothing for users after defaultRate + groups x emptyClassRate (${reserved} bit/s)`);
    }
    for (const rule of rateRules) {
      const rv = rule[dir];
      if (rv > 0 && rv <= reserved) ctx.problem('ratesrules', `${rule.name}${dir === 'up' ? 'Up' : 'Down'}`, `${rv} bit/s leaves nothing for users after defaultRate + groups x emptyClassRate`);
    }
  }

  // [site], [sharing]
  const siteName = R('site').parse('name', (raw) => {
    const v = raw === '' ? (opts.hostname ?? 'localhost') : raw;
    if (!SITE_NAME.test(v)) throw new UnitError(`expected a site name (letters, digits, _ . -, at most 64)${raw === '' ? ' (the host name is not one: set it)' : ''}, got "${v}"`);
    return v;
  }, 'localhost');
  const sh = R('sharing');
  const sharing: SharingConfig = {
    enabled: sh.bool('enabled'),
    weight: sh.float('weight', (n) => (n > 0 ? null : 'expected a positive number')),
    stale: sh.int('stale', 1, 1000),
    db: sh.ident('db', SQL_IDENT, 'an SQL identifier (letters, digits, _)'),
  };
  if (sharing.enabled) {
    for (const key of ['globalDown', 'globalUp'] as const) {
      if (rates[key] === undefined) ctx.problem('rates', key, 'is required with [sharing] enabled = 1 (the rate all sites together may use)');
    }
  }

  // [path], [log]
  const p = R('path');
  const absPath = (key: string): string => p.parse(key, (raw) => {
    if (!raw.startsWith('/')) throw new UnitError(`expected an absolute path, got "${raw}"`);
    return raw.replace(/\/+$/, '') || '/';
  }, '/nonexistent');
  const paths = { log: absPath('log'), state: absPath('state'), run: absPath('run') };
  const log = { level: R('log').oneOf('level', ['error', 'warn', 'info', 'debug'] as const) };

  // [metrics], [publish] ([site] name is read above, with [sharing])
  const mx = R('metrics');
  const metrics: MetricsConfig = {
    listen: mx.parse('listen', parseListen, null),
    token: mx.str('token'),
  };
  if (metrics.listen && !isLoopback(metrics.listen.host) && metrics.token === '') {
    ctx.problem('metrics', 'listen', `${metrics.listen.host} is not a loopback address: set [metrics] token (requests then need Authorization: Bearer <token>)`);
  }
  const pb = R('publish');
  const pbHost = pb.parse('host', (raw) => (raw === '' ? null : parseDbHost(raw)), null);
  const publish: PublishConfig = {
    enabled: pb.bool('enabled'),
    db: pb.ident('db', SQL_IDENT, 'an SQL identifier (letters, digits, _)'),
    host: pbHost ? pbHost.host : database.host,
    port: pbHost ? pbHost.port ?? 3306 : database.port,
    socket: pbHost ? null : database.socket,
    user: pbHost ? pb.str('user') : database.user,
    password: pbHost ? pb.str('password') : database.password,
    timeoutMs: pb.duration('timeout', 100),
  };
  if (!pbHost) {
    for (const key of ['user', 'password']) if (pb.has(key) && pb.str(key) !== '') ctx.warn('publish', key, 'ignored without [publish] host (the [database] account is used)');
  }

  // Unknown keys (warnings), after every reader ran.
  const raw: Record<string, string> = {};
  const keyLines: Record<string, number> = {};
  for (const s of SECTIONS) {
    const r = R(s);
    for (const { key, value } of r.entries()) {
      raw[`${s}.${key.toLowerCase()}`] = value;
      const line = ctx.lineOf(s, key);
      if (line !== null) keyLines[`${s}.${key.toLowerCase()}`] = line;
      if (!r.used.has(key.toLowerCase()) && !specOf(s, key) && !isPatternKey(s, key)) {
        ctx.warn(s, key, 'unknown key (ignored)');
      } else if (s === 'ratesrules' && !isPatternKey(s, key)) {
        ctx.warn(s, key, 'unknown key (ignored)');
      }
    }
  }

  // A password in a file others can read or change (a writer could point us at their server).
  if (ldap.password !== '' || database.password !== '' || publish.password !== '' || metrics.token !== '') {
    const bad: string[] = [];
    if (opts.uid !== undefined && opts.uid !== 0 && opts.uid !== (opts.processUid ?? process.getuid?.() ?? 0)) bad.push(`owned by uid ${opts.uid}, not root`);
    if (opts.mode !== undefined && (opts.mode & 0o022) !== 0) bad.push('writable by its group or others');
    if (opts.mode !== undefined && (opts.mode & 0o004) !== 0) bad.push('readable by others');
    if (bad.length > 0) {
      const mode = opts.mode === undefined ? '' : ` (mode ${(opts.mode & 0o777).toString(8).padStart(4, '0')})`;
      ctx.problem('', null, `holds a password but is ${bad.join(', ')}${mode}: run chown root:root ${file} && chmod 600 ${file}`, null);
    }
  }

  if (ctx.problems.length > 0) throw new ConfigError(file, ctx.problems);
  return deepFreeze({
    file, site: { name: siteName }, sharing, ldap, database, firewall, rates, rateRules, qos, paths, log, metrics, publish,
    warnings: ctx.warnings, raw, lines: keyLines,
  });
}

function absFile(raw: string): string | null {
  if (raw === '') return null;
  if (!raw.startsWith('/')) throw new UnitError(`expected an absolute path, got "${raw}"`);
  return raw;
}

/** "127.0.0.1:9721", "[::1]:9721", "0.0.0.0:9721"; '' = off. */
function parseListen(raw: string): { host: string; port: number } | null {
  if (raw === '') return null;
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([0-9.]+)):([0-9]{1,5})$/.exec(raw);
  const host = m ? (m[1] ?? m[2] ?? '').toLowerCase() : '';
  const port = m ? Number(m[3]) : 0;
  // node's own check (the user-IP parser refuses loopback and unspecified addresses, which are fine here)
  if (!m || isIP(host) !== (m[1] ? 6 : 4) || port < 1 || port > 65535) throw new UnitError(`expected an IP address and port such as 127.0.0.1:9721 or [::1]:9721, got "${raw}"`);
  return { host, port };
}

function isLoopback(ip: string): boolean {
  return ip === '::1' || ip.startsWith('127.');
}

function cidrList(raw: string, family: 4 | 6 | null): string[] {
  const out: string[] = [];
  for (const part of raw.split(',').map((x) => x.trim()).filter(Boolean)) {
    const r = parseCidr(part);
    if (!r.ok) throw new UnitError(r.reason);
    if (family !== null && r.family !== family) throw new UnitError(`"${part}" is not an IPv${family} network`);
    out.push(r.cidr);
  }
  return out;
}

function parseEndpoint(raw: string): { ip: string; port: number } | null {
  if (raw === '') return null;
  const m = /^([0-9.]+):([0-9]{1,5})$/.exec(raw);
  const ip = m ? parseIp(m[1]!) : null;
  if (!m || !ip?.ok || ip.family !== 4 || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    throw new UnitError(`expected an IPv4 address and port such as 172.22.199.5:80, got "${raw}"${raw.startsWith("[") ? " (an IPv6 portal goes in portal6 / portalBan6)" : ""}`);
  }
  return { ip: ip.ip, port: Number(m[2]) };
}

/** "[IPv6]:port" (the bracketed form: an IPv6 address holds colons itself). */
function parseEndpoint6(raw: string): { ip: string; port: number } | null {
  if (raw === '') return null;
  const m = /^\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})$/.exec(raw);
  const ip = m ? parseIp(m[1]!) : null;
  if (!m || !ip?.ok || ip.family !== 6 || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    throw new UnitError(`expected an IPv6 address in brackets and a port such as [2001:db8::5]:80, got "${raw}"`);
  }
  // A link-local destination has no meaning without an interface: DNAT cannot use it.
  if ((parseInt(ip.ip.split(':')[0] || '0', 16) & 0xffc0) === 0xfe80) throw new UnitError(`${ip.ip} is link-local: a portal needs a routable address, got "${raw}"`);
  return { ip: ip.ip, port: Number(m[2]) };
}

function checkFilter(raw: string): string {
  // A light sanity check: balanced parentheses, starts with "(".
  let depth = 0;
  for (const c of raw) {
    if (c === '(') depth++;
    if (c === ')') depth--;
    if (depth < 0) break;
  }
  if (!raw.startsWith('(') || depth !== 0) throw new UnitError(`expected an LDAP filter such as (objectClass=reselMachine), got "${raw}"`);
  return raw;
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
  // The files it names: a CA that cannot be read is an invalid configuration, found by
  // `check` and by a reload before anything switches.
  const problems = await checkCaFiles(config);
  if (problems.length > 0) throw new ConfigError(file, problems);
  return config;
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
