// Fuzzing the control socket (src/daemon/control.ts): random JSON and non-JSON lines, huge lines,
// partial lines, several lines at once, sent to serveControl on a socket in a temporary run
// directory with a handler that answers, rejects or throws. Every complete line gets one JSON
// answer (an error answer for what is not JSON), a partial line is closed without one, and the
// server keeps serving: never a crash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { askDaemon, serveControl, socketPath, type ControlAnswer, type ControlRequest } from '../../src/daemon/control.js';
import { fuzzAsync } from '../helpers/fuzz.js';

/** What the daemon's handler does with a request of any shape: an answer, a rejection. */
async function handler(req: ControlRequest): Promise<ControlAnswer> {
  const r = req as unknown as { cmd?: unknown; who?: unknown };
  if (r.cmd === 'status') return { ok: true, status: {} };
  if (r.cmd === 'explain') return { ok: false, error: `no user or IP "${String((r.who as string).trim())}"` };
  if (r.cmd === 'boom') throw new Error('boom');
  return { ok: false, error: 'unknown command' };
}

function send(path: string, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (c: string) => (text += c));
    s.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' || e.code === 'EPIPE' ? resolve(text) : reject(e)));
    s.on('close', () => resolve(text));
    s.end(bytes);
  });
}

const line = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
  fc
    .record(
      { cmd: fc.constantFrom('status', 'explain', 'boom', 'stop?', ''), who: fc.oneof(fc.string(), fc.integer(), fc.constant(null)) },
      { requiredKeys: [] },
    )
    .map((v) => JSON.stringify(v)),
  fc.string({ unit: 'binary', maxLength: 40 }).map((s) => s.replace(/\n/g, '')),
  fc.constantFrom('', '{', 'null', '"status"', '{"cmd":"status"', 'x'.repeat(70_000)),
);
const message = fc.tuple(fc.array(line, { minLength: 1, maxLength: 3 }), fc.boolean()).map(([lines, complete]) => ({
  text: lines.join('\n') + (complete ? '\n' : ''),
  complete: complete || lines.length > 1,
  firstLen: lines[0]!.length,
}));

test('fuzz: control socket lines: one JSON answer per complete line, an error answer for what is not a request; the server keeps serving', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rq-fuzz-control-'));
  const server = await serveControl(dir, handler);
  try {
    await fuzzAsync(
      'control socket',
      300,
      fc.asyncProperty(message, async (m) => {
        const answer = await send(socketPath(dir), m.text);
        if (!m.complete || m.firstLen > 65536) return; // no newline: closed without an answer (a long one is cut off)
        assert.match(answer, /^\{.*\}\n$/s, `one JSON answer line, got ${JSON.stringify(answer.slice(0, 100))}`);
        const a = JSON.parse(answer) as ControlAnswer;
        assert.equal(typeof a.ok, 'boolean');
      }),
    );
    assert.deepEqual(await askDaemon(dir, { cmd: 'status' }, 5000), { ok: true, status: {} });
  } finally {
    server.close();
    await rm(dir, { recursive: true, force: true });
  }
});
