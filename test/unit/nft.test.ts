// The nftables form of the desired state (src/kernel/nft.ts) and its read-back (nft-read.ts),
// pure: identity of rules by comment + verdict kind, the one-transaction plan (elements, chains
// rewritten, the table rewritten when its shape differs), and the JSON parser against what
// `nft -j` 1.0.6 prints. The same scripts are applied to a real kernel in test/kernel/nft.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DateTime } from 'luxon';
import { parseConfig, type Config } from '../../src/config/config.js';
import { planDesired } from '../../src/plan/desired.js';
import { buildNftDesired, ruleIdentity, verdictOf, type NftBase, type NftDesired } from '../../src/kernel/nft.js';
import { planNft } from '../../src/kernel/nft-plan.js';
import { parseNftTable, NftReadError } from '../../src/kernel/nft-read.js';
import type { Directory } from '../../src/sources/types.js';
import { minimalConf } from './fixtures.js';

const at = DateTime.fromISO('2026-11-22T12:00', { zone: 'UTC' });

function campus(n: number): Directory {
  const owners: Directory['owners'][number][] = [];
  const machines: Directory['machines'][number][] = [];
  for (let i = 0; i < n; i++) {
    const uid = `u${i}`;
    owners.push({ uid, dn: `uid=${uid}`, kind: 'person', endInternet: Date.UTC(2030, 0, 1), coupure: i === 0, ban: [], cotiz: [] });
    machines.push({
      dn: `host=${uid}`,
      host: uid,
      owner: uid,
      active: true,
      ips4: [`172.22.200.${i + 1}`],
      ips6: [`2001:db8:d200::${i + 1}`],
    });
  }
  return { owners, machines, skipped: [], fetchedAt: at.toISO()! };
}

const config = (fw = '', qos = ''): Config =>
  parseConfig(
    minimalConf({
      qos: `classifier = classify\nleaf = pfifo\nfairness = flow\ngroups = 3\n${qos}`,
      firewall: `area6Prefix = 2001:db8:d200::\nnet6 = 2001:db8:d200::/48\nuserNetworks = 172.22.192.0/19\nip_int = 172.22.0.1\n${fw}`,
    }),
    'q',
  );

const usage = { byIp: new Map(), resetAt: at.toISO()!, fetchedAt: at.toISO()! };

interface MutableActual {
  sets: Map<string, { type: string; members: Set<string> }>;
  maps: Map<string, { type: string; entries: Map<string, string> }>;
  chains: Map<string, { base?: NftBase; comments: (string | null)[] }>;
}

/** What the read-back of a faithfully applied desired state gives. */
function actualOf(d: NftDesired): MutableActual {
  return {
    sets: new Map(d.sets.map((s) => [s.name, { type: s.type, members: new Set(s.members) }])),
    maps: new Map(d.maps.map((m) => [m.name, { type: `${m.type} : ${m.data}`, entries: new Map(m.entries) }])),
    chains: new Map(d.chains.map((c) => [c.name, { ...(c.base ? { base: c.base } : {}), comments: c.rules.map(ruleIdentity) }])),
  };
}

test('nft desired: QoS sets under the ipset names, one rule per group and family classifying by set, hooks at the iptables priorities', () => {
  const c = config('portal = 10.0.0.9:8080\nportal6 = [2001:db8::9]:8080\npassSources = 10.9.0.0/24');
  const d = buildNftDesired(c, planDesired(c, campus(4), usage, at, at));
  const names = d.sets.map((s) => s.name).sort();
  for (const n of ['qos_d0', 'qos_u2', 'v6qos_d1', 'qos_allow', 'v6qos_allow', 'qos_banned']) assert.ok(names.includes(n), n);
  const down = d.chains.find((x) => x.name === 'RESELQOS-down')!;
  assert.equal(down.rules.length, 6, '3 groups x 2 families');
  assert.match(down.rules[0]!.text, /^ip daddr @qos_d0 counter meta priority set 1:10$/);
  assert.match(down.rules[3]!.text, /^ip6 daddr @v6qos_d0 counter meta priority set 1:10$/);
  const base = d.chains.filter((x) => x.base).map((x) => `${x.name} ${x.base!.type} ${x.base!.hook} ${x.base!.prio}`);
  assert.deepEqual(base, [
    'RESELQOS-postrouting filter postrouting -150',
    'RESELQOS-forward filter forward -1',
    'RESELQOS-prerouting nat prerouting -100',
  ]);
  const fwout = d.chains.find((x) => x.name === 'RESELQOS-fwout')!.rules.map((r) => r.text);
  assert.match(fwout[0]!, /^ip saddr \{ 0\.0\.0\.0\/8, 127\.0\.0\.0\/8, 224\.0\.0\.0\/4, 240\.0\.0\.0\/4 \} counter drop$/);
  assert.ok(
    fwout.indexOf('ip saddr 10.9.0.0/24 return') > fwout.indexOf('ip saddr 172.22.0.1 counter drop'),
    'spoofed gateway dropped before pass',
  );
  assert.equal(fwout[fwout.length - 1], 'meta nfproto { ipv4, ipv6 } counter drop');
  assert.ok(fwout.includes('ip saddr 172.22.192.0/19 meta l4proto tcp counter reject with tcp reset'));
  const portal = d.chains.find((x) => x.name === 'RESELQOS-portal')!.rules.map((r) => r.text);
  assert.ok(portal.includes('ip saddr @qos_banned tcp dport 80 dnat ip to 10.0.0.9:8080'));
  assert.ok(portal.includes('meta nfproto ipv6 tcp dport 80 dnat ip6 to [2001:db8::9]:8080'));
  // with fw: marks
  const cf = config('', 'classifier = fw');
  const df = buildNftDesired(cf, planDesired(cf, campus(2), usage, at, at));
  assert.match(df.chains.find((x) => x.name === 'RESELQOS-up')!.rules[1]!.text, /^ip saddr @qos_u1 counter meta mark set 2001$/);
});

