// Byte counters of our HTB root class (1:1, the direction total) on each shaped interface:
// what a site sends its users (download, eth_int) and the internet (upload, eth_ext). Read
// every cycle when sites share the global rates, to measure the site's throughput (its
// demand); two `tc -s class show dev X classid 1:1` spawns. Never changes anything.

import type { Exec } from './exec.js';

/**
 * `tc -s class show dev X classid 1:1` (iproute2 6.1; the same text with -j):
 *   class htb 1:1 root rate 50Mbit ceil 50Mbit burst 1600b cburst 1600b
 *    Sent 12345 bytes 67 pkt (dropped 0, overlimits 0 requeues 0)
 * → 12345; null when the class is not there (no output).
 */
export function parseSentBytes(text: string): number | null {
  const m = /^\s*Sent (\d+) bytes/m.exec(text);
  return m ? Number(m[1]) : null;
}

/** Bytes sent through class `classid` of `dev` since it was created; null when it does not exist. */
export async function readClassBytes(exec: Exec, dev: string, classid: string): Promise<number | null> {
  const r = await exec('tc', ['-s', 'class', 'show', 'dev', dev, 'classid', classid]);
  return parseSentBytes(r.stdout);
}
