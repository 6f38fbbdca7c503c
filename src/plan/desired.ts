// (config, directory, usage, instant) -> desired state. Pure: the whole QoS decision
// of a cycle, with no I/O and no clock of its own. The kernel layer diffs this against
// what it reads back; `reselqos plan` prints it.

import type { DateTime } from 'luxon';
import type { Config, Fairness } from '../config/config.js';
import { classRates, effectiveRates, groupOf, thresholds, type Direction, DIRECTIONS } from '../policy/policy.js';
import type { Directory, Skipped, Usage } from '../sources/types.js';
import { planFirewall, type FirewallPlan } from './firewall.js';

export interface UserPlan {
  readonly uid: string;
  readonly ips: readonly string[];
  readonly down: { readonly bytes: number; readonly group: number };
  readonly up: { readonly bytes: number; readonly group: number };
}

export interface ClassPlan {
  readonly direction: Direction;
  readonly group: number;
  readonly users: number;
  readonly rateBps: number;
  readonly ceilBps: number;
}

export type SetFamily = 'inet' | 'inet6';

export type SetRole = 'qos' | 'allow' | 'banned';

export interface SetPlan {
  readonly name: string;
  readonly family: SetFamily;
  readonly role: SetRole;
  /** QoS sets only */
  readonly direction?: Direction;
  readonly group?: number;
  readonly members: ReadonlySet<string>;
}

export interface Desired {
  readonly at: string;
  readonly rule: string | null;
  readonly resetAt: string;
  readonly totals: Readonly<Record<Direction, number>>;
  readonly limits: readonly number[];
  readonly users: readonly UserPlan[];
  readonly classes: readonly ClassPlan[];
  /** every set, empty ones included, in a fixed order: QoS (v4 down, v4 up, v6 down, v6 up; by group), then firewall */
  readonly sets: readonly SetPlan[];
  readonly skipped: readonly Skipped[];
  /** the dynamic firewall; null when [firewall] enabled = 0 */
  readonly firewall: FirewallPlan | null;
  /** user IPs per family (sizes every set) */
  readonly ipCount: Readonly<Record<SetFamily, number>>;
  /** identity of this plan: a later plan's `delta.base` names the plan it was derived from */
  readonly version: object;
  /** set membership changes from the plan `base` (incremental planning, src/plan/incremental.ts); null = computed from scratch */
  readonly delta: PlanDelta | null;
  /** the site whose allocation among the sites `totals` are ([sharing] enabled); absent = [rates] down/up */
  readonly sharedBy?: string;
  /** how each group class is shared among its users ([qos] fairness); absent in hand-made plans = flow */
  readonly fairness?: Fairness;
  /**
   * With an off-peak window: the raw volumes of the usage planned from (users' `bytes` are the
   * counted ones, which decide the groups); explain and plan --json sum a user's raw bytes from
   * it. Absent: raw = counted.
   */
  readonly rawVolumes?: Usage['raw'];
}

/** The site's totals when they come from the allocation between sites rather than [rates] down/up. */
export interface TotalsOverride {
  readonly site: string;
  readonly totals: Readonly<Record<Direction, number>>;
}

export interface SetDelta {
  readonly add: readonly string[];
  readonly del: readonly string[];
}

export interface PlanDelta {
  /** the `version` of the plan these changes start from */
  readonly base: object;
  /** per set name, only sets that change */
  readonly sets: ReadonlyMap<string, SetDelta>;
  /** users whose group changed, per direction */
  readonly moved: Readonly<Record<Direction, number>>;
}

export function setName(config: Pick<Config, 'qos'>, family: SetFamily, direction: Direction, group: number): string {
  return `${family === 'inet' ? config.qos.setPrefix : config.qos.set6Prefix}${direction === 'down' ? 'd' : 'u'}${group}`;
}

/** A user's bytes (down, up): the sum over its IPs (an IP with no volume counts 0). */
export function sumBytes(
  ips: readonly string[],
  byIp: ReadonlyMap<string, { readonly down: number; readonly up: number }>,
): [number, number] {
  let down = 0;
  let up = 0;
  for (const ip of ips) {
    const v = byIp.get(ip);
    if (v) {
      down += v.down;
      up += v.up;
    }
  }
  return [down, up];
}

/** HTB class rates of every group from the number of users per group. */
export function classPlans(
  config: Pick<Config, 'qos'>,
  counts: Readonly<Record<Direction, readonly number[]>>,
  totals: Readonly<Record<Direction, number>>,
): ClassPlan[] {
  const q = config.qos;
  const classes: ClassPlan[] = [];
  for (const dir of DIRECTIONS) {
    const rates = classRates(counts[dir], {
      totalBps: totals[dir],
      factor: q.factor,
      floorBps: q.emptyClassRate,
      defaultBps: q.defaultRate,
      ceilShare: q.ceilShare,
    });
    for (const r of rates) classes.push({ direction: dir, group: r.group, users: r.users, rateBps: r.rateBps, ceilBps: r.ceilBps });
  }
  return classes;
}

