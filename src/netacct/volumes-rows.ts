// One netacct row into the sums (volumes.ts streams them): its IP parsed once per raw string
// (cached across fetches) and looked up in the directory filter before it is interned, its byte
// counts sanitised (NULL, negative, not a number, beyond 2^53: counted as 0, the IP named).

import { parseIp, type IpParse } from '../net/ip.js';
import { ipIndex } from '../net/ipindex.js';
import type { DirectoryIpFilter } from './ipfilter.js';
import type { PartBuilder } from './volumes-parts.js';

/** A raw IP string once parsed, with its ipIndex id when valid and counted (-1 otherwise). */
interface Parsed {
  readonly p: IpParse;
  readonly id: number;
}

/** The parse of a valid address that no directory machine holds (one shared object). */
const NOT_COUNTED: Parsed = Object.freeze({ p: Object.freeze({ ok: true, ip: '', family: 4 }), id: -1 });

export class RowParser {
  /** raw IP string -> parse result, across fetches */
  private readonly ips = new Map<string, Parsed>();

  /** `filter`: the IPs counted (null: every valid IP) */
  constructor(private readonly filter: () => DirectoryIpFilter | null) {}

  /** how many raw strings are held */
  get size(): number {
    return this.ips.size;
  }

  clear(): void {
    this.ips.clear();
  }

  private parse(raw: string): Parsed {
    let e = this.ips.get(raw);
    const filter = this.filter();
    if (e === undefined) {
      const p = parseIp(raw);
      // With a directory: never intern an address no machine holds (peek, not idOf).
      const id = !p.ok ? -1 : filter ? filter.idOf(p.ip) : ipIndex.idOf(p.ip);
      // An address not counted keeps only its raw string here (bounded: cleared with the caches).
      e = p.ok && id < 0 ? NOT_COUNTED : { p, id };
      this.ips.set(raw, e);
    }
    return e;
  }

  /** One row (ip, down, up as the driver gave them) into `into`: signature, sanitation, bytes. */
  row(into: PartBuilder, ipRaw: unknown, downRaw: unknown, upRaw: unknown, w: number): void {
    into.rows++;
    if (downRaw !== null) {
      into.sumDown += Number(downRaw);
      into.nDown++;
    }
    if (upRaw !== null) {
      into.sumUp += Number(upRaw);
      into.nUp++;
    }
    const raw =
      typeof ipRaw === 'string' ? ipRaw : Buffer.isBuffer(ipRaw) ? ipRaw.toString('latin1') : ipRaw === null ? '' : JSON.stringify(ipRaw);
    const { p: ip, id } = this.parse(raw);
    if (!ip.ok) {
      if (!into.badIps.has(raw)) into.badIps.set(raw, ip.reason);
      return;
    }
    if (id < 0) return; // no machine of the directory holds it: not counted, not interned
    let down = downRaw === null ? -1 : Number(downRaw);
    let up = upRaw === null ? -1 : Number(upRaw);
    // NULL, negative, not a number ("abc" is NaN, which no comparison catches), or beyond any
    // hour's traffic (above 2^53 bytes: 1e308 twice summed to Infinity, found by fuzz-volumes)
    const fine = (v: number): boolean => v >= 0 && v <= Number.MAX_SAFE_INTEGER;
    if (!fine(down) || !fine(up)) {
      into.badRows.add(ip.ip);
      if (!fine(down)) down = 0;
      if (!fine(up)) up = 0;
    }
    into.add(id, down, up, w);
  }
}
