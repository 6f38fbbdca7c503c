// bench/nft-counters.ts — what per-element counters (top talkers) cost with the nftables
// backend (issue 22): a scratch namespace holding the table of `users` people (3 IPv4 machines
// each, one in five with an IPv6 address: bench/cold-apply-dir.ts), in the sets form and the
// one-lookup maps form, each with and without counters: the full apply (`nft -f`), the listing
// (`nft -j list table`: wall time and the nft process's peak RSS from GNU time), the JSON's
// size, and this process's parse (parseNftTable: time, heap growth). Interleaved, medians of
// `reps`. Root. Usage: node build/bench/nft-counters.js [users=100000] [reps=5]
// Benchmark-only code; never used by the daemon.

import { DateTime } from 'luxon';
import { planDesired } from '../src/plan/desired.js';
import { buildNftDesired, NFT_TABLE, type NftLookup } from '../src/kernel/nft.js';
import { planNft } from '../src/kernel/nft-plan.js';
import { parseNftTable } from '../src/kernel/nft-read.js';
import { createScratchNetns } from '../sandbox/netns.js';
import { benchConfig, directory } from './cold-apply-dir.js';

const users = Number(process.argv[2] ?? 100_000);
const reps = Number(process.argv[3] ?? 5);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? NaN;
const r1 = (x: number): number => Math.round(x * 10) / 10;

const config = benchConfig('nft-counters.conf', { firewall: ['userNetworks = 10.0.0.0/8'] });
const at = DateTime.utc();
const desired = planDesired(config, directory(users), null, at, at);
const ns = await createScratchNetns('nftcount');
type Row = { apply: number[]; list: number[]; rssMB: number[]; jsonMB: number[]; parse: number[]; heapMB: number[] };
const rows = new Map<string, Row>();
try {
  const variants: { name: string; lookup: NftLookup; counters: boolean }[] = [];
  for (const lookup of ['sets', 'map'] as const)
    for (const counters of [false, true]) variants.push({ name: `${lookup}${counters ? ' + counters' : ''}`, lookup, counters });
  for (const v of variants) rows.set(v.name, { apply: [], list: [], rssMB: [], jsonMB: [], parse: [], heapMB: [] });
  for (let r = 0; r < reps; r++) {
    for (const v of r % 2 ? [...variants].reverse() : variants) {
      const row = rows.get(v.name)!;
      const script = planNft(buildNftDesired(config, desired, undefined, { lookup: v.lookup, counters: v.counters }), null).script;
      let t0 = performance.now();
      await ns.exec('nft', ['-f', '-'], { input: script, timeoutMs: 600_000 });
      row.apply.push(performance.now() - t0);
      t0 = performance.now();
      const out = await ns.exec('/usr/bin/time', ['-f', '%M', 'nft', '-j', 'list', 'table', 'inet', NFT_TABLE], { timeoutMs: 600_000 });
      row.list.push(performance.now() - t0);
      row.rssMB.push(Number(out.stderr.trim().split('\n').pop()) / 1024);
      row.jsonMB.push(out.stdout.length / 1e6);
      global.gc?.();
      const h0 = process.memoryUsage().heapUsed;
      t0 = performance.now();
      const a = parseNftTable(out.stdout);
      row.parse.push(performance.now() - t0);
      row.heapMB.push((process.memoryUsage().heapUsed - h0) / 1024 / 1024);
      if (v.counters && !a?.counters) throw new Error(`${v.name}: no counters read back`);
    }
  }
  console.log(
    `${users} users (${desired.sets.reduce((n, s) => n + (s.role === 'qos' ? s.members.size : 0), 0)} QoS elements); medians of ${reps}`,
  );
  console.log('variant              apply ms   list ms   nft RSS MB   JSON MB   parse ms   heap MB');
  const out: Record<string, Record<string, number>> = {};
  for (const [name, row] of rows) {
    const m = Object.fromEntries(Object.entries(row).map(([k, xs]) => [k, r1(median(xs))]));
    out[name] = m;
    console.log(
      `${name.padEnd(18)} ${String(m['apply']).padStart(9)} ${String(m['list']).padStart(9)} ${String(m['rssMB']).padStart(12)} ${String(m['jsonMB']).padStart(9)} ${String(m['parse']).padStart(10)} ${String(m['heapMB']).padStart(9)}`,
    );
  }
  console.log(JSON.stringify({ users, reps, variants: out }));
} finally {
  await ns.destroy();
}
