// [qos] fairness = host | flow: how a group class is shared among its users. host: sfq/fq_codel
// behind a flow filter hashing the user's address (dst down, nfct-src up), cake in
// dual-dsthost/dual-srchost nat. The filters and cake's modes are desired state like every other
// object: built, read back, repaired, changed when fairness changes. On the fake kernel; the
// shares themselves are measured in the VM lane (this machine has no sfq, fq_codel, cake or flow).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DateTime } from 'luxon';
import { parseConfig, ConfigError, type Config } from '../../src/config/config.js';
import { planDesired } from '../../src/plan/desired.js';
import { Reconciler } from '../../src/kernel/reconciler.js';
import { buildKernelDesired } from '../../src/kernel/model.js';
import { leafQdisc } from '../../src/kernel/leaf.js';
import { missingFeatures, type KernelFeatures } from '../../src/kernel/features.js';
import { readTc } from '../../src/kernel/read.js';
import { hostKeyAt } from '../../src/kernel/diff.js';
import { MemoryLogger } from '../../src/log.js';
import type { Directory } from '../../src/sources/types.js';
import { FakeKernel } from '../helpers/fake-kernel.js';
import { minimalConf } from './fixtures.js';

const at = DateTime.fromISO('2026-11-22T12:00', { zone: 'UTC' });

function campus(n: number): Directory {
  const owners: Directory['owners'][number][] = [];
  const machines: Directory['machines'][number][] = [];
  for (let i = 0; i < n; i++) {
    const uid = `u${i}`;
    owners.push({ uid, dn: `uid=${uid}`, kind: 'person', endInternet: Date.UTC(2030, 0, 1), coupure: false, ban: [], cotiz: [] });
    machines.push({ dn: `host=${uid}`, host: uid, owner: uid, active: true, ips4: [`172.22.200.${i + 1}`], ips6: [] });
  }
  return { owners, machines, skipped: [], fetchedAt: at.toISO()! };
}

const config = (qos: string): Config =>
  parseConfig(
    minimalConf({ qos: `classifier = classify\n${qos}`, firewall: 'area6Prefix = 2001:db8:d200::\nnet6 = 2001:db8:d200::/48' }),
    'q',
  );

const usage = { byIp: new Map(), resetAt: at.toISO()!, fetchedAt: at.toISO()! };

/** leaf parent classid -> the keys of the flow filter on it, per device */
function hostFilters(k: FakeKernel, dev: string): Map<string, string | undefined> {
  return new Map([...k.devs.get(dev)!.leaves].map(([parent, l]) => [parent, l.flowKeys]));
}

test('fairness: host is the default; host with leaf = pfifo, none or sfq is refused naming the key (never a silent flow-fair class, never seconds of delay); sfq defaults to flow', () => {
  assert.equal(config('').qos.fairness, 'host');
  assert.equal(config('fairness = flow').qos.fairness, 'flow');
  assert.equal(config('leaf = cake').qos.fairness, 'host');
  // sfq: one FIFO per bucket; with a bucket per user, their own download delays their ping by
  // seconds (measured on Debian 13): flow by default (as before the key), host refused
  assert.equal(config('leaf = sfq').qos.fairness, 'flow');
  for (const leaf of ['pfifo', 'none', 'sfq']) {
    assert.throws(
      () => config(`leaf = ${leaf}\nfairness = host`),
      (e: unknown) =>
        e instanceof ConfigError &&
        /\[qos\] fairness: host needs leaf = fq_codel or cake/.test(e.message) &&
        e.message.includes(`leaf = ${leaf}`) === (leaf !== 'sfq'),
    );
  }
  assert.throws(() => config('leaf = pfifo'), /\[qos\] fairness: host needs/);
  assert.throws(() => config('fairness = user'), /\[qos\] fairness.*one of host, flow/);
});

