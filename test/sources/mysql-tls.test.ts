// The volume source over TLS against a real MariaDB started with a throw-away CA and server
// certificate (sandbox/slapd.ts' makeTlsFiles): [database] tls = 1 verifies the certificate
// always, and never falls back to plaintext (issue 11, finding 10).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTlsFiles, type TlsFiles } from '../../sandbox/slapd.js';
import { startMariadb, type MariadbServer } from '../../sandbox/mariadb.js';
import { sandboxConf } from '../../sandbox/conf.js';
import { parseConfig } from '../../src/config/config.js';
import { VolumeSource } from '../../src/netacct/volumes.js';
import { SourceUnavailableError } from '../../src/sources/types.js';
import { createLogger } from '../../src/log.js';
import { SiteStore, type OwnRow } from '../../src/sharing/store.js';

let withTls: MariadbServer;
let noTls: MariadbServer;
let wrongName: MariadbServer; // a certificate of our CA for DNS:db.example.org only
let dir: string;
let ours: TlsFiles;
let other: TlsFiles;
let named: TlsFiles;

const log = createLogger({ level: 'error', dir: null, stderr: false });
const reset = new Date(Date.now() - 3_600_000);

async function fetchFrom(server: MariadbServer, database: string): Promise<Awaited<ReturnType<VolumeSource['fetch']>>> {
  const config = parseConfig(
    sandboxConf({
      ldapUrl: 'ldap://127.0.0.1:9',
      db: { host: server.host, port: server.port, user: server.user, password: server.password },
      dir,
      database,
    }),
    'tls.conf',
  );
  const v = new VolumeSource(config, log);
  try {
    return await v.fetch(reset, new Date());
  } finally {
    await v.close();
  }
}

const refused =
  (re: RegExp) =>
  (e: unknown): boolean => {
    assert.ok(e instanceof SourceUnavailableError, `expected a SourceUnavailableError, got ${String(e)}`);
    assert.match(e.message, re);
    return true;
  };

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rq-mysqltls-'));
  mkdirSync(join(dir, 'ours'));
  mkdirSync(join(dir, 'other'));
  mkdirSync(join(dir, 'named'));
  [ours, other, named] = await Promise.all([
    makeTlsFiles(join(dir, 'ours')),
    makeTlsFiles(join(dir, 'other')),
    makeTlsFiles(join(dir, 'named'), 'DNS:db.example.org'),
  ]);
  [withTls, noTls, wrongName] = await Promise.all([
    startMariadb({ timezone: '+00:00', tls: ours }),
    startMariadb({ timezone: '+00:00' }),
    startMariadb({ timezone: '+00:00', tls: named }),
  ]);
  const hour = (d: Date): string => d.toISOString().slice(0, 13).replace('T', ' ') + ':00:00';
  for (const s of [withTls, noTls]) await s.insertTraffic([{ ip: '172.22.200.3', time: hour(new Date()), input: 1000, output: 10 }]);
});

after(async () => {
  await Promise.allSettled([withTls?.stop(), noTls?.stop(), wrongName?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

test('tls = 1 with our CA: the volumes are read over TLS', async () => {
  const u = await fetchFrom(withTls, `tls = 1\ncaFile = ${ours.caFile}`);
  assert.deepEqual([...u.byIp.keys()], ['172.22.200.3']);
  // and the server saw a TLS session: Ssl_cipher of our own connection is not empty
  const rows = await withTls.select<{ Variable_name: string; Value: string }>("SHOW GLOBAL STATUS LIKE 'Ssl_accepts'");
  assert.ok(Number(rows[0]?.Value) >= 1, JSON.stringify(rows));
});

test('tls = 1 without caFile (system CAs) or with another CA: the certificate is refused', async () => {
  await assert.rejects(fetchFrom(withTls, 'tls = 1'), refused(/self[- ]signed|unable to verify|certificate/i));
  await assert.rejects(fetchFrom(withTls, `tls = 1\ncaFile = ${other.caFile}`), refused(/self[- ]signed|unable to verify|certificate/i));
});

test('tls = 1 to a server without TLS: refused, no plaintext fallback', async () => {
  await assert.rejects(fetchFrom(noTls, `tls = 1\ncaFile = ${ours.caFile}`), refused(/HANDSHAKE_NO_SSL_SUPPORT|does not support secure/));
  // the same server in plaintext works (the refusal is TLS's, not a broken server)
  assert.deepEqual([...(await fetchFrom(noTls, '')).byIp.keys()], ['172.22.200.3']);
});

test('tls = 1: the certificate must name the host (127.0.0.1 against its IP SANs), not only chain to the CA', async () => {
  await assert.rejects(fetchFrom(wrongName, `tls = 1\ncaFile = ${named.caFile}`), refused(/127\.0\.0\.1|altnames|IP/i));
});

test('[database] tls applies to the other pools on that server too: the sharing table', async () => {
  const storeFor = (database: string): SiteStore =>
    new SiteStore(
      parseConfig(
        sandboxConf({
          ldapUrl: 'ldap://127.0.0.1:9',
          db: { host: withTls.host, port: withTls.port, user: withTls.user, password: withTls.password },
          dir,
          database,
        }).replace('[ratesrules]', 'globalDown = 60Mbit\nglobalUp = 60Mbit\n[site]\nname = tls-site\n[sharing]\nenabled = 1\n[ratesrules]'),
        'tls.conf',
      ),
    );
  const M = 1_000_000;
  const own: OwnRow = {
    site: 'tls-site',
    intervalMs: 2000,
    weight: 1,
    global: { down: 60 * M, up: 60 * M },
    cap: { down: 50 * M, up: 50 * M },
    demand: { down: 0, up: 0 },
    users: { down: 0, up: 0 },
    allocated: { down: 0, up: 0 },
    applied: { down: 0, up: 0 },
    writers: 1,
  };
  const accepts = async (): Promise<number> =>
    Number((await withTls.select<{ Value: string }>("SHOW GLOBAL STATUS LIKE 'Ssl_accepts'"))[0]?.Value);
  const ok = storeFor(`tls = 1\ncaFile = ${ours.caFile}`);
  try {
    const before = await accepts();
    assert.equal((await ok.exchange('tls-site', () => own)).own.site, 'tls-site');
    assert.ok((await accepts()) > before, 'the exchange went over TLS');
  } finally {
    await ok.close();
  }
  const wrong = storeFor(`tls = 1\ncaFile = ${other.caFile}`);
  try {
    await assert.rejects(
      wrong.exchange('tls-site', () => own),
      /self[- ]signed|unable to verify|certificate/i,
    );
  } finally {
    await wrong.close();
  }
});
