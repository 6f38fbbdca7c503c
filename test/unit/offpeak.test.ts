// Off-peak hours that count less ([qos] offPeakFrom/To/Weight) and the user's day (timeline):
// hour weights (straddling hour, a window across midnight, DST), fixed rows through the part
// sums into the planner with an injected instant, weight 1 = no change, explain's fields.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DateTime } from 'luxon';
import { parseConfig, ConfigError, type Config } from '../../src/config/config.js';
import { HourWeights } from '../../src/netacct/volumes-window.js';
import { PartBuilder, mapOf } from '../../src/netacct/volumes-parts.js';
import { closedVolumesQuery, recentRowsQuery, rowsSelect } from '../../src/netacct/volumes-sql.js';
import { ipIndex } from '../../src/net/ipindex.js';
import { planDesired } from '../../src/plan/desired.js';
import { explain, explainText } from '../../src/metrics/explain.js';
import { planJson } from '../../src/cli/plan.js';
import { Timeline } from '../../src/metrics/timeline.js';
import type { Directory, Usage } from '../../src/sources/types.js';
import { minimalConf } from './fixtures.js';

const MB = 1_000_000;
const ZONE = 'Europe/Paris';
const conf = (qos: string): Config => parseConfig(minimalConf({ qos: `timezone = ${ZONE}\n${qos}` }), 'test.conf');
const unix = (local: string): number => DateTime.fromISO(local, { zone: ZONE }).toSeconds();

test('config: the window is off at weight 1, and refused when half set, empty, or a weight without a window', () => {
  assert.equal(conf('').qos.offPeak, null);
  assert.equal(conf('offPeakFrom = 23:00\noffPeakTo = 7:00').qos.offPeak, null, 'weight 1 (default) = off');
  assert.deepEqual(conf('offPeakFrom = 23:00\noffPeakTo = 7:00\noffPeakWeight = 0.25').qos.offPeak, { from: 1380, to: 420, weight: 0.25 });
  for (const [qos, re] of [
    ['offPeakFrom = 23:00\noffPeakWeight = 0', /offPeakTo.*go together/],
    ['offPeakFrom = 23:00\noffPeakTo = 23:00\noffPeakWeight = 0', /window is empty/],
    ['offPeakWeight = 0.5', /needs a window/],
    ['offPeakFrom = 23:00\noffPeakTo = 7:00\noffPeakWeight = 1.5', /0 <= w <= 1/],
    ['offPeakFrom = 25:00\noffPeakTo = 7:00\noffPeakWeight = 0', /HH:MM/],
  ] as const) {
    assert.throws(
      () => conf(qos),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
      qos,
    );
  }
});

test('hour weights: a window across midnight, the straddling hour pro rata, DST hours by their wall clock', () => {
  const w = new HourWeights({ from: 23 * 60, to: 6 * 60 + 30, weight: 0 }, ZONE);
  assert.equal(w.of(unix('2026-11-22T22:00')), 1, '22:00-23:00 is before the window');
  assert.equal(w.of(unix('2026-11-22T23:00')), 0, 'inside, before midnight');
  assert.equal(w.of(unix('2026-11-23T03:00')), 0, 'inside, after midnight');
  assert.equal(w.of(unix('2026-11-23T06:00')), 0.5, '06:00-07:00 has 30 minutes inside: half its bytes count');
  assert.equal(w.of(unix('2026-11-23T12:00')), 1);
  const quarter = new HourWeights({ from: 22 * 60 + 45, to: 7 * 60, weight: 0.2 }, ZONE);
  assert.ok(Math.abs(quarter.of(unix('2026-11-22T22:00')) - (1 - (15 / 60) * 0.8)) < 1e-12, '15 minutes inside at weight 0.2');
  // Autumn (2026-10-25, Paris): 02:00-03:00 happens twice; both instants weigh the same.
  const edge = new HourWeights({ from: 2 * 60 + 30, to: 5 * 60, weight: 0 }, ZONE);
  const first = DateTime.fromISO('2026-10-25T00:00:00Z').toSeconds(); // 02:00 CEST
  const second = DateTime.fromISO('2026-10-25T01:00:00Z').toSeconds(); // 02:00 CET
  assert.equal(edge.of(first), 0.5);
  assert.equal(edge.of(second), 0.5);
  // Spring (2026-03-29): the hour 01:00 CET runs into 03:00 CEST at 02:00 UTC... the bucket of
  // 01:00 local is wholly before 02:30: weight 1; the bucket of 03:00 CEST wholly inside.
  assert.equal(edge.of(unix('2026-03-29T01:00')), 1);
  assert.equal(edge.of(unix('2026-03-29T03:00')), 0);
  // A bucket whose hour crosses the offset change (a server in UTC, 2026-10-25 00:30Z..01:30Z
  // is not a bucket, but 00:00Z is: 02:00-02:59 CEST) is placed minute by minute.
  assert.equal(edge.minutesInside(first), 30);
});

/** Fixed rows (ip, local hour, bytes) summed as the volume source does, at the weights of `config`. */
function usageFrom(config: Config, rows: [string, string, number][], resetAt: DateTime): Usage {
  const op = config.qos.offPeak;
  const weights = op ? new HourWeights(op, config.qos.timezone) : null;
  const b = new PartBuilder(undefined, false, weights !== null);
  for (const [ip, hour, bytes] of rows) b.add(ipIndex.idOf(ip), bytes, 0, weights ? weights.of(unix(hour)) : 1);
  const dense = b.part().dense;
  return {
    byIp: mapOf(dense),
    ...(weights ? { raw: { byIp: mapOf(dense, true) } } : {}),
    resetAt: resetAt.toISO()!,
    fetchedAt: resetAt.toISO()!,
  };
}

