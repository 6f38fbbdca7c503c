// The closed-hour cache of the volume source against a real MariaDB: every fetch must equal the
// original whole-day GROUP BY query (volumesQuery) summed per canonical IP, whatever B and the reset.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { startMariadb, type MariadbServer } from '../../sandbox/mariadb.js';
import { sandboxConf } from '../../sandbox/conf.js';
import { parseConfig, type Config } from '../../src/config/config.js';
import { MemoryLogger } from '../../src/log.js';
import { parseIp } from '../../src/net/ip.js';
import { VolumeSource } from '../../src/netacct/volumes.js';
import { BOUNDARY_SQL } from '../../src/netacct/volumes-sql.js';
import { volumesQuery } from '../../sandbox/volumes-reference.js';
import type { Usage, Volume } from '../../src/sources/types.js';
import { ipIndex } from '../../src/net/ipindex.js';

const ZONE = '+09:00';
let db: MariadbServer;
let dir: string;
let ref: mysql.Connection;

function configFor(database = ''): Config {
  return parseConfig(
    sandboxConf({
      ldapUrl: 'ldap://127.0.0.1:1',
      db: { host: db.host, port: db.port, user: db.user, password: db.password },
      dir,
      database,
    }),
    'x.conf',
  );
}

/** The original fetch: volumesQuery (GROUP BY ip in SQL) per table, summed per canonical IP. */
async function reference(config: Config, reset: Date): Promise<Map<string, Volume>> {
  const d = config.database;
  const out = new Map<string, Volume>();
  for (const table of [d.table, ...(d.table6 ? [d.table6] : [])]) {
    const [rows] = await ref.query({ sql: volumesQuery(d, table), values: [Math.floor(reset.getTime() / 1000)], rowsAsArray: true });
    for (const [ipRaw, down, up] of rows as [string, number, number][]) {
      const ip = parseIp(String(ipRaw));
      if (!ip.ok) continue;
      const v = out.get(ip.ip) ?? { down: 0, up: 0 };
      out.set(ip.ip, { down: v.down + Number(down), up: v.up + Number(up) });
    }
  }
  return out;
}

/** 'YYYY-MM-DD HH:00:00' (server local, +09:00) of an instant, and back. */
const bucketOf = (ms: number): string => new Date(ms + 9 * 3600_000).toISOString().slice(0, 13).replace('T', ' ') + ':00:00';
const instantOf = (bucket: string): number => Date.parse(`${bucket.replace(' ', 'T')}${ZONE}`);
const H = 3600_000;

let seed = 12345;
const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
const IPS = ['172.22.200.3', '172.22.200.4', '172.22.201.1', '172.23.199.10', '10.9.8.7', '172.22.203.4', '300.1.2.3', '10.0.0.01', ''];
const IPS6 = ['2001:db8:d200::3', '2001:DB8:D200:0:0:0:0:3', '2001:db8:d201::1', 'fe80::1%eth0'];

function randomRows(table: string, ips: readonly string[], buckets: readonly string[], n: number): string {
  const vals: string[] = [];
  for (let i = 0; i < n; i++) {
    const ip = ips[Math.floor(rnd() * ips.length)]!;
    const t = buckets[Math.floor(rnd() * buckets.length)]!;
    const r = rnd();
    const input = r < 0.03 ? 'NULL' : r < 0.06 ? String(-Math.floor(rnd() * 1000)) : String(Math.floor(rnd() * 2_000_000_000));
    const output = rnd() < 0.04 ? '-7' : String(Math.floor(rnd() * 50_000_000));
    const peer = String(Math.floor(rnd() * 1000) - (rnd() < 0.05 ? 2000 : 0));
    vals.push(`('${ip}', '${t}', ${input}, ${output}, ${peer}, ${Math.floor(rnd() * 100)})`);
  }
  return `INSERT INTO netacct.${table} (ip, time, input, output, peer_input, peer_output) VALUES ${vals.join(', ')};`;
}

