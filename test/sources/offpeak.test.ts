// Off-peak hours through the real volume reader: netacct rows in a private MariaDB whose server
// runs at +09:00 while [qos] timezone is Europe/Paris (hours placed by instant), the closed and
// open hours both weighted, raw bytes kept beside the counted ones.
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
import { VolumeSource } from '../../src/netacct/volumes.js';
import { groupOf, thresholds } from '../../src/policy/policy.js';

let db: MariadbServer;
let dir: string;
const MB = 1_000_000;

const configFor = (qos: string): Config =>
  parseConfig(
    sandboxConf({ ldapUrl: 'ldap://127.0.0.1:1', db: { host: db.host, port: db.port, user: db.user, password: db.password }, dir, qos }),
    'sandbox.conf',
  );

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rq-offpeak-'));
  db = await startMariadb({ timezone: '+09:00' });
});

after(async () => {
  await db?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('volumes: night rows count at offPeakWeight, the straddling hour pro rata; weight 1 reads as before', async () => {
  // server-local (+09:00) buckets: 22:00 = 14:00 Paris, 09:00 next day = 01:00 Paris, 14:00 = 06:00 Paris
  await db.query(`USE netacct; DELETE FROM traffic;
    INSERT INTO traffic (ip, time, input, output) VALUES
      ('172.22.200.3', '2026-11-22 22:00:00', ${600 * MB}, 10),
      ('172.22.200.3', '2026-11-23 09:00:00', ${1500 * MB}, 20),
      ('172.22.200.3', '2026-11-23 09:00:00', ${1500 * MB}, 20),
      ('172.22.200.3', '2026-11-23 14:00:00', ${1000 * MB}, 40);`);
  const reset = DateTime.fromISO('2026-11-22T05:00', { zone: 'Europe/Paris' }).toJSDate();
  // B (the start of the open hours) injected: the night and later hours are open, read by row id
  const night = new VolumeSource(configFor('offPeakFrom = 23:00\noffPeakTo = 06:30\noffPeakWeight = 0'), new MemoryLogger(), () =>
    Promise.resolve('2026-11-23 09:00:00'),
  );
  const plain = new VolumeSource(configFor('offPeakFrom = 23:00\noffPeakTo = 06:30\noffPeakWeight = 1'), new MemoryLogger());
  try {
    const u = await night.fetch(reset);
    assert.deepEqual(u.byIp.get('172.22.200.3'), { down: 1100 * MB, up: 30 }, 'counted: 600 + 0 + 1000/2 MB');
    assert.deepEqual(u.raw?.byIp.get('172.22.200.3'), { down: 4600 * MB, up: 90 }, 'raw: every row whole');
    const limits = thresholds(configFor('').qos);
    assert.equal(groupOf(u.byIp.get('172.22.200.3')!.down, limits), 0, 'the night owl stays in group 0');
    const p = await plain.fetch(reset);
    assert.equal(p.raw, undefined, 'weight 1: no raw beside, the counted bytes are the raw ones');
    assert.deepEqual(p.byIp.get('172.22.200.3'), { down: 4600 * MB, up: 90 });
    assert.ok(groupOf(4600 * MB, limits) > 0, 'raw bytes would have moved the user down');
    // A later night row in the open hours: the raw volume grows, the counted one does not (the
    // incremental read by row id, appendQuery, with the hour column last).
    await db.query(
      `USE netacct; INSERT INTO traffic (ip, time, input, output) VALUES ('172.22.200.3', '2026-11-23 10:00:00', ${700 * MB}, 5);`,
    );
    const again = await night.fetch(reset);
    assert.deepEqual(again.byIp.get('172.22.200.3'), { down: 1100 * MB, up: 30 });
    assert.deepEqual(again.raw?.byIp.get('172.22.200.3'), { down: 5300 * MB, up: 95 });
    assert.deepEqual(again.changes?.ids.length, 1, 'read as rows added to the held ones');
  } finally {
    await Promise.all([night.close(), plain.close()]);
  }
});
