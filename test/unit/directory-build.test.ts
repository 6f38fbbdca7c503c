// The end of a full build (finishBuild: machines tied, duplicate IPs settled, sorted) against the
// code it replaced in issue 16 (a sort of every machine by owner, then a copy of each into a new
// object), copied below as it was. Random directories with many contested IPs (between owners,
// within one owner, held by a machine of the directory in force, inactive claimants, the same DN
// twice): the Directory and the build state must be the same.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/config.js';
import {
  buildDirectoryState,
  byDnOrder,
  draftHost,
  ownerOrder,
  OwnerCollector,
  tieHost,
  type BuildOptions,
  type BuildState,
  type BuiltDirectory,
  type Draft,
  type RawDirectory,
  type RawEntry,
} from '../../src/ldap/directory.js';
import { escapeControl as esc } from '../../src/log.js';
import { sortIps } from '../../src/net/ip.js';
import type { Machine, Skipped } from '../../src/sources/types.js';
import { minimalConf } from './fixtures.js';
import { prng } from '../../sandbox/campus.js';

// ---- the reference: src/ldap/directory.ts before issue 16 (settleDuplicates, toMachine, finishBuild)
function settleDuplicatesV0(drafts: Draft[], skipped: Skipped[], lost: BuildState['lost'], holders?: ReadonlyMap<string, string>): void {
  drafts.sort((x, y) => (x.owner < y.owner ? -1 : x.owner > y.owner ? 1 : x.dn < y.dn ? -1 : x.dn > y.dn ? 1 : 0));
  const claimed = new Map<string, Draft>();
  if (holders && holders.size > 0) {
    for (const d of drafts) {
      if (!d.active) continue;
      for (const list of [d.ips4, d.ips6]) for (const ip of list) if (holders.get(ip) === d.dn && !claimed.has(ip)) claimed.set(ip, d);
    }
  }
  const mine = new Map<string, { ips: string[]; skips: number }>();
  const note = (d: Draft, ip: string, skip: boolean): void => {
    let l = mine.get(d.dn);
    if (!l) mine.set(d.dn, (l = { ips: [...(lost.get(d.dn)?.ips ?? [])], skips: lost.get(d.dn)?.skips ?? 0 }));
    l.ips.push(ip);
    if (skip) l.skips++;
  };
  for (const d of drafts) {
    if (!d.active) continue;
    for (const list of [d.ips4, d.ips6]) {
      let keep = list.length;
      for (let i = list.length - 1; i >= 0; i--) {
        const ip = list[i]!;
        const holder = claimed.get(ip);
        if (!holder) {
          claimed.set(ip, d);
          list[--keep] = ip;
        } else if (holder === d) {
          list[--keep] = ip;
        } else if (holder.owner !== d.owner) {
          skipped.push({ dn: d.dn, reason: `IP ${ip} also claimed by ${esc(holder.dn)} (owner ${holder.owner}); kept there` });
          note(d, ip, true);
        } else {
          note(d, ip, false);
        }
      }
      list.splice(0, keep);
    }
  }
  for (const [dn, l] of mine) lost.set(dn, l);
}
const toMachineV0 = (d: Draft): Machine => ({
  dn: d.dn,
  host: d.host,
  owner: d.owner,
  active: d.active,
  ips4: sortIps(d.ips4),
  ips6: sortIps(d.ips6),
});
function buildV0(raw: RawDirectory, o: BuildOptions): BuiltDirectory {
  const skipped: Skipped[] = [];
  const owners = new OwnerCollector(o, skipped);
  for (const e of raw.people) owners.add(e, 'person');
  for (const e of raw.orgas) owners.add(e, 'organisation');
  const hosts = raw.hosts.map((e) => draftHost(e, o));
  const state: BuildState = { orphans: new Map(), lost: new Map(), dupUid: new Set() };
  owners.finish(state.dupUid);
  const drafts: Draft[] = [];
  for (const h of hosts) {
    const d = tieHost(h, owners.index, o, skipped);
    if (d) drafts.push(d);
    else if (h.ownerDn) state.orphans.set(h.dn, h.ownerDn);
  }
  settleDuplicatesV0(drafts, skipped, state.lost, o.holders);
  const machines: Machine[] = drafts.map(toMachineV0).sort(byDnOrder);
  const list = owners.owners;
  list.sort(ownerOrder);
  skipped.sort(byDnOrder);
  return { directory: { owners: list, machines, skipped, fetchedAt: o.fetchedAt }, state };
}

