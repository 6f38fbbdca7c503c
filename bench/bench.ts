// bench/bench.ts — `npm run bench`: reselqos' cycle measured on real servers and a real
// kernel, side by side with baselines, at 1 000 / 3 000 / 10 000 / 100 000 users
// (`--quick`: 1 000 only, for CI).
//
// Per size: a deterministic campus (~3 machines per user) bulk-loaded into a private slapd
// (slapadd) and one hour bucket of traffic per machine into a private MariaDB; a gateway
// namespace (createGateway, interfaces int0/ext0) whose kernel the daemon drives through
// `[firewall] netns`. The daemon side runs in a child process (worker.ts) so its peak RSS is
// the daemon's only. Measured there: cold first cycles (empty kernel, fresh process each),
// idle cycles (nothing changes), steady cycles in which 1 % of the users cross a volume limit
// (rows added to MariaDB between cycles), cycles moving a fixed 10 users, then a
// piece-by-piece probe of where time and memory go.
//
// Baselines, on the exact moves of each steady cycle (report.result.plan.sets):
//   1. one `ipset del` + one `ipset add` process per IP (sampled, extrapolated), as the original
//      Python scripts did — spawned inside the namespace (direct and through /bin/sh), and from
//      outside through `ip netns exec` per call;
//   2. a hand-written optimal `ipset restore` batch of exactly those moves (the kernel's limit);
//      our own ipset batch replayed alone on the same moves;
//   3. `ldapsearch` (paged, anonymous, the daemon's bases/filters/attributes) and the `mariadb`
//      client running the daemon's volumes query.
//
// Output: bench/results/<YYYY-MM-DD>.json (+ .md with the tables), the tables on stdout, and
// pass/fail per target. Everything started here (slapd, mariadbd, namespaces, worker, temp
// dirs) is stopped and removed at the end, on error, and on SIGINT/SIGTERM.
// Benchmark-only code; never used by the daemon. Needs root.

import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, tmpdir, release } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DateTime } from 'luxon';
import { parseConfig, type Config } from '../src/config/config.js';
import { resetInstant } from '../src/policy/policy.js';
import { BOUNDARY_SQL, recentVolumesQuery } from '../src/netacct/volumes-sql.js';
import { CHANGE_MARGIN_MS } from '../src/state/ldapsync.js';
import { startSlapd } from '../sandbox/slapd.js';
import { startMariadb, type MariadbServer, type TrafficRow } from '../sandbox/mariadb.js';
import { createGateway, type Gateway } from '../sandbox/netns.js';
import { generateCampus, loadCampus, loadTraffic } from '../sandbox/campus.js';
import { sandboxConf } from '../sandbox/conf.js';
import { measureStart } from './startphase.js';
import { renderPlot } from './plot.js';
import { earlierTargets, issue16Targets, type Target } from './targets.js';
import {
  MB,
  median,
  round,
  vmHwmMB,
  type SizeResult,
  type CycleSummary,
  type Envelope,
  type MemInfo,
  type MemStep,
  type Picked,
  type Probe,
  type Reply,
  type Request,
  type SetMove,
  type Timings,
} from './lib.js';

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(here, '..', '..'); // build/bench -> repo
const WORKER = join(here, 'worker.js');
const SPAWNER = join(here, 'spawner.js');
const CLI = join(ROOT, 'dist', 'cli.js');

// ------------------------------------------------------------------ options

interface Options {
  sizes: number[];
  cold: number;
  idle: number;
  steady: number;
  fixed: number;
  fixedUsers: number;
  spawnSample: number;
  spawnSampleExtra: number;
  fetchRuns: number;
  hours: number;
  probe: boolean;
  outDir: string;
  quick: boolean;
  /** add the index on the hour bucket docs/INSTALL.md asks for */
  timeIndex: boolean;
  /** the restart measures (reselqos start / run from a snapshot; bench/startphase.ts) */
  start: boolean;
  /** the cost-growth PNG beside the JSON (bench/plot.ts) */
  plot: boolean;
  /** --max-old-space-size for the daemon processes (worker, start, run); null = node's default (~4 GB here) */
  heapMB: number | null;
}

function usage(): string {
  return `usage: npm run bench -- [--quick] [--sizes 1000,3000,10000,100000] [--steady N] [--cold N] [--idle N]
       [--fixed N] [--fixed-users N] [--spawn-sample N] [--fetch-runs N] [--hours N] [--no-probe] [--no-time-index]
       [--no-start] [--no-plot] [--heap-mb N] [--out DIR]`;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    sizes: [1000, 3000, 10_000, 100_000],
    cold: 3,
    idle: 3,
    steady: 5,
    fixed: 3,
    fixedUsers: 10,
    spawnSample: 200,
    spawnSampleExtra: 50,
    fetchRuns: 5,
    hours: 1,
    probe: true,
    outDir: join(ROOT, 'bench', 'results'),
    quick: false,
    timeIndex: true,
    start: true,
    plot: true,
    heapMB: null,
  };
  const int = (v: string | undefined, name: string, min = 1): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`${name}: expected an integer >= ${min}, got ${v}\n${usage()}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = (): string | undefined => argv[++i];
    switch (a) {
      case '--quick':
        o.quick = true;
        o.sizes = [1000];
        break;
      case '--sizes':
        o.sizes = (next() ?? '').split(',').map((s) => int(s.replace(/_/g, ''), '--sizes', 10));
        break;
      case '--steady':
        o.steady = int(next(), a);
        break;
      case '--cold':
        o.cold = int(next(), a);
        break;
      case '--idle':
        o.idle = int(next(), a);
        break;
      case '--fixed':
        o.fixed = int(next(), a, 0);
        break;
      case '--fixed-users':
        o.fixedUsers = int(next(), a);
        break;
      case '--spawn-sample':
        o.spawnSample = int(next(), a);
        break;
      case '--fetch-runs':
        o.fetchRuns = int(next(), a);
        break;
      case '--hours':
        o.hours = int(next(), a);
        break;
      case '--no-probe':
        o.probe = false;
        break;
      case '--no-time-index':
        o.timeIndex = false;
        break;
      case '--no-start':
        o.start = false;
        break;
      case '--no-plot':
        o.plot = false;
        break;
      case '--heap-mb':
        o.heapMB = int(next(), a, 64);
        break;
      case '--out':
        o.outDir = resolve(next() ?? '');
        break;
      case '-h':
      case '--help':
        console.log(usage());
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${a}\n${usage()}`);
    }
  }
  return o;
}

// ------------------------------------------------------------------ cleanup

