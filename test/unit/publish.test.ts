// [publish] keys (TLS to a separate host, the plaintext warning) and the pure parts of the
// published tables' schema: which columns an existing table needs changed, which rows
// cannot be stored (issue 20, finding 6).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig, ConfigError } from '../../src/config/config.js';
import {
  migrations,
  peopleRowProblem,
  peopleLimits,
  classRowProblem,
  showUid,
  PEOPLE_LIMITS,
  type ColumnInfo,
  type PeopleRow,
} from '../../src/publish/schema.js';
import { minimalConf } from './fixtures.js';

const pub = (lines: string, database = 'user = acct\npassword = pw'): ReturnType<typeof parseConfig> =>
  parseConfig(minimalConf({ database, extra: `[publish]\n${lines}` }), 'q');

test('[publish] host in plaintext to a non-loopback host draws a warning naming the risk; tls, loopback or disabled do not', () => {
  const plain = pub('enabled = 1\nhost = web.example.org:3310\nuser = site\npassword = x');
  const w = plain.warnings.filter((l) => l.includes('[publish]'));
  assert.equal(w.length, 1, plain.warnings.join('\n'));
  assert.match(w[0]!, /\[publish\] host: web\.example\.org:3310 is written to in plaintext: .*password.*(set \[publish\] tls = 1)/);
  for (const quiet of [
    'enabled = 1\nhost = web.example.org\nuser = site\ntls = 1',
    'enabled = 1\nhost = 127.0.0.1:3307\nuser = site',
    'enabled = 0\nhost = web.example.org\nuser = site',
  ]) {
    const c = pub(quiet);
    assert.deepEqual(
      c.warnings.filter((l) => l.includes('[publish]')),
      [],
      quiet,
    );
  }
});

test('[publish] tls and caFile: their own with host set, else (and when unset) those of [database]', () => {
  const own = pub('enabled = 1\nhost = web.example.org\ntls = 1\ncaFile = /etc/ssl/campus.pem');
  assert.deepEqual([own.publish.tls, own.publish.caFile], [true, '/etc/ssl/campus.pem']);
  const inherit = pub('enabled = 1\nhost = web.example.org', 'tls = 1\ncaFile = /etc/ssl/db.pem');
  assert.deepEqual([inherit.publish.tls, inherit.publish.caFile], [true, '/etc/ssl/db.pem']);
  const off = pub('enabled = 1\nhost = 127.0.0.1\ntls = 0', 'tls = 1\ncaFile = /etc/ssl/db.pem');
  assert.deepEqual([off.publish.tls, off.publish.caFile], [false, null]);
  const same = pub('enabled = 1', 'tls = 1\ncaFile = /etc/ssl/db.pem');
  assert.deepEqual([same.publish.tls, same.publish.caFile], [true, '/etc/ssl/db.pem']);
  const ignored = pub('enabled = 1\ntls = 0');
  assert.ok(
    ignored.warnings.some((l) => /\[publish\] tls: ignored without \[publish\] host/.test(l)),
    ignored.warnings.join('\n'),
  );
  assert.throws(
    () => pub('enabled = 1\nhost = web.example.org\ntls = 0\ncaFile = /etc/ssl/x.pem'),
    (e: unknown) => e instanceof ConfigError && /\[publish\] caFile: is only used with tls = 1/.test(e.message),
  );
});

const info = (table: string, column: string, dataType: string, length: number, collation: string, charset = 'utf8mb4'): ColumnInfo => ({
  table,
  column,
  dataType,
  length,
  charset,
  collation,
});

test('migrations: only the columns that are shorter, not utf8mb4, or (keys) not utf8mb4_bin; a longer VARCHAR keeps its length', () => {
  const current = [
    info('people_data', 'site', 'varchar', 64, 'utf8mb4_bin'),
    info('people_data', 'uid', 'varchar', 512, 'utf8mb4_bin'),
    info('people_data', 'cn', 'varchar', 1024, 'utf8mb4_general_ci'),
    info('classes', 'site', 'varchar', 64, 'utf8mb4_bin'),
  ];
  assert.deepEqual(migrations('qos', current), [], 'as created by this version: nothing to do');
  const old = [
    info('people_data', 'site', 'varchar', 64, 'utf8mb4_general_ci'),
    info('people_data', 'uid', 'varchar', 700, 'utf8mb4_general_ci'),
    info('people_data', 'cn', 'text', 65535, 'latin1_swedish_ci', 'latin1'),
    info('classes', 'site', 'varchar', 64, 'utf8mb4_bin'),
  ];
  assert.deepEqual(migrations('qos', old), [
    {
      table: 'people_data',
      sql:
        'ALTER TABLE `qos`.people_data MODIFY site VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, ' +
        'MODIFY uid VARCHAR(700) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, MODIFY cn VARCHAR(1024) CHARACTER SET utf8mb4 NOT NULL',
      changes: [
        'site varchar(64) utf8mb4_general_ci -> varchar(64) utf8mb4_bin',
        'uid varchar(700) utf8mb4_general_ci -> varchar(700) utf8mb4_bin',
        'cn text(65535) latin1_swedish_ci -> varchar(1024) utf8mb4',
      ],
    },
  ]);
});

