// The control socket: newline-delimited JSON over a unix socket under [path] run,
// mode 0600, in a directory of our own (created 0700 when missing, never chmodded: `check` refuses one
// others can write to). One request, one answer, then close.
// The daemon serves it; the service verbs are its clients.

import { createConnection, createServer, type Server } from 'node:net';
import { chmod, mkdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';

export type ControlRequest =
  | { cmd: 'status' }
  | { cmd: 'update'; force?: boolean; accept?: boolean }
  | { cmd: 'reload' }
  | { cmd: 'stop' }
  | { cmd: 'explain'; who: string }
  | { cmd: 'complete'; prefix: string }
  | { cmd: 'top' }
  | { cmd: 'role'; role: string }
  | { cmd: 'health' };

export type ControlAnswer = { ok: boolean; [k: string]: unknown };

export const socketPath = (runDir: string): string => join(runDir, 'reselqos.sock');
export const pidPath = (runDir: string): string => join(runDir, 'reselqos.pid');
/** The one lock of whoever acts on the kernel (daemon, run --once, clear, start's rebuild). */
export const lockPath = (runDir: string): string => join(runDir, 'reselqos.lock');

export class NotRunningError extends Error {
  constructor(readonly path: string) {
    super(`reselqos is not running (no answer on ${path})`);
    this.name = 'NotRunningError';
  }
}

export async function serveControl(runDir: string, handle: (req: ControlRequest) => Promise<ControlAnswer>): Promise<Server> {
  // Created 0700 when missing; an existing directory keeps its mode (run = /tmp must not lose
  // its sticky bit): `check` refuses a directory others can write to.
  await mkdir(runDir, { recursive: true, mode: 0o700 });
  const path = socketPath(runDir);
  await unlink(path).catch(() => undefined);
  const server = createServer((sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', () => undefined);
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) {
        if (buf.length > 65536) sock.destroy();
        return;
      }
      const line = buf.slice(0, nl);
      buf = '';
      let req: ControlRequest;
      try {
        req = JSON.parse(line) as ControlRequest;
      } catch {
        sock.end(JSON.stringify({ ok: false, error: 'bad request' }) + '\n');
        return;
      }
      handle(req).then(
        (answer) => sock.end(JSON.stringify(answer) + '\n'),
        (e: unknown) => sock.end(JSON.stringify({ ok: false, error: (e as Error).message }) + '\n'),
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  await chmod(path, 0o600);
  return server;
}

/** Sends one request; NotRunningError when nothing listens. */
export function askDaemon(runDir: string, req: ControlRequest, timeoutMs = 120_000): Promise<ControlAnswer> {
  const path = socketPath(runDir);
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer from the daemon on ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n'));
    sock.on('data', (c: string) => (buf += c));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') reject(new NotRunningError(path));
      else reject(e);
    });
    sock.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(buf) as ControlAnswer);
      } catch {
        reject(new Error(`bad answer from the daemon: ${buf.slice(0, 200)}`));
      }
    });
  });
}
