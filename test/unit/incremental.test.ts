// The incremental planner against the from-scratch planner: same result for the same
// inputs, a delta that turns the previous sets into the new ones exactly, and a plan
// from scratch whenever something other than volumes changed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DateTime } from 'luxon';
import { parseConfig, type Config } from '../../src/config/config.js';
import { planDesired, type Desired, type UserPlan } from '../../src/plan/desired.js';
import { Planner, firewallValidUntil } from '../../src/plan/incremental.js';
import type { Directory, Machine, Owner, Usage, Volume } from '../../src/sources/types.js';
import { minimalConf } from './fixtures.js';
import { ipIndex } from '../../src/net/ipindex.js';
import { prng } from '../../sandbox/campus.js';

const at = DateTime.fromISO('2026-11-22T12:00', { zone: 'UTC' });
const MB = 1_000_000;

function campus(n: number, endOf: (i: number) => number | null = () => Date.UTC(2030, 0, 1)): Directory {
  const owners: Owner[] = [];
  const machines: Machine[] = [];
  for (let i = 0; i < n; i++) {
    const uid = `u${String(i).padStart(4, '0')}`;
    owners.push({ uid, dn: `uid=${uid},ou=people`, kind: 'person', endInternet: endOf(i), coupure: i % 17 === 3, ban: [], cotiz: [] });
    for (let m = 0; m < 1 + (i % 3); m++) {
      const k = i * 3 + m;
      machines.push({
        dn: `host=${uid}-${m}`,
        host: `${uid}-${m}`,
        owner: uid,
        active: i % 11 !== 5,
        ips4: [`172.22.${Math.floor(k / 250)}.${(k % 250) + 1}`],
        ips6: m === 0 && i % 4 === 0 ? [`2001:db8::${k.toString(16)}`] : [],
      });
    }
  }
  machines.sort((x, y) => (x.dn < y.dn ? -1 : 1));
  return { owners, machines, skipped: [], fetchedAt: at.toISO()! };
}

const allIps = (d: Directory): string[] => d.machines.flatMap((m) => [...m.ips4, ...m.ips6]);
const usageOf = (m: Map<string, Volume>): Usage => ({ byIp: m, resetAt: at.toISO()!, fetchedAt: at.toISO()! });
/** The same volumes also by ipIndex id, as the volume source gives them. */
function denseUsageOf(m: Map<string, Volume>): Usage {
  for (const ip of m.keys()) ipIndex.idOf(ip);
  const down = new Float64Array(ipIndex.size);
  const up = new Float64Array(ipIndex.size);
  for (const [ip, v] of m) {
    down[ipIndex.idOf(ip)] = v.down;
    up[ipIndex.idOf(ip)] = v.up;
  }
  return { ...usageOf(m), dense: { down, up, generation: ipIndex.generation } };
}
const config = (qos = ''): Config =>
  parseConfig(
    minimalConf({ qos: `classifier = classify\nleaf = pfifo\nfairness = flow\n${qos}`, firewall: 'area6Prefix = 2001:db8::' }),
    'q',
  );

/** Everything a plan decides, as plain data (member sets sorted). */
function view(d: Desired): unknown {
  return {
    users: d.users.map((u) => ({ uid: u.uid, ips: u.ips, down: u.down, up: u.up })),
    classes: d.classes,
    totals: d.totals,
    limits: d.limits,
    rule: d.rule,
    ipCount: d.ipCount,
    sets: d.sets.map((s) => ({ name: s.name, members: [...s.members].sort() })),
    firewall: d.firewall && { allow4: [...d.firewall.allow4].sort(), allow6: [...d.firewall.allow6].sort(), refused: d.firewall.refused },
  };
}

const snapshot = (d: Desired): Map<string, Set<string>> => new Map(d.sets.map((s) => [s.name, new Set(s.members)]));

