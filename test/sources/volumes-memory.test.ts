// Memory from data (issue 11, finding 11) against a real MariaDB: netacct rows of addresses no
// directory machine holds (rotating, spoofed) must not grow the process-wide IP index; the index
// is rebuilt at the daily reset with the directory's IPs only, and everything holding ids (the
// volume caches, the incremental planner) stays consistent across the rebuild.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { DateTime } from 'luxon';
import mysql from 'mysql2/promise';
import { startMariadb, type MariadbServer } from '../../sandbox/mariadb.js';
import { sandboxConf } from '../../sandbox/conf.js';
import { parseConfig, type Config } from '../../src/config/config.js';
import { MemoryLogger } from '../../src/log.js';
import { VolumeSource } from '../../src/netacct/volumes.js';
import { volumesQuery } from '../../sandbox/volumes-reference.js';
import type { Directory, Machine, Owner, Volume } from '../../src/sources/types.js';
import { ipIndex } from '../../src/net/ipindex.js';
import { Planner } from '../../src/plan/incremental.js';
import { planDesired, type Desired } from '../../src/plan/desired.js';
import { parseIp } from '../../src/net/ip.js';

const ZONE = '+00:00';
const H = 3600_000;
let db: MariadbServer;
let dir: string;
let ref: mysql.Connection;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heapMB = (): number => {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 1048576;
};

function configFor(database = ''): Config {
  return parseConfig(
    sandboxConf({
      ldapUrl: 'ldap://127.0.0.1:1',
      db: { host: db.host, port: db.port, user: db.user, password: db.password },
      dir,
      database,
      timezone: 'UTC',
    }),
    'x.conf',
  );
}

/** The whole-day GROUP BY query, summed per canonical IP, restricted to `only`. */
async function reference(config: Config, reset: Date, only: ReadonlySet<string>): Promise<Map<string, Volume>> {
  const d = config.database;
  const out = new Map<string, Volume>();
  for (const table of [d.table, d.table6!]) {
    const [rows] = await ref.query({ sql: volumesQuery(d, table), values: [Math.floor(reset.getTime() / 1000)], rowsAsArray: true });
    for (const [ipRaw, down, up] of rows as [string, number, number][]) {
      const ip = parseIp(String(ipRaw));
      if (!ip.ok || !only.has(ip.ip)) continue;
      const v = out.get(ip.ip) ?? { down: 0, up: 0 };
      out.set(ip.ip, { down: v.down + Number(down), up: v.up + Number(up) });
    }
  }
  return out;
}

const bucketOf = (ms: number): string => new Date(ms).toISOString().slice(0, 13).replace('T', ' ') + ':00:00';

/** A directory of `n` owners with one machine each (an IPv4 and an IPv6 address). */
function directoryOf(n: number, from = 0): Directory {
  const owners: Owner[] = [];
  const machines: Machine[] = [];
  for (let i = from; i < from + n; i++) {
    const uid = `u${String(i).padStart(5, '0')}`;
    owners.push({ uid, dn: `uid=${uid},ou=people`, kind: 'person', endInternet: null, coupure: false, ban: [], cotiz: [] });
    machines.push({
      dn: `host=pc${i},ou=machines`,
      host: `pc${i}`,
      owner: uid,
      active: true,
      ips4: [`172.22.${i >> 8}.${i & 255}`],
      ips6: [`2001:db8:d000::${(i + 1).toString(16)}`],
    });
  }
  return { owners, machines, skipped: [], fetchedAt: new Date().toISOString() };
}
const ipsOf = (d: Directory): Set<string> => new Set(d.machines.flatMap((m) => [...m.ips4, ...m.ips6]));

/** Rows: `perIp` rows of random bytes for each IP in `ips`, in `hours`. */
async function insertRows(ips: readonly string[], hours: readonly string[], perIp = 1): Promise<void> {
  let seed = 7;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const v4: string[] = [];
  const v6: string[] = [];
  for (const ip of ips) {
    for (let k = 0; k < perIp; k++) {
      const row = `('${ip}', '${hours[Math.floor(rnd() * hours.length)]}', ${Math.floor(rnd() * 1e9)}, ${Math.floor(rnd() * 1e7)})`;
      (ip.includes(':') ? v6 : v4).push(row);
    }
  }
  for (const [table, rows] of [
    ['traffic', v4],
    ['traffic6', v6],
  ] as const) {
    for (let i = 0; i < rows.length; i += 5000) {
      await db.query(`INSERT INTO netacct.${table} (ip, time, input, output) VALUES ${rows.slice(i, i + 5000).join(', ')}`);
    }
  }
}

