// The Reconciler on the fake kernel (test/helpers/fake-kernel.ts): what it reads back and when
// (cheap count check vs full read), the planner's delta applied without diffing sets, memory
// dropped after a failed batch, rates finer than tc's read-back, drift from outside, leftovers
// swept after the first complete sync. Fast and root-free; the real kernel proves the same
// paths in test/kernel/reconcile.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DateTime } from 'luxon';
import { parseConfig, type Config } from '../../src/config/config.js';
import { Planner } from '../../src/plan/incremental.js';
import { planDesired, type Desired } from '../../src/plan/desired.js';
import { Reconciler } from '../../src/kernel/reconciler.js';
import { KernelApplyError } from '../../src/kernel/batch.js';
import { buildKernelDesired } from '../../src/kernel/model.js';
import { cakeRttUs } from '../../src/kernel/leaf.js';
import { MemoryLogger } from '../../src/log.js';
import type { Directory, Owner, Usage, Volume } from '../../src/sources/types.js';
import { FakeKernel } from '../helpers/fake-kernel.js';
import { ExecError } from '../../src/exec/exec-errors.js';
import { minimalConf } from './fixtures.js';

const at = DateTime.fromISO('2026-11-22T12:00', { zone: 'UTC' });
const MB = 1_000_000;

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

function campus(n: number): Directory {
  const owners: Owner[] = [];
  const machines: Directory['machines'][number][] = [];
  for (let i = 0; i < n; i++) {
    const uid = `u${String(i).padStart(3, '0')}`;
    owners.push(owner(uid, i % 13 === 4 ? { coupure: true } : {}));
    machines.push({
      dn: `host=${uid}`,
      host: uid,
      owner: uid,
      active: true,
      ips4: [`172.22.${200 + Math.floor(i / 200)}.${(i % 200) + 1}`],
      ips6: i % 5 === 0 ? [`2001:db8:d200::${(i + 1).toString(16)}`] : [],
    });
  }
  return { owners, machines, skipped: [], fetchedAt: at.toISO()! };
}

const usageOf = (m: Map<string, Volume>): Usage => ({ byIp: m, resetAt: at.toISO()!, fetchedAt: at.toISO()! });

function config(qos = 'classifier = classify\nleaf = pfifo\nfairness = flow', extra = ''): Config {
  return parseConfig(minimalConf({ qos: `${qos}\n${extra}`, firewall: 'area6Prefix = 2001:db8:d200::\nnet6 = 2001:db8:d200::/48' }), 'q');
}

/** What the fake kernel holds in our sets, as name -> sorted members. */
function kernelSets(k: FakeKernel): Map<string, string[]> {
  return new Map([...k.sets].map(([n, s]) => [n, [...s.members].sort()]));
}

function desiredSets(c: Config, d: Desired): Map<string, string[]> {
  return new Map(buildKernelDesired(c, d).sets.map((s) => [s.name, [...s.members].sort()]));
}

function setup(c: Config, clock = { t: 0 }): { k: FakeKernel; r: Reconciler; log: MemoryLogger; clock: { t: number } } {
  const k = new FakeKernel([c.firewall.ethInt, c.firewall.ethExt]);
  const log = new MemoryLogger();
  const r = new Reconciler(c, k.exec, log, () => clock.t);
  return { k, r, log, clock };
}

for (const [label, qos] of [
  ['classify + pfifo', 'classifier = classify\nleaf = pfifo\nfairness = flow'],
  ['fw + fq_codel + host (production defaults)', ''],
] as const) {
  test(`a first reconcile builds everything (${label}); the same plan again spawns only the cheap count check`, async () => {
    const c = config(qos);
    const { k, r } = setup(c);
    const d = planDesired(c, campus(40), usageOf(new Map()), at, at);
    const first = await r.reconcile(d);
    assert.equal(first.applied, true);
    assert.deepEqual(kernelSets(k), desiredSets(c, d));
    assert.ok(k.tables[4].get('mangle')!.chains.has('RESELQOS-down'));
    const groups = c.qos.groups;
    assert.equal([...k.devs.get(c.firewall.ethInt)!.classes.keys()].length, groups + 2, 'root, default and one class per group');
    if (qos === '') assert.equal(k.devs.get(c.firewall.ethInt)!.filters.size, groups, 'one fw filter per group');
    const from = k.calls.length;
    const again = await r.reconcile(d);
    assert.equal(again.applied, false);
    assert.deepEqual(k.commandsSince(from), ['ipset list -t']);
  });
}

