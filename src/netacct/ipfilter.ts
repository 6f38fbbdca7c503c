// Which IPs the volume source counts: those of the directory's machines, as a bitmap by
// ipIndex id (src/net/ipindex.ts). Owns the bitmap and the Machine objects already looked at
// (a patched directory keeps the objects of its unchanged machines: only the others cost
// anything). Interns directory IPs, never any other address. Knows nothing of MySQL or caches:
// the volume source decides what an added IP means for its cached sums.

import { ipIndex } from '../net/ipindex.js';
import type { Directory, Machine } from '../sources/types.js';

export class DirectoryIpFilter {
  /** the directory last added */
  directory: Directory;
  /** the ipIndex generation of the bitmap; a rebuild of the index needs a new filter */
  readonly generation = ipIndex.generation;
  private bits = new Uint8Array(Math.max(1024, ipIndex.size));
  private readonly seen = new WeakSet<Machine>();

  constructor(directory: Directory) {
    this.directory = directory;
    this.add(directory);
  }

  /**
   * Counts the IPs of `directory` too (interning them). IPs of earlier directories stay counted
   * (until the next rebuild). Returns true when one of them was not counted before.
   */
  add(directory: Directory): boolean {
    this.directory = directory;
    let added = false;
    for (const m of directory.machines) {
      if (this.seen.has(m)) continue;
      for (const list of [m.ips4, m.ips6]) {
        for (const ip of list) {
          const id = ipIndex.idOf(ip);
          if (id >= this.bits.length) {
            const grown = new Uint8Array(Math.max(id + 1, this.bits.length * 2));
            grown.set(this.bits);
            this.bits = grown;
          }
          if (this.bits[id] !== 1) {
            this.bits[id] = 1;
            added = true;
          }
        }
      }
      this.seen.add(m);
    }
    return added;
  }

  /** true when every IP of `directory` is counted (nothing is interned). */
  covers(directory: Directory): boolean {
    if (directory === this.directory) return true;
    if (this.generation !== ipIndex.generation) return false;
    for (const m of directory.machines) {
      if (this.seen.has(m)) continue;
      for (const list of [m.ips4, m.ips6]) {
        for (const ip of list) if (this.idOf(ip) < 0) return false;
      }
      this.seen.add(m);
    }
    return true;
  }

  /** The ipIndex id of a canonical IP when it is counted, else -1 (never interns). */
  idOf(ip: string): number {
    const id = ipIndex.peek(ip);
    return id !== undefined && this.bits[id] === 1 ? id : -1;
  }

  /** The IPs of the directory last added (what an index rebuild keeps). */
  *ips(): Generator<string> {
    for (const m of this.directory.machines) {
      yield* m.ips4;
      yield* m.ips6;
    }
  }
}
