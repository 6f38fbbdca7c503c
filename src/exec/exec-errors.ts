// src/exec/exec-errors.ts — what a failed command says: ExecError (the command, its exit code
// or signal, its output), the first meaningful error line of any tool's stderr, and the failing
// input line(s) of a batch tool (`ipset restore`, `tc -batch`, `iptables-restore`). Pure: never
// runs anything (src/exec/exec.ts runs the tools and re-exports all of this).

/** A process failed: spawn error, timeout, signal, or an exit code outside okCodes. */
export class ExecError extends Error {
  readonly command: string;
  readonly args: readonly string[];
  readonly code: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;

  constructor(init: {
    command: string;
    args: readonly string[];
    code: number | null;
    signal: string | null;
    stdout: string;
    stderr: string;
    timedOut: boolean;
    cause?: unknown;
    detail?: string;
  }) {
    const what = describeCommand(init.command, init.args);
    let how: string;
    if (init.timedOut) how = 'timed out';
    else if (init.detail !== undefined) how = init.detail;
    else if (init.signal !== null) how = `was killed by ${init.signal}`;
    else how = `exited with code ${String(init.code)}`;
    const line = firstErrorLine(init.stderr);
    super(`${what} ${how}${line ? `: ${line}` : ''}`, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'ExecError';
    this.command = init.command;
    this.args = init.args;
    this.code = init.code;
    this.signal = init.signal;
    this.stdout = init.stdout;
    this.stderr = init.stderr;
    this.timedOut = init.timedOut;
  }
}

/** `ip netns exec rq-gw ipset restore` — the command plus its leading non-option words, bounded. */
export function describeCommand(cmd: string, args: readonly string[]): string {
  const words = [cmd];
  for (const a of args) {
    if (words.length >= 8) {
      words.push('…');
      break;
    }
    words.push(a.length > 40 ? `${a.slice(0, 40)}…` : a);
  }
  return `"${words.join(' ')}"`;
}

/**
 * The first stderr line that says what went wrong. Skips blank lines and informational
 * warnings (`# Warning: iptables-legacy tables present…`, `Warning: sch_htb: quantum…`);
 * a line that ends in ':' (iptables-restore nf_tables prints "iptables-restore v1.8.9
 * (nf_tables): " and the reason on the next line) is joined with the next one.
 */
export function firstErrorLine(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const meaningful = lines.filter((l) => !/^#?\s*warning:/i.test(l));
  const pick = meaningful.length > 0 ? meaningful : lines;
  const first = pick[0];
  if (first === undefined) return '';
  if (first.endsWith(':')) {
    const next = pick[1];
    if (next !== undefined) return `${first} ${next}`;
  }
  return first;
}

// ------------------------------------------------------------------ batch error lines

export type BatchTool = 'ipset' | 'tc' | 'iptables-restore';

export interface BatchErrorLine {
  tool: BatchTool;
  /** 1-based line number in the batch input, as the tool counts (blank and comment lines count). */
  line: number;
  /** That line of the input (without newline); undefined if the input has fewer lines. */
  text: string | undefined;
  /** The tool's own explanation, e.g. "The set with the given name does not exist". */
  reason: string;
}

/*
 * Stderr formats, provoked on this machine (ipset v7.17, iproute2 6.1, iptables v1.8.9):
 *
 * ipset restore (stops at the first error; earlier lines may already be applied):
 *   ipset v7.17: Error in line 3: Syntax error: cannot parse 1.1.1.300: resolving to IPv4 address failed
 *   ipset v7.17: Error in line 2: The set with the given name does not exist
 *   ipset v7.17: Error in line 3: Element cannot be added to the set: it's already added
 *   ipset v7.17: No command specified: unknown argument bogus        <- no line number given
 *
 * tc -batch - (the reason comes on the line(s) BEFORE "Command failed"; with -force it goes on,
 * one "Command failed" per bad line):
 *   RTNETLINK answers: File exists
 *   Command failed -:4
 *   Error: Specified qdisc kind is unknown.
 *   Command failed -:2
 *   Illegal "rate"            (followed by the HTB usage text)
 *   Command failed -:2
 *
 * iptables-restore (nf_tables and legacy):
 *   iptables-restore v1.8.9 (nf_tables): Set nosuch doesn't exist.
 *   <blank>
 *   Error occurred at line: 4
 *   Try `iptables-restore -h' or 'iptables-restore --help' for more information.
 *   iptables-restore: line 2 failed: No chain/target/match by that name.      (nf_tables)
 *   iptables-restore: line 2 failed                                           (legacy)
 *   iptables-restore: COMMIT expected at line 3
 *   iptables-restore v1.8.9 (nf_tables): <newline> line 2: CHAIN_DEL failed (Device or resource busy): chain qos_mark
 * Note: nf_tables reports some errors found at commit time (e.g. "Chain 'BOGUS' does not
 * exist") at the line of COMMIT, not of the offending rule.
 */

function inputLine(input: string, line: number): string | undefined {
  const lines = input.split('\n');
  const l = lines[line - 1];
  return l === undefined ? undefined : l.replace(/\r$/, '');
}

function stripToolPrefix(s: string): string {
  return s
    .replace(/^ip6?tables-(?:legacy-|nft-)?restore(?: v[\d.]+)?(?: \([^)]*\))?:\s*/, '')
    .replace(/^ipset v[\d.]+:\s*/, '')
    .trim();
}

/**
 * All failing lines reported in a batch tool's stderr, in order. `tool` is detected from the
 * stderr when not given. Returns [] when no line number can be found.
 */
export function batchErrorLines(stderr: string, input: string, tool?: BatchTool): BatchErrorLine[] {
  const lines = stderr.split('\n').map((l) => l.replace(/\r$/, ''));
  const out: BatchErrorLine[] = [];
  const push = (t: BatchTool, line: number, reason: string): void => {
    out.push({ tool: t, line, text: inputLine(input, line), reason: reason.trim() });
  };

  // ipset
  if (tool === undefined || tool === 'ipset') {
    for (const l of lines) {
      const m = /^ipset v[\d.]+: Error in line (\d+): (.*)$/.exec(l);
      if (m) push('ipset', Number(m[1]), m[2] ?? '');
    }
    if (out.length > 0 || tool === 'ipset') {
      if (out.length === 0) {
        // "No command specified: unknown argument bogus" has no line: find the first input line
        // that starts with that word.
        const m = /unknown argument (\S+)/.exec(stderr);
        if (m) {
          const word = m[1] ?? '';
          const idx = input.split('\n').findIndex((l) => l.trim().split(/\s+/)[0] === word);
          if (idx >= 0) push('ipset', idx + 1, firstErrorLine(stderr).replace(/^ipset v[\d.]+:\s*/, ''));
        }
      }
      return out;
    }
  }

  // tc -batch
  if (tool === undefined || tool === 'tc') {
    let segStart = 0;
    lines.forEach((l, i) => {
      const m = /^Command failed (.*):(\d+)\s*$/.exec(l);
      if (!m) return;
      const seg = lines
        .slice(segStart, i)
        .map((s) => s.trim())
        .filter((s) => s !== '');
      // The reason: the first line of the segment that is not usage text.
      const reason = seg.find((s) => !/^(Usage:|\.\.\.|\[)/.test(s) && !/^Warning:/.test(s)) ?? seg[0] ?? '';
      push('tc', Number(m[2]), reason);
      segStart = i + 1;
    });
    if (out.length > 0 || tool === 'tc') return out;
  }

  // iptables-restore / ip6tables-restore
  if (tool === undefined || tool === 'iptables-restore') {
    lines.forEach((l, i) => {
      let m = /Error occurred at line: (\d+)/.exec(l);
      if (m) {
        // reason: nearest preceding non-blank line
        let j = i - 1;
        while (j >= 0 && (lines[j] ?? '').trim() === '') j--;
        push('iptables-restore', Number(m[1]), stripToolPrefix(j >= 0 ? (lines[j] ?? '') : ''));
        return;
      }
      m = /restore: line (\d+) failed:?\s*(.*)$/.exec(l);
      if (m) {
        push('iptables-restore', Number(m[1]), m[2] ? m[2] : 'failed');
        return;
      }
      m = /COMMIT expected at line (\d+)/.exec(l);
      if (m) {
        push('iptables-restore', Number(m[1]), 'COMMIT expected');
        return;
      }
      m = /^line (\d+): (.*)$/.exec(l.trim());
      if (m) push('iptables-restore', Number(m[1]), m[2] ?? '');
    });
  }
  return out;
}

/** The first failing line of a batch (see batchErrorLines), or null. */
export function batchErrorLine(stderr: string, input: string, tool?: BatchTool): BatchErrorLine | null {
  return batchErrorLines(stderr, input, tool)[0] ?? null;
}
