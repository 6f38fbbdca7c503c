// src/kernel/read.ts — reads the kernel's QoS state back: ipsets (`ipset save`, `ipset list -t`),
// the mangle table (`iptables-save -t mangle`, `ip6tables-save -t mangle`), tc qdiscs/classes/
// filters of one device, and which kernel features exist (detectKernel).
//
// Owns: pure parsers of the tools' output (exported for unit tests on captured text) and small
// async readers that run the tool through an injected Exec.
// Must never: change kernel state — with the single exception of detectKernel, which creates
// and always deletes a throw-away network namespace `rq-p<pid>-<rand>-probe` and touches
// nothing outside it. No policy here: callers decide what "ours" means (isOurs / isOurChain).

import { randomBytes } from 'node:crypto';
import { ExecError, inNetns, type Exec } from './exec.js';

// ====================================================================== ipset

export interface IpsetInfo {
  name: string;
  /** e.g. 'hash:ip' */
  type: string;
  family: 'inet' | 'inet6';
  maxelem: number;
  /** As the kernel reports it now (a power of two; hash sets grow it when they fill). */
  hashsize: number;
  /**
   * Elements as `ipset save` prints them, kernel (hash) order, extensions (timeout, comment…)
   * dropped. IPv4: dotted quad. IPv6: inet_ntop form — lowercase, longest zero run compressed
   * ("2001:DB8:D000:0000::0001" reads back as "2001:db8:d000::1", "2001:db8:0:0:1:0:0:1" as
   * "2001:db8::1:0:0:1", "::ffff:10.0.0.1" stays mixed).
   */
  entries: string[];
  /** The remaining header tokens, e.g. ['bucketsize', '12', 'initval', '0x…'] or ['counters']. */
  options: string[];
}

/*
 * `ipset save` (ipset v7.17) prints, per set:
 *   create qos_d0 hash:ip family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0xda48aad4
 *   add qos_d0 10.0.0.1
 *   add qos_d0 172.22.200.3
 *   create v6qos_d0 hash:ip family inet6 hashsize 1024 maxelem 65536 bucketsize 12 initval 0x884256db
 *   add v6qos_d0 2001:db8:d000::1
 *   create qos_c hash:ip family inet hashsize 1024 maxelem 65536 timeout 0 counters comment bucketsize 12 initval 0x…
 *   add qos_c 1.2.3.4 timeout 0 packets 0 bytes 0 comment "hi there"
 * `ipset list -o save` prints the same text.
 */
export function parseIpsetSave(text: string, isOurs: (name: string) => boolean = () => true): Map<string, IpsetInfo> {
  const sets = new Map<string, IpsetInfo>();
  let cur: IpsetInfo | undefined;
  let curName = '';
  let pos = 0;
  const len = text.length;
  while (pos < len) {
    let nl = text.indexOf('\n', pos);
    if (nl < 0) nl = len;
    const line = text.slice(pos, nl);
    pos = nl + 1;
    if (line.startsWith('add ')) {
      // add <set> <elem> [ext…]  — fast path: no full split for 300k lines
      const s1 = line.indexOf(' ', 4);
      if (s1 < 0) continue;
      const name = line.slice(4, s1);
      if (name !== curName) {
        curName = name;
        cur = sets.get(name);
      }
      if (!cur) continue;
      const s2 = line.indexOf(' ', s1 + 1);
      cur.entries.push(s2 < 0 ? line.slice(s1 + 1).trimEnd() : line.slice(s1 + 1, s2));
      continue;
    }
    if (!line.startsWith('create ')) continue;
    const tok = line.trim().split(/\s+/);
    const name = tok[1];
    const type = tok[2];
    if (name === undefined || type === undefined) continue;
    curName = name;
    if (!isOurs(name)) {
      cur = undefined;
      continue;
    }
    const info: IpsetInfo = { name, type, family: 'inet', maxelem: 65536, hashsize: 1024, entries: [], options: [] };
    for (let i = 3; i < tok.length; i++) {
      const k = tok[i] ?? '';
      const v = tok[i + 1];
      if (k === 'family' && v !== undefined) {
        info.family = v === 'inet6' ? 'inet6' : 'inet';
        i++;
      } else if (k === 'maxelem' && v !== undefined) {
        info.maxelem = Number(v);
        i++;
      } else if (k === 'hashsize' && v !== undefined) {
        info.hashsize = Number(v);
        i++;
      } else {
        info.options.push(k);
      }
    }
    sets.set(name, info);
    cur = info;
  }
  return sets;
}