const cleanups: { name: string; fn: () => Promise<void> }[] = [];
let cleaning: Promise<void> | null = null;

function onCleanup(name: string, fn: () => Promise<void>): () => void {
  const entry = { name, fn };
  cleanups.push(entry);
  return () => {
    const i = cleanups.indexOf(entry);
    if (i >= 0) cleanups.splice(i, 1);
  };
}

function cleanupAll(): Promise<void> {
  cleaning ??= (async () => {
    while (cleanups.length > 0) {
      const c = cleanups.pop()!;
      try {
        await c.fn();
      } catch (e) {
        console.error(`bench: cleanup of ${c.name} failed: ${(e as Error).message}`);
      }
    }
  })();
  return cleaning;
}

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    console.error(`\nbench: ${sig}: stopping everything it started…`);
    void cleanupAll().finally(() => process.exit(130));
  });
}

const say = (s: string): void => {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);
};

// ------------------------------------------------------------------ worker (daemon side)

/** node options of every daemon-side process (--heap-mb) */
let daemonNodeArgs: string[] = [];

class Worker {
  private readonly child: ChildProcess;
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly unregister: () => void;
  private exited = false;

  constructor() {
    this.child = fork(WORKER, [], {
      execArgv: ['--expose-gc', ...daemonNodeArgs],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced',
    });
    this.child.on('message', (m: Reply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.value);
      else p.reject(new Error(`worker: ${m.error}`));
    });
    this.child.on('exit', (code, signal) => {
      this.exited = true;
      for (const p of this.pending.values()) p.reject(new Error(`worker exited (code ${code}, signal ${signal})`));
      this.pending.clear();
    });
    this.unregister = onCleanup('worker', () => this.kill());
  }

  call<T>(req: Request): Promise<T> {
    if (this.exited) return Promise.reject(new Error('worker is gone'));
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ ...req, id } satisfies Envelope);
    });
  }

  async stop(): Promise<void> {
    if (!this.exited) {
      const gone = new Promise<void>((r) => this.child.once('exit', () => r()));
      await this.call({ cmd: 'exit' }).catch(() => undefined);
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
    }
    await this.kill();
    this.unregister();
  }

  private async kill(): Promise<void> {
    if (this.exited || this.child.pid === undefined) return;
    const gone = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.kill('SIGKILL');
    await gone;
  }
}

// ------------------------------------------------------------------ baselines

/** A hand-written `ipset restore` batch of exactly these moves (or of their inverse). */
function optimalBatch(sets: readonly SetMove[], inverse: boolean): string {
  const out: string[] = [];
  for (const s of sets) {
    const add = inverse ? s.del : s.add;
    const del = inverse ? s.add : s.del;
    if (add.length === 0 && del.length === 0) continue;
    out.push(`create ${s.name} hash:ip family ${s.family} hashsize 1024 maxelem ${s.maxelem} -exist`);
    for (const ip of del) out.push(`del ${s.name} ${ip}`);
    for (const ip of add) out.push(`add ${s.name} ${ip}`);
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

interface IpMove {
  ip: string;
  from: string | null;
  to: string | null;
}

/** Pairs each IP's del from one set with its add to another set of the same family and direction. */
function ipMoves(sets: readonly SetMove[]): IpMove[] {
  const byKey = new Map<string, IpMove>();
  for (const s of sets) {
    const kind = s.name.replace(/\d+$/, ''); // qos_d, qos_u, v6qos_d, v6qos_u
    for (const ip of s.del) {
      const k = `${kind} ${ip}`;
      const m = byKey.get(k) ?? { ip, from: null, to: null };
      m.from = s.name;
      byKey.set(k, m);
    }
    for (const ip of s.add) {
      const k = `${kind} ${ip}`;
      const m = byKey.get(k) ?? { ip, from: null, to: null };
      m.to = s.name;
      byKey.set(k, m);
    }
  }
  return [...byKey.values()];
}

/** The per-IP process commands of moves (forward) or of their inverse. */
function spawnOps(moves: readonly IpMove[], inverse: boolean): string[][] {
  const ops: string[][] = [];
  for (const m of moves) {
    const from = inverse ? m.to : m.from;
    const to = inverse ? m.from : m.to;
    if (from) ops.push(['del', from, m.ip]);
    if (to) ops.push(['add', to, m.ip]);
  }
  return ops;
}

function sample<T>(xs: readonly T[], n: number): T[] {
  if (xs.length <= n) return [...xs];
  const out: T[] = [];
  const step = xs.length / n;
  for (let i = 0; i < n; i++) out.push(xs[Math.floor(i * step)]!);
  return out;
}

async function restore(gw: Gateway, text: string): Promise<number> {
  if (!text) return 0;
  const t0 = performance.now();
  await gw.exec('gw', 'ipset', ['restore'], { input: text, timeoutMs: 120_000 });
  return performance.now() - t0;
}

/** Runs ops one process each inside the gw namespace (spawner.js); ms per op. */
async function spawnInNs(gw: Gateway, mode: 'direct' | 'shell', ops: string[][]): Promise<{ ms: number; n: number }> {
  const r = await gw.exec('gw', process.execPath, [SPAWNER], { input: JSON.stringify({ mode, ops }), timeoutMs: 600_000 });
  const out = JSON.parse(r.stdout) as { ms: number; n: number; failures: number; firstError: string };
  if (out.failures > 0) throw new Error(`baseline 1 (${mode}): ${out.failures} of ${out.n} ipset processes failed, e.g. ${out.firstError}`);
  return { ms: out.ms, n: out.n };
}

/** Runs ops as `ip netns exec <gw> ipset …`, one process chain each, from this namespace. */
function spawnViaNetnsExec(gw: Gateway, ops: string[][]): { ms: number; n: number } {
  const t0 = performance.now();
  for (const op of ops) {
    const r = spawnSync('ip', ['netns', 'exec', gw.names.gw, 'ipset', ...op], { stdio: ['ignore', 'ignore', 'pipe'] });
    if (r.status !== 0) throw new Error(`baseline 1 (netns exec): ipset ${op.join(' ')}: ${String(r.stderr).trim()}`);
  }
  return { ms: performance.now() - t0, n: ops.length };
}

/** Runs a command, counts the lines (or "dn:" lines) of its stdout; wall time. */
function runCounting(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  count: RegExp,
): Promise<{ ms: number; matches: number; bytes: number }> {
  return new Promise((resolvePromise, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let matches = 0;
    let bytes = 0;
    let carry = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      bytes += d.length;
      const text = carry + d;
      const lastNl = text.lastIndexOf('\n');
      const whole = lastNl >= 0 ? text.slice(0, lastNl + 1) : '';
      carry = lastNl >= 0 ? text.slice(lastNl + 1) : text;
      const m = whole.match(count);
      if (m) matches += m.length;
    });
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 4000) stderr += d.toString();
    });
    child.once('error', reject);
    child.once('close', (code) => {
      const ms = performance.now() - t0;
      if (carry) {
        const m = `${carry}\n`.match(count);
        if (m) matches += m.length;
      }
      if (code !== 0) reject(new Error(`${cmd} exited ${code}: ${stderr.trim()}`));
      else resolvePromise({ ms, matches, bytes });
    });
  });
}

