// bench/cold-apply-dir.ts — the synthetic directory of bench/cold-apply.ts and
// bench/steady-apply.ts: N people with 3 IPv4 machines each (10.0.0.0/8 in order), one person in
// five with an IPv6 address on the first. Only the kernel side is measured with it (no LDAP).
// Also their configuration (`applyConfig`). Benchmark-only code.

import { parseConfig, type Config } from '../src/config/config.js';
import type { Directory } from '../src/sources/types.js';

/**
 * The benches' configuration: classify + pfifo, fairness flow, eth_int int0 / eth_ext ext0;
 * `firewall` lines (e.g. netns, userNetworks), the rates and `qos` lines as given.
 */
export function benchConfig(file: string, o: { firewall?: string[]; rate?: string; qos?: string[] } = {}): Config {
  const rate = o.rate ?? '1Gbit';
  return parseConfig(
    [
      '[ldap]',
      'host = ldap.example.org',
      '[database]',
      'host = db.example.org',
      '[firewall]',
      'eth_ext = ext0',
      'eth_int = int0',
      ...(o.firewall ?? []),
      'net6 = 2001:db8:d200::/48',
      '[rates]',
      `down = ${rate}`,
      `up = ${rate}`,
      '[qos]',
      ...(o.qos ?? []),
      'classifier = classify',
      'leaf = pfifo',
      'fairness = flow',
    ].join('\n'),
    file,
  );
}

/** The configuration both apply benches use: the gateway namespace `netns`, 1 Gbit/s, classify + pfifo. */
export function applyConfig(netns: string, file: string): Config {
  return benchConfig(file, { firewall: [`netns = ${netns}`] });
}

export function directory(n: number): Directory {
  const owners: Directory['owners'][number][] = [];
  const machines: Directory['machines'][number][] = [];
  let k = 0;
  for (let i = 0; i < n; i++) {
    owners.push({
      uid: `u${i}`,
      dn: `uid=u${i},ou=people`,
      kind: 'person',
      endInternet: Date.UTC(2030, 0, 1),
      coupure: false,
      ban: [],
      cotiz: [],
    });
    for (let m = 0; m < 3; m++, k++)
      machines.push({
        dn: `host=u${i}-${m}`,
        host: `u${i}-${m}`,
        owner: `u${i}`,
        active: true,
        ips4: [`10.${(k >> 16) & 255}.${(k >> 8) & 255}.${k & 255}`],
        ips6: m === 0 && i % 5 === 0 ? [`2001:db8:d200::${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}`] : [],
      });
  }
  return { owners, machines, skipped: [], fetchedAt: new Date().toISOString() };
}
