// Incremental planning for the daemon's cycles. While the directory object, the config
// object and the firewall's validity window stay the same, only volumes can have changed:
// a cycle recomputes each user's groups (integer work over the users' IPs) and moves the
// IPs of the users whose group changed between the sets of the previous plan, recording
// those moves as a delta the reconciler applies without diffing every set member.
// Anything else (a new directory, a reload, an owner's paid period ending, the IP index
// rebuilt at the daily reset) plans from scratch with planDesired. The result is always equal to planDesired's for the same
// inputs (test/unit/incremental.test.ts checks it on random moves).
//
// Snapshots: a plan from scratch is a real snapshot (the planner copies the QoS member sets it
// will move IPs between). A plan from an incremental step is not: its QoS sets are the
// planner's own sets, changed in place by the next plan() — copy them to keep them. Dry runs
// (`reselqos plan`) use planDesired, never this.

import type { DateTime } from 'luxon';
import type { Config } from '../config/config.js';
import { effectiveRates, groupOf, thresholds, type Direction } from '../policy/policy.js';
import type { Directory, Usage } from '../sources/types.js';
import { ipIndex } from '../net/ipindex.js';
import {
  classPlans,
  planDesired,
  sumBytes,
  type Desired,
  type SetFamily,
  type SetPlan,
  type TotalsOverride,
  type UserPlan,
} from './desired.js';

interface Index {
  /** [family][direction][group] -> the planner's own member set (moved between in place) */
  readonly sets: Record<SetFamily, Record<Direction, Set<string>[]> | null>;
  readonly names: Record<SetFamily, Record<Direction, string[]> | null>;
  /** the plan's sets with the QoS members replaced by the planner's own sets: what steps hand out */
  readonly live: readonly SetPlan[];
}

interface Last {
  readonly config: Config;
  readonly directory: Directory;
  readonly desired: Desired;
  readonly index: Index;
  /** the firewall plan holds until this instant (epoch ms): the next end of a paid period */
  readonly fwUntil: number;
  /** per user (in users' order), the ipIndex ids of its IPs; computed at the first step */
  ids: Int32Array[] | null;
  /** ipIndex id -> the users holding it (computed at the first step given changed ids) */
  holders: Holders | null;
  /** the ipIndex generation of `ids` (a rebuild of the index forces a plan from scratch) */
  readonly generation: number;
  /** the volumes the last plan was made from (the same object again = no volume changed) */
  readonly usage: Usage | null;
}

/** The first end of a paid period after `nowMs` (the allow sets change then); Infinity when none. */
export function firewallValidUntil(config: Config, directory: Directory, nowMs: number): number {
  if (!config.firewall.enabled || !config.firewall.checkPayment) return Infinity;
  let until = Infinity;
  for (const o of directory.owners) {
    if (o.endInternet !== null && o.endInternet > nowMs && o.endInternet < until) until = o.endInternet;
  }
  return until;
}

/** The planner's own copies of the QoS member sets of `desired`, indexed by family, direction and group. */
function indexOf(desired: Desired): Index {
  const sets: Index['sets'] = { inet: null, inet6: null };
  const names: Index['names'] = { inet: null, inet6: null };
  const live = desired.sets.map((s): SetPlan => {
    if (s.role !== 'qos' || s.direction === undefined || s.group === undefined) return s;
    const own = new Set(s.members);
    const byDir = (sets[s.family] ??= { down: [], up: [] });
    const nameDir = (names[s.family] ??= { down: [], up: [] });
    byDir[s.direction][s.group] = own;
    nameDir[s.direction][s.group] = s.name;
    return { ...s, members: own };
  });
  return { sets, names, live };
}

/** ipIndex id -> index of the user holding it (-1: none, -2: several, listed in `more`). */
interface Holders {
  readonly first: Int32Array;
  readonly more: Map<number, number[]>;
}

