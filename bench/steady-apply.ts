// bench/steady-apply.ts — where a steady apply's time goes (issue 16): a private gateway
// namespace filled as a synthetic campus of N users would be (bench/cold-apply.ts's directory),
// then the same moves (1 % of the IPv4 addresses from one group's set to the next, and back) and
// a `class change` of every class, timed as the reconciler applies them (ipset restore and
// tc -batch side by side, through the spawn helper), and piece by piece: the ipset batch alone
// through the helper, the same from this process through `ip netns exec` (a fork of this
// process), the same from a small process through `ip netns exec` (as the benchmark's baseline 2
// runs it), the tc batch alone. Medians of `reps` alternating runs.
// Root. Usage: node build/bench/steady-apply.js [users=100000] [reps=15]
// Benchmark-only code; never used by the daemon.

import { DateTime } from 'luxon';
import { inNetns, realExec, type Exec } from '../src/exec/exec.js';
import { helperExec } from '../src/exec/exec-via-helper.js';
import { Reconciler } from '../src/kernel/reconciler.js';
import { buildKernelDesired } from '../src/kernel/model.js';
import { planDesired } from '../src/plan/desired.js';
import { MemoryLogger } from '../src/log.js';
import { createGateway } from '../sandbox/netns.js';
import { applyConfig, directory } from './cold-apply-dir.js';

const users = Number(process.argv[2] ?? 100_000);
const reps = Number(process.argv[3] ?? 15);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? NaN;

const gw = await createGateway({ userIps: [] });
const helper = helperExec({ netns: gw.names.gw });
const small = helperExec(); // a small process that spawns `ip netns exec …` as the baseline does
try {
  const config = applyConfig(gw.names.gw, 'steady-apply.conf');
  await Promise.all([helper.ready(), small.ready()]);
  const at = DateTime.utc();
  const desired = planDesired(config, directory(users), null, at, at);
  const kd = buildKernelDesired(config, desired);
  const log = new MemoryLogger();
  const r = new Reconciler(config, helper.exec, log);
  await r.reconcile(desired);
  // 1 % of the IPv4 members of the fullest down-set move to another set (both exist: create -exist keeps them).
  const from = [...kd.sets]
    .filter((s) => s.family === 'inet' && s.name.startsWith('qos_d'))
    .sort((a, b) => b.members.size - a.members.size)[0]!;
  const to = kd.sets.find((s) => s.family === 'inet' && s.name.startsWith('qos_d') && s.name !== from.name)!;
  const moveIps = [...from.members].slice(0, Math.max(1, Math.round((users * 3) / 100))); // 1 % of the IPs
  const batch = (a: string, b: string, exist: string): string =>
    moveIps.map((ip) => `del ${a} ${ip}${exist}`).join('\n') + '\n' + moveIps.map((ip) => `add ${b} ${ip}${exist}`).join('\n') + '\n';
  const tcBatch = (bump: number): string =>
    kd.tc
      .flatMap((d) =>
        d.classes.map(
          (c) => `class change dev ${d.dev} parent ${c.parent} classid ${c.classid} htb rate ${c.rateBps + bump}bit ceil ${c.ceilBps}bit`,
        ),
      )
      .join('\n') + '\n';
  console.log(
    `${users} users: ${moveIps.length} IPs move (${2 * moveIps.length} ipset lines), ${tcBatch(0).split('\n').length - 1} class changes`,
  );
  const rows: Record<string, number[]> = { apply: [], ipsetHelper: [], ipsetForked: [], ipsetSmall: [], tcHelper: [] };
  const forked: Exec = inNetns(realExec, gw.names.gw);
  const smallExec: Exec = inNetns(small.exec, gw.names.gw);
  let fwd = true;
  const step = async (name: string, run: (ipset: string, tc: string) => Promise<unknown>): Promise<void> => {
    const ipset = fwd ? batch(from.name, to.name, ' -exist') : batch(to.name, from.name, ' -exist');
    const tc = tcBatch(fwd ? 8 : 0);
    const t0 = performance.now();
    await run(ipset, tc);
    rows[name]!.push(performance.now() - t0);
    fwd = !fwd;
  };
  for (let i = 0; i < reps; i++) {
    await step('apply', (ipset, tc) => r.apply({ ipset, tc, iptables: { 4: null, 6: null }, destroy: null }, true));
    await step('apply', (ipset, tc) => r.apply({ ipset, tc, iptables: { 4: null, 6: null }, destroy: null }, true));
    await step('ipsetHelper', (ipset) => helper.exec('ipset', ['restore'], { input: ipset }));
    await step('ipsetHelper', (ipset) => helper.exec('ipset', ['restore'], { input: ipset }));
    await step('ipsetForked', (ipset) => forked('ipset', ['restore'], { input: ipset }));
    await step('ipsetForked', (ipset) => forked('ipset', ['restore'], { input: ipset }));
    await step('ipsetSmall', (ipset) => smallExec('ipset', ['restore'], { input: ipset }));
    await step('ipsetSmall', (ipset) => smallExec('ipset', ['restore'], { input: ipset }));
    await step('tcHelper', (_i, tc) => helper.exec('tc', ['-batch', '-'], { input: tc }));
    await step('tcHelper', (_i, tc) => helper.exec('tc', ['-batch', '-'], { input: tc }));
  }
  const rss = process.memoryUsage().rss / 2 ** 20;
  for (const [k, v] of Object.entries(rows))
    console.log(`${k.padEnd(12)} median ${median(v).toFixed(1)} ms (min ${Math.min(...v).toFixed(1)}, max ${Math.max(...v).toFixed(1)})`);
  console.log(
    `this process: ${rss.toFixed(0)} MB RSS; apply / ipset from a small process: ${(median(rows.apply!) / median(rows.ipsetSmall!)).toFixed(2)}`,
  );
  await new Reconciler(config, forked, log).clear();
} finally {
  await helper.close();
  await small.close();
  await gw.destroy();
}
