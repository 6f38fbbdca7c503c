// The one lock (issue 11, finding 9): an exclusive flock(2) on a file that is never removed,
// held by an open descriptor. A second taker is refused with the holder's pid and role; the
// kernel frees it when the holder goes, however it goes (no stale file to judge or unlink).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { takeLock, AlreadyRunningError } from '../../src/daemon/pidfile.js';

const pidfileJs = fileURLToPath(new URL('../../src/daemon/pidfile.js', import.meta.url));

test('a held lock refuses the next taker, naming pid and role; released, it can be taken again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rq-lock-'));
  try {
    const path = join(dir, 'run', 'reselqos.lock');
    const a = await takeLock(path, 'daemon', 4242);
    await assert.rejects(takeLock(path, 'run --once'), (e: unknown) => {
      assert.ok(e instanceof AlreadyRunningError);
      assert.equal(e.pid, 4242);
      assert.equal(e.what, 'daemon');
      assert.match(e.message, /daemon \(pid 4242\) holds .*reselqos\.lock/);
      return true;
    });
    await a.release();
    await a.release(); // idempotent
    assert.ok(existsSync(path), 'the lock file is never removed');
    const b = await takeLock(path, 'clear');
    assert.equal(readFileSync(path, 'utf8'), `${process.pid} clear\n`);
    await b.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a holder killed with SIGKILL leaves nothing behind that blocks the next one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rq-lock-'));
  try {
    const path = join(dir, 'reselqos.lock');
    const code = `import { takeLock } from ${JSON.stringify(pidfileJs)}; await takeLock(${JSON.stringify(path)}, 'daemon'); console.log('held'); setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) =>
      child.stdout.on('data', (c: Buffer) => {
        if (c.toString().includes('held')) resolve();
      }),
    );
    await assert.rejects(takeLock(path, 'run --once'), (e: unknown) => e instanceof AlreadyRunningError && e.pid === child.pid);
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    const l = await takeLock(path, 'run --once');
    await l.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
