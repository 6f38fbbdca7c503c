// Change searches (modifyTimestamp) and directory patches against a real slapd: each patched
// directory must equal what a full fetch of the same LDAP content builds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSlapd, type SlapdServer, PEOPLE_BASE, ORGS_BASE, MACHINES_BASE } from '../../sandbox/slapd.js';
import { sandboxConf } from '../../sandbox/conf.js';
import { parseConfig, type Config } from '../../src/config/config.js';
import { MemoryLogger } from '../../src/log.js';
import { Sources } from '../../src/state/sources.js';
import type { DirectoryResult } from '../../src/sources/source.js';
import { LdapSource, escapeFilterValue, toGeneralizedTime } from '../../src/ldap/ldap.js';
import { buildDirectory, holdersOf } from '../../src/ldap/directory.js';
import type { Directory } from '../../src/sources/types.js';
import { planFirewall } from '../../src/plan/firewall.js';
import { person, machine } from '../helpers/ldif.js';

let slapd: SlapdServer;
let dir: string;

const P = (uid: string): string => `uid=${uid},${PEOPLE_BASE}`;
const M = (host: string): string => `host=${host},${MACHINES_BASE}`;

const FIXTURE =
  person('jdupont') +
  person('amartin') +
  person('zlast').replace('endInternet: 20300815000000Z', 'endInternet: 20300815000000+01') +
  `dn: uid=clubrezo,${ORGS_BASE}\nobjectClass: reselOrganisation\nobjectClass: reselPerson\nuid: clubrezo\ndisplayName: Club Rezo\nendInternet: 20300815000000Z\n\n` +
  machine('pc-jdupont', P('jdupont'), ['200.3']) +
  machine('tel-jdupont', P('jdupont'), ['200.4']) +
  machine('pc-amartin', P('amartin'), ['201.1']) +
  machine('srv-club', `uid=clubrezo,${ORGS_BASE}`, ['199.10']) +
  machine('ghost', P('nobody'), ['202.2']) +
  machine('bad-zero', P('zlast'), ['200.03', '203.9']) +
  machine('pc-zlast', P('zlast'), ['203.4']) +
  machine('dup-zlast', P('zlast'), ['200.3']); // also claimed by jdupont: jdupont wins

function configFor(ldap = ''): Config {
  return parseConfig(
    sandboxConf({ ldapUrl: slapd.url, db: { host: '127.0.0.1', port: 1, user: 'x', password: 'x' }, dir, ldap }),
    'sandbox.conf',
  );
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rq-incr-'));
  slapd = await startSlapd({ sizeLimit: 50 });
  await slapd.add(FIXTURE);
});

