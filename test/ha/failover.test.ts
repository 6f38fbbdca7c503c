// Two gateways, one campus (issue 23), for real: gateways A and B each in a namespace with
// reselqos, keepalived (VRRP, a virtual address on the users' side and on the wan side, one
// sync group) and conntrackd (FTFW over a dedicated link), the notify script of docs/ha run
// as shipped; one slapd and one MariaDB shared (sandbox/hapair.ts draws the topology).
// Both kernels hold the same sets and class rates; a 30 s download (iperf3 -R, 0.5 s
// intervals) and a 5 Hz ping from a user through the virtual address while, at 10 s,
// (a) A's keepalived is killed (SIGKILL), (b) A's links go down, (c) A's reselqos is killed
// (the track script `status --health` hands over); then failback when A returns. Each time:
// the longest gap without delivered bytes, the same TCP connection (one iperf3 run, never
// reconnected), the rate on the new master against the user's policy rate; a banned user
// refused throughout; the sites row written by one gateway at a time. The measures are
// printed (docs/INSTALL.md, "HA pair", has the table).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, chmodSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSlapd, type SlapdServer, PEOPLE_BASE, MACHINES_BASE } from '../../sandbox/slapd.js';
import { startMariadb, type MariadbServer } from '../../sandbox/mariadb.js';
import { createHaPair, PAIR, type HaPair } from '../../sandbox/hapair.js';
import { sandboxConf } from '../../sandbox/conf.js';
import { hourBucket } from '../../sandbox/campus.js';
import { spawnBackground, type BackgroundProcess } from '../../sandbox/spawn.js';
import { startBannerServer, probe } from '../../sandbox/tcp.js';
import { isAlive, readPid } from '../../src/daemon/pidfile.js';
import { readIpsets, readTc } from '../../src/kernel/read.js';
import { runCli, cli } from '../helpers/kernel.js';

const G = ['a', 'b'] as const;
type Gw = (typeof G)[number];
const ALICE = '172.22.200.3';
const BOB = '172.22.201.1'; // banned
const CAROL = '172.22.202.1'; // unpaid until she pays while A is down
const SITE = 'gw-pair';
const repo = fileURLToPath(new URL('../../../', import.meta.url));

let slapd: SlapdServer;
let db: MariadbServer;
let pair: HaPair;
let dir: string;
const procs: BackgroundProcess[] = [];
const keepalived: Partial<Record<Gw, BackgroundProcess>> = {};
const results: string[] = [];

/** 5 Hz ICMP echo for 30 s (no ping(8) on every machine): one line per request, "ok" or "lost". */
const PINGER = `
import socket, struct, sys, time, select
src, dst = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
s.bind((src, 0))
got = set()
sent = []
t0 = time.time()
for seq in range(150):
    s.sendto(struct.pack('!BBHHH', 8, 0, 0, 0, seq) + b'rq', (dst, 0))
    sent.append(seq)
    end = t0 + (seq + 1) * 0.2
    while True:
        left = end - time.time()
        if left <= 0:
            break
        r, _, _ = select.select([s], [], [], left)
        if r:
            d = s.recv(2048)
            if d[0] == 0:
                got.add(struct.unpack('!H', d[6:8])[0])
time.sleep(1)
while select.select([s], [], [], 0)[0]:
    d = s.recv(2048)
    if d[0] == 0:
        got.add(struct.unpack('!H', d[6:8])[0])
print(' '.join('ok' if q in got else 'lost' for q in sent))
`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const gdir = (g: Gw): string => join(dir, g);
const conf = (g: Gw): string => join(gdir(g), 'qos.conf');
const c = (g: Gw, verb: string, ...extra: string[]): ReturnType<typeof runCli> => runCli([verb, '-c', conf(g), ...extra]);

const person = (uid: string, extra = ''): string =>
  `dn: uid=${uid},${PEOPLE_BASE}\nobjectClass: genericPerson\nobjectClass: reselPerson\nuid: ${uid}\nendInternet: 20300101000000Z\n${extra ? extra + '\n' : ''}\n`;
