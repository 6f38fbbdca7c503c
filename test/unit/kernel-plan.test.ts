// The pure half of the kernel layer: desired kernel state, diff against a fake
// read-back, rendered batch text. (The real kernel is exercised in test/kernel.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DateTime } from 'luxon';
import { parseConfig, type Config } from '../../src/config/config.js';
import { planDesired } from '../../src/plan/desired.js';
import { refusalOf } from '../../src/policy/entitlement.js';
import { buildKernelDesired } from '../../src/kernel/model.js';
import { diffKernel, isEmptyPlan, countPlan, tableKey, type KernelActual, type ActualSet, type SetOp } from '../../src/kernel/diff.js';
import { createLine, ipsetLineCount, ipsetPieces, renderIpset, renderPlan } from '../../src/kernel/render.js';
import { prng } from '../../sandbox/campus.js';
import { parseTable, type TableState, type TcState } from '../../src/kernel/read.js';
import type { Directory, Owner, Usage } from '../../src/sources/types.js';
import { minimalConf } from './fixtures.js';

const at = DateTime.fromISO('2026-11-22T12:00', { zone: 'UTC' });
const owner = (uid: string, extra: Partial<Owner> = {}): Owner => ({
  uid,
  dn: `uid=${uid},ou=people`,
  kind: 'person',
  endInternet: Date.UTC(2030, 0, 1),
  coupure: false,
  ban: [],
  cotiz: [],
  ...extra,
});

function dir(): Directory {
  return {
    owners: [owner('alice'), owner('bob'), owner('carol', { coupure: true })],
    machines: [
      { dn: 'host=a', host: 'a', owner: 'alice', active: true, ips4: ['172.22.200.3'], ips6: ['2001:db8:d200::3'] },
      { dn: 'host=b', host: 'b', owner: 'bob', active: true, ips4: ['172.22.201.1'], ips6: [] },
      { dn: 'host=c', host: 'c', owner: 'carol', active: true, ips4: ['172.22.202.1'], ips6: [] },
    ],
    skipped: [],
    fetchedAt: at.toISO()!,
  };
}

const usage = (bobDown: number): Usage => ({
  byIp: new Map([['172.22.201.1', { down: bobDown, up: 0 }]]),
  resetAt: at.toISO()!,
  fetchedAt: at.toISO()!,
});
const config = (extra: { qos?: string; firewall?: string } = {}): Config =>
  parseConfig(
    minimalConf({ qos: `classifier = classify\nleaf = pfifo\nfairness = flow\n${extra.qos ?? ''}`, firewall: extra.firewall ?? '' }),
    'q',
  );

const empty: KernelActual = { sets: new Map(), tables: new Map(), tc: new Map() };

/** What the kernel would hold after applying `kd` (a fake read-back). */
function applied(c: Config, bobDown: number): KernelActual {
  const kd = buildKernelDesired(c, planDesired(c, dir(), usage(bobDown), at, at));
  const sets = new Map<string, ActualSet>(
    kd.sets.map((s) => [s.name, { family: s.family, maxelem: 65536, members: new Set(s.members), count: s.members.size }]),
  );
  const tables = new Map<string, TableState>();
  for (const t of kd.tables) {
    const dump = [
      `*${t.table}`,
      ...t.chains.map((ch) => `:${ch.name} - [0:0]`),
      ...t.hooks.map((h) => `-A ${h.builtin} ${h.args.join(' ')}`),
      ...t.chains.flatMap((ch) => ch.rules.map((r) => `-A ${ch.name} ${r.join(' ')}`)),
      'COMMIT',
    ].join('\n');
    tables.set(
      tableKey(t.family, t.table),
      parseTable(dump, t.table, (n) => n.startsWith('RESELQOS-')),
    );
  }
  const tc = new Map<string, TcState>();
  for (const d of kd.tc) {
    tc.set(d.dev, {
      dev: d.dev,
      qdiscs: [
        { kind: 'htb', handle: '1:', parent: null, options: { default: '0x2' } },
        ...d.classes.flatMap((cl) =>
          cl.leaf ? [{ kind: cl.leaf.qdisc[0]!, handle: cl.leaf.handle, parent: cl.classid, options: {} }] : [],
        ),
      ],
      classes: d.classes.map((cl) => ({
        kind: 'htb',
        classid: cl.classid,
        parent: cl.parent === '1:' ? null : cl.parent,
        leaf: cl.leaf?.handle ?? null,
        rateBps: cl.rateBps,
        ceilBps: cl.ceilBps,
        exact: true,
        ...(cl.quantum !== null ? { quantum: cl.quantum } : {}),
      })),
      filters: [],
    });
  }
  return { sets, tables, tc };
}

