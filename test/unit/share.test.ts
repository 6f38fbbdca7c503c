// The allocation between sites (src/sharing/allocate.ts): properties over random cases from
// a seeded PRNG, the smoothing (src/sharing/smooth.ts) on a simulated two-site step, and the
// `reselqos share --json` contract (stdin -> stdout, exit 2 with every error).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  allocate,
  staticSplit,
  isSaturated,
  HEADROOM,
  IDLE_FLOOR,
  DIRS,
  type ShareInput,
  type SiteInput,
  type Pair,
} from '../../src/sharing/allocate.js';
import { decide, fallback, smoothStep, type Row } from '../../src/sharing/smooth.js';
import { prng } from '../../sandbox/campus.js';

function randomCase(rnd: () => number): ShareInput {
  const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
  const n = int(1, 20);
  const global = { down: int(0, 5) === 0 ? int(0, 1000) : int(1_000_000, 10_000_000_000), up: int(1_000, 2_000_000_000) };
  const weights = [1, 1, 1, 2, 3, 0.5, 1.7, 10];
  const sites: SiteInput[] = [];
  for (let i = 0; i < n; i++) {
    const pair = (f: (g: number, d: 'down' | 'up') => number): Pair => ({ down: f(global.down, 'down'), up: f(global.up, 'up') });
    const cap = pair((g) => (rnd() < 0.1 ? 0 : int(0, Math.floor(g * 1.3))));
    const demand = pair((_g, d) => {
      const r = rnd();
      return r < 0.2 ? 0 : r < 0.5 ? int(0, Math.floor(cap[d] * 0.3)) : int(0, Math.floor(cap[d] * 1.1));
    });
    const allocated = rnd() < 0.3 ? null : pair((_g, d) => int(0, cap[d]));
    sites.push({ site: `s${i}`, weight: weights[int(0, weights.length - 1)]!, cap, demand, allocated, fresh: rnd() < 0.9 });
  }
  return { global, sites };
}

const CASES = 3000;
/** assert.ok with a message built only on failure (the case is printed whole). */
function ok(cond: boolean, msg: () => string): void {
  if (!cond) assert.fail(msg());
}