/** All sets for which isOurs(name) holds, with their entries (`ipset save`). */
export async function readIpsets(exec: Exec, isOurs: (name: string) => boolean): Promise<Map<string, IpsetInfo>> {
  const { stdout } = await exec('ipset', ['save'], { timeoutMs: 120_000 });
  return parseIpsetSave(stdout, isOurs);
}

export interface IpsetHeader {
  name: string;
  type: string;
  family: 'inet' | 'inet6' | null;
  entries: number;
  /** How many iptables rules / list:set sets reference the set (a referenced set cannot be destroyed). */
  references: number;
  memory: number;
  header: string;
}

/*
 * `ipset list -t` (header only, no members):
 *   Name: qos_d0
 *   Type: hash:ip
 *   Revision: 6
 *   Header: family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0xda48aad4
 *   Size in memory: 296
 *   References: 0
 *   Number of entries: 2
 *   <blank line between sets>
 * Note `ipset list -t a b` is an error ("Unknown argument b"): one name or all.
 */
export function parseIpsetHeaders(text: string): Map<string, IpsetHeader> {
  const out = new Map<string, IpsetHeader>();
  let cur: IpsetHeader | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const key = line.slice(0, colon);
    const val = line.slice(colon + 1).trim();
    switch (key) {
      case 'Name':
        cur = { name: val, type: '', family: null, entries: 0, references: 0, memory: 0, header: '' };
        out.set(val, cur);
        break;
      case 'Type':
        if (cur) cur.type = val;
        break;
      case 'Header':
        if (cur) {
          cur.header = val;
          const m = /(?:^|\s)family (inet6?)(?:\s|$)/.exec(val);
          cur.family = m ? (m[1] as 'inet' | 'inet6') : null;
        }
        break;
      case 'Size in memory':
        if (cur) cur.memory = Number(val);
        break;
      case 'References':
        if (cur) cur.references = Number(val);
        break;
      case 'Number of entries':
        if (cur) cur.entries = Number(val);
        break;
      default:
        break;
    }
  }
  return out;
}

/** Headers of all sets (`ipset list -t`), cheap: the kernel sends no members. */
export async function readIpsetHeaders(exec: Exec): Promise<Map<string, IpsetHeader>> {
  const { stdout } = await exec('ipset', ['list', '-t']);
  return parseIpsetHeaders(stdout);
}

/** Number of entries of each named set that exists (absent sets are absent from the map). */
export async function readIpsetCounts(exec: Exec, names: Iterable<string>): Promise<Map<string, number>> {
  const all = await readIpsetHeaders(exec);
  const out = new Map<string, number>();
  for (const n of names) {
    const h = all.get(n);
    if (h) out.set(n, h.entries);
  }
  return out;
}

// ====================================================================== iptables

export const BUILTIN_CHAINS: ReadonlySet<string> = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);

export interface MangleState {
  /** Our chains (declared ones, even when empty) → their rules as iptables-save prints them ("-A chain …"). */
  chains: Map<string, string[]>;
  /** Rules in built-in chains that jump (-j) or go (-g) to one of our chains, as printed. */
  hooks: string[];
}

export interface SavedTable {
  /** chain → policy ('ACCEPT', 'DROP' for built-ins, '-' for user chains) */
  policies: Map<string, string>;
  /** chain → rules ("-A chain …" lines), in order */
  rules: Map<string, string[]>;
}

