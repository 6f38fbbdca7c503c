// LDAP entries -> Directory, as a pure function. Owns every rule about what an entry
// means: owner of a machine (uid of its uidProprio DN), full IPs from suffixes,
// inactive zones, entitlement fields, duplicate IPs. A bad entry or value is skipped
// and named (DN + reason); it never fails the whole snapshot.

import type { LdapConfig, FirewallConfig } from '../config/config.js';
import { joinIpv4, joinIpv6, sortIps } from '../net/ip.js';
import type { Directory, Machine, Owner, OwnerKind, Skipped } from './types.js';

/** An LDAP entry with attribute names lowercased and every value a string array. */
export interface RawEntry {
  readonly dn: string;
  readonly attrs: ReadonlyMap<string, readonly string[]>;
}

export interface RawDirectory {
  readonly people: readonly RawEntry[];
  readonly orgas: readonly RawEntry[];
  readonly hosts: readonly RawEntry[];
}

/** Lowercased DN with spaces around separators removed, for matching uidProprio to owners. */
export function normalizeDn(dn: string): string {
  if (!/\s/.test(dn)) return dn.toLowerCase();
  return dn.split(',').map((rdn) => rdn.split('=').map((p) => p.trim()).join('=')).join(',').toLowerCase();
}

/** uid of a DN whose first RDN is uid=...; null otherwise. */
export function uidOfDn(dn: string, uidAttr = 'uid'): string | null {
  const first = dn.split(',')[0] ?? '';
  const eq = first.indexOf('=');
  if (eq < 0) return null;
  if (first.slice(0, eq).trim().toLowerCase() !== uidAttr.toLowerCase()) return null;
  const v = first.slice(eq + 1).trim();
  return v === '' ? null : v;
}

/** generalizedTime (YYYYMMDDHHMMSS[.f]Z or with ±HHMM, minutes/seconds optional) -> epoch ms. */
export function parseGeneralizedTime(raw: string): number | null {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})?(\d{2})?(?:[.,](\d+))?(Z|[+-]\d{4})$/.exec(raw.trim());
  if (!m) return null;
  const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4], m[5] ?? '0', m[6] ?? '0'].map(Number) as number[];
  if (mo! < 1 || mo! > 12 || d! < 1 || d! > 31 || h! > 23 || mi! > 59 || s! > 60) return null;
  let t = Date.UTC(y!, mo! - 1, d!, h!, mi!, s!);
  const zone = m[8]!;
  if (zone !== 'Z') {
    const sign = zone[0] === '-' ? -1 : 1;
    t -= sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(3, 5))) * 60_000;
  }
  return t;
}

function first(e: RawEntry, attr: string): string | undefined {
  return e.attrs.get(attr.toLowerCase())?.[0];
}
function all(e: RawEntry, attr: string): readonly string[] {
  return e.attrs.get(attr.toLowerCase()) ?? [];
}

export interface BuildOptions {
  readonly ldap: Pick<LdapConfig, 'attrs' | 'inactiveZone'>;
  readonly firewall: Pick<FirewallConfig, 'areaPrefix' | 'areaOtherPrefix' | 'area6Prefix' | 'v6Enabled'>;
  readonly fetchedAt: string;
}

function buildOwner(e: RawEntry, kind: OwnerKind, o: BuildOptions, skipped: Skipped[]): Owner | null {
  const a = o.ldap.attrs;
  const uid = first(e, a.uid)?.trim();
  if (!uid) {
    skipped.push({ dn: e.dn, reason: `no ${a.uid}` });
    return null;
  }
  if (/[\s\x00-\x1f]/.test(uid)) {
    skipped.push({ dn: e.dn, reason: `${a.uid} "${uid}" contains whitespace or control characters` });
    return null;
  }
  let endInternet: number | null = null;
  const endRaw = first(e, a.endInternet);
  if (endRaw !== undefined) {
    endInternet = parseGeneralizedTime(endRaw);
    if (endInternet === null) {
      // Kept for QoS; the firewall treats an unreadable end date as expired.
      skipped.push({ dn: e.dn, reason: `${a.endInternet} "${endRaw}" is not a generalizedTime (treated as expired)` });
      endInternet = 0;
    }
  }
  const coupureRaw = first(e, a.coupure);
  return {
    uid, dn: e.dn, kind, endInternet,
    coupure: coupureRaw !== undefined && coupureRaw.trim().toUpperCase() === 'TRUE',
    ban: [...all(e, a.ban)], cotiz: [...all(e, a.cotiz)],
  };
}

/**
 * Builds the Directory. Deterministic: the same entries in any order give the same result.
 * An IP claimed by machines of two owners goes to the owner whose uid sorts first.
 */