// ---- random directories with many contested IPs
const PEOPLE = 'ou=people,dc=x';
const HOSTS = 'ou=machines,dc=x';
const entry = (dn: string, attrs: Record<string, string[]>): RawEntry => ({
  dn,
  attrs: new Map(Object.entries(attrs).map(([k, v]) => [k.toLowerCase(), v])),
});

function randomDirectory(r: () => number, n: number): RawDirectory {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  // uids drawn so that some collide in case (shared uid) and sort in no particular order
  const uids = Array.from({ length: n }, (_, i) => (r() < 0.03 && i > 0 ? `U${i - 1}` : `u${(i * 7919) % (n * 3)}`));
  const people = uids.map((uid, i) =>
    entry(`uid=${uid},${PEOPLE}`.replace('uid=U', i % 2 ? 'uid=U' : 'uid=u'), { uid: [uid], endInternet: ['20300101000000Z'] }),
  );
  const ownerDns = people.map((p) => p.dn);
  const hosts: RawEntry[] = [];
  const ips = Math.max(4, Math.floor(n * 1.5)); // fewer addresses than machines: many contested
  for (let i = 0; i < n * 3; i++) {
    const v4 = Array.from({ length: 1 + Math.floor(r() * 3) }, () => `200.${1 + Math.floor(r() * ips)}`);
    const v6 = r() < 0.3 ? [`2001:db8:d200::${(1 + Math.floor(r() * ips)).toString(16)}`] : [];
    const dn = r() < 0.01 && hosts.length > 0 ? hosts[hosts.length - 1]!.dn : `host=h${(i * 104729) % (n * 11)},${HOSTS}`;
    const attrs = {
      host: [`h${i}`],
      uidProprio: [r() < 0.02 ? `uid=ghost,${PEOPLE}` : pick(ownerDns)],
      zone: r() < 0.1 ? ['Inactive'] : ['Brest', 'User'],
      ipHostNumber: v4,
      ipv6HostNumber: v6,
    };
    hosts.push(entry(dn, attrs));
    // the same entry twice under another host name: a tie on (owner, DN) for every IP of it
    if (r() < 0.02) hosts.push(entry(dn, { ...attrs, host: [`twin${i}`] }));
  }
  return { people, orgas: [], hosts };
}

const config = parseConfig(minimalConf({ firewall: 'area6Prefix = 2001:db8:d\nuser6Networks = 2001:db8:d000::/36' }), 'x.conf');
const base: BuildOptions = { ldap: config.ldap, firewall: config.firewall, fetchedAt: '2026-01-01T00:00:00.000Z' };

for (const seed of [1, 2, 3, 4, 5, 6]) {
  test(`finishBuild settles duplicates as the sort of every machine did (seed ${seed})`, () => {
    const r = prng(seed);
    const raw = randomDirectory(r, 150 + seed * 40);
    const first = buildDirectoryState(raw, base);
    assert.deepEqual(first, buildV0(raw, base));
    const lost = [...first.state.lost.values()].reduce((n, l) => n + l.ips.length, 0);
    assert.ok(lost > 50, `${lost} contested IPs lost`);
    assert.ok(first.directory.skipped.some((s) => / also claimed by /.test(s.reason)));
    // holders: the machines of the first build, some IPs handed to another machine meanwhile
    const holders = new Map<string, string>();
    for (const m of first.directory.machines) if (m.active) for (const ip of [...m.ips4, ...m.ips6]) holders.set(ip, m.dn);
    const dns = first.directory.machines.map((m) => m.dn);
    for (const ip of holders.keys()) if (r() < 0.2) holders.set(ip, dns[Math.floor(r() * dns.length)]!);
    const shuffled = { ...raw, hosts: [...raw.hosts].sort(() => r() - 0.5) };
    const o = { ...base, holders };
    assert.deepEqual(buildDirectoryState(shuffled, o), buildV0(shuffled, o));
  });
}
