// The nftables form of the desired packet-filter state: one table `inet reselqos` holding the
// QoS and firewall sets under the ipset names (qos_d0.., v6qos_*, *allow, *banned), the marking
// or classifying chains, the firewall chains and the portal redirects, at hooks and priorities
// that reproduce the iptables objects of model.ts (mangle POSTROUTING, the first rules of filter
// FORWARD, nat PREROUTING). Every rule carries `comment "reselqos:<what>:<hash>"`, the hash over
// its chain and its text as rendered here, so that the read-back (nft-read.ts) compares rules by
// identity, never by how `nft -j` spells them back. Pure: built from the planner's Desired and
// the config; rendered as one `nft -f` script, which the kernel applies as one transaction.

import { createHash } from 'node:crypto';
import type { Config } from '../config/config.js';
import type { Desired } from '../plan/desired.js';
import { DIRECTIONS, type Direction } from '../policy/policy.js';
import { COMMENT_PREFIX, Names, classid, type IpFamily, type SetFamily } from './names.js';

export const NFT_TABLE = 'reselqos';

export interface NftSetSpec {
  readonly name: string;
  readonly type: 'ipv4_addr' | 'ipv6_addr';
  readonly members: ReadonlySet<string>;
  /** per-element packet and byte counters (the QoS sets or maps with `counters`: top talkers) */
  readonly counters?: boolean;
}

export interface NftBase {
  readonly type: 'filter' | 'nat';
  readonly hook: 'postrouting' | 'prerouting' | 'forward';
  /** numeric priority: mangle -150, dstnat -100, filter 0 */
  readonly prio: number;
}

export interface NftRuleSpec {
  /** the rule as written after `add rule inet reselqos <chain>`, without its comment */
  readonly text: string;
  /** `reselqos:<what>:<hash>`: the rule's identity */
  readonly comment: string;
}

export interface NftChainSpec {
  readonly name: string;
  /** a base chain's hook; absent for a chain reached by jump */
  readonly base?: NftBase;
  readonly rules: readonly NftRuleSpec[];
}

/**
 * The one-lookup form (`lookup = map`): address → mark (classifier fw) or class id (classify),
 * one map per family and direction, replacing the per-group sets in the marking chains.
 */
export interface NftMapSpec {
  readonly name: string;
  readonly type: 'ipv4_addr' | 'ipv6_addr';
  readonly data: 'mark' | 'classid';
  /** address -> value as nft prints it back (a mark as a decimal number, a class id as "1:10") */
  readonly entries: ReadonlyMap<string, string>;
  readonly counters?: boolean;
}

export interface NftOptions {
  readonly lookup?: NftLookup;
  /** per-element counters on the QoS sets or maps: each address's bytes, read back with the table */
  readonly counters?: boolean;
}

export type NftLookup = 'sets' | 'map';

export interface NftDesired {
  readonly sets: readonly NftSetSpec[];
  readonly maps: readonly NftMapSpec[];
  /** base chains first, in the order they are written */
  readonly chains: readonly NftChainSpec[];
}

export const PRIO = { mangle: -150, dstnat: -100, filter: 0 } as const;
/** our FORWARD chain runs just before every filter chain at the standard priority (iptables-nft's included) */
export const FORWARD_PRIO = PRIO.filter - 1;

const HASH_CHARS = 12;

/** A rule with its identity: `reselqos:<what>:<hash of chain and text>`. */
export function nftRule(chain: string, what: string, text: string): NftRuleSpec {
  const hash = createHash('sha256').update(`nft\u0000${chain}\u0000${text}`).digest('base64url').slice(0, HASH_CHARS);
  return { text, comment: `${COMMENT_PREFIX}${what}:${hash}` };
}

const MARTIANS: Readonly<Record<IpFamily, readonly string[]>> = {
  4: ['0.0.0.0/8', '127.0.0.0/8', '224.0.0.0/4', '240.0.0.0/4'],
  6: ['::/128', '::1/128', '::ffff:0.0.0.0/96', 'ff00::/8'],
};

const q = (s: string): string => JSON.stringify(s);
const proto = (f: IpFamily): string => (f === 4 ? 'ip' : 'ip6');
const familyOf = (cidr: string): IpFamily => (cidr.includes(':') ? 6 : 4);
const anon = (items: readonly string[]): string => (items.length === 1 ? items[0]! : `{ ${items.join(', ')} }`);