/*
 * What iptables-save v1.8.9 prints back (nf_tables and legacy backends print the same rule text):
 *   rendered:  -A qos_mark -m set --match-set qos_d0 dst -m comment --comment "grp d0: 5 Mbit/s" -j MARK --set-mark 1000
 *   read back: -A qos_mark -m set --match-set qos_d0 dst -m comment --comment "grp d0: 5 Mbit/s" -j MARK --set-xmark 0x3e8/0xffffffff
 *   rendered:  -A qos_mark -m set --match-set qos_d0 dst -j CLASSIFY --set-class 1:10
 *   read back: -A qos_mark -m set --match-set qos_d0 dst -j CLASSIFY --set-class 0001:0010
 *   (class ids are hex: 1:0a → 0001:000a), `! --match-set` reads back as `-m set ! --match-set …`,
 *   `--set-mark 0x7d0/0xffff` → `--set-xmark 0x7d0/0xffff`, `-m mark --mark 1000` → `--mark 0x3e8`,
 *   CONNMARK --save-mark → `--save-mark --nfmask 0xffffffff --ctmask 0xffffffff`.
 *   Comments are double-quoted only when they contain spaces or quotes ("x \"quoted\" y",
 *   "it\'s a \\back"); a one-word comment is bare: --comment c6.
 *   User chains are declared ":qos_mark - [0:0]"; the nf_tables tool prints
 *   "# Warning: iptables-legacy tables present…" to stderr when legacy tables exist too.
 */
export function parseIptablesSave(text: string, table = 'mangle'): SavedTable {
  const policies = new Map<string, string>();
  const rules = new Map<string, string[]>();
  let inTable = false;
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (line.startsWith('*')) {
      inTable = line.slice(1) === table;
      continue;
    }
    if (!inTable || line === '' || line.startsWith('#')) continue;
    if (line === 'COMMIT') {
      inTable = false;
      continue;
    }
    if (line.startsWith(':')) {
      const m = /^:(\S+)\s+(\S+)/.exec(line);
      if (m && m[1] !== undefined && m[2] !== undefined) {
        policies.set(m[1], m[2]);
        if (!rules.has(m[1])) rules.set(m[1], []);
      }
      continue;
    }
    if (line.startsWith('-A ')) {
      const sp = line.indexOf(' ', 3);
      const chain = sp < 0 ? line.slice(3) : line.slice(3, sp);
      let list = rules.get(chain);
      if (!list) {
        list = [];
        rules.set(chain, list);
      }
      list.push(line);
    }
  }
  return { policies, rules };
}

/**
 * Splits an iptables-save rule line into argv words, undoing its quoting: "a b" → a b,
 * \" → ", \' → ', \\ → \. So `splitIptablesArgs(line).slice(2)` can be compared with the argv
 * we rendered.
 */
export function splitIptablesArgs(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let has = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (c === '\\' && i + 1 < line.length) {
      cur += line[i + 1];
      has = true;
      i++;
    } else if (c === '"') {
      quoted = !quoted;
      has = true;
    } else if (!quoted && (c === ' ' || c === '\t')) {
      if (has) out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
      has = true;
    }
  }
  if (has) out.push(cur);
  return out;
}

/** The -j / -g target of a rule line, or undefined. */
export function ruleTarget(line: string): string | undefined {
  const args = splitIptablesArgs(line);
  for (let i = 0; i < args.length - 1; i++) {
    if (args[i] === '-j' || args[i] === '--jump' || args[i] === '-g' || args[i] === '--goto') return args[i + 1];
  }
  return undefined;
}

export function parseMangle(text: string, isOurChain: (name: string) => boolean): MangleState {
  return parseTable(text, 'mangle', isOurChain);
}

/** Our chains and their hooks in one table of an iptables-save dump (all tables or one). */
export function parseTable(text: string, table: string, isOurChain: (name: string) => boolean): MangleState {
  const saved = parseIptablesSave(text, table);
  const chains = new Map<string, string[]>();
  const hooks: string[] = [];
  for (const [chain, rules] of saved.rules) {
    if (BUILTIN_CHAINS.has(chain)) {
      for (const r of rules) {
        const t = ruleTarget(r);
        if (t !== undefined && !BUILTIN_CHAINS.has(t) && isOurChain(t)) hooks.push(r);
      }
    } else if (isOurChain(chain)) {
      chains.set(chain, [...rules]);
    }
  }
  return { chains, hooks };
}

