// Published state for the campus site ([publish]): after each applied cycle, the
// per-user groups and volumes (`people_data`) and the classes (`classes`) of this site
// ([site] name) in a MySQL database, in one transaction, only the rows that changed
// since the last successful write (the first write of a process, and the first after a
// failure, rewrites all of this site's rows). Tables are created when missing, and a table
// of an older version migrated (src/publish/schema.ts); a row the table cannot hold is
// skipped, named once in the log, and the others are written. Runs
// beside the cycle loop, never in it: a slow or dead database costs the cycles nothing
// (one write at a time, the newest state wins), one error line, one recovery line.
// The backup of an HA pair writes nothing (setWriting). Owns its own connection pool (mysql2);
// never reads the netacct tables.

import mysql from 'mysql2/promise';
import { mysqlSsl } from '../netacct/mysqltls.js';
import {
  COLUMNS_SQL,
  PEOPLE_LIMITS,
  classRowProblem,
  columnInfos,
  migrations,
  peopleLimits,
  peopleRowProblem,
  showUid,
  tablesSql,
  type ClassRow,
  type PeopleLimits,
  type PeopleRow,
} from './schema.js';
import type { Config } from '../config/config.js';
import type { Logger } from '../log.js';
import type { Desired } from '../plan/desired.js';
import type { Directory } from '../sources/types.js';
import { classRows, peopleChanges, rowChanges, type PeopleState } from './rows.js';

const CHUNK = 500;

export class Publisher {
  private pool: mysql.Pool | null = null;
  private written: { people: PeopleState; classes: Map<string, ClassRow> } | null = null;
  private ready = false;
  private running: Promise<void> | null = null;
  private pending: { d: Desired; dir: Directory } | null = null;
  private dnCache: { dir: Directory; map: Map<string, string> } | null = null;
  private failing: string | null = null;
  /** what people_data holds (read at connection, after any migration) */
  private limits: PeopleLimits = PEOPLE_LIMITS;
  /** rows that cannot be stored, named once: "people\0uid" or "classes\0way\0idx" -> why */
  private readonly skipped = new Map<string, string>();
  /** the tables whose migration was refused, named once ('' = none) */
  private refused = '';
  /** false on the backup of an HA pair: nothing is written */
  private writing = true;
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
      p.host !== n.host ||
      p.port !== n.port ||
      p.socket !== n.socket ||
      p.user !== n.user ||
      p.password !== n.password ||
      p.db !== n.db ||
      p.tls !== n.tls ||
      p.caFile !== n.caFile;
    this.config = config;
    if (moved || !n.enabled) {
      await this.whenIdle(); // a write in flight finishes (or times out) on the old pool
      await this.reset();
    }
  }

  /**
   * The HA role (src/ha/role.ts): the backup of a pair queues nothing (the master writes the
   * site's rows); a gateway that becomes master rewrites every row of the site at its next
   * write (the other gateway wrote them meanwhile).
   */
  setWriting(on: boolean): void {
    if (on === this.writing) return;
    this.writing = on;
    this.pending = null;
    if (on) this.written = null;
  }

  /** Queues a write of this state; returns at once. */
  publish(d: Desired, dir: Directory): void {
    if (!this.config.publish.enabled || !this.writing) return;
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
      // tls/caFile: [publish]'s with a host of its own, else [database]'s (src/config/config.ts)
      this.pool = mysql.createPool({
        host: p.host,
        port: p.port,
        socketPath: p.socket ?? undefined,
        user: p.user,
        password: p.password,
        ssl: mysqlSsl(p),
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

  /**
   * Brings the tables of an older version to the current columns. A refused ALTER (no right)
   * is said once; the rows are then checked against the columns as they are.
   */
  private async migrate(q: (sql: string, values?: unknown[]) => Promise<unknown>): Promise<PeopleLimits> {
    const p = this.config.publish;
    const read = async (): Promise<ReturnType<typeof columnInfos>> =>
      columnInfos(((await q(COLUMNS_SQL, [p.db])) as [Record<string, unknown>[]])[0]);
    const todo = migrations(p.db, await read());
    if (todo.length === 0) return PEOPLE_LIMITS;
    const failed: { name: string; sql: string; changes: string; error: string }[] = [];
    for (const m of todo) {
      const name = `\`${p.db}\`.${m.table}`;
      try {
        await q(m.sql);
        this.log.info(`publish: migrated ${name}: ${m.changes.join(', ')}`);
      } catch (e) {
        failed.push({ name, sql: m.sql, changes: m.changes.join(', '), error: (e as Error).message });
      }
    }
    const key = failed.map((f) => f.name).join(' ');
    if (key !== '' && key !== this.refused) {
      this.log.error(
        `publish: cannot migrate ${failed.map((f) => `${f.name} (${f.changes})`).join(', ')}: ${failed[0]!.error}; the rows are written to the columns as they are ` +
          `(longer values skipped, keys compared as their collation does); grant ALTER on \`${p.db}\` to ${p.user} or run: ${failed.map((f) => f.sql).join('; ')}`,
      );
    }
    this.refused = key;
    return peopleLimits(await read());
  }

  /** The rows people_data can hold; each other one named once while it stays so, its stale row removed. */
  private storablePeople(rows: PeopleRow[], remove: [string, 'down' | 'up'][]): PeopleRow[] {
    const ok: PeopleRow[] = [];
    const bad = new Map<string, string>();
    for (const r of rows) {
      const problem = peopleRowProblem(r, this.limits);
      if (!problem) {
        ok.push(r);
        continue;
      }
      if (!bad.has(r[2])) bad.set(r[2], problem.why);
      if (problem.keyFits) remove.push([r[2], r[3]]);
    }
    for (const r of ok) if (!bad.has(r[2])) this.skipped.delete(`people\0${r[2]}`);
    for (const [uid] of remove) if (!bad.has(uid)) this.skipped.delete(`people\0${uid}`);
    for (const [uid, why] of bad) {
      if (this.skipped.get(`people\0${uid}`) === why) continue;
      this.skipped.set(`people\0${uid}`, why);
      this.log.warn(`publish: people_data rows of uid ${showUid(uid)} not written: ${why}; the other rows are written (said once)`);
    }
    return ok;
  }

  private storableClasses(rows: ClassRow[], remove: string[]): ClassRow[] {
    const ok: ClassRow[] = [];
    for (const r of rows) {
      const key = `classes\0${r[2]}\0${r[1]}`;
      const why = classRowProblem(r);
      if (!why) {
        this.skipped.delete(key);
        ok.push(r);
        continue;
      }
      remove.push(`${r[2]}\0${r[1]}`);
      if (this.skipped.get(key) === why) continue;
      this.skipped.set(key, why);
      this.log.warn(`publish: classes row ${r[2]} ${r[1]} not written: ${why}; the other rows are written (said once)`);
    }
    return ok;
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
        this.limits = await this.migrate(q);
        this.ready = true;
      }
      const full = this.written === null;
      const pch = peopleChanges(site, this.written?.people ?? null, people);
      pch.upsert = this.storablePeople(pch.upsert, pch.remove);
      const classes = rowChanges(this.written?.classes ?? null, classRowsNow);
      classes.upsert = this.storableClasses(classes.upsert, classes.remove);
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