function holdersOf(ids: readonly Int32Array[]): Holders {
  let n = 0;
  for (const mine of ids) for (let j = 0; j < mine.length; j++) n = Math.max(n, mine[j]! + 1);
  const first = new Int32Array(n).fill(-1);
  const more = new Map<number, number[]>();
  for (let i = 0; i < ids.length; i++) {
    const mine = ids[i]!;
    for (let j = 0; j < mine.length; j++) {
      const id = mine[j]!;
      const h = first[id]!;
      if (h === -1) first[id] = i;
      else if (h === i) continue;
      else if (h === -2) {
        const list = more.get(id)!;
        if (!list.includes(i)) list.push(i);
      } else {
        first[id] = -2;
        more.set(id, [h, i]);
      }
    }
  }
  return { first, more };
}

export class Planner {
  private last: Last | null = null;

  /** Forget the previous plan: the next one is computed from scratch. */
  reset(): void {
    this.last = null;
  }

  plan(config: Config, directory: Directory, usage: Usage | null, instant: DateTime, resetAt: DateTime, shared?: TotalsOverride): Desired {
    const last = this.last;
    if (
      last &&
      last.config === config &&
      last.directory === directory &&
      instant.toMillis() < last.fwUntil &&
      last.generation === ipIndex.generation
    ) {
      const next = step(last, config, usage, instant, resetAt, shared);
      this.last = { ...last, desired: next, ids: last.ids, holders: last.holders, usage };
      return next;
    }
    const desired = planDesired(config, directory, usage, instant, resetAt, shared);
    this.last = {
      config,
      directory,
      desired,
      index: indexOf(desired),
      fwUntil: firewallValidUntil(config, directory, instant.toMillis()),
      ids: null,
      holders: null,
      generation: ipIndex.generation,
      usage,
    };
    return desired;
  }
}

