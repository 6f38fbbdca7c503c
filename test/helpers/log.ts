// The daemon's log file as the tests read it. winston's file transport writes through a stream:
// a line can reach the file a moment after the kernel change or the control-socket answer that
// followed it, so a test waits for a line rather than reading the file once.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The text of `<dir>/log/reselqos.log` ('' while it does not exist yet). */
export function logText(dir: string): string {
  try {
    return readFileSync(join(dir, 'log', 'reselqos.log'), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw e;
  }
}

/** The first line of the log matching `re`, waited for up to `ms`; fails with the log's tail. */
export async function waitLogLine(dir: string, re: RegExp, ms = 10_000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const hit = logText(dir)
      .split('\n')
      .find((l) => re.test(l));
    if (hit !== undefined) return hit;
    if (Date.now() > end) assert.fail(`no log line ~ ${re} within ${ms} ms:\n${logText(dir).split('\n').slice(-15).join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
