// LDAP entries -> Directory, as a pure function. Owns every rule about what an entry
// means: owner of a machine (uid of its uidProprio DN), full IPs from suffixes,
// inactive zones, entitlement fields, duplicate IPs. A bad entry or value is skipped
// and named (DN + reason); it never fails the whole snapshot.
//
// Over 400 lines: the parts of a build (owners, host drafts, ties; duplicate settling is in
// duplicates.ts) are exported one by one because the patcher (patch.ts) applies exactly the same rules to a few
// entries; keeping them together keeps the two from drifting apart.

import type { LdapConfig, FirewallConfig } from '../config/config.js';
import { escapeControl as esc } from '../log.js';
import { joinIpv4, joinIpv6, networkMatcher, sortIps } from '../net/ip.js';
import { settleDuplicates } from './duplicates.js';
import { EMPTY, flat, lowerName, sharedList } from './intern.js';
import type { Directory, Machine, Owner, OwnerKind, Skipped } from '../sources/types.js';

/** Values of an attribute by its lowercased name (a Map, or a view over an ldapts entry). */
export interface AttrReader {
  get(lowerName: string): readonly string[] | undefined;
}

/** An LDAP entry with attribute names lowercased and every value a string array. */
export interface RawEntry {
  readonly dn: string;
  readonly attrs: AttrReader;
}

export interface RawDirectory {
  readonly people: readonly RawEntry[];
  readonly orgas: readonly RawEntry[];
  readonly hosts: readonly RawEntry[];
}

/** Lowercased DN with spaces around separators removed, for matching uidProprio to owners. */
export function normalizeDn(dn: string): string {
  if (!/\s/.test(dn)) return dn.toLowerCase();
  return dn
    .split(',')
    .map((rdn) =>
      rdn
        .split('=')
        .map((p) => p.trim())
        .join('='),
    )
    .join(',')
    .toLowerCase();
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
  const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4], m[5] ?? '0', m[6] ?? '0'].map(Number);
  if (mo! < 1 || mo! > 12 || d! < 1 || d! > 31 || h! > 23 || mi! > 59 || s! > 60) return null;
  let t = Date.UTC(y!, mo! - 1, d, h, mi, s);
  const zone = m[8]!;
  if (zone !== 'Z') {
    const sign = zone[0] === '-' ? -1 : 1;
    t -= sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(3, 5))) * 60_000;
  }
  return t;
}

function first(e: RawEntry, attr: string): string | undefined {
  return e.attrs.get(lowerName(attr))?.[0];
}
function all(e: RawEntry, attr: string): readonly string[] {
  return e.attrs.get(lowerName(attr)) ?? EMPTY;
}

export interface BuildOptions {
  readonly ldap: Pick<LdapConfig, 'attrs' | 'inactiveZone'> & Partial<Pick<LdapConfig, 'maxIpsPerMachine'>>;
  readonly firewall: Pick<
    FirewallConfig,
    'enabled' | 'areaPrefix' | 'areaOtherPrefix' | 'area6Prefix' | 'v6Enabled' | 'userNetworks' | 'user6Networks'
  >;
  readonly fetchedAt: string;
  /**
   * Who held each IP in the directory in force (IP -> machine DN): in a collision the holder
   * keeps it (settleDuplicates). Absent on a first build.
   */
  readonly holders?: ReadonlyMap<string, string>;
}

/**
 * Why an IP is refused by the network rule: with the firewall on, an address outside
 * `[firewall] userNetworks` (IPv4) / `user6Networks` (IPv6) is not a user's (8.8.8.8,
 * fe80::1) and never enters a set. A family whose list is empty is not checked (for IPv6 with
 * the firewall on, `check` refuses that configuration). null = inside.
 */
export function outsideNetworks(ip: string, fw: BuildOptions['firewall']): string | null {
  if (!fw.enabled) return null;
  const v6 = ip.includes(':');
  const nets = v6 ? fw.user6Networks : fw.userNetworks;
  if (nets.length === 0 || networkMatcher(nets)(ip)) return null;
  return `${ip} is outside [firewall] ${v6 ? 'user6Networks' : 'userNetworks'} (${nets.join(', ')})`;
}

