// Byte counters of our HTB root class (1:1, the direction total) on each shaped interface:
// what a site sends its users (download, eth_int) and the internet (upload, eth_ext). Read
// every cycle when sites share the global rates, to measure the site's throughput (its
// demand); two `tc -s class show dev X classid 1:1` spawns. Never changes anything.

import type { Exec } from '../exec/exec.js';

export interface ClassCounters {
  /** bytes sent since the class was created */
  readonly bytes: number;
  /** times HTB held a packet back because the class was over its rate */
  readonly overlimits: number;
}

/**
 * `tc -s class show dev X classid 1:1` (iproute2 6.1; the same text with -j):
 *   class htb 1:1 root rate 50Mbit ceil 50Mbit burst 1600b cburst 1600b
 *    Sent 12345 bytes 67 pkt (dropped 0, overlimits 199 requeues 0)
 * → { bytes: 12345, overlimits: 199 }; null when the class is not there (no output).
 */
export function parseClassCounters(text: string): ClassCounters | null {
  const m = /^\s*Sent (\d+) bytes \d+ pkt \(dropped \d+, overlimits (\d+)/m.exec(text);
  return m ? { bytes: Number(m[1]), overlimits: Number(m[2]) } : null;
}

/** Counters of class `classid` of `dev`; null when it does not exist. */
export async function readClassCounters(exec: Exec, dev: string, classid: string): Promise<ClassCounters | null> {
  const r = await exec('tc', ['-s', 'class', 'show', 'dev', dev, 'classid', classid]);
  return parseClassCounters(r.stdout);
}

/** Bytes sent through class `classid` of `dev`; null when it does not exist. */
export async function readClassBytes(exec: Exec, dev: string, classid: string): Promise<number | null> {
  return (await readClassCounters(exec, dev, classid))?.bytes ?? null;
}
