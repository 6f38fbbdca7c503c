// Units of qos.conf: rates (bit/s), sizes (bytes), times of day (minutes).
// Owns parsing and formatting of quantities; never reads files, never throws
// anything but UnitError (the config loader adds section and key).
//
// Conventions, chosen for network operators:
// - rates: `bit`, `kbit`, `Mbit`, `Gbit` and `bps`, `kbps`, `Mbps`, `Gbps` are all
//   BITS per second, SI multiples (1 kbit = 1000 bit, as in tc). Beware: in tc,
//   `mbps` means megaBYTES per second; here `Mbps` means megabits. A bare number is
//   refused (too easy to misread).
// - sizes: `B`, `kB`/`ko`, `MB`/`Mo`, `GB`/`Go`, `TB`/`To` (SI), `KiB`, `MiB`, `GiB`,
//   `TiB` (binary); a bare number means MB (10^6 bytes), as in the original defaults.
// - times: `H:MM` or `HH:MM`, 0:00 to 23:59.

export class UnitError extends Error {}

const RATE_UNITS: Readonly<Record<string, number>> = {
  bit: 1,
  bps: 1,
  kbit: 1e3,
  kbps: 1e3,
  mbit: 1e6,
  mbps: 1e6,
  gbit: 1e9,
  gbps: 1e9,
};

const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  o: 1,
  kb: 1e3,
  ko: 1e3,
  mb: 1e6,
  mo: 1e6,
  gb: 1e9,
  go: 1e9,
  tb: 1e12,
  to: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

const NUMBER_UNIT = /^([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)$/;

function split(raw: string, what: string): { value: number; unit: string } {
  const m = NUMBER_UNIT.exec(raw.trim());
  if (!m) throw new UnitError(`expected a ${what}, got "${raw}"`);
  return { value: Number(m[1]), unit: m[2] ?? '' };
}

/** Parses a rate into integer bit/s. "0" alone is accepted (rate rules use 0 = unchanged). */
export function parseRate(raw: string, opts: { allowZero?: boolean } = {}): number {
  const text = raw.trim();
  if (opts.allowZero && /^0+(\.0+)?$/.test(text)) return 0;
  const { value, unit } = split(text, 'rate such as 100Mbit or 160Mbps');
  if (unit === '') {
    throw new UnitError(`rate "${raw}" has no unit: write e.g. ${text}Mbit (bit, kbit, Mbit, Gbit; Mbps = megabits)`);
  }
  const mult = RATE_UNITS[unit.toLowerCase()];
  if (mult === undefined) {
    if (SIZE_UNITS[unit.toLowerCase()] !== undefined) {
      throw new UnitError(`"${raw}" is a size, not a rate: write e.g. ${value}Mbit`);
    }
    throw new UnitError(`unknown rate unit "${unit}" in "${raw}" (use bit, kbit, Mbit, Gbit, bps, kbps, Mbps, Gbps)`);
  }
  const bits = Math.round(value * mult);
  if (bits <= 0 && !opts.allowZero) throw new UnitError(`rate "${raw}" must be positive`);
  if (!Number.isSafeInteger(bits)) throw new UnitError(`rate "${raw}" is too large`);
  return bits;
}

/** Parses a size into integer bytes. A bare number means MB (10^6 bytes). */
export function parseSize(raw: string): number {
  const { value, unit } = split(raw, 'size such as 1250MB or 2GiB');
  let mult: number | undefined;
  if (unit === '') mult = 1e6;
  else mult = SIZE_UNITS[unit.toLowerCase()];
  if (mult === undefined) {
    if (RATE_UNITS[unit.toLowerCase()] !== undefined) {
      throw new UnitError(`"${raw}" is a rate, not a size: write e.g. ${value}MB`);
    }
    throw new UnitError(`unknown size unit "${unit}" in "${raw}" (use B, kB/ko, MB/Mo, GB/Go, MiB, GiB)`);
  }
  // "mb"/"Mb" would be read as megabytes; megabits are never a size, so refuse the
  // lowercase-b spellings that look like bits (Mb, Gb, kb) to avoid the classic mix-up.
  if (/^[kmgt]b$/.test(unit) || /^[KMGT]b$/.test(unit)) {
    throw new UnitError(`ambiguous size unit "${unit}" in "${raw}": write ${unit[0]!.toUpperCase()}B for bytes`);
  }
  const bytes = Math.round(value * mult);
  if (!Number.isSafeInteger(bytes)) throw new UnitError(`size "${raw}" is too large`);
  return bytes;
}

/** Parses `H:MM` / `HH:MM` into minutes after midnight. */
export function parseTimeOfDay(raw: string): number {
  const m = /^([0-9]{1,2}):([0-9]{2})$/.exec(raw.trim());
  if (!m) throw new UnitError(`expected HH:MM, got "${raw}"`);
  const h = Number(m[1]);
  const min = Number(m[2]);
  if (h > 23 || min > 59) throw new UnitError(`expected HH:MM, got "${raw}"`);
  return h * 60 + min;
}

/** Parses a duration in seconds: `10`, `10s`, `2m`, `1h`, `500ms`. Returns milliseconds. */
export function parseDuration(raw: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|min|h)?$/.exec(raw.trim());
  if (!m) throw new UnitError(`expected a duration such as 10s, 2m or 500ms, got "${raw}"`);
  const v = Number(m[1]);
  const unit = m[2] ?? 's';
  const mult = unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'h' ? 3_600_000 : 60_000;
  return Math.round(v * mult);
}

export function formatRate(bps: number): string {
  if (bps >= 1e9 && bps % 1e7 === 0) return `${bps / 1e9}Gbit`;
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(bps % 1e6 === 0 ? 0 : 2)}Mbit`;
  if (bps >= 1e3) return `${(bps / 1e3).toFixed(bps % 1e3 === 0 ? 0 : 2)}kbit`;
  return `${bps}bit`;
}

export function formatSize(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${(bytes / 1e3).toFixed(1)} kB`;
  return `${bytes} B`;
}

export function formatTimeOfDay(minutes: number): string {
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`;
}
