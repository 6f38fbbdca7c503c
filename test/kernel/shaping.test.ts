// Shaping proof in the 3-namespace gateway (sandbox/netns.ts): an HTB on the gw's int0
// egress, users put in a class by an ipset + iptables mangle CLASSIFY rule, iperf3 downloads
// (server in wan sends to the user) measured within ±10 % of the class rate.
// All namespaces are rq-p<pid>-…, deleted in t.after.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createGateway, startIperfServer, runIperf, cleanupStale, type Gateway } from '../../sandbox/netns.js';
import { readTc, readMangle, readIpsets } from '../../src/kernel/read.js';
import { realExec } from '../../src/exec/exec.js';

const SECONDS = 5;
const OMIT = 1;

function within(measured: number, target: number, tol = 0.1): boolean {
  return measured >= target * (1 - tol) && measured <= target * (1 + tol);
}

async function htb(gw: Gateway, classes: Array<[string, number]>): Promise<void> {
  const lines = [
    'qdisc add dev int0 root handle 1: htb default 0',
    'class add dev int0 parent 1: classid 1:1 htb rate 10000000000bit ceil 10000000000bit',
  ];
  for (const [id, bits] of classes) {
    const minor = id.split(':')[1] ?? '';
    lines.push(`class add dev int0 parent 1:1 classid ${id} htb rate ${bits}bit ceil ${bits}bit quantum 1514`);
    lines.push(`qdisc add dev int0 parent ${id} handle ${minor}: pfifo limit 100`);
  }
  await gw.exec('gw', 'tc', ['-batch', '-'], { input: `${lines.join('\n')}\n` });
}

test('cleanupStale leaves live owners alone', async () => {
  const deleted = await cleanupStale(`rq-p${process.pid}-nothing-here-`);
  assert.deepEqual(deleted, []);
});

test('cleanupStale deletes namespaces of a dead owner, with their processes', async () => {
  // 4194305 > pid_max (2^22), so this owner can never be alive
  const name = 'rq-p4194305-dead-users';
  await realExec('ip', ['netns', 'add', name]);
  const { spawnBackground } = await import('../../sandbox/spawn.js');
  const sleeper = await spawnBackground('ip', ['netns', 'exec', name, 'sleep', '60']);
  try {
    const deleted = await cleanupStale('rq-p4194305-');
    assert.deepEqual(deleted, [name]);
    await sleeper.exited;
    assert.equal(sleeper.running(), false);
    const { stdout } = await realExec('ip', ['netns', 'list']);
    assert.ok(!stdout.includes(name));
  } finally {
    await sleeper.stop();
    await realExec('ip', ['netns', 'del', name]).catch(() => undefined);
  }
  await assert.rejects(cleanupStale('other-'), /must start with "rq-"/);
  await assert.rejects(createGateway({ prefix: 'x-', userIps: [] }), /must start with "rq-"/);
});

test('one user in a 5 Mbit/s class downloads at 5 Mbit/s ±10 %', async (t) => {
  const gw = await createGateway({ userIps: ['172.22.200.3', '172.22.200.4'] });
  t.after(() => gw.destroy());
  await htb(gw, [['1:10', 5_000_000]]);
  await gw.exec('gw', 'ipset', ['create', 'rq_test', 'hash:ip']);
  await gw.exec('gw', 'ipset', ['add', 'rq_test', '172.22.200.3']);
  await gw.exec('gw', 'iptables', [
    '-t',
    'mangle',
    '-A',
    'POSTROUTING',
    '-o',
    'int0',
    '-m',
    'set',
    '--match-set',
    'rq_test',
    'dst',
    '-j',
    'CLASSIFY',
    '--set-class',
    '1:10',
  ]);
  const srv = await startIperfServer(gw, 5201);
  t.after(() => srv.stop());

  const r = await runIperf(gw, { bindIp: '172.22.200.3', port: 5201, seconds: SECONDS, reverse: true, omit: OMIT });
  t.diagnostic(`5 Mbit class: ${(r.bitsPerSecond / 1e6).toFixed(3)} Mbit/s, retransmits ${r.retransmits}`);
  assert.ok(within(r.bitsPerSecond, 5e6), `measured ${r.bitsPerSecond} bit/s`);

  // a user not in the set is not shaped
  const free = await runIperf(gw, { bindIp: '172.22.200.4', port: 5201, seconds: 1, reverse: true });
  t.diagnostic(`unclassified user: ${(free.bitsPerSecond / 1e6).toFixed(0)} Mbit/s`);
  assert.ok(free.bitsPerSecond > 50e6);

  // the class counted the traffic
  const tc = await readTc(gw.execIn('gw'), 'int0');
  assert.equal(tc.classes.find((c) => c.classid === '1:10')?.rateBps, 5_000_000);
});