async function ldapsearchOnce(config: Config): Promise<{ ms: number; entries: number }> {
  const l = config.ldap;
  const a = l.attrs;
  const ownerAttrs = [a.uid, a.endInternet, a.coupure, a.ban, a.cotiz];
  const hostAttrs = [a.host, a.owner, a.ip, a.ip6, a.zone];
  const searches: [string, string, string[]][] = [
    [l.basePeople, l.peopleFilter, ownerAttrs],
    [l.baseOrga, l.orgaFilter, ownerAttrs],
    [l.baseHosts, l.hostsFilter, hostAttrs],
  ];
  const t0 = performance.now();
  // the daemon runs its three searches concurrently, one connection each: so does the baseline
  const res = await Promise.all(
    searches.map(([base, filter, attrs]) =>
      runCounting(
        'ldapsearch',
        ['-x', '-H', l.url, '-LLL', '-o', 'ldif-wrap=no', '-E', `pr=${l.pageSize}/noprompt`, '-b', base, '-s', 'sub', filter, ...attrs],
        process.env,
        /^dn:/gm,
      ),
    ),
  );
  return { ms: performance.now() - t0, entries: res.reduce((s, r) => s + r.matches, 0) };
}

async function mariadbOnce(config: Config, resetUnix: number, db: MariadbServer): Promise<{ ms: number; rows: number }> {
  const d = config.database;
  // The daemon's per-cycle query (rows at or after the reset and the open hour bucket(s)), the
  // boundary computed by the server as the daemon asks it to.
  const sql = recentVolumesQuery(d, d.table)
    .replace('?', String(resetUnix))
    .replace('CAST(? AS DATETIME)', `CAST((${BOUNDARY_SQL}) AS DATETIME)`);
  const r = await runCounting(
    'mariadb',
    ['--no-defaults', '--protocol=TCP', '-h', d.host, '-P', String(d.port), '-u', d.user, '-D', d.db, '-B', '-N', '-e', sql],
    { ...process.env, MYSQL_PWD: db.password },
    /\n/g,
  );
  return { ms: r.ms, rows: r.matches };
}

// ------------------------------------------------------------------ one size

type PhaseMedians = Timings;

function medianTimings(xs: readonly CycleSummary[]): PhaseMedians {
  const keys: (keyof Timings)[] = ['ldapMs', 'mysqlMs', 'planMs', 'readMs', 'diffMs', 'applyMs', 'totalMs'];
  const out = {} as PhaseMedians;
  for (const k of keys) out[k] = round(median(xs.map((x) => x.timings[k])));
  return out;
}

