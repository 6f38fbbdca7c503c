// Real-kernel tests of src/kernel/read.ts. Everything is created inside namespaces named
// rq-p<pid>-…, which each test deletes again (t.after), never in the root namespace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { realExec } from '../../src/exec/exec.js';
import {
  readIpsets,
  readIpsetCounts,
  readIpsetHeaders,
  readMangle,
  readTc,
  tcReportedRate,
  splitIptablesArgs,
} from '../../src/kernel/read.js';
import { detectKernel } from '../../src/kernel/features.js';
import { renderIpset } from '../../src/kernel/render.js';
import { createScratchNetns } from '../../sandbox/netns.js';
import { scenario } from '../helpers/ipset-scenario.js';

const ours = (n: string): boolean => /^(v6)?qos_/.test(n);

test('ipsets: create in a namespace, read back (IPv4 + IPv6 canonical forms)', async (t) => {
  const ns = await createScratchNetns('ipset');
  t.after(() => ns.destroy());
  const input = [
    'create qos_d0 hash:ip family inet hashsize 1024 maxelem 65536',
    'create qos_d1 hash:ip family inet hashsize 2048 maxelem 100000',
    'create v6qos_d0 hash:ip family inet6 hashsize 1024 maxelem 65536',
    'create foreign hash:ip',
    'add qos_d0 172.22.200.3',
    'add qos_d0 172.22.200.4',
    'add v6qos_d0 2001:DB8:D000:0000:0000:0000:0000:0001',
    'add v6qos_d0 2001:db8:0:0:1:0:0:1',
    'add v6qos_d0 2001:db8:d000:1::',
    'add foreign 9.9.9.9',
    '',
  ].join('\n');
  await ns.exec('ipset', ['restore'], { input });
  const sets = await readIpsets(ns.exec, ours);
  assert.deepEqual([...sets.keys()].sort(), ['qos_d0', 'qos_d1', 'v6qos_d0']);
  const d0 = sets.get('qos_d0');
  assert.equal(d0?.type, 'hash:ip');
  assert.equal(d0?.family, 'inet');
  assert.equal(d0?.maxelem, 65536);
  assert.equal(d0?.hashsize, 1024);
  assert.deepEqual([...(d0?.entries ?? [])].sort(), ['172.22.200.3', '172.22.200.4']);
  assert.equal(sets.get('qos_d1')?.hashsize, 2048);
  assert.equal(sets.get('qos_d1')?.maxelem, 100000);
  assert.deepEqual(sets.get('qos_d1')?.entries, []);
  const v6 = sets.get('v6qos_d0');
  assert.equal(v6?.family, 'inet6');
  // ipset prints inet_ntop's form: lowercase, longest zero run compressed
  assert.deepEqual([...(v6?.entries ?? [])].sort(), ['2001:db8::1:0:0:1', '2001:db8:d000:1::', '2001:db8:d000::1']);

  const counts = await readIpsetCounts(ns.exec, ['qos_d0', 'qos_d1', 'v6qos_d0', 'qos_absent']);
  assert.deepEqual(Object.fromEntries(counts), { qos_d0: 2, qos_d1: 0, v6qos_d0: 3 });
  const headers = await readIpsetHeaders(ns.exec);
  assert.equal(headers.get('v6qos_d0')?.family, 'inet6');
  assert.equal(headers.get('qos_d0')?.references, 0);
});

