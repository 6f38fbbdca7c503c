// The off-peak weight of one netacct hour bucket ([qos] offPeakFrom/To/Weight). Pure: a bucket
// is named by the instant of its start (UNIX_TIMESTAMP of the `time` column, as the database
// server reads its own local time), the window by minutes of the local day in [qos] timezone.
//
// Rule (docs/DESIGN.md, "Off-peak hours"): a row holds the bytes of one hour and nothing says
// when within the hour they came, so the hour counts pro rata by its minutes inside the window:
// weight = 1 - (minutes inside / 60) x (1 - offPeakWeight). An hour wholly inside counts at
// offPeakWeight, wholly outside at 1, the hour of 06:00 with a window ending at 06:30 at half of
// each. Each of the 60 minutes is placed by its own wall-clock time in the zone, so DST needs no
// special case: the hour skipped in spring has no row; in autumn nacctd writes both real hours
// of the repeated local hour into the one bucket (the server's local time repeats), and both
// have the same wall-clock minutes, so whichever instant the server picks weighs the same.
// A server in another zone than [qos] timezone is handled the same way (minutes by instant).

import { DateTime } from 'luxon';
import type { OffPeakWindow } from '../config/types.js';
import { inWindow } from '../config/rules.js';

/** Counted bytes of `bytes` at weight `w` (kept exact for w = 1 and w = 0). */
export const weighted = (bytes: number, w: number): number => (w === 1 ? bytes : w === 0 ? 0 : bytes * w);

export class HourWeights {
  /** bucket start (Unix seconds) -> weight; bounded (a day has ~25 buckets, the cache holds weeks) */
  private readonly cache = new Map<number, number>();

  constructor(
    readonly window: OffPeakWindow,
    readonly timezone: string,
  ) {}

  /** The minutes of the hour starting at `startUnix` (seconds) that fall inside the window (0..60). */
  minutesInside(startUnix: number): number {
    let inside = 0;
    let at = DateTime.fromSeconds(startUnix, { zone: this.timezone });
    const offset = at.offset;
    const end = DateTime.fromSeconds(startUnix + 3540, { zone: this.timezone });
    // the usual case: one offset through the hour, minutes follow each other on the wall clock
    if (end.offset === offset) {
      const first = at.hour * 60 + at.minute;
      for (let m = 0; m < 60; m++) if (inWindow(this.window, (first + m) % 1440)) inside++;
      return inside;
    }
    for (let m = 0; m < 60; m++, at = at.plus({ minutes: 1 })) if (inWindow(this.window, at.hour * 60 + at.minute)) inside++;
    return inside;
  }

  /** The weight of the bytes of the hour bucket starting at `startUnix` (NaN: not a time, weight 1). */
  of(startUnix: number): number {
    let w = this.cache.get(startUnix);
    if (w === undefined) {
      w = Number.isFinite(startUnix) ? 1 - (this.minutesInside(startUnix) / 60) * (1 - this.window.weight) : 1;
      if (this.cache.size > 4096) this.cache.clear();
      this.cache.set(startUnix, w);
    }
    return w;
  }
}

/** "23:00-07:00 at 0" (check, explain). */
export function describeWindow(w: OffPeakWindow): string {
  const hhmm = (m: number): string => `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
  return `${hhmm(w.from)}-${hhmm(w.to)} counted at ${w.weight}`;
}