/** Builds one owner from its entry; null (and a named skip) when the entry cannot be an owner. */
export function buildOwner(e: RawEntry, kind: OwnerKind, o: BuildOptions, skipped: Skipped[]): Owner | null {
  const a = o.ldap.attrs;
  const uid = first(e, a.uid)?.trim();
  if (!uid) {
    skipped.push({ dn: e.dn, reason: `no ${a.uid}` });
    return null;
  }
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused here
  if (/[\s\x00-\x1f]/.test(uid)) {
    skipped.push({ dn: e.dn, reason: `${a.uid} "${esc(uid)}" contains whitespace or control characters` });
    return null;
  }
  let endInternet: number | null = null;
  const endRaw = first(e, a.endInternet);
  if (endRaw !== undefined) {
    endInternet = parseGeneralizedTime(endRaw);
    if (endInternet === null) {
      // Kept for QoS; the firewall treats an unreadable end date as expired.
      skipped.push({ dn: e.dn, reason: `${a.endInternet} "${esc(endRaw)}" is not a generalizedTime (treated as expired)` });
      endInternet = 0;
    }
  }
  const coupureRaw = first(e, a.coupure);
  return {
    uid,
    dn: e.dn,
    kind,
    endInternet,
    coupure: coupureRaw !== undefined && coupureRaw.trim().toUpperCase() === 'TRUE',
    ban: sharedList(all(e, a.ban)),
    cotiz: sharedList(all(e, a.cotiz)),
  };
}

/** Valid owners by normalized DN and by lowercased uid (several owners may share a uid). */
export interface OwnerIndex {
  readonly byDn: Map<string, Owner>;
  readonly byUid: Map<string, Owner[]>;
}

/** The owner a machine's owner attribute names: by normalized DN, else by the uid of its first RDN if unique. */
export function resolveOwner(index: OwnerIndex, ownerDn: string, uidAttr: string): Owner | undefined {
  const owner = index.byDn.get(normalizeDn(ownerDn));
  if (owner) return owner;
  const uid = uidOfDn(ownerDn, uidAttr);
  const candidates = uid ? index.byUid.get(uid.toLowerCase()) : undefined;
  return candidates?.length === 1 ? candidates[0] : undefined;
}

/** A machine entry read but not yet tied to its owner: IPs joined, zones read. */
export interface HostDraft {
  readonly dn: string;
  readonly host: string;
  /** the owner attribute as written; null = absent (the entry is skipped) */
  readonly ownerDn: string | null;
  readonly active: boolean;
  readonly ips4: string[];
  readonly ips6: string[];
  /** values that could not be read (pushed to skipped only if the owner exists) */
  readonly ipSkips: readonly Skipped[];
}

const NO_SKIPS: readonly Skipped[] = Object.freeze([]);

/**
 * The most IP values (IPv4 and IPv6 attributes together) one machine entry may carry
 * ([ldap] maxIpsPerMachine). An entry beyond it is a data fault or an attempt to claim other
 * machines' addresses: the machine keeps NO IP (nothing of it is allowed or shaped) and is named.
 * Keeping the first N values instead would let an arbitrary, server-ordered part of it through.
 */
export const DEFAULT_MAX_IPS_PER_MACHINE = 256;

/** Joins one attribute's values into `into` (deduplicated through `seen`: linear in the values). */
function joinValues(
  values: readonly string[],
  attr: string,
  dn: string,
  join: (v: string) => ReturnType<typeof joinIpv4>,
  outside: (ip: string) => string | null,
  into: string[],
  skips: { list: Skipped[] | null },
): void {
  // Few values (the usual one): a look through `into`; many: a Set, so the pass stays linear.
  const seen = values.length > 8 ? new Set<string>() : null;
  for (const v of values) {
    // No trimming: whitespace or a newline in a value is an error, named.
    const r = join(v);
    const away = r.ok ? outside(r.ip) : null;
    if (away !== null) {
      (skips.list ??= []).push({ dn, reason: `${attr} ${JSON.stringify(v)}: ${away}` });
    } else if (r.ok) {
      if (seen === null ? !into.includes(r.ip) : !seen.has(r.ip)) {
        seen?.add(r.ip);
        into.push(r.ip);
      }
    } else {
      (skips.list ??= []).push({ dn, reason: `${attr} ${JSON.stringify(v)}: ${r.reason}` });
    }
  }
}

/**
 * A list grown by push holds room for 16 values (192 bytes with one IP, against 64 for a copy
 * of its size): what a directory keeps per machine is copied to its size.
 */
const fit = (list: string[]): string[] => (list.length === 0 ? list : list.slice());

/** zone value -> its trimmed lowercase form (the few values of a directory, each read once) */
const zoneNames = new Map<string, string>();
function isZone(value: string, lowerZone: string): boolean {
  let v = zoneNames.get(value);
  if (v === undefined) {
    v = value.trim().toLowerCase();
    if (zoneNames.size < 1000) zoneNames.set(value, v);
  }
  return v === lowerZone;
}

