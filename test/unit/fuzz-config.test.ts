// Fuzzing qos.conf (src/config/reader.ts, config.ts parseConfig): random values for every key of
// the schema (src/config/schema.ts, so keys added later are fuzzed too), pattern keys, unknown
// keys and sections, and the shipped conf/qos.conf mutated line by line and byte by byte. The
// answer is either a frozen Config, which a reload can rebuild from its own raw values
// (withRunningRestartKeys), or a ConfigError whose every problem names this file and a line of
// it that is a section header or a key line of that section; never another exception, never a
// slow parse. Runs and seed: test/helpers/fuzz.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { ConfigError, formatProblem, parseConfig, withRunningRestartKeys, type Config } from '../../src/config/config.js';
import { KEYS, SECTIONS } from '../../src/config/schema.js';
import { fuzz, timed } from '../helpers/fuzz.js';

const FILE = '/etc/reselqos/fuzz.conf';
const SAMPLE = readFileSync(new URL('../../../conf/qos.conf', import.meta.url), 'utf8');

/** Values that mean something to one parser or another, and the edges of each. */
const SPECIAL = [
  '',
  '0',
  '1',
  '-1',
  '00',
  '1.',
  '.5',
  '0.5',
  '1e3',
  '1e400',
  '9'.repeat(400),
  'NaN',
  'Infinity',
  '-0',
  '0x10',
  'yes',
  'no',
  'on',
  'off',
  'true',
  'false',
  'null',
  'TRUE',
  '100Mbit',
  '100mbps',
  '0Mbit',
  '0.0001bit',
  '100MB',
  '2GiB',
  '1Mb',
  '18014398509481984Mbit',
  '100 Mbit',
  '20%',
  '100%',
  '101%',
  '0%',
  '%',
  '10s',
  '596h',
  '597h',
  '35791min',
  '35792m',
  '2147483647ms',
  '2147483648ms',
  '0',
  '0ms',
  '99ms',
  '5m',
  '1h',
  '2min',
  '1.5s',
  '10 s',
  '127.0.0.1:9721',
  '[::1]:9721',
  '0.0.0.0:80',
  '10.0.0.1:0',
  '[fe80::1]:80',
  '[2001:db8::5]:80',
  '172.22.199.5:80',
  '1.2.3.4:65536',
  'ldap://a',
  'ldaps://[::1]:636',
  'ldap://h:0',
  'h:389',
  '[::1]',
  'a b',
  '/abs/path',
  '/',
  '//',
  'rel/path',
  '172.22.',
  '172.',
  '256.1.',
  '172.22.0.0/16',
  '10.0.0.0/33',
  '2001:db8::/32',
  '::/0',
  '1.2.3.4',
  'eth0',
  'eth0.990',
  'a+b',
  'a/b',
  'a:b',
  '.',
  '..',
  'x'.repeat(16),
  'é',
  'ab@c',
  '(uid=*)',
  '((',
  ')(',
  '(a))(',
  'Europe/Paris',
  'UTC',
  'Mars/Olympus',
  '../../etc/passwd',
  '00:00',
  '23:59',
  '24:00',
  '7:5',
  '20:00',
  '4:00',
  '"quoted"',
  "'q'",
  '"',
  "'",
  '[1,2]',
  '{"a":1}',
  '"[]"',
  'a;comment',
  'a # c',
  '\\;',
  '\\',
  'x\\',
  '=',
  '==',
  'reject',
  'drop',
  'fw',
  'classify',
  'sfq',
  'cake',
  'all',
  'active',
  'debug',
  'peer, direct',
  'peer,bogus',
  '\u0000',
  '\u001b[31m',
  '\u2028',
  '\uFEFF',
  'x'.repeat(70),
  'a'.repeat(5000),
];

const noNewline = (s: string): string => s.replace(/[\r\n]/g, ' ');

