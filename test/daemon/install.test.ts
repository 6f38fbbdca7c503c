// scripts/install.sh into a scratch root, as a package build or an operator would run it:
// every file in place with its mode, the installed tool works, an edited qos.conf survives a
// second install, and the init script, the systemd unit and the logrotate file are valid for
// the tools that read them (sh -n / checkbashisms, systemd-analyze verify, logrotate -d).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
  appendFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const installSh = join(repo, 'scripts/install.sh');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: opts.cwd ?? repo, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr: err && typeof err.code !== 'number' ? `${stderr}${err.message}` : stderr });
    });
  });
}

/** A command on PATH (or in the sbin directories root's PATH may lack), else null. */
function which(cmd: string): string | null {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

const mode = (p: string): string => (statSync(p).mode & 0o7777).toString(8).padStart(4, '0');
const show = (r: Run): string => `exit ${r.code}\n${r.stdout}${r.stderr}`;

let tmp: string;
let root: string;
let first: Run;

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'rq-install-'));
  root = join(tmp, 'root');
  first = await run('sh', [installSh, '--root', root], { timeoutMs: 300_000 });
});

after(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('install.sh --root puts every file in place with its mode', () => {
  assert.equal(first.code, 0, show(first));
  const expected: [string, string][] = [
    ['usr/bin/reselqos', '0755'],
    ['usr/lib/reselqos', '0755'],
    ['usr/lib/reselqos/dist/cli.js', '0644'],
    ['usr/lib/reselqos/package.json', '0644'],
    ['usr/lib/reselqos/node_modules', '0755'],
    ['etc/reselqos/qos.conf', '0600'],
    ['etc/default/reselqos', '0644'],
    ['etc/init.d/reselqos', '0755'],
    ['etc/logrotate.d/reselqos', '0644'],
    ['lib/systemd/system/reselqos.service', '0644'],
    ['lib/tmpfiles.d/reselqos.conf', '0644'],
    ['var/log/reselqos', '0750'],
    ['var/lib/reselqos', '0750'],
  ];
  for (const [rel, m] of expected) {
    const p = join(root, rel);
    assert.ok(existsSync(p), `${rel} missing\n${first.stdout}`);
    assert.equal(mode(p), m, rel);
  }
  assert.equal(readFileSync(join(root, 'etc/reselqos/qos.conf'), 'utf8'), readFileSync(join(repo, 'conf/qos.conf'), 'utf8'));
  assert.equal(readFileSync(join(root, 'etc/logrotate.d/reselqos'), 'utf8'), readFileSync(join(repo, 'init/reselqos.logrotate'), 'utf8'));
  const unit = readFileSync(join(root, 'lib/systemd/system/reselqos.service'), 'utf8');
  assert.match(unit, /^ExecStart=\/usr\/bin\/reselqos run -c \/etc\/reselqos\/qos\.conf$/m);
  // systemd 257 (Debian 13) refuses to start the unit when a ReadWritePaths= path is missing
  // (status=226/NAMESPACE, seen by the VM lane): "-" paths, and tmpfiles.d creates them at boot.
  assert.match(unit, /^ReadWritePaths=-\/run\/netns -\/run\/xtables\.lock$/m);
  const tmpfiles = readFileSync(join(root, 'lib/tmpfiles.d/reselqos.conf'), 'utf8');
  assert.match(tmpfiles, /^d \/run\/netns 0755 root root -$/m);
  assert.match(tmpfiles, /^f \/run\/xtables\.lock 0600 root root -$/m);
  const wrapper = readFileSync(join(root, 'usr/bin/reselqos'), 'utf8');
  assert.match(wrapper, /^LIB=\/usr\/lib\/reselqos$/m, "the wrapper names the installed system's path, not the staging root");
  assert.doesNotMatch(wrapper + unit, new RegExp(root.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'no staging path in installed files');
  assert.match(first.stdout, /nothing enabled/);
});

test('the installed wrapper runs check on the installed qos.conf; production packages only, all loadable', async () => {
  const conf = join(root, 'etc/reselqos/qos.conf');
  const r = await run(join(root, 'usr/bin/reselqos'), ['check', '-c', conf], { cwd: tmp });
  assert.equal(r.code, 0, show(r));
  assert.match(r.stdout, /qos\.conf: valid/);

  const lib = join(root, 'usr/lib/reselqos');
  const pkg = JSON.parse(readFileSync(join(lib, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  // Dev-only packages of the lock file (typescript, ...) stay out; a @types package some
  // runtime dependency lists is not dev-only and may be there.
  const lock = JSON.parse(readFileSync(join(repo, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  const devOnly = Object.entries(lock.packages)
    .filter(([p, v]) => p.startsWith('node_modules/') && v.dev)
    .map(([p]) => p);
  assert.ok(devOnly.includes('node_modules/typescript'));
  for (const p of devOnly) assert.ok(!existsSync(join(lib, p)), `dev-only package ${p} installed`);
  const names = JSON.stringify(Object.keys(pkg.dependencies));
  const imp = await run(process.execPath, ['--input-type=module', '-e', `for (const n of ${names}) await import(n); console.log('ok')`], {
    cwd: lib,
  });
  assert.equal(imp.code, 0, show(imp));
  assert.equal(imp.stdout.trim(), 'ok');
  // the dashboard's chart library resolves from the installed tree, as the HTTP listener does
  const asset = await run(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { createRequire } from 'node:module'; console.log(createRequire(${JSON.stringify(join(lib, 'dist/http/server.js'))}).resolve('uplot/dist/uPlot.iife.min.js'))`,
    ],
    { cwd: tmp },
  );
  assert.equal(asset.code, 0, show(asset));
  assert.equal(asset.stdout.trim(), join(lib, 'node_modules/uplot/dist/uPlot.iife.min.js'));
});

test('a second install changes nothing but never overwrites an edited qos.conf: the new sample goes to qos.conf.dist', async () => {
  const conf = join(root, 'etc/reselqos/qos.conf');
  appendFileSync(conf, '; edited by the operator\n');
  const edited = readFileSync(conf, 'utf8');
  const again = await run('sh', [installSh, '--root', root], { timeoutMs: 300_000 });
  assert.equal(again.code, 0, show(again));
  assert.equal(readFileSync(conf, 'utf8'), edited, 'qos.conf kept');
  assert.equal(mode(conf), '0600');
  const dist = join(root, 'etc/reselqos/qos.conf.dist');
  assert.equal(readFileSync(dist, 'utf8'), readFileSync(join(repo, 'conf/qos.conf'), 'utf8'));
  assert.equal(mode(dist), '0600');
  assert.match(again.stdout, /kept your .*qos\.conf .*qos\.conf\.dist/);
  for (const rel of [
    'usr/lib/reselqos',
    'usr/bin/reselqos',
    'etc/init.d/reselqos',
    'lib/systemd/system/reselqos.service',
    'etc/logrotate.d/reselqos',
    'etc/default/reselqos',
  ]) {
    assert.match(again.stdout, new RegExp(`unchanged \\S*/${rel.replace(/\./g, '\\.')}\\n`), `${rel} unchanged\n${again.stdout}`);
  }
  assert.deepEqual(readdirSync(join(root, 'usr/lib')).sort(), ['reselqos'], 'no leftover staging directory');
});

test('the init script: sh -n, checkbashisms when installed, usage', async (t) => {
  const init = join(root, 'etc/init.d/reselqos');
  const text = readFileSync(init, 'utf8');
  assert.match(text, /^### BEGIN INIT INFO$/m);
  assert.match(text, /^# Provides: +reselqos$/m);
  for (const verb of ['start', 'stop', 'restart', 'reload', 'force-reload', 'update', 'status']) {
    assert.match(text, new RegExp(`^\\t${verb}\\)$`, 'm'), `verb ${verb}`);
  }
  const n = await run('sh', ['-n', init]);
  assert.equal(n.code, 0, show(n));
  const help = await run('sh', [init, 'help']);
  assert.equal(help.code, 0, show(help));
  assert.match(help.stdout, /\{start\|stop\|restart\|reload\|force-reload\|update \[--force\|--accept\]\|status\|help\}/);
  const bad = await run('sh', [init, 'bogus']);
  assert.equal(bad.code, 2, show(bad));
  const installN = await run('sh', ['-n', installSh]);
  assert.equal(installN.code, 0, show(installN));
  const cb = which('checkbashisms');
  if (!cb) {
    t.diagnostic('checkbashisms not installed (devscripts): skipped');
    return;
  }
  const r = await run(cb, ['--posix', init]);
  assert.equal(r.code, 0, show(r));
});

test('systemd-analyze verify: the unit has no unknown or invalid line', async (t) => {
  const sa = which('systemd-analyze');
  if (!sa) {
    t.skip('systemd-analyze not installed');
    return;
  }
  // verify checks that Exec*= binaries exist: point /usr/bin/reselqos into the scratch root.
  const dir = join(tmp, 'verify');
  mkdirSync(dir);
  const unit = readFileSync(join(root, 'lib/systemd/system/reselqos.service'), 'utf8').replaceAll(
    '/usr/bin/reselqos',
    join(root, 'usr/bin/reselqos'),
  );
  const file = join(dir, 'reselqos.service');
  writeFileSync(file, unit);
  const r = await run(sa, ['verify', file]);
  t.diagnostic(`systemd-analyze verify: exit ${r.code}${r.stdout || r.stderr ? `\n${r.stdout}${r.stderr}` : ', no output'}`);
  assert.equal(r.code, 0, show(r));
  // verify also loads the units this one names (network-online.target, ...): only our lines count.
  const ours = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes('reselqos'));
  assert.deepEqual(ours, [], show(r));
});

test('logrotate reads the logrotate file (debug mode, scratch state file)', async (t) => {
  const lr = which('logrotate');
  if (!lr) {
    t.skip('logrotate not installed: add it to scripts/install-deps.sh to run this check');
    return;
  }
  const state = join(tmp, 'logrotate.state');
  const installed = join(root, 'etc/logrotate.d/reselqos');
  const d = await run(lr, ['-d', '-s', state, installed]);
  assert.equal(d.code, 0, show(d));
  assert.doesNotMatch(d.stdout + d.stderr, /^error:/m, show(d));
  assert.match(d.stdout + d.stderr, /rotating pattern: \/var\/log\/reselqos\/\*\.log/);
  // A forced dry run over a scratch log directory: the file would be moved (not copied) and the
  // daemon signalled.
  const logs = join(tmp, 'logs');
  mkdirSync(logs);
  writeFileSync(join(logs, 'reselqos.log'), 'a line\n');
  const conf = join(tmp, 'logrotate.conf');
  writeFileSync(conf, readFileSync(installed, 'utf8').replace('/var/log/reselqos/', `${logs}/`));
  const f = await run(lr, ['-d', '-f', '-s', state, conf]);
  assert.equal(f.code, 0, show(f));
  const out = f.stdout + f.stderr;
  assert.doesNotMatch(out, /^error:/m, show(f));
  assert.match(out, /renaming .*reselqos\.log to .*reselqos\.log\.1/, show(f));
  assert.match(out, /running postrotate script/, show(f));
  assert.doesNotMatch(out, /copying .* to|truncating/, 'no copytruncate');
});

test('--prefix rewrites the paths of the wrapper, the unit and the init script', async () => {
  const other = join(tmp, 'root-opt');
  const r = await run('sh', [installSh, '--root', other, '--prefix', '/opt/rq'], { timeoutMs: 300_000 });
  assert.equal(r.code, 0, show(r));
  const unit = readFileSync(join(other, 'lib/systemd/system/reselqos.service'), 'utf8');
  assert.match(unit, /^ExecStart=\/opt\/rq\/bin\/reselqos run -c \/etc\/reselqos\/qos\.conf$/m);
  assert.doesNotMatch(unit, /\/usr\/bin\/reselqos/);
  const init = readFileSync(join(other, 'etc/init.d/reselqos'), 'utf8');
  assert.match(init, /^RESELQOS=\/opt\/rq\/bin\/reselqos$/m);
  assert.match(readFileSync(join(other, 'opt/rq/bin/reselqos'), 'utf8'), /^LIB=\/opt\/rq\/lib\/reselqos$/m);
  const c = await run(join(other, 'opt/rq/bin/reselqos'), ['check', '-c', join(other, 'etc/reselqos/qos.conf')], { cwd: tmp });
  assert.equal(c.code, 0, show(c));
});
