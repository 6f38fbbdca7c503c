// The HA pair's verbs (docs/INSTALL.md, "HA pair"): `reselqos role master|backup|fault`
// (keepalived's notify script) and `reselqos status --health` (its track_script). Both talk to
// the daemon over the control socket; neither decides anything itself.

import { mkdir } from 'node:fs/promises';
import { askDaemon, NotRunningError } from '../daemon/control.js';
import { parseRole, roleFile, writeRoleFile, ROLES } from '../ha/role.js';
import { EXIT, UsageError, runDirOf, type Io } from './common.js';

/** How long `status --health` waits for the daemon: a daemon slower than this is not healthy. */
export const HEALTH_TIMEOUT_MS = 5000;

/**
 * `reselqos role ROLE`: tells the running daemon; when none runs, keeps the role in
 * [path] run/ha-role, which the daemon takes at start (exit 0 both ways: keepalived's
 * notify must not fail because reselqos is restarting).
 */
export async function runRole(configFlag: string | undefined, arg: string | undefined, io: Io): Promise<number> {
  const role = arg === undefined ? null : parseRole(arg);
  if (!role) throw new UsageError(`role needs one of ${ROLES.join(', ')}${arg === undefined ? '' : `, got "${arg}"`}`);
  const runDir = await runDirOf(configFlag);
  try {
    const a = await askDaemon(runDir, { cmd: 'role', role }, 10_000);
    if (!a.ok) {
      io.err(`reselqos role: ${String(a['error'])}`);
      return EXIT.failed;
    }
    io.out(a['changed'] ? `role ${String(a['from'])} -> ${role}` : `role ${role} (unchanged)`);
    if (a['kept'] === false) io.err(`reselqos role: the daemon could not keep the role in ${roleFile(runDir)} (see its log)`);
    return EXIT.ok;
  } catch (e) {
    if (!(e instanceof NotRunningError)) throw e;
    await mkdir(runDir, { recursive: true, mode: 0o700 });
    await writeRoleFile(runDir, role);
    io.out(`reselqos is not running: role ${role} kept in ${roleFile(runDir)}, taken at start`);
    return EXIT.ok;
  }
}

/** `reselqos status --health`: exit 0 healthy, 1 not; one line saying why (src/ha/health.ts). */
export async function runHealth(configFlag: string | undefined, io: Io): Promise<number> {
  const runDir = await runDirOf(configFlag);
  try {
    const a = await askDaemon(runDir, { cmd: 'health' }, HEALTH_TIMEOUT_MS);
    if (!a.ok || typeof a['healthy'] !== 'boolean') {
      io.out(`unhealthy: the daemon does not answer health (${typeof a['error'] === 'string' ? a['error'] : 'bad answer'})`);
      return EXIT.failed;
    }
    io.out(`${a['healthy'] ? 'healthy' : 'unhealthy'} (${String(a['role'])}): ${String(a['reason'])}`);
    return a['healthy'] ? EXIT.ok : EXIT.failed;
  } catch (e) {
    io.out(`unhealthy: ${e instanceof NotRunningError ? e.message : (e as Error).message}`);
    return EXIT.failed;
  }
}
