// Fuzzing netacct rows (src/netacct/volumes.ts, the row sanitation and the sums of volumes-parts.ts):
// random rows (IPs valid, mis-spelled, of other families, Buffers, numbers, NULL; byte counts
// negative, huge, NaN-like strings, NULL) streamed by a fake mysql2 pool into VolumeSource.fetch.
// It never throws, credits bytes only to the canonical IPs of the rows (and of the directory when
// one is set), and every volume is a finite number of bytes >= 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import fc from 'fast-check';
import { VolumeSource } from '../../src/netacct/volumes.js';
import { parseConfig } from '../../src/config/config.js';
import { parseIp } from '../../src/net/ip.js';
import type { Logger } from '../../src/log.js';
import { minimalConf } from './fixtures.js';
import { fuzzAsync } from '../helpers/fuzz.js';

const config = parseConfig(minimalConf({ database: 'closedRefresh = 0\nidColumn =' }), 'x.conf');
const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined } as unknown as Logger;

/** A mysql2 pool whose every query streams `rows` (arrays: ip, down, up). */
function fakePool(rows: unknown[][]): unknown {
  return {
    pool: {
      query: () => {
        const q = new EventEmitter();
        setImmediate(() => {
          for (const r of rows) q.emit('result', r);
          q.emit('end');
        });
        return q;
      },
    },
    end: () => Promise.resolve(),
  };
}

// A bounded set of addresses (the process-wide IP index keeps what it interns), written many ways.
const ip = fc.oneof(
  fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 20 })).map(([x, y]) => `172.22.${x}.${y}`),
  fc.constantFrom(
    '2001:db8::1',
    '2001:DB8::1',
    '2001:db8:0::1',
    '2001:0db8::0001',
    '172.22.01.2',
    ' 172.22.1.2',
    '172.22.1.2\n',
    '0.0.0.0',
    '127.0.0.1',
    '::ffff:172.22.1.2',
    '',
    'NULL',
    '172.22.1.2/32',
  ),
  fc.string({ maxLength: 12 }),
);
const rawIp = fc.oneof(
  { weight: 10, arbitrary: ip },
  { weight: 1, arbitrary: ip.map((s) => Buffer.from(s, 'latin1')) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(null, 42, 1.5, true) },
);
const bytes = fc.oneof(
  fc.nat(),
  fc.constantFrom<unknown>(
    null,
    0,
    -1,
    -0,
    1e308,
    Number.MAX_SAFE_INTEGER,
    '123',
    '1e3',
    'NaN',
    'abc',
    '',
    ' ',
    'Infinity',
    '-Infinity',
    '1e999',
    '-5',
    '0x10',
    '12.5',
    true,
    2n ** 64n,
  ),
  fc.double(),
);
const rows = fc.array(fc.tuple(rawIp, bytes, bytes), { maxLength: 30 });

/** The canonical IPs a row names (what it may credit). */
function canonical(v: unknown): string | null {
  const raw = typeof v === 'string' ? v : Buffer.isBuffer(v) ? v.toString('latin1') : v === null ? '' : JSON.stringify(v);
  const p = parseIp(raw);
  return p.ok ? p.ip : null;
}

test('fuzz: netacct rows: never a throw, bytes only to the IPs of the rows, every volume finite and >= 0', async () => {
  await fuzzAsync(
    'netacct rows',
    500,
    fc.asyncProperty(rows, fc.boolean(), async (list, filtered) => {
      const source = new VolumeSource(config, quiet);
      (source as unknown as { pool: unknown }).pool = fakePool(list);
      const dirIps = ['172.22.1.2', '172.22.2.3', '2001:db8::1'];
      if (filtered) {
        const directory = {
          owners: [],
          machines: [{ dn: 'cn=m', host: 'm', owner: 'u', active: true, ips4: dirIps.slice(0, 2), ips6: dirIps.slice(2) }],
          skipped: [],
          fetchedAt: '',
        };
        source.setDirectory(directory);
      }
      const usage = await source.fetch(new Date(Date.UTC(2026, 0, 1, 4)), new Date(Date.UTC(2026, 0, 1, 12)));
      const named = new Set(list.map(([v]) => canonical(v)).filter((x): x is string => x !== null));
      for (const [at, v] of usage.byIp) {
        assert.ok(named.has(at), `${at} credited but in no row`);
        if (filtered) assert.ok(dirIps.includes(at), `${at} credited but no machine holds it`);
        for (const d of ['down', 'up'] as const) assert.ok(Number.isFinite(v[d]) && v[d] >= 0, `${at} ${d} = ${v[d]}: finite bytes >= 0`);
      }
    }),
  );
});

test('a byte count that is not a number ("abc", "Infinity") is a bad row counted as 0, not NaN bytes', async () => {
  // Found by the fuzz: Number("abc") is NaN, which passed "< 0" and made the IP's volume NaN (its group undefined).
  const source = new VolumeSource(config, quiet);
  (source as unknown as { pool: unknown }).pool = fakePool([
    ['172.22.9.1', 'abc', '10'],
    ['172.22.9.1', '5', 'Infinity'],
    ['172.22.9.1', '7', '1'],
  ]);
  const usage = await source.fetch(new Date(Date.UTC(2026, 0, 1, 4)), new Date(Date.UTC(2026, 0, 1, 12)));
  assert.deepEqual(usage.byIp.get('172.22.9.1'), { down: 12, up: 11 });
});

test('a byte count beyond any hour (above 2^53) is a bad row counted as 0: two rows of 1e308 no longer sum to Infinity', async () => {
  // Found by the long fuzz run (100 000 cases): [["2001:db8::1",0,1e+308],["2001:db8::1",null,1e+308]] gave up = Infinity.
  const source = new VolumeSource(config, quiet);
  (source as unknown as { pool: unknown }).pool = fakePool([
    ['172.22.9.1', '3', '1e308'],
    ['172.22.9.1', '4', '1e308'],
    ['172.22.9.1', String(Number.MAX_SAFE_INTEGER), '2'],
  ]);
  const usage = await source.fetch(new Date(Date.UTC(2026, 0, 1, 4)), new Date(Date.UTC(2026, 0, 1, 12)));
  assert.deepEqual(usage.byIp.get('172.22.9.1'), { down: 7 + Number.MAX_SAFE_INTEGER, up: 2 });
});
