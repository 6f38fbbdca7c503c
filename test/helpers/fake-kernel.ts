// A fake kernel for unit tests (Felix's mockDataplane): an Exec that interprets the batches we
// render — `ipset restore`, `iptables-restore --noflush`, `tc -batch` — keeps the resulting state,
// and answers the read-back commands (`ipset list -t`, `ipset save`, `iptables-save`,
// `tc qdisc/class/filter show`) in the tools' own output formats, so the real parsers in
// src/kernel/read.ts run on what it prints. It can be told to fail at a given line of the next
// batch of a tool, and state can be changed "from outside" to test drift repair.
//
// It enforces what the real kernel enforces and our apply order depends on: a rule may not name
// a set or chain that does not exist, a set in use cannot be destroyed, a class needs its
// parent, a chain in use cannot be deleted. It is a model, not a proof: the real-kernel tests
// in test/kernel stay the proof.
import { ExecError, type Exec, type ExecOptions, type ExecResult } from '../../src/exec/exec.js';
import { formatTcRate, splitIptablesArgs } from '../../src/kernel/read.js';

export interface FakeSet {
  family: 'inet' | 'inet6';
  hashsize: number;
  maxelem: number;
  members: Set<string>;
}

interface FakeTable {
  /** chain -> rule lines as iptables-save prints them ("-A CHAIN ...") */
  chains: Map<string, string[]>;
  builtins: Set<string>;
}

interface FakeClass {
  parent: string | null;
  rate: number;
  ceil: number;
  quantum: number | null;
}

interface FakeDev {
  root: { kind: string; handle: string; defaultMinor: string } | null;
  classes: Map<string, FakeClass>;
  /** parent classid -> leaf qdisc; `flowKeys`: the keys of the flow filter attached to it (fairness = host) */
  leaves: Map<string, { handle: string; kind: string; args: string[]; flowKeys?: string }>;
  /** mark (hex) -> classid */
  filters: Map<string, string>;
}

export interface Call {
  cmd: string;
  args: string[];
  input?: string;
}

const BUILTINS: Record<string, string[]> = {
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
};

class LineError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(message);
  }
}

function fail(cmd: string, args: readonly string[], stderr: string): never {
  throw new ExecError({ command: cmd, args, code: 1, signal: null, stdout: '', stderr, timedOut: false });
}

export class FakeKernel {
  readonly sets = new Map<string, FakeSet>();
  readonly tables: Record<4 | 6, Map<string, FakeTable>> = { 4: new Map(), 6: new Map() };
  readonly devs = new Map<string, FakeDev>();
  /** every command run, in order */
  readonly calls: Call[] = [];
  /** text printed by `tc class show`: 'text' (iproute2 6.1, rates rounded) or 'json' (>= 6.2, exact) */
  tcFormat: 'text' | 'json' = 'text';
  private failNext: { tool: 'ipset' | 'iptables-restore' | 'tc'; line: number; reason: string } | null = null;

  constructor(devices: readonly string[]) {
    for (const d of devices) this.devs.set(d, { root: null, classes: new Map(), leaves: new Map(), filters: new Map() });
    for (const f of [4, 6] as const) {
      for (const [t, b] of Object.entries(BUILTINS))
        this.tables[f].set(t, { chains: new Map(b.map((c) => [c, []])), builtins: new Set(b) });
    }
  }

  /** The next batch of `tool` fails at `line` (1-based), after applying the lines before it (as ipset and tc do). */
  failAt(tool: 'ipset' | 'iptables-restore' | 'tc', line: number, reason = 'injected failure'): void {
    this.failNext = { tool, line, reason };
  }

  /** Commands run since `from` (an index into calls), as "cmd args..." strings. */
  commandsSince(from: number): string[] {
    return this.calls.slice(from).map((c) => [c.cmd, ...c.args].join(' '));
  }

