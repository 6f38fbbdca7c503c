// The LDAP directory source (ldapts). Owns the connection (anonymous or simple bind,
// ldaps:// or StartTLS with certificate verification, timeouts), the three paged
// searches (people, organisations, machines), and the normalisation of entries.
// A search cut short or refused is a SourceUnavailableError: never a shorter list.

import { readFileSync } from 'node:fs';
import { Client, type Entry } from 'ldapts';
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import type { Config, LdapConfig } from '../config/config.js';
import { buildDirectory, type RawEntry } from './directory.js';
import { SourceUnavailableError, type Directory } from './types.js';

function normalizeEntry(e: Entry): RawEntry {
  const attrs = new Map<string, string[]>();
  for (const [k, v] of Object.entries(e)) {
    if (k === 'dn') continue;
    const values = Array.isArray(v) ? v : [v];
    attrs.set(k.toLowerCase(), values.map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : String(x))));
  }
  return { dn: e.dn, attrs };
}

function describe(e: unknown): string {
  const err = e as { message?: string; code?: string | number; name?: string };
  const msg = (err.message ?? String(e)).trim();
  // ldapts result-code errors: "SizeLimitExceededError" -> "size limit exceeded"
  if (err.name && /^[A-Z]\w+Error$/.test(err.name) && err.name !== 'Error' && err.name !== 'TypeError') {
    const words = err.name.replace(/Error$/, '').replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
    return msg ? `${words} (${msg})` : words;
  }
  return msg;
}

export class LdapSource {
  private readonly tls: ConnectionOptions;

  constructor(private readonly config: Pick<Config, 'ldap' | 'firewall'>) {
    const ca = config.ldap.caFile ? readFileSync(config.ldap.caFile) : undefined;
    const host = new URL(config.ldap.url).hostname.replace(/^\[|\]$/g, '');
    // Certificate verification always on: rejectUnauthorized is never turned off. The name checked
    // is `host` (also given for StartTLS: on an existing socket, Node would otherwise check an IP
    // address URL against "localhost"); SNI only for names, never for IP addresses (RFC 6066).
    this.tls = { ca, host, servername: isIP(host) === 0 ? host : undefined, rejectUnauthorized: true, minVersion: 'TLSv1.2' };
  }

  get ldapConfig(): LdapConfig {
    return this.config.ldap;
  }

  /** A connected (StartTLS'd, bound) client; the caller unbinds it. */
  private async connect(): Promise<Client> {
    const l = this.config.ldap;
    // ldapts treats any tlsOptions as "connect with TLS": give them only for ldaps://;
    // StartTLS gets them in startTLS().
    const secure = l.url.startsWith('ldaps:');
    const client = new Client({ url: l.url, timeout: l.timeoutMs, connectTimeout: l.connectTimeoutMs, strictDN: false, ...(secure ? { tlsOptions: this.tls } : {}) });
    try {
      if (l.starttls) {
        try {
          await client.startTLS({ ...this.tls }); // a copy: ldapts adds the socket to the object it gets
        } catch (e) {
          throw new SourceUnavailableError('ldap', `StartTLS to ${l.url} failed (no fallback to plaintext): ${describe(e)}`, { cause: e });
        }
      }
      if (l.user !== '') {
        try {
          await client.bind(l.user, l.password);
        } catch (e) {
          throw new SourceUnavailableError('ldap', `bind as ${l.user} to ${l.url} failed: ${describe(e)}`, { cause: e });
        }
      }
      return client;
    } catch (e) {
      await client.unbind().catch(() => undefined);
      throw e;
    }
  }

  /** One complete paged search on its own connection (ldapts mixes up concurrent paged searches on one). */
  private async search(base: string, filter: string, attributes: string[], what: string): Promise<RawEntry[]> {
    if (base === '') return [];
    const l = this.config.ldap;
    const client = await this.connect();
    try {
      const res = await client.search(base, { scope: 'sub', filter, attributes, paged: { pageSize: l.pageSize }, timeLimit: Math.ceil(l.timeoutMs / 1000) });
      return res.searchEntries.map(normalizeEntry);
    } catch (e) {
      throw new SourceUnavailableError('ldap', `search of ${what} under ${base} at ${l.url} failed: ${describe(e)}`, { cause: e });
    } finally {
      await client.unbind().catch(() => undefined);
    }
  }

  /** Fetches people, organisations and machines; complete or throws SourceUnavailableError. */
  async fetch(now: Date = new Date()): Promise<Directory> {
    const l = this.config.ldap;
    const a = l.attrs;
    const ownerAttrs = [a.uid, a.endInternet, a.coupure, a.ban, a.cotiz];
    const hostAttrs = [a.host, a.owner, a.ip, a.ip6, a.zone];
    try {
      const [people, orgas, hosts] = await Promise.all([
        this.search(l.basePeople, l.peopleFilter, ownerAttrs, 'people'),
        this.search(l.baseOrga, l.orgaFilter, ownerAttrs, 'organisations'),
        this.search(l.baseHosts, l.hostsFilter, hostAttrs, 'machines'),
      ]);
      return buildDirectory({ people, orgas, hosts }, { ldap: l, firewall: this.config.firewall, fetchedAt: now.toISOString() });
    } catch (e) {
      if (e instanceof SourceUnavailableError) throw e;
      throw new SourceUnavailableError('ldap', `${l.url}: ${describe(e)}`, { cause: e });
    }
  }
}
