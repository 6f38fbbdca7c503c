// sandbox/slapd.ts — a private OpenLDAP server for tests, the benchmark and the demo.
// Owns: writing a throw-away slapd.conf (core, cosine, inetorgperson, nis + our resel.schema),
// one back_mdb database per suffix in a mkdtemp dir (prefix rq-slapd-), anonymous read, a rootdn
// for writes, a size limit that non-paged searches hit but paged searches do not, starting slapd
// in the foreground as our child on a free loopback port, adding/modifying entries with
// ldapadd/ldapmodify, fast offline bulk loads with slapadd -q, and leaving nothing behind.
// With `tls`, also a throw-away CA and a server certificate (openssl) and an ldaps:// listener;
// the ldap:// listener then offers StartTLS.
// Must run as root (slapd runs as root, without -u). Test-only code; never used by the daemon.

import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  Tail,
  serverLifecycle,
  freePort,
  isRunning,
  makeTempDir,
  onProcessExit,
  run,
  sleep,
  spawnDaemon,
  tailLines,
  terminate,
  waitExit,
  type Input,
} from './proc.js';

export const MAISEL_SUFFIX = 'dc=maisel,dc=enst-bretagne,dc=fr';
export const RESEL_SUFFIX = 'dc=resel,dc=enst-bretagne,dc=fr';
export const PEOPLE_BASE = `ou=people,${MAISEL_SUFFIX}`;
export const ORGS_BASE = `ou=organisations,${MAISEL_SUFFIX}`;
export const MACHINES_BASE = `ou=machines,${RESEL_SUFFIX}`;

export interface SlapdOptions {
  /** Size limit (soft = hard) for every non-root client; paged searches are not capped by it. Default 500; 0 = unlimited. */
  sizeLimit?: number;
  /** Naming contexts, one mdb database each. Default [MAISEL_SUFFIX, RESEL_SUFFIX]. */
  suffixes?: string[];
  /** Listen port on 127.0.0.1. Default: a free one. */
  port?: number;
  /** Cap on the total entries a paged search may return (slapd size.prtotal). Default unlimited. */
  pagedTotalLimit?: number | 'unlimited';
  /** Attributes anonymous clients may not read (the real server may hide `campus`). Default none. */
  hiddenFromAnonymous?: string[];
  /**
   * Entries to create under the suffixes (organizationalUnit DNs). Default: ou=people and
   * ou=organisations under dc=maisel…, ou=machines under dc=resel… (those present in `suffixes`).
   */
  ous?: string[];
  /** Time allowed for slapd to answer, ms. Default 15 000. */
  startTimeoutMs?: number;
  /**
   * TLS: generate (openssl) a throw-away CA and a server certificate for CN=localhost with
   * subjectAltName DNS:localhost, IP:127.0.0.1 in the temp dir, offer StartTLS on the ldap://
   * listener and listen on ldaps://127.0.0.1:TLSPORT/ as well. Default false.
   */
  tls?: boolean;
}

export interface SlapdServer {
  /** ldap://127.0.0.1:PORT */
  url: string;
  port: number;
  /** With `tls`: ldaps://127.0.0.1:TLSPORT; otherwise undefined. */
  ldapsUrl: string | undefined;
  /** With `tls`: the ldaps:// port; otherwise undefined. */
  tlsPort: number | undefined;
  /** With `tls`: path of the CA certificate (PEM) that signed the server certificate; otherwise undefined. */
  caFile: string | undefined;
  /** Temp dir holding slapd.conf, the databases, the schema copy; removed by stop(). */
  dir: string;
  suffixes: string[];
  /** cn=admin,<first suffix>: root of every database (writes). */
  rootDn: string;
  rootPassword: string;
  /** Add entries (LDIF without changetype) with ldapadd as the root DN. */
  add(ldif: string): Promise<void>;
  /** Apply an LDIF change file with ldapmodify as the root DN. */
  modify(ldif: string): Promise<void>;
  /** Delete entries (leaves first) with ldapdelete as the root DN. */
  delete(dns: string | string[]): Promise<void>;
  /**
   * Offline bulk load: stops slapd if it runs, routes each LDIF entry to its database, runs
   * `slapadd -q` per database, then starts slapd again on the same port if it was running.
   * Parents must precede children (the suffix and ou entries already exist). Far faster than
   * add() for 10 000+ entries.
   */
  slapadd(ldif: Input): Promise<{ entries: number }>;
  /** Anonymous ldapsearch arguments: ['-x', '-H', url]. Add -b/-s/filter/attrs yourself. */
  ldapsearchArgs(): string[];
  /** pid of the running slapd, or undefined. */
  pid(): number | undefined;
  running(): boolean;
  /** SIGTERM, wait, remove the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL (for fault tests); the data stays, restart() brings it back. */
  kill(): Promise<void>;
  /** Start again on the same port with the same data (stops gracefully first if running). */
  restart(): Promise<void>;
}

