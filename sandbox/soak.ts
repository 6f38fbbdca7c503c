// `npm run soak -- --minutes N`: the real daemon on the sandbox gateway (the demo's campus,
// slapd, MariaDB, namespaces, traffic feeder) under faults injected on a schedule that fits
// the duration (sandbox/soak-faults.ts, cycled through in order), while a checker samples the
// kernel every second (sandbox/soak-check.ts). Prints one progress line per fault and, last,
// one JSON line; exits 0 only when no invariant was violated. Removes everything it created
// at the end, on error and on Ctrl-C.
//
//   node build/sandbox/soak.js [--minutes N] [--log FILE]   (root; default 10 minutes)
//   --log FILE  keeps a copy of the daemon's log (it goes with the sandbox otherwise)

import { parseArgs } from 'node:util';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { prng } from './campus.js';
import { Checker } from './soak-check.js';
import { FAULTS, type Fault, type FaultContext } from './soak-faults.js';
import {
  bringUp,
  guardStage,
  newStage,
  reselqos,
  sampleCampus,
  say,
  sleep,
  stageConfText,
  trafficFeeder,
  writeStageConf,
  type Stage,
  type StageConf,
} from './stage.js';

const INTERVAL_MS = 2000;
/** IPs in the user network that no machine of the directory holds: never allowed. */
const UNREGISTERED = ['172.22.250.1', '172.22.250.2', '172.22.191.254'];

export interface SoakResult {
  minutes: number;
  cycles: number;
  failedCycles: number;
  faults: number;
  violations: number;
  maxRepairCycles: number;
  rssStartMB: number;
  rssEndMB: number;
  fdStart: number;
  fdEnd: number;
}

const hhmmss = (t: number): string => new Date(t).toISOString().slice(11, 19);
const mb = (kb: number): number => Math.round((kb / 1024) * 10) / 10;

