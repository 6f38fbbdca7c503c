// The entitlement guard as an operator meets it (issue 11, finding 1): the real daemon on a
// real kernel in namespaces, a real slapd. A refused directory leaves qos_allow and the QoS
// sets as they are, shows in `status --json`, is logged once; `update --accept` takes it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, chmodSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSlapd, type SlapdServer, PEOPLE_BASE, MACHINES_BASE } from '../../sandbox/slapd.js';
import { startMariadb, type MariadbServer } from '../../sandbox/mariadb.js';
import { createGateway, type Gateway } from '../../sandbox/netns.js';
import { gatewayConf } from '../../sandbox/conf.js';
import { readIpsets } from '../../src/kernel/read.js';
import { isAlive, readPid } from '../../src/daemon/pidfile.js';
import { ourSets, runCli } from '../helpers/kernel.js';
import { person, machine } from '../helpers/ldif.js';
import { waitLogLine } from '../helpers/log.js';
import { freePort, get, parseExposition, value } from '../helpers/metrics.js';

let slapd: SlapdServer;
let db: MariadbServer;
let gw: Gateway;
let dir: string;
let conf: string;
let port: number;

const P = (uid: string): string => `uid=${uid},${PEOPLE_BASE}`;
const M = (host: string): string => `host=${host},${MACHINES_BASE}`;
const USERS = [
  ['alice', '200.3'],
  ['bob', '201.1'],
] as const;
const c = (verb: string, ...extra: string[]): ReturnType<typeof runCli> => runCli([verb, '-c', conf, ...extra]);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const logText = (): string => readFileSync(join(dir, 'log', 'reselqos.log'), 'utf8');

async function allowSet(): Promise<string[]> {
  const sets = await readIpsets(gw.execIn('gw'), (n) => n === 'qos_allow');
  return [...(sets.get('qos_allow')?.entries ?? [])].sort();
}
/** reselqos_source_refused{source="ldap"} once it equals `want` (set after each cycle), within 10 s. */
async function ldapRefusedGauge(want: number): Promise<number | undefined> {
  let v: number | undefined;
  for (let i = 0; i < 50; i++) {
    const r = await get(`http://127.0.0.1:${port}/metrics`);
    v = value(parseExposition(r.text), 'reselqos_source_refused', { source: 'ldap' });
    if (v === want) break;
    await sleep(200);
  }
  return v;
}
async function statusJson(): Promise<{ sources: { ldap: string; mysql: string }; lastCycle: { ok: boolean } | null }> {
  const r = await c('status', '--json');
  return JSON.parse(r.stdout);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rq-guardd-'));
  conf = join(dir, 'qos.conf');
  port = await freePort();
  [slapd, db, gw] = await Promise.all([
    startSlapd(),
    startMariadb({ timezone: '+00:00' }),
    createGateway({ userIps: ['172.22.200.3', '172.22.201.1'] }),
  ]);
  await slapd.add(USERS.map(([u, ip]) => person(u) + machine(`pc-${u}`, P(u), [ip])).join(''));
  writeFileSync(
    conf,
    gatewayConf(
      { slapd, db, gw },
      {
        dir,
        metrics: `listen = 127.0.0.1:${port}`,
      },
    ),
  );
  chmodSync(conf, 0o600);
});

after(async () => {
  const pid = await readPid(join(dir, 'run', 'reselqos.pid')).catch(() => null);
  if (pid && isAlive(pid)) process.kill(pid, 'SIGKILL');
  await Promise.allSettled([slapd?.stop(), db?.stop(), gw?.destroy()]);
  rmSync(dir, { recursive: true, force: true });
});

test('a directory without IPs is refused: kernel untouched, status says why, one error line; --accept cannot take it', async () => {
  const start = await c('start');
  assert.equal(start.code, 0, start.stdout + start.stderr);
  assert.deepEqual(await allowSet(), ['172.22.200.3', '172.22.201.1']);
  const qosBefore = (await ourSets(gw.execIn('gw'))).setOf;
  assert.equal(await ldapRefusedGauge(0), 0, 'reselqos_source_refused{source="ldap"} before any refusal');

  await slapd.modify(USERS.map(([u]) => `dn: ${M(`pc-${u}`)}\nchangetype: modify\ndelete: ipHostNumber\n\n`).join(''));
  const u = await c('update');
  assert.equal(u.code, 1, u.stdout + u.stderr);
  assert.match(u.stderr, /directory refused, the one in force stays: ldap: directory came back with 2 machine\(s\) and not one IP address/);
  const s = await statusJson();
  assert.match(
    s.sources.ldap,
    /^refused since \S+: ldap: directory came back with 2 machine\(s\) and not one IP address.*, using snapshot of /,
  );
  assert.equal(s.sources.mysql, 'ok');
  assert.equal(s.lastCycle?.ok, true, 'the cycle ran on the directory in force');
  assert.equal(await ldapRefusedGauge(1), 1, 'reselqos_source_refused{source="ldap"} while refused');
  assert.deepEqual(await allowSet(), ['172.22.200.3', '172.22.201.1'], 'qos_allow as it was');
  assert.deepEqual((await ourSets(gw.execIn('gw'))).setOf, qosBefore, 'QoS sets as they were');

  await sleep(5000); // a few timer cycles (interval 2s)
  for (const flag of ['--force', '--accept']) {
    const r = await c('update', flag);
    assert.equal(r.code, 1, `${flag}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /not one IP address/);
  }
  assert.deepEqual(await allowSet(), ['172.22.200.3', '172.22.201.1']);
  const refusedLines = logText()
    .split('\n')
    .filter((l) => / error ldap refused: /.test(l));
  assert.equal(refusedLines.length, 1, refusedLines.join('\n'));
});

test('no owner entitled: refused, then taken deliberately with update --accept', async () => {
  await slapd.modify(
    USERS.map(([u, ip]) => `dn: ${M(`pc-${u}`)}\nchangetype: modify\nadd: ipHostNumber\nipHostNumber: ${ip}\n\n`).join(''),
  );
  await slapd.modify(USERS.map(([u]) => `dn: ${P(u)}\nchangetype: modify\ndelete: endInternet\n\n`).join(''));
  const u = await c('update', '--force');
  assert.equal(u.code, 1, u.stdout + u.stderr);
  assert.match(u.stderr, /would allow no machine through the firewall/);
  assert.match((await statusJson()).sources.ldap, /^refused since .*allow no machine/);
  assert.deepEqual(await allowSet(), ['172.22.200.3', '172.22.201.1'], '--force never applies an empty allow set');

  const a = await c('update', '--accept');
  assert.equal(a.code, 0, a.stdout + a.stderr);
  assert.deepEqual(await allowSet(), [], 'the operator took it');
  assert.equal((await statusJson()).sources.ldap, 'ok');
  assert.equal(await ldapRefusedGauge(0), 0, 'reselqos_source_refused{source="ldap"} once a directory is accepted');
  await waitLogLine(dir, /warn ldap: directory of \S+ accepted by the operator \(--accept\)/);
  const help = await runCli(['help']);
  assert.match(help.stdout, /reselqos update \[-c FILE\] \[--force\] \[--accept\]/);
  assert.equal((await c('stop')).code, 0);
});
