// src/kernel/ipset.ts — reads our ipsets back: `ipset save` (members) and `ipset list -t` (headers
// and entry counts, cheap: the kernel sends no members).
// Owns: pure parsers of the tool's output (exported for unit tests on captured text) and small
// async readers that run the tool through an injected Exec.
// Never: changes kernel state; decides what is ours (callers pass isOurs).

import type { Exec } from '../exec/exec.js';

export interface IpsetInfo {
  name: string;
  /** e.g. 'hash:ip' */
  type: string;
  family: 'inet' | 'inet6';
  maxelem: number;
  /** As the kernel reports it now (a power of two; hash sets grow it when they fill). */
  hashsize: number;
  /**
   * Elements as `ipset save` prints them, kernel (hash) order, extensions (timeout, comment…)
   * dropped. IPv4: dotted quad. IPv6: inet_ntop form — lowercase, longest zero run compressed
   * ("2001:DB8:D000:0000::0001" reads back as "2001:db8:d000::1", "2001:db8:0:0:1:0:0:1" as
   * "2001:db8::1:0:0:1", "::ffff:10.0.0.1" stays mixed).
   */
  entries: string[];
  /** The remaining header tokens, e.g. ['bucketsize', '12', 'initval', '0x…'] or ['counters']. */
  options: string[];
}

/*
 * `ipset save` (ipset v7.17) prints, per set:
 *   create qos_d0 hash:ip family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0xda48aad4
 *   add qos_d0 10.0.0.1
 *   add qos_d0 172.22.200.3
 *   create v6qos_d0 hash:ip family inet6 hashsize 1024 maxelem 65536 bucketsize 12 initval 0x884256db
 *   add v6qos_d0 2001:db8:d000::1
 *   create qos_c hash:ip family inet hashsize 1024 maxelem 65536 timeout 0 counters comment bucketsize 12 initval 0x…
 *   add qos_c 1.2.3.4 timeout 0 packets 0 bytes 0 comment "hi there"
 * `ipset list -o save` prints the same text.
 */
export function parseIpsetSave(text: string, isOurs: (name: string) => boolean = () => true): Map<string, IpsetInfo> {
  const sets = new Map<string, IpsetInfo>();
  let cur: IpsetInfo | undefined;
  let curName = '';
  let pos = 0;
  const len = text.length;
  while (pos < len) {
    let nl = text.indexOf('\n', pos);
    if (nl < 0) nl = len;
    const line = text.slice(pos, nl);
    pos = nl + 1;
    if (line.startsWith('add ')) {
      // add <set> <elem> [ext…]  — fast path: no full split for 300k lines
      const s1 = line.indexOf(' ', 4);
      if (s1 < 0) continue;
      const name = line.slice(4, s1);
      if (name !== curName) {
        curName = name;
        cur = sets.get(name);
      }
      if (!cur) continue;
      const s2 = line.indexOf(' ', s1 + 1);
      cur.entries.push(s2 < 0 ? line.slice(s1 + 1).trimEnd() : line.slice(s1 + 1, s2));
      continue;
    }
    if (!line.startsWith('create ')) continue;
    const tok = line.trim().split(/\s+/);
    const name = tok[1];
    const type = tok[2];
    if (name === undefined || type === undefined) continue;
    curName = name;
    if (!isOurs(name)) {
      cur = undefined;
      continue;
    }
    const info: IpsetInfo = { name, type, family: 'inet', maxelem: 65536, hashsize: 1024, entries: [], options: [] };
    for (let i = 3; i < tok.length; i++) {
      const k = tok[i] ?? '';
      const v = tok[i + 1];
      if (k === 'family' && v !== undefined) {
        info.family = v === 'inet6' ? 'inet6' : 'inet';
        i++;
      } else if (k === 'maxelem' && v !== undefined) {
        info.maxelem = Number(v);
        i++;
      } else if (k === 'hashsize' && v !== undefined) {
        info.hashsize = Number(v);
        i++;
      } else {
        info.options.push(k);
      }
    }
    sets.set(name, info);
    cur = info;
  }
  return sets;
}

/** All sets for which isOurs(name) holds, with their entries (`ipset save`). */
export async function readIpsets(exec: Exec, isOurs: (name: string) => boolean): Promise<Map<string, IpsetInfo>> {
  const { stdout } = await exec('ipset', ['save'], { timeoutMs: 120_000 });
  return parseIpsetSave(stdout, isOurs);
}

export interface IpsetHeader {
  name: string;
  type: string;
  family: 'inet' | 'inet6' | null;
  entries: number;
  /** How many iptables rules / list:set sets reference the set (a referenced set cannot be destroyed). */
  references: number;
  memory: number;
  header: string;
}

/*
 * `ipset list -t` (header only, no members):
 *   Name: qos_d0
 *   Type: hash:ip
 *   Revision: 6
 *   Header: family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0xda48aad4
 *   Size in memory: 296
 *   References: 0
 *   Number of entries: 2
 *   <blank line between sets>
 * Note `ipset list -t a b` is an error ("Unknown argument b"): one name or all.
 */
export function parseIpsetHeaders(text: string): Map<string, IpsetHeader> {
  const out = new Map<string, IpsetHeader>();
  let cur: IpsetHeader | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const key = line.slice(0, colon);
    const val = line.slice(colon + 1).trim();
    switch (key) {
      case 'Name':
        cur = { name: val, type: '', family: null, entries: 0, references: 0, memory: 0, header: '' };
        out.set(val, cur);
        break;
      case 'Type':
        if (cur) cur.type = val;
        break;
      case 'Header':
        if (cur) {
          cur.header = val;
          const m = /(?:^|\s)family (inet6?)(?:\s|$)/.exec(val);
          cur.family = m ? (m[1] as 'inet' | 'inet6') : null;
        }
        break;
      case 'Size in memory':
        if (cur) cur.memory = Number(val);
        break;
      case 'References':
        if (cur) cur.references = Number(val);
        break;
      case 'Number of entries':
        if (cur) cur.entries = Number(val);
        break;
      default:
        break;
    }
  }
  return out;
}

/** Headers of all sets (`ipset list -t`), cheap: the kernel sends no members. */
export async function readIpsetHeaders(exec: Exec): Promise<Map<string, IpsetHeader>> {
  const { stdout } = await exec('ipset', ['list', '-t']);
  return parseIpsetHeaders(stdout);
}

/** Number of entries of each named set that exists (absent sets are absent from the map). */
export async function readIpsetCounts(exec: Exec, names: Iterable<string>): Promise<Map<string, number>> {
  const all = await readIpsetHeaders(exec);
  const out = new Map<string, number>();
  for (const n of names) {
    const h = all.get(n);
    if (h) out.set(n, h.entries);
  }
  return out;
}
