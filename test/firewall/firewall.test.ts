// The dynamic firewall on a real kernel with real traffic: TCP connections from user IPs
// (users namespace) through the gateway (gw) to servers (wan), cycles run by the real
// binary, the directory in a real slapd.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSlapd, type SlapdServer, PEOPLE_BASE, MACHINES_BASE } from '../../sandbox/slapd.js';
import { startMariadb, type MariadbServer } from '../../sandbox/mariadb.js';
import { createGateway, type Gateway } from '../../sandbox/netns.js';
import { sandboxConf } from '../../sandbox/conf.js';
import { startBannerServer, probe, hold } from '../../sandbox/tcp.js';
import type { BackgroundProcess } from '../../sandbox/spawn.js';
import { runCli } from '../helpers/kernel.js';

let slapd: SlapdServer;
let db: MariadbServer;
let gw: Gateway;
let dir: string;
let conf: string;
const servers: BackgroundProcess[] = [];

const IP = {
  alice: '172.22.200.3', // registered, paid
  bob: '172.22.201.1', // machine inactive
  carol: '172.22.202.1', // endInternet in the past
  dave: '172.22.203.1', // coupure TRUE
  eve: '172.22.204.1', // ban: internet
  stranger: '172.22.205.1', // not in LDAP
  frank: '172.22.206.1', // registered during the test
  grace: '172.22.207.1', // registered with an IPv6 address for the IPv6 portal test
};
const ALICE6 = '2001:db8:d200::3';
const STRANGER6 = '2001:db8:d205::1';
const GRACE6 = '2001:db8:d207::1';
const GW_MGMT = '10.253.0.1'; // the gateway's address on the users' side
/** what a client sees when the gateway answers its SYN with a TCP reset */
const REFUSED = 'error ECONNREFUSED';

const person = (uid: string, extra = '', end = '20300101000000Z'): string =>
  `dn: uid=${uid},${PEOPLE_BASE}\nobjectClass: genericPerson\nobjectClass: reselPerson\nuid: ${uid}\nendInternet: ${end}\n${extra ? extra + '\n' : ''}\n`;
const machine = (uid: string, ip: string, zone = 'User', v6 = ''): string =>
  `dn: host=pc-${uid},${MACHINES_BASE}\nobjectClass: reselMachine\nhost: pc-${uid}\nuidProprio: uid=${uid},${PEOPLE_BASE}\nipHostNumber: ${ip.replace('172.22.', '')}\n${v6 ? `ipv6HostNumber: ${v6}\n` : ''}zone: Brest\nzone: ${zone}\n\n`;

function writeConf(firewall = ''): void {
  writeFileSync(
    conf,
    sandboxConf({
      ldapUrl: slapd.url,
      db: { host: db.host, port: db.port, user: db.user, password: db.password },
      dir,
      timezone: 'UTC',
      firewall: `netns = ${gw.names.gw}\nuserNetworks = 172.22.0.0/16\nuser6Networks = 2001:db8:d000::/36\nip_int = ${GW_MGMT}\n${firewall}`,
    }),
  );
  chmodSync(conf, 0o600);
}

async function cycle(): Promise<void> {
  const r = await runCli(['run', '--once', '-c', conf]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
}

const users = (): string => gw.names.users;
const connect = (from: string, port = 80, host = gw.wanIp): Promise<string> => probe(users(), host, port, from);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rq-fw-'));
  conf = join(dir, 'qos.conf');
  [slapd, db, gw] = await Promise.all([
    startSlapd(),
    startMariadb({ timezone: '+00:00' }),
    createGateway({ userIps: Object.values(IP), userIps6: [ALICE6, STRANGER6, GRACE6] }),
  ]);
  await slapd.add(
    person('alice') +
      machine('alice', IP.alice, 'User', ALICE6) +
      person('bob') +
      machine('bob', IP.bob, 'Inactive') +
      person('carol', '', '20200101000000Z') +
      machine('carol', IP.carol) +
      person('dave', 'coupure: TRUE') +
      machine('dave', IP.dave) +
      person('eve', 'ban: internet') +
      machine('eve', IP.eve),
  );
  servers.push(await startBannerServer(gw.names.wan, [80, 8080, 8081]));
  servers.push(await startBannerServer(gw.names.gw, [2222]));
  writeConf();
});

after(async () => {
  await Promise.allSettled(servers.map((s) => s.stop()));
  await Promise.allSettled([slapd?.stop(), db?.stop(), gw?.destroy()]);
  rmSync(dir, { recursive: true, force: true });
});

test('before any rule, everyone gets through (the sandbox itself works)', async () => {
  assert.equal(await connect(IP.stranger), 'banner SERVER 80');
});

test('a registered, paid machine connects; inactive, expired, cut, banned and unregistered ones are refused', async () => {
  await cycle();
  assert.equal(await connect(IP.alice), 'banner SERVER 80');
  assert.equal(await probe(users(), gw.wanIp6, 80, ALICE6), 'banner SERVER 80', 'IPv6 too');
  for (const who of ['bob', 'carol', 'dave', 'eve', 'stranger'] as const) {
    assert.equal(await connect(IP[who]), REFUSED, `${who} must be refused`);
  }
  assert.notEqual(await probe(users(), gw.wanIp6, 80, STRANGER6), 'banner SERVER 80', 'an unregistered IPv6 address is refused');
});

test("the gateway's management address stays reachable whatever LDAP says", async () => {
  assert.equal(await connect(IP.stranger, 2222, GW_MGMT), 'banner SERVER 2222');
  assert.equal(await connect(IP.eve, 2222, GW_MGMT), 'banner SERVER 2222');
});

