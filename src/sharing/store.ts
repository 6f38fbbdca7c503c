// The sites' table on the [database] server (mysql2): one row per site, rewritten by that
// site every cycle. Owns the table's definition (created if missing), the locked
// read-decide-write exchange and the post-apply update. Values are always parameters;
// identifiers come from the validated config. Never decides anything itself: the decision
// is a pure function handed in.
//
//   sites(site PK (ASCII, case-insensitive), updated = server NOW(3), interval_ms, weight,
//         global_*, cap_*, demand_*, users_*, allocated_* = in force while demand_* was
//         measured, applied_* = at least what its kernel applies now, writer = the id of the
//         process that wrote it, writers = gateways known to write it)
//
// A table made by an older version gets the missing columns (ALTER TABLE … ADD COLUMN); a
// dropped table is made again at the next exchange. At most ROW_LIMIT other rows are read.
// Our row is read apart: whether another process wrote it since our last write (the same
// name on two gateways) is told by its writer id and its `updated`.
//
// The exchange runs in one transaction that locks every row (SELECT … FOR UPDATE), so two
// sites never decide on the same old rows; on a Galera cluster the same statements conflict
// at commit instead (certification), and a deadlock or conflict is retried once.

import mysql from 'mysql2/promise';
import { randomBytes } from 'node:crypto';
import { mysqlSsl } from '../netacct/mysqltls.js';
import type { Config } from '../config/config.js';
import type { Pair } from './allocate.js';
import { ROW_LIMIT } from './peers.js';

export type { SiteRow } from './peers.js';

export const TABLE = 'sites';

/** Our row as written. */
export interface OwnRow {
  readonly site: string;
  readonly intervalMs: number;
  readonly weight: number;
  readonly global: Pair;
  readonly cap: Pair;
  readonly demand: Pair;
  readonly users: Pair;
  readonly allocated: Pair;
  readonly applied: Pair;
  /** gateways known to write our row (1 unless the name collides) */
  readonly writers: number;
}

/** What one exchange read, handed to the decision. */
export interface ExchangeView {
  /** every other row, raw (column → value as the driver gave it), by name, at most ROW_LIMIT */
  readonly rows: Record<string, unknown>[];
  /** the table had more than ROW_LIMIT other rows */
  readonly overflow: boolean;
  /** our row as stored (its name may differ from ours in case on a case-insensitive key) */
  readonly own: { readonly site: string; readonly writer: string; readonly intervalMs: number } | null;
  /** another process wrote our row since our last write: its writer id ('' = a version without writer ids) */
  readonly foreign: string | null;
}

const q = (id: string): string => `\`${id.replace(/`/g, '')}\``;

export const CREATE_SQL = `CREATE TABLE IF NOT EXISTS ${q(TABLE)} (
  site VARCHAR(64) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL PRIMARY KEY,
  updated DATETIME(3) NOT NULL,
  interval_ms INT UNSIGNED NOT NULL,
  weight DOUBLE NOT NULL,
  global_down BIGINT UNSIGNED NOT NULL, global_up BIGINT UNSIGNED NOT NULL,
  cap_down BIGINT UNSIGNED NOT NULL, cap_up BIGINT UNSIGNED NOT NULL,
  demand_down BIGINT UNSIGNED NOT NULL, demand_up BIGINT UNSIGNED NOT NULL,
  users_down INT UNSIGNED NOT NULL, users_up INT UNSIGNED NOT NULL,
  allocated_down BIGINT UNSIGNED NOT NULL, allocated_up BIGINT UNSIGNED NOT NULL,
  applied_down BIGINT UNSIGNED NOT NULL, applied_up BIGINT UNSIGNED NOT NULL,
  writer VARCHAR(32) NOT NULL DEFAULT '',
  writers SMALLINT UNSIGNED NOT NULL DEFAULT 1
) ENGINE=InnoDB`;

/** Columns added since the first version, with their definitions (ALTER TABLE … ADD COLUMN). */
export const ADDED_COLUMNS: ReadonlyArray<readonly [string, string]> = [
  ['writer', "VARCHAR(32) NOT NULL DEFAULT ''"],
  ['writers', 'SMALLINT UNSIGNED NOT NULL DEFAULT 1'],
];

