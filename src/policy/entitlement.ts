// Who is entitled to the internet: the rules on one owner's LDAP attributes (paid until, cut,
// banned from the internet, blacklisted; each switchable in [firewall]). Pure, no clock: the
// instant is an argument. Used by the firewall's plan (src/plan/firewall.ts) and by the
// entitlement guard (src/state/guard.ts), which must judge a directory by the same rules.

import type { FirewallConfig } from '../config/config.js';
import type { Owner } from '../sources/types.js';

export type Refusal = 'unpaid' | 'cut' | 'banned' | 'blacklisted';

/** The [firewall] switches of the entitlement rules. */
export type EntitlementChecks = Pick<FirewallConfig, 'checkPayment' | 'checkCoupure' | 'checkBan' | 'banServices' | 'checkBlacklist'>;

/** Why `o` may not go out at `nowMs` (the first rule it breaks, most restrictive first), null = entitled. */
export function refusalOf(o: Owner, fw: EntitlementChecks, nowMs: number): Refusal | null {
  if (fw.checkCoupure && o.coupure) return 'cut';
  if (fw.checkBan && o.ban.some((b) => fw.banServices.includes(b.trim().toLowerCase()))) return 'banned';
  if (fw.checkBlacklist && o.cotiz.some((c) => /^BLACKLIST[0-9]{4}$/i.test(c.trim()))) return 'blacklisted';
  if (fw.checkPayment && (o.endInternet === null || o.endInternet <= nowMs)) return 'unpaid';
  return null;
}
