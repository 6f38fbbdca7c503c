// The desired state in kernel terms: which sets with which members, which chains with
// which rules (each stamped with an identity hash in its comment: src/kernel/ruleid.ts), which
// HTB classes with which rates on which interface. Pure: built from the planner's
// Desired and the config (each class's leaf qdisc: leaf.ts); compared by diff.ts with what read.ts reads back.

import type { Config } from '../config/config.js';
import type { Desired } from '../plan/desired.js';
import { DIRECTIONS, type Direction } from '../policy/policy.js';
import {
  COMMENT_PREFIX,
  DEFAULT_MINOR,
  ROOT_MINOR,
  Names,
  classid,
  classifyId,
  leafHandle,
  markHex,
  type IpFamily,
  type SetFamily,
} from './names.js';
import { stampRule } from './ruleid.js';
import { leafQdisc, withHandle, type LeafSpec } from './leaf.js';

export interface SetSpec {
  readonly name: string;
  readonly family: SetFamily;
  readonly members: ReadonlySet<string>;
  /** how many members the set may come to hold (sizes maxelem): the user IPs of its family */
  readonly capacity: number;
}

/** A rule as the argument list that follows "-A <chain>" in iptables-save output. */
export type RuleArgs = readonly string[];

export interface ChainSpec {
  readonly name: string;
  readonly rules: readonly RuleArgs[];
}

export type TableName = 'mangle' | 'filter' | 'nat';
export const TABLES: readonly TableName[] = ['mangle', 'filter', 'nat'];

export interface HookSpec {
  readonly builtin: 'POSTROUTING' | 'PREROUTING' | 'FORWARD';
  readonly args: RuleArgs;
}

/** Our chains and hooks in one table of one family; an empty spec removes what we had there. */
export interface TableSpec {
  readonly family: IpFamily;
  readonly table: TableName;
  readonly chains: readonly ChainSpec[];
  readonly hooks: readonly HookSpec[];
}

export interface TcClassSpec {
  readonly classid: string;
  readonly parent: string;
  readonly rateBps: number;
  readonly ceilBps: number;
  /** bytes; null for the inner (root) class, where HTB ignores it */
  readonly quantum: number | null;
  /** leaf qdisc: handle and the words after it ("pfifo limit 1000"), null for none */
  readonly leaf: LeafSpec | null;
}

export interface TcFilterSpec {
  readonly mark: number;
  readonly classid: string;
}

export interface TcDevSpec {
  readonly dev: string;
  readonly direction: Direction;
  readonly defaultMinor: number;
  readonly classes: readonly TcClassSpec[];
  /** fw filters (classifier = fw); empty with classify */
  readonly filters: readonly TcFilterSpec[];
}

export interface KernelDesired {
  readonly sets: readonly SetSpec[];
  /** every (family, table) pair, in apply order */
  readonly tables: readonly TableSpec[];
  readonly tc: readonly TcDevSpec[];
}

/** HTB quantum (bytes): rate/10 as the kernel would, kept within [MTU, 200 000] to avoid its warnings. */
export function quantumFor(rateBps: number): number {
  return Math.min(200_000, Math.max(1514, Math.floor(rateBps / 8 / 10)));
}

/** HTB rates are whole bytes per second: render only what the kernel can hold, at least 8 bit/s. */
export function htbRate(bps: number): number {
  return Math.max(8, Math.floor(bps / 8) * 8);
}

const hook = (builtin: HookSpec['builtin'], match: string[], chain: string): HookSpec => ({
  builtin,
  args: [...match, '-m', 'comment', '--comment', `${COMMENT_PREFIX}hook`, '-j', chain],
});

