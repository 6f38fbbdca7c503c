// The spawn helper (src/exec/exec.ts helperExec, src/exec/exec-helper.ts) without root:
// commands run through it give what realExec gives; it takes only argvs; every failure of the
// helper falls back to a direct spawn (not started, refused, too large) or fails that one
// command cleanly (died while running it), and the next command gets a new helper; it dies
// with its parent and an idle helper does not keep its parent alive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExecError, realExec } from '../../src/exec/exec.js';
import { helperExec } from '../../src/exec/exec-via-helper.js';
import { checkRequest } from '../../src/exec/exec-helper.js';

const execModule = fileURLToPath(new URL('../../src/exec/exec-via-helper.js', import.meta.url));
const helperScript = fileURLToPath(new URL('../../src/exec/exec-helper.js', import.meta.url));

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}

test('through the helper: the same results and errors as realExec, run by another process', async () => {
  const h = helperExec();
  try {
    assert.equal(await h.ready(), true);
    assert.ok(h.pid !== null && h.pid !== process.pid);
    const r = await h.exec('cat', [], { input: 'hello\nworld\n' });
    assert.deepEqual(r, { stdout: 'hello\nworld\n', stderr: '', code: 0 });
    const argv = await h.exec('printf', ['%s|', 'a b', '$(echo no-shell)', '*']);
    assert.equal(argv.stdout, 'a b|$(echo no-shell)|*|', 'arguments are passed as they are, no shell');
    assert.equal((await h.exec('ls', ['/nonexistent-rq-path'], { okCodes: [0, 2] })).code, 2);
    const viaRealExec = (await realExec('ls', ['/nonexistent-rq-path']).catch((e: unknown) => e)) as ExecError;
    await assert.rejects(h.exec('ls', ['/nonexistent-rq-path']), (e: unknown) => {
      assert.ok(e instanceof ExecError);
      assert.equal(e.message, viaRealExec.message);
      assert.equal(e.code, 2);
      assert.equal(e.command, 'ls');
      return true;
    });
    await assert.rejects(h.exec('rq-no-such-program', ['x']), /"rq-no-such-program x" could not be started \(ENOENT\)/);
    await assert.rejects(h.exec('sleep', ['10'], { timeoutMs: 200 }), (e: unknown) => e instanceof ExecError && e.timedOut);
    // forked by the helper, not by us
    assert.match((await h.exec('cat', ['/proc/self/status'])).stdout, new RegExp(`\\nPPid:\\t${h.pid}\\n`));
    assert.equal(h.stats.direct, 0);
    assert.equal(h.stats.viaHelper, 7);
  } finally {
    await h.close();
  }
});

