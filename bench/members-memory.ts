// bench/members-memory.ts — what the reconciler's memory of the set members retains (issue 16):
// the sets of the synthetic campus (bench/cold-apply-dir.ts) copied 4 times as Set<string> (the
// former form) or as CompactMembers (members.ts); heap + array buffers after a full GC, per copy.
// Usage: node --expose-gc build/bench/members-memory.js set|compact [users=100000]
// Benchmark-only code.

import { DateTime } from 'luxon';
import { parseConfig } from '../src/config/config.js';
import { CompactMembers } from '../src/kernel/members.js';
import { buildKernelDesired } from '../src/kernel/model.js';
import { planDesired } from '../src/plan/desired.js';
import { directory } from './cold-apply-dir.js';

const mode = process.argv[2] === 'set' ? 'set' : 'compact';
const users = Number(process.argv[3] ?? 100_000);
const config = parseConfig(
  [
    '[ldap]',
    'host = l',
    '[database]',
    'host = d',
    '[firewall]',
    'eth_ext = ext0',
    'eth_int = int0',
    'net6 = 2001:db8:d200::/48',
    '[rates]',
    'down = 1Gbit',
    'up = 1Gbit',
  ].join('\n'),
  'members-memory.conf',
);
const at = DateTime.utc();
const kd = buildKernelDesired(config, planDesired(config, directory(users), null, at, at));
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const usage = (): number => {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};
const keep: unknown[] = [];
usage();
let base = usage();
const deltas: string[] = [];
for (let k = 0; k < 4; k++) {
  keep.push(kd.sets.map((s) => (mode === 'set' ? new Set(s.members) : new CompactMembers(s.members, s.members.size))));
  const u = usage();
  deltas.push(((u - base) / 2 ** 20).toFixed(1));
  base = u;
}
const entries = kd.sets.reduce((a, s) => a + s.members.size, 0);
console.log(
  `${mode}: ${entries} entries in ${kd.sets.length} sets; retained per copy (MB; the first includes the planner's garbage): ${deltas.join(', ')}`,
);
