// "Why is my connection slow?": one user's IPs, volumes since the reset, group per
// direction, the next threshold and how far it is, and the current per-user rate.
// With an off-peak window the volume that decides the group is the counted one (`bytes`), the
// raw one beside it (`rawBytes`); `timeline` is the user's day so far (src/metrics/timeline.ts).
// Pure: computed from a desired state the daemon (or a one-off fetch) produced.

import { formatRate, formatSize } from '../config/units.js';
import { rawBytesOf, type Desired } from '../plan/desired.js';
import { Timeline, timelineText, type TimelineJson } from './timeline.js';
import { sortIps } from '../net/ip.js';
import { DIRECTIONS, nextThreshold, perUserRate } from '../policy/policy.js';

export interface ExplainJson {
  uid: string;
  ips: string[];
  resetAt: string;
  rule: string | null;
  /** the site whose allocation among the sites the totals are; null = [rates] down/up */
  site: string | null;
  down: ExplainDirection;
  up: ExplainDirection;
  /** the day since the reset: counted volume against the thresholds, each group change with its time */
  timeline: TimelineJson;
}

export interface ExplainDirection {
  /** the counted volume (off-peak hours at their weight): what decides the group */
  bytes: number;
  /** the volume before the off-peak weight (= bytes without a window) */
  rawBytes: number;
  group: number;
  groups: number;
  nextThresholdBytes: number | null;
  bytesToNextGroup: number | null;
  classRateBps: number;
  usersInGroup: number;
  perUserRateBps: number;
  /** the direction total every class shares: [rates] down/up, or this site's allocation */
  siteTotalBps: number;
  /** how the class is shared among its users ([qos] fairness): host = equally by user address, flow = by flow */
  fairness: 'host' | 'flow';
}

/** Finds a user by uid (case-insensitive) or by one of its IPs. */
export function explain(d: Desired, who: string, timeline: Timeline | null = null): ExplainJson | null {
  const lower = who.trim().toLowerCase();
  const u = d.users.find((x) => x.uid.toLowerCase() === lower || x.ips.includes(lower));
  if (!u) return null;
  const raw = rawBytesOf(d, u);
  const dir = (direction: 'down' | 'up'): ExplainDirection => {
    const v = u[direction];
    const cls = d.classes.find((c) => c.direction === direction && c.group === v.group)!;
    const next = nextThreshold(v.bytes, d.limits);
    return {
      bytes: v.bytes,
      rawBytes: raw[direction],
      group: v.group,
      groups: d.limits.length + 1,
      nextThresholdBytes: next,
      bytesToNextGroup: next === null ? null : next - v.bytes,
      classRateBps: cls.rateBps,
      usersInGroup: cls.users,
      perUserRateBps: perUserRate(cls),
      siteTotalBps: d.totals[direction],
      fairness: d.fairness ?? 'flow',
    };
  };
  return {
    uid: u.uid,
    ips: sortIps([...u.ips]),
    resetAt: d.resetAt,
    rule: d.rule,
    site: d.sharedBy ?? null,
    down: dir('down'),
    up: dir('up'),
    timeline: (timeline ?? new Timeline()).of(d, u),
  };
}

export function explainText(e: ExplainJson): string {
  const lines = [`${e.uid}: ${e.ips.join(', ')}`, `volumes since ${e.resetAt}${e.rule ? ` (${e.rule} in force)` : ''}:`];
  for (const d of DIRECTIONS) {
    const x = e[d];
    const next =
      x.nextThresholdBytes === null
        ? 'last group: no further threshold'
        : `next group above ${formatSize(x.nextThresholdBytes)} (${formatSize(x.bytesToNextGroup!)} to go)`;
    lines.push(
      `  ${d === 'down' ? 'download' : 'upload  '} ${formatSize(x.bytes).padStart(10)}  group ${x.group}/${x.groups - 1}  ${next}`,
    );
    if (x.rawBytes !== x.bytes)
      lines.push(`           counted ${formatSize(x.bytes)} of ${formatSize(x.rawBytes)} raw (off-peak hours count less)`);
    lines.push(
      `           rate now ${formatRate(x.perUserRateBps)} per user (class ${formatRate(x.classRateBps)} shared by ${x.usersInGroup} user(s))`,
    );
    lines.push(
      x.fairness === 'host'
        ? `           the class is shared equally by address (${d === 'down' ? 'destination' : 'source'}): more flows get no more`
        : '           the class is shared by flow: a user with more flows gets more of it',
    );
    lines.push(`           site total ${formatRate(x.siteTotalBps)}${e.site ? ` (site ${e.site}'s allocation among the sites)` : ''}`);
  }
  lines.push(...timelineText(e.timeline, formatSize));
  return lines.join('\n');
}
