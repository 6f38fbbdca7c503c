// The sandbox gateway the demo and the soak run the real daemon on: a private slapd and
// MariaDB seeded with a sample campus, the users / gateway / wan namespaces, a qos.conf
// pointing at them, the built CLI (dist/cli.js) to start and stop the daemon, a traffic
// feeder writing netacct rows as nacctd would, and a teardown that removes everything
// (at the end, on error, on Ctrl-C). Test infrastructure; never used by the daemon.

import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DateTime } from 'luxon';
import { startSlapd, type SlapdServer } from './slapd.js';
import { startMariadb, type MariadbServer, type TrafficRow } from './mariadb.js';
import { generateCampus, loadCampus, prng, type Campus } from './campus.js';
import { createGateway, cleanupStale, type Gateway, type IperfServer } from './netns.js';
import { gatewayConf, type SandboxConfOptions } from './conf.js';
import { realExec } from '../src/exec/exec.js';
import type { BackgroundProcess } from './spawn.js';

/** The daemon the sandbox runs is the built product (dist/), not a copy under build/. */
export const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
export const say = (s: string): void => {
  if (process.stdout.writable) process.stdout.write(s + '\n');
};

export interface Stage {
  dir: string;
  conf: string;
  slapd?: SlapdServer;
  db?: MariadbServer;
  gw?: Gateway;
  servers: (IperfServer | BackgroundProcess)[];
  daemonStarted: boolean;
}

/** Extra configuration of a stage's qos.conf (sections' extra lines, rates, log level). */
export type StageConf = Pick<SandboxConfOptions, 'down' | 'up' | 'qos' | 'ldap' | 'log' | 'logLevel' | 'metrics' | 'publish' | 'site'>;

/** A sample campus: a few dozen people, about 100 machines, some inactive, one unpaid, one banned. */
export function sampleCampus(): { campus: Campus; unpaid: string; banned: string } {
  const campus = generateCampus({
    users: 36,
    seed: 42,
    unpaidShare: 0,
    cutShare: 0,
    blacklistShare: 0,
    banShare: 0,
    ipv6Share: 0,
    inactiveShare: 0.04,
    orgs: 2,
  });
  const [, unpaid, banned] = campus.people;
  unpaid!.endInternet = '20240101000000Z';
  unpaid!.paid = false;
  banned!.ban = ['internet'];
  return { campus, unpaid: unpaid!.uid, banned: banned!.uid };
}

/** Runs the built CLI against the stage's qos.conf; stdout and stderr together. */
export async function reselqos(st: Stage, ...args: string[]): Promise<string> {
  const r = await realExec(process.execPath, [cli, ...args, '-c', st.conf], { timeoutMs: 120_000, okCodes: [0, 1, 2, 3, 7] });
  return (r.stdout + r.stderr).trim();
}

/** qos.conf text of a stage (the soak writes variants of it: invalid, unreadable caFile). */
export function stageConfText(st: Stage, extra: StageConf): string {
  const { slapd, db, gw } = st;
  if (!slapd || !db || !gw) throw new Error('stage: the servers are not up');
  return gatewayConf({ slapd, db, gw }, { dir: st.dir, ...extra });
}

export function writeStageConf(st: Stage, text: string): void {
  writeFileSync(st.conf, text);
  chmodSync(st.conf, 0o600);
}

/** Temp dir, stale namespaces of an earlier run removed; nothing started yet. */
export async function newStage(name: string): Promise<Stage> {
  // Namespaces of earlier runs whose process is gone (a live owner's are kept: its pid is in the name).
  await cleanupStale('rq-p').catch(() => undefined);
  const dir = mkdtempSync(join(tmpdir(), `rq-${name}-`));
  return { dir, conf: join(dir, 'qos.conf'), servers: [], daemonStarted: false };
}

/** slapd, MariaDB and the namespaces, the campus loaded, qos.conf written. */
export async function bringUp(st: Stage, name: string, campus: Campus, conf: StageConf): Promise<void> {
  [st.slapd, st.db, st.gw] = await Promise.all([
    startSlapd(),
    startMariadb({ timezone: '+00:00' }),
    createGateway({ prefix: `rq-p${process.pid}-${name}-`, userIps: campus.machines.map((m) => m.ip) }),
  ]);
  await loadCampus(st.slapd, campus);
  writeStageConf(st, stageConfText(st, conf));
}

export async function teardown(st: Stage): Promise<void> {
  say('\ntaking the sandbox down ...');
  if (st.daemonStarted) say('  ' + (await reselqos(st, 'stop').catch((e: Error) => e.message)));
  await Promise.allSettled(st.servers.map((s) => s.stop()));
  await Promise.allSettled([st.gw?.destroy(), st.slapd?.stop(), st.db?.stop()]);
  rmSync(st.dir, { recursive: true, force: true });
  say('  namespaces, servers and temp files removed');
}

/**
 * Takes the stage down once, whatever asks first: the end of main, SIGINT / SIGTERM / SIGHUP
 * (exit 130), or stdout going away (| head). `stopping()` tells the main loop to finish.
 */
export function guardStage(st: Stage, before?: () => Promise<void>): { stopping: () => boolean; takeDown: () => Promise<void> } {
  let stopping = false;
  let down: Promise<void> | null = null;
  const takeDown = (): Promise<void> => {
    stopping = true;
    return (down ??= (before ? before().catch(() => undefined) : Promise.resolve()).then(() => teardown(st)));
  };
  const onSignal = (): void => {
    if (stopping) return;
    void takeDown().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  process.stdout.on('error', onSignal);
  return { stopping: () => stopping, takeDown };
}

/** A feeder: nacctd-like hour buckets, a new row per IP per call (rows are summed); bytes per call per IP. */
export function trafficFeeder(db: MariadbServer, rates: ReadonlyMap<string, number>, seed = 7): () => Promise<void> {
  const rnd = prng(seed);
  return async () => {
    const rows: TrafficRow[] = [];
    const time = DateTime.utc().startOf('hour').toFormat('yyyy-MM-dd HH:mm:ss');
    for (const [ip, perTick] of rates) {
      const input = Math.floor(perTick * (0.7 + 0.6 * rnd()));
      rows.push({ ip, time, input, output: Math.floor(input / 6) });
    }
    await db.insertTraffic(rows);
  };
}
