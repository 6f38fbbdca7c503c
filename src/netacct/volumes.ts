// The netacct volume source (mysql2). Owns the pool (connect and query timeouts),
// the parameterized queries per table per cycle, the cache of closed hour buckets,
// and the sanitation of the rows.
// Identifiers come from the validated config only; values are always parameters.
// Hour buckets are compared in the DATABASE server's time zone: the reset instant is
// sent as a Unix timestamp and turned into server-local time by FROM_UNIXTIME.
//
// Cache: the buckets in [reset, B), B = the start of the hour bucket of NOW() - 15 minutes as
// the server tells it (a 'YYYY-MM-DD HH:00:00' string sent back as a parameter: the previous
// hour until HH:15, so that nacctd's last flushes into it (every 300 s) are still read, then
// the current hour), are summed per IP once;
// each cycle reads only the buckets >= GREATEST(reset, B) and adds the cached sums. When the
// hour turns, only the hour that closed is read and added; the whole closed part is re-read
// when the reset changes and every [database] closedRefresh. Rows come back raw (no GROUP BY:
// MariaDB's temporary table for GROUP BY ip costs more than summing in JS) and are streamed.
//
// Open hours, by row id ([database] idColumn): once held, a cycle reads in one statement the
// rows added since (id > the largest held) and the server's signature of the rows held; the
// signature of the rows held → held sums + rows added (the same part, hence the same Usage,
// when none), and the Usage names the ids that changed (`changes`) so the planner looks at
// their users only. A held row that changed (nacctd updates in place), went or came late
// changes the signature: the open hours are read whole. Without an id column: read whole when
// the server's signature changed.
//
// Directory filter (setDirectory, as the daemon's Sources does): rows of IPs that no machine of
// the directory holds are ignored before their IP is interned in the process-wide ipIndex, so
// rotating or spoofed addresses in netacct cost no memory beyond the day's rows. When the
// directory gains an IP the cached sums were read without it, so they are dropped (the next
// fetch reads everything again); an IP that leaves stays counted until the reset. At the daily
// reset (the reset instant changes) the index is rebuilt with the directory's IPs only; every
// cache keyed by id is dropped with it. Without a filter (bench, tools) every valid IP is
// counted, as before.
//
// Off-peak window ([qos] offPeakWeight < 1, volumes-window.ts): every query also returns the Unix
// time of the row's hour bucket, and each row goes into the sums at its hour's weight (the
// counted bytes, what the groups use), its raw bytes kept beside (Usage.raw). The signatures stay
// on raw bytes (the server computes them). Without a window nothing here changes.
//
// Over 400 lines: the streamed reading, the closed-hours cache, the reads by id, the signature
// and the directory filter all work on the same per-table state of one VolumeSource; the SQL
// text is in volumes-sql.ts, the sums (typed arrays, parts, their Usage) in volumes-parts.ts,
// a row's IP and byte counts in volumes-rows.ts.

import mysql from 'mysql2/promise';
import { mysqlSsl, type MysqlSsl } from './mysqltls.js';
import type { Config } from '../config/config.js';
import type { Logger } from '../log.js';
import { ipIndex } from '../net/ipindex.js';
import { SourceUnavailableError, type Directory, type Usage } from '../sources/types.js';
import { DirectoryIpFilter } from './ipfilter.js';
import {
  BOUNDARY_SQL,
  appendQuery,
  closedVolumesQuery,
  recentRowsQuery,
  recentVolumesQuery,
  rowsSelect,
  signatureQuery,
} from './volumes-sql.js';
import { Dense, PartBuilder, emptyPart, partOf, signatureOf, usageOfParts, type Part } from './volumes-parts.js';
import { RowParser } from './volumes-rows.js';
import { HourWeights } from './volumes-window.js';
import type { QosConfig } from '../config/types.js';

/** Lower bound of a closed part read from the reset on (below any DATETIME the reset can be). */
const MIN_BUCKET = '1000-01-01 00:00:00';

interface Closed extends Part {
  readonly resetUnix: number;
  /** the part covers [reset, boundary) */
  readonly boundary: string;
  /** now (ms) of the last full read */
  readonly readAt: number;
}

