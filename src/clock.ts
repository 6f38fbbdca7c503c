// The injected clock. Production passes systemClock; tests pass a fixed or
// stepping instant. Nothing else in reselqos reads the wall clock for decisions.

import { DateTime } from 'luxon';

export type Clock = () => DateTime;

export const systemClock: Clock = () => DateTime.now();

export function fixedClock(iso: string, zone = 'UTC'): Clock {
  const at = DateTime.fromISO(iso, { zone });
  if (!at.isValid) throw new Error(`invalid instant "${iso}": ${at.invalidExplanation ?? ''}`);
  return () => at;
}
