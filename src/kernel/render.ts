// A typed plan -> the batch texts the kernel tools read on stdin: one `ipset restore`
// (lines grouped by set, a `create ... -exist` line first for each), one
// `iptables-restore --noflush` per family, one `tc -batch`, and a final `ipset restore`
// that destroys sets nothing references any more. Pure. An empty part renders as null:
// nothing to spawn. A large ipset part (the cold fill) can instead be rendered piece by piece
// while `ipset restore` reads it (ipsetPieces), never as one string, and a large one split over
// parallel `ipset restore` processes (splitIpset).

import { TMP_SUFFIX, markHex, type IpFamily } from './names.js';
import type { IptOp, KernelPlan, SetOp, TcOp } from './diff.js';

export interface Batches {
  /** null also when the set operations were too many to render as one text: they were streamed (plan.sets) */
  readonly ipset: string | null;
  readonly iptables: Readonly<Record<IpFamily, string | null>>;
  readonly tc: string | null;
  readonly destroy: string | null;
}

/**
 * Initial hash size for a set about to receive `members` entries: a power of two at least
 * that large (1024 to 1 048 576). Filling 300 000 entries into a set created with 1024
 * buckets (grown by rehashing as it fills) took 1.1-1.6 s here, 0.9-1.0 s when sized.
 * For a set that exists, `create -exist` keeps the kernel's size whatever this says.
 */
export function hashsizeFor(members: number): number {
  let h = 1024;
  while (h < members && h < 1 << 20) h *= 2;
  return h;
}

export function createLine(name: string, op: Pick<SetOp, 'family' | 'maxelem'>, members = 0): string {
  return `create ${name} hash:ip family ${op.family} hashsize ${hashsizeFor(members)} maxelem ${op.maxelem} -exist`;
}

/** Lines of the `ipset restore` input for these operations (the rendered batch, not joined). */
export function ipsetLineCount(sets: readonly SetOp[]): number {
  let n = 0;
  for (const s of sets) n += s.rebuild ? s.rebuild.length + 4 : 1 + s.del.length + s.add.length;
  return n;
}

/**
 * The `ipset restore` input for these operations in pieces of at most `linesPerPiece` lines,
 * each ending with a newline; joined they are renderIpset's text. Lazy: a large batch is
 * rendered while the tool reads it (exec.ts pulls the pieces).
 */
export function* ipsetPieces(sets: readonly SetOp[], linesPerPiece = 8192): Generator<string> {
  let out: string[] = [];
  const piece = (): string => {
    const text = out.join('\n') + '\n';
    out = [];
    return text;
  };
  for (const s of sets) {
    if (s.rebuild) {
      // Not atomic line by line: fill a temporary set, then swap it in at once. The set exists
      // (a rebuild is planned only for one read back), with a smaller maxelem: no create line for
      // it, which the kernel refuses even with -exist when maxelem differs.
      const tmp = `${s.name}${TMP_SUFFIX}`;
      out.push(createLine(tmp, s, s.rebuild.length), `flush ${tmp}`);
      for (const ip of s.rebuild) {
        out.push(`add ${tmp} ${ip} -exist`);
        if (out.length >= linesPerPiece) yield piece();
      }
      out.push(`swap ${tmp} ${s.name}`, `destroy ${tmp}`);
      continue;
    }
    out.push(createLine(s.name, s, s.create ? s.add.length : 0));
    for (const ip of s.del) {
      out.push(`del ${s.name} ${ip} -exist`);
      if (out.length >= linesPerPiece) yield piece();
    }
    for (const ip of s.add) {
      out.push(`add ${s.name} ${ip} -exist`);
      if (out.length >= linesPerPiece) yield piece();
    }
  }
  if (out.length > 0) yield piece();
}

/**
 * The set operations split over `parts` `ipset restore` processes run at the same time (two
 * processes fill ~1.8× faster than one on 2 cores: the kernel's insertion is what costs, and it
 * runs in parallel), with the same end state as ipsetPieces:
 * - `prelude`, run first and alone: the create lines of the sets created and of the temporary
 *   sets of those rebuilt (flushed); null when none is.
 * - `parts`: the del/add lines. Each existing set's lines stay together in one part, its create
 *   line first and its dels before its adds (a set near its maxelem never overfills). The adds
 *   into a set created or rebuilt (a fresh or temporary set, sized for all of them) are cut
 *   into chunks spread over the parts. Assigned largest first to the part with the fewest lines;
 *   each part lists its units in plan order. Lazy pieces, as ipsetPieces.
 * - `postlude`, run last: the swaps and the destroys of the temporary sets; null when none.
 * `flushCreated`: a `flush` after each created set's create line (a leftover temporary set).
 */
