// bench/forwarding.ts — what reselqos's packet-filter objects cost per forwarded packet (issue 22):
// 64-byte UDP from a user through a private gateway namespace to the wan (iperf3 -u -b 0, one
// stream), packets delivered per second counted on the wan's interface, for each dataplane:
//   none          no rules, no sets, no HTB: the path alone
//   htb           the HTB tree only (40 Gbit/s: it never limits)
//   iptables G    today's objects through the product's Reconciler: ipsets, mangle CLASSIFY by
//                 set (one rule per group, checked in turn), the fail-closed firewall, HTB
//   nft-sets G    the nftables table of src/kernel/nft.ts, one set per group (the same lookups)
//   nft-map G     the nftables one-lookup form: one map address -> class id per direction
// with G = 6 and 12 groups, `users` people in the sets (3 IPv4 machines each, one in five with an
// IPv6 address: bench/cold-apply-dir.ts) and the sender in the last group (the most lookups in
// the sets forms). Modes interleaved, `reps` rounds, medians and ratios to `none` of the same
// run. Sender, gateway and receiver share this machine's cores: a ratio is the cost of the whole
// path, gateway included. Root. Usage: node build/bench/forwarding.js [users=100000] [secs=5] [reps=3]
// Benchmark-only code; never used by the daemon.

import { DateTime } from 'luxon';
import type { Config } from '../src/config/config.js';
import { planDesired } from '../src/plan/desired.js';
import { Reconciler } from '../src/kernel/reconciler.js';
import { buildNftDesired, type NftLookup } from '../src/kernel/nft.js';
import { planNft } from '../src/kernel/nft-plan.js';
import { MemoryLogger } from '../src/log.js';
import { createGateway, startIperfServer } from '../sandbox/netns.js';
import { benchConfig, directory } from './cold-apply-dir.js';

const users = Number(process.argv[2] ?? 100_000);
const secs = Number(process.argv[3] ?? 5);
const reps = Number(process.argv[4] ?? 3);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? NaN;
const SENDER = '10.200.0.1';

const gw = await createGateway({ userIps: [SENDER] });
const gwExec = gw.execIn('gw');
const log = new MemoryLogger();

function config(groups: number): Config {
  return benchConfig(`forwarding-${groups}.conf`, {
    firewall: ['userNetworks = 10.0.0.0/8', 'ip_int = 10.253.0.1'],
    rate: '40Gbit',
    qos: [`groups = ${groups}`],
  });
}

const campus = directory(users);
const dir = {
  ...campus,
  owners: [
    ...campus.owners,
    { uid: 'sender', dn: 'uid=sender', kind: 'person' as const, endInternet: Date.UTC(2030, 0, 1), coupure: false, ban: [], cotiz: [] },
  ],
  machines: [...campus.machines, { dn: 'host=sender', host: 'sender', owner: 'sender', active: true, ips4: [SENDER], ips6: [] }],
};
const at = DateTime.utc();
const usage = { byIp: new Map([[SENDER, { down: 1e15, up: 1e15 }]]), resetAt: at.toISO(), fetchedAt: at.toISO() };

/** Nothing of ours nor iptables' left in the gateway namespace (it is ours: a scratch gateway). */
async function clean(): Promise<void> {
  await gwExec('nft', ['flush', 'ruleset']);
  await gwExec('ipset', ['destroy']).catch(() => undefined);
  for (const dev of ['int0', 'ext0']) await gwExec('tc', ['qdisc', 'del', 'dev', dev, 'root']).catch(() => undefined);
}

type Mode = { name: string; setup: () => Promise<void>; groups?: number };
const modes: Mode[] = [{ name: 'none', setup: clean }];
const byIptables = (groups: number, keepTcOnly: boolean): (() => Promise<void>) => {
  const c = config(groups);
  const d = planDesired(c, dir, usage, at, at);
  return async () => {
    await clean();
    await new Reconciler(c, gwExec, log).reconcile(d);
    if (keepTcOnly) {
      await gwExec('nft', ['flush', 'ruleset']);
      await gwExec('ipset', ['destroy']);
    }
  };
};
modes.push({ name: 'htb', setup: byIptables(6, true) });
for (const groups of [6, 12]) {
  modes.push({ name: `iptables ${groups}`, setup: byIptables(groups, false), groups });
  for (const lookup of ['sets', 'map'] as NftLookup[]) {
    const c = config(groups);
    const script = planNft(buildNftDesired(c, planDesired(c, dir, usage, at, at), undefined, { lookup }), null).script;
    const tc = byIptables(groups, true);
    modes.push({
      groups,
      name: `nft-${lookup} ${groups}`,
      setup: async () => {
        await tc();
        await gwExec('nft', ['-f', '-'], { input: script });
      },
    });
  }
}

/** Packets the sender's class (the last group's, upload on ext0) sent: that the packets were classified. */
async function classPackets(groups: number): Promise<number> {
  const minor = (0x10 + groups - 1).toString(16);
  const r = await gwExec('tc', ['-s', 'class', 'show', 'dev', 'ext0', 'classid', `1:${minor}`]);
  return Number(/Sent \d+ bytes (\d+) pkt/.exec(r.stdout)?.[1] ?? 0);
}

const rxPackets = async (): Promise<number> =>
  Number((await gw.exec('wan', 'cat', ['/sys/class/net/eth0/statistics/rx_packets'])).stdout.trim());

const server = await startIperfServer(gw, 5301);
const rows = new Map<string, number[]>(modes.map((m) => [m.name, []]));
try {
  console.log(`${users} users (${dir.machines.length} machines); ${secs} s of 64-byte UDP per run; ${reps} rounds`);
  for (let r = 0; r < reps; r++) {
    for (const m of r % 2 ? [...modes].reverse() : modes) {
      await m.setup();
      const before = await rxPackets();
      const t0 = performance.now();
      await gw.exec('users', 'iperf3', ['-c', gw.wanIp, '-p', '5301', '-B', SENDER, '-u', '-l', '64', '-b', '0', '-t', String(secs)], {
        timeoutMs: secs * 1000 + 20_000,
      });
      const pps = (await rxPackets()) - before;
      const s = (performance.now() - t0) / 1000;
      if (m.groups !== undefined) {
        const classified = await classPackets(m.groups);
        if (classified < pps * 0.9) throw new Error(`${m.name}: only ${classified} of ${pps} packets went through the sender's class`);
      }
      rows.get(m.name)!.push(pps / s);
      console.log(`  round ${r + 1} ${m.name.padEnd(14)} ${(pps / s / 1000).toFixed(0)} kpps`);
    }
  }
  const base = median(rows.get('none')!);
  console.log('\nmode            kpps (median)   ratio to none   cost per packet vs none');
  const out: Record<string, { kpps: number; ratio: number }> = {};
  for (const [name, xs] of rows) {
    const m = median(xs);
    out[name] = { kpps: Math.round(m / 100) / 10, ratio: Math.round((m / base) * 100) / 100 };
    console.log(
      `${name.padEnd(15)} ${(m / 1000).toFixed(0).padStart(13)}   ${(m / base).toFixed(2).padStart(13)}   ${(base / m).toFixed(2)}x`,
    );
  }
  console.log(JSON.stringify({ users, secs, reps, modes: out }));
} finally {
  await server.stop();
  await gw.destroy();
}
