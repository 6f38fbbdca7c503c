// bench/ldap-fetch.ts — the full LDAP fetch alone, at one size, in a fresh process per run
// (issue 16): time of LdapSource.fetchFull, the process's maxRSS and live heap after it, and
// `ldapsearch` of the same three searches for comparison. Benchmark-only code.
//
//   node --expose-gc build/bench/ldap-fetch.js serve 100000 /tmp/rq-ldap.json   # slapd + campus, waits
//   node --expose-gc build/bench/ldap-fetch.js run /tmp/rq-ldap.json [reps]      # one fresh child per rep
//   node --expose-gc build/bench/ldap-fetch.js ldapsearch /tmp/rq-ldap.json [reps]
// Run the heavy steps under `flock /tmp/rq-bench.lock` (the machine is shared).

import { execFile, fork, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../src/config/config.js';
import { LdapSource, type FullFetch } from '../src/ldap/ldap.js';
import type { Directory } from '../src/sources/types.js';
import { generateCampus, loadCampus } from '../sandbox/campus.js';
import { startSlapd } from '../sandbox/slapd.js';
import { sandboxConf } from '../sandbox/conf.js';

const MB = 1024 * 1024;
const gc = (): void => (globalThis as { gc?: () => void }).gc?.();

interface Setup {
  conf: string;
  url: string;
  users: number;
  entries: number;
}

/** Holds /tmp/rq-bench.lock (through flock(1)) until the returned function is called. */
async function benchLock(): Promise<() => void> {
  const p = spawn('flock', ['-o', '/tmp/rq-bench.lock', 'sh', '-c', 'echo locked; exec sleep 100000'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve) => p.stdout.once('data', () => resolve()));
  return () => void p.kill();
}

async function serve(users: number, out: string): Promise<void> {
  const unlock = await benchLock();
  const campus = generateCampus({ users, seed: 1, machinesPerUser: [2, 4] });
  const slapd = await startSlapd();
  await loadCampus(slapd, campus, { method: 'slapadd' });
  const conf = sandboxConf({
    ldapUrl: slapd.url,
    db: { host: '127.0.0.1', port: 1, user: 'x', password: 'x' },
    dir: '/tmp',
    firewall: 'userNetworks = 172.22.0.0/16, 10.0.0.0/8',
    timezone: 'UTC',
  })
    .replace(/^pageSize = \d+$/m, 'pageSize = 500')
    .replace(/^timeout = 5s$/m, 'timeout = 60s');
  const setup: Setup = { conf, url: slapd.url, users, entries: campus.entryCount };
  writeFileSync(out, JSON.stringify(setup));
  unlock();
  console.log(`slapd ${slapd.url} (pid ${slapd.pid()}) with ${campus.entryCount} entries; ${out} written; Ctrl-C stops it`);
  const stop = (): void => void slapd.stop().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  setInterval(() => undefined, 1 << 30);
}

/** In this (fresh) process: one full fetch, then the figures. */
async function child(setupFile: string): Promise<void> {
  const s = JSON.parse(readFileSync(setupFile, 'utf8')) as Setup;
  const config = parseConfig(s.conf, 'bench qos.conf');
  gc();
  const heap0 = process.memoryUsage().heapUsed;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let full: FullFetch | null = await new LdapSource(config).fetchFull(new Date());
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const maxRssMB = process.resourceUsage().maxRSS / 1024;
  gc();
  gc();
  const m = process.memoryUsage();
  let d: Directory | null = full.directory;
  const r: Record<string, number> = {
    ms: Math.round(ms),
    cpuMs: Math.round((cpu.user + cpu.system) / 1000),
    maxRssMB: Math.round(maxRssMB),
    rssAfterGcMB: Math.round(m.rss / MB),
    heapAfterGcMB: Math.round((m.heapUsed - heap0) / MB),
    owners: d.owners.length,
    machines: d.machines.length,
    skipped: d.skipped.length,
  };
  // what each part of the result keeps: dropped one after the other
  let parts: { state: unknown; skipped: unknown; owners: unknown; machines: unknown } | null = {
    state: full.state,
    skipped: d.skipped,
    owners: d.owners,
    machines: d.machines,
  };
  full = null;
  d = null;
  // (the settled promise of the fetch holds its value until this continuation has returned)
  await new Promise((resolve) => setTimeout(resolve, 50));
  const heap = (): number => {
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };
  let before = heap();
  for (const k of ['state', 'skipped', 'owners', 'machines'] as const) {
    parts[k] = null;
    await new Promise((resolve) => setTimeout(resolve, 50));
    const after = heap();
    r[`${k}MB`] = Math.round((before - after) / MB);
    before = after;
  }
  parts = null;
  process.send!(r);
}

function runChild(setupFile: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const p = fork(fileURLToPath(import.meta.url), ['child', setupFile], { execArgv: ['--expose-gc'] });
    let got: unknown;
    p.on('message', (m) => (got = m));
    p.on('exit', (code) => (code === 0 ? resolve(got) : reject(new Error(`child exit ${code}`))));
  });
}

function ldapsearch(s: Setup): Promise<number> {
  const config = parseConfig(s.conf, 'bench qos.conf');
  const l = config.ldap;
  const a = l.attrs;
  const owner = [a.uid, a.endInternet, a.coupure, a.ban, a.cotiz, 'modifyTimestamp'];
  const host = [a.host, a.owner, a.ip, a.ip6, a.zone, 'modifyTimestamp'];
  const one = (base: string, filter: string, attrs: string[]): Promise<number> =>
    new Promise((resolve, reject) =>
      execFile(
        'ldapsearch',
        ['-x', '-H', l.url, '-LLL', '-o', 'ldif-wrap=no', '-E', `pr=${l.pageSize}/noprompt`, '-b', base, '-s', 'sub', filter, ...attrs],
        { maxBuffer: 1 << 30 },
        (err, stdout) => (err ? reject(new Error(err.message)) : resolve((stdout.match(/^dn: /gm) ?? []).length)),
      ),
    );
  return Promise.all([
    one(l.basePeople, l.peopleFilter, owner),
    one(l.baseOrga, l.orgaFilter, owner),
    one(l.baseHosts, l.hostsFilter, host),
  ]).then((c) => c.reduce((x, y) => x + y, 0));
}

async function main(): Promise<void> {
  const [cmd, a1, a2] = process.argv.slice(2);
  if (cmd === 'serve') return serve(Number(a1), a2!);
  if (cmd === 'child') return child(a1!);
  const reps = Number(a2 ?? 3);
  if (cmd === 'run') {
    for (let i = 0; i < reps; i++) console.log(JSON.stringify(await runChild(a1!)));
    return;
  }
  if (cmd === 'ldapsearch') {
    const s = JSON.parse(readFileSync(a1!, 'utf8')) as Setup;
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      const n = await ldapsearch(s);
      console.log(JSON.stringify({ ldapsearchMs: Math.round(performance.now() - t0), entries: n }));
    }
    return;
  }
  throw new Error('usage: ldap-fetch serve N FILE | run FILE [reps] | ldapsearch FILE [reps]');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
