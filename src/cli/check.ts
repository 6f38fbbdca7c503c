// `reselqos check [-c FILE] [--at ISO_LOCAL_TIME] [--json]`: validate qos.conf and
// show what is in force at an instant: thresholds, the active rate rule, the rates.

import { describeWindow } from '../netacct/volumes-window.js';
import { DateTime } from 'luxon';
import type { Config } from '../config/config.js';
import { formatRate, formatSize, formatTimeOfDay } from '../config/units.js';
import { effectiveRates, thresholds } from '../policy/policy.js';
import type { Clock } from '../clock.js';
import { EXIT, UsageError, loadConfigOrReport, type Io } from './common.js';
import { detectKernel, missingFeatures } from '../kernel/features.js';
import { realExec } from '../exec/exec.js';

export interface CheckJson {
  groups: { group: number; limitBytes: number | null }[];
  rates: { down: { totalBps: number }; up: { totalBps: number } };
  rule: string | null;
}

/** One line on how a group class is shared ([qos] leaf and fairness). */
export function fairnessText(config: Config): string {
  const { leaf, fairness } = config.qos;
  if (fairness === 'flow')
    return `leaf ${leaf}, fairness flow: each group class shared by flow (a user with more flows gets more)${
      leaf === 'sfq'
        ? "; sfq shares by flow only (by host, one user's download would delay their own interactive traffic by seconds): fairness host needs leaf = fq_codel or cake"
        : ''
    }`;
  const how =
    leaf === 'cake'
      ? 'cake dual-dsthost (down) / dual-srchost (up), nat'
      : `${leaf} behind a flow filter hashing dst (down) / nfct-src (up)`;
  return `leaf ${leaf}, fairness host: each group class shared equally by user address, whatever their number of flows (${how})`;
}

export function checkReport(config: Config, at: DateTime): CheckJson {
  const limits = thresholds(config.qos);
  const eff = effectiveRates(config, at);
  return {
    groups: Array.from({ length: config.qos.groups }, (_, g) => ({ group: g, limitBytes: limits[g] ?? null })),
    rates: { down: { totalBps: eff.rates['down']! }, up: { totalBps: eff.rates['up']! } },
    rule: eff.rule,
  };
}

export function parseAt(raw: string | undefined, config: Config, clock: Clock): DateTime {
  if (raw === undefined) return clock().setZone(config.qos.timezone);
  const at = DateTime.fromISO(raw, { zone: config.qos.timezone, setZone: true });
  if (!at.isValid) throw new UsageError(`--at: expected an ISO local time such as 2026-11-22T21:30, got "${raw}"`);
  return at.setZone(config.qos.timezone);
}

/**
 * `--kernel` (root): probe this kernel for what the configuration needs (the classifier, the
 * leaf, fairness = host's flow filter, the IPv6 portal's nat) in a throw-away namespace, as
 * `start` does: each missing feature on stderr, exit 1.
 */
async function kernelProblems(config: Config, io: Io, json: boolean): Promise<number> {
  try {
    const problems = missingFeatures(config, await detectKernel(realExec));
    for (const p of problems) io.err(`kernel: ${p}`);
    if (!problems.length && !json) io.out('kernel: every feature this configuration needs is there');
    return problems.length ? EXIT.failed : EXIT.ok;
  } catch (e) {
    io.err(`kernel: could not probe (${(e as Error).message}); run as root`);
    return EXIT.failed;
  }
}

/** How the firewall refuses: by interface, whatever the source address; passSources listed. */
export function firewallLine(config: Config): string {
  const fw = config.firewall;
  if (!fw.enabled) return 'firewall: off (enabled = 0), nothing refused';
  const families = fw.v6Enabled ? 'IPv4 and IPv6' : 'IPv4 (IPv6 passes: v6Enabled = 0)';
  return (
    `firewall: refuses by interface: ${families} arriving on ${fw.ethInt} and not allowed is refused, whatever its source address; ` +
    `passSources ${fw.passSources.length ? fw.passSources.join(', ') : 'none'}`
  );
}

export async function runCheck(
  opts: { config?: string; at?: string; json: boolean; kernel?: boolean },
  io: Io,
  clock: Clock,
): Promise<number> {
  const config = await loadConfigOrReport(opts.config, io);
  if (!config) return EXIT.invalid;
  const at = parseAt(opts.at, config, clock);
  const report = checkReport(config, at);
  if (opts.json) {
    io.out(JSON.stringify(report));
    return opts.kernel ? kernelProblems(config, io, true) : EXIT.ok;
  }
  const eff = effectiveRates(config, at);
  const lines: string[] = [];
  lines.push(`${config.file}: valid${config.warnings.length ? ` (${config.warnings.length} warning(s))` : ''}`);
  lines.push(
    `at ${at.toFormat('yyyy-MM-dd HH:mm ZZZZ')} (${config.qos.timezone}): ${eff.rule ? `${eff.rule} in force` : 'no rate rule in force'}`,
  );
  for (const r of config.rateRules) {
    lines.push(
      `  ${r.name}: ${formatTimeOfDay(r.from)}-${formatTimeOfDay(r.to)} down ${r.down ? formatRate(r.down) : 'unchanged'}, up ${r.up ? formatRate(r.up) : 'unchanged'}`,
    );
  }
  lines.push('rates:');
  for (const [key, v] of Object.entries(eff.rates)) {
    const base = config.rates[key]!;
    lines.push(`  ${key.padEnd(12)} ${formatRate(v)}${v !== base ? ` (base ${formatRate(base)})` : ''}`);
  }
  if (config.sharing.enabled) {
    lines.push(
      `sharing: site ${config.site.name}, weight ${config.sharing.weight}, stale after ${config.sharing.stale} intervals, table ${config.sharing.db}.sites; ` +
        `global ${formatRate(eff.rates['globalDown']!)} down / ${formatRate(eff.rates['globalUp']!)} up, this site's cap ${formatRate(eff.rates['down']!)} / ${formatRate(eff.rates['up']!)}`,
    );
  }
  lines.push(firewallLine(config));
  const op = config.qos.offPeak;
  lines.push(
    op
      ? `off-peak window ${describeWindow(op)} (${config.qos.timezone}): traffic of those hours counts at that weight toward the groups`
      : 'off-peak window: none (every byte counts)',
  );
  lines.push(
    `groups (${config.qos.enabled ? 'QoS enabled' : 'QoS disabled: everyone in group 0'}), daily reset at ${config.qos.resetHour}:00:`,
  );
  for (const g of report.groups) {
    const share = (config.qos.factor ** g.group * 100).toFixed(0);
    lines.push(
      `  group ${g.group}: ${g.limitBytes === null ? 'above the last limit'.padEnd(22) : ('up to ' + formatSize(g.limitBytes)).padEnd(22)} per-user rate ${share} % of group 0`,
    );
  }
  lines.push(fairnessText(config));
  io.out(lines.join('\n'));
  return opts.kernel ? kernelProblems(config, io, false) : EXIT.ok;
}
