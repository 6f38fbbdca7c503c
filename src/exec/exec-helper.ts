// src/exec/exec-helper.ts — the spawn helper: a small long-lived Node process that the daemon
// starts once (src/exec/exec.ts, `helperExec`) so that running a kernel tool forks this small
// process instead of the daemon. libuv forks (plain fork(), not vfork, on Linux): each spawn
// copies the page tables of the process that spawns, so its cost grows with the daemon's heap
// (docs/PERFORMANCE.md, issue 16). With `[firewall] netns` it is started through
// `ip netns exec <ns>` and lives in the namespace, so the tools it runs need no `ip netns exec`.
//
// Owns: receiving requests {id, cmd, args, input, timeoutMs, okCodes} on the IPC channel of its
// parent, checking that each is an argv (a bare program name and an array of strings: never a
// command string), running it with realExec (exec.ts: no shell, a timeout), and answering
// with the result or the failure's fields. In a namespace it first checks that
// /run/netns/<ns> still is the namespace it lives in, and refuses (runs nothing) when not: the
// parent then runs the command itself and starts a new helper.
// Exits as soon as its parent goes (the IPC channel closes).
//
// Must never: run anything its parent did not ask for, use a shell, outlive its parent, load the
// daemon's other modules (it stays small: that is its point).

import { realpathSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ExecError, realExec, type ExecOptions } from './exec.js';

/** A request, as the parent sends it. */
export interface HelperRequest {
  id: number;
  cmd: string;
  args: string[];
  input?: string;
  timeoutMs?: number;
  okCodes?: number[];
}

/** The answer to request `id`. */
export type HelperReply =
  | { id: number; ok: true; stdout: string; stderr: string; code: number }
  | {
      id: number;
      ok: false;
      code: number | null;
      signal: string | null;
      stdout: string;
      stderr: string;
      timedOut: boolean;
      detail?: string;
    }
  /** not run at all: the parent may run it itself */
  | { id: number; refused: string };

/** A bare program name (found on PATH): no path, no space, nothing a shell would read. */
const PROGRAM = /^[A-Za-z0-9][A-Za-z0-9_.+-]*$/;

/** The request checked, or why it is not an argv. */
export function checkRequest(m: unknown): { req: HelperRequest } | { bad: string; id: number | null } {
  const r = m as Partial<HelperRequest> | null;
  const id = r !== null && typeof r === 'object' && Number.isSafeInteger(r.id) ? (r.id as number) : null;
  if (id === null) return { bad: 'no request id', id };
  if (typeof r?.cmd !== 'string' || !PROGRAM.test(r.cmd)) return { bad: `not a program name: ${JSON.stringify(r?.cmd)}`, id };
  if (!Array.isArray(r.args) || !r.args.every((a) => typeof a === 'string')) return { bad: 'args is not an array of strings', id };
  if (r.input !== undefined && typeof r.input !== 'string') return { bad: 'input is not a string', id };
  if (r.timeoutMs !== undefined && typeof r.timeoutMs !== 'number') return { bad: 'timeoutMs is not a number', id };
  if (r.okCodes !== undefined && !(Array.isArray(r.okCodes) && r.okCodes.every((c) => Number.isInteger(c))))
    return { bad: 'okCodes is not a list of integers', id };
  return { req: r as HelperRequest };
}

function sameNetns(netns: string): string | null {
  try {
    const mine = statSync('/proc/self/ns/net');
    const named = statSync(`/run/netns/${netns}`);
    return mine.ino === named.ino && mine.dev === named.dev ? null : `namespace ${netns} is not the one this helper lives in`;
  } catch (e) {
    return `namespace ${netns}: ${(e as Error).message}`;
  }
}

async function answer(req: HelperRequest, netns: string | undefined): Promise<HelperReply> {
  if (netns !== undefined) {
    const moved = sameNetns(netns);
    if (moved !== null) return { id: req.id, refused: moved };
  }
  const opts: ExecOptions = {};
  if (req.input !== undefined) opts.input = req.input;
  if (req.timeoutMs !== undefined) opts.timeoutMs = req.timeoutMs;
  if (req.okCodes !== undefined) opts.okCodes = req.okCodes;
  try {
    const r = await realExec(req.cmd, req.args, opts);
    return { id: req.id, ok: true, stdout: r.stdout, stderr: r.stderr, code: r.code };
  } catch (e) {
    if (!(e instanceof ExecError))
      return { id: req.id, ok: false, code: null, signal: null, stdout: '', stderr: '', timedOut: false, detail: String(e) };
    const detail = e.code === null && e.signal === null && !e.timedOut ? /could not be started.*$/.exec(e.message)?.[0] : undefined;
    return {
      id: req.id,
      ok: false,
      code: e.code,
      signal: e.signal,
      stdout: e.stdout,
      stderr: e.stderr,
      timedOut: e.timedOut,
      ...(detail ? { detail } : {}),
    };
  }
}

function main(): void {
  const send = process.send?.bind(process);
  if (!send) {
    process.stderr.write('reselqos exec-helper: started without an IPC channel (it is started by the daemon)\n');
    process.exit(2);
  }
  const netns = process.argv[2] || undefined;
  process.on('disconnect', () => process.exit(0));
  process.on('message', (m: unknown) => {
    const c = checkRequest(m);
    if ('bad' in c) {
      if (c.id !== null)
        send({ id: c.id, ok: false, code: null, signal: null, stdout: '', stderr: '', timedOut: false, detail: `refused: ${c.bad}` });
      return;
    }
    void answer(c.req, netns).then((reply) => send(reply));
  });
  send({ ready: process.pid });
}

// Run only as a program (the parent starts it); importing it (tests) runs nothing.
const entry = process.argv[1];
if (entry !== undefined && realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url))) main();
