// Strict IP parsing into canonical text. Everything that reaches ipset, iptables or a
// log line as an address went through here. Pure; no DNS, no I/O.
//
// IPv4: exactly four decimal octets 0-255 without leading zeros (010 could be read as
// octal by other tools). IPv6: RFC 4291 text, returned in RFC 5952 canonical form
// (lowercase, longest zero run compressed). Refused as host addresses: unspecified,
// loopback, multicast, limited broadcast, 0/8 and 240/4, CIDR, zone ids, whitespace.

import { isIPv4, isIPv6 } from 'node:net';

export type Family = 4 | 6;
export type IpParse = { ok: true; ip: string; family: Family } | { ok: false; reason: string };

const V4 = /^(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})$/;

function describe(raw: string): string | null {
  if (raw === '') return 'empty value';
  if (/[\r\n]/.test(raw)) return 'contains a newline';
  if (/[^0-9A-Fa-f:./%\s]/.test(raw)) return 'contains characters that are not part of an IP address';
  if (/\s/.test(raw)) return 'contains whitespace';
  if (raw.includes('/')) return 'CIDR notation is not a host address';
  if (raw.includes('%')) return 'zone index not allowed';
  return null;
}

export function parseIpv4(raw: string): IpParse {
  const bad = describe(raw);
  if (bad) return { ok: false, reason: bad };
  const m = V4.exec(raw);
  if (!m) {
    if (/^[0-9.]+$/.test(raw) && raw.split('.').some((o) => o.length > 1 && o.startsWith('0'))) {
      return { ok: false, reason: 'leading zero in an octet' };
    }
    return { ok: false, reason: 'not a dotted-quad IPv4 address' };
  }
  const o = [m[1], m[2], m[3], m[4]].map(Number) as [number, number, number, number];
  if (o.some((x) => x > 255)) return { ok: false, reason: 'octet above 255' };
  if (o[0] === 0) return { ok: false, reason: o.every((x) => x === 0) ? 'unspecified address 0.0.0.0' : 'address in 0.0.0.0/8' };
  if (o[0] === 127) return { ok: false, reason: 'loopback address' };
  if (o[0] >= 224 && o[0] <= 239) return { ok: false, reason: 'multicast address' };
  if (o.every((x) => x === 255)) return { ok: false, reason: 'broadcast address' };
  if (o[0] >= 240) return { ok: false, reason: 'reserved address (240.0.0.0/4)' };
  return { ok: true, ip: o.join('.'), family: 4 };
}

