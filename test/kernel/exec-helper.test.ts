// The spawn helper on a real kernel (root): with [firewall] netns it lives in the namespace and
// runs the tools there without `ip netns exec`; a namespace deleted and created again under the
// same name is noticed (the helper refuses, the command runs directly in the new one, a new
// helper follows); and a helper killed while the reconciler's `ipset restore` runs fails that
// reconcile cleanly (the error names the batch), after which the next one converges.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { DateTime } from 'luxon';
import { inNetns, realExec, ExecError, type Exec } from '../../src/exec/exec.js';
import { helperExec } from '../../src/exec/exec-via-helper.js';
import { createGateway, createScratchNetns, type Gateway } from '../../sandbox/netns.js';
import { parseConfig } from '../../src/config/config.js';
import { planDesired } from '../../src/plan/desired.js';
import { buildKernelDesired } from '../../src/kernel/model.js';
import { Reconciler } from '../../src/kernel/reconciler.js';
import { KernelApplyError } from '../../src/kernel/batch.js';
import { readIpsets } from '../../src/kernel/read.js';
import { MemoryLogger } from '../../src/log.js';
import type { Directory } from '../../src/sources/types.js';
import { minimalConf } from '../unit/fixtures.js';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

test('in a namespace: the helper lives there, runs the tools unwrapped, and names failures as ip netns exec would', async () => {
  const ns = await createScratchNetns('helper');
  cleanups.push(ns.destroy);
  await ns.exec('ip', ['link', 'add', 'rqdummy0', 'type', 'veth', 'peer', 'name', 'rqdummy1']);
  const h = helperExec({ netns: ns.name });
  cleanups.push(h.close);
  assert.equal(await h.ready(), true);
  const links = (await h.exec('ip', ['-br', 'link'])).stdout;
  assert.match(links, /^rqdummy0@rqdummy1\s/m, "the namespace's interfaces");
  assert.doesNotMatch(links, /^(eth|ens|enp)\w*\s/m);
  // run by the helper itself (its child), not through ip netns exec
  const status = (await h.exec('cat', ['/proc/self/status'])).stdout;
  assert.match(status, new RegExp(`\\nPPid:\\t${h.pid}\\n`));
  const direct = await inNetns(realExec, ns.name)('ipset', ['restore'], { input: 'add rq-nosuch 1.2.3.4\n' }).catch(
    (e: unknown) => e as ExecError,
  );
  await assert.rejects(h.exec('ipset', ['restore'], { input: 'add rq-nosuch 1.2.3.4\n' }), (e: unknown) => {
    assert.ok(e instanceof ExecError);
    assert.equal(e.message, (direct as ExecError).message);
    assert.match(e.message, new RegExp(`^"ip netns exec ${ns.name} ipset restore" exited with code 1: ipset v[\\d.]+: Error in line 1`));
    return true;
  });
  assert.deepEqual([h.stats.direct, h.stats.viaHelper], [0, 3]);
});

test('a namespace deleted and created again: the helper refuses, the command runs in the new one, then a new helper', async () => {
  const ns = await createScratchNetns('helper2');
  cleanups.push(ns.destroy);
  const events: string[] = [];
  const h = helperExec({ netns: ns.name, restartDelayMs: 0, onEvent: (m) => events.push(m) });
  cleanups.push(h.close);
  assert.equal(await h.ready(), true);
  const old = h.pid!;
  // `ip netns del` unmounts the name only: the old namespace lives on with the helper in it.
  await realExec('ip', ['netns', 'del', ns.name]);
  await realExec('ip', ['netns', 'add', ns.name]);
  await ns.exec('ip', ['link', 'add', 'rqnew0', 'type', 'veth', 'peer', 'name', 'rqnew1']);
  const seen = (await h.exec('ip', ['-br', 'link'])).stdout;
  assert.match(seen, /^rqnew0@rqnew1\s/m, 'run in the new namespace');
  assert.equal(h.stats.direct, 1);
  assert.ok(
    events.some((m) => /exec helper refused a command \(namespace .* is not the one this helper lives in\): replacing it/.test(m)),
    events.join(' | '),
  );
  // the old helper goes; the next command starts one in the new namespace
  for (let i = 0; i < 100 && h.pid === old; i++) await new Promise((r) => setTimeout(r, 20));
  await h.exec('true', []);
  assert.equal(await h.ready(), true);
  assert.notEqual(h.pid, old);
  assert.match((await h.exec('ip', ['-br', 'link'])).stdout, /^rqnew0@rqnew1\s/m);
  assert.equal(h.stats.starts, 2);
});