const directory = (at: DateTime): Directory => ({
  owners: [
    {
      uid: 'nightowl',
      dn: 'uid=nightowl,ou=people',
      kind: 'person',
      endInternet: Date.UTC(2030, 0, 1),
      coupure: false,
      ban: [],
      cotiz: [],
    },
  ],
  machines: [{ dn: 'host=pc-nightowl', host: 'pc-nightowl', owner: 'nightowl', active: true, ips4: ['172.22.200.3'], ips6: [] }],
  skipped: [],
  fetchedAt: at.toISO()!,
});

test('planner: night traffic that would move a user down leaves them in group 0 at weight 0; weight 1 = today', () => {
  const resetAt = DateTime.fromISO('2026-11-22T05:00', { zone: ZONE });
  const now = DateTime.fromISO('2026-11-23T07:10', { zone: ZONE }); // the injected instant
  const rows: [string, string, number][] = [
    ['172.22.200.3', '2026-11-22T14:00', 600 * MB], // day
    ['172.22.200.3', '2026-11-23T01:00', 3000 * MB], // night
    ['172.22.200.3', '2026-11-23T06:00', 1000 * MB], // straddles 06:30: half counts
  ];
  const night = conf('offPeakFrom = 23:00\noffPeakTo = 06:30\noffPeakWeight = 0');
  const plain = conf('offPeakFrom = 23:00\noffPeakTo = 06:30\noffPeakWeight = 1');
  const none = conf('');
  const dn = planDesired(night, directory(now), usageFrom(night, rows, resetAt), now, resetAt);
  const dp = planDesired(plain, directory(now), usageFrom(plain, rows, resetAt), now, resetAt);
  const d0 = planDesired(none, directory(now), usageFrom(none, rows, resetAt), now, resetAt);
  const u = dn.users[0]!;
  assert.equal(u.down.bytes, 600 * MB + 500 * MB, 'counted: the day hour, half the straddling one, none of the night');
  assert.equal(u.down.group, 0, 'stays in group 0 (limit 1250 MB)');
  assert.ok(dp.users[0]!.down.group > 0, `without the weight the raw ${4600} MB move the user down (group ${dp.users[0]!.down.group})`);
  assert.deepEqual(dp.users, d0.users, 'weight 1 with a window = no window at all');
  assert.equal(dp.rawVolumes, undefined);

  const e = explain(dn, 'nightowl')!;
  assert.equal(e.down.bytes, 1100 * MB);
  assert.equal(e.down.rawBytes, 4600 * MB);
  assert.match(explainText(e), /counted 1\.10 GB of 4\.60 GB raw/);
  const j = planJson(dn).users[0]!;
  assert.deepEqual(j.down, { bytes: 1100 * MB, group: 0, rawBytes: 4600 * MB });
  assert.equal(planJson(d0).users[0]!.down.rawBytes, planJson(d0).users[0]!.down.bytes);
});

test('weight 1: the volume queries are exactly those without a window (no hour column)', () => {
  const d = conf('').database;
  assert.equal(rowsSelect(d, 'traffic', false), rowsSelect(d, 'traffic'));
  assert.doesNotMatch(closedVolumesQuery(d, 'traffic'), /UNIX_TIMESTAMP/);
  assert.match(recentRowsQuery(d, 'traffic', 'id', true), /, `id`, UNIX_TIMESTAMP\(`time`\) FROM/);
});

test('timeline: group changes with time and counted volume, caught up after a reset, saved and restored', () => {
  const resetAt = DateTime.fromISO('2026-11-22T05:00', { zone: ZONE });
  const cfg = conf('');
  const at1 = DateTime.fromISO('2026-11-22T09:00', { zone: ZONE });
  const at2 = DateTime.fromISO('2026-11-22T15:00', { zone: ZONE });
  const small = planDesired(cfg, directory(at1), usageFrom(cfg, [['172.22.200.3', '2026-11-22T08:00', 100 * MB]], resetAt), at1, resetAt);
  const big = planDesired(cfg, directory(at2), usageFrom(cfg, [['172.22.200.3', '2026-11-22T14:00', 2000 * MB]], resetAt), at2, resetAt);
  const t = new Timeline();
  t.catchUp(small); // the first plan: nothing moved from group 0
  assert.equal(t.size, 0);
  t.move(big.at, small.users[0]!, big.users[0]!, 'down');
  const j = t.of(big, big.users[0]!);
  assert.deepEqual(j.events, [{ at: big.at, direction: 'down', from: 0, to: big.users[0]!.down.group, bytes: 2000 * MB }]);
  assert.deepEqual(j.limits, [...big.limits]);
  assert.equal(j.now.down, 2000 * MB);
  assert.match(explainText(explain(big, 'nightowl', t)!), /15:00 {2}download group 0 -> 1 at 2\.00 GB/);
  // saved and restored (volumes.json's `timeline`)
  const back = Timeline.fromJSON(JSON.parse(JSON.stringify(t.toJSON())))!;
  assert.deepEqual(back.of(big, big.users[0]!), j);
  assert.equal(Timeline.fromJSON({ resetAt: 5, events: [] }), null);
  // the next day: the previous day's events go; a user already above a threshold is caught up from 0
  const nextReset = resetAt.plus({ days: 1 });
  const nextAt = nextReset.plus({ minutes: 1 });
  const fresh = planDesired(
    cfg,
    directory(nextAt),
    usageFrom(cfg, [['172.22.200.3', '2026-11-23T05:00', 1500 * MB]], nextReset),
    nextAt,
    nextReset,
  );
  t.catchUp(fresh);
  assert.deepEqual(
    t.of(fresh, fresh.users[0]!).events.map((e) => [e.from, e.to, e.bytes]),
    [[0, 1, 1500 * MB]],
  );
});