test('the helper takes an argv only: a command string, a path or non-string arguments are refused and nothing runs', async () => {
  assert.ok('bad' in checkRequest({ id: 1, cmd: 'sh -c "touch x"', args: [] }));
  assert.ok('bad' in checkRequest({ id: 1, cmd: '/bin/sh', args: ['-c', 'true'] }));
  assert.ok('bad' in checkRequest({ id: 1, cmd: 'ipset', args: 'restore' }));
  assert.ok('bad' in checkRequest({ id: 1, cmd: 'ipset', args: [1] }));
  assert.ok('bad' in checkRequest({ cmd: 'ipset', args: [] }));
  assert.ok('req' in checkRequest({ id: 1, cmd: 'ip6tables-restore', args: ['--noflush', '-w'], input: '' }));
  // The helper program itself, asked directly over its channel.
  const dir = mkdtempSync(join(tmpdir(), 'rq-helper-'));
  const marker = join(dir, 'ran');
  const child = spawn(process.execPath, [helperScript], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'], serialization: 'advanced' });
  try {
    const replies: unknown[] = [];
    child.on('message', (m) => replies.push(m));
    assert.ok(await until(() => replies.length === 1, 5000), 'ready');
    child.send({ id: 7, cmd: `touch ${marker}`, args: [] });
    child.send({ id: 8, cmd: 'sh', args: ['-c', `touch ${marker}`], input: 5 });
    assert.ok(await until(() => replies.length === 3, 5000));
    assert.match(JSON.stringify(replies[1]), /"id":7,"ok":false.*refused: not a program name/);
    assert.match(JSON.stringify(replies[2]), /"id":8,"ok":false.*refused: input is not a string/);
    assert.equal(existsSync(marker), false);
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a helper that cannot start: every command is spawned directly, and that is said once', async () => {
  const events: string[] = [];
  const h = helperExec({ script: '/nonexistent-rq-helper.js', onEvent: (m) => events.push(m) });
  try {
    const r = await h.exec('cat', [], { input: 'x' });
    assert.equal(r.stdout, 'x');
    assert.equal(await h.ready(), false);
    assert.equal((await h.exec('echo', ['y'])).stdout, 'y\n');
    assert.equal(h.stats.viaHelper, 0);
    assert.equal(h.stats.direct, 2);
    assert.equal(events.length, 1, events.join(' | '));
    assert.match(events[0]!, /exec helper exited with code 1: .*Cannot find module.* before it was ready: commands are spawned directly/);
  } finally {
    await h.close();
  }
});

test('a large input is spawned directly (the copy over the channel would cost more than the fork)', async () => {
  const h = helperExec({ maxInput: 1000 });
  try {
    await h.ready();
    assert.equal((await h.exec('wc', ['-c'], { input: 'x'.repeat(999) })).stdout.trim(), '999');
    assert.equal((await h.exec('wc', ['-c'], { input: 'x'.repeat(5000) })).stdout.trim(), '5000');
    assert.deepEqual([h.stats.viaHelper, h.stats.direct], [1, 1]);
  } finally {
    await h.close();
  }
});

test('the helper dies while running a command: that command fails by name, the next one gets a new helper', async () => {
  const events: string[] = [];
  const h = helperExec({ restartDelayMs: 0, onEvent: (m) => events.push(m) });
  try {
    await h.ready();
    const first = h.pid!;
    const running = h.exec('sleep', ['5'], { input: '' });
    await new Promise((r) => setTimeout(r, 100));
    process.kill(first, 'SIGKILL');
    await assert.rejects(running, (e: unknown) => {
      assert.ok(e instanceof ExecError);
      assert.match(e.message, /^"sleep 5" was cut off: the exec helper was killed by SIGKILL$/);
      return true;
    });
    assert.equal(h.stats.cutOff, 1);
    assert.ok(events.some((m) => /exec helper was killed by SIGKILL: commands are spawned directly until it is restarted/.test(m)));
    // The next command does not wait for the new helper: spawned directly while it starts.
    assert.equal((await h.exec('echo', ['after'])).stdout, 'after\n');
    assert.equal(await h.ready(), true);
    assert.notEqual(h.pid, first);
    assert.equal((await h.exec('echo', ['again'])).stdout, 'again\n');
    assert.equal(h.stats.starts, 2);
    assert.ok(h.stats.viaHelper >= 1);
  } finally {
    await h.close();
  }
});

/** A small parent process that starts a helper, prints its pid, then `then`s. */
function parentWithHelper(
  then: 'wait' | 'end',
): Promise<{ parent: ReturnType<typeof spawn>; helperPid: number; exit: Promise<number | null> }> {
  const code = `
    const { helperExec } = await import(${JSON.stringify(execModule)});
    const h = helperExec();
    await h.ready();
    await h.exec('true', []);
    process.stdout.write(String(h.pid) + '\\n');
    ${then === 'wait' ? 'setInterval(() => {}, 1000);' : ''}
  `;
  const parent = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exit = new Promise<number | null>((r) => parent.once('exit', (c) => r(c)));
  return new Promise((resolve, reject) => {
    let out = '';
    parent.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('\n')) resolve({ parent, helperPid: Number(out.trim()), exit });
    });
    void exit.then(() => reject(new Error(`parent exited before printing the helper's pid: ${out}`)));
  });
}

test('the helper dies with its parent (killed), and an idle helper does not keep its parent alive', async () => {
  const killed = await parentWithHelper('wait');
  assert.ok(alive(killed.helperPid));
  killed.parent.kill('SIGKILL');
  assert.ok(await until(() => !alive(killed.helperPid), 3000), `helper ${killed.helperPid} outlived its killed parent`);

  const ends = await parentWithHelper('end');
  const exited = await Promise.race([ends.exit, new Promise<string>((r) => setTimeout(() => r('still running after 5 s'), 5000).unref())]);
  assert.equal(exited, 0, 'the parent ended on its own with an idle helper');
  assert.ok(await until(() => !alive(ends.helperPid), 3000));
});

test('an input in pieces is pulled as the child reads (beyond a pipe buffer), and a direct spawn runs it', async () => {
  let pulled = 0;
  function* pieces(n: number): Generator<string> {
    for (let i = 0; i < n; i++) {
      pulled++;
      yield `${String(i).padStart(6, '0')} ${'x'.repeat(1017)}\n`; // 1 KiB a line
    }
  }
  const r = await realExec('sha256sum', [], { input: pieces(3000) });
  const whole = [...pieces(3000)].join('');
  const expected = await realExec('sha256sum', [], { input: whole });
  assert.equal(r.stdout, expected.stdout, 'the same bytes, in order');
  // A child that stops reading early: the rest is never rendered, nothing hangs.
  pulled = 0;
  const head = await realExec('head', ['-c', '10'], { input: pieces(100_000) });
  assert.equal(head.stdout, '000000 xxx');
  assert.ok(pulled < 100_000, `stopped pulling (${pulled} of 100000 pieces rendered)`);
  const h = helperExec();
  try {
    await h.ready();
    assert.equal((await h.exec('wc', ['-l'], { input: pieces(10) })).stdout.trim(), '10');
    assert.deepEqual([h.stats.viaHelper, h.stats.direct], [0, 1], 'pieces are not sent over the channel');
  } finally {
    await h.close();
  }
});