const machine = (host: string, uid: string, ip: string): string =>
  `dn: host=${host},${MACHINES_BASE}\nobjectClass: reselMachine\nhost: ${host}\nuidProprio: uid=${uid},${PEOPLE_BASE}\nipHostNumber: ${ip}\nzone: Brest\nzone: User\n\n`;

function writeGatewayFiles(g: Gw): void {
  const d = gdir(g);
  mkdirSync(d, { recursive: true });
  const text = sandboxConf({
    ldapUrl: slapd.url,
    db: { host: db.host, port: db.port, user: db.user, password: db.password },
    dir: d,
    timezone: 'UTC',
    down: '20Mbit',
    up: '20Mbit',
    firewall: [
      `netns = ${pair.ns[g]}`,
      'userNetworks = 172.22.0.0/16',
      `ip_vip = ${PAIR.usersVip}`,
      `ip_self = ${PAIR.usersIp[g]}`,
      `ip_wanvip = ${PAIR.wanVip}`,
      `ip_wanself = ${PAIR.wanIp[g]}`,
    ].join('\n'),
    qos: 'count = active\nverifyInterval = 2s',
    publish: 'enabled = 1\ntimeout = 3s',
    site: `name = ${SITE}`,
  }).replace('[ratesrules]', 'globalDown = 20Mbit\nglobalUp = 20Mbit\n[sharing]\nenabled = 1\n[ratesrules]');
  writeFileSync(conf(g), `${text}\n[ha]\nrole = backup\nfailures = 2\ntrackTimeout = 3s\n`);
  chmodSync(conf(g), 0o600);
  // the reselqos command, as keepalived runs it
  const bin = join(d, 'reselqos');
  writeFileSync(bin, `#!/bin/sh\nexec ${process.execPath} ${cli} "$@"\n`);
  chmodSync(bin, 0o755);
  // the shipped notify script, its paths given through the environment; each transition logged
  const notify = join(d, 'notify');
  writeFileSync(
    notify,
    [
      '#!/bin/sh',
      `echo "$(date +%s.%N) $3" >> ${join(d, 'notify.log')}`,
      `export CONNTRACKD_CONFIG=${join(d, 'conntrackd.conf')} CONNTRACKD_LOCK=${join(d, 'ct.lock')}`,
      `export RESELQOS_BIN=${bin} RESELQOS_CONF=${conf(g)}`,
      `exec sh ${join(repo, 'docs/ha/notify.sh')} "$@"`,
      '',
    ].join('\n'),
  );
  chmodSync(notify, 0o755);
  const prio = g === 'a' ? 150 : 100;
  const instance = (name: string, dev: string, vrid: number, vip: string): string =>
    `vrrp_instance ${name} {\n  state BACKUP\n  interface ${dev}\n  virtual_router_id ${vrid}\n  priority ${prio}\n  advert_int 0.5\n` +
    `  virtual_ipaddress {\n    ${vip} dev ${dev}\n  }\n  track_script {\n    reselqos_health\n  }\n}\n`;
  writeFileSync(
    join(d, 'keepalived.conf'),
    `global_defs {\n  router_id gw-${g}\n  script_user root\n  vrrp_version 3\n}\n` +
      `vrrp_script reselqos_health {\n  script "${bin} status --health -c ${conf(g)}"\n  interval 1\n  timeout 6\n  fall 2\n  rise 2\n  weight -60\n}\n` +
      `vrrp_sync_group RESELQOS {\n  group {\n    USERS\n    WAN\n  }\n  notify ${notify}\n  sync_group_tracking_weight\n}\n` +
      instance('USERS', 'int0', 51, `${PAIR.usersVip}/16`) +
      instance('WAN', 'ext0', 52, `${PAIR.wanVip}/24`),
  );
  const [me, peer] = g === 'a' ? [PAIR.syncIp.a, PAIR.syncIp.b] : [PAIR.syncIp.b, PAIR.syncIp.a];
  writeFileSync(
    join(d, 'conntrackd.conf'),
    `Sync {\n  Mode FTFW {\n    StartupResync on\n  }\n  UDP {\n    IPv4_address ${me}\n    IPv4_Destination_Address ${peer}\n    Port 3780\n    Interface sy0\n` +
      `    SndSocketBuffer 1249280\n    RcvSocketBuffer 1249280\n    Checksum on\n  }\n}\n` +
      `General {\n  Systemd off\n  HashSize 8192\n  HashLimit 65535\n  LogFile ${join(d, 'conntrackd.log')}\n  Syslog off\n  LockFile ${join(d, 'ct.lock')}\n` +
      `  UNIX {\n    Path ${join(d, 'conntrackd.ctl')}\n  }\n  NetlinkBufferSize 2097152\n  NetlinkBufferSizeMaxGrowth 8388608\n` +
      `  Filter From Userspace {\n    Address Ignore {\n      IPv4_address 127.0.0.1\n      IPv4_address 10.255.255.0/30\n      IPv4_address ${PAIR.usersIp.a}\n      IPv4_address ${PAIR.usersIp.b}\n      IPv4_address ${PAIR.wanIp.a}\n      IPv4_address ${PAIR.wanIp.b}\n    }\n  }\n}\n`,
  );
}

