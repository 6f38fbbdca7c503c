// [database] tls as mysql2's `ssl` options, for every pool that talks to the [database]
// server (volumes, the sharing table, published state written there). Verification always
// on: the chain (caFile, else the system CAs) and the name (host name, or IP address against
// the IP SANs); a server that offers no TLS is refused by mysql2 (HANDSHAKE_NO_SSL_SUPPORT):
// no plaintext fallback. Reads the CA file when called; never connects.

import { readFileSync } from 'node:fs';
import type { DatabaseConfig } from '../config/config.js';

export interface MysqlSsl {
  readonly ca?: Buffer;
  readonly rejectUnauthorized: true;
  readonly verifyIdentity: true;
  readonly minVersion: 'TLSv1.2';
}

export function mysqlSsl(d: Pick<DatabaseConfig, 'tls' | 'caFile'>): MysqlSsl | undefined {
  if (!d.tls) return undefined;
  return { ...(d.caFile ? { ca: readFileSync(d.caFile) } : {}), rejectUnauthorized: true, verifyIdentity: true, minVersion: 'TLSv1.2' };
}
