// The LDAP source over TLS against a real slapd: ldaps:// and StartTLS with certificate
// verification (CA, host name / IP), no plaintext fallback, simple bind over TLS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, hostname } from 'node:os';
import { join } from 'node:path';
import { lookup } from 'node:dns/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { startSlapd, type SlapdServer, PEOPLE_BASE, MACHINES_BASE } from '../../sandbox/slapd.js';
import { sandboxConf } from '../../sandbox/conf.js';
import { parseConfig, type Config } from '../../src/config/config.js';
import { LdapSource } from '../../src/ldap/ldap.js';
import { SourceUnavailableError } from '../../src/sources/types.js';

let tls: SlapdServer; // TLS configured: ldap:// (StartTLS) + ldaps://
let plain: SlapdServer; // no TLS at all
let dir: string;

const FIXTURE = `dn: uid=jdupont,${PEOPLE_BASE}
objectClass: genericPerson
objectClass: reselPerson
uid: jdupont
firstName: Jean
lastName: Dupont
cotiz: 2026
endInternet: 20300815000000Z

dn: host=pc-jdupont,${MACHINES_BASE}
objectClass: reselMachine
host: pc-jdupont
uidProprio: uid=jdupont,${PEOPLE_BASE}
ipHostNumber: 200.3
macAddress: 12:23:34:45:56:67
zone: Brest
zone: User

`;

function configFor(url: string, ldap = ''): Config {
  // LdapSource never touches MySQL: the [database] part only has to parse.
  return parseConfig(
    sandboxConf({ ldapUrl: url, db: { host: '127.0.0.1', port: 9, user: 'none', password: 'none' }, dir, ldap }),
    'tls.conf',
  );
}

const fetchWith = (url: string, ldap = ''): ReturnType<LdapSource['fetch']> => new LdapSource(configFor(url, ldap)).fetch();

function assertDirectory(d: Awaited<ReturnType<LdapSource['fetch']>>): void {
  assert.deepEqual(
    d.owners.map((o) => o.uid),
    ['jdupont'],
  );
  assert.deepEqual(
    d.machines.map((m) => [m.host, m.owner, m.ips4]),
    [['pc-jdupont', 'jdupont', ['172.22.200.3']]],
  );
}

const unavailable =
  (re: RegExp) =>
  (e: unknown): boolean => {
    assert.ok(e instanceof SourceUnavailableError, `expected a SourceUnavailableError, got ${String(e)}`);
    assert.match(e.message, re);
    return true;
  };

/**
 * A TCP forwarder listening on `host` (port picked by the kernel) to 127.0.0.1:`targetPort`,
 * recording what each client sends (a wire tap: proves what went over the network in clear).
 */
interface Tap {
  port: number;
  /** bytes sent by the client, one Buffer per connection */
  sent(): Buffer[];
  close(): Promise<void>;
}

async function tap(host: string, targetPort: number): Promise<Tap> {
  const chunks: Buffer[][] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const mine: Buffer[] = [];
    chunks.push(mine);
    const upstream = connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.on('data', (d: Buffer) => mine.push(Buffer.from(d)));
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const addr = server.address();
  assert.ok(addr !== null && typeof addr === 'object');
  return {
    port: addr.port,
    sent: () => chunks.map((c) => Buffer.concat(c)),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * Reads the plaintext LDAP messages at the start of a client's byte stream (BER: SEQUENCE, the
 * message id, then the protocolOp tag) until something that is not an LDAPMessage — a TLS record
 * after a StartTLS — or the end. Returns the protocolOp tags and the bytes after them.
 */
function plaintextOps(buf: Buffer): { ops: number[]; rest: Buffer } {
  const ops: number[] = [];
  let i = 0;
  while (i < buf.length && buf[i] === 0x30) {
    let len = buf[i + 1] as number;
    let hdr = 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let k = 0; k < n; k++) len = len * 256 + (buf[i + 2 + k] as number);
      hdr += n;
    }
    const body = i + hdr;
    assert.equal(buf[body], 0x02, 'LDAPMessage starts with the message id');
    const idLen = buf[body + 1] as number;
    ops.push(buf[body + 2 + idLen] as number);
    i = body + len;
  }
  return { ops, rest: buf.subarray(i) };
}

