// test/sandbox/mariadb.test.ts — the private MariaDB: netacct.traffic shape, the qos user's
// rights, duplicate rows summed, server time zone, kill/restart, and that stop() leaves nothing.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { test } from 'node:test';

import mysql from 'mysql2/promise';

import { generateCampus, loadTraffic } from '../../sandbox/campus.js';
import { startMariadb } from '../../sandbox/mariadb.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('mariadb: qos user sums duplicate rows per ip; table shape; rights; time zone', async (t) => {
  const db = await startMariadb({ timezone: '+09:00' });
  t.after(() => db.stop());
  assert.equal(db.host, '127.0.0.1');
  assert.equal(db.database, 'netacct');

  await db.insertTraffic([
    { ip: '172.22.200.3', time: '2026-03-01 10:00:00', input: 1000, output: 10 },
    { ip: '172.22.200.3', time: '2026-03-01 10:00:00', input: 500, output: 5 }, // same bucket again
    { ip: '172.22.200.3', time: '2026-03-01 11:00:00', input: 2_147_483_647, output: 0 },
    { ip: '172.22.200.4', time: '2026-03-01 10:00:00', input: 7, output: 1, peer_input: 3 },
  ]);

  const conn = await mysql.createConnection(db.connectionOptions());
  try {
    const [rows] = await conn.query(
      'SELECT ip, CAST(SUM(input) AS SIGNED) AS down, CAST(SUM(output) AS SIGNED) AS up FROM traffic WHERE time >= ? GROUP BY ip ORDER BY ip',
      ['2026-03-01 10:00:00'],
    );
    assert.deepEqual(
      (rows as { ip: string; down: number; up: number }[]).map((r) => ({ ...r })),
      [
        { ip: '172.22.200.3', down: 1500 + 2_147_483_647, up: 15 },
        { ip: '172.22.200.4', down: 7, up: 1 },
      ],
    );
    // INSERT is allowed, DELETE / DDL are not
    await conn.query("INSERT INTO traffic (ip, time, input, output) VALUES ('172.22.200.5', '2026-03-01 10:00:00', 1, 1)");
    await assert.rejects(conn.query('DELETE FROM traffic'), /denied/i);
    await assert.rejects(conn.query('DROP TABLE traffic'), /denied/i);
    // it may also write published state into the qos database
    await conn.query('CREATE TABLE qos.people_data (uid varchar(64), amount bigint)');

    // server time zone
    const [tz] = await conn.query('SELECT @@time_zone AS tz, TIMESTAMPDIFF(MINUTE, UTC_TIMESTAMP(), NOW()) AS offset_min');
    const first = (tz as { tz: string; offset_min: number }[])[0];
    assert.equal(first?.tz, '+09:00');
    assert.equal(first?.offset_min, 540);
  } finally {
    await conn.end();
  }

  // exactly nacctd's shape: signed int(20) counters, KEY ip (ip,time), no unique key
  const [create] = await db.select<{ 'Create Table': string }>('SHOW CREATE TABLE traffic');
  const ddl = create?.['Create Table'] ?? '';
  assert.match(ddl, /`id` int\(10\) unsigned NOT NULL AUTO_INCREMENT/);
  assert.match(ddl, /`ip` varchar\(15\)/);
  assert.match(ddl, /`time` datetime NOT NULL/);
  for (const col of ['input', 'output', 'peer_input', 'peer_output', 'direct_input', 'direct_output', 'local_input', 'local_output']) {
    assert.match(ddl, new RegExp(`\`${col}\` int\\(20\\) NOT NULL`));
  }
  assert.doesNotMatch(ddl, /unsigned NOT NULL DEFAULT 0/);
  assert.match(ddl, /KEY `ip` \(`ip`,`time`\)/);
  assert.doesNotMatch(ddl, /UNIQUE/);
  const [c6] = await db.select<{ 'Create Table': string }>('SHOW CREATE TABLE traffic6');
  assert.match(c6?.['Create Table'] ?? '', /`ip` varchar\(39\)/);
  // signed: the column overflows past 2^31-1 (strict mode rejects it)
  await assert.rejects(db.insertTraffic([{ ip: '172.22.200.9', time: '2026-03-01 10:00:00', input: 2_147_483_648, output: 0 }]));
});

test('mariadb: IANA time zone, bulk traffic, kill and restart, stop leaves nothing', async () => {
  const db = await startMariadb({ timezone: 'America/New_York' });
  try {
    const [tz] = await db.select<{ zone: string; sys: string }>('SELECT @@time_zone AS zone, @@system_time_zone AS sys');
    assert.equal(tz?.zone, 'SYSTEM');
    assert.match(tz?.sys ?? '', /^E[SD]T$/);

    const campus = generateCampus({ users: 1000, seed: 5 });
    const res = await loadTraffic(db, campus, { hours: ['2026-03-01 10:00:00', '2026-03-01 11:00:00'] });
    const [n] = await db.select<{ n: number }>('SELECT COUNT(*) AS n FROM traffic');
    assert.equal(Number(n?.n), res.rows);

    const port = db.port;
    const pid = db.pid();
    assert.ok(pid);
    await db.kill();
    assert.equal(alive(pid), false);
    await assert.rejects(db.select('SELECT 1'));
    await db.restart();
    assert.equal(db.port, port);
    const [n2] = await db.select<{ n: number }>('SELECT COUNT(*) AS n FROM traffic');
    assert.equal(Number(n2?.n), res.rows);

    const uid = campus.people[0]?.uid ?? '';
    const ips = campus.ipsOf(uid);
    const [sum] = await db.select<{ s: string | null }>('SELECT SUM(input) AS s FROM traffic WHERE ip IN (?)', [ips]);
    assert.ok(sum);
  } finally {
    const pid = db.pid();
    const dir = db.dir;
    await db.stop();
    if (pid) assert.equal(alive(pid), false);
    assert.equal(existsSync(dir), false);
  }
  await db.stop(); // idempotent
  await assert.rejects(db.restart(), /after stop/);
});

test('mariadb: a requested port that is taken fails with the server log, nothing left', async () => {
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  try {
    const addr = blocker.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    const err = await startMariadb({ port }).then(
      () => assert.fail('should not start'),
      (e: unknown) => e as Error,
    );
    assert.match(err.message, /mariadbd exited during startup[\s\S]*Address already in use/);
    const dir = /\((\/[^)]*rq-mariadb-[^)]+)\)/.exec(err.message)?.[1];
    assert.ok(dir);
    assert.equal(existsSync(dir), false);
  } finally {
    blocker.close();
  }
  await assert.rejects(startMariadb({ timezone: 'Mars/Olympus' }), /unknown time zone/);
});