/** 50 000 addresses no machine holds: 40 000 IPv4 (10.x.y.z) and 10 000 IPv6 (privacy-style). */
const STRANGERS = [
  ...Array.from({ length: 40_000 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`),
  ...Array.from({ length: 10_000 }, (_, i) => `2001:db8:d000:1:${((i * 7919) & 0xffff).toString(16)}:${i.toString(16)}::1`),
];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rq-volmem-'));
  db = await startMariadb({ timezone: ZONE });
  ref = await mysql.createConnection({ ...db.connectionOptions(), supportBigNumbers: true, bigNumberStrings: false });
});

after(async () => {
  await ref?.end();
  await db?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('50 000 rows of addresses no machine holds do not grow the IP index; directory volumes stay exact; the daily reset rebuilds the index with directory IPs only', async () => {
  await db.query('DELETE FROM netacct.traffic; DELETE FROM netacct.traffic6;');
  const [[nowBucket]] = (await ref.query({ sql: "SELECT DATE_FORMAT(NOW(), '%Y-%m-%d %H:00:00')", rowsAsArray: true }))[0] as [[string]];
  const h0 = Date.parse(`${nowBucket.replace(' ', 'T')}Z`);
  const hours = Array.from({ length: 6 }, (_, i) => bucketOf(h0 - (5 - i) * H));
  const yesterday = new Date(h0 - 30 * H);
  const today = new Date(h0 - 3 * H);

  const gone = directoryOf(100, 2000); // machines of the morning, deleted before the reset
  const d = directoryOf(500);
  const held = ipsOf(d);
  await insertRows([...held, ...ipsOf(gone)], hours, 3);
  await insertRows(STRANGERS, hours);

  const config = configFor('table6 = traffic6');
  const src = new VolumeSource(config, new MemoryLogger());
  const planner = new Planner();
  const instant = DateTime.fromMillis(h0 + 60_000, { zone: 'UTC' });
  const view = (p: Desired): unknown => ({ users: p.users, sets: p.sets.map((s) => [s.name, [...s.members].sort()]) });
  try {
    // The morning: the directory still has the machines that go later.
    const morning: Directory = { ...d, owners: [...d.owners, ...gone.owners], machines: [...d.machines, ...gone.machines] };
    src.setDirectory(morning);
    const size0 = ipIndex.size;
    const heap0 = heapMB();
    const t0 = performance.now();
    const u1 = await src.fetch(yesterday, new Date(h0));
    const ms = performance.now() - t0;
    const size1 = ipIndex.size;
    const heap1 = heapMB();
    console.log(
      `# fetch of ${held.size * 3 + 600 + STRANGERS.length} rows (${STRANGERS.length} of addresses no machine holds): ${ms.toFixed(0)} ms; ipIndex ${size0} -> ${size1} entries; heap ${heap0.toFixed(1)} -> ${heap1.toFixed(1)} MB`,
    );
    assert.equal(size1, size0, 'not one address of the rows no machine holds was interned');
    for (const ip of STRANGERS.slice(0, 2000)) assert.equal(ipIndex.peek(ip), undefined, ip);
    assert.deepEqual(u1.byIp, await reference(config, yesterday, ipsOf(morning)), 'the directory IPs: exact');
    assert.equal(u1.byIp.size, held.size + ipsOf(gone).size);
    const p1 = planner.plan(config, morning, u1, instant, DateTime.fromJSDate(yesterday));

    // For comparison, what the index did before (no directory filter): every address interned.
    const unfiltered = new VolumeSource(config, new MemoryLogger());
    try {
      await unfiltered.fetch(yesterday, new Date(h0));
      console.log(
        `# the same rows without the directory filter (the behaviour before): ipIndex ${size1} -> ${ipIndex.size} entries; heap ${heapMB().toFixed(1)} MB`,
      );
      assert.ok(ipIndex.size >= size1 + STRANGERS.length, 'without the filter the strangers are interned');
    } finally {
      await unfiltered.close();
    }
    assert.deepEqual(view(p1), view(planDesired(config, morning, u1, instant, DateTime.fromJSDate(yesterday))));

    // Later: the morning's machines are deleted; the volumes are the same rows (nothing new to read).
    src.setDirectory(d);
    const u2 = await src.fetch(yesterday, new Date(h0 + 10_000));
    assert.deepEqual(u2.byIp, u1.byIp, 'an IP that left keeps its bytes until the reset (harmless: no user holds it)');

    // The daily reset: the index holds the directory's IPs only, and nothing else.
    const gen = ipIndex.generation;
    const u3 = await src.fetch(today, new Date(h0 + 20_000));
    assert.equal(ipIndex.generation, gen + 1, 'rebuilt at the reset');
    assert.equal(ipIndex.size, held.size, `only the ${held.size} directory IPs (${ipIndex.size})`);
    assert.deepEqual(new Set(ipIndex.table()), held);
    console.log(
      `# after the daily reset: ipIndex ${ipIndex.size} entries (the directory's ${held.size} IPs); heap ${heapMB().toFixed(1)} MB`,
    );
    assert.deepEqual(u3.byIp, await reference(config, today, held), 'volumes since the new reset: exact');
    assert.equal(u3.dense!.generation, ipIndex.generation);
    // a Usage of the old generation still reads its own IPs (its id table was kept)
    assert.deepEqual([...u1.byIp.keys()].sort(), [...ipsOf(morning)].sort());

    // The planner holds ids too: the plan after the rebuild equals a plan from scratch, and so do the next ones.
    const at = DateTime.fromJSDate(today);
    const p3 = planner.plan(config, d, u3, instant.plus({ seconds: 20 }), at);
    assert.deepEqual(view(p3), view(planDesired(config, d, u3, instant.plus({ seconds: 20 }), at)));
    await insertRows([...held].slice(0, 50), [bucketOf(h0)], 1);
    const u4 = await src.fetch(today, new Date(h0 + 30_000));
    assert.notEqual(u4, u3);
    assert.deepEqual(u4.byIp, await reference(config, today, held));
    const p4 = planner.plan(config, d, u4, instant.plus({ seconds: 30 }), at);
    assert.ok(p4.delta, 'an incremental step');
    assert.deepEqual(view(p4), view(planDesired(config, d, u4, instant.plus({ seconds: 30 }), at)));
  } finally {
    await src.close();
  }
});

