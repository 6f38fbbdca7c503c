// Who may go out: the dynamic firewall's decision per owner and machine, as a pure
// function of the directory, the config and the instant. A machine may reach the
// internet when it is active, its owner exists and the owner is entitled (paid, not
// cut, not banned from the internet, not blacklisted; each rule switchable).

import type { FirewallConfig } from '../config/config.js';
import type { Directory } from '../sources/types.js';
import { refusalOf, type EntitlementChecks, type Refusal } from '../policy/entitlement.js';

export interface FirewallPlan {
  /** IPs of active machines whose owner is entitled */
  readonly allow4: ReadonlySet<string>;
  readonly allow6: ReadonlySet<string>;
  /** IPs of active machines whose owner is cut or banned (for the ban page) */
  readonly banned4: ReadonlySet<string>;
  readonly banned6: ReadonlySet<string>;
  /** owners refused, with the reason */
  readonly refused: readonly { readonly uid: string; readonly reason: Refusal }[];
}

/** Most restrictive first: a uid shared by several owners takes the first refusal of this list any of them has. */
const SEVERITY: readonly (Refusal | null)[] = ['cut', 'banned', 'blacklisted', 'unpaid', null];

/**
 * The refusal of every uid at `nowMs` (null = entitled). A uid held by several owners (a
 * person and a club, compared case-insensitively as LDAP does) gets the most restrictive
 * refusal of them all: a banned club never lets out the machines of a paid person of the
 * same uid, nor the other way round.
 */
export function refusalsByUid(d: Directory, fw: EntitlementChecks, nowMs: number): Map<string, Refusal | null> {
  const byLower = new Map<string, Refusal | null>();
  for (const o of d.owners) {
    const key = o.uid.toLowerCase();
    const r = refusalOf(o, fw, nowMs);
    const prev = byLower.get(key);
    if (prev === undefined || SEVERITY.indexOf(r) < SEVERITY.indexOf(prev)) byLower.set(key, r);
  }
  const refusal = new Map<string, Refusal | null>();
  for (const o of d.owners) refusal.set(o.uid, byLower.get(o.uid.toLowerCase())!);
  return refusal;
}

export function planFirewall(d: Directory, fw: FirewallConfig, nowMs: number): FirewallPlan {
  const refusal = refusalsByUid(d, fw, nowMs);
  const allow4 = new Set<string>();
  const allow6 = new Set<string>();
  const banned4 = new Set<string>();
  const banned6 = new Set<string>();
  for (const m of d.machines) {
    if (!m.active) continue;
    const r = refusal.get(m.owner);
    if (r === undefined) continue; // owner unknown: never allowed
    if (r === null) {
      for (const ip of m.ips4) allow4.add(ip);
      for (const ip of m.ips6) allow6.add(ip);
    } else if (r === 'cut' || r === 'banned') {
      for (const ip of m.ips4) banned4.add(ip);
      for (const ip of m.ips6) banned6.add(ip);
    }
  }
  const refused = [...refusal].flatMap(([uid, reason]) => (reason ? [{ uid, reason }] : []));
  return { allow4, allow6, banned4, banned6, refused };
}