export function buildDirectory(raw: RawDirectory, o: BuildOptions): Directory {
  const skipped: Skipped[] = [];
  const a = o.ldap.attrs;
  const byDn = new Map<string, Owner>();
  const byUid = new Map<string, Owner[]>();
  const owners: Owner[] = [];
  const addOwners = (entries: readonly RawEntry[], kind: OwnerKind): void => {
    for (const e of entries) {
      const owner = buildOwner(e, kind, o, skipped);
      if (!owner) continue;
      const key = normalizeDn(e.dn);
      if (byDn.has(key)) continue;
      byDn.set(key, owner);
      const lower = owner.uid.toLowerCase();
      byUid.set(lower, [...(byUid.get(lower) ?? []), owner]);
      owners.push(owner);
    }
  };
  addOwners(raw.people, 'person');
  addOwners(raw.orgas, 'organisation');
  // Two owners with the same uid (a person and a club): the second is ambiguous.
  for (const [, list] of byUid) {
    if (list.length > 1) {
      for (const dup of list.slice(1)) skipped.push({ dn: dup.dn, reason: `uid "${dup.uid}" also used by ${list[0]!.dn}; their machines count as one user` });
    }
  }

  interface Draft { dn: string; host: string; owner: string; active: boolean; ips4: string[]; ips6: string[] }
  const drafts: Draft[] = [];
  const inactive = o.ldap.inactiveZone.toLowerCase();
  for (const e of raw.hosts) {
    const ownerDn = first(e, a.owner);
    if (!ownerDn) {
      skipped.push({ dn: e.dn, reason: `no ${a.owner}` });
      continue;
    }
    let owner = byDn.get(normalizeDn(ownerDn));
    if (!owner) {
      const uid = uidOfDn(ownerDn, a.uid);
      const candidates = uid ? byUid.get(uid.toLowerCase()) : undefined;
      if (candidates?.length === 1) owner = candidates[0];
    }
    if (!owner) {
      skipped.push({ dn: e.dn, reason: `owner ${ownerDn} does not exist` });
      continue;
    }
    const zones = all(e, a.zone).map((z) => z.trim().toLowerCase());
    const active = !zones.includes(inactive);
    const ips4: string[] = [];
    const ips6: string[] = [];
    for (const v of all(e, a.ip)) {
      // No trimming: whitespace or a newline in a value is an error, named.
      const campus = joinIpv4(o.firewall.areaPrefix, v);
      if (campus.ok) {
        if (!ips4.includes(campus.ip)) ips4.push(campus.ip);
      } else {
        skipped.push({ dn: e.dn, reason: `${a.ip} ${JSON.stringify(v)}: ${campus.reason}` });
      }
    }
    for (const v of all(e, a.ip6)) {
      const r = joinIpv6(o.firewall.area6Prefix, v);
      if (r.ok) {
        if (!ips6.includes(r.ip)) ips6.push(r.ip);
      } else {
        skipped.push({ dn: e.dn, reason: `${a.ip6} ${JSON.stringify(v)}: ${r.reason}` });
      }
    }
    drafts.push({ dn: e.dn, host: first(e, a.host) ?? '', owner: owner.uid, active, ips4, ips6 });
  }

  // Duplicate IPs among active machines: deterministic winner (uid, then machine DN).
  drafts.sort((x, y) => (x.owner < y.owner ? -1 : x.owner > y.owner ? 1 : x.dn < y.dn ? -1 : x.dn > y.dn ? 1 : 0));
  const claimed = new Map<string, Draft>();
  for (const d of drafts) {
    if (!d.active) continue;
    for (const list of [d.ips4, d.ips6]) {
      for (let i = list.length - 1; i >= 0; i--) {
        const ip = list[i]!;
        const holder = claimed.get(ip);
        if (!holder) {
          claimed.set(ip, d);
        } else if (holder.owner !== d.owner) {
          skipped.push({ dn: d.dn, reason: `IP ${ip} also claimed by ${holder.dn} (owner ${holder.owner}); kept there` });
          list.splice(i, 1);
        } else {
          list.splice(i, 1); // same owner twice: harmless, keep one
        }
      }
    }
  }

  const machines: Machine[] = drafts
    .map((d) => ({ dn: d.dn, host: d.host, owner: d.owner, active: d.active, ips4: sortIps(d.ips4), ips6: sortIps(d.ips6) }))
    .sort((x, y) => (x.dn < y.dn ? -1 : x.dn > y.dn ? 1 : 0));
  owners.sort((x, y) => (x.uid < y.uid ? -1 : x.uid > y.uid ? 1 : x.dn < y.dn ? -1 : 1));
  skipped.sort((x, y) => (x.dn < y.dn ? -1 : x.dn > y.dn ? 1 : 0));
  return { owners, machines, skipped, fetchedAt: o.fetchedAt };
}
