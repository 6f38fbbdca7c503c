// The batches that replace everything of ours at once rather than diffing it: `start`'s rebuild
// (every set filled in a temporary set and swapped in, every chain rewritten, the hooks and the
// tc tree replaced) and `clear`'s removal of our chains and hooks. Pure: the reconciler runs
// them (reconciler.ts), in the order and with the timing it reports.

import { splitIptablesArgs, type TableState } from './read.js';
import { TMP_SUFFIX, type IpFamily } from './names.js';
import { TABLES, type KernelDesired, type SetSpec } from './model.js';
import { diffKernel, maxelemFor, tableKey, type KernelActual, type IptOp } from './diff.js';
import { createLine, renderIptables, renderPlan } from './render.js';
import { KernelApplyError } from './batch.js';

export interface RebuildBatches {
  /** each set's maxelem: the kernel's if larger (a swap brings the temporary set's along) */
  readonly maxelemOf: (s: SetSpec) => number;
  /** 1. every set filled in its temporary set (no user-visible change), rendered piece by piece while ipset reads it */
  readonly fill: () => Iterable<string>;
  /** 2. the switch: sets created if missing and swapped in, then these per family, then tc */
  swap: string;
  iptables: Record<IpFamily, string | null>;
  tc: string | null;
  /** 3. our sets nothing uses any more, or null */
  destroy: string | null;
}

/** The batches of a rebuild of `kd` over what the kernel holds; refuses a set of ours of the other family. */
export function rebuildBatches(kd: KernelDesired, actual: KernelActual): RebuildBatches {
  const maxelemOf = (s: SetSpec): number => {
    const a = actual.sets.get(s.name);
    return Math.max(a?.family === s.family ? a.maxelem : 0, maxelemFor(Math.max(s.capacity, s.members.size)));
  };
  // Rendered piece by piece while ipset reads it: no single text of every member.
  function* fill(): Generator<string> {
    let out: string[] = [];
    for (const s of kd.sets) {
      const tmp = `${s.name}${TMP_SUFFIX}`;
      out.push(createLine(tmp, { family: s.family, maxelem: maxelemOf(s) }, s.members.size), `flush ${tmp}`);
      for (const ip of s.members) {
        out.push(`add ${tmp} ${ip} -exist`);
        if (out.length >= 8192) {
          yield out.join('\n') + '\n';
          out = [];
        }
      }
    }
    if (out.length > 0) yield out.join('\n') + '\n';
  }
  const swap: string[] = [];
  for (const s of kd.sets) {
    const tmp = `${s.name}${TMP_SUFFIX}`;
    const m = maxelemOf(s);
    const a = actual.sets.get(s.name);
    if (a && a.family !== s.family)
      throw new KernelApplyError(
        'ipset',
        null,
        null,
        `set ${s.name}`,
        `exists with family ${a.family}, ${s.family} wanted: run reselqos clear first`,
      );
    // An existing set is swapped as it is: `create -exist` with another maxelem is refused
    // by the kernel, and the swap brings the temporary set's (larger) maxelem along.
    if (!a) swap.push(createLine(s.name, { family: s.family, maxelem: m }));
    swap.push(`swap ${tmp} ${s.name}`, `destroy ${tmp}`);
  }
  // Every table of a family in one iptables-restore: hooks replaced, chains rewritten.
  const byFamily: Record<IpFamily, IptOp[]> = { 4: [], 6: [] };
  for (const t of kd.tables) {
    const have = actual.tables.get(tableKey(t.family, t.table));
    const table = t.table;
    for (const line of have?.hooks ?? []) {
      const r = splitRule(line);
      byFamily[t.family].push({ table, kind: 'hook-del', builtin: r.chain, args: r.args });
    }
    for (const c of t.chains) byFamily[t.family].push({ table, kind: 'chain', chain: c.name, rules: c.rules });
    for (const h of t.hooks) byFamily[t.family].push({ table, kind: 'hook-add', builtin: h.builtin, args: h.args });
    const wanted = new Set(t.chains.map((c) => c.name));
    for (const name of have?.chains.keys() ?? []) if (!wanted.has(name)) byFamily[t.family].push({ table, kind: 'chain-del', chain: name });
  }
  const tcPlan = diffKernel(
    { sets: [], tables: [], tc: kd.tc },
    { sets: new Map(), tables: new Map(), tc: actual.tc },
    { sweep: false, rebuild: true },
  );
  const wantedSets = new Set(kd.sets.map((s) => s.name));
  const stale = [...actual.sets.keys()].filter((n) => !wantedSets.has(n));
  return {
    maxelemOf,
    fill,
    swap: swap.join('\n') + '\n',
    iptables: { 4: renderIptables(byFamily[4]), 6: renderIptables(byFamily[6]) },
    tc: renderPlan(tcPlan).tc,
    destroy: stale.length ? stale.map((n) => `destroy ${n}`).join('\n') + '\n' : null,
  };
}

/** `clear`'s batch of one family: every hook and chain of ours deleted (null: none), with the counts. */
export function clearIptables(
  tables: ReadonlyMap<string, TableState>,
  family: IpFamily,
): { text: string | null; hooks: number; chains: number } {
  const ops: IptOp[] = [];
  let hooks = 0;
  let chains = 0;
  for (const table of TABLES) {
    const m = tables.get(tableKey(family, table));
    if (!m) continue;
    for (const line of m.hooks) {
      const t = splitRule(line);
      ops.push({ table, kind: 'hook-del', builtin: t.chain, args: t.args });
    }
    for (const chain of m.chains.keys()) ops.push({ table, kind: 'chain-del', chain });
    hooks += m.hooks.length;
    chains += m.chains.size;
  }
  return { text: renderIptables(ops), hooks, chains };
}

function splitRule(line: string): { chain: string; args: string[] } {
  // "-A POSTROUTING -o int0 ... -j RESELQOS-down"
  const t = splitIptablesArgs(line);
  return { chain: t[1] ?? '', args: t.slice(2) };
}
