// Desired (model.ts) vs actual (read back from the kernel) -> a typed plan of changes.
// Pure: never runs a tool. The plan holds only what differs; an empty plan means the
// kernel already is as desired and nothing will be spawned to apply it.

import { splitIptablesArgs, tcReportedRate, type TableState, type TcFilter, type TcState } from './read.js';
import { ruleKey } from './ruleid.js';
import type { IpFamily, SetFamily } from './names.js';
import { type KernelDesired, type RuleArgs, type SetSpec, type TableName, type TableSpec, type TcClassSpec } from './model.js';
import { HOST_FILTER, type HostKey } from './leaf.js';
import type { MemberSet } from './members.js';

export interface ActualSet {
  readonly family: SetFamily;
  readonly maxelem: number;
  /** members, or null when only the count is known (cheap verification) */
  readonly members: MemberSet | null;
  readonly count: number;
}

export interface KernelActual {
  /** our sets only */
  readonly sets: ReadonlyMap<string, ActualSet>;
  /** our chains and hooks per "family:table" (e.g. "4:mangle") */
  readonly tables: ReadonlyMap<string, TableState>;
  readonly tc: ReadonlyMap<string, TcState>;
}

export const tableKey = (family: IpFamily, table: TableName): string => `${family}:${table}`;

export interface SetOp {
  readonly name: string;
  readonly family: SetFamily;
  readonly maxelem: number;
  /** the set does not exist: create it (and add every member) */
  readonly create: boolean;
  readonly add: readonly string[];
  readonly del: readonly string[];
  /** rebuild through <name>-tmp and swap (maxelem too small, family changed): the full member list */
  readonly rebuild: readonly string[] | null;
}

export type IptOp = { readonly table: TableName } & (
  | { readonly kind: 'chain'; readonly chain: string; readonly rules: readonly RuleArgs[] }
  | { readonly kind: 'hook-add'; readonly builtin: string; readonly args: RuleArgs }
  | { readonly kind: 'hook-del'; readonly builtin: string; readonly args: RuleArgs }
  | { readonly kind: 'chain-del'; readonly chain: string }
);

export type TcOp =
  | {
      readonly kind: 'root';
      readonly dev: string;
      readonly defaultMinor: number;
      /** an htb 1: is there already (HTB cannot be changed in place) */ readonly delFirst: boolean;
    }
  | { readonly kind: 'class'; readonly verb: 'add' | 'change'; readonly dev: string; readonly spec: TcClassSpec }
  | { readonly kind: 'class-del'; readonly dev: string; readonly classid: string }
  | {
      readonly kind: 'leaf';
      readonly verb: 'add' | 'replace';
      readonly dev: string;
      readonly parent: string;
      readonly handle: string;
      readonly qdisc: readonly string[];
    }
  | { readonly kind: 'leaf-del'; readonly dev: string; readonly parent: string }
  /** fairness = host: the flow filter of the leaf qdisc `parent` ("10:") hashing by `key` (created or changed) */
  | { readonly kind: 'host-filter'; readonly dev: string; readonly parent: string; readonly key: HostKey }
  | { readonly kind: 'host-filter-del'; readonly dev: string; readonly parent: string }
  | { readonly kind: 'filter'; readonly verb: 'add' | 'replace'; readonly dev: string; readonly mark: number; readonly classid: string }
  | { readonly kind: 'filter-del'; readonly dev: string; readonly mark: number };

export interface KernelPlan {
  readonly sets: readonly SetOp[];
  /** our sets nothing desires any more (destroyed last, after the rules that used them) */
  readonly destroy: readonly string[];
  readonly iptables: Readonly<Record<IpFamily, readonly IptOp[]>>;
  readonly tc: readonly TcOp[];
}

export interface PlanCounts {
  ipset: { add: number; del: number };
  tc: { change: number; add: number };
  iptables: number;
}

