// What the kernel lacks, said by name at start: the configured classifier and leaf
// qdisc are probed (detectKernel, in a throw-away namespace) and a missing one is
// refused with the key to change, before anything is touched.

import type { Config } from '../config/config.js';
import type { Exec } from './exec.js';
import { detectKernel, type KernelFeatures } from './read.js';

export class KernelFeatureError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'KernelFeatureError';
  }
}

export function missingFeatures(config: Config, f: KernelFeatures): string[] {
  const out: string[] = [];
  const why = (k: string): string => (f.errors[k] ? ` (${f.errors[k]})` : '');
  if (!f.htb) out.push(`tc qdisc htb not supported by this kernel${why('htb')}: reselqos needs HTB`);
  if (!f.ipset) out.push(`ipset not usable${why('ipset')}`);
  if (!f.setMatch) out.push(`iptables -m set not supported by this kernel${why('setMatch')}`);
  if (config.qos.classifier === 'fw' && !f.fwFilter) {
    out.push(`tc filter fw not supported by this kernel${why('fwFilter')}: set [qos] classifier = classify`);
  }
  if (config.qos.classifier === 'classify' && !f.classifyTarget) {
    out.push(`iptables target CLASSIFY not supported by this kernel${why('classifyTarget')}: set [qos] classifier = fw`);
  }
  const fw = config.firewall;
  if (fw.enabled && fw.v6Enabled && (fw.portal6 || fw.portalBan6) && !f.nat6) {
    out.push(`ip6tables nat (DNAT) not supported by this kernel${why('nat6')}: empty [firewall] portal6 and portalBan6`);
  }
  const leaf = config.qos.leaf;
  if (leaf !== 'none' && !f[leaf]) {
    const alt = (['sfq', 'fq_codel', 'cake', 'pfifo'] as const).filter((k) => f[k]);
    out.push(`tc qdisc ${leaf} not supported by this kernel${why(leaf)}: set [qos] leaf = ${alt.length ? alt.join(' or ') : 'none'}`);
  }
  return out;
}

export async function checkKernel(config: Config, exec: Exec): Promise<KernelFeatures> {
  const f = await detectKernel(exec);
  const problems = missingFeatures(config, f);
  if (problems.length) throw new KernelFeatureError(problems);
  return f;
}
