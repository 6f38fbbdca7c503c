// Tests of src/exec/exec.ts: realExec, ExecError, timeouts, inNetns, batch error lines
// (on captured stderr and on errors provoked in a throw-away namespace).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { realExec, ExecError, inNetns, firstErrorLine, batchErrorLine, batchErrorLines, type Exec } from '../../src/exec/exec.js';
import { createScratchNetns } from '../../sandbox/netns.js';
import { spawnBackground } from '../../sandbox/spawn.js';

test('realExec collects stdout and writes stdin', async () => {
  const r = await realExec('cat', [], { input: 'hello\nworld\n' });
  assert.equal(r.stdout, 'hello\nworld\n');
  assert.equal(r.code, 0);
  const e = await realExec('printf', ['%s|', 'a b', '$(echo no-shell)', '*']);
  assert.equal(e.stdout, 'a b|$(echo no-shell)|*|');
});

test('realExec: stdin is /dev/null without input', async () => {
  const r = await realExec('cat', []);
  assert.equal(r.stdout, '');
});

test('ExecError on a failing command names the command and the first stderr line', async () => {
  await assert.rejects(realExec('ls', ['/nonexistent-rq-path']), (e: unknown) => {
    assert.ok(e instanceof ExecError);
    assert.equal(e.command, 'ls');
    assert.deepEqual(e.args, ['/nonexistent-rq-path']);
    assert.equal(e.code, 2);
    assert.equal(e.signal, null);
    assert.equal(e.timedOut, false);
    assert.match(e.stderr, /No such file or directory/);
    assert.match(e.message, /^"ls \/nonexistent-rq-path" exited with code 2: ls: cannot access/);
    return true;
  });
});

test('okCodes accepts other exit codes', async () => {
  const r = await realExec('ls', ['/nonexistent-rq-path'], { okCodes: [0, 2] });
  assert.equal(r.code, 2);
});

test('ExecError when the program does not exist', async () => {
  await assert.rejects(realExec('rq-no-such-program', ['x']), (e: unknown) => {
    assert.ok(e instanceof ExecError);
    assert.equal(e.code, null);
    assert.match(e.message, /could not be started \(ENOENT\)/);
    return true;
  });
});

test('timeout kills the process and reports timedOut', async () => {
  const t0 = Date.now();
  await assert.rejects(realExec('sleep', ['10'], { timeoutMs: 200 }), (e: unknown) => {
    assert.ok(e instanceof ExecError);
    assert.equal(e.timedOut, true);
    assert.equal(e.signal, 'SIGTERM');
    assert.match(e.message, /"sleep 10" timed out/);
    return true;
  });
  assert.ok(Date.now() - t0 < 3000);
});

test('a child that exits without reading its stdin does not crash us', async () => {
  const big = 'x'.repeat(1 << 20);
  const r = await realExec('true', [], { input: big });
  assert.equal(r.code, 0);
});

test('inNetns wraps the command in ip netns exec', async () => {
  const calls: Array<[string, readonly string[]]> = [];
  const fake: Exec = async (cmd, args) => {
    calls.push([cmd, args]);
    return { stdout: '', stderr: '', code: 0 };
  };
  await inNetns(fake, 'rq-x-gw')('ipset', ['save'], { timeoutMs: 5 });
  assert.deepEqual(calls, [['ip', ['netns', 'exec', 'rq-x-gw', 'ipset', 'save']]]);
  assert.throws(() => inNetns(fake, 'bad name'));
});

test('spawnBackground starts and stops a process', async () => {
  const p = await spawnBackground('sleep', ['30']);
  assert.ok(p.pid > 0);
  assert.equal(p.running(), true);
  await p.stop();
  assert.equal(p.running(), false);
  const r = await p.exited;
  assert.equal(r.signal, 'SIGTERM');
});

