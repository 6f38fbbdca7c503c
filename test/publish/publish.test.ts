// The published tables against a real MariaDB (issue 20, finding 6): a row that cannot be
// stored is skipped with one log line and the others are written; keys are case-sensitive
// (`Alice` and `alice` are two rows); a table created by an older version is migrated (or,
// without the ALTER right, written as it is, longer values skipped); a separate [publish]
// host is reached over TLS, certificate verified, like [database].
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMariadb, type MariadbServer } from '../../sandbox/mariadb.js';
import { makeTlsFiles, type TlsFiles } from '../../sandbox/slapd.js';
import { sandboxConf } from '../../sandbox/conf.js';
import { parseConfig, type Config } from '../../src/config/config.js';
import { MemoryLogger } from '../../src/log.js';
import { Publisher } from '../../src/publish/publish.js';
import type { Desired } from '../../src/plan/desired.js';
import type { Directory } from '../../src/sources/types.js';

const SITE = 'gw-pub';
const BASE = 'ou=people,dc=example,dc=org';

let db: MariadbServer;
let tlsDb: MariadbServer;
let dir: string;
let ours: TlsFiles;

function configFor(publish: string, opts: { database?: string } = {}): Config {
  return parseConfig(
    sandboxConf({
      ldapUrl: 'ldap://127.0.0.1:9',
      db: { host: db.host, port: db.port, user: db.user, password: db.password },
      dir,
      database: opts.database,
      publish: `enabled = 1\ntimeout = 5s\n${publish}`,
      site: `name = ${SITE}`,
    }),
    'publish.conf',
  );
}

type U = { uid: string; dn?: string; down: number; up?: number };

const plan = (users: U[]): Desired => ({
  at: '',
  rule: null,
  resetAt: '',
  totals: { down: 1e8, up: 1e8 },
  limits: [1000],
  users: users.map((u) => ({ uid: u.uid, ips: [], down: { bytes: u.down, group: 0 }, up: { bytes: u.up ?? 0, group: 0 } })),
  classes: (['down', 'up'] as const).flatMap((direction) =>
    [0, 1].map((group) => ({ direction, group, users: 1, rateBps: 1000 * (group + 1), ceilBps: 1e8 })),
  ),
  sets: [],
  skipped: [],
  firewall: null,
  ipCount: { inet: 0, inet6: 0 },
  version: {},
  delta: null,
});

const directory = (users: U[]): Directory => ({
  owners: users.map((u) => ({
    uid: u.uid,
    dn: u.dn ?? `uid=${u.uid},${BASE}`,
    kind: 'person' as const,
    endInternet: null,
    coupure: false,
    ban: [],
    cotiz: [],
  })),
  machines: [],
  skipped: [],
  fetchedAt: '',
});

async function publish(p: Publisher, users: U[]): Promise<void> {
  p.publish(plan(users), directory(users));
  await p.whenIdle();
}

/** This site's people_data rows as "uid way amount cn-length", sorted (JS order: case-sensitive). */
async function rows(server: MariadbServer, database = 'qos', site = SITE): Promise<string[]> {
  const r = await server.select<{ uid: string; way: string; amount: number; cn: string }>(
    `SELECT uid, way, amount, cn FROM ${database}.people_data WHERE site = ?`,
    [site],
  );
  return r.map((x) => `${x.uid} ${x.way} ${Number(x.amount)} ${x.cn.length}`).sort();
}

/** A DN of exactly `n` characters for uid. */
const dnOf = (uid: string, n: number): string => {
  const head = `uid=${uid},ou=`;
  const tail = `,${BASE}`;
  return head + 'x'.repeat(n - head.length - tail.length) + tail;
};

const LONG_UID = 'u'.repeat(600);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rq-publish-'));
  ours = await makeTlsFiles(dir);
  [db, tlsDb] = await Promise.all([startMariadb({ timezone: '+00:00' }), startMariadb({ timezone: '+00:00', tls: ours })]);
});

