// The daemon's HTTP listener ([metrics] listen): GET /metrics (Prometheus text), the
// read-only dashboard at / with its JSON (/api/state, /api/explain?who=) and the chart
// library's files, shipped in the package (uPlot from node_modules: no CDN). With
// [metrics] token a request needs `Authorization: Bearer <token>` or the session cookie the
// login form (POST /login) gives a browser (session.ts). Owns the socket and nothing else:
// the values come from the observer; it never writes anything.
// Bounded: at most HTTP_LIMITS.maxConnections sockets, each closed when it sends no complete
// headers within headersTimeout or sits idle, so a flood of idle connections cannot take the
// daemon's file descriptors (spawns and opens of the cycle) away.
// node:http only. A failed bind is logged; the daemon goes on without the listener.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import type { MetricsConfig } from '../config/config.js';
import type { Logger } from '../log.js';
import type { Observer } from '../metrics/observer.js';
import { dashboardPage, loginPage } from './page.js';
import { bearerOk, sameOrigin, sameSecret, sessionOk, sessionValue, setCookie, viaTls } from './session.js';

const ASSETS: Record<string, { file: string; type: string }> = {
  '/assets/uPlot.iife.min.js': { file: 'uplot/dist/uPlot.iife.min.js', type: 'text/javascript; charset=utf-8' },
  '/assets/uPlot.min.css': { file: 'uplot/dist/uPlot.min.css', type: 'text/css; charset=utf-8' },
};

/** On every response, errors included. */
const HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Content-Security-Policy':
    "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'X-Frame-Options': 'DENY',
  'Cache-Control': 'no-store',
  // not no-referrer: with it a browser sends `Origin: null` on the login POST, which must name us
  'Referrer-Policy': 'same-origin',
};
const TEXT = 'text/plain; charset=utf-8';
const HTML = 'text/html; charset=utf-8';
const FORM_MAX = 4096;

export interface HttpLimits {
  /** sockets open at once; more are closed as they arrive (a browser opens up to 6) */
  readonly maxConnections: number;
  /** a request's headers must be complete within this, counted from the connection */
  readonly headersTimeoutMs: number;
  /** the whole request (a POST body included) */
  readonly requestTimeoutMs: number;
  /** an idle keep-alive connection between requests */
  readonly keepAliveTimeoutMs: number;
  /** a socket with no traffic either way, in any state (a client that stops reading a response) */
  readonly idleTimeoutMs: number;
  /** how often Node checks the headers and request timeouts */
  readonly checkIntervalMs: number;
}
export const HTTP_LIMITS: HttpLimits = {
  maxConnections: 64,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 15_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 10_000,
  checkIntervalMs: 1_000,
};

/** What the listener shows (the Observer; a stand-in in tests). */
export type HttpSource = Pick<Observer, 'state' | 'explain'> & {
  readonly metrics: { text(): Promise<string>; readonly contentType: string };
};

export interface HttpOptions {
  limits?: Partial<HttpLimits>;
  /** ms since the epoch (session expiry); Date.now by default */
  now?: () => number;
}

/** "127.0.0.1:9721", "[::1]:9721" */
export const listenText = (l: { host: string; port: number }): string =>
  l.host.includes(':') ? `[${l.host}]:${l.port}` : `${l.host}:${l.port}`;

type Access = 'open' | 'bearer' | 'session' | null;

export class HttpListener {
  readonly limits: HttpLimits;
  private server: Server | null = null;
  private bound: string | null = null;
  private token = '';
  private readonly assets = new Map<string, Buffer>();
  private readonly now: () => number;
  private droppedAt = -Infinity;

  constructor(
    private readonly source: HttpSource,
    private readonly log: Logger,
    opts: HttpOptions = {},
  ) {
    this.limits = { ...HTTP_LIMITS, ...opts.limits };
    this.now = opts.now ?? Date.now;
  }

