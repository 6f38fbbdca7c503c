// test/sandbox/slapd.test.ts — the private slapd: schema, size limit vs paged search, writes,
// bulk load, kill/restart, and that stop() leaves nothing behind.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { promisify } from 'node:util';

import { Client, SizeLimitExceededError } from 'ldapts';

import { generateCampus, loadCampus } from '../../sandbox/campus.js';
import { MACHINES_BASE, MAISEL_SUFFIX, PEOPLE_BASE, RESEL_SUFFIX, startSlapd, type SlapdServer } from '../../sandbox/slapd.js';

const pexec = promisify(execFile);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function withClient<T>(url: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ url, timeout: 10_000, connectTimeout: 5_000 });
  try {
    return await fn(c);
  } finally {
    await c.unbind().catch(() => undefined);
  }
}

async function stopAll(servers: SlapdServer[]): Promise<void> {
  for (const s of servers) await s.stop();
}

test('slapd: small campus, size limit vs paged search, writes, hidden attributes', async (t) => {
  const slapd = await startSlapd({ sizeLimit: 100, hiddenFromAnonymous: ['campus'] });
  t.after(() => slapd.stop());
  assert.match(slapd.url, /^ldap:\/\/127\.0\.0\.1:\d+$/);
  assert.ok(existsSync(slapd.dir));

  const campus = generateCampus({ users: 120, seed: 42 });
  assert.ok(campus.machines.length > 100);
  const loaded = await loadCampus(slapd, campus, { method: 'ldapadd' });
  assert.equal(loaded.method, 'ldapadd');

  // root DSE: both naming contexts
  const { stdout } = await pexec('ldapsearch', [...slapd.ldapsearchArgs(), '-LLL', '-b', '', '-s', 'base', 'namingContexts']);
  assert.match(stdout, new RegExp(`namingContexts: ${MAISEL_SUFFIX}`));
  assert.match(stdout, new RegExp(`namingContexts: ${RESEL_SUFFIX}`));

  await withClient(slapd.url, async (c) => {
    // non-paged: the server stops at its size limit
    await assert.rejects(
      c.search(MACHINES_BASE, { scope: 'one', filter: '(objectClass=reselMachine)', attributes: ['host'] }),
      (e: unknown) => e instanceof SizeLimitExceededError,
    );
    // paged: everything, page after page
    const res = await c.search(MACHINES_BASE, {
      scope: 'one',
      filter: '(objectClass=reselMachine)',
      attributes: ['host', 'ipHostNumber', 'uidProprio', 'zone'],
      paged: { pageSize: 50 },
    });
    assert.equal(res.searchEntries.length, campus.machines.length);
    // a page size above the size limit works too
    const big = await c.search(MACHINES_BASE, { scope: 'one', filter: '(objectClass=reselMachine)', paged: { pageSize: 1000 } });
    assert.equal(big.searchEntries.length, campus.machines.length);

    // entries look like the real ones
    const m = campus.machines[0];
    assert.ok(m);
    const one = await c.search(m.dn, { scope: 'base' });
    const e = one.searchEntries[0];
    assert.ok(e);
    assert.equal(e['ipHostNumber'], m.ipHostNumber);
    assert.equal(e['uidProprio'], m.ownerDn);
    assert.deepEqual(e['zone'], m.zones);

    const p = campus.people.find((x) => /[^\x20-\x7e]/.test(x.lastName)) ?? campus.people[0];
    assert.ok(p);
    const pe = (await c.search(p.dn, { scope: 'base' })).searchEntries[0];
    assert.ok(pe);
    assert.equal(pe['uid'], p.uid);
    assert.equal(pe['lastName'], p.lastName);
    assert.equal(pe['endInternet'], p.endInternet);
    assert.equal(pe['campus'], undefined, 'campus is hidden from anonymous reads');

    // generalizedTime ordering works in filters
    const paidFilter = `(&(objectClass=reselPerson)(endInternet>=${campus.people[0]?.endInternet ?? '0'}))`;
    const paid = await c.search(PEOPLE_BASE, { filter: paidFilter, paged: true, attributes: ['uid'] });
    assert.ok(paid.searchEntries.length >= 1);

    // anonymous cannot write
    await assert.rejects(c.add(`uid=nobody,${PEOPLE_BASE}`, { objectClass: 'genericPerson', uid: 'nobody' }));
  });

  // root writes: modify, then delete
  const p = campus.people[1];
  assert.ok(p);
  await slapd.modify(`dn: ${p.dn}\nchangetype: modify\nreplace: coupure\ncoupure: TRUE\n-\nadd: ban\nban: wifi\n`);
  await withClient(slapd.url, async (c) => {
    const e = (await c.search(p.dn, { scope: 'base', attributes: ['coupure', 'ban'] })).searchEntries[0];
    assert.equal(e?.['coupure'], 'TRUE');
    assert.ok([e?.['ban']].flat().includes('wifi'));
  });
  const dead = campus.machinesOf(p.uid).map((m) => m.dn);
  await slapd.delete(dead);
  await withClient(slapd.url, async (c) => {
    const r = await c.search(MACHINES_BASE, { filter: `(uidProprio=${p.dn})`, paged: true });
    assert.equal(r.searchEntries.length, 0);
  });
  // errors carry ldapadd's message
  await assert.rejects(slapd.add(`dn: ${p.dn}\nobjectClass: genericPerson\nuid: ${p.uid}\n`), /ldapadd failed[\s\S]*Already exists/i);
});