export class VolumeSource {
  private pool: mysql.Pool | null = null;
  /** closed part per table */
  private readonly closed = new Map<string, Closed>();
  /**
   * The open hours' part per table, with its signature; `changed`: it differed from the read
   * before. After a read that found nothing changed, the next cycle asks the server for the
   * signature first (one row, ~0.19 s at 320 k rows instead of 0.4 s to read them) and reuses
   * the part when it is the same: nacctd flushes every 300 s, so most cycles between flushes
   * read no row. After a change, rows are read at once (a change often comes with more).
   */
  private readonly recent = new Map<string, { key: string; part: Part; sig: string; changed: boolean }>();
  private last: { parts: readonly Part[]; usage: Usage; total: Dense } | null = null;
  /**
   * During one fetch: the parts built as an earlier part plus some rows, with the ids those rows
   * went to (the Usage then says which ids changed). Cleared by every fetch: never a chain of parts.
   */
  private readonly derived = new Map<Part, { from: Part; ids: readonly number[] }>();
  /** the rows' IPs parsed and the rows sanitised, across fetches (volumes-rows.ts) */
  private readonly rows = new RowParser(() => this.filter);
  private lastRows = 0;
  /** the IPs counted (those of the directory given); null = every valid IP (no directory given) */
  private filter: DirectoryIpFilter | null = null;
  /** the ipIndex generation the caches hold ids of */
  private generation = ipIndex.generation;
  private lastResetUnix: number | null = null;

  /** [database] tls: mysql2's ssl options, the CA read now (a reload fails before switching) */
  private readonly ssl: MysqlSsl | undefined;
  /** the off-peak weights of hour buckets; null = no window (rows count whole, no hour column) */
  private readonly weights: HourWeights | null;

  /**
   * `serverBoundary`: B as the server computes it (BOUNDARY_SQL) unless given; tests inject a
   * stepped one to walk B through hours the real clock would take hours to reach.
   */
  constructor(
    private readonly config: Pick<Config, 'database'> & { readonly qos?: Pick<QosConfig, 'offPeak' | 'timezone'> },
    private readonly log: Logger,
    private readonly serverBoundary: (() => Promise<string>) | null = null,
  ) {
    this.ssl = mysqlSsl(config.database);
    const q = config.qos;
    this.weights = q?.offPeak ? new HourWeights(q.offPeak, q.timezone) : null;
  }

  /** A new builder: weighted (raw bytes kept beside) when a window is on. */
  private builder(): PartBuilder {
    return new PartBuilder(undefined, false, this.weights !== null);
  }

  private getPool(): mysql.Pool {
    if (!this.pool) {
      const d = this.config.database;
      this.pool = mysql.createPool({
        host: d.host,
        port: d.port,
        socketPath: d.socket ?? undefined,
        user: d.user,
        password: d.password,
        database: d.db,
        ssl: this.ssl,
        connectTimeout: d.connectTimeoutMs,
        connectionLimit: 2,
        maxIdle: 2,
        idleTimeout: 60_000,
        enableKeepAlive: true,
        rowsAsArray: true,
        supportBigNumbers: true,
        bigNumberStrings: false,
      });
      // A broken idle connection must not crash the process.
      this.pool.on('connection', (conn) => conn.on('error', () => undefined));
    }
    return this.pool;
  }

  /**
   * Counts the IPs of the machines of `directory` from now on (interning them; those of earlier
   * directories stay counted until the reset). Returns true when it holds an IP the cached sums
   * were read without: they are dropped and the next fetch reads every row.
   */
  setDirectory(directory: Directory): boolean {
    if (this.filter?.directory === directory) return false;
    this.syncGeneration();
    const added = this.filter === null ? ((this.filter = new DirectoryIpFilter(directory)), true) : this.filter.add(directory);
    if (added) this.dropCaches();
    return added;
  }

  /** true when every IP of `directory` is counted by the current filter (or no filter is set). */
  covers(directory: Directory): boolean {
    return this.filter === null || this.filter.covers(directory);
  }

  /** Every cache holding rows or ids: the next fetch reads everything. */
  private dropCaches(): void {
    this.closed.clear();
    this.recent.clear();
    this.last = null;
    this.rows.clear();
  }

  /** The index was rebuilt (by this source or another): ids held here mean nothing now. */
  private syncGeneration(): void {
    if (this.generation === ipIndex.generation) return;
    this.generation = ipIndex.generation;
    this.dropCaches();
    // ids changed: the filter starts again from the directory in force
    if (this.filter) this.filter = new DirectoryIpFilter(this.filter.directory);
  }

  private failed(table: string, e: unknown): never {
    const d = this.config.database;
    const err = e as { code?: string; message?: string };
    throw new SourceUnavailableError(
      'mysql',
      `volumes query on ${d.db}.${table} at ${d.socket ?? `${d.host}:${d.port}`} failed: ${err.code ?? ''} ${err.message ?? String(e)}`.replace(
        /\s+/g,
        ' ',
      ),
      { cause: e },
    );
  }

