// qos.conf -> one typed, frozen Config, built once and passed by constructor.
// Owns: the order in which sections are read and the checks across sections (parseConfig),
// loading the file (loadConfig), and which keys a reload cannot change (from the schema). The
// pieces: types.ts (the Config type), reader.ts (problem collection, typed section getters),
// values.ts (single-value parsers), rules.ts (rate rules), safety.ts (the file's permissions and
// settings that open the gateway), files.ts (CA files), dirs.ts ([path] directories).
// Never reads anything but the one file (and, in loadConfig, the host name: the default
// [site] name, the CA files it names, and the stat of its directories); never exits the process.
//
// parseConfig reads every section in one function, top to bottom, so that each cross-section
// check sits next to the values it compares: that is why this file is over 400 lines.

import { readFile, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import * as ini from 'ini';
import { IANAZone } from 'luxon';
import { KEYS, SECTIONS, specOf, isPatternKey, type Section } from './schema.js';
import { UnitError, parseRate, parseSize } from './units.js';
import { parseIp, isValidIpv4Prefix, parseCidr, prefixNetwork } from '../net/ip.js';
import { checkCaFiles } from './files.js';
import { checkDirs } from './dirs.js';
import { checkFileMode, checkFirewall, checkLdapTransport } from './safety.js';
import type {
  Config,
  DatabaseConfig,
  ExcludeKind,
  FirewallConfig,
  LdapConfig,
  MetricsConfig,
  PublishConfig,
  QosConfig,
  SharingConfig,
} from './types.js';
import { ConfigError, Ctx, SectionReader, formatProblem, indexLines } from './reader.js';
import { readOffPeak, readRateRules } from './rules.js';
import { readHa } from './ha.js';
import {
  CHAIN_PREFIX,
  LDAP_ATTR,
  LOOPBACK_HOST,
  SET_PREFIX,
  SITE_NAME,
  SQL_IDENT,
  absFile,
  checkFilter,
  checkIfName,
  cidrList,
  isLoopback,
  parseDbHost,
  parseEndpoint,
  parseEndpoint6,
  parseLdapHost,
  parseListen,
  passSourceList,
  WEIGHT_MAX,
  WEIGHT_MIN,
  parseToken,
  systemTimezone,
} from './values.js';

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

  // [ldap]
  const l = R('ldap');
  const url = l.parse('host', parseLdapHost, 'ldap://127.0.0.1');
  const starttls = l.bool('starttls');
  if (starttls && url.startsWith('ldaps:')) ctx.problem('ldap', 'starttls', 'StartTLS cannot be used with an ldaps:// URL (already TLS)');
  const attr = (key: string): string => l.ident(key, LDAP_ATTR, 'an LDAP attribute name');
  const ldap: LdapConfig = {
    url,
    starttls,
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
      uid: attr('uidAttr'),
      owner: attr('ownerAttr'),
      ip: attr('ipAttr'),
      ip6: attr('ip6Attr'),
      zone: attr('zoneAttr'),
      host: attr('hostAttr'),
      endInternet: attr('endInternetAttr'),
      coupure: attr('coupureAttr'),
      ban: attr('banAttr'),
      cotiz: attr('cotizAttr'),
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
  checkLdapTransport(ctx, ldap);
  if (ldap.baseHosts === '') ctx.problem('ldap', 'basehosts', 'must not be empty');

  // [database]
  const d = R('database');
  const dbHost = d.parse('host', parseDbHost, { host: '127.0.0.1', port: null });
  const dbPort = d.int('port', 1, 65535);
  const sqlIdent = (key: string): string => d.ident(key, SQL_IDENT, 'an SQL identifier (letters, digits, _)');
  const table6 = d.str('table6');
  const idColumn = d.str('idColumn');
  if (idColumn !== '' && !SQL_IDENT.test(idColumn))
    ctx.problem('database', 'idColumn', `expected an SQL identifier (letters, digits, _), got "${idColumn}"`);
  if (table6 !== '' && !SQL_IDENT.test(table6))
    ctx.problem('database', 'table6', `expected an SQL identifier (letters, digits, _), got "${table6}"`);
  const database: DatabaseConfig = {
    host: dbHost.host,
    port: dbHost.port ?? dbPort,
    socket: d.str('socket') || null,
    user: d.str('user'),
    password: d.str('password'),
    db: sqlIdent('db'),
    table: sqlIdent('table'),
    table6: table6 || null,
    columns: {
      ip: sqlIdent('ipColumn'),
      time: sqlIdent('timeColumn'),
      down: sqlIdent('downColumn'),
      up: sqlIdent('upColumn'),
      id: idColumn || null,
    },
    exclude: d.parse(
      'exclude',
      (raw) => {
        const parts = raw
          .split(/[,\s]+/)
          .filter(Boolean)
          .map((p) => p.toLowerCase());
        for (const p of parts)
          if (!['peer', 'direct', 'local'].includes(p)) throw new UnitError(`expected a list of peer, direct, local, got "${p}"`);
        return [...new Set(parts)] as ExcludeKind[];
      },
      [] as ExcludeKind[],
    ),
    connectTimeoutMs: d.duration('connectTimeout', 100),
    timeoutMs: d.duration('timeout', 100),
    tls: d.bool('tls'),
    caFile: d.parse('caFile', absFile, null),
    closedRefreshMs: d.duration('closedRefresh', 0),
  };

  if (database.caFile !== null && !database.tls)
    ctx.problem('database', 'caFile', 'is only used with tls = 1 (set tls = 1, or remove caFile)');
  if (database.password !== '' && !database.tls && database.socket === null && !LOOPBACK_HOST.test(database.host)) {
    ctx.warn(
      'database',
      'password',
      `is sent in plaintext to ${database.host}:${database.port} (set tls = 1 with caFile, or use a loopback host or a socket)`,
    );
  }

  // [firewall]
  const f = R('firewall');
  const prefix4 = (key: string): string =>
    f.parse(
      key,
      (raw) => {
        if (raw !== '' && !isValidIpv4Prefix(raw))
          throw new UnitError(`expected an IPv4 prefix such as 172.22. (one to three octets and a dot), got "${raw}"`);
        return raw;
      },
      '',
    );
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
    user6Networks = Object.entries(networks)
      .filter(([key]) => key.toLowerCase() === 'net6')
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
    gatewayIps,
    interfaces,
    networks,
    v6Enabled: f.bool('v6Enabled'),
    netns: f.parse(
      'netns',
      (raw) => {
        if (raw !== '' && !/^[A-Za-z0-9_.-]{1,64}$/.test(raw))
          throw new UnitError(`expected a network namespace name (letters, digits, _ . -), got "${raw}"`);
        return raw;
      },
      '',
    ),
    userNetworks,
    user6Networks,
    checkPayment: f.bool('checkPayment'),
    checkCoupure: f.bool('checkCoupure'),
    checkBan: f.bool('checkBan'),
    banServices: f
      .str('banServices')
      .split(',')
      .map((x) => x.trim().toLowerCase())
      .filter(Boolean),
    checkBlacklist: f.bool('checkBlacklist'),
    openDestinations: f.parse('openDestinations', (raw) => cidrList(raw, null), [] as string[]),
    passSources: f.parse('passSources', passSourceList, [] as string[]),
    refuse: f.oneOf('refuse', ['reject', 'drop'] as const),
    portal: f.parse('portal', parseEndpoint, null),
    portalBan: f.parse('portalBan', parseEndpoint, null),
    portal6: f.parse('portal6', parseEndpoint6, null),
    portalBan6: f.parse('portalBan6', parseEndpoint6, null),
    portalPorts: f.parse(
      'portalPorts',
      (raw) =>
        raw
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean)
          .map((x) => {
            if (!/^[0-9]{1,5}$/.test(x) || Number(x) < 1 || Number(x) > 65535)
              throw new UnitError(`expected TCP ports such as 80, got "${x}"`);
            return Number(x);
          }),
      [80],
    ),
  };
  for (const [key, value] of Object.entries(firewall.networks)) {
    const r = parseCidr(value);
    if (value !== '' && !r.ok) ctx.problem('firewall', key, r.reason);
  }
  if (firewall.enabled && firewall.v6Enabled && user6Networks.length === 0) {
    // user6Networks bounds which IPv6 addresses a machine may hold: with none, any address an
    // LDAP entry holds (a server's, another campus's) would enter the allow set unchecked.
    ctx.problem(
      'firewall',
      'user6Networks',
      'the firewall filters IPv6 (enabled = 1, v6Enabled = 1) but no IPv6 user network is configured, so any IPv6 address an LDAP entry holds would be let out unchecked: set net6 or user6Networks (or v6Enabled = 0 to leave IPv6 to the rest of FORWARD deliberately)',
      ctx.lineOf('firewall', f.has('user6Networks') ? 'user6Networks' : f.has('net6') ? 'net6' : 'v6Enabled'),
    );
  }
  for (const key of ['portal6', 'portalBan6'] as const) {
    if (firewall[key] && !firewall.v6Enabled) ctx.problem('firewall', key, 'IPv6 is off (v6Enabled = 0): no IPv6 portal');
  }
  checkFirewall(ctx, firewall);
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
  if (!IANAZone.isValidZone(timezone))
    ctx.problem('qos', 'timezone', `unknown time zone "${timezone}" (expected an IANA name such as Europe/Paris)`);
  const leaf = q.oneOf('leaf', ['sfq', 'fq_codel', 'cake', 'pfifo', 'none'] as const);
  const qos: QosConfig = {
    enabled: q.bool('enabled'),
    groups,
    base: q.parse(
      'classSeperationBase',
      (raw) => {
        const b = parseSize(raw);
        if (b <= 0) throw new UnitError(`must be positive, got "${raw}"`);
        return b;
      },
      1,
    ),
    parameter: q.float('classSeperationParameter', (n) => (n >= 1 ? null : 'expected a number >= 1')),
    factor: q.float('classRateFactor', (n) => (n > 0 && n <= 1 ? null : 'expected a number with 0 < f <= 1')),
    resetHour: q.int('resetHour', 0, 23),
    timezone,
    offPeak: readOffPeak(q, ctx),
    intervalMs: q.duration('interval', 1000),
    count: q.oneOf('count', ['all', 'active'] as const),
    emptyClassRate: q.rate('emptyClassRate'),
    ceilShare: q.share('ceil'),
    defaultRate: q.rate('defaultRate'),
    classifier: q.oneOf('classifier', ['fw', 'classify'] as const),
    leaf,
    // sfq cannot share by host without seconds of delay (one FIFO per user, counted in GSO
    // packets): its default is flow, as before the key existed; host with it is refused below
    fairness: q.has('fairness') || leaf !== 'sfq' ? q.oneOf('fairness', ['host', 'flow'] as const) : 'flow',
    setPrefix: q.ident('setPrefix', SET_PREFIX, 'letters, digits, _ or - (at most 21 characters)'),
    set6Prefix: q.ident('set6Prefix', SET_PREFIX, 'letters, digits, _ or - (at most 21 characters)'),
    chainPrefix: q.ident('chainPrefix', CHAIN_PREFIX, 'letters, digits, _ or - (at most 16 characters)'),
    markDown: q.int('markDown', 1, 0x7fff0000),
    markUp: q.int('markUp', 1, 0x7fff0000),
    fullSyncIntervalMs: q.duration('fullSyncInterval', 1000),
    verifyIntervalMs: q.duration('verifyInterval', 0),
  };
  if (qos.ceilShare === 0) ctx.problem('qos', 'ceil', 'must be above 0%');
  if (qos.fairness === 'host' && (qos.leaf === 'pfifo' || qos.leaf === 'none'))
    ctx.problem(
      'qos',
      'fairness',
      `host needs leaf = fq_codel or cake (leaf = ${qos.leaf} shares by arrival, never by user): change leaf, or set fairness = flow`,
    );
  if (qos.fairness === 'host' && qos.leaf === 'sfq')
    ctx.problem(
      'qos',
      'fairness',
      "host needs leaf = fq_codel or cake: sfq keeps each user's packets in one FIFO (their own download delays their interactive traffic by seconds, measured), so it shares by flow only: change leaf, or set fairness = flow",
    );
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
      if (rv > 0 && rv <= reserved)
        ctx.problem(
          'ratesrules',
          `${rule.name}${dir === 'up' ? 'Up' : 'Down'}`,
          `${rv} bit/s leaves nothing for users after defaultRate + groups x emptyClassRate`,
        );
    }
  }

  // [site], [sharing]
  const siteName = R('site').parse(
    'name',
    (raw) => {
      const v = raw === '' ? (opts.hostname ?? 'localhost') : raw;
      if (!SITE_NAME.test(v))
        throw new UnitError(
          `expected a site name (letters, digits, _ . -, at most 64)${raw === '' ? ' (the host name is not one: set it)' : ''}, got "${v}"`,
        );
      return v;
    },
    'localhost',
  );
  const sh = R('sharing');
  const sharing: SharingConfig = {
    enabled: sh.bool('enabled'),
    // the bounds every peer's row is held to (src/sharing/peers.ts): our own row must pass them too
    weight: sh.float('weight', (n) =>
      n >= WEIGHT_MIN && n <= WEIGHT_MAX ? null : `expected a number from ${WEIGHT_MIN} to ${WEIGHT_MAX}`,
    ),
    stale: sh.int('stale', 1, 1000),
    db: sh.ident('db', SQL_IDENT, 'an SQL identifier (letters, digits, _)'),
  };
  if (sharing.enabled) {
    for (const key of ['globalDown', 'globalUp'] as const) {
      if (rates[key] === undefined)
        ctx.problem('rates', key, 'is required with [sharing] enabled = 1 (the rate all sites together may use)');
    }
  }

  // [path], [log]
  const p = R('path');
  const absPath = (key: string): string =>
    p.parse(
      key,
      (raw) => {
        if (!raw.startsWith('/')) throw new UnitError(`expected an absolute path, got "${raw}"`);
        return raw.replace(/\/+$/, '') || '/';
      },
      '/nonexistent',
    );
  const paths = { log: absPath('log'), state: absPath('state'), run: absPath('run') };
  const log = { level: R('log').oneOf('level', ['error', 'warn', 'info', 'debug'] as const) };

  // [metrics], [publish] ([site] name is read above, with [sharing])
  const mx = R('metrics');
  const metrics: MetricsConfig = {
    listen: mx.parse('listen', parseListen, null),
    token: mx.parse('token', parseToken, ''),
  };
  if (metrics.listen && !isLoopback(metrics.listen.host) && metrics.token === '') {
    ctx.problem(
      'metrics',
      'listen',
      `${metrics.listen.host} is not a loopback address: set [metrics] token (requests then need Authorization: Bearer <token>)`,
    );
  }
  const pb = R('publish');
  const pbHost = pb.parse('host', (raw) => (raw === '' ? null : parseDbHost(raw)), null);
  // TLS: a host of its own has its own tls and caFile, each empty = [database]'s; else [database]'s apply.
  const pbTls = pbHost && pb.str('tls') !== '' ? pb.bool('tls') : database.tls;
  const pbCaOwn = pbHost ? pb.parse('caFile', absFile, null) : null;
  const publish: PublishConfig = {
    enabled: pb.bool('enabled'),
    db: pb.ident('db', SQL_IDENT, 'an SQL identifier (letters, digits, _)'),
    host: pbHost ? pbHost.host : database.host,
    port: pbHost ? (pbHost.port ?? 3306) : database.port,
    socket: pbHost ? null : database.socket,
    user: pbHost ? pb.str('user') : database.user,
    password: pbHost ? pb.str('password') : database.password,
    tls: pbTls,
    caFile: pbTls ? (pbCaOwn ?? database.caFile) : null,
    timeoutMs: pb.duration('timeout', 100),
  };
  if (!pbHost) {
    for (const key of ['user', 'password'])
      if (pb.has(key) && pb.str(key) !== '') ctx.warn('publish', key, 'ignored without [publish] host (the [database] account is used)');
    for (const key of ['tls', 'caFile'])
      if (pb.has(key) && pb.str(key) !== '') ctx.warn('publish', key, 'ignored without [publish] host ([database] tls and caFile apply)');
  } else {
    if (pbCaOwn !== null && !pbTls) ctx.problem('publish', 'caFile', 'is only used with tls = 1 (set tls = 1, or remove caFile)');
    if (publish.enabled && !pbTls && !LOOPBACK_HOST.test(publish.host))
      ctx.warn(
        'publish',
        'host',
        `${publish.host}:${publish.port} is written to in plaintext: the password and every published row (uids, DNs, volumes) can be read or altered on the way (set [publish] tls = 1 with caFile, or use a loopback host)`,
      );
  }

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