export function countPlan(p: KernelPlan): PlanCounts {
  let add = 0;
  let del = 0;
  for (const s of p.sets) {
    add += s.add.length + (s.rebuild?.length ?? 0);
    del += s.del.length;
  }
  let tcChange = 0;
  let tcAdd = 0;
  for (const op of p.tc) {
    if (op.kind === 'class' && op.verb === 'change') tcChange++;
    else tcAdd++;
  }
  let ipt = 0;
  for (const fam of [4, 6] as const) {
    for (const op of p.iptables[fam]) ipt += op.kind === 'chain' ? op.rules.length : 1;
  }
  return { ipset: { add, del }, tc: { change: tcChange, add: tcAdd }, iptables: ipt };
}

export function isEmptyPlan(p: KernelPlan): boolean {
  return p.sets.length === 0 && p.destroy.length === 0 && p.iptables[4].length === 0 && p.iptables[6].length === 0 && p.tc.length === 0;
}

/** maxelem for a set that may hold `count` members: twice that, a power of two, at least 65536. */
export function maxelemFor(count: number): number {
  let m = 65536;
  while (m < count * 2) m *= 2;
  return m;
}

export interface DiffOptions {
  /** remove leftovers we own (only after a first complete sync) */
  readonly sweep: boolean;
  /** re-issue `class change` for every class (first sync of a process: tc's text read-back is rounded) */
  readonly refreshClasses?: boolean;
  /** replace the whole tc tree even when ours is there (start) */
  readonly rebuild?: boolean;
  /** set operations already known (an incremental plan's delta): the members are not compared */
  readonly setOps?: readonly SetOp[];
}

/**
 * Set operations from an incremental plan's delta, against what we know the kernel holds.
 * Null when the delta cannot be used as is (a set missing or too small): diff then.
 */
export function deltaSetOps(
  desired: readonly SetSpec[],
  delta: ReadonlyMap<string, { readonly add: readonly string[]; readonly del: readonly string[] }>,
  actual: ReadonlyMap<string, ActualSet>,
): SetOp[] | null {
  const ops: SetOp[] = [];
  for (const s of desired) {
    const a = actual.get(s.name);
    if (!a || a.family !== s.family || a.maxelem < Math.max(s.capacity, s.members.size) * 1.25) return null;
    const d = delta.get(s.name);
    if (d && (d.add.length || d.del.length))
      ops.push({ name: s.name, family: s.family, maxelem: a.maxelem, create: false, add: d.add, del: d.del, rebuild: null });
  }
  if (delta.size > 0 && [...delta.keys()].some((name) => !desired.some((s) => s.name === name))) return null;
  return ops;
}

function diffSets(desired: readonly SetSpec[], actual: ReadonlyMap<string, ActualSet>): SetOp[] {
  // Every set of a family may in the worst case hold every IP of that family.
  const ops: SetOp[] = [];
  for (const s of desired) {
    const total = Math.max(s.capacity, s.members.size);
    const a = actual.get(s.name);
    if (!a) {
      ops.push({ name: s.name, family: s.family, maxelem: maxelemFor(total), create: true, add: [...s.members], del: [], rebuild: null });
      continue;
    }
    if (a.family !== s.family || a.maxelem < total * 1.25) {
      ops.push({
        name: s.name,
        family: s.family,
        maxelem: Math.max(a.family === s.family ? a.maxelem : 0, maxelemFor(total)),
        create: false,
        add: [],
        del: [],
        rebuild: [...s.members],
      });
      continue;
    }
    if (a.members === null) {
      // Only the count is known; equal counts are trusted (the caller reads members when in doubt).
      continue;
    }
    const add: string[] = [];
    const del: string[] = [];
    for (const ip of s.members) if (!a.members.has(ip)) add.push(ip);
    // Every desired member not added is there: the kernel holds more only if the counts say so
    // (the pass over the kernel's members, the costly one with compact members, is then skipped).
    if (a.members.size > s.members.size - add.length) for (const ip of a.members) if (!s.members.has(ip)) del.push(ip);
    if (add.length || del.length) ops.push({ name: s.name, family: s.family, maxelem: a.maxelem, create: false, add, del, rebuild: null });
  }
  return ops;
}

