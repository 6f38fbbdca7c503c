// The published tables' shape ([publish]): their columns sized for real LDAP values, what a
// table created by an older version needs changed (ALTER TABLE … MODIFY), and which rows a
// table cannot hold. Key columns (site, uid) are utf8mb4_bin: `Alice` and `alice` are two
// rows. A uid holds up to 512 characters (twice LDAP's ub-user-identifier, RFC 4519), the
// owner's DN (cn) up to 1024. A value beyond what the table holds makes its row skipped,
// never the whole write failed. Pure: SQL text and checks; never connects.

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

type Table = 'people_data' | 'classes';

interface StringColumn {
  readonly table: Table;
  readonly column: 'site' | 'uid' | 'cn';
  /** characters */
  readonly length: number;
  /** part of the primary key: compared byte for byte */
  readonly key: boolean;
}

const STRING_COLUMNS: readonly StringColumn[] = [
  { table: 'people_data', column: 'site', length: 64, key: true },
  { table: 'people_data', column: 'uid', length: 512, key: true },
  { table: 'people_data', column: 'cn', length: 1024, key: false },
  { table: 'classes', column: 'site', length: 64, key: true },
];
const KEY_COLLATION = 'utf8mb4_bin';

const col = (table: Table, column: string): StringColumn => STRING_COLUMNS.find((c) => c.table === table && c.column === column)!;
const columnSql = (c: StringColumn, length = c.length): string =>
  `${c.column} VARCHAR(${length}) CHARACTER SET utf8mb4${c.key ? ` COLLATE ${KEY_COLLATION}` : ''} NOT NULL`;

export function tablesSql(db: string): string[] {
  const p = (c: string): string => columnSql(col('people_data', c));
  return [
    `CREATE TABLE IF NOT EXISTS \`${db}\`.people_data (
      ${p('site')}, ${p('cn')}, ${p('uid')}, way ENUM('down','up') NOT NULL,
      \`group\` INT NOT NULL, amount BIGINT UNSIGNED NOT NULL, PRIMARY KEY (site, uid, way)) DEFAULT CHARSET=utf8mb4`,
    `CREATE TABLE IF NOT EXISTS \`${db}\`.classes (
      ${columnSql(col('classes', 'site'))}, idx INT NOT NULL, way ENUM('down','up') NOT NULL, tc_index INT NOT NULL,
      \`limit\` BIGINT UNSIGNED NULL, rate BIGINT UNSIGNED NOT NULL, ceil BIGINT UNSIGNED NOT NULL,
      users INT NOT NULL, active_users INT NOT NULL, PRIMARY KEY (site, way, idx)) DEFAULT CHARSET=utf8mb4`,
  ];
}

/** One column of an existing table, as information_schema.COLUMNS tells it. */
export interface ColumnInfo {
  readonly table: string;
  readonly column: string;
  /** lowercase: varchar, char, text, … */
  readonly dataType: string;
  /** CHARACTER_MAXIMUM_LENGTH: characters for (VAR)CHAR, bytes for the TEXT types */
  readonly length: number | null;
  readonly charset: string | null;
  readonly collation: string | null;
}

/** Reads the string columns of both tables; one parameter: the database. */
export const COLUMNS_SQL = `SELECT TABLE_NAME AS t, COLUMN_NAME AS c, DATA_TYPE AS type, CHARACTER_MAXIMUM_LENGTH AS len,
  CHARACTER_SET_NAME AS cs, COLLATION_NAME AS coll FROM information_schema.COLUMNS
  WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN ('people_data', 'classes')`;

export function columnInfos(rows: readonly Record<string, unknown>[]): ColumnInfo[] {
  const s = (v: unknown): string | null => (typeof v === 'string' ? v : Buffer.isBuffer(v) ? v.toString() : null);
  return rows.map((r) => ({
    table: s(r['t']) ?? '',
    column: s(r['c']) ?? '',
    dataType: (s(r['type']) ?? '').toLowerCase(),
    length: r['len'] === null || r['len'] === undefined ? null : Number(r['len']),
    charset: s(r['cs']),
    collation: s(r['coll']),
  }));
}

export interface Migration {
  readonly table: Table;
  readonly sql: string;
  /** "uid varchar(128) utf8mb4_general_ci -> varchar(512) utf8mb4_bin", per column changed */
  readonly changes: readonly string[];
}

/**
 * ALTER TABLE statements bringing existing tables to the current columns: a string column
 * that is shorter, not utf8mb4, or (a key) not utf8mb4_bin is modified; a longer VARCHAR
 * keeps its length. A column missing is left to the INSERT to report.
 */