function campus(n: number): Directory {
  const at = '2026-11-22T12:00:00.000Z';
  return {
    owners: Array.from({ length: n }, (_, i) => ({
      uid: `u${i}`,
      dn: `uid=u${i},ou=people`,
      kind: 'person' as const,
      endInternet: Date.UTC(2030, 0, 1),
      coupure: false,
      ban: [],
      cotiz: [],
    })),
    machines: Array.from({ length: n }, (_, i) => ({
      dn: `host=u${i}`,
      host: `u${i}`,
      owner: `u${i}`,
      active: true,
      ips4: [`10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`],
      ips6: [],
    })),
    skipped: [],
    fetchedAt: at,
  };
}

test('the helper killed while ipset restore runs: that reconcile fails naming the batch, the next one converges', async () => {
  const gw: Gateway = await createGateway({ userIps: ['172.22.200.1'] });
  cleanups.push(() => gw.destroy());
  const config = parseConfig(
    minimalConf({
      qos: 'classifier = classify\nleaf = pfifo\nfairness = flow',
      firewall: `netns = ${gw.names.gw}\nnet6 = 2001:db8:d200::/48`,
    }),
    'q',
  );
  const h = helperExec({ netns: gw.names.gw, restartDelayMs: 0 });
  cleanups.push(h.close);
  assert.equal(await h.ready(), true);
  let killOnRestore = true;
  const exec: Exec = (cmd, args, opts) => {
    const p = h.exec(cmd, args, opts);
    if (killOnRestore && cmd === 'ipset' && args[0] === 'restore' && h.pid !== null) {
      killOnRestore = false;
      process.kill(h.pid, 'SIGKILL');
    }
    return p;
  };
  const log = new MemoryLogger();
  const r = new Reconciler(config, exec, log);
  const at = DateTime.fromISO('2026-11-22T12:00', { zone: 'UTC' });
  const d = planDesired(config, campus(3000), null, at, at);
  await assert.rejects(r.reconcile(d), (e: unknown) => {
    assert.ok(e instanceof KernelApplyError, String(e));
    assert.match(e.message, /^ipset restore failed: .*ipset restore" was cut off: the exec helper was killed by SIGKILL/);
    return true;
  });
  assert.equal(h.stats.cutOff, 1);
  const next = await r.reconcile(d);
  assert.equal(next.applied, true);
  assert.equal(next.fullRead, true, 'after the failure everything is read back');
  const want = buildKernelDesired(config, d).sets;
  const have = await readIpsets(gw.execIn('gw'), (n) => want.some((s) => s.name === n));
  for (const s of want) assert.deepEqual([...(have.get(s.name)?.entries ?? [])].sort(), [...s.members].sort(), s.name);
});

test('a cold fill over 100 000 lines is streamed to ipset restore: exact sets, and a refused line is named', async () => {
  const gw: Gateway = await createGateway({ userIps: ['172.22.200.1'] });
  cleanups.push(() => gw.destroy());
  const config = parseConfig(
    minimalConf({
      qos: 'classifier = classify\nleaf = pfifo\nfairness = flow',
      firewall: `netns = ${gw.names.gw}\nnet6 = 2001:db8:d200::/48`,
    }),
    'q',
  );
  const h = helperExec({ netns: gw.names.gw });
  cleanups.push(h.close);
  await h.ready();
  const at = DateTime.fromISO('2026-11-22T12:00', { zone: 'UTC' });
  const d = planDesired(config, campus(52_000), null, at, at);
  const want = buildKernelDesired(config, d).sets;
  // A set of ours made with another type after the read-back, just before the fill: its create line is refused mid-batch.
  const victim = want.filter((s) => s.family === 'inet').sort((a, b) => a.name.localeCompare(b.name))[3]!;
  let planted = false;
  const exec: Exec = async (cmd, args, o) => {
    if (!planted && cmd === 'ipset' && args[0] === 'restore') {
      planted = true;
      await gw.exec('gw', 'ipset', ['create', victim.name, 'hash:net']);
    }
    return h.exec(cmd, args, o);
  };
  const r = new Reconciler(config, exec, new MemoryLogger());
  await assert.rejects(r.reconcile(d), (e: unknown) => {
    assert.ok(e instanceof KernelApplyError, String(e));
    assert.ok(e.line !== null && e.line > 1000, `a line number: ${e.message}`);
    assert.equal(e.object, `set ${victim.name}`);
    assert.match(e.text ?? '', new RegExp(`^create ${victim.name} hash:ip `));
    return true;
  });
  await gw.exec('gw', 'ipset', ['destroy', victim.name]);
  const res = await r.reconcile(d);
  assert.equal(res.applied, true);
  assert.ok(res.counts.ipset.add > 100_000, `${res.counts.ipset.add} entries`);
  assert.equal(res.batches.ipset, null, 'streamed: no batch text kept');
  const have = await readIpsets(gw.execIn('gw'), (n) => want.some((s) => s.name === n));
  for (const s of want) assert.deepEqual([...(have.get(s.name)?.entries ?? [])].sort(), [...s.members].sort(), s.name);
  assert.ok(h.stats.direct >= 2, 'the pieces were spawned directly');
});