export type IptablesBackendChoice = 'default' | 'nf_tables' | 'legacy';

function saveCommand(family: 4 | 6, backend: IptablesBackendChoice): string {
  const base = family === 6 ? 'ip6tables' : 'iptables';
  if (backend === 'nf_tables') return `${base}-nft-save`;
  if (backend === 'legacy') return `${base}-legacy-save`;
  return `${base}-save`;
}

/** Our mangle chains and the built-in-chain rules that hook them (`iptables-save -t mangle`). */
export async function readMangle(
  exec: Exec,
  family: 4 | 6,
  isOurChain: (name: string) => boolean,
  opts: { backend?: IptablesBackendChoice } = {},
): Promise<MangleState> {
  const { stdout } = await exec(saveCommand(family, opts.backend ?? 'default'), ['-t', 'mangle']);
  return parseMangle(stdout, isOurChain);
}

/** Our chains and hooks in each of `tables`, from one `iptables-save` (`ip6tables-save`) of every table. */
export async function readTables(
  exec: Exec,
  family: 4 | 6,
  tables: readonly string[],
  isOurChain: (name: string) => boolean,
): Promise<Map<string, MangleState>> {
  const { stdout } = await exec(saveCommand(family, 'default'), []);
  return new Map(tables.map((t) => [t, parseTable(stdout, t, isOurChain)]));
}

// ====================================================================== tc

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
      const k = tok[i];
      const v = tok[i + 1] ?? '';
      switch (k) {
        case 'root':
          c.parent = null;
          break;
        case 'parent':
          c.parent = v;
          i++;
          break;
        case 'leaf':
          c.leaf = v;
          i++;
          break;
        case 'prio':
          c.prio = Number(v);
          i++;
          break;
        case 'quantum':
          c.quantum = Number(v);
          i++;
          break;
        case 'rate':
          c.rateBps = parseTcRate(v);
          i++;
          break;
        case 'ceil':
          c.ceilBps = parseTcRate(v);
          i++;
          break;
        case 'burst':
          c.burst = parseTcSize(v.split('/')[0] ?? '');
          i++;
          break;
        case 'cburst':
          c.cburst = parseTcSize(v.split('/')[0] ?? '');
          i++;
          break;
        case 'level':
          c.level = Number(v);
          i++;
          break;
        case 'dev':
        case 'linklayer':
        case 'mpu':
        case 'overhead':
          i++;
          break;
        default:
          break;
      }
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
    const num = (k: string): number | undefined => (typeof o[k] === 'number' ? (o[k]) : undefined);
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

/** Qdiscs, HTB classes and filters of `dev`. */
export async function readTc(exec: Exec, dev: string): Promise<TcState> {
  const q = await exec('tc', ['-j', 'qdisc', 'show', 'dev', dev]);
  const c = await exec('tc', ['-j', '-d', 'class', 'show', 'dev', dev]);
  const f = await exec('tc', ['filter', 'show', 'dev', dev]);
  return {
    dev,
    qdiscs: parseTcQdiscJson(q.stdout),
    classes: parseTcClasses(c.stdout),
    filters: parseTcFilterText(f.stdout),
  };
}

// ====================================================================== kernel features

export interface KernelFeatures {
  fwFilter: boolean;
  sfq: boolean;
  fq_codel: boolean;
  cake: boolean;
  pfifo: boolean;
  htb: boolean;
  classifyTarget: boolean;
  setMatch: boolean;
  ipset: boolean;
  iptablesBackend: 'nf_tables' | 'legacy';
  /** Why each missing feature failed (first error line of the probe), e.g. sfq: "Error: Specified qdisc kind is unknown." */
  errors: Record<string, string>;
}

function errText(e: unknown): string {
  if (e instanceof ExecError) return (e.stderr.trim().split('\n')[0] ?? '').trim() || e.message;
  return e instanceof Error ? e.message : String(e);
}

/** A namespace name that embeds our pid, so cleanupStale can tell live owners from crashed ones. */
export function ownedNetnsName(suffix: string): string {
  return `rq-p${process.pid}-${randomBytes(3).toString('hex')}-${suffix}`;
}

