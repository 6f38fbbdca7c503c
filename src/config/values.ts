// Parsers of single qos.conf values that are more than a unit: interface names (the kernel's
// rules), LDAP and MySQL hosts, listen addresses, CIDR lists, portal endpoints, LDAP filters.
// Each returns the canonical value or throws a UnitError saying what was expected. Pure.

import { isIP } from 'node:net';
import { UnitError } from './units.js';
import { parseIp, parseCidr } from '../net/ip.js';

/**
 * An interface name as the kernel takes it (dev_valid_name: 1 to 15 bytes, not "." or "..",
 * no "/", ":" or whitespace), and never iptables' "+" wildcard (`-o +` matches every
 * interface). Beyond that, only letters, digits and _ . - @ (what reaches iptables and tc).
 */
export function checkIfName(raw: string): string {
  const bytes = Buffer.byteLength(raw, 'utf8');
  if (bytes === 0) throw new UnitError('expected an interface name, got an empty value');
  if (bytes > 15) throw new UnitError(`an interface name has at most 15 bytes, got ${bytes} in "${raw}"`);
  if (raw === '.' || raw === '..') throw new UnitError(`"${raw}" is not an interface name`);
  if (raw.includes('+'))
    throw new UnitError(`"${raw}": "+" is iptables' interface wildcard (it would match other interfaces), not part of a name`);
  if (raw.includes('/')) throw new UnitError(`"${raw}": an interface name has no "/"`);
  if (raw.includes(':')) throw new UnitError(`"${raw}": an interface name has no ":" (an alias label is not an interface)`);
  if (/\s/.test(raw)) throw new UnitError(`"${raw}": an interface name has no whitespace`);
  if (!/^[A-Za-z0-9_.@-]+$/.test(raw)) throw new UnitError(`"${raw}": expected an interface name of letters, digits, _ . - @`);
  return raw;
}

export const LOOPBACK_HOST = /^(localhost|127\.[0-9.]+|::1)$/i;
export const SQL_IDENT = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
export const LDAP_ATTR = /^[A-Za-z][A-Za-z0-9-]*$/;
export const SET_PREFIX = /^[A-Za-z][A-Za-z0-9_-]{0,20}$/;
export const CHAIN_PREFIX = /^[A-Za-z][A-Za-z0-9_-]{0,15}$/;
export const SITE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function parseLdapHost(raw: string): string {
  const v = raw.trim();
  const url = /^(ldaps?):\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?\/?$/.exec(v);
  if (url) {
    const port = url[3] === undefined ? null : Number(url[3]);
    if (port !== null && (port < 1 || port > 65535)) throw new UnitError(`port out of range in "${raw}"`);
    return `${url[1]}://${url[2]}${port === null ? '' : ':' + port}`;
  }
  const hp = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?$/.exec(v);
  if (!hp) throw new UnitError(`expected a host name, host:port or ldap:// / ldaps:// URL, got "${raw}"`);
  const port = hp[2] === undefined ? null : Number(hp[2]);
  if (port !== null && (port < 1 || port > 65535)) throw new UnitError(`port out of range in "${raw}"`);
  return `ldap://${hp[1]}${port === null ? '' : ':' + port}`;
}

export function parseDbHost(raw: string): { host: string; port: number | null } {
  const hp = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?$/.exec(raw.trim());
  if (!hp) throw new UnitError(`expected a host name or host:port, got "${raw}"`);
  const port = hp[2] === undefined ? null : Number(hp[2]);
  if (port !== null && (port < 1 || port > 65535)) throw new UnitError(`port out of range in "${raw}"`);
  return { host: hp[1]!.replace(/^\[|\]$/g, ''), port };
}

export function systemTimezone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

export function absFile(raw: string): string | null {
  if (raw === '') return null;
  if (!raw.startsWith('/')) throw new UnitError(`expected an absolute path, got "${raw}"`);
  return raw;
}

