// Two gateways of one site (an HA pair, issue 23) against a real MariaDB (sandbox/mariadb.ts):
// only the master writes the [publish] tables and the [sharing] row; the backup reads the rows
// (and follows the master's allocation) but writes nothing; after a switch the new master
// writes at its next cycle (the published rows whole), and nobody sees a name collision.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DateTime } from 'luxon';
import { startMariadb, type MariadbServer } from '../../sandbox/mariadb.js';
import { sandboxConf } from '../../sandbox/conf.js';
import { parseConfig, type Config } from '../../src/config/config.js';
import { MemoryLogger } from '../../src/log.js';
import { Publisher } from '../../src/publish/publish.js';
import { SharingSite } from '../../src/sharing/site.js';
import { SiteStore } from '../../src/sharing/store.js';
import { HaRole } from '../../src/ha/role.js';
import type { Exec } from '../../src/exec/exec.js';
import type { Desired } from '../../src/plan/desired.js';
import type { Directory } from '../../src/sources/types.js';

const SITE = 'gw-pair';
const M = 1_000_000;
let db: MariadbServer;
let dir: string;

function config(): Config {
  return parseConfig(
    sandboxConf({
      ldapUrl: 'ldap://127.0.0.1:9',
      db: { host: db.host, port: db.port, user: db.user, password: db.password },
      dir,
      publish: 'enabled = 1\ntimeout = 5s',
      site: `name = ${SITE}`,
    }).replace('[ratesrules]', 'globalDown = 60Mbit\nglobalUp = 60Mbit\n[sharing]\nenabled = 1\n[ratesrules]'),
    'ha.conf',
  );
}

type U = { uid: string; down: number };
const plan = (users: U[]): Desired =>
  ({
    users: users.map((u) => ({ uid: u.uid, ips: [], down: { bytes: u.down, group: 0 }, up: { bytes: 0, group: 0 } })),
    classes: [{ direction: 'down', group: 0, users: users.length, rateBps: 1000, ceilBps: 1e8 }],
    limits: [1000],
    totals: { down: 1e8, up: 1e8 },
  }) as unknown as Desired;
const directory = (users: U[]): Directory =>
  ({
    owners: users.map((u) => ({ uid: u.uid, dn: `uid=${u.uid},ou=people,dc=example,dc=org`, kind: 'person' })),
    machines: [],
    skipped: [],
    fetchedAt: '',
  }) as unknown as Directory;

/** One gateway: its role, the publisher switched by it (as src/daemon/observe.ts does), its sharing site. */
function gateway(role: 'master' | 'backup', log: MemoryLogger): { role: HaRole; pub: Publisher; site: SharingSite } {
  const c = config();
  const r = new HaRole(role, new Date().toISOString());
  const pub = new Publisher(c, log);
  pub.setWriting(r.writes);
  r.onChange((ch) => pub.setWriting(ch.to === 'master'));
  // no tc here: the demand stays unknown (0), as on a gateway that carries no traffic yet
  const noTc: Exec = () => Promise.reject(new Error('no tc in this test'));
  return { role: r, pub, site: new SharingSite(c, noTc, log, Date.now(), () => r.writes) };
}

async function publishBoth(a: Publisher, b: Publisher, ua: U[], ub: U[]): Promise<void> {
  a.publish(plan(ua), directory(ua));
  b.publish(plan(ub), directory(ub));
  await Promise.all([a.whenIdle(), b.whenIdle()]);
}

const people = async (): Promise<string[]> =>
  (
    await db.select<{ uid: string; amount: number }>(
      `SELECT uid, amount FROM qos.people_data WHERE site = '${SITE}' AND way = 'down' ORDER BY uid`,
    )
  ).map((r) => `${r.uid}=${Number(r.amount)}`);
const siteRow = async (): Promise<{ writer: string; updated: string; applied: number } | null> => {
  const rows = await db.select<{ writer: string; u: string; applied_down: number }>(
    `SELECT writer, CAST(updated AS CHAR) AS u, applied_down FROM qos.sites WHERE site = '${SITE}'`,
  );
  return rows[0] ? { writer: rows[0].writer, updated: rows[0].u, applied: Number(rows[0].applied_down) } : null;
};
const storeOf = (s: SharingSite): SiteStore => (s as unknown as { store: SiteStore }).store;
/** whether this publisher's last write rewrote every row of the site */
const fullWrite = (p: Publisher): boolean | undefined => p.lastWrite?.full;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rq-ha-writers-'));
  db = await startMariadb({ timezone: '+00:00' });
});