async function startKeepalived(g: Gw): Promise<void> {
  const d = gdir(g);
  keepalived[g] = await spawnBackground('ip', [
    'netns',
    'exec',
    pair.ns[g],
    'keepalived',
    '-n',
    '-l',
    '-D',
    '-f',
    join(d, 'keepalived.conf'),
    '-p',
    join(d, 'keepalived.pid'),
    '-r',
    join(d, 'vrrp.pid'),
    '-c',
    join(d, 'checkers.pid'),
    '-i',
    `gw-${g}`,
  ]);
  procs.push(keepalived[g]);
}

const roleOf = async (g: Gw): Promise<string> => {
  const r = await c(g, 'status', '--json');
  return r.code === 0 ? (JSON.parse(r.stdout) as { role: string }).role : 'down';
};
const holdsVip = async (g: Gw): Promise<boolean> =>
  (await pair.exec(g, 'ip', ['-o', 'addr', 'show', 'dev', 'int0'])).stdout.includes(`${PAIR.usersVip}/16`);

/** Waits until `g` is master (its role and the virtual address), the other backup. */
async function waitMaster(g: Gw, o: { otherStale?: boolean } = {}, timeoutMs = 30_000): Promise<void> {
  const other: Gw = g === 'a' ? 'b' : 'a';
  const t0 = Date.now();
  let seen = '';
  while (Date.now() - t0 < timeoutMs) {
    const [rg, ro, vg, vo] = await Promise.all([roleOf(g), roleOf(other), holdsVip(g), holdsVip(other)]);
    seen = `${g}: ${rg} vip=${vg}, ${other}: ${ro} vip=${vo}`;
    if (rg === 'master' && vg && (o.otherStale || (ro !== 'master' && !vo))) return;
    await sleep(300);
  }
  assert.fail(`${g} did not become the only master within ${timeoutMs} ms: ${seen}`);
}

/** Every member of our sets and every HTB class rate and ceil, as comparable text. */
async function kernelView(g: Gw): Promise<string[]> {
  const ex = pair.execIn(g);
  const sets = await readIpsets(ex, (n) => /^(v6)?qos_/.test(n));
  const out: string[] = [];
  for (const [name, s] of [...sets].sort(([x], [y]) => x.localeCompare(y))) out.push(`set ${name}: ${[...s.entries].sort().join(' ')}`);
  for (const dev of ['int0', 'ext0']) {
    const tc = await readTc(ex, dev);
    for (const k of [...tc.classes].sort((x, y) => x.classid.localeCompare(y.classid)))
      out.push(`class ${dev} ${k.classid} rate ${k.rateBps} ceil ${k.ceilBps} leaf ${k.leaf ?? '-'}`);
  }
  return out;
}

const avgBps = (xs: { sum: { bits_per_second: number } }[]): number =>
  xs.reduce((s, i) => s + i.sum.bits_per_second, 0) / Math.max(1, xs.length);

