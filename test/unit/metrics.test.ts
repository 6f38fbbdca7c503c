// Pure parts of the metrics, the dashboard's rule display and the publisher: tc counters
// parsing, monotonic counters across a class re-creation, the published rows and their
// changes, the [metrics]/[publish]/[site] keys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DateTime } from 'luxon';
import { parseConfig, ConfigError } from '../../src/config/config.js';
import { parseTcClassStats } from '../../src/kernel/read.js';
import { MonotonicCounters, History } from '../../src/metrics/counters.js';
import { publishedRows, rowChanges, peopleChanges } from '../../src/publish/rows.js';
import { nextRule } from '../../src/policy/policy.js';
import type { Desired } from '../../src/plan/desired.js';
import { minimalConf } from './fixtures.js';

const TC_S_61 = `class htb 1:10 parent 1:1 leaf 110: prio 0 rate 8Kbit ceil 50Mbit burst 1600b cburst 1600b 
 Sent 123456 bytes 321 pkt (dropped 7, overlimits 42 requeues 0) 
 backlog 0b 0p requeues 0
 lended: 0 borrowed: 0 giants: 0
 tokens: 25000000 ctokens: 4000

class sfq 110:1 parent 110: 
 (dropped 0, overlimits 0 requeues 0) 

class htb 1:1 root rate 50Mbit ceil 50Mbit burst 1600b cburst 1600b 
 Sent 999 bytes 9 pkt (dropped 0, overlimits 0 requeues 0) 
`;

test('tc -s class show: counters per HTB class (6.1 text and >= 6.2 JSON)', () => {
  const s = parseTcClassStats(TC_S_61);
  assert.deepEqual(s.get('1:10'), { bytes: 123456, packets: 321, drops: 7, overlimits: 42 });
  assert.deepEqual(s.get('1:1'), { bytes: 999, packets: 9, drops: 0, overlimits: 0 });
  assert.equal(s.size, 2, 'sfq pseudo classes skipped');
  const j = parseTcClassStats(JSON.stringify([{ class: 'htb', handle: '1:11', stats: { bytes: 5, packets: 1, drops: 2, overlimits: 3 } }]));
  assert.deepEqual(j.get('1:11'), { bytes: 5, packets: 1, drops: 2, overlimits: 3 });
});

test('monotonic counters: increases between reads, a re-created class continues from its new value', () => {
  const m = new MonotonicCounters();
  const s = (bytes: number, drops = 0) => [{ direction: 'down' as const, group: 0, bytes, packets: bytes / 100, drops, overlimits: 0 }];
  assert.equal(m.update(s(1000), 0)[0]!.bytes, 1000);
  assert.equal(m.update(s(1000), 0)[0]!.bps, null, 'no time elapsed');
  const d = m.update(s(3500, 2), 2000)[0]!;
  assert.equal(d.bytes, 2500);
  assert.equal(d.packets, 25);
  assert.equal(d.drops, 2);
  assert.equal(d.bps, (2500 * 8) / 2);
  // the class was deleted and added again: the kernel starts from 0
  const r = m.update(s(400, 0), 3000)[0]!;
  assert.equal(r.bytes, 400, 'counts what the new class sent, never a negative step');
  assert.equal(r.drops, 0);
  assert.equal(r.packets, 4);
  assert.equal(r.bps, null);
  assert.equal(m.update(s(1400), 4000)[0]!.bytes, 1000);
});

test('history keeps one hour', () => {
  const h = new History(3600);
  for (let t = 0; t <= 7200; t += 10) h.push({ t, down: [1], up: [1], rateDown: [1], rateUp: [1] });
  assert.equal(h.all()[0]!.t, 3600);
  assert.equal(h.all().length, 361);
});

const desired = (users: { uid: string; down: [number, number]; up: [number, number] }[]): Desired => ({
  at: '',
  rule: null,
  resetAt: '',
  totals: { down: 1e8, up: 1e8 },
  limits: [1000, 2600],
  users: users.map((u) => ({ uid: u.uid, ips: [], down: { bytes: u.down[0], group: u.down[1] }, up: { bytes: u.up[0], group: u.up[1] } })),
  classes: (['down', 'up'] as const).flatMap((direction) =>
    [0, 1, 2].map((group) => ({ direction, group, users: 1, rateBps: 1000 * (group + 1), ceilBps: 1e8 })),
  ),
  sets: [],
  skipped: [],
  firewall: null,
  ipCount: { inet: 0, inet6: 0 },
  version: {},
  delta: null,
});

