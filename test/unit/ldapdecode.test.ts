// The full fetch's entry decoder (src/ldap/ldapdecode.ts) against what it replaced: ldapts'
// own SearchEntry parse + toObject, read through the entry view the full fetch used before
// (copied below as it was). Random campuses (several seeds) become BER search entries with
// random faults of form (type case, non-ASCII, invalid UTF-8, BOM, empty or absent value sets,
// duplicate attributes, ;binary, long values, unrequested attributes), fed in random chunks
// to two ldapts message parsers; every requested attribute of every entry, and the Directory
// built from each side, must be the same.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, MessageParser, SearchEntry } from 'ldapts';
import { encodeEntry, type Attr, type Value } from '../helpers/ber.js';
import { generateCampus, prng } from '../../sandbox/campus.js';
import { decodeEntriesOf, type DecodedEntry } from '../../src/ldap/ldapdecode.js';
import { buildDirectoryState, type BuildOptions, type RawEntry } from '../../src/ldap/directory.js';
import { parseConfig } from '../../src/config/config.js';
import { minimalConf } from './fixtures.js';
import { entryView } from '../helpers/ldap-reference.js';

// ---- the reference: the entry view before issue 16 (test/helpers/ldap-reference.ts)

// ---- BER of search result entries

const config = parseConfig(minimalConf({ firewall: 'area6Prefix = 2001:db8:\nuserNetworks = 172.22.0.0/16, 10.0.0.0/8' }), 'x.conf');
const a = config.ldap.attrs;
const OWNER_ATTRS = [a.uid, a.endInternet, a.coupure, a.ban, a.cotiz, 'modifyTimestamp'];
const HOST_ATTRS = [a.host, a.owner, a.ip, a.ip6, a.zone, 'modifyTimestamp'];
const options: BuildOptions = { ldap: config.ldap, firewall: config.firewall, fetchedAt: '2026-01-01T00:00:00.000Z' };

/** Entries of a random campus as attribute lists, with faults of form drawn from `rnd`. */
function campusEntries(seed: number): { people: [Value, Attr[]][]; orgas: [Value, Attr[]][]; hosts: [Value, Attr[]][] } {
  const rnd = prng(seed * 7919);
  const c = generateCampus({ users: 150, seed, now: new Date(Date.UTC(2026, 0, 1)) });
  const chance = (p: number): boolean => rnd() < p;
  const cased = (t: string): string =>
    chance(0.15) ? [...t].map((ch) => (chance(0.5) ? ch.toUpperCase() : ch.toLowerCase())).join('') : t;
  const value = (v: string): Value => {
    const r = rnd();
    if (r < 0.03) return Buffer.concat([Buffer.from(v), Buffer.from([0xff, 0xfe])]); // invalid UTF-8
    if (r < 0.05) return `\uFEFF${v}`; // a BOM: TextDecoder drops it, Buffer#toString keeps it
    if (r < 0.08) return `${v}é`;
    if (r < 0.09) return `${v} ${'x'.repeat(200)}`; // a two-byte BER length
    return v;
  };
  const attr = (type: string, values: string[]): Attr => ({ type: cased(type), values: values.map(value) });
  const noise = (attrs: Attr[]): Attr[] => {
    if (chance(0.05)) attrs.push({ type: 'description', values: ['y'.repeat(70_000)] }); // a three-byte length
    if (chance(0.05)) attrs.push({ type: a.cotiz, values: [] });
    if (chance(0.03)) attrs.push({ type: a.ban, values: null });
    if (chance(0.05) && attrs.length > 0) {
      const d = attrs[Math.floor(rnd() * attrs.length)]!;
      // the same type again, or another case of it
      attrs.push({ type: chance(0.5) ? d.type : d.type.toUpperCase(), values: ['dup', 'licate'].map(value) });
    }
    if (chance(0.03)) attrs.push({ type: `${a.cotiz};binary`, values: [Buffer.from([0x80, 0x41])] });
    // random order
    for (let i = attrs.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [attrs[i], attrs[j]] = [attrs[j]!, attrs[i]!];
    }
    return attrs;
  };
  const dn = (d: string): Value => (chance(0.02) ? Buffer.concat([Buffer.from(d), Buffer.from([0xc3])]) : chance(0.03) ? `${d}ü` : d);
  const stamp = (): string => `2026010${1 + Math.floor(rnd() * 9)}120000Z`;
  const people = c.people.map((p): [Value, Attr[]] => {
    const attrs = [attr('objectClass', p.objectClasses), attr('mail', [p.mail]), attr(a.uid, [p.uid]), attr(a.cotiz, p.cotiz)];
    attrs.push(attr(a.endInternet, [chance(0.03) ? 'soon' : p.endInternet]));
    if (p.coupure) attrs.push(attr(a.coupure, ['TRUE']));
    if (p.ban.length > 0) attrs.push(attr(a.ban, p.ban));
    if (chance(0.9)) attrs.push(attr('modifyTimestamp', [stamp()]));
    return [dn(p.dn), noise(attrs)];
  });
  const orgas = c.orgs.map((g): [Value, Attr[]] => [
    dn(g.dn),
    noise([attr(a.uid, [g.uid]), attr(a.cotiz, g.cotiz), attr(a.endInternet, [g.endInternet]), attr('modifyTimestamp', [stamp()])]),
  ]);
  const hosts = c.machines.map((m): [Value, Attr[]] => {
    const attrs = [attr(a.host, [m.host]), attr('uidproprio', [m.ownerDn]), attr('iphostnumber', [m.ipHostNumber]), attr(a.zone, m.zones)];
    if (m.ipv6.length > 0) attrs.push(attr(a.ip6, m.ipv6));
    attrs.push(attr('macAddress', [m.mac]));
    if (chance(0.9)) attrs.push(attr('modifyTimestamp', [stamp()]));
    return [dn(m.dn), noise(attrs)];
  });
  return { people, orgas, hosts };
}

