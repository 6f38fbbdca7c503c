// The JSON the observer's state is shown as: GET /api/state (the dashboard) and `top` (over the
// control socket). Field names are a contract of the HTTP API and of `top --json`. Types and one
// pure conversion; the Observer (observer.ts) fills them.

import type { SharingStatus } from '../sharing/site.js';
import type { LeafStats } from '../kernel/tc-stats.js';
import type { Direction } from '../policy/policy.js';
import type { Refusal } from '../policy/entitlement.js';
import type { HistoryPoint } from './counters.js';

export interface MoveJson {
  at: string;
  uid: string;
  direction: Direction;
  from: number;
  to: number;
}

/** What GET /api/state answers: everything the dashboard shows. No secret in it. */
export interface DashboardState {
  site: string;
  at: string | null;
  ok: boolean | null;
  error: string | null;
  intervalS: number;
  sources: { ldap: string; mysql: string };
  rule: { current: string | null; next: { rule: string; startsAt: string } | null };
  totals: { down: number; up: number } | null;
  limits: number[];
  classes: {
    direction: Direction;
    group: number;
    users: number;
    rateBps: number;
    ceilBps: number;
    bps: number | null;
    queue: QueueJson | null;
  }[];
  history: HistoryPoint[];
  moves: MoveJson[];
  firewall: { allowed: Record<'inet' | 'inet6', number>; refused: Record<Refusal, number> } | null;
  /** with [sharing] enabled = 1: this site's demand, allocation and the peers (status --json's `sharing`) */
  sharing: SharingStatus | null;
  /** this gateway's role in an HA pair and since when (null: not wired) */
  ha: { role: string; since: string } | null;
}

/** A group class's leaf queue as the kernel reported it (null delays: the leaf does not measure them; cake does). */
export interface QueueJson {
  kind: string;
  backlogBytes: number;
  packets: number;
  drops: number;
  ecnMarks: number | null;
  avgDelayMs: number | null;
  peakDelayMs: number | null;
}

export const queueJson = (q: LeafStats | undefined): QueueJson | null =>
  q
    ? {
        kind: q.kind,
        backlogBytes: q.backlogBytes,
        packets: q.qlen,
        drops: q.drops,
        ecnMarks: q.ecnMarks,
        avgDelayMs: q.avgDelayUs === null ? null : q.avgDelayUs / 1000,
        peakDelayMs: q.peakDelayUs === null ? null : q.peakDelayUs / 1000,
      }
    : null;

export interface TopJson {
  at: string;
  classes: { direction: Direction; group: number; users: number; rateBps: number; bps: number | null; queue: QueueJson | null }[];
  /** per direction, the users with the largest volume since the reset */
  users: { direction: Direction; uid: string; bytes: number; group: number }[];
}