test("the planner's delta is applied as is (no set diffed) and the kernel ends as a plan from scratch says", async () => {
  const c = config();
  const { k, r } = setup(c);
  const dir = campus(60);
  const planner = new Planner();
  const vols = new Map<string, Volume>();
  await r.reconcile(planner.plan(c, dir, usageOf(new Map(vols)), at, at));
  for (let round = 1; round <= 5; round++) {
    for (let i = round; i < 60; i += 7) vols.set(dir.machines[i]!.ips4[0]!, { down: round * 3000 * MB, up: round * 500 * MB });
    const u = usageOf(new Map(vols));
    const d = planner.plan(c, dir, u, at, at);
    assert.ok(d.delta, 'incremental plan');
    const from = k.calls.length;
    const res = await r.reconcile(d);
    assert.equal(res.incremental, true, `round ${round}: the delta path`);
    assert.equal(res.fullRead, false);
    assert.deepEqual(
      k.commandsSince(from).filter((x) => x.includes('save')),
      [],
      'no ipset save / iptables-save',
    );
    assert.deepEqual(kernelSets(k), desiredSets(c, planDesired(c, dir, u, at, at)), `round ${round}`);
  }
});

test('a batch the kernel refuses names tool, line and object; memory is dropped and the next cycle reads everything and converges', async () => {
  const c = config();
  const { k, r } = setup(c);
  const dir = campus(30);
  const d0 = planDesired(c, dir, usageOf(new Map()), at, at);
  await r.reconcile(d0);
  const vols = new Map<string, Volume>([[dir.machines[3]!.ips4[0]!, { down: 5000 * MB, up: 0 }]]);
  const d1 = planDesired(c, dir, usageOf(vols), at, at);
  k.failAt('ipset', 3, 'Kernel error received: out of memory');
  await assert.rejects(r.reconcile(d1), (e: unknown) => {
    assert.ok(e instanceof KernelApplyError);
    assert.equal(e.line, 3);
    assert.match(e.message, /ipset restore failed at line 3/);
    assert.match(e.message, /out of memory/);
    return true;
  });
  const from = k.calls.length;
  const res = await r.reconcile(d1);
  assert.equal(res.fullRead, true, 'full read-back after a failure');
  assert.ok(k.commandsSince(from).includes('ipset save'));
  assert.deepEqual(kernelSets(k), desiredSets(c, d1));
});

test('a refused iptables batch changes nothing (all or nothing) and is retried whole', async () => {
  const c = config();
  const { k, r } = setup(c);
  const d = planDesired(c, campus(10), usageOf(new Map()), at, at);
  k.failAt('iptables-restore', 4);
  await assert.rejects(r.reconcile(d), KernelApplyError);
  assert.equal(k.tables[4].get('mangle')!.chains.has('RESELQOS-down'), false, 'nothing of the refused transaction applied');
  await r.reconcile(d);
  assert.ok(k.tables[4].get('mangle')!.chains.has('RESELQOS-down'));
  assert.deepEqual(kernelSets(k), desiredSets(c, d));
});

test("a rate change smaller than tc's Kbit read-back is still applied (the reconciler remembers what it applied)", async () => {
  const k0 = config('classifier = classify\nleaf = pfifo\nfairness = flow');
  const { k, r } = setup(k0);
  const d = planDesired(k0, campus(10), usageOf(new Map()), at, at);
  await r.reconcile(d);
  // The same plan with every total 100 bit/s higher: iproute2 6.1 prints whole Kbit, so a
  // read-back alone cannot see the change.
  const c2 = parseConfig(
    minimalConf({
      qos: 'classifier = classify\nleaf = pfifo\nfairness = flow',
      firewall: 'area6Prefix = 2001:db8:d200::\nnet6 = 2001:db8:d200::/48',
      rates: 'down = 100000104bit',
    }).replace('down = 100Mbit\n', ''),
    'q',
  );
  r.reconfigure(c2);
  const d2 = planDesired(c2, campus(10), usageOf(new Map()), at, at);
  const res = await r.reconcile(d2);
  assert.ok(res.counts.tc.change > 0, 'class change sent');
  const cls = k.devs.get(k0.firewall.ethInt)!.classes.get('1:1')!;
  assert.equal(cls.rate, Math.floor(100000104 / 8) * 8);
});

