// bench/cold-apply-dir.ts — the synthetic directory of bench/cold-apply.ts and
// bench/steady-apply.ts: N people with 3 IPv4 machines each (10.0.0.0/8 in order), one person in
// five with an IPv6 address on the first. Only the kernel side is measured with it (no LDAP).
// Benchmark-only code.

import type { Directory } from '../src/sources/types.js';

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