/** A value for one key: special, a mutation of the key's default, or random text. */
const valueFor = (def: string | undefined): fc.Arbitrary<string> =>
  fc
    .oneof(
      { weight: 4, arbitrary: fc.constantFrom(...SPECIAL) },
      { weight: 2, arbitrary: fc.constant(def ?? '') },
      {
        weight: 3,
        arbitrary: fc
          .tuple(fc.nat(), fc.nat(), fc.string({ maxLength: 4 }), fc.constantFrom('insert', 'delete', 'replace', 'double'))
          .map(([a, b, s, op]) => {
            const d = def ?? '';
            const i = d.length === 0 ? 0 : a % (d.length + 1);
            const j = Math.min(d.length, i + (b % 4));
            return op === 'insert'
              ? d.slice(0, i) + s + d.slice(i)
              : op === 'delete'
                ? d.slice(0, i) + d.slice(j)
                : op === 'double'
                  ? d + d
                  : d.slice(0, i) + s + d.slice(j);
          }),
      },
      {
        weight: 3,
        arbitrary: fc
          .tuple(
            fc.oneof(
              fc.nat(),
              fc.nat().map((n) => n * 1e6),
              fc.double({ noNaN: true, min: 0, max: 1e20 }),
            ),
            fc.constantFrom('', 'bit', 'kbit', 'Mbit', 'Gbit', 'Mbps', 'MB', 'GiB', 'kb', 's', 'ms', 'm', 'h', '%'),
          )
          .map(([n, u]) => `${n}${u}`),
      },
      { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
    )
    .map(noNewline);

/** A key as written: its case may differ from the schema's. */
const spelled = (key: string): fc.Arbitrary<string> =>
  fc.constantFrom(key, key.toLowerCase(), key.toUpperCase(), key[0]!.toUpperCase() + key.slice(1));

const RULE_FIELDS = ['From', 'To', 'GlobalUp', 'GlobalDown', 'Up', 'Down'];

/** Keys beyond the table: [ratesrules] ruleN*, [firewall] eth_* ip_* net*, [rates] any name; and unknown ones. */
const extraLine = fc.oneof(
  fc
    .tuple(fc.constantFrom('0', '1', '2', '01', '99999999999999999999'), fc.constantFrom(...RULE_FIELDS), valueFor('20:00'))
    .map(([n, f, v]) => ({ section: 'ratesrules', line: `rule${n}${f} = ${v}` })),
  fc
    .tuple(fc.constantFrom('eth_x', 'ip_int', 'ip_ext', 'net6', 'net4', 'netns', 'net'), valueFor('10.0.0.1'))
    .map(([k, v]) => ({ section: 'firewall', line: `${k} = ${v}` })),
  fc
    .tuple(fc.constantFrom('tunnelUp', 'globalDown', 'GLOBALUP', 'x', '_y', 'constructor', 'toString'), valueFor('20Mbit'))
    .map(([k, v]) => ({ section: 'rates', line: `${k} = ${v}` })),
  fc
    .tuple(fc.constantFrom(...SECTIONS), fc.string({ maxLength: 12 }), valueFor(''))
    .map(([s, k, v]) => ({ section: s, line: `${noNewline(k)} = ${v}` })),
  fc
    .tuple(
      fc.constantFrom(...SECTIONS),
      fc.constantFrom('__proto__', 'constructor', 'hasOwnProperty', 'a[]', 'a[]', 'host[]', 'x.y', '"quoted"'),
    )
    .map(([s, k]) => ({ section: s, line: `${k} = 1` })),
  fc.constantFrom(...SECTIONS).map((s) => ({ section: s, line: 'bare' })),
);

/** The required keys with sane values, so that most cases get past "is required" into the values. */
const BASE: Record<string, string[]> = {
  ldap: ['host = ldap.example.org'],
  database: ['host = db.example.org'],
  firewall: ['eth_ext = ext0', 'eth_int = int0', 'net6 = 2001:db8::/32'],
  rates: ['down = 100Mbit', 'up = 100Mbit'],
};

/** A qos.conf from the schema: some keys with random values, extra lines, sections in any order. */
const schemaText = fc
  .record({
    keep: fc.boolean(),
    keys: fc.array(
      fc.constantFrom(...KEYS).chain((s) => fc.tuple(fc.constant(s), spelled(s.key), valueFor(s.def))),
      { maxLength: 12 },
    ),
    extra: fc.array(extraLine, { maxLength: 4 }),
    order: fc.shuffledSubarray([...SECTIONS], { minLength: 0 }),
    header: fc.array(fc.constantFrom('', ' ', '  [x]', '[LDAP]', '[ldap.sub]', '[__proto__]', 'top = 1', '; c', '# c'), { maxLength: 2 }),
    eq: fc.constantFrom(' = ', '=', ' =', '\t=\t'),
  })
  .map(({ keep, keys, extra, order, header, eq }) => {
    const by = new Map<string, string[]>(SECTIONS.map((s) => [s, keep ? [...(BASE[s] ?? [])] : []]));
    for (const [spec, key, value] of keys) by.get(spec.section)!.push(`${key}${eq}${value}`);
    for (const e of extra) by.get(e.section)!.push(e.line);
    const sections = [...order, ...SECTIONS.filter((s) => !order.includes(s) && by.get(s)!.length > 0)];
    return [...header, ...sections.flatMap((s) => [`[${s}]`, ...by.get(s)!])].join('\n');
  });

/** conf/qos.conf mutated: lines dropped, doubled, swapped, inserted; bytes flipped, inserted, cut. */
const mutatedText = fc
  .array(
    fc.oneof(
      fc.tuple(fc.constant('dropLine'), fc.nat(), fc.constant('')),
      fc.tuple(fc.constant('dupLine'), fc.nat(), fc.constant('')),
      fc.tuple(fc.constant('swapLines'), fc.nat(), fc.nat().map(String)),
      fc.tuple(
        fc.constant('insertLine'),
        fc.nat(),
        fc.oneof(
          extraLine.map((e) => e.line),
          fc.constantFrom(...SECTIONS).map((s) => `[${s}]`),
          fc.string({ maxLength: 30 }),
        ),
      ),
      fc.tuple(
        fc.constant('insertChars'),
        fc.nat(),
        fc.oneof(
          fc.constantFrom('\r', '\n', '\r\n', '[', ']', '=', ';', '#', '"', "'", '\\', '\u0000', '.', ' ', '\t', '%', 'é'),
          fc.string({ unit: 'binary', maxLength: 6 }),
        ),
      ),
      fc.tuple(fc.constant('flip'), fc.nat(), fc.integer({ min: 1, max: 0x7f }).map(String)),
      fc.tuple(fc.constant('cut'), fc.nat(), fc.constant('')),
    ),
    { minLength: 1, maxLength: 8 },
  )
  .map((ops) => {
    let text = SAMPLE;
    for (const [op, at, arg] of ops) {
      const lines = text.split('\n');
      const i = at % Math.max(1, lines.length);
      const c = at % Math.max(1, text.length);
      if (op === 'dropLine') lines.splice(i, 1);
      else if (op === 'dupLine') lines.splice(i, 0, lines[i] ?? '');
      else if (op === 'swapLines') {
        const j = Number(arg) % Math.max(1, lines.length);
        [lines[i], lines[j]] = [lines[j] ?? '', lines[i] ?? ''];
      } else if (op === 'insertLine') lines.splice(i, 0, arg);
      if (op.endsWith('Line') || op === 'swapLines') text = lines.join('\n');
      else if (op === 'insertChars') text = text.slice(0, c) + arg + text.slice(c);
      else if (op === 'flip') text = text.slice(0, c) + String.fromCharCode(text.charCodeAt(c) ^ Number(arg)) + text.slice(c + 1);
      else if (op === 'cut') text = text.slice(0, c);
    }
    return text;
  });

/** The section of each line as a reader of the file sees it (headers, then keys below them). */
function lineSections(text: string): { kind: 'header' | 'key' | 'other'; section: string }[] {
  let section = '';
  return text.split(/\r?\n/).map((raw) => {
    const line = raw.trim();
    if (line === '' || line.startsWith(';') || line.startsWith('#')) return { kind: 'other', section };
    const h = /^\[([^\]]*)\]/.exec(line);
    if (h) {
      section = h[1]!.trim();
      return { kind: 'header', section };
    }
    return { kind: 'key', section };
  });
}

