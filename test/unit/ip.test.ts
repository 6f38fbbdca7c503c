import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseIp, parseIpv4, parseIpv6, joinIpv4, joinIpv6, compareIp, networkMatcher, type IpParse } from '../../src/net/ip.js';

const bad4: [string, RegExp][] = [
  ['172.22.200.03', /leading zero/],
  ['172.022.200.3', /leading zero/],
  ['172.22.200.3/32', /CIDR/],
  ['0.0.0.0', /unspecified/],
  ['255.255.255.255', /broadcast/],
  ['224.0.0.1', /multicast/],
  ['239.1.2.3', /multicast/],
  ['127.0.0.1', /loopback/],
  ['172.22.200.256', /above 255/],
  ['172.22.200', /not a dotted-quad/],
  ['172.22.200.3 ', /whitespace/],
  ['172.22.200.3\n10.0.0.1', /newline/],
  ['172.22.200.3;rm -rf /', /characters/],
  ['$(reboot)', /characters/],
  ['', /empty/],
];

test('IPv4 is parsed strictly', () => {
  assert.deepEqual(parseIpv4('172.22.200.3'), { ok: true, ip: '172.22.200.3', family: 4 });
  assert.deepEqual(parseIpv4('10.0.0.0'), { ok: true, ip: '10.0.0.0', family: 4 });
  for (const [raw, why] of bad4) {
    const r = parseIpv4(raw);
    assert.equal(r.ok, false, raw);
    if (!r.ok) assert.match(r.reason, why, raw);
  }
});

test('IPv6 is returned in RFC 5952 canonical form', () => {
  const cases: [string, string][] = [
    ['2001:0660:7302:D000::1', '2001:660:7302:d000::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8::0:1', '2001:db8::1'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['fe80::1', 'fe80::1'],
  ];
  for (const [raw, want] of cases) {
    const r = parseIpv6(raw);
    assert.ok(r.ok, raw);
    if (r.ok) assert.equal(r.ip, want, raw);
  }
  for (const raw of ['::', '::1', 'ff02::1', '2001:db8::/64', '2001:db8::1%eth0', '2001:db8:::1', '::ffff:10.0.0.1', '2001:db8::1 ']) {
    assert.equal(parseIpv6(raw).ok, false, raw);
  }
});

test('suffixes join the campus prefix; full quads are taken as is', () => {
  assert.deepEqual(joinIpv4('172.22.', '200.3'), { ok: true, ip: '172.22.200.3', family: 4 });
  assert.deepEqual(joinIpv4('172.22.', '10.1.2.3'), { ok: true, ip: '10.1.2.3', family: 4 });
  assert.equal(joinIpv4('172.22.', '200.03').ok, false);
  assert.equal(joinIpv4('172.22.', '1.200.3').ok, false);
  assert.equal(joinIpv4('172.22.', '200.3\n').ok, false);
  assert.equal(joinIpv4('', '200.3').ok, false);
  const v6 = joinIpv6('2001:660:7302:d', '200::3');
  assert.ok(v6.ok);
  if (v6.ok) assert.equal(v6.ip, '2001:660:7302:d200::3');
  const full6 = joinIpv6('2001:660:7302:d', '2001:db8::5');
  assert.ok(full6.ok && full6.ip === '2001:db8::5');
});

test('parseIp dispatches on the family and compareIp sorts numerically', () => {
  assert.equal(parseIp('2001:db8::1').ok, true);
  assert.equal(parseIp('172.22.1.1').ok, true);
  const sorted = ['172.22.10.1', '2001:db8::2', '172.22.9.1', '2001:db8::10', '10.0.0.1'].sort(compareIp);
  assert.deepEqual(sorted, ['10.0.0.1', '172.22.9.1', '172.22.10.1', '2001:db8::2', '2001:db8::10']);
});

test('sortIps orders exactly like compareIp', async () => {
  const { sortIps } = await import('../../src/net/ip.js');
  const ips = ['10.0.0.1', '172.22.9.1', '2001:db8::10', '172.22.10.1', '9.255.0.1', '2001:db8::2', 'fe80::1', '172.22.10.0', '1.2.3.4'];
  for (let i = 0; i < 20; i++) {
    const shuffled = [...ips].sort(() => ((i * 7919) % 13) - 6);
    assert.deepEqual(sortIps([...shuffled]), [...shuffled].sort(compareIp));
  }
});

test('joinIpv4: the fast path for X.Y suffixes gives what the full parse of prefix + suffix gives', () => {
  const prefixes = ['172.22.', '172.23.', '10.0.', '0.1.', '255.255.', '127.0.', '224.1.', '172.022.', '172.22', '1.2.3.', ''];
  const octets = ['0', '1', '9', '00', '01', '10', '99', '100', '199', '200', '249', '255', '256', '300', '999', '0255'];
  for (const p of prefixes) {
    for (const x of octets) {
      for (const y of octets) {
        const v = `${x}.${y}`;
        const full = p + v;
        const ref: IpParse = p === '' || full.split('.').length !== 4 ? { ok: false, reason: '' } : parseIpv4(full);
        const got = joinIpv4(p, v);
        assert.equal(got.ok, ref.ok, `${p} + ${v}`);
        if (got.ok && ref.ok) assert.equal(got.ip, ref.ip, `${p} + ${v}`);
      }
    }
  }
});

test('networkMatcher: CIDR membership for canonical IPs of either family', () => {
  const inside = networkMatcher(['172.22.192.0/19', '10.0.0.0/8', '2001:660:7302:d000::/52', '203.0.113.7/32']);
  for (const ip of ['172.22.192.1', '172.22.223.255', '10.255.0.1', '203.0.113.7', '2001:660:7302:d000::1', '2001:660:7302:dfff:ffff::1'])
    assert.equal(inside(ip), true, ip);
  for (const ip of ['172.22.191.255', '172.22.224.0', '11.0.0.1', '203.0.113.8', '2001:660:7302:e000::1', 'fe80::1', '255.255.255.254'])
    assert.equal(inside(ip), false, ip);
  assert.equal(networkMatcher(['0.0.0.0/0'])('8.8.8.8'), true);
  assert.equal(networkMatcher(['0.0.0.0/0'])('2001:db8::1'), false, 'an IPv6 address is never inside an IPv4 network');
  assert.equal(networkMatcher([])('172.22.0.1'), false);
});
