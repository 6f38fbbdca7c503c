// bench/patcher-index.ts — what the LDAP patcher keeps once a change search has run (its indexes,
// built on the first patch of a process) and how long building them takes, on a campus's
// directory built in memory (no LDAP server). Benchmark-only code.
//   node --expose-gc build/bench/patcher-index.js [users]

import { buildDirectoryState } from '../src/ldap/directory.js';
import { benchConfig, campusEntries } from './campus-entries.js';
import { DirectoryPatcher } from '../src/ldap/patch.js';

const MB = 1024 * 1024;
const gc = (): void => (globalThis as { gc?: () => void }).gc?.();
const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 50));
/** live heap, MB (a timer first: a settled promise holds its value until its continuation returns) */
async function heap(): Promise<number> {
  await tick();
  gc();
  gc();
  return process.memoryUsage().heapUsed / MB;
}

const users = Number(process.argv[2] ?? 100_000);
const conf = benchConfig();

const raw = campusEntries(conf, users);
const o = { ldap: conf.ldap, firewall: conf.firewall, fetchedAt: new Date().toISOString() };
const h0 = await heap();
const built = buildDirectoryState(raw, o);
const h1 = await heap();
const patcher = new DirectoryPatcher(built, { ldap: conf.ldap, firewall: conf.firewall });
const t0 = performance.now();
patcher.apply({ people: [], orgas: [], hosts: [] }, o.fetchedAt); // builds the indexes
const indexMs = performance.now() - t0;
const h2 = await heap();
// ten machine entries seen again unchanged: the cost of a patch that changes nothing
const ten = raw.hosts.slice(5000, 5010);
const times: number[] = [];
for (let i = 0; i < 15; i++) {
  const t = performance.now();
  patcher.apply({ people: [], orgas: [], hosts: ten }, o.fetchedAt);
  times.push(performance.now() - t);
}
times.sort((x, y) => x - y);
console.log(
  JSON.stringify({
    users,
    machines: built.directory.machines.length,
    directoryMB: Math.round(h1 - h0),
    patcherIndexMB: Math.round(h2 - h1),
    indexMs: Math.round(indexMs),
    tenUnchangedHostsMedianMs: Number(times[7]!.toFixed(2)),
  }),
);
