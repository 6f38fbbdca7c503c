// src/kernel/tc.ts — reads the tc tree of one interface back: qdiscs (JSON), HTB classes
// (iproute2 6.1 text or >= 6.2 JSON), filters (text), and the HTB rate rounding rules that
// let a desired rate be compared with a read-back one (the counters of the tree: tc-stats.ts).
// Owns: pure parsers (exported for unit tests on captured text) and the reader.
// Never: changes kernel state.

import type { Exec } from '../exec/exec.js';
import { parseLeafStats, parseTcClassStats, type LeafStats, type TcClassStats } from './tc-stats.js';

export interface TcQdisc {
  kind: string;
  /** "1:", "10:", "0:" (noqueue) */
  handle: string;
  /** null for the root qdisc; "1:10" for a leaf; "ffff:fff1" for ingress */
  parent: string | null;
  options: Record<string, unknown>;
}

export interface TcClass {
  kind: string;
  /** "1:10" (minor in hex, as tc prints it) */
  classid: string;
  /** null for a root class */
  parent: string | null;
  /** handle of the attached leaf qdisc, e.g. "10:", or null */
  leaf: string | null;
  /** bits per second, as tc reports it (see the rounding rule below) */
  rateBps: number;
  /** bits per second, as tc reports it */
  ceilBps: number;
  /** true when tc gave the exact kernel value (JSON, iproute2 ≥ 6.2); false for 6.1 text */
  exact: boolean;
  prio?: number;
  /** bytes; reported by `tc -d` for leaf classes only */
  quantum?: number;
  /** bytes (tc's approximation) */
  burst?: number;
  cburst?: number;
  /** 0 for leaves, 7 for inner classes (TC_HTB_MAXDEPTH-1) */
  level?: number;
}

export interface TcFilter {
  /** "1:" */
  parent: string;
  /** "ip", "ipv6", "all" */
  protocol: string;
  pref: number;
  kind: string;
  chain?: number;
  /** "0x3e8" for fw, "800::800" (fh) for u32; absent on the per-prio header line */
  handle?: string;
  /** target class ("classid 1:10", "flowid 1:10" or u32's "*flowid 1:10") */
  classid?: string;
  /** the filter line as printed, plus its indented continuation lines (u32 "match …") */
  text: string;
}

export interface TcState {
  dev: string;
  qdiscs: TcQdisc[];
  /** HTB classes only (sfq & co. show per-flow pseudo classes; they are skipped) */
  classes: TcClass[];
  filters: TcFilter[];
  /** the HTB classes' counters (`tc -s`), by classid, and when they were read (epoch ms) */
  stats?: ReadonlyMap<string, TcClassStats>;
  /** the leaves' counters and queues (`tc -s -j qdisc show`), by the class they hang on */
  leafStats?: ReadonlyMap<string, LeafStats>;
  statsAt?: number;
}

/*
 * HTB RATE ROUNDING — measured on this machine (kernel 6.18, iproute2 6.1) and read in the
 * iproute2 sources (lib/utils_math.c get_rate64, lib/json_print.c print_color_rate):
 *
 * 1. Setting: tc parses "<R>bit" as a double, divides by 8 and truncates: the kernel stores
 *    B = floor(R / 8) bytes/s (u64; TCA_HTB_RATE64 carries values ≥ 2^32 B/s). R < 8 → B = 0 →
 *    tc refuses ('"rate" is required.'). So the kernel rate is floor(R/8)*8 bit/s:
 *    9bit → 8, 999bit → 992, 999999bit → 999992, 7392001bit → 7392000. Always render rates as
 *    integer "<n>bit" — "7.392mbit" goes through floating point.
 * 2. Reporting, iproute2 6.1 text (`tc class show` has NO JSON in 6.1; -j is ignored for classes):
 *    b = 8*B bits; for unit in ['', K, M, G]: stop if b < 1000, or if b % 1000 != 0 and
 *    b < 1 000 000; otherwise b = floor(b / 1000) and go to the next unit; printed "<b><unit>bit".
 *    So below 1 Mbit/s the report is exact; from 1 Mbit/s on it is truncated to whole Kbit
 *    (to whole Mbit from 1 Gbit/s on when not a multiple of 1 Kbit…):
 *    7392008bit → kernel 7392008 → "7392Kbit"; 123456789bit → "123456Kbit";
 *    1234567890bit → "1234Mbit"; 1000008bit → "1Mbit"; 37700000bit → "37700Kbit".
 * 3. Reporting, iproute2 ≥ 6.2 JSON (`tc -j class show`, commit 010a8388 "tc: Add JSON output
 *    to tc-class"): "rate"/"ceil" are the kernel's exact bytes/s as integers; rateBps = 8*B.
 * tcReportedRate(R, exact) below reproduces this, so a desired rate can be compared with a
 * read-back one.
 */

