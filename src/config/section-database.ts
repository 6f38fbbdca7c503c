// [database] and [publish] of qos.conf (the MySQL servers; [publish] falls back on [database]'s
// server, account and TLS) -> their typed parts, problems in the shared Ctx (reader.ts). Part of
// parseConfig (config.ts). Pure.

import { UnitError } from './units.js';
import type { Ctx, SectionReader } from './reader.js';
import type { DatabaseConfig, ExcludeKind, PublishConfig } from './types.js';
import { LOOPBACK_HOST, SQL_IDENT, absFile, parseDbHost } from './values.js';

/** [database]: the netacct server, its tables and columns, TLS. */
export function readDatabase(d: SectionReader, ctx: Ctx): DatabaseConfig {
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
  return database;
}

/** [publish]: the campus site's tables, on [database]'s server unless a host of its own is set. */
export function readPublish(pb: SectionReader, ctx: Ctx, database: DatabaseConfig): PublishConfig {
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
  return publish;
}