test("leaf = cake: each class's rtt is scaled to its rate (AQM target >= 1.5 frame times); a rate change across a step changes it in place", async () => {
  const mk = (down: string): Config =>
    parseConfig(
      minimalConf({
        qos: 'classifier = classify\nleaf = cake',
        firewall: 'area6Prefix = 2001:db8:d200::\nnet6 = 2001:db8:d200::/48',
        rates: `down = ${down}`,
      }).replace('down = 100Mbit\n', ''),
      'q',
    );
  const c1 = mk('100Mbit');
  const { k, r, clock } = setup(c1);
  const dir = campus(10);
  const rttOf = (c: Config): Map<string, number> => {
    const d = planDesired(c, dir, usageOf(new Map()), at, at);
    const dev = buildKernelDesired(c, d).tc.find((t) => t.dev === c.firewall.ethInt)!;
    return new Map(
      dev.classes.filter((x) => x.leaf).map((x) => [x.classid, cakeRttUs(c.qos.fairness === 'host' ? x.rateBps / 2 : x.rateBps)]),
    );
  };
  const kernelRtt = (): Map<string, number> => {
    const out = new Map<string, number>();
    for (const [parent, l] of k.devs.get(c1.firewall.ethInt)!.leaves) {
      assert.equal(l.kind, 'cake');
      const i = l.args.indexOf('rtt');
      out.set(parent, Number(/^(\d+)ms$/.exec(l.args[i + 1] ?? '')?.[1]) * 1000);
    }
    return out;
  };
  await r.reconcile(planDesired(c1, dir, usageOf(new Map()), at, at));
  const want1 = rttOf(c1);
  assert.deepEqual(kernelRtt(), want1);
  // The default class (1 % of 100 Mbit/s: 1 frame = 12 ms) needs more than the 100 ms default.
  assert.ok(
    [...want1.values()].some((v) => v > 100_000),
    `a slow class has a longer rtt: ${[...want1.values()].join(',')}`,
  );
  // Ten times less bandwidth: every class crosses a doubling step; cake is changed, not left at the old rtt.
  const c2 = mk('3Mbit');
  r.reconfigure(c2);
  clock.t += 60_000;
  await r.reconcile(planDesired(c2, dir, usageOf(new Map()), at, at));
  const want2 = rttOf(c2);
  assert.notDeepEqual(want2, want1);
  assert.deepEqual(kernelRtt(), want2);
  // Converged: the same plan after a full read-back changes nothing in tc.
  clock.t += 60_000;
  const again = await r.reconcile(planDesired(c2, dir, usageOf(new Map()), at, at));
  assert.equal(again.counts.tc.change + again.counts.tc.add, 0);
});

test('cakeRttUs: 100 ms at high rates, >= 30 frame times below, in doublings, capped at 1.6 s', () => {
  assert.equal(cakeRttUs(100e6), 100_000);
  assert.equal(cakeRttUs(4e6), 100_000); // 30 x 3.0 ms = 91 ms
  assert.equal(cakeRttUs(1.45e6), 400_000); // 30 x 8.4 ms = 251 ms
  assert.equal(cakeRttUs(8), 1_600_000, 'capped: an empty class (8 bit/s) may borrow far more');
  for (const rate of [256e3, 1e6, 1.45e6, 3e6, 10e6]) {
    const rtt = cakeRttUs(rate);
    assert.ok(rtt / 20 >= 1.5 * ((1514 * 8) / rate) * 1e6, `target ${rtt / 20} us at ${rate} bit/s`);
    assert.ok(rtt === 100_000 || rtt / 2 / 20 < 1.5 * ((1514 * 8) / rate) * 1e6, 'the smallest doubling that is enough');
  }
});