/** The rate (bit/s) the kernel stores for an HTB rate given as "<bits>bit". */
export function htbKernelRate(bits: number): number {
  return Math.floor(bits / 8) * 8;
}

/** The 6.1 text formatting of a rate the kernel holds as `bytesPerSec`, e.g. 924001 → "7392Kbit". */
export function formatTcRate(bytesPerSec: number): string {
  const units = ['', 'K', 'M', 'G', 'T'];
  let b = bytesPerSec * 8;
  let i = 0;
  for (; i < units.length - 1; i++) {
    if (b < 1000) break;
    if (b % 1000 !== 0 && b < 1_000_000) break;
    b = Math.floor(b / 1000);
  }
  return `${b}${units[i] ?? ''}bit`;
}

/** "7392Kbit" → 7392000, "8bit" → 8, "7218Kibit" → 7391232, "100Mbit" → 1e8. NaN if unparsable. */
export function parseTcRate(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMGT]?)(i?)bit$/i.exec(s.trim());
  if (!m) {
    const bps = /^(\d+(?:\.\d+)?)([KMGT]?)(i?)bps$/i.exec(s.trim());
    if (!bps) return NaN;
    return parseTcRate(`${bps[1] ?? ''}${bps[2] ?? ''}${bps[3] ?? ''}bit`) * 8;
  }
  const base = m[3] ? 1024 : 1000;
  const exp = ['', 'K', 'M', 'G', 'T'].indexOf((m[2] ?? '').toUpperCase());
  return Math.round(Number(m[1]) * base ** exp);
}

/**
 * What readTc will report for a class configured with "<bits>bit": exact → floor(bits/8)*8
 * (iproute2 ≥ 6.2 JSON), otherwise the 6.1 text truncation of rule 2 above.
 */
export function tcReportedRate(bits: number, exact: boolean): number {
  const B = Math.floor(bits / 8);
  return exact ? B * 8 : parseTcRate(formatTcRate(B));
}

/** "1598b" → 1598, "15Kb" → 15360, "1Mb" → 1048576 (tc print_size units are powers of 1024). */
export function parseTcSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMG]?)b$/i.exec(s.trim());
  if (!m) return NaN;
  const exp = ['', 'K', 'M', 'G'].indexOf((m[2] ?? '').toUpperCase());
  return Math.round(Number(m[1]) * 1024 ** exp);
}

/** `tc -j qdisc show dev X` (JSON works for qdiscs in 6.1). */
export function parseTcQdiscJson(text: string): TcQdisc[] {
  const t = text.trim();
  if (t === '') return [];
  const arr = JSON.parse(t) as Array<Record<string, unknown>>;
  return arr.map((q) => ({
    kind: typeof q.kind === 'string' ? q.kind : '',
    handle: typeof q.handle === 'string' ? q.handle : '',
    parent: q.root === true ? null : typeof q.parent === 'string' ? q.parent : null,
    options: (typeof q.options === 'object' && q.options !== null ? q.options : {}) as Record<string, unknown>,
  }));
}