/** The nftables objects for (config, desired): the same behaviour as buildKernelDesired's tables. */
export function buildNftDesired(config: Config, desired: Desired, names: Names = new Names(config), opts: NftOptions = {}): NftDesired {
  const lookup = opts.lookup ?? 'sets';
  const counters = opts.counters === true;
  const fw = config.firewall;
  const qc = config.qos;
  const v6 = fw.v6Enabled;
  const families: IpFamily[] = v6 ? [4, 6] : [4];
  const setFamily = (f: IpFamily): SetFamily => (f === 4 ? 'inet' : 'inet6');
  const sets: NftSetSpec[] = desired.sets
    .filter((s) => lookup === 'sets' || s.role !== 'qos')
    .map((s) => ({
      name: s.name,
      type: s.family === 'inet' ? 'ipv4_addr' : 'ipv6_addr',
      members: s.members,
      ...(counters && s.role === 'qos' ? { counters: true } : {}),
    }));
  const maps: NftMapSpec[] = [];
  const valueOf = (dir: Direction, g: number): string =>
    qc.classifier === 'fw' ? String(names.mark(dir, g)) : classid(names.groupMinor(g));
  if (lookup === 'map')
    for (const f of families)
      for (const dir of DIRECTIONS) {
        const entries = new Map<string, string>();
        for (const s of desired.sets)
          if (s.role === 'qos' && s.direction === dir && s.family === setFamily(f))
            for (const ip of s.members) entries.set(ip, valueOf(dir, s.group!));
        maps.push({
          name: mapName(names, setFamily(f), dir),
          type: f === 4 ? 'ipv4_addr' : 'ipv6_addr',
          data: qc.classifier === 'fw' ? 'mark' : 'classid',
          entries,
          ...(counters ? { counters: true } : {}),
        });
      }
  const chains: NftChainSpec[] = [];

  // Marking / classifying: POSTROUTING at mangle priority, one chain per direction
  const post: NftRuleSpec[] = [];
  const dirChains: NftChainSpec[] = [];
  for (const dir of DIRECTIONS) {
    const chain = names.chain(dir);
    const addr = dir === 'down' ? 'daddr' : 'saddr';
    const rules: NftRuleSpec[] = [];
    const key = qc.classifier === 'fw' ? 'mark' : 'priority';
    for (const f of families)
      if (lookup === 'map')
        rules.push(nftRule(chain, `${dir}:map`, `meta ${key} set ${proto(f)} ${addr} map @${mapName(names, setFamily(f), dir)} counter`));
      else
        for (let g = 0; g < qc.groups; g++)
          rules.push(
            nftRule(
              chain,
              `${dir}:${g}`,
              `${proto(f)} ${addr} @${names.set(setFamily(f), dir, g)} counter meta ${key} set ${valueOf(dir, g)}`,
            ),
          );
    dirChains.push({ name: chain, rules });
    post.push(nftRule('postrouting', 'hook', `oifname ${q(names.dev(dir))} jump ${chain}`));
  }
  chains.push({ name: `${qc.chainPrefix}-postrouting`, base: { type: 'filter', hook: 'postrouting', prio: PRIO.mangle }, rules: post });

  const regular: NftChainSpec[] = [...dirChains];
  if (fw.enabled) {
    const out: NftRuleSpec[] = [];
    const inn: NftRuleSpec[] = [];
    const fwout = names.fwChain('out');
    const fwin = names.fwChain('in');
    const O = (what: string, text: string): void => void out.push(nftRule(fwout, what, text));
    const I = (what: string, text: string): void => void inn.push(nftRule(fwin, what, text));
    const gateway = Object.values(fw.gatewayIps).filter((ip) => families.includes(familyOf(ip)));
    const inFamilies = (cidrs: readonly string[]): string[] => cidrs.filter((c) => families.includes(familyOf(c)));
    for (const f of families) O('martian', `${proto(f)} saddr ${anon(MARTIANS[f])} counter drop`);
    for (const ip of gateway) O('spoofed', `${proto(familyOf(ip))} saddr ${ip} counter drop`);
    for (const net of inFamilies(fw.passSources)) {
      O('pass', `${proto(familyOf(net))} saddr ${net} return`);
      I('pass', `${proto(familyOf(net))} daddr ${net} return`);
    }
    for (const ip of gateway) O('gateway', `${proto(familyOf(ip))} daddr ${ip} return`);
    for (const net of inFamilies(fw.openDestinations)) {
      O('open', `${proto(familyOf(net))} daddr ${net} return`);
      I('open', `${proto(familyOf(net))} saddr ${net} return`);
    }
    const pages = [fw.portal, fw.portalBan, ...(v6 ? [fw.portal6, fw.portalBan6] : [])];
    const portals = [...new Map(pages.flatMap((p) => (p ? [[`${p.ip}:${p.port}`, p] as const] : []))).values()];
    for (const p of portals) {
      O('portal', `${proto(familyOf(p.ip))} daddr ${p.ip} tcp dport ${p.port} return`);
      I('portal', `${proto(familyOf(p.ip))} saddr ${p.ip} tcp sport ${p.port} return`);
    }
    if (fw.tunnelName) {
      O('tunnel', `oifname ${q(fw.tunnelName)} return`);
      I('tunnel', `iifname ${q(fw.tunnelName)} return`);
    }
    for (const f of families) {
      O('allowed', `${proto(f)} saddr @${names.allowSet(setFamily(f))} return`);
      I('allowed', `${proto(f)} daddr @${names.allowSet(setFamily(f))} return`);
    }
    if (fw.refuse === 'reject') {
      for (const net of inFamilies([...fw.userNetworks, ...(v6 ? fw.user6Networks : [])])) {
        const f = familyOf(net);
        O('refused', `${proto(f)} saddr ${net} meta l4proto tcp counter reject with tcp reset`);
        O('refused', `${proto(f)} saddr ${net} counter reject with ${f === 4 ? 'icmp' : 'icmpv6'} type admin-prohibited`);
      }
    }
    // the last word: refused, in the families we filter (IPv6 passes untouched with v6Enabled = 0, as with iptables)
    const fams = v6 ? '{ ipv4, ipv6 }' : 'ipv4';
    O('refused', `meta nfproto ${fams} counter drop`);
    I('refused', `meta nfproto ${fams} counter drop`);
    regular.push({ name: fwout, rules: out }, { name: fwin, rules: inn });
    chains.push({
      name: `${qc.chainPrefix}-forward`,
      base: { type: 'filter', hook: 'forward', prio: FORWARD_PRIO },
      rules: [
        nftRule('forward', 'hook', `iifname ${q(fw.ethInt)} jump ${fwout}`),
        nftRule('forward', 'hook', `oifname ${q(fw.ethInt)} jump ${fwin}`),
      ],
    });

    // the portal: web traffic of machines not allowed goes to the portal, of banned ones to the ban page
    const portal: NftRuleSpec[] = [];
    const pchain = names.fwChain('portal');
    const P = (what: string, text: string): void => void portal.push(nftRule(pchain, what, text));
    for (const f of families) {
      const [page, ban0] = f === 4 ? [fw.portal, fw.portalBan] : [fw.portal6, fw.portalBan6];
      if (!page && !ban0) continue;
      const p = proto(f);
      for (const ip of gateway.filter((x) => familyOf(x) === f)) P('gateway', `${p} daddr ${ip} return`);
      for (const net of fw.openDestinations.filter((c) => familyOf(c) === f)) P('open', `${p} daddr ${net} return`);
      for (const net of fw.passSources.filter((c) => familyOf(c) === f)) P('pass', `${p} saddr ${net} return`);
      P('allowed', `${p} saddr @${names.allowSet(setFamily(f))} return`);
      const to = (x: { ip: string; port: number }): string => (f === 4 ? `${x.ip}:${x.port}` : `[${x.ip}]:${x.port}`);
      const ban = ban0 ?? page;
      for (const port of fw.portalPorts) {
        if (ban) P('ban-page', `${p} saddr @${names.bannedSet(setFamily(f))} tcp dport ${port} dnat ${p} to ${to(ban)}`);
        if (page) P('portal', `meta nfproto ${f === 4 ? 'ipv4' : 'ipv6'} tcp dport ${port} dnat ${p} to ${to(page)}`);
      }
    }
    if (portal.length > 0) {
      regular.push({ name: pchain, rules: portal });
      chains.push({
        name: `${qc.chainPrefix}-prerouting`,
        base: { type: 'nat', hook: 'prerouting', prio: PRIO.dstnat },
        rules: [nftRule('prerouting', 'hook', `iifname ${q(fw.ethInt)} meta l4proto tcp jump ${pchain}`)],
      });
    }
  }
  return { sets, maps, chains: [...chains, ...regular] };
}

