// [ldap] of qos.conf -> LdapConfig, its problems collected in the shared Ctx (reader.ts); part
// of parseConfig (config.ts), which reads the sections in order. Pure.

import { checkLdapTransport } from './safety.js';
import type { Ctx, SectionReader } from './reader.js';
import type { LdapConfig } from './types.js';
import { LDAP_ATTR, absFile, checkFilter, parseLdapHost } from './values.js';

/** [ldap]: the server, the bind, the searches and the attribute names. */
export function readLdap(l: SectionReader, ctx: Ctx): LdapConfig {
  const url = l.parse('host', parseLdapHost, 'ldap://127.0.0.1');
  const starttls = l.bool('starttls');
  if (starttls && url.startsWith('ldaps:')) ctx.problem('ldap', 'starttls', 'StartTLS cannot be used with an ldaps:// URL (already TLS)');
  const attr = (key: string): string => l.ident(key, LDAP_ATTR, 'an LDAP attribute name');
  const ldap: LdapConfig = {
    url,
    starttls,
    caFile: l.parse('caFile', absFile, null),
    user: l.str('user'),
    password: l.str('password'),
    basePeople: l.str('basepeople'),
    baseOrga: l.str('baseorga'),
    baseHosts: l.str('basehosts'),
    peopleFilter: l.parse('peopleFilter', checkFilter, '(uid=*)'),
    orgaFilter: l.parse('orgaFilter', checkFilter, '(uid=*)'),
    hostsFilter: l.parse('hostsFilter', checkFilter, '(objectClass=*)'),
    attrs: {
      uid: attr('uidAttr'),
      owner: attr('ownerAttr'),
      ip: attr('ipAttr'),
      ip6: attr('ip6Attr'),
      zone: attr('zoneAttr'),
      host: attr('hostAttr'),
      endInternet: attr('endInternetAttr'),
      coupure: attr('coupureAttr'),
      ban: attr('banAttr'),
      cotiz: attr('cotizAttr'),
    },
    inactiveZone: l.str('inactiveZone'),
    pageSize: l.int('pageSize', 1, 100000),
    maxIpsPerMachine: l.int('maxIpsPerMachine', 1, 1_000_000),
    connectTimeoutMs: l.duration('connectTimeout', 100),
    timeoutMs: l.duration('timeout', 100),
    maxShrink: l.share('maxShrink'),
    refreshMs: l.duration('refresh', 0),
  };
  if (ldap.basePeople === '') ctx.problem('ldap', 'basepeople', 'must not be empty');
  checkLdapTransport(ctx, ldap);
  if (ldap.baseHosts === '') ctx.problem('ldap', 'basehosts', 'must not be empty');
  return ldap;
}
