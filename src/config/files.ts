// The files qos.conf names beyond itself: the PEM CA bundles of [ldap], [database] and [publish].
// Owns reading them and telling why one cannot be used (each problem naming file:line
// and key, as the parser does). Never connects anywhere; never keeps the contents.

import { readFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import type { Config, ConfigProblem } from './config.js';

/** Reads a PEM CA bundle; throws an Error saying why it is not one. */
export async function readPemCa(path: string): Promise<Buffer> {
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
  for (const [i, pem] of blocks.entries()) {
    try {
      new X509Certificate(pem);
    } catch (e) {
      throw new Error(`${path}: certificate ${i + 1} is not valid PEM: ${(e as Error).message}`);
    }
  }
  return data;
}

/** Every caFile of the config that cannot be read as PEM certificates. */
export async function checkCaFiles(config: Config): Promise<ConfigProblem[]> {
  const wanted: { section: 'ldap' | 'database' | 'publish'; path: string | null }[] = [
    { section: 'ldap', path: config.ldap.caFile },
    { section: 'database', path: config.database.caFile },
    // [publish] caFile of its own (one inherited from [database] is checked there)
    { section: 'publish', path: config.publish.caFile === config.database.caFile ? null : config.publish.caFile },
  ];
  const problems: ConfigProblem[] = [];
  for (const { section, path } of wanted) {
    if (path === null) continue;
    try {
      await readPemCa(path);
    } catch (e) {
      problems.push({
        file: config.file,
        line: config.lines[`${section}.cafile`] ?? null,
        section,
        key: 'caFile',
        message: (e as Error).message,
      });
    }
  }
  return problems;
}
