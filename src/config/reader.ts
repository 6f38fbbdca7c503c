// Reading qos.conf section by section while collecting EVERY problem: each names the file, the
// line, the section and the key (ConfigProblem, ConfigError). The typed getters of a section
// (SectionReader) always return a usable value, so one bad key never hides the next.

import { specOf, type Section } from './schema.js';
import { UnitError, parseDuration, parseRate } from './units.js';

export interface ConfigProblem {
  readonly file: string;
  readonly line: number | null;
  readonly section: string;
  readonly key: string | null;
  readonly message: string;
}

export function formatProblem(p: ConfigProblem): string {
  const where = p.line === null ? p.file : `${p.file}:${p.line}`;
  const what = p.key === null ? `[${p.section}]` : `[${p.section}] ${p.key}`;
  return `${where}: ${what}: ${p.message}`;
}

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: readonly ConfigProblem[],
  ) {
    super(`${file}: ${problems.length} problem(s) in configuration:\n` + problems.map((p) => '  ' + formatProblem(p)).join('\n'));
    this.name = 'ConfigError';
  }
}

/** Line numbers of sections and keys, scanned the way `ini` reads the file. */
export interface LineIndex {
  sections: Map<string, number>;
  keys: Map<string, number>; // "section\0keylower" -> line of the LAST occurrence
  duplicates: { section: string; key: string; line: number }[];
}

export function indexLines(text: string): LineIndex {
  const sections = new Map<string, number>();
  const keys = new Map<string, number>();
  const duplicates: LineIndex['duplicates'] = [];
  let section = '';
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith(';') || line.startsWith('#')) return;
    const sec = /^\[([^\]]*)\]/.exec(line);
    if (sec) {
      section = sec[1]!.trim();
      if (!sections.has(section)) sections.set(section, i + 1);
      return;
    }
    const eq = line.indexOf('=');
    const key = (eq < 0 ? line : line.slice(0, eq)).trim();
    const id = `${section}\0${key.toLowerCase()}`;
    if (keys.has(id)) duplicates.push({ section, key, line: i + 1 });
    keys.set(id, i + 1);
  });
  return { sections, keys, duplicates };
}

/** The longest delay of a node timer (setTimeout): a duration key is at most this. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Reads one section, tracking problems; every getter returns a usable value even on error. */
export class SectionReader {
  private readonly values = new Map<string, { key: string; value: string }>();
  readonly used = new Set<string>();

  constructor(
    readonly section: Section,
    obj: Record<string, unknown> | undefined,
    private readonly ctx: Ctx,
  ) {
    for (const [key, value] of Object.entries(obj ?? {})) {
      if (value !== null && typeof value === 'object') {
        ctx.problem(section, key, 'expected a value, got a section or array');
        continue;
      }
      // ini turns true/false/null into non-strings: take them back as written.
      this.values.set(key.toLowerCase(), { key, value: value === null ? '' : typeof value === 'string' ? value : JSON.stringify(value) });
    }
  }

  entries(): { key: string; value: string }[] {
    return [...this.values.values()];
  }

  has(key: string): boolean {
    const v = this.values.get(key.toLowerCase());
    return v !== undefined;
  }

  /** Raw string: the value as written or the schema default. */
  str(key: string): string {
    this.used.add(key.toLowerCase());
    const v = this.values.get(key.toLowerCase());
    if (v !== undefined) return v.value.trim();
    const spec = specOf(this.section, key);
    if (spec?.def === undefined) {
      this.ctx.problem(this.section, key, 'is required', null);
      return '';
    }
    return spec.def;
  }

  /** Parses with fn; on error records it and returns fallback. */
  parse<T>(key: string, fn: (raw: string) => T, fallback: T): T {
    const raw = this.str(key);
    if (raw === '' && specOf(this.section, key)?.def === undefined) return fallback; // already reported
    try {
      return fn(raw);
    } catch (e) {
      this.ctx.problem(this.section, key, e instanceof Error ? e.message : String(e));
      return fallback;
    }
  }