/** Mangle: one rule per group and direction, marking or classifying by set. */
function mangleTable(config: Config, names: Names, family: IpFamily): TableSpec {
  const q = config.qos;
  const setFamily: SetFamily = family === 4 ? 'inet' : 'inet6';
  const chains: ChainSpec[] = [];
  const hooks: HookSpec[] = [];
  for (const dir of DIRECTIONS) {
    const chain = names.chain(dir);
    const match = dir === 'down' ? 'dst' : 'src';
    const rules: RuleArgs[] = [];
    for (let g = 0; g < q.groups; g++) {
      const target =
        q.classifier === 'fw'
          ? ['-j', 'MARK', '--set-xmark', `${markHex(names.mark(dir, g))}/0xffffffff`]
          : ['-j', 'CLASSIFY', '--set-class', classifyId(names.groupMinor(g))];
      rules.push([
        '-m',
        'set',
        '--match-set',
        names.set(setFamily, dir, g),
        match,
        '-m',
        'comment',
        '--comment',
        `${COMMENT_PREFIX}${dir}:${g}`,
        ...target,
      ]);
    }
    chains.push({ name: chain, rules });
    hooks.push(hook('POSTROUTING', ['-o', names.dev(dir)], chain));
  }
  return { family, table: 'mangle', chains, hooks };
}

const host = (ip: string): string => (ip.includes(':') ? `${ip}/128` : `${ip}/32`);
const comment = (what: string): string[] => ['-m', 'comment', '--comment', `${COMMENT_PREFIX}${what}`];

/**
 * Sources that are never a machine's own (unspecified, loopback, multicast, reserved and
 * broadcast; IPv4-mapped in IPv6): dropped first on the users' interface, even when listed in
 * passSources or the allow set. The kernel drops most of them itself; this does not rely on it.
 */
const MARTIANS: Readonly<Record<IpFamily, readonly string[]>> = {
  4: ['0.0.0.0/8', '127.0.0.0/8', '224.0.0.0/4', '240.0.0.0/4'],
  6: ['::/128', '::1/128', '::ffff:0.0.0.0/96', 'ff00::/8'],
};

/**
 * Filter: FORWARD from the users' interface (eth_int) goes through <prefix>-fwout, towards it
 * through <prefix>-fwin. Closed by default: whatever arrives there is refused unless it is
 * allowed, whatever its source address (userNetworks only picks who gets an answer).
 * fwout drops martian sources and the gateway's own addresses as a source (spoofed) first;
 * then passSources, the gateway's addresses, open destinations, the portal pages, the tunnel
 * and allowed machines pass (RETURN: the rest of FORWARD decides); the rest is refused: with
 * refuse = reject, a source inside userNetworks gets a TCP reset / ICMP admin-prohibited, any
 * other source is dropped (no answer routed to an address that is not a user's). fwin passes
 * traffic to passSources and allowed machines, from open destinations, the portal pages and
 * the tunnel, and drops the rest. The hooks are the first rules of FORWARD and match every
 * packet, not only new connections: a ban cuts established flows too.
 */