/** A source whose B is set by the test (any hour, including before the reset) instead of read from the server. */
/** Usage.dense holds the same bytes as byIp, by ipIndex id, and nothing else. */
function assertDense(u: Usage, what: string): void {
  assert.ok(u.dense, `${what}: dense volumes`);
  let total = 0;
  for (const [ip, v] of u.byIp) {
    const id = ipIndex.idOf(ip);
    assert.equal(u.dense.down[id], v.down, `${what}: ${ip} down`);
    assert.equal(u.dense.up[id], v.up, `${what}: ${ip} up`);
    total += v.down + v.up;
  }
  const sum = (a: Float64Array): number => a.reduce((x, y) => x + y, 0);
  assert.equal(sum(u.dense.down) + sum(u.dense.up), total, `${what}: no other bytes`);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rq-volcache-'));
  db = await startMariadb({ timezone: ZONE });
  // NULL byte counts are possible in other schemas: allow them here
  await db.query('ALTER TABLE netacct.traffic MODIFY input int(20) NULL; ALTER TABLE netacct.traffic6 MODIFY input int(20) NULL;');
  ref = await mysql.createConnection({ ...db.connectionOptions(), supportBigNumbers: true, bigNumberStrings: false });
});

after(async () => {
  await ref?.end();
  await db?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('cached volumes equal the whole-day query: random hours, rows added between fetches, late rows at the refresh, reset changes', async () => {
  await db.query('DELETE FROM netacct.traffic; DELETE FROM netacct.traffic6;');
  const [[nowBucket]] = (await ref.query({ sql: "SELECT DATE_FORMAT(NOW(), '%Y-%m-%d %H:00:00')", rowsAsArray: true }))[0] as [[string]];
  const h0 = instantOf(nowBucket);
  const hours = Array.from({ length: 33 }, (_, i) => bucketOf(h0 + (i - 30) * H)); // 30 h of history, the current hour, 2 ahead
  await db.query(randomRows('traffic', IPS, hours, 3000) + randomRows('traffic6', IPS6, hours, 300));
  const config = configFor('table6 = traffic6\nexclude = peer');
  const plain = configFor('table6 = traffic6\nclosedRefresh = 0');
  const log = new MemoryLogger();
  const cached = new VolumeSource(config, log);
  const uncached = new VolumeSource(plain, new MemoryLogger());
  const t = new Date(h0);
  try {
    let reset = new Date(h0 - 20 * H);
    const first = await cached.fetch(reset, t);
    assert.ok(first.byIp.size >= 5, `${first.byIp.size} IPs`);
    assert.deepEqual(first.byIp, await reference(config, reset));
    assert.deepEqual((await uncached.fetch(reset, t)).byIp, await reference(plain, reset), 'closedRefresh = 0 too');
    assert.ok(
      log.of('warn').some((w) => /NULL or negative/.test(w)),
      log.of('warn').join('\n'),
    );
    assert.ok(
      log.of('warn').some((w) => /"300\.1\.2\.3" \(octet above 255\)/.test(w)),
      log.of('warn').join('\n'),
    );

    // rows flushed into the open hours (the previous one until HH:15, the current one, one ahead) between fetches are seen at once
    const [[open]] = (await ref.query({ sql: BOUNDARY_SQL, rowsAsArray: true }))[0] as [[string]];
    const openHours = [...new Set([open, bucketOf(h0), bucketOf(h0 + H)])];
    for (let i = 1; i <= 3; i++) {
      await db.query(randomRows('traffic', IPS, openHours, 50) + randomRows('traffic6', IPS6, [bucketOf(h0)], 5));
      const u = await cached.fetch(reset, new Date(t.getTime() + i * 10_000));
      assert.deepEqual(u.byIp, await reference(config, reset), `fetch ${i}`);
      assertDense(u, `fetch ${i}`);
    }

    // a row written late into an older bucket waits for the closed refresh
    await db.query(
      `INSERT INTO netacct.traffic (ip, time, input, output) VALUES ('172.22.250.250', '${bucketOf(h0 - 5 * H)}', 123456, 654)`,
    );
    const stale = await cached.fetch(reset, new Date(t.getTime() + 60_000));
    assert.equal(stale.byIp.get('172.22.250.250'), undefined, 'closed buckets are cached');
    const refreshed = await cached.fetch(reset, new Date(t.getTime() + 16 * 60_000));
    assert.deepEqual(refreshed.byIp.get('172.22.250.250'), { down: 123456, up: 654 });
    assert.deepEqual(refreshed.byIp, await reference(config, reset));

    // reset changes: later (not on an hour), at the current hour (closed part empty), before all rows
    for (const r of [h0 - 7 * H + 30 * 60_000, h0 + H, h0 - 40 * H]) {
      reset = new Date(r);
      const u = await cached.fetch(reset, new Date(t.getTime() + 17 * 60_000));
      assert.deepEqual(u.byIp, await reference(config, reset), `reset ${reset.toISOString()}`);
      assertDense(u, `reset ${reset.toISOString()}`);
    }

    // the same with the time index INSTALL recommends
    await db.query('ALTER TABLE netacct.traffic ADD INDEX reselqos_time (`time`, `ip`, `input`, `output`)');
    await db.query(randomRows('traffic', IPS, [bucketOf(h0)], 20));
    reset = new Date(h0 - 20 * H);
    assert.deepEqual((await cached.fetch(reset, new Date(t.getTime() + 18 * 60_000))).byIp, await reference(config, reset));
  } finally {
    await Promise.all([cached.close(), uncached.close()]);
  }
});

test('any boundary B: before the reset, advancing by one or several hours, going back', async () => {
  await db.query('DELETE FROM netacct.traffic; DELETE FROM netacct.traffic6;');
  const h0 = instantOf('2030-03-10 12:00:00'); // far from the real clock: B comes from the test
  const hours = Array.from({ length: 24 }, (_, i) => bucketOf(h0 + i * H));
  await db.query(randomRows('traffic', IPS, hours.slice(0, 4), 400));
  const config = configFor();
  const stepped = { b: '' };
  const v = new VolumeSource(config, new MemoryLogger(), async () => stepped.b);
  const reset = new Date(h0 + 2 * H);
  const now = new Date(h0);
  try {
    const steps = [-5, 0, 2, 3, 4, 7, 8, 9, 6, 12];
    for (let i = 0; i < steps.length; i++) {
      const b = h0 + steps[i]! * H;
      stepped.b = bucketOf(b);
      // nacctd writes only into the hours at or after B between fetches
      await db.query(randomRows('traffic', IPS, [bucketOf(b), bucketOf(b + H), bucketOf(b + 2 * H)], 100));
      const u = await v.fetch(reset, new Date(now.getTime() + i * 10_000));
      assert.deepEqual(u.byIp, await reference(config, reset), `B = ${stepped.b}`);
    }
    // B moved on by one hour since: a late row two hours back is not re-read until the refresh
    stepped.b = bucketOf(h0 + 13 * H);
    await db.query(`INSERT INTO netacct.traffic (ip, time, input, output) VALUES ('172.22.250.251', '${bucketOf(h0 + 10 * H)}', 42, 24)`);
    assert.equal(
      (await v.fetch(reset, new Date(now.getTime() + 200_000))).byIp.get('172.22.250.251'),
      undefined,
      'an hour turning reads only the hour that closed',
    );
    assert.deepEqual(
      (await v.fetch(reset, new Date(now.getTime() - 1000))).byIp.get('172.22.250.251'),
      { down: 42, up: 24 },
      'a clock going back re-reads everything',
    );
  } finally {
    await v.close();
  }
});

test('between nacctd flushes, without an id column: once a read found nothing new, the server signature stands in for the rows; an insert or an in-place update is seen', async () => {
  await db.query('DELETE FROM netacct.traffic; DELETE FROM netacct.traffic6;');
  const [[nowBucket]] = (await ref.query({ sql: "SELECT DATE_FORMAT(NOW(), '%Y-%m-%d %H:00:00')", rowsAsArray: true }))[0] as [[string]];
  const h0 = instantOf(nowBucket);
  await db.query(randomRows('traffic', IPS, [bucketOf(h0 - 3 * H), bucketOf(h0)], 200));
  // without an id column (idColumn empty): the open hours are read whole when they changed
  const config = configFor('exclude = peer\nidColumn =');
  const src = new VolumeSource(config, new MemoryLogger());
  const reset = new Date(h0 - 10 * H);
  const t = (s: number): Date => new Date(h0 + s * 1000);
  try {
    const a = await src.fetch(reset, t(0));
    const b = await src.fetch(reset, t(10)); // rows read again: nothing changed since a
    assert.notEqual(b, a);
    assert.deepEqual(b.byIp, a.byIp);
    const c = await src.fetch(reset, t(20)); // the signature matches: the same Usage, no row read
    assert.equal(c, b);
    // nacctd adds bytes to an existing row of the current hour
    await db.query(`UPDATE netacct.traffic SET input = input + 7 WHERE ip = '172.22.200.3' AND time = '${bucketOf(h0)}' LIMIT 1`);
    const d = await src.fetch(reset, t(30));
    assert.notEqual(d, c, 'an update in place is seen');
    assert.equal(d.byIp.get('172.22.200.3')!.down, c.byIp.get('172.22.200.3')!.down + 7);
    assert.deepEqual(d.byIp, await reference(config, reset));
    // after a change rows are read at once; then quiet again; then a new row
    const e = await src.fetch(reset, t(40));
    const f = await src.fetch(reset, t(50));
    assert.equal(f, e);
    await db.query(`INSERT INTO netacct.traffic (ip, time, input, output) VALUES ('172.22.201.1', '${bucketOf(h0)}', 1000, 10)`);
    const g = await src.fetch(reset, t(60));
    assert.notEqual(g, f, 'an insert is seen');
    assert.deepEqual(g.byIp, await reference(config, reset));
    assertDense(g, 'after the insert');
  } finally {
    await src.close();
  }
});

/** Bytes by id of a Usage's dense arrays, as plain copies (to compare a later Usage with). */
const denseCopy = (u: Usage): { down: Float64Array; up: Float64Array } => ({ down: u.dense!.down.slice(), up: u.dense!.up.slice() });

/** Every id where two dense copies differ (0 beyond an array). */
function differing(a: { down: Float64Array; up: Float64Array }, b: { down: Float64Array; up: Float64Array }): number[] {
  const out: number[] = [];
  const n = Math.max(a.down.length, b.down.length);
  for (let i = 0; i < n; i++) if ((a.down[i] ?? 0) !== (b.down[i] ?? 0) || (a.up[i] ?? 0) !== (b.up[i] ?? 0)) out.push(i);
  return out;
}

test('with the id column, each cycle reads only the rows added: equal to a full recount after random inserts, in-place updates and deletes, across hour rollovers and the daily reset (several seeds)', async () => {
  const h0 = instantOf('2030-05-20 08:00:00'); // far from the real clock: B comes from the test
  const config = configFor('table6 = traffic6\nexclude = peer');
  let appended = 0;
  let unchanged = 0;
  for (const s of [1, 2, 3, 4, 5]) {
    seed = 1000 + s;
    await db.query('DELETE FROM netacct.traffic; DELETE FROM netacct.traffic6;');
    await db.query(randomRows('traffic', IPS, [bucketOf(h0 - 2 * H), bucketOf(h0 - H), bucketOf(h0)], 300));
    const stepped = { b: bucketOf(h0) };
    const v = new VolumeSource(config, new MemoryLogger(), async () => stepped.b);
    let reset = new Date(h0 - 5 * H);
    let hour = h0;
    let clock = h0;
    try {
      let last = await v.fetch(reset, new Date(clock));
      assert.deepEqual(last.byIp, await reference(config, reset), `seed ${s}: first read`);
      for (let step = 0; step < 14; step++) {
        const r = rnd();
        const openHours = [bucketOf(hour), bucketOf(hour + H)];
        const sql: string[] = [];
        if (r < 0.35) sql.push(randomRows('traffic', IPS, openHours, 1 + Math.floor(rnd() * 20)));
        else if (r < 0.45) sql.push(randomRows('traffic6', IPS6, openHours, 1 + Math.floor(rnd() * 5)));
        else if (r < 0.65)
          // nacctd adds bytes to a row it holds for this hour
          sql.push(
            `UPDATE netacct.traffic SET input = input + ${1 + Math.floor(rnd() * 1e6)} WHERE time >= '${bucketOf(hour)}' ORDER BY RAND(${s * 100 + step}) LIMIT ${1 + Math.floor(rnd() * 3)}`,
          );
        else if (r < 0.72)
          sql.push(`DELETE FROM netacct.traffic WHERE time >= '${bucketOf(hour)}' ORDER BY RAND(${s * 100 + step}) LIMIT 1`);
        else if (r < 0.8) {
          // the hour turns (B follows 15 min later): the hour that closed moves to the closed part
          hour += H;
          stepped.b = bucketOf(hour);
          sql.push(randomRows('traffic', IPS, [bucketOf(hour)], 5));
        } else if (r < 0.85) {
          // the daily reset
          reset = new Date(hour - H);
        } // else: nothing happens (nacctd between flushes)
        for (const q of sql) await db.query(q);
        clock += 10_000;
        const before = denseCopy(last);
        const u = await v.fetch(reset, new Date(clock));
        const what = `seed ${s}, step ${step} (r=${r.toFixed(2)})`;
        assert.deepEqual(u.byIp, await reference(config, reset), what);
        assertDense(u, what);
        if (sql.length === 0 && u.resetAt === last.resetAt) {
          assert.equal(u, last, `${what}: nothing changed, the same Usage`);
          unchanged++;
        }
        if (u !== last && u.changes) {
          // the change hint names every id whose bytes moved (the planner looks at no other)
          assert.equal(u.changes.from, last.version, `${what}: derived from the last Usage`);
          const named = new Set(u.changes.ids);
          for (const id of differing(before, denseCopy(u))) assert.ok(named.has(id), `${what}: id ${id} changed but is not named`);
          appended++;
        }
        last = u;
      }
    } finally {
      await v.close();
    }
  }
  // the property ran through both paths
  assert.ok(appended >= 5, `${appended} fetches read only the rows added`);
  assert.ok(unchanged >= 2, `${unchanged} fetches found nothing changed`);
});

test('with the id column: rows added are read alone (the held ones by signature); an update in place of a held row makes it read everything again, the ids whose bytes differ named', async () => {
  await db.query('DELETE FROM netacct.traffic; DELETE FROM netacct.traffic6;');
  const h0 = instantOf('2030-06-01 10:00:00');
  await db.query(randomRows('traffic', IPS.slice(0, 6), [bucketOf(h0)], 100));
  const config = configFor();
  const v = new VolumeSource(config, new MemoryLogger(), async () => bucketOf(h0));
  const reset = new Date(h0 - 3 * H);
  const t = (s: number): Date => new Date(h0 + s * 1000);
  try {
    const a = await v.fetch(reset, t(0));
    assert.equal(await v.fetch(reset, t(10)), a, 'nothing changed: the same Usage');
    await db.query(`INSERT INTO netacct.traffic (ip, time, input, output) VALUES ('172.22.201.1', '${bucketOf(h0)}', 1000, 10)`);
    const b = await v.fetch(reset, t(20));
    assert.notEqual(b, a);
    assert.deepEqual(b.changes, { from: a.version, ids: [ipIndex.idOf('172.22.201.1')] }, 'only the IP of the row added');
    assert.deepEqual(b.byIp, await reference(config, reset));
    await db.query(`UPDATE netacct.traffic SET input = input + 7 WHERE ip = '172.22.200.3' AND time = '${bucketOf(h0)}' LIMIT 1`);
    const c = await v.fetch(reset, t(30));
    assert.deepEqual(
      c.changes,
      { from: b.version, ids: [ipIndex.idOf('172.22.200.3')] },
      'a held row changed: read whole, the ids that differ named',
    );
    assert.equal(c.byIp.get('172.22.200.3')!.down, b.byIp.get('172.22.200.3')!.down + 7);
    assert.deepEqual(c.byIp, await reference(config, reset));
  } finally {
    await v.close();
  }
});
