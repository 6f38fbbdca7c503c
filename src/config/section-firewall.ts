// [firewall] of qos.conf -> FirewallConfig, problems in the shared Ctx (reader.ts): interfaces,
// gateway IPs and networks (patterned keys eth_*, ip_*, net*), user networks, entitlement checks,
// portals, and the checks among them. Part of parseConfig (config.ts). Pure.

import { UnitError } from './units.js';
import { parseIp, isValidIpv4Prefix, parseCidr, prefixNetwork } from '../net/ip.js';
import { checkFirewall } from './safety.js';
import type { Ctx, SectionReader } from './reader.js';
import type { FirewallConfig } from './types.js';
import { checkIfName, cidrList, parseEndpoint, parseEndpoint6, passSourceList } from './values.js';

/** [firewall]: interfaces, user networks, the entitlement checks, portals. */
export function readFirewall(f: SectionReader, ctx: Ctx): FirewallConfig {
  const prefix4 = (key: string): string =>
    f.parse(
      key,
      (raw) => {
        if (raw !== '' && !isValidIpv4Prefix(raw))
          throw new UnitError(`expected an IPv4 prefix such as 172.22. (one to three octets and a dot), got "${raw}"`);
        return raw;
      },
      '',
    );
  const ifname = (key: string): string => f.parse(key, checkIfName, '');
  const gatewayIps: Record<string, string> = {};
  const interfaces: Record<string, string> = {};
  const networks: Record<string, string> = {};
  for (const { key, value } of f.entries()) {
    const lower = key.toLowerCase();
    if (lower.startsWith('eth_')) {
      interfaces[key] = ifname(key);
    } else if (lower.startsWith('ip_')) {
      f.used.add(lower);
      const ip = parseIp(value.trim());
      if (!ip.ok) ctx.problem('firewall', key, `expected an IP address, got "${value}" (${ip.reason})`);
      else gatewayIps[key] = ip.ip;
    } else if (lower.startsWith('net') && lower !== 'netns') {
      f.used.add(lower);
      networks[key] = value.trim();
    }
  }
  const areaPrefix = prefix4('areaPrefix');
  // Defaults: the network of the campus prefix, and net6.
  let userNetworks = f.parse('userNetworks', (raw) => cidrList(raw, 4), [] as string[]);
  if (userNetworks.length === 0) userNetworks = [prefixNetwork(areaPrefix)].filter((x): x is string => x !== null);
  let user6Networks = f.parse('user6Networks', (raw) => cidrList(raw, 6), [] as string[]);
  if (user6Networks.length === 0) {
    user6Networks = Object.entries(networks)
      .filter(([key]) => key.toLowerCase() === 'net6')
      .flatMap(([key, v]) => {
        const r = parseCidr(v);
        if (r.ok && r.family !== 6) ctx.problem('firewall', key, `"${v}" is not an IPv6 network`);
        return r.ok && r.family === 6 ? [r.cidr] : [];
      });
  }
  const firewall: FirewallConfig = {
    enabled: f.bool('enabled'),
    areaPrefix,
    areaOtherPrefix: prefix4('areaOtherPrefix'),
    area6Prefix: f.str('area6Prefix'),
    ethExt: ifname('eth_ext'),
    ethInt: ifname('eth_int'),
    tunnelName: f.parse('tunnel_name', (raw) => (raw === '' ? '' : checkIfName(raw)), ''),
    ipInt: gatewayIps['ip_int'] ?? '',
    gatewayIps,
    interfaces,
    networks,
    v6Enabled: f.bool('v6Enabled'),
    netns: f.parse(
      'netns',
      (raw) => {
        if (raw !== '' && !/^[A-Za-z0-9_.-]{1,64}$/.test(raw))
          throw new UnitError(`expected a network namespace name (letters, digits, _ . -), got "${raw}"`);
        return raw;
      },
      '',
    ),
    userNetworks,
    user6Networks,
    checkPayment: f.bool('checkPayment'),
    checkCoupure: f.bool('checkCoupure'),
    checkBan: f.bool('checkBan'),
    banServices: f
      .str('banServices')
      .split(',')
      .map((x) => x.trim().toLowerCase())
      .filter(Boolean),
    checkBlacklist: f.bool('checkBlacklist'),
    openDestinations: f.parse('openDestinations', (raw) => cidrList(raw, null), [] as string[]),
    passSources: f.parse('passSources', passSourceList, [] as string[]),
    refuse: f.oneOf('refuse', ['reject', 'drop'] as const),
    portal: f.parse('portal', parseEndpoint, null),
    portalBan: f.parse('portalBan', parseEndpoint, null),
    portal6: f.parse('portal6', parseEndpoint6, null),
    portalBan6: f.parse('portalBan6', parseEndpoint6, null),
    portalPorts: f.parse(
      'portalPorts',
      (raw) =>
        raw
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean)
          .map((x) => {
            if (!/^[0-9]{1,5}$/.test(x) || Number(x) < 1 || Number(x) > 65535)
              throw new UnitError(`expected TCP ports such as 80, got "${x}"`);
            return Number(x);
          }),
      [80],
    ),
  };
  for (const [key, value] of Object.entries(firewall.networks)) {
    const r = parseCidr(value);
    if (value !== '' && !r.ok) ctx.problem('firewall', key, r.reason);
  }
  if (firewall.enabled && firewall.v6Enabled && user6Networks.length === 0) {
    // user6Networks bounds which IPv6 addresses a machine may hold: with none, any address an
    // LDAP entry holds (a server's, another campus's) would enter the allow set unchecked.
    ctx.problem(
      'firewall',
      'user6Networks',
      'the firewall filters IPv6 (enabled = 1, v6Enabled = 1) but no IPv6 user network is configured, so any IPv6 address an LDAP entry holds would be let out unchecked: set net6 or user6Networks (or v6Enabled = 0 to leave IPv6 to the rest of FORWARD deliberately)',
      ctx.lineOf('firewall', f.has('user6Networks') ? 'user6Networks' : f.has('net6') ? 'net6' : 'v6Enabled'),
    );
  }
  for (const key of ['portal6', 'portalBan6'] as const) {
    if (firewall[key] && !firewall.v6Enabled) ctx.problem('firewall', key, 'IPv6 is off (v6Enabled = 0): no IPv6 portal');
  }
  checkFirewall(ctx, firewall);
  if (firewall.ethExt !== '' && firewall.ethExt === firewall.ethInt) {
    ctx.problem('firewall', 'eth_int', `must differ from eth_ext (both "${firewall.ethExt}")`);
  }
  return firewall;
}