const SCHEMA_DIR = '/etc/ldap/schema';
const MODULE_PATH = '/usr/lib/ldap';

/** Locate sandbox/resel.schema from the compiled module (build/sandbox) or the source. */
export function reselSchemaPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, 'resel.schema')];
  for (let d = here, i = 0; i < 6; i++, d = dirname(d)) candidates.push(join(d, 'sandbox', 'resel.schema'));
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`slapd sandbox: resel.schema not found (looked in ${candidates.join(', ')})`);
  return resolve(found);
}

function normDn(dn: string): string {
  return dn
    .split(',')
    .map((rdn) => rdn.trim())
    .join(',')
    .toLowerCase();
}

function defaultOus(suffixes: string[]): string[] {
  const ous: string[] = [];
  const has = (s: string): boolean => suffixes.some((x) => normDn(x) === normDn(s));
  if (has(MAISEL_SUFFIX)) ous.push(PEOPLE_BASE, ORGS_BASE);
  if (has(RESEL_SUFFIX)) ous.push(MACHINES_BASE);
  return ous;
}

/** LDIF for an entry that only names itself: dc=… → domain, o=… → organization, ou=… → organizationalUnit. */
function namingEntry(dn: string): string {
  const first = dn.split(',')[0] ?? '';
  const eq = first.indexOf('=');
  const attr = first.slice(0, eq).trim().toLowerCase();
  const value = first.slice(eq + 1).trim();
  const oc = { dc: 'domain', o: 'organization', ou: 'organizationalUnit' }[attr];
  if (!oc || !value) throw new Error(`slapd sandbox: cannot create a naming entry for "${dn}" (use dc=, o= or ou=)`);
  return `dn: ${dn}\nobjectClass: ${oc}\n${attr}: ${value}\n\n`;
}

export interface TlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** Names the sandbox server certificate is valid for. */
export const TLS_SUBJECT_ALT_NAME = 'DNS:localhost, IP:127.0.0.1';

/**
 * A throw-away CA (ca.pem) and a server certificate signed by it (server.pem / server.key) for
 * CN=localhost, subjectAltName DNS:localhost, IP:127.0.0.1 (or `subjectAltName`), in `dir`. ECDSA P-256, valid 7 days.
 * Our own openssl config file: nothing depends on the system's openssl.cnf.
 */