test('nft desired: v6Enabled = 0 leaves IPv6 alone (no v6 sets, rules or final drop), as with iptables; firewall off: QoS only', () => {
  const c = config('v6Enabled = 0');
  const d = buildNftDesired(c, planDesired(c, campus(2), usage, at, at));
  assert.ok(d.sets.every((s) => s.type === 'ipv4_addr'));
  const text = d.chains.flatMap((x) => x.rules.map((r) => r.text)).join('\n');
  assert.doesNotMatch(text, /ip6|ipv6/);
  assert.match(text, /meta nfproto ipv4 counter drop/);
  const off = config('enabled = 0');
  const o = buildNftDesired(off, planDesired(off, campus(2), usage, at, at));
  assert.deepEqual(
    o.chains.map((x) => x.name),
    ['RESELQOS-postrouting', 'RESELQOS-down', 'RESELQOS-up'],
  );
});

test('nft plan: nothing when the read-back matches; elements added and deleted in one script; a chain rewritten when a rule or its verdict differs', () => {
  const c = config();
  const d = buildNftDesired(c, planDesired(c, campus(4), usage, at, at));
  assert.equal(planNft(d, actualOf(d)).script, '');
  const full = planNft(d, null);
  assert.equal(full.counts.full, true);
  assert.match(full.script, /^add table inet reselqos\ndelete table inet reselqos\nadd table inet reselqos\n/);
  // an element lost, an extra one
  const a = actualOf(d);
  const allow = a.sets.get('qos_allow')!;
  const lost = [...allow.members][0]!;
  allow.members.delete(lost);
  allow.members.add('172.22.250.250');
  const p = planNft(d, a);
  assert.equal(p.counts.full, false);
  assert.deepEqual(p.counts, { elementsAdded: 1, elementsDeleted: 1, chainsRewritten: 0, full: false });
  assert.match(
    p.script,
    new RegExp(
      `^delete element inet reselqos qos_allow \\{ 172\\.22\\.250\\.250 \\}\nadd element inet reselqos qos_allow \\{ ${lost.replace(/\./g, '\\.')} \\}\n$`,
    ),
  );
  // a verdict edited under our comment (drop -> accept): the chain is rewritten
  const b = actualOf(d);
  const fwout = b.chains.get('RESELQOS-fwout')!;
  fwout.comments[fwout.comments.length - 1] = fwout.comments[fwout.comments.length - 1]!.replace('\u0001drop', '\u0001accept');
  const q = planNft(d, b);
  assert.equal(q.counts.chainsRewritten, 1);
  assert.match(q.script, /^flush chain inet reselqos RESELQOS-fwout\n/);
  // a chain missing, or its hook moved: the whole table
  const e = actualOf(d);
  e.chains.delete('RESELQOS-fwin');
  assert.equal(planNft(d, e).counts.full, true);
});

test('verdictOf names the last statement as nft -j does', () => {
  assert.equal(verdictOf('ip saddr 1.2.3.4 counter drop'), 'drop');
  assert.equal(verdictOf('oifname "int0" jump RESELQOS-down'), 'jump');
  assert.equal(verdictOf('ip daddr @qos_d0 counter meta mark set 1000'), 'mangle');
  assert.equal(verdictOf('ip saddr 10.0.0.0/8 counter reject with icmp type admin-prohibited'), 'reject');
  assert.equal(verdictOf('tcp dport 80 dnat ip to 10.0.0.9:8080'), 'dnat');
});

