// Self-signed CA certificates with chosen validity dates, for the caFile checks: `openssl ca
// -selfsign` is the one openssl 3.0 command that takes a start and an end date (past ones
// included). Our own config file; nothing depends on the system's openssl.cnf.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** `YYYYMMDDHHMMSSZ`, as openssl ca wants it. */
function asn1Time(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:T]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

/** One PEM certificate (CN=`cn`, a CA) valid from `from` to `to`. */
export function makeCaPem(cn: string, from: Date, to: Date): string {
  const dir = mkdtempSync(join(tmpdir(), 'rq-ca-'));
  const f = (name: string): string => join(dir, name);
  try {
    writeFileSync(
      f('ca.cnf'),
      [
        '[ca]',
        'default_ca = d',
        '[d]',
        `database = ${f('index.txt')}`,
        `new_certs_dir = ${dir}`,
        `serial = ${f('serial')}`,
        'default_md = sha256',
        'policy = p',
        'unique_subject = no',
        '[p]',
        'CN = supplied',
        '[req]',
        'distinguished_name = dn',
        'prompt = no',
        '[dn]',
        `CN = ${cn}`,
        '[v3_ca]',
        'basicConstraints = critical, CA:TRUE',
      ].join('\n') + '\n',
    );
    writeFileSync(f('index.txt'), '');
    writeFileSync(f('serial'), '01\n');
    const quiet = { stdio: ['ignore', 'ignore', 'pipe'] as ['ignore', 'ignore', 'pipe'] };
    execFileSync(
      'openssl',
      [
        'req',
        '-new',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        f('k.pem'),
        '-out',
        f('r.csr'),
        '-config',
        f('ca.cnf'),
      ],
      quiet,
    );
    execFileSync(
      'openssl',
      [
        'ca',
        '-batch',
        '-config',
        f('ca.cnf'),
        '-selfsign',
        '-keyfile',
        f('k.pem'),
        '-in',
        f('r.csr'),
        '-out',
        f('c.pem'),
        '-startdate',
        asn1Time(from),
        '-enddate',
        asn1Time(to),
        '-extensions',
        'v3_ca',
        '-extfile',
        f('ca.cnf'),
        '-notext',
      ],
      quiet,
    );
    return readFileSync(f('c.pem'), 'utf8');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const DAY = 86_400_000;
/** Valid from a year ago for ten years. */
export const validCa = (cn = 'valid-ca', now = Date.now()): string => makeCaPem(cn, new Date(now - 365 * DAY), new Date(now + 3650 * DAY));
/** Expired: valid for one day, two years ago. */
export const expiredCa = (cn = 'expired-ca', now = Date.now()): string =>
  makeCaPem(cn, new Date(now - 730 * DAY), new Date(now - 729 * DAY));
/** Not yet valid: from next year. */
export const futureCa = (cn = 'future-ca', now = Date.now()): string => makeCaPem(cn, new Date(now + 365 * DAY), new Date(now + 730 * DAY));