export function migrations(db: string, cols: readonly ColumnInfo[]): Migration[] {
  const out: Migration[] = [];
  for (const table of ['people_data', 'classes'] as const) {
    const mods: string[] = [];
    const changes: string[] = [];
    for (const want of STRING_COLUMNS.filter((c) => c.table === table)) {
      const have = cols.find((c) => c.table === table && c.column === want.column);
      if (!have) continue;
      const varchar = have.dataType === 'varchar';
      const fits =
        varchar && (have.length ?? 0) >= want.length && have.charset === 'utf8mb4' && (!want.key || have.collation === KEY_COLLATION);
      if (fits) continue;
      const length = Math.max(want.length, varchar ? (have.length ?? 0) : 0);
      mods.push(`MODIFY ${columnSql(want, length)}`);
      changes.push(
        `${want.column} ${have.dataType}(${have.length ?? '?'}) ${have.collation ?? have.charset ?? '?'} -> varchar(${length}) ${want.key ? KEY_COLLATION : 'utf8mb4'}`,
      );
    }
    if (mods.length > 0) out.push({ table, sql: `ALTER TABLE \`${db}\`.${table} ${mods.join(', ')}`, changes });
  }
  return out;
}

/** What a string column holds. */
export interface ColumnLimit {
  readonly max: number;
  readonly unit: 'characters' | 'bytes';
  readonly charset: string;
}

export interface PeopleLimits {
  readonly uid: ColumnLimit;
  readonly cn: ColumnLimit;
}

/** The limits of the tables as created or migrated by this version. */
export const PEOPLE_LIMITS: PeopleLimits = {
  uid: { max: col('people_data', 'uid').length, unit: 'characters', charset: 'utf8mb4' },
  cn: { max: col('people_data', 'cn').length, unit: 'characters', charset: 'utf8mb4' },
};

/** The limits of people_data as it is (a migration refused keeps the older, narrower columns). */
export function peopleLimits(cols: readonly ColumnInfo[]): PeopleLimits {
  const of = (column: 'uid' | 'cn'): ColumnLimit => {
    const c = cols.find((x) => x.table === 'people_data' && x.column === column);
    if (!c || c.length === null) return PEOPLE_LIMITS[column];
    const chars = c.dataType === 'varchar' || c.dataType === 'char';
    return { max: c.length, unit: chars ? 'characters' : 'bytes', charset: c.charset ?? 'utf8mb4' };
  };
  return { uid: of('uid'), cn: of('cn') };
}

function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Why `value` does not fit the column (null: it fits). */
function misfit(label: string, value: string, lim: ColumnLimit): string | null {
  const n = lim.unit === 'bytes' ? Buffer.byteLength(value) : codePoints(value);
  if (n > lim.max) return `${label} has ${n} ${lim.unit}, the column holds ${lim.max}`;
  if ((lim.charset === 'utf8mb3' || lim.charset === 'utf8') && /[\u{10000}-\u{10FFFF}]/u.test(value))
    return `${label} has characters beyond U+FFFF, which the column's charset ${lim.charset} cannot hold`;
  if (lim.charset === 'latin1' && [...value].some((ch) => ch.codePointAt(0)! > 0xff))
    return `${label} has characters the column's charset latin1 cannot hold`;
  return null;
}

const MAX_U64 = 2 ** 64;
const unsigned = (n: number | null): boolean => n !== null && Number.isFinite(n) && n >= 0 && n < MAX_U64;
const int32 = (n: number): boolean => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31;

/** Why a people_data row cannot be stored (null: it can); keyFits: its (uid, way) could name a stored row. */
export function peopleRowProblem(r: PeopleRow, lim: PeopleLimits): { why: string; keyFits: boolean } | null {
  const [, cn, uid, , group, amount] = r;
  const key = misfit('uid', uid, lim.uid);
  if (key) return { why: key, keyFits: false };
  const why =
    misfit("cn (the owner's DN)", cn, lim.cn) ??
    (int32(group) ? null : `group ${group} is not an INT`) ??
    (unsigned(amount) ? null : `amount ${amount} is not a BIGINT UNSIGNED`);
  return why ? { why, keyFits: true } : null;
}

/** Why a classes row cannot be stored (null: it can). */
export function classRowProblem(r: ClassRow): string | null {
  const [, idx, , tcIndex, limit, rate, ceil, users, activeUsers] = r;
  for (const [name, v] of [
    ['idx', idx],
    ['tc_index', tcIndex],
    ['users', users],
    ['active_users', activeUsers],
  ] as const)
    if (!int32(v)) return `${name} ${v} is not an INT`;
  if (limit !== null && !unsigned(limit)) return `limit ${limit} is not a BIGINT UNSIGNED`;
  if (!unsigned(rate)) return `rate ${rate} is not a BIGINT UNSIGNED`;
  if (!unsigned(ceil)) return `ceil ${ceil} is not a BIGINT UNSIGNED`;
  return null;
}

/** A uid for a log line: a long one shortened (its length is given beside it). */
export function showUid(uid: string): string {
  const n = codePoints(uid);
  return n > 64 ? `"${[...uid].slice(0, 32).join('')}…" (${n} characters)` : `"${uid}"`;
}