test('ipsets: 300 000 entries over 12 sets — readIpsets vs readIpsetCounts timing', async (t) => {
  const ns = await createScratchNetns('ipset300k');
  t.after(() => ns.destroy());
  const lines: string[] = [];
  const per = 25_000;
  for (let s = 0; s < 12; s++) {
    const name = s < 6 ? `qos_d${s}` : `qos_u${s - 6}`;
    lines.push(`create ${name} hash:ip family inet hashsize 1024 maxelem 1048576`);
    for (let i = 0; i < per; i++) {
      const n = s * per + i;
      lines.push(`add ${name} 10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`);
    }
  }
  const t0 = performance.now();
  await ns.exec('ipset', ['restore'], { input: `${lines.join('\n')}\n`, timeoutMs: 120_000 });
  const tRestore = performance.now() - t0;

  // warm-up once, then measure the best of 3
  const best = async (fn: () => Promise<unknown>): Promise<number> => {
    await fn();
    let min = Infinity;
    for (let i = 0; i < 3; i++) {
      const a = performance.now();
      await fn();
      min = Math.min(min, performance.now() - a);
    }
    return min;
  };
  const sets = await readIpsets(ns.exec, ours);
  let total = 0;
  for (const s of sets.values()) total += s.entries.length;
  assert.equal(sets.size, 12);
  assert.equal(total, 300_000);
  const names = [...sets.keys()];
  const counts = await readIpsetCounts(ns.exec, names);
  assert.equal(
    [...counts.values()].reduce((a, b) => a + b, 0),
    300_000,
  );
  // hash sets grow their hashsize as they fill; the header shows the current one
  t.diagnostic(`hashsize after 25k adds: ${sets.get('qos_d0')?.hashsize}`);

  const tSave = await best(() => readIpsets(ns.exec, ours));
  const tCounts = await best(() => readIpsetCounts(ns.exec, names));
  t.diagnostic(
    `300k entries/12 sets: ipset restore ${tRestore.toFixed(0)} ms; readIpsets ${tSave.toFixed(0)} ms; readIpsetCounts ${tCounts.toFixed(1)} ms`,
  );
  assert.ok(tCounts < tSave, 'header-only listing must be cheaper than a full save');
});

test('a set batch on the real kernel: moves, a created set, and a set rebuilt with a larger maxelem (no `create -exist` of the set itself) end as planned', async (t) => {
  const ns = await createScratchNetns('ipsetb');
  t.after(() => ns.destroy());
  for (const seed of [1, 2]) {
    const { start, ops } = scenario(seed);
    await ns.exec('ipset', ['destroy']).catch(() => undefined);
    await ns.exec('ipset', ['restore'], { input: start });
    const before = await readIpsets(ns.exec, () => true);
    await ns.exec('ipset', ['restore'], { input: renderIpset(ops)! });
    const after = await readIpsets(ns.exec, () => true);
    for (const op of ops) {
      const was = new Set(before.get(op.name)?.entries ?? []);
      const want = op.rebuild ? new Set(op.rebuild) : new Set([...[...was].filter((ip) => !op.del.includes(ip)), ...op.add]);
      assert.deepEqual([...after.get(op.name)!.entries].sort(), [...want].sort(), `seed ${seed}: ${op.name}`);
      if (op.rebuild) assert.equal(after.get(op.name)!.maxelem, op.maxelem, `seed ${seed}: ${op.name} rebuilt with its new maxelem`);
    }
    assert.ok(![...after.keys()].some((n) => n.endsWith('-tmp')), 'no temporary set left');
  }
});

