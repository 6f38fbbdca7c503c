// bench/startprobe.ts — where the time of a start from the snapshot goes, without the servers:
// a campus of N users written as the snapshots a daemon leaves under [path] state
// (directory.json, volumes.json), then the real `reselqos start` (and, with --run, `reselqos run`)
// on an emptied kernel in a sandbox gateway namespace, LDAP and MySQL unreachable (closed ports:
// the snapshot is young, so LDAP is not asked; the volumes come from their snapshot). Prints the
// split start reports. For iterating on the start path; the bench (bench.ts) measures the real
// thing with the servers. Needs root.
//   node build/bench/startprobe.js [--users 100000] [--run] [--repeat N]
// Benchmark-only code; never used by the daemon.

import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateCampus, trafficRows } from '../sandbox/campus.js';
import { sandboxConf } from '../sandbox/conf.js';
import { createGateway } from '../sandbox/netns.js';
import { parseConfig } from '../src/config/config.js';
import { resetInstant } from '../src/policy/policy.js';
import { DateTime } from 'luxon';
import { measureStart } from './startphase.js';

const here = dirname(fileURLToPath(import.meta.url));
const CLI = join(resolve(here, '..', '..'), 'dist', 'cli.js');

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
}

const users = Number(arg('--users', '100000'));
const repeat = Number(arg('--repeat', '1'));
const say = (s: string): void => void process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);

const dir = mkdtempSync(join(tmpdir(), 'rq-startprobe-'));
const gw = await createGateway({ userIps: [] });
try {
  const conf = sandboxConf({
    ldapUrl: 'ldap://127.0.0.1:1',
    db: { host: '127.0.0.1', port: 1, user: 'qos', password: 'unused' },
    dir,
    firewall: `netns = ${gw.names.gw}\nuserNetworks = 172.22.0.0/16, 10.0.0.0/8`,
    timezone: 'UTC',
  });
  const confFile = join(dir, 'qos.conf');
  writeFileSync(confFile, conf, { mode: 0o600 });
  chmodSync(confFile, 0o600);
  const config = parseConfig(conf, confFile, { mode: 0o600 });
  const now = DateTime.utc();
  say(`generating ${users} users`);
  const campus = generateCampus({ users, seed: 1, machinesPerUser: [2, 4], now: new Date(now.startOf('day').toMillis()) });
  const owners = [...campus.people, ...campus.orgs]
    .map((o) => ({
      uid: o.uid,
      dn: o.dn,
      kind: o.kind === 'person' ? 'person' : 'organisation',
      endInternet: o.endInternetDate.getTime(),
      coupure: o.kind === 'person' ? o.coupure : false,
      ban: o.kind === 'person' ? o.ban : [],
      cotiz: o.cotiz,
    }))
    .sort((a, b) => (a.uid < b.uid ? -1 : a.uid > b.uid ? 1 : 0));
  const machines = campus.machines
    .map((m) => ({ dn: m.dn, host: m.host, owner: m.ownerUid, active: m.active, ips4: [m.ip], ips6: m.ipv6 }))
    .sort((a, b) => (a.dn < b.dn ? -1 : a.dn > b.dn ? 1 : 0));
  const state = join(dir, 'state');
  mkdirSync(state, { recursive: true });
  const directory = { owners, machines, skipped: [], fetchedAt: now.toISO() };
  writeFileSync(join(state, 'directory.json'), JSON.stringify({ format: 1, directory }));
  const reset = resetInstant(config.qos, now.setZone(config.qos.timezone)).toJSDate();
  const vol = new Map<string, [number, number]>();
  for (const r of trafficRows(campus, {})) {
    const v = vol.get(r.ip) ?? [0, 0];
    v[0] += r.input;
    v[1] += r.output;
    vol.set(r.ip, v);
  }
  writeFileSync(
    join(state, 'volumes.json'),
    JSON.stringify({
      format: 1,
      resetAt: reset.toISOString(),
      fetchedAt: now.toISO(),
      volumes: [...vol].map(([ip, [d, u]]) => [ip, d, u]),
    }),
  );
  const ips = machines.reduce((a, m) => a + m.ips4.length + m.ips6.length, 0);
  say(`snapshot: ${owners.length} owners, ${machines.length} machines, ${ips} IPs; ${vol.size} volumes`);
  for (let i = 0; i < repeat; i++) {
    const r = await measureStart({ cli: CLI, confFile, dir, gw, ips: 0, say, skipCold: true, run: process.argv.includes('--run') });
    console.log(JSON.stringify({ startFromSnapshot: r.startFromSnapshot, runFromSnapshot: r.runFromSnapshot, setEntries: r.setEntries }));
  }
} finally {
  await gw.destroy();
  rmSync(dir, { recursive: true, force: true });
}
