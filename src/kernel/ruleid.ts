// Rule identity that does not depend on how iptables-save spells a rule back (the nf_tables
// and legacy tools, and iptables versions, print `--set-mark 1000` as `--set-xmark
// 0x3e8/0xffffffff`, class ids as 0001:0010, negations and quoting differently). Every rule
// we write carries a comment `reselqos:<what>:<hash>`, the hash taken over the chain name and
// the rule as we render it; the read-back is compared by that comment and the rule's target
// (so an outside edit of a verdict under our comment is still seen), never by its spelling.
// As in Calico Felix (felix/iptables/table.go). Pure.

import { createHash } from 'node:crypto';
import { COMMENT_PREFIX } from './names.js';
import type { RuleArgs } from './model.js';

const HASH_CHARS = 12;

/** The value after `--comment`, or undefined. */
function commentOf(args: RuleArgs): string | undefined {
  const i = args.indexOf('--comment');
  return i >= 0 ? args[i + 1] : undefined;
}

/** The -j / -g target, or ''. */
function targetOf(args: RuleArgs): string {
  for (let i = 0; i < args.length - 1; i++)
    if (args[i] === '-j' || args[i] === '-g' || args[i] === '--jump' || args[i] === '--goto') return args[i + 1]!;
  return '';
}

/** The rule with its `reselqos:<what>` comment extended by a hash of the chain and the rule. */
export function stampRule(chain: string, args: RuleArgs): RuleArgs {
  const i = args.indexOf('--comment');
  const c = i >= 0 ? args[i + 1] : undefined;
  if (c === undefined || !c.startsWith(COMMENT_PREFIX)) return args;
  const hash = createHash('sha256')
    .update(`${chain}\u0000${args.join('\u0000')}`)
    .digest('base64url')
    .slice(0, HASH_CHARS);
  const out = [...args];
  out[i + 1] = `${c}:${hash}`;
  return out;
}

/**
 * What two rules are compared by: our stamped comment and the target when the rule has one
 * (then the spelling of the rest does not matter), else every argument.
 */
export function ruleKey(args: RuleArgs): string {
  const c = commentOf(args);
  if (c !== undefined && c.startsWith(COMMENT_PREFIX) && /:[A-Za-z0-9_-]{12}$/.test(c)) return `${c}\u0001${targetOf(args)}`;
  return args.join('\u0000');
}
