// The SQL text of the netacct volume queries (src/netacct/volumes.ts runs them). Identifiers come
// from the validated config only and are quoted here; values are always parameters (?). Pure.

import type { DatabaseConfig } from '../config/config.js';

/** A quoted SQL identifier (the config allows letters, digits and _ only; backquotes are dropped). */
export const q = (id: string): string => `\`${id.replace(/`/g, '')}\``;

/** SQL expression of one row's counted bytes of one direction; NULL when a counted column is NULL or negative. */
function rowExpr(d: DatabaseConfig, dir: 'down' | 'up'): string {
  const main = q(dir === 'down' ? d.columns.down : d.columns.up);
  if (d.exclude.length === 0) return main; // NULL and negative values are told apart in JS
  const suffix = dir === 'down' ? 'input' : 'output';
  const excluded = d.exclude.map((k) => q(`${k}_${suffix}`));
  const cols = [main, ...excluded];
  const bad = cols.map((c) => `${c} IS NULL OR ${c} < 0`).join(' OR ');
  return `CASE WHEN ${bad} THEN NULL ELSE GREATEST(${[main, ...excluded.map((c) => `- ${c}`)].join(' ')}, 0) END`;
}

/**
 * With an off-peak window ([qos] offPeakWeight < 1): a last column, the Unix time of the row's
 * hour bucket (the server's local time read in the server's zone), for its weight
 * (volumes-window.ts). Without one: nothing, the queries are those of before the window existed.
 */
const hourCol = (d: DatabaseConfig, hour: boolean): string => (hour ? `, UNIX_TIMESTAMP(${q(d.columns.time)})` : '');

/** Every counted row at or after the reset. Parameter: reset (Unix time). `hour`: with the bucket's Unix time last. */
export function rowsSelect(d: DatabaseConfig, table: string, hour = false): string {
  return (
    `SELECT ${q(d.columns.ip)}, ${rowExpr(d, 'down')}, ${rowExpr(d, 'up')}${hourCol(d, hour)} FROM ${q(table)} ` +
    `WHERE ${q(d.columns.time)} >= FROM_UNIXTIME(?)`
  );
}

/**
 * The per-cycle query: one row per traffic row (not grouped) of the buckets at or after both the
 * reset (Unix time) and B ('YYYY-MM-DD HH:00:00', server local). Columns: ip, down, up (NULL = a
 * NULL or negative counted column: the row is ignored).
 */
export function recentVolumesQuery(d: DatabaseConfig, table: string, hour = false): string {
  return `${rowsSelect(d, table, hour)} AND ${q(d.columns.time)} >= CAST(? AS DATETIME)`;
}

/** WHERE of the open hours: at or after the reset (Unix time) and B (both parameters). */
const openWhere = (d: DatabaseConfig): string =>
  `WHERE ${q(d.columns.time)} >= FROM_UNIXTIME(?) AND ${q(d.columns.time)} >= CAST(? AS DATETIME)`;

/** The open hours' rows (recentVolumesQuery) with their id as a fourth column: what the open part holds, by row. */
export function recentRowsQuery(d: DatabaseConfig, table: string, id: string, hour = false): string {
  return `SELECT ${q(d.columns.ip)}, ${rowExpr(d, 'down')}, ${rowExpr(d, 'up')}, ${q(id)}${hourCol(d, hour)} FROM ${q(table)} ${openWhere(d)}`;
}

/**
 * The per-cycle read once the open hours' rows are held (src/netacct/volumes.ts): ONE statement,
 * so both halves see the same snapshot (one read view in InnoDB, one table lock in MyISAM):
 * the rows with id > M (rows added since), tagged 0: (0, ip, down, up, id, NULL); and the signature of
 * the rows with id <= M (those held), tagged 1: (1, COUNT(*), SUM(down), COUNT(down), SUM(up),
 * COUNT(up)) as in signatureQuery. Parameters: reset, B, M, reset, B, M. The first half is a
 * primary-key range (O(rows added)). The second must not be one (`id <= M` is every row of the
 * table up to M, all days of history): `id + 0` leaves it to the hour index, read alone with
 * InnoDB (every secondary index carries the primary key).
 */
export function appendQuery(d: DatabaseConfig, table: string, id: string, hour = false): string {
  const down = rowExpr(d, 'down');
  const up = rowExpr(d, 'up');
  // `hour`: the rows carry the bucket's Unix time last; the signature row a NULL there
  return (
    `SELECT 0, ${q(d.columns.ip)}, ${down}, ${up}, ${q(id)}, NULL${hourCol(d, hour)} FROM ${q(table)} ${openWhere(d)} AND ${q(id)} > ? ` +
    `UNION ALL SELECT 1, COUNT(*), COALESCE(SUM(${down}), 0), COUNT(${down}), COALESCE(SUM(${up}), 0), COUNT(${up})${hour ? ', NULL' : ''} ` +
    `FROM ${q(table)} ${openWhere(d)} AND ${q(id)} + 0 <= ?`
  );
}

/**
 * The signature of the per-cycle query's rows, computed by the server: row count, and the sum and
 * count of the non-NULL values of each column. netacct's counters only grow, so any row added or
 * updated changes it. Parameters: those of recentVolumesQuery.
 */
export function signatureQuery(d: DatabaseConfig, table: string): string {
  const down = rowExpr(d, 'down');
  const up = rowExpr(d, 'up');
  return (
    `SELECT COUNT(*), COALESCE(SUM(${down}), 0), COUNT(${down}), COALESCE(SUM(${up}), 0), COUNT(${up}) FROM ${q(table)} ` +
    `WHERE ${q(d.columns.time)} >= FROM_UNIXTIME(?) AND ${q(d.columns.time)} >= CAST(? AS DATETIME)`
  );
}

/** The closed-part query: rows of the buckets in [lo, hi) at or after the reset. Parameters: reset (Unix time), lo, hi. */
export function closedVolumesQuery(d: DatabaseConfig, table: string, hour = false): string {
  const t = q(d.columns.time);
  return `${rowsSelect(d, table, hour)} AND ${t} >= CAST(? AS DATETIME) AND ${t} < CAST(? AS DATETIME)`;
}

/**
 * B: start of the hour bucket of NOW() - 15 min, server local time, the literal both queries
 * compare with. 15 minutes = three nacctd flushes (300 s) after the hour turned: late rows into
 * the hour that ended are still read every cycle until then.
 */
export const BOUNDARY_SQL = "SELECT DATE_FORMAT(NOW() - INTERVAL 15 MINUTE, '%Y-%m-%d %H:00:00')";
