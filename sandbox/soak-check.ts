// The soak's checker: samples the gateway's kernel (our ipsets, our chains and their hooks)
// and the daemon (its log, its pid, VmRSS and open fds) and counts violations of the
// invariants: an entitled machine missing from qos_allow, a refused machine in it, our QoS
// sets or chains not as they were after warm-up, the daemon dead without the soak killing
// it, an unhandled/uncaught error in its log. Deviations a fault causes legitimately (a set
// flushed or a chain deleted from outside) are excused until the fault is repaired, at most
// two daemon cycles after its end; the rebuild switch of `reselqos start` is excused too.
// A violation is counted once per episode (the invariant broken, then kept again).
// Test infrastructure; reads only (never changes the kernel or the daemon).

import { closeSync, openSync, readFileSync, readSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Exec } from '../src/exec/exec.js';
import { readIpsets, ruleTarget } from '../src/kernel/read.js';
import { isAlive } from '../src/daemon/pidfile.js';

export type Kind =
  'entitled-missing' | 'refused-allowed' | 'qos-sets' | 'chains' | 'daemon-died' | 'unhandled' | 'repair' | 'reload' | 'memory';
/** Kinds of kernel state a fault may legitimately disturb. */
export type KernelKind = 'entitled-missing' | 'refused-allowed' | 'qos-sets' | 'chains';

export interface KernelSample {
  /** when the read began */
  at: number;
  /** daemon cycles counted (from its log) when the sample was taken */
  cycles: number;
  allow: Set<string>;
  /** "d <ip>" / "u <ip>" -> how many qos sets of that direction hold it */
  qos: Map<string, number>;
  /** our chains (family, table, name, rule count) and hooks, one string */
  chains: string;
}

export interface Violation {
  at: number;
  kind: Kind;
  detail: string;
}

const OUR_SET = /^(qos_|v6qos_)[a-z]+[0-9]*$/;
const QOS_SET = /^(v6)?qos_([du])[0-9]+$/;

/** Our chains and the rules that jump to them, from iptables-save text: a stable signature. */
export function chainSignature(text: string, family: 4 | 6, prefix = 'RESELQOS'): string[] {
  const out: string[] = [];
  let table = '';
  const rules = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1).trim();
    else if (line.startsWith(`:${prefix}`)) rules.set(`${table} ${line.slice(1).split(' ')[0]}`, 0);
    else if (line.startsWith('-A ')) {
      const chain = line.split(' ')[1] ?? '';
      const key = `${table} ${chain}`;
      if (rules.has(key)) rules.set(key, (rules.get(key) ?? 0) + 1);
      const target = ruleTarget(line);
      if (!chain.startsWith(prefix) && target?.startsWith(prefix)) out.push(`v${family} ${table} hook ${chain}->${target}`);
    }
  }
  for (const [k, n] of rules) out.push(`v${family} ${k} rules=${n}`);
  return out.sort();
}

/** Follows the daemon's log file: cycles ok / failed, unhandled errors, the last lines. */
export class LogTail {
  cyclesOk = 0;
  cyclesFailed = 0;
  readonly unhandled: string[] = [];
  private last: string[] = [];
  private offset = 0;
  private rest = '';
  constructor(readonly file: string) {}

  get cycles(): number {
    return this.cyclesOk + this.cyclesFailed;
  }

  lastLines(n = 5): string[] {
    return this.last.slice(-n);
  }

  read(): void {
    let size: number;
    try {
      size = statSync(this.file).size;
    } catch {
      return;
    }
    if (size < this.offset) this.offset = 0; // rotated
    if (size === this.offset) return;
    const buf = Buffer.alloc(size - this.offset);
    const fd = openSync(this.file, 'r');
    try {
      readSync(fd, buf, 0, buf.length, this.offset);
    } finally {
      closeSync(fd);
    }
    this.offset = size;
    const lines = (this.rest + buf.toString('utf8')).split('\n');
    this.rest = lines.pop() ?? '';
    for (const line of lines) {
      const m = /^\S+ (\w+) cycle (ok|failed)\b/.exec(line);
      if (m) {
        if (m[2] === 'ok') this.cyclesOk++;
        else this.cyclesFailed++;
      }
      if (/unhandled|uncaught/i.test(line)) this.unhandled.push(line);
      this.last.push(line);
    }
    if (this.last.length > 50) this.last = this.last.slice(-20);
  }
}

