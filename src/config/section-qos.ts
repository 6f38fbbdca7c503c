// [rates] and [qos] of qos.conf -> the rates by name and QosConfig, problems in the shared Ctx
// (reader.ts), with the checks of the rates ([rates], [ratesrules]) against the groups. Part of
// parseConfig (config.ts); [ratesrules] itself is read by rules.ts. Pure.

import { IANAZone } from 'luxon';
import { UnitError, parseRate, parseSize } from './units.js';
import { readOffPeak } from './rules.js';
import type { Ctx, SectionReader } from './reader.js';
import type { QosConfig, RateRule } from './types.js';
import { CHAIN_PREFIX, SET_PREFIX, systemTimezone } from './values.js';

/** [rates]: down and up, and any other rate by name (globalDown/globalUp, tunnels). */
export function readRates(ra: SectionReader, ctx: Ctx): Record<string, number> {
  const rates: Record<string, number> = {};
  rates['down'] = ra.rate('down');
  rates['up'] = ra.rate('up');
  for (const { key, value } of ra.entries()) {
    const lower = key.toLowerCase();
    if (lower === 'up' || lower === 'down') continue;
    ra.used.add(lower);
    const canonical = lower === 'globalup' ? 'globalUp' : lower === 'globaldown' ? 'globalDown' : key;
    if (value.trim() === '' && (canonical === 'globalUp' || canonical === 'globalDown')) continue;
    try {
      rates[canonical] = parseRate(value);
    } catch (e) {
      ctx.problem('rates', key, (e as Error).message);
    }
  }
  return rates;
}

/**
 * [qos], and the checks of the rates ([rates], [ratesrules]) against it: what the default class
 * and the empty groups reserve must leave something for the users.
 */
export function readQos(q: SectionReader, ctx: Ctx, rates: Readonly<Record<string, number>>, rateRules: readonly RateRule[]): QosConfig {
  const groups = q.int('groups', 1, 64);
  const tzRaw = q.str('timezone');
  const timezone = tzRaw === '' ? systemTimezone() : tzRaw;
  if (!IANAZone.isValidZone(timezone))
    ctx.problem('qos', 'timezone', `unknown time zone "${timezone}" (expected an IANA name such as Europe/Paris)`);
  const leaf = q.oneOf('leaf', ['sfq', 'fq_codel', 'cake', 'pfifo', 'none'] as const);
  const qos: QosConfig = {
    enabled: q.bool('enabled'),
    groups,
    base: q.parse(
      'classSeperationBase',
      (raw) => {
        const b = parseSize(raw);
        if (b <= 0) throw new UnitError(`must be positive, got "${raw}"`);
        return b;
      },
      1,
    ),
    parameter: q.float('classSeperationParameter', (n) => (n >= 1 ? null : 'expected a number >= 1')),
    factor: q.float('classRateFactor', (n) => (n > 0 && n <= 1 ? null : 'expected a number with 0 < f <= 1')),
    resetHour: q.int('resetHour', 0, 23),
    timezone,
    offPeak: readOffPeak(q, ctx),
    intervalMs: q.duration('interval', 1000),
    count: q.oneOf('count', ['all', 'active'] as const),
    emptyClassRate: q.rate('emptyClassRate'),
    ceilShare: q.share('ceil'),
    defaultRate: q.rate('defaultRate'),
    classifier: q.oneOf('classifier', ['fw', 'classify'] as const),
    leaf,
    // sfq cannot share by host without seconds of delay (one FIFO per user, counted in GSO
    // packets): its default is flow, as before the key existed; host with it is refused below
    fairness: q.has('fairness') || leaf !== 'sfq' ? q.oneOf('fairness', ['host', 'flow'] as const) : 'flow',
    setPrefix: q.ident('setPrefix', SET_PREFIX, 'letters, digits, _ or - (at most 21 characters)'),
    set6Prefix: q.ident('set6Prefix', SET_PREFIX, 'letters, digits, _ or - (at most 21 characters)'),
    chainPrefix: q.ident('chainPrefix', CHAIN_PREFIX, 'letters, digits, _ or - (at most 16 characters)'),
    markDown: q.int('markDown', 1, 0x7fff0000),
    markUp: q.int('markUp', 1, 0x7fff0000),
    fullSyncIntervalMs: q.duration('fullSyncInterval', 1000),
    verifyIntervalMs: q.duration('verifyInterval', 0),
  };
  if (qos.ceilShare === 0) ctx.problem('qos', 'ceil', 'must be above 0%');
  if (qos.fairness === 'host' && (qos.leaf === 'pfifo' || qos.leaf === 'none'))
    ctx.problem(
      'qos',
      'fairness',
      `host needs leaf = fq_codel or cake (leaf = ${qos.leaf} shares by arrival, never by user): change leaf, or set fairness = flow`,
    );
  if (qos.fairness === 'host' && qos.leaf === 'sfq')
    ctx.problem(
      'qos',
      'fairness',
      "host needs leaf = fq_codel or cake: sfq keeps each user's packets in one FIFO (their own download delays their interactive traffic by seconds, measured), so it shares by flow only: change leaf, or set fairness = flow",
    );
  if (qos.setPrefix === qos.set6Prefix) ctx.problem('qos', 'set6Prefix', `must differ from setPrefix ("${qos.setPrefix}")`);
  if (Math.abs(qos.markDown - qos.markUp) < groups) {
    ctx.problem('qos', 'markUp', `marks ${qos.markDown}+X and ${qos.markUp}+X overlap for ${groups} groups`);
  }
  for (const dir of ['down', 'up'] as const) {
    const total = rates[dir]!;
    const reserved = qos.defaultRate + qos.emptyClassRate * groups;
    if (total > 0 && reserved >= total) {
      ctx.problem('rates', dir, `${total} bit/s leaves nothing for users after defaultRate + groups x emptyClassRate (${reserved} bit/s)`);
    }
    for (const rule of rateRules) {
      const rv = rule[dir];
      if (rv > 0 && rv <= reserved)
        ctx.problem(
          'ratesrules',
          `${rule.name}${dir === 'up' ? 'Up' : 'Down'}`,
          `${rv} bit/s leaves nothing for users after defaultRate + groups x emptyClassRate`,
        );
    }
  }
  return qos;
}
