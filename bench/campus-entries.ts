// bench/campus-entries.ts — a generated campus as the LDAP entries a full fetch would bring back
// (RawEntry, no LDAP server), and the sandbox configuration they are built with: shared by
// bench/ldap-build.ts and bench/patcher-index.ts. Benchmark-only code.

import { generateCampus } from '../sandbox/campus.js';
import { sandboxConf } from '../sandbox/conf.js';
import { parseConfig, type Config } from '../src/config/config.js';
import type { RawDirectory, RawEntry } from '../src/ldap/directory.js';

export function benchConfig(): Config {
  return parseConfig(
    sandboxConf({
      ldapUrl: 'ldap://127.0.0.1',
      db: { host: '127.0.0.1', port: 1, user: 'x', password: 'x' },
      dir: '/tmp',
      firewall: 'userNetworks = 172.22.0.0/16, 10.0.0.0/8',
      timezone: 'UTC',
    }),
    'bench.conf',
  );
}

/** The campus of `users` people (seed 1, 2–4 machines each) as people, organisation and host entries. */
export function campusEntries(conf: Config, users: number): RawDirectory {
  const c = generateCampus({ users, seed: 1, machinesPerUser: [2, 4] });
  const a = conf.ldap.attrs;
  const E = (dn: string, o: Record<string, readonly string[]>): RawEntry => {
    const m = new Map(Object.entries(o).map(([k, v]) => [k.toLowerCase(), [...v]]));
    return { dn, attrs: { get: (k: string) => m.get(k) } };
  };
  const stamp = ['20261130120000Z'];
  return {
    people: c.people.map((p) =>
      E(p.dn, {
        [a.uid]: [p.uid],
        [a.cotiz]: p.cotiz,
        [a.endInternet]: [p.endInternet],
        [a.ban]: p.ban,
        ...(p.coupure ? { [a.coupure]: ['TRUE'] } : {}),
        modifyTimestamp: stamp,
      }),
    ),
    orgas: c.orgs.map((p) => E(p.dn, { [a.uid]: [p.uid], [a.cotiz]: p.cotiz, [a.endInternet]: [p.endInternet], modifyTimestamp: stamp })),
    hosts: c.machines.map((m) =>
      E(m.dn, {
        [a.host]: [m.host],
        [a.owner]: [m.ownerDn],
        [a.ip]: [m.ipHostNumber],
        [a.ip6]: m.ipv6,
        [a.zone]: m.zones,
        modifyTimestamp: stamp,
      }),
    ),
  };
}