  /** Binds, rebinds (a new listen address) or closes according to [metrics]. */
  async configure(config: { readonly metrics: MetricsConfig }): Promise<void> {
    this.token = config.metrics.token;
    const want = config.metrics.listen ? listenText(config.metrics.listen) : null;
    if (want === this.bound) return;
    await this.close();
    if (!config.metrics.listen) return;
    const l = this.limits;
    const server = createServer(
      { headersTimeout: l.headersTimeoutMs, requestTimeout: l.requestTimeoutMs, connectionsCheckingInterval: l.checkIntervalMs },
      (req, res) => void this.handle(req, res),
    );
    server.maxConnections = l.maxConnections;
    server.keepAliveTimeout = l.keepAliveTimeoutMs;
    server.timeout = l.idleTimeoutMs; // without a 'timeout' listener Node destroys the socket
    server.on('drop', () => {
      if (this.now() - this.droppedAt < 60_000) return;
      this.droppedAt = this.now();
      this.log.warn(
        `metrics: ${l.maxConnections} connections open, dropping new ones (idle ones close after ${l.headersTimeoutMs / 1000} s)`,
      );
    });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.metrics.listen!.port, config.metrics.listen!.host, () => resolve());
      });
    } catch (e) {
      server.close();
      this.log.error(`metrics: cannot listen on ${want}: ${(e as Error).message}`);
      return;
    }
    server.on('error', (e) => this.log.error(`metrics: ${e.message}`));
    this.server = server;
    this.bound = want;
    this.log.info(`metrics and dashboard on http://${want}/${this.token ? ' (token required)' : ''}`);
  }

  get address(): string | null {
    return this.bound;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    this.bound = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  private access(req: IncomingMessage): Access {
    if (this.token === '') return 'open';
    if (bearerOk(req.headers.authorization, this.token)) return 'bearer';
    if (sessionOk(req.headers.cookie, this.token, this.now())) return 'session';
    return null;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = URL.canParse(req.url ?? '/', 'http://x') ? new URL(req.url ?? '/', 'http://x') : null;
      if (!url) {
        // e.g. "//": a scheme-relative target with no host, which URL refuses (found by fuzz-http)
        res.writeHead(400, { ...HEADERS, 'Content-Type': TEXT }).end('400 bad request\n');
        return;
      }
      const path = url.pathname;
      const page = path === '/' || path === '/index.html';
      if (req.method === 'POST' && (path === '/login' || path === '/logout')) return await this.login(req, res, path === '/login');
      const access = this.access(req);
      if (access === null) {
        const h = { ...HEADERS, 'WWW-Authenticate': 'Bearer realm="reselqos"' };
        if (page && req.method === 'GET') res.writeHead(401, { ...h, 'Content-Type': HTML }).end(loginPage(null));
        else res.writeHead(401, { ...h, 'Content-Type': TEXT }).end('401 unauthorised\n');
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { ...HEADERS, Allow: 'GET, HEAD', 'Content-Type': TEXT }).end('405 method not allowed\n');
        return;
      }
      if (path === '/metrics') {
        const text = await this.source.metrics.text();
        res.writeHead(200, { ...HEADERS, 'Content-Type': this.source.metrics.contentType }).end(text);
      } else if (page) {
        res.writeHead(200, { ...HEADERS, 'Content-Type': HTML }).end(dashboardPage(access === 'session'));
      } else if (path === '/api/state') {
        json(res, 200, this.source.state());
      } else if (path === '/api/explain') {
        const who = (url.searchParams.get('who') ?? '').trim();
        if (who === '' || who.length > 256) return json(res, 400, { ok: false, error: 'who: a uid or an IP' });
        const e = this.source.explain(who);
        json(res, e ? 200 : 404, e ? { ok: true, explain: e } : { ok: false, error: `no user or IP "${who}" in the directory` });
      } else if (ASSETS[path]) {
        const a = ASSETS[path];
        let body = this.assets.get(path);
        if (!body) {
          body = await readFile(createRequire(import.meta.url).resolve(a.file));
          this.assets.set(path, body);
        }
        res.writeHead(200, { ...HEADERS, 'Content-Type': a.type, 'Cache-Control': 'max-age=86400' }).end(body);
      } else {
        res.writeHead(404, { ...HEADERS, 'Content-Type': TEXT }).end('404 not found\n');
      }
    } catch (e) {
      this.log.debug(`metrics: ${req.url}: ${(e as Error).message}`);
      if (!res.headersSent) res.writeHead(500, { ...HEADERS, 'Content-Type': TEXT });
      res.end('500 internal error\n');
    }
  }

  /** POST /login (token=… as a form: the session cookie) and POST /logout (the cookie cleared). */
  private async login(req: IncomingMessage, res: ServerResponse, login: boolean): Promise<void> {
    const text = (code: number, msg: string): void => void res.writeHead(code, { ...HEADERS, 'Content-Type': TEXT }).end(msg);
    if (this.token === '') return text(404, '404 not found\n');
    if (!sameOrigin(req.headers)) return text(403, '403 cross-site request refused\n');
    const redirect = (cookie: string | null): void =>
      void res.writeHead(303, { ...HEADERS, Location: './', 'Set-Cookie': setCookie(cookie, viaTls(req.headers)) }).end();
    if (!login) return redirect(null);
    if (!/^application\/x-www-form-urlencoded\b/i.test(req.headers['content-type'] ?? '')) return text(415, '415 expected a form\n');
    const body = await readBody(req, FORM_MAX);
    if (body === null) {
      res.setHeader('Connection', 'close');
      return text(413, '413 form too large\n');
    }
    const given = new URLSearchParams(body).get('token') ?? '';
    if (!sameSecret(given, this.token)) {
      this.log.debug(`metrics: wrong dashboard token from ${req.socket.remoteAddress ?? '?'}`);
      res.writeHead(401, { ...HEADERS, 'Content-Type': HTML }).end(loginPage('wrong token'));
      return;
    }
    redirect(sessionValue(this.token, this.now()));
  }
}

/** The request body as text, or null when it is longer than max bytes. */
function readBody(req: IncomingMessage, max: number): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        req.removeAllListeners('data');
        req.resume();
        resolve(null);
      } else parts.push(c);
    });
    req.on('end', () => resolve(size > max ? null : Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

function json(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { ...HEADERS, 'Content-Type': 'application/json' }).end(JSON.stringify(body));
}