/** The one-lookup map of a family and direction: <setPrefix>dmap, <set6Prefix>umap, ... */
export function mapName(names: Names, family: SetFamily, dir: Direction): string {
  return names.set(family, dir, 0).replace(/0$/, 'map');
}

/** What the read-back found: set members and each chain's rule comments in order (nft-read.ts). */
export interface NftActual {
  /** sets: type as printed, " counter" appended when its elements count */
  readonly sets: ReadonlyMap<string, { readonly type: string; readonly members: ReadonlySet<string> }>;
  /** maps: type "ipv4_addr : mark" (" counter" appended when its elements count), entries address -> value as printed */
  readonly maps: ReadonlyMap<string, { readonly type: string; readonly entries: ReadonlyMap<string, string> }>;
  /** per-element counters of the sets and maps that have them: address -> bytes and packets, per set or map */
  readonly counters?: ReadonlyMap<string, ReadonlyMap<string, { readonly bytes: number; readonly packets: number }>>;
  /** per chain: its hook, and each rule's comment and verdict kind (ruleIdentity), in order */
  readonly chains: ReadonlyMap<string, { readonly base?: NftBase; readonly comments: readonly (string | null)[] }>;
}

/** The kind of a rule's last statement as `nft -j` names it: what a read-back rule is compared by, with its comment. */
export function verdictOf(text: string): string {
  const w = text.trim().split(/\s+/);
  const last = w[w.length - 1]!;
  if (last === 'drop' || last === 'return' || last === 'accept' || last === 'counter') return last;
  if (w[w.length - 2] === 'jump') return 'jump';
  if (w.includes('dnat')) return 'dnat';
  if (w.includes('reject')) return 'reject';
  if (w.includes('set') && w.includes('meta')) return 'mangle';
  return '';
}

/** A desired rule as the read-back reports it: comment and verdict kind. */
export const ruleIdentity = (r: NftRuleSpec): string => `${r.comment}\u0001${verdictOf(r.text)}`;