const MAX_TIMER_MS = 2 ** 31 - 1;

/** Every number in a Config, with its path (config.qos.intervalMs ...). */
function numbers(o: unknown, path = 'config'): [string, number][] {
  if (typeof o === 'number') return [[path, o]];
  if (o === null || typeof o !== 'object') return [];
  return Object.entries(o).flatMap(([k, v]) => numbers(v, `${path}.${k}`));
}

/** The answer for `text`: a Config that reloads to itself, or a ConfigError naming lines of this file. */
function checkAnswer(text: string): void {
  let config: Config;
  try {
    config = timed('parseConfig', 2000, () => parseConfig(text, FILE, { hostname: 'gw1' }));
  } catch (e) {
    if (!(e instanceof ConfigError)) throw new Error(`not a ConfigError: ${(e as Error)?.stack ?? String(e)}`);
    assert.ok(e.problems.length > 0, 'a ConfigError lists at least one problem');
    const lines = lineSections(text);
    for (const p of e.problems) {
      assert.equal(p.file, FILE);
      assert.ok(typeof p.message === 'string' && p.message !== '', 'a problem says what is wrong');
      assert.ok(e.message.includes(formatProblem(p)), 'the message lists every problem');
      if (p.line === null) continue;
      assert.ok(Number.isSafeInteger(p.line) && p.line >= 1 && p.line <= lines.length, `line ${p.line} is a line of the file`);
      const at = lines[p.line - 1]!;
      assert.notEqual(at.kind, 'other', `${formatProblem(p)}: names a blank or comment line`);
      if (p.section !== '')
        assert.equal(at.section.toLowerCase(), p.section.toLowerCase(), `${formatProblem(p)}: names a line of section [${at.section}]`);
    }
    return;
  }
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.qos) && Object.isFrozen(config.rates), 'frozen');
  for (const d of ['down', 'up'] as const)
    assert.ok(Number.isSafeInteger(config.rates[d]) && config.rates[d]! > 0, `rates.${d} a positive integer`);
  assert.ok(config.qos.groups >= 1 && config.qos.groups <= 64);
  for (const [path, v] of numbers(config)) {
    assert.ok(Number.isFinite(v), `${path} = ${v}: every number of a Config is finite`);
    // node's timers take at most 2^31-1 ms: a longer delay fires after 1 ms (a cycle every millisecond)
    if (path.endsWith('Ms')) assert.ok(v >= 0 && v <= MAX_TIMER_MS, `${path} = ${v}: a duration a timer can wait`);
  }
  // A reload rebuilds the configuration from the raw values: the same values again.
  // (Names of pattern keys come back lowercased: the raw values are keyed so. Only shown, never looked up.)
  const again = timed('withRunningRestartKeys', 2000, () => withRunningRestartKeys(config, config));
  for (const part of [
    'ldap',
    'database',
    'firewall',
    'rates',
    'rateRules',
    'qos',
    'sharing',
    'paths',
    'log',
    'metrics',
    'publish',
    'site',
  ] as const)
    // names included: a rate named tunnelDown stays tunnelDown (the reload lowercased them before keyNames)
    assert.deepEqual(again[part], config[part], `a reload of the same file keeps [${part}]`);
}

