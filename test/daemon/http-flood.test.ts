// The HTTP listener under an idle-connection flood, against the real daemon (`reselqos start`)
// on a sandbox gateway: the daemon's file descriptors lowered with prlimit (as an init script's
// ulimit would), then far more idle TCP connections to [metrics] listen than it could hold.
// Cycles must go on applying (a machine added in LDAP reaches the kernel, `update` succeeds),
// the daemon's fd count stays bounded, and the listener closes the idle connections itself.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, chmodSync, readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSlapd, type SlapdServer, PEOPLE_BASE, MACHINES_BASE } from '../../sandbox/slapd.js';
import { startMariadb, type MariadbServer } from '../../sandbox/mariadb.js';
import { createGateway, type Gateway } from '../../sandbox/netns.js';
import { gatewayConf } from '../../sandbox/conf.js';
import { isAlive, readPid } from '../../src/daemon/pidfile.js';
import { runCli, ourSets } from '../helpers/kernel.js';
import { freePort, get } from '../helpers/metrics.js';

const FD_LIMIT = 256;
const FLOOD = 400;

let slapd: SlapdServer;
let db: MariadbServer;
let gw: Gateway;
let dir: string;
let conf: string;
let port: number;
let pid: number;

const person = (uid: string): string =>
  `dn: uid=${uid},${PEOPLE_BASE}\nobjectClass: genericPerson\nobjectClass: reselPerson\nuid: ${uid}\nendInternet: 20300101000000Z\n\n`;
const machine = (host: string, uid: string, ip: string): string =>
  `dn: host=${host},${MACHINES_BASE}\nobjectClass: reselMachine\nhost: ${host}\nuidProprio: uid=${uid},${PEOPLE_BASE}\nipHostNumber: ${ip}\nzone: Brest\nzone: User\n\n`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const fds = (): number => readdirSync(`/proc/${pid}/fd`).length;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rq-flood-'));
  conf = join(dir, 'qos.conf');
  port = await freePort();
  [slapd, db, gw] = await Promise.all([
    startSlapd(),
    startMariadb({ timezone: '+00:00' }),
    createGateway({ userIps: ['172.22.200.3', '172.22.201.1'] }),
  ]);
  await slapd.add(person('alice') + machine('pc-alice', 'alice', '200.3'));
  writeFileSync(conf, gatewayConf({ slapd, db, gw }, { dir, metrics: `listen = 127.0.0.1:${port}` }));
  chmodSync(conf, 0o600);
  const r = await runCli(['start', '-c', conf]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  pid = (await readPid(join(dir, 'run', 'reselqos.pid')))!;
  execFileSync('prlimit', [`--pid=${pid}`, `--nofile=${FD_LIMIT}:${FD_LIMIT}`]);
});

after(async () => {
  if (pid && isAlive(pid)) {
    process.kill(pid, 'SIGKILL');
    while (isAlive(pid)) await sleep(50);
  }
  await Promise.allSettled([slapd?.stop(), db?.stop(), gw?.destroy()]);
  rmSync(dir, { recursive: true, force: true });
});

/** Opens n TCP connections that never send a byte; resolves once each is connected or refused. */
async function idleFlood(n: number): Promise<{ sockets: Socket[]; closed: () => number }> {
  let closed = 0;
  const sockets: Socket[] = [];
  await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<void>((resolve) => {
          const s = connect(port, '127.0.0.1');
          sockets.push(s);
          s.resume(); // reads, so the daemon's FIN is seen
          s.on('connect', () => resolve());
          s.on('error', () => resolve());
          s.on('close', () => {
            closed++;
            resolve();
          });
        }),
    ),
  );
  return { sockets, closed: () => closed };
}

test(`${FLOOD} idle connections under a ${FD_LIMIT} fd limit: cycles go on applying, fds stay bounded, idle sockets are closed`, async (t) => {
  assert.equal((await runCli(['update', '-c', conf])).code, 0);
  const baseline = fds();
  const flood = await idleFlood(FLOOD);
  try {
    await sleep(1500); // let the daemon accept what it will
    const during = fds();
    t.diagnostic(`daemon fds: ${baseline} before the flood, ${during} during (limit ${FD_LIMIT}); ${flood.closed()} closed by the daemon`);
    // a change in LDAP reaches the kernel while the flood holds its connections
    await slapd.add(person('bob') + machine('pc-bob', 'bob', '201.1'));
    const u = await runCli(['update', '-c', conf]);
    assert.equal(u.code, 0, `update during the flood: ${u.stdout}${u.stderr}`);
    const { setOf } = await ourSets(gw.execIn('gw'));
    assert.ok(setOf.has('172.22.201.1'), `bob's machine in our sets: ${[...setOf.keys()].join(' ')}`);
    assert.ok(during < baseline + 100, `the daemon holds ${during} fds (${baseline} before ${FLOOD} idle connections)`);
    // the idle connections that were accepted are closed by the listener (headers timeout)
    for (let i = 0; flood.closed() < FLOOD; i++) {
      assert.ok(i < 40, `${FLOOD - flood.closed()} idle connections still open after 20 s`);
      await sleep(500);
    }
    // and the dashboard answers again
    assert.equal((await get(`http://127.0.0.1:${port}/metrics`)).status, 200);
    assert.ok(fds() < baseline + 10, `fds back near ${baseline}: ${fds()}`);
  } finally {
    for (const s of flood.sockets) s.destroy();
  }
});