test('two users in 37.7 and 12.3 Mbit/s classes, concurrently, each ±10 %', async (t) => {
  const gw = await createGateway({ userIps: ['172.22.200.3', '172.22.200.4'] });
  t.after(() => gw.destroy());
  await htb(gw, [
    ['1:11', 37_700_000],
    ['1:12', 12_300_000],
  ]);
  await gw.exec('gw', 'ipset', ['restore'], {
    input: 'create qos_d1 hash:ip\ncreate qos_d2 hash:ip\nadd qos_d1 172.22.200.3\nadd qos_d2 172.22.200.4\n',
  });
  await gw.exec('gw', 'iptables-restore', ['--noflush'], {
    input: [
      '*mangle',
      ':qos_down - [0:0]',
      '-A POSTROUTING -o int0 -j qos_down',
      '-A qos_down -m set --match-set qos_d1 dst -m comment --comment "d1 37.7M" -j CLASSIFY --set-class 1:11',
      '-A qos_down -m set --match-set qos_d2 dst -m comment --comment "d2 12.3M" -j CLASSIFY --set-class 1:12',
      'COMMIT',
      '',
    ].join('\n'),
  });
  const m = await readMangle(gw.execIn('gw'), 4, (n) => n.startsWith('qos_'));
  assert.equal(m.chains.get('qos_down')?.length, 2);
  assert.equal((await readIpsets(gw.execIn('gw'), (n) => n.startsWith('qos_'))).size, 2);

  const s1 = await startIperfServer(gw, 5201);
  const s2 = await startIperfServer(gw, 5202);
  t.after(async () => {
    await s1.stop();
    await s2.stop();
  });
  const [a, b] = await Promise.all([
    runIperf(gw, { bindIp: '172.22.200.3', port: 5201, seconds: SECONDS, reverse: true, omit: OMIT }),
    runIperf(gw, { bindIp: '172.22.200.4', port: 5202, seconds: SECONDS, reverse: true, omit: OMIT }),
  ]);
  t.diagnostic(
    `37.7 Mbit class: ${(a.bitsPerSecond / 1e6).toFixed(3)} Mbit/s (retransmits ${a.retransmits}); ` +
      `12.3 Mbit class: ${(b.bitsPerSecond / 1e6).toFixed(3)} Mbit/s (retransmits ${b.retransmits})`,
  );
  assert.ok(within(a.bitsPerSecond, 37.7e6), `user A measured ${a.bitsPerSecond} bit/s`);
  assert.ok(within(b.bitsPerSecond, 12.3e6), `user B measured ${b.bitsPerSecond} bit/s`);
});

test('IPv6: a user in a v6 set and an 8 Mbit/s class downloads at 8 Mbit/s ±10 %', async (t) => {
  const gw = await createGateway({ userIps: ['172.22.200.3'], userIps6: ['2001:db8:d000::3'] });
  t.after(() => gw.destroy());
  await htb(gw, [['1:20', 8_000_000]]);
  await gw.exec('gw', 'ipset', ['create', 'v6qos_d0', 'hash:ip', 'family', 'inet6']);
  await gw.exec('gw', 'ipset', ['add', 'v6qos_d0', '2001:db8:d000::3']);
  await gw.exec('gw', 'ip6tables', [
    '-t',
    'mangle',
    '-A',
    'POSTROUTING',
    '-o',
    'int0',
    '-m',
    'set',
    '--match-set',
    'v6qos_d0',
    'dst',
    '-j',
    'CLASSIFY',
    '--set-class',
    '1:20',
  ]);
  const srv = await startIperfServer(gw, 5201);
  t.after(() => srv.stop());
  const r = await runIperf(gw, {
    bindIp: '2001:db8:d000::3',
    server: gw.wanIp6,
    port: 5201,
    seconds: SECONDS,
    reverse: true,
    omit: OMIT,
  });
  t.diagnostic(`IPv6 8 Mbit class: ${(r.bitsPerSecond / 1e6).toFixed(3)} Mbit/s, retransmits ${r.retransmits}`);
  assert.ok(within(r.bitsPerSecond, 8e6), `measured ${r.bitsPerSecond} bit/s`);
});

test('destroy removes the namespaces and the processes in them', async () => {
  const gw = await createGateway({ userIps: ['172.22.200.9'] });
  const srv = await startIperfServer(gw, 5209);
  await gw.destroy();
  await srv.process.exited;
  assert.equal(srv.process.running(), false);
  const { stdout } = await realExec('ip', ['netns', 'list']);
  for (const n of Object.values(gw.names)) assert.ok(!stdout.split('\n').some((l) => l.split(' ')[0] === n), n);
  await gw.destroy(); // idempotent
});