test('incremental plans equal plans from scratch, and each delta turns the previous sets into the new ones', () => {
  for (const qos of ['', 'count = active']) {
    const c = config(qos);
    const d = campus(300);
    const ips = allIps(d);
    const random = prng(7);
    const volumes = new Map<string, Volume>();
    for (const ip of ips)
      if (random() < 0.5) volumes.set(ip, { down: Math.floor(random() * 3000) * MB, up: Math.floor(random() * 1500) * MB });
    const planner = new Planner();
    let prev = planner.plan(c, d, usageOf(new Map(volumes)), at, at);
    assert.equal(prev.delta, null, 'the first plan is computed from scratch');
    let moves = 0;
    for (let round = 0; round < 12; round++) {
      const before = snapshot(prev);
      // some IPs get more traffic (groups go up), a few lose theirs (a new day would)
      for (const ip of ips) {
        const r = random();
        if (r < 0.05) {
          const v = volumes.get(ip) ?? { down: 0, up: 0 };
          volumes.set(ip, { down: v.down + Math.floor(random() * 8000) * MB, up: v.up + Math.floor(random() * 4000) * MB });
        } else if (r < 0.06) {
          volumes.delete(ip);
        }
      }
      const now = at.plus({ minutes: round });
      // every other round as the volume source gives it (dense arrays by IP id)
      const next = planner.plan(c, d, round % 2 ? denseUsageOf(new Map(volumes)) : usageOf(new Map(volumes)), now, at);
      assert.deepEqual(view(next), view(planDesired(c, d, usageOf(new Map(volumes)), now, at)), `round ${round} (${qos || 'count = all'})`);
      assert.ok(next.delta, 'same directory and config: incremental');
      assert.equal(next.delta.base, prev.version, 'the delta starts from the previous plan');
      // Applying the delta to the previous sets gives the new ones.
      for (const [name, ch] of next.delta.sets) {
        const s = before.get(name)!;
        for (const ip of ch.del) assert.ok(s.delete(ip), `${ip} deleted from ${name} was there`);
        for (const ip of ch.add) {
          assert.ok(!s.has(ip), `${ip} added to ${name} was not there`);
          s.add(ip);
        }
      }
      for (const set of next.sets)
        assert.deepEqual([...before.get(set.name)!].sort(), [...set.members].sort(), `${set.name} after the delta`);
      moves += next.delta.moved.down + next.delta.moved.up;
      prev = next;
    }
    assert.ok(moves > 20, `the random volumes moved users (${moves})`);
  }
});

test('nothing changed: an empty delta, the same user objects', () => {
  const c = config();
  const d = campus(50);
  const vols = new Map(allIps(d).map((ip, i) => [ip, { down: i * 100 * MB, up: 0 }] as const));
  const planner = new Planner();
  const a = planner.plan(c, d, usageOf(vols), at, at);
  const b = planner.plan(c, d, usageOf(new Map(vols)), at.plus({ seconds: 10 }), at);
  assert.equal(b.delta?.sets.size, 0);
  assert.deepEqual(b.delta?.moved, { down: 0, up: 0 });
  assert.ok(b.users.every((u, i) => u === a.users[i]));
  // the very same volumes object (the source saw no change): no pass over the users, same result
  const same = usageOf(vols);
  planner.plan(c, d, same, at.plus({ seconds: 20 }), at);
  const again = planner.plan(c, d, same, at.plus({ seconds: 30 }), at);
  assert.equal(again.delta?.sets.size, 0);
  assert.deepEqual(view(again), view(planDesired(c, d, same, at.plus({ seconds: 30 }), at)));
});

test('with dense volumes a cycle never builds the ip -> bytes Map (the source builds it on first access)', () => {
  const c = config();
  const d = campus(50);
  const vols = new Map(allIps(d).map((ip, i) => [ip, { down: i * 100 * MB, up: 0 }] as const));
  const planner = new Planner();
  planner.plan(c, d, usageOf(vols), at, at);
  const dense = denseUsageOf(new Map([...vols].map(([ip, v]) => [ip, { down: v.down + 5000 * MB, up: v.up }])));
  const lazy: Usage = {
    get byIp(): ReadonlyMap<string, Volume> {
      throw new Error('byIp read');
    },
    dense: dense.dense,
    resetAt: dense.resetAt,
    fetchedAt: dense.fetchedAt,
  };
  const next = planner.plan(c, d, lazy, at.plus({ seconds: 10 }), at);
  assert.deepEqual(view(next), view(planDesired(c, d, dense, at.plus({ seconds: 10 }), at)));
  assert.ok((next.delta?.moved.down ?? 0) > 0);
});