  /**
   * Streams the rows of `sql` into `into`: no array of all rows is built. Columns: ip, down, up,
   * then (`withId`) the row id. `tagged` (appendQuery): a first column 0 for such a row, 1 for the
   * signature row, whose numbers go to `onSignature`.
   */
  private scan(
    sql: string,
    values: unknown[],
    into: PartBuilder | (() => PartBuilder),
    opts: { withId?: boolean; onSignature?: (sig: string) => void } = {},
  ): Promise<void> {
    const d = this.config.database;
    const tagged = opts.onSignature !== undefined;
    let b = typeof into === 'function' ? null : into;
    const builder = into as () => PartBuilder;
    return new Promise((resolve, reject) => {
      let failed = false;
      const query = this.getPool().pool.query({ sql, values, timeout: d.timeoutMs, rowsAsArray: true });
      query.on('result', (row: unknown) => {
        let r = row as unknown[];
        if (tagged) {
          if (Number(r[0]) === 1) {
            opts.onSignature!(
              r
                .slice(1, 6)
                .map((x) => Number(x))
                .join(' '),
            );
            return;
          }
          r = r.slice(1);
        }
        // with a window, the hour bucket's Unix time is the last column
        this.rows.row((b ??= builder()), r[0], r[1], r[2], this.weights ? this.weights.of(Number(r[r.length - 1])) : 1);
        if (opts.withId || tagged) {
          const id = Number(r[3]);
          // an id beyond 2^53 cannot be compared exactly: no incremental read then (maxId NaN)
          if (!Number.isSafeInteger(id)) b.maxId = NaN;
          else if (id > b.maxId) b.maxId = id;
        }
      });
      query.on('error', (e: unknown) => {
        if (!failed) reject(e instanceof Error ? e : new Error(String(e)));
        failed = true;
      });
      query.on('end', () => {
        if (!failed) resolve();
      });
    });
  }

  private async query<T>(table: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (e) {
      await this.close();
      this.failed(table, e);
    }
  }

  /** B: the start of the hour bucket of NOW() - 15 min, server local time ('YYYY-MM-DD HH:00:00'). */
  private async boundary(): Promise<string> {
    if (this.serverBoundary) return this.serverBoundary();
    const [res] = await this.getPool().query({ sql: BOUNDARY_SQL, timeout: this.config.database.timeoutMs });
    return String((res as unknown[][])[0]![0]);
  }

  /** Bytes per canonical IP since resetAt (both tables when table6 is set). */
  async fetch(resetAt: Date, now: Date = new Date()): Promise<Usage> {
    const resetUnix = Math.floor(resetAt.getTime() / 1000);
    // The daily reset: the index starts again from the directory's IPs (addresses that left the
    // directory during the day go); every id-keyed cache here is dropped by syncGeneration.
    if (this.filter && this.lastResetUnix !== null && resetUnix !== this.lastResetUnix) ipIndex.rebuild(this.filter.ips());
    this.lastResetUnix = resetUnix;
    this.syncGeneration();
    this.derived.clear();
    try {
      return await this.fetchParts(resetAt, resetUnix, now);
    } finally {
      this.derived.clear();
    }
  }

  private async fetchParts(resetAt: Date, resetUnix: number, now: Date): Promise<Usage> {
    const d = this.config.database;
    const tables = [d.table, ...(d.table6 ? [d.table6] : [])];
    const parts: Part[] = [];
    let rows = 0;
    if (d.closedRefreshMs === 0) {
      this.closed.clear();
      for (const table of tables) {
        const b = this.builder();
        await this.query(table, () => this.scan(rowsSelect(d, table, this.weights !== null), [resetUnix], b));
        parts.push(partOf(b), emptyPart(this.weights !== null));
        rows += b.rows;
      }
    } else {
      const boundary = await this.query(d.table, () => this.boundary());
      for (const table of tables) {
        const closed = await this.closedPart(table, resetUnix, boundary, now.getTime());
        const recent = await this.recentPart(table, resetUnix, boundary);
        parts.push(closed, recent);
        rows += closed.rows + recent.rows;
      }
      // Nothing read differs from the last fetch: the same Usage object (the planner sees it).
      const last = this.last;
      if (
        last &&
        last.parts.length === parts.length &&
        last.parts.every((p, i) => p === parts[i]) &&
        last.usage.resetAt === resetAt.toISOString()
      ) {
        return last.usage;
      }
    }
    // bounded: IPs that left the table do not stay forever
    if (this.rows.size > 4 * Math.max(this.lastRows, rows, 1000)) this.rows.clear();
    this.lastRows = rows;
    const { usage, total } = usageOfParts(
      parts,
      tables.length,
      resetAt,
      now,
      this.changedSinceLast(parts, resetAt),
      this.weights !== null,
      this.log,
    );
    this.last = d.closedRefreshMs === 0 ? null : { parts, usage, total };
    return usage;
  }

