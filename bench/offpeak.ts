// bench/offpeak.ts — what the off-peak window ([qos] offPeakFrom/To/Weight) costs the volume
// source: with a window every netacct query also returns UNIX_TIMESTAMP(time) and each row is
// weighted by its hour (src/netacct/volumes-window.ts). On a private MariaDB holding one row per
// user (one IPv4 each) per hour for the 8 hours since the reset, the same VolumeSource is built
// without a window and with 23:00-07:00 at 0.25, each with the directory of those IPs (as the
// daemon does), and timed interleaved: the cold fetch (a fresh source, everything since the
// reset) and a steady fetch (30 rows appended to the open hour: the read by id). Prints one JSON
// line of medians (ms), the ratios window / no window, and the heap (and ArrayBuffers) each source
// retains with its Usage after a full GC. Benchmark-only code.
//   node --expose-gc build/bench/offpeak.js [users]   (as root: it starts mariadbd)
//
// The server's and [qos]'s zone is the fixed offset that puts the current hour at 03:00 local, so
// the 8 hours (20:00 to 03:00) straddle the window whatever the time of day the bench runs.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMariadb, type TrafficRow } from '../sandbox/mariadb.js';
import { sandboxConf } from '../sandbox/conf.js';
import { parseConfig, type Config } from '../src/config/config.js';
import { MemoryLogger } from '../src/log.js';
import { VolumeSource } from '../src/netacct/volumes.js';
import { BOUNDARY_SQL } from '../src/netacct/volumes-sql.js';
import type { Directory, Machine, Owner, Usage } from '../src/sources/types.js';

const MB = 1024 * 1024;
const H = 3600_000;
const ROUNDS = 5;
const HOURS = 8;
const APPENDED = 30;
const gc = (): void => (globalThis as { gc?: () => void }).gc?.();
const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 50));
/**
 * live heap and ArrayBuffer backing stores (the sums' typed arrays live outside the V8 heap), MB
 * (a timer first: a settled promise holds its value until its continuation returns)
 */
