// bench/spawner.ts — baseline 1 of the benchmark: one `ipset` process per IP and operation,
// as the original Python scripts did. Started by bench.ts *inside* the gateway namespace
// (`ip netns exec <gw> node spawner.js`), so that each operation costs what it cost on the
// gateway itself: one fork/exec of ipset (mode "direct", argv, no shell) or of /bin/sh -c
// "ipset …" (mode "shell", like os.system). Reads {mode, ops: [["del","qos_d0","172.22.1.2"], …]}
// as JSON on stdin, runs the operations one after the other, prints {ms, n, failures} as JSON.
// Benchmark-only code; never used by the daemon.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

interface Job {
  mode: 'direct' | 'shell';
  ops: string[][];
}

const SAFE = /^[A-Za-z0-9_.:-]+$/;

const job = JSON.parse(readFileSync(0, 'utf8')) as Job;
let failures = 0;
let firstError = '';
const t0 = performance.now();
for (const op of job.ops) {
  let r;
  if (job.mode === 'shell') {
    // set names and canonical IPs only: checked, so the shell sees plain words
    if (!op.every((w) => SAFE.test(w))) throw new Error(`spawner: refusing unsafe word in ${JSON.stringify(op)}`);
    r = spawnSync('/bin/sh', ['-c', `ipset ${op.join(' ')}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  } else {
    r = spawnSync('ipset', op, { stdio: ['ignore', 'ignore', 'pipe'] });
  }
  if (r.status !== 0) {
    failures++;
    if (!firstError) firstError = `${op.join(' ')}: ${String(r.stderr ?? r.error ?? '').trim()}`;
  }
}
const ms = performance.now() - t0;
process.stdout.write(JSON.stringify({ ms, n: job.ops.length, failures, firstError }));