function memAvailableMB(): number {
  const m = /^MemAvailable:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function check(cond: boolean, msg: string, warnings: string[]): void {
  if (!cond) {
    warnings.push(msg);
    say(`WARNING: ${msg}`);
  }
}

async function runSize(n: number, o: Options, gw: Gateway, clockIso: string, baseDir: string): Promise<SizeResult> {
  const warnings: string[] = [];
  const clock = DateTime.fromISO(clockIso, { zone: 'utc' });
  const bucket = clock.toFormat('yyyy-MM-dd HH:00:00');
  // --hours N: the clock's hour and the N-1 before it (never before the daily reset)
  const hours: string[] = [];
  for (let h = 0; h < o.hours; h++) hours.push(clock.minus({ hours: h }).toFormat('yyyy-MM-dd HH:00:00'));
  say(`== ${n} users: generating the campus`);
  const tg = performance.now();
  let campus: ReturnType<typeof generateCampus> | null = generateCampus({
    users: n,
    seed: 1,
    now: new Date(Date.UTC(clock.year, clock.month - 1, clock.day)),
    machinesPerUser: [2, 4],
  });
  const generateMs = performance.now() - tg;
  let memMin = memAvailableMB();
  const memSample = (): void => {
    memMin = Math.min(memMin, memAvailableMB());
  };
  const hosts = campus.machines.length;
  const ldapEntries = campus.entryCount;

  const [slapd, db] = await Promise.all([startSlapd(), startMariadb({ timezone: '+00:00' })]);
  const unSlapd = onCleanup('slapd', () => slapd.stop());
  const unDb = onCleanup('mariadb', () => db.stop());
  try {
    say(`   slapadd of ${ldapEntries} entries, traffic rows into MariaDB`);
    const [ld, tr] = await Promise.all([loadCampus(slapd, campus, { method: 'slapadd' }), loadTraffic(db, campus, { hours })]);
    memSample();
    campus = null; // the generator's memory goes; the daemon runs in its own process anyway
    if (o.timeIndex) {
      // As docs/INSTALL.md asks of a production netacct database.
      const ti = performance.now();
      await db.query('ALTER TABLE netacct.traffic ADD INDEX reselqos_time (`time`, `ip`, `input`, `output`)');
      say(`   index on the hour bucket added in ${Math.round(performance.now() - ti)} ms`);
    }

    const dir = mkdtempSync(join(baseDir, `n${n}-`));
    const confText = sandboxConf({
      ldapUrl: slapd.url,
      db: { host: db.host, port: db.port, user: db.user, password: db.password },
      dir,
      // the campus generator puts machines beyond its suffix pool under 10.16.0.0/12: user networks too
      firewall: `netns = ${gw.names.gw}\nuserNetworks = 172.22.0.0/16, 10.0.0.0/8`,
      timezone: 'UTC',
    }).replace(/^pageSize = \d+$/m, 'pageSize = 500'); // same page size as the ldapsearch baseline (-E pr=500)
    const confFile = join(dir, 'qos.conf');
    writeFileSync(confFile, confText, { mode: 0o600 });
    chmodSync(confFile, 0o600);
    const config = parseConfig(confText, confFile, { mode: 0o600 });
    const resetUnix = Math.floor(resetInstant(config.qos, clock).toJSDate().getTime() / 1000);

    // ---- cold: a fresh process and an empty kernel each time
    const cold: CycleSummary[] = [];
    const coldRss: number[] = [];
    /** the spawn helper's peak RSS per worker (a process of its own, counted with the daemon's) */
    const helperRss: number[] = [];
    let w: Worker | null = null;
    for (let r = 0; r < o.cold; r++) {
      w = new Worker();
      await w.call<MemInfo>({ cmd: 'init', conf: confText, clockIso });
      await w.call({ cmd: 'clear' });
      const s = await w.call<CycleSummary>({ cmd: 'cycle', withSets: false });
      if (!s.ok) throw new Error(`cold cycle failed: ${s.error}`);
      check(
        s.counts !== null && s.counts.ipset.add >= s.ips * 2,
        `cold cycle ${r + 1}: ${s.counts?.ipset.add} set adds for ${s.ips} IPs (expected at least 2 per IP)`,
        warnings,
      );
      cold.push(s);
      const m = await w.call<MemInfo>({ cmd: 'mem' });
      coldRss.push(m.maxRssMB + (m.helperMaxRssMB ?? 0));
      if (m.helperMaxRssMB !== null) helperRss.push(m.helperMaxRssMB);
      say(
        `   cold ${r + 1}/${o.cold}: ${Math.round(s.timings.totalMs)} ms (ldap ${Math.round(s.timings.ldapMs)}, mysql ${Math.round(s.timings.mysqlMs)}, plan ${Math.round(s.timings.planMs)}, read ${Math.round(s.timings.readMs)}, diff ${Math.round(s.timings.diffMs)}, apply ${Math.round(s.timings.applyMs)}), maxRSS ${Math.round(m.maxRssMB)} MB`,
      );
      if (r < o.cold - 1) {
        await w.stop();
        w = null;
      }
    }
    if (!w) throw new Error('no worker');
    memSample();
    const last = cold[cold.length - 1]!;

    // ---- settle: the daemon's next timer cycle comes an interval later; by then its LDAP change
    // search can confirm the watermark (src/state/sources.ts), so that entries of the bulk load
    // near the newest modifyTimestamp stop coming back. One untimed cycle after that wait.
    await new Promise((r) => setTimeout(r, CHANGE_MARGIN_MS + 500));
    const settle = await w.call<CycleSummary>({ cmd: 'cycle', withSets: false });
    if (!settle.ok) throw new Error(`settle cycle failed: ${settle.error}`);
    say(`   settle (watermark confirmation) cycle: ${Math.round(settle.timings.totalMs)} ms (ldap ${Math.round(settle.timings.ldapMs)})`);

    // ---- idle: nothing changes
    const idle: CycleSummary[] = [];
    for (let i = 0; i < o.idle; i++) {
      const s = await w.call<CycleSummary>({ cmd: 'cycle', withSets: false });
      if (!s.ok) throw new Error(`idle cycle failed: ${s.error}`);
      check(
        s.counts !== null &&
          s.counts.ipset.add + s.counts.ipset.del + s.counts.tc.change + s.counts.tc.add + s.counts.iptables === 0 &&
          !s.applied,
        `idle cycle ${i + 1} changed something: ${JSON.stringify(s.counts)}`,
        warnings,
      );
      idle.push(s);
    }
    say(`   idle: median ${round(median(idle.map((s) => s.timings.totalMs)))} ms`);

    // ---- steady: 1 % of the users cross a limit between cycles; baselines on the same moves
    const k = Math.max(1, Math.round(n / 100));
    const steady: CycleSummary[] = [];
    const per: SizeResult['perSteadyCycle'] = [];
    const spawnDirect: { ms: number; n: number }[] = [];
    const spawnShell: { ms: number; n: number }[] = [];
    const spawnNetns: { ms: number; n: number }[] = [];
    const insert = async (p: Picked): Promise<void> => {
      const rows: TrafficRow[] = p.rows.map((r) => ({ ip: r.ip, time: bucket, input: r.input, output: r.output }));
      await db.insertTraffic(rows);
    };
    for (let i = 0; i < o.steady; i++) {
      const p = await w.call<Picked>({ cmd: 'pick', users: k });
      await insert(p);
      const s = await w.call<CycleSummary>({ cmd: 'cycle', withSets: true });
      if (!s.ok) throw new Error(`steady cycle failed: ${s.error}`);
      check(
        s.moves.down === k && s.moves.up === k,
        `steady cycle ${i + 1}: moves d${s.moves.down}/u${s.moves.up}, expected ${k} each`,
        warnings,
      );
      check(
        s.counts?.ipset.add === p.ips * 2 && s.counts?.ipset.del === p.ips * 2,
        `steady cycle ${i + 1}: ipset add/del ${s.counts?.ipset.add}/${s.counts?.ipset.del}, expected ${p.ips * 2} each`,
        warnings,
      );
      check(
        !s.fullRead && s.warnings.length === 0,
        `steady cycle ${i + 1}: full read-back or warnings: ${s.warnings.join(' | ')}`,
        warnings,
      );
      check(s.incremental, `steady cycle ${i + 1}: the set operations were diffed, not the planner's delta`, warnings);
      steady.push(s);
      const sets = s.sets ?? [];
      if (sets.length === 0 || s.batchBytes.ipset === 0) {
        throw new Error(
          `steady cycle ${i + 1} changed no set: ${JSON.stringify({ moves: s.moves, counts: s.counts, applied: s.applied, fullRead: s.fullRead, incremental: s.incremental, spawns: s.spawns, timings: s.timings, warnings: s.warnings, picked: { users: p.uids.length, ips: p.ips } })}`,
        );
      }
      const fwd = optimalBatch(sets, false);
      const inv = optimalBatch(sets, true);
      // baseline 2: the optimal batch, and our own batch alone, each from the pre-cycle state
      const restoreTimes: number[] = [];
      const ownTimes: number[] = [];
      for (let rep = 0; rep < 3; rep++) {
        await restore(gw, inv);
        restoreTimes.push(await restore(gw, fwd));
        await restore(gw, inv);
        ownTimes.push(await w.call<number>({ cmd: 'applyOwnIpset' }));
      }
      // baseline 1: one process per IP and operation, on a sample of these moves (inverse, then forward again)
      const moves = ipMoves(sets);
      const sm = sample(moves, o.spawnSample);
      const d1 = await spawnInNs(gw, 'direct', spawnOps(sm, true));
      const d2 = await spawnInNs(gw, 'direct', spawnOps(sm, false));
      spawnDirect.push({ ms: d1.ms + d2.ms, n: d1.n + d2.n });
      const sx = sample(moves, o.spawnSampleExtra);
      const s1 = await spawnInNs(gw, 'shell', spawnOps(sx, true));
      const s2 = await spawnInNs(gw, 'shell', spawnOps(sx, false));
      spawnShell.push({ ms: s1.ms + s2.ms, n: s1.n + s2.n });
      const x1 = spawnViaNetnsExec(gw, spawnOps(sx, true));
      const x2 = spawnViaNetnsExec(gw, spawnOps(sx, false));
      spawnNetns.push({ ms: x1.ms + x2.ms, n: x1.n + x2.n });
      const adds = s.counts?.ipset.add ?? 0;
      const dels = s.counts?.ipset.del ?? 0;
      const perOp = (d1.ms + d2.ms) / (d1.n + d2.n);
      per.push({
        applyMs: round(s.timings.applyMs, 2),
        ownIpsetApplyMs: round(median(ownTimes), 2),
        baselineRestoreMs: round(median(restoreTimes), 2),
        baselineSpawnMs: round(perOp * (adds + dels), 1),
        adds,
        dels,
        tcBytes: s.batchBytes.tc,
      });
      say(
        `   steady ${i + 1}/${o.steady}: ${Math.round(s.timings.totalMs)} ms, moves d${s.moves.down}/u${s.moves.up}, +${adds}/-${dels} set entries; apply ${round(s.timings.applyMs)} ms, own ipset ${round(median(ownTimes))} ms, optimal restore ${round(median(restoreTimes))} ms, spawn ${round(perOp, 2)} ms/op`,
      );
    }

    // ---- fixed: the same small number of users moves at every size
    const fixed: CycleSummary[] = [];
    let fixedMoves: SizeResult['fixedMoves'] = null;
    for (let i = 0; i < o.fixed; i++) {
      const p = await w.call<Picked>({ cmd: 'pick', users: o.fixedUsers });
      await insert(p);
      const s = await w.call<CycleSummary>({ cmd: 'cycle', withSets: false });
      if (!s.ok) throw new Error(`fixed-change cycle failed: ${s.error}`);
      check(
        s.moves.down === o.fixedUsers && s.moves.up === o.fixedUsers,
        `fixed cycle ${i + 1}: moves d${s.moves.down}/u${s.moves.up}, expected ${o.fixedUsers}`,
        warnings,
      );
      check(
        !s.fullRead && s.warnings.length === 0,
        `fixed cycle ${i + 1}: full read-back or warnings: ${s.warnings.join(' | ')}`,
        warnings,
      );
      fixed.push(s);
      fixedMoves = { users: o.fixedUsers, ipsetAdds: s.counts?.ipset.add ?? 0, ipsetDels: s.counts?.ipset.del ?? 0 };
    }
    if (o.fixed > 0) say(`   fixed ${o.fixedUsers} users: median ${round(median(fixed.map((s) => s.timings.totalMs)))} ms`);

    memSample();
    const steadyMem = await w.call<MemInfo>({ cmd: 'mem', gc: true });
    // the same trivial process (`ip netns exec <gw> true`) spawned by the daemon and by this
    // orchestrator: fork() costs more from a process with a bigger heap
    const spawnTrue = {
      daemonMs: round(await w.call<number>({ cmd: 'spawnTrue', n: 15 }), 2),
      orchestratorMs: 0,
      daemonRssMB: round(steadyMem.rssMB),
      orchestratorRssMB: round(process.memoryUsage().rss / MB),
    };
    {
      const xs: number[] = [];
      for (let i = 0; i < 15; i++) {
        const t0 = performance.now();
        await gw.exec('gw', 'true', []);
        xs.push(performance.now() - t0);
      }
      spawnTrue.orchestratorMs = round(median(xs), 2);
    }

    // ---- baseline 3: the command-line clients on the same data
    const ls: { ms: number; entries: number }[] = [];
    const ms: { ms: number; rows: number }[] = [];
    for (let i = 0; i < o.fetchRuns; i++) ls.push(await ldapsearchOnce(config));
    for (let i = 0; i < o.fetchRuns; i++) ms.push(await mariadbOnce(config, resetUnix, db));
    check(
      ls.every((x) => x.entries === ldapEntries),
      `ldapsearch returned ${ls.map((x) => x.entries).join('/')} entries, the campus has ${ldapEntries}`,
      warnings,
    );
    say(
      `   ldapsearch ${round(median(ls.map((x) => x.ms)))} ms (${ls[0]?.entries} entries), mariadb client ${round(median(ms.map((x) => x.ms)))} ms (${ms[0]?.rows} rows)`,
    );

    // ---- where the time goes
    let probe: Probe | null = null;
    if (o.probe) {
      say('   probe: piece-by-piece timings');
      probe = await w.call<Probe>({ cmd: 'probe', reps: 3 });
    }
    await w.stop();

    // ---- memory step by step, in a fresh process (its first cycle is a restart on a populated kernel)
    let memSteps: MemStep[] | null = null;
    if (o.probe) {
      say('   memory probe: fresh process, step by step');
      const wm = new Worker();
      await wm.call<MemInfo>({ cmd: 'init', conf: confText, clockIso });
      memSteps = await wm.call<MemStep[]>({ cmd: 'memprobe' });
      await wm.stop();
    }

    // ---- restarts: reselqos start without and with a snapshot, reselqos run with it (the real command)
    let start: SizeResult['start'] = null;
    if (o.start) {
      say('   restarts: reselqos start (no snapshot, then the snapshot it left), reselqos run from the snapshot');
      start = await measureStart({ cli: CLI, confFile, dir, gw, ips: last.ips, say, nodeArgs: daemonNodeArgs });
      for (const x of start.warnings) check(false, x, warnings);
    }
    memSample();
    const servers = { slapd: vmHwmMB(slapd.pid()), mariadb: vmHwmMB(db.pid()) };

    const st = medianTimings(steady);
    const maxRss = (xs: readonly CycleSummary[]): number => round(Math.max(0, ...xs.map((x) => x.maxRssMB)));
    const applyMs = round(median(per.map((x) => x.applyMs)), 2);
    const own = round(median(per.map((x) => x.ownIpsetApplyMs)), 2);
    const b2 = round(median(per.map((x) => x.baselineRestoreMs)), 2);
    const b1 = round(median(per.map((x) => x.baselineSpawnMs)), 1);
    const perOp = (xs: { ms: number; n: number }[]): number => xs.reduce((a, x) => a + x.ms, 0) / xs.reduce((a, x) => a + x.n, 0);
    const ops = median(per.map((x) => x.adds + x.dels));
    const ldapsearchMs = round(median(ls.map((x) => x.ms)));
    const clientMs = round(median(ms.map((x) => x.ms)));
    if (steadyMem.helperMaxRssMB !== null) helperRss.push(steadyMem.helperMaxRssMB);
    const peak = Math.max(...coldRss, steadyMem.maxRssMB + (steadyMem.helperMaxRssMB ?? 0));
    return {
      users: n,
      hosts,
      ips: last.ips,
      daemonUsers: last.users,
      ldapEntries,
      trafficRows: tr.rows,
      hourBuckets: o.hours,
      coldCycleMs: round(median(cold.map((s) => s.timings.totalMs))),
      steadyCycleMs: st.totalMs,
      idleCycleMs: round(median(idle.map((s) => s.timings.totalMs))),
      fixedCycleMs: fixed.length ? round(median(fixed.map((s) => s.timings.totalMs))) : null,
      fixed10Ms: fixed.length && o.fixedUsers === 10 ? round(median(fixed.map((s) => s.timings.totalMs))) : null,
      startFromSnapshotMs: start?.startFromSnapshot?.totalMs ?? null,
      start,
      applyMs,
      ownIpsetApplyMs: own,
      baselineRestoreMs: b2,
      baselineSpawnMs: b1,
      baselineSpawnShellMs: round(perOp(spawnShell) * ops, 1),
      baselineSpawnNetnsExecMs: round(perOp(spawnNetns) * ops, 1),
      ldapFetchMs: st.ldapMs,
      baselineLdapsearchMs: ldapsearchMs,
      mysqlMs: st.mysqlMs,
      baselineMysqlMs: clientMs,
      planMs: st.planMs,
      readMs: st.readMs,
      diffMs: st.diffMs,
      peakRssMB: round(peak),
      helperPeakRssMB: helperRss.length ? round(Math.max(...helperRss)) : null,
      incrementalCycles: { steady: steady.filter((s) => s.incremental).length, of: steady.length },
      spawnsPerCycle: {
        steady: median(steady.map((s) => s.spawns.length)),
        idle: median(idle.map((s) => s.spawns.length)),
        steadyExample: steady[0]?.spawns ?? [],
      },
      movesPerSteadyCycle: {
        users: k,
        ipsetAdds: median(per.map((x) => x.adds)),
        ipsetDels: median(per.map((x) => x.dels)),
        tcChanges: median(steady.map((s) => s.tc)),
      },
      ratios: {
        applyVsRestore: round(applyMs / b2, 2),
        ownIpsetVsRestore: round(own / b2, 2),
        spawnVsApply: round(b1 / applyMs, 1),
        ldapVsLdapsearch: round(st.ldapMs / ldapsearchMs, 2),
        mysqlVsClient: round(st.mysqlMs / clientMs, 2),
        steadyVsRestore: round(st.totalMs / b2, 2),
        coldVsLdapsearch: round(median(cold.map((s) => s.timings.totalMs)) / ldapsearchMs, 2),
      },
      spawnTrue,
      spawnPerOpMs: { direct: round(perOp(spawnDirect), 3), shell: round(perOp(spawnShell), 3), netnsExec: round(perOp(spawnNetns), 3) },
      phases: { cold: medianTimings(cold), idle: medianTimings(idle), steady: st, fixed: fixed.length ? medianTimings(fixed) : null },
      fixedMoves,
      cycles: {
        cold: cold.map((s) => s.timings),
        idle: idle.map((s) => s.timings),
        steady: steady.map((s) => s.timings),
        fixed: fixed.map((s) => s.timings),
      },
      perSteadyCycle: per,
      memory: {
        coldWorkersMaxRssMB: coldRss.map((x) => round(x)),
        steadyWorker: steadyMem,
        maxRssAfter: { cold: maxRss(cold.slice(-1)), idle: maxRss(idle), steady: maxRss(steady), fixed: maxRss(fixed) },
        steps: memSteps,
      },
      load: { generateMs: round(generateMs), slapaddMs: ld.ms, trafficMs: tr.ms },
      machine: {
        orchestratorMaxRssMB: round(process.resourceUsage().maxRSS / 1024),
        slapdPeakRssMB: servers.slapd,
        mariadbPeakRssMB: servers.mariadb,
        memAvailableMinMB: round(memMin),
      },
      probe,
      warnings,
    };
  } finally {
    await Promise.allSettled([slapd.stop(), db.stop()]);
    unSlapd();
    unDb();
  }
}

// ------------------------------------------------------------------ report

const fmt = (x: number | null | undefined, d = 1): string =>
  x === null || x === undefined || !Number.isFinite(x) ? '–' : String(round(x, d));
const k = (n: number): string => (n >= 1000 ? `${round(n / 1000, 1)}k` : String(n));

function tables(results: readonly SizeResult[], ts: readonly Target[], earlier: readonly Target[], meta: Record<string, unknown>): string {
  const lines: string[] = [];
  lines.push(`Run ${String(meta['date'])} on ${String(meta['machine'])}.`, '');
  lines.push('### Per size (medians; ms unless noted)', '');
  lines.push(
    '| users | hosts | IPs | cold cycle | steady cycle | idle cycle | moves/cycle (users, set entries ±) | apply | our ipset batch alone | baseline 2: optimal `ipset restore` | apply / b2 | baseline 1: process per IP | b1 / apply | peak RSS MB (daemon RSS + spawn helper PSS) |',
  );
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    lines.push(
      `| ${k(r.users)} | ${k(r.hosts)} | ${k(r.ips)} | ${fmt(r.coldCycleMs, 0)} | ${fmt(r.steadyCycleMs)} | ${fmt(r.idleCycleMs)} | ${r.movesPerSteadyCycle.users}, ±${r.movesPerSteadyCycle.ipsetAdds} | ${fmt(r.applyMs)} | ${fmt(r.ownIpsetApplyMs)} | ${fmt(r.baselineRestoreMs)} | ${fmt(r.ratios.applyVsRestore, 2)}× | ${fmt(r.baselineSpawnMs, 0)} | ${fmt(r.ratios.spawnVsApply, 0)}× | ${fmt(r.peakRssMB, 0)} |`,
    );
  }
  lines.push('', '### Fetch phases against the command-line clients (baseline 3)', '');
  lines.push(
    '| users | LDAP fetch (in cycle) | `ldapsearch` ×3 paged | fetch / b3 | MySQL fetch (in cycle) | `mariadb` client | fetch / b3 | LDAP fetch alone (probe) | MySQL fetch alone (probe) |',
  );
  lines.push('|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    lines.push(
      `| ${k(r.users)} | ${fmt(r.ldapFetchMs)} | ${fmt(r.baselineLdapsearchMs)} | ${fmt(r.ratios.ldapVsLdapsearch, 2)}× | ${fmt(r.mysqlMs)} | ${fmt(r.baselineMysqlMs)} | ${fmt(r.ratios.mysqlVsClient, 2)}× | ${fmt(r.probe?.ldap.fetchMs)} | ${fmt(r.probe?.mysql.fetchMs)} |`,
    );
  }
  lines.push('', '### One process per operation (baseline 1) and the cost of a spawn (ms)', '');
  lines.push(
    '| users | `ipset` per op, in the namespace | via /bin/sh | via `ip netns exec` from outside | b1 via sh / apply | `ip netns exec … true` from the daemon (RSS MB) | the same from the orchestrator (RSS MB) |',
  );
  lines.push('|---|---|---|---|---|---|---|');
  for (const r of results) {
    lines.push(
      `| ${k(r.users)} | ${fmt(r.spawnPerOpMs.direct, 2)} | ${fmt(r.spawnPerOpMs.shell, 2)} | ${fmt(r.spawnPerOpMs.netnsExec, 2)} | ${fmt(r.baselineSpawnShellMs / r.applyMs, 0)}× | ${fmt(r.spawnTrue.daemonMs, 2)} (${fmt(r.spawnTrue.daemonRssMB, 0)}) | ${fmt(r.spawnTrue.orchestratorMs, 2)} (${fmt(r.spawnTrue.orchestratorRssMB, 0)}) |`,
    );
  }
  lines.push('', '### Steady cycle by phase (medians, ms)', '');
  lines.push(
    '| users | LDAP | MySQL | plan | read-back | diff | apply | total | idle total | fixed-10-users total | incremental steady cycles | processes per cycle: steady / idle |',
  );
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    const p = r.phases.steady;
    lines.push(
      `| ${k(r.users)} | ${fmt(p.ldapMs)} | ${fmt(p.mysqlMs)} | ${fmt(p.planMs)} | ${fmt(p.readMs)} | ${fmt(p.diffMs)} | ${fmt(p.applyMs)} | ${fmt(p.totalMs)} | ${fmt(r.idleCycleMs)} | ${fmt(r.fixedCycleMs)} | ${r.incrementalCycles.steady}/${r.incrementalCycles.of} | ${r.spawnsPerCycle.steady} / ${r.spawnsPerCycle.idle} |`,
    );
  }
  const first = results[0];
  const last = results[results.length - 1];
  if (first && last && last !== first) {
    lines.push('', `### Growth from ${k(first.users)} to ${k(last.users)} users (×${round(last.users / first.users)} directory)`, '');
    lines.push(`| phase | ${k(first.users)} | ${k(last.users)} | growth |`);
    lines.push('|---|---|---|---|');
    const row = (name: string, a: number | null | undefined, b: number | null | undefined): void => {
      lines.push(`| ${name} | ${fmt(a)} | ${fmt(b)} | ${a && b ? `×${fmt(b / a, 1)}` : '–'} |`);
    };
    const sa = first.phases.steady;
    const sb = last.phases.steady;
    row('steady: LDAP fetch', sa.ldapMs, sb.ldapMs);
    row('steady: MySQL fetch', sa.mysqlMs, sb.mysqlMs);
    row('steady: plan', sa.planMs, sb.planMs);
    row('steady: read-back', sa.readMs, sb.readMs);
    row('steady: diff', sa.diffMs, sb.diffMs);
    row('steady: apply (1 % moves)', sa.applyMs, sb.applyMs);
    row('steady: total', sa.totalMs, sb.totalMs);
    row('idle cycle total', first.idleCycleMs, last.idleCycleMs);
    if (first.phases.fixed && last.phases.fixed) {
      row(`fixed ${last.fixedMoves?.users} users: total`, first.phases.fixed.totalMs, last.phases.fixed.totalMs);
      const kp = (p: Timings): number => p.readMs + p.diffMs + p.applyMs;
      row(`fixed ${last.fixedMoves?.users} users: read+diff+apply`, kp(first.phases.fixed), kp(last.phases.fixed));
    }
    row('cold cycle', first.coldCycleMs, last.coldCycleMs);
    row('peak RSS (MB)', first.peakRssMB, last.peakRssMB);
  }
  if (results.some((r) => r.probe)) {
    lines.push('', '### Where the time goes (probe: each piece alone, medians of 3, ms; heap = retained after GC, MB)', '');
    lines.push(
      '| users | ldapts search | + normalize | buildDirectory | LdapSource.fetch | MySQL fetch | plan | `ipset list -t` | `ipset save` exec | parse | iptables-save ×2 | tc reads | model | full diff | persist write / unchanged | heap: entries / directory / usage / desired |',
    );
    lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const r of results) {
      const p = r.probe;
      if (!p) continue;
      lines.push(
        `| ${k(r.users)} | ${fmt(p.ldap.rawSearchMs)} | ${fmt(p.ldap.searchMs)} | ${fmt(p.ldap.buildDirectoryMs)} | ${fmt(p.ldap.fetchMs)} | ${fmt(p.mysql.fetchMs)} | ${fmt(p.plan.planMs)} | ${fmt(p.kernel.headersMs)} | ${fmt(p.kernel.saveExecMs)} | ${fmt(p.kernel.saveParseMs)} | ${fmt(p.kernel.tablesMs)} | ${fmt(p.kernel.tcMs)} | ${fmt(p.kernel.modelMs)} | ${fmt(p.kernel.diffFullMs)} | ${fmt(p.persist.writeMs, 0)} / ${fmt(p.persist.unchangedMs, 0)} | ${fmt(p.ldap.rawEntriesHeapMB, 0)} / ${fmt(p.ldap.directoryHeapMB, 0)} / ${fmt(p.mysql.usageHeapMB, 0)} / ${fmt(p.plan.desiredHeapMB, 0)} |`,
      );
    }
  }
  if (results.some((r) => r.start)) {
    lines.push(
      '',
      '### Restarts on an emptied kernel (ms from spawning the process; `start`: to its "rebuilt" line, `run`: to its first cycle line)',
      '',
    );
    lines.push(
      '| users | `start`, no snapshot (fetch awaited) | `start` from a snapshot | of which: state read / directory / volumes / plan / fill / switch | `run` from the snapshot: first cycle | its first cycle line | `run` peak RSS MB (with its helper) | set entries (expected) |',
    );
    lines.push('|---|---|---|---|---|---|---|---|');
    for (const r of results) {
      const st = r.start;
      if (!st) continue;
      const sp = st.startFromSnapshot;
      const e = st.setEntries;
      lines.push(
        `| ${k(r.users)} | ${fmt(st.startCold?.totalMs, 0)} | ${fmt(sp?.totalMs, 0)} | ${sp ? [sp.stateReadMs, sp.directoryMs, sp.volumesMs, sp.planMs, sp.fillMs, sp.switchMs].map((v) => fmt(v, 0)).join(' / ') : '–'} | ${fmt(st.runFromSnapshot?.totalMs, 0)} | ${st.runFromSnapshot?.firstCycle.replace(/\|/g, '/') ?? '–'} | ${fmt(st.runFromSnapshot?.peakRssMB, 0)} | ${e.startCold ?? '–'} / ${e.startFromSnapshot ?? '–'} / ${e.runFromSnapshot ?? '–'} (${e.expected}) |`,
      );
    }
  }
  lines.push('', '### Cost growth (medians, ms; the plot: the .png beside this file)', '');
  lines.push(
    '| users | hosts | cold first cycle | `ldapsearch` full fetch | `start` from a snapshot | steady cycle | optimal restore of its moves | steady / restore | idle cycle | fixed 10-user change | peak RSS MB (daemon RSS + spawn helper PSS) | orchestrator / slapd / mariadbd peak RSS MB |',
  );
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    const m = r.machine;
    lines.push(
      `| ${k(r.users)} | ${k(r.hosts)} | ${fmt(r.coldCycleMs, 0)} | ${fmt(r.baselineLdapsearchMs, 0)} | ${fmt(r.startFromSnapshotMs, 0)} | ${fmt(r.steadyCycleMs)} | ${fmt(r.baselineRestoreMs)} | ${fmt(r.ratios.steadyVsRestore, 2)}× | ${fmt(r.idleCycleMs)} | ${fmt(r.fixed10Ms ?? r.fixedCycleMs)} | ${fmt(r.peakRssMB, 0)} | ${fmt(m.orchestratorMaxRssMB, 0)} / ${fmt(m.slapdPeakRssMB, 0)} / ${fmt(m.mariadbPeakRssMB, 0)} |`,
    );
  }
  const verdict = (t: Target): string => (t.pass === null ? 'n/a' : t.pass ? 'PASS' : 'FAIL');
  lines.push('', '### Targets (issue 16)', '');
  lines.push('| measure | target | result | measured |');
  lines.push('|---|---|---|---|');
  for (const t of ts) lines.push(`| ${t.name} | ${t.target} | ${verdict(t)} | ${t.detail} |`);
  lines.push('', '### Earlier targets', '');
  lines.push('| target | result | measured |');
  lines.push('|---|---|---|');
  for (const t of earlier) lines.push(`| ${t.name} | ${verdict(t)} | ${t.detail} |`);
  return lines.join('\n');
}

