// The users' day: every group change of every user since the daily reset, with its time and the
// counted volume that caused it, kept by the observer (src/metrics/observer.ts) and saved with
// the volumes (src/state/snapshot.ts, volumes.json) so a restart keeps it. `explain` and the
// dashboard's search show one user's as a timeline against the thresholds. Pure data.
//
// Bounded: a user changes group at most `groups - 1` times per direction on a day whose volumes
// only grow (more only when the planner's totals change or a rule moves thresholds), and the
// whole timeline goes at the reset.

import type { Desired, UserPlan } from '../plan/desired.js';
import { DIRECTIONS, type Direction } from '../policy/policy.js';

export interface TimelineEvent {
  at: string;
  direction: Direction;
  from: number;
  to: number;
  /** the counted volume of that direction when the change was seen */
  bytes: number;
}

/** explain --json's `timeline`: the user's day so far. */
export interface TimelineJson {
  /** the reset the day counts from */
  since: string;
  /** the thresholds the counted volume is held against (group n: up to limits[n]) */
  limits: number[];
  /** the group changes, oldest first */
  events: TimelineEvent[];
  /** the counted volume now, per direction */
  now: { at: string; down: number; up: number };
}

/** The form saved in volumes.json: [uid, at, 'd'|'u', from, to, bytes]. */
type Saved = [string, string, 'd' | 'u', number, number, number];

export class Timeline {
  private resetAt: string | null = null;
  private readonly byUid = new Map<string, TimelineEvent[]>();
  /** bumped on every change: the store saves only a changed timeline */
  version = 0;

  /** Events recorded (tests, memory). */
  get size(): number {
    let n = 0;
    for (const e of this.byUid.values()) n += e.length;
    return n;
  }

  /** The day of `d`: a new reset drops the previous day's events. Returns true when the day changed. */
  day(resetAt: string): boolean {
    if (this.resetAt === resetAt) return false;
    this.resetAt = resetAt;
    this.byUid.clear();
    this.version++;
    return true;
  }

  add(uid: string, e: TimelineEvent): void {
    let list = this.byUid.get(uid);
    if (!list) this.byUid.set(uid, (list = []));
    list.push(e);
    this.version++;
  }

  /** The group the timeline last saw `uid` in (0 at the reset). */
  lastGroup(uid: string, direction: Direction): number {
    const list = this.byUid.get(uid);
    if (list) for (let i = list.length - 1; i >= 0; i--) if (list[i]!.direction === direction) return list[i]!.to;
    return 0;
  }

  /**
   * Every user of `d` against the group the timeline last saw them in: the changes are recorded
   * at `d.at`. A pass over the users: after a reset or a restart (no previous plan to compare with).
   */
  catchUp(d: Desired): void {
    this.day(d.resetAt);
    for (const u of d.users) {
      for (const direction of DIRECTIONS) {
        const from = this.lastGroup(u.uid, direction);
        if (from !== u[direction].group) this.add(u.uid, { at: d.at, direction, from, to: u[direction].group, bytes: u[direction].bytes });
      }
    }
  }

  /** A change seen between two plans of the same day. */
  move(at: string, a: UserPlan, b: UserPlan, direction: Direction): void {
    this.add(b.uid, { at, direction, from: a[direction].group, to: b[direction].group, bytes: b[direction].bytes });
  }

  /** `uid`'s day in `d` (the events only when they are of `d`'s day). */
  of(d: Desired, u: UserPlan): TimelineJson {
    const events = this.resetAt === d.resetAt ? (this.byUid.get(u.uid) ?? []) : [];
    return {
      since: d.resetAt,
      limits: [...d.limits],
      events: events.map((e) => ({ ...e })),
      now: { at: d.at, down: u.down.bytes, up: u.up.bytes },
    };
  }

  toJSON(): { resetAt: string | null; events: Saved[] } {
    const events: Saved[] = [];
    for (const [uid, list] of this.byUid) {
      for (const e of list) events.push([uid, e.at, e.direction === 'down' ? 'd' : 'u', e.from, e.to, e.bytes]);
    }
    return { resetAt: this.resetAt, events };
  }

  /** The timeline saved by toJSON; whatever does not have that shape is dropped (null: nothing usable). */
  static fromJSON(j: unknown): Timeline | null {
    const o = j as { resetAt?: unknown; events?: unknown } | null;
    if (!o || typeof o.resetAt !== 'string' || !Array.isArray(o.events)) return null;
    const t = new Timeline();
    t.day(o.resetAt);
    for (const x of o.events as unknown[]) {
      if (!Array.isArray(x) || x.length !== 6) continue;
      const [uid, at, dir, from, to, bytes] = x as unknown[];
      if (typeof uid !== 'string' || typeof at !== 'string' || (dir !== 'd' && dir !== 'u')) continue;
      if (!Number.isInteger(from) || !Number.isInteger(to) || typeof bytes !== 'number' || !Number.isFinite(bytes)) continue;
      t.add(uid, { at, direction: dir === 'd' ? 'down' : 'up', from: from as number, to: to as number, bytes });
    }
    t.version = 0;
    return t;
  }
}

/** The text of a timeline (explain): one line per change, then now. */
export function timelineText(t: TimelineJson, size: (n: number) => string): string[] {
  const hm = (iso: string): string => /T(\d\d:\d\d)/.exec(iso)?.[1] ?? iso;
  const lines = [`the day since ${hm(t.since)} (thresholds ${t.limits.map(size).join(', ')}):`];
  for (const e of t.events) {
    const way = e.direction === 'down' ? 'download' : 'upload';
    lines.push(`  ${hm(e.at)}  ${way} group ${e.from} -> ${e.to} at ${size(e.bytes)}`);
  }
  if (t.events.length === 0) lines.push('  no group change');
  lines.push(`  ${hm(t.now.at)}  now: download ${size(t.now.down)}, upload ${size(t.now.up)}`);
  return lines;
}
