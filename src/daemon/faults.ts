// What the daemon does with failures nobody awaited (installed for its lifetime).
// An unhandled promise rejection: the work that failed is over, and the awaited paths
// (cycles, reloads, the control socket) handle their own errors, so the daemon's state is
// what they left: log it (one error line) and go on. An uncaught exception: the code that
// threw stopped half-way, so the daemon's state may be inconsistent: log it and hand over to
// `onFatal` (an orderly stop, kernel state kept, exit 1 for the service manager to restart).
// Owns nothing else; never exits the process itself.

import type { Logger } from '../log.js';

export function describeError(e: unknown): string {
  if (e instanceof Error) return `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}`;
  return String(e);
}

/** Installs both handlers; returns the function that removes them. */
export function guardProcess(log: Logger, onFatal: (e: unknown) => void, proc: NodeJS.Process = process): () => void {
  let fatal = false;
  const onRejection = (reason: unknown): void => {
    log.error(`unhandled rejection (a bug; the daemon goes on): ${describeError(reason)}`);
  };
  const onException = (e: unknown): void => {
    log.error(`uncaught exception, stopping (the kernel state is kept; the service manager restarts the daemon): ${describeError(e)}`);
    if (fatal) return; // already stopping
    fatal = true;
    onFatal(e);
  };
  proc.on('unhandledRejection', onRejection);
  proc.on('uncaughtException', onException);
  return () => {
    proc.off('unhandledRejection', onRejection);
    proc.off('uncaughtException', onException);
  };
}