  bool(key: string): boolean {
    return this.parse(
      key,
      (raw) => {
        const v = raw.toLowerCase();
        if (['1', 'yes', 'true', 'on'].includes(v)) return true;
        if (['0', 'no', 'false', 'off', ''].includes(v)) return false;
        throw new UnitError(`expected 0 or 1, got "${raw}"`);
      },
      false,
    );
  }

  int(key: string, min: number, max: number): number {
    return this.parse(
      key,
      (raw) => {
        if (!/^-?[0-9]+$/.test(raw)) throw new UnitError(`expected an integer, got "${raw}"`);
        const n = Number(raw);
        if (n < min || n > max) throw new UnitError(`expected an integer from ${min} to ${max}, got ${raw}`);
        return n;
      },
      min,
    );
  }

  float(key: string, check: (n: number) => string | null): number {
    return this.parse(
      key,
      (raw) => {
        if (!/^[0-9]+(\.[0-9]+)?$/.test(raw)) throw new UnitError(`expected a number, got "${raw}"`);
        const n = Number(raw);
        if (!Number.isFinite(n)) throw new UnitError(`number too large, got ${raw.slice(0, 40)}…`);
        const bad = check(n);
        if (bad) throw new UnitError(`${bad}, got ${raw}`);
        return n;
      },
      1,
    );
  }

  share(key: string): number {
    return this.parse(
      key,
      (raw) => {
        const m = /^([0-9]+(?:\.[0-9]+)?)\s*%$/.exec(raw);
        const n = m ? Number(m[1]) / 100 : /^[0-9.]+$/.test(raw) ? Number(raw) : NaN;
        if (!(n >= 0 && n <= 1)) throw new UnitError(`expected a share such as 20%, got "${raw}"`);
        return n;
      },
      0,
    );
  }

  rate(key: string): number {
    return this.parse(key, (raw) => parseRate(raw), 1);
  }

  duration(key: string, minMs: number): number {
    return this.parse(
      key,
      (raw) => {
        const ms = parseDuration(raw);
        if (ms < minMs) throw new UnitError(`must be at least ${minMs} ms, got "${raw}"`);
        // node's timers wait at most 2^31-1 ms: a longer delay fires after 1 ms
        if (!(ms <= MAX_TIMER_MS)) throw new UnitError(`must be at most ${MAX_TIMER_MS} ms (24.8 days), got "${raw.slice(0, 40)}"`);
        return ms;
      },
      minMs,
    );
  }

  oneOf<T extends string>(key: string, allowed: readonly T[]): T {
    return this.parse(
      key,
      (raw) => {
        const v = raw.toLowerCase();
        const hit = allowed.find((a) => a.toLowerCase() === v);
        if (!hit) throw new UnitError(`expected one of ${allowed.join(', ')}, got "${raw}"`);
        return hit;
      },
      allowed[0]!,
    );
  }

  /** A name that will reach the kernel or SQL as an identifier. */
  ident(key: string, re: RegExp, what: string): string {
    return this.parse(
      key,
      (raw) => {
        if (!re.test(raw)) throw new UnitError(`expected ${what}, got "${raw}"`);
        return raw;
      },
      '',
    );
  }
}

export class Ctx {
  readonly problems: ConfigProblem[] = [];
  readonly warnings: string[] = [];
  constructor(
    readonly file: string,
    readonly lines: LineIndex,
  ) {}

  lineOf(section: string, key: string | null): number | null {
    if (key === null) return this.lines.sections.get(section) ?? null;
    return this.lines.keys.get(`${section}\0${key.toLowerCase()}`) ?? this.lines.sections.get(section) ?? null;
  }

  problem(section: string, key: string | null, message: string, line?: number | null): void {
    this.problems.push({ file: this.file, line: line === undefined ? this.lineOf(section, key) : line, section, key, message });
  }

  warn(section: string, key: string | null, message: string): void {
    this.warnings.push(formatProblem({ file: this.file, line: this.lineOf(section, key), section, key, message }));
  }
}
