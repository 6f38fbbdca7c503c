// test/sandbox/campus.test.ts — the fixture generator: determinism, uniqueness, real-looking
// entries, address overflow beyond the suffix pool, traffic rows.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { generalizedTime, generateCampus, ldifLine, trafficRows } from '../../sandbox/campus.js';

const now = new Date('2026-02-10T00:00:00Z');

test('campus: same seed, same campus; other seed, other campus', () => {
  const a = generateCampus({ users: 200, seed: 11, now });
  const b = generateCampus({ users: 200, seed: 11, now });
  const c = generateCampus({ users: 200, seed: 12, now });
  assert.equal(a.ldif(), b.ldif());
  assert.notEqual(a.ldif(), c.ldif());
  assert.deepEqual(trafficRows(a), trafficRows(b));
  assert.equal([...a.ldifChunks(7)].join(''), a.ldif());
});

test('campus: entries look like the real directory', () => {
  const campus = generateCampus({ users: 500, seed: 1, now });
  const p = campus.people[0];
  assert.ok(p);
  assert.match(p.uid, /^[a-z]+\d+$/);
  assert.equal(p.dn, `uid=${p.uid},ou=people,dc=maisel,dc=enst-bretagne,dc=fr`);
  assert.ok(p.objectClasses.includes('genericPerson') && p.objectClasses.includes('reselPerson'));
  assert.match(p.endInternet, /^\d{14}Z$/);
  const paid = campus.people.filter((x) => x.paid);
  assert.ok(paid.length > 400 && paid.length < 500);
  for (const x of paid) {
    assert.ok(x.endInternetDate > now);
    assert.ok(x.cotiz.includes('2026'));
  }
  for (const x of campus.people.filter((y) => !y.paid)) assert.ok(x.endInternetDate < now);

  const m = campus.machines[0];
  assert.ok(m);
  assert.equal(m.host, `pc-${p.uid}-1`);
  assert.equal(m.dn, `host=pc-${p.uid}-1,ou=machines,dc=resel,dc=enst-bretagne,dc=fr`);
  assert.equal(m.ownerDn, p.dn);
  assert.match(m.ipHostNumber, /^\d{1,3}\.\d{1,3}$/);
  assert.equal(m.ip, `172.22.${m.ipHostNumber}`);
  assert.match(m.mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
  assert.deepEqual(
    campus.ipsOf(p.uid),
    campus.machinesOf(p.uid).map((x) => x.ip),
  );
  assert.ok(campus.machines.some((x) => x.zones.includes('Inactive')));
  assert.ok(campus.machines.every((x) => x.zones[0] === 'Brest' && ['User', 'Inactive'].includes(x.zones[1] ?? '')));
  assert.ok(campus.orgs.length === 5 && campus.orgs.every((g) => g.dn.endsWith(',ou=organisations,dc=maisel,dc=enst-bretagne,dc=fr')));
  assert.ok(campus.machines.some((x) => x.ownerDn.includes('ou=organisations')));
  assert.ok(campus.machines.some((x) => x.ipv6.length > 0));

  const mean = (campus.machines.length - campus.orgs.reduce((n, g) => n + campus.machinesOf(g.uid).length, 0)) / campus.people.length;
  assert.ok(mean > 2.4 && mean < 2.9, `mean machines per user ${mean}`);

  const ldif = campus.ldif();
  assert.match(ldif, /^uidproprio: uid=/m);
  assert.match(ldif, /^zone: Brest\nzone: User$/m);
  // accented names are base64 (LDIF SAFE-STRING is ASCII)
  assert.equal(ldifLine('lastName', 'Quéré'), `lastName:: ${Buffer.from('Quéré').toString('base64')}\n`);
  assert.equal(ldifLine('lastName', 'Dupont'), 'lastName: Dupont\n');
  assert.equal(generalizedTime(new Date('2026-08-15T00:00:00Z')), '20260815000000Z');
});

test('campus: addresses, uids, hosts, MACs unique; suffix pool then full quads', () => {
  const campus = generateCampus({ users: 25_000, seed: 2, now });
  assert.ok(campus.machines.length > 60_000);
  const unique = (xs: string[]): boolean => new Set(xs).size === xs.length;
  assert.ok(unique(campus.machines.map((m) => m.ip)));
  assert.ok(unique(campus.machines.map((m) => m.host)));
  assert.ok(unique(campus.machines.map((m) => m.mac)));
  assert.ok(unique([...campus.people, ...campus.orgs].map((p) => p.uid)));
  const suffixes = campus.machines.filter((m) => /^\d+\.\d+$/.test(m.ipHostNumber));
  assert.equal(suffixes.length, 60_000);
  for (const m of suffixes) {
    const [x, y] = m.ipHostNumber.split('.').map(Number);
    assert.ok(x !== undefined && y !== undefined && x >= 1 && x <= 255 && y >= 1 && y <= 254);
  }
  const quads = campus.machines.filter((m) => !/^\d+\.\d+$/.test(m.ipHostNumber));
  assert.ok(quads.every((m) => /^10\.\d+\.\d+\.\d+$/.test(m.ip) && m.ip === m.ipHostNumber));
  assert.equal(campus.machines[0]?.ipHostNumber, '192.1');
});

test('campus: traffic rows fit the INT columns and cover active machines', () => {
  const campus = generateCampus({ users: 300, seed: 4, now });
  const rows = trafficRows(campus, { hours: ['2026-02-09 22:00:00', '2026-02-09 23:00:00'], duplicateShare: 0.2 });
  const active = campus.machines.filter((m) => m.active);
  assert.ok(rows.length > active.length * 2);
  assert.ok(rows.every((r) => Number.isInteger(r.input) && r.input >= 0 && r.input <= 2_147_483_647 && r.output <= r.input));
  const ips = new Set(rows.map((r) => r.ip));
  assert.equal(ips.size, active.length);
});
