import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRate, parseSize, parseTimeOfDay, parseDuration, UnitError } from '../../src/config/units.js';

test('rates are bits per second; Mbps means megabits', () => {
  assert.equal(parseRate('160Mbps'), 160_000_000);
  assert.equal(parseRate('160Mbit'), 160_000_000);
  assert.equal(parseRate('160 mbit'), 160_000_000);
  assert.equal(parseRate('8kbit'), 8000);
  assert.equal(parseRate('1.5Gbit'), 1_500_000_000);
  assert.equal(parseRate('1Gbps'), 1e9);
  assert.equal(parseRate('64000bps'), 64000);
  assert.equal(parseRate('100bit'), 100);
});

test('a bare rate number is refused with a hint', () => {
  assert.throws(
    () => parseRate('100'),
    (e: Error) => e instanceof UnitError && /no unit/.test(e.message) && /100Mbit/.test(e.message),
  );
});

test('a size written where a rate is expected (and back) is named as such', () => {
  assert.throws(() => parseRate('100MB'), /is a size, not a rate/);
  assert.throws(() => parseRate('100Mo'), /is a size, not a rate/);
  assert.throws(() => parseSize('100Mbps'), /is a rate, not a size/);
  assert.throws(() => parseSize('100Mbit'), /is a rate, not a size/);
  assert.throws(() => parseSize('100Mb'), /ambiguous size unit/);
  assert.throws(() => parseRate('100furlongs'), /unknown rate unit/);
});

test('sizes: SI, French and binary units; bare number = MB', () => {
  assert.equal(parseSize('1250'), 1_250_000_000);
  assert.equal(parseSize('1250MB'), 1_250_000_000);
  assert.equal(parseSize('1250Mo'), 1_250_000_000);
  assert.equal(parseSize('2GB'), 2e9);
  assert.equal(parseSize('2Go'), 2e9);
  assert.equal(parseSize('1GiB'), 2 ** 30);
  assert.equal(parseSize('1MiB'), 2 ** 20);
  assert.equal(parseSize('10kB'), 10_000);
  assert.equal(parseSize('10ko'), 10_000);
  assert.equal(parseSize('512B'), 512);
});

test('times of day H:MM and HH:MM', () => {
  assert.equal(parseTimeOfDay('4:00'), 240);
  assert.equal(parseTimeOfDay('04:00'), 240);
  assert.equal(parseTimeOfDay('20:00'), 1200);
  assert.equal(parseTimeOfDay('23:59'), 1439);
  for (const bad of ['25:00', '24:00', '12:60', '12', '12:5', 'noon', '-1:00']) {
    assert.throws(() => parseTimeOfDay(bad), /expected HH:MM/, bad);
  }
});

test('durations', () => {
  assert.equal(parseDuration('10'), 10_000);
  assert.equal(parseDuration('10s'), 10_000);
  assert.equal(parseDuration('2m'), 120_000);
  assert.equal(parseDuration('500ms'), 500);
  assert.throws(() => parseDuration('soon'), /expected a duration/);
});
