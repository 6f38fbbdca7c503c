// Probe (issue 16, isp-steady): the per-cycle volumes fetch and plan, in one process, against a
// private MariaDB holding one hour bucket per active machine of a generated campus, before
// ([database] idColumn empty, the planner given no change hint: the code before issue 16) and
// after (rows read by id, the planner told which ids changed). Both see the same rows: each step
// changes the table, then runs the two. Prints medians (ms). Usage: node build/bench/steadyprobe.js <users>
import { DateTime } from 'luxon';
import { startMariadb, type TrafficRow } from '../sandbox/mariadb.js';
import { generateCampus, hourBucket, loadTraffic } from '../sandbox/campus.js';
import { sandboxConf } from '../sandbox/conf.js';
import { parseConfig } from '../src/config/config.js';
import { MemoryLogger } from '../src/log.js';
import { parseIp } from '../src/net/ip.js';
import { VolumeSource } from '../src/netacct/volumes.js';
import { Planner } from '../src/plan/incremental.js';
import type { Directory, Machine, Owner, Usage } from '../src/sources/types.js';

const n = Number(process.argv[2] ?? 1000);
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const now = new Date();
const bucket = hourBucket(now);
const day = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));

const campus = generateCampus({ users: n, seed: 1, now: day, machinesPerUser: [2, 4] });
const owners: Owner[] = [...campus.people, ...campus.orgs]
  .map((o) => ({
    uid: o.uid,
    dn: o.dn,
    kind: o.kind === 'org' ? ('organisation' as const) : ('person' as const),
    endInternet: o.endInternetDate.getTime(),
    coupure: false,
    ban: [],
    cotiz: o.cotiz,
  }))
  .sort((a, b) => (a.uid < b.uid ? -1 : 1));
const machines: Machine[] = campus.machines.map((m) => ({
  dn: m.dn,
  host: m.host,
  owner: m.ownerUid,
  active: m.active,
  ips4: [m.ip],
  ips6: m.ipv6.map((ip) => parseIp(ip)).flatMap((p) => (p.ok ? [p.ip] : [])),
}));
const directory: Directory = { owners, machines, skipped: [], fetchedAt: now.toISOString() };

const db = await startMariadb({ timezone: '+00:00' });
try {
  const tr = await loadTraffic(db, campus, { hours: [bucket] });
  await db.query('ALTER TABLE netacct.traffic ADD INDEX reselqos_time (`time`, `ip`, `input`, `output`)');
  const conf = (extra: string): ReturnType<typeof parseConfig> =>
    parseConfig(
      sandboxConf({
        ldapUrl: 'ldap://127.0.0.1:1',
        db: { host: db.host, port: db.port, user: db.user, password: db.password },
        dir: '/tmp',
        database: extra,
        timezone: 'UTC',
      }),
      'probe.conf',
    );
  const variants = [
    { name: 'before', config: conf('idColumn ='), hint: false },
    { name: 'after', config: conf(''), hint: true },
  ].map((v) => ({
    ...v,
    src: new VolumeSource(v.config, new MemoryLogger()),
    planner: new Planner(),
    t: new Map<string, { fetch: number[]; plan: number[] }>(),
  }));
  const at = DateTime.fromJSDate(now, { zone: 'utc' });
  const reset = DateTime.fromJSDate(day, { zone: 'utc' });
  const stripped = new WeakMap<Usage, Usage>();
  const cycle = async (kind: string): Promise<void> => {
    for (const v of variants) {
      v.src.setDirectory(directory);
      const t0 = performance.now();
      const u = await v.src.fetch(day, now);
      const t1 = performance.now();
      let given = u;
      if (!v.hint) {
        if (!stripped.has(u)) stripped.set(u, { byIp: u.byIp, dense: u.dense, resetAt: u.resetAt, fetchedAt: u.fetchedAt });
        given = stripped.get(u)!;
      }
      v.planner.plan(v.config, directory, given, at, reset);
      const t2 = performance.now();
      const e = v.t.get(kind) ?? { fetch: [], plan: [] };
      e.fetch.push(t1 - t0);
      e.plan.push(t2 - t1);
      v.t.set(kind, e);
    }
  };
  const active = campus.machines.filter((m) => m.active);
  let next = 0;
  const usersRows = (k: number): TrafficRow[] => {
    const rows: TrafficRow[] = [];
    for (let i = 0; i < k; i++) {
      const uid = campus.people[next++ % campus.people.length]!.uid;
      for (const m of active.filter((x) => x.ownerUid === uid))
        rows.push({ ip: m.ip, time: bucket, input: 2_000_000_000, output: 300_000_000 });
    }
    return rows;
  };
  await cycle('cold');
  await cycle('settle');
  await cycle('settle');
  for (let i = 0; i < 5; i++) await cycle('idle');
  for (let i = 0; i < 5; i++) {
    await db.insertTraffic(usersRows(10));
    await cycle('fixed-10 (inserts)');
  }
  for (let i = 0; i < 5; i++) {
    await db.insertTraffic(usersRows(Math.max(1, Math.round(n / 100))));
    await cycle('steady 1 % (inserts)');
  }
  for (let i = 0; i < 3; i++) {
    await db.query(`UPDATE netacct.traffic SET input = input + 1000 ORDER BY RAND(${i}) LIMIT 30`);
    await cycle('30 rows updated in place');
  }
  console.log(`${n} users, ${tr.rows} rows at load; medians in ms (fetch / plan)`);
  for (const kind of variants[0]!.t.keys()) {
    const cells = variants.map((v) => {
      const e = v.t.get(kind)!;
      return `${v.name} ${median(e.fetch).toFixed(1)} / ${median(e.plan).toFixed(1)}`;
    });
    console.log(`${kind.padEnd(26)} ${cells.join('   ')}`);
  }
  for (const v of variants) await v.src.close();
} finally {
  await db.stop();
}