/*
 * Errors seen on this machine (kernel 6.18 without the modules):
 *   dummy:    "Error: Unknown device type."   (so the probe falls back to a veth pair)
 *   sfq, fq_codel, cake:  "Error: Specified qdisc kind is unknown."
 *   fw:       "Error: TC classifier not found."  (followed by "We have an error talking to the kernel")
 */
/**
 * Tries each feature on a throw-away interface inside a temporary namespace (always deleted).
 * `exec` runs in the root namespace; it is used for `ip netns add/del` and, wrapped with
 * inNetns, for everything else.
 */
export async function detectKernel(exec: Exec): Promise<KernelFeatures> {
  const ns = ownedNetnsName('probe');
  const ex = inNetns(exec, ns);
  const errors: Record<string, string> = {};
  const tryIt = async (key: string, cmd: string, args: string[]): Promise<boolean> => {
    try {
      await ex(cmd, args, { timeoutMs: 10_000 });
      return true;
    } catch (e) {
      errors[key] = errText(e);
      return false;
    }
  };
  const f: KernelFeatures = {
    fwFilter: false, sfq: false, fq_codel: false, cake: false, pfifo: false, htb: false,
    classifyTarget: false, setMatch: false, ipset: false, iptablesBackend: 'nf_tables', errors,
  };
  try {
    const v = await exec('iptables', ['-V']);
    f.iptablesBackend = /legacy/.test(v.stdout) ? 'legacy' : 'nf_tables';
  } catch (e) {
    errors.iptables = errText(e);
  }
  await exec('ip', ['netns', 'add', ns]);
  try {
    const dev = 'rqprobe0';
    if (!(await tryIt('dummy', 'ip', ['link', 'add', dev, 'type', 'dummy']))) {
      // no dummy driver (this test machine): a veth pair inside the namespace does as well
      await ex('ip', ['link', 'add', dev, 'type', 'veth', 'peer', 'name', 'rqprobe1']);
    }
    await ex('ip', ['link', 'set', dev, 'up']);
    f.htb = await tryIt('htb', 'tc', ['qdisc', 'add', 'dev', dev, 'root', 'handle', '1:', 'htb', 'default', '1']);
    if (f.htb) {
      await ex('tc', ['class', 'add', 'dev', dev, 'parent', '1:', 'classid', '1:1', 'htb', 'rate', '1000000bit']);
      for (const kind of ['pfifo', 'sfq', 'fq_codel', 'cake'] as const) {
        const ok = await tryIt(kind, 'tc', ['qdisc', 'add', 'dev', dev, 'parent', '1:1', 'handle', '10:', kind]);
        f[kind] = ok;
        if (ok) await ex('tc', ['qdisc', 'del', 'dev', dev, 'parent', '1:1', 'handle', '10:']);
      }
      f.fwFilter = await tryIt('fwFilter', 'tc', [
        'filter', 'add', 'dev', dev, 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'handle', '1', 'fw', 'classid', '1:1',
      ]);
    } else {
      f.pfifo = await tryIt('pfifo', 'tc', ['qdisc', 'add', 'dev', dev, 'root', 'handle', '1:', 'pfifo']);
    }
    f.ipset = await tryIt('ipset', 'ipset', ['create', 'rq_probe', 'hash:ip', 'family', 'inet']);
    if (f.ipset) {
      f.setMatch = await tryIt('setMatch', 'iptables', [
        '-t', 'mangle', '-A', 'POSTROUTING', '-m', 'set', '--match-set', 'rq_probe', 'dst', '-j', 'RETURN',
      ]);
    }
    f.classifyTarget = await tryIt('classifyTarget', 'iptables', [
      '-t', 'mangle', '-A', 'POSTROUTING', '-j', 'CLASSIFY', '--set-class', '1:1',
    ]);
  } finally {
    // Deleting the namespace removes its interfaces, qdiscs, ipsets and rules with it.
    await exec('ip', ['netns', 'del', ns]).catch(() => undefined);
  }
  return f;
}
