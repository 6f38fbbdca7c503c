// The files qos.conf names beyond itself: the PEM CA bundles of [ldap], [database] and [publish].
// Owns reading them and telling why one cannot be used or should not be trusted as it is:
// unreadable, not PEM, no certificate valid now, writable by everyone (refused); some
// certificates expired, all of them expiring within 30 days, group-writable (warnings). Each
// names file:line and key, as the parser does. Never connects anywhere; never keeps the contents.

import { readFile, stat } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import type { Config, ConfigProblem } from './config.js';

const DAY = 86_400_000;
/** A CA bundle whose every valid certificate ends within this is warned about. */
export const CA_EXPIRY_WARNING_MS = 30 * DAY;

/** Reads a PEM CA bundle; throws an Error saying why it is not one. */
export async function readPemCa(path: string): Promise<{ data: Buffer; certs: X509Certificate[] }> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why =
      err.code === 'ENOENT'
        ? 'file not found'
        : err.code === 'EACCES'
          ? 'permission denied'
          : err.code === 'EISDIR'
            ? 'is a directory'
            : err.message;
    throw new Error(`cannot read ${path}: ${why}`);
  }
  const blocks = data.toString('latin1').match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g);
  if (!blocks) throw new Error(`${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  const certs = blocks.map((pem, i) => {
    try {
      return new X509Certificate(pem);
    } catch (e) {
      throw new Error(`${path}: certificate ${i + 1} is not valid PEM: ${(e as Error).message}`);
    }
  });
  return { data, certs };
}

const day = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
const nameOf = (c: X509Certificate): string => c.subject.split('\n').find((l) => l.startsWith('CN=')) ?? c.subject.split('\n')[0] ?? '?';
const octal = (mode: number): string => (mode & 0o777).toString(8).padStart(4, '0');

/** What is wrong with one CA file (errors refuse the config) and what is worth a warning. */
export async function caFindings(
  path: string,
  server: string,
  now: number,
  uid = process.getuid?.() ?? 0,
): Promise<{ errors: string[]; warnings: string[] }> {
  const errors: string[] = [];
  const warnings: string[] = [];
  let certs: X509Certificate[];
  try {
    ({ certs } = await readPemCa(path));
  } catch (e) {
    return { errors: [(e as Error).message], warnings };
  }
  const st = await stat(path);
  const risk = `anyone who can write it can add their own certificate and be trusted as the ${server} server`;
  if ((st.mode & 0o002) !== 0) errors.push(`${path} is writable by everyone (mode ${octal(st.mode)}): ${risk}: run chmod o-w ${path}`);
  else if ((st.mode & 0o020) !== 0) warnings.push(`${path} is writable by its group (gid ${st.gid}, mode ${octal(st.mode)}): ${risk}`);
  if (st.uid !== 0 && st.uid !== uid) warnings.push(`${path} is owned by uid ${st.uid}, not root or the daemon's user: ${risk}`);

  const dated = certs.map((c, i) => ({ i: i + 1, name: nameOf(c), from: Date.parse(c.validFrom), to: Date.parse(c.validTo) }));
  const invalid = dated
    .filter((c) => !(c.from <= now && now <= c.to))
    .map((c) => `certificate ${c.i} (${c.name}) ${c.to < now ? `expired on ${day(c.to)}` : `is not valid before ${day(c.from)}`}`);
  const valid = dated.filter((c) => c.from <= now && now <= c.to);
  if (valid.length === 0) {
    errors.push(`${path}: ${invalid.join('; ')}: no certificate in it is valid now, so no ${server} server can be verified`);
  } else {
    if (invalid.length > 0) warnings.push(`${path}: ${invalid.join('; ')} (${valid.length} of ${dated.length} valid now)`);
    const last = valid.reduce((a, b) => (b.to > a.to ? b : a));
    if (last.to - now < CA_EXPIRY_WARNING_MS) {
      warnings.push(
        `${path}: certificate ${last.i} (${last.name}) expires on ${day(last.to)}, in ${Math.floor((last.to - now) / DAY)} days: ` +
          `then no ${server} server can be verified`,
      );
    }
  }
  return { errors, warnings };
}

/** The caFile findings of the config: problems (refused) and warnings, each at its key's line. */
export async function checkCaFiles(config: Config, now = Date.now()): Promise<{ problems: ConfigProblem[]; warnings: ConfigProblem[] }> {
  const wanted = [
    { section: 'ldap', server: 'LDAP', path: config.ldap.caFile },
    { section: 'database', server: 'MySQL', path: config.database.caFile },
    // [publish] caFile of its own (one inherited from [database] is checked there)
    { section: 'publish', server: 'publish MySQL', path: config.publish.caFile === config.database.caFile ? null : config.publish.caFile },
  ] as const;
  const problems: ConfigProblem[] = [];
  const warnings: ConfigProblem[] = [];
  for (const { section, server, path } of wanted) {
    if (path === null) continue;
    const f = await caFindings(path, server, now);
    const at = { file: config.file, line: config.lines[`${section}.cafile`] ?? null, section, key: 'caFile' };
    for (const message of f.errors) problems.push({ ...at, message });
    for (const message of f.warnings) warnings.push({ ...at, message });
  }
  return { problems, warnings };
}
