// Published state for the campus site ([publish]): after each applied cycle, the
// per-user groups and volumes (`people_data`) and the classes (`classes`) of this site
// ([site] name) in a MySQL database, in one transaction, only the rows that changed
// since the last successful write (the first write of a process, and the first after a
// failure, rewrites all of this site's rows). Tables are created when missing. Runs
// beside the cycle loop, never in it: a slow or dead database costs the cycles nothing
// (one write at a time, the newest state wins), one error line, one recovery line.
// Owns its own connection pool (mysql2); never reads the netacct tables.

import mysql from 'mysql2/promise';
import { mysqlSsl } from '../sources/mysqltls.js';
import type { Config } from '../config/config.js';
import type { Logger } from '../log.js';
import type { Desired, UserPlan } from '../plan/desired.js';
import type { Directory } from '../sources/types.js';
import { DIRECTIONS } from '../policy/policy.js';
import { GROUP_MINOR_BASE } from '../kernel/names.js';

export type PeopleRow = [site: string, cn: string, uid: string, way: 'down' | 'up', group: number, amount: number];
export type ClassRow = [
  site: string,
  idx: number,
  way: 'down' | 'up',
  tcIndex: number,
  limit: number | null,
  rate: number,
  ceil: number,
  users: number,
  activeUsers: number,
];

export interface PublishedRows {
  /** key "uid\0way" */
  readonly people: Map<string, PeopleRow>;
  /** key "way\0idx" */
  readonly classes: Map<string, ClassRow>;
}

export function tablesSql(db: string): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS \`${db}\`.people_data (
      site VARCHAR(64) NOT NULL, cn VARCHAR(255) NOT NULL, uid VARCHAR(128) NOT NULL, way ENUM('down','up') NOT NULL,
      \`group\` INT NOT NULL, amount BIGINT UNSIGNED NOT NULL, PRIMARY KEY (site, uid, way)) DEFAULT CHARSET=utf8mb4`,
    `CREATE TABLE IF NOT EXISTS \`${db}\`.classes (
      site VARCHAR(64) NOT NULL, idx INT NOT NULL, way ENUM('down','up') NOT NULL, tc_index INT NOT NULL,
      \`limit\` BIGINT UNSIGNED NULL, rate BIGINT UNSIGNED NOT NULL, ceil BIGINT UNSIGNED NOT NULL,
      users INT NOT NULL, active_users INT NOT NULL, PRIMARY KEY (site, way, idx)) DEFAULT CHARSET=utf8mb4`,
  ];
}

/** The classes rows of this site for a plan (key "way\0idx"). Pure. */
export function classRows(site: string, d: Desired): Map<string, ClassRow> {
  const active = { down: new Array<number>(d.limits.length + 1).fill(0), up: new Array<number>(d.limits.length + 1).fill(0) };
  for (const u of d.users) {
    if (u.down.bytes > 0) active.down[u.down.group]!++;
    if (u.up.bytes > 0) active.up[u.up.group]!++;
  }
  const classes = new Map<string, ClassRow>();
  for (const c of d.classes) {
    classes.set(`${c.direction}\0${c.group}`, [
      site,
      c.group,
      c.direction,
      GROUP_MINOR_BASE + c.group,
      d.limits[c.group] ?? null,
      c.rateBps,
      c.ceilBps,
      c.users,
      active[c.direction][c.group] ?? 0,
    ]);
  }
  return classes;
}

/** Every row of this site for a plan (tests, full rewrites). Pure. `dnOf`: uid → owner DN. */
export function publishedRows(site: string, d: Desired, dnOf: ReadonlyMap<string, string>): PublishedRows {
  const people = new Map<string, PeopleRow>();
  for (const u of d.users) for (const way of DIRECTIONS) people.set(`${u.uid}\0${way}`, peopleRow(site, u, way, dnOf));
  return { people, classes: classRows(site, d) };
}

function peopleRow(site: string, u: UserPlan, way: 'down' | 'up', dnOf: ReadonlyMap<string, string>): PeopleRow {
  return [site, dnOf.get(u.uid) ?? '', u.uid, way, u[way].group, u[way].bytes];
}

export interface PeopleState {
  readonly users: readonly UserPlan[];
  readonly dnOf: ReadonlyMap<string, string>;
}

/**
 * people_data rows to write after `prev` (null = all). Between incremental plans a user whose
 * volumes did not change is the very same object, so the common case costs one pointer
 * comparison per user and row work only for the users that changed.
 */
