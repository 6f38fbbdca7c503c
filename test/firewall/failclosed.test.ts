// Closed by default (issue 20): the firewall refuses whatever arrives on the users' interface
// and is not allowed, whatever its source address. A machine in no LDAP entry that picks an
// address outside userNetworks / user6Networks is refused like one inside: TCP, UDP and ICMP,
// new flows and flows already open; `passSources` lets a listed network through; the portal
// redirect reaches every unpaid machine on that interface. Real kernel, real traffic, both
// families, the cycles run by the real binary, the directory in a real slapd.
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
import { startUdpEcho, udpProbe, udpHold, replies, icmpProbe } from './probes.js';

let slapd: SlapdServer;
let db: MariadbServer;
let gw: Gateway;
let dir: string;
let conf: string;
const servers: BackgroundProcess[] = [];

// userNetworks = 172.22.192.0/19 as in the sample qos.conf; user6Networks = 2001:db8:d000::/40
const V4 = {
  paid: '172.22.200.3', // registered, paid
  inside: '172.22.205.1', // in no LDAP entry, inside userNetworks
  outside: '172.22.10.5', // in no LDAP entry, outside userNetworks (picked by hand)
  pass: '10.9.0.5', // a management host, listed in passSources
};
const V6 = {
  paid: '2001:db8:d000::3',
  inside: '2001:db8:d005::1',
  outside: '2001:db8:e010::5',
  pass: '2001:db8:f000::5',
};
const PASS = 'passSources = 10.9.0.0/24, 2001:db8:f000::/48';
const UDP = 7000;
const OUT = 'banner SERVER 80';

const person = (uid: string): string =>
  `dn: uid=${uid},${PEOPLE_BASE}\nobjectClass: genericPerson\nobjectClass: reselPerson\nuid: ${uid}\nendInternet: 20300101000000Z\n\n`;
const machine = (uid: string, ip: string, v6: string): string =>
  `dn: host=pc-${uid},${MACHINES_BASE}\nobjectClass: reselMachine\nhost: pc-${uid}\nuidProprio: uid=${uid},${PEOPLE_BASE}\nipHostNumber: ${ip.replace('172.22.', '')}\nipv6HostNumber: ${v6}\nzone: Brest\nzone: User\n\n`;

function writeConf(firewall = ''): void {
  writeFileSync(
    conf,
    sandboxConf({
      ldapUrl: slapd.url,
      db: { host: db.host, port: db.port, user: db.user, password: db.password },
      dir,
      timezone: 'UTC',
      firewall: `netns = ${gw.names.gw}\nuserNetworks = 172.22.192.0/19\nuser6Networks = 2001:db8:d000::/40\nip_int = 10.253.0.1\n${firewall}`,
    }),
  );
  chmodSync(conf, 0o600);
}

async function cycle(): Promise<void> {
  const r = await runCli(['run', '--once', '-c', conf]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
}

const server = (ip: string): string => (ip.includes(':') ? gw.wanIp6 : gw.wanIp);
const tcp = (from: string, port = 80): Promise<string> => probe(gw.names.users, server(from), port, from);
const udp = (from: string): Promise<string> => udpProbe(gw.names.users, server(from), UDP, from);
const icmp = (from: string): Promise<string> => icmpProbe(gw.names.users, server(from), from);

/** TCP, UDP and ICMP from `from`, as one line to compare. */
async function reach(from: string): Promise<string> {
  return `tcp ${await tcp(from)} | udp ${await udp(from)} | icmp ${await icmp(from)}`;
}
const GETS_OUT = `tcp ${OUT} | udp echo | icmp reply`;

/** Resolves with how an open flow ended, or 'still open' after `ms`. */
async function ended(flow: BackgroundProcess, ms = 3000): Promise<string> {
  return Promise.race([
    flow.exited.then(() => flow.output().stdout.trim().split('\n').pop() ?? ''),
    new Promise<string>((r) => setTimeout(() => r('still open'), ms)),
  ]);
}

/** Whether a UDP flow still gets echoes: compares the count over `ms`. */
async function udpFlowing(flow: BackgroundProcess, ms = 1500): Promise<boolean> {
  const before = replies(flow);
  await new Promise((r) => setTimeout(r, ms));
  return replies(flow) > before;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rq-fwc-'));
  conf = join(dir, 'qos.conf');
  [slapd, db, gw] = await Promise.all([
    startSlapd(),
    startMariadb({ timezone: '+00:00' }),
    createGateway({ userIps: Object.values(V4), userIps6: Object.values(V6) }),
  ]);
  // ICMP echo through ping sockets, for root in the users' namespace
  await gw.exec('users', 'sysctl', ['-q', '-w', 'net.ipv4.ping_group_range=0 2147483647']);
  await slapd.add(person('paula') + machine('paula', V4.paid, V6.paid));
  servers.push(await startBannerServer(gw.names.wan, [80, 8080]));
  servers.push(await startUdpEcho(gw.names.wan, UDP));
  writeConf();
});