/** "127.0.0.1:9721", "[::1]:9721", "0.0.0.0:9721"; '' = off. */
export function parseListen(raw: string): { host: string; port: number } | null {
  if (raw === '') return null;
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([0-9.]+)):([0-9]{1,5})$/.exec(raw);
  const host = m ? (m[1] ?? m[2] ?? '').toLowerCase() : '';
  const port = m ? Number(m[3]) : 0;
  // node's own check (the user-IP parser refuses loopback and unspecified addresses, which are fine here)
  if (!m || isIP(host) !== (m[1] ? 6 : 4) || port < 1 || port > 65535)
    throw new UnitError(`expected an IP address and port such as 127.0.0.1:9721 or [::1]:9721, got "${raw}"`);
  return { host, port };
}

export function isLoopback(ip: string): boolean {
  return ip === '::1' || ip.startsWith('127.');
}

export function cidrList(raw: string, family: 4 | 6 | null): string[] {
  const out: string[] = [];
  for (const part of raw
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)) {
    const r = parseCidr(part);
    if (!r.ok) throw new UnitError(r.reason);
    if (family !== null && r.family !== family) throw new UnitError(`"${part}" is not an IPv${family} network`);
    out.push(r.cidr);
  }
  return out;
}

/**
 * `[firewall] passSources`: networks of either family, each with its prefix length and no host
 * bits (a bare address is refused: write /32 or /128), canonical; a /0 would switch the
 * firewall off on the users' interface and is refused (enabled = 0 says that).
 */
export function passSourceList(raw: string): string[] {
  const list = cidrList(raw, null);
  const all = list.find((c) => c.endsWith('/0'));
  if (all) throw new UnitError(`"${all}" would let every source through the users' interface (enabled = 0 turns the firewall off)`);
  return [...new Set(list)];
}

export function parseEndpoint(raw: string): { ip: string; port: number } | null {
  if (raw === '') return null;
  const m = /^([0-9.]+):([0-9]{1,5})$/.exec(raw);
  const ip = m ? parseIp(m[1]!) : null;
  if (!m || !ip?.ok || ip.family !== 4 || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    throw new UnitError(
      `expected an IPv4 address and port such as 172.22.199.5:80, got "${raw}"${raw.startsWith('[') ? ' (an IPv6 portal goes in portal6 / portalBan6)' : ''}`,
    );
  }
  return { ip: ip.ip, port: Number(m[2]) };
}

/** "[IPv6]:port" (the bracketed form: an IPv6 address holds colons itself). */
export function parseEndpoint6(raw: string): { ip: string; port: number } | null {
  if (raw === '') return null;
  const m = /^\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})$/.exec(raw);
  const ip = m ? parseIp(m[1]!) : null;
  if (!m || !ip?.ok || ip.family !== 6 || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    throw new UnitError(`expected an IPv6 address in brackets and a port such as [2001:db8::5]:80, got "${raw}"`);
  }
  // A link-local destination has no meaning without an interface: DNAT cannot use it.
  if ((parseInt(ip.ip.split(':')[0] || '0', 16) & 0xffc0) === 0xfe80)
    throw new UnitError(`${ip.ip} is link-local: a portal needs a routable address, got "${raw}"`);
  return { ip: ip.ip, port: Number(m[2]) };
}

export function checkFilter(raw: string): string {
  // A light sanity check: balanced parentheses, starts with "(".
  let depth = 0;
  for (const c of raw) {
    if (c === '(') depth++;
    if (c === ')') depth--;
    if (depth < 0) break;
  }
  if (!raw.startsWith('(') || depth !== 0) throw new UnitError(`expected an LDAP filter such as (objectClass=reselMachine), got "${raw}"`);
  return raw;
}

/** The bounds of a site's [sharing] weight, ours and every peer's row alike (src/sharing/peers.ts). */
export const WEIGHT_MIN = 0.001;
export const WEIGHT_MAX = 1000;
