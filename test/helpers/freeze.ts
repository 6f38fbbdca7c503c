// Freezing a server (SIGSTOP) the way a hung LDAP or MySQL server behaves: connections are
// accepted by the kernel, nothing is answered. Test-only code.

import { readdirSync, readFileSync } from 'node:fs';

/** Waits until /proc says every thread of the process is stopped (SIGSTOP takes effect asynchronously). */
export async function waitStopped(pid: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const tasks = readdirSync(`/proc/${pid}/task`);
    if (tasks.every((t) => /^\d+ \(.*\) [Tt] /.test(readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8')))) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`pid ${pid} did not stop`);
}

/** SIGSTOP, then waits for it to take effect; returns the SIGCONT (idempotent). */
export async function freeze(pid: number): Promise<() => void> {
  process.kill(pid, 'SIGSTOP');
  await waitStopped(pid);
  let thawed = false;
  return () => {
    if (thawed) return;
    thawed = true;
    process.kill(pid, 'SIGCONT');
  };
}