test(`allocate: ${CASES} random cases (1-20 sites, seed 15): every property holds`, () => {
  const rnd = prng(15);
  let stale = 0,
    everyoneFits = 0,
    contended = 0,
    satChecked = 0;
  for (let c = 0; c < CASES; c++) {
    const input = randomCase(rnd);
    const out = allocate(input);
    const why = (): string => JSON.stringify({ input, out });
    assert.deepEqual(
      out.map((s) => s.site),
      input.sites.map((s) => s.site),
      'same sites, same order',
    );
    assert.deepEqual(allocate(input), out, 'deterministic');
    const allFresh = input.sites.every((s) => s.fresh);
    if (!allFresh) stale++;
    for (const d of DIRS) {
      const G = input.global[d];
      const x = out.map((s) => s[d]);
      const W = input.sites.reduce((a, s) => a + s.weight, 0);
      const share = input.sites.map((s) => Math.floor((G * s.weight) / W));
      const st = input.sites.map((s, i) => Math.min(s.cap[d], share[i]!));
      const sum = x.reduce((a, b) => a + b, 0);
      for (const v of x) ok(Number.isSafeInteger(v) && v >= 0, () => `integer bit/s ${why()}`);
      ok(sum <= G, () => `sum ${sum} <= global ${G} ${why()}`);
      input.sites.forEach((s, i) => ok(x[i]! <= s.cap[d], () => `site ${i} ${d} ${x[i]} <= cap ${s.cap[d]} ${why()}`));
      if (!allFresh) {
        ok(
          x.every((v, i) => v === st[i]),
          () => `a stale site: the static split ${why()}`,
        );
        continue;
      }
      const sumCap = input.sites.reduce((a, s) => a + s.cap[d], 0);
      ok(sum === Math.min(G, sumCap), () => `all fresh: nothing left unused below the caps ${d} ${why()}`);
      const sat = input.sites.map((s) => isSaturated(s.demand[d], s.allocated ? s.allocated[d] : st[input.sites.indexOf(s)]!));
      const want = input.sites.map((s, i) =>
        sat[i] ? s.cap[d] : Math.min(s.cap[d], Math.max(Math.floor(s.demand[d] * (1 + HEADROOM)), Math.floor(st[i]! * IDLE_FLOOR))),
      );
      input.sites.forEach((s, i) => {
        if (sat[i]) ok(x[i]! >= Math.min(s.cap[d], share[i]!), () => `saturated site ${i} gets min(cap, share) ${why()}`);
        else ok(x[i]! >= Math.min(s.demand[d], share[i]!, s.cap[d]), () => `non-saturated site ${i} keeps min(demand, share) ${why()}`);
      });
      if (want.reduce((a, b) => a + b, 0) <= G) {
        everyoneFits++;
        input.sites.forEach((s, i) => {
          ok(x[i]! >= want[i]!, () => `everyone fits: site ${i} gets its demand + headroom ${why()}`);
          ok(x[i]! >= Math.min(s.demand[d], s.cap[d]), () => `everyone fits: site ${i} gets its demand ${why()}`);
        });
      } else {
        contended++;
      }
      // weighted max-min fairness among saturated sites: one below its cap has no less per
      // unit of weight than any other saturated site (up to one bit/s of rounding each)
      for (let i = 0; i < x.length; i++) {
        if (!sat[i] || x[i]! >= input.sites[i]!.cap[d]) continue;
        for (let j = 0; j < x.length; j++) {
          if (!sat[j] || i === j) continue;
          satChecked++;
          const wi = input.sites[i]!.weight,
            wj = input.sites[j]!.weight;
          ok(
            x[i]! / wi + 1 / wi + 1 / wj >= x[j]! / wj,
            () => `max-min: saturated ${i} (${x[i]}/${wi}) below cap vs ${j} (${x[j]}/${wj}) ${why()}`,
          );
        }
      }
    }
  }
  assert.ok(
    stale > 100 && everyoneFits > 100 && contended > 100 && satChecked > 1000,
    `coverage: stale ${stale}, fits ${everyoneFits}, contended ${contended}, saturated pairs ${satChecked}`,
  );
});

const M = 1_000_000;
const site = (name: string, demand: number, allocated: number | null, o: Partial<SiteInput> = {}): SiteInput => ({
  site: name,
  weight: 1,
  cap: { down: 50 * M, up: 50 * M },
  demand: { down: demand, up: 0 },
  allocated: allocated === null ? null : { down: allocated, up: 0 },
  fresh: true,
  ...o,
});
const G60 = { down: 60 * M, up: 60 * M };