test('from an empty kernel: every set created, chains and hooks written, the tc tree built', () => {
  const c = config();
  const kd = buildKernelDesired(c, planDesired(c, dir(), usage(0), at, at));
  const plan = diffKernel(kd, empty, { sweep: false });
  const b = renderPlan(plan);
  assert.equal(plan.sets.filter((s) => s.create).length, 26);
  assert.match(b.ipset!, /^create qos_d0 hash:ip family inet hashsize 1024 maxelem 65536 -exist\nadd qos_d0 172\.22\.200\.3 -exist\n/);
  assert.match(b.iptables[4]!, /\*mangle\n:RESELQOS-down - \[0:0\]/);
  assert.match(
    b.iptables[4]!,
    /-A RESELQOS-down -m set --match-set qos_d0 dst -m comment --comment reselqos:down:0:[A-Za-z0-9_-]{12} -j CLASSIFY --set-class 0001:0010/,
  );
  assert.match(b.iptables[4]!, /-I POSTROUTING 1 -o int0 -m comment --comment reselqos:hook:[A-Za-z0-9_-]{12} -j RESELQOS-down/);
  assert.match(
    b.iptables[4]!,
    /\*filter\n[\s\S]*-A RESELQOS-fwout -m set --match-set qos_allow src -m comment --comment reselqos:allowed:[A-Za-z0-9_-]{12} -j RETURN/,
  );
  assert.match(
    b.iptables[4]!,
    /-A RESELQOS-fwout -s 172\.22\.0\.0\/16 -p tcp -m comment --comment reselqos:refused:[A-Za-z0-9_-]{12} -j REJECT --reject-with tcp-reset/,
  );
  assert.match(
    b.tc!,
    /^qdisc replace dev int0 root handle 1: htb default 2 r2q 10\nqdisc replace dev ext0 root handle 1: htb default 2 r2q 10\nclass add dev int0 parent 1: classid 1:1 htb rate 100000000bit ceil 100000000bit\n/,
  );
  assert.match(b.tc!, /qdisc add dev int0 parent 1:10 handle 110: pfifo limit 1000/);
  assert.equal(b.destroy, null);
});

test('nothing changed: an empty plan, nothing to spawn', () => {
  const c = config();
  const kd = buildKernelDesired(c, planDesired(c, dir(), usage(0), at, at));
  const plan = diffKernel(kd, applied(c, 0), { sweep: true });
  assert.ok(isEmptyPlan(plan), JSON.stringify(countPlan(plan)));
  const b = renderPlan(plan);
  assert.deepEqual([b.ipset, b.iptables[4], b.iptables[6], b.tc, b.destroy], [null, null, null, null, null]);
});

test('a user moving group: one del and one add per IP, tc class change only', () => {
  const c = config();
  const kd = buildKernelDesired(c, planDesired(c, dir(), usage(4e9), at, at)); // bob: 4 GB, down group 2
  const plan = diffKernel(kd, applied(c, 0), { sweep: true });
  assert.deepEqual(
    plan.sets.map((s) => [s.name, s.add, s.del]),
    [
      ['qos_d0', [], ['172.22.201.1']],
      ['qos_d2', ['172.22.201.1'], []],
    ],
  );
  assert.equal(
    renderPlan(plan).ipset,
    'create qos_d0 hash:ip family inet hashsize 1024 maxelem 65536 -exist\ndel qos_d0 172.22.201.1 -exist\n' +
      'create qos_d2 hash:ip family inet hashsize 1024 maxelem 65536 -exist\nadd qos_d2 172.22.201.1 -exist\n',
  );
  assert.ok(plan.tc.length > 0 && plan.tc.every((op) => op.kind === 'class' && op.verb === 'change'));
  assert.equal(countPlan(plan).iptables, 0);
});

test('a set too small for the directory is rebuilt through a temporary set and swap', () => {
  const c = config();
  const kd = buildKernelDesired(c, planDesired(c, dir(), usage(0), at, at));
  const small = applied(c, 0);
  const sets = new Map(small.sets);
  sets.set('qos_d0', { ...sets.get('qos_d0')!, maxelem: 2 });
  const plan = diffKernel(kd, { ...small, sets }, { sweep: true });
  assert.equal(plan.sets.length, 1);
  assert.match(
    renderPlan(plan).ipset!,
    /create qos_d0-tmp hash:ip family inet hashsize 1024 maxelem 65536 -exist\nflush qos_d0-tmp\nadd qos_d0-tmp [\d.]+ -exist\n(add qos_d0-tmp [\d.]+ -exist\n)*swap qos_d0-tmp qos_d0\ndestroy qos_d0-tmp\n$/,
  );
});