const COLUMNS = [
  'interval_ms',
  'weight',
  'global_down',
  'global_up',
  'cap_down',
  'cap_up',
  'demand_down',
  'demand_up',
  'users_down',
  'users_up',
  'allocated_down',
  'allocated_up',
  'applied_down',
  'applied_up',
  'writers',
  'writer',
] as const;

const OWN_SQL = `SELECT site, writer, interval_ms, CAST(updated AS CHAR) AS updated_s FROM ${q(TABLE)} WHERE site = ? FOR UPDATE`;
const OTHERS_SQL =
  `SELECT site, TIMESTAMPDIFF(MICROSECOND, updated, NOW(3)) DIV 1000 AS age_ms, ${COLUMNS.join(', ')} ` +
  `FROM ${q(TABLE)} WHERE site <> ? ORDER BY site LIMIT ${ROW_LIMIT + 1} FOR UPDATE`;
const UPSERT_SQL =
  `INSERT INTO ${q(TABLE)} (site, updated, ${COLUMNS.join(', ')}) VALUES (?, NOW(3), ${COLUMNS.map(() => '?').join(', ')}) ` +
  `ON DUPLICATE KEY UPDATE site = VALUES(site), updated = NOW(3), ${COLUMNS.map((c) => `${c} = VALUES(${c})`).join(', ')}`;
// A gateway that does not write (the backup of an HA pair): the same rows, no lock, and our
// row whole (the master's, for the backup to follow its allocation).
const READ_OTHERS_SQL = OTHERS_SQL.replace(/ FOR UPDATE$/, '');
const READ_OWN_SQL = `SELECT site, TIMESTAMPDIFF(MICROSECOND, updated, NOW(3)) DIV 1000 AS age_ms, ${COLUMNS.join(', ')} FROM ${q(TABLE)} WHERE site = ?`;
const WRITTEN_SQL = `SELECT CAST(updated AS CHAR) AS updated_s FROM ${q(TABLE)} WHERE site = ?`;
const SETTLE_SQL = `UPDATE ${q(TABLE)} SET applied_down = ?, applied_up = ? WHERE site = ?`;
const COLUMNS_SQL = 'SELECT COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?';

function values(o: OwnRow, writer: string): unknown[] {
  return [
    o.site,
    o.intervalMs,
    o.weight,
    o.global.down,
    o.global.up,
    o.cap.down,
    o.cap.up,
    o.demand.down,
    o.demand.up,
    o.users.down,
    o.users.up,
    o.allocated.down,
    o.allocated.up,
    o.applied.down,
    o.applied.up,
    o.writers,
    writer,
  ];
}

const text = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '');
const errno = (e: unknown): number | undefined => (e as { errno?: number }).errno;
const NO_SUCH_TABLE = 1146;

export class SiteStore {
  private pool: mysql.Pool | null = null;
  private created = false;
  /** this process's id, written with our row */
  readonly writer = randomBytes(8).toString('hex');
  /** `updated` of our row as we last wrote it */
  private written: string | null = null;

  constructor(private config: Config) {}

  reconfigure(config: Config): void {
    this.config = config;
    void this.close();
  }

  private getPool(): mysql.Pool {
    if (!this.pool) {
      const d = this.config.database;
      this.pool = mysql.createPool({
        ...(d.socket ? { socketPath: d.socket } : { host: d.host, port: d.port }),
        user: d.user,
        password: d.password,
        database: this.config.sharing.db,
        ssl: mysqlSsl(d),
        connectTimeout: d.connectTimeoutMs,
        connectionLimit: 1,
        maxIdle: 1,
        idleTimeout: 60_000,
      });
      this.pool.on('connection', (conn) => conn.on('error', () => undefined));
      this.created = false;
    }
    return this.pool;
  }

  /** Creates the table if missing and adds the columns of newer versions to an older one. */
  private async prepare(pool: mysql.Pool, timeout: number): Promise<void> {
    // An account without CREATE may still use a table the administrator made: a refused
    // CREATE is not an error by itself (the SELECT says if the table is missing).
    await pool.query({ sql: CREATE_SQL, timeout }).catch((e: unknown) => {
      if (errno(e) !== 1142 && errno(e) !== 1044) throw e;
    });
    const [cols] = await pool.query({ sql: COLUMNS_SQL, values: [TABLE], timeout });
    const have = new Set((cols as Array<{ c: string }>).map((r) => String(r.c).toLowerCase()));
    const missing = have.size === 0 ? [] : ADDED_COLUMNS.filter(([c]) => !have.has(c));
    if (missing.length > 0) {
      const sql = `ALTER TABLE ${q(TABLE)} ${missing.map(([c, def]) => `ADD COLUMN ${c} ${def}`).join(', ')}`;
      await pool.query({ sql, timeout }).catch((e: Error) => {
        throw new Error(`table ${TABLE} lacks column(s) ${missing.map(([c]) => c).join(', ')} and cannot be altered (${e.message})`);
      });
    }
    this.created = true;
  }

