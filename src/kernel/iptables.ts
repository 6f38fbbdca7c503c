// src/kernel/iptables.ts — reads our chains and hooks back from `iptables-save` /
// `ip6tables-save` (mangle, filter and nat tables).
// Owns: the pure parser of the save format, its argument splitting (the inverse of the
// restore quoting), and the readers that run the tool through an injected Exec.
// Never: changes kernel state; decides what is ours (callers pass isOurChain).

import type { Exec } from '../exec/exec.js';

export const BUILTIN_CHAINS: ReadonlySet<string> = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);

export interface TableState {
  /** Our chains (declared ones, even when empty) → their rules as iptables-save prints them ("-A chain …"). */
  chains: Map<string, string[]>;
  /** Rules in built-in chains that jump (-j) or go (-g) to one of our chains, as printed. */
  hooks: string[];
}

export interface SavedTable {
  /** chain → policy ('ACCEPT', 'DROP' for built-ins, '-' for user chains) */
  policies: Map<string, string>;
  /** chain → rules ("-A chain …" lines), in order */
  rules: Map<string, string[]>;
}

/*
 * What iptables-save v1.8.9 prints back (nf_tables and legacy backends print the same rule text):
 *   rendered:  -A qos_mark -m set --match-set qos_d0 dst -m comment --comment "grp d0: 5 Mbit/s" -j MARK --set-mark 1000
 *   read back: -A qos_mark -m set --match-set qos_d0 dst -m comment --comment "grp d0: 5 Mbit/s" -j MARK --set-xmark 0x3e8/0xffffffff
 *   rendered:  -A qos_mark -m set --match-set qos_d0 dst -j CLASSIFY --set-class 1:10
 *   read back: -A qos_mark -m set --match-set qos_d0 dst -j CLASSIFY --set-class 0001:0010
 *   (class ids are hex: 1:0a → 0001:000a), `! --match-set` reads back as `-m set ! --match-set …`,
 *   `--set-mark 0x7d0/0xffff` → `--set-xmark 0x7d0/0xffff`, `-m mark --mark 1000` → `--mark 0x3e8`,
 *   CONNMARK --save-mark → `--save-mark --nfmask 0xffffffff --ctmask 0xffffffff`.
 *   Comments are double-quoted only when they contain spaces or quotes ("x \"quoted\" y",
 *   "it\'s a \\back"); a one-word comment is bare: --comment c6.
 *   User chains are declared ":qos_mark - [0:0]"; the nf_tables tool prints
 *   "# Warning: iptables-legacy tables present…" to stderr when legacy tables exist too.
 */
export function parseIptablesSave(text: string, table = 'mangle'): SavedTable {
  const policies = new Map<string, string>();
  const rules = new Map<string, string[]>();
  let inTable = false;
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (line.startsWith('*')) {
      inTable = line.slice(1) === table;
      continue;
    }
    if (!inTable || line === '' || line.startsWith('#')) continue;
    if (line === 'COMMIT') {
      inTable = false;
      continue;
    }
    if (line.startsWith(':')) {
      const m = /^:(\S+)\s+(\S+)/.exec(line);
      if (m && m[1] !== undefined && m[2] !== undefined) {
        policies.set(m[1], m[2]);
        if (!rules.has(m[1])) rules.set(m[1], []);
      }
      continue;
    }
    if (line.startsWith('-A ')) {
      const sp = line.indexOf(' ', 3);
      const chain = sp < 0 ? line.slice(3) : line.slice(3, sp);
      let list = rules.get(chain);
      if (!list) {
        list = [];
        rules.set(chain, list);
      }
      list.push(line);
    }
  }
  return { policies, rules };
}

/**
 * Splits an iptables-save rule line into argv words, undoing its quoting: "a b" → a b,
 * \" → ", \' → ', \\ → \. So `splitIptablesArgs(line).slice(2)` can be compared with the argv
 * we rendered.
 */
export function splitIptablesArgs(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let has = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (c === '\\' && i + 1 < line.length) {
      cur += line[i + 1];
      has = true;
      i++;
    } else if (c === '"') {
      quoted = !quoted;
      has = true;
    } else if (!quoted && (c === ' ' || c === '\t')) {
      if (has) out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
      has = true;
    }
  }
  if (has) out.push(cur);
  return out;
}

/** The -j / -g target of a rule line, or undefined. */
export function ruleTarget(line: string): string | undefined {
  const args = splitIptablesArgs(line);
  for (let i = 0; i < args.length - 1; i++) {
    if (args[i] === '-j' || args[i] === '--jump' || args[i] === '-g' || args[i] === '--goto') return args[i + 1];
  }
  return undefined;
}

export function parseMangle(text: string, isOurChain: (name: string) => boolean): TableState {
  return parseTable(text, 'mangle', isOurChain);
}

/** Our chains and their hooks in one table of an iptables-save dump (all tables or one). */
export function parseTable(text: string, table: string, isOurChain: (name: string) => boolean): TableState {
  const saved = parseIptablesSave(text, table);
  const chains = new Map<string, string[]>();
  const hooks: string[] = [];
  for (const [chain, rules] of saved.rules) {
    if (BUILTIN_CHAINS.has(chain)) {
      for (const r of rules) {
        const t = ruleTarget(r);
        if (t !== undefined && !BUILTIN_CHAINS.has(t) && isOurChain(t)) hooks.push(r);
      }
    } else if (isOurChain(chain)) {
      chains.set(chain, [...rules]);
    }
  }
  return { chains, hooks };
}

export type IptablesBackendChoice = 'default' | 'nf_tables' | 'legacy';

function saveCommand(family: 4 | 6, backend: IptablesBackendChoice): string {
  const base = family === 6 ? 'ip6tables' : 'iptables';
  if (backend === 'nf_tables') return `${base}-nft-save`;
  if (backend === 'legacy') return `${base}-legacy-save`;
  return `${base}-save`;
}

/** Our mangle chains and the built-in-chain rules that hook them (`iptables-save -t mangle`). */
export async function readMangle(
  exec: Exec,
  family: 4 | 6,
  isOurChain: (name: string) => boolean,
  opts: { backend?: IptablesBackendChoice } = {},
): Promise<TableState> {
  const { stdout } = await exec(saveCommand(family, opts.backend ?? 'default'), ['-t', 'mangle']);
  return parseMangle(stdout, isOurChain);
}

/** Our chains and hooks in each of `tables`, from one `iptables-save` (`ip6tables-save`) of every table. */
export async function readTables(
  exec: Exec,
  family: 4 | 6,
  tables: readonly string[],
  isOurChain: (name: string) => boolean,
): Promise<Map<string, TableState>> {
  const { stdout } = await exec(saveCommand(family, 'default'), []);
  return new Map(tables.map((t) => [t, parseTable(stdout, t, isOurChain)]));
}