test('drift from outside: a flushed set is caught by the count check at once; a deleted chain at the next verify read-back', async () => {
  const c = config('classifier = classify\nleaf = pfifo\nfairness = flow', 'verifyInterval = 30s');
  const { k, r, clock, log } = setup(c);
  const d = planDesired(c, campus(30), usageOf(new Map()), at, at);
  await r.reconcile(d);
  k.sets.get('qos_allow')!.members.clear();
  const res = await r.reconcile(d);
  assert.equal(res.fullRead, true);
  assert.deepEqual(kernelSets(k), desiredSets(c, d));
  assert.ok(log.of('warn').some((l) => /differ from what was applied/.test(l)));
  // A chain deleted from outside: not seen before verifyInterval has passed (no read-back), then repaired.
  k.tables[4].get('mangle')!.chains.get('RESELQOS-down')!.length = 0;
  clock.t += 5_000;
  await r.reconcile(d);
  assert.equal(k.tables[4].get('mangle')!.chains.get('RESELQOS-down')!.length, 0, 'within verifyInterval the cached read-back stands');
  clock.t += 30_000;
  await r.reconcile(d);
  assert.ok(k.tables[4].get('mangle')!.chains.get('RESELQOS-down')!.length > 0, 'repaired at the verify read-back');
});

test('leftovers we own are swept after the first complete sync; objects of others are never touched', async () => {
  const c = config();
  const { k, r } = setup(c);
  k.sets.set('qos_d9', { family: 'inet', hashsize: 1024, maxelem: 65536, members: new Set(['10.9.9.9']) });
  k.sets.set('someone_else', { family: 'inet', hashsize: 1024, maxelem: 65536, members: new Set(['10.1.1.1']) });
  k.tables[4].get('mangle')!.chains.set('OTHER', ['-A OTHER -j ACCEPT']);
  const d = planDesired(c, campus(10), usageOf(new Map()), at, at);
  await r.reconcile(d);
  assert.equal(k.sets.has('qos_d9'), false, 'our leftover set destroyed');
  assert.deepEqual([...k.sets.get('someone_else')!.members], ['10.1.1.1']);
  assert.deepEqual(k.tables[4].get('mangle')!.chains.get('OTHER'), ['-A OTHER -j ACCEPT']);
});

test('rebuild (start): every set refilled through -tmp + swap, no -tmp set left, then steady', async () => {
  const c = config();
  const { k, r } = setup(c);
  const dir = campus(25);
  await r.reconcile(planDesired(c, dir, usageOf(new Map()), at, at));
  k.sets.get('qos_d0')!.members.add('172.22.250.250'); // stale member only a rebuild removes without a diff
  const d = planDesired(c, dir, usageOf(new Map()), at, at);
  const res = await r.rebuild(d);
  assert.ok(res.sets > 0);
  assert.equal(
    [...k.sets.keys()].some((n) => n.endsWith('-tmp')),
    false,
  );
  assert.deepEqual(kernelSets(k), desiredSets(c, d));
  // The next cycle verifies the chains and tc tree the switch rewrote (not the sets: they were
  // just filled), finds nothing to do; the one after checks counts only.
  let from = k.calls.length;
  assert.equal((await r.reconcile(d)).applied, false);
  assert.equal(k.commandsSince(from).includes('ipset save'), false);
  assert.ok(k.commandsSince(from).includes('iptables-save'));
  from = k.calls.length;
  assert.equal((await r.reconcile(d)).applied, false);
  assert.deepEqual(k.commandsSince(from), ['ipset list -t']);
});

