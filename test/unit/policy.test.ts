import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DateTime } from 'luxon';
import { thresholds, groupOf, classRates, perUserRate, effectiveRates, resetInstant, activeRule } from '../../src/policy/policy.js';
import { parseConfig } from '../../src/config/config.js';
import { minimalConf } from './fixtures.js';

const MB = 1e6;

test("the spec's default thresholds: 1250, 3250, 6450, 11570, 19762 MB", () => {
  const limits = thresholds({ groups: 6, base: 1250 * MB, parameter: 1.6 });
  assert.deepEqual(
    limits,
    [1250, 3250, 6450, 11570, 19762].map((x) => x * MB),
  );
});

test("the spec's per-user rate factors: 100/80/64/51/41/33 %", () => {
  const counts = [1, 1, 1, 1, 1, 1];
  const rates = classRates(counts, { totalBps: 100e6, factor: 0.8, floorBps: 0, defaultBps: 0, ceilShare: 1 });
  const pct = rates.map((r) => Math.round((perUserRate(r) / perUserRate(rates[0]!)) * 100));
  assert.deepEqual(pct, [100, 80, 64, 51, 41, 33]);
});

test('a volume above limit(n) is group n+1, capped at the last group; equal stays', () => {
  const limits = thresholds({ groups: 6, base: 1250 * MB, parameter: 1.6 });
  assert.equal(groupOf(0, limits), 0);
  assert.equal(groupOf(1250 * MB, limits), 0);
  assert.equal(groupOf(1250 * MB + 1, limits), 1);
  assert.equal(groupOf(3250 * MB + 1, limits), 2);
  assert.equal(groupOf(19762 * MB, limits), 4);
  assert.equal(groupOf(19762 * MB + 1, limits), 5);
  assert.equal(groupOf(1e15, limits), 5);
  assert.equal(groupOf(1e15, thresholds({ groups: 1, base: MB, parameter: 1.6 })), 0);
});

test("the spec's worked example: 73.92 / 23.66 / 2.42 Mbit/s, summing to 100", () => {
  const counts = [10, 0, 5, 0, 0, 1];
  const rates = classRates(counts, { totalBps: 100e6, factor: 0.8, floorBps: 0, defaultBps: 0, ceilShare: 1 });
  const mbit = (g: number): string => (rates[g]!.rateBps / 1e6).toFixed(2);
  assert.equal(mbit(0), '73.92');
  assert.equal(mbit(2), '23.66');
  assert.equal(mbit(5), '2.42');
  assert.equal(Math.round(perUserRate(rates[0]!) / 1000), 7392); // r0 = 7.392 Mbit/s
  const sum = rates.reduce((a, r) => a + r.rateBps, 0);
  assert.ok(sum <= 100e6 && sum > 100e6 - 10, `sum ${sum}`);
  assert.ok(rates.every((r) => r.ceilBps === 100e6));
});

test('empty groups get the floor, the rest shares what is left, never above the total', () => {
  const counts = [10, 0, 5, 0, 0, 1];
  const rates = classRates(counts, { totalBps: 100e6, factor: 0.8, floorBps: 8000, defaultBps: 1e6, ceilShare: 0.9 });
  assert.equal(rates[1]!.rateBps, 8000);
  assert.equal(rates[3]!.rateBps, 8000);
  const sum = rates.reduce((a, r) => a + r.rateBps, 0) + 1e6;
  assert.ok(sum <= 100e6, `sum ${sum}`);
  assert.ok(sum > 100e6 - 10);
  assert.ok(rates.every((r) => Number.isInteger(r.rateBps) && r.ceilBps === 90e6));
  // ratio between per-user rates of groups 0 and 2 is f^2
  assert.ok(Math.abs(perUserRate(rates[2]!) / perUserRate(rates[0]!) - 0.64) < 1e-6);
});

test('no user at all: groups are weighted as if each had one user', () => {
  const rates = classRates([0, 0, 0], { totalBps: 1000, factor: 0.5, floorBps: 1, defaultBps: 0, ceilShare: 1 });
  assert.deepEqual(
    rates.map((r) => r.rateBps),
    [571, 285, 142],
  );
});

const rulesConf = (extra: string): string => minimalConf({ qos: 'timezone = Europe/Paris', ratesrules: extra });