test('slapd: ldapsearch CLI sees "Size limit exceeded" without paging, all entries with -E pr', async (t) => {
  const slapd = await startSlapd({ sizeLimit: 20 });
  t.after(() => slapd.stop());
  const campus = generateCampus({ users: 30, seed: 3, orgs: 2 });
  await slapd.add(campus.ldif());
  const base = [...slapd.ldapsearchArgs(), '-LLL', '-b', MACHINES_BASE, '-s', 'one', '(objectClass=reselMachine)', 'host'];
  await assert.rejects(
    pexec('ldapsearch', base),
    (e: { code?: number; stderr?: string }) => e.code === 4 && /Size limit exceeded/.test(e.stderr ?? ''),
  );
  const { stdout } = await pexec('ldapsearch', [...base, '-E', 'pr=7/noprompt'], { maxBuffer: 64 * 1024 * 1024 });
  assert.equal(stdout.match(/^host: /gm)?.length, campus.machines.length);
});

test('slapd: slapadd bulk load, kill and restart on the same port, stop leaves nothing', async (t) => {
  const servers: SlapdServer[] = [];
  t.after(() => stopAll(servers));
  const slapd = await startSlapd();
  servers.push(slapd);
  const campus = generateCampus({ users: 2000, seed: 7 });
  const res = await loadCampus(slapd, campus);
  assert.equal(res.method, 'slapadd');
  assert.equal(res.entries, campus.entryCount);
  assert.ok(slapd.running());
  const port = slapd.port;

  const count = async (): Promise<number> =>
    withClient(slapd.url, async (c) => {
      let n = 0;
      for await (const page of c.searchPaginated(MACHINES_BASE, {
        scope: 'one',
        filter: '(objectClass=reselMachine)',
        attributes: ['host'],
        paged: { pageSize: 500 },
      })) {
        n += page.searchEntries.length;
      }
      return n;
    });
  assert.equal(await count(), campus.machines.length);

  const pid = slapd.pid();
  assert.ok(pid);
  await slapd.kill();
  assert.equal(slapd.running(), false);
  assert.equal(alive(pid), false);
  await assert.rejects(withClient(slapd.url, (c) => c.search('', { scope: 'base' })));
  await slapd.restart();
  assert.equal(slapd.port, port);
  assert.equal(await count(), campus.machines.length);

  // a graceful restart while running works too
  await slapd.restart();
  assert.equal(await count(), campus.machines.length);

  const pid2 = slapd.pid();
  assert.ok(pid2);
  const dir = slapd.dir;
  await slapd.stop();
  assert.equal(alive(pid2), false);
  assert.equal(existsSync(dir), false);
  await slapd.stop(); // idempotent
  await assert.rejects(slapd.restart(), /after stop/);
});

test('slapd: two servers side by side, custom suffix', async (t) => {
  const a = await startSlapd({ suffixes: ['dc=example,dc=org'], ous: ['ou=hosts,dc=example,dc=org'], sizeLimit: 0 });
  t.after(() => a.stop());
  const b = await startSlapd();
  t.after(() => b.stop());
  assert.notEqual(a.port, b.port);
  assert.equal(a.rootDn, 'cn=admin,dc=example,dc=org');
  const { stdout } = await pexec('ldapsearch', [...a.ldapsearchArgs(), '-LLL', '-b', 'dc=example,dc=org', 'dn']);
  assert.match(stdout, /dn: ou=hosts,dc=example,dc=org/);
});

test("slapd: a requested port that is taken fails fast with slapd's message, nothing left", async () => {
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  try {
    const addr = blocker.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    const t0 = Date.now();
    const err = await startSlapd({ port }).then(
      () => assert.fail('should not start'),
      (e: unknown) => e as Error,
    );
    assert.ok(Date.now() - t0 < 5000);
    assert.match(err.message, /slapd exited during startup[\s\S]*Address already in use/);
    const dir = /\((\/[^)]*rq-slapd-[^)]+)\)/.exec(err.message)?.[1];
    assert.ok(dir);
    assert.equal(existsSync(dir), false);
  } finally {
    blocker.close();
  }
});

test('slapd + mariadb: servers a test forgot to stop die with the process, temp dirs removed', async () => {
  const slapdUrl = new URL('../../sandbox/slapd.js', import.meta.url).href;
  const mariadbUrl = new URL('../../sandbox/mariadb.js', import.meta.url).href;
  const script = [
    `const { startSlapd } = await import(${JSON.stringify(slapdUrl)});`,
    `const { startMariadb } = await import(${JSON.stringify(mariadbUrl)});`,
    'const s = await startSlapd(); const m = await startMariadb();',
    'console.log(JSON.stringify({ pids: [s.pid(), m.pid()], dirs: [s.dir, m.dir] }));',
    // no stop(): node must still exit, and take the servers with it
  ].join('\n');
  const { stdout } = await pexec(process.execPath, ['--input-type=module', '-e', script], { timeout: 60_000 });
  const info = JSON.parse(stdout) as { pids: number[]; dirs: string[] };
  assert.equal(info.pids.length, 2);
  for (let i = 0; i < 50 && info.pids.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
  for (const pid of info.pids) assert.equal(alive(pid), false, `pid ${pid} still alive`);
  for (const dir of info.dirs) assert.equal(existsSync(dir), false, `${dir} still there`);
});
