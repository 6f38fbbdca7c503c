// One batch through the exec seam (ipset restore, iptables-restore, tc -batch), and what a
// refusal says: KernelApplyError names the tool, the failing line and the object on it (set and
// IP, class and device, chain). Used by the reconciler for every apply, rebuild and clear.

import { ExecError, batchErrorLine, type BatchTool, type Exec } from '../exec/exec.js';

/** A batch the kernel refused; names the tool, the line and the object. */
export class KernelApplyError extends Error {
  constructor(
    readonly tool: string,
    readonly line: number | null,
    readonly text: string | null,
    readonly object: string | null,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(
      `${tool} failed${line !== null ? ` at line ${line}` : ''}${object ? ` (${object})` : ''}: ${reason}${text ? ` [${text}]` : ''}`,
      options,
    );
    this.name = 'KernelApplyError';
  }
}

/** A batch's input: its text, or its pieces rendered on demand (again, only to name a failing line). */
export type BatchInput = string | (() => Iterable<string>);

function objectOf(tool: string, text: string | undefined): string | null {
  if (!text) return null;
  const t = text.trim().split(/\s+/);
  if (tool.startsWith('ipset')) {
    if (t[0] === 'add' || t[0] === 'del') return `set ${t[1]}, IP ${t[2]}`;
    return t[1] ? `set ${t[1]}` : null;
  }
  if (tool.startsWith('tc')) {
    const dev = t[t.indexOf('dev') + 1];
    const cls = t.includes('classid') ? t[t.indexOf('classid') + 1] : t.includes('parent') ? t[t.indexOf('parent') + 1] : null;
    return `${t[0]} ${cls ?? ''} on ${dev}`.replace(/\s+/g, ' ');
  }
  if (t[0] === '-A' || t[0] === '-I' || t[0] === '-D' || t[0] === '-X') return `chain ${t[1]}`;
  return null;
}

/** Runs one batch (its text on stdin); a refusal becomes a KernelApplyError naming the line and the object. */
export async function runBatch(exec: Exec, tool: BatchTool, cmd: string, args: string[], input: BatchInput): Promise<void> {
  try {
    await exec(cmd, args, { input: typeof input === 'string' ? input : input(), timeoutMs: 120_000 });
  } catch (e) {
    if (!(e instanceof ExecError)) throw e;
    const text = typeof input === 'string' ? input : [...input()].join('');
    const where = batchErrorLine(e.stderr, text, tool);
    const label = `${cmd} ${args.join(' ')}`;
    throw new KernelApplyError(label, where?.line ?? null, where?.text ?? null, objectOf(cmd, where?.text), where?.reason ?? e.message, {
      cause: e,
    });
  }
}
