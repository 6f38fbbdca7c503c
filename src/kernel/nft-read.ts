// Read-back of our nftables table: `nft -j list table inet reselqos` parsed into what planNft
// compares (set types and members, each chain's hook and its rules' comments in order). Only our
// table is listed, so nothing of another table (an operator's `inet filter`) is ever seen or
// touched. A missing table reads as null (a fresh kernel, or one a careless `nft flush ruleset`
// emptied): the next apply writes it whole. Pure.

import { parseIp } from '../net/ip.js';
import { NFT_TABLE, type NftActual, type NftBase } from './nft.js';

export class NftReadError extends Error {
  constructor(message: string) {
    super(`nft -j list table inet ${NFT_TABLE}: ${message}`);
    this.name = 'NftReadError';
  }
}

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);

/**
 * A rule is read back as its comment and the kind of its last statement (drop, return, jump,
 * mangle, reject, dnat): an outside edit of a verdict under our comment is seen, a respelling is
 * not (as ruleKey does for iptables).
 */
const HOOKS = new Set(['postrouting', 'prerouting', 'forward']);

/** One set element as nft prints it: a canonical address (a string), anything else is not ours. */
function elementOf(set: string, e: unknown, counters?: Map<string, { bytes: number; packets: number }>): string {
  // with per-element counters: {"elem": {"val": "10.0.0.1", "counter": {"packets": 3, "bytes": 252}}}
  if (isObj(e) && isObj(e['elem'])) {
    const inner = e['elem'];
    const ip = elementOf(set, inner['val']);
    const c = inner['counter'];
    if (counters && isObj(c) && typeof c['bytes'] === 'number' && typeof c['packets'] === 'number')
      counters.set(ip, { bytes: c['bytes'], packets: c['packets'] });
    return ip;
  }
  if (typeof e === 'string') {
    const ip = parseIp(e);
    if (ip.ok) return ip.ip;
  }
  throw new NftReadError(`set ${set}: an element that is not one address: ${JSON.stringify(e).slice(0, 80)}`);
}

/** A set or map declared with `counter`: its elements carry packet and byte counters. */
const countsOf = (o: Obj): boolean => Array.isArray(o['stmt']) && o['stmt'].some((x) => isObj(x) && 'counter' in x);

/** The parsed JSON of `nft -j list table inet reselqos`; `text` empty or null means no table. */
export function parseNftTable(text: string | null): NftActual | null {
  if (text === null || text.trim() === '') return null;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new NftReadError(`not JSON (${(e as Error).message})`);
  }
  if (!isObj(doc) || !Array.isArray(doc['nftables'])) throw new NftReadError('no "nftables" array');
  const sets = new Map<string, { type: string; members: Set<string> }>();
  const maps = new Map<string, { type: string; entries: Map<string, string> }>();
  const counters = new Map<string, Map<string, { bytes: number; packets: number }>>();
  const chains = new Map<string, { base?: NftBase; comments: (string | null)[] }>();
  let table = false;
  const pendingRules: { chain: string; comment: string | null }[] = [];
  for (const item of doc['nftables'] as unknown[]) {
    if (!isObj(item)) continue;
    const t = item['table'];
    if (isObj(t) && t['family'] === 'inet' && t['name'] === NFT_TABLE) table = true;
    const s = item['set'];
    if (isObj(s) && s['table'] === NFT_TABLE) {
      const name = String(s['name']);
      const elem = Array.isArray(s['elem']) ? s['elem'] : [];
      const c = countsOf(s) ? new Map<string, { bytes: number; packets: number }>() : undefined;
      sets.set(name, { type: `${String(s['type'])}${c ? ' counter' : ''}`, members: new Set(elem.map((e) => elementOf(name, e, c))) });
      if (c) counters.set(name, c);
    }
    const m = item['map'];
    if (isObj(m) && m['table'] === NFT_TABLE) {
      const name = String(m['name']);
      const elem = Array.isArray(m['elem']) ? m['elem'] : [];
      const entries = new Map<string, string>();
      const c = countsOf(m) ? new Map<string, { bytes: number; packets: number }>() : undefined;
      for (const e of elem) {
        if (!Array.isArray(e) || e.length !== 2 || (typeof e[1] !== 'string' && typeof e[1] !== 'number'))
          throw new NftReadError(`map ${name}: an element that is not address : value: ${JSON.stringify(e).slice(0, 80)}`);
        entries.set(elementOf(name, e[0], c), String(e[1]));
      }
      maps.set(name, { type: `${String(m['type'])} : ${String(m['map'])}${c ? ' counter' : ''}`, entries });
      if (c) counters.set(name, c);
    }
    const c = item['chain'];
    if (isObj(c) && c['table'] === NFT_TABLE) {
      const name = String(c['name']);
      const hook = c['hook'];
      const type: NftBase['type'] | null = c['type'] === 'filter' ? 'filter' : c['type'] === 'nat' ? 'nat' : null;
      const base: NftBase | undefined =
        typeof hook === 'string' && HOOKS.has(hook) && type !== null && typeof c['prio'] === 'number'
          ? { type, hook: hook as NftBase['hook'], prio: c['prio'] }
          : undefined;
      chains.set(name, base ? { base, comments: [] } : { comments: [] });
    }
    const r = item['rule'];
    if (isObj(r) && r['table'] === NFT_TABLE) {
      const expr = Array.isArray(r['expr']) ? (r['expr'] as unknown[]) : [];
      const last = expr[expr.length - 1];
      const verdict = isObj(last) ? (Object.keys(last)[0] ?? '') : '';
      pendingRules.push({
        chain: String(r['chain']),
        comment: typeof r['comment'] === 'string' ? `${r['comment']}\u0001${verdict}` : null,
      });
    }
  }
  if (!table) return null;
  for (const r of pendingRules) {
    const c = chains.get(r.chain);
    if (!c) throw new NftReadError(`a rule in chain ${r.chain}, which the listing does not declare`);
    c.comments.push(r.comment);
  }
  return { sets, maps, chains, ...(counters.size ? { counters } : {}) };
}
