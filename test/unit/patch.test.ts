// DirectoryPatcher against buildDirectory on random directories: after any series of
// modifications and additions, a patch that settled everything gives exactly what a full
// build of the same entries gives; what it cannot settle alone is named (and the caller then
// runs a full fetch). The real-slapd version of this is test/sources/incremental.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/config.js';
import { buildDirectory, buildDirectoryState, type BuildOptions, type RawDirectory, type RawEntry } from '../../src/ldap/directory.js';
import { DirectoryPatcher, sameMachine, sameOwner } from '../../src/ldap/patch.js';
import type { Machine, Owner } from '../../src/sources/types.js';
import { minimalConf } from './fixtures.js';
import { prng } from '../../sandbox/campus.js';

const PEOPLE = 'ou=people,dc=x';
const ORGAS = 'ou=organisations,dc=x';
const HOSTS = 'ou=machines,dc=x';

const entry = (dn: string, attrs: Record<string, string[]>): RawEntry => ({
  dn,
  attrs: new Map(Object.entries(attrs).map(([k, v]) => [k.toLowerCase(), v])),
});

interface World {
  people: Map<string, Record<string, string[]>>;
  orgas: Map<string, Record<string, string[]>>;
  hosts: Map<string, Record<string, string[]>>;
}

function raw(w: World): RawDirectory {
  const list = (m: Map<string, Record<string, string[]>>): RawEntry[] => [...m].map(([dn, a]) => entry(dn, a));
  return { people: list(w.people), orgas: list(w.orgas), hosts: list(w.hosts) };
}

function randomOwner(r: () => number, uid: string): Record<string, string[]> {
  const a: Record<string, string[]> = { uid: [uid] };
  const x = r();
  if (x < 0.8) a['endInternet'] = [r() < 0.8 ? '20300101000000Z' : '20200101000000Z'];
  if (r() < 0.1) a['coupure'] = ['TRUE'];
  if (r() < 0.05) a['ban'] = ['internet'];
  if (r() < 0.05) a['cotiz'] = ['BLACKLIST2026'];
  return a;
}

function randomHost(r: () => number, name: string, ownerDn: string, ips: number): Record<string, string[]> {
  const a: Record<string, string[]> = { host: [name], uidProprio: [ownerDn], zone: r() < 0.1 ? ['Inactive'] : ['Brest', 'User'] };
  if (r() < 0.95) a['ipHostNumber'] = [`${200 + Math.floor(r() * 2)}.${1 + Math.floor(r() * ips)}`];
  if (r() < 0.2) a['ipv6HostNumber'] = [`2001:db8:d200::${(1 + Math.floor(r() * ips)).toString(16)}`];
  return a;
}

test('random modifications: a patch that settled everything equals a full build of the same entries', () => {
  const c = parseConfig(minimalConf({ firewall: 'area6Prefix = 2001:db8:d200::' }), 'q');
  const o: BuildOptions = { ldap: c.ldap, firewall: c.firewall, fetchedAt: '2026-11-22T12:00:00Z' };
  let settledRounds = 0;
  let undecidedRounds = 0;
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    const r = prng(seed);
    const w: World = { people: new Map(), orgas: new Map(), hosts: new Map() };
    const N = 40;
    const IPS = 120; // few enough that IP collisions happen
    for (let i = 0; i < N; i++) w.people.set(`uid=p${i},${PEOPLE}`, randomOwner(r, `p${i}`));
    for (let i = 0; i < 3; i++) w.orgas.set(`uid=club${i},${ORGAS}`, randomOwner(r, `club${i}`));
    const ownerDns = (): string[] => [...w.people.keys(), ...w.orgas.keys()];
    let hostN = 0;
    for (let i = 0; i < N * 1.5; i++) {
      const dns = ownerDns();
      w.hosts.set(`host=h${hostN},${HOSTS}`, randomHost(r, `h${hostN}`, dns[Math.floor(r() * dns.length)]!, IPS));
      hostN++;
    }
    const built = buildDirectoryState(raw(w), o);
    let patcher = new DirectoryPatcher(built, { ldap: o.ldap, firewall: o.firewall });
    for (let round = 0; round < 15; round++) {
      const changes: { people: RawEntry[]; orgas: RawEntry[]; hosts: RawEntry[] } = { people: [], orgas: [], hosts: [] };
      const k = 1 + Math.floor(r() * 4);
      for (let j = 0; j < k; j++) {
        const what = r();
        if (what < 0.35) {
          const dn = [...w.people.keys()][Math.floor(r() * w.people.size)]!;
          const uid = w.people.get(dn)!['uid']![0]!;
          w.people.set(dn, randomOwner(r, uid));
          changes.people.push(entry(dn, w.people.get(dn)!));
        } else if (what < 0.45) {
          const uid = `p${w.people.size + round * 100 + j}`;
          const dn = `uid=${uid},${PEOPLE}`;
          w.people.set(dn, randomOwner(r, uid));
          changes.people.push(entry(dn, w.people.get(dn)!));
        } else if (what < 0.85) {
          const dn = [...w.hosts.keys()][Math.floor(r() * w.hosts.size)]!;
          const dns = ownerDns();
          w.hosts.set(dn, randomHost(r, dn.slice(5, dn.indexOf(',')), dns[Math.floor(r() * dns.length)]!, IPS));
          changes.hosts.push(entry(dn, w.hosts.get(dn)!));
        } else {
          const dn = `host=h${hostN},${HOSTS}`;
          const dns = ownerDns();
          w.hosts.set(dn, randomHost(r, `h${hostN}`, dns[Math.floor(r() * dns.length)]!, IPS));
          hostN++;
          changes.hosts.push(entry(dn, w.hosts.get(dn)!));
        }
      }
      const res = patcher.apply(changes, o.fetchedAt);
      const full = buildDirectory(raw(w), o);
      if (res.undecided.length > 0) {
        undecidedRounds++;
        for (const u of res.undecided) assert.ok(u.dn !== '' && u.reason !== '', 'an undecided entry is named with a reason');
        // What the daemon does next: a full fetch, and a new patcher from it.
        patcher = new DirectoryPatcher(buildDirectoryState(raw(w), o), { ldap: o.ldap, firewall: o.firewall });
        continue;
      }
      settledRounds++;
      const got = res.directory;
      assert.deepEqual(
        {
          owners: got.owners,
          machines: got.machines,
          skipped: [...got.skipped].sort((x, y) => (x.dn + x.reason < y.dn + y.reason ? -1 : 1)),
        },
        {
          owners: full.owners,
          machines: full.machines,
          skipped: [...full.skipped].sort((x, y) => (x.dn + x.reason < y.dn + y.reason ? -1 : 1)),
        },
        `seed ${seed} round ${round}`,
      );
    }
  }
  // Both paths must really have been exercised, or the test proves nothing.
  assert.ok(settledRounds >= 30, `settled rounds: ${settledRounds}`);
  assert.ok(undecidedRounds >= 1, `undecided rounds: ${undecidedRounds}`);
});