test('published rows: people_data per user and way, classes with limit, tc index and active users; only changes after the first write', () => {
  const dn = new Map([
    ['alice', 'uid=alice,ou=people'],
    ['bob', 'uid=bob,ou=people'],
  ]);
  const a = publishedRows(
    's1',
    desired([
      { uid: 'alice', down: [1500, 1], up: [0, 0] },
      { uid: 'bob', down: [10, 0], up: [5, 0] },
    ]),
    dn,
  );
  assert.deepEqual(a.people.get('alice\0down'), ['s1', 'uid=alice,ou=people', 'alice', 'down', 1, 1500]);
  assert.deepEqual(a.classes.get('down\x001'), ['s1', 1, 'down', 0x11, 2600, 2000, 1e8, 1, 1]);
  assert.deepEqual(a.classes.get('up\x002'), ['s1', 2, 'up', 0x12, null, 3000, 1e8, 1, 0]);
  assert.equal(a.classes.get('up\x000')![8], 1, 'bob only is active upward');
  const first = rowChanges(null, a.people);
  assert.equal(first.upsert.length, 4);
  const b = publishedRows('s1', desired([{ uid: 'alice', down: [1600, 1], up: [0, 0] }]), dn);
  const ch = rowChanges(a.people, b.people);
  assert.deepEqual(ch.upsert, [['s1', 'uid=alice,ou=people', 'alice', 'down', 1, 1600]]);
  assert.deepEqual(ch.remove.sort(), ['bob\0down', 'bob\0up']);
  assert.deepEqual(rowChanges(b.people, b.people), { upsert: [], remove: [] });
});

test('next rate rule: the next start after now, the rule in force excluded', () => {
  const rules = [
    { name: 'rule1', index: 1, from: 8 * 60, to: 18 * 60, globalUp: 0, globalDown: 0, up: 0, down: 1 },
    { name: 'rule2', index: 2, from: 20 * 60, to: 4 * 60, globalUp: 0, globalDown: 0, up: 0, down: 1 },
  ];
  const at = (h: number) => DateTime.fromISO(`2026-11-22T${String(h).padStart(2, '0')}:30`, { zone: 'UTC' });
  assert.deepEqual(
    { ...nextRule(rules, at(9)), startsAt: nextRule(rules, at(9))!.startsAt.toISO() },
    { rule: 'rule2', startsAt: '2026-11-22T20:00:00.000Z' },
  );
  assert.equal(nextRule(rules, at(21))!.startsAt.toISO(), '2026-11-23T08:00:00.000Z');
  assert.equal(nextRule(rules, at(19))!.rule, 'rule2');
  assert.equal(nextRule([], at(1)), null);
});

test('[metrics], [publish], [site]: defaults, a public listen needs a token, publish falls back on [database]', () => {
  const c = parseConfig(minimalConf({ database: 'user = acct\npassword = pw' }), 'q', { hostname: 'gw-brest' });
  assert.deepEqual(c.metrics, { listen: { host: '127.0.0.1', port: 9721 }, token: '' });
  assert.equal(c.site.name, 'gw-brest', 'default: the host name (loadConfig passes os.hostname())');
  assert.equal(c.publish.enabled, false);
  assert.equal(c.publish.db, 'qos');
  assert.equal(c.publish.host, 'db.example.org');
  assert.equal(c.publish.user, 'acct');
  assert.equal(c.publish.password, 'pw');
  const off = parseConfig(minimalConf({ extra: '[metrics]\nlisten =\n[site]\nname = brest' }), 'q');
  assert.equal(off.metrics.listen, null);
  assert.equal(off.site.name, 'brest');
  const v6 = parseConfig(minimalConf({ extra: '[metrics]\nlisten = [::]:9100\ntoken = t0k-sixteen-chars' }), 'q');
  assert.deepEqual(v6.metrics.listen, { host: '::', port: 9100 });
  const other = parseConfig(
    minimalConf({ extra: '[publish]\nenabled = 1\nhost = web.example.org:3310\nuser = site\npassword = x\ndb = campus' }),
    'q',
  );
  assert.deepEqual(
    [other.publish.host, other.publish.port, other.publish.user, other.publish.db],
    ['web.example.org', 3310, 'site', 'campus'],
  );
  for (const [extra, re] of [
    ['[metrics]\nlisten = 0.0.0.0:9721', /\[metrics\] listen: 0\.0\.0\.0 is not a loopback address: set \[metrics\] token/],
    ['[metrics]\nlisten = localhost:9721', /\[metrics\] listen: expected an IP address and port/],
    ['[metrics]\nlisten = 127.0.0.1:70000', /\[metrics\] listen: expected an IP address and port/],
    ['[publish]\ndb = qos-x', /\[publish\] db: expected an SQL identifier/],
  ] as const) {
    assert.throws(
      () => parseConfig(minimalConf({ extra }), 'q'),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
      extra,
    );
  }
});

