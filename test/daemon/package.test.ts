// The Debian package as built by `npm run package` (scripts/package.sh, with its pruning of
// node_modules), unpacked into a scratch root with dpkg-deb -x: what the pruning removes is gone
// (type declarations, TypeScript, source maps, docs, tests, benchmarks), what it keeps is there
// (every production package of package-lock.json with its package.json and license files), and
// the shipped wrapper runs from that tree against a sandbox gateway: help, check, plan --json,
// run --once, then start (the daemon, its dashboard asset from node_modules/uplot), stop.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSlapd, type SlapdServer, PEOPLE_BASE, MACHINES_BASE } from '../../sandbox/slapd.js';
import { startMariadb, type MariadbServer } from '../../sandbox/mariadb.js';
import { createGateway, type Gateway } from '../../sandbox/netns.js';
import { gatewayConf } from '../../sandbox/conf.js';
import { isAlive, readPid } from '../../src/daemon/pidfile.js';
import { ourSets } from '../helpers/kernel.js';
import { freePort, get } from '../helpers/metrics.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], timeoutMs = 120_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: repo, timeout: timeoutMs, maxBuffer: 32 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr: err && typeof err.code !== 'number' ? `${stderr}${err.message}` : stderr });
    });
  });
}
const show = (r: Run): string => `exit ${r.code}\n${r.stdout}${r.stderr}`;

function* files(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      yield `${p}/`;
      yield* files(p);
    } else yield p;
  }
}

const person = (uid: string): string =>
  `dn: uid=${uid},${PEOPLE_BASE}\nobjectClass: genericPerson\nobjectClass: reselPerson\nuid: ${uid}\nendInternet: 20300101000000Z\n\n`;
const machine = (host: string, uid: string, ip: string): string =>
  `dn: host=${host},${MACHINES_BASE}\nobjectClass: reselMachine\nhost: ${host}\nuidProprio: uid=${uid},${PEOPLE_BASE}\nipHostNumber: ${ip}\nzone: Brest\nzone: User\n\n`;
const LICENSE = /^(licen[cs]e|copying|notice)/i;

let tmp: string;
let root: string;
let lib: string;
let built: Run;
let slapd: SlapdServer;
let db: MariadbServer;
let gw: Gateway;
let conf: string;
let port: number;
const reselqos = (...args: string[]): Promise<Run> => run(join(root, 'usr/bin/reselqos'), args);

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'rq-package-'));
  root = join(tmp, 'root');
  lib = join(root, 'usr/lib/reselqos');
  port = await freePort();
  [built, slapd, db, gw] = await Promise.all([
    run('bash', [join(repo, 'scripts/package.sh'), '--out', join(tmp, 'out')], 300_000),
    startSlapd(),
    startMariadb({ timezone: '+00:00' }),
    createGateway({ userIps: ['172.22.200.3', '172.22.201.1'] }),
  ]);
  await slapd.add(person('alice') + machine('pc-alice', 'alice', '200.3') + person('bob') + machine('pc-bob', 'bob', '201.1'));
  conf = join(tmp, 'qos.conf');
  writeFileSync(conf, gatewayConf({ slapd, db, gw }, { dir: tmp, metrics: `listen = 127.0.0.1:${port}` }));
  chmodSync(conf, 0o600);
});