  readonly exec: Exec = async (cmd: string, args: readonly string[], opts?: ExecOptions): Promise<ExecResult> => {
    let c = cmd;
    let a = [...args];
    if (c === 'ip' && a[0] === 'netns' && a[1] === 'exec') {
      c = a[3] ?? '';
      a = a.slice(4);
    }
    // a batch in pieces (a streamed cold fill) reads as its whole text
    const input = opts?.input === undefined ? undefined : typeof opts.input === 'string' ? opts.input : [...opts.input].join('');
    this.calls.push({ cmd: c, args: a, ...(input !== undefined ? { input } : {}) });
    const ok = (stdout = ''): ExecResult => ({ stdout, stderr: '', code: 0 });
    switch (c) {
      case 'ipset':
        if (a[0] === 'list' && a[1] === '-t') return ok(this.ipsetHeaders());
        if (a[0] === 'save') return ok(this.ipsetSave());
        if (a[0] === 'restore') return ok(this.batch('ipset', c, a, input ?? '', (l, n) => this.ipsetLine(l, n)));
        break;
      case 'iptables-save':
      case 'ip6tables-save':
        return ok(this.save(c === 'iptables-save' ? 4 : 6));
      case 'iptables-restore':
      case 'ip6tables-restore':
        return ok(this.restore(c === 'iptables-restore' ? 4 : 6, c, a, input ?? ''));
      case 'tc':
        return ok(this.tc(c, a, input ?? ''));
      default:
        break;
    }
    fail(c, a, `fake kernel: unknown command ${c} ${a.join(' ')}`);
  };

  // ------------------------------------------------------------------ ipset

  private references(name: string): number {
    let n = 0;
    for (const f of [4, 6] as const) {
      for (const t of this.tables[f].values()) {
        for (const rules of t.chains.values())
          for (const r of rules) if (splitIptablesArgs(r).includes(name) && r.includes('--match-set')) n++;
      }
    }
    return n;
  }

  private ipsetHeaders(): string {
    const out: string[] = [];
    for (const [name, s] of this.sets) {
      out.push(
        `Name: ${name}`,
        'Type: hash:ip',
        'Revision: 6',
        `Header: family ${s.family} hashsize ${s.hashsize} maxelem ${s.maxelem} bucketsize 12 initval 0x1234abcd`,
        `Size in memory: ${200 + 16 * s.members.size}`,
        `References: ${this.references(name)}`,
        `Number of entries: ${s.members.size}`,
        '',
      );
    }
    return out.join('\n');
  }

  private ipsetSave(): string {
    const out: string[] = [];
    for (const [name, s] of this.sets) {
      out.push(`create ${name} hash:ip family ${s.family} hashsize ${s.hashsize} maxelem ${s.maxelem} bucketsize 12 initval 0x1234abcd`);
      for (const ip of s.members) out.push(`add ${name} ${ip}`);
    }
    return out.join('\n') + (out.length ? '\n' : '');
  }

  private ipsetLine(line: string, n: number): void {
    const t = line.trim().split(/\s+/);
    const exist = t.includes('-exist');
    const name = t[1] ?? '';
    const need = (): FakeSet => {
      const s = this.sets.get(name);
      if (!s) throw new LineError(n, 'The set with the given name does not exist');
      return s;
    };
    switch (t[0]) {
      case 'create': {
        const opt = (k: string): string | undefined => t[t.indexOf(k) + 1];
        const family = opt('family') === 'inet6' ? 'inet6' : 'inet';
        const prev = this.sets.get(name);
        if (prev) {
          // as ipset 7.17 does: -exist passes a create of the same definition (hashsize aside),
          // not one with another family or maxelem
          const maxelem = Number(opt('maxelem') ?? 65536);
          if (!exist || prev.family !== family || prev.maxelem !== maxelem)
            throw new LineError(n, 'Set cannot be created: set with the same name already exists');
          return;
        }
        this.sets.set(name, {
          family,
          hashsize: Number(opt('hashsize') ?? 1024),
          maxelem: Number(opt('maxelem') ?? 65536),
          members: new Set(),
        });
        return;
      }
      case 'flush':
        need().members.clear();
        return;
      case 'add': {
        const s = need();
        const ip = t[2] ?? '';
        if (ip.includes(':') !== (s.family === 'inet6'))
          throw new LineError(n, `Syntax error: cannot parse ${ip}: resolving to ${s.family === 'inet6' ? 'IPv6' : 'IPv4'} address failed`);
        if (s.members.has(ip)) {
          if (!exist) throw new LineError(n, "Element cannot be added to the set: it's already added");
          return;
        }
        if (s.members.size >= s.maxelem) throw new LineError(n, 'Hash is full, cannot add more elements');
        s.members.add(ip);
        return;
      }
      case 'del': {
        const s = need();
        if (!s.members.delete(t[2] ?? '') && !exist) throw new LineError(n, "Element cannot be deleted from the set: it's not added");
        return;
      }
      case 'swap': {
        const a = need();
        const other = t[2] ?? '';
        const b = this.sets.get(other);
        if (!b) throw new LineError(n, 'The set with the given name does not exist');
        if (a.family !== b.family) throw new LineError(n, 'The sets cannot be swapped: their type does not match');
        this.sets.set(name, b);
        this.sets.set(other, a);
        return;
      }
      case 'destroy':
        need();
        if (this.references(name) > 0) throw new LineError(n, 'Set cannot be destroyed: it is in use by a kernel component');
        this.sets.delete(name);
        return;
      default:
        throw new LineError(n, `No command specified: unknown argument ${t[0] ?? ''}`);
    }
  }