test("allocate: the issue's two-campus cases (global 60 Mbit/s, caps 50)", () => {
  // A saturated, B idle: A its cap, B the spare 10
  assert.deepEqual(
    allocate({ global: G60, sites: [site('a', 29 * M, 30 * M), site('b', 0, 30 * M)] }).map((s) => s.down),
    [50 * M, 10 * M],
  );
  // both saturated: 30 / 30
  assert.deepEqual(
    allocate({ global: G60, sites: [site('a', 48 * M, 50 * M), site('b', 9.5 * M, 10 * M)] }).map((s) => s.down),
    [30 * M, 30 * M],
  );
  // weights 2:1, both saturated: 40 / 20
  assert.deepEqual(
    allocate({ global: G60, sites: [site('a', 48 * M, 50 * M, { weight: 2 }), site('b', 9.5 * M, 10 * M)] }).map((s) => s.down),
    [40 * M, 20 * M],
  );
  // B uses 12 of its 30 (not saturated): keeps 12 + 20 % = 14.4 (KEEP), A takes the other 45.6
  assert.deepEqual(
    allocate({ global: G60, sites: [site('a', 29 * M, 30 * M), site('b', 12 * M, 30 * M)] }).map((s) => s.down),
    [45.6 * M, 14.4 * M],
  );
  // everybody fits (A's cap 40 + B's 12 x 1.2 <= 60): the saturated A gets its cap before B's headroom above 14.4
  assert.deepEqual(
    allocate({ global: G60, sites: [site('a', 29 * M, 30 * M, { cap: { down: 44 * M, up: 0 } }), site('b', 12 * M, 30 * M)] }).map(
      (s) => s.down,
    ),
    [44 * M, 16 * M],
  );
  // a stale site: the static split
  assert.deepEqual(
    allocate({ global: G60, sites: [site('a', 49 * M, 50 * M), site('b', 0, 10 * M, { fresh: false })] }).map((s) => s.down),
    [30 * M, 30 * M],
  );
  // nobody busy: the spare is spread by weight (static split)
  assert.deepEqual(
    allocate({ global: G60, sites: [site('a', 0, 30 * M), site('b', 1 * M, 30 * M)] }).map((s) => s.down),
    [30 * M, 30 * M],
  );
  // rounding: three equal sites share 100 bit/s as 34 + 33 + 33
  const three = allocate({
    global: { down: 100, up: 100 },
    sites: ['a', 'b', 'c'].map((n) => ({ site: n, weight: 1, cap: { down: 100, up: 100 }, demand: { down: 100, up: 100 }, fresh: true })),
  });
  assert.deepEqual(
    three.map((s) => s.down),
    [34, 33, 33],
  );
  assert.deepEqual(
    staticSplit(100, [
      { weight: 1, cap: 100 },
      { weight: 1, cap: 100 },
      { weight: 1, cap: 100 },
    ]),
    [33, 33, 33],
  );
});

/**
 * Two sites over the same rows, the way the daemons run: each cycle a site measures its
 * throughput over the last interval (min(true demand, applied) x 0.96, what TCP through HTB
 * gives), writes its row and decides; A and B alternate (B half an interval after A).
 */
function simulate(steps: Array<{ at: number; a: number; b: number }>, cycles: number, noise = 0, seed = 1) {
  const rnd = prng(seed);
  const applied: { a: number | null; b: number | null } = { a: null, b: null };
  const rows: Record<string, Row> = {};
  const trace: Array<{ cycle: number; a: number; b: number; sum: number }> = [];
  let want = { a: 0, b: 0 };
  for (let c = 0; c < cycles; c++) {
    for (const s of steps) if (s.at === c) want = { a: s.a, b: s.b };
    for (const name of ['a', 'b'] as const) {
      const cur = applied[name];
      const through = cur === null ? 0 : Math.min(want[name], cur) * 0.96 * (1 + noise * (rnd() * 2 - 1));
      rows[name] = {
        site: name,
        weight: 1,
        cap: { down: 50 * M, up: 50 * M },
        demand: { down: Math.round(through), up: 0 },
        allocated: cur === null ? null : { down: cur, up: 0 },
        fresh: true,
      };
      const dec = decide(name, G60, Object.values(rows), cur === null ? null : { down: cur, up: 0 });
      applied[name] = dec.next.down;
      rows[name] = { ...rows[name], applied: { down: dec.next.down, up: 0 } };
      const sum = (applied.a ?? 0) + (applied.b ?? 0);
      assert.ok(sum <= G60.down, `cycle ${c} ${name}: applied sum ${sum} above the global rate`);
    }
    trace.push({ cycle: c, a: applied.a!, b: applied.b!, sum: applied.a! + applied.b! });
  }
  return trace;
}

const near = (v: number, t: number, tol = 0.05): boolean => Math.abs(v - t) <= t * tol;
/** First cycle from which both stay within 5 % of their targets to the end. */
function settledAt(trace: ReturnType<typeof simulate>, from: number, ta: number, tb: number): number {
  let k = trace.length;
  for (let c = trace.length - 1; c >= from; c--) {
    if (near(trace[c]!.a, ta) && near(trace[c]!.b, tb)) k = c;
    else break;
  }
  return k - from;
}
/** Times a sequence changes direction (up then down or down then up). */
function reversals(values: number[]): number {
  let n = 0,
    last = 0;
  for (let i = 1; i < values.length; i++) {
    const d = Math.sign(values[i]! - values[i - 1]!);
    if (d !== 0 && last !== 0 && d !== last) n++;
    if (d !== 0) last = d;
  }
  return n;
}