export interface ProcSample {
  rssKb: number;
  fds: number;
}

export function procSample(pid: number): ProcSample | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    if (/^State:\s+Z/m.test(status)) return null;
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return { rssKb: rss ? Number(rss[1]) : 0, fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return null;
  }
}

export interface CheckerOptions {
  exec: Exec; // in the gateway namespace
  runDir: string;
  logFile: string;
  /** where the daemon writes a Node report when it dies of an uncaught exception (NODE_OPTIONS) */
  reportDir?: string;
  entitled: ReadonlySet<string>;
  refused: ReadonlySet<string>;
  /** the soak's own output (violations as they happen) */
  say: (s: string) => void;
  clock?: () => number;
}

export class Checker {
  readonly log: LogTail;
  readonly violations: Violation[] = [];
  last: KernelSample | null = null;
  baseline: { qos: Set<string>; chains: string } | null = null;
  /** kinds a fault disturbs legitimately, until cleared */
  excused = new Set<KernelKind>();
  /** the soak is killing or (re)starting the daemon: its absence is expected */
  daemonExpectedDown = false;
  /** `reselqos start` is rebuilding; samples then missing an entitled machine are counted here */
  switching = false;
  switchGaps = 0;
  pid: number | null = null;
  proc: ProcSample | null = null;
  private episodes = new Set<Kind>();
  private pending = new Map<KernelKind, number>();
  private readonly clock: () => number;

  constructor(private readonly o: CheckerOptions) {
    this.log = new LogTail(o.logFile);
    this.clock = o.clock ?? Date.now;
  }

  violate(kind: Kind, detail: string): void {
    const v = { at: this.clock(), kind, detail };
    this.violations.push(v);
    this.o.say(`  VIOLATION ${kind}: ${detail}`);
  }

  /** The kernel now, as expected: allow set exact, QoS sets and chains as after warm-up. */
  deviations(s: KernelSample): Map<KernelKind, string> {
    const out = new Map<KernelKind, string>();
    const missing = [...this.o.entitled].filter((ip) => !s.allow.has(ip));
    if (missing.length)
      out.set(
        'entitled-missing',
        `${missing.length} of ${this.o.entitled.size} entitled machines missing from qos_allow (e.g. ${missing.slice(0, 3).join(', ')})`,
      );
    const wrong = [...s.allow].filter((ip) => this.o.refused.has(ip) || !this.o.entitled.has(ip));
    if (wrong.length)
      out.set('refused-allowed', `${wrong.length} refused or unknown machines in qos_allow (${wrong.slice(0, 5).join(', ')})`);
    if (this.baseline) {
      const b = this.baseline;
      // Users move between groups as their volumes grow: each IP of warm-up in exactly one set per direction.
      const diff = [...new Set([...b.qos, ...s.qos.keys()])].filter((k) => !b.qos.has(k) || s.qos.get(k) !== 1);
      if (diff.length)
        out.set(
          'qos-sets',
          `${diff.length} IPs not in exactly one qos set of their direction (e.g. ${diff
            .slice(0, 3)
            .map((k) => `${k}: in ${s.qos.get(k) ?? 0}`)
            .join(', ')})`,
        );
      if (b.chains !== s.chains) out.set('chains', `our chains/hooks differ from warm-up: now [${s.chains}]`);
    }
    return out;
  }

  expected(s: KernelSample | null = this.last): boolean {
    return s !== null && this.deviations(s).size === 0;
  }