test('mangle: chain + rules read back in iptables-save form (IPv4 and IPv6)', async (t) => {
  const ns = await createScratchNetns('mangle');
  t.after(() => ns.destroy());
  const ex = ns.exec;
  await ex('ipset', ['create', 'qos_d0', 'hash:ip']);
  await ex('ipset', ['create', 'v6qos_d0', 'hash:ip', 'family', 'inet6']);
  const rules4 = [
    '*mangle',
    ':qos_down - [0:0]',
    ':qos_up - [0:0]',
    '-A POSTROUTING -o int0 -j qos_down',
    '-A FORWARD -i int0 -j qos_up',
    '-A qos_down -m set --match-set qos_d0 dst -m comment --comment "reselqos d0 5 Mbit/s" -j MARK --set-mark 1000',
    '-A qos_down -m set --match-set qos_d0 dst -m comment --comment "reselqos d0" -j CLASSIFY --set-class 1:10',
    '-A qos_down -m set --match-set qos_d0 dst -m comment --comment d0 -j CLASSIFY --set-class 1:a',
    '-A qos_up -m set --match-set qos_d0 src -j MARK --set-mark 2000',
    'COMMIT',
    '',
  ].join('\n');
  await ex('iptables-restore', ['--noflush'], { input: rules4 });
  const m4 = await readMangle(ex, 4, (n) => n.startsWith('qos_'));
  assert.deepEqual(m4.hooks, ['-A FORWARD -i int0 -j qos_up', '-A POSTROUTING -o int0 -j qos_down']);
  assert.deepEqual(m4.chains.get('qos_down'), [
    '-A qos_down -m set --match-set qos_d0 dst -m comment --comment "reselqos d0 5 Mbit/s" -j MARK --set-xmark 0x3e8/0xffffffff',
    '-A qos_down -m set --match-set qos_d0 dst -m comment --comment "reselqos d0" -j CLASSIFY --set-class 0001:0010',
    '-A qos_down -m set --match-set qos_d0 dst -m comment --comment d0 -j CLASSIFY --set-class 0001:000a',
  ]);
  assert.deepEqual(m4.chains.get('qos_up'), ['-A qos_up -m set --match-set qos_d0 src -j MARK --set-xmark 0x7d0/0xffffffff']);
  assert.equal(splitIptablesArgs(m4.chains.get('qos_down')?.[0] ?? '')[10], 'reselqos d0 5 Mbit/s');

  await ex('ip6tables', ['-t', 'mangle', '-N', 'v6qos_down']);
  await ex('ip6tables', [
    '-t',
    'mangle',
    '-A',
    'v6qos_down',
    '-m',
    'set',
    '--match-set',
    'v6qos_d0',
    'dst',
    '-m',
    'comment',
    '--comment',
    'v6 d0',
    '-j',
    'MARK',
    '--set-mark',
    '1000',
  ]);
  await ex('ip6tables', ['-t', 'mangle', '-A', 'POSTROUTING', '-j', 'v6qos_down']);
  const m6 = await readMangle(ex, 6, (n) => n.startsWith('v6qos_'));
  assert.deepEqual(m6.hooks, ['-A POSTROUTING -j v6qos_down']);
  assert.deepEqual(m6.chains.get('v6qos_down'), [
    '-A v6qos_down -m set --match-set v6qos_d0 dst -m comment --comment "v6 d0" -j MARK --set-xmark 0x3e8/0xffffffff',
  ]);
  // the IPv4 table does not see the IPv6 chain
  const m4b = await readMangle(ex, 4, (n) => n.startsWith('v6qos_'));
  assert.equal(m4b.chains.size, 0);
});