test('smoothing: two-site steps converge in a few cycles, without oscillation, never above the global rate', (t) => {
  const BIG = 1e12;
  const trace = simulate(
    [
      { at: 0, a: BIG, b: 0 },
      { at: 20, a: BIG, b: BIG },
      { at: 50, a: BIG, b: 0 },
    ],
    80,
  );
  const alone = settledAt(trace.slice(0, 20), 0, 50 * M, 10 * M);
  const both = settledAt(trace.slice(0, 50), 20, 30 * M, 30 * M);
  const back = settledAt(trace, 50, 50 * M, 10 * M);
  t.diagnostic(
    `A alone settles at 50/10 after ${alone} cycle(s); B starts: 30/30 after ${both} cycle(s); B stops: 50/10 after ${back} cycle(s)`,
  );
  t.diagnostic(
    `trace (Mbit/s) around the B start: ${trace
      .slice(19, 28)
      .map((r) => `${(r.a / M).toFixed(1)}/${(r.b / M).toFixed(1)}`)
      .join(' ')}`,
  );
  t.diagnostic(
    `trace (Mbit/s) around the B stop:  ${trace
      .slice(49, 58)
      .map((r) => `${(r.a / M).toFixed(1)}/${(r.b / M).toFixed(1)}`)
      .join(' ')}`,
  );
  assert.ok(alone <= 3, `alone: ${alone}`);
  assert.ok(both <= 6, `both: ${both}`);
  assert.ok(back <= 6, `back: ${back}`);
  // monotone after each step: no overshoot, no oscillation
  assert.equal(reversals(trace.slice(20, 50).map((r) => r.a)), 0, 'A after B starts');
  assert.equal(reversals(trace.slice(20, 50).map((r) => r.b)), 0, 'B after B starts');
  assert.equal(reversals(trace.slice(50).map((r) => r.a)), 0, 'A after B stops');
  // steady state: no tc change at all (the dead band)
  assert.equal(new Set(trace.slice(35, 50).map((r) => `${r.a}/${r.b}`)).size, 1);
});

test('smoothing: with ±5 % measurement noise the allocations stay put (dead band)', (t) => {
  for (const [label, b, ta, tb] of [
    ['both saturated', 1e12, 30 * M, 30 * M],
    ['B uses 15 Mbit/s', 15 * M, 42.72 * M, 17.28 * M],
  ] as const) {
    const trace = simulate([{ at: 0, a: 1e12, b }], 200, 0.05, 7);
    const tail = trace.slice(20);
    const changes = tail.filter((r, i) => i > 0 && (r.a !== tail[i - 1]!.a || r.b !== tail[i - 1]!.b)).length;
    const spread = Math.max(...tail.map((r) => Math.abs(r.a - ta) / ta), ...tail.map((r) => Math.abs(r.b - tb) / tb));
    t.diagnostic(
      `${label}, noise ±5 %: ${changes} change(s) over 180 cycles, largest distance from ${(ta / M).toFixed(1)}/${(tb / M).toFixed(1)} Mbit/s ${(spread * 100).toFixed(1)} %`,
    );
    assert.ok(spread <= 0.1, `spread ${spread}`);
    assert.ok(changes <= 20, `changes ${changes}`);
  }
});

test('smoothStep and fallback: decreases at once, increases by 60 % of the gap, clamped by room; DB down', () => {
  const o = { global: 100 };
  assert.equal(smoothStep(50, 10, 100, o), 10);
  assert.equal(smoothStep(10, 50, 100, o), 34);
  assert.equal(smoothStep(10, 50, 20, o), 20);
  assert.equal(smoothStep(49, 50, 100, o), 49); // dead band
  assert.equal(smoothStep(null, 50, 40, o), 40);
  const st = { down: 30, up: 30 };
  assert.deepEqual(fallback({ down: 50, up: 10 }, st, 1000, 6000), { down: 30, up: 10 });
  assert.deepEqual(fallback({ down: 50, up: 10 }, st, 6000, 6000), st);
  assert.deepEqual(fallback(null, st, 0, 6000), st);
});

