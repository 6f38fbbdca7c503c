// [ha]: the role at start and the limits of `reselqos status --health` (src/ha/). One reader
// called by parseConfig; the keys are in schema.ts.

import type { Ctx, SectionReader } from './reader.js';
import type { HaConfig } from './types.js';
import { ROLES } from '../ha/role.js';

export function readHa(r: SectionReader, ctx: Ctx, intervalMs: number): HaConfig {
  const ha: HaConfig = {
    role: r.oneOf('role', ROLES),
    failures: r.int('failures', 1, 1000),
    // unset: 2 minutes, or 3 intervals when that is longer
    maxAgeMs: r.has('maxAge') ? r.duration('maxAge', 1000) : Math.max(r.duration('maxAge', 1000), 3 * intervalMs),
    trackTimeoutMs: r.duration('trackTimeout', 0),
  };
  if (ha.maxAgeMs <= intervalMs)
    ctx.problem('ha', 'maxAge', `must be more than [qos] interval (${intervalMs / 1000}s): every cycle would look stuck`);
  return ha;
}