after(async () => {
  await Promise.allSettled(servers.map((s) => s.stop()));
  await Promise.allSettled([slapd?.stop(), db?.stop(), gw?.destroy()]);
  rmSync(dir, { recursive: true, force: true });
});

test('an unregistered machine outside userNetworks is refused, IPv4 and IPv6: TCP, UDP, ICMP, and its flows already open are cut', async () => {
  // before any rule everyone gets out (the probes themselves work), and opens flows
  for (const ip of [V4.outside, V6.outside]) assert.equal(await reach(ip), GETS_OUT, `${ip} before the firewall`);
  const flows = await Promise.all([V4.outside, V6.outside].map((ip) => hold(gw.names.users, server(ip), 80, ip)));
  const dgrams = await Promise.all([V4.outside, V6.outside].map((ip) => udpHold(gw.names.users, server(ip), UDP, ip)));
  try {
    await cycle();
    for (const [i, ip] of [V4.outside, V6.outside].entries()) {
      assert.match(await ended(flows[i]!), /error ECONN(RESET|REFUSED)|closed|stalled/, `the open TCP flow of ${ip} is cut`);
      assert.equal(await udpFlowing(dgrams[i]!), false, `the open UDP flow of ${ip} gets no more echoes`);
      // dropped, not answered: an address outside userNetworks may not be routed back to the users' side
      assert.match(await reach(ip), /^tcp timeout \| udp timeout \| icmp timeout$/, `${ip} is refused`);
    }
  } finally {
    await Promise.allSettled([...flows, ...dgrams].map((f) => f.stop()));
  }
});

test('an unregistered machine inside userNetworks is refused, a paid one goes out, IPv4 and IPv6', async () => {
  for (const ip of [V4.inside, V6.inside]) {
    assert.match(await reach(ip), /^tcp error ECONNREFUSED \| udp (timeout|error \w+) \| icmp (timeout|error \d+)$/, ip);
  }
  for (const ip of [V4.paid, V6.paid]) assert.equal(await reach(ip), GETS_OUT, ip);
});

test('passSources lets a listed source through, both ways; taking it out cuts its open flows', async () => {
  for (const ip of [V4.pass, V6.pass]) assert.notEqual(await tcp(ip), OUT, `${ip} is refused before it is listed`);
  writeConf(PASS);
  await cycle();
  for (const ip of [V4.pass, V6.pass]) assert.equal(await reach(ip), GETS_OUT, `${ip} passes`);
  for (const ip of [V4.outside, V6.outside]) assert.equal(await tcp(ip), 'timeout', `${ip} is still refused`);

  const flows = await Promise.all([V4.pass, V6.pass].map((ip) => hold(gw.names.users, server(ip), 80, ip)));
  const dgrams = await Promise.all([V4.pass, V6.pass].map((ip) => udpHold(gw.names.users, server(ip), UDP, ip)));
  try {
    writeConf();
    await cycle();
    for (const [i, ip] of [V4.pass, V6.pass].entries()) {
      assert.match(await ended(flows[i]!), /error ECONN(RESET|REFUSED)|closed|stalled/, `the open TCP flow of ${ip} is cut`);
      assert.equal(await udpFlowing(dgrams[i]!), false, `the open UDP flow of ${ip} gets no more echoes`);
    }
  } finally {
    await Promise.allSettled([...flows, ...dgrams].map((f) => f.stop()));
  }
});

test('the portal redirect reaches every unpaid machine on the interface, inside userNetworks or not, IPv4 and IPv6', async () => {
  writeConf(`${PASS}\nportal = ${gw.wanIp}:8080\nportal6 = [${gw.wanIp6}]:8080`);
  await cycle();
  for (const ip of [V4.inside, V4.outside, V6.inside, V6.outside]) {
    assert.equal(await tcp(ip), 'banner SERVER 8080', `${ip}: the portal`);
    assert.equal(await tcp(ip, 8080), 'banner SERVER 8080', `${ip}: the portal itself is open`);
    assert.match(await udp(ip), /^(timeout|error \w+)$/, `${ip}: anything else stays refused`);
  }
  for (const ip of [V4.paid, V6.paid, V4.pass, V6.pass]) assert.equal(await tcp(ip), OUT, `${ip}: the real server, not the portal`);
  const plan = await runCli(['plan', '--json', '-c', conf]);
  assert.equal(plan.code, 0, plan.stderr);
  assert.equal(JSON.parse(plan.stdout).changes.iptables, 0, 'the chains read back as desired');
});
