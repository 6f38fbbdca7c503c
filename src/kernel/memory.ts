// What this process believes the kernel holds: the dataplane side of the reconciler (the
// desired side is the Desired the planner hands over). One type, one owner: the Reconciler
// holds one KernelMemory and changes it only through the methods below (after a read-back,
// after an apply, after a failure). Modelled on Calico Felix's delta tracker: a resync flag
// (`sets === null`: unknown, read everything next time) instead of trusting a memory that a
// failed batch may have left half true.
//
// The member sets kept here are this module's own copies, never the planner's: the planner
// changes its sets in place between plans (src/plan/incremental.ts). They are compact
// (members.ts: IPv4 as integers; 31.9 -> 8.3 MB for 960 000 entries).
//
// Pure: no I/O, no clock of its own (instants are passed in).

import type { ActualSet, KernelPlan, TcOp } from './diff.js';
import type { KernelDesired, SetSpec } from './model.js';
import { tcReportedRate, type IpsetHeader, type TableState, type TcState } from './read.js';
import type { SetFamily } from './names.js';
import { CompactMembers } from './members.js';

interface OwnedSet {
  family: SetFamily;
  maxelem: number;
  members: CompactMembers;
}

const view = (s: OwnedSet): ActualSet => ({ family: s.family, maxelem: s.maxelem, members: s.members, count: s.members.size });

export class KernelMemory {
  /** our sets as the kernel holds them after our last apply or full read; null = unknown (resync) */
  private sets: Map<string, OwnedSet> | null = null;
  /** our chains and tc tree as last read back, patched with the class rates applied since; null = read them */
  private readBack: { tables: Map<string, TableState>; tc: Map<string, TcState>; at: number } | null = null;
  /** class rates this process applied, per "dev classid": tc's text read-back rounds finer changes away */
  private readonly rates = new Map<string, { rate: number; ceil: number }>();
  /** the plan (Desired.version) the kernel was last brought to; null = unknown */
  private version: object | null = null;
  private fullReadAt = -Infinity;
  /** the first complete sync of this process is done: leftovers may be swept */
  private syncedOnce = false;

  get synced(): boolean {
    return this.syncedOnce;
  }

  markSynced(): void {
    this.syncedOnce = true;
  }

  /** A full set read-back is due (never read, or older than `periodMs`). */
  fullReadDue(now: number, periodMs: number): boolean {
    return this.sets === null || now - this.fullReadAt >= periodMs;
  }

  /**
   * The sets as remembered when `ipset list -t` agrees with them (every set of ours present
   * with the count we expect, none missing); null when they differ or are unknown.
   */
  setsIfCountsAgree(headers: ReadonlyMap<string, IpsetHeader>, isOurs: (name: string) => boolean): Map<string, ActualSet> | null {
    if (this.sets === null) return null;
    for (const [name, h] of headers) {
      if (!isOurs(name)) continue;
      const k = this.sets.get(name);
      if (!k || k.members.size !== h.entries) return null;
    }
    for (const name of this.sets.keys()) if (!headers.has(name)) return null;
    return this.setsView();
  }

  private setsView(): Map<string, ActualSet> {
    return new Map([...(this.sets ?? [])].map(([n, s]) => [n, view(s)]));
  }

  /** A full read of our sets: it becomes what we know. */
  setsRead(
    read: Iterable<[string, { family: SetFamily; maxelem: number; entries: readonly string[] }]>,
    now: number,
  ): Map<string, ActualSet> {
    this.sets = new Map(
      [...read].map(([n, i]) => [n, { family: i.family, maxelem: i.maxelem, members: new CompactMembers(i.entries, i.entries.length) }]),
    );
    this.fullReadAt = now;
    return this.setsView();
  }

  /** The chains and tc tree last read back, when younger than `maxAgeMs`. */
  cachedReadBack(now: number, maxAgeMs: number): { tables: Map<string, TableState>; tc: Map<string, TcState> } | null {
    return this.readBack !== null && now - this.readBack.at < maxAgeMs ? this.readBack : null;
  }

  readBackDone(tables: Map<string, TableState>, tc: Map<string, TcState>, now: number): void {
    this.readBack = { tables, tc, at: now };
  }

  /** The plan the kernel was last brought to, for the planner's delta to start from. */
  get lastVersion(): object | null {
    return this.version;
  }

  /** Nothing had to change: the kernel is at `version`. */
  unchanged(version: object): void {
    this.version = version;
  }

