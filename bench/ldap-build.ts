// bench/ldap-build.ts — the directory build of a full fetch alone (no LDAP server): a campus's
// entries are made in memory, then timed through the same steps as LdapSource.fetchFull
// (buildOwner / draftHost per entry, then finishBuild), with the heap it keeps. Benchmark-only.
//   node --expose-gc build/bench/ldap-build.js 100000 [reps]

import { benchConfig, campusEntries } from './campus-entries.js';
import { buildOwner, draftHost, finishBuild, OwnerCollector, type HostDraft } from '../src/ldap/directory.js';
import type { Owner, Skipped } from '../src/sources/types.js';

const gc = (): void => (globalThis as { gc?: () => void }).gc?.();
const MB = 1024 * 1024;

const users = Number(process.argv[2] ?? 100_000);
const reps = Number(process.argv[3] ?? 3);
const conf = benchConfig();
const { people, orgas, hosts } = campusEntries(conf, users);

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