after(async () => {
  const pid = await readPid(join(tmp, 'run', 'reselqos.pid')).catch(() => null);
  if (pid && isAlive(pid)) process.kill(pid, 'SIGKILL');
  await Promise.allSettled([slapd?.stop(), db?.stop(), gw?.destroy()]);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('npm run package: prints the sizes before and after pruning; the .deb unpacks; Installed-Size is the pruned size', async (t) => {
  assert.equal(built.code, 0, show(built));
  const size = (when: string): { bytes: number; kib: number } => {
    const m = new RegExp(`installed size ${when} pruning node_modules: +(\\d+) bytes in \\d+ files, Installed-Size (\\d+) KiB`).exec(
      built.stdout,
    );
    assert.ok(m, `no "${when}" size line\n${built.stdout}`);
    return { bytes: Number(m[1]), kib: Number(m[2]) };
  };
  const b = size('before');
  const a = size('after');
  assert.match(built.stdout, /references of dist\/ and node_modules\/: \d+ references checked, \d+ unresolved, none lost by pruning/);
  const debLine = /built (\S+\.deb) \((\d+) bytes, \d+ entries; Installed-Size: (\d+) KiB\)/.exec(built.stdout);
  assert.ok(debLine, built.stdout);
  const deb = debLine[1]!;
  t.diagnostic(`before ${b.bytes} bytes / ${b.kib} KiB, after ${a.bytes} bytes / ${a.kib} KiB, .deb ${debLine[2]} bytes`);
  assert.ok(a.bytes < b.bytes * 0.6, `pruning saved less than 40 %: ${b.bytes} -> ${a.bytes}`);
  const x = await run('dpkg-deb', ['-x', deb, root]);
  assert.equal(x.code, 0, show(x));
  const f = await run('dpkg-deb', ['-f', deb, 'Installed-Size']);
  assert.equal(Number(f.stdout.trim()), a.kib, 'the control file says the pruned size');
  assert.equal(Number(debLine[3]), a.kib);
  assert.match(built.stdout, /lintian: 0 errors/);
});

test('the pruned patterns are absent from the unpacked node_modules; no empty directory left', () => {
  const nm = join(lib, 'node_modules');
  const bad = [...files(nm)]
    .map((p) => relative(nm, p))
    .filter((p) => {
      const base = p.replace(/\/$/, '').split('/').pop() ?? '';
      if (p.endsWith('/'))
        return /^(test|tests|__tests__|specs?|examples?|benchmarks?|docs?|\.github)$/.test(base) && p.split('/').length > 3;
      if (LICENSE.test(base)) return false;
      return /\.(d\.)?[cm]?ts$|\.map$|\.md$|\.markdown$|^(changelog|changes|history)|^tests?\.js$|\.(test|spec)\.js$/i.test(base);
    });
  assert.deepEqual(bad, [], 'pruned patterns still shipped');
  assert.ok(!existsSync(join(nm, 'bintrees/test')), 'bintrees/test (2.3 MB of benchmark data) is gone');
  assert.ok(existsSync(join(nm, 'bintrees/index.js')));
  // @types/* and undici-types: declarations only, kept as their package.json and license
  for (const p of ['@types/node', 'undici-types']) assert.deepEqual(readdirSync(join(nm, p)).sort(), ['LICENSE', 'package.json'], p);
  const empty = [...files(nm)].filter((p) => p.endsWith('/') && readdirSync(p).length === 0);
  assert.deepEqual(empty, []);
});

test('every production package of package-lock.json is shipped with its package.json and license files; the dev-only ones are not', () => {
  const lock = JSON.parse(readFileSync(join(repo, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean; optional?: boolean }>;
  };
  const prod = Object.entries(lock.packages).filter(([p, v]) => p.startsWith('node_modules/') && !v.dev);
  for (const [p] of prod) {
    assert.ok(existsSync(join(lib, p, 'package.json')), `${p}/package.json`);
    // the same version's files in this checkout's node_modules (npm ci from the same lock)
    if (!existsSync(join(repo, p))) continue;
    for (const l of readdirSync(join(repo, p)).filter((n) => LICENSE.test(n))) assert.ok(existsSync(join(lib, p, l)), `${p}/${l} shipped`);
  }
  for (const [p, v] of Object.entries(lock.packages)) if (p && v.dev) assert.ok(!existsSync(join(lib, p)), `dev-only ${p} shipped`);
  // the VM lane prints `ls node_modules | wc -l` as "N modules": one entry per top-level
  // package or scope, as many as the lock file has
  const top = new Set(
    prod
      .map(([p]) => p.slice('node_modules/'.length))
      .filter((n) => !n.includes('/node_modules/'))
      .map((n) => n.split('/')[0]),
  );
  assert.equal(readdirSync(join(lib, 'node_modules')).length, top.size);
});

test('the shipped wrapper runs from the unpacked tree: help, check, plan --json, run --once, start / status / dashboard asset / stop', async () => {
  const help = await reselqos('help');
  assert.equal(help.code, 0, show(help));
  assert.match(help.stdout, /^ {2}plan +fetch LDAP and MySQL once/m);

  const check = await reselqos('check', '-c', conf);
  assert.equal(check.code, 0, show(check));
  assert.match(check.stdout, /qos\.conf: valid/);

  const plan = await reselqos('plan', '-c', conf, '--json');
  assert.equal(plan.code, 0, show(plan));
  const p = JSON.parse(plan.stdout) as { users: { uid: string }[] };
  assert.deepEqual(p.users.map((u) => u.uid).sort(), ['alice', 'bob']);

  const once = await reselqos('run', '--once', '-c', conf);
  assert.equal(once.code, 0, show(once));
  assert.match(once.stdout, /^cycle ok users=2 ips=2 /m);
  const sets = (await ourSets(gw.execIn('gw'))).setOf;
  assert.deepEqual(sets.get('172.22.200.3'), ['qos_d0', 'qos_u0']);
  assert.deepEqual(sets.get('172.22.201.1'), ['qos_d0', 'qos_u0']);

  const start = await reselqos('start', '-c', conf);
  assert.equal(start.code, 0, show(start));
  const st = await reselqos('status', '-c', conf, '--json');
  assert.equal(st.code, 0, show(st));
  assert.equal((JSON.parse(st.stdout) as { running: boolean }).running, true);
  // the dashboard's chart library, served from the shipped node_modules/uplot
  const js = await get(`http://127.0.0.1:${port}/assets/uPlot.iife.min.js`);
  assert.equal(js.status, 200);
  assert.equal(js.text, readFileSync(join(lib, 'node_modules/uplot/dist/uPlot.iife.min.js'), 'utf8'));
  const css = await get(`http://127.0.0.1:${port}/assets/uPlot.min.css`);
  assert.equal(css.status, 200);
  const metrics = await get(`http://127.0.0.1:${port}/metrics`);
  assert.equal(metrics.status, 200);
  assert.match(metrics.text, /^reselqos_/m);
  const stop = await reselqos('stop', '-c', conf);
  assert.equal(stop.code, 0, show(stop));
});
