// Sharing of the small values a directory repeats hundreds of thousands of times (issue 16):
// one frozen empty list, one frozen copy of each distinct short value list (cotiz years, ban
// values), one lowercased copy of each attribute name; and strings kept for long made flat.
// Bounded tables, so a directory of unusual values costs no more than without them. Values
// are never changed, only shared.

/** The one empty list every empty `ips4` / `ips6` / `ban` / `cotiz` of a built directory is. */
export const EMPTY: readonly string[] = Object.freeze([]);

const MAX_LISTS = 4096;
const MAX_LIST_CHARS = 256;
const lists = new Map<string, readonly string[]>();

/**
 * A list equal to `values` (same strings, same order), shared with every earlier equal list while
 * the table has room; frozen when shared. The caller must not change what it gets.
 */
export function sharedList(values: readonly string[]): readonly string[] {
  if (values.length === 0) return EMPTY;
  let chars = 0;
  for (const v of values) chars += v.length + 1;
  if (chars > MAX_LIST_CHARS) return values.slice();
  const key = values.length === 1 ? values[0]! : values.join('\u0000');
  const known = lists.get(key);
  if (known && known.length === values.length && known.every((v, i) => v === values[i])) return known;
  const copy = Object.freeze(values.slice());
  if (lists.size < MAX_LISTS && !known) lists.set(key, copy);
  return copy;
}

const lowerNames = new Map<string, string>();

/** `name.toLowerCase()`, without a new string per call for the few attribute names a build reads. */
export function lowerName(name: string): string {
  let v = lowerNames.get(name);
  if (v === undefined) {
    v = name.toLowerCase();
    if (lowerNames.size < 1000) lowerNames.set(name, v);
  }
  return v;
}

/**
 * Makes `s` one flat string in memory and returns it (same value). A string built by `+` or a
 * template is a tree of its parts (an IP of prefix + suffix: 56 bytes instead of 32; a skip
 * reason of five parts: 348 bytes instead of 136); reading a character makes V8 flatten it, and
 * the next GC drops the tree. For what a directory keeps: its IPs and skip reasons.
 */
export function flat(s: string): string {
  s.charCodeAt(0);
  return s;
}