export function peopleChanges(
  site: string,
  prev: PeopleState | null,
  next: PeopleState,
): { upsert: PeopleRow[]; remove: [string, 'down' | 'up'][] } {
  const upsert: PeopleRow[] = [];
  const remove: [string, 'down' | 'up'][] = [];
  const changed = (p: UserPlan | undefined, u: UserPlan, dnSame: boolean): void => {
    for (const way of DIRECTIONS) {
      if (!p || !dnSame || p[way].bytes !== u[way].bytes || p[way].group !== u[way].group) upsert.push(peopleRow(site, u, way, next.dnOf));
    }
  };
  if (!prev) {
    for (const u of next.users) changed(undefined, u, false);
    return { upsert, remove };
  }
  const a = prev.users;
  const b = next.users;
  if (prev.dnOf === next.dnOf && a.length === b.length && a.every((u, i) => u.uid === b[i]!.uid)) {
    for (let i = 0; i < b.length; i++) if (a[i] !== b[i]) changed(a[i], b[i]!, true);
    return { upsert, remove };
  }
  const before = new Map(a.map((u) => [u.uid, u]));
  for (const u of b) {
    const p = before.get(u.uid);
    before.delete(u.uid);
    if (p !== u || prev.dnOf.get(u.uid) !== next.dnOf.get(u.uid)) changed(p, u, prev.dnOf.get(u.uid) === next.dnOf.get(u.uid));
  }
  for (const uid of before.keys()) remove.push([uid, 'down'], [uid, 'up']);
  return { upsert, remove };
}