  /** After a successful apply of `plan`: the known sets updated by its operations (O(changes)), the read-back patched or dropped. */
  applied(plan: KernelPlan, kd: KernelDesired, version: object): void {
    const sets = this.sets ?? new Map<string, OwnedSet>();
    const spec = (name: string): SetSpec | undefined => kd.sets.find((x) => x.name === name);
    for (const op of plan.sets) {
      const prev = sets.get(op.name);
      if (op.create || op.rebuild || !prev) {
        sets.set(op.name, {
          family: op.family,
          maxelem: op.maxelem,
          members: membersOf(op.create ? op.add : (op.rebuild ?? spec(op.name)?.members ?? [])),
        });
        continue;
      }
      for (const ip of op.del) prev.members.delete(ip);
      for (const ip of op.add) prev.members.add(ip);
      prev.maxelem = op.maxelem;
    }
    for (const name of plan.destroy) sets.delete(name);
    this.sets = sets;
    this.version = version;
    this.rememberRates(kd);
    const classOnly = plan.tc.every((op) => op.kind === 'class' && op.verb === 'change');
    if (!this.readBack || plan.iptables[4].length || plan.iptables[6].length || !classOnly) {
      this.readBack = null;
      return;
    }
    this.readBack = { ...this.readBack, tc: patchTcClasses(this.readBack.tc, plan.tc) };
  }

  /** After `start`'s rebuild: the sets are exactly the desired ones; chains and tc will be read back to verify. */
  rebuilt(kd: KernelDesired, maxelemOf: (s: SetSpec) => number, version: object, now: number): void {
    this.sets = new Map(
      kd.sets.map((s) => [s.name, { family: s.family, maxelem: maxelemOf(s), members: new CompactMembers(s.members, s.members.size) }]),
    );
    this.readBack = null;
    this.version = version;
    this.fullReadAt = now;
    this.syncedOnce = true;
    this.rates.clear();
    this.rememberRates(kd);
  }

  private rememberRates(kd: KernelDesired): void {
    for (const d of kd.tc) for (const c of d.classes) this.rates.set(`${d.dev} ${c.classid}`, { rate: c.rateBps, ceil: c.ceilBps });
  }

  /** A batch failed or a read-back could not be made: nothing remembered is trusted any more (resync). */
  forget(): void {
    this.sets = null;
    this.readBack = null;
    this.version = null;
  }

  /** `clear` removed everything we own. */
  cleared(): void {
    this.forget();
    this.syncedOnce = false;
    this.rates.clear();
  }

  /** The plan plus a class change for every class whose desired rate differs from what this process last applied, even if tc's rounded read-back hides it. */
  withAppliedRates(plan: KernelPlan, kd: KernelDesired): KernelPlan {
    const extra: TcOp[] = [];
    for (const d of kd.tc) {
      for (const c of d.classes) {
        const prev = this.rates.get(`${d.dev} ${c.classid}`);
        if (!prev || (prev.rate === c.rateBps && prev.ceil === c.ceilBps)) continue;
        const already = plan.tc.some(
          (op) => (op.kind === 'class' && op.dev === d.dev && op.spec.classid === c.classid) || (op.kind === 'root' && op.dev === d.dev),
        );
        if (!already) extra.push({ kind: 'class', verb: 'change', dev: d.dev, spec: c });
      }
    }
    return extra.length ? { ...plan, tc: [...plan.tc, ...extra] } : plan;
  }
}

function membersOf(ips: readonly string[] | ReadonlySet<string>): CompactMembers {
  return new CompactMembers(ips, 'length' in ips ? ips.length : ips.size);
}

/** The tc state as it is after `class change` operations, as tc would report it back. */
function patchTcClasses(tc: ReadonlyMap<string, TcState>, ops: readonly TcOp[]): Map<string, TcState> {
  const out = new Map(tc);
  for (const op of ops) {
    if (op.kind !== 'class') continue;
    const st = out.get(op.dev);
    if (!st) continue;
    const classes = st.classes.map((c) =>
      c.classid !== op.spec.classid
        ? c
        : {
            ...c,
            rateBps: tcReportedRate(op.spec.rateBps, c.exact),
            ceilBps: tcReportedRate(op.spec.ceilBps, c.exact),
            ...(op.spec.quantum !== null && c.quantum !== undefined ? { quantum: op.spec.quantum } : {}),
          },
    );
    out.set(op.dev, { ...st, classes });
  }
  return out;
}
