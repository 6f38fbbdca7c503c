// `reselqos share [--json]`: the allocation between sites alone, for operators checking a
// configuration and for tests. Reads the sites' rows as JSON on stdin, prints each site's
// instantaneous target (src/sharing/allocate.ts, no smoothing). Exit 2 with every input error.

import { allocate, parseShareInput } from '../sharing/allocate.js';
import { formatRate } from '../config/units.js';
import { EXIT, type Io } from './common.js';

export async function readStdin(stream: NodeJS.ReadableStream = process.stdin): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : c);
  return Buffer.concat(chunks).toString('utf8');
}

export function runShare(text: string, json: boolean, io: Io): number {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    io.err(`reselqos share: stdin: not JSON: ${(e as Error).message}`);
    return EXIT.invalid;
  }
  const parsed = parseShareInput(doc);
  if (!parsed.ok) {
    io.err(`reselqos share: ${parsed.errors.length} error(s) in the input:\n` + parsed.errors.map((e) => `  ${e}`).join('\n'));
    return EXIT.invalid;
  }
  const sites = allocate(parsed.input);
  if (json) {
    io.out(JSON.stringify({ sites }));
    return EXIT.ok;
  }
  const g = parsed.input.global;
  const lines = [
    `global: down ${formatRate(g.down)}, up ${formatRate(g.up)}${parsed.input.sites.every((s) => s.fresh) ? '' : ' (a site is stale: static split)'}`,
  ];
  for (const s of sites) lines.push(`  ${s.site.padEnd(16)} down ${formatRate(s.down).padStart(12)}  up ${formatRate(s.up).padStart(12)}`);
  io.out(lines.join('\n'));
  return EXIT.ok;
}