test('people_data changes: only users whose object changed (incremental plans), removals and DN changes after a new directory', () => {
  const dn = new Map([
    ['alice', 'uid=alice,ou=p'],
    ['bob', 'uid=bob,ou=p'],
  ]);
  const a = desired([
    { uid: 'alice', down: [1500, 1], up: [0, 0] },
    { uid: 'bob', down: [10, 0], up: [5, 0] },
  ]);
  assert.equal(peopleChanges('s', null, { users: a.users, dnOf: dn }).upsert.length, 4, 'first write: every row');
  // an incremental plan: bob's object kept, alice's replaced with a new download volume
  const users = [{ ...a.users[0]!, down: { bytes: 1600, group: 1 } }, a.users[1]!];
  const ch = peopleChanges('s', { users: a.users, dnOf: dn }, { users, dnOf: dn });
  assert.deepEqual(ch, { upsert: [['s', 'uid=alice,ou=p', 'alice', 'down', 1, 1600]], remove: [] });
  // a new directory: bob gone, carol new, alice's DN changed
  const dn2 = new Map([
    ['alice', 'uid=alice,ou=q'],
    ['carol', 'uid=carol,ou=p'],
  ]);
  const users2 = [users[0]!, { uid: 'carol', ips: [], down: { bytes: 0, group: 0 }, up: { bytes: 0, group: 0 } }];
  const ch2 = peopleChanges('s', { users, dnOf: dn }, { users: users2, dnOf: dn2 });
  assert.deepEqual(ch2.upsert.map((r) => `${r[2]} ${r[3]} ${r[1]}`).sort(), [
    'alice down uid=alice,ou=q',
    'alice up uid=alice,ou=q',
    'carol down uid=carol,ou=p',
    'carol up uid=carol,ou=p',
  ]);
  assert.deepEqual(ch2.remove, [
    ['bob', 'down'],
    ['bob', 'up'],
  ]);
  assert.deepEqual(peopleChanges('s', { users: users2, dnOf: dn2 }, { users: users2, dnOf: dn2 }), { upsert: [], remove: [] });
});

test('docs/grafana/reselqos.json uses only metric names the daemon exports; the names are the contract', async () => {
  const { Metrics } = await import('../../src/metrics/metrics.js');
  const { readFileSync } = await import('node:fs');
  const m = new Metrics();
  const names = new Set((await m.registry.getMetricsAsJSON()).map((x) => x.name));
  for (const n of [
    'reselqos_users',
    'reselqos_class_rate_bps',
    'reselqos_class_ceil_bps',
    'reselqos_class_sent_bytes_total',
    'reselqos_class_dropped_packets_total',
    'reselqos_class_overlimits_total',
    'reselqos_cycle_duration_seconds',
    'reselqos_cycles_total',
    'reselqos_moves_total',
    'reselqos_source_up',
    'reselqos_allowed_machines',
    'reselqos_refused_machines',
    'reselqos_rate_rule_active',
    'reselqos_last_cycle_timestamp_seconds',
  ])
    assert.ok(names.has(n), n);
  const dash = readFileSync(new URL('../../../docs/grafana/reselqos.json', import.meta.url), 'utf8');
  const used = new Set([...dash.matchAll(/reselqos_[a-z_]+/g)].map((x) => x[0].replace(/_bucket$/, '')));
  assert.ok(used.size >= 12, [...used].join(' '));
  for (const n of used) assert.ok(names.has(n), `the Grafana dashboard uses ${n}, which the daemon does not export`);
  JSON.parse(dash);
});