async function heap(): Promise<{ heap: number; buffers: number }> {
  await tick();
  gc();
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed / MB, buffers: m.arrayBuffers / MB };
}
const median = (a: readonly number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const r1 = (x: number): number => Math.round(x * 10) / 10;
const r3 = (x: number): number => Math.round(x * 1000) / 1000;

const users = Number(process.argv[2] ?? 100_000);
if (!Number.isSafeInteger(users) || users < 1 || users > 1 << 24)
  throw new Error(`usage: offpeak.js [users] (1 to 2^24), not ${process.argv[2]}`);
if ((globalThis as { gc?: unknown }).gc === undefined) throw new Error('run with node --expose-gc');

// The fixed offset (whole hours, -11..+12) that makes the current UTC hour 03:00 local.
const nowMs = Date.now();
const hourStart = Math.floor(nowMs / H) * H;
const offset = ((((3 - new Date(hourStart).getUTCHours()) % 24) + 24 + 11) % 24) - 11;
const sqlZone = `${offset < 0 ? '-' : '+'}${String(Math.abs(offset)).padStart(2, '0')}:00`;
// Etc/GMT-N is UTC+N (POSIX sign)
const ianaZone = offset === 0 ? 'Etc/UTC' : `Etc/GMT${offset > 0 ? '-' : '+'}${Math.abs(offset)}`;
/** 'YYYY-MM-DD HH:00:00' of the hour starting at `ms`, in the server's (fixed) zone */
const bucketOf = (ms: number): string => new Date(ms + offset * H).toISOString().slice(0, 13).replace('T', ' ') + ':00:00';
const resetAt = new Date(hourStart - (HOURS - 1) * H); // 20:00 local
const buckets = Array.from({ length: HOURS }, (_, h) => bucketOf(resetAt.getTime() + h * H));
const ipOf = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

/** `n` owners with one machine each (one IPv4). */
function directoryOf(n: number): Directory {
  const owners: Owner[] = [];
  const machines: Machine[] = [];
  for (let i = 0; i < n; i++) {
    const uid = `u${i}`;
    owners.push({ uid, dn: `uid=${uid},ou=people`, kind: 'person', endInternet: null, coupure: false, ban: [], cotiz: [] });
    machines.push({ dn: `host=pc${i},ou=machines`, host: `pc${i}`, owner: uid, active: true, ips4: [ipOf(i)], ips6: [] });
  }
  return { owners, machines, skipped: [], fetchedAt: new Date().toISOString() };
}

const dir = mkdtempSync(join(tmpdir(), 'rq-offpeak-'));
const db = await startMariadb({ timezone: sqlZone });
try {
  const rows: TrafficRow[] = [];
  let seed = 7;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (const time of buckets)
    for (let i = 0; i < users; i++) rows.push({ ip: ipOf(i), time, input: Math.floor(rnd() * 1e8), output: Math.floor(rnd() * 1e6) });
  const t0 = performance.now();
  await db.insertTraffic(rows);
  const insertS = (performance.now() - t0) / 1000;
  rows.length = 0;
  const boundaryNow = async (): Promise<string> => Object.values((await db.select(BOUNDARY_SQL))[0]!)[0] as string;
  const boundaryAtStart = await boundaryNow();

  const config = (qos: string): Config =>
    parseConfig(
      sandboxConf({
        ldapUrl: 'ldap://127.0.0.1:1',
        db: { host: db.host, port: db.port, user: db.user, password: db.password },
        dir,
        timezone: ianaZone,
        qos,
      }),
      'offpeak.conf',
    );
  const variants = {
    noWindow: config(''),
    window: config('offPeakFrom = 23:00\noffPeakTo = 07:00\noffPeakWeight = 0.25'),
  } as const;
  const directory = directoryOf(users);
  const log = new MemoryLogger();
  const open = (c: Config): VolumeSource => {
    const s = new VolumeSource(c, log);
    s.setDirectory(directory);
    return s;
  };
  let appendedRound = 0;
  const append = (): Promise<void> =>
    db.insertTraffic(
      Array.from({ length: APPENDED }, (_, k) => ({
        ip: ipOf((appendedRound++ * 7919 + k * 104_729) % users),
        time: buckets[HOURS - 1]!,
        input: 1000,
        output: 10,
      })),
    );

  const times = { noWindow: { cold: [] as number[], steady: [] as number[] }, window: { cold: [] as number[], steady: [] as number[] } };
  const sums: Record<string, { down: number; up: number }> = {};
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of ['noWindow', 'window'] as const) {
      const src = open(variants[name]);
      try {
        let t = performance.now();
        const cold = await src.fetch(resetAt);
        times[name].cold.push(performance.now() - t);
        await append();
        t = performance.now();
        const steady = await src.fetch(resetAt);
        times[name].steady.push(performance.now() - t);
        if (steady === cold) throw new Error(`${name}: the steady fetch saw none of the ${APPENDED} rows appended`);
        let down = 0;
        let up = 0;
        for (const v of cold.dense!.down) down += v;
        for (const v of cold.dense!.up) up += v;
        sums[name] = { down, up };
      } finally {
        await src.close();
      }
    }
  }

  /** heap and buffers retained by one source and the Usage of its cold fetch (its caches, the sums), MB */
  const retained = async (c: Config): Promise<{ heap: number; buffers: number }> => {
    const h0 = await heap();
    const src = open(c);
    let usage: Usage | null = await src.fetch(resetAt);
    await src.close();
    const h1 = await heap();
    if (usage.resetAt !== resetAt.toISOString()) throw new Error('unexpected usage'); // keeps both alive until h1
    usage = null;
    return { heap: r1(h1.heap - h0.heap), buffers: r1(h1.buffers - h0.buffers) };
  };
  const retainedNoWindowMB = await retained(variants.noWindow);
  const retainedWindowMB = await retained(variants.window);

  const m = {
    coldNoWindowMs: r1(median(times.noWindow.cold)),
    coldWindowMs: r1(median(times.window.cold)),
    steadyNoWindowMs: r1(median(times.noWindow.steady)),
    steadyWindowMs: r1(median(times.window.steady)),
  };
  console.log(
    JSON.stringify({
      users,
      rows: users * HOURS,
      hours: `${buckets[0]} .. ${buckets[HOURS - 1]} (${sqlZone})`,
      window: '23:00-07:00 at 0.25',
      boundary: boundaryAtStart === (await boundaryNow()) ? boundaryAtStart : `${boundaryAtStart} -> moved during the run`,
      insertS: r1(insertS),
      rounds: ROUNDS,
      ...m,
      coldRatio: r3(m.coldWindowMs / m.coldNoWindowMs),
      steadyRatio: r3(m.steadyWindowMs / m.steadyNoWindowMs),
      retainedNoWindowMB,
      retainedWindowMB,
      // counted / raw bytes downloaded: (3 hours at 1 + 5 at 0.25) / 8 = 0.53 with even hours
      countedShare: r3(sums.window!.down / sums.noWindow!.down),
      coldMs: { noWindow: times.noWindow.cold.map(r1), window: times.window.cold.map(r1) },
      steadyMs: { noWindow: times.noWindow.steady.map(r1), window: times.window.steady.map(r1) },
    }),
  );
} finally {
  await db.stop();
  rmSync(dir, { recursive: true, force: true });
}