test('fuzz: qos.conf from the schema, random values per key: a Config or a ConfigError naming file:line', () => {
  fuzz(
    'config (schema values)',
    600,
    fc.property(schemaText, (text) => checkAnswer(text)),
  );
});

/** The shipped file with `key` of `section` set to `value` (its line replaced, else added under the header). */
function setKey(section: string, key: string, value: string, spelledAs = key): string {
  const lines = SAMPLE.split('\n');
  const header = lines.findIndex((l) => l.trim().toLowerCase() === `[${section}]`);
  let end = lines.findIndex((l, i) => i > header && l.trim().startsWith('['));
  if (end < 0) end = lines.length;
  const own = lines.findIndex((l, i) => i > header && i < end && new RegExp(`^\\s*${key}\\s*=`, 'i').test(l));
  if (own >= 0) lines[own] = `${spelledAs} = ${value}`;
  else if (header >= 0) lines.splice(header + 1, 0, `${spelledAs} = ${value}`);
  else lines.push(`[${section}]`, `${spelledAs} = ${value}`);
  return lines.join('\n');
}

/** The shipped file with one key of the schema set to a random value (every other value valid). */
const oneKeyText = fc
  .constantFrom(...KEYS)
  .chain((spec) => fc.tuple(fc.constant(spec), spelled(spec.key), valueFor(spec.def)))
  .map(([spec, key, value]) => setKey(spec.section, spec.key, value, key));