test('duplicate and stale hooks are removed; leftovers only with sweep', () => {
  const c = config();
  const kd = buildKernelDesired(c, planDesired(c, dir(), usage(0), at, at));
  const a = applied(c, 0);
  const tables = new Map(a.tables);
  const mangle = tables.get('4:mangle')!;
  tables.set('4:mangle', {
    chains: new Map([...mangle.chains, ['RESELQOS-old', []]]),
    hooks: [...mangle.hooks, mangle.hooks[0]!, '-A POSTROUTING -o eth9 -j RESELQOS-old'],
  });
  const sets = new Map(a.sets);
  sets.set('qos_d9', { family: 'inet', maxelem: 65536, members: new Set(), count: 0 });
  const noSweep = diffKernel(kd, { ...a, tables, sets }, { sweep: false });
  assert.deepEqual(
    noSweep.iptables[4].map((o) => o.kind),
    ['hook-del'],
    'only the duplicate goes before the first complete sync',
  );
  assert.deepEqual(noSweep.destroy, []);
  const sweep = diffKernel(kd, { ...a, tables, sets }, { sweep: true });
  assert.deepEqual(sweep.iptables[4].map((o) => o.kind).sort(), ['chain-del', 'hook-del', 'hook-del']);
  assert.deepEqual(sweep.destroy, ['qos_d9']);
  assert.match(renderPlan(sweep).iptables[4]!, /-D POSTROUTING -o eth9 -j RESELQOS-old\n-X RESELQOS-old/);
});

test('classifier fw: MARK rules and one fw filter per group', () => {
  const c = config({ qos: 'classifier = fw' });
  const kd = buildKernelDesired(c, planDesired(c, dir(), usage(0), at, at));
  const b = renderPlan(diffKernel(kd, empty, { sweep: false }));
  assert.match(
    b.iptables[4]!,
    /-A RESELQOS-up -m set --match-set qos_u3 src -m comment --comment reselqos:up:3:[A-Za-z0-9_-]{12} -j MARK --set-xmark 0x7d3\/0xffffffff/,
  );
  assert.match(b.tc!, /filter add dev ext0 parent 1: protocol all prio 1 handle 0x7d3 fw classid 1:13/);
  assert.match(b.tc!, /filter add dev int0 parent 1: protocol all prio 1 handle 0x3e8 fw classid 1:10/);
});

test('firewall decisions: paid, cut, banned, blacklisted, unpaid; each rule switchable', () => {
  const fw = config().firewall;
  const now = Date.UTC(2026, 10, 22);
  assert.equal(refusalOf(owner('a'), fw, now), null);
  assert.equal(refusalOf(owner('a', { coupure: true }), fw, now), 'cut');
  assert.equal(refusalOf(owner('a', { ban: ['Internet'] }), fw, now), 'banned');
  assert.equal(refusalOf(owner('a', { ban: ['mail'] }), fw, now), null);
  assert.equal(refusalOf(owner('a', { cotiz: ['2025', 'BLACKLIST2026'] }), fw, now), 'blacklisted');
  assert.equal(refusalOf(owner('a', { endInternet: Date.UTC(2026, 0, 1) }), fw, now), 'unpaid');
  assert.equal(refusalOf(owner('a', { endInternet: null }), fw, now), 'unpaid');
  const lax = config({ firewall: 'checkPayment = 0\ncheckCoupure = 0\ncheckBan = 0\ncheckBlacklist = 0' }).firewall;
  assert.equal(refusalOf(owner('a', { coupure: true, ban: ['internet'], cotiz: ['BLACKLIST2026'], endInternet: null }), lax, now), null);
  const d = planDesired(config(), dir(), usage(0), at, at);
  assert.deepEqual([...d.firewall!.allow4].sort(), ['172.22.200.3', '172.22.201.1']);
  assert.deepEqual(d.firewall!.refused, [{ uid: 'carol', reason: 'cut' }]);
  assert.equal(planDesired(config({ firewall: 'enabled = 0' }), dir(), usage(0), at, at).firewall, null);
});

