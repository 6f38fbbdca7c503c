// [site], [sharing], [path] and [metrics] of qos.conf: the site's name and its sharing of the
// global rates, where the daemon keeps its files, its HTTP listener. Problems in the shared Ctx
// (reader.ts). Part of parseConfig (config.ts). Pure.

import { UnitError } from './units.js';
import type { Ctx, SectionReader } from './reader.js';
import type { Config, MetricsConfig, SharingConfig } from './types.js';
import { SITE_NAME, SQL_IDENT, isLoopback, parseListen, WEIGHT_MAX, WEIGHT_MIN, parseToken } from './values.js';

/** [site] name: the host name when empty (`hostname`). */
export function readSiteName(r: SectionReader, hostname: string | undefined): string {
  return r.parse(
    'name',
    (raw) => {
      const v = raw === '' ? (hostname ?? 'localhost') : raw;
      if (!SITE_NAME.test(v))
        throw new UnitError(
          `expected a site name (letters, digits, _ . -, at most 64)${raw === '' ? ' (the host name is not one: set it)' : ''}, got "${v}"`,
        );
      return v;
    },
    'localhost',
  );
}

/** [sharing], and the global rates of [rates] it requires. */
export function readSharing(sh: SectionReader, ctx: Ctx, rates: Readonly<Record<string, number>>): SharingConfig {
  const sharing: SharingConfig = {
    enabled: sh.bool('enabled'),
    // the bounds every peer's row is held to (src/sharing/peers.ts): our own row must pass them too
    weight: sh.float('weight', (n) =>
      n >= WEIGHT_MIN && n <= WEIGHT_MAX ? null : `expected a number from ${WEIGHT_MIN} to ${WEIGHT_MAX}`,
    ),
    stale: sh.int('stale', 1, 1000),
    db: sh.ident('db', SQL_IDENT, 'an SQL identifier (letters, digits, _)'),
  };
  if (sharing.enabled) {
    for (const key of ['globalDown', 'globalUp'] as const) {
      if (rates[key] === undefined)
        ctx.problem('rates', key, 'is required with [sharing] enabled = 1 (the rate all sites together may use)');
    }
  }
  return sharing;
}

/** [path]: absolute directories, trailing slashes dropped. */
export function readPaths(p: SectionReader): Config['paths'] {
  const absPath = (key: string): string =>
    p.parse(
      key,
      (raw) => {
        if (!raw.startsWith('/')) throw new UnitError(`expected an absolute path, got "${raw}"`);
        return raw.replace(/\/+$/, '') || '/';
      },
      '/nonexistent',
    );
  const paths = { log: absPath('log'), state: absPath('state'), run: absPath('run') };
  return paths;
}

/** [metrics]: the HTTP listener and its token (required off loopback). */
export function readMetrics(mx: SectionReader, ctx: Ctx): MetricsConfig {
  const metrics: MetricsConfig = {
    listen: mx.parse('listen', parseListen, null),
    token: mx.parse('token', parseToken, ''),
  };
  if (metrics.listen && !isLoopback(metrics.listen.host) && metrics.token === '') {
    ctx.problem(
      'metrics',
      'listen',
      `${metrics.listen.host} is not a loopback address: set [metrics] token (requests then need Authorization: Bearer <token>)`,
    );
  }
  return metrics;
}
