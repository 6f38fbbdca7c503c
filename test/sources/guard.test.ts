// The entitlement guard against a real slapd (issue 11, finding 1): the directory faults an
// operator meets in real life — the IP attribute gone from every machine, a reload with a
// mistyped ipAttr / endInternetAttr, every machine Inactive, no owner with endInternet,
// successive drops — are refused; a mass expiry on one date applies. And (finding 7) values
// from LDAP carrying newlines never forge a log line.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSlapd, type SlapdServer, PEOPLE_BASE, ORGS_BASE, MACHINES_BASE } from '../../sandbox/slapd.js';
import { sandboxConf } from '../../sandbox/conf.js';
import { parseConfig, type Config } from '../../src/config/config.js';
import { createLogger, MemoryLogger } from '../../src/log.js';
import { planFirewall } from '../../src/plan/firewall.js';
import { Sources } from '../../src/state/sources.js';
import { person, machine } from '../helpers/ldif.js';

const N = 60;
let slapd: SlapdServer;
let dir: string;
const uid = (i: number): string => `user${String(i).padStart(3, '0')}`;
const P = (i: number): string => `uid=${uid(i)},${PEOPLE_BASE}`;
const M = (i: number): string => `host=pc-${uid(i)},${MACHINES_BASE}`;
const ip = (i: number): string => `210.${i}`;
const all = (f: (i: number) => string): string => Array.from({ length: N }, (_, k) => f(k + 1)).join('');
const replace = (dn: string, attr: string, ...values: string[]): string =>
  `dn: ${dn}\nchangetype: modify\nreplace: ${attr}\n${values.map((v) => `${attr}: ${v}`).join('\n')}\n\n`;
const remove = (dn: string, attr: string): string => `dn: ${dn}\nchangetype: modify\ndelete: ${attr}\n\n`;

function configFor(ldap = ''): Config {
  return parseConfig(
    sandboxConf({ ldapUrl: slapd.url, db: { host: '127.0.0.1', port: 1, user: 'x', password: 'x' }, dir, ldap }),
    'sandbox.conf',
  );
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rq-guard-'));
  slapd = await startSlapd();
  await slapd.add(all((i) => person(uid(i))) + all((i) => machine(`pc-${uid(i)}`, P(i), [ip(i)])));
});

