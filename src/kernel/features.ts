// What the kernel lacks, said by name at start: the configured classifier and leaf
// qdisc are probed (detectKernel) and a missing one is refused with the key to change,
// before anything is touched.
//
// detectKernel writes: it creates a throw-away network namespace `rq-p<pid>-<rand>-probe`,
// tries each feature on an interface inside it, and always deletes it. It touches nothing
// outside that namespace.

import { randomBytes } from 'node:crypto';
import type { Config } from '../config/config.js';
import { ExecError, inNetns, type Exec } from '../exec/exec.js';

export interface KernelFeatures {
  fwFilter: boolean;
  /** the `flow` classifier (cls_flow): what fairness = host needs with sfq or fq_codel */
  flowFilter: boolean;
  sfq: boolean;
  fq_codel: boolean;
  cake: boolean;
  pfifo: boolean;
  htb: boolean;
  classifyTarget: boolean;
  /** ip6tables nat with DNAT (the IPv6 portal redirect) */
  nat6: boolean;
  setMatch: boolean;
  ipset: boolean;
  iptablesBackend: 'nf_tables' | 'legacy';
  /** Why each missing feature failed (first error line of the probe), e.g. sfq: "Error: Specified qdisc kind is unknown." */
  errors: Record<string, string>;
}

function errText(e: unknown): string {
  if (e instanceof ExecError) return (e.stderr.trim().split('\n')[0] ?? '').trim() || e.message;
  return e instanceof Error ? e.message : String(e);
}

/** A namespace name that embeds our pid, so cleanupStale can tell live owners from crashed ones. */
export function ownedNetnsName(suffix: string): string {
  return `rq-p${process.pid}-${randomBytes(3).toString('hex')}-${suffix}`;
}

/*
 * Errors seen on this machine (kernel 6.18 without the modules):
 *   dummy:    "Error: Unknown device type."   (so the probe falls back to a veth pair)
 *   sfq, fq_codel, cake:  "Error: Specified qdisc kind is unknown."
 *   fw:       "Error: TC classifier not found."  (followed by "We have an error talking to the kernel")
 */
/**
 * Tries each feature on a throw-away interface inside a temporary namespace (always deleted).
 * `exec` runs in the root namespace; it is used for `ip netns add/del` and, wrapped with
 * inNetns, for everything else.
 */
export async function detectKernel(exec: Exec): Promise<KernelFeatures> {
  const ns = ownedNetnsName('probe');
  const ex = inNetns(exec, ns);
  const errors: Record<string, string> = {};
  const tryIt = async (key: string, cmd: string, args: string[]): Promise<boolean> => {
    try {
      await ex(cmd, args, { timeoutMs: 10_000 });
      return true;
    } catch (e) {
      errors[key] = errText(e);
      return false;
    }
  };
  const f: KernelFeatures = {
    fwFilter: false,
    flowFilter: false,
    sfq: false,
    fq_codel: false,
    cake: false,
    pfifo: false,
    htb: false,
    classifyTarget: false,
    setMatch: false,
    ipset: false,
    nat6: false,
    iptablesBackend: 'nf_tables',
    errors,
  };
  try {
    const v = await exec('iptables', ['-V']);
    f.iptablesBackend = /legacy/.test(v.stdout) ? 'legacy' : 'nf_tables';
  } catch (e) {
    errors.iptables = errText(e);
  }
  await exec('ip', ['netns', 'add', ns]);
  try {
    const dev = 'rqprobe0';
    if (!(await tryIt('dummy', 'ip', ['link', 'add', dev, 'type', 'dummy']))) {
      // no dummy driver (this test machine): a veth pair inside the namespace does as well
      await ex('ip', ['link', 'add', dev, 'type', 'veth', 'peer', 'name', 'rqprobe1']);
    }
    await ex('ip', ['link', 'set', dev, 'up']);
    f.htb = await tryIt('htb', 'tc', ['qdisc', 'add', 'dev', dev, 'root', 'handle', '1:', 'htb', 'default', '1']);
    if (f.htb) {
      await ex('tc', ['class', 'add', 'dev', dev, 'parent', '1:', 'classid', '1:1', 'htb', 'rate', '1000000bit']);
      for (const kind of ['pfifo', 'sfq', 'fq_codel', 'cake'] as const) {
        const ok = await tryIt(kind, 'tc', ['qdisc', 'add', 'dev', dev, 'parent', '1:1', 'handle', '10:', kind]);
        f[kind] = ok;
        if (ok) await ex('tc', ['qdisc', 'del', 'dev', dev, 'parent', '1:1', 'handle', '10:']);
      }
      f.fwFilter = await tryIt('fwFilter', 'tc', [
        'filter',
        'add',
        'dev',
        dev,
        'parent',
        '1:',
        'protocol',
        'ip',
        'prio',
        '1',
        'handle',
        '1',
        'fw',
        'classid',
        '1:1',
      ]);
      f.flowFilter = await tryIt('flowFilter', 'tc', [
        ...['filter', 'add', 'dev', dev, 'parent', '1:', 'protocol', 'all', 'prio', '2', 'handle', '2'],
        ...['flow', 'hash', 'keys', 'dst', 'divisor', '1024', 'baseclass', '1:1'],
      ]);
    } else {
      f.pfifo = await tryIt('pfifo', 'tc', ['qdisc', 'add', 'dev', dev, 'root', 'handle', '1:', 'pfifo']);
    }
    f.ipset = await tryIt('ipset', 'ipset', ['create', 'rq_probe', 'hash:ip', 'family', 'inet']);
    if (f.ipset) {
      f.setMatch = await tryIt('setMatch', 'iptables', [
        '-t',
        'mangle',
        '-A',
        'POSTROUTING',
        '-m',
        'set',
        '--match-set',
        'rq_probe',
        'dst',
        '-j',
        'RETURN',
      ]);
    }
    f.classifyTarget = await tryIt('classifyTarget', 'iptables', [
      '-t',
      'mangle',
      '-A',
      'POSTROUTING',
      '-j',
      'CLASSIFY',
      '--set-class',
      '1:1',
    ]);
    f.nat6 = await tryIt('nat6', 'ip6tables', [
      '-t',
      'nat',
      '-A',
      'PREROUTING',
      '-p',
      'tcp',
      '-j',
      'DNAT',
      '--to-destination',
      '[2001:db8::1]:80',
    ]);
  } finally {
    // Deleting the namespace removes its interfaces, qdiscs, ipsets and rules with it.
    await exec('ip', ['netns', 'del', ns]).catch(() => undefined);
  }
  return f;
}

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
  // never a silent flow-fair class: host fairness with sfq/fq_codel is the flow filter's
  if (config.qos.fairness === 'host' && (leaf === 'sfq' || leaf === 'fq_codel') && !f.flowFilter) {
    out.push(
      `tc filter flow not supported by this kernel${why('flowFilter')}: [qos] fairness = host with leaf = ${leaf} needs it to share each class by user address; ${f.cake ? 'set leaf = cake, or ' : 'set '}fairness = flow (shared by flow: a user with many flows takes many shares)`,
    );
  }
  return out;
}

export async function checkKernel(config: Config, exec: Exec): Promise<KernelFeatures> {
  const f = await detectKernel(exec);
  const problems = missingFeatures(config, f);
  if (problems.length) throw new KernelFeatureError(problems);
  return f;
}