for (const leaf of ['fq_codel'] as const) {
  test(`fairness = host, leaf = ${leaf}: every leaf gets a flow filter hashing the user's address (dst down, nfct-src up); steady; a deleted filter is repaired; fairness = flow removes them`, async () => {
    const c = config(`leaf = ${leaf}\nverifyInterval = 10s`);
    const k = new FakeKernel([c.firewall.ethInt, c.firewall.ethExt]);
    const clock = { t: 0 };
    const r = new Reconciler(c, k.exec, new MemoryLogger(), () => clock.t);
    const d = planDesired(c, campus(20), usage, at, at);
    await r.reconcile(d);
    const down = hostFilters(k, c.firewall.ethInt);
    const up = hostFilters(k, c.firewall.ethExt);
    assert.equal(down.size, c.qos.groups + 1, 'a leaf per group class and the default class');
    assert.deepEqual(new Set(down.values()), new Set(['dst']));
    assert.deepEqual(new Set(up.values()), new Set(['nfct-src']));
    const text = k.calls
      .filter((x) => x.cmd === 'tc' && x.input)
      .map((x) => x.input!)
      .join('');
    assert.match(
      text,
      /^filter replace dev int0 parent (?<h>[0-9a-f]+:) protocol all prio 1 handle 1 flow hash keys dst divisor 1024 baseclass \k<h>1$/m,
    );

    // steady: the tc read-back at verifyInterval finds them all (parsed from tc's own text) and changes nothing
    clock.t += 20_000;
    const from = k.calls.length;
    const steady = await r.reconcile(d);
    assert.ok(k.commandsSince(from).includes('tc -batch -'), "the leaves' filters were read back");
    assert.equal(steady.counts.tc.change + steady.counts.tc.add, 0, JSON.stringify(steady.counts));

    // drift: one filter deleted from outside; the class would share by flow until the next full read-back repairs it
    const [parent, l] = [...k.devs.get(c.firewall.ethInt)!.leaves].find(([p]) => p !== '1:1')!;
    delete l.flowKeys;
    clock.t += 20_000;
    await r.reconcile(d);
    assert.equal(k.devs.get(c.firewall.ethInt)!.leaves.get(parent)!.flowKeys, 'dst', 'repaired');

    // fairness changed (a restart): the same leaves, no filter left
    const flow = config(`leaf = ${leaf}\nfairness = flow`);
    const r2 = new Reconciler(flow, k.exec, new MemoryLogger(), () => clock.t);
    await r2.reconcile(planDesired(flow, campus(20), usage, at, at));
    assert.deepEqual(new Set(hostFilters(k, c.firewall.ethInt).values()), new Set([undefined]));
    assert.deepEqual(new Set(hostFilters(k, c.firewall.ethExt).values()), new Set([undefined]));
    assert.deepEqual(new Set([...k.devs.get(c.firewall.ethInt)!.leaves.values()].map((x) => x.kind)), new Set([leaf]));
  });
}

test('fairness = host, leaf = cake: dual-dsthost down, dual-srchost up, with nat; flow: triple-isolate nonat; a switch is applied to the running cake', async () => {
  const c = config('leaf = cake');
  const kd = buildKernelDesired(c, planDesired(c, campus(4), usage, at, at));
  const words = (dev: string): string[][] => kd.tc.find((t) => t.dev === dev)!.classes.flatMap((x) => (x.leaf ? [[...x.leaf.qdisc]] : []));
  assert.ok(words(c.firewall.ethInt).every((w) => w.includes('dual-dsthost') && w.includes('nat')));
  assert.ok(words(c.firewall.ethExt).every((w) => w.includes('dual-srchost') && w.includes('nat')));
  assert.ok(
    kd.tc.every((t) => t.classes.every((x) => !x.leaf?.hostKey)),
    'cake needs no flow filter',
  );

  const k = new FakeKernel([c.firewall.ethInt, c.firewall.ethExt]);
  await new Reconciler(c, k.exec, new MemoryLogger(), () => 0).reconcile(planDesired(c, campus(4), usage, at, at));
  const flow = config('leaf = cake\nfairness = flow');
  const res = await new Reconciler(flow, k.exec, new MemoryLogger(), () => 0).reconcile(planDesired(flow, campus(4), usage, at, at));
  assert.ok(res.counts.tc.change + res.counts.tc.add > 0);
  for (const l of k.devs.get(c.firewall.ethInt)!.leaves.values()) {
    assert.equal(l.kind, 'cake');
    assert.ok(l.args.includes('triple-isolate') && l.args.includes('nonat'), l.args.join(' '));
  }
});