const root = fileURLToPath(new URL('../../../', import.meta.url));
function share(stdin: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [join(root, 'dist/cli.js'), 'share', '--json'], (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
    child.stdin!.end(stdin);
  });
}

test('reselqos share --json: rows on stdin -> allocation on stdout; exit 2 with every error', async () => {
  const input = {
    global: { down: 60 * M, up: 20 * M },
    sites: [
      {
        site: 'rennes',
        weight: 1,
        cap: { down: 50 * M, up: 20 * M },
        demand: { down: 0, up: 0 },
        allocated: { down: 30 * M, up: 10 * M },
        fresh: true,
      },
      { site: 'brest', weight: 1, cap: { down: 50 * M, up: 20 * M }, demand: { down: 29 * M, up: 9.5 * M }, fresh: true },
    ],
  };
  const r = await share(JSON.stringify(input));
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), {
    sites: [
      { site: 'rennes', down: 10 * M, up: 1 * M },
      { site: 'brest', down: 50 * M, up: 19 * M },
    ],
  });

  const bad = {
    global: { down: 60 * M },
    sites: [
      { site: 'brest', weight: 1, cap: { down: 50 * M, up: 20 * M }, demand: { down: 0, up: 0 }, fresh: true },
      { site: 'brest', weight: -1, cap: { down: -5, up: '20' }, demand: { down: 0, up: 0 }, allocated: { down: 1.5, up: 0 }, fresh: 'yes' },
      { site: 'bad name', weight: 1e300, cap: { down: 2 ** 64, up: 0 }, demand: { down: 0, up: 0 }, fresh: true },
    ],
  };
  const e = await share(JSON.stringify(bad));
  assert.equal(e.code, 2);
  assert.equal(e.stdout, '');
  for (const want of [
    'global.up: expected a non-negative integer',
    'sites[1].site: duplicate site name "brest"',
    'sites[1].weight: expected a positive number',
    'sites[1].cap.down: expected a non-negative integer',
    'sites[1].cap.up: expected a non-negative integer',
    'sites[1].allocated.down: expected a non-negative integer',
    'sites[1].fresh: expected true or false',
    'sites[2].site: expected a site name',
    'sites[2].weight: expected a positive number from 0.001 to 1000, got 1e+300',
    'sites[2].cap.down: expected a non-negative integer (bit/s) up to 10000000000000',
  ])
    assert.ok(e.stderr.includes(want), `stderr names "${want}":\n${e.stderr}`);
  assert.match(e.stderr, /10 error\(s\)/);
  const notJson = await share('{"global":');
  assert.equal(notJson.code, 2);
  assert.match(notJson.stderr, /not JSON/);
});

test('config: [site] name defaults to the host name; [sharing] keys, defaults and errors', async () => {
  const { parseConfig, ConfigError } = await import('../../src/config/config.js');
  const { minimalConf } = await import('./fixtures.js');
  const c = parseConfig(minimalConf(), 'qos.conf', { hostname: 'gw-brest' });
  assert.deepEqual(c.site, { name: 'gw-brest' });
  assert.deepEqual(c.sharing, { enabled: false, weight: 1, stale: 3, db: 'qos' });
  const on = parseConfig(
    minimalConf({
      rates: 'globalDown = 60Mbit\nglobalUp = 20Mbit',
      extra: '[site]\nname = brest\n[sharing]\nenabled = 1\nweight = 2.5\nstale = 5\ndb = sites_db',
    }),
    'qos.conf',
    { hostname: 'x' },
  );
  assert.deepEqual(on.site, { name: 'brest' });
  assert.deepEqual(on.sharing, { enabled: true, weight: 2.5, stale: 5, db: 'sites_db' });
  assert.equal(on.rates['globalDown'], 60_000_000);
  try {
    parseConfig(minimalConf({ extra: '[site]\nname = bad name!\n[sharing]\nenabled = 1\nweight = 0\nstale = 0\ndb = x-y' }), 'qos.conf');
    assert.fail('expected a ConfigError');
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    const text = e.message;
    for (const want of [
      /\[site\] name: expected a site name/,
      /\[sharing\] weight: expected a number from 0.001 to 1000/,
      /\[sharing\] stale: expected an integer from 1/,
      /\[sharing\] db: expected an SQL identifier/,
      /\[rates\] globalDown: is required with \[sharing\] enabled = 1/,
      /\[rates\] globalUp: is required/,
    ]) {
      assert.match(text, want);
    }
  }
});