test('registering a machine opens it within one cycle', async () => {
  await slapd.add(person('frank') + machine('frank', IP.frank));
  assert.equal(await connect(IP.frank), REFUSED, 'not before the cycle');
  await cycle();
  assert.equal(await connect(IP.frank), 'banner SERVER 80');
});

test('a ban closes an open connection within one cycle', async () => {
  const conn = await hold(users(), gw.wanIp, 80, IP.alice);
  try {
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(conn.running(), 'the connection is up');
    await slapd.modify(`dn: uid=alice,${PEOPLE_BASE}\nchangetype: modify\nadd: ban\nban: internet\n`);
    await cycle();
    const end = await Promise.race([
      conn.exited.then(() => conn.output().stdout),
      new Promise<string>((r) => setTimeout(() => r('still open'), 3000)),
    ]);
    assert.match(end, /error ECONN(RESET|REFUSED)|closed|stalled/, `the open connection ends: ${end}`);
    assert.equal(await connect(IP.alice), REFUSED);
  } finally {
    await conn.stop();
  }
});

test('LDAP down keeps every allowed machine allowed', async () => {
  await slapd.kill();
  try {
    await cycle();
    assert.equal(await connect(IP.frank), 'banner SERVER 80');
    assert.equal(await connect(IP.stranger), REFUSED);
  } finally {
    await slapd.restart();
  }
});

test('with the portal on, web traffic of unregistered/unpaid machines goes to the portal, banned ones to the ban page', async () => {
  writeConf(`portal = ${gw.wanIp}:8080\nportalBan = ${gw.wanIp}:8081`);
  await cycle();
  assert.equal(await connect(IP.stranger), 'banner SERVER 8080');
  assert.equal(await connect(IP.carol), 'banner SERVER 8080', 'unpaid: payment page');
  assert.equal(await connect(IP.dave), 'banner SERVER 8081', 'cut: ban page');
  assert.equal(await connect(IP.eve), 'banner SERVER 8081', 'banned: ban page');
  assert.equal(await connect(IP.frank), 'banner SERVER 80', 'allowed: the real server');
  assert.equal(await connect(IP.stranger, 8080), 'banner SERVER 8080', 'the portal itself is open to everyone');
  assert.equal(await connect(IP.stranger, 2222), REFUSED, 'anything else stays refused');
});

test('with portal6 on, IPv6 web traffic of unregistered machines goes to the IPv6 portal, banned ones to the ban page, allowed ones out', async () => {
  await slapd.add(person('grace') + machine('grace', IP.grace, 'User', GRACE6));
  const v4 = `portal = ${gw.wanIp}:8080\nportalBan = ${gw.wanIp}:8081`;
  writeConf(`${v4}\nportal6 = [${gw.wanIp6}]:8080\nportalBan6 = [${gw.wanIp6}]:8081`);
  await cycle();
  const connect6 = (from: string, port = 80): Promise<string> => probe(users(), gw.wanIp6, port, from);
  assert.equal(await connect6(STRANGER6), 'banner SERVER 8080', 'unregistered: the IPv6 portal');
  assert.equal(await connect6(ALICE6), 'banner SERVER 8081', 'banned (earlier test): the IPv6 ban page');
  assert.equal(await connect6(GRACE6), 'banner SERVER 80', 'allowed: the real server');
  assert.equal(await connect6(STRANGER6, 8080), 'banner SERVER 8080', 'the IPv6 portal itself is open to everyone');
  assert.notEqual(await connect6(STRANGER6, 2222), 'banner SERVER 2222', 'anything else stays refused');
  assert.equal(await connect(IP.stranger), 'banner SERVER 8080', 'the IPv4 portal as before');
  const nat6 = (await gw.exec('gw', 'ip6tables-save', ['-t', 'nat'])).stdout;
  assert.match(nat6, /^-A PREROUTING -i int0 -p tcp -m comment --comment "?reselqos:hook(:[A-Za-z0-9_-]{12})?"? -j RESELQOS-portal$/m);
  assert.match(nat6, new RegExp(`^-A RESELQOS-portal -p tcp -m tcp --dport 80 .*-j DNAT --to-destination \\[${gw.wanIp6}\\]:8080$`, 'm'));
  // read back as rendered: nothing left to change
  const plan = await runCli(['plan', '--json', '-c', conf]);
  assert.equal(plan.code, 0, plan.stderr);
  assert.equal(JSON.parse(plan.stdout).changes.iptables, 0, 'the IPv6 nat chain reads back as desired');

  // portal6 off again: the IPv6 chain goes, IPv6 strangers are refused, the IPv4 portal stays
  writeConf(v4);
  await cycle();
  assert.doesNotMatch((await gw.exec('gw', 'ip6tables-save', ['-t', 'nat'])).stdout, /RESELQOS/);
  assert.notEqual(await connect6(STRANGER6), 'banner SERVER 8080');
  assert.equal(await connect(IP.stranger), 'banner SERVER 8080');
});

test('v6Enabled = 0 lets IPv6 through', async () => {
  writeConf('v6Enabled = 0');
  await cycle();
  assert.equal(await probe(users(), gw.wanIp6, 80, STRANGER6), 'banner SERVER 80');
  assert.equal(await connect(IP.stranger), REFUSED, 'IPv4 still filtered');
});

test('enabled = 0 filters nothing', async () => {
  writeConf('enabled = 0');
  await cycle();
  for (const ip of Object.values(IP)) assert.equal(await connect(ip), 'banner SERVER 80', ip);
  const r = await gw.exec('gw', 'iptables-save', ['-t', 'filter']);
  assert.doesNotMatch(r.stdout, /RESELQOS-fw/);
});