async function soak(st: Stage, minutes: number, stopping: () => boolean, thawOnExit: Set<number>): Promise<SoakResult> {
  const { campus, unpaid, banned } = sampleCampus();
  const refusedOwners = new Set([unpaid, banned]);
  const entitled = new Set(campus.machines.filter((m) => m.active && !refusedOwners.has(m.ownerUid)).map((m) => m.ip));
  const refused = new Set([...campus.machines.filter((m) => !entitled.has(m.ip)).map((m) => m.ip), ...UNREGISTERED]);
  say(
    `reselqos soak: ${minutes} min; campus of ${campus.people.length} people, ${campus.orgs.length} clubs, ${campus.machines.length} machines: ${entitled.size} entitled, ${refused.size - UNREGISTERED.length} refused (inactive, ${unpaid} unpaid, ${banned} banned) + ${UNREGISTERED.length} unregistered IPs`,
  );

  const extra: StageConf = {
    down: '50Mbit',
    up: '20Mbit',
    logLevel: 'debug',
    // Chains read back every cycle, so a deleted chain is repaired by the next one.
    qos: 'classSeperationBase = 200MB\ncount = active\nverifyInterval = 1s',
  };
  say('starting slapd, MariaDB and the users / gateway / wan namespaces ...');
  await bringUp(st, 'soak', campus, extra);
  const conf = {
    good: stageConfText(st, extra),
    invalid: stageConfText(st, { ...extra, qos: `${extra.qos}\nclassRateFactor = 7` }),
    badCa: stageConfText(st, { ...extra, ldap: `caFile = ${join(st.dir, 'no-such-dir', 'ca.pem')}` }),
  };
  const gwExec = st.gw!.execIn('gw');
  // A daemon dying of an uncaught exception leaves a Node report saying which (its stderr is /dev/null).
  const reportDir = join(st.dir, 'reports');
  mkdirSync(reportDir);
  process.env['NODE_OPTIONS'] =
    `${process.env['NODE_OPTIONS'] ?? ''} --report-uncaught-exception --report-compact --report-directory=${reportDir}`.trim();
  const checker = new Checker({
    exec: gwExec,
    runDir: join(st.dir, 'run'),
    logFile: join(st.dir, 'log', 'reselqos.log'),
    reportDir,
    entitled,
    refused,
    say,
  });

  const startDaemon = async (): Promise<string> => {
    // The rebuild switch of `start`: a missing entitled machine during it is excused.
    const had = checker.excused.has('entitled-missing');
    checker.daemonExpectedDown = true;
    checker.excused.add('entitled-missing');
    checker.switching = true;
    const gaps = checker.switchGaps;
    try {
      const out = await reselqos(st, 'start');
      st.daemonStarted = true;
      if (!/reselqos (started|already running)/.test(out)) throw new Error(`reselqos start failed:\n${out}`);
      for (let i = 0; i < 50 && !checker.daemonAlive(); i++) {
        await sleep(100);
        await checker.sample();
      }
      const seen = checker.switchGaps - gaps;
      return seen ? `${out}\n(rebuild switch: ${seen} sample(s) with an entitled machine missing, excused)` : out;
    } finally {
      checker.switching = false;
      if (!had) checker.excused.delete('entitled-missing');
      checker.daemonExpectedDown = false;
    }
  };

  say('starting the daemon: reselqos start ...');
  say('  ' + (await startDaemon()).split('\n').join('\n  '));
  const t0 = Date.now();
  const deadline = t0 + minutes * 60_000;
  say(`the daemon's log: ${checker.log.file}`);

  // Traffic: sixteen users climb groups, the rest stay idle.
  const people = campus.people.filter((p) => !refusedOwners.has(p.uid));
  const rates = new Map<string, number>();
  people.slice(3, 19).forEach((p, i) => {
    const m = campus.machinesOf(p.uid).find((x) => x.active);
    if (m) rates.set(m.ip, [160e6, 40e6, 2e6][i] ?? 5e6 + (p.uid.length % 5) * 15e6);
  });
  const feed = trafficFeeder(st.db!, rates);
  let running = true;
  const feeder = (async () => {
    while (running) {
      await feed().catch(() => undefined); // MariaDB down is one of the faults
      await sleep(INTERVAL_MS);
    }
  })();
  const sampler = (async () => {
    while (running) {
      await checker.sample();
      await sleep(1000);
    }
  })();

  // Warm-up: five cycles, then the reference for the QoS sets and chains, RSS and fds.
  const waitCycles = async (n: number, from = checker.log.cycles, maxMs = (n + 3) * INTERVAL_MS + 5000): Promise<void> => {
    const end = Date.now() + maxMs;
    while (checker.log.cycles - from < n && Date.now() < end && !stopping()) {
      await sleep(200);
      checker.log.read();
    }
  };
  await waitCycles(5);
  const base = await checker.sampleKernel();
  checker.setBaseline(base);
  await checker.sample();
  const start = checker.proc ?? { rssKb: 0, fds: 0 };
  say(
    `warm-up done (${checker.log.cycles} cycles): qos_allow ${base.allow.size} IPs, ${base.qos.size} set placements, chains [${base.chains}]; daemon RSS ${mb(start.rssKb)} MB, ${start.fds} fds`,
  );
  if (!checker.expected(base)) say(`  after warm-up the kernel is not as expected: ${[...checker.deviations(base).values()].join('; ')}`);

  const rnd = prng(11);
  const maxHoldCycles = Math.min(15, 2 + minutes);
  const occurrences = new Map<string, number>();
  let faults = 0;
  let maxRepairCycles = 0;
  const ctxFor = (f: Fault, holdMs: number): FaultContext => ({
    st,
    campus,
    checker,
    gwExec,
    intervalMs: INTERVAL_MS,
    holdMs,
    occurrence: occurrences.get(f.name) ?? 0,
    conf,
    writeConf: (text) => writeStageConf(st, text),
    startDaemon,
    thawOnExit,
  });

  for (let i = 0; !stopping(); i++) {
    const f = FAULTS[i % FAULTS.length]!;
    const holdMs = (2 + Math.floor(rnd() * (maxHoldCycles - 1))) * INTERVAL_MS;
    // Room for the hold, the repair and settling: about six cycles more, and a quiet end.
    if (Date.now() + holdMs + 6 * INTERVAL_MS > deadline - 3 * INTERVAL_MS) break;
    const tStart = Date.now();
    checker.excused = new Set(f.effects);
    let note: string;
    try {
      note = await f.run(ctxFor(f, holdMs));
    } catch (e) {
      note = `could not inject: ${(e as Error).message.split('\n')[0]}`;
    }
    occurrences.set(f.name, (occurrences.get(f.name) ?? 0) + 1);
    faults++;
    const tEnd = Date.now();
    checker.log.read();
    const c0 = checker.log.cycles;

    // Repair: cycles from the end of the fault until the kernel is as expected.
    let repaired = false;
    let repairCycles = 0;
    const limit = tEnd + Math.max(30_000, 10 * INTERVAL_MS);
    while (Date.now() < limit && !stopping()) {
      const s = await checker.sample();
      if (s && s.at >= tEnd) {
        repairCycles = s.cycles - c0;
        if (checker.expected(s)) {
          repaired = true;
          break;
        }
        if (repairCycles >= 2) checker.excused.clear(); // past the allowance: deviations count
      }
      await sleep(250);
    }
    checker.excused.clear();
    if (!repaired)
      checker.violate(
        'repair',
        `${f.name}: kernel not back to expected ${Math.round((Date.now() - tEnd) / 1000)} s (${repairCycles} cycles) after the fault ended`,
      );
    else if (repairCycles > 2) checker.violate('repair', `${f.name}: repaired after ${repairCycles} cycles (allowed: 2)`);
    maxRepairCycles = Math.max(maxRepairCycles, repairCycles);
    if (!checker.daemonAlive()) {
      say('  the daemon is gone: reselqos start again to go on');
      await startDaemon().catch((e: Error) => say(`  ${e.message}`));
    }
    await waitCycles(2, c0); // late effects of the fault show here
    const p = checker.proc;
    say(
      `fault ${faults} ${f.name}: ${hhmmss(tStart)} -> ${hhmmss(tEnd)} (+${Math.round((tStart - t0) / 1000)}s), repair ${repaired ? `${repairCycles} cycle(s)` : `NOT repaired (${repairCycles} cycles)`}, violations ${checker.count()}; ${note}` +
        (p ? `; daemon RSS ${mb(p.rssKb)} MB, ${p.fds} fds` : ''),
    );
  }

  // Quiet end, then the final figures.
  while (Date.now() < deadline && !stopping()) await sleep(500);
  await waitCycles(2);
  await checker.sample();
  running = false;
  await Promise.all([feeder, sampler]);
  const end = checker.proc ?? { rssKb: 0, fds: 0 };
  if (end.rssKb > Math.max(start.rssKb * 1.5, start.rssKb + 20 * 1024))
    checker.violate('memory', `daemon RSS ${mb(start.rssKb)} MB after warm-up, ${mb(end.rssKb)} MB at the end`);
  if (end.fds > start.fds + 10) checker.violate('memory', `daemon fds ${start.fds} after warm-up, ${end.fds} at the end`);
  const byKind = new Map<string, number>();
  for (const v of checker.violations) byKind.set(v.kind, (byKind.get(v.kind) ?? 0) + 1);
  say(
    `soak done: ${faults} faults in ${((Date.now() - t0) / 60_000).toFixed(1)} min; violations by kind: ${byKind.size ? [...byKind].map(([k, n]) => `${k}=${n}`).join(', ') : 'none'}`,
  );
  return {
    minutes,
    cycles: checker.log.cycles,
    failedCycles: checker.log.cyclesFailed,
    faults,
    violations: checker.count(),
    maxRepairCycles,
    rssStartMB: mb(start.rssKb),
    rssEndMB: mb(end.rssKb),
    fdStart: start.fds,
    fdEnd: end.fds,
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { minutes: { type: 'string', default: '10' }, log: { type: 'string' } } });
  const minutes = Number(values.minutes);
  if (!Number.isFinite(minutes) || minutes <= 0) throw new Error(`--minutes: expected a positive number, got "${values.minutes}"`);
  if (process.getuid?.() !== 0) throw new Error('the soak creates network namespaces and servers: run as root');
  const st = await newStage('soak');
  const thawOnExit = new Set<number>();
  const thaw = async (): Promise<void> => {
    for (const pid of thawOnExit) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        /* gone */
      }
    }
  };
  const keepLog = async (): Promise<void> => {
    await thaw();
    if (values.log) copyFileSync(join(st.dir, 'log', 'reselqos.log'), values.log);
  };
  const { stopping, takeDown } = guardStage(st, keepLog);
  let result: SoakResult;
  try {
    result = await soak(st, minutes, stopping, thawOnExit);
  } finally {
    await takeDown();
  }
  say(JSON.stringify(result));
  return result.violations === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`soak failed: ${e.stack ?? e.message}\n`);
    process.exit(2);
  },
);