test("readTc: a leaf's flow filter as tc prints it under `show … parent X:` (no parent word) is found by its baseclass", async () => {
  const exec = async (cmd: string, args: readonly string[], opts?: { input?: string | Iterable<string> }) => {
    const a = args.join(' ');
    if (a.startsWith('-s -j qdisc'))
      return {
        stdout:
          '[{"kind":"htb","handle":"1:","root":true,"options":{"default":"0x99"}},{"kind":"sfq","handle":"10:","parent":"1:10","options":{}},{"kind":"sfq","handle":"11:","parent":"1:11","options":{}}]',
        stderr: '',
        code: 0,
      };
    if (a.startsWith('-j -s -d class')) return { stdout: '[]', stderr: '', code: 0 };
    if (a === 'filter show dev int0') return { stdout: '', stderr: '', code: 0 };
    if (a === '-batch -') {
      assert.equal(opts?.input, 'filter show dev int0 parent 10:\nfilter show dev int0 parent 11:\n');
      return {
        stdout:
          'filter protocol all pref 1 flow chain 0 \nfilter protocol all pref 1 flow chain 0 handle 0x1 hash keys nfct-src divisor 1024 baseclass 10:1 \n',
        stderr: '',
        code: 0,
      };
    }
    throw new Error(`unexpected ${cmd} ${a}`);
  };
  const st = await readTc(exec, 'int0');
  assert.equal(hostKeyAt(st.filters, '10:'), 'nfct-src');
  assert.equal(hostKeyAt(st.filters, '11:'), null);
});

test('a kernel without the flow filter: fairness = host with fq_codel is refused naming the feature and what to set; cake or flow pass', () => {
  const f: KernelFeatures = {
    fwFilter: true,
    flowFilter: false,
    sfq: true,
    fq_codel: true,
    cake: true,
    pfifo: true,
    htb: true,
    classifyTarget: true,
    nat6: true,
    setMatch: true,
    ipset: true,
    iptablesBackend: 'nf_tables',
    errors: { flowFilter: 'Error: TC classifier not found.' },
  };
  const fq = missingFeatures(config('leaf = fq_codel'), f);
  assert.equal(fq.length, 1);
  assert.match(
    fq[0]!,
    /^tc filter flow not supported by this kernel \(Error: TC classifier not found\.\): \[qos\] fairness = host with leaf = fq_codel needs it.*set leaf = cake, or fairness = flow/,
  );
  assert.deepEqual(missingFeatures(config('leaf = cake'), f), []);
  assert.deepEqual(missingFeatures(config('leaf = sfq\nfairness = flow'), f), []);
});

test("explain says how the user's class is shared", async () => {
  const { explain, explainText } = await import('../../src/metrics/explain.js');
  for (const [qos, want, line] of [
    ['leaf = fq_codel', 'host', /shared equally by address \(destination\): more flows get no more/],
    ['leaf = sfq\nfairness = flow', 'flow', /shared by flow: a user with more flows gets more of it/],
  ] as const) {
    const c = config(qos);
    const e = explain(planDesired(c, campus(3), usage, at, at), 'u1')!;
    assert.equal(e.down.fairness, want);
    assert.equal(e.up.fairness, want);
    assert.match(explainText(e), line);
  }
});