function filterTable(config: Config, names: Names, family: IpFamily): TableSpec {
  const fw = config.firewall;
  if (!fw.enabled || (family === 6 && !fw.v6Enabled)) return { family, table: 'filter', chains: [], hooks: [] };
  const allow = names.allowSet(family === 4 ? 'inet' : 'inet6');
  const ofFamily = (cidr: string): boolean => cidr.includes(':') === (family === 6);
  const nets = family === 4 ? fw.userNetworks : fw.user6Networks;
  const gateway = Object.values(fw.gatewayIps).filter(ofFamily);
  const pages = family === 4 ? [fw.portal, fw.portalBan] : [fw.portal6, fw.portalBan6];
  const portals = [...new Map(pages.flatMap((p) => (p ? [[`${p.ip}:${p.port}`, p] as const] : []))).values()];
  const out: RuleArgs[] = [];
  const inn: RuleArgs[] = [];
  for (const net of MARTIANS[family]) out.push(['-s', net, ...comment('martian'), '-j', 'DROP']);
  for (const ip of gateway) out.push(['-s', host(ip), ...comment('spoofed'), '-j', 'DROP']);
  for (const net of fw.passSources.filter(ofFamily)) {
    out.push(['-s', net, ...comment('pass'), '-j', 'RETURN']);
    inn.push(['-d', net, ...comment('pass'), '-j', 'RETURN']);
  }
  for (const ip of gateway) out.push(['-d', host(ip), ...comment('gateway'), '-j', 'RETURN']);
  for (const net of fw.openDestinations.filter(ofFamily)) {
    out.push(['-d', net, ...comment('open'), '-j', 'RETURN']);
    inn.push(['-s', net, ...comment('open'), '-j', 'RETURN']);
  }
  // The portal pages (reached through DNAT) are open to everyone, on their port only.
  for (const p of portals) {
    out.push(['-d', host(p.ip), '-p', 'tcp', '-m', 'tcp', '--dport', String(p.port), ...comment('portal'), '-j', 'RETURN']);
    inn.push(['-s', host(p.ip), '-p', 'tcp', '-m', 'tcp', '--sport', String(p.port), ...comment('portal'), '-j', 'RETURN']);
  }
  if (fw.tunnelName) {
    out.push(['-o', fw.tunnelName, ...comment('tunnel'), '-j', 'RETURN']);
    inn.push(['-i', fw.tunnelName, ...comment('tunnel'), '-j', 'RETURN']);
  }
  out.push(['-m', 'set', '--match-set', allow, 'src', ...comment('allowed'), '-j', 'RETURN']);
  inn.push(['-m', 'set', '--match-set', allow, 'dst', ...comment('allowed'), '-j', 'RETURN']);
  if (fw.refuse === 'reject') {
    const icmp = family === 4 ? 'icmp-admin-prohibited' : 'icmp6-adm-prohibited';
    for (const net of nets) {
      out.push(['-s', net, '-p', 'tcp', ...comment('refused'), '-j', 'REJECT', '--reject-with', 'tcp-reset']);
      out.push(['-s', net, ...comment('refused'), '-j', 'REJECT', '--reject-with', icmp]);
    }
  }
  out.push([...comment('refused'), '-j', 'DROP']);
  inn.push([...comment('refused'), '-j', 'DROP']);
  const fwout = names.fwChain('out');
  const fwin = names.fwChain('in');
  return {
    family,
    table: 'filter',
    chains: [
      { name: fwout, rules: out },
      { name: fwin, rules: inn },
    ],
    hooks: [hook('FORWARD', ['-i', fw.ethInt], fwout), hook('FORWARD', ['-o', fw.ethInt], fwin)],
  };
}

/**
 * NAT (iptables; ip6tables with portal6/portalBan6): web traffic arriving on the users' interface
 * from machines that are not allowed (whatever their source address; passSources excepted) goes
 * to the portal, of cut/banned ones to the ban page. Same chain name in both families.
 */
function natTable(config: Config, names: Names, family: IpFamily): TableSpec {
  const fw = config.firewall;
  const [portal, portalBan] = family === 4 ? [fw.portal, fw.portalBan] : [fw.portal6, fw.portalBan6];
  if (!fw.enabled || (family === 6 && !fw.v6Enabled) || (!portal && !portalBan)) return { family, table: 'nat', chains: [], hooks: [] };
  const setFamily: SetFamily = family === 4 ? 'inet' : 'inet6';
  const ofFamily = (cidr: string): boolean => cidr.includes(':') === (family === 6);
  // ip6tables prints (and takes) an IPv6 DNAT destination as [addr]:port
  const to = (p: { ip: string; port: number }): string => (family === 4 ? `${p.ip}:${p.port}` : `[${p.ip}]:${p.port}`);
  const rules: RuleArgs[] = [];
  const gateway = Object.values(fw.gatewayIps).filter(ofFamily);
  for (const ip of gateway) rules.push(['-d', host(ip), ...comment('gateway'), '-j', 'RETURN']);
  for (const net of fw.openDestinations.filter(ofFamily)) rules.push(['-d', net, ...comment('open'), '-j', 'RETURN']);
  for (const net of fw.passSources.filter(ofFamily)) rules.push(['-s', net, ...comment('pass'), '-j', 'RETURN']);
  rules.push(['-m', 'set', '--match-set', names.allowSet(setFamily), 'src', ...comment('allowed'), '-j', 'RETURN']);
  const ban = portalBan ?? portal;
  for (const port of fw.portalPorts) {
    if (ban)
      rules.push([
        '-p',
        'tcp',
        '-m',
        'set',
        '--match-set',
        names.bannedSet(setFamily),
        'src',
        '-m',
        'tcp',
        '--dport',
        String(port),
        ...comment('ban-page'),
        '-j',
        'DNAT',
        '--to-destination',
        to(ban),
      ]);
    // every other source on the users' interface, inside userNetworks or not
    if (portal) {
      rules.push(['-p', 'tcp', '-m', 'tcp', '--dport', String(port), ...comment('portal'), '-j', 'DNAT', '--to-destination', to(portal)]);
    }
  }
  const chain = names.fwChain('portal');
  return { family, table: 'nat', chains: [{ name: chain, rules }], hooks: [hook('PREROUTING', ['-i', fw.ethInt, '-p', 'tcp'], chain)] };
}

