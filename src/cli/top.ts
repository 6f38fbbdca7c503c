// `reselqos top [-c FILE] [--once]`: a live terminal view over the control socket, like
// iftop: per direction, each group's throughput now (its tc class counters read every
// second) against its policy rate, and the users with the largest volumes since the reset.
// Refreshes every second; q (or Ctrl-C) quits. --once prints one frame (after a second's
// measurement) and exits. Reads only; changes nothing.

import { askDaemon, NotRunningError } from '../daemon/control.js';
import type { TopJson } from '../metrics/views.js';
import { formatRate, formatSize } from '../config/units.js';
import { DIRECTIONS } from '../policy/policy.js';
import { EXIT, runDirOf, type Io } from './common.js';

const NOT_RUNNING = 7;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function topText(t: TopJson, width = 100): string {
  const lines = [`reselqos top — ${t.at}  (q quits)`, ''];
  for (const dir of DIRECTIONS) {
    lines.push(`${dir === 'down' ? 'download' : 'upload'}:   group   users        policy rate          now     queue  drops   delay`);
    for (const c of t.classes.filter((x) => x.direction === dir)) {
      const now = c.bps === null ? '-' : formatRate(Math.round(c.bps));
      const bar = c.bps === null || c.rateBps === 0 ? '' : '#'.repeat(Math.min(30, Math.round((c.bps / c.rateBps) * 10)));
      const q = c.queue;
      const queue = q
        ? `${formatSize(q.backlogBytes).padStart(9)} ${String(q.drops).padStart(6)} ${q.avgDelayMs === null ? '      -' : `${q.avgDelayMs.toFixed(1)}ms`.padStart(7)}`
        : '        -      -       -';
      lines.push(
        `          ${String(c.group).padStart(5)} ${String(c.users).padStart(7)} ${formatRate(c.rateBps).padStart(18)} ${now.padStart(12)} ${queue}  ${bar}`,
      );
    }
    lines.push('');
  }
  for (const dir of DIRECTIONS) {
    lines.push(`largest ${dir === 'down' ? 'download' : 'upload'} volumes since the reset:`);
    for (const u of t.users.filter((x) => x.direction === dir))
      lines.push(`  ${u.uid.padEnd(24)} ${formatSize(u.bytes).padStart(10)}  group ${u.group}`);
    lines.push('');
  }
  return lines.map((l) => l.slice(0, width)).join('\n');
}

export async function runTop(configFlag: string | undefined, once: boolean, io: Io): Promise<number> {
  const runDir = await runDirOf(configFlag);
  const ask = async (): Promise<TopJson> => {
    const a = await askDaemon(runDir, { cmd: 'top' }, 10_000);
    if (!a.ok) throw new Error(typeof a['error'] === 'string' ? a['error'] : 'top failed');
    return a['top'] as TopJson;
  };
  try {
    await ask(); // the first answer starts the measurement
    if (once) {
      await sleep(1000);
      io.out(topText(await ask()));
      return EXIT.ok;
    }
    const tty = process.stdin.isTTY === true;
    let quit = false;
    if (tty) {
      process.stdin.setRawMode(true);
      process.stdin.resume();
      process.stdin.on('data', (b: Buffer) => {
        const k = b.toString();
        if (k === 'q' || k === 'Q' || k === '\u0003') quit = true;
      });
    }
    process.once('SIGINT', () => (quit = true));
    try {
      while (!quit) {
        await sleep(1000);
        if (quit) break;
        const frame = topText(await ask(), process.stdout.columns ?? 100);
        process.stdout.write('\x1b[H\x1b[2J' + frame + '\n');
      }
    } finally {
      if (tty) {
        process.stdin.setRawMode(false);
        process.stdin.pause();
      }
    }
    return EXIT.ok;
  } catch (e) {
    if (e instanceof NotRunningError) {
      io.err(`reselqos top: ${e.message}`);
      return NOT_RUNNING;
    }
    io.err(`reselqos top: ${(e as Error).message}`);
    return EXIT.failed;
  }
}