export async function makeTlsFiles(dir: string, subjectAltName = TLS_SUBJECT_ALT_NAME): Promise<TlsFiles> {
  const f = (name: string): string => join(dir, name);
  const cnf = f('openssl.cnf');
  writeFileSync(
    cnf,
    [
      '[req]',
      'distinguished_name = dn',
      'prompt = no',
      '[dn]',
      'CN = unused',
      '[v3_ca]',
      'basicConstraints = critical, CA:TRUE, pathlen:0',
      'keyUsage = critical, keyCertSign, cRLSign',
      'subjectKeyIdentifier = hash',
      '[v3_server]',
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature',
      'extendedKeyUsage = serverAuth',
      `subjectAltName = ${subjectAltName}`,
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid, issuer',
      '',
    ].join('\n'),
  );
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const steps: string[][] = [
    [
      'req',
      '-config',
      cnf,
      '-x509',
      ...key,
      '-keyout',
      f('ca.key'),
      '-out',
      f('ca.pem'),
      '-days',
      '7',
      '-subj',
      '/O=reselqos sandbox/CN=reselqos throw-away test CA',
      '-extensions',
      'v3_ca',
    ],
    [
      'req',
      '-config',
      cnf,
      '-new',
      ...key,
      '-keyout',
      f('server.key'),
      '-out',
      f('server.csr'),
      '-subj',
      '/O=reselqos sandbox/CN=localhost',
    ],
    [
      ...[
        'x509',
        '-req',
        '-in',
        f('server.csr'),
        '-CA',
        f('ca.pem'),
        '-CAkey',
        f('ca.key'),
        '-set_serial',
        `0x${randomBytes(8).toString('hex')}`,
      ],
      ...['-days', '7', '-sha256', '-extfile', cnf, '-extensions', 'v3_server', '-out', f('server.pem')],
    ],
  ];
  for (const args of steps) {
    let res;
    try {
      res = await run('openssl', args, { timeoutMs: 30_000 });
    } catch (e) {
      throw new Error(`slapd sandbox: cannot run openssl (Debian package "openssl"): ${(e as Error).message}`);
    }
    if (res.code !== 0) throw new Error(`slapd sandbox: openssl ${args[0]} failed (exit ${res.code})\n${tailLines(res.stderr)}`);
  }
  rmSync(f('server.csr'), { force: true });
  return { caFile: f('ca.pem'), certFile: f('server.pem'), keyFile: f('server.key') };
}

function slapdConf(o: {
  dir: string;
  suffixes: string[];
  rootDn: string;
  rootPassword: string;
  sizeLimit: number;
  pagedTotalLimit: number | 'unlimited';
  hidden: string[];
  tls: TlsFiles | undefined;
}): string {
  const size = o.sizeLimit > 0 ? String(o.sizeLimit) : 'unlimited';
  const lines = [
    '# generated by reselqos sandbox/slapd.ts — test server, do not use in production',
    ...['core', 'cosine', 'inetorgperson', 'nis'].map((s) => `include ${SCHEMA_DIR}/${s}.schema`),
    `include ${join(o.dir, 'resel.schema')}`,
    `pidfile ${join(o.dir, 'slapd.pid')}`,
    `argsfile ${join(o.dir, 'slapd.args')}`,
    `modulepath ${MODULE_PATH}`,
    'moduleload back_mdb',
    'loglevel none',
    'tool-threads 2',
    ...(o.tls
      ? [
          `TLSCACertificateFile ${o.tls.caFile}`,
          `TLSCertificateFile ${o.tls.certFile}`,
          `TLSCertificateKeyFile ${o.tls.keyFile}`,
          'TLSVerifyClient never',
        ]
      : []),
    '',
  ];
  o.suffixes.forEach((suffix, i) => {
    lines.push(
      'database mdb',
      `suffix "${suffix}"`,
      // The same root DN for every database: it binds through the first one (rootpw) and is
      // root (no ACL, no limit) in all of them.
      `rootdn "${o.rootDn}"`,
      ...(i === 0 ? [`rootpw ${o.rootPassword}`] : []),
      `directory ${join(o.dir, `db${i}`)}`,
      'maxsize 8589934592',
      'dbnosync',
      'index objectClass eq',
      'index uid eq',
      'index host eq',
      'index uidProprio eq',
      'index ipHostNumber eq',
      // Change searches ((modifyTimestamp>=...)): back-mdb answers >= from the eq index of a generalizedTime.
      'index modifyTimestamp eq',
      // Without size.prtotal, paged searches stop at the hard limit too ("Size limit exceeded").
      `limits * size.soft=${size} size.hard=${size} size.prtotal=${o.pagedTotalLimit}`,
      'access to attrs=userPassword by anonymous auth by * none',
      ...(o.hidden.length > 0 ? [`access to attrs=${o.hidden.join(',')} by users read by * none`] : []),
      'access to * by * read',
      '',
    );
  });
  return lines.join('\n');
}

/** Split LDIF text into records; returns the records and the unfinished remainder. */
function splitRecords(text: string): { records: string[]; rest: string } {
  const parts = text.split(/\r?\n[ \t]*\r?\n/);
  const rest = parts.pop() ?? '';
  return { records: parts, rest };
}

