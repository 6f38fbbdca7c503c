// The members of one set as the reconciler remembers them (memory.ts), compact: IPv4
// addresses in canonical dotted form as 32-bit integers in an open-addressing hash table
// (linear probing, deletion by backward shift: no tombstones), anything else (IPv6) in a
// Set<string>. For the 960 000 entries of a synthetic 100 000-user campus (bench/cold-apply-dir.ts)
// the Set<string> copies retained 31.9 MB (their strings shared with the planner), these 8.3 MB
// (measured: heap + array buffers retained per copy of all sets; tables at most 0.7 full).
// A string that is not canonical IPv4 ("010.0.0.1") is kept as a string, so every member
// iterates back exactly as it was added. Pure; no I/O.

/** What diff.ts needs of a set's members (a Set<string> is one too). */
export interface MemberSet {
  readonly size: number;
  has(ip: string): boolean;
  [Symbol.iterator](): Iterator<string>;
}

const EMPTY = 0; // slot marker; the address 0.0.0.0 is kept aside (`zero`)
const MIN_CAPACITY = 16;
/** at most this share of the slots in use (linear probing stays short below ~0.7) */
const MAX_LOAD = 0.7;

/** The address as an unsigned 32-bit integer when `ip` is canonical dotted IPv4, else -1. */
export function ipv4ToInt(ip: string): number {
  const n = ip.length;
  if (n < 7 || n > 15) return -1;
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < n; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return -1; // leading zero
      octet = octet * 10 + (c - 48);
      if (octet > 255) return -1;
      digits++;
    } else return -1;
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + octet;
}

export function intToIpv4(x: number): string {
  return `${x >>> 24}.${(x >>> 16) & 255}.${(x >>> 8) & 255}.${x & 255}`;
}

export class CompactMembers implements MemberSet {
  private table: Uint32Array;
  private mask: number;
  private shift: number;
  /** IPv4 entries in `table` */
  private count = 0;
  private zero = false;
  private readonly other = new Set<string>();

  constructor(ips: Iterable<string> = [], sizeHint = 0) {
    let cap = MIN_CAPACITY;
    while (cap * MAX_LOAD < sizeHint) cap *= 2;
    this.table = new Uint32Array(cap);
    this.mask = cap - 1;
    this.shift = 32 - Math.log2(cap);
    for (const ip of ips) this.add(ip);
  }

  get size(): number {
    return this.count + (this.zero ? 1 : 0) + this.other.size;
  }

  private home(x: number): number {
    return Math.imul(x, 0x9e3779b1) >>> this.shift;
  }

  /** slot of x, or -1 */
  private find(x: number): number {
    const t = this.table;
    for (let i = this.home(x); ; i = (i + 1) & this.mask) {
      const v = t[i]!;
      if (v === EMPTY) return -1;
      if (v === x) return i;
    }
  }

  has(ip: string): boolean {
    const x = ipv4ToInt(ip);
    if (x < 0) return this.other.has(ip);
    if (x === 0) return this.zero;
    return this.find(x) >= 0;
  }

  add(ip: string): this {
    const x = ipv4ToInt(ip);
    if (x < 0) this.other.add(ip);
    else if (x === 0) this.zero = true;
    else if (this.find(x) < 0) {
      if (this.count + 1 > this.table.length * MAX_LOAD) this.grow();
      this.place(x);
      this.count++;
    }
    return this;
  }

  private place(x: number): void {
    const t = this.table;
    let i = this.home(x);
    while (t[i] !== EMPTY) i = (i + 1) & this.mask;
    t[i] = x;
  }

  private grow(): void {
    const old = this.table;
    this.table = new Uint32Array(old.length * 2);
    this.mask = this.table.length - 1;
    this.shift--;
    for (const v of old) if (v !== EMPTY) this.place(v);
  }

  delete(ip: string): boolean {
    const x = ipv4ToInt(ip);
    if (x < 0) return this.other.delete(ip);
    if (x === 0) {
      const had = this.zero;
      this.zero = false;
      return had;
    }
    let i = this.find(x);
    if (i < 0) return false;
    const t = this.table;
    t[i] = EMPTY;
    // Backward shift: pull later entries of the run into the hole when their home is not between.
    for (let j = (i + 1) & this.mask; t[j] !== EMPTY; j = (j + 1) & this.mask) {
      const k = this.home(t[j]!);
      const stays = i <= j ? i < k && k <= j : i < k || k <= j;
      if (!stays) {
        t[i] = t[j]!;
        t[j] = EMPTY;
        i = j;
      }
    }
    this.count--;
    return true;
  }

  *[Symbol.iterator](): IterableIterator<string> {
    if (this.zero) yield '0.0.0.0';
    for (const v of this.table) if (v !== EMPTY) yield intToIpv4(v);
    yield* this.other;
  }
}
