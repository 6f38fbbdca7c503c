// bench/cold-apply.ts — the cold apply alone (issue 16): a synthetic directory of N users
// (3 IPv4 machines each, one in five with an IPv6 address) planned from scratch, then the first
// reconcile on an empty kernel in a private gateway namespace, phase by phase, against one
// `ipset restore` of exactly the same set members (create lines sized as ours) run through
// `ip netns exec` from this process. No LDAP, no MySQL: only the kernel side.
// Root. Usage: node --expose-gc build/bench/cold-apply.js [users=100000] [reps=2]
// Benchmark-only code; never used by the daemon.

import { DateTime } from 'luxon';
import { inNetns, realExec } from '../src/exec/exec.js';
import { helperExec } from '../src/exec/exec-via-helper.js';
import { Reconciler } from '../src/kernel/reconciler.js';
import { buildKernelDesired } from '../src/kernel/model.js';
import { maxelemFor } from '../src/kernel/diff.js';
import { createLine } from '../src/kernel/render.js';
import { planDesired } from '../src/plan/desired.js';
import { MemoryLogger } from '../src/log.js';
import { createGateway } from '../sandbox/netns.js';
import { applyConfig, directory } from './cold-apply-dir.js';

const users = Number(process.argv[2] ?? 100_000);
const reps = Number(process.argv[3] ?? 2);
const MB = 1024 * 1024;

const gc = (): void => (globalThis as { gc?: () => void }).gc?.();
const fmt = (x: number): string => x.toFixed(0);

const gw = await createGateway({ userIps: [] });
try {
  const config = applyConfig(gw.names.gw, 'cold-apply.conf');
  const at = DateTime.utc();
  const desired = planDesired(config, directory(users), null, at, at);
  const kd = buildKernelDesired(config, desired);
  const entries = kd.sets.reduce((a, s) => a + s.members.size, 0);
  console.log(`${users} users, ${kd.sets.length} sets, ${entries} set entries`);
  const direct = inNetns(realExec, gw.names.gw);
  const log = new MemoryLogger();
  for (let rep = 0; rep < reps; rep++) {
    const h = helperExec({ netns: gw.names.gw });
    await h.ready();
    await new Reconciler(config, direct, log).clear();
    gc();
    const rssBefore = process.memoryUsage().rss / MB;
    const times: string[] = [];
    const timed: typeof h.exec = async (cmd, args, o) => {
      const a = performance.now();
      try {
        return await h.exec(cmd, args, o);
      } finally {
        times.push(`${cmd} ${args[0] ?? ''} ${fmt(performance.now() - a)}`);
      }
    };
    const r = new Reconciler(config, timed, log);
    const t0 = performance.now();
    const res = await r.reconcile(desired);
    const total = performance.now() - t0;
    // A second reconcile of the same plan from scratch: read back (cheap check) and a full diff of every member against the memory.
    const t4 = performance.now();
    const again = await r.reconcile(desired);
    const fullDiff = again.timings.diffMs;
    const againTotal = performance.now() - t4;
    gc();
    const heapAfter = (process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers) / MB;
    console.log(
      `reconcile: total ${fmt(total)} ms = read ${fmt(res.timings.readMs)} + diff/render ${fmt(res.timings.diffMs)} + apply ${fmt(res.timings.applyMs)}; ` +
        `ipset batch ${res.batches.ipset === null ? 'streamed' : `${fmt(res.batches.ipset.length / MB)} MB`}; rss before ${fmt(rssBefore)} MB, heap + array buffers after ${fmt(heapAfter)} MB; ` +
        `helper ${h.stats.viaHelper}, direct ${h.stats.direct}; the same plan again: ${fmt(againTotal)} ms, full diff ${fmt(fullDiff)} ms\n  commands (ms): ${times.join(', ')}`,
    );
    (r as unknown as { memory: { forget(): void } }).memory.forget();
    gc();
    console.log(
      `  the reconciler's memory of the sets: ${fmt(heapAfter - (process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers) / MB)} MB of heap and array buffers`,
    );
    await h.close();
    // The baseline: one ipset restore of the same members, nothing else.
    await new Reconciler(config, direct, log).clear();
    const t1 = performance.now();
    const lines: string[] = [];
    for (const s of kd.sets) {
      lines.push(createLine(s.name, { family: s.family, maxelem: maxelemFor(Math.max(s.capacity, s.members.size)) }, s.members.size));
      for (const ip of s.members) lines.push(`add ${s.name} ${ip}`);
    }
    const batch = lines.join('\n') + '\n';
    const t2 = performance.now();
    await direct('ipset', ['restore'], { input: batch, timeoutMs: 300_000 });
    const t3 = performance.now();
    console.log(`baseline: one ipset restore ${fmt(t3 - t2)} ms (+ ${fmt(t2 - t1)} ms to write its text, ${fmt(batch.length / MB)} MB)`);
  }
  await new Reconciler(config, direct, log).clear();
} finally {
  await gw.destroy();
}