test('tc: HTB root + classes + pfifo leaf read back with the rates tc reports', async (t) => {
  const ns = await createScratchNetns('tc');
  t.after(() => ns.destroy());
  const ex = ns.exec;
  await ex('ip', ['link', 'add', 'int0', 'type', 'veth', 'peer', 'name', 'peer0']);
  const wanted: Array<[string, number]> = [
    ['1:10', 5_000_000],
    ['1:11', 37_700_000],
    ['1:12', 12_300_000],
    ['1:13', 7_392_001],
    ['1:14', 7_392_008],
    ['1:15', 999_999],
    ['1:1a', 123_456_789],
  ];
  const batch = [
    'qdisc add dev int0 root handle 1: htb default 0 r2q 10',
    'class add dev int0 parent 1: classid 1:1 htb rate 1000000000bit ceil 1000000000bit',
    ...wanted.map(([id, r]) => `class add dev int0 parent 1:1 classid ${id} htb rate ${r}bit ceil ${r}bit quantum 1514`),
    'qdisc add dev int0 parent 1:10 handle 10: pfifo limit 100',
    'filter add dev int0 parent 1: protocol ip prio 1 u32 match ip dst 172.22.200.3/32 flowid 1:10',
    '',
  ].join('\n');
  await ex('tc', ['-batch', '-'], { input: batch });
  const s = await readTc(ex, 'int0');
  assert.deepEqual(
    s.qdiscs.map((q) => [q.kind, q.handle, q.parent]),
    [
      ['htb', '1:', null],
      ['pfifo', '10:', '1:10'],
    ],
  );
  assert.equal(s.qdiscs[1]?.options.limit, 100);
  const byId = new Map(s.classes.map((c) => [c.classid, c]));
  assert.equal(byId.get('1:1')?.parent, null);
  assert.equal(byId.get('1:1')?.rateBps, 1e9);
  const exact = s.classes[0]?.exact ?? false;
  for (const [id, r] of wanted) {
    const c = byId.get(id);
    assert.ok(c, id);
    assert.equal(c.parent, '1:1');
    assert.equal(c.quantum, 1514);
    assert.equal(c.rateBps, tcReportedRate(r, exact), `${id} rate ${r}`);
    assert.equal(c.ceilBps, tcReportedRate(r, exact), `${id} ceil ${r}`);
  }
  assert.equal(byId.get('1:10')?.leaf, '10:');
  assert.equal(byId.get('1:10')?.rateBps, 5_000_000);
  if (!exact) {
    assert.equal(byId.get('1:13')?.rateBps, 7_392_000);
    assert.equal(byId.get('1:14')?.rateBps, 7_392_000); // kernel holds 7392008, 6.1 prints 7392Kbit
    assert.equal(byId.get('1:15')?.rateBps, 999_992);
    assert.equal(byId.get('1:1a')?.rateBps, 123_456_000);
  }
  const u32 = s.filters.filter((f) => f.classid !== undefined);
  assert.deepEqual(
    u32.map((f) => [f.kind, f.pref, f.classid]),
    [['u32', 1, '1:10']],
  );
});

test('detectKernel probes in a temporary namespace and deletes it', async (t) => {
  const f = await detectKernel(realExec);
  t.diagnostic(JSON.stringify(f));
  assert.equal(f.htb, true);
  assert.equal(f.pfifo, true);
  assert.equal(f.ipset, true);
  assert.equal(f.setMatch, true);
  assert.equal(f.classifyTarget, true);
  assert.equal(f.nat6, true, 'ip6tables nat (the IPv6 portal)');
  assert.ok(f.iptablesBackend === 'nf_tables' || f.iptablesBackend === 'legacy');
  for (const k of ['fwFilter', 'flowFilter', 'sfq', 'fq_codel', 'cake'] as const) {
    if (!f[k]) assert.ok((f.errors[k] ?? '') !== '', `${k} has an error text`);
  }
  const { stdout } = await realExec('ip', ['netns', 'list']);
  const left = stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(`rq-p${process.pid}-`) && n.endsWith('-probe'));
  assert.deepEqual(left, [], 'probe namespace deleted');
});

test('check --kernel names what this kernel lacks for the configuration (fairness = host with sfq: the qdisc and the flow filter), exit 1; a configuration it can run: exit 0', async () => {
  const { runCli } = await import('../helpers/kernel.js');
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { minimalConf } = await import('../unit/fixtures.js');
  const f = await detectKernel(realExec);
  const dir = mkdtempSync(join(tmpdir(), 'rq-check-kernel-'));
  try {
    const file = join(dir, 'q.conf');
    writeFileSync(file, minimalConf({ qos: 'classifier = classify\nleaf = fq_codel\nfairness = host' }), { mode: 0o600 });
    const r = await runCli(['check', '-c', file, '--kernel']);
    if (!f.fq_codel) assert.match(r.stderr, /^kernel: tc qdisc fq_codel not supported by this kernel/m);
    if (!f.flowFilter)
      assert.match(
        r.stderr,
        /^kernel: tc filter flow not supported by this kernel \(.+\): \[qos\] fairness = host with leaf = fq_codel needs it/m,
      );
    assert.equal(r.code, f.fq_codel && f.flowFilter ? 0 : 1, r.stderr);
    writeFileSync(file, minimalConf({ qos: 'classifier = classify\nleaf = pfifo\nfairness = flow' }), { mode: 0o600 });
    const ok = await runCli(['check', '-c', file, '--kernel']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^kernel: every feature this configuration needs is there$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
