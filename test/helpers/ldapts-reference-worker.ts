// A worker thread that parses bytes with ldapts' own message and entry parsers (the reference of
// fuzz-ldap), so that a case on which ldapts loops forever or exhausts its heap (it does on some
// malformed entries, which reselqos never hands it: src/ldap/ldapdecode.ts replaces its entry
// parser) costs the worker, not the test: the caller bounds it by time and memory and replaces it.
import { parentPort } from 'node:worker_threads';
import { MessageParser, SearchEntry } from 'ldapts';
import { entryView } from './ldap-reference.js';

export interface ReferenceRequest {
  bytes: Uint8Array;
  split: number;
  attrs: string[];
}
export interface ReferenceAnswer {
  errors: number;
  entries: { dn: string; attrs: [string, string[]][] }[];
}

parentPort?.on('message', (req: ReferenceRequest) => {
  const bytes = Buffer.from(req.bytes);
  const p = new MessageParser();
  const out: ReferenceAnswer = { errors: 0, entries: [] };
  p.on('error', () => out.errors++);
  p.on('message', (m) => {
    if (!(m instanceof SearchEntry)) return;
    const e = entryView(m.toObject(req.attrs, []));
    out.entries.push({ dn: e.dn, attrs: req.attrs.map((a) => [a.toLowerCase(), [...(e.attrs.get(a.toLowerCase()) ?? [])]]) });
  });
  const at = req.split % (bytes.length + 1);
  p.read(bytes.subarray(0, at), new Map());
  if (at < bytes.length) p.read(bytes.subarray(at), new Map());
  parentPort?.postMessage(out);
});
