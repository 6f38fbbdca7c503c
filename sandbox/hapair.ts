// sandbox/hapair.ts — two gateways of one campus (an HA pair) in rq-* network namespaces:
//
//   <p>users eth0 ── br0 <p>ub ──┬── int0 <p>a ext0 ──┬── br0 <p>wb ── eth0 <p>wan
//                                └── int0 <p>b ext0 ──┘
//                               A sy0 ═══ sy0 B (the dedicated link of conntrackd)
//
// Users' side 172.22.0.0/16: virtual address .0.1 (VRRP), A .0.2, B .0.3, user IPs on the
// users' eth0, default route via the virtual address. Wan side 198.51.100.0/24: virtual .1,
// A .2, B .3, the server .10 with a route to the users' network via .1. Sync link
// 10.255.255.0/30 (A .1, B .2). The gateways forward, no NAT.
// Owns creating and destroying those namespaces (only names starting with "rq-"); never
// touches the root namespace; no shell.

import { randomBytes } from 'node:crypto';
import { realExec, inNetns, type Exec, type ExecOptions, type ExecResult } from '../src/exec/exec.js';
import { killAndDelete } from './netns.js';

export type PairSide = 'users' | 'ub' | 'a' | 'b' | 'wb' | 'wan';
export const SIDES: readonly PairSide[] = ['users', 'ub', 'a', 'b', 'wb', 'wan'];

export const PAIR = {
  usersNet: '172.22.0.0/16',
  usersVip: '172.22.0.1',
  usersIp: { a: '172.22.0.2', b: '172.22.0.3' },
  wanVip: '198.51.100.1',
  wanIp: { a: '198.51.100.2', b: '198.51.100.3' },
  server: '198.51.100.10',
  syncIp: { a: '10.255.255.1', b: '10.255.255.2' },
} as const;

export interface HaPair {
  /** namespace names per side */
  readonly ns: Readonly<Record<PairSide, string>>;
  exec(side: PairSide, cmd: string, args: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  execIn(side: PairSide): Exec;
  /** Kills every process in the namespaces, then deletes them. Idempotent. */
  destroy(): Promise<void>;
}

export async function createHaPair(userIps: readonly string[]): Promise<HaPair> {
  const prefix = `rq-h${process.pid % 100000}${randomBytes(1).toString('hex')}-`;
  const ns = Object.fromEntries(SIDES.map((s) => [s, `${prefix}${s}`])) as Record<PairSide, string>;
  const ex = Object.fromEntries(SIDES.map((s) => [s, inNetns(realExec, ns[s])])) as Record<PairSide, Exec>;
  const destroy = async (): Promise<void> => {
    for (const s of SIDES) await killAndDelete(realExec, ns[s]).catch(() => undefined);
  };
  try {
    for (const s of SIDES) {
      await realExec('ip', ['netns', 'add', ns[s]]);
      await ex[s]('ip', ['link', 'set', 'lo', 'up']);
      await ex[s]('sysctl', ['-q', '-w', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0']);
    }
    for (const br of ['ub', 'wb'] as const) {
      await ex[br]('ip', ['link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
      await ex[br]('ip', ['link', 'set', 'br0', 'up']);
    }
    /** a veth from `side` (named `name`) to a port of bridge `br` */
    const plug = async (side: PairSide, name: string, br: 'ub' | 'wb', port: string): Promise<void> => {
      await ex[side]('ip', ['link', 'add', name, 'type', 'veth', 'peer', 'name', port, 'netns', ns[br]]);
      await ex[br]('ip', ['link', 'set', port, 'master', 'br0', 'up']);
      await ex[side]('ip', ['link', 'set', name, 'up']);
    };
    await plug('users', 'eth0', 'ub', 'pu');
    await plug('wan', 'eth0', 'wb', 'pw');
    for (const g of ['a', 'b'] as const) {
      await plug(g, 'int0', 'ub', `p${g}i`);
      await plug(g, 'ext0', 'wb', `p${g}e`);
      await ex[g]('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
      await ex[g]('ip', ['addr', 'add', `${PAIR.usersIp[g]}/16`, 'dev', 'int0']);
      await ex[g]('ip', ['addr', 'add', `${PAIR.wanIp[g]}/24`, 'dev', 'ext0']);
    }
    await ex.a('ip', ['link', 'add', 'sy0', 'type', 'veth', 'peer', 'name', 'sy0', 'netns', ns.b]);
    for (const g of ['a', 'b'] as const) {
      await ex[g]('ip', ['addr', 'add', `${PAIR.syncIp[g]}/30`, 'dev', 'sy0']);
      await ex[g]('ip', ['link', 'set', 'sy0', 'up']);
    }
    // users: every user IP in the users' network, default route via the virtual address
    await ex.users('ip', ['addr', 'add', '172.22.255.254/16', 'dev', 'eth0']);
    for (const ip of userIps) await ex.users('ip', ['addr', 'add', `${ip}/32`, 'dev', 'eth0']);
    await ex.users('ip', ['route', 'add', 'default', 'via', PAIR.usersVip]);
    await ex.wan('ip', ['addr', 'add', `${PAIR.server}/24`, 'dev', 'eth0']);
    await ex.wan('ip', ['route', 'add', PAIR.usersNet, 'via', PAIR.wanVip]);
  } catch (e) {
    await destroy();
    throw e;
  }
  return {
    ns,
    exec: (side, cmd, args, opts) => ex[side](cmd, args, opts),
    execIn: (side) => ex[side],
    destroy,
  };
}
