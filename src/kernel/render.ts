// A typed plan -> the batch texts the kernel tools read on stdin: one `ipset restore`
// (lines grouped by set, a `create ... -exist` line first for each), one
// `iptables-restore --noflush` per family, one `tc -batch`, and a final `ipset restore`
// that destroys sets nothing references any more. Pure. An empty part renders as null:
// nothing to spawn. A large ipset part (the cold fill) can instead be rendered piece by piece
// while `ipset restore` reads it (ipsetPieces), never as one string.

import { TMP_SUFFIX, markHex, type IpFamily } from './names.js';
import { HOST_FILTER } from './leaf.js';
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
    case 'host-filter':
      return `filter replace dev ${op.dev} parent ${op.parent} protocol all prio ${HOST_FILTER.prio} handle ${HOST_FILTER.handle} flow hash keys ${op.key} divisor ${HOST_FILTER.divisor} baseclass ${op.parent}1`;
    case 'host-filter-del':
      return `filter del dev ${op.dev} parent ${op.parent} protocol all prio ${HOST_FILTER.prio} handle ${HOST_FILTER.handle} flow`;
    case 'filter':
      return `filter ${op.verb} dev ${op.dev} parent 1: protocol all prio 1 handle ${markHex(op.mark)} fw classid ${op.classid}`;
    case 'filter-del':
      return `filter del dev ${op.dev} parent 1: protocol all prio 1 handle ${markHex(op.mark)} fw`;
  }
}

/** Order inside tc's batch: root, classes (parents first), leaves and their host filters, filters, then deletions. */
export function renderTc(ops: readonly TcOp[]): string | null {
  if (ops.length === 0) return null;
  const rank = (op: TcOp): number => {
    switch (op.kind) {
      case 'root':
        return 0;
      case 'class':
        return op.spec.parent === '1:' ? 1 : 2;
      case 'host-filter-del':
        return 3;
      case 'leaf':
        return 4;
      case 'host-filter':
        return 5;
      case 'leaf-del':
        return 6;
      case 'filter':
        return 7;
      case 'filter-del':
        return 8;
      case 'class-del':
        return 9;
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
