import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, registerSecret, localIsoWithZone } from '../../src/log.js';

test('a registered secret never reaches the log file; lines carry a timestamp with zone', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rq-log-'));
  try {
    registerSecret('hunter2-bind-pw');
    const log = createLogger({ level: 'info', dir });
    log.error('ldap: bind as cn=qos failed with password hunter2-bind-pw', { password: 'hunter2-bind-pw' });
    log.debug(() => {
      throw new Error('debug closures are not evaluated at info level');
    });
    await log.close();
    const text = readFileSync(join(dir, 'reselqos.log'), 'utf8');
    assert.doesNotMatch(text, /hunter2-bind-pw/);
    assert.match(text, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d error ldap: bind as cn=qos failed with password \*\*\*/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('reopen writes to a new file after rotation, nothing lost', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rq-log-'));
  try {
    const log = createLogger({ level: 'info', dir });
    log.info('line 1');
    await new Promise((r) => setTimeout(r, 100));
    renameSync(join(dir, 'reselqos.log'), join(dir, 'reselqos.log.1'));
    log.info('line 2');
    log.reopen();
    log.info('line 3');
    await log.close();
    const old = readFileSync(join(dir, 'reselqos.log.1'), 'utf8');
    const cur = readFileSync(join(dir, 'reselqos.log'), 'utf8');
    assert.match(old, /line 1/);
    assert.match(old + cur, /line 2/);
    assert.match(cur, /line 3/);
    assert.doesNotMatch(old, /line 3/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('local timestamps carry the offset', () => {
  assert.match(localIsoWithZone(new Date(0)), /^19(69|70)-\d\d-\d\dT\d\d:\d\d:00\.000[+-]\d\d:\d\d$/);
});