const key = ruleKey;

function parseRule(line: string): { chain: string; args: string[] } {
  const t = splitIptablesArgs(line);
  return { chain: t[1] ?? '', args: t.slice(2) };
}

function diffTable(desired: TableSpec, actual: TableState | undefined, sweep: boolean): IptOp[] {
  const table = desired.table;
  const dels: IptOp[] = [];
  const writes: IptOp[] = [];
  const adds: IptOp[] = [];
  const chainDels: IptOp[] = [];
  const actualChains = actual?.chains ?? new Map<string, string[]>();
  const wanted = new Set(desired.chains.map((c) => c.name));

  for (const c of desired.chains) {
    const have = actualChains.get(c.name);
    const same =
      have !== undefined && have.length === c.rules.length && have.every((line, i) => key(parseRule(line).args) === key(c.rules[i]!));
    if (!same) writes.push({ table, kind: 'chain', chain: c.name, rules: c.rules });
  }

  // Hooks: exactly one of each desired hook; any other jump to our chains goes.
  const haveHooks = (actual?.hooks ?? []).map(parseRule);
  const desiredKeys = new Map(desired.hooks.map((h) => [`${h.builtin}\u0001${key(h.args)}`, h]));
  const seen = new Map<string, number>();
  for (const h of haveHooks) {
    const k = `${h.chain}\u0001${key(h.args)}`;
    const n = (seen.get(k) ?? 0) + 1;
    seen.set(k, n);
    const target = h.args[h.args.indexOf('-j') + 1] ?? h.args[h.args.indexOf('-g') + 1];
    const goingAway = target !== undefined && !wanted.has(target);
    if (!desiredKeys.has(k) || n > 1) {
      // A stale hook to a chain that stays is removed at once; one to a chain that goes, with it.
      if (!goingAway || sweep) dels.push({ table, kind: 'hook-del', builtin: h.chain, args: h.args });
    }
  }
  for (const [k, h] of desiredKeys) if (!seen.has(k)) adds.push({ table, kind: 'hook-add', builtin: h.builtin, args: h.args });

  if (sweep) {
    for (const name of actualChains.keys()) if (!wanted.has(name)) chainDels.push({ table, kind: 'chain-del', chain: name });
  }
  return [...dels, ...writes, ...adds, ...chainDels];
}

/** The key our flow filter at a leaf hashes by (`keys dst` in its text), null when there is none. */
export function hostKeyAt(filters: readonly TcFilter[], leafHandle: string): string | null {
  const f = filters.find(
    (x) => x.parent === leafHandle && x.kind === 'flow' && x.handle !== undefined && Number(x.handle) === HOST_FILTER.handle,
  );
  return f ? (/\bkeys (\S+)/.exec(f.text)?.[1] ?? '') : null;
}

/** Every option the leaf spec expects is what the kernel reports (numbers, e.g. cake's rtt in µs; cake's flowmode, nat). */
function leafOptionsMatch(
  actual: Readonly<Record<string, unknown>>,
  expect: Readonly<Record<string, number | string | boolean>> | undefined,
): boolean {
  if (!expect) return true;
  return Object.entries(expect).every(([k, v]) => actual[k] === v);
}