after(async () => {
  await Promise.allSettled([db?.stop(), tlsDb?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

test('a row that cannot be stored is skipped with one log line (not repeated), the others are written; a 300-character DN is stored', async () => {
  const log = new MemoryLogger();
  const p = new Publisher(configFor('db = rowcheck'), log);
  await db.query(`CREATE DATABASE rowcheck; GRANT ALL PRIVILEGES ON rowcheck.* TO '${db.user}'@'%'`);
  const users = (k: number): U[] => [
    { uid: 'alice', down: 10 * k, up: k },
    { uid: 'bob', dn: dnOf('bob', 300), down: 20 * k },
    { uid: LONG_UID, down: 30 * k },
    { uid: 'carol', dn: dnOf('carol', 1100), down: 40 * k },
  ];
  try {
    await publish(p, users(1));
    assert.deepEqual(log.of('error'), [], 'the write succeeded');
    assert.deepEqual(await rows(db, 'rowcheck'), ['alice down 10 37', 'alice up 1 37', 'bob down 20 300', 'bob up 0 300']);
    const skips = (): string[] => log.of('warn').filter((l) => /not written/.test(l));
    assert.equal(skips().length, 2, skips().join('\n'));
    assert.match(
      skips().find((l) => l.includes('uuuu'))!,
      /uid "u{20,40}…" \(600 characters\) not written: uid has 600 characters, the column holds 512/,
    );
    assert.match(
      skips().find((l) => l.includes('carol'))!,
      /uid "carol".*cn \(the owner's DN\) has 1100 characters.*holds 1024/,
    );
    // next cycles: every volume changed, the same two rows still cannot be stored: no new line
    await publish(p, users(2));
    await publish(p, users(3));
    assert.deepEqual(log.of('error'), []);
    assert.equal(skips().length, 2, skips().join('\n'));
    assert.deepEqual(await rows(db, 'rowcheck'), ['alice down 30 37', 'alice up 3 37', 'bob down 60 300', 'bob up 0 300']);
    // carol's DN shortened: her rows appear
    const fixed = users(4).map((u) => (u.uid === 'carol' ? { ...u, dn: undefined } : u));
    await publish(p, fixed);
    assert.ok((await rows(db, 'rowcheck')).includes('carol down 160 37'));
  } finally {
    await p.close();
  }
});

test('uids differing only in case are two rows; removing one keeps the other', async () => {
  const log = new MemoryLogger();
  const p = new Publisher(configFor(''), log);
  try {
    await publish(p, [
      { uid: 'Alice', down: 111 },
      { uid: 'alice', down: 222 },
    ]);
    assert.deepEqual(log.of('error'), []);
    assert.deepEqual(await rows(db), ['Alice down 111 37', 'Alice up 0 37', 'alice down 222 37', 'alice up 0 37']);
    await publish(p, [{ uid: 'alice', down: 333 }]);
    assert.deepEqual(await rows(db), ['alice down 333 37', 'alice up 0 37']);
  } finally {
    await p.close();
  }
});

/** The tables as the previous version created them (before issue 20). */
const OLD_SCHEMA = (database: string): string => `
  CREATE TABLE ${database}.people_data (
    site VARCHAR(64) NOT NULL, cn VARCHAR(255) NOT NULL, uid VARCHAR(128) NOT NULL, way ENUM('down','up') NOT NULL,
    \`group\` INT NOT NULL, amount BIGINT UNSIGNED NOT NULL, PRIMARY KEY (site, uid, way)) DEFAULT CHARSET=utf8mb4;
  CREATE TABLE ${database}.classes (
    site VARCHAR(64) NOT NULL, idx INT NOT NULL, way ENUM('down','up') NOT NULL, tc_index INT NOT NULL,
    \`limit\` BIGINT UNSIGNED NULL, rate BIGINT UNSIGNED NOT NULL, ceil BIGINT UNSIGNED NOT NULL,
    users INT NOT NULL, active_users INT NOT NULL, PRIMARY KEY (site, way, idx)) DEFAULT CHARSET=utf8mb4;
  INSERT INTO ${database}.people_data VALUES ('other-gw', 'uid=zed,${BASE}', 'zed', 'down', 0, 5), ('${SITE}', 'uid=old,${BASE}', 'old', 'up', 0, 7);`;

async function columns(database: string): Promise<string[]> {
  const r = await db.select<{ t: string; c: string; type: string; coll: string | null }>(
    `SELECT TABLE_NAME AS t, COLUMN_NAME AS c, COLUMN_TYPE AS type, COLLATION_NAME AS coll FROM information_schema.COLUMNS
     WHERE TABLE_SCHEMA = ? AND COLUMN_NAME IN ('site', 'uid', 'cn') ORDER BY TABLE_NAME, COLUMN_NAME`,
    [database],
  );
  return r.map((x) => `${x.t}.${x.c} ${x.type} ${x.coll}`);
}

test('a table created by the older version is migrated: longer columns, case-sensitive keys; other sites kept', async () => {
  await db.query(`CREATE DATABASE legacy; GRANT ALL PRIVILEGES ON legacy.* TO '${db.user}'@'%'; ${OLD_SCHEMA('legacy')}`);
  const log = new MemoryLogger();
  const p = new Publisher(configFor('db = legacy'), log);
  try {
    await publish(p, [
      { uid: 'Alice', down: 1 },
      { uid: 'alice', down: 2 },
      { uid: 'bob', dn: dnOf('bob', 300), down: 3 },
    ]);
    assert.deepEqual(log.of('error'), []);
    assert.deepEqual(await columns('legacy'), [
      'classes.site varchar(64) utf8mb4_bin',
      'people_data.cn varchar(1024) utf8mb4_general_ci',
      'people_data.site varchar(64) utf8mb4_bin',
      'people_data.uid varchar(512) utf8mb4_bin',
    ]);
    assert.ok(
      log
        .of('info')
        .some((l) =>
          /publish: migrated `legacy`\.people_data: .*uid varchar\(128\) utf8mb4_general_ci -> varchar\(512\) utf8mb4_bin/.test(l),
        ),
      log.of('info').join('\n'),
    );
    assert.deepEqual(await rows(db, 'legacy'), [
      'Alice down 1 37',
      'Alice up 0 37',
      'alice down 2 37',
      'alice up 0 37',
      'bob down 3 300',
      'bob up 0 300',
    ]);
    assert.deepEqual(await rows(db, 'legacy', 'other-gw'), ['zed down 5 35'], "another site's row is kept");
  } finally {
    await p.close();
  }
});

test('an old table without the ALTER right: one error line naming it, rows that fit the old columns written, the others skipped', async () => {
  const pw = 'noalter-pw';
  await db.query(
    `CREATE DATABASE legacy2; ${OLD_SCHEMA('legacy2')}
     CREATE USER 'noalter'@'%' IDENTIFIED BY '${pw}';
     GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON legacy2.* TO 'noalter'@'%'`,
  );
  const log = new MemoryLogger();
  const p = new Publisher(configFor(`db = legacy2\nhost = 127.0.0.1:${db.port}\nuser = noalter\npassword = ${pw}`), log);
  const users = (k: number): U[] => [
    { uid: 'alice', down: k },
    { uid: 'bob', dn: dnOf('bob', 300), down: k },
  ];
  try {
    await publish(p, users(1));
    await publish(p, users(2));
    const errors = log.of('error');
    assert.equal(errors.length, 1, errors.join('\n'));
    assert.match(
      errors[0]!,
      /publish: cannot migrate `legacy2`\.people_data .*ALTER command denied.*ALTER TABLE `legacy2`\.people_data MODIFY/,
    );
    assert.deepEqual(await columns('legacy2'), [
      'classes.site varchar(64) utf8mb4_general_ci',
      'people_data.cn varchar(255) utf8mb4_general_ci',
      'people_data.site varchar(64) utf8mb4_general_ci',
      'people_data.uid varchar(128) utf8mb4_general_ci',
    ]);
    assert.deepEqual(await rows(db, 'legacy2'), ['alice down 2 37', 'alice up 0 37']);
    const skips = log.of('warn').filter((l) => /not written/.test(l));
    assert.equal(skips.length, 1, skips.join('\n'));
    assert.match(skips[0]!, /uid "bob".*has 300 characters.*holds 255/);
  } finally {
    await p.close();
  }
});

const sslAccepts = async (): Promise<number> =>
  Number((await tlsDb.select<{ Value: string }>("SHOW GLOBAL STATUS LIKE 'Ssl_accepts'"))[0]?.Value);

test('[publish] host over TLS: tls = 1 with caFile verifies the server; a wrong CA is refused; tls follows [database] when unset', async () => {
  const hostKeys = `host = 127.0.0.1:${tlsDb.port}\nuser = ${tlsDb.user}\npassword = ${tlsDb.password}`;
  const ok = new MemoryLogger();
  const before = await sslAccepts();
  const p = new Publisher(configFor(`${hostKeys}\ntls = 1\ncaFile = ${ours.caFile}`), ok);
  try {
    await publish(p, [{ uid: 'tina', down: 5 }]);
    assert.deepEqual(ok.of('error'), []);
    assert.ok((await sslAccepts()) > before, 'the write went over TLS');
    assert.deepEqual(await rows(tlsDb), ['tina down 5 36', 'tina up 0 36']);
  } finally {
    await p.close();
  }
  // tls = 1, the system CAs: the sandbox's own CA is not among them
  const bad = new MemoryLogger();
  const q = new Publisher(configFor(`${hostKeys}\ntls = 1`), bad);
  try {
    await publish(q, [{ uid: 'tina', down: 6 }]);
    assert.equal(bad.of('error').length, 1);
    assert.match(bad.of('error')[0]!, /publish: cannot write to 127\.0\.0\.1:\d+\/qos: .*(self[- ]signed|unable to verify|certificate)/i);
  } finally {
    await q.close();
  }
  // [publish] tls unset: [database] tls = 1 and caFile apply to the [publish] host too
  const inherited = new MemoryLogger();
  const before2 = await sslAccepts();
  const r = new Publisher(configFor(hostKeys, { database: `tls = 1\ncaFile = ${ours.caFile}` }), inherited);
  try {
    await publish(r, [{ uid: 'tina', down: 7 }]);
    assert.deepEqual(inherited.of('error'), []);
    assert.ok((await sslAccepts()) > before2, 'the write went over TLS');
    assert.deepEqual(await rows(tlsDb), ['tina down 7 36', 'tina up 0 36']);
  } finally {
    await r.close();
  }
});