export function draftHost(e: RawEntry, o: BuildOptions): HostDraft {
  const a = o.ldap.attrs;
  const ownerDn = first(e, a.owner) ?? null;
  const zones = all(e, a.zone);
  const inactive = lowerName(o.ldap.inactiveZone);
  let active = true;
  for (const z of zones) if (isZone(z, inactive)) active = false;
  const ips4: string[] = [];
  const ips6: string[] = [];
  const skips: { list: Skipped[] | null } = { list: null };
  if (ownerDn) {
    const v4 = all(e, a.ip);
    const v6 = all(e, a.ip6);
    const max = o.ldap.maxIpsPerMachine ?? DEFAULT_MAX_IPS_PER_MACHINE;
    if (v4.length + v6.length > max) {
      skips.list = [
        {
          dn: e.dn,
          reason: `${v4.length + v6.length} IP values (${a.ip}: ${v4.length}, ${a.ip6}: ${v6.length}), more than [ldap] maxIpsPerMachine = ${max}: none of its IPs is used`,
        },
      ];
    } else {
      const outside = (ip: string): string | null => outsideNetworks(ip, o.firewall);
      joinValues(v4, a.ip, e.dn, (v) => joinIpv4(o.firewall.areaPrefix, v), outside, ips4, skips);
      joinValues(v6, a.ip6, e.dn, (v) => joinIpv6(o.firewall.area6Prefix, v), outside, ips6, skips);
    }
  }
  return { dn: e.dn, host: first(e, a.host) ?? '', ownerDn, active, ips4: fit(ips4), ips6: fit(ips6), ipSkips: skips.list ?? NO_SKIPS };
}

/** A machine tied to its owner, before duplicate IPs are settled. */
export interface Draft {
  dn: string;
  host: string;
  owner: string;
  active: boolean;
  ips4: string[];
  ips6: string[];
}

/**
 * Ties a host draft to its owner. Skips pushed exactly as a full build does: no owner
 * attribute, or an owner that does not exist (then nothing about its IPs), else the IP values
 * that could not be read.
 */
export function tieHost(h: HostDraft, index: OwnerIndex, o: BuildOptions, skipped: Skipped[]): Draft | null {
  const a = o.ldap.attrs;
  if (!h.ownerDn) {
    skipped.push({ dn: h.dn, reason: `no ${a.owner}` });
    return null;
  }
  const owner = resolveOwner(index, h.ownerDn, a.uid);
  if (!owner) {
    skipped.push({ dn: h.dn, reason: `owner ${esc(h.ownerDn)} does not exist` });
    return null;
  }
  for (const s of h.ipSkips) skipped.push(s);
  return { dn: h.dn, host: h.host, owner: owner.uid, active: h.active, ips4: h.ips4, ips6: h.ips6 };
}

export const byDnOrder = (x: { dn: string }, y: { dn: string }): number => (x.dn < y.dn ? -1 : x.dn > y.dn ? 1 : 0);
export const ownerOrder = (x: Owner, y: Owner): number => (x.uid < y.uid ? -1 : x.uid > y.uid ? 1 : x.dn < y.dn ? -1 : x.dn > y.dn ? 1 : 0);

/** What a build knows beyond the Directory, for patching it later (src/ldap/patch.ts). */
export interface BuildState {
  /** machines skipped because their owner does not exist: DN -> owner attribute as written */
  readonly orphans: Map<string, string>;
  /** machines that lost IPs to another machine (duplicates): DN -> those IPs, and how many skips that named */
  readonly lost: Map<string, { readonly ips: readonly string[]; readonly skips: number }>;
  /** owners named in a skip because their uid is also another owner's */
  readonly dupUid: Set<string>;
}

export interface BuiltDirectory {
  readonly directory: Directory;
  readonly state: BuildState;
}

/** Collects owners in build order (people first); the first entry of a normalized DN wins. */
export class OwnerCollector {
  readonly index: OwnerIndex = { byDn: new Map(), byUid: new Map() };
  readonly owners: Owner[] = [];
  constructor(
    private readonly o: BuildOptions,
    private readonly skipped: Skipped[],
  ) {}

  add(e: RawEntry, kind: OwnerKind): void {
    const owner = buildOwner(e, kind, this.o, this.skipped);
    if (owner) this.addOwner(owner);
  }

  /** An owner built already (buildOwner, its skips pushed to the same list). */
  addOwner(owner: Owner): void {
    const key = normalizeDn(owner.dn);
    if (this.index.byDn.has(key)) return;
    this.index.byDn.set(key, owner);
    const lower = owner.uid.toLowerCase();
    const list = this.index.byUid.get(lower);
    if (list) list.push(owner);
    else this.index.byUid.set(lower, [owner]);
    this.owners.push(owner);
  }