after(async () => {
  await db?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('published tables: only the master writes; a new master rewrites every row of the site at its next cycle', async () => {
  const log = new MemoryLogger();
  const a = gateway('master', log);
  const b = gateway('backup', log);
  try {
    // A and B see the same users; B's volumes are told apart by +1 so that the writer shows in the table
    await publishBoth(
      a.pub,
      b.pub,
      [
        { uid: 'alice', down: 100 },
        { uid: 'bob', down: 200 },
      ],
      [
        { uid: 'alice', down: 101 },
        { uid: 'bob', down: 201 },
      ],
    );
    assert.deepEqual(await people(), ['alice=100', 'bob=200']);
    assert.equal(b.pub.lastWrite, null, 'the backup wrote');
    // failover: A goes to fault, B becomes master; B writes at its next cycle, whole (alice's row changed by nobody else)
    a.role.set('fault', new Date().toISOString());
    b.role.set('master', new Date().toISOString());
    await publishBoth(
      a.pub,
      b.pub,
      [
        { uid: 'alice', down: 110 },
        { uid: 'bob', down: 210 },
      ],
      [
        { uid: 'alice', down: 101 },
        { uid: 'bob', down: 211 },
      ],
    );
    assert.deepEqual(await people(), ['alice=101', 'bob=211']);
    assert.equal(fullWrite(b.pub), true);
    // a user gone while B writes; then failback to A, whose memory of the table is old: A's first write is full again
    await publishBoth(a.pub, b.pub, [{ uid: 'alice', down: 120 }], [{ uid: 'alice', down: 121 }]);
    assert.deepEqual(await people(), ['alice=121']);
    b.role.set('backup', new Date().toISOString());
    a.role.set('master', new Date().toISOString());
    await publishBoth(
      a.pub,
      b.pub,
      [
        { uid: 'alice', down: 130 },
        { uid: 'carol', down: 5 },
      ],
      [
        { uid: 'alice', down: 131 },
        { uid: 'carol', down: 6 },
      ],
    );
    assert.deepEqual(await people(), ['alice=130', 'carol=5']);
    assert.equal(fullWrite(a.pub), true);
    assert.deepEqual(
      log.lines.filter((l) => l.level === 'error'),
      [],
    );
  } finally {
    await a.pub.close();
    await b.pub.close();
  }
});

test('sites row: only the master writes it; the backup reads, follows its allocation, and no collision is seen across switches', async () => {
  const log = new MemoryLogger();
  const a = gateway('master', log);
  const b = gateway('backup', log);
  const at = (): DateTime => DateTime.now();
  try {
    // a peer site, so that the allocation is not simply the cap
    const peer = new SiteStore(config());
    await peer.exchange('gw-other', () => ({
      site: 'gw-other',
      intervalMs: 2000,
      weight: 1,
      global: { down: 60 * M, up: 60 * M },
      cap: { down: 50 * M, up: 50 * M },
      demand: { down: 40 * M, up: 0 },
      users: { down: 3, up: 0 },
      allocated: { down: 30 * M, up: 30 * M },
      applied: { down: 30 * M, up: 30 * M },
      writers: 1,
    }));
    await peer.close();
    const totalA = await a.site.before(at());
    await a.site.after(true, { down: 1, up: 0 });
    const written = await siteRow();
    assert.ok(written, 'the master wrote no row');
    assert.equal(written.writer, storeOf(a.site).writer);
    await sleep(50);
    const totalB = await b.site.before(at());
    await b.site.after(true, { down: 0, up: 0 });
    assert.deepEqual(await siteRow(), written, 'the backup wrote the row');
    // the backup applies what the master's row says the master applies
    assert.equal(b.site.view.allocation?.down, written.applied);
    assert.equal(totalB.down, totalA.down);
    // several cycles of both: still only A's writes, never a collision
    for (let i = 0; i < 3; i++) {
      await a.site.before(at());
      await a.site.after(true, { down: 1, up: 0 });
      await b.site.before(at());
      await b.site.after(true, { down: 0, up: 0 });
      assert.equal((await siteRow())?.writer, storeOf(a.site).writer);
    }
    // failover: B writes at its next cycle, A stops
    a.role.set('backup', new Date().toISOString());
    b.role.set('master', new Date().toISOString());
    for (let i = 0; i < 3; i++) {
      await b.site.before(at());
      await b.site.after(true, { down: 1, up: 0 });
      assert.equal((await siteRow())?.writer, storeOf(b.site).writer);
      const before = await siteRow();
      await a.site.before(at());
      await a.site.after(true, { down: 0, up: 0 });
      assert.deepEqual(await siteRow(), before, 'the new backup wrote the row');
    }
    // failback: A writes again, its own earlier writes are not taken for another gateway's
    b.role.set('backup', new Date().toISOString());
    a.role.set('master', new Date().toISOString());
    for (let i = 0; i < 3; i++) {
      await a.site.before(at());
      await a.site.after(true, { down: 1, up: 0 });
      await b.site.before(at());
      await b.site.after(true, { down: 0, up: 0 });
    }
    assert.equal((await siteRow())?.writer, storeOf(a.site).writer);
    for (const g of [a, b]) {
      assert.equal(g.site.view.collision, null);
      assert.equal(g.site.view.mode, 'sharing');
    }
    assert.deepEqual(
      log.lines.filter((l) => l.level === 'error'),
      [],
    );
  } finally {
    await a.site.close();
    await b.site.close();
  }
});