  /**
   * Reads every other site's row and ours, and writes ours, in one locked transaction:
   * `decide` gets what was read and returns our row as it must be written (its `applied` is
   * the claim).
   */
  async exchange(self: string, decide: (view: ExchangeView) => OwnRow | Promise<OwnRow>): Promise<{ view: ExchangeView; own: OwnRow }> {
    const timeout = this.config.database.timeoutMs;
    const pool = this.getPool();
    for (let attempt = 0; ; attempt++) {
      if (!this.created) await this.prepare(pool, timeout);
      const conn = await pool.getConnection();
      try {
        await conn.query({ sql: 'START TRANSACTION', timeout });
        const [ownRows] = await conn.query({ sql: OWN_SQL, values: [self], timeout });
        const o = (ownRows as Record<string, unknown>[])[0];
        const own = o ? { site: String(o['site']), writer: text(o['writer']), intervalMs: Number(o['interval_ms']) } : null;
        const foreign =
          o && this.written !== null && (own!.writer !== this.writer || text(o['updated_s']) !== this.written) ? own!.writer : null;
        const [rows] = await conn.query({ sql: OTHERS_SQL, values: [self], timeout });
        const all = rows as Record<string, unknown>[];
        const view: ExchangeView = { rows: all.slice(0, ROW_LIMIT), overflow: all.length > ROW_LIMIT, own, foreign };
        const mine = await decide(view);
        await conn.query({ sql: UPSERT_SQL, values: values(mine, this.writer), timeout });
        const [back] = await conn.query({ sql: WRITTEN_SQL, values: [self], timeout });
        const written = text((back as Record<string, unknown>[])[0]?.['updated_s']);
        await conn.query({ sql: 'COMMIT', timeout });
        this.written = written;
        return { view, own: mine };
      } catch (e) {
        await conn.query('ROLLBACK').catch(() => undefined);
        if (attempt === 0 && errno(e) === NO_SUCH_TABLE) {
          this.created = false; // dropped since: made again, now
          continue;
        }
        if (attempt === 0 && (errno(e) === 1213 || errno(e) === 1205)) continue; // deadlock / lock wait timeout: once more
        throw e;
      } finally {
        conn.release();
      }
    }
  }

  /**
   * Reads the other sites' rows and our row (as written by the master of an HA pair), writes
   * nothing and locks nothing: a backup. The next exchange after it starts afresh (no write of
   * ours to compare our row with: the row written meanwhile by the other gateway is not a collision).
   */
  async read(self: string): Promise<{ view: ExchangeView; ownRow: Record<string, unknown> | null }> {
    const timeout = this.config.database.timeoutMs;
    const pool = this.getPool();
    if (!this.created) await this.prepare(pool, timeout);
    this.written = null;
    const [ownRows] = await pool.query({ sql: READ_OWN_SQL, values: [self], timeout });
    const o = (ownRows as Record<string, unknown>[])[0] ?? null;
    const [rows] = await pool.query({ sql: READ_OTHERS_SQL, values: [self], timeout });
    const all = rows as Record<string, unknown>[];
    const own = o ? { site: String(o['site']), writer: text(o['writer']), intervalMs: Number(o['interval_ms']) } : null;
    return { view: { rows: all.slice(0, ROW_LIMIT), overflow: all.length > ROW_LIMIT, own, foreign: null }, ownRow: o };
  }

  /** After a decrease was applied: our row's `applied` comes down to it. */
  async settle(self: string, applied: Pair): Promise<void> {
    await this.getPool().query({ sql: SETTLE_SQL, values: [applied.down, applied.up, self], timeout: this.config.database.timeoutMs });
  }

  async close(): Promise<void> {
    const p = this.pool;
    this.pool = null;
    if (p) await p.end().catch(() => undefined);
  }
}