function recordDn(record: string): string | undefined {
  const unfolded = record.replace(/\r?\n /g, '');
  for (const line of unfolded.split(/\r?\n/)) {
    if (line.startsWith('#') || line.trim() === '') continue;
    if (/^dn::/i.test(line)) return Buffer.from(line.slice(4).trim(), 'base64').toString('utf8');
    if (/^dn:/i.test(line)) return line.slice(3).trim();
    return undefined; // version: 1, or not an entry
  }
  return undefined;
}

export async function startSlapd(opts: SlapdOptions = {}): Promise<SlapdServer> {
  if (process.getuid && process.getuid() !== 0) throw new Error('slapd sandbox: must run as root');
  const suffixes = opts.suffixes ?? [MAISEL_SUFFIX, RESEL_SUFFIX];
  if (suffixes.length === 0) throw new Error('slapd sandbox: at least one suffix is needed');
  const firstSuffix = suffixes[0] as string;
  const normSuffixes = suffixes.map(normDn);
  const sizeLimit = opts.sizeLimit ?? 500;
  const startTimeoutMs = opts.startTimeoutMs ?? 15_000;
  const rootDn = `cn=admin,${firstSuffix}`;
  const rootPassword = randomBytes(12).toString('hex');

  const dir = makeTempDir('rq-slapd-');
  const confPath = join(dir, 'slapd.conf');
  const pwFile = join(dir, 'rootpw');
  const tail = new Tail();
  let child: ChildProcess | undefined;
  let port = opts.port ?? 0;
  const tlsWanted = opts.tls === true;
  let tlsPort = 0;
  let tlsFiles: TlsFiles | undefined;
  let lastProbeError = '';

  const unregister = onProcessExit(() => {
    if (isRunning(child)) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const life = serverLifecycle('slapd sandbox', { child: () => child, halt, start: () => startOnPort('restart'), unregister, dir });

  const fail = (what: string, stderr: string): Error =>
    new Error(`slapd sandbox (${dir}): ${what}${stderr.trim() ? `\n--- stderr tail ---\n${tailLines(stderr)}` : ''}`);

  const dbOf = (dn: string): number => {
    const n = normDn(dn);
    return normSuffixes.findIndex((s) => n === s || n.endsWith(`,${s}`));
  };

  async function slapaddFile(db: number, file: string): Promise<void> {
    const res = await run('slapadd', ['-q', '-f', confPath, '-b', suffixes[db] as string, '-l', file]);
    if (res.code !== 0) throw fail(`slapadd into ${suffixes[db]} failed (exit ${res.code})`, res.stderr);
  }

  /**
   * Does *our* slapd answer? Binds with this instance's random root password, so another server
   * that grabbed the port meanwhile does not count; gives up as soon as `c` exits (whoever owns
   * the port may never answer). With TLS, the ldaps:// listener must answer too, with a
   * certificate that verifies against our CA.
   */
  async function probe(c: ChildProcess): Promise<boolean> {
    const ac = new AbortController();
    const probeUrl = async (u: string, env?: NodeJS.ProcessEnv): Promise<boolean> => {
      const r = await run(
        'ldapsearch',
        [...['-x', '-H', u, '-D', rootDn, '-y', pwFile, '-o', 'nettimeout=2'], ...['-b', '', '-s', 'base', '-LLL', 'namingContexts']],
        { timeoutMs: 5000, signal: ac.signal, ...(env ? { env } : {}) },
      );
      if (r.code !== 0 && !ac.signal.aborted) lastProbeError = `${u}: ldapsearch exit ${r.code ?? r.signal}: ${r.stderr.trim()}`;
      return r.code === 0;
    };
    const res = (async () => {
      if (!(await probeUrl(`ldap://127.0.0.1:${port}`))) return false;
      if (!tlsFiles) return true;
      return probeUrl(`ldaps://127.0.0.1:${tlsPort}`, { ...process.env, LDAPTLS_CACERT: tlsFiles.caFile, LDAPTLS_REQCERT: 'demand' });
    })();
    let onExit: (() => void) | undefined;
    const exited = new Promise<boolean>((r) => {
      onExit = () => r(false);
      c.once('exit', onExit);
    });
    const ok = await Promise.race([res, exited]);
    if (onExit) c.removeListener('exit', onExit);
    ac.abort();
    await res.catch(() => false);
    return ok && isRunning(c);
  }

  /** Spawn slapd on `port` and wait until it answers. Throws (with `portBusy`) on failure. */
  async function launch(): Promise<void> {
    tail.clear();
    lastProbeError = '';
    const listen = [`ldap://127.0.0.1:${port}/`, ...(tlsFiles ? [`ldaps://127.0.0.1:${tlsPort}/`] : [])].join(' ');
    const c = spawnDaemon('slapd', ['-h', listen, '-f', confPath, '-d', 'none'], { cwd: dir });
    child = c;
    c.stdout?.on('data', (d: Buffer) => tail.push(d));
    c.stderr?.on('data', (d: Buffer) => tail.push(d));
    c.once('error', (e) => tail.push(`\n[spawn error: ${e.message}]`));
    const deadline = Date.now() + startTimeoutMs;
    for (;;) {
      if (!isRunning(c)) {
        const ex = await waitExit(c);
        await sleep(100); // let the last stderr lines arrive
        const err = fail(`slapd exited during startup (code ${ex.code}, signal ${ex.signal})`, tail.text());
        (err as Error & { portBusy?: boolean }).portBusy = /errno=98|Address already in use/.test(tail.text());
        throw err;
      }
      if (await probe(c)) return;
      if (Date.now() > deadline) {
        await terminate(c, 'SIGKILL', 1000);
        const where = tlsFiles ? `ldap://127.0.0.1:${port} and ldaps://127.0.0.1:${tlsPort}` : `ldap://127.0.0.1:${port}`;
        throw fail(
          `slapd did not answer on ${where} within ${startTimeoutMs} ms${lastProbeError ? ` (last probe: ${lastProbeError})` : ''}`,
          tail.text(),
        );
      }
      await sleep(50);
    }
  }

  /**
   * 'pick': first start without a requested port — on a port collision, pick another one.
   * 'fixed': first start on a requested port — fail at once if it is taken (with TLS, the
   * ldaps:// port is picked again a few times first: we cannot tell which of the two was taken).
   * 'restart': same port(s) as before — retry for ~5 s while the old socket lingers.
   */
  async function startOnPort(mode: 'pick' | 'fixed' | 'restart'): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      if (port === 0) port = await freePort();
      if (tlsFiles) while (tlsPort === 0 || tlsPort === port) tlsPort = await freePort();
      try {
        await launch();
        return;
      } catch (e) {
        const busy = (e as { portBusy?: boolean }).portBusy === true;
        if (busy && mode === 'pick' && attempt < 5) {
          port = 0;
          tlsPort = 0;
          continue;
        }
        if (busy && mode === 'fixed' && tlsFiles && attempt < 5) {
          tlsPort = 0;
          continue;
        }
        if (busy && mode === 'restart' && attempt < 20) {
          await sleep(250);
          continue;
        }
        throw e;
      }
    }
  }

  async function halt(): Promise<void> {
    if (isRunning(child)) await terminate(child, 'SIGTERM', 10_000);
  }

  try {
    copyFileSync(reselSchemaPath(), join(dir, 'resel.schema'));
    writeFileSync(pwFile, rootPassword, { mode: 0o600 }); // ldap* -y: the whole file, no newline
    suffixes.forEach((_, i) => mkdirSync(join(dir, `db${i}`)));
    if (tlsWanted) tlsFiles = await makeTlsFiles(dir);
    writeFileSync(
      confPath,
      slapdConf({
        dir,
        suffixes,
        rootDn,
        rootPassword,
        sizeLimit,
        pagedTotalLimit: opts.pagedTotalLimit ?? 'unlimited',
        hidden: opts.hiddenFromAnonymous ?? [],
        tls: tlsFiles,
      }),
    );
    // Suffix + ou entries, offline (no round trips, and a config check for free).
    const ous = opts.ous ?? defaultOus(suffixes);
    for (let i = 0; i < suffixes.length; i++) {
      const ldif = [suffixes[i] as string, ...ous.filter((dn) => dbOf(dn) === i)].map(namingEntry).join('');
      const file = join(dir, `base${i}.ldif`);
      writeFileSync(file, ldif);
      await slapaddFile(i, file);
      unlinkSync(file);
    }
    await startOnPort(opts.port === undefined ? 'pick' : 'fixed');
  } catch (e) {
    if (isRunning(child)) child.kill('SIGKILL');
    unregister();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }

  const url = (): string => `ldap://127.0.0.1:${port}`;

  async function ldapTool(tool: string, args: string[], input: string): Promise<void> {
    if (life.isStopped()) throw new Error(`slapd sandbox: ${tool} after stop()`);
    const res = await run(tool, ['-x', '-H', url(), '-D', rootDn, '-y', pwFile, ...args], { input });
    if (res.code !== 0) {
      throw fail(`${tool} failed (exit ${res.code})`, `${res.stderr}\n${tailLines(res.stdout, 3)}\n${tailLines(tail.text(), 5)}`);
    }
  }

  const server: SlapdServer = {
    get url() {
      return url();
    },
    get port() {
      return port;
    },
    get ldapsUrl() {
      return tlsFiles ? `ldaps://127.0.0.1:${tlsPort}` : undefined;
    },
    get tlsPort() {
      return tlsFiles ? tlsPort : undefined;
    },
    caFile: tlsFiles?.caFile,
    dir,
    suffixes: [...suffixes],
    rootDn,
    rootPassword,
    add: (ldif) => ldapTool('ldapadd', [], ldif),
    modify: (ldif) => ldapTool('ldapmodify', [], ldif),
    delete: (dns) => ldapTool('ldapdelete', [], `${(Array.isArray(dns) ? dns : [dns]).join('\n')}\n`),
    async slapadd(ldif) {
      if (life.isStopped()) throw new Error('slapd sandbox: slapadd after stop()');
      const wasRunning = isRunning(child);
      await halt();
      const files = suffixes.map((_, i) => join(dir, `load${i}.ldif`));
      const fds = files.map((f) => openSync(f, 'w'));
      const pending: string[][] = suffixes.map(() => []);
      const pendingLen = suffixes.map(() => 0);
      const counts = suffixes.map(() => 0);
      const flush = (i: number): void => {
        const parts = pending[i] as string[];
        if (parts.length === 0) return;
        writeSync(fds[i] as number, parts.join(''));
        pending[i] = [];
        pendingLen[i] = 0;
      };
      const route = (record: string): void => {
        const dn = recordDn(record);
        if (dn === undefined) return;
        const i = dbOf(dn);
        if (i < 0) throw new Error(`slapd sandbox: slapadd: "${dn}" is under none of ${suffixes.join(' | ')}`);
        (pending[i] as string[]).push(record, '\n\n');
        counts[i] = (counts[i] as number) + 1;
        pendingLen[i] = (pendingLen[i] as number) + record.length + 2;
        if (pendingLen[i] > 4 * 1024 * 1024) flush(i);
      };
      try {
        let rest = '';
        const chunks: Iterable<string> | AsyncIterable<string> = typeof ldif === 'string' ? [ldif] : ldif;
        for await (const chunk of chunks) {
          const split = splitRecords(rest + chunk);
          rest = split.rest;
          for (const r of split.records) route(r);
          // `for await` over a synchronous generator yields to microtasks only: let I/O through
          // (a MariaDB load running beside a 1 000 000-entry slapadd timed out connecting)
          await new Promise((r) => setImmediate(r));
        }
        if (rest.trim() !== '') route(rest);
        suffixes.forEach((_, i) => flush(i));
      } finally {
        fds.forEach((fd) => closeSync(fd));
      }
      try {
        for (let i = 0; i < suffixes.length; i++) if ((counts[i] as number) > 0) await slapaddFile(i, files[i] as string);
      } finally {
        files.forEach((f) => rmSync(f, { force: true }));
        if (wasRunning) await startOnPort('restart');
      }
      return { entries: counts.reduce((a, b) => a + b, 0) };
    },
    ldapsearchArgs: () => ['-x', '-H', url()],
    pid: life.pid,
    running: life.running,
    stop: life.stop,
    kill: life.kill,
    restart: life.restart,
  };
  return server;
}
