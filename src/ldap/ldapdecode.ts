// Decodes LDAP search result entries straight from the BER bytes into RawEntry (a DN and the
// values of the requested attributes), for the full fetch at ISP size (issue 16). Owns the
// hook into one ldapts Client's message parser and the exact string rules of ldapts 8.2
// (values: fatal UTF-8 decode, else every value of the attribute as lossy UTF-8; `;binary`
// types always lossy), so that the entries are what `toObject` + the entry view gave. Never
// connects, binds or searches: ldapts still does all of that and every error.

import { Client, InvalidAsn1Error, SearchEntry } from 'ldapts';
import type { AttrReader, RawEntry } from './directory.js';

/** LDAP_RES_SEARCH_ENTRY: [APPLICATION 4] */
const SEARCH_ENTRY = 0x64;
const OCTET_STRING = 0x04;
const SEQUENCE = 0x30;
const SET = 0x31;

const utf8 = new TextDecoder('utf8', { fatal: true });

const isAscii = (buf: Buffer, s: number, e: number): boolean => {
  for (let i = s; i < e; i++) if (buf[i]! >= 0x80) return false;
  return true;
};

/** The requested attributes, by lowercased name: the slot of each in a DecodedEntry. */
export class EntryLayout {
  readonly slots = new Map<string, number>();
  /** lowercased ASCII bytes of each slot's name */
  private readonly bytes: Uint8Array[] = [];

  constructor(attributes: readonly string[]) {
    for (const a of attributes) {
      const lower = a.toLowerCase();
      if (this.slots.has(lower)) continue;
      this.slots.set(lower, this.bytes.length);
      this.bytes.push(Buffer.from(lower, 'utf8'));
    }
  }

  get size(): number {
    return this.bytes.length;
  }

  /** Slot of the type at buf[s, e) (compared as `type.toLowerCase()` would), -1 if none. */
  slotOf(buf: Buffer, s: number, e: number): number {
    const n = e - s;
    if (!isAscii(buf, s, e)) return this.slotOfString(buf.toString('utf8', s, e));
    outer: for (let k = 0; k < this.bytes.length; k++) {
      const b = this.bytes[k]!;
      if (b.length !== n) continue;
      for (let i = 0; i < n; i++) {
        let c = buf[s + i]!;
        if (c >= 0x41 && c <= 0x5a) c |= 0x20;
        if (c !== b[i]) continue outer;
      }
      return k;
    }
    return -1;
  }

  private slotOfString(type: string): number {
    return this.slots.get(type.toLowerCase()) ?? -1;
  }
}

const NO_VALUES: readonly (string[] | undefined)[] = Object.freeze([]);

/** One entry: its DN and, per requested attribute, the values (undefined = not returned). */
export class DecodedEntry extends SearchEntry implements RawEntry, AttrReader {
  layout: EntryLayout | null = null;
  values: readonly (string[] | undefined)[] = NO_VALUES;

  get dn(): string {
    return this.name;
  }

  get attrs(): AttrReader {
    return this;
  }

  get(lowerName: string): readonly string[] | undefined {
    const slot = this.layout!.slots.get(lowerName);
    return slot === undefined ? undefined : this.values[slot];
  }

  /** ldapts calls this on every entry of a page; the entry is its own result. */
  override toObject(): never {
    return this as never;
  }

  override parseMessage(): void {
    throw new Error('DecodedEntry is filled by decodeEntry');
  }
}

/** A BER length at buf[at]; returns [length, offset after it]. */
function readLength(buf: Buffer, at: number, end: number): [number, number] {
  if (at >= end) throw new InvalidAsn1Error('entry cut short');
  const first = buf[at++]!;
  if (first < 0x80) return [first, at];
  const n = first & 0x7f;
  if (n === 0) throw new InvalidAsn1Error('Indefinite length not supported');
  if (n > 4) throw new InvalidAsn1Error('Encoding too long');
  if (at + n > end) throw new InvalidAsn1Error('entry cut short');
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + buf[at++]!;
  return [len, at];
}

/** Reads tag `tag` at `at`: [content start, content end]. */
function open(buf: Buffer, at: number, end: number, tag: number): [number, number] {
  if (at >= end) throw new InvalidAsn1Error('entry cut short');
  if (buf[at] !== tag) throw new InvalidAsn1Error(`Expected 0x${tag.toString(16)}: got 0x${buf[at]!.toString(16)}`);
  const [len, s] = readLength(buf, at + 1, end);
  if (s + len > end) throw new InvalidAsn1Error('entry cut short');
  return [s, s + len];
}