interface Run {
  gapS: number;
  pingGapS: number;
  beforeBps: number;
  afterBps: number;
  totalBytes: number;
  lostPings: number;
  pings: number;
  writers: string[];
  bob: string[];
}

/** A 30 s download and a 5 Hz ping through the virtual address; `event` at 10 s. */
async function measured(event: () => Promise<void>): Promise<Run> {
  const iperf = pair.exec('users', 'iperf3', ['-c', PAIR.server, '-p', '5201', '-B', ALICE, '-t', '30', '-i', '0.5', '-R', '-J'], {
    timeoutMs: 50_000,
  });
  const ping = pair.exec('users', 'python3', ['-c', PINGER, ALICE, PAIR.server], { timeoutMs: 50_000 });
  const writers: string[] = [];
  const bob: string[] = [];
  let polling = true;
  const poll = (async () => {
    while (polling) {
      const rows = await db.select<{ writer: string }>(`SELECT writer FROM qos.sites WHERE site = '${SITE}'`).catch(() => []);
      const w = rows[0]?.writer ?? '';
      if (w && writers[writers.length - 1] !== w) writers.push(w);
      await sleep(200);
    }
  })();
  const bobs = (async () => {
    while (polling) {
      bob.push(await probe(pair.ns.users, PAIR.server, 80, BOB, 1000));
      await sleep(1000);
    }
  })();
  await sleep(10_000);
  await event();
  const r = await iperf;
  const p = await ping;
  polling = false;
  await Promise.all([poll, bobs]);
  const j = JSON.parse(r.stdout) as {
    error?: string;
    start: { connected: unknown[] };
    intervals: { sum: { start: number; bytes: number; bits_per_second: number } }[];
  };
  assert.equal(j.error, undefined);
  assert.equal(j.start.connected.length, 1, 'one TCP connection');
  let gap = 0;
  let run = 0;
  for (const i of j.intervals) {
    run = i.sum.bytes === 0 ? run + 1 : 0;
    gap = Math.max(gap, run);
  }
  const late = j.intervals.filter((i) => i.sum.start >= 22);
  const replies = p.stdout.trim().split(' ');
  let lostRun = 0;
  let lostMax = 0;
  for (const x of replies) {
    lostRun = x === 'lost' ? lostRun + 1 : 0;
    lostMax = Math.max(lostMax, lostRun);
  }
  return {
    gapS: gap * 0.5,
    afterBps: avgBps(late),
    totalBytes: j.intervals.reduce((s, i) => s + i.sum.bytes, 0),
    pings: replies.length,
    lostPings: replies.filter((x) => x === 'lost').length,
    pingGapS: lostMax * 0.2,
    beforeBps: avgBps(j.intervals.filter((i) => i.sum.start >= 2 && i.sum.start < 10)),
    writers,
    bob,
  };
}

/** alice's download policy rate on `g`: her group's class rate over its users. */
async function policyRate(g: Gw): Promise<number> {
  const r = await c(g, 'explain', 'alice', '--json');
  assert.equal(r.code, 0, r.stderr);
  const e = JSON.parse(r.stdout) as { down: { perUserRateBps: number } };
  return e.down.perUserRateBps;
}

