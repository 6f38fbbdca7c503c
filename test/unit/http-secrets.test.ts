// [metrics] token: a real minimum length, refused with file:line; and the log masks every
// registered secret whatever its length, without masking the timestamp or the level.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, ConfigError } from '../../src/config/config.js';
import { createLogger, registerSecret, redact } from '../../src/log.js';
import { minimalConf } from './fixtures.js';

const conf = (token: string): string => minimalConf({ extra: `[metrics]\nlisten = 127.0.0.1:9721\ntoken = ${token}` });
const lineOf = (text: string, start: string): number => text.split('\n').findIndex((l) => l.startsWith(start)) + 1;

test('[metrics] token shorter than 16 characters: a ConfigError naming qos.conf:line, never the token', () => {
  for (const token of ['x', 'ab', 'fifteen-chars-x']) {
    const text = conf(token);
    let err: unknown = null;
    try {
      parseConfig(text, 'qos.conf', { mode: 0o600 });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof ConfigError, `token of ${token.length} characters accepted`);
    const p = err.problems.find((x) => x.section === 'metrics' && x.key === 'token');
    assert.ok(p, err.message);
    assert.equal(p.line, lineOf(text, 'token ='));
    assert.match(err.message, new RegExp(`qos\\.conf:${p.line}: \\[metrics\\] token: is ${token.length} characters long: use at least 16`));
    if (token.length > 2) assert.ok(!err.message.includes(token), 'the token is not repeated');
  }
  assert.equal(parseConfig(conf('sixteen-chars-ok'), 'qos.conf', { mode: 0o600 }).metrics.token, 'sixteen-chars-ok');
  assert.equal(parseConfig(minimalConf(), 'qos.conf').metrics.token, '', 'no token: allowed (loopback)');
});

test('[metrics] token with a space or a control character is refused (it could not travel in a header)', () => {
  assert.throws(() => parseConfig(conf('sixteen chars no'), 'qos.conf', { mode: 0o600 }), /\[metrics\] token: .*visible ASCII/);
});

test('secrets of 1 and 2 characters are masked too; the timestamp and level stay readable', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rq-log-'));
  try {
    registerSecret('7');
    registerSecret('Zq');
    registerSecret('');
    assert.equal(redact('pw Zq and 7'), 'pw *** and ***');
    assert.equal(redact('nothing'), 'nothing', 'the empty secret masks nothing');
    const log = createLogger({ level: 'info', dir });
    log.error('ldap: bind failed with password Zq', { password: '7' });
    await log.close();
    const text = readFileSync(join(dir, 'reselqos.log'), 'utf8');
    assert.doesNotMatch(text.replace(/^\S+ /, ''), /Zq|7/);
    assert.match(
      text,
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d error ldap: bind failed with password \*\*\* \{"password":"\*\*\*"\}$/m,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a longer secret holding a shorter one is masked whole', () => {
  registerSecret('ab');
  registerSecret('xxabyy-long-secret');
  assert.equal(redact('see xxabyy-long-secret'), 'see ***');
});