// ------------------------------------------------------------------ main

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  if (o.heapMB !== null) daemonNodeArgs = [`--max-old-space-size=${o.heapMB}`];
  if (process.getuid && process.getuid() !== 0) {
    console.error('bench: needs root (private slapd/mariadbd, network namespaces)');
    return 1;
  }
  const started = new Date();
  const clockIso = DateTime.utc().startOf('hour').toISO();
  const baseDir = mkdtempSync(join(tmpdir(), 'rq-bench-'));
  onCleanup('temp dir', async () => rmSync(baseDir, { recursive: true, force: true }));
  say(
    `bench: sizes ${o.sizes.join(', ')}; ${o.cold} cold, ${o.idle} idle, ${o.steady} steady (1 % of users move), ${o.fixed} fixed-change cycles per size`,
  );
  const gw = await createGateway({ userIps: [] });
  onCleanup('namespaces', () => gw.destroy());
  say(`gateway namespaces ${gw.names.users} / ${gw.names.gw} / ${gw.names.wan}`);

  const results: SizeResult[] = [];
  for (const n of o.sizes) {
    if (interrupted) break;
    results.push(await runSize(n, o, gw, clockIso, baseDir));
  }
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const meta = {
    date: started.toISOString().slice(0, 10),
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: `${cpus().length} × ${cpu.trim()}, ${Math.round(totalmem() / 1024 ** 3)} GB RAM, Linux ${release()}, Node ${process.version}`,
    quick: o.quick,
    options: o,
    clock: clockIso,
    notes: [
      'medians; cold = fresh worker process + empty kernel each run; steady = 1 % of users cross a volume limit (down and up) between cycles',
      'baseline 1 = per-op cost of `ipset del`/`ipset add` processes spawned inside the namespace (no shell), measured on a sample and multiplied by the set adds+dels of the cycle',
      'baseline 2 = hand-written `ipset restore` batch of the exact moves, through `ip netns exec` like the daemon',
      'baseline 3 = ldapsearch (3 bases concurrently, paged) and the mariadb client running the daemon volumes query; output counted by this process',
    ],
  };
  const ts = issue16Targets(results);
  const earlier = earlierTargets(results);
  const md = tables(results, ts, earlier, meta);
  mkdirSync(o.outDir, { recursive: true });
  const base = join(o.outDir, `${meta.date}${o.quick ? '.quick' : ''}`);
  writeFileSync(`${base}.json`, `${JSON.stringify({ meta, sizes: results, targets: ts, earlierTargets: earlier }, null, 2)}\n`);
  writeFileSync(`${base}.md`, `${md}\n`);
  console.log(md);
  let plot = '';
  if (o.plot && results.length > 0) {
    try {
      await renderPlot(results, `run of ${meta.date}`, `${base}.png`);
      plot = `, cost-growth plot: ${base}.png`;
    } catch (e) {
      console.error(`bench: the plot could not be drawn (${(e as Error).message}); npm run bench:plot -- ${base}.json`);
    }
  }
  console.log(`\nresults: ${base}.json (tables: ${base}.md${plot})`);
  console.log('\ntargets (issue 16):');
  for (const t of ts) console.log(`  ${t.pass === null ? 'n/a ' : t.pass ? 'PASS' : 'FAIL'}  ${t.name}: ${t.target} — ${t.detail}`);
  const warnings = results.flatMap((r) => r.warnings.map((w) => `${r.users}: ${w}`));
  if (warnings.length) console.log(`\nwarnings:\n${warnings.map((w) => `  ${w}`).join('\n')}`);
  return 0;
}

let code = 1;
try {
  code = await main();
} catch (e) {
  // after Ctrl-C the worker is killed under the running size: that error is expected
  if (!interrupted) console.error(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  code = 1;
} finally {
  await cleanupAll();
}
process.exit(interrupted ? 130 : code);