test('fuzz: conf/qos.conf with one key of the schema at a random value: a Config or a ConfigError naming file:line', () => {
  fuzz(
    'config (one key)',
    400,
    fc.property(oneKeyText, (text) => checkAnswer(text)),
  );
});

test('fuzz: conf/qos.conf mutated (lines and bytes): a Config or a ConfigError naming file:line', () => {
  checkAnswer(SAMPLE);
  fuzz(
    'config (mutated text)',
    400,
    fc.property(mutatedText, (text) => checkAnswer(text)),
  );
});

// ---- findings, each a named regression test

const withKey = (section: string, line: string): string => {
  const [key, value] = line.split(' = ') as [string, string];
  return setKey(section, key, value);
};
const problemsOf = (text: string): string[] => {
  try {
    parseConfig(text, FILE, { hostname: 'gw1' });
    return [];
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return e.problems.map(formatProblem);
  }
};

test('a duration longer than a node timer can wait (2^31-1 ms, 24.8 days) is a problem, not a cycle every millisecond', () => {
  // Found by the fuzz: `[qos] verifyInterval = 3000000` (3e9 ms) and `[database] timeout = 9…9` were taken; a
  // setTimeout beyond 2^31-1 ms fires after 1 ms (TimeoutOverflowWarning), so `interval = 600h` ran cycles back to back.
  for (const [section, line] of [
    ['qos', 'interval = 600h'],
    ['qos', 'verifyInterval = 3000000'],
    ['database', `timeout = ${'9'.repeat(400)}`],
    ['ldap', 'refresh = 2147483648ms'],
  ] as const) {
    const problems = problemsOf(withKey(section, line));
    assert.equal(problems.length, 1, `${line}: ${problems.join('; ')}`);
    assert.match(problems[0]!, /at most 2147483647 ms/);
    assert.match(problems[0]!, new RegExp(`fuzz\\.conf:\\d+: \\[${section}\\] ${line.split(' ')[0]}`));
  }
  assert.deepEqual(problemsOf(withKey('qos', 'interval = 2147483647ms')), []);
});

test('a number too large for a float ([sharing] weight, [qos] classSeperationParameter = 9…9) is a problem, not Infinity', () => {
  // Found by the fuzz: Number("9…9") is Infinity, which passed "> 0" and ">= 1".
  for (const [section, line] of [
    ['sharing', `weight = ${'9'.repeat(400)}`],
    ['qos', `classSeperationParameter = ${'9'.repeat(400)}`],
  ] as const) {
    const problems = problemsOf(withKey(section, line));
    assert.equal(problems.length, 1, `${line}: ${problems.join('; ')}`);
    assert.match(problems[0]!, /too large/);
  }
});
