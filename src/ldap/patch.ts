// Patches a Directory with the entries an LDAP change search returned (modifyTimestamp
// >= a watermark), with the rules of buildDirectory (src/ldap/directory.ts), so that the
// result is what a full build of the same LDAP content gives. Owns the cases a patch cannot
// decide alone (an IP another machine also claims, a uid that changed or is shared, an
// owner that stopped being one...): those entries are left as they were and named, and the
// caller starts a full fetch. Deletions are not seen here: only a full fetch drops entries.
// Pure apart from its own state (indexes built on the first patch, kept up to date).

import {
  buildOwner,
  byDnOrder,
  draftHost,
  normalizeDn,
  ownerOrder,
  resolveOwner,
  tieHost,
  toMachine,
  type BuildOptions,
  type BuildState,
  type BuiltDirectory,
  type OwnerIndex,
  type RawEntry,
} from './directory.js';
import { escapeControl as esc } from '../log.js';
import type { Directory, Machine, Owner, OwnerKind, Skipped } from '../sources/types.js';

export interface Changes {
  readonly people: readonly RawEntry[];
  readonly orgas: readonly RawEntry[];
  readonly hosts: readonly RawEntry[];
}

export interface PatchResult {
  /** the same object as before when nothing changed */
  readonly directory: Directory;
  /** uids of owners added or changed */
  readonly changedOwners: readonly string[];
  /** DNs of machines added, changed, or gone from the machines (owner no longer found) */
  readonly changedMachines: readonly string[];
  /** entries left as they were: only a full fetch can settle them */
  readonly undecided: readonly Skipped[];
}

const sameList = (x: readonly string[], y: readonly string[]): boolean => x.length === y.length && x.every((v, i) => v === y[i]);
const sameSkips = (x: readonly Skipped[], y: readonly Skipped[]): boolean =>
  x.length === y.length && x.every((s, i) => s.dn === y[i]!.dn && s.reason === y[i]!.reason);

/**
 * How each field of a record compares. Every field must be listed: the mapped type makes a field
 * added to Owner or Machine a compile error here, so a new field is never ignored silently.
 */
type FieldEq<T> = { readonly [K in keyof Required<T>]: (x: T[K], y: T[K]) => boolean };
const same = <V>(x: V, y: V): boolean => x === y;
const OWNER_EQ: FieldEq<Owner> = { uid: same, dn: same, kind: same, endInternet: same, coupure: same, ban: sameList, cotiz: sameList };
const MACHINE_EQ: FieldEq<Machine> = { dn: same, host: same, owner: same, active: same, ips4: sameList, ips6: sameList };

function sameRecord<T extends object>(eq: FieldEq<T>, x: T, y: T): boolean {
  for (const k of Object.keys(eq) as (keyof T)[]) if (!(eq[k] as (a: unknown, b: unknown) => boolean)(x[k], y[k])) return false;
  return true;
}

export const sameOwner = (x: Owner, y: Owner): boolean => sameRecord(OWNER_EQ, x, y);
export const sameMachine = (x: Machine, y: Machine): boolean => sameRecord(MACHINE_EQ, x, y);

/** The machine of this DN in a list sorted by DN; undefined when none. */
function machineAt(list: readonly Machine[], dn: string): Machine | undefined {
  const m = list[lowerBound<{ dn: string }>(list, { dn }, byDnOrder)];
  return m?.dn === dn ? m : undefined;
}

