// Which rows of the campus site's tables a plan gives, and which of them to write after the
// last write: pure (no I/O), the Publisher (publish.ts) writes them.

import type { ClassRow, PeopleRow } from './schema.js';
import type { Desired, UserPlan } from '../plan/desired.js';
import { DIRECTIONS } from '../policy/policy.js';
import { GROUP_MINOR_BASE } from '../kernel/names.js';

export interface PublishedRows {
  /** key "uid\0way" */
  readonly people: Map<string, PeopleRow>;
  /** key "way\0idx" */
  readonly classes: Map<string, ClassRow>;
}

/** The classes rows of this site for a plan (key "way\0idx"). Pure. */
export function classRows(site: string, d: Desired): Map<string, ClassRow> {
  const active = { down: new Array<number>(d.limits.length + 1).fill(0), up: new Array<number>(d.limits.length + 1).fill(0) };
  for (const u of d.users) {
    if (u.down.bytes > 0) active.down[u.down.group]!++;
    if (u.up.bytes > 0) active.up[u.up.group]!++;
  }
  const classes = new Map<string, ClassRow>();
  for (const c of d.classes) {
    classes.set(`${c.direction}\0${c.group}`, [
      site,
      c.group,
      c.direction,
      GROUP_MINOR_BASE + c.group,
      d.limits[c.group] ?? null,
      c.rateBps,
      c.ceilBps,
      c.users,
      active[c.direction][c.group] ?? 0,
    ]);
  }
  return classes;
}

/** Every row of this site for a plan (tests, full rewrites). Pure. `dnOf`: uid → owner DN. */
export function publishedRows(site: string, d: Desired, dnOf: ReadonlyMap<string, string>): PublishedRows {
  const people = new Map<string, PeopleRow>();
  for (const u of d.users) for (const way of DIRECTIONS) people.set(`${u.uid}\0${way}`, peopleRow(site, u, way, dnOf));
  return { people, classes: classRows(site, d) };
}

function peopleRow(site: string, u: UserPlan, way: 'down' | 'up', dnOf: ReadonlyMap<string, string>): PeopleRow {
  return [site, dnOf.get(u.uid) ?? '', u.uid, way, u[way].group, u[way].bytes];
}

export interface PeopleState {
  readonly users: readonly UserPlan[];
  readonly dnOf: ReadonlyMap<string, string>;
}

/**
 * people_data rows to write after `prev` (null = all). Between incremental plans a user whose
 * volumes did not change is the very same object, so the common case costs one pointer
 * comparison per user and row work only for the users that changed.
 */
export function peopleChanges(
  site: string,
  prev: PeopleState | null,
  next: PeopleState,
): { upsert: PeopleRow[]; remove: [string, 'down' | 'up'][] } {
  const upsert: PeopleRow[] = [];
  const remove: [string, 'down' | 'up'][] = [];
  const changed = (p: UserPlan | undefined, u: UserPlan, dnSame: boolean): void => {
    for (const way of DIRECTIONS) {
      if (!p || !dnSame || p[way].bytes !== u[way].bytes || p[way].group !== u[way].group) upsert.push(peopleRow(site, u, way, next.dnOf));
    }
  };
  if (!prev) {
    for (const u of next.users) changed(undefined, u, false);
    return { upsert, remove };
  }
  const a = prev.users;
  const b = next.users;
  if (prev.dnOf === next.dnOf && a.length === b.length && a.every((u, i) => u.uid === b[i]!.uid)) {
    for (let i = 0; i < b.length; i++) if (a[i] !== b[i]) changed(a[i], b[i]!, true);
    return { upsert, remove };
  }
  const before = new Map(a.map((u) => [u.uid, u]));
  for (const u of b) {
    const p = before.get(u.uid);
    before.delete(u.uid);
    if (p !== u || prev.dnOf.get(u.uid) !== next.dnOf.get(u.uid)) changed(p, u, prev.dnOf.get(u.uid) === next.dnOf.get(u.uid));
  }
  for (const uid of before.keys()) remove.push([uid, 'down'], [uid, 'up']);
  return { upsert, remove };
}

const same = (a: readonly unknown[], b: readonly unknown[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** What to write after `prev` (null = everything, replacing this site's rows). */
export function rowChanges<R extends readonly unknown[]>(
  prev: ReadonlyMap<string, R> | null,
  next: ReadonlyMap<string, R>,
): { upsert: R[]; remove: string[] } {
  if (!prev) return { upsert: [...next.values()], remove: [] };
  const upsert: R[] = [];
  for (const [k, r] of next) {
    const p = prev.get(k);
    if (!p || !same(p, r)) upsert.push(r);
  }
  const remove = [...prev.keys()].filter((k) => !next.has(k));
  return { upsert, remove };
}