/** The words of a `tc -d class show` line that take a value: what each sets (null: a value we skip). */
const CLASS_FIELDS: Readonly<Record<string, ((c: TcClass, v: string) => void) | null>> = {
  parent: (c, v) => (c.parent = v),
  leaf: (c, v) => (c.leaf = v),
  prio: (c, v) => (c.prio = Number(v)),
  quantum: (c, v) => (c.quantum = Number(v)),
  rate: (c, v) => (c.rateBps = parseTcRate(v)),
  ceil: (c, v) => (c.ceilBps = parseTcRate(v)),
  burst: (c, v) => (c.burst = parseTcSize(v.split('/')[0] ?? '')),
  cburst: (c, v) => (c.cburst = parseTcSize(v.split('/')[0] ?? '')),
  level: (c, v) => (c.level = Number(v)),
  dev: null,
  linklayer: null,
  mpu: null,
  overhead: null,
};

/*
 * `tc -d class show dev X`, iproute2 6.1 text:
 *   class htb 1:10 parent 1:1 leaf 10: prio 0 quantum 1514 rate 7392Kbit ceil 7392Kbit linklayer ethernet burst 1598b/1 mpu 0b cburst 1598b/1 mpu 0b level 0
 *   class htb 1:1 root rate 100Mbit ceil 100Mbit linklayer ethernet burst 1600b/1 mpu 0b cburst 1600b/1 mpu 0b level 7
 * (with -s, indented statistics lines follow each class; they are skipped)
 */
export function parseTcClassText(text: string): TcClass[] {
  const out: TcClass[] = [];
  for (const raw of text.split('\n')) {
    if (!raw.startsWith('class ')) continue;
    const tok = raw.trim().split(/\s+/);
    const kind = tok[1] ?? '';
    if (kind !== 'htb') continue;
    const c: TcClass = { kind, classid: tok[2] ?? '', parent: null, leaf: null, rateBps: NaN, ceilBps: NaN, exact: false };
    for (let i = 3; i < tok.length; i++) {
      const k = tok[i] ?? '';
      if (k === 'root') {
        c.parent = null;
        continue;
      }
      const field = CLASS_FIELDS[k];
      if (field === undefined) continue;
      if (field !== null) field(c, tok[i + 1] ?? '');
      i++; // the value
    }
    out.push(c);
  }
  return out;
}

/*
 * `tc -j -d class show dev X`, iproute2 ≥ 6.2 (from the sources, not runnable here): one object
 * per class, HTB options at top level, rates in BYTES per second:
 *   {"class":"htb","handle":"1:10","parent":"1:1","leaf":"0x10","prio":0,"quantum":1514,
 *    "rate":924001,"ceil":924001,"linklayer":"ethernet","burst":1598,"burst_cell":1,…,"level":0}
 * ("leaf" is the leaf qdisc's major number in hex; "root":true instead of "parent" at the root.)
 */
export function parseTcClassJson(text: string): TcClass[] {
  const t = text.trim();
  if (t === '') return [];
  const arr = JSON.parse(t) as Array<Record<string, unknown>>;
  const out: TcClass[] = [];
  for (const o of arr) {
    if (o.class !== 'htb') continue;
    const num = (k: string): number | undefined => (typeof o[k] === 'number' ? o[k] : undefined);
    const c: TcClass = {
      kind: 'htb',
      classid: typeof o.handle === 'string' ? o.handle : '',
      parent: o.root === true ? null : typeof o.parent === 'string' ? o.parent : null,
      leaf: typeof o.leaf === 'string' ? `${parseInt(o.leaf, 16).toString(16)}:` : null,
      rateBps: (num('rate') ?? NaN) * 8,
      ceilBps: (num('ceil') ?? NaN) * 8,
      exact: true,
    };
    const prio = num('prio');
    if (prio !== undefined) c.prio = prio;
    const quantum = num('quantum');
    if (quantum !== undefined) c.quantum = quantum;
    const burst = num('burst');
    if (burst !== undefined) c.burst = burst;
    const cburst = num('cburst');
    if (cburst !== undefined) c.cburst = cburst;
    const level = num('level');
    if (level !== undefined) c.level = level;
    out.push(c);
  }
  return out;
}

/** Class output of `tc -j -d class show`: JSON when this tc supports it, else 6.1 text. */
export function parseTcClasses(text: string): TcClass[] {
  return text.trimStart().startsWith('[') ? parseTcClassJson(text) : parseTcClassText(text);
}

