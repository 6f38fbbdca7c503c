// `reselqos plan [-c FILE] [--json] [--force]`: one cycle in dry run (fetch both sources once,
// compute the desired state, compare with the kernel) and print it. Changes nothing anywhere
// (no kernel, no state files).

import type { Config } from '../config/config.js';
import { formatRate, formatSize } from '../config/units.js';
import type { Clock } from '../clock.js';
import { MemoryLogger } from '../log.js';
import { rawBytesOf, type Desired } from '../plan/desired.js';
import { perUserRate } from '../policy/policy.js';
import { Sources } from '../state/sources.js';
import { sortIps } from '../net/ip.js';
import { Reconciler, type ReconcileResult } from '../kernel/reconciler.js';
import { kernelExec } from '../daemon/runtime.js';
import { CycleRunner } from '../cycle/cycle.js';
import { EXIT, loadConfigOrReport, type Io } from './common.js';

export interface ChangesJson {
  ipset: { add: number; del: number };
  tc: { change: number; add: number };
  iptables: number;
  lists: {
    ipset: { set: string; add: string[]; del: string[]; rebuild: number | null; create: boolean }[];
    destroy: string[];
    iptables: string[];
    tc: string[];
  };
}

export function changesJson(r: ReconcileResult): ChangesJson {
  const ipt = [r.batches.iptables[4], r.batches.iptables[6]].flatMap((b, i) =>
    b
      ? b
          .trim()
          .split('\n')
          .map((l) => `${i === 0 ? 'v4' : 'v6'} ${l}`)
      : [],
  );
  return {
    ipset: r.counts.ipset,
    tc: r.counts.tc,
    iptables: r.counts.iptables,
    lists: {
      ipset: r.plan.sets.map((s) => ({
        set: s.name,
        create: s.create,
        add: [...s.add],
        del: [...s.del],
        rebuild: s.rebuild ? s.rebuild.length : null,
      })),
      destroy: [...r.plan.destroy],
      iptables: ipt,
      tc: r.batches.tc ? r.batches.tc.trim().split('\n') : [],
    },
  };
}

export interface PlanJson {
  /** `bytes`: the counted volume (decides the group); `rawBytes`: before the off-peak weight (= bytes without a window) */
  users: {
    uid: string;
    ips: string[];
    down: { bytes: number; group: number; rawBytes: number };
    up: { bytes: number; group: number; rawBytes: number };
  }[];
  classes: { direction: 'down' | 'up'; group: number; users: number; rateBps: number; ceilBps: number }[];
  skipped: { dn: string; reason: string }[];
  changes?: ChangesJson | null;
}

export function planJson(d: Desired, changes?: ReconcileResult | null): PlanJson {
  return {
    ...(changes === undefined ? {} : { changes: changes ? changesJson(changes) : null }),
    users: d.users.map((u) => {
      const raw = rawBytesOf(d, u);
      return {
        uid: u.uid,
        ips: sortIps([...u.ips]),
        down: { bytes: u.down.bytes, group: u.down.group, rawBytes: raw.down },
        up: { bytes: u.up.bytes, group: u.up.group, rawBytes: raw.up },
      };
    }),
    classes: d.classes.map((c) => ({ direction: c.direction, group: c.group, users: c.users, rateBps: c.rateBps, ceilBps: c.ceilBps })),
    skipped: d.skipped.map((s) => ({ dn: s.dn, reason: s.reason })),
  };
}

export function planText(d: Desired): string {
  const ips = d.users.reduce((a, u) => a + u.ips.length, 0);
  const lines = [
    `plan at ${d.at}${d.rule ? ` (${d.rule} in force)` : ''}, volumes since ${d.resetAt}`,
    `users ${d.users.length}, IPs ${ips}, skipped entries ${d.skipped.length}`,
  ];
  for (const dir of ['down', 'up'] as const) {
    lines.push(`${dir === 'down' ? 'download' : 'upload'} (total ${formatRate(d.totals[dir])}):`);
    for (const c of d.classes.filter((x) => x.direction === dir)) {
      const limit = d.limits[c.group];
      lines.push(
        `  group ${c.group} ${limit === undefined ? '(last)'.padEnd(12) : ('<= ' + formatSize(limit)).padEnd(12)} users ${String(c.users).padStart(6)}  class ${formatRate(c.rateBps).padStart(11)}  per user ${c.users ? formatRate(perUserRate(c)) : '-'}`,
      );
    }
  }
  if (d.skipped.length) {
    lines.push('skipped:');
    for (const s of d.skipped.slice(0, 50)) lines.push(`  ${s.dn}: ${s.reason}`);
    if (d.skipped.length > 50) lines.push(`  ... and ${d.skipped.length - 50} more (see --json)`);
  }
  return lines.join('\n');
}

/**
 * One dry-run cycle (src/cycle/cycle.ts: both sources fetched once, no fallback: a source that
 * fails or answers with its last snapshot is the error; planned from scratch; compared with the
 * live kernel, nothing applied). A kernel that cannot be read is a warning: the plan stands.
 */
export async function fetchAndPlan(
  config: Config,
  clock: Clock,
  force: boolean,
): Promise<{ desired: Desired; changes: ReconcileResult | null; warnings: string[] } | { error: string }> {
  const log = new MemoryLogger();
  const sources = new Sources(config, log, { persist: false });
  try {
    await sources.init();
    const reconciler = new Reconciler(config, kernelExec(config), log);
    const cycle = new CycleRunner(config, { directory: sources, usage: sources }, reconciler, log, clock);
    const r = await cycle.run({ dryRun: true, force, freshOnly: true });
    // no plan: a source failed; a plan but no success: the kernel's read-back failed
    if (!r.desired) return { error: r.error ?? 'the sources failed' };
    if (!r.ok) log.warn(`kernel: cannot compare with the live kernel: ${r.error}`);
    return { desired: r.desired, changes: r.ok ? r.result : null, warnings: log.of('warn') };
  } finally {
    await sources.close();
  }
}

export async function runPlan(opts: { config?: string; json: boolean; force: boolean }, io: Io, clock: Clock): Promise<number> {
  const config = await loadConfigOrReport(opts.config, io);
  if (!config) return EXIT.invalid;
  const r = await fetchAndPlan(config, clock, opts.force);
  if ('error' in r) {
    io.err(`reselqos plan: ${r.error}`);
    return EXIT.failed;
  }
  for (const w of r.warnings) io.err(`warning: ${w}`);
  if (opts.json) {
    io.out(JSON.stringify(planJson(r.desired, r.changes)));
  } else {
    const c = r.changes;
    const tail = c
      ? `changes against the kernel: ipset +${c.counts.ipset.add}/-${c.counts.ipset.del}, tc ${c.counts.tc.change} change(s) ${c.counts.tc.add} add(s), iptables ${c.counts.iptables} rule(s)`
      : 'changes against the kernel: unknown (kernel state not readable here)';
    io.out(planText(r.desired) + '\n' + tail);
  }
  return EXIT.ok;
}