test('a machine new in the directory: the cached sums were read without it, so they are dropped and its volume is exact at once', async () => {
  await db.query('DELETE FROM netacct.traffic; DELETE FROM netacct.traffic6;');
  const [[nowBucket]] = (await ref.query({ sql: "SELECT DATE_FORMAT(NOW(), '%Y-%m-%d %H:00:00')", rowsAsArray: true }))[0] as [[string]];
  const h0 = Date.parse(`${nowBucket.replace(' ', 'T')}Z`);
  const hours = Array.from({ length: 5 }, (_, i) => bucketOf(h0 - (4 - i) * H));
  const reset = new Date(h0 - 10 * H);
  const d = directoryOf(50);
  const more = directoryOf(51); // one more machine, whose rows (closed hours included) were there all along
  await insertRows([...ipsOf(more)], hours, 4);
  const config = configFor('table6 = traffic6');
  const src = new VolumeSource(config, new MemoryLogger());
  try {
    src.setDirectory(d);
    const u1 = await src.fetch(reset, new Date(h0));
    assert.deepEqual(u1.byIp, await reference(config, reset, ipsOf(d)));
    assert.equal(src.covers(d), true);
    assert.equal(src.covers(more), false, 'the new machine is not counted yet');
    assert.equal(src.setDirectory(more), true);
    const u2 = await src.fetch(reset, new Date(h0 + 10_000));
    assert.deepEqual(u2.byIp, await reference(config, reset, ipsOf(more)), 'its closed hours too');
    assert.ok(u2.byIp.has('172.22.0.50'));
    assert.equal(src.setDirectory({ ...more }), false, 'the same IPs again: the caches stay');
  } finally {
    await src.close();
  }
});