  /** Runs a line-by-line batch (ipset restore, tc -batch): lines before a failure stay applied. */
  private batch(
    tool: 'ipset' | 'tc',
    cmd: string,
    args: string[],
    input: string,
    each: (line: string, n: number) => string | void,
  ): string {
    const lines = input.split('\n');
    let out = '';
    try {
      lines.forEach((l, i) => {
        if (l.trim() === '' || l.startsWith('#')) return;
        if (this.failNext?.tool === tool && this.failNext.line === i + 1) {
          const reason = this.failNext.reason;
          this.failNext = null;
          throw new LineError(i + 1, reason);
        }
        out += each(l, i + 1) ?? '';
      });
    } catch (e) {
      if (!(e instanceof LineError)) throw e;
      fail(
        cmd,
        args,
        tool === 'ipset' ? `ipset v7.17: Error in line ${e.line}: ${e.message}\n` : `Error: ${e.message}\nCommand failed -:${e.line}\n`,
      );
    }
    return out;
  }

  // ------------------------------------------------------------------ iptables

  private save(family: 4 | 6): string {
    const out: string[] = [];
    for (const [name, t] of this.tables[family]) {
      out.push(`# Generated by fake-kernel`, `*${name}`);
      for (const c of t.chains.keys()) out.push(t.builtins.has(c) ? `:${c} ACCEPT [0:0]` : `:${c} - [0:0]`);
      for (const rules of t.chains.values()) out.push(...rules);
      out.push('COMMIT', '# Completed');
    }
    return out.join('\n') + '\n';
  }

