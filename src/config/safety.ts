// Settings that leave the gateway open or its inputs forgeable, judged from qos.conf alone
// (issues 11 and 20): who may read or rewrite the file, open destinations that cover everything, IPv6 left
// unfiltered, a directory read anonymously in clear. Each is an error (refused) or a warning
// that names the risk. Pure: the file's mode and owner come in as arguments.

import { networkMatcher } from '../net/ip.js';
import type { Ctx } from './reader.js';
import type { FirewallConfig, LdapConfig } from './types.js';
import { LOOPBACK_HOST } from './values.js';

/** Prefixes shorter than these are "very broad" in openDestinations (a /8 is 16.7 M addresses). */
export const BROAD_PREFIX = { 4: 8, 6: 16 } as const;

const octal = (mode: number): string => (mode & 0o777).toString(8).padStart(4, '0');

/**
 * qos.conf itself: world-writable is refused whatever it holds (anyone could rewrite the
 * policy); group-writable, or another owner than root or us, is a warning. A file holding a
 * secret (a password, the token) must be root's or ours, with no group/other write bit and no
 * other read bit (refused otherwise: a reader has the password, a writer could point us at their
 * server).
 */
export function checkFileMode(ctx: Ctx, file: string, opts: { mode?: number; uid?: number; processUid?: number }, secret: boolean): void {
  const { mode, uid } = opts;
  if (secret) {
    const bad: string[] = [];
    if (uid !== undefined && uid !== 0 && uid !== (opts.processUid ?? process.getuid?.() ?? 0)) bad.push(`owned by uid ${uid}, not root`);
    if (mode !== undefined && (mode & 0o022) !== 0) bad.push('writable by its group or others');
    if (mode !== undefined && (mode & 0o004) !== 0) bad.push('readable by others');
    if (bad.length > 0) {
      const m = mode === undefined ? '' : ` (mode ${octal(mode)})`;
      ctx.problem('', null, `holds a password but is ${bad.join(', ')}${m}: run chown root:root ${file} && chmod 600 ${file}`, null);
    }
  }
  const risk = "rewrite the gateway's policy (who is let out, the rates, which directory says who has paid)";
  if (mode !== undefined && (mode & 0o002) !== 0) {
    ctx.problem('', null, `is writable by everyone (mode ${octal(mode)}): anyone on this host can ${risk}: run chmod o-w ${file}`, null);
  } else if (mode !== undefined && (mode & 0o020) !== 0 && !secret) {
    ctx.warn(
      '',
      null,
      `is writable by its group (mode ${octal(mode)}): its members can ${risk}: run chmod g-w ${file} unless that group is trusted as root`,
    );
  }
  const us = opts.processUid ?? process.getuid?.() ?? 0;
  if (uid !== undefined && uid !== 0 && uid !== us && !secret) {
    ctx.warn('', null, `is owned by uid ${uid}, not root or the daemon's user (uid ${us}): that user can ${risk}: run chown root ${file}`);
  }
}

/** The firewall: open destinations that cover every address (refused) or a very broad part (warned); IPv6 left unfiltered. */
export function checkFirewall(ctx: Ctx, fw: FirewallConfig): void {
  if (!fw.enabled) return;
  const everyone = 'every machine, allowed or not (unpaid, banned, cut, unregistered), reaches it';
  for (const family of [4, 6] as const) {
    const nets = fw.openDestinations.filter((c) => c.includes(':') === (family === 6));
    const bits = family === 4 ? 32 : 128;
    const all = nets.find((c) => c.endsWith('/0'));
    if (all) {
      ctx.problem('firewall', 'openDestinations', `${all} lets every IPv${family} address through the firewall: ${everyone}`);
      continue;
    }
    // CIDR blocks are nested or disjoint: the blocks no other contains add up exactly.
    const len = (c: string): number => Number(c.split('/')[1]);
    const outer = nets.filter(
      (a, i) => !nets.some((b, j) => j !== i && len(b) <= len(a) && (len(b) < len(a) || j < i) && networkMatcher([b])(a.split('/')[0]!)),
    );
    const covered = outer.reduce((sum, c) => sum + 2n ** BigInt(bits - len(c)), 0n);
    if (outer.length > 1 && covered === 2n ** BigInt(bits)) {
      ctx.problem(
        'firewall',
        'openDestinations',
        `${outer.join(', ')} together cover every IPv${family} address, so the firewall lets everything through: ${everyone}`,
      );
      continue;
    }
    const broad = nets.filter((c) => len(c) < BROAD_PREFIX[family]);
    if (broad.length > 0) {
      ctx.warn(
        'firewall',
        'openDestinations',
        `${broad.join(', ')} ${broad.length > 1 ? 'are' : 'is'} very broad (shorter than /${BROAD_PREFIX[family]}): ${everyone}; ` +
          'list only what users need before they are allowed (DNS, DHCP, the portal)',
      );
    }
  }
  if (!fw.v6Enabled) {
    ctx.warn(
      'firewall',
      'v6Enabled',
      'is 0 with the firewall on: IPv6 is neither filtered nor shaped, so machines refused over IPv4 (unpaid, banned, cut, unregistered) ' +
        'still get out over IPv6, unfiltered, wherever the gateway routes IPv6: set v6Enabled = 1 with net6 or user6Networks, ' +
        'or make sure the gateway forwards no IPv6 (net.ipv6.conf.all.forwarding = 0)',
    );
  }
}

/**
 * LDAP in clear (ldap:// without StartTLS): a password crosses the network readable, and the
 * directory can be forged on the path; read anonymously from another host, the latter is warned.
 */
export function checkLdapTransport(ctx: Ctx, ldap: LdapConfig): void {
  if (!ldap.url.startsWith('ldap:') || ldap.starttls) return;
  if (ldap.password !== '') {
    const fix = 'use ldaps:// or starttls = 1, with caFile';
    ctx.warn(
      'ldap',
      'password',
      `is sent in plaintext: ${ldap.url} without StartTLS (${fix}); the directory read with it can be forged on the path too`,
    );
    return;
  }
  const host = /^ldap:\/\/\[?([^\]/]+?)\]?(?::[0-9]+)?$/.exec(ldap.url)?.[1] ?? '';
  if (LOOPBACK_HOST.test(host)) return;
  ctx.warn(
    'ldap',
    'host',
    `${ldap.url} without StartTLS, read anonymously: the directory (who has paid, who is banned or cut) crosses the network ` +
      'unencrypted and unauthenticated, so anyone on the path can forge it, letting machines out or shutting them off: ' +
      'use ldaps:// or starttls = 1 with caFile',
  );
}