test('rule identity: a read-back spelled otherwise (same stamped comment and target) is not rewritten; a changed verdict or an unstamped rule is', () => {
  const c = config({ qos: 'classifier = fw' });
  const kd = buildKernelDesired(c, planDesired(c, dir(), usage(0), at, at));
  const base = applied(c, 0);
  const rulesChanged = (a: KernelActual): number => countPlan(diffKernel(kd, a, { sweep: true })).iptables;
  assert.equal(rulesChanged(base), 0);
  const respell = (f: (line: string) => string): KernelActual => ({
    ...base,
    tables: new Map(
      [...base.tables].map(([k, m]) => [k, { hooks: m.hooks, chains: new Map([...m.chains].map(([n, rules]) => [n, rules.map(f)])) }]),
    ),
  });
  // Another iptables version printing the mark as the legacy tools read it in: same rule.
  const other = respell((l) => l.replace(/--set-xmark 0x([0-9a-f]+)\/0xffffffff/, (_m, h: string) => `--set-mark ${parseInt(h, 16)}`));
  assert.ok(
    [...other.tables.values()].some((m) => [...m.chains.values()].flat().some((l) => /--set-mark \d+/.test(l))),
    'the read-back was respelled',
  );
  assert.equal(rulesChanged(other), 0, 'no rewrite for a spelling difference');
  // An outside edit turning our refusal into an accept, comment kept: the chain is rewritten.
  const opened = respell((l) => (/reselqos:refused:/.test(l) ? l.replace(/-j REJECT.*$|-j DROP$/, '-j ACCEPT') : l));
  const p1 = diffKernel(kd, opened, { sweep: true });
  assert.ok(
    p1.iptables[4].some((op) => op.kind === 'chain' && op.chain === 'RESELQOS-fwout'),
    'verdict change repaired',
  );
  // A rule of an older version (comment without a hash): rewritten once.
  const old = respell((l) => l.replace(/(reselqos:[a-z]+:?[0-9]*):[A-Za-z0-9_-]{12}/, '$1'));
  assert.ok(rulesChanged(old) > 0);
});

test('ipsetPieces: the same text as one rendering, in pieces of bounded size, each ending a line', () => {
  const rnd = prng(5);
  const ips = (n: number): string[] =>
    Array.from({ length: n }, () => `10.${Math.floor(rnd() * 256)}.${Math.floor(rnd() * 256)}.${Math.floor(rnd() * 256)}`);
  const ops: SetOp[] = [
    { name: 'qos_d0', family: 'inet', maxelem: 65536, create: true, add: ips(50), del: [], rebuild: null },
    { name: 'qos_d1', family: 'inet', maxelem: 65536, create: false, add: ips(13), del: ips(21), rebuild: null },
    { name: 'qos_u0', family: 'inet', maxelem: 131072, create: false, add: [], del: [], rebuild: ips(30) },
    { name: 'v6qos_d0', family: 'inet6', maxelem: 65536, create: false, add: ['2001:db8::1'], del: [], rebuild: null },
  ];
  // The batch as written out by hand from the operations (the format renderIpset always had).
  const expected: string[] = [];
  for (const s of ops) {
    if (s.rebuild) {
      // no create line for the set itself: it exists with a smaller maxelem (create -exist would be refused)
      expected.push(createLine(`${s.name}-tmp`, s, s.rebuild.length), `flush ${s.name}-tmp`);
      for (const ip of s.rebuild) expected.push(`add ${s.name}-tmp ${ip} -exist`);
      expected.push(`swap ${s.name}-tmp ${s.name}`, `destroy ${s.name}-tmp`);
      continue;
    }
    expected.push(createLine(s.name, s, s.create ? s.add.length : 0));
    for (const ip of s.del) expected.push(`del ${s.name} ${ip} -exist`);
    for (const ip of s.add) expected.push(`add ${s.name} ${ip} -exist`);
  }
  const text = expected.join('\n') + '\n';
  assert.equal(renderIpset(ops), text);
  assert.equal(ipsetLineCount(ops), expected.length);
  for (const per of [1, 7, 64, 10_000]) {
    const pieces = [...ipsetPieces(ops, per)];
    assert.equal(pieces.join(''), text, `pieces of ${per}`);
    for (const p of pieces) {
      assert.ok(p.endsWith('\n'));
      assert.ok(p.split('\n').length - 1 <= per + 3, `at most ${per} lines (+ a set's header)`);
    }
  }
});