test('firstErrorLine skips warnings and joins a dangling prefix', () => {
  assert.equal(firstErrorLine('# Warning: iptables-legacy tables present, use iptables-legacy-save to see them\nboom\n'), 'boom');
  assert.equal(
    firstErrorLine('iptables-restore v1.8.9 (nf_tables): \nline 2: CHAIN_DEL failed (Device or resource busy): chain qos_mark\n'),
    'iptables-restore v1.8.9 (nf_tables): line 2: CHAIN_DEL failed (Device or resource busy): chain qos_mark',
  );
  assert.equal(firstErrorLine(''), '');
});

// ---------------------------------------------------------------- captured stderr fixtures

const IPSET_INPUT = 'add qos_d0 1.1.1.1\nadd qos_d0 1.1.1.2\nadd qos_d0 1.1.1.300\nadd qos_d0 1.1.1.4\n';
const IPSET_ERR = 'ipset v7.17: Error in line 3: Syntax error: cannot parse 1.1.1.300: resolving to IPv4 address failed\n';

test('batchErrorLine: ipset restore', () => {
  assert.deepEqual(batchErrorLine(IPSET_ERR, IPSET_INPUT), {
    tool: 'ipset',
    line: 3,
    text: 'add qos_d0 1.1.1.300',
    reason: 'Syntax error: cannot parse 1.1.1.300: resolving to IPv4 address failed',
  });
  const noLine = "ipset v7.17: No command specified: unknown argument bogus\nTry `ipset help' for more information.\n";
  assert.deepEqual(batchErrorLine(noLine, 'add qos_d0 1.1.1.5\nbogus\n', 'ipset'), {
    tool: 'ipset',
    line: 2,
    text: 'bogus',
    reason: 'No command specified: unknown argument bogus',
  });
});

test('batchErrorLine: tc -batch (reason precedes "Command failed", usage skipped)', () => {
  const input = 'class add dev d0 parent 1:1 classid 1:40 htb rate 1mbit\nclass add dev d0 parent 1:1 classid 1:41 htb rate bogus\n';
  const err = 'Illegal "rate"\nUsage: ... qdisc add ... htb [default N] [r2q N]\n  [direct_qlen P] [offload]\nCommand failed -:2\n';
  assert.deepEqual(batchErrorLine(err, input), {
    tool: 'tc',
    line: 2,
    text: 'class add dev d0 parent 1:1 classid 1:41 htb rate bogus',
    reason: 'Illegal "rate"',
  });
  const forced = 'RTNETLINK answers: File exists\nCommand failed -:1\nError: Specified qdisc kind is unknown.\nCommand failed -:3\n';
  const all = batchErrorLines(forced, 'a\nb\nc\n');
  assert.deepEqual(
    all.map((x) => [x.line, x.text, x.reason]),
    [
      [1, 'a', 'RTNETLINK answers: File exists'],
      [3, 'c', 'Error: Specified qdisc kind is unknown.'],
    ],
  );
});

test('batchErrorLine: iptables-restore formats', () => {
  const input = '*mangle\n:qos_x - [0:0]\n-A qos_x -j RETURN\n-A qos_x -m set --match-set nosuch dst -j RETURN\nCOMMIT\n';
  const nft =
    "iptables-restore v1.8.9 (nf_tables): Set nosuch doesn't exist.\n\nError occurred at line: 4\nTry `iptables-restore -h' or 'iptables-restore --help' for more information.\n";
  assert.deepEqual(batchErrorLine(nft, input), {
    tool: 'iptables-restore',
    line: 4,
    text: '-A qos_x -m set --match-set nosuch dst -j RETURN',
    reason: "Set nosuch doesn't exist.",
  });
  const failed = 'iptables-restore: line 2 failed: No chain/target/match by that name.\n';
  assert.deepEqual(batchErrorLine(failed, '*mangle\n-A qos_nochain -j RETURN\nCOMMIT\n'), {
    tool: 'iptables-restore',
    line: 2,
    text: '-A qos_nochain -j RETURN',
    reason: 'No chain/target/match by that name.',
  });
  assert.equal(batchErrorLine('iptables-restore: line 2 failed\n', '*mangle\n-X qosl\nCOMMIT\n')?.text, '-X qosl');
  assert.equal(batchErrorLine('iptables-restore: COMMIT expected at line 3\n', '*mangle\n-A a -j RETURN\n')?.line, 3);
  const busy = 'iptables-restore v1.8.9 (nf_tables): \nline 2: CHAIN_DEL failed (Device or resource busy): chain qos_mark\n';
  assert.deepEqual(batchErrorLine(busy, '*mangle\n-X qos_mark\nCOMMIT\n'), {
    tool: 'iptables-restore',
    line: 2,
    text: '-X qos_mark',
    reason: 'CHAIN_DEL failed (Device or resource busy): chain qos_mark',
  });
  assert.equal(batchErrorLine('something else entirely\n', 'x\n'), null);
});