  /** iptables-restore --noflush: all or nothing (the nf_tables backend commits the whole input at once). */
  private restore(family: 4 | 6, cmd: string, args: string[], input: string): string {
    const copy = new Map(
      [...this.tables[family]].map(([k, t]) => [k, { builtins: t.builtins, chains: new Map([...t.chains].map(([c, r]) => [c, [...r]])) }]),
    );
    let table: FakeTable | undefined;
    const lines = input.split('\n');
    try {
      lines.forEach((raw, i) => {
        const n = i + 1;
        const line = raw.trim();
        if (this.failNext?.tool === 'iptables-restore' && this.failNext.line === n) {
          const reason = this.failNext.reason;
          this.failNext = null;
          throw new LineError(n, reason);
        }
        if (line === '' || line.startsWith('#')) return;
        if (line.startsWith('*')) {
          table = copy.get(line.slice(1));
          if (!table) throw new LineError(n, `table '${line.slice(1)}' does not exist`);
          return;
        }
        if (line === 'COMMIT') {
          table = undefined;
          return;
        }
        if (!table) throw new LineError(n, 'no table');
        const t = table;
        if (line.startsWith(':')) {
          const chain = line.slice(1).split(/\s+/)[0] ?? '';
          if (!t.builtins.has(chain)) t.chains.set(chain, []); // --noflush: declaring a user chain creates or flushes it
          return;
        }
        const w = splitIptablesArgs(line);
        const op = w[0];
        const chain = w[1] ?? '';
        const rules = t.chains.get(chain);
        if (!rules) throw new LineError(n, `Chain '${chain}' does not exist`);
        const check = (ruleArgs: string[]): void => {
          const set = ruleArgs[ruleArgs.indexOf('--match-set') + 1];
          if (ruleArgs.includes('--match-set') && (set === undefined || !this.sets.has(set)))
            throw new LineError(n, `Set ${set ?? ''} doesn't exist.`);
          const j = ruleArgs.indexOf('-j');
          const target = j >= 0 ? ruleArgs[j + 1] : undefined;
          if (target !== undefined && /^RESELQOS/.test(target) && !t.chains.has(target))
            throw new LineError(n, `Chain '${target}' does not exist`);
        };
        const same = (r: string, a: string[]): boolean => JSON.stringify(splitIptablesArgs(r).slice(2)) === JSON.stringify(a);
        switch (op) {
          case '-A':
            check(w.slice(2));
            rules.push(`-A ${chain} ${line.slice(line.indexOf(chain) + chain.length).trim()}`);
            return;
          case '-I': {
            const pos = /^\d+$/.test(w[2] ?? '') ? Number(w[2]) : 1;
            const rest = /^\d+$/.test(w[2] ?? '') ? w.slice(3) : w.slice(2);
            check(rest);
            const text = line
              .slice(line.indexOf(chain) + chain.length)
              .trim()
              .replace(/^\d+\s+/, '');
            rules.splice(pos - 1, 0, `-A ${chain} ${text}`);
            return;
          }
          case '-D': {
            const idx = rules.findIndex((r) => same(r, w.slice(2)));
            if (idx < 0) throw new LineError(n, 'Bad rule (does a matching rule exist in that chain?)');
            rules.splice(idx, 1);
            return;
          }
          case '-F':
            rules.length = 0;
            return;
          case '-X': {
            for (const [other, rs] of t.chains) {
              if (
                other !== chain &&
                rs.some((r) => {
                  const a = splitIptablesArgs(r);
                  return a[a.indexOf('-j') + 1] === chain;
                })
              ) {
                throw new LineError(n, `Chain '${chain}' is in use`);
              }
            }
            t.chains.delete(chain);
            return;
          }
          default:
            throw new LineError(n, `unknown command ${op ?? ''}`);
        }
      });
    } catch (e) {
      if (!(e instanceof LineError)) throw e;
      fail(cmd, args, `${cmd}: line ${e.line} failed: ${e.message}\n`);
    }
    this.tables[family] = copy;
    return '';
  }

  // ------------------------------------------------------------------ tc

  private dev(name: string, n?: number): FakeDev {
    const d = this.devs.get(name);
    if (!d) {
      if (n !== undefined) throw new LineError(n, `Cannot find device "${name}"`);
      throw new Error(`Cannot find device "${name}"`);
    }
    return d;
  }