/** The same bytes through ldapts' parser (reference) and through the decoder, in random chunks. */
function parseBoth(list: readonly [Value, Attr[]][], attributes: string[], rnd: () => number): { ref: RawEntry[]; got: DecodedEntry[] } {
  const bytes = Buffer.concat(list.map(([dn, attrs], i) => encodeEntry(i + 1, dn, attrs)));
  const ref: RawEntry[] = [];
  const got: DecodedEntry[] = [];
  const p1 = new MessageParser();
  const p2 = new MessageParser();
  p1.on('message', (m) => ref.push(entryView((m as SearchEntry).toObject(attributes, []))));
  p2.on('message', (m) => got.push(m as unknown as DecodedEntry));
  for (const p of [p1, p2]) {
    p.on('error', (e) => {
      throw e;
    });
  }
  decodeEntriesOf({ messageParser: p2 } as unknown as Client, attributes);
  for (let at = 0; at < bytes.length;) {
    const n = 1 + Math.floor(rnd() * 3000);
    const chunk = bytes.subarray(at, at + n);
    p1.read(chunk, new Map());
    p2.read(chunk, new Map());
    at += n;
  }
  assert.equal(ref.length, list.length);
  assert.equal(got.length, list.length);
  return { ref, got };
}

for (const seed of [1, 2, 3, 4, 5]) {
  test(`decoded entries are ldapts' entries through the old view, and build the same Directory (seed ${seed})`, () => {
    const e = campusEntries(seed);
    const rnd = prng(seed);
    const people = parseBoth(e.people, OWNER_ATTRS, rnd);
    const orgas = parseBoth(e.orgas, OWNER_ATTRS, rnd);
    const hosts = parseBoth(e.hosts, HOST_ATTRS, rnd);
    let values = 0;
    for (const [side, attributes] of [
      [people, OWNER_ATTRS],
      [orgas, OWNER_ATTRS],
      [hosts, HOST_ATTRS],
    ] as const) {
      side.ref.forEach((r, i) => {
        const g = side.got[i]!;
        assert.equal(g.dn, r.dn);
        for (const name of attributes.map((x) => x.toLowerCase())) {
          // Callers read `get(n)?.[0]` and `get(n) ?? []`: ldapts gives [] for a requested attribute
          // the server did not return, the decoder undefined; both read the same.
          assert.deepEqual(g.attrs.get(name) ?? [], r.attrs.get(name) ?? [], `${r.dn} ${name}`);
          values += (g.attrs.get(name) ?? []).length;
        }
        assert.equal(g.attrs.get('macaddress'), undefined, 'attributes not requested are not kept');
      });
    }
    assert.ok(values > 1000, `${values} values compared`);
    const before = buildDirectoryState({ people: people.ref, orgas: orgas.ref, hosts: hosts.ref }, options);
    const after = buildDirectoryState({ people: people.got, orgas: orgas.got, hosts: hosts.got }, options);
    assert.deepEqual(after, before);
    assert.ok(before.directory.machines.length > 300 && before.directory.skipped.length > 10);
  });
}

test('the decoder hooks into the ldapts Client this package depends on, and refuses one without a message parser', () => {
  const client = new Client({ url: 'ldap://127.0.0.1:1' });
  assert.doesNotThrow(() => decodeEntriesOf(client, OWNER_ATTRS));
  assert.throws(() => decodeEntriesOf({} as unknown as Client, OWNER_ATTRS), /no message parser/);
});

test('a malformed entry is an error of the parser, not a shorter entry', () => {
  const good = encodeEntry(1, 'uid=a,dc=x', [{ type: 'uid', values: ['a'] }]);
  // the attribute list's SEQUENCE tag replaced by a SET: not an entry
  const i = good.indexOf(Buffer.from('uid=a,dc=x')) + 'uid=a,dc=x'.length;
  const bad = Buffer.from(good);
  bad[i] = 0x31;
  const p = new MessageParser();
  decodeEntriesOf({ messageParser: p } as unknown as Client, OWNER_ATTRS);
  const errors: Error[] = [];
  p.on('error', (e) => errors.push(e));
  p.on('message', () => assert.fail('no entry expected'));
  p.read(bad, new Map());
  assert.equal(errors.length, 1);
  assert.match(errors[0]!.message, /Expected 0x30: got 0x31/);
});
