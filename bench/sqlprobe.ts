// Probe (issue 16, isp-steady): what candidate per-cycle queries on netacct.traffic cost on a
// private MariaDB holding one hour bucket per active machine of a generated campus. Prints
// medians in ms. Usage: node build/bench/sqlprobe.js <users> (as root).
import mysql from 'mysql2/promise';
import { startMariadb } from '../sandbox/mariadb.js';
import { generateCampus, loadTraffic, hourBucket } from '../sandbox/campus.js';

const n = Number(process.argv[2] ?? 1000);
const now = new Date();
const bucket = hourBucket(now);
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

const db = await startMariadb({ timezone: '+00:00' });
try {
  const campus = generateCampus({
    users: n,
    seed: 1,
    now: new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate())),
    machinesPerUser: [2, 4],
  });
  const tr = await loadTraffic(db, campus, { hours: [bucket] });
  await db.query('ALTER TABLE netacct.traffic ADD INDEX reselqos_time (`time`, `ip`, `input`, `output`)');
  console.log(`${n} users, ${tr.rows} rows, bucket ${bucket}`);
  const c = await mysql.createConnection({ ...db.connectionOptions(), rowsAsArray: true });
  const reset = Math.floor(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()) / 1000);
  const B = bucket;
  const W = 'WHERE `time` >= FROM_UNIXTIME(?) AND `time` >= CAST(? AS DATETIME)';
  const qs: [string, string, unknown[]][] = [
    [
      'signature (now)',
      `SELECT COUNT(*), COALESCE(SUM(input),0), COUNT(input), COALESCE(SUM(output),0), COUNT(output) FROM traffic ${W}`,
      [reset, B],
    ],
    ['count+sums', `SELECT COUNT(*), SUM(input), SUM(output) FROM traffic ${W}`, [reset, B]],
    ['count only', `SELECT COUNT(*) FROM traffic ${W}`, [reset, B]],
    ['max(id)', `SELECT MAX(id) FROM traffic`, []],
    ['chunks id>>10', `SELECT id >> 10, COUNT(*), SUM(input), SUM(output) FROM traffic ${W} GROUP BY 1`, [reset, B]],
    ['chunks id>>14', `SELECT id >> 14, COUNT(*), SUM(input), SUM(output) FROM traffic ${W} GROUP BY 1`, [reset, B]],
    ['rows (now)', `SELECT ip, input, output FROM traffic ${W}`, [reset, B]],
    ['rows+id', `SELECT id, ip, input, output FROM traffic ${W}`, [reset, B]],
    [
      'pk scan sums',
      `SELECT COUNT(*), SUM(input), SUM(output) FROM traffic FORCE INDEX (PRIMARY) WHERE id >= 1 AND \`time\` >= CAST(? AS DATETIME)`,
      [B],
    ],
    [
      'pk range 1%',
      `SELECT id, ip, input, output FROM traffic WHERE id > ? AND \`time\` >= CAST(? AS DATETIME)`,
      [Math.floor(tr.rows * 0.99), B],
    ],
    ['global status', `SHOW GLOBAL STATUS WHERE Variable_name IN ('Innodb_rows_inserted','Innodb_rows_updated','Innodb_rows_deleted')`, []],
  ];
  for (const [name, sql, values] of qs) {
    const t: number[] = [];
    let rows = 0;
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const [r] = await c.query({ sql, values });
      t.push(performance.now() - t0);
      rows = (r as unknown[]).length;
    }
    console.log(`${name.padEnd(18)} ${median(t).toFixed(1).padStart(8)} ms  (min ${Math.min(...t).toFixed(1)}, ${rows} rows)`);
  }
  await c.end();
} finally {
  await db.stop();
}
