// The BER of one LDAP SearchResultEntry (RFC 4511), written with ldapts' own BerWriter: what the
// decoder tests (unit/ldapdecode, unit/fuzz-ldap) feed to the message parser.
import { BerWriter } from 'ldapts';

export type Value = string | Buffer;
export interface Attr {
  type: string;
  /** null: no SET at all */
  values: Value[] | null;
}

export function encodeEntry(messageId: number, dn: Value, attrs: readonly Attr[]): Buffer {
  const w = new BerWriter();
  w.startSequence();
  w.writeInt(messageId);
  w.startSequence(0x64);
  if (Buffer.isBuffer(dn)) w.writeBuffer(dn, 0x04);
  else w.writeString(dn);
  w.startSequence();
  for (const a of attrs) {
    w.startSequence();
    w.writeString(a.type);
    if (a.values !== null) {
      w.startSequence(0x31);
      for (const v of a.values) {
        if (Buffer.isBuffer(v)) w.writeBuffer(v, 0x04);
        else w.writeString(v);
      }
      w.endSequence();
    }
    w.endSequence();
  }
  w.endSequence();
  w.endSequence();
  w.endSequence();
  return w.buffer;
}