/** Scratch: where the type of each slot's attribute starts and ends (duplicate types, below). */
let typeStart = new Int32Array(8);
let typeEnd = new Int32Array(8);

/**
 * Fills `entry` from the SearchResultEntry content at buf[s, end) (after its [APPLICATION 4]
 * header); returns the offset after the attribute list. Attributes not requested are skipped.
 */
export function decodeEntry(entry: DecodedEntry, layout: EntryLayout, buf: Buffer, s: number, end: number): number {
  const [ds, de] = open(buf, s, end, OCTET_STRING);
  entry.name = buf.toString('utf8', ds, de);
  entry.layout = layout;
  const values: (string[] | undefined)[] = new Array<string[] | undefined>(layout.size).fill(undefined);
  entry.values = values;
  if (typeStart.length < layout.size) {
    typeStart = new Int32Array(layout.size);
    typeEnd = new Int32Array(layout.size);
  }
  const [ls, le] = open(buf, de, end, SEQUENCE);
  let at = ls;
  while (at < le) {
    const [as, ae] = open(buf, at, le, SEQUENCE);
    at = ae;
    const [ts, te] = open(buf, as, ae, OCTET_STRING);
    const slot = layout.slotOf(buf, ts, te);
    if (slot < 0) continue;
    const prev = values[slot];
    // Two attributes of one name: ldapts keys its object by the type as written, so the same
    // type again replaces the values, another case of it is a second key the view never reaches.
    if (prev !== undefined && !buf.subarray(typeStart[slot], typeEnd[slot]).equals(buf.subarray(ts, te))) continue;
    if (prev === undefined) {
      typeStart[slot] = ts;
      typeEnd[slot] = te;
    }
    const out: string[] = [];
    if (te < ae && buf[te] === SET) {
      const [vs, ve] = open(buf, te, ae, SET);
      const binary = /;binary$/i.test(buf.toString('utf8', ts, te));
      let lossy = binary;
      let v = vs;
      while (v < ve) {
        const [xs, xe] = open(buf, v, ve, OCTET_STRING);
        v = xe;
        if (lossy || isAscii(buf, xs, xe)) {
          out.push(buf.toString(lossy ? 'utf8' : 'latin1', xs, xe));
        } else {
          try {
            out.push(utf8.decode(buf.subarray(xs, xe)));
          } catch {
            lossy = true; // ldapts then gives every value of the attribute as a Buffer
          }
        }
      }
      if (lossy && !binary) {
        out.length = 0;
        for (let w = vs; w < ve;) {
          const [xs, xe] = open(buf, w, ve, OCTET_STRING);
          w = xe;
          out.push(buf.toString('utf8', xs, xe));
        }
      }
    }
    values[slot] = out;
  }
  return le;
}

type MessageOf = (
  this: unknown,
  messageId: number,
  protocolOperation: number,
  reader: { buffer: Buffer; offset: number; length: number; size: number },
  request: unknown,
) => unknown;

interface ParserInternals {
  _getMessageFromProtocolOperation: MessageOf;
}

/**
 * Makes `client` decode its search entries with `decodeEntry` for the requested `attributes`:
 * its searches then yield DecodedEntry objects (RawEntry) instead of ldapts' entry objects.
 * Throws when this ldapts does not have the internals relied on (checked by a test).
 */
export function decodeEntriesOf(client: Client, attributes: readonly string[]): void {
  const parser = (client as unknown as { messageParser?: ParserInternals }).messageParser;
  const original = parser?._getMessageFromProtocolOperation;
  if (!parser || typeof original !== 'function') throw new Error('ldapts: no message parser to decode entries with');
  const layout = new EntryLayout(attributes);
  parser._getMessageFromProtocolOperation = function (messageId, protocolOperation, reader, request) {
    if (protocolOperation !== SEARCH_ENTRY) return original.call(this, messageId, protocolOperation, reader, request);
    const entry = new DecodedEntry({ messageId });
    // The reader stands after the [APPLICATION 4] header; its content ends at offset + length.
    const end = reader.offset + reader.length;
    const after = decodeEntry(entry, layout, reader.buffer, reader.offset, Math.min(end, reader.size));
    reader.offset = after;
    entry.controls = [];
    return entry;
  };
}