test('a rate rule window crossing midnight (20:00 to 4:00)', () => {
  const config = parseConfig(
    rulesConf('rule1From = 20:00\nrule1To = 4:00\nrule1GlobalUp = 200Mbps\nrule1GlobalDown = 200Mbps\nrule1Up = 160Mbps\nrule1Down = 0'),
    'qos.conf',
  );
  const at = (iso: string): DateTime => DateTime.fromISO(iso, { zone: 'Europe/Paris' });
  assert.equal(effectiveRates(config, at('2026-11-22T19:59')).rule, null);
  assert.equal(effectiveRates(config, at('2026-11-22T20:00')).rule, 'rule1');
  assert.equal(effectiveRates(config, at('2026-11-22T23:59')).rule, 'rule1');
  assert.equal(effectiveRates(config, at('2026-11-23T00:00')).rule, 'rule1');
  assert.equal(effectiveRates(config, at('2026-11-23T03:59')).rule, 'rule1');
  assert.equal(effectiveRates(config, at('2026-11-23T04:00')).rule, null);
  const r = effectiveRates(config, at('2026-11-22T21:00')).rates;
  assert.equal(r['up'], 160e6);
  assert.equal(r['down'], 100e6, 'a 0 in the rule leaves the rate unchanged');
  assert.equal(r['globalUp'], 200e6);
  assert.equal(r['tunnelUp'], 32e6, 'other Up rates scale with up: 20 x 160/100');
  assert.equal(r['tunnelDown'], 20e6, 'other Down rates follow down, unchanged here');
  // The same instant given in UTC is evaluated on the Paris wall clock.
  assert.equal(effectiveRates(config, DateTime.fromISO('2026-11-22T19:30Z')).rule, 'rule1');
});

test('rate rules on the DST change days (Europe/Paris)', () => {
  const config = parseConfig(
    rulesConf(
      'rule1From = 1:30\nrule1To = 3:30\nrule1GlobalUp = 0\nrule1GlobalDown = 0\nrule1Up = 50Mbit\nrule1Down = 50Mbit\n' +
        'rule2From = 20:00\nrule2To = 1:00\nrule2GlobalUp = 0\nrule2GlobalDown = 0\nrule2Up = 160Mbit\nrule2Down = 160Mbit',
    ),
    'qos.conf',
  );
  // Spring forward 2026-03-29: 02:00 -> 03:00. 01:59 local is 00:59Z, 03:00 local is 01:00Z.
  const spring = (utc: string): string | null => effectiveRates(config, DateTime.fromISO(utc, { zone: 'UTC' })).rule;
  assert.equal(spring('2026-03-29T00:20Z'), null); // 01:20 CET
  assert.equal(spring('2026-03-29T00:40Z'), 'rule1'); // 01:40 CET
  assert.equal(spring('2026-03-29T01:10Z'), 'rule1'); // 03:10 CEST, still in 1:30-3:30
  assert.equal(spring('2026-03-29T01:35Z'), null); // 03:35 CEST
  // Fall back 2026-10-25: 03:00 CEST -> 02:00 CET; 02:xx happens twice, both inside the window.
  assert.equal(spring('2026-10-25T00:15Z'), 'rule1'); // 02:15 CEST
  assert.equal(spring('2026-10-25T01:15Z'), 'rule1'); // 02:15 CET
  assert.equal(spring('2026-10-25T02:35Z'), null); // 03:35 CET
  assert.equal(spring('2026-10-24T22:30Z'), 'rule2'); // 00:30 CEST
  assert.equal(spring('2026-10-24T23:05Z'), null); // 01:05 CEST
});

test('activeRule returns null without rules', () => {
  assert.equal(activeRule([], DateTime.now()), null);
});

test('daily reset: resetHour today, or yesterday before it; DST-proof', () => {
  const q = { resetHour: 5, timezone: 'Europe/Paris' };
  const r1 = resetInstant(q, DateTime.fromISO('2026-11-22T10:00', { zone: 'Europe/Paris' }));
  assert.equal(r1.toISO(), '2026-11-22T05:00:00.000+01:00');
  const r2 = resetInstant(q, DateTime.fromISO('2026-11-22T04:59', { zone: 'Europe/Paris' }));
  assert.equal(r2.toISO(), '2026-11-21T05:00:00.000+01:00');
  const r3 = resetInstant(q, DateTime.fromISO('2026-11-22T05:00', { zone: 'Europe/Paris' }));
  assert.equal(r3.toISO(), '2026-11-22T05:00:00.000+01:00');
  // The day after spring forward: reset at 05:00 CEST, 23 hours after the previous one.
  const r4 = resetInstant(q, DateTime.fromISO('2026-03-29T12:00', { zone: 'Europe/Paris' }));
  assert.equal(r4.toISO(), '2026-03-29T05:00:00.000+02:00');
  const prev = resetInstant(q, DateTime.fromISO('2026-03-29T04:00', { zone: 'Europe/Paris' }));
  assert.equal(r4.diff(prev, 'hours').hours, 23);
  // resetHour inside the skipped hour (02:00 on 2026-03-29) moves forward, still that day.
  const r5 = resetInstant({ resetHour: 2, timezone: 'Europe/Paris' }, DateTime.fromISO('2026-03-29T12:00', { zone: 'Europe/Paris' }));
  assert.equal(r5.toFormat('yyyy-MM-dd'), '2026-03-29');
  assert.ok(r5 < DateTime.fromISO('2026-03-29T12:00', { zone: 'Europe/Paris' }));
  // An instant in UTC is reset on the local calendar.
  const r6 = resetInstant(q, DateTime.fromISO('2026-11-22T03:30Z'));
  assert.equal(r6.toISO(), '2026-11-21T05:00:00.000+01:00');
});
