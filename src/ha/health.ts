// `reselqos status --health`: can this gateway still shape? keepalived's track_script runs it
// every few seconds; a failure lowers the gateway's priority (or puts it in FAULT) and the
// other gateway takes over. What counts is only what differs between the two gateways:
//   - the daemon is not running or does not answer (the client's side: src/cli/service.ts);
//   - no cycle has ended yet (a daemon just started has not brought its kernel to the desired state);
//   - the last [ha] failures cycles in a row failed on the kernel (read-back or apply);
//   - no cycle has ended for [ha] maxAge (a cycle stuck, e.g. a kernel tool that hangs).
// What does not count: LDAP or MySQL down, a directory refused by the guard, the sharing or
// publish database down. Those hit both gateways alike (same servers): the snapshot in force
// keeps shaping, and handing over would only flap the pair while changing nothing.
// Pure: the daemon hands in what it tracks (cycleEnded) and the instant.

export interface HealthTrack {
  /** when the process started (ms) */
  readonly startedMs: number;
  /** when the last cycle ended, ok or not (ms), or null before the first */
  readonly lastEndedMs: number | null;
  /** when the last successful cycle ended (ms), or null */
  readonly lastOkMs: number | null;
  /** cycles in a row that failed on the kernel, up to now */
  readonly kernelFailures: number;
  /** the last kernel failure's message */
  readonly lastKernelError: string | null;
}

export interface Health {
  readonly healthy: boolean;
  /** one line: why */
  readonly reason: string;
}

const secs = (ms: number): string => `${(ms / 1000).toFixed(1)}s`;

export function judgeHealth(t: HealthTrack, limits: { failures: number; maxAgeMs: number }, nowMs: number): Health {
  if (t.lastEndedMs === null) return { healthy: false, reason: `no cycle has ended yet (started ${secs(nowMs - t.startedMs)} ago)` };
  const sinceEnd = nowMs - t.lastEndedMs;
  if (sinceEnd > limits.maxAgeMs)
    return { healthy: false, reason: `no cycle has ended for ${secs(sinceEnd)} (more than [ha] maxAge ${secs(limits.maxAgeMs)})` };
  if (t.kernelFailures >= limits.failures)
    return {
      healthy: false,
      reason: `the last ${t.kernelFailures} cycles failed on the kernel ([ha] failures = ${limits.failures}): ${t.lastKernelError ?? 'unknown error'}`,
    };
  if (t.lastOkMs === null) return { healthy: false, reason: 'no cycle has succeeded yet' };
  return {
    healthy: true,
    reason: `last cycle ended ${secs(sinceEnd)} ago, last success ${secs(nowMs - t.lastOkMs)} ago${t.kernelFailures ? `, ${t.kernelFailures} kernel failure(s) in a row` : ''}`,
  };
}

/** Follows the cycles for judgeHealth: a failure with a plan is the kernel's; one without (no directory at all) is a source's. */
export class HealthTracker implements HealthTrack {
  lastEndedMs: number | null = null;
  lastOkMs: number | null = null;
  kernelFailures = 0;
  lastKernelError: string | null = null;

  constructor(readonly startedMs: number) {}

  cycleEnded(r: { ok: boolean; desired: unknown; error: string | null }, nowMs: number): void {
    this.lastEndedMs = nowMs;
    if (r.ok) {
      this.lastOkMs = nowMs;
      this.kernelFailures = 0;
    } else if (r.desired !== null) {
      this.kernelFailures++;
      this.lastKernelError = r.error;
    }
  }
}

/**
 * keepalived's track_script asks `status --health` every few seconds. A master that was asked
 * and is then not asked for `timeoutMs` has lost its keepalived (killed: no notify came): the
 * other gateway has taken the addresses, so this one stops writing (backup) rather than write
 * beside the new master. When the asks come back while nothing else set the role meanwhile,
 * it is master again (keepalived was only slow); a keepalived that restarts says BACKUP itself.
 */
export class TrackWatch {
  private lastAskMs: number | null = null;
  /** the role was set to backup by this watch, and by nothing since */
  private orphaned = false;

  constructor(private timeoutMs: number) {}

  reconfigure(timeoutMs: number): void {
    this.timeoutMs = timeoutMs;
  }

  /** A health ask; returns 'master' when an orphaned master's keepalived is back. */
  asked(nowMs: number): 'master' | null {
    this.lastAskMs = nowMs;
    if (!this.orphaned) return null;
    this.orphaned = false;
    return 'master';
  }

  /** The role was set from outside (`reselqos role`): the watch lets go. */
  roleSet(): void {
    this.orphaned = false;
  }

  /** Called before each cycle: 'backup' when a master's asks stopped for longer than the timeout. */
  check(role: string, nowMs: number): { demote: boolean; silentMs: number } {
    if (this.timeoutMs <= 0 || role !== 'master' || this.lastAskMs === null) return { demote: false, silentMs: 0 };
    const silentMs = nowMs - this.lastAskMs;
    if (silentMs <= this.timeoutMs) return { demote: false, silentMs };
    this.orphaned = true;
    this.lastAskMs = null;
    return { demote: true, silentMs };
  }
}