function diffTc(dev: KernelDesired['tc'][number], actual: TcState | undefined, o: DiffOptions): TcOp[] {
  const ops: TcOp[] = [];
  const name = dev.dev;
  const root = actual?.qdiscs.find((q) => q.parent === null);
  const defaultOpt = root?.options?.['default'];
  const ours =
    root !== undefined &&
    root.kind === 'htb' &&
    root.handle === '1:' &&
    (defaultOpt === undefined || Number(defaultOpt) === dev.defaultMinor);
  const fresh = !ours || o.rebuild === true;
  if (fresh)
    ops.push({
      kind: 'root',
      dev: name,
      defaultMinor: dev.defaultMinor,
      delFirst: root !== undefined && root.kind === 'htb' && root.handle === '1:',
    });
  const classes = fresh ? [] : (actual?.classes ?? []);
  const qdiscs = fresh ? [] : (actual?.qdiscs ?? []);
  const allFilters = fresh ? [] : (actual?.filters ?? []);
  const filters = allFilters.filter((f) => f.kind === 'fw' && f.handle !== undefined && f.parent === '1:');

  for (const c of dev.classes) {
    const a = classes.find((x) => x.classid === c.classid);
    if (!a) {
      ops.push({ kind: 'class', verb: 'add', dev: name, spec: c });
    } else {
      const wantParent = c.parent === '1:' ? null : c.parent;
      const differs =
        a.parent !== wantParent ||
        a.rateBps !== tcReportedRate(c.rateBps, a.exact) ||
        a.ceilBps !== tcReportedRate(c.ceilBps, a.exact) ||
        (c.quantum !== null && a.quantum !== undefined && a.quantum !== c.quantum);
      if (differs || o.refreshClasses) ops.push({ kind: 'class', verb: 'change', dev: name, spec: c });
    }
    const leaf = qdiscs.find((q) => q.parent === c.classid);
    if (c.leaf) {
      const l = c.leaf;
      const kept = leaf !== undefined && leaf.kind === l.qdisc[0] && leaf.handle === l.handle;
      if (!leaf) ops.push({ kind: 'leaf', verb: 'add', dev: name, parent: c.classid, handle: l.handle, qdisc: l.qdisc });
      else if (!kept || !leafOptionsMatch(leaf.options, l.expect))
        ops.push({ kind: 'leaf', verb: 'replace', dev: name, parent: c.classid, handle: l.handle, qdisc: l.qdisc });
      // the host filter: a new qdisc (another kind) comes without it; a kept one may have lost it or hash by another key
      const have = kept ? hostKeyAt(allFilters, l.handle) : null;
      if (l.hostKey && have !== l.hostKey) ops.push({ kind: 'host-filter', dev: name, parent: l.handle, key: l.hostKey });
      else if (!l.hostKey && have !== null) ops.push({ kind: 'host-filter-del', dev: name, parent: l.handle });
    } else if (leaf && c.classid !== '1:1') {
      ops.push({ kind: 'leaf-del', dev: name, parent: c.classid });
    }
  }
  const wantedFilters = new Map(dev.filters.map((f) => [f.mark, f]));
  const haveFilters = new Map(filters.map((f) => [Number(f.handle), f]));
  for (const f of dev.filters) {
    const a = haveFilters.get(f.mark);
    if (!a) ops.push({ kind: 'filter', verb: 'add', dev: name, mark: f.mark, classid: f.classid });
    else if (a.classid !== f.classid) ops.push({ kind: 'filter', verb: 'replace', dev: name, mark: f.mark, classid: f.classid });
  }
  for (const [mark] of haveFilters) if (!wantedFilters.has(mark)) ops.push({ kind: 'filter-del', dev: name, mark });
  if (o.sweep) {
    const wanted = new Set(dev.classes.map((c) => c.classid));
    for (const a of classes) if (!wanted.has(a.classid)) ops.push({ kind: 'class-del', dev: name, classid: a.classid });
  }
  return ops;
}

export function diffKernel(desired: KernelDesired, actual: KernelActual, o: DiffOptions): KernelPlan {
  const sets = o.setOps ? [...o.setOps] : diffSets(desired.sets, actual.sets);
  const wantedSets = new Set(desired.sets.map((s) => s.name));
  const destroy = o.sweep ? [...actual.sets.keys()].filter((n) => !wantedSets.has(n)).sort() : [];
  const iptables: Record<IpFamily, IptOp[]> = { 4: [], 6: [] };
  for (const t of desired.tables) iptables[t.family].push(...diffTable(t, actual.tables.get(tableKey(t.family, t.table)), o.sweep));
  const tc = desired.tc.flatMap((d) => diffTc(d, actual.tc.get(d.dev), o));
  return { sets, destroy, iptables, tc };
}