after(async () => {
  await slapd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A fresh Sources that accepted the intact directory: the baseline is N allowed machines. */
async function baseline(config = configFor()): Promise<{ s: Sources; log: MemoryLogger }> {
  const log = new MemoryLogger();
  const s = new Sources(config, log, { persist: false });
  const r = await s.fetchDirectory(new Date());
  assert.equal(r.fresh, true);
  assert.equal(planFirewall(r.directory, config.firewall, Date.now()).allow4.size, N);
  return { s, log };
}

async function assertRefused(s: Sources, log: MemoryLogger, why: RegExp, opts: { force?: boolean; accept?: boolean } = {}): Promise<void> {
  const r = await s.fetchDirectory(new Date(), opts);
  assert.equal(r.fresh, false, `refused (${JSON.stringify(opts)})`);
  assert.match(r.error ?? '', why);
  assert.equal(planFirewall(r.directory, configFor().firewall, Date.now()).allow4.size, N, 'the directory in force stays');
  assert.match(s.health.ldap.describe(), /^refused since \S+: ldap: directory .*using snapshot of /);
  assert.match(s.health.ldap.describe(), why);
  assert.equal(log.of('error').filter((l) => l.startsWith('ldap refused')).length, 1, log.of('error').join('\n'));
}

test('the IP attribute removed from every machine: refused, even with --force or --accept; logged once; recovered', async () => {
  const { s, log } = await baseline();
  try {
    await slapd.modify(all((i) => remove(M(i), 'ipHostNumber')));
    for (let k = 0; k < 3; k++) await assertRefused(s, log, /not one IP address/);
    await assertRefused(s, log, /not one IP address/, { force: true });
    await assertRefused(s, log, /not one IP address/, { accept: true });
    await slapd.modify(all((i) => `dn: ${M(i)}\nchangetype: modify\nadd: ipHostNumber\nipHostNumber: ${ip(i)}\n\n`));
    const back = await s.fetchDirectory(new Date());
    assert.equal(back.fresh, true);
    assert.equal(s.health.ldap.describe(), 'ok');
    assert.ok(
      log.of('info').some((l) => /a directory was accepted again/.test(l)),
      log.of('info').join('\n'),
    );
  } finally {
    await s.close();
  }
});

test('an ACL change on the server hides ipHostNumber from the daemon: refused', async () => {
  const hidden = await startSlapd({ hiddenFromAnonymous: ['ipHostNumber'] });
  try {
    await hidden.add(all((i) => person(uid(i))) + all((i) => machine(`pc-${uid(i)}`, P(i), [ip(i)])));
    const { s, log } = await baseline();
    try {
      // The same directory, now read through the ACL (the daemon binds anonymously here).
      await s.reconfigure(
        parseConfig(
          sandboxConf({ ldapUrl: hidden.url, db: { host: '127.0.0.1', port: 1, user: 'x', password: 'x' }, dir }),
          'sandbox.conf',
        ),
      );
      await assertRefused(s, log, /not one IP address/);
    } finally {
      await s.close();
    }
  } finally {
    await hidden.stop();
  }
});

test('a reload with a mistyped ipAttr or endInternetAttr is refused; --accept takes the second', async () => {
  const { s, log } = await baseline();
  try {
    await s.reconfigure(configFor('ipAttr = ipHostNumbr'));
    await assertRefused(s, log, /not one IP address/);
    await s.reconfigure(configFor('endInternetAttr = endInternett'));
    await assertRefused(s, log, /allow no machine through the firewall/, { force: true });
    const taken = await s.fetchDirectory(new Date(), { accept: true });
    assert.equal(taken.fresh, true, 'the operator takes it deliberately');
    assert.equal(planFirewall(taken.directory, configFor().firewall, Date.now()).allow4.size, 0);
    assert.equal(s.health.ldap.describe(), 'ok');
    assert.ok(log.of('warn').some((l) => /accepted by the operator \(--accept\)/.test(l)));
  } finally {
    await s.close();
  }
});

test('every machine Inactive, or no owner with endInternet: refused (the entries are all still there)', async () => {
  const { s, log } = await baseline();
  try {
    await slapd.modify(all((i) => replace(M(i), 'zone', 'Brest', 'Inactive')));
    await assertRefused(s, log, /allow no machine through the firewall/);
    await slapd.modify(all((i) => replace(M(i), 'zone', 'Brest', 'User')));
    assert.equal((await s.fetchDirectory(new Date())).fresh, true);
    await slapd.modify(all((i) => remove(P(i), 'endInternet')));
    const r = await s.fetchDirectory(new Date());
    assert.equal(r.fresh, false);
    assert.match(r.error!, /allow no machine through the firewall/);
    await slapd.modify(all((i) => `dn: ${P(i)}\nchangetype: modify\nadd: endInternet\nendInternet: 20300815000000Z\n\n`));
    assert.equal((await s.fetchDirectory(new Date())).fresh, true);
  } finally {
    await s.close();
  }
});

test('seven successive drops of 19 %: only the first applies, the baseline does not ratchet down', async () => {
  const { s } = await baseline();
  try {
    let inactive = 0;
    const allowed: number[] = [];
    let target = N;
    for (let step = 0; step < 7; step++) {
      target = Math.floor(target * 0.81);
      const ldif: string[] = [];
      while (N - inactive > target) ldif.push(replace(M(N - inactive++), 'zone', 'Brest', 'Inactive'));
      await slapd.modify(ldif.join(''));
      const r = await s.fetchDirectory(new Date());
      allowed.push(planFirewall(r.directory, configFor().firewall, Date.now()).allow4.size);
    }
    assert.deepEqual(allowed, [48, 48, 48, 48, 48, 48, 48], 'the first drop (60 -> 48) only');
    assert.match(s.health.ldap.describe(), /machines allowed \(IPv4\) from 60 to \d+/);
  } finally {
    await s.close();
    await slapd.modify(all((i) => replace(M(i), 'zone', 'Brest', 'User')));
  }
});

test('a mass expiry on one date applies: time passing is not a drop', async () => {
  await slapd.modify(all((i) => replace(P(i), 'endInternet', '20270101000000Z')));
  try {
    const config = configFor();
    const s = new Sources(config, new MemoryLogger(), { persist: false });
    try {
      const before = new Date('2026-12-31T23:00:00Z');
      const a = await s.fetchDirectory(before);
      assert.equal(planFirewall(a.directory, config.firewall, before.getTime()).allow4.size, N);
      const afterT = new Date('2027-01-01T01:00:00Z');
      const b = await s.fetchDirectory(afterT);
      assert.equal(b.fresh, true, b.error ?? '');
      assert.equal(planFirewall(b.directory, config.firewall, afterT.getTime()).allow4.size, 0, 'everyone expired: applied');
      assert.equal(s.health.ldap.describe(), 'ok');
    } finally {
      await s.close();
    }
  } finally {
    await slapd.modify(all((i) => replace(P(i), 'endInternet', '20300815000000Z')));
  }
});

test('a uid or uidProprio carrying a newline cannot forge a log line', async () => {
  const b64 = (x: string): string => Buffer.from(x).toString('base64');
  const forged = '2026-11-30T00:00:00.000Z info reselqos started'; // no DN special character: uidProprio is a DN
  const evil = `uid=evil,${ORGS_BASE}`;
  const h = `host=forger,${MACHINES_BASE}`;
  await slapd.add(
    `dn: ${evil}\nobjectClass: reselOrganisation\nobjectClass: reselPerson\nuid:: ${b64(`evil\n${forged}`)}\nuid: evil\ndisplayName: x\n\n` +
      `dn: ${h}\nobjectClass: reselMachine\nhost: forger\nuidProprio:: ${b64(`uid=nobody\n${forged},${PEOPLE_BASE}`)}\nipHostNumber: 250.1\n\n`,
  );
  const logDir = mkdtempSync(join(tmpdir(), 'rq-guard-log-'));
  try {
    const log = createLogger({ level: 'debug', dir: logDir });
    const s = new Sources(configFor(), log, { persist: false });
    const r = await s.fetchDirectory(new Date());
    await s.close();
    await log.close();
    const reasons = r.directory.skipped.filter((x) => x.dn === evil || x.dn === h).map((x) => x.reason);
    assert.equal(reasons.length, 2, JSON.stringify(r.directory.skipped));
    for (const reason of reasons) assert.ok(!reason.includes('\n') && reason.includes(`\\n${forged}`), reason);
    const lines = readFileSync(join(logDir, 'reselqos.log'), 'utf8').trimEnd().split('\n');
    assert.ok(
      lines.every((l) => /^\d{4}-\d\d-\d\dT\S+ (debug|info|warn|error) /.test(l)),
      lines.join('\n'),
    );
    assert.equal(lines.filter((l) => l.includes(forged)).length, 2, 'each forged text inside its own skip line');
  } finally {
    rmSync(logDir, { recursive: true, force: true });
    await slapd.delete([evil, h]);
  }
});

test('a tampered snapshot on disk, LDAP down at start: what it holds is re-validated before any use', async () => {
  const state = mkdtempSync(join(tmpdir(), 'rq-guard-state-'));
  try {
    // A good snapshot written by a first process...
    const first = new Sources(
      parseConfig(sandboxConf({ ldapUrl: slapd.url, db: { host: '127.0.0.1', port: 1, user: 'x', password: 'x' }, dir: state }), 'q'),
      new MemoryLogger(),
    );
    await first.init();
    assert.equal((await first.fetchDirectory(new Date())).fresh, true);
    await first.persist({ forceUsage: true });
    await first.close();
    // ...edited on disk.
    const file = join(state, 'state', 'directory.json');
    const j = JSON.parse(readFileSync(file, 'utf8')) as { directory: { machines: { ips4: string[] }[] } };
    j.directory.machines[0]!.ips4 = ['8.8.8.8/0'];
    j.directory.machines[1]!.ips4 = ['1.2.3.4\n-A FORWARD -j ACCEPT'];
    j.directory.machines[2]!.ips4 = ['8.8.8.8'];
    writeFileSync(file, JSON.stringify(j));
    // A restart while LDAP is unreachable: the snapshot is all there is.
    const down = parseConfig(
      sandboxConf({
        ldapUrl: 'ldap://127.0.0.1:1',
        db: { host: '127.0.0.1', port: 1, user: 'x', password: 'x' },
        dir: state,
        ldap: 'connectTimeout = 500ms',
      }),
      'q',
    );
    const log = new MemoryLogger();
    const s = new Sources(down, log);
    await s.init();
    const r = await s.fetchDirectory(new Date());
    await s.close();
    assert.equal(r.fresh, false);
    const ips = r.directory.machines.flatMap((m) => [...m.ips4, ...m.ips6]);
    assert.equal(ips.length, N - 3, 'the three edited values dropped, the rest kept');
    assert.ok(
      ips.every((x) => x.startsWith('172.22.') && !/[\s/]/.test(x)),
      ips.join(' '),
    );
    assert.match(
      log.of('warn').join('\n'),
      /directory\.json: 3 value\(s\) failed validation.*"8\.8\.8\.8\/0": CIDR.*8\.8\.8\.8 is outside \[firewall\] userNetworks/,
    );
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
});
