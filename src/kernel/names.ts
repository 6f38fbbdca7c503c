// Names of every kernel object reselqos owns, derived from the config alone, and the
// predicates that recognise them after a restart. Pure. Changing a name here changes
// what a fresh process adopts: keep them stable.
//
// - ipsets: <setPrefix>d<g>, <setPrefix>u<g> (IPv4), <set6Prefix>d<g>, ... (IPv6);
//   a set being rebuilt is filled as <name>-tmp and swapped in.
// - iptables mangle chains: <chainPrefix>-down, <chainPrefix>-up (iptables and ip6tables),
//   hooked from POSTROUTING; every rule carries a comment "reselqos:...".
// - tc on each shaped interface: root qdisc 1: htb default 2; 1:1 the direction total;
//   1:2 the default class (traffic of no user); 1:<0x10+g> group g; leaf qdisc <0x100+minor>:.
// - marks (classifier fw): markDown+g on the internal interface, markUp+g on the external one.

import type { Config } from '../config/config.js';
import type { Direction } from '../policy/policy.js';

export type SetFamily = 'inet' | 'inet6';
export type IpFamily = 4 | 6;

export const ROOT_MINOR = 1;
export const DEFAULT_MINOR = 2;
export const GROUP_MINOR_BASE = 0x10;
export const TMP_SUFFIX = '-tmp';
export const COMMENT_PREFIX = 'reselqos:';

export class Names {
  private readonly setRe: RegExp;

  constructor(private readonly config: Pick<Config, 'qos' | 'firewall'>) {
    const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');
    this.setRe = new RegExp(
      `^(?:${esc(config.qos.setPrefix)}|${esc(config.qos.set6Prefix)})(?:[du][0-9]+|allow|banned)(?:${esc(TMP_SUFFIX)})?$`,
    );
  }

  set(family: SetFamily, direction: Direction, group: number): string {
    const prefix = family === 'inet' ? this.config.qos.setPrefix : this.config.qos.set6Prefix;
    return `${prefix}${direction === 'down' ? 'd' : 'u'}${group}`;
  }

  isOurSet = (name: string): boolean => this.setRe.test(name);

  /** the dynamic firewall's set of allowed machines */
  allowSet(family: SetFamily): string {
    return `${family === 'inet' ? this.config.qos.setPrefix : this.config.qos.set6Prefix}allow`;
  }

  /** machines of cut or banned owners (ban page), per family */
  bannedSet(family: SetFamily = 'inet'): string {
    return `${family === 'inet' ? this.config.qos.setPrefix : this.config.qos.set6Prefix}banned`;
  }

  /** filter/nat chains of the firewall: <prefix>-fwout, <prefix>-fwin, <prefix>-portal */
  fwChain(which: 'out' | 'in' | 'portal'): string {
    return `${this.config.qos.chainPrefix}-${which === 'portal' ? 'portal' : `fw${which}`}`;
  }

  chain(direction: Direction): string {
    return `${this.config.qos.chainPrefix}-${direction}`;
  }

  isOurChain = (name: string): boolean => name.startsWith(`${this.config.qos.chainPrefix}-`);

  mark(direction: Direction, group: number): number {
    return (direction === 'down' ? this.config.qos.markDown : this.config.qos.markUp) + group;
  }

  /** Download is shaped on egress of the internal interface, upload on egress of the external one. */
  dev(direction: Direction): string {
    return direction === 'down' ? this.config.firewall.ethInt : this.config.firewall.ethExt;
  }

  groupMinor(group: number): number {
    return GROUP_MINOR_BASE + group;
  }
}

/** "1:10" — tc reads the minor as hex. */
export function classid(minor: number): string {
  return `1:${minor.toString(16)}`;
}

/** "0001:0010" — how iptables-save prints a CLASSIFY class. */
export function classifyId(minor: number): string {
  return `0001:${minor.toString(16).padStart(4, '0')}`;
}

export function leafHandle(minor: number): string {
  return `${(0x100 + minor).toString(16)}:`;
}

export function markHex(mark: number): string {
  return `0x${mark.toString(16)}`;
}