test("queue visibility: each leaf's backlog, drops and marks (fq_codel), cake's per-tin delays, from `tc -s -j qdisc show`; counted monotonic", async () => {
  const { parseLeafStats } = await import('../../src/kernel/tc-stats.js');
  const { MonotonicCounters } = await import('../../src/metrics/counters.js');
  // pfifo as this machine's iproute2 6.1 prints it; fq_codel and cake with the keys of iproute2's q_fq_codel.c / q_cake.c
  const text = JSON.stringify([
    { kind: 'htb', handle: '1:', root: true, options: {}, bytes: 9, packets: 1, drops: 0, overlimits: 0, requeues: 0, backlog: 0, qlen: 0 },
    {
      kind: 'pfifo',
      handle: '110:',
      parent: '1:10',
      options: { limit: 100 },
      bytes: 0,
      packets: 0,
      drops: 3,
      overlimits: 0,
      requeues: 0,
      backlog: 1514,
      qlen: 1,
    },
    {
      kind: 'fq_codel',
      handle: '111:',
      parent: '1:11',
      options: {},
      bytes: 5,
      packets: 5,
      drops: 7,
      backlog: 3028,
      qlen: 2,
      maxpacket: 1514,
      drop_overlimit: 0,
      new_flow_count: 3,
      ecn_mark: 11,
    },
    {
      kind: 'cake',
      handle: '112:',
      parent: '1:12',
      options: { flowmode: 'dual-dsthost', nat: true },
      drops: 4,
      backlog: 0,
      qlen: 0,
      tins: [{ avg_delay_us: 2500, peak_delay_us: 9100, drops: 4, ecn_mark: 2 }],
    },
  ]);
  const leaves = parseLeafStats(text);
  assert.equal(leaves.size, 3, 'the root is no leaf');
  assert.deepEqual(leaves.get('1:10'), {
    kind: 'pfifo',
    backlogBytes: 1514,
    qlen: 1,
    drops: 3,
    ecnMarks: null,
    avgDelayUs: null,
    peakDelayUs: null,
  });
  assert.deepEqual(leaves.get('1:11'), {
    kind: 'fq_codel',
    backlogBytes: 3028,
    qlen: 2,
    drops: 7,
    ecnMarks: 11,
    avgDelayUs: null,
    peakDelayUs: null,
  });
  assert.deepEqual(leaves.get('1:12'), {
    kind: 'cake',
    backlogBytes: 0,
    qlen: 0,
    drops: 4,
    ecnMarks: 2,
    avgDelayUs: 2500,
    peakDelayUs: 9100,
  });
  assert.equal(parseLeafStats('qdisc pfifo 110: parent 1:10 limit 100p').size, 0, 'text (no -j) is not taken for JSON');

  const mc = new MonotonicCounters();
  const sample = (drops: number, marks: number) => ({
    direction: 'down' as const,
    group: 1,
    bytes: 100,
    packets: 1,
    drops: 0,
    overlimits: 0,
    leaf: { ...leaves.get('1:11')!, drops, ecnMarks: marks },
  });
  assert.deepEqual(
    mc.update([sample(7, 11)], 0).map((x) => [x.leafDrops, x.ecnMarks]),
    [[7, 11]],
  );
  assert.deepEqual(
    mc.update([sample(9, 15)], 1000).map((x) => [x.leafDrops, x.ecnMarks]),
    [[2, 4]],
  );
  // the leaf replaced (fairness changed): its counters start again, the total goes on
  assert.deepEqual(
    mc.update([sample(1, 0)], 2000).map((x) => [x.leafDrops, x.ecnMarks]),
    [[1, 0]],
  );
});

test("cake under fairness = host: its rtt is sized for one user's share (half the class rate), not the whole class", () => {
  // 4 Mbit/s: 30 frame times at the class rate are 91 ms (rtt 100 ms); at half, 182 ms (rtt 200 ms)
  assert.deepEqual(leafQdisc('cake', 4e6, 'flow', 'down')!.expect, { rtt: 100_000, flowmode: 'triple-isolate', nat: false });
  assert.deepEqual(leafQdisc('cake', 4e6, 'host', 'down')!.expect, { rtt: 200_000, flowmode: 'dual-dsthost', nat: true });
  assert.deepEqual(leafQdisc('cake', 4e6, 'host', 'up')!.qdisc, ['cake', 'besteffort', 'dual-srchost', 'nat', 'rtt', '200ms']);
  // high rates: the default 100 ms either way
  assert.equal(leafQdisc('cake', 1e9, 'host', 'down')!.expect!['rtt'], 100_000);
});