test('a new directory, a new config or the end of a paid period plans from scratch', () => {
  const c = config();
  const soon = at.plus({ minutes: 30 }).toMillis();
  // u0004 stops being paid in 30 minutes: its machines must leave the allow set then
  const d = campus(20, (i) => (i === 4 ? soon : Date.UTC(2030, 0, 1)));
  assert.equal(firewallValidUntil(c, d, at.toMillis()), soon);
  const planner = new Planner();
  const u = usageOf(new Map());
  planner.plan(c, d, u, at, at);
  assert.ok(planner.plan(c, d, u, at.plus({ minutes: 29 }), at).delta, 'before the end: incremental');
  const after = planner.plan(c, d, u, at.plus({ minutes: 31 }), at);
  assert.equal(after.delta, null, 'after the end of a paid period: from scratch');
  const ip = d.machines.find((m) => m.owner === 'u0004' && m.active)!.ips4[0]!;
  assert.ok(!after.firewall!.allow4.has(ip), 'the unpaid machine left the allow set');
  const d2 = campus(20);
  assert.equal(planner.plan(c, d2, u, at.plus({ minutes: 32 }), at).delta, null, 'a new directory object');
  assert.ok(planner.plan(c, d2, u, at.plus({ minutes: 33 }), at).delta, 'then incremental again');
  assert.equal(planner.plan(config(), d2, u, at.plus({ minutes: 34 }), at).delta, null, 'a new config object');
});

test('a plan from scratch is a snapshot: later incremental plans do not change its sets', () => {
  const c = config();
  const d = campus(60);
  const planner = new Planner();
  const first = planner.plan(c, d, usageOf(new Map()), at, at);
  const frozen = snapshot(first);
  const vols = new Map(allIps(d).map((ip) => [ip, { down: 9000 * MB, up: 9000 * MB }] as const));
  const next = planner.plan(c, d, usageOf(vols), at.plus({ seconds: 10 }), at);
  assert.ok(next.delta && next.delta.moved.down > 0, 'users moved');
  for (const s of first.sets)
    assert.deepEqual([...s.members].sort(), [...frozen.get(s.name)!].sort(), `${s.name} of the first plan unchanged`);
});

test('a rebuild of the IP index (the daily reset) plans from scratch: ids of the old generation are never summed', () => {
  const c = config();
  const d = campus(60);
  const ips = allIps(d);
  const vols = new Map(ips.map((ip, i) => [ip, { down: (i % 7) * 900 * MB, up: (i % 5) * 400 * MB }] as const));
  const planner = new Planner();
  planner.plan(c, d, usageOf(vols), at, at);
  assert.ok(planner.plan(c, d, denseUsageOf(vols), at.plus({ seconds: 10 }), at).delta, 'incremental: ids computed');
  // the same IPs under other ids (reversed): the planner's old ids would read other users' bytes
  ipIndex.rebuild([...ips].reverse());
  const after = denseUsageOf(new Map([...vols].map(([ip, v]) => [ip, { down: v.down + 10 * MB, up: v.up }])));
  const next = planner.plan(c, d, after, at.plus({ seconds: 20 }), at);
  assert.equal(next.delta, null, 'from scratch after the rebuild');
  assert.deepEqual(view(next), view(planDesired(c, d, after, at.plus({ seconds: 20 }), at)));
  const again = planner.plan(
    c,
    d,
    denseUsageOf(new Map([...vols].map(([ip, v]) => [ip, { down: v.down + 20 * MB, up: v.up }]))),
    at.plus({ seconds: 30 }),
    at,
  );
  assert.ok(again.delta, 'then incremental again, with the new ids');
  assert.deepEqual(
    view(again),
    view(
      planDesired(
        c,
        d,
        usageOf(new Map([...vols].map(([ip, v]) => [ip, { down: v.down + 20 * MB, up: v.up }]))),
        at.plus({ seconds: 30 }),
        at,
      ),
    ),
  );
});