/** Expands an IPv6 text to its 8 16-bit groups (input already validated by isIPv6). */
function groups6(raw: string): number[] {
  let text = raw.toLowerCase();
  // trailing embedded IPv4 (::ffff:1.2.3.4)
  const v4 = /^(.*:)([0-9.]+)$/.exec(text);
  if (v4 && v4[2]!.includes('.')) {
    const o = v4[2]!.split('.').map(Number);
    text = `${v4[1]}${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? (text.split('::') as [string, string]) : [text, undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const fill = tail === undefined ? [] : new Array<string>(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((g) => parseInt(g, 16));
}

export function canonical6(g: readonly number[]): string {
  // Longest run of zero groups (length >= 2), first one on ties.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export function parseIpv6(raw: string): IpParse {
  const bad = describe(raw);
  if (bad) return { ok: false, reason: bad };
  if (!isIPv6(raw)) return { ok: false, reason: 'not an IPv6 address' };
  const g = groups6(raw);
  if (g.length !== 8 || g.some((x) => !(x >= 0 && x <= 0xffff))) return { ok: false, reason: 'not an IPv6 address' };
  if (g.every((x) => x === 0)) return { ok: false, reason: 'unspecified address ::' };
  if (g.slice(0, 7).every((x) => x === 0) && g[7] === 1) return { ok: false, reason: 'loopback address' };
  if ((g[0]! & 0xff00) === 0xff00) return { ok: false, reason: 'multicast address' };
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return { ok: false, reason: 'IPv4-mapped address: write the IPv4 address' };
  return { ok: true, ip: canonical6(g), family: 6 };
}

/** Either family; IPv4 if it has no colon. */
export function parseIp(raw: string): IpParse {
  return raw.includes(':') ? parseIpv6(raw) : parseIpv4(raw);
}

export function isValidIpv4Prefix(prefix: string): boolean {
  return (
    /^((0|[1-9][0-9]{0,2})\.){1,3}$/.test(prefix) &&
    prefix
      .split('.')
      .slice(0, -1)
      .every((o) => Number(o) <= 255)
  );
}

/**
 * The full IPv4 address of an `ipHostNumber` value: a full dotted quad as is, else
 * the campus prefix + the suffix (`172.22.` + `200.3`). Suffix and prefix must make
 * exactly four octets.
 */
const SUFFIX2 = /^(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})$/;
const goodPrefix2 = new Map<string, boolean>();

/** A two-octet prefix ("172.22.") under which any two-octet suffix gives a host address. */
function isGoodPrefix2(prefix: string): boolean {
  let ok = goodPrefix2.get(prefix);
  if (ok === undefined) {
    // The refusals of parseIpv4 that depend on the last two octets need a first octet of 0 or 255
    // (0/8, broadcast), refused here with the prefix: then only octets above 255 remain.
    const p = /^(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.$/.exec(prefix);
    ok = p !== null && parseIpv4(`${prefix}1.1`).ok && parseIpv4(`${prefix}255.255`).ok && parseIpv4(`${prefix}0.0`).ok;
    if (goodPrefix2.size < 100) goodPrefix2.set(prefix, ok);
  }
  return ok;
}

export function joinIpv4(prefix: string, value: string): IpParse {
  // Fast path, the usual case: a "X.Y" suffix without leading zeros under a good prefix.
  const m = SUFFIX2.exec(value);
  if (m && Number(m[1]) <= 255 && Number(m[2]) <= 255 && isGoodPrefix2(prefix)) return { ok: true, ip: prefix + value, family: 4 };
  const bad = describe(value);
  if (bad) return { ok: false, reason: bad };
  if (isIPv4(value) || value.split('.').length === 4) return parseIpv4(value);
  if (prefix === '') return { ok: false, reason: `"${value}" is a suffix but no prefix is configured` };
  const full = prefix + value;
  if (full.split('.').length !== 4) return { ok: false, reason: `prefix "${prefix}" + suffix "${value}" is not four octets` };
  return parseIpv4(full);
}

/**
 * The full IPv6 address of an `ipv6HostNumber` value. A value that is a routable-looking
 * address on its own (global unicast 2000::/3, unique local fc00::/7, link-local
 * fe80::/10) is taken as is; anything else (`200::3`, `d200::3`) is a suffix to the prefix.
 */
export function joinIpv6(prefix: string, value: string): IpParse {
  const bad = describe(value);
  if (bad) return { ok: false, reason: bad };
  const direct = parseIpv6(value);
  if (prefix === '') return direct;
  if (direct.ok) {
    const first = parseInt(direct.ip.split(':')[0] || '0', 16);
    const full = (first & 0xe000) === 0x2000 || (first & 0xfe00) === 0xfc00 || (first & 0xffc0) === 0xfe80;
    if (full) return direct;
  }
  return parseIpv6(prefix + value);
}

/** A sort key that orders like compareIp: fixed-width hex (IPv4 before IPv6). */
export function ipSortKey(ip: string): string {
  if (!ip.includes(':')) {
    const o = ip.split('.');
    let k = '4';
    for (const x of o) k += Number(x).toString(16).padStart(2, '0');
    return k;
  }
  return (
    '6' +
    groups6(ip)
      .map((g) => g.toString(16).padStart(4, '0'))
      .join('')
  );
}

/** Sorts a list of IPs numerically (v4 before v6), computing each key once. */
export function sortIps(ips: string[]): string[] {
  if (ips.length < 2) return ips;
  const keyed = ips.map((ip) => [ipSortKey(ip), ip] as const);
  keyed.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (let i = 0; i < ips.length; i++) ips[i] = keyed[i]![1];
  return ips;
}

/** Sorts IPs in numeric order, v4 before v6 (stable output for humans and diffs). */
export function compareIp(a: string, b: string): number {
  const fa = a.includes(':') ? 6 : 4;
  const fb = b.includes(':') ? 6 : 4;
  if (fa !== fb) return fa - fb;
  if (fa === 4) {
    const x = a.split('.').map(Number);
    const y = b.split('.').map(Number);
    for (let i = 0; i < 4; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
    return 0;
  }
  const x = groups6(a);
  const y = groups6(b);
  for (let i = 0; i < 8; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return 0;
}

export type CidrParse = { ok: true; cidr: string; family: Family } | { ok: false; reason: string };

/** Strict CIDR ("172.22.192.0/19", "2001:660:7302:d000::/52"): host bits must be zero. */
export function parseCidr(raw: string): CidrParse {
  const m = /^([^/\s]+)\/([0-9]{1,3})$/.exec(raw);
  if (!m) return { ok: false, reason: `expected a network such as 172.22.192.0/19, got "${raw}"` };
  const addr = m[1]!;
  const len = Number(m[2]);
  if (addr.includes(':')) {
    if (!isIPv6(addr) || len > 128) return { ok: false, reason: `not an IPv6 network: "${raw}"` };
    const g = groups6(addr);
    for (let bit = len; bit < 128; bit++) {
      if ((g[Math.floor(bit / 16)]! >> (15 - (bit % 16))) & 1) return { ok: false, reason: `"${raw}" has host bits set` };
    }
    return { ok: true, cidr: `${canonical6(g)}/${len}`, family: 6 };
  }
  if (!V4.test(addr) || len > 32) return { ok: false, reason: `not an IPv4 network: "${raw}"` };
  const o = addr.split('.').map(Number);
  if (o.some((x) => x > 255)) return { ok: false, reason: `not an IPv4 network: "${raw}"` };
  const n = ((o[0]! << 24) >>> 0) + (o[1]! << 16) + (o[2]! << 8) + o[3]!;
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  if ((n & ~mask) >>> 0 !== 0) return { ok: false, reason: `"${raw}" has host bits set` };
  return { ok: true, cidr: `${o.join('.')}/${len}`, family: 4 };
}

/** The network a campus prefix covers: "172.22." -> 172.22.0.0/16. */
export function prefixNetwork(prefix: string): string | null {
  if (!isValidIpv4Prefix(prefix)) return null;
  const octets = prefix.split('.').filter((x) => x !== '');
  const full = [...octets, ...new Array<string>(4 - octets.length).fill('0')];
  return `${full.join('.')}/${octets.length * 8}`;
}

const matchers = new WeakMap<readonly string[], (ip: string) => boolean>();

/**
 * A membership test for canonical IPs against a list of canonical CIDRs (from parseCidr),
 * built once per list object. An IP of the other family is never inside.
 */
export function networkMatcher(cidrs: readonly string[]): (ip: string) => boolean {
  const known = matchers.get(cidrs);
  if (known) return known;
  const v4: [number, number][] = [];
  const v6: [number[], number][] = [];
  for (const c of cidrs) {
    const [addr, lenRaw] = c.split('/') as [string, string];
    const len = Number(lenRaw);
    if (addr.includes(':')) v6.push([groups6(addr), len]);
    else v4.push([v4Number(addr), len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0]);
  }
  const test = (ip: string): boolean => {
    if (!ip.includes(':')) {
      const n = v4Number(ip);
      return v4.some(([base, mask]) => (n & mask) >>> 0 === base);
    }
    const g = groups6(ip);
    return v6.some(([base, len]) => {
      for (let i = 0; i * 16 < len; i++) {
        const bits = Math.min(16, len - i * 16);
        const mask = (0xffff << (16 - bits)) & 0xffff;
        if ((g[i]! & mask) !== base[i]) return false;
      }
      return true;
    });
  };
  matchers.set(cidrs, test);
  return test;
}

/** A canonical dotted quad as an unsigned 32-bit number (no allocation: called per IP of a build). */
function v4Number(ip: string): number {
  let n = 0;
  let octet = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) {
      n = n * 256 + octet;
      octet = 0;
    } else {
      octet = octet * 10 + (c - 48);
    }
  }
  return n * 256 + octet;
}
