// Probe (issue 16, isp-steady): what candidate per-cycle queries on netacct.traffic cost on a
// private MariaDB holding one hour bucket per active machine of a generated campus. Prints
// medians in ms. Usage: node build/bench/sqlprobe.js <users> (as root).
import mysql from 'mysql2/promise';
import { startMariadb } from '../sandbox/mariadb.js';
import { generateCampus, loadTraffic, hourBucket } from '../sandbox/campus.js';
import { sandboxConf } from '../sandbox/conf.js';
import { parseConfig } from '../src/config/config.js';
import { appendQuery } from '../src/netacct/volumes-sql.js';

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
  // the daemon's per-cycle read by id (appendQuery): idle, then after 1 % of the rows inserted, then 30 rows
  const conf = parseConfig(
    sandboxConf({ ldapUrl: 'ldap://127.0.0.1:1', db: { host: db.host, port: db.port, user: db.user, password: db.password }, dir: '/tmp' }),
    'probe.conf',
  );
  const aq = appendQuery(conf.database, 'traffic', 'id');
  const [[m]] = (await c.query({ sql: `SELECT MAX(id) FROM traffic ${W}`, values: [reset, B] }))[0] as [[number]];
  const [ex] = await c.query({ sql: `EXPLAIN ${aq}`, values: [reset, B, m, reset, B, m] });
  for (const r of ex as unknown[][]) console.log(`explain: ${JSON.stringify(r)}`);
  const timeAq = async (what: string): Promise<void> => {
    const t: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await c.query({ sql: aq, values: [reset, B, m, reset, B, m] });
      t.push(performance.now() - t0);
    }
    console.log(`${('appendQuery ' + what).padEnd(34)} ${t.map((x) => x.toFixed(1)).join(' ')} ms`);
  };
  await timeAq('idle');
  const rows = (k: number): string =>
    `INSERT INTO netacct.traffic (ip, time, input, output) VALUES ${Array.from({ length: k }, (_, i) => `('${campus.machines[(i * 7919) % campus.machines.length]!.ip}', '${B}', 1000, 10)`).join(', ')}`;
  await db.query(rows(Math.round(tr.rows / 100)));
  await timeAq('after 1 % rows inserted');
  await db.query(rows(30));
  await timeAq('after 30 rows inserted');
  await c.end();
} finally {
  await db.stop();
}