test('rows a table cannot hold: uid and DN counted in characters (not UTF-16 units), numbers in range, the narrower columns of an unmigrated table', () => {
  const row = (uid: string, cn: string, group = 0, amount = 0): PeopleRow => ['s', cn, uid, 'down', group, amount];
  assert.equal(peopleRowProblem(row('a'.repeat(512), 'x'.repeat(1024)), PEOPLE_LIMITS), null);
  assert.equal(peopleRowProblem(row('😀'.repeat(512), '😀'.repeat(1024)), PEOPLE_LIMITS), null, 'astral characters count once');
  assert.deepEqual(peopleRowProblem(row('a'.repeat(513), 'x'), PEOPLE_LIMITS), {
    why: 'uid has 513 characters, the column holds 512',
    keyFits: false,
  });
  assert.deepEqual(peopleRowProblem(row('a', 'x'.repeat(1025)), PEOPLE_LIMITS), {
    why: "cn (the owner's DN) has 1025 characters, the column holds 1024",
    keyFits: true,
  });
  assert.match(peopleRowProblem(row('a', 'x', 0, Number.NaN), PEOPLE_LIMITS)!.why, /amount NaN is not a BIGINT UNSIGNED/);
  assert.match(peopleRowProblem(row('a', 'x', 2 ** 31), PEOPLE_LIMITS)!.why, /group 2147483648 is not an INT/);
  const old = peopleLimits([
    info('people_data', 'uid', 'varchar', 128, 'utf8mb4_general_ci'),
    info('people_data', 'cn', 'varchar', 255, 'x', 'utf8mb3'),
  ]);
  assert.equal(peopleRowProblem(row('a'.repeat(129), 'x'), old)!.why, 'uid has 129 characters, the column holds 128');
  assert.match(peopleRowProblem(row('a', 'ok 😀'), old)!.why, /beyond U\+FFFF.*utf8mb3/);
  assert.equal(classRowProblem(['s', 0, 'down', 16, null, 1000, 2000, 3, 1]), null);
  assert.match(classRowProblem(['s', 0, 'down', 16, -1, 1000, 2000, 3, 1])!, /limit -1 is not a BIGINT UNSIGNED/);
  assert.equal(showUid('alice'), '"alice"');
  assert.equal(showUid('u'.repeat(100)), `"${'u'.repeat(32)}…" (100 characters)`);
});

// The built CLI: `check` prints the plaintext warning, and refuses a [publish] caFile it cannot read.
const root = fileURLToPath(new URL('../../../', import.meta.url));
function check(text: string): Promise<{ code: number; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'rq-publish-check-'));
  const file = join(dir, 'qos.conf');
  writeFileSync(file, text.replaceAll('@DIR@', dir));
  chmodSync(file, 0o600);
  return new Promise((resolve) => {
    execFile(process.execPath, [join(root, 'dist/cli.js'), 'check', '-c', file], { cwd: root }, (err, _stdout, stderr) => {
      rmSync(dir, { recursive: true, force: true });
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr });
    });
  });
}

test('check: a plaintext [publish] host is warned about; an unreadable [publish] caFile exits 2 naming it', async () => {
  let r = await check(minimalConf({ extra: '[publish]\nenabled = 1\nhost = web.example.org\nuser = site\npassword = x' }));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /warning: .*qos\.conf:\d+: \[publish\] host: web\.example\.org:3306 is written to in plaintext/);
  r = await check(minimalConf({ extra: '[publish]\nenabled = 1\nhost = web.example.org\ntls = 1\ncaFile = @DIR@/missing.pem' }));
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /qos\.conf:\d+: \[publish\] caFile: cannot read .*missing\.pem: file not found/);
});
