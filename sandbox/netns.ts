// sandbox/netns.ts — a three-namespace gateway for tests, the benchmark and the demo:
//
//   <prefix>users  eth0 ══ int0  <prefix>gw  ext0 ══ eth0  <prefix>wan
//   user IPs /32 (/128)        forwards v4+v6           server wanIp (iperf3)
//
// Owns: creating/destroying those namespaces (and only namespaces whose names start with
// "rq-"), their veth pairs, addresses, routes and forwarding sysctls, plus iperf3 helpers.
// Must never: touch the root namespace (no interfaces, routes, rules, sets or sysctls there),
// use a shell, or kill a process it cannot attribute to one of its own namespaces.
//
// Addressing (all inside our namespaces):
//   users<->gw link  IPv4 10.253.0.0/30 (gw .1, users .2)   IPv6 fd72:7100:1::/64 (gw ::1, users ::2)
//   gw<->wan link    IPv4 198.51.100.0/24 (gw .1, wan .10)  IPv6 2001:db8:5100::/64 (gw ::1, wan ::10)
//   users: every user IP as /32 (/128) on eth0, default routes via the gw;
//   gw: a /32 (/128) route per user IP on int0; wan: default routes via the gw. No NAT.

import { randomBytes } from 'node:crypto';
import { realExec, inNetns, ExecError, type Exec, type ExecOptions, type ExecResult } from '../src/exec/exec.js';
import { spawnBackground, type BackgroundProcess } from './spawn.js';
import { isAlive } from '../src/daemon/pidfile.js';

export type GatewaySide = 'users' | 'gw' | 'wan';