  private tc(cmd: string, a: string[], input: string): string {
    if (a[0] === '-batch') return this.batch('tc', cmd, a, input, (l, n) => this.tcLine(l, n));
    const json = a.includes('-j');
    const words = a.filter((x) => x !== '-j' && x !== '-d' && x !== '-s');
    const devName = words[words.indexOf('dev') + 1] ?? '';
    const d = this.devs.get(devName);
    if (!d) fail(cmd, a, `Cannot find device "${devName}"\n`);
    if (words[0] === 'qdisc' && json) {
      const q: unknown[] = [];
      if (d.root)
        q.push({
          kind: d.root.kind,
          handle: d.root.handle,
          root: true,
          refcnt: 2,
          options: { r2q: 10, default: `0x${d.root.defaultMinor}` },
        });
      else q.push({ kind: 'noqueue', handle: '0:', root: true, refcnt: 2, options: {} });
      for (const [parent, l] of d.leaves) q.push({ kind: l.kind, handle: l.handle, parent, options: leafOptions(l) });
      return JSON.stringify(q) + '\n';
    }
    if (words[0] === 'class') {
      const rows = [...d.classes].sort(([x], [y]) => (x < y ? -1 : 1));
      if (this.tcFormat === 'json') {
        return (
          JSON.stringify(
            rows.map(([id, c]) => ({
              class: 'htb',
              handle: id,
              ...(c.parent === null ? { root: true } : { parent: c.parent }),
              ...(d.leaves.has(id) ? { leaf: `0x${d.leaves.get(id)!.handle.replace(':', '')}` } : {}),
              prio: 0,
              ...(c.quantum !== null ? { quantum: c.quantum } : {}),
              rate: Math.floor(c.rate / 8),
              ceil: Math.floor(c.ceil / 8),
              level: c.parent === null ? 7 : 0,
            })),
          ) + '\n'
        );
      }
      return (
        rows
          .map(([id, c]) => {
            const leaf = d.leaves.get(id);
            return (
              `class htb ${id} ${c.parent === null ? 'root' : `parent ${c.parent}`}${leaf ? ` leaf ${leaf.handle}` : ''} prio 0${c.quantum !== null && leaf ? ` quantum ${c.quantum}` : ''} ` +
              `rate ${formatTcRate(Math.floor(c.rate / 8))} ceil ${formatTcRate(Math.floor(c.ceil / 8))} linklayer ethernet burst 1600b/1 mpu 0b cburst 1600b/1 mpu 0b level ${c.parent === null ? 7 : 0}`
            );
          })
          .join('\n') + (rows.length ? '\n' : '')
      );
    }
    if (words[0] === 'filter') {
      if (d.filters.size === 0) return '';
      const out = ['filter parent 1: protocol all pref 1 fw chain 0'];
      for (const [mark, cls] of d.filters) out.push(`filter parent 1: protocol all pref 1 fw chain 0 handle ${mark} classid ${cls}`);
      return out.join('\n') + '\n';
    }
    fail(cmd, a, `fake kernel: unknown tc command ${a.join(' ')}`);
  }