function step(last: Last, config: Config, usage: Usage | null, instant: DateTime, resetAt: DateTime, shared?: TotalsOverride): Desired {
  const q = config.qos;
  const { sharedBy: _was, rawVolumes: _raw, ...prev } = last.desired;
  // the raw volumes of the usage planned from (off-peak window), never the previous plan's
  const rawVolumes = usage?.raw ? { rawVolumes: usage.raw } : {};
  const sharedBy = shared ? { sharedBy: shared.site } : {};
  const eff = effectiveRates(config, instant);
  const totals = shared ? { ...shared.totals } : { down: eff.rates['down']!, up: eff.rates['up']! };
  if (usage !== null && usage === last.usage) {
    // The very volumes of the last plan: no user moves; only the rates in force may differ.
    const same: Record<Direction, number[]> = { down: new Array<number>(q.groups).fill(0), up: new Array<number>(q.groups).fill(0) };
    for (const c of prev.classes) same[c.direction][c.group] = c.users;
    return {
      ...prev,
      ...sharedBy,
      ...rawVolumes,
      at: instant.toISO() ?? '',
      rule: eff.rule,
      fairness: config.qos.fairness,
      resetAt: resetAt.toISO() ?? '',
      totals,
      sets: last.index.live,
      classes: classPlans(config, same, totals),
      version: {},
      delta: { base: prev.version, sets: new Map(), moved: { down: 0, up: 0 } },
    };
  }
  const limits = thresholds(q);
  // Summing by array index when the source gave dense volumes (a string-keyed lookup per IP
  // cost ~120 ms per cycle at 100 000 users). The Map is read only without them: the volume
  // source builds it on first access, a pass over every IP.
  // Dense volumes of another index generation (a rebuild since) are read through the Map.
  const dense = usage?.dense && usage.dense.generation === ipIndex.generation ? usage.dense : undefined;
  const byIp = dense ? undefined : usage?.byIp;
  const ids = dense ? (last.ids ??= prev.users.map((u) => Int32Array.from(u.ips, (ip) => ipIndex.idOf(ip)))) : null;
  // The volumes say which ids changed since those of the last plan: only their users are looked at.
  const changes =
    dense && ids && usage?.changes && last.usage?.version !== undefined && usage.changes.from === last.usage.version ? usage.changes : null;
  const adds = new Map<string, string[]>();
  const dels = new Map<string, string[]>();
  const push = (m: Map<string, string[]>, name: string, ip: string): void => {
    const list = m.get(name);
    if (list) list.push(ip);
    else m.set(name, [ip]);
  };
  const moved = { down: 0, up: 0 };
  const move = (ip: string, dir: Direction, from: number, to: number): void => {
    const family: SetFamily = ip.includes(':') ? 'inet6' : 'inet';
    const sets = last.index.sets[family];
    const names = last.index.names[family];
    if (!sets || !names) return; // IPv6 off: its IPs are in no set
    sets[dir][from]!.delete(ip);
    sets[dir][to]!.add(ip);
    push(dels, names[dir][from]!, ip);
    push(adds, names[dir][to]!, ip);
  };
  const counted = (bytes: number): boolean => q.count === 'all' || bytes > 0;

  // Per group, the users counted: from the last plan's classes when only some users are looked
  // at (each of them taken out, then counted again), from zero when every user is.
  const counts: Record<Direction, number[]> = { down: new Array<number>(q.groups).fill(0), up: new Array<number>(q.groups).fill(0) };
  if (changes) for (const c of prev.classes) counts[c.direction][c.group] = c.users;

  const users: UserPlan[] = changes ? prev.users.slice() : new Array<UserPlan>(prev.users.length);
  const visit = (i: number): void => {
    const u = prev.users[i]!;
    let down = 0;
    let up = 0;
    if (dense && ids) {
      const mine = ids[i]!;
      const dd = dense.down;
      const du = dense.up;
      for (let j = 0; j < mine.length; j++) {
        const id = mine[j]!;
        if (id < dd.length) {
          down += dd[id]!;
          up += du[id]!;
        }
      }
    } else if (byIp) {
      [down, up] = sumBytes(u.ips, byIp);
    }
    const gDown = q.enabled ? groupOf(down, limits) : 0;
    const gUp = q.enabled ? groupOf(up, limits) : 0;
    if (changes) {
      if (counted(u.down.bytes)) counts.down[u.down.group]!--;
      if (counted(u.up.bytes)) counts.up[u.up.group]!--;
    }
    if (counted(down)) counts.down[gDown]!++;
    if (counted(up)) counts.up[gUp]!++;
    if (down === u.down.bytes && up === u.up.bytes && gDown === u.down.group && gUp === u.up.group) {
      users[i] = u;
      return;
    }
    if (gDown !== u.down.group) {
      moved.down++;
      for (const ip of u.ips) move(ip, 'down', u.down.group, gDown);
    }
    if (gUp !== u.up.group) {
      moved.up++;
      for (const ip of u.ips) move(ip, 'up', u.up.group, gUp);
    }
    users[i] = { uid: u.uid, ips: u.ips, down: { bytes: down, group: gDown }, up: { bytes: up, group: gUp } };
  };

  if (changes && ids) {
    const h = (last.holders ??= holdersOf(ids));
    const seen = new Set<number>();
    const once = (i: number): void => {
      if (seen.has(i)) return;
      seen.add(i);
      visit(i);
    };
    for (const id of changes.ids) {
      const i = id < h.first.length ? h.first[id]! : -1;
      if (i >= 0) once(i);
      else if (i === -2) for (const k of h.more.get(id)!) once(k);
    }
  } else {
    for (let i = 0; i < prev.users.length; i++) visit(i);
  }

  const sets = new Map<string, { add: string[]; del: string[] }>();
  for (const [name, add] of adds) sets.set(name, { add, del: [] });
  for (const [name, del] of dels) {
    const s = sets.get(name);
    if (s) s.del = del;
    else sets.set(name, { add: [], del });
  }
  return {
    ...prev,
    ...sharedBy,
    ...rawVolumes,
    at: instant.toISO() ?? '',
    rule: eff.rule,
    fairness: config.qos.fairness,
    resetAt: resetAt.toISO() ?? '',
    totals,
    limits,
    users,
    sets: last.index.live,
    classes: classPlans(config, counts, totals),
    version: {},
    delta: { base: prev.version, sets, moved },
  };
}