/** First index i with key(list[i]) >= key (list sorted by cmp). */
function lowerBound<T>(list: readonly T[], probe: T, cmp: (a: T, b: T) => number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cmp(list[mid]!, probe) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Kept from the first patch on. Machines are found in the machine list, sorted by DN (binary
 * search): a map of them kept 11 MB more at 100 000 users (issue 16).
 */
interface Index extends OwnerIndex {
  /** active machines wanting each IP, before duplicates are settled */
  readonly want: Map<string, number>;
}

export class DirectoryPatcher {
  private current: Directory;
  private readonly state: BuildState;
  private index: Index | null = null;

  constructor(
    built: BuiltDirectory,
    private readonly o: Omit<BuildOptions, 'fetchedAt'>,
  ) {
    this.current = built.directory;
    // Copies: the patcher changes them as it goes.
    this.state = { orphans: new Map(built.state.orphans), lost: new Map(built.state.lost), dupUid: new Set(built.state.dupUid) };
  }

  get directory(): Directory {
    return this.current;
  }

  /** Built on the first patch only: a cycle without changes costs nothing. */
  private ensureIndex(): Index {
    if (this.index) return this.index;
    const ix: Index = { byDn: new Map(), byUid: new Map(), want: new Map() };
    for (const ow of this.current.owners) {
      ix.byDn.set(normalizeDn(ow.dn), ow);
      const lower = ow.uid.toLowerCase();
      const list = ix.byUid.get(lower);
      if (list) list.push(ow);
      else ix.byUid.set(lower, [ow]);
    }
    for (const m of this.current.machines) {
      if (m.active) for (const ip of this.wanted(m)) ix.want.set(ip, (ix.want.get(ip) ?? 0) + 1);
    }
    this.index = ix;
    return ix;
  }

  /** IPs a machine claims before duplicates are settled: what it kept and what it lost. */
  private wanted(m: Machine): string[] {
    const lost = this.state.lost.get(m.dn);
    return [...m.ips4, ...m.ips6, ...(lost?.ips ?? [])];
  }

  /** Owner entries of `changes` that would be new owners: their machines must be searched too. */
  newOwnerDns(changes: Changes): string[] {
    const ix = this.ensureIndex();
    const out: string[] = [];
    const sink: Skipped[] = [];
    for (const [list, kind] of [
      [changes.people, 'person'],
      [changes.orgas, 'organisation'],
    ] as const) {
      for (const e of list) {
        if (ix.byDn.has(normalizeDn(e.dn))) continue;
        if (buildOwner(e, kind, { ...this.o, fetchedAt: '' }, sink)) out.push(e.dn);
      }
    }
    return out;
  }

  /**
   * Applies the changed entries. Owners first (machines are tied to the owners as patched),
   * then machines. Returns the same Directory object when nothing differs.
   */
  apply(changes: Changes, fetchedAt: string): PatchResult {
    const ix = this.ensureIndex();
    const o: BuildOptions = { ...this.o, fetchedAt };
    const cur = this.current;
    let owners: Owner[] | null = null;
    let machines: Machine[] | null = null;
    let skipped: Skipped[] | null = null;
    const changedOwners: string[] = [];
    const changedMachines: string[] = [];
    const undecided: Skipped[] = [];
    const newOwners: Owner[] = [];

    const skipsOf = (dn: string): Skipped[] => {
      const list = skipped ?? cur.skipped;
      const probe = { dn, reason: '' };
      const out: Skipped[] = [];
      for (let i = lowerBound(list, probe, byDnOrder); i < list.length && list[i]!.dn === dn; i++) out.push(list[i]!);
      return out;
    };
    const setSkips = (dn: string, next: readonly Skipped[]): void => {
      skipped ??= cur.skipped.slice();
      const probe = { dn, reason: '' };
      const at = lowerBound(skipped, probe, byDnOrder);
      let end = at;
      while (end < skipped.length && skipped[end]!.dn === dn) end++;
      skipped.splice(at, end - at, ...next);
    };

    // owner entries left for the full fetch (normalized DNs): their machines wait with them
    const deferred = new Set<string>();

    // --- owners
    for (const [list, kind] of [
      [changes.people, 'person'],
      [changes.orgas, 'organisation'],
    ] as [readonly RawEntry[], OwnerKind][]) {
      for (const e of list) {
        const key = normalizeDn(e.dn);
        const ownSkips: Skipped[] = [];
        const next = buildOwner(e, kind, o, ownSkips);
        const old = ix.byDn.get(key);
        const nowSkips = skipsOf(e.dn);
        // A shared uid adds a skip after the entry's own ones (full build order).
        const buildSkips = this.state.dupUid.has(e.dn) ? nowSkips.slice(0, -1) : nowSkips;
        if (old) {
          if (next && sameOwner(old, next) && sameSkips(buildSkips, ownSkips)) continue;
          const lower = old.uid.toLowerCase();
          let why: string | null = null;
          if (old.dn !== e.dn) why = `its DN is spelled ${esc(e.dn)}, the directory has ${esc(old.dn)}`;
          else if (!next) why = `no longer a valid owner (${ownSkips.map((s) => s.reason).join('; ')})`;
          else if (next.kind !== old.kind) why = `now found as ${next.kind}, was ${old.kind}`;
          else if (next.uid !== old.uid) why = `uid changed from "${old.uid}" to "${next.uid}"`;
          else if ((ix.byUid.get(lower)?.length ?? 0) > 1) why = `uid "${old.uid}" is shared with another owner`;
          if (why || !next) {
            undecided.push({ dn: e.dn, reason: why ?? 'undecided' });
            deferred.add(key);
            continue;
          }
          owners ??= cur.owners.slice();
          const at = lowerBound(owners, old, ownerOrder);
          if (owners[at] !== old) {
            undecided.push({ dn: e.dn, reason: 'not found in the owner list (internal)' });
            continue;
          }
          owners[at] = next;
          ix.byDn.set(key, next);
          ix.byUid.set(lower, [next]);
          if (!sameSkips(buildSkips, ownSkips)) setSkips(e.dn, ownSkips);
          changedOwners.push(next.uid);
        } else if (!next) {
          // Not an owner before, not one now: only what is named in skipped may differ.
          if (!sameSkips(nowSkips, ownSkips)) setSkips(e.dn, ownSkips);
        } else {
          const lower = next.uid.toLowerCase();
          if (ix.byUid.has(lower)) {
            undecided.push({ dn: e.dn, reason: `new owner whose uid "${next.uid}" is also used by ${esc(ix.byUid.get(lower)![0]!.dn)}` });
            deferred.add(key);
            continue;
          }
          owners ??= cur.owners.slice();
          owners.splice(lowerBound(owners, next, ownerOrder), 0, next);
          ix.byDn.set(key, next);
          ix.byUid.set(lower, [next]);
          if (!sameSkips(nowSkips, ownSkips)) setSkips(e.dn, ownSkips);
          changedOwners.push(next.uid);
          newOwners.push(next);
        }
      }
    }

    // --- machines
    const seen = new Set<string>();
    for (const e of changes.hosts) {
      if (seen.has(e.dn)) continue;
      seen.add(e.dn);
      const h = draftHost(e, o);
      const ownSkips: Skipped[] = [];
      const d = tieHost(h, ix, o, ownSkips);
      const next = d ? toMachine(d) : null;
      const old = machineAt(machines ?? cur.machines, e.dn);
      const lost = this.state.lost.get(e.dn);
      const nowSkips = skipsOf(e.dn);
      const buildSkips = lost ? nowSkips.slice(0, nowSkips.length - lost.skips) : nowSkips;
      // Unchanged: compare with what the machine claimed before duplicates were settled.
      const oldRaw =
        old && lost
          ? toMachine({
              ...old,
              ips4: [...old.ips4, ...lost.ips.filter((ip) => !ip.includes(':'))],
              ips6: [...old.ips6, ...lost.ips.filter((ip) => ip.includes(':'))],
            })
          : old;
      const same = oldRaw && next ? sameMachine(oldRaw, next) : !oldRaw && !next;
      if (same && sameSkips(buildSkips, ownSkips)) continue;
      // Its owner entry was left for the full fetch: tied now (by uid, to another owner of that
      // uid), it would take that owner's entitlement meanwhile.
      if (h.ownerDn && deferred.has(normalizeDn(h.ownerDn))) {
        undecided.push({ dn: e.dn, reason: `its owner ${esc(h.ownerDn)} is left for the next full fetch` });
        continue;
      }

      // Which IPs this change touches; any of them another active machine also wants is undecidable.
      const before = new Set(old && old.active ? this.wanted(old) : []);
      const after = new Set(next && next.active ? [...next.ips4, ...next.ips6] : []);
      const ownerKept = !!old && !!next && old.owner === next.owner;
      let why: string | null = lost ? `it lost IP(s) ${lost.ips.join(', ')} to another machine: the winner depends on both` : null;
      for (const ip of new Set([...before, ...after])) {
        if (why) break;
        if (ownerKept && before.has(ip) && after.has(ip)) continue;
        const others = (ix.want.get(ip) ?? 0) - (before.has(ip) ? 1 : 0);
        if (others > 0) why = `IP ${ip} is also claimed by another machine`;
      }
      if (why) {
        undecided.push({ dn: e.dn, reason: why });
        continue;
      }
      for (const ip of before) {
        const n = (ix.want.get(ip) ?? 0) - 1;
        if (n > 0) ix.want.set(ip, n);
        else ix.want.delete(ip);
      }
      for (const ip of after) ix.want.set(ip, (ix.want.get(ip) ?? 0) + 1);
      if (old || next) machines ??= cur.machines.slice();
      if (old && machines) {
        const at = lowerBound(machines, old, byDnOrder);
        if (next) machines[at] = next;
        else machines.splice(at, 1);
      } else if (next && machines) {
        machines.splice(lowerBound(machines, next, byDnOrder), 0, next);
      }
      if (!next && h.ownerDn) this.state.orphans.set(e.dn, h.ownerDn);
      else this.state.orphans.delete(e.dn);
      if (!sameSkips(nowSkips, ownSkips)) setSkips(e.dn, ownSkips);
      if (!same) changedMachines.push(e.dn);
    }

    // A new owner may be named by a machine skipped before that this patch did not see
    // (e.g. tied by uid rather than by DN): only a full fetch finds it.
    if (newOwners.length > 0) {
      for (const [dn, ownerDn] of this.state.orphans) {
        if (seen.has(dn)) continue;
        const ow = resolveOwner(ix, ownerDn, o.ldap.attrs.uid);
        if (ow && newOwners.includes(ow))
          undecided.push({
            dn,
            reason: `its owner ${esc(ownerDn)} now exists (${esc(ow.dn)}) but the entry was not returned by the search`,
          });
      }
    }

    if (!owners && !machines && !skipped) return { directory: cur, changedOwners, changedMachines, undecided };
    const next: Directory = {
      owners: owners ?? cur.owners,
      machines: machines ?? cur.machines,
      skipped: skipped ?? cur.skipped,
      fetchedAt,
    };
    this.current = next;
    return { directory: next, changedOwners, changedMachines, undecided };
  }
}
