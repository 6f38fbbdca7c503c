// The netacct volume source (mysql2). Owns the pool (connect and query timeouts),
// the one parameterized query per table per cycle, and the sanitation of its rows.
// Identifiers come from the validated config only; values are always parameters.
// Hour buckets are compared in the DATABASE server's time zone: the reset instant is
// sent as a Unix timestamp and turned into server-local time by FROM_UNIXTIME.

import mysql from 'mysql2/promise';
import type { Config, DatabaseConfig } from '../config/config.js';
import { parseIp } from '../net/ip.js';
import type { Logger } from '../log.js';
import { SourceUnavailableError, type Usage, type Volume } from './types.js';

const q = (id: string): string => `\`${id.replace(/`/g, '')}\``;

/** SQL expression of the counted bytes of one direction, negative and NULL rows counted apart. */
function bytesExpr(d: DatabaseConfig, dir: 'down' | 'up'): { sum: string; bad: string } {
  const main = q(dir === 'down' ? d.columns.down : d.columns.up);
  const suffix = dir === 'down' ? 'input' : 'output';
  const excluded = d.exclude.map((k) => q(`${k}_${suffix}`));
  const cols = [main, ...excluded];
  const bad = cols.map((c) => `${c} IS NULL OR ${c} < 0`).join(' OR ');
  const value = [main, ...excluded.map((c) => `- ${c}`)].join(' ');
  return {
    sum: `CAST(SUM(CASE WHEN ${bad} THEN 0 ELSE GREATEST(${value}, 0) END) AS SIGNED)`,
    bad: `CAST(SUM(CASE WHEN ${bad} THEN 1 ELSE 0 END) AS SIGNED)`,
  };
}

export function volumesQuery(d: DatabaseConfig, table: string): string {
  const down = bytesExpr(d, 'down');
  const up = bytesExpr(d, 'up');
  return `SELECT ${q(d.columns.ip)}, ${down.sum}, ${up.sum}, ${down.bad}, ${up.bad} ` +
    `FROM ${q(table)} WHERE ${q(d.columns.time)} >= FROM_UNIXTIME(?) GROUP BY ${q(d.columns.ip)}`;
}

export class VolumeSource {
  private pool: mysql.Pool | null = null;

  constructor(private readonly config: Pick<Config, 'database'>, private readonly log: Logger) {}

  private getPool(): mysql.Pool {
    if (!this.pool) {
      const d = this.config.database;
      this.pool = mysql.createPool({
        host: d.host, port: d.port, socketPath: d.socket ?? undefined,
        user: d.user, password: d.password, database: d.db,
        connectTimeout: d.connectTimeoutMs, connectionLimit: 2, maxIdle: 2, idleTimeout: 60_000,
        enableKeepAlive: true, rowsAsArray: true, supportBigNumbers: true, bigNumberStrings: false,
      });
      // A broken idle connection must not crash the process.
      this.pool.on('connection', (conn) => conn.on('error', () => undefined));
    }
    return this.pool;
  }

  /** Bytes per canonical IP since resetAt (both tables when table6 is set). */
  async fetch(resetAt: Date, now: Date = new Date()): Promise<Usage> {
    const d = this.config.database;
    const byIp = new Map<string, Volume>();
    const badRows: string[] = [];
    const badIps: string[] = [];
    const tables = [d.table, ...(d.table6 ? [d.table6] : [])];
    for (const table of tables) {
      let rows: unknown[][];
      try {
        const [res] = await this.getPool().query({ sql: volumesQuery(d, table), timeout: d.timeoutMs, values: [Math.floor(resetAt.getTime() / 1000)] });
        rows = res as unknown[][];
      } catch (e) {
        await this.close();
        const err = e as { code?: string; message?: string };
        throw new SourceUnavailableError('mysql', `volumes query on ${d.db}.${table} at ${d.socket ?? `${d.host}:${d.port}`} failed: ${err.code ?? ''} ${err.message ?? String(e)}`.replace(/\s+/g, ' '), { cause: e });
      }
      for (const row of rows) {
        const [ipRaw, down, up, badDown, badUp] = row as [string | null, number | null, number | null, number | null, number | null];
        const ip = parseIp(String(ipRaw ?? ''));
        if (!ip.ok) {
          if (badIps.length < 5) badIps.push(`${JSON.stringify(ipRaw)} (${ip.reason})`);
          else badIps.push('');
          continue;
        }
        if ((badDown ?? 0) > 0 || (badUp ?? 0) > 0) badRows.push(ip.ip);
        const v = byIp.get(ip.ip);
        if (v) {
          v.down += Number(down ?? 0);
          v.up += Number(up ?? 0);
        } else {
          byIp.set(ip.ip, { down: Number(down ?? 0), up: Number(up ?? 0) });
        }
      }
    }
    if (badRows.length > 0) {
      this.log.warn(`mysql: ignored rows with NULL or negative byte counts for ${badRows.length} IP(s), e.g. ${badRows.slice(0, 5).join(', ')}`);
    }
    if (badIps.length > 0) {
      this.log.warn(`mysql: ignored ${badIps.length} row group(s) whose IP is not a valid address, e.g. ${badIps.filter(Boolean).join(', ')}`);
    }
    return { byIp, resetAt: resetAt.toISOString(), fetchedAt: now.toISOString() };
  }

  async close(): Promise<void> {
    const p = this.pool;
    this.pool = null;
    if (p) await p.end().catch(() => undefined);
  }
}