/*
 * `tc filter show dev X` text (used instead of -j: in iproute2 6.1 the fw classifier prints its
 * options with fprintf, which would corrupt the JSON):
 *   filter parent 1: protocol ip pref 1 u32 chain 0
 *   filter parent 1: protocol ip pref 1 u32 chain 0 fh 800: ht divisor 1
 *   filter parent 1: protocol ip pref 1 u32 chain 0 fh 800::800 order 2048 key ht 800 bkt 0 *flowid 1:10 not_in_hw
 *     match 0a000001/ffffffff at 16
 *   filter parent 1: protocol ip pref 1 fw chain 0
 *   filter parent 1: protocol ip pref 1 fw chain 0 handle 0x3e8 classid 1:10
 */
export function parseTcFilterText(text: string): TcFilter[] {
  const out: TcFilter[] = [];
  let cur: TcFilter | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (line === '') continue;
    if (!line.startsWith('filter ')) {
      if (cur) cur.text += `\n${line}`;
      continue;
    }
    const tok = line.split(/\s+/);
    const f: TcFilter = { parent: '', protocol: '', pref: 0, kind: '', text: line };
    for (let i = 1; i < tok.length; i++) {
      const k = tok[i];
      const v = tok[i + 1] ?? '';
      if (k === 'parent') {
        f.parent = v;
        i++;
      } else if (k === 'protocol') {
        f.protocol = v;
        i++;
      } else if (k === 'pref') {
        f.pref = Number(v);
        f.kind = tok[i + 2] ?? '';
        i += 2;
      } else if (k === 'chain') {
        f.chain = Number(v);
        i++;
      } else if ((k === 'fh' || k === 'handle') && f.handle === undefined) {
        f.handle = v;
        i++;
      } else if (k === 'classid' || k === 'flowid' || k === '*flowid' || k === '*classid') {
        f.classid = v;
        i++;
      } else if (k === 'dev' || k === 'root' || k === 'ingress' || k === 'egress') {
        if (k === 'dev') i++;
      }
    }
    out.push(f);
    cur = f;
  }
  return out;
}

/** A leaf's flow filter as `filter show … parent X:` prints it (no parent): its parent from `baseclass X:1`. */
function withBaseclassParent(f: TcFilter): TcFilter {
  if (f.parent !== '') return f;
  const m = /\bbaseclass ([0-9a-f]+):/.exec(f.text);
  return m ? { ...f, parent: `${m[1]}:` } : f;
}

/** Qdiscs, HTB classes and filters of `dev`. */
export async function readTc(exec: Exec, dev: string): Promise<TcState> {
  // -s: the leaves' counters come with the same read (metrics)
  const q = await exec('tc', ['-s', '-j', 'qdisc', 'show', 'dev', dev]);
  // -s: the classes' counters come with the same read (metrics), at no extra spawn
  const c = await exec('tc', ['-j', '-s', '-d', 'class', 'show', 'dev', dev]);
  const statsAt = Date.now();
  const f = await exec('tc', ['filter', 'show', 'dev', dev]);
  const qdiscs = parseTcQdiscJson(q.stdout);
  // `filter show` lists the root qdisc's filters only: the host filters (fairness = host) hang on
  // the leaves, read in one batch of `show`s, only where a leaf can have one. A show given a parent
  // does not print it: a flow filter's baseclass (ours: <leaf>:1) names its qdisc instead.
  const hashing = qdiscs.filter((x) => x.parent !== null && (x.kind === 'sfq' || x.kind === 'fq_codel')).map((x) => x.handle);
  const leafFilters = hashing.length
    ? (await exec('tc', ['-batch', '-'], { input: hashing.map((h) => `filter show dev ${dev} parent ${h}\n`).join('') })).stdout
    : '';
  return {
    dev,
    qdiscs,
    classes: parseTcClasses(c.stdout),
    filters: [...parseTcFilterText(f.stdout), ...parseTcFilterText(leafFilters).map(withBaseclassParent)],
    stats: parseTcClassStats(c.stdout),
    leafStats: parseLeafStats(q.stdout),
    statsAt,
  };
}