  async sampleKernel(): Promise<KernelSample> {
    const at = this.clock();
    this.log.read();
    const cycles = this.log.cycles;
    const [sets, v4, v6] = await Promise.all([
      readIpsets(this.o.exec, (n) => OUR_SET.test(n)),
      this.o.exec('iptables-save', []),
      this.o.exec('ip6tables-save', []),
    ]);
    const allow = new Set(sets.get('qos_allow')?.entries ?? []);
    const qos = new Map<string, number>();
    for (const [name, info] of sets) {
      const m = QOS_SET.exec(name);
      if (!m) continue;
      for (const ip of info.entries) qos.set(`${m[2]} ${ip}`, (qos.get(`${m[2]} ${ip}`) ?? 0) + 1);
    }
    const chains = [...chainSignature(v4.stdout, 4), ...chainSignature(v6.stdout, 6)].join('; ');
    return { at, cycles, allow, qos, chains };
  }

  /** Takes the state after warm-up as the reference for the QoS sets and chains. */
  setBaseline(s: KernelSample): void {
    this.baseline = { qos: new Set(s.qos.keys()), chains: s.chains };
  }

  private inflight: Promise<KernelSample | null> | null = null;

  /** One sample: kernel, daemon process, log; counts new violation episodes. Concurrent callers share one. */
  sample(): Promise<KernelSample | null> {
    return (this.inflight ??= this.sampleOnce().finally(() => (this.inflight = null)));
  }

  private async sampleOnce(): Promise<KernelSample | null> {
    let s: KernelSample;
    try {
      s = await this.sampleKernel();
    } catch (e) {
      this.o.say(`  checker: cannot read the kernel: ${(e as Error).message.split('\n')[0]}`);
      return null;
    }
    this.last = s;
    for (const line of this.log.unhandled.splice(0)) this.violate('unhandled', line);
    this.checkDaemon();
    const dev = this.deviations(s);
    for (const kind of ['entitled-missing', 'refused-allowed', 'qos-sets', 'chains'] as const) {
      const d = dev.get(kind);
      if (d !== undefined && kind === 'entitled-missing' && this.switching) this.switchGaps++;
      if (d === undefined || this.excused.has(kind)) {
        this.episodes.delete(kind);
        this.pending.delete(kind);
        continue;
      }
      // A group move is a del then an add: a sample may fall between them. Two in a row count.
      const seen = (this.pending.get(kind) ?? 0) + 1;
      this.pending.set(kind, seen);
      if (kind === 'qos-sets' && seen < 2) continue;
      if (this.episodes.has(kind)) continue;
      this.episodes.add(kind);
      this.violate(kind, d);
    }
    return s;
  }

  private checkDaemon(): void {
    const pid = readPidSync(join(this.o.runDir, 'reselqos.pid'));
    if (pid !== null) this.pid = pid;
    const alive = this.pid !== null && isAlive(this.pid) && procSample(this.pid) !== null;
    if (alive) {
      this.proc = procSample(this.pid!);
      this.episodes.delete('daemon-died');
      return;
    }
    if (this.daemonExpectedDown || this.pid === null || this.episodes.has('daemon-died')) return;
    this.episodes.add('daemon-died');
    this.log.read();
    this.violate(
      'daemon-died',
      `pid ${this.pid} is gone and the soak did not kill it; ${crashReport(this.o.reportDir, this.pid)}; last log lines:\n      ${this.log.lastLines(3).join('\n      ')}`,
    );
  }

  daemonAlive(): boolean {
    return this.pid !== null && isAlive(this.pid) && procSample(this.pid) !== null;
  }

  count(): number {
    return this.violations.length;
  }
}

/** The uncaught exception a dead daemon reported (node --report-uncaught-exception), if any. */
function crashReport(dir: string | undefined, pid: number | null): string {
  if (!dir || pid === null) return 'no crash report';
  try {
    const file = readdirSync(dir).find((f) => f.includes(`.${pid}.`));
    if (!file) return 'no crash report (not an uncaught exception)';
    const r = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { javascriptStack?: { message?: string; stack?: string[] } };
    return `uncaught exception: ${r.javascriptStack?.message ?? '?'} ${(r.javascriptStack?.stack ?? []).slice(0, 3).join(' ')}`;
  } catch (e) {
    return `crash report unreadable: ${(e as Error).message}`;
  }
}

function readPidSync(path: string): number | null {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}
