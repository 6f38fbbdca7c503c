// The one `nft -f` script that brings our table to the desired state (nft.ts): the whole table
// when it is missing or its shape differs, else element adds and deletes and the chains whose
// rules differ; and the clear. The kernel applies a script all or nothing. Pure.

import { NFT_TABLE, ruleIdentity, type NftActual, type NftBase, type NftChainSpec, type NftDesired, type NftRuleSpec } from './nft.js';

const q = (s: string): string => JSON.stringify(s);

const elements = (members: Iterable<string>): string => [...members].join(', ');

/** How many elements one `add element` line carries (nft reads the whole script into memory anyway). */
const ELEMENTS_PER_LINE = 1000;

function elementLines(verb: 'add' | 'delete', set: string, members: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < members.length; i += ELEMENTS_PER_LINE)
    out.push(`${verb} element inet ${NFT_TABLE} ${set} { ${elements(members.slice(i, i + ELEMENTS_PER_LINE))} }`);
  return out;
}

function mapLines(verb: 'add' | 'delete', map: string, entries: readonly (readonly [string, string])[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < entries.length; i += ELEMENTS_PER_LINE) {
    const part = entries.slice(i, i + ELEMENTS_PER_LINE);
    const items = verb === 'add' ? part.map(([k, v]) => `${k} : ${v}`) : part.map(([k]) => k);
    out.push(`${verb} element inet ${NFT_TABLE} ${map} { ${items.join(', ')} }`);
  }
  return out;
}

function chainLines(c: NftChainSpec): string[] {
  const head = c.base
    ? `add chain inet ${NFT_TABLE} ${c.name} { type ${c.base.type} hook ${c.base.hook} priority ${c.base.prio}; policy accept; }`
    : `add chain inet ${NFT_TABLE} ${c.name}`;
  return [head];
}

const ruleLine = (chain: string, r: NftRuleSpec): string => `add rule inet ${NFT_TABLE} ${chain} ${r.text} comment ${q(r.comment)}`;

/**
 * The whole table as one transaction: whatever was there (ours, under our table's name) is
 * deleted and the table written anew, in the same `nft -f`: the kernel never holds half of it.
 * Regular chains are declared before the base chains that jump to them.
 */
export function renderNftFull(d: NftDesired): string {
  const lines = [`add table inet ${NFT_TABLE}`, `delete table inet ${NFT_TABLE}`, `add table inet ${NFT_TABLE}`];
  for (const s of d.sets) {
    lines.push(`add set inet ${NFT_TABLE} ${s.name} { type ${s.type};${s.counters ? ' counter;' : ''} }`);
    lines.push(...elementLines('add', s.name, [...s.members]));
  }
  for (const m of d.maps) {
    lines.push(`add map inet ${NFT_TABLE} ${m.name} { type ${m.type} : ${m.data};${m.counters ? ' counter;' : ''} }`);
    lines.push(...mapLines('add', m.name, [...m.entries]));
  }
  const ordered = [...d.chains.filter((c) => !c.base), ...d.chains.filter((c) => c.base)];
  for (const c of ordered) lines.push(...chainLines(c));
  for (const c of ordered) for (const r of c.rules) lines.push(ruleLine(c.name, r));
  return lines.join('\n') + '\n';
}

export interface NftPlan {
  /** the script, '' when nothing differs */
  readonly script: string;
  readonly counts: {
    readonly elementsAdded: number;
    readonly elementsDeleted: number;
    readonly chainsRewritten: number;
    readonly full: boolean;
  };
}

const sameBase = (a: NftBase | undefined, b: NftBase | undefined): boolean =>
  a === b || (a !== undefined && b !== undefined && a.type === b.type && a.hook === b.hook && a.prio === b.prio);

/**
 * The one transaction that brings `actual` to `desired`: element adds and deletes per set, a
 * chain whose rules differ (by identity, in order) flushed and rewritten; the whole table
 * rewritten when it is missing, or a set's type, a chain's hook, or the set or chain list differs.
 */
export function planNft(desired: NftDesired, actual: NftActual | null): NftPlan {
  const full = (): NftPlan => {
    const script = renderNftFull(desired);
    let n = 0;
    for (const s of desired.sets) n += s.members.size;
    for (const m of desired.maps) n += m.entries.size;
    return { script, counts: { elementsAdded: n, elementsDeleted: 0, chainsRewritten: desired.chains.length, full: true } };
  };
  if (actual === null) return full();
  if (actual.sets.size !== desired.sets.length || actual.maps.size !== desired.maps.length || actual.chains.size !== desired.chains.length)
    return full();
  const withCounter = (t: string, c: boolean | undefined): string => (c ? `${t} counter` : t);
  for (const s of desired.sets) if (actual.sets.get(s.name)?.type !== withCounter(s.type, s.counters)) return full();
  for (const m of desired.maps) if (actual.maps.get(m.name)?.type !== withCounter(`${m.type} : ${m.data}`, m.counters)) return full();
  for (const c of desired.chains) {
    const a = actual.chains.get(c.name);
    if (!a || !sameBase(a.base, c.base)) return full();
  }
  const lines: string[] = [];
  let added = 0;
  let deleted = 0;
  let rewritten = 0;
  for (const s of desired.sets) {
    const have = actual.sets.get(s.name)!.members;
    const add = [...s.members].filter((m) => !have.has(m));
    const del = [...have].filter((m) => !s.members.has(m));
    lines.push(...elementLines('delete', s.name, del), ...elementLines('add', s.name, add));
    added += add.length;
    deleted += del.length;
  }
  for (const m of desired.maps) {
    const have = actual.maps.get(m.name)!.entries;
    // a changed value is a delete and an add of the same key, in the same transaction
    const del = [...have].filter(([k, v]) => m.entries.get(k) !== v);
    const add = [...m.entries].filter(([k, v]) => have.get(k) !== v);
    lines.push(...mapLines('delete', m.name, del), ...mapLines('add', m.name, add));
    added += add.length;
    deleted += del.length;
  }
  for (const c of desired.chains) {
    const have = actual.chains.get(c.name)!.comments;
    if (have.length === c.rules.length && c.rules.every((r, i) => have[i] === ruleIdentity(r))) continue;
    rewritten++;
    lines.push(`flush chain inet ${NFT_TABLE} ${c.name}`, ...c.rules.map((r) => ruleLine(c.name, r)));
  }
  return {
    script: lines.length ? lines.join('\n') + '\n' : '',
    counts: { elementsAdded: added, elementsDeleted: deleted, chainsRewritten: rewritten, full: false },
  };
}

/** Removes our table, and nothing else (`clear`). */
export const renderNftClear = (): string => `add table inet ${NFT_TABLE}\ndelete table inet ${NFT_TABLE}\n`;