// ---------------------------------------------------------------- provoked on this machine

test('batch errors provoked in a namespace match the parsers', async (t) => {
  const ns = await createScratchNetns('exec');
  t.after(() => ns.destroy());
  const ex = ns.exec;

  // ipset restore
  await ex('ipset', ['create', 'qos_d0', 'hash:ip']);
  await assert.rejects(ex('ipset', ['restore'], { input: IPSET_INPUT }), (e: unknown) => {
    assert.ok(e instanceof ExecError);
    assert.equal(e.stderr, IPSET_ERR);
    assert.match(e.message, /"ip netns exec rq-p\d+-[0-9a-f]+-exec ipset restore" exited with code 1: ipset v7\.17: Error in line 3/);
    assert.equal(batchErrorLine(e.stderr, IPSET_INPUT)?.text, 'add qos_d0 1.1.1.300');
    return true;
  });
  const dup = 'add qos_d0 2.1.1.1\n\n# comment\nadd qos_d0 2.1.1.1\n';
  await assert.rejects(ex('ipset', ['restore'], { input: dup }), (e: unknown) => {
    assert.ok(e instanceof ExecError);
    const b = batchErrorLine(e.stderr, dup);
    assert.equal(b?.line, 4, 'ipset counts blank and comment lines');
    assert.equal(b?.reason, "Element cannot be added to the set: it's already added");
    return true;
  });

  // tc -batch (a veth pair, since this kernel has no dummy driver)
  await ex('ip', ['link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1']);
  await ex('tc', ['qdisc', 'add', 'dev', 'v0', 'root', 'handle', '1:', 'htb']);
  const tcIn = 'class add dev v0 parent 1: classid 1:1 htb rate 1000000bit\n\nclass add dev v0 parent 1: classid 1:1 htb rate 1000000bit\n';
  await assert.rejects(ex('tc', ['-batch', '-'], { input: tcIn }), (e: unknown) => {
    assert.ok(e instanceof ExecError);
    assert.deepEqual(batchErrorLine(e.stderr, tcIn), {
      tool: 'tc',
      line: 3,
      text: 'class add dev v0 parent 1: classid 1:1 htb rate 1000000bit',
      reason: 'RTNETLINK answers: File exists',
    });
    return true;
  });

  // iptables-restore
  const ipt = '*mangle\n:qos_x - [0:0]\n-A qos_x -j RETURN\n-A qos_x -m set --match-set nosuch dst -j RETURN\nCOMMIT\n';
  await assert.rejects(ex('iptables-restore', ['--noflush'], { input: ipt }), (e: unknown) => {
    assert.ok(e instanceof ExecError);
    const b = batchErrorLine(e.stderr, ipt);
    assert.equal(b?.line, 4);
    assert.equal(b?.text, '-A qos_x -m set --match-set nosuch dst -j RETURN');
    assert.equal(b?.reason, "Set nosuch doesn't exist.");
    return true;
  });
});