const same = (a: readonly unknown[], b: readonly unknown[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** What to write after `prev` (null = everything, replacing this site's rows). */
export function rowChanges<R extends readonly unknown[]>(
  prev: ReadonlyMap<string, R> | null,
  next: ReadonlyMap<string, R>,
): { upsert: R[]; remove: string[] } {
  if (!prev) return { upsert: [...next.values()], remove: [] };
  const upsert: R[] = [];
  for (const [k, r] of next) {
    const p = prev.get(k);
    if (!p || !same(p, r)) upsert.push(r);
  }
  const remove = [...prev.keys()].filter((k) => !next.has(k));
  return { upsert, remove };
}

const CHUNK = 500;

export class Publisher {
  private pool: mysql.Pool | null = null;
  private written: { people: PeopleState; classes: Map<string, ClassRow> } | null = null;
  private ready = false;
  private running: Promise<void> | null = null;
  private pending: { d: Desired; dir: Directory } | null = null;
  private dnCache: { dir: Directory; map: Map<string, string> } | null = null;
  private failing: string | null = null;
  /** rows written by the last successful write (tests, logs) */
  lastWrite: { people: number; classes: number; full: boolean } | null = null;

  constructor(
    private config: Config,
    private readonly log: Logger,
  ) {}

  async reconfigure(config: Config): Promise<void> {
    const p = this.config.publish;
    const n = config.publish;
    const moved =
      p.host !== n.host || p.port !== n.port || p.socket !== n.socket || p.user !== n.user || p.password !== n.password || p.db !== n.db;
    this.config = config;
    if (moved || !n.enabled) {
      await this.whenIdle(); // a write in flight finishes (or times out) on the old pool
      await this.reset();
    }
  }

  /** Queues a write of this state; returns at once. */
  publish(d: Desired, dir: Directory): void {
    if (!this.config.publish.enabled) return;
    this.pending = { d, dir };
    if (!this.running) this.running = this.drain().finally(() => (this.running = null));
  }

  /** Resolves when no write is queued or running (tests, stop). */
  async whenIdle(): Promise<void> {
    while (this.running) await this.running;
  }

  async close(): Promise<void> {
    await this.whenIdle();
    await this.reset();
  }

  private async reset(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    this.written = null;
    this.ready = false;
    await pool?.end().catch(() => undefined);
  }

  private async drain(): Promise<void> {
    while (this.pending) {
      const { d, dir } = this.pending;
      this.pending = null;
      try {
        await this.write({ users: d.users, dnOf: this.dnOf(dir) }, classRows(this.config.site.name, d));
        if (this.failing !== null) this.log.info(`publish: ${this.where()} written again (failing since ${this.failing})`);
        this.failing = null;
      } catch (e) {
        const msg = `publish: cannot write to ${this.where()}: ${(e as Error).message}; the cycles go on, the next success rewrites every row of site ${this.config.site.name}`;
        if (this.failing === null) this.log.error(msg);
        else this.log.debug(msg);
        this.failing ??= new Date().toISOString();
        this.written = null;
        // a broken pool (server restarted) is rebuilt on the next try
        await this.reset();
      }
    }
  }

  private where(): string {
    const p = this.config.publish;
    return `${p.socket ?? `${p.host}:${p.port}`}/${p.db}`;
  }

  private dnOf(dir: Directory): Map<string, string> {
    if (this.dnCache?.dir !== dir) this.dnCache = { dir, map: new Map(dir.owners.map((o) => [o.uid, o.dn])) };
    return this.dnCache.map;
  }

  private getPool(): mysql.Pool {
    if (!this.pool) {
      const p = this.config.publish;
      const d = this.config.database;
      // Written to the [database] server: its TLS settings apply ([publish] host has none of its own).
      const sameServer = p.host === d.host && p.port === d.port && p.socket === d.socket;
      this.pool = mysql.createPool({
        host: p.host,
        port: p.port,
        socketPath: p.socket ?? undefined,
        user: p.user,
        password: p.password,
        ssl: sameServer ? mysqlSsl(d) : undefined,
        connectTimeout: p.timeoutMs,
        connectionLimit: 1,
        maxIdle: 1,
        idleTimeout: 60_000,
        enableKeepAlive: true,
      });
      this.pool.on('connection', (conn) => conn.on('error', () => undefined));
    }
    return this.pool;
  }

  private async write(people: PeopleState, classRowsNow: Map<string, ClassRow>): Promise<void> {
    const p = this.config.publish;
    const db = `\`${p.db}\``;
    const site = this.config.site.name;
    const timeout = p.timeoutMs;
    const conn = await this.getPool().getConnection();
    // The whole write within the timeout: past it the connection is destroyed (the transaction rolls back).
    const timer = setTimeout(() => conn.destroy(), timeout);
    try {
      const q = (sql: string, values?: unknown[]): Promise<unknown> => conn.query({ sql, values, timeout });
      if (!this.ready) {
        await q(`CREATE DATABASE IF NOT EXISTS ${db}`).catch(() => undefined); // may exist without the right to create it
        for (const sql of tablesSql(p.db)) await q(sql);
        this.ready = true;
      }
      const full = this.written === null;
      const pch = peopleChanges(site, this.written?.people ?? null, people);
      const classes = rowChanges(this.written?.classes ?? null, classRowsNow);
      await q('START TRANSACTION');
      try {
        if (full) {
          await q(`DELETE FROM ${db}.people_data WHERE site = ?`, [site]);
          await q(`DELETE FROM ${db}.classes WHERE site = ?`, [site]);
        }
        for (let i = 0; i < pch.remove.length; i += CHUNK) {
          const keys = pch.remove.slice(i, i + CHUNK);
          await q(`DELETE FROM ${db}.people_data WHERE site = ? AND (uid, way) IN (${keys.map(() => '(?, ?)').join(', ')})`, [
            site,
            ...keys.flat(),
          ]);
        }
        for (let i = 0; i < classes.remove.length; i += CHUNK) {
          const keys = classes.remove.slice(i, i + CHUNK).map((k) => k.split('\0'));
          await q(`DELETE FROM ${db}.classes WHERE site = ? AND (way, idx) IN (${keys.map(() => '(?, ?)').join(', ')})`, [
            site,
            ...keys.flat(),
          ]);
        }
        for (let i = 0; i < pch.upsert.length; i += CHUNK) {
          const part = pch.upsert.slice(i, i + CHUNK);
          await q(
            `INSERT INTO ${db}.people_data (site, cn, uid, way, \`group\`, amount) VALUES ${part.map(() => '(?, ?, ?, ?, ?, ?)').join(', ')}
            ON DUPLICATE KEY UPDATE cn = VALUES(cn), \`group\` = VALUES(\`group\`), amount = VALUES(amount)`,
            part.flat(),
          );
        }
        for (let i = 0; i < classes.upsert.length; i += CHUNK) {
          const part = classes.upsert.slice(i, i + CHUNK);
          await q(
            `INSERT INTO ${db}.classes (site, idx, way, tc_index, \`limit\`, rate, ceil, users, active_users) VALUES ${part.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}
            ON DUPLICATE KEY UPDATE tc_index = VALUES(tc_index), \`limit\` = VALUES(\`limit\`), rate = VALUES(rate), ceil = VALUES(ceil), users = VALUES(users), active_users = VALUES(active_users)`,
            part.flat(),
          );
        }
        await q('COMMIT');
      } catch (e) {
        await q('ROLLBACK').catch(() => undefined);
        throw e;
      }
      this.written = { people, classes: classRowsNow };
      this.lastWrite = { people: pch.upsert.length + pch.remove.length, classes: classes.upsert.length + classes.remove.length, full };
    } finally {
      clearTimeout(timer);
      try {
        conn.release();
      } catch {
        /* destroyed by the timeout */
      }
    }
  }
}