const OP = { bind: 0x60, unbind: 0x42, search: 0x63, extended: 0x77 } as const;
const TLS_HANDSHAKE_RECORD = 0x16;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rq-tls-'));
  [tls, plain] = await Promise.all([startSlapd({ tls: true }), startSlapd()]);
  await Promise.all([tls.add(FIXTURE), plain.add(FIXTURE)]);
});

after(async () => {
  await Promise.allSettled([tls?.stop(), plain?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('sandbox: the TLS slapd exposes ldaps:// and its CA; a plain one does not', () => {
  assert.match(tls.ldapsUrl ?? '', /^ldaps:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(tls.ldapsUrl, `ldaps://127.0.0.1:${tls.tlsPort}`);
  assert.ok(tls.caFile?.startsWith(tls.dir));
  assert.equal(plain.ldapsUrl, undefined);
  assert.equal(plain.caFile, undefined);
});

test('ldaps:// with caFile = our CA: the fetch works (IP in the URL, checked against the IP SAN)', async () => {
  assertDirectory(await fetchWith(tls.ldapsUrl!, `caFile = ${tls.caFile}`));
});

test('ldaps://localhost with caFile: the fetch works (DNS name, checked against the DNS SAN)', async () => {
  assertDirectory(await fetchWith(`ldaps://localhost:${tls.tlsPort}`, `caFile = ${tls.caFile}`));
});

test('ldaps:// without caFile: the system CAs do not know ours, refused', async () => {
  await assert.rejects(fetchWith(tls.ldapsUrl!), unavailable(/certificate/i));
});

test('ldaps:// to an IP address the certificate is not for: refused (host name verification)', async () => {
  // 127.0.0.2 reaches the same slapd through a forwarder; the certificate is for 127.0.0.1 / localhost.
  const t = await tap('127.0.0.2', tls.tlsPort!);
  try {
    await assert.rejects(
      fetchWith(`ldaps://127.0.0.2:${t.port}`, `caFile = ${tls.caFile}`),
      unavailable(/127\.0\.0\.2.*(cert|altnames)|altnames.*127\.0\.0\.2/i),
    );
    assert.ok(t.sent().length > 0, 'the forwarder was used');
  } finally {
    await t.close();
  }
});

test('ldaps:// and StartTLS to a DNS name the certificate is not for: refused (host name verification)', async (t) => {
  const name = hostname().toLowerCase();
  const addr = await lookup(name, { family: 4 }).catch(() => undefined);
  if (name === 'localhost' || !/^[a-z0-9.-]+$/.test(name) || addr?.address !== '127.0.0.1') {
    t.skip(`the host name "${name}" does not resolve to 127.0.0.1 here`);
    return;
  }
  const mismatch = new RegExp(`${name.replace(/\./g, '\\.')}.*(cert|altnames)|altnames`, 'i');
  await assert.rejects(fetchWith(`ldaps://${name}:${tls.tlsPort}`, `caFile = ${tls.caFile}`), unavailable(mismatch));
  await assert.rejects(
    fetchWith(`ldap://${name}:${tls.port}`, `starttls = 1\ncaFile = ${tls.caFile}`),
    (e) => unavailable(/StartTLS .* failed/)(e) && unavailable(mismatch)(e),
  );
});

test('StartTLS (ldap:// + starttls + caFile): works, and nothing but the StartTLS request goes in clear', async () => {
  assertDirectory(await fetchWith(tls.url, `starttls = 1\ncaFile = ${tls.caFile}`));
  assertDirectory(await fetchWith(`ldap://localhost:${tls.port}`, `starttls = 1\ncaFile = ${tls.caFile}`));
  const t = await tap('127.0.0.1', tls.port);
  try {
    assertDirectory(
      await fetchWith(
        `ldap://127.0.0.1:${t.port}`,
        `starttls = 1\ncaFile = ${tls.caFile}\nuser = ${tls.rootDn}\npassword = ${tls.rootPassword}`,
      ),
    );
    const sent = t.sent();
    assert.equal(sent.length, 3, 'one connection per search (people, organisations, machines)');
    for (const bytes of sent) {
      const { ops, rest } = plaintextOps(bytes);
      assert.deepEqual(ops, [OP.extended], 'only the StartTLS extended request in clear');
      assert.equal(rest[0], TLS_HANDSHAKE_RECORD, 'then a TLS handshake');
      assert.ok(!bytes.includes(tls.rootPassword), 'the bind password never in clear');
      assert.ok(!bytes.includes('uidProprio') && !bytes.includes(PEOPLE_BASE), 'no search in clear');
    }
  } finally {
    await t.close();
  }
});

test('StartTLS without caFile: the certificate is refused', async () => {
  await assert.rejects(fetchWith(tls.url, 'starttls = 1'), unavailable(/StartTLS .* failed .*certificate/i));
});

test('StartTLS to an IP address the certificate is not for: refused (host name verification after StartTLS)', async () => {
  const t = await tap('127.0.0.2', tls.port);
  try {
    await assert.rejects(
      fetchWith(`ldap://127.0.0.2:${t.port}`, `starttls = 1\ncaFile = ${tls.caFile}`),
      unavailable(/StartTLS .* failed .*(127\.0\.0\.2|altnames)/i),
    );
    assert.ok(t.sent().length > 0, 'the forwarder was used');
  } finally {
    await t.close();
  }
});

test('StartTLS against a server without TLS: refused, no plaintext fallback (no bind, no search in clear)', async () => {
  const t = await tap('127.0.0.1', plain.port);
  try {
    const started = Date.now();
    const res = await fetchWith(
      `ldap://127.0.0.1:${t.port}`,
      `starttls = 1\nuser = ${plain.rootDn}\npassword = ${plain.rootPassword}`,
    ).then(
      (d) => ({ ok: true as const, d }),
      (e: unknown) => ({ ok: false as const, e }),
    );
    assert.equal(res.ok, false, 'fetch must reject, not return entries');
    if (!res.ok) unavailable(/StartTLS to ldap:\/\/127\.0\.0\.1:\d+ failed \(no fallback to plaintext\)/)(res.e);
    assert.ok(Date.now() - started < 5000, 'refused at once, not after a timeout');
    const sent = t.sent();
    assert.ok(sent.length >= 1);
    for (const bytes of sent) {
      const { ops, rest } = plaintextOps(bytes);
      assert.equal(rest.length, 0, 'nothing but LDAP messages, all of them parsed');
      assert.equal(ops[0], OP.extended, 'the StartTLS request comes first');
      const allowed: number[] = [OP.extended, OP.unbind];
      assert.deepEqual(
        ops.filter((op) => !allowed.includes(op)),
        [],
        'only StartTLS and unbind in clear: no bind, no search',
      );
      assert.ok(!bytes.includes(plain.rootPassword), 'the bind password never sent');
    }
  } finally {
    await t.close();
  }
  // The same server in plain LDAP does answer: the refusal above is the StartTLS policy, not a dead server.
  assertDirectory(await fetchWith(plain.url));
});

test('simple bind over ldaps://: the right password works, a wrong one is "bind as … failed"', async () => {
  const ca = `caFile = ${tls.caFile}`;
  assertDirectory(await fetchWith(tls.ldapsUrl!, `${ca}\nuser = ${tls.rootDn}\npassword = ${tls.rootPassword}`));
  await assert.rejects(
    fetchWith(tls.ldapsUrl!, `${ca}\nuser = ${tls.rootDn}\npassword = wrong-${tls.rootPassword}`),
    unavailable(new RegExp(`bind as ${tls.rootDn} to ldaps://127\\.0\\.0\\.1:\\d+ failed: invalid credentials`, 'i')),
  );
});

test('simple bind over StartTLS: the right password works, a wrong one is "bind as … failed"', async () => {
  const base = `starttls = 1\ncaFile = ${tls.caFile}\nuser = ${tls.rootDn}`;
  assertDirectory(await fetchWith(tls.url, `${base}\npassword = ${tls.rootPassword}`));
  await assert.rejects(fetchWith(tls.url, `${base}\npassword = nope`), unavailable(/bind as cn=admin,.* failed: invalid credentials/i));
});
