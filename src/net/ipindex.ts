// Process-wide interning of canonical IPs to small integers, so that per-IP volumes can
// live in typed arrays and a cycle can sum a user's bytes by array index instead of a
// string-keyed Map lookup per IP (at 100 000 users that lookup alone cost ~120 ms a cycle).
//
// Lifecycle (docs/DESIGN.md, "IP index"): only directory IPs are interned — the volume source
// asks `peek` for netacct rows and ignores addresses no directory machine holds, so rotating or
// spoofed addresses in netacct never enter. Ids are not reused within a generation; the table
// grows with the directory's addresses (and those that left it during the day), and the volume
// source rebuilds it at the daily reset (`rebuild`: a new generation holding only the current
// directory's IPs). Whoever keeps ids must check `generation` and recompute them when it moved:
// ids of an older generation mean nothing in the new one.

export class IpIndex {
  private ids = new Map<string, number>();
  private ips: string[] = [];
  private gen = 0;

  /** The id of a canonical IP, assigned at first sight. */
  idOf(ip: string): number {
    let id = this.ids.get(ip);
    if (id === undefined) {
      id = this.ips.length;
      this.ids.set(ip, id);
      this.ips.push(ip);
    }
    return id;
  }

  /** The id of a canonical IP already interned in this generation; undefined otherwise (nothing is interned). */
  peek(ip: string): number | undefined {
    return this.ids.get(ip);
  }

  /** The IP of an id this index gave out in this generation. */
  ipOf(id: number): string {
    const ip = this.ips[id];
    if (ip === undefined) throw new RangeError(`no IP with id ${id}`);
    return ip;
  }

  /**
   * The id -> IP table of this generation (the same array as ids are added; a rebuild starts a
   * new one): a holder of ids of this generation reads their IPs here even after a rebuild.
   */
  table(): readonly string[] {
    return this.ips;
  }

  get size(): number {
    return this.ids.size;
  }

  /** Counts rebuilds: ids are only comparable within one generation. */
  get generation(): number {
    return this.gen;
  }

  /** Starts a new generation holding only `keep` (ids from 0, in its order). */
  rebuild(keep: Iterable<string> = []): void {
    this.ids = new Map();
    this.ips = [];
    this.gen++;
    for (const ip of keep) this.idOf(ip);
  }
}

/** The one index of this process: the volume source and the planner must agree on ids. */
export const ipIndex = new IpIndex();
