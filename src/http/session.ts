// Who may read the listener when [metrics] token is set: a client sending
// `Authorization: Bearer <token>` (Prometheus, curl, a proxy), or a browser holding the session
// cookie the login form gave it. The cookie is `<expiry>.<HMAC-SHA256(token, expiry)>`: no state
// on the daemon, it expires after SESSION_S, and a new token (reload) invalidates every one. It
// is HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it), Path=/, and
// Secure when the request came through a TLS proxy (X-Forwarded-Proto: https).
// Pure functions of their arguments (the time is passed in).

import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

export const COOKIE = 'reselqos_session';
export const SESSION_S = 12 * 3600;

/** Equal strings, in a time that does not depend on where they differ or on their lengths. */
export function sameSecret(a: string, b: string): boolean {
  const h = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(h(a), h(b));
}

export function bearerOk(header: string | undefined, token: string): boolean {
  const m = /^Bearer (.+)$/i.exec((header ?? '').trim());
  return m !== null && sameSecret(m[1]!, token);
}

const sign = (token: string, exp: number): string =>
  createHmac('sha256', token).update(`reselqos-dashboard-session:${exp}`).digest('base64url');

/** A new session's cookie value, valid SESSION_S from nowMs. */
export function sessionValue(token: string, nowMs: number): string {
  const exp = Math.floor(nowMs / 1000) + SESSION_S;
  return `${exp}.${sign(token, exp)}`;
}

/** Whether the Cookie header holds a session cookie signed with this token and not expired. */
export function sessionOk(cookieHeader: string | undefined, token: string, nowMs: number): boolean {
  if (!cookieHeader || token === '') return false;
  const now = Math.floor(nowMs / 1000);
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== COOKIE) continue;
    const m = /^(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(part.slice(eq + 1).trim());
    if (!m) continue;
    const exp = Number(m[1]);
    if (exp <= now || exp > now + SESSION_S) continue;
    if (timingSafeEqual(Buffer.from(m[2]!), Buffer.from(sign(token, exp)))) return true;
  }
  return false;
}

/** The Set-Cookie header giving (value) or clearing (null) the session. */
export function setCookie(value: string | null, secure: boolean): string {
  const attrs = ['Path=/', 'HttpOnly', 'SameSite=Strict', `Max-Age=${value === null ? 0 : SESSION_S}`];
  if (secure) attrs.push('Secure');
  return [`${COOKIE}=${value ?? ''}`, ...attrs].join('; ');
}

/** The request came over TLS to a proxy in front of us (we only speak plain HTTP). */
export const viaTls = (h: IncomingHttpHeaders): boolean => String(h['x-forwarded-proto'] ?? '').toLowerCase() === 'https';

/**
 * A POST to /login or /logout comes from our own page: refused when the browser says it is
 * cross-site (Sec-Fetch-Site) or sends an Origin whose host is neither Host nor, behind a proxy
 * that rewrites Host, X-Forwarded-Host. A client sending neither header (curl) is let through:
 * it has to know the token anyway.
 */
export function sameOrigin(h: IncomingHttpHeaders): boolean {
  const site = String(h['sec-fetch-site'] ?? 'same-origin');
  if (site !== 'same-origin' && site !== 'none') return false;
  const origin = h.origin;
  if (origin === undefined) return true;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return false; // "null" and other opaque origins
  }
  const own = [h.host, h['x-forwarded-host']].flatMap((v) => String(v ?? '').split(',')).map((s) => s.trim().toLowerCase());
  return host !== '' && own.includes(host.toLowerCase());
}