test('volumes that name the ids that changed: only their users are looked at, and the plan equals the one from scratch', () => {
  for (const qos of ['', 'count = active']) {
    const c = config(qos);
    const d = campus(300);
    const ips = allIps(d);
    const random = prng(11);
    const volumes = new Map<string, Volume>();
    for (const ip of ips) if (random() < 0.5) volumes.set(ip, { down: Math.floor(random() * 3000) * MB, up: 0 });
    const planner = new Planner();
    let usage: Usage = { ...denseUsageOf(new Map(volumes)), version: {} };
    let prev = planner.plan(c, d, usage, at, at);
    planner.plan(c, d, (usage = { ...denseUsageOf(new Map(volumes)), version: {} }), at, at); // ids computed
    let moves = 0;
    for (let round = 0; round < 15; round++) {
      prev = planner.plan(c, d, usage, at.plus({ minutes: round, seconds: 1 }), at);
      const before = snapshot(prev);
      const changed: number[] = [];
      for (const ip of ips) {
        const r = random();
        if (r < 0.04) {
          const v = volumes.get(ip) ?? { down: 0, up: 0 };
          // bytes only grow during a day; a few rows with no byte at all count as seen
          volumes.set(ip, r < 0.035 ? { down: v.down + Math.floor(random() * 8000) * MB, up: v.up + Math.floor(random() * 4000) * MB } : v);
          changed.push(ipIndex.idOf(ip));
        }
      }
      // ids of addresses no user holds may be named too
      changed.push(ipIndex.idOf(`10.250.0.${round + 1}`));
      const next = {
        ...denseUsageOf(new Map(volumes)),
        version: {},
        changes: { from: usage.version!, ids: [...changed, ...changed.slice(0, 3)] },
      };
      const now = at.plus({ minutes: round, seconds: 30 });
      const plan = planner.plan(c, d, next, now, at);
      assert.deepEqual(view(plan), view(planDesired(c, d, usageOf(new Map(volumes)), now, at)), `round ${round} (${qos || 'count = all'})`);
      assert.ok(plan.delta, 'incremental');
      for (const [name, ch] of plan.delta.sets) {
        const s = before.get(name)!;
        for (const ip of ch.del) assert.ok(s.delete(ip), `${ip} deleted from ${name} was there`);
        for (const ip of ch.add) s.add(ip);
      }
      for (const set of plan.sets)
        assert.deepEqual([...before.get(set.name)!].sort(), [...set.members].sort(), `${set.name} after the delta`);
      const named = new Set(changed);
      plan.users.forEach((u, i) => {
        if (!u.ips.some((ip) => named.has(ipIndex.idOf(ip)))) assert.equal(u, prev.users[i], `${u.uid}: not named, the same object`);
      });
      moves += plan.delta.moved.down + plan.delta.moved.up;
      usage = next;
    }
    assert.ok(moves > 10, `the random volumes moved users (${moves})`);
  }
});

test('a change hint is the contract: a user whose ids are not named is not looked at (no pass over every user)', () => {
  const c = config();
  const d = campus(40);
  const ips = allIps(d);
  const planner = new Planner();
  const u0: Usage = { ...denseUsageOf(new Map()), version: {} };
  planner.plan(c, d, u0, at, at);
  planner.plan(c, d, u0, at, at);
  const [a, b] = [ips[0]!, ips[5]!];
  const vols = new Map([
    [a, { down: 9000 * MB, up: 0 }],
    [b, { down: 9000 * MB, up: 0 }],
  ]);
  // only a is named: b's bytes are not read (the volume source names every id it changed)
  const hinted: Usage = { ...denseUsageOf(vols), version: {}, changes: { from: u0.version!, ids: [ipIndex.idOf(a)] } };
  const plan = planner.plan(c, d, hinted, at.plus({ seconds: 10 }), at);
  const user = (ip: string): UserPlan => plan.users.find((x) => x.ips.includes(ip))!;
  assert.equal(user(a).down.bytes, 9000 * MB);
  assert.equal(user(b).down.bytes, 0, 'not named: not summed');
  // without a hint (or a hint from other volumes) every user is summed
  const whole = planner.plan(c, d, { ...denseUsageOf(vols), version: {}, changes: { from: {}, ids: [] } }, at.plus({ seconds: 20 }), at);
  assert.equal(whole.users.find((x) => x.ips.includes(b))!.down.bytes, 9000 * MB);
});