async function check(name: string, run: Run, master: Gw, o: { writersMayAlternate?: boolean } = {}): Promise<void> {
  const rate = await policyRate(master);
  const line =
    `${name}: longest gap ${run.gapS.toFixed(1)} s (iperf3), ${run.pingGapS.toFixed(1)} s (ping, ${run.lostPings}/${run.pings} lost); ` +
    `${(run.beforeBps / 1e6).toFixed(2)} Mbit/s before, ${(run.afterBps / 1e6).toFixed(2)} on ${master.toUpperCase()} after ` +
    `(class rate per user ${(rate / 1e6).toFixed(2)}, ceil 20); sites row writers in turn: ${run.writers.length}`;
  results.push(line);
  console.log(`# ${line}`);
  assert.ok(run.gapS <= 3, line);
  // the same shaping on both: the rate she had before the failure, within 10 %, never above the ceil
  assert.ok(Math.abs(run.afterBps - run.beforeBps) / run.beforeBps <= 0.1, line);
  assert.ok(run.afterBps <= 20e6 * 1.05, line);
  assert.ok(run.afterBps >= rate * 0.9, line);
  for (const b of run.bob) assert.doesNotMatch(b, /^banner/, `bob (banned) got out: ${run.bob.join(', ')}`);
  // the row changes hands at most once per switch: never two writers alternating
  if (!o.writersMayAlternate) assert.ok(run.writers.length <= 2, `sites row writers alternated: ${run.writers.join(' ')}`);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rq-ha-failover-'));
  [slapd, db, pair] = await Promise.all([startSlapd(), startMariadb({ timezone: '+00:00' }), createHaPair([ALICE, BOB, CAROL])]);
  // ICMP echo through ping sockets, for root in the users' namespace
  await pair.exec('users', 'sysctl', ['-q', '-w', 'net.ipv4.ping_group_range=0 2147483647']);
  await slapd.add(
    person('alice') +
      machine('pc-alice', 'alice', '200.3') +
      person('bob', 'ban: internet') +
      machine('pc-bob', 'bob', '201.1') +
      person('carol').replace('endInternet: 20300101000000Z', 'endInternet: 20200101000000Z') +
      machine('pc-carol', 'carol', '202.1'),
  );
  await db.insertTraffic([{ ip: ALICE, time: hourBucket(new Date()), input: 1_000_000, output: 1000 }]);
  procs.push(await spawnBackground('ip', ['netns', 'exec', pair.ns.wan, 'iperf3', '-s', '-p', '5201']));
  procs.push(await startBannerServer(pair.ns.wan, [80]));
  for (const g of G) writeGatewayFiles(g);
  // the operator's base firewall: a stateful rule, as any NAT or state rule makes the kernel
  // track connections in the namespace (without one there is nothing for conntrackd to sync)
  for (const g of G) await pair.exec(g, 'iptables', ['-A', 'FORWARD', '-m', 'conntrack', '--ctstate', 'INVALID', '-j', 'DROP']);
  for (const g of G) {
    const r = await c(g, 'start');
    assert.equal(r.code, 0, r.stdout + r.stderr);
  }
  for (const g of G) {
    procs.push(await spawnBackground('ip', ['netns', 'exec', pair.ns[g], 'conntrackd', '-C', join(gdir(g), 'conntrackd.conf')]));
  }
  await sleep(500);
  for (const g of G) await startKeepalived(g);
  await waitMaster('a');
});

after(async () => {
  for (const g of G) {
    const pid = await readPid(join(gdir(g), 'run', 'reselqos.pid')).catch(() => null);
    if (pid && isAlive(pid)) process.kill(pid, 'SIGKILL');
  }
  await Promise.allSettled(procs.map((p) => p.stop()));
  await Promise.allSettled([slapd?.stop(), db?.stop(), pair?.destroy()]);
  if (results.length) console.log(results.map((l) => `# ${l}`).join('\n'));
  if (dir && !process.env['RQ_KEEP']) rmSync(dir, { recursive: true, force: true });
});

test('A master, B backup: both kernels hold the same set members and class rates; only A writes the sites row', async () => {
  await sleep(4000); // a few cycles of both
  const [ka, kb] = await Promise.all([kernelView('a'), kernelView('b')]);
  assert.ok(
    ka.some((l) => l.startsWith('set qos_allow') && l.includes(ALICE)),
    ka.join('\n'),
  );
  assert.deepEqual(kb, ka);
  assert.equal(await roleOf('a'), 'master');
  assert.equal(await roleOf('b'), 'backup');
  assert.match(readFileSync(join(gdir('a'), 'notify.log'), 'utf8'), /MASTER/);
  assert.ok(existsSync(join(gdir('b'), 'notify.log')));
});

