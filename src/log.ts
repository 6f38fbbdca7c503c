// Logging: a small Logger interface every module takes by constructor, and the
// winston implementation (file under [path] log, optionally stderr). Debug messages
// may be passed as closures so they cost nothing when debug is off.
// Never logs a password: `redact` strips known secrets from any line. Never writes a
// control character: `escapeControl` shows them escaped, in every value from outside (LDAP,
// MySQL) where a message is built and again on the whole line, so one entry is one line.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import winston from 'winston';
import type { LogLevel } from './config/config.js';

export type Meta = Record<string, unknown>;
export interface Logger {
  error(msg: string, meta?: Meta): void;
  warn(msg: string, meta?: Meta): void;
  info(msg: string, meta?: Meta): void;
  debug(msg: string | (() => string), meta?: Meta): void;
}

/** A logger that keeps lines in memory (tests, and `plan` which prints warnings itself). */
export class MemoryLogger implements Logger {
  readonly lines: { level: LogLevel; msg: string; meta?: Meta }[] = [];
  error(msg: string, meta?: Meta): void {
    this.lines.push({ level: 'error', msg, meta });
  }
  warn(msg: string, meta?: Meta): void {
    this.lines.push({ level: 'warn', msg, meta });
  }
  info(msg: string, meta?: Meta): void {
    this.lines.push({ level: 'info', msg, meta });
  }
  debug(msg: string | (() => string), meta?: Meta): void {
    this.lines.push({ level: 'debug', msg: typeof msg === 'string' ? msg : msg(), meta });
  }
  of(level: LogLevel): string[] {
    return this.lines.filter((l) => l.level === level).map((l) => l.msg);
  }
}

let secrets: string[] = [];
/**
 * Registers a secret (bind password, database password, [metrics] token) that must never appear
 * in a log line. Any length: a 1-character password is masked too (every occurrence of that
 * character in the message, the price of never showing it).
 */
export function registerSecret(s: string): void {
  if (s === '' || secrets.includes(s)) return;
  // longest first: a secret inside another is not masked before the longer one is
  secrets = [...secrets, s].sort((a, b) => b.length - a.length);
}
export function redact(text: string): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join('***');
  return out;
}

// eslint-disable-next-line no-control-regex -- control characters are exactly what is escaped here
const CONTROL = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/g;
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * A value from outside (an LDAP attribute, a DN, a MySQL cell) made safe for a log line:
 * control characters (C0, DEL, C1) and the Unicode line separators are shown escaped
 * (`\n`, `\r`, `\t`, `\x1b`, `\u2028`). Other characters, backslash included, are kept, so
 * escaping twice changes nothing.
 */
export function escapeControl(s: string): string {
  return s.replace(CONTROL, (c) => {
    const named = NAMED[c];
    if (named) return named;
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

export interface WinstonOptions {
  level: LogLevel;
  dir?: string | null; // writes <dir>/reselqos.log
  stderr?: boolean;
}

export interface FileLogger extends Logger {
  /** Reopen the log file (after logrotate moved it). */
  reopen(): void;
  close(): Promise<void>;
  setLevel(level: LogLevel): void;
}

export function createLogger(opts: WinstonOptions): FileLogger {
  const fmt = winston.format.printf((info) => {
    const meta = Object.entries(info).filter(([k]) => !['level', 'message', 'timestamp', 'splat'].includes(k) && typeof k === 'string');
    const extra = meta.length ? ' ' + JSON.stringify(Object.fromEntries(meta)) : '';
    // the message and its metadata masked, not the timestamp and level (a short secret may be a digit)
    return `${String(info['timestamp'])} ${info.level} ${redact(escapeControl(String(info.message)) + escapeControl(extra))}`;
  });
  const timestamp = winston.format.timestamp({ format: () => localIsoWithZone(new Date()) });
  const makeFile = (): winston.transport | null => {
    if (!opts.dir) return null;
    mkdirSync(opts.dir, { recursive: true, mode: 0o750 });
    return new winston.transports.File({ filename: join(opts.dir, 'reselqos.log'), format: winston.format.combine(timestamp, fmt) });
  };
  const logger = winston.createLogger({ level: opts.level, transports: [] });
  let file = makeFile();
  if (file) logger.add(file);
  if (opts.stderr) {
    logger.add(
      new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'], format: winston.format.combine(timestamp, fmt) }),
    );
  }
  const wrap =
    (level: LogLevel) =>
    (msg: string | (() => string), meta?: Meta): void => {
      if (level === 'debug' && !logger.isDebugEnabled()) return;
      logger.log(level, typeof msg === 'string' ? msg : msg(), meta ?? {});
    };
  return {
    error: wrap('error'),
    warn: wrap('warn'),
    info: wrap('info'),
    debug: wrap('debug'),
    reopen(): void {
      if (!file) return;
      const old = file;
      file = makeFile();
      if (file) logger.add(file);
      logger.remove(old);
      old.close?.();
    },
    setLevel(level: LogLevel): void {
      logger.level = level;
    },
    close(): Promise<void> {
      return new Promise((resolve) => {
        logger.on('finish', () => resolve());
        logger.end();
        setTimeout(resolve, 500).unref();
      });
    },
  };
}

/** 2026-11-22T21:30:05.123+01:00 in the process's zone. */
export function localIsoWithZone(d: Date): string {
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const abs = Math.abs(off);
  const local = new Date(d.getTime() + off * 60_000).toISOString().slice(0, 23);
  return `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}
