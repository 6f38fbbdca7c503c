// bench/ldap-build.ts — the directory build of a full fetch alone (no LDAP server): a campus's
// entries are made in memory, then timed through the same steps as LdapSource.fetchFull
// (buildOwner / draftHost per entry, then finishBuild), with the heap it keeps. Benchmark-only.
//   node --expose-gc build/bench/ldap-build.js 100000 [reps]

import { generateCampus } from '../sandbox/campus.js';
import { sandboxConf } from '../sandbox/conf.js';
import { parseConfig } from '../src/config/config.js';
import { buildOwner, draftHost, finishBuild, OwnerCollector, type HostDraft, type RawEntry } from '../src/sources/directory.js';
import type { Owner, Skipped } from '../src/sources/types.js';

const gc = (): void => (globalThis as { gc?: () => void }).gc?.();
const MB = 1024 * 1024;

const users = Number(process.argv[2] ?? 100_000);
const reps = Number(process.argv[3] ?? 3);
const c = generateCampus({ users, seed: 1, machinesPerUser: [2, 4] });
const conf = parseConfig(
  sandboxConf({
    ldapUrl: 'ldap://127.0.0.1',
    db: { host: '127.0.0.1', port: 1, user: 'x', password: 'x' },
    dir: '/tmp',
    firewall: 'userNetworks = 172.22.0.0/16, 10.0.0.0/8',
    timezone: 'UTC',
  }),
  'bench.conf',
);
const a = conf.ldap.attrs;
const E = (dn: string, o: Record<string, string[]>): RawEntry => {
  const m = new Map(Object.entries(o).map(([k, v]) => [k.toLowerCase(), v]));
  return { dn, attrs: { get: (k: string) => m.get(k) } };
};
const stamp = ['20261130120000Z'];
const people = c.people.map((p) =>
  E(p.dn, {
    [a.uid]: [p.uid],
    [a.cotiz]: [...p.cotiz],
    [a.endInternet]: [p.endInternet],
    [a.ban]: [...p.ban],
    ...(p.coupure ? { [a.coupure]: ['TRUE'] } : {}),
    modifyTimestamp: stamp,
  }),
);
const orgas = c.orgs.map((p) =>
  E(p.dn, { [a.uid]: [p.uid], [a.cotiz]: [...p.cotiz], [a.endInternet]: [p.endInternet], modifyTimestamp: stamp }),
);
const hosts = c.machines.map((m) =>
  E(m.dn, {
    [a.host]: [m.host],
    [a.owner]: [m.ownerDn],
    [a.ip]: [m.ipHostNumber],
    [a.ip6]: [...m.ipv6],
    [a.zone]: [...m.zones],
    modifyTimestamp: stamp,
  }),
);

let kept: unknown = null;
for (let r = 0; r < reps; r++) {
  kept = null;
  gc();
  gc();
  const h0 = process.memoryUsage().heapUsed;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const o = { ldap: conf.ldap, firewall: conf.firewall, fetchedAt: new Date().toISOString() };
  const skipped: Skipped[] = [];
  const ps: Owner[] = [];
  const gs: Owner[] = [];
  const hs: HostDraft[] = [];
  for (const e of people) {
    const ow = buildOwner(e, 'person', o, skipped);
    if (ow) ps.push(ow);
  }
  for (const e of orgas) {
    const ow = buildOwner(e, 'organisation', o, skipped);
    if (ow) gs.push(ow);
  }
  const t1 = performance.now();
  for (const e of hosts) hs.push(draftHost(e, o));
  const t2 = performance.now();
  const owners = new OwnerCollector(o, skipped);
  for (const ow of ps) owners.addOwner(ow);
  for (const ow of gs) owners.addOwner(ow);
  const t3 = performance.now();
  const built = finishBuild(owners, hs, skipped, o);
  const t4 = performance.now();
  const cpu = process.cpuUsage(cpu0);
  kept = built;
  gc();
  gc();
  const heapMB = (process.memoryUsage().heapUsed - h0) / MB;
  console.log(
    JSON.stringify({
      owners: Math.round(t1 - t0),
      drafts: Math.round(t2 - t1),
      collect: Math.round(t3 - t2),
      finish: Math.round(t4 - t3),
      totalMs: Math.round(t4 - t0),
      cpuMs: Math.round((cpu.user + cpu.system) / 1000),
      keptHeapMB: Math.round(heapMB),
      maxRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
      machines: built.directory.machines.length,
    }),
  );
}
if (kept === null) throw new Error('no build');
