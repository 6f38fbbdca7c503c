// The reconciler memory's compact member sets (src/kernel/members.ts) against the form they
// replace (Set<string>): the same answers to size, has and iteration after the same adds and
// deletes, on the IPs of random campuses (sandbox/campus.ts, several seeds) and on adversarial
// inputs (addresses crowded into few hash slots, 0.0.0.0, non-canonical strings, IPv6).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CompactMembers, intToIpv4, ipv4ToInt } from '../../src/kernel/members.js';
import { generateCampus, prng } from '../../sandbox/campus.js';

function same(c: CompactMembers, s: Set<string>, probe: readonly string[], label: string): void {
  assert.equal(c.size, s.size, `${label}: size`);
  assert.deepEqual([...c].sort(), [...s].sort(), `${label}: members`);
  for (const ip of probe) assert.equal(c.has(ip), s.has(ip), `${label}: has(${ip})`);
}

test('ipv4ToInt reads canonical dotted IPv4 only; intToIpv4 gives it back', () => {
  for (const ip of ['0.0.0.0', '10.0.0.1', '172.22.200.3', '255.255.255.255', '192.168.1.10']) {
    const x = ipv4ToInt(ip);
    assert.ok(x >= 0 && x <= 0xffffffff, ip);
    assert.equal(intToIpv4(x), ip);
  }
  assert.equal(ipv4ToInt('255.255.255.255'), 0xffffffff);
  for (const bad of [
    '010.0.0.1',
    '1.2.3',
    '1.2.3.4.5',
    '1.2.3.256',
    '1..2.3',
    '.1.2.3',
    '1.2.3.',
    ' 1.2.3.4',
    '2001:db8::1',
    '1.2.3.4/32',
    '',
  ])
    assert.equal(ipv4ToInt(bad), -1, bad);
});

test('CompactMembers behaves as Set<string> on random campuses (several seeds), through adds and deletes', () => {
  for (const seed of [1, 2, 3, 7]) {
    const campus = generateCampus({ users: 400, seed, ipv6Share: 0.3 });
    const ips = campus.machines.flatMap((m) => [m.ip, ...m.ipv6]);
    const rnd = prng(seed * 31);
    const c = new CompactMembers(ips.slice(0, ips.length >> 1), ips.length >> 1);
    const s = new Set(ips.slice(0, ips.length >> 1));
    same(c, s, ips, `seed ${seed}, built`);
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < ips.length; i++) {
        const ip = ips[Math.floor(rnd() * ips.length)]!;
        if (rnd() < 0.5) {
          c.add(ip);
          s.add(ip);
        } else assert.equal(c.delete(ip), s.delete(ip), `delete ${ip}`);
      }
      same(c, s, ips, `seed ${seed}, round ${round}`);
    }
  }
});

test('CompactMembers: crowded slots, growth, 0.0.0.0, non-canonical strings and IPv6 keep their exact form', () => {
  const rnd = prng(99);
  const c = new CompactMembers();
  const s = new Set<string>();
  // Addresses that differ only in their low bits (neighbours), plus strings that must stay strings.
  const pool = [
    ...Array.from({ length: 3000 }, (_, i) => intToIpv4(0x0a000000 + i)),
    ...Array.from({ length: 500 }, (_, i) => intToIpv4(0xac160000 + i * 65536)),
    '0.0.0.0',
    '255.255.255.255',
    '010.0.0.1',
    '10.0.0.01',
    '2001:db8::1',
    '2001:db8::a',
  ];
  for (let step = 0; step < 40_000; step++) {
    const ip = pool[Math.floor(rnd() * pool.length)]!;
    if (rnd() < 0.55) {
      c.add(ip);
      s.add(ip);
    } else assert.equal(c.delete(ip), s.delete(ip), `step ${step}: delete ${ip}`);
    if (step % 5000 === 0) same(c, s, pool, `step ${step}`);
  }
  same(c, s, pool, 'end');
  assert.ok(c.has('010.0.0.1') === s.has('010.0.0.1') && !c.has('10.0.0.1') === !s.has('10.0.0.1'));
  for (const ip of [...s]) {
    c.delete(ip);
    s.delete(ip);
  }
  same(c, s, pool, 'emptied');
  assert.equal(c.size, 0);
});