/** A user's raw bytes (before the off-peak weight): the counted ones when the plan has no raw volumes. */
export function rawBytesOf(d: Pick<Desired, 'rawVolumes'>, u: UserPlan): { down: number; up: number } {
  if (!d.rawVolumes) return { down: u.down.bytes, up: u.up.bytes };
  const [down, up] = sumBytes(u.ips, d.rawVolumes.byIp);
  return { down, up };
}

export function planDesired(
  config: Config,
  directory: Directory,
  usage: Usage | null,
  instant: DateTime,
  resetAt: DateTime,
  shared?: TotalsOverride,
): Desired {
  const q = config.qos;
  const limits = thresholds(q);
  const eff = effectiveRates(config, instant);
  const totals = shared ? { ...shared.totals } : { down: eff.rates['down']!, up: eff.rates['up']! };

  // Owner -> IPs of its active machines.
  const ipsOf = new Map<string, string[]>();
  for (const m of directory.machines) {
    if (!m.active) continue;
    const ips = m.ips4.length + m.ips6.length;
    if (ips === 0) continue;
    let list = ipsOf.get(m.owner);
    if (!list) ipsOf.set(m.owner, (list = []));
    for (const ip of m.ips4) list.push(ip);
    for (const ip of m.ips6) list.push(ip);
  }

  // Every QoS set, empty ones included, and an index to fill them without building names per IP.
  const families: SetFamily[] = config.firewall.v6Enabled ? ['inet', 'inet6'] : ['inet'];
  const sets: SetPlan[] = [];
  const index: Record<SetFamily, Record<Direction, Set<string>[]> | null> = { inet: null, inet6: null };
  for (const family of families) {
    const byDir = { down: [] as Set<string>[], up: [] as Set<string>[] };
    for (const dir of DIRECTIONS) {
      for (let g = 0; g < q.groups; g++) {
        const set = new Set<string>();
        byDir[dir].push(set);
        sets.push({ name: setName(config, family, dir, g), family, role: 'qos', direction: dir, group: g, members: set });
      }
    }
    index[family] = byDir;
  }

  const users: UserPlan[] = [];
  const counts: Record<Direction, number[]> = { down: new Array<number>(q.groups).fill(0), up: new Array<number>(q.groups).fill(0) };
  const ipCount = { inet: 0, inet6: 0 };
  const byIp = usage?.byIp;
  // Owners come sorted by uid: users in a stable order without sorting here. (IPs are in
  // directory order; outputs for humans sort them.)
  for (const owner of directory.owners) {
    const ips = ipsOf.get(owner.uid);
    if (!ips) continue;
    ipsOf.delete(owner.uid); // a uid shared by a person and a club counts once
    const [down, up] = byIp ? sumBytes(ips, byIp) : [0, 0];
    const gDown = q.enabled ? groupOf(down, limits) : 0;
    const gUp = q.enabled ? groupOf(up, limits) : 0;
    if (q.count === 'all' || down > 0) counts.down[gDown]!++;
    if (q.count === 'all' || up > 0) counts.up[gUp]!++;
    users.push({ uid: owner.uid, ips, down: { bytes: down, group: gDown }, up: { bytes: up, group: gUp } });
    for (const ip of ips) {
      const family: SetFamily = ip.includes(':') ? 'inet6' : 'inet';
      ipCount[family]++;
      const idx = index[family];
      if (!idx) continue;
      idx.down[gDown]!.add(ip);
      idx.up[gUp]!.add(ip);
    }
  }

  const classes = classPlans(config, counts, totals);

  const fw = config.firewall.enabled ? planFirewall(directory, config.firewall, instant.toMillis()) : null;
  if (fw) {
    sets.push({ name: `${q.setPrefix}allow`, family: 'inet', role: 'allow', members: fw.allow4 });
    if (config.firewall.v6Enabled) sets.push({ name: `${q.set6Prefix}allow`, family: 'inet6', role: 'allow', members: fw.allow6 });
    if (config.firewall.portal || config.firewall.portalBan)
      sets.push({ name: `${q.setPrefix}banned`, family: 'inet', role: 'banned', members: fw.banned4 });
    if (config.firewall.v6Enabled && (config.firewall.portal6 || config.firewall.portalBan6))
      sets.push({ name: `${q.set6Prefix}banned`, family: 'inet6', role: 'banned', members: fw.banned6 });
  }

  return {
    at: instant.toISO() ?? '',
    rule: eff.rule,
    fairness: q.fairness,
    resetAt: resetAt.toISO() ?? '',
    totals,
    limits,
    users,
    classes,
    sets,
    skipped: directory.skipped,
    firewall: fw,
    ipCount,
    version: {},
    delta: null,
    ...(shared ? { sharedBy: shared.site } : {}),
    ...(usage?.raw ? { rawVolumes: usage.raw } : {}),
  };
}
