// The operator's kit installed and at work: install.sh --root puts the man pages (gzip -9n) and
// the bash completion in place; with a running sandbox daemon (real slapd, MariaDB, gateway
// namespace), `reselqos explain --complete PREFIX` lists the uids and IPs of its last plan, and
// the installed completion, sourced by bash and given the installed command, completes alice;
// with the daemon stopped, nothing and exit 0.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSlapd, type SlapdServer, PEOPLE_BASE, MACHINES_BASE } from '../../sandbox/slapd.js';
import { startMariadb, type MariadbServer } from '../../sandbox/mariadb.js';
import { createGateway, type Gateway } from '../../sandbox/netns.js';
import { sandboxConf } from '../../sandbox/conf.js';
import { isAlive, readPid } from '../../src/daemon/pidfile.js';
import { runCli } from '../helpers/kernel.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));

let slapd: SlapdServer;
let db: MariadbServer;
let gw: Gateway;
let dir: string;
let conf: string;
let root: string;

const person = (uid: string): string =>
  `dn: uid=${uid},${PEOPLE_BASE}\nobjectClass: genericPerson\nobjectClass: reselPerson\nuid: ${uid}\nendInternet: 20300101000000Z\n\n`;
const machine = (host: string, uid: string, ip: string): string =>
  `dn: host=${host},${MACHINES_BASE}\nobjectClass: reselMachine\nhost: ${host}\nuidProprio: uid=${uid},${PEOPLE_BASE}\nipHostNumber: ${ip}\nzone: Brest\nzone: User\n\n`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}
function run(cmd: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: repo, timeout: 300_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}
const show = (r: Run): string => `exit ${r.code}\n${r.stdout}${r.stderr}`;
const lines = (s: string): string[] => s.split('\n').filter((l) => l !== '');

/** COMPREPLY of the installed completion for `<cmd> -c conf explain <prefix>`. */
async function completeExplain(cmd: string, prefix: string): Promise<string[]> {
  const words = [cmd, '-c', conf, 'explain', prefix];
  const script = [
    `source '${join(root, 'usr/share/bash-completion/completions/reselqos')}'`,
    `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})`,
    `COMP_CWORD=${words.length - 1}`,
    '_reselqos',
    'printf "%s\\n" "${COMPREPLY[@]}"',
  ].join('\n');
  const r = await run('bash', ['-c', script]);
  assert.equal(r.code, 0, show(r));
  assert.equal(r.stderr, '');
  return lines(r.stdout);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rq-kit-'));
  conf = join(dir, 'qos.conf');
  root = join(dir, 'root');
  const [s, d, g, inst] = await Promise.all([
    startSlapd(),
    startMariadb({ timezone: '+00:00' }),
    createGateway({ userIps: ['172.22.200.3', '172.22.200.4', '172.22.201.1'] }),
    run('sh', [join(repo, 'scripts/install.sh'), '--root', root]),
  ]);
  [slapd, db, gw] = [s, d, g];
  assert.equal(inst.code, 0, show(inst));
  await slapd.add(
    person('alice') +
      machine('pc-alice', 'alice', '200.3') +
      person('alan') +
      machine('pc-alan', 'alan', '200.4') +
      person('bob') +
      machine('pc-bob', 'bob', '201.1'),
  );
  writeFileSync(
    conf,
    sandboxConf({
      ldapUrl: slapd.url,
      db: { host: db.host, port: db.port, user: db.user, password: db.password },
      dir,
      firewall: `netns = ${gw.names.gw}`,
      timezone: 'UTC',
    }),
  );
  chmodSync(conf, 0o600);
});

after(async () => {
  const pid = await readPid(join(dir, 'run', 'reselqos.pid')).catch(() => null);
  if (pid && isAlive(pid)) process.kill(pid, 'SIGKILL');
  await Promise.allSettled([slapd?.stop(), db?.stop(), gw?.destroy()]);
  rmSync(dir, { recursive: true, force: true });
});

test('install.sh puts the man pages (gzip -9n, readable by man) and the completion in place', async () => {
  for (const [rel, src] of [
    ['usr/share/man/man8/reselqos.8.gz', 'man/reselqos.8'],
    ['usr/share/man/man5/qos.conf.5.gz', 'man/qos.conf.5'],
  ] as const) {
    const p = join(root, rel);
    assert.equal((statSync(p).mode & 0o777).toString(8), '644', rel);
    const gz = readFileSync(p);
    assert.equal(gz.readUInt32LE(4), 0, `${rel}: no timestamp (gzip -n)`);
    assert.equal(gz[8], 2, `${rel}: maximum compression (gzip -9)`);
    assert.equal(gunzipSync(gz).toString('utf8'), readFileSync(join(repo, src), 'utf8'));
    const m = await run('man', ['--warnings', '-l', p]);
    assert.equal(m.code, 0, show(m));
    assert.equal(m.stderr, '', rel);
    assert.match(m.stdout, rel.includes('man8') ? /reselqos explain/ : /basepeople/);
  }
  const comp = join(root, 'usr/share/bash-completion/completions/reselqos');
  assert.equal(readFileSync(comp, 'utf8'), readFileSync(join(repo, 'completion/reselqos'), 'utf8'));
  assert.ok(existsSync(join(root, 'usr/bin/reselqos')));
});

test("explain --complete lists the running daemon's uids and IPs; the installed completion uses it", async () => {
  const none = await runCli(['explain', '-c', conf, '--complete', 'al']);
  assert.deepEqual([none.code, none.stdout, none.stderr], [0, '', ''], 'not running yet: nothing, exit 0');

  const start = await runCli(['start', '-c', conf]);
  assert.equal(start.code, 0, show(start));
  const al = await runCli(['explain', '-c', conf, '--complete', 'al']);
  assert.equal(al.code, 0, show(al));
  assert.deepEqual(lines(al.stdout), ['alan', 'alice']);
  const ips = await runCli(['explain', '-c', conf, '--complete', '172.22.200.']);
  assert.deepEqual(lines(ips.stdout), ['172.22.200.3', '172.22.200.4']);
  const all = await runCli(['explain', '-c', conf, '--complete', '']);
  assert.deepEqual(lines(all.stdout), ['172.22.200.3', '172.22.200.4', '172.22.201.1', 'alan', 'alice', 'bob']);

  // The installed command (its wrapper runs the installed copy) through the installed completion.
  assert.deepEqual(await completeExplain(join(root, 'usr/bin/reselqos'), 'ali'), ['alice']);
  assert.deepEqual(await completeExplain(join(root, 'usr/bin/reselqos'), 'b'), ['bob']);

  const stop = await runCli(['stop', '-c', conf]);
  assert.equal(stop.code, 0, show(stop));
  assert.deepEqual(await completeExplain(join(root, 'usr/bin/reselqos'), 'ali'), [], 'stopped: no candidates');
  const after = await runCli(['explain', '-c', conf, '--complete', 'al']);
  assert.deepEqual([after.code, after.stdout, after.stderr], [0, '', '']);
});
