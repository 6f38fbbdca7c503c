// The LDAP directory source (ldapts). Owns the connection (anonymous or simple bind,
// ldaps:// or StartTLS with certificate verification, timeouts), the three paged
// searches (people, organisations, machines), and the normalisation of entries.
// A search cut short or refused is a SourceUnavailableError: never a shorter list.

import { readFileSync } from 'node:fs';
import { Client } from 'ldapts';
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import type { Config, LdapConfig } from '../config/config.js';
import {
  buildOwner,
  draftHost,
  type BuildOptions,
  finishBuild,
  OwnerCollector,
  parseGeneralizedTime,
  type BuiltDirectory,
  type HostDraft,
  type RawEntry,
} from './directory.js';
import { decodeEntriesOf, type DecodedEntry } from './ldapdecode.js';
import type { Changes } from './patch.js';
import { SourceUnavailableError, type Directory, type Owner, type Skipped } from '../sources/types.js';

/** Operational attribute: only returned when asked for by name. */
export const MODIFY_TIMESTAMP = 'modifyTimestamp';

/** epoch ms -> generalizedTime YYYYMMDDHHMMSSZ (UTC, whole seconds, rounded down). */
export function toGeneralizedTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
}

/** An assertion value escaped for a filter (RFC 4515: * ( ) \ NUL). */
export function escapeFilterValue(v: string): string {
  return v.replace(/[*()\\\0]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Newest modifyTimestamp of a list of entries, epoch ms; null when none carries one. */
export function newestModify(lists: readonly (readonly RawEntry[])[]): number | null {
  let newest: number | null = null;
  for (const list of lists) {
    for (const e of list) {
      const raw = e.attrs.get('modifytimestamp')?.[0];
      const t = raw === undefined ? null : parseGeneralizedTime(raw);
      if (t !== null && (newest === null || t > newest)) newest = t;
    }
  }
  return newest;
}

export interface FullFetch extends BuiltDirectory {
  /** newest modifyTimestamp among the entries; null = the server gives none (no change searches then) */
  readonly newestMs: number | null;
}

export interface ChangeFetch extends Changes {
  readonly newestMs: number | null;
}

/** How many searches of each kind this source ran (tests prove a cycle did no full fetch). */
export interface LdapStats {
  full: number;
  change: number;
  ownerMachines: number;
  /** entries the change searches returned, in all */
  changeEntries: number;
}

function describe(e: unknown): string {
  const err = e as { message?: string; code?: string | number; name?: string };
  const msg = (err.message ?? String(e)).trim();
  // ldapts result-code errors: "SizeLimitExceededError" -> "size limit exceeded"
  if (err.name && /^[A-Z]\w+Error$/.test(err.name) && err.name !== 'Error' && err.name !== 'TypeError') {
    const words = err.name
      .replace(/Error$/, '')
      .replace(/([a-z])([A-Z])/g, '$1 $2')
      .toLowerCase();
    return msg ? `${words} (${msg})` : words;
  }
  return msg;
}

export class LdapSource {
  private readonly tls: ConnectionOptions;
  readonly stats: LdapStats = { full: 0, change: 0, ownerMachines: 0, changeEntries: 0 };

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
    const client = new Client({
      url: l.url,
      timeout: l.timeoutMs,
      connectTimeout: l.connectTimeoutMs,
      strictDN: false,
      ...(secure ? { tlsOptions: this.tls } : {}),
    });
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

  /**
   * One complete paged search on a connected client, its entries decoded page by page like the
   * full fetch's (ldapdecode.ts): a change search that brings back the whole directory (a mass
   * modification, a bulk load within the margin) holds one compact entry per answer, not
   * ldapts' entry objects plus their normalized copies (1.47 GB at 100k users in the bench).
   */
  private async searchOn(client: Client, base: string, filter: string, attributes: string[], what: string): Promise<RawEntry[]> {
    if (base === '') return [];
    const l = this.config.ldap;
    try {
      decodeEntriesOf(client, attributes);
      const out: RawEntry[] = [];
      const pages = client.searchPaginated(base, {
        scope: 'sub',
        filter,
        attributes,
        paged: { pageSize: l.pageSize },
        timeLimit: Math.ceil(l.timeoutMs / 1000),
      });
      for await (const page of pages) for (const e of page.searchEntries) out.push(e as unknown as DecodedEntry);
      return out;
    } catch (e) {
      throw new SourceUnavailableError('ldap', `search of ${what} under ${base} at ${l.url} failed: ${describe(e)}`, { cause: e });
    }
  }

  private async withClient<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    const client = await this.connect();
    try {
      return await fn(client);
    } finally {
      await client.unbind().catch(() => undefined);
    }
  }

  private attrLists(): { owner: string[]; host: string[] } {
    const a = this.config.ldap.attrs;
    return {
      owner: [a.uid, a.endInternet, a.coupure, a.ban, a.cotiz, MODIFY_TIMESTAMP],
      host: [a.host, a.owner, a.ip, a.ip6, a.zone, MODIFY_TIMESTAMP],
    };
  }

  private buildOptions(now: Date, holders?: ReadonlyMap<string, string>): BuildOptions {
    return { ldap: this.config.ldap, firewall: this.config.firewall, fetchedAt: now.toISOString(), holders };
  }

  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof SourceUnavailableError) throw e;
      throw new SourceUnavailableError('ldap', `${this.config.ldap.url}: ${describe(e)}`, { cause: e });
    }
  }

  /** Fetches people, organisations and machines; complete or throws SourceUnavailableError. */
  async fetch(now: Date = new Date()): Promise<Directory> {
    return (await this.fetchFull(now)).directory;
  }

  /**
   * Every page of a paged search, one after the other, to `each` (one connection per search:
   * ldapts mixes up concurrent paged searches on one). Nothing of a page is kept but what `each` keeps.
   */
  private async scan(base: string, filter: string, attributes: string[], what: string, each: (e: RawEntry) => void): Promise<void> {
    if (base === '') return;
    const l = this.config.ldap;
    await this.withClient(async (client) => {
      try {
        decodeEntriesOf(client, attributes);
        const pages = client.searchPaginated(base, {
          scope: 'sub',
          filter,
          attributes,
          paged: { pageSize: l.pageSize },
          timeLimit: Math.ceil(l.timeoutMs / 1000),
        });
        for await (const page of pages) {
          for (const e of page.searchEntries) each(e as unknown as DecodedEntry);
        }
      } catch (e) {
        throw new SourceUnavailableError('ldap', `search of ${what} under ${base} at ${l.url} failed: ${describe(e)}`, { cause: e });
      }
    });
  }

  /**
   * The full fetch, with what a later patch needs (build state, newest modifyTimestamp). Built
   * page by page: each entry becomes an Owner or a machine draft at once and the page is dropped.
   */
  async fetchFull(now: Date = new Date(), holders?: ReadonlyMap<string, string>): Promise<FullFetch> {
    const l = this.config.ldap;
    const at = this.attrLists();
    const o = this.buildOptions(now, holders);
    this.stats.full++;
    const skipped: Skipped[] = [];
    const people: Owner[] = [];
    const orgas: Owner[] = [];
    const hosts: HostDraft[] = [];
    let newestMs: number | null = null;
    const seen = (e: RawEntry): void => {
      const raw = e.attrs.get('modifytimestamp')?.[0];
      const t = raw === undefined ? null : parseGeneralizedTime(raw);
      if (t !== null && (newestMs === null || t > newestMs)) newestMs = t;
    };
    return this.guard(async () => {
      await Promise.all([
        this.scan(l.basePeople, l.peopleFilter, at.owner, 'people', (e) => {
          seen(e);
          const ow = buildOwner(e, 'person', o, skipped);
          if (ow) people.push(ow);
        }),
        this.scan(l.baseOrga, l.orgaFilter, at.owner, 'organisations', (e) => {
          seen(e);
          const ow = buildOwner(e, 'organisation', o, skipped);
          if (ow) orgas.push(ow);
        }),
        this.scan(l.baseHosts, l.hostsFilter, at.host, 'machines', (e) => {
          seen(e);
          hosts.push(draftHost(e, o));
        }),
      ]);
      // People before organisations, each in LDAP order: what buildDirectory does.
      const owners = new OwnerCollector(o, skipped);
      for (const ow of people) owners.addOwner(ow);
      for (const ow of orgas) owners.addOwner(ow);
      return { ...finishBuild(owners, hosts, skipped, o), newestMs };
    });
  }

  /**
   * The entries of the three searches modified at or after `sinceMs` (the configured filters
   * AND modifyTimestamp>=...), one connection, one search after the other. Deleted entries
   * are not seen: only a full fetch drops them.
   */
  async fetchChanges(sinceMs: number): Promise<ChangeFetch> {
    const l = this.config.ldap;
    const at = this.attrLists();
    const since = `(${MODIFY_TIMESTAMP}>=${toGeneralizedTime(Math.max(0, sinceMs))})`;
    const and = (f: string): string => `(&${f}${since})`;
    this.stats.change++;
    return this.guard(() =>
      this.withClient(async (c) => {
        const people = await this.searchOn(c, l.basePeople, and(l.peopleFilter), at.owner, 'people changed');
        const orgas = await this.searchOn(c, l.baseOrga, and(l.orgaFilter), at.owner, 'organisations changed');
        const hosts = await this.searchOn(c, l.baseHosts, and(l.hostsFilter), at.host, 'machines changed');
        this.stats.changeEntries += people.length + orgas.length + hosts.length;
        return { people, orgas, hosts, newestMs: newestModify([people, orgas, hosts]) };
      }),
    );
  }

  /** Machines whose owner attribute names one of these DNs (new owners: their machines were skipped before). */
  async fetchMachinesOf(ownerDns: readonly string[]): Promise<RawEntry[]> {
    if (ownerDns.length === 0) return [];
    const l = this.config.ldap;
    const at = this.attrLists();
    return this.guard(() =>
      this.withClient(async (c) => {
        const out: RawEntry[] = [];
        for (let i = 0; i < ownerDns.length; i += 50) {
          const terms = ownerDns
            .slice(i, i + 50)
            .map((dn) => `(${l.attrs.owner}=${escapeFilterValue(dn)})`)
            .join('');
          this.stats.ownerMachines++;
          out.push(...(await this.searchOn(c, l.baseHosts, `(&${l.hostsFilter}(|${terms}))`, at.host, 'machines of new owners')));
        }
        return out;
      }),
    );
  }
}