test('a machine that lost an IP still wants it: the winner dropping it is left for a full fetch (per-patch IP counts)', () => {
  const c = parseConfig(minimalConf({ firewall: 'area6Prefix = 2001:db8:d200::' }), 'q');
  const o: BuildOptions = { ldap: c.ldap, firewall: c.firewall, fetchedAt: '2026-11-22T12:00:00Z' };
  const w: World = { people: new Map(), orgas: new Map(), hosts: new Map() };
  for (const uid of ['alice', 'bob']) w.people.set(`uid=${uid},${PEOPLE}`, { uid: [uid], endInternet: ['20300101000000Z'] });
  const host = (name: string, uid: string, ips: string[]): Record<string, string[]> => ({
    host: [name],
    uidProprio: [`uid=${uid},${PEOPLE}`],
    zone: ['User'],
    ipHostNumber: ips,
  });
  w.hosts.set(`host=winner,${HOSTS}`, host('winner', 'alice', ['200.1', '200.2']));
  w.hosts.set(`host=loser,${HOSTS}`, host('loser', 'bob', ['200.1', '200.3']));
  const built = buildDirectoryState(raw(w), o);
  assert.deepEqual(built.state.lost.get(`host=loser,${HOSTS}`)?.ips, ['172.22.200.1']);
  const patcher = new DirectoryPatcher(built, { ldap: o.ldap, firewall: o.firewall });
  // the winner lets 200.1 go: a full build gives it to the loser, which the patch cannot see alone
  w.hosts.set(`host=winner,${HOSTS}`, host('winner', 'alice', ['200.2']));
  const res = patcher.apply(
    { people: [], orgas: [], hosts: [entry(`host=winner,${HOSTS}`, w.hosts.get(`host=winner,${HOSTS}`)!)] },
    o.fetchedAt,
  );
  assert.deepEqual(
    res.undecided.map((u) => u.reason),
    ['IP 172.22.200.1 is also claimed by another machine'],
  );
  assert.equal(res.directory, built.directory, 'nothing patched');
  assert.deepEqual(buildDirectory(raw(w), o).machines.find((m) => m.host === 'loser')!.ips4, ['172.22.200.1', '172.22.200.3']);
});

test('sameOwner / sameMachine: a change in any field is a change (the field list is checked by the compiler, FieldEq)', () => {
  const o: Owner = { uid: 'a', dn: 'uid=a', kind: 'person', endInternet: 1, coupure: false, ban: ['x'], cotiz: ['2026'] };
  const m: Machine = { dn: 'host=a', host: 'a', owner: 'a', active: true, ips4: ['172.22.200.1'], ips6: ['2001:db8::1'] };
  const mutate = (v: unknown): unknown =>
    typeof v === 'string' ? `${v}!` : typeof v === 'number' ? v + 1 : typeof v === 'boolean' ? !v : [...(v as string[]), 'z'];
  assert.ok(sameOwner(o, { ...o, ban: [...o.ban] }) && sameMachine(m, { ...m, ips4: [...m.ips4] }));
  for (const k of Object.keys(o) as (keyof Owner)[]) assert.equal(sameOwner(o, { ...o, [k]: mutate(o[k]) }), false, `Owner.${k}`);
  for (const k of Object.keys(m) as (keyof Machine)[]) assert.equal(sameMachine(m, { ...m, [k]: mutate(m[k]) }), false, `Machine.${k}`);
});