  private tcLine(line: string, n: number): string | void {
    const w = line.trim().split(/\s+/);
    const [obj, verb] = w;
    const opt = (k: string): string | undefined => (w.includes(k) ? w[w.indexOf(k) + 1] : undefined);
    const d = this.dev(opt('dev') ?? '', n);
    const rate = (k: string): number => {
      const v = opt(k) ?? '';
      const m = /^(\d+)bit$/.exec(v);
      if (!m) throw new LineError(n, `Illegal "${k}"`);
      return Math.floor(Number(m[1]) / 8) * 8;
    };
    if (obj === 'qdisc' && w.includes('root')) {
      if (verb === 'del') {
        if (!d.root) throw new LineError(n, 'Cannot delete qdisc with handle of zero.');
        d.root = null;
        d.classes.clear();
        d.leaves.clear();
        d.filters.clear();
        return;
      }
      if (verb === 'add' && d.root) throw new LineError(n, 'Exclusivity flag on, cannot modify.');
      const kind = w[w.indexOf('root') + 3] ?? '';
      if (d.root && d.root.kind !== kind) {
        d.classes.clear();
        d.leaves.clear();
        d.filters.clear();
      }
      d.root = { kind, handle: opt('handle') ?? '1:', defaultMinor: opt('default') ?? '0' };
      return;
    }
    if (obj === 'qdisc') {
      const parent = opt('parent') ?? '';
      if (verb === 'del') {
        if (!d.leaves.delete(parent)) throw new LineError(n, 'Invalid handle.');
        return;
      }
      if (!d.classes.has(parent)) throw new LineError(n, 'Specified class not found.');
      const handle = opt('handle') ?? '';
      const kindIdx = w.indexOf('handle') + 2;
      if (verb === 'add' && d.leaves.has(parent)) throw new LineError(n, 'Exclusivity flag on, cannot modify.');
      const kind = w[kindIdx] ?? '';
      // a replace by the same kind and handle changes the qdisc in place (its filters stay); another is a new qdisc
      const old = d.leaves.get(parent);
      const keep = old && old.kind === kind && old.handle === handle ? old.flowKeys : undefined;
      d.leaves.set(parent, { handle, kind, args: w.slice(kindIdx + 1), ...(keep !== undefined ? { flowKeys: keep } : {}) });
      return;
    }
    if (obj === 'class') {
      const id = opt('classid') ?? '';
      if (verb === 'del') {
        if (!d.classes.has(id)) throw new LineError(n, 'Cannot find specified class');
        if ([...d.classes.values()].some((c) => c.parent === id)) throw new LineError(n, 'Class has children');
        d.classes.delete(id);
        d.leaves.delete(id);
        return;
      }
      if (!d.root) throw new LineError(n, 'Cannot find specified qdisc on specified device.');
      const parent = opt('parent') ?? '';
      if (parent !== d.root.handle && !d.classes.has(parent)) throw new LineError(n, 'Specified class not found.');
      const exists = d.classes.has(id);
      if (verb === 'add' && exists) throw new LineError(n, 'Exclusivity flag on, cannot modify.');
      if (verb === 'change' && !exists) throw new LineError(n, 'Cannot find specified class');
      const q = opt('quantum');
      d.classes.set(id, {
        parent: parent === d.root.handle ? null : parent,
        rate: rate('rate'),
        ceil: rate('ceil'),
        quantum: q === undefined ? null : Number(q),
      });
      return;
    }
    if (obj === 'filter' && opt('parent') !== '1:') {
      // a leaf's flow filter (fairness = host); `show` prints no parent line when given one, as tc does
      const h = opt('parent') ?? '';
      const leaf = [...d.leaves.values()].find((l) => l.handle === h);
      if (!leaf) throw new LineError(n, "Parent Qdisc doesn't exists.");
      if (verb === 'show') {
        if (leaf.flowKeys === undefined) return '';
        return (
          `filter protocol all pref 1 flow chain 0 \n` +
          `filter protocol all pref 1 flow chain 0 handle 0x1 hash keys ${leaf.flowKeys} divisor 1024 baseclass ${h}1 \n`
        );
      }
      if (verb === 'del') {
        if (leaf.flowKeys === undefined) throw new LineError(n, 'Filter with specified priority/protocol not found.');
        delete leaf.flowKeys;
        return;
      }
      if (!w.includes('flow')) throw new LineError(n, `fake kernel: only flow filters on a leaf`);
      if (!['sfq', 'fq_codel'].includes(leaf.kind)) throw new LineError(n, `Class doesn't support filters (${leaf.kind})`);
      leaf.flowKeys = opt('keys') ?? '';
      return;
    }
    if (obj === 'filter') {
      const mark = opt('handle') ?? '';
      if (verb === 'del') {
        if (!d.filters.delete(mark)) throw new LineError(n, 'Filter with specified priority/protocol not found.');
        return;
      }
      const cls = opt('classid') ?? '';
      if (!d.classes.has(cls)) throw new LineError(n, 'Specified class not found.');
      d.filters.set(mark, cls);
      return;
    }
    throw new LineError(n, `Unknown command "${obj ?? ''}"`);
  }
}

/** What `tc -j qdisc show` reports in "options" for a leaf (cake: its rtt in µs, 100 ms unless given). */
function leafOptions(l: { kind: string; args: string[] }): Record<string, unknown> {
  if (l.kind !== 'cake') return {};
  const i = l.args.indexOf('rtt');
  const m = i >= 0 ? /^(\d+(?:\.\d+)?)(ms|us|s)$/.exec(l.args[i + 1] ?? '') : null;
  const unit = m ? ({ s: 1e6, ms: 1e3, us: 1 } as const)[m[2] as 's' | 'ms' | 'us'] : 0;
  const modes = ['flowblind', 'srchost', 'dsthost', 'hosts', 'flows', 'dual-srchost', 'dual-dsthost', 'triple-isolate'];
  return {
    flowmode: l.args.find((a) => modes.includes(a)) ?? 'triple-isolate',
    nat: l.args.includes('nat'),
    rtt: m ? Math.round(Number(m[1]) * unit) : 100_000,
  };
}
