// Candidates for bash completion of `reselqos explain <uid|ip>`: the uids and IPs of a plan
// that start with what was typed. Pure: the daemon answers from its last plan.

import type { Desired } from '../plan/desired.js';

export const COMPLETE_MAX = 50;

/**
 * The uids and IPs of `d` starting with `prefix` (a uid compared case-insensitively, as
 * `explain` finds it), sorted, each once, at most `max`.
 */
export function completeCandidates(d: Pick<Desired, 'users'>, prefix: string, max = COMPLETE_MAX): string[] {
  const p = prefix.toLowerCase();
  const found = new Set<string>();
  for (const u of d.users) {
    if (u.uid.toLowerCase().startsWith(p)) found.add(u.uid);
    for (const ip of u.ips) if (ip.startsWith(p)) found.add(ip);
  }
  return [...found].sort().slice(0, Math.max(0, max));
}