export interface IpsetSplit {
  readonly prelude: string | null;
  readonly parts: readonly (() => Iterable<string>)[];
  readonly postlude: string | null;
}

interface SplitUnit {
  readonly order: number;
  readonly name: string;
  /** create line of an existing set, emitted first in its part */
  readonly create: string | null;
  readonly del: readonly string[];
  readonly add: readonly string[];
  readonly lo: number;
  readonly hi: number;
  readonly lines: number;
}

export function splitIpset(
  sets: readonly SetOp[],
  parts: number,
  opts: { linesPerPiece?: number; chunk?: number; flushCreated?: boolean } = {},
): IpsetSplit {
  const perPiece = opts.linesPerPiece ?? 8192;
  const chunk = opts.chunk ?? 8192;
  const prelude: string[] = [];
  const post: string[] = [];
  const units: SplitUnit[] = [];
  const chunks = (name: string, add: readonly string[]): void => {
    for (let lo = 0; lo < add.length; lo += chunk) {
      const hi = Math.min(add.length, lo + chunk);
      units.push({ order: units.length, name, create: null, del: [], add, lo, hi, lines: hi - lo });
    }
  };
  for (const s of sets) {
    if (s.rebuild) {
      const tmp = `${s.name}${TMP_SUFFIX}`;
      prelude.push(createLine(tmp, s, s.rebuild.length), `flush ${tmp}`);
      chunks(tmp, s.rebuild);
      post.push(`swap ${tmp} ${s.name}`, `destroy ${tmp}`);
    } else if (s.create) {
      prelude.push(createLine(s.name, s, s.add.length));
      if (opts.flushCreated) prelude.push(`flush ${s.name}`);
      chunks(s.name, s.add);
    } else {
      const lines = 1 + s.del.length + s.add.length;
      units.push({
        order: units.length,
        name: s.name,
        create: createLine(s.name, s),
        del: s.del,
        add: s.add,
        lo: 0,
        hi: s.add.length,
        lines,
      });
    }
  }
  const n = Math.max(1, Math.floor(parts));
  const assigned: SplitUnit[][] = Array.from({ length: n }, () => []);
  const load = new Array<number>(n).fill(0);
  for (const u of [...units].sort((a, b) => b.lines - a.lines || a.order - b.order)) {
    let k = 0;
    for (let i = 1; i < n; i++) if (load[i]! < load[k]!) k = i;
    assigned[k]!.push(u);
    load[k]! += u.lines;
  }
  const partInputs = assigned
    .filter((a) => a.length > 0)
    .map((a) => {
      const mine = a.sort((x, y) => x.order - y.order);
      return function* pieces(): Generator<string> {
        let out: string[] = [];
        const piece = (): string => {
          const text = out.join('\n') + '\n';
          out = [];
          return text;
        };
        for (const u of mine) {
          if (u.create) out.push(u.create);
          for (const ip of u.del) {
            out.push(`del ${u.name} ${ip} -exist`);
            if (out.length >= perPiece) yield piece();
          }
          for (let i = u.lo; i < u.hi; i++) {
            out.push(`add ${u.name} ${u.add[i]!} -exist`);
            if (out.length >= perPiece) yield piece();
          }
        }
        if (out.length > 0) yield piece();
      };
    });
  return {
    prelude: prelude.length ? prelude.join('\n') + '\n' : null,
    parts: partInputs,
    postlude: post.length ? post.join('\n') + '\n' : null,
  };
}

export function renderIpset(sets: readonly SetOp[]): string | null {
  if (sets.length === 0) return null;
  return [...ipsetPieces(sets)].join('');
}

