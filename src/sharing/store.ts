// The sites' table on the [database] server (mysql2): one row per site, rewritten by that
// site every cycle. Owns the table's definition (created if missing), the locked
// read-decide-write exchange and the post-apply update. Values are always parameters;
// identifiers come from the validated config. Never decides anything itself: the decision
// is a pure function handed in.
//
//   sites(site PK, updated = server NOW(3), interval_ms, weight, global_*, cap_*, demand_*,
//         users_*, allocated_* = in force while demand_* was measured, applied_* = at least
//         what its kernel applies now)
//
// The exchange runs in one transaction that locks every row (SELECT … FOR UPDATE), so two
// sites never decide on the same old rows; on a Galera cluster the same statements conflict
// at commit instead (certification), and a deadlock or conflict is retried once.

import mysql from 'mysql2/promise';
import { mysqlSsl } from '../sources/mysqltls.js';
import type { Config } from '../config/config.js';
import type { Pair } from './allocate.js';

export const TABLE = 'sites';

export interface SiteRow {
  readonly site: string;
  /** age of the row by the server's clock, ms */
  readonly ageMs: number;
  readonly intervalMs: number;
  readonly weight: number;
  readonly global: Pair;
  readonly cap: Pair;
  readonly demand: Pair;
  readonly users: Pair;
  readonly allocated: Pair;
  readonly applied: Pair;
}

export type OwnRow = Omit<SiteRow, 'ageMs'>;

const q = (id: string): string => `\`${id.replace(/`/g, '')}\``;

export const CREATE_SQL = `CREATE TABLE IF NOT EXISTS ${q(TABLE)} (
  site VARCHAR(64) NOT NULL PRIMARY KEY,
  updated DATETIME(3) NOT NULL,
  interval_ms INT UNSIGNED NOT NULL,
  weight DOUBLE NOT NULL,
  global_down BIGINT UNSIGNED NOT NULL, global_up BIGINT UNSIGNED NOT NULL,
  cap_down BIGINT UNSIGNED NOT NULL, cap_up BIGINT UNSIGNED NOT NULL,
  demand_down BIGINT UNSIGNED NOT NULL, demand_up BIGINT UNSIGNED NOT NULL,
  users_down INT UNSIGNED NOT NULL, users_up INT UNSIGNED NOT NULL,
  allocated_down BIGINT UNSIGNED NOT NULL, allocated_up BIGINT UNSIGNED NOT NULL,
  applied_down BIGINT UNSIGNED NOT NULL, applied_up BIGINT UNSIGNED NOT NULL
) ENGINE=InnoDB`;

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
] as const;

const SELECT_SQL =
  `SELECT site, TIMESTAMPDIFF(MICROSECOND, updated, NOW(3)) DIV 1000 AS age_ms, ${COLUMNS.join(', ')} ` +
  `FROM ${q(TABLE)} ORDER BY site FOR UPDATE`;
const UPSERT_SQL =
  `INSERT INTO ${q(TABLE)} (site, updated, ${COLUMNS.join(', ')}) VALUES (?, NOW(3), ${COLUMNS.map(() => '?').join(', ')}) ` +
  `ON DUPLICATE KEY UPDATE updated = NOW(3), ${COLUMNS.map((c) => `${c} = VALUES(${c})`).join(', ')}`;
const SETTLE_SQL = `UPDATE ${q(TABLE)} SET applied_down = ?, applied_up = ? WHERE site = ?`;

const n = (v: unknown): number => (typeof v === 'number' ? v : Number(v));
const pairOf = (r: Record<string, unknown>, c: string): Pair => ({ down: n(r[`${c}_down`]), up: n(r[`${c}_up`]) });

function rowOf(r: Record<string, unknown>): SiteRow {
  return {
    site: String(r['site']),
    ageMs: n(r['age_ms']),
    intervalMs: n(r['interval_ms']),
    weight: n(r['weight']),
    global: pairOf(r, 'global'),
    cap: pairOf(r, 'cap'),
    demand: pairOf(r, 'demand'),
    users: pairOf(r, 'users'),
    allocated: pairOf(r, 'allocated'),
    applied: pairOf(r, 'applied'),
  };
}

function values(o: OwnRow): unknown[] {
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
  ];
}

export class SiteStore {
  private pool: mysql.Pool | null = null;
  private created = false;

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

  /**
   * Reads every other site's row and writes ours in one locked transaction: `decide` gets the
   * other rows and returns our row as it must be written (its `applied` is the claim).
   */
  async exchange(self: string, decide: (others: SiteRow[]) => OwnRow | Promise<OwnRow>): Promise<{ others: SiteRow[]; own: OwnRow }> {
    const timeout = this.config.database.timeoutMs;
    const pool = this.getPool();
    if (!this.created) {
      // An account without CREATE may still use a table the administrator made: a refused
      // CREATE is not an error by itself (the SELECT below says if the table is missing).
      await pool.query({ sql: CREATE_SQL, timeout }).catch((e: { errno?: number }) => {
        if (e.errno !== 1142 && e.errno !== 1044) throw e;
      });
      this.created = true;
    }
    for (let attempt = 0; ; attempt++) {
      const conn = await pool.getConnection();
      try {
        await conn.query({ sql: 'START TRANSACTION', timeout });
        const [rows] = await conn.query({ sql: SELECT_SQL, timeout });
        const others = (rows as Record<string, unknown>[]).map(rowOf).filter((r) => r.site !== self);
        const own = await decide(others);
        await conn.query({ sql: UPSERT_SQL, values: values(own), timeout });
        await conn.query({ sql: 'COMMIT', timeout });
        return { others, own };
      } catch (e) {
        await conn.query('ROLLBACK').catch(() => undefined);
        const errno = (e as { errno?: number }).errno;
        if (attempt === 0 && (errno === 1213 || errno === 1205)) continue; // deadlock / lock wait timeout: once more
        throw e;
      } finally {
        conn.release();
      }
    }
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
