// Failures nobody awaited (issue 11, finding 6): an unhandled rejection is logged and the
// process goes on; an uncaught exception is logged and handed to the orderly stop. Run in a
// child process: the test runner has handlers of its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const faultsJs = fileURLToPath(new URL('../../src/daemon/faults.js', import.meta.url));

test('unhandled rejection: logged, the process goes on; uncaught exception: logged, onFatal once', async () => {
  const code = `
    import { guardProcess } from ${JSON.stringify(faultsJs)};
    const line = (l, m) => process.stdout.write(l + ' ' + m + '\\n');
    const log = { error: (m) => line('error', m), warn: (m) => line('warn', m), info: (m) => line('info', m), debug: () => {} };
    guardProcess(log, (e) => { line('fatal', e.message); setTimeout(() => process.exit(3), 50); });
    Promise.reject(new TypeError('lost promise'));
    setTimeout(() => {
      line('info', 'still alive');
      setTimeout(() => { throw new Error('thrown in a callback'); }, 10);
      setTimeout(() => { throw new Error('second'); }, 20);
    }, 50);
  `;
  const r = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
    execFile(process.execPath, ['--input-type=module', '-e', code], (err, stdout) =>
      resolve({ code: err ? (err.code as number) : 0, stdout }),
    );
  });
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines[0], 'error unhandled rejection (a bug; the daemon goes on): TypeError: lost promise');
  assert.equal(lines[1], 'info still alive');
  assert.match(lines[2]!, /^error uncaught exception, stopping .*: thrown in a callback$/);
  assert.equal(lines[3], 'fatal thrown in a callback');
  assert.match(lines[4]!, /^error uncaught exception, stopping .*: second$/);
  assert.equal(lines.filter((l) => l.startsWith('fatal')).length, 1, 'onFatal once');
  assert.equal(r.code, 3);
});
