// The reference for the LDAP decoder's equivalence tests (test/unit/ldapdecode.test.ts,
// test/sources/ldap-decode.test.ts): the entry view of src/ldap/ldap.ts before issue 16,
// verbatim, reading ldapts' own entry objects. Test-only code.
import type { Entry } from 'ldapts';
import type { AttrReader, RawEntry } from '../../src/ldap/directory.js';

const lowerNames = new Map<string, string>();
const lowerName = (k: string): string => {
  let v = lowerNames.get(k);
  if (v === undefined) {
    v = k.toLowerCase();
    if (lowerNames.size < 1000) lowerNames.set(k, v);
  }
  return v;
};
const asStrings = (v: Entry[string]): string[] => {
  const values = Array.isArray(v) ? v : [v];
  return values.map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : String(x)));
};

export function entryView(e: Entry): RawEntry {
  const attrs: AttrReader = {
    get(name: string): readonly string[] | undefined {
      for (const k in e) {
        if (k !== 'dn' && lowerName(k) === name) return asStrings(e[k]!);
      }
      return undefined;
    },
  };
  return { dn: e.dn, attrs };
}