  /**
   * The ids whose bytes can differ between the last fetch's total and `parts`, when every part
   * that is not the last one's own was built from it plus rows (null: anything may differ).
   */
  private changedSinceLast(parts: readonly Part[], resetAt: Date): { last: NonNullable<VolumeSource['last']>; ids: number[] } | null {
    const last = this.last;
    if (!last || last.parts.length !== parts.length || last.usage.resetAt !== resetAt.toISOString()) return null;
    if (last.total.generation !== ipIndex.generation) return null;
    const ids: number[] = [];
    for (let i = 0; i < parts.length; i++) {
      if (parts[i] === last.parts[i]) continue;
      const dv = this.derived.get(parts[i]!);
      if (!dv || dv.from !== last.parts[i]) return null;
      for (const id of dv.ids) ids.push(id);
    }
    return { last, ids };
  }

  /**
   * The rows of the open hours of `table`. With an id column, once they are held: one statement
   * reads the rows added since (id > the largest held) and the server's signature of the held
   * ones; when that signature is the one of the rows held, the part is the held one plus the rows
   * added (the same part when none was). Otherwise (no id column, a row held changed, new key):
   * read whole, or kept when the server's signature says nothing changed since a read that found
   * nothing new.
   */
  private async recentPart(table: string, resetUnix: number, boundary: string): Promise<Part> {
    const d = this.config.database;
    const key = `${resetUnix}|${boundary}`;
    const prev = this.recent.get(table);
    const idCol = d.columns.id;
    if (idCol !== null && prev && prev.key === key && Number.isSafeInteger(prev.part.maxId)) {
      const held = prev.part;
      let added: PartBuilder | null = null;
      let server: string | null = null;
      await this.query(table, () =>
        this.scan(
          appendQuery(d, table, idCol, this.weights !== null),
          [resetUnix, boundary, held.maxId, resetUnix, boundary, held.maxId],
          () => (added = new PartBuilder(held, true)),
          {
            onSignature: (sig) => (server = sig),
          },
        ),
      );
      if (server === signatureOf(held)) {
        if (added === null) return held;
        const part = partOf(added);
        this.derived.set(part, { from: held, ids: (added as PartBuilder).touched! });
        this.recent.set(table, { key, part, sig: signatureOf(part), changed: true });
        return part;
      }
      // a row held changed (or went): read them all again
    } else if (prev && prev.key === key && !prev.changed) {
      const [res] = await this.query(table, () =>
        this.getPool().query({ sql: signatureQuery(d, table), values: [resetUnix, boundary], timeout: d.timeoutMs }),
      );
      const sig = ((res as unknown[][])[0] ?? []).map((x) => Number(x)).join(' ');
      if (sig === prev.sig) return prev.part;
    }
    const b = this.builder();
    const hour = this.weights !== null;
    await this.query(table, () =>
      idCol !== null
        ? this.scan(recentRowsQuery(d, table, idCol, hour), [resetUnix, boundary], b, { withId: true })
        : this.scan(recentVolumesQuery(d, table, hour), [resetUnix, boundary], b),
    );
    const sig = signatureOf(b);
    const part = partOf(b);
    if (prev) this.derive(part, prev.part);
    this.recent.set(table, { key, part, sig, changed: !prev || prev.key !== key || prev.sig !== sig });
    return part;
  }

  /** `part`, read whole, against `from`, the part it replaces: the ids whose bytes differ (a pass over the ids, not the rows). */
  private derive(part: Part, from: Part): void {
    const ids = part.dense.diffIds(from.dense);
    if (ids) this.derived.set(part, { from, ids });
  }

  /** The closed part of `table` for this reset and boundary: cached, advanced by the hours that closed, or read whole. */
  private async closedPart(table: string, resetUnix: number, boundary: string, nowMs: number): Promise<Closed> {
    const d = this.config.database;
    const sql = closedVolumesQuery(d, table, this.weights !== null);
    const c = this.closed.get(table);
    const fresh = c !== undefined && c.resetUnix === resetUnix && nowMs >= c.readAt && nowMs - c.readAt < d.closedRefreshMs;
    if (fresh && c.boundary === boundary) return c;
    let next: Closed;
    if (fresh && boundary > c.boundary) {
      // the hour turned: add the bucket(s) that closed since
      const b = new PartBuilder(c, true);
      await this.query(table, () => this.scan(sql, [resetUnix, c.boundary, boundary], b));
      next = { ...partOf(b), resetUnix, boundary, readAt: c.readAt };
      this.derived.set(next, { from: c, ids: b.touched! });
    } else {
      this.closed.delete(table);
      const b = this.builder();
      await this.query(table, () => this.scan(sql, [resetUnix, MIN_BUCKET, boundary], b));
      next = { ...partOf(b), resetUnix, boundary, readAt: nowMs };
      if (c) this.derive(next, c);
    }
    this.closed.set(table, next);
    return next;
  }

  async close(): Promise<void> {
    const p = this.pool;
    this.pool = null;
    if (p) await p.end().catch(() => undefined);
  }
}