test('nft read-back: sets, hooks and rules from `nft -j` JSON; our table only; a missing table is null; bad input named', () => {
  const json = JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6', json_schema_version: 1 } },
      { table: { family: 'inet', name: 'reselqos', handle: 1 } },
      { set: { family: 'inet', name: 'qos_d0', table: 'reselqos', type: 'ipv4_addr', handle: 4, elem: ['10.0.0.1', '10.0.0.2'] } },
      { set: { family: 'inet', name: 'v6qos_d0', table: 'reselqos', type: 'ipv6_addr', handle: 5 } },
      {
        chain: {
          family: 'inet',
          table: 'reselqos',
          name: 'RESELQOS-postrouting',
          handle: 1,
          type: 'filter',
          hook: 'postrouting',
          prio: -150,
          policy: 'accept',
        },
      },
      { chain: { family: 'inet', table: 'reselqos', name: 'RESELQOS-down', handle: 2 } },
      {
        rule: {
          family: 'inet',
          table: 'reselqos',
          chain: 'RESELQOS-down',
          handle: 6,
          comment: 'reselqos:down:0:abcdefabcdef',
          expr: [
            { match: { op: '==', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: '@qos_d0' } },
            { counter: { packets: 0, bytes: 0 } },
            { mangle: { key: { meta: { key: 'mark' } }, value: 1000 } },
          ],
        },
      },
      { rule: { family: 'inet', table: 'reselqos', chain: 'RESELQOS-down', handle: 7, expr: [{ accept: null }] } },
    ],
  });
  const a = parseNftTable(json)!;
  assert.deepEqual([...a.sets.get('qos_d0')!.members], ['10.0.0.1', '10.0.0.2']);
  assert.equal(a.sets.get('v6qos_d0')!.members.size, 0);
  assert.deepEqual(a.chains.get('RESELQOS-postrouting')!.base, { type: 'filter', hook: 'postrouting', prio: -150 });
  assert.equal(a.chains.get('RESELQOS-down')!.base, undefined);
  assert.deepEqual(a.chains.get('RESELQOS-down')!.comments, ['reselqos:down:0:abcdefabcdef\u0001mangle', null]);
  assert.equal(parseNftTable(''), null);
  assert.equal(parseNftTable(JSON.stringify({ nftables: [{ metainfo: {} }] })), null);
  assert.throws(() => parseNftTable('{'), NftReadError);
  assert.throws(
    () =>
      parseNftTable(
        JSON.stringify({
          nftables: [
            { table: { family: 'inet', name: 'reselqos' } },
            { set: { table: 'reselqos', name: 'qos_d0', type: 'ipv4_addr', elem: ['010.0.0.1'] } },
          ],
        }),
      ),
    /set qos_d0: an element that is not one address: "010\.0\.0\.1"/,
  );
});

test('nft one-lookup form (lookup = map): one map per family and direction, address -> mark or class id; one rule per family; a group change is a delete + add of that key', () => {
  const c = config('', 'classifier = fw');
  const dir = campus(4);
  const usageOf = (up: number): typeof usage => ({ ...usage, byIp: new Map([['172.22.200.2', { down: 0, up }]]) });
  const d = buildNftDesired(c, planDesired(c, dir, usage, at, at), undefined, { lookup: 'map' });
  assert.ok(!d.sets.some((s) => /^v?6?qos_[du]\d/.test(s.name)), 'no per-group sets');
  assert.deepEqual(
    d.maps.map((m) => `${m.name} ${m.type} ${m.data} ${m.entries.size}`),
    ['qos_dmap ipv4_addr mark 4', 'qos_umap ipv4_addr mark 4', 'v6qos_dmap ipv6_addr mark 4', 'v6qos_umap ipv6_addr mark 4'],
  );
  const up = d.chains.find((x) => x.name === 'RESELQOS-up')!.rules.map((r) => r.text);
  assert.deepEqual(up, ['meta mark set ip saddr map @qos_umap counter', 'meta mark set ip6 saddr map @v6qos_umap counter']);
  assert.equal(planNft(d, actualOf(d)).script, '');
  // u1 uploads a lot: the user moves to the last group, both their addresses' keys change value
  const d2 = buildNftDesired(c, planDesired(c, dir, usageOf(1e15), at, at), undefined, { lookup: 'map' });
  const p = planNft(d2, actualOf(d));
  assert.deepEqual(p.counts, { elementsAdded: 2, elementsDeleted: 2, chainsRewritten: 0, full: false });
  assert.equal(
    p.script,
    'delete element inet reselqos qos_umap { 172.22.200.2 }\nadd element inet reselqos qos_umap { 172.22.200.2 : 2002 }\n' +
      'delete element inet reselqos v6qos_umap { 2001:db8:d200::2 }\nadd element inet reselqos v6qos_umap { 2001:db8:d200::2 : 2002 }\n',
  );
});