  /**
   * Owners sharing a uid (a person and a club): their machines count as one user, and the
   * most restrictive entitlement of them all applies to every one of those machines
   * (src/plan/firewall.ts). Named on each owner after the first, with every DN. Call once,
   * after every add.
   */
  finish(dupUid: Set<string>): void {
    for (const [, list] of this.index.byUid) {
      if (list.length > 1) {
        const dns = list
          .map((x) => esc(x.dn))
          .sort()
          .join(', ');
        for (const dup of list.slice(1)) {
          this.skipped.push({
            dn: dup.dn,
            reason: `uid "${dup.uid}" is shared by ${dns}: their machines count as one user and the most restrictive entitlement applies to all of them`,
          });
          dupUid.add(dup.dn);
        }
      }
    }
  }
}

/** IP -> DN of the active machine holding it: the `holders` of the next build. */
export function holdersOf(d: Directory): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of d.machines) {
    if (!m.active) continue;
    for (const ip of m.ips4) out.set(ip, m.dn);
    for (const ip of m.ips6) out.set(ip, m.dn);
  }
  return out;
}

export function toMachine(d: Draft): Machine {
  return { dn: d.dn, host: d.host, owner: d.owner, active: d.active, ips4: ipList(d.ips4), ips6: ipList(d.ips6) };
}

/** IPs sorted in place, each a flat string; the shared empty list when there are none. */
function ipList(ips: string[]): readonly string[] {
  if (ips.length === 0) return EMPTY;
  for (const ip of ips) flat(ip);
  return sortIps(ips);
}

/** The draft itself made the machine (a full build: no second object per machine). */
function asMachine(d: Draft): Machine {
  const m = d as Omit<Draft, 'ips4' | 'ips6'> & { ips4: readonly string[]; ips6: readonly string[] };
  m.ips4 = ipList(d.ips4);
  m.ips6 = ipList(d.ips6);
  return m;
}

/** Machines by DN; the same DN twice (never from one search) by owner, then as found. */
const machineOrder = (x: Machine, y: Machine): number =>
  x.dn < y.dn ? -1 : x.dn > y.dn ? 1 : x.owner < y.owner ? -1 : x.owner > y.owner ? 1 : 0;

/**
 * Builds the Directory. Deterministic: the same entries (and holders) in any order give the
 * same result. An IP claimed by machines of two owners stays with its holder (`o.holders`),
 * else goes to the owner whose uid sorts first.
 */
export function buildDirectory(raw: RawDirectory, o: BuildOptions): Directory {
  return buildDirectoryState(raw, o).directory;
}

/** buildDirectory, plus what a patch needs to know about how the directory was built. */
export function buildDirectoryState(raw: RawDirectory, o: BuildOptions): BuiltDirectory {
  const skipped: Skipped[] = [];
  const owners = new OwnerCollector(o, skipped);
  for (const e of raw.people) owners.add(e, 'person');
  for (const e of raw.orgas) owners.add(e, 'organisation');
  return finishBuild(
    owners,
    raw.hosts.map((e) => draftHost(e, o)),
    skipped,
    o,
  );
}

/**
 * The second half of a build: machines tied to the collected owners, duplicates settled, sorted.
 * Empties `hosts` (its drafts are done with once tied: a large build does not keep both).
 */
export function finishBuild(owners: OwnerCollector, hosts: (HostDraft | undefined)[], skipped: Skipped[], o: BuildOptions): BuiltDirectory {
  const state: BuildState = { orphans: new Map(), lost: new Map(), dupUid: new Set() };
  owners.finish(state.dupUid);
  const drafts: Draft[] = [];
  for (let i = 0; i < hosts.length; i++) {
    const h = hosts[i]!;
    hosts[i] = undefined; // garbage once tied, even before the loop ends
    const d = tieHost(h, owners.index, o, skipped);
    if (d) drafts.push(d);
    else if (h.ownerDn) state.orphans.set(h.dn, h.ownerDn);
  }
  hosts.length = 0;
  settleDuplicates(drafts, skipped, state.lost, o.holders);
  const machines: Machine[] = drafts.map(asMachine).sort(machineOrder);
  const list = owners.owners;
  list.sort(ownerOrder);
  for (const sk of skipped) flat(sk.reason);
  skipped.sort(byDnOrder);
  return { directory: { owners: list, machines, skipped, fetchedAt: o.fetchedAt }, state };
}
