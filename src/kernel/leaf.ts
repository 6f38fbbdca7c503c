// The leaf qdisc of an HTB class: which qdisc and options (pfifo, sfq, fq_codel, cake with its
// rtt scaled to the class rate), and with fairness = host how users are told apart (the flow
// filter's key, cake's host isolation). Pure; part of the desired state (model.ts).

import type { Fairness, Leaf } from '../config/config.js';
import type { Direction } from '../policy/policy.js';

export interface LeafSpec {
  readonly handle: string;
  readonly qdisc: readonly string[];
  /** options the read-back (`tc -j qdisc show`) must report, e.g. cake's rtt in µs; a difference is a change */
  readonly expect?: Readonly<Record<string, number | string | boolean>>;
  /**
   * fairness = host with sfq or fq_codel: the key of the `flow` filter attached to the leaf, which
   * hashes each packet by the user's address instead of its flow (HOST_FILTER): `dst` for
   * download, `nfct-src` (the source before NAT) for upload.
   */
  readonly hostKey?: HostKey;
}

export type HostKey = 'dst' | 'nfct-src';

/** The flow filter of a host-fair leaf: one per leaf, this handle and prio, hashing into this many buckets. */
export const HOST_FILTER = { handle: 1, prio: 1, divisor: 1024 } as const;

/**
 * Which address a class's users are told apart by: download classes (egress to the users) by
 * destination, upload classes (egress to the wan) by source as conntrack saw it before any
 * SNAT on the way out.
 */
export const hostKeyOf = (dir: Direction): HostKey => (dir === 'down' ? 'dst' : 'nfct-src');
const cakeHostMode = (dir: Direction): string => (dir === 'down' ? 'dual-dsthost' : 'dual-srchost');

/** The wire time of one full-size Ethernet frame at `rateBps`, in µs. */
const mtuTimeUs = (rateBps: number): number => (1514 * 8 * 1e6) / Math.max(8, rateBps);

/**
 * cake's rtt (µs) for a class guaranteed `rateBps`. Inside an HTB class cake runs unlimited
 * (no `bandwidth`), so it cannot raise its AQM target (rtt/20, 5 ms by default) to the 1.5
 * frame times it would use with its own shaper: at 1.5 Mbit/s one frame takes 8 ms, and a 5 ms
 * target drops a TCP flow below the class rate (measured on Debian 13's kernel: −20 % at
 * 1.45 Mbit/s). So rtt ≥ 30 frame times, in doublings of the default 100 ms so that rate
 * changes during the day rarely touch it. At most 1.6 s (target 80 ms, enough down to
 * 230 kbit/s): an empty class's token rate says nothing of what it will carry by borrowing.
 * With fairness = host a user's queue drains at that user's share, not at the class rate: the
 * rule is applied at half the rate (two users competing, the least contention there is). At the class
 * rate, one user's single download flow got 2.31 of their 2.84 Mbit/s beside a 16-flow
 * neighbour (Debian 13, 5.7 Mbit/s class).
 */
export function cakeRttUs(rateBps: number): number {
  let rtt = 100_000;
  const need = 30 * mtuTimeUs(rateBps);
  while (rtt < need && rtt < 1_600_000) rtt *= 2;
  return rtt;
}

/**
 * The leaf qdisc of a class guaranteed `rateBps`, null for `leaf = none`. `fairness = host`: sfq
 * and fq_codel get a flow filter hashing the user's address (hostKey), cake isolates hosts on the
 * users' side (dual-dsthost down, dual-srchost up, `nat` so that the address is the user's even
 * after SNAT) with flow fairness inside each host; `flow`: sfq and fq_codel hash flows, cake runs
 * its default triple-isolate without nat (written out, so that a change of fairness reaches a
 * running cake).
 */
export function leafQdisc(
  leaf: Leaf,
  rateBps: number,
  fairness: Fairness = 'flow',
  dir: Direction = 'down',
): Omit<LeafSpec, 'handle'> | null {
  const host = fairness === 'host';
  switch (leaf) {
    case 'pfifo':
      return { qdisc: ['pfifo', 'limit', '1000'] };
    case 'sfq':
      // flow only: host with sfq is refused by the config ([qos] fairness)
      return { qdisc: ['sfq', 'perturb', '10'] };
    case 'fq_codel':
      return { qdisc: ['fq_codel'], ...(host ? { hostKey: hostKeyOf(dir) } : {}) };
    case 'cake': {
      const rtt = cakeRttUs(host ? rateBps / 2 : rateBps);
      const mode = host ? cakeHostMode(dir) : 'triple-isolate';
      return {
        qdisc: ['cake', 'besteffort', mode, host ? 'nat' : 'nonat', 'rtt', `${rtt / 1000}ms`],
        expect: { rtt, flowmode: mode, nat: host },
      };
    }
    case 'none':
      return null;
  }
}

export const withHandle = (l: Omit<LeafSpec, 'handle'> | null, handle: string): LeafSpec | null => (l ? { handle, ...l } : null);