test('parseClassCounters: bytes and overlimits of the root class (iproute2 6.1 text)', async () => {
  const { parseClassCounters } = await import('../../src/kernel/counters.js');
  const text =
    'class htb 1:1 root rate 40Mbit ceil 40Mbit burst 1600b cburst 1600b \n Sent 18005144 bytes 11902 pkt (dropped 0, overlimits 199 requeues 0) \n backlog 0b 0p requeues 0\n';
  assert.deepEqual(parseClassCounters(text), { bytes: 18005144, overlimits: 199 });
  assert.equal(parseClassCounters(''), null);
});

test('SharingSite with the database unreachable: one error line, the static share among the sites last seen (kept on disk by an earlier run)', async () => {
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { DateTime } = await import('luxon');
  const { parseConfig } = await import('../../src/config/config.js');
  const { minimalConf } = await import('./fixtures.js');
  const { MemoryLogger } = await import('../../src/log.js');
  const { SharingSite } = await import('../../src/sharing/site.js');
  const dir = mkdtempSync(join(tmpdir(), 'rq-share-'));
  try {
    // port 1 on loopback: nothing listens, the connection is refused at once
    const config = parseConfig(
      minimalConf({
        database: 'host = 127.0.0.1:1\nconnectTimeout = 500ms',
        rates: 'globalDown = 60Mbit\nglobalUp = 60Mbit',
        qos: 'interval = 2s',
        path: `state = ${dir}`,
        extra: '[site]\nname = brest\n[sharing]\nenabled = 1\nstale = 3',
      })
        .replace('down = 100Mbit', 'down = 50Mbit')
        .replace('up = 100Mbit', 'up = 50Mbit'),
      'qos.conf',
    );
    let bytes = 0;
    const exec = async (): Promise<{ stdout: string; stderr: string; code: number }> => {
      bytes += 5_000_000; // 40 Mbit over each 1 s step
      return {
        stdout: `class htb 1:1 root rate 50Mbit\n Sent ${bytes} bytes 1 pkt (dropped 0, overlimits 0 requeues 0)\n`,
        stderr: '',
        code: 0,
      };
    };
    const t0 = DateTime.fromISO('2026-12-01T00:00:00Z');
    const at = (s: number) => t0.plus({ seconds: s });

    // no site ever seen: the static share among itself alone, its cap (documented limit)
    const log = new MemoryLogger();
    const alone = new SharingSite(config, exec, log, t0.toMillis());
    assert.deepEqual(await alone.before(at(0)), { down: 50 * M, up: 50 * M });
    assert.equal(alone.view.mode, 'db-down');
    assert.match(log.of('error').join('\n'), /sharing: database 127\.0\.0\.1\/qos unusable: .*static split/);
    await alone.close();

    // the sites of an earlier run on disk: rennes (weight 1, cap 50) → static share 30
    writeFileSync(join(dir, 'sharing-sites.json'), JSON.stringify([{ site: 'rennes', weight: 1, cap: { down: 50 * M, up: 50 * M } }]));
    const site = new SharingSite(config, exec, new MemoryLogger(), t0.toMillis());
    assert.deepEqual(await site.before(at(0)), { down: 30 * M, up: 30 * M });
    await site.after(true, { down: 1, up: 0 });
    await site.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
