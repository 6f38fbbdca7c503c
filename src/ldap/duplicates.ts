// Duplicate IPs of a full build (issue 16: linear, no sort of every machine): which machine
// keeps an address several active machines claim, and the naming of the others. Pure; mutates
// only the drafts' IP lists and the `lost` map it is given. Part of the build in directory.ts.

import { escapeControl as esc } from '../log.js';
import type { BuildState, Draft } from './directory.js';
import type { Skipped } from '../sources/types.js';

/** (owner uid, DN): the order in which machines claim an IP nobody held */
const claimOrder = (x: Draft, y: Draft): number =>
  x.owner < y.owner ? -1 : x.owner > y.owner ? 1 : x.dn < y.dn ? -1 : x.dn > y.dn ? 1 : 0;

/**
 * Duplicate IPs among active machines. The machine that held the IP in the directory in force
 * (`holders`) keeps it, so a newcomer can never take an address from its holder; with no holder
 * (a first build, or a holder gone), the machine whose owner's uid sorts first, then whose DN
 * sorts first: deterministic whatever the order of the entries. The others lose the IP and are
 * named (DN + IP). Mutates the drafts' IP lists (not the order of `drafts`).
 *
 * Linear in the IPs: one pass finds each IP's winner, one finds the machines that lost any;
 * only those are sorted (by owner, DN) and named, as a sort of every machine would have them.
 */
export function settleDuplicates(
  drafts: readonly Draft[],
  skipped: Skipped[],
  lost: BuildState['lost'],
  holders?: ReadonlyMap<string, string>,
): void {
  const held = holders && holders.size > 0 ? holders : null;
  const winner = new Map<string, Draft>();
  const claim = (d: Draft, list: readonly string[]): void => {
    for (const ip of list) {
      const cur = winner.get(ip);
      if (cur === undefined) {
        winner.set(ip, d);
        continue;
      }
      const h = held?.get(ip);
      const wins = h !== undefined && (cur.dn === h) !== (d.dn === h) ? d.dn === h : claimOrder(d, cur) < 0;
      if (wins) winner.set(ip, d);
    }
  };
  for (const d of drafts) {
    if (!d.active) continue;
    claim(d, d.ips4);
    claim(d, d.ips6);
  }
  const losers: Draft[] = [];
  const loses = (d: Draft, list: readonly string[]): boolean => {
    for (const ip of list) if (winner.get(ip) !== d) return true;
    return false;
  };
  for (const d of drafts) if (d.active && (loses(d, d.ips4) || loses(d, d.ips6))) losers.push(d);
  losers.sort(claimOrder);
  const mine = new Map<string, { ips: string[]; skips: number }>();
  const note = (d: Draft, ip: string, skip: boolean): void => {
    let l = mine.get(d.dn);
    if (!l) mine.set(d.dn, (l = { ips: [...(lost.get(d.dn)?.ips ?? [])], skips: lost.get(d.dn)?.skips ?? 0 }));
    l.ips.push(ip);
    if (skip) l.skips++;
  };
  const settle = (d: Draft, list: string[]): void => {
    // lost IPs are appended to a list built here, kept ones compacted in place
    let keep = list.length;
    for (let i = list.length - 1; i >= 0; i--) {
      const ip = list[i]!;
      const holder = winner.get(ip)!;
      if (holder === d) {
        list[--keep] = ip;
      } else if (holder.owner !== d.owner) {
        skipped.push({ dn: d.dn, reason: `IP ${ip} also claimed by ${esc(holder.dn)} (owner ${holder.owner}); kept there` });
        note(d, ip, true);
      } else {
        note(d, ip, false); // same owner twice: harmless, keep one
      }
    }
    list.splice(0, keep); // the kept IPs, in their order, were moved to the end
  };
  for (const d of losers) {
    settle(d, d.ips4);
    settle(d, d.ips6);
  }
  for (const [dn, l] of mine) lost.set(dn, l);
}