export interface Gateway {
  names: { users: string; gw: string; wan: string };
  intIf: 'int0';
  extIf: 'ext0';
  /** IPv4 server address in wan */
  wanIp: string;
  /** IPv6 server address in wan */
  wanIp6: string;
  userIps: string[];
  userIps6: string[];
  /** Runs cmd inside one of the three namespaces. */
  exec(ns: GatewaySide, cmd: string, args: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** An Exec bound to one namespace (to hand to the kernel layer). */
  execIn(ns: GatewaySide): Exec;
  /** Kills every process in the three namespaces, then deletes them. Idempotent. */
  destroy(): Promise<void>;
}

export interface CreateGatewayOptions {
  /** Default 'rq-p<pid>-<random>-'. Must start with 'rq-'. */
  prefix?: string;
  userIps: string[];
  userIps6?: string[];
  /** Default 198.51.100.10 */
  wanIp?: string;
  /** Base Exec (root namespace), default realExec. */
  exec?: Exec;
}

const GW_INT4 = '10.253.0.1';
const USERS_LINK4 = '10.253.0.2';
const GW_INT6 = 'fd72:7100:1::1';
const USERS_LINK6 = 'fd72:7100:1::2';
const GW_EXT4 = '198.51.100.1';
const GW_EXT6 = '2001:db8:5100::1';
const WAN_IP6 = '2001:db8:5100::10';
const NS_RE = /^[A-Za-z0-9_.-]+$/;

function defaultPrefix(): string {
  return `rq-p${process.pid}-${randomBytes(2).toString('hex')}-`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Kill every process in namespace `ns` (by pid, from `ip netns pids`), then delete it. */
export async function killAndDelete(exec: Exec, ns: string): Promise<void> {
  for (let round = 0; round < 3; round++) {
    let pids: number[] = [];
    try {
      const r = await exec('ip', ['netns', 'pids', ns], { timeoutMs: 5_000 });
      pids = r.stdout
        .split(/\s+/)
        .filter((s) => /^\d+$/.test(s))
        .map(Number);
    } catch {
      return; // namespace already gone
    }
    if (pids.length === 0) break;
    for (const pid of pids) {
      if (pid === process.pid) continue;
      try {
        process.kill(pid, round === 0 ? 'SIGTERM' : 'SIGKILL');
      } catch {
        /* gone already */
      }
    }
    await sleep(round === 0 ? 200 : 100);
  }
  try {
    await exec('ip', ['netns', 'del', ns], { timeoutMs: 10_000 });
  } catch (e) {
    if (!(e instanceof ExecError && /No such file/.test(e.stderr))) throw e;
  }
}

export async function createGateway(opts: CreateGatewayOptions): Promise<Gateway> {
  const base = opts.exec ?? realExec;
  const prefix = opts.prefix ?? defaultPrefix();
  if (!prefix.startsWith('rq-') || !NS_RE.test(prefix))
    throw new Error(`createGateway: prefix must start with "rq-" and be [A-Za-z0-9_.-]: ${prefix}`);
  const names = { users: `${prefix}users`, gw: `${prefix}gw`, wan: `${prefix}wan` };
  const wanIp = opts.wanIp ?? '198.51.100.10';
  const userIps = [...opts.userIps];
  const userIps6 = [...(opts.userIps6 ?? [])];
  const ex: Record<GatewaySide, Exec> = {
    users: inNetns(base, names.users),
    gw: inNetns(base, names.gw),
    wan: inNetns(base, names.wan),
  };
  const created: string[] = [];
  const destroy = async (): Promise<void> => {
    const errs: unknown[] = [];
    for (const ns of [names.users, names.gw, names.wan]) {
      try {
        await killAndDelete(base, ns);
      } catch (e) {
        errs.push(e);
      }
    }
    if (errs.length > 0) throw errs[0];
  };

  try {
    for (const ns of [names.users, names.gw, names.wan]) {
      await base('ip', ['netns', 'add', ns]);
      created.push(ns);
    }
    const sysctl = (side: GatewaySide, kv: string[]): Promise<ExecResult> => ex[side]('sysctl', ['-q', '-w', ...kv]);
    for (const side of ['users', 'gw', 'wan'] as const) {
      await ex[side]('ip', ['link', 'set', 'lo', 'up']);
      await sysctl(side, ['net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0']);
    }
    await sysctl('gw', ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
    // veth pairs are created inside gw with their peer moved straight into users / wan.
    await ex.gw('ip', ['link', 'add', 'int0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', names.users]);
    await ex.gw('ip', ['link', 'add', 'ext0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', names.wan]);
    for (const side of ['users', 'wan'] as const) await sysctl(side, ['net.ipv6.conf.eth0.accept_dad=0']);
    await sysctl('gw', ['net.ipv6.conf.int0.accept_dad=0', 'net.ipv6.conf.ext0.accept_dad=0']);

    // gw
    await ex.gw('ip', ['addr', 'add', `${GW_INT4}/30`, 'dev', 'int0']);
    await ex.gw('ip', ['addr', 'add', `${GW_EXT4}/24`, 'dev', 'ext0']);
    await ex.gw('ip', ['-6', 'addr', 'add', `${GW_INT6}/64`, 'dev', 'int0', 'nodad']);
    await ex.gw('ip', ['-6', 'addr', 'add', `${GW_EXT6}/64`, 'dev', 'ext0', 'nodad']);
    await ex.gw('ip', ['link', 'set', 'int0', 'up']);
    await ex.gw('ip', ['link', 'set', 'ext0', 'up']);

    // users
    await ex.users('ip', ['addr', 'add', `${USERS_LINK4}/30`, 'dev', 'eth0']);
    await ex.users('ip', ['-6', 'addr', 'add', `${USERS_LINK6}/64`, 'dev', 'eth0', 'nodad']);
    if (userIps.length + userIps6.length > 0) {
      const batch = [
        ...userIps.map((ip) => `address add ${ip}/32 dev eth0`),
        ...userIps6.map((ip) => `address add ${ip}/128 dev eth0 nodad`),
      ].join('\n');
      await ex.users('ip', ['-batch', '-'], { input: `${batch}\n`, timeoutMs: 120_000 });
    }
    await ex.users('ip', ['link', 'set', 'eth0', 'up']);
    await ex.users('ip', ['route', 'add', 'default', 'via', GW_INT4, 'dev', 'eth0']);
    await ex.users('ip', ['-6', 'route', 'add', 'default', 'via', GW_INT6, 'dev', 'eth0']);

    // gw: a host route per user address towards int0
    if (userIps.length + userIps6.length > 0) {
      const batch = [...userIps.map((ip) => `route add ${ip}/32 dev int0`), ...userIps6.map((ip) => `route add ${ip}/128 dev int0`)].join(
        '\n',
      );
      await ex.gw('ip', ['-batch', '-'], { input: `${batch}\n`, timeoutMs: 120_000 });
    }

    // wan
    await ex.wan('ip', ['addr', 'add', `${wanIp}/24`, 'dev', 'eth0']);
    await ex.wan('ip', ['-6', 'addr', 'add', `${WAN_IP6}/64`, 'dev', 'eth0', 'nodad']);
    await ex.wan('ip', ['link', 'set', 'eth0', 'up']);
    await ex.wan('ip', ['route', 'add', 'default', 'via', GW_EXT4, 'dev', 'eth0']);
    await ex.wan('ip', ['-6', 'route', 'add', 'default', 'via', GW_EXT6, 'dev', 'eth0']);
  } catch (e) {
    await destroy().catch(() => undefined);
    throw e;
  }

  return {
    names,
    intIf: 'int0',
    extIf: 'ext0',
    wanIp,
    wanIp6: WAN_IP6,
    userIps,
    userIps6,
    exec: (ns, cmd, args, o) => ex[ns](cmd, args, o),
    execIn: (ns) => ex[ns],
    destroy,
  };
}

export interface ScratchNetns {
  name: string;
  /** Runs commands inside the namespace. */
  exec: Exec;
  /** Kills its processes and deletes it. Idempotent. */
  destroy(): Promise<void>;
}

/** One empty namespace "rq-p<pid>-<rand>-<suffix>" (lo up) for kernel tests. */
export async function createScratchNetns(suffix = 'scratch', base: Exec = realExec): Promise<ScratchNetns> {
  if (!NS_RE.test(suffix)) throw new Error(`createScratchNetns: bad suffix ${suffix}`);
  const name = `${defaultPrefix()}${suffix}`;
  await base('ip', ['netns', 'add', name]);
  const destroy = (): Promise<void> => killAndDelete(base, name);
  const exec = inNetns(base, name);
  try {
    await exec('ip', ['link', 'set', 'lo', 'up']);
  } catch (e) {
    await destroy().catch(() => undefined);
    throw e;
  }
  return { name, exec, destroy };
}

/**
 * Deletes namespaces starting with `prefix` (which must start with 'rq-') left by crashed
 * runs, killing the processes inside them first. A name carrying an owner pid ("rq-p<pid>-…",
 * as createGateway's default prefix and detectKernel's probe do) is skipped while that pid is
 * alive, so concurrent test runs are safe. Names without an owner pid are deleted.
 * Returns the deleted names.
 */
export async function cleanupStale(prefix = 'rq-', exec: Exec = realExec): Promise<string[]> {
  if (!prefix.startsWith('rq-')) throw new Error(`cleanupStale: prefix must start with "rq-": ${prefix}`);
  const { stdout } = await exec('ip', ['netns', 'list']);
  const deleted: string[] = [];
  for (const line of stdout.split('\n')) {
    const name = line.trim().split(/\s+/)[0];
    if (name === undefined || name === '' || !name.startsWith(prefix)) continue;
    const owner = /^rq-p(\d+)-/.exec(name);
    if (owner && Number(owner[1]) !== process.pid && isAlive(Number(owner[1]))) continue;
    await killAndDelete(exec, name);
    deleted.push(name);
  }
  return deleted;
}

// ------------------------------------------------------------------ iperf3

export interface IperfServer {
  port: number;
  process: BackgroundProcess;
  stop(): Promise<void>;
}

/** Starts `iperf3 -s -p port` in the wan namespace and waits until it listens. */
export async function startIperfServer(gw: Gateway, port: number): Promise<IperfServer> {
  const proc = await spawnBackground('ip', ['netns', 'exec', gw.names.wan, 'iperf3', '-s', '-p', String(port)]);
  const deadline = Date.now() + 5_000;
  for (;;) {
    const r = await gw.exec('wan', 'ss', ['-Hltn', `sport = :${port}`]);
    if (r.stdout.trim() !== '') break;
    if (!proc.running()) throw new Error(`iperf3 server on port ${port} exited: ${proc.output().stderr.trim()}`);
    if (Date.now() > deadline) {
      await proc.stop();
      throw new Error(`iperf3 server on port ${port} did not start listening`);
    }
    await sleep(50);
  }
  return { port, process: proc, stop: () => proc.stop() };
}

export interface IperfRun {
  /** user IP the client binds to (in the users namespace) */
  bindIp: string;
  port: number;
  seconds: number;
  /** true = download: the wan server sends to the user (iperf3 -R) */
  reverse: boolean;
  /** server address, default gw.wanIp (use gw.wanIp6 for IPv6) */
  server?: string;
  /** iperf3 -O: seconds of warm-up left out of the result (default 0) */
  omit?: number;
}

export interface IperfResult {
  /** goodput measured at the receiver (end.sum_received.bits_per_second) */
  bitsPerSecond: number;
  /** TCP retransmits of the sender (end.sum_sent.retransmits) */
  retransmits: number;
  /** the full iperf3 -J document */
  json: unknown;
}

/** Runs an iperf3 client in the users namespace; returns receiver goodput and retransmits. */
export async function runIperf(gw: Gateway, o: IperfRun): Promise<IperfResult> {
  const args = ['-c', o.server ?? gw.wanIp, '-p', String(o.port), '-B', o.bindIp, '-t', String(o.seconds), '-J'];
  if (o.omit) args.push('-O', String(o.omit));
  if (o.reverse) args.push('-R');
  let stdout: string;
  try {
    ({ stdout } = await gw.exec('users', 'iperf3', args, { timeoutMs: (o.seconds + (o.omit ?? 0)) * 1000 + 20_000 }));
  } catch (e) {
    // iperf3 -J reports errors in its JSON ("error": "...") on stdout
    if (e instanceof ExecError) {
      try {
        const j = JSON.parse(e.stdout) as { error?: string };
        if (j.error) throw new Error(`iperf3 ${args.join(' ')}: ${j.error}`, { cause: e });
      } catch (pe) {
        if (pe instanceof Error && pe.message.startsWith('iperf3 ')) throw pe;
      }
    }
    throw e;
  }
  const json = JSON.parse(stdout) as {
    error?: string;
    end?: { sum_received?: { bits_per_second?: number }; sum_sent?: { retransmits?: number } };
  };
  if (json.error) throw new Error(`iperf3 ${args.join(' ')}: ${json.error}`);
  const bps = json.end?.sum_received?.bits_per_second;
  if (typeof bps !== 'number') throw new Error('iperf3: no end.sum_received.bits_per_second in its JSON');
  return { bitsPerSecond: bps, retransmits: json.end?.sum_sent?.retransmits ?? 0, json };
}