test('(a) A keepalived killed, then back: B takes over within 3 s and back, same connection, at the policy rate', async () => {
  let synced = '';
  const run = await measured(async () => {
    // conntrackd: B holds A's connections (alice's download among them) in its external cache
    synced = (await pair.exec('b', 'conntrackd', ['-C', join(gdir('b'), 'conntrackd.conf'), '-e'])).stdout;
    // keepalived runs under `ip netns exec`, which execs it: the pid is keepalived's parent process
    const pid = Number(readFileSync(join(gdir('a'), 'keepalived.pid'), 'utf8').trim());
    process.kill(pid, 'SIGKILL');
    for (const f of ['vrrp.pid', 'checkers.pid']) {
      if (!existsSync(join(gdir('a'), f))) continue;
      const child = Number(readFileSync(join(gdir('a'), f), 'utf8').trim());
      if (child > 0 && isAlive(child)) process.kill(child, 'SIGKILL');
    }
    await keepalived.a?.exited;
  });
  // Nobody tells A's reselqos that it is no longer master (its keepalived is dead), and its
  // virtual addresses stay on its links: B takes over the traffic, A's role stays stale
  await waitMaster('b', { otherStale: true });
  await check('(a) keepalived of A killed', run, 'b', { writersMayAlternate: true });
  assert.match(
    synced,
    new RegExp(`src=${ALICE.replace(/\./g, '\\.')} dst=${PAIR.server.replace(/\./g, '\\.')} sport=\\d+ dport=5201`),
    synced.slice(0, 2000),
  );
  // A's addresses stay on its links when its keepalived is killed: taken off before it returns
  await pair.exec('a', 'ip', ['addr', 'del', `${PAIR.usersVip}/16`, 'dev', 'int0']).catch(() => undefined);
  await pair.exec('a', 'ip', ['addr', 'del', `${PAIR.wanVip}/24`, 'dev', 'ext0']).catch(() => undefined);
  const back = await measured(() => startKeepalived('a'));
  await waitMaster('a');
  await check('(a) failback', back, 'a');
});

test('(b) A links down, then up: B takes over within 3 s and back; a user who pays meanwhile gets out through B, then A', async () => {
  const run = await measured(async () => {
    await pair.exec('a', 'ip', ['link', 'set', 'int0', 'down']);
    await pair.exec('a', 'ip', ['link', 'set', 'ext0', 'down']);
  });
  await waitMaster('b');
  await check('(b) links of A down', run, 'b');
  assert.equal(await roleOf('a'), 'fault');
  // carol pays while A is down: B lets her out (its kernel follows LDAP as A's did)
  assert.doesNotMatch(await probe(pair.ns.users, PAIR.server, 80, CAROL, 1000), /^banner/, 'carol (unpaid) is refused');
  await slapd.modify(`dn: uid=carol,${PEOPLE_BASE}\nchangetype: modify\nreplace: endInternet\nendInternet: 20300101000000Z\n\n`);
  const paidAt = Date.now();
  let out = '';
  while (Date.now() - paidAt < 30_000 && !/^banner/.test(out)) {
    out = await probe(pair.ns.users, PAIR.server, 80, CAROL, 1000);
    if (!/^banner/.test(out)) await sleep(500);
  }
  assert.match(out, /^banner/, `carol paid while A was down and is still refused through B: ${out}`);
  results.push(`carol paid while A was down: out through B after ${((Date.now() - paidAt) / 1000).toFixed(1)} s`);
  const back = await measured(async () => {
    await pair.exec('a', 'ip', ['link', 'set', 'int0', 'up']);
    await pair.exec('a', 'ip', ['link', 'set', 'ext0', 'up']);
  });
  await waitMaster('a');
  await check('(b) failback', back, 'a');
  assert.match(await probe(pair.ns.users, PAIR.server, 80, CAROL, 1000), /^banner/, 'carol, who paid while A was down, gets out through A');
});

test('(c) A reselqos killed: the track script hands over to B within 3 s; A back when its daemon is', async () => {
  const run = await measured(async () => {
    const pid = await readPid(join(gdir('a'), 'run', 'reselqos.pid'));
    assert.ok(pid, 'no pid file of A');
    process.kill(pid, 'SIGKILL');
  });
  await waitMaster('b');
  await check('(c) reselqos of A killed', run, 'b');
  const back = await measured(async () => {
    const r = await c('a', 'start');
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });
  await waitMaster('a');
  await check('(c) failback', back, 'a');
});