/** Quotes an argument for iptables-restore when it is not a plain word. */
export function iptArg(a: string): string {
  return /^[A-Za-z0-9_.:/=+,@%-]+$/.test(a) ? a : `"${a.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** One iptables-restore input for all tables of a family: `*table`, declarations, rules, COMMIT. */
export function renderIptables(ops: readonly IptOp[]): string | null {
  if (ops.length === 0) return null;
  const out: string[] = [];
  for (const table of ['mangle', 'filter', 'nat'] as const) {
    const mine = ops.filter((o) => o.table === table);
    if (mine.length === 0) continue;
    const declare = new Set<string>();
    const body: string[] = [];
    for (const op of mine) {
      switch (op.kind) {
        case 'hook-del':
          body.push(`-D ${op.builtin} ${op.args.map(iptArg).join(' ')}`);
          break;
        case 'chain':
          // In --noflush mode, declaring a user chain creates it or flushes it: the chain is
          // rewritten whole, inside the same transaction (no window without rules).
          declare.add(op.chain);
          for (const r of op.rules) body.push(`-A ${op.chain} ${r.map(iptArg).join(' ')}`);
          break;
        case 'hook-add':
          body.push(`-I ${op.builtin} 1 ${op.args.map(iptArg).join(' ')}`);
          break;
        case 'chain-del':
          declare.add(op.chain); // flushed first, then deleted
          body.push(`-X ${op.chain}`);
          break;
      }
    }
    out.push(`*${table}`, ...[...declare].map((c) => `:${c} - [0:0]`), ...body, 'COMMIT');
  }
  return out.join('\n') + '\n';
}

function tcLine(op: TcOp): string {
  switch (op.kind) {
    case 'root':
      return (
        (op.delFirst ? `qdisc del dev ${op.dev} root\n` : '') +
        `qdisc ${op.delFirst ? 'add' : 'replace'} dev ${op.dev} root handle 1: htb default ${op.defaultMinor.toString(16)} r2q 10`
      );
    case 'class': {
      const c = op.spec;
      const q = c.quantum === null ? '' : ` quantum ${c.quantum}`;
      return `class ${op.verb} dev ${op.dev} parent ${c.parent} classid ${c.classid} htb rate ${c.rateBps}bit ceil ${c.ceilBps}bit${q}`;
    }
    case 'class-del':
      return `class del dev ${op.dev} classid ${op.classid}`;
    case 'leaf':
      return `qdisc ${op.verb} dev ${op.dev} parent ${op.parent} handle ${op.handle} ${op.qdisc.join(' ')}`;
    case 'leaf-del':
      return `qdisc del dev ${op.dev} parent ${op.parent}`;
    case 'filter':
      return `filter ${op.verb} dev ${op.dev} parent 1: protocol all prio 1 handle ${markHex(op.mark)} fw classid ${op.classid}`;
    case 'filter-del':
      return `filter del dev ${op.dev} parent 1: protocol all prio 1 handle ${markHex(op.mark)} fw`;
  }
}

/** Order inside tc's batch: root, classes (parents first), leaves, filters, then deletions. */
export function renderTc(ops: readonly TcOp[]): string | null {
  if (ops.length === 0) return null;
  const rank = (op: TcOp): number => {
    switch (op.kind) {
      case 'root':
        return 0;
      case 'class':
        return op.spec.parent === '1:' ? 1 : 2;
      case 'leaf':
        return 3;
      case 'leaf-del':
        return 4;
      case 'filter':
        return 5;
      case 'filter-del':
        return 6;
      case 'class-del':
        return 7;
    }
  };
  const sorted = ops
    .map((op, i) => ({ op, i }))
    .sort((a, b) => rank(a.op) - rank(b.op) || a.i - b.i)
    .map((x) => x.op);
  return sorted.map(tcLine).join('\n') + '\n';
}

export function renderDestroy(names: readonly string[]): string | null {
  if (names.length === 0) return null;
  return names.map((n) => `destroy ${n}`).join('\n') + '\n';
}

/** `skipIpset`: the ipset part is streamed from the plan at apply time (ipsetPieces), not rendered here. */
export function renderPlan(p: KernelPlan, opts: { skipIpset?: boolean } = {}): Batches {
  return {
    ipset: opts.skipIpset ? null : renderIpset(p.sets),
    iptables: { 4: renderIptables(p.iptables[4]), 6: renderIptables(p.iptables[6]) },
    tc: renderTc(p.tc),
    destroy: renderDestroy(p.destroy),
  };
}
