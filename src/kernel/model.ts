// The desired state in kernel terms: which sets with which members, which mangle
// chains with which rules (in the exact form iptables-save prints them back), which
// HTB classes with which rates on which interface. Pure: built from the planner's
// Desired and the config; compared by diff.ts with what read.ts reads back.

import type { Config, Leaf } from '../config/config.js';
import type { Desired } from '../plan/desired.js';
import { DIRECTIONS, type Direction } from '../policy/policy.js';
import {
  COMMENT_PREFIX, DEFAULT_MINOR, ROOT_MINOR, Names, classid, classifyId, leafHandle, markHex,
  type IpFamily, type SetFamily,
} from './names.js';

export interface SetSpec {
  readonly name: string;
  readonly family: SetFamily;
  readonly direction: Direction;
  readonly members: ReadonlySet<string>;
}

/** A rule as the argument list that follows "-A <chain>" in iptables-save output. */
export type RuleArgs = readonly string[];

export interface ChainSpec {
  readonly name: string;
  readonly rules: readonly RuleArgs[];
}

export interface HookSpec {
  readonly builtin: 'POSTROUTING';
  readonly args: RuleArgs;
}

export interface MangleSpec {
  readonly family: IpFamily;
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
  readonly leaf: { readonly handle: string; readonly qdisc: readonly string[] } | null;
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
  readonly mangle: readonly MangleSpec[];
  readonly tc: readonly TcDevSpec[];
}

export function leafQdisc(leaf: Leaf): string[] | null {
  switch (leaf) {
    case 'pfifo': return ['pfifo', 'limit', '1000'];
    case 'sfq': return ['sfq', 'perturb', '10'];
    case 'fq_codel': return ['fq_codel'];
    case 'cake': return ['cake', 'besteffort'];
    case 'none': return null;
  }
}

/** HTB quantum (bytes): rate/10 as the kernel would, kept within [MTU, 200 000] to avoid its warnings. */
export function quantumFor(rateBps: number): number {
  return Math.min(200_000, Math.max(1514, Math.floor(rateBps / 8 / 10)));
}

/** HTB rates are whole bytes per second: render only what the kernel can hold, at least 8 bit/s. */
export function htbRate(bps: number): number {
  return Math.max(8, Math.floor(bps / 8) * 8);
}

export function buildKernelDesired(config: Config, desired: Desired, names: Names = new Names(config)): KernelDesired {
  const q = config.qos;
  const sets: SetSpec[] = desired.sets.map((s) => ({ name: s.name, family: s.family, direction: s.direction, members: s.members }));

  const families: IpFamily[] = config.firewall.v6Enabled ? [4, 6] : [4];
  const mangle: MangleSpec[] = [];
  for (const family of [4, 6] as const) {
    if (!families.includes(family)) {
      mangle.push({ family, chains: [], hooks: [] });
      continue;
    }
    const setFamily: SetFamily = family === 4 ? 'inet' : 'inet6';
    const chains: ChainSpec[] = [];
    const hooks: HookSpec[] = [];
    for (const dir of DIRECTIONS) {
      const chain = names.chain(dir);
      const match = dir === 'down' ? 'dst' : 'src';
      const rules: RuleArgs[] = [];
      for (let g = 0; g < q.groups; g++) {
        const target = q.classifier === 'fw'
          ? ['-j', 'MARK', '--set-xmark', `${markHex(names.mark(dir, g))}/0xffffffff`]
          : ['-j', 'CLASSIFY', '--set-class', classifyId(names.groupMinor(g))];
        rules.push(['-m', 'set', '--match-set', names.set(setFamily, dir, g), match, '-m', 'comment', '--comment', `${COMMENT_PREFIX}${dir}:${g}`, ...target]);
      }
      chains.push({ name: chain, rules });
      hooks.push({ builtin: 'POSTROUTING', args: ['-o', names.dev(dir), '-m', 'comment', '--comment', `${COMMENT_PREFIX}hook`, '-j', chain] });
    }
    mangle.push({ family, chains, hooks });
  }

  const leaf = leafQdisc(q.leaf);
  const tc: TcDevSpec[] = DIRECTIONS.map((dir) => {
    const total = htbRate(desired.totals[dir]);
    const ceil = htbRate(Math.max(8, Math.floor(desired.totals[dir] * q.ceilShare)));
    const mkClass = (minor: number, parent: string, rate: number, ceilBps: number): TcClassSpec => ({
      classid: classid(minor), parent, rateBps: htbRate(rate), ceilBps: htbRate(Math.max(ceilBps, rate)), quantum: quantumFor(rate),
      leaf: leaf ? { handle: leafHandle(minor), qdisc: leaf } : null,
    });
    const classes: TcClassSpec[] = [
      { classid: classid(ROOT_MINOR), parent: '1:', rateBps: total, ceilBps: total, quantum: null, leaf: null },
      mkClass(DEFAULT_MINOR, classid(ROOT_MINOR), q.defaultRate, ceil),
      ...desired.classes.filter((c) => c.direction === dir).map((c) => mkClass(names.groupMinor(c.group), classid(ROOT_MINOR), c.rateBps, c.ceilBps)),
    ];
    const filters: TcFilterSpec[] = q.classifier === 'fw'
      ? Array.from({ length: q.groups }, (_, g) => ({ mark: names.mark(dir, g), classid: classid(names.groupMinor(g)) }))
      : [];
    return { dev: names.dev(dir), direction: dir, defaultMinor: DEFAULT_MINOR, classes, filters };
  });

  return { sets, mangle, tc };
}