after(async () => {
  await slapd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** What a full fetch builds now (with the holders of the directory in force), without fetchedAt. */
async function fullNow(config: Config, holders?: ReadonlyMap<string, string>): Promise<Omit<Directory, 'fetchedAt'>> {
  const { owners, machines, skipped } = (await new LdapSource(config).fetchFull(new Date(), holders)).directory;
  return { owners, machines, skipped };
}
const content = (d: Directory): Omit<Directory, 'fetchedAt'> => ({ owners: d.owners, machines: d.machines, skipped: d.skipped });

const replace = (dn: string, attr: string, ...values: string[]): string =>
  `dn: ${dn}\nchangetype: modify\nreplace: ${attr}\n${values.map((v) => `${attr}: ${v}`).join('\n')}\n\n`;

test('filter pieces: generalizedTime and RFC 4515 escaping', () => {
  assert.equal(toGeneralizedTime(Date.UTC(2026, 10, 2, 3, 4, 5, 999)), '20261102030405Z');
  assert.equal(escapeFilterValue('uid=a(b)*\\c,ou=x'), 'uid=a\\28b\\29\\2a\\5cc,ou=x');
  assert.equal(escapeFilterValue('a\0b'), 'a\\00b');
});

test('the page-by-page full fetch builds what buildDirectory builds from the same entries', async () => {
  const config = configFor();
  const src = new LdapSource(config);
  const paged = await src.fetch(new Date());
  const all = await src.fetchChanges(0); // modifyTimestamp >= 1970: every entry, as RawEntry maps
  assert.ok(all.hosts.length >= 8 && all.people.length >= 3);
  const built = buildDirectory(all, { ldap: config.ldap, firewall: config.firewall, fetchedAt: paged.fetchedAt });
  assert.deepEqual(paged, built);
  assert.ok(paged.skipped.length >= 3, 'skips are part of the comparison');
});

test('change searches patch the directory exactly as a full fetch would build it', async () => {
  const config = configFor('refresh = 1h');
  const log = new MemoryLogger();
  const s = new Sources(config, log, { persist: false });
  const stats = s.ldapStats;
  try {
    const first = await s.fetchDirectory(new Date());
    assert.equal(first.change, 'full');
    assert.equal(stats.full, 1);
    assert.deepEqual(content(first.directory), await fullNow(config));

    // Nothing changed: the very same object, fresh, and no full fetch.
    let prev: DirectoryResult = first;
    for (let i = 0; i < 2; i++) {
      const r = await s.fetchDirectory(new Date());
      assert.equal(r.fresh, true);
      assert.equal(r.change, 'none');
      assert.equal(r.directory, prev.directory, 'identity: same Directory object');
      prev = r;
    }
    assert.equal(stats.full, 1);
    assert.equal(stats.change, 2);

    const step = async (
      what: string,
      ldif: string | (() => Promise<void>),
      expect: { owners?: string[]; machines?: string[] },
    ): Promise<void> => {
      if (typeof ldif === 'string') await slapd.modify(ldif);
      else await ldif();
      const fullBefore = stats.full;
      const r = await s.fetchDirectory(new Date());
      assert.equal(stats.full, fullBefore, `${what}: no full fetch`);
      assert.equal(r.fresh, true, what);
      assert.equal(r.change, 'patch', what);
      assert.notEqual(r.directory, prev.directory, `${what}: a new object`);
      assert.deepEqual([...(r.changedOwners ?? [])].sort(), (expect.owners ?? []).sort(), `${what}: changedOwners`);
      assert.deepEqual([...(r.changedMachines ?? [])].sort(), (expect.machines ?? []).sort(), `${what}: changedMachines`);
      assert.deepEqual(content(r.directory), await fullNow(config), `${what}: patched = full build`);
      // and the cycle after it: nothing new, same object
      const again = await s.fetchDirectory(new Date());
      assert.equal(again.change, 'none', `${what}: then nothing`);
      assert.equal(again.directory, r.directory, `${what}: then the same object`);
      prev = again;
    };

    await step('ban', `dn: ${P('amartin')}\nchangetype: modify\nadd: ban\nban: internet\n\n`, { owners: ['amartin'] });
    assert.deepEqual(prev.directory.owners.find((o) => o.uid === 'amartin')!.ban, ['internet']);
    await step('coupure', `dn: ${P('jdupont')}\nchangetype: modify\nadd: coupure\ncoupure: TRUE\n\n`, { owners: ['jdupont'] });
    await step('endInternet', replace(P('amartin'), 'endInternet', '20240101000000Z'), { owners: ['amartin'] });
    await step('bad endInternet fixed (a skip goes away)', replace(P('zlast'), 'endInternet', '20310101000000Z'), { owners: ['zlast'] });
    await step('new person and new machine', () => slapd.add(person('newbie') + machine('pc-newbie', P('newbie'), ['210.1'])), {
      owners: ['newbie'],
      machines: [M('pc-newbie')],
    });
    await step('machine IP change', replace(M('pc-amartin'), 'ipHostNumber', '201.2', '201.3'), { machines: [M('pc-amartin')] });
    await step('machine to the inactive zone', replace(M('tel-jdupont'), 'zone', 'Brest', 'Inactive'), { machines: [M('tel-jdupont')] });
    await step('machine moved to another owner', replace(M('pc-amartin'), 'uidProprio', P('newbie')), { machines: [M('pc-amartin')] });
    assert.equal(prev.directory.machines.find((m) => m.host === 'pc-amartin')!.owner, 'newbie');
    await step('machine moved to an owner that does not exist', replace(M('pc-zlast'), 'uidProprio', P('nobody2')), {
      machines: [M('pc-zlast')],
    });
    assert.ok(!prev.directory.machines.some((m) => m.host === 'pc-zlast'));
    // A machine registered before its owner: skipped, then found by the search of the new owner's machines.
    // The uid needs filter escaping in that search.
    const odd = 'par(en)*';
    await step('machine of an owner to come', () => slapd.add(machine('pc-odd', P(odd), ['211.1'])), {});
    assert.ok(prev.directory.skipped.some((x) => x.dn === M('pc-odd') && /does not exist/.test(x.reason)));
    const ownerMachines = stats.ownerMachines;
    await step('its owner arrives', () => slapd.add(person(odd)), { owners: [odd], machines: [M('pc-odd')] });
    assert.equal(stats.ownerMachines, ownerMachines + 1);
    assert.equal(prev.directory.machines.find((m) => m.host === 'pc-odd')!.owner, odd);
    await step('organisation changed', replace(`uid=clubrezo,${ORGS_BASE}`, 'cotiz', '2026', '2027'), { owners: ['clubrezo'] });
    assert.equal(stats.full, 1, 'still the first full fetch only');
    assert.equal(log.of('info').filter((l) => /left for the next full fetch/.test(l)).length, 0, log.of('info').join('\n'));
  } finally {
    await s.close();
  }
});

test('a change the patch cannot settle alone: left as it was, named, and a full fetch runs at once', async () => {
  const config = configFor('refresh = 1h');
  const log = new MemoryLogger();
  const s = new Sources(config, log, { persist: false });
  try {
    const first = await s.fetchDirectory(new Date());
    assert.equal(s.ldapStats.full, 1);
    // pc-jdupont's IP is now also claimed by amartin's machine: amartin sorts first, but
    // pc-jdupont held it in the directory in force, so it keeps it (issue 11, finding 5).
    await slapd.modify(replace(M('pc-amartin'), 'ipHostNumber', '200.3'));
    await slapd.modify(replace(M('pc-amartin'), 'uidProprio', P('amartin')));
    const r = await s.fetchDirectory(new Date());
    assert.equal(r.fresh, true);
    assert.equal(r.directory, first.directory, 'left as it was');
    assert.ok(
      log.of('info').some((l) => l.includes(M('pc-amartin')) && /also claimed by another machine/.test(l)),
      log.of('info').join('\n'),
    );
    assert.equal(s.ldapStats.full, 2, 'a full fetch started');
    await s.whenBackgroundIdle();
    const swapped = await s.fetchDirectory(new Date());
    assert.equal(swapped.change, 'full');
    assert.deepEqual(content(swapped.directory), await fullNow(config, holdersOf(first.directory)));
    assert.deepEqual(swapped.directory.machines.find((m) => m.host === 'pc-jdupont')!.ips4, ['172.22.200.3'], 'the holder keeps it');
    assert.deepEqual(swapped.directory.machines.find((m) => m.host === 'pc-amartin')!.ips4, [], 'the newcomer does not take it');
    assert.ok(
      swapped.directory.skipped.some(
        (x) => x.dn === M('pc-amartin') && x.reason.includes(`IP 172.22.200.3 also claimed by ${M('pc-jdupont')}`),
      ),
    );
    // Settled: the same entries seen again by the change search are no reason for another full fetch.
    const calm = await s.fetchDirectory(new Date());
    assert.equal(calm.change, 'none');
    assert.equal(s.ldapStats.full, 2);
  } finally {
    await s.close();
  }
});

test('deletions wait for the periodic full fetch, which runs in the background and is swapped in', async () => {
  await slapd.add(machine('doomed', P('jdupont'), ['220.1']));
  const config = configFor('refresh = 1h');
  const s = new Sources(config, new MemoryLogger(), { persist: false });
  try {
    const t0 = new Date();
    const first = await s.fetchDirectory(t0);
    assert.ok(first.directory.machines.some((m) => m.host === 'doomed'));
    await slapd.delete(M('doomed'));
    const r = await s.fetchDirectory(new Date(t0.getTime() + 60_000));
    assert.equal(r.change, 'none', 'a deletion is not seen by a change search');
    assert.equal(s.ldapStats.full, 1);
    // An hour later the full fetch is due: started, not awaited; the cycle goes on with a change search.
    const later = new Date(t0.getTime() + 3_600_000);
    const changesBefore = s.ldapStats.change;
    const due = await s.fetchDirectory(later);
    assert.equal(s.ldapStats.full, 2, 'the full fetch started');
    assert.equal(s.ldapStats.change, changesBefore + 1, 'and the cycle ran a change search');
    assert.equal(due.directory, first.directory);
    await s.whenBackgroundIdle();
    const swapped = await s.fetchDirectory(new Date(later.getTime() + 10_000));
    assert.equal(swapped.change, 'full');
    assert.ok(!swapped.directory.machines.some((m) => m.host === 'doomed'));
    assert.deepEqual(content(swapped.directory), await fullNow(config));
    // reselqos update: a full fetch, awaited
    const forced = await s.fetchDirectory(new Date(later.getTime() + 20_000), { full: true });
    assert.equal(forced.change, 'full');
    assert.equal(s.ldapStats.full, 3);
  } finally {
    await s.close();
  }
});

test('once the newest entry is old enough, change searches ask from the second after it: nothing comes back', async () => {
  const config = configFor('refresh = 1h');
  const s = new Sources(config, new MemoryLogger(), { persist: false, changeMarginMs: 1000 });
  try {
    const first = await s.fetchDirectory(new Date());
    await new Promise((r) => setTimeout(r, 1200));
    // This search, started more than the margin after the newest entry was seen, still asks from
    // the margin before it (a write of that second may have been in flight); the next one need not.
    const low = s.ldapStats.changeEntries;
    await s.fetchDirectory(new Date());
    assert.ok(s.ldapStats.changeEntries > low, 'the last search from the margin returns the newest entries again');
    const before = s.ldapStats.changeEntries;
    const calm = await s.fetchDirectory(new Date());
    assert.equal(calm.directory, first.directory);
    assert.equal(s.ldapStats.changeEntries, before, 'no entry returned once settled');
    await slapd.modify(`dn: ${P('jdupont')}\nchangetype: modify\nadd: ban\nban: mail\n\n`);
    const r = await s.fetchDirectory(new Date());
    assert.equal(r.change, 'patch', 'a later modification is still seen');
    assert.deepEqual(r.changedOwners, ['jdupont']);
    assert.deepEqual(content(r.directory), await fullNow(config));
    assert.equal(s.ldapStats.full, 1);
  } finally {
    await s.close();
  }
});

/** Waits until /proc says every thread of the process is stopped (SIGSTOP takes effect asynchronously). */
async function stopped(pid: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const tasks = readdirSync(`/proc/${pid}/task`);
    if (tasks.every((t) => /^\d+ \(.*\) [Tt] /.test(readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8')))) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`pid ${pid} did not stop`);
}

test('a change search that hangs does not hold a timer cycle beyond waitMs', async () => {
  const config = configFor('refresh = 1h');
  const s = new Sources(config, new MemoryLogger(), { persist: false });
  const pid = slapd.pid()!;
  try {
    const first = await s.fetchDirectory(new Date(), { waitMs: 100 });
    assert.equal(first.fresh, true, 'no directory yet: awaited');
    process.kill(pid, 'SIGSTOP');
    await stopped(pid);
    const r = await s.fetchDirectory(new Date(), { waitMs: 100 });
    assert.equal(r.refreshing, true, JSON.stringify({ ...r, directory: undefined }));
    assert.equal(r.fresh, false);
    assert.equal(r.directory, first.directory);
    process.kill(pid, 'SIGCONT');
    const next = await s.fetchDirectory(new Date());
    assert.equal(next.fresh, true);
    assert.equal(next.directory, first.directory);
    assert.equal(s.ldapStats.full, 1);
  } finally {
    process.kill(pid, 'SIGCONT');
    await s.close();
  }
});

test('a failed change search keeps the last good directory, logged once; refresh = 0 is a full fetch every cycle', async () => {
  const state = mkdtempSync(join(tmpdir(), 'rq-incr-state-'));
  const config = parseConfig(
    sandboxConf({ ldapUrl: slapd.url, db: { host: '127.0.0.1', port: 1, user: 'x', password: 'x' }, dir: state, ldap: 'refresh = 1h' }),
    'x',
  );
  const log = new MemoryLogger();
  const s = new Sources(config, log);
  try {
    const first = await s.fetchDirectory(new Date());
    await s.persist({ forceUsage: true });
    const file = join(state, 'state', 'directory.json');
    const written = statSync(file).mtimeMs;
    await slapd.kill();
    for (let i = 0; i < 3; i++) {
      const r = await s.fetchDirectory(new Date());
      assert.equal(r.fresh, false);
      assert.equal(r.directory, first.directory);
      assert.equal(r.change, 'none');
      assert.ok(r.directory.machines.length > 0, 'never "no users"');
    }
    assert.equal(log.of('error').filter((l) => l.startsWith('ldap down')).length, 1, log.of('error').join('\n'));
    await slapd.restart();
    const back = await s.fetchDirectory(new Date());
    assert.equal(back.fresh, true);
    assert.equal(back.directory, first.directory);
    assert.equal(s.ldapStats.full, 1);
    // The same directory object: nothing written again.
    await s.persist({ forceUsage: true });
    assert.equal(statSync(file).mtimeMs, written);
  } finally {
    if (!slapd.running()) await slapd.restart();
    await s.close();
    rmSync(state, { recursive: true, force: true });
  }
  const every = new Sources(configFor('refresh = 0'), new MemoryLogger(), { persist: false });
  try {
    const a = await every.fetchDirectory(new Date());
    const b = await every.fetchDirectory(new Date());
    assert.equal(every.ldapStats.full, 2);
    assert.equal(every.ldapStats.change, 0);
    assert.equal(b.change, 'full');
    assert.deepEqual(content(a.directory), content(b.directory));
  } finally {
    await every.close();
  }
});

test('a uid shared by a banned club and a paid person: the patch defers to a full fetch, both agree, every machine of the uid is refused', async () => {
  const config = configFor('refresh = 1h');
  const log = new MemoryLogger();
  const club = `uid=sharer,${ORGS_BASE}`;
  await slapd.add(person('sharer') + machine('pc-sharer', P('sharer'), ['199.21']));
  const s = new Sources(config, log, { persist: false });
  try {
    const first = await s.fetchDirectory(new Date());
    const allowed = (d: Directory): string[] => [...planFirewall(d, config.firewall, Date.now()).allow4].sort();
    assert.ok(allowed(first.directory).includes('172.22.199.21'));
    await slapd.add(
      `dn: ${club}\nobjectClass: reselOrganisation\nobjectClass: reselPerson\nuid: sharer\ndisplayName: Club\nendInternet: 20300815000000Z\nban: internet\n\n` +
        machine('srv-sharer', club, ['199.22']),
    );
    const r = await s.fetchDirectory(new Date());
    assert.equal(r.directory, first.directory, 'a shared uid is not settled by a patch, nor the machines of the new owner');
    assert.ok(!allowed(r.directory).includes('172.22.199.22'), "the club's machine never gets the person's entitlement");
    assert.ok(
      log.of('info').some((l) => l.includes(club) && /also used by/.test(l)),
      log.of('info').join('\n'),
    );
    await s.whenBackgroundIdle();
    const swapped = await s.fetchDirectory(new Date());
    assert.equal(swapped.change, 'full');
    assert.deepEqual(content(swapped.directory), await fullNow(config, holdersOf(first.directory)), 'patch path = full build');
    for (const ip of ['172.22.199.21', '172.22.199.22'])
      assert.ok(!allowed(swapped.directory).includes(ip), `${ip}: the club's ban applies to every machine of uid sharer`);
    const warn = swapped.directory.skipped.find((x) => /is shared by/.test(x.reason))!;
    assert.ok(warn.reason.includes(club) && warn.reason.includes(P('sharer')), warn.reason);
  } finally {
    await s.close();
    for (const dn of [M('srv-sharer'), club, M('pc-sharer'), P('sharer')]) await slapd.delete(dn).catch(() => undefined);
  }
});
