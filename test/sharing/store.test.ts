// The sites table on a real MariaDB (sandbox/mariadb.ts): created if missing, rows written and
// read back with the server's clock, and the exchange's lock: two sites deciding at the same
// time never both take the same room.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startMariadb, type MariadbServer } from '../../sandbox/mariadb.js';
import { sandboxConf } from '../../sandbox/conf.js';
import { parseConfig, type Config } from '../../src/config/config.js';
import { SiteStore, type OwnRow, type ExchangeView } from '../../src/sharing/store.js';
import { checkRow, type SiteRow } from '../../src/sharing/peers.js';

let db: MariadbServer;
const M = 1_000_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function config(site: string): Config {
  const text = sandboxConf({
    ldapUrl: 'ldap://127.0.0.1:1',
    db: { host: db.host, port: db.port, user: db.user, password: db.password },
    dir: '/tmp/rq-unused',
  }).replace('[ratesrules]', `globalDown = 60Mbit\nglobalUp = 60Mbit\n[site]\nname = ${site}\n[sharing]\nenabled = 1\n[ratesrules]`);
  return parseConfig(text, 'qos.conf');
}

const row = (site: string, applied: number): OwnRow => ({
  site,
  intervalMs: 2000,
  weight: 1,
  global: { down: 60 * M, up: 60 * M },
  cap: { down: 50 * M, up: 50 * M },
  demand: { down: 0, up: 0 },
  users: { down: 1, up: 0 },
  allocated: { down: applied, up: 0 },
  applied: { down: applied, up: 0 },
  writers: 1,
});

/** Claims `want` if the other rows leave room for it, else what they leave; decides slowly (holding the rows). */
const rowsOf = (view: ExchangeView): SiteRow[] => view.rows.map(checkRow).flatMap((c) => (c.ok ? [c.row] : []));

function greedy(site: string, want: number, holdMs: number): (view: ExchangeView) => Promise<OwnRow> {
  return async (view) => {
    const others = rowsOf(view);
    await sleep(holdMs);
    const room = 60 * M - others.reduce((a, r) => a + r.applied.down, 0);
    return row(site, Math.min(want, room));
  };
}

before(async () => {
  db = await startMariadb({ timezone: '+00:00' });
});

after(async () => {
  await db?.stop();
});

test('exchange creates the table, writes our row with the server time and reads the others', async (t) => {
  const a = new SiteStore(config('site-a'));
  const b = new SiteStore(config('site-b'));
  try {
    const first = await a.exchange('site-a', () => row('site-a', 30 * M));
    assert.deepEqual(first.view.rows, []);
    await sleep(300);
    const seen = await b.exchange('site-b', (view) => {
      const others = rowsOf(view);
      assert.equal(others.length, 1);
      assert.equal(others[0]!.site, 'site-a');
      assert.deepEqual(others[0]!.applied, { down: 30 * M, up: 0 });
      assert.ok(others[0]!.ageMs >= 250 && others[0]!.ageMs < 5000, `age ${others[0]!.ageMs}`);
      return row('site-b', 20 * M);
    });
    assert.equal(seen.view.rows.length, 1);
    await a.settle('site-a', { down: 25 * M, up: 0 });
    const t0 = performance.now();
    for (let i = 0; i < 50; i++) await a.exchange('site-a', () => row('site-a', 30 * M));
    t.diagnostic(
      `exchange (lock, read 2 rows, upsert, commit) on a loopback MariaDB: ${((performance.now() - t0) / 50).toFixed(2)} ms on average over 50`,
    );
    await a.settle('site-a', { down: 25 * M, up: 0 });
    const rows = await db.select<{ site: string; applied_down: number }>('SELECT site, applied_down FROM qos.sites ORDER BY site');
    assert.deepEqual(
      rows.map((r) => [r.site, Number(r.applied_down)]),
      [
        ['site-a', 25 * M],
        ['site-b', 20 * M],
      ],
    );
  } finally {
    await a.close();
    await b.close();
  }
});

test('two sites deciding at once: the lock serialises them, the claims never exceed the global rate', async () => {
  await db.query('DELETE FROM qos.sites');
  const a = new SiteStore(config('site-a'));
  const b = new SiteStore(config('site-b'));
  try {
    await a.exchange('site-a', () => row('site-a', 10 * M));
    await b.exchange('site-b', () => row('site-b', 10 * M));
    for (let round = 0; round < 5; round++) {
      // each wants 50 and decides slowly (200 ms holding the rows): without the lock both would
      // see the other's 10 and both take 50 (100 > 60)
      await Promise.all([a.exchange('site-a', greedy('site-a', 50 * M, 200)), b.exchange('site-b', greedy('site-b', 50 * M, 200))]);
      const rows = await db.select<{ applied_down: number }>('SELECT applied_down FROM qos.sites');
      const sum = rows.reduce((x, r) => x + Number(r.applied_down), 0);
      assert.ok(sum <= 60 * M, `round ${round}: claims ${sum} above 60 Mbit/s`);
      await a.exchange('site-a', () => row('site-a', 10 * M));
      await b.exchange('site-b', () => row('site-b', 10 * M));
    }
  } finally {
    await a.close();
    await b.close();
  }
});

test('a dropped table is made again by the next exchange, without a reload', async () => {
  const a = new SiteStore(config('site-a'));
  try {
    await a.exchange('site-a', () => row('site-a', 10 * M));
    await db.query('DROP TABLE qos.sites');
    await a.exchange('site-a', () => row('site-a', 12 * M));
    const rows = await db.select<{ site: string; applied_down: number }>('SELECT site, applied_down FROM qos.sites');
    assert.deepEqual(
      rows.map((r) => [r.site, Number(r.applied_down)]),
      [['site-a', 12 * M]],
    );
  } finally {
    await a.close();
  }
});

test('a table made by the first version (no writer columns) gets them; the writer id is written', async () => {
  await db.query('DROP TABLE IF EXISTS qos.sites');
  await db.query(`CREATE TABLE qos.sites (
  site VARCHAR(64) NOT NULL PRIMARY KEY, updated DATETIME(3) NOT NULL, interval_ms INT UNSIGNED NOT NULL, weight DOUBLE NOT NULL,
  global_down BIGINT UNSIGNED NOT NULL, global_up BIGINT UNSIGNED NOT NULL, cap_down BIGINT UNSIGNED NOT NULL, cap_up BIGINT UNSIGNED NOT NULL,
  demand_down BIGINT UNSIGNED NOT NULL, demand_up BIGINT UNSIGNED NOT NULL, users_down INT UNSIGNED NOT NULL, users_up INT UNSIGNED NOT NULL,
  allocated_down BIGINT UNSIGNED NOT NULL, allocated_up BIGINT UNSIGNED NOT NULL, applied_down BIGINT UNSIGNED NOT NULL, applied_up BIGINT UNSIGNED NOT NULL
) ENGINE=InnoDB`);
  const a = new SiteStore(config('site-a'));
  try {
    await a.exchange('site-a', () => row('site-a', 10 * M));
    const rows = await db.select<{ writer: string; writers: number }>('SELECT writer, writers FROM qos.sites');
    assert.deepEqual(
      rows.map((r) => [r.writer, Number(r.writers)]),
      [[a.writer, 1]],
    );
    // another process writing our row since our last write is reported as foreign
    await db.query("UPDATE qos.sites SET writer = 'someone', updated = NOW(3) + INTERVAL 1 SECOND");
    const seen = await a.exchange('site-a', () => row('site-a', 10 * M));
    assert.equal(seen.view.foreign, 'someone');
  } finally {
    await a.close();
  }
});