/** Every rule and hook of a table with its comment stamped by its identity hash (src/kernel/ruleid.ts). */
function stampTable(t: TableSpec): TableSpec {
  return {
    ...t,
    chains: t.chains.map((c) => ({ name: c.name, rules: c.rules.map((r) => stampRule(c.name, r)) })),
    hooks: t.hooks.map((h) => ({ builtin: h.builtin, args: stampRule(h.builtin, h.args) })),
  };
}

export function buildKernelDesired(config: Config, desired: Desired, names: Names = new Names(config)): KernelDesired {
  const q = config.qos;
  const sets: SetSpec[] = desired.sets.map((s) => ({
    name: s.name,
    family: s.family,
    members: s.members,
    capacity: desired.ipCount[s.family],
  }));
  const v6 = config.firewall.v6Enabled;
  const tables: TableSpec[] = (
    [
      mangleTable(config, names, 4),
      v6 ? mangleTable(config, names, 6) : { family: 6, table: 'mangle', chains: [], hooks: [] },
      filterTable(config, names, 4),
      filterTable(config, names, 6),
      natTable(config, names, 4),
      natTable(config, names, 6),
    ] satisfies TableSpec[]
  ).map(stampTable);

  const tc: TcDevSpec[] = DIRECTIONS.map((dir) => {
    const total = htbRate(desired.totals[dir]);
    const ceil = htbRate(Math.max(8, Math.floor(desired.totals[dir] * q.ceilShare)));
    const mkClass = (minor: number, parent: string, rate: number, ceilBps: number): TcClassSpec => ({
      classid: classid(minor),
      parent,
      rateBps: htbRate(rate),
      ceilBps: htbRate(Math.max(ceilBps, rate)),
      quantum: quantumFor(rate),
      leaf: withHandle(leafQdisc(q.leaf, rate, q.fairness, dir), leafHandle(minor)),
    });
    const classes: TcClassSpec[] = [
      { classid: classid(ROOT_MINOR), parent: '1:', rateBps: total, ceilBps: total, quantum: null, leaf: null },
      mkClass(DEFAULT_MINOR, classid(ROOT_MINOR), q.defaultRate, ceil),
      ...desired.classes
        .filter((c) => c.direction === dir)
        .map((c) => mkClass(names.groupMinor(c.group), classid(ROOT_MINOR), c.rateBps, c.ceilBps)),
    ];
    const filters: TcFilterSpec[] =
      q.classifier === 'fw'
        ? Array.from({ length: q.groups }, (_, g) => ({ mark: names.mark(dir, g), classid: classid(names.groupMinor(g)) }))
        : [];
    return { dev: names.dev(dir), direction: dir, defaultMinor: DEFAULT_MINOR, classes, filters };
  });

  return { sets, tables, tc };
}