test('a read-back started ahead (beside the source fetches) is what the reconcile diffs against: no second read; a forget or a reconfigure in between voids it; a failed one fails the reconcile and drops memory', async () => {
  const c = config();
  const k = new FakeKernel([c.firewall.ethInt, c.firewall.ethExt]);
  let readFails = false;
  const exec: typeof k.exec = async (cmd, args, opts) => {
    if (readFails && cmd === 'ipset' && args[0] === 'list') throw new Error('injected: ipset list failed');
    return k.exec(cmd, args, opts);
  };
  const r = new Reconciler(c, exec, new MemoryLogger(), () => 0);
  const dir = campus(30);
  await r.reconcile(planDesired(c, dir, usageOf(new Map()), at, at));
  const moved = (n: number): Desired =>
    planDesired(c, dir, usageOf(new Map([[dir.machines[n]!.ips4[0]!, { down: 5000 * MB, up: 0 }]])), at, at);

  // taken: the one read is the read-ahead's, the kernel ends as planned
  let from = k.calls.length;
  const ahead = r.readAhead();
  await ahead.result;
  assert.deepEqual(k.commandsSince(from), ['ipset list -t'], 'the read ran ahead');
  const d1 = moved(3);
  const res = await r.reconcile(d1, { readAhead: ahead });
  assert.equal(res.applied, true);
  assert.deepEqual(
    k.commandsSince(from).filter((x) => x.startsWith('ipset list')),
    ['ipset list -t'],
    'no second read',
  );
  assert.deepEqual(kernelSets(k), desiredSets(c, d1));

  // voided by a reconfigure (names and ownership may differ): the pass reads again
  const stale = r.readAhead();
  await stale.result;
  r.reconfigure(c);
  from = k.calls.length;
  const d2 = moved(4);
  await r.reconcile(d2, { readAhead: stale });
  assert.ok(
    k.commandsSince(from).some((x) => x.startsWith('ipset list') || x === 'ipset save'),
    'read again after the reconfigure',
  );
  assert.deepEqual(kernelSets(k), desiredSets(c, d2));

  // a drift from outside after the read-ahead is repaired by the next cycle's read
  const before = r.readAhead();
  await before.result;
  k.sets.get('qos_allow')!.members.clear();
  await r.reconcile(d2, { readAhead: before });
  const next = await r.reconcile(d2, { readAhead: r.readAhead() });
  assert.equal(next.fullRead, true);
  assert.deepEqual(kernelSets(k), desiredSets(c, d2));

  // a failed read-ahead: not an unhandled rejection while the fetches run; the reconcile fails
  // with it and memory is dropped (the next one reads everything)
  readFails = true;
  const bad = r.readAhead();
  await new Promise((res) => setTimeout(res, 10));
  await assert.rejects(r.reconcile(d2, { readAhead: bad }), /injected: ipset list failed/);
  readFails = false;
  from = k.calls.length;
  const after = await r.reconcile(d2, { readAhead: r.readAhead() });
  assert.equal(after.fullRead, true);
  assert.ok(k.commandsSince(from).includes('ipset save'));
});

test('a set too small for the campus (maxelem from a smaller one) is rebuilt larger through -tmp + swap: by a cycle and by start (the kernel refuses `create -exist` with another maxelem)', async () => {
  const c = config();
  for (const how of ['cycle', 'start'] as const) {
    const { k, r } = setup(c);
    // left by an earlier gateway of 40 users: maxelem 64, fewer than 1.25 × this campus's IPs
    await k.exec('ipset', ['restore'], {
      input: 'create qos_d0 hash:ip family inet hashsize 1024 maxelem 64\nadd qos_d0 172.22.200.1\nadd qos_d0 172.22.250.9\n',
    });
    const d = planDesired(c, campus(60), usageOf(new Map()), at, at);
    if (how === 'cycle') await r.reconcile(d);
    else await r.rebuild(d);
    assert.deepEqual(kernelSets(k), desiredSets(c, d), how);
    assert.ok(k.sets.get('qos_d0')!.maxelem >= 65536, `${how}: maxelem ${k.sets.get('qos_d0')!.maxelem}`);
    assert.equal(
      [...k.sets.keys()].some((n) => n.endsWith('-tmp')),
      false,
    );
  }
});

test('clear: a missing interface has nothing of ours, but any other tc failure fails clear (it used to be swallowed, so clear succeeded with the HTB root still there)', async () => {
  const c = config();
  const k = new FakeKernel([c.firewall.ethInt, c.firewall.ethExt]);
  let tcRead: 'ok' | 'denied' = 'ok';
  const exec: typeof k.exec = async (cmd, args, opts) => {
    if (tcRead === 'denied' && cmd === 'tc' && args.includes('show'))
      throw new ExecError({
        command: cmd,
        args,
        code: 2,
        signal: null,
        stdout: '',
        stderr: 'RTNETLINK answers: Operation not permitted\n',
        timedOut: false,
      });
    return k.exec(cmd, args, opts);
  };
  const r = new Reconciler(c, exec, new MemoryLogger(), () => 0);
  await r.reconcile(planDesired(c, campus(10), usageOf(new Map()), at, at));
  assert.ok(k.devs.get(c.firewall.ethInt)!.root, 'HTB root built');
  tcRead = 'denied';
  await assert.rejects(r.clear(), /Operation not permitted/);
  assert.ok(k.devs.get(c.firewall.ethInt)!.root, 'the root is still there: clear must not say it is done');
  tcRead = 'ok';
  k.devs.delete(c.firewall.ethExt); // unplugged: "Cannot find device"
  const out = await r.clear();
  assert.equal(out.qdiscs, 1);
  assert.equal(k.devs.get(c.firewall.ethInt)!.root, null);
});
