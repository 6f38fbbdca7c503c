// The daemon's HTTP listener ([metrics] listen): GET /metrics (Prometheus text), the
// read-only dashboard at / with its JSON (/api/state, /api/explain?who=) and the chart
// library's files, shipped in the package (uPlot from node_modules: no CDN). With
// [metrics] token every request needs `Authorization: Bearer <token>`. Owns the socket
// and nothing else: the values come from the observer; it never writes anything.
// node:http only. A failed bind is logged; the daemon goes on without the listener.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { Config } from '../config/config.js';
import type { Logger } from '../log.js';
import type { Observer } from '../metrics/observer.js';
import { DASHBOARD_HTML } from './page.js';

const ASSETS: Record<string, { file: string; type: string }> = {
  '/assets/uPlot.iife.min.js': { file: 'uplot/dist/uPlot.iife.min.js', type: 'text/javascript; charset=utf-8' },
  '/assets/uPlot.min.css': { file: 'uplot/dist/uPlot.min.css', type: 'text/css; charset=utf-8' },
};

const HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Content-Security-Policy':
    "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; img-src 'self' data:",
  'Cache-Control': 'no-store',
  'Referrer-Policy': 'no-referrer',
};

/** "127.0.0.1:9721", "[::1]:9721" */
export const listenText = (l: { host: string; port: number }): string =>
  l.host.includes(':') ? `[${l.host}]:${l.port}` : `${l.host}:${l.port}`;

export class HttpListener {
  private server: Server | null = null;
  private bound: string | null = null;
  private token = '';
  private readonly assets = new Map<string, Buffer>();

  constructor(
    private readonly observer: Observer,
    private readonly log: Logger,
  ) {}

  /** Binds, rebinds (a new listen address) or closes according to [metrics]. */
  async configure(config: Config): Promise<void> {
    this.token = config.metrics.token;
    const want = config.metrics.listen ? listenText(config.metrics.listen) : null;
    if (want === this.bound) return;
    await this.close();
    if (!config.metrics.listen) return;
    const server = createServer((req, res) => void this.handle(req, res));
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.metrics.listen!.port, config.metrics.listen!.host, () => resolve());
      });
    } catch (e) {
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

  private authorised(req: IncomingMessage): boolean {
    if (this.token === '') return true;
    const h = req.headers.authorization ?? '';
    const m = /^Bearer (.+)$/i.exec(h.trim());
    if (!m) return false;
    // Compare digests: constant time whatever the lengths.
    const a = createHash('sha256').update(m[1]!).digest();
    const b = createHash('sha256').update(this.token).digest();
    return timingSafeEqual(a, b);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (!this.authorised(req)) {
        res
          .writeHead(401, { ...HEADERS, 'WWW-Authenticate': 'Bearer realm="reselqos"', 'Content-Type': 'text/plain' })
          .end('401 unauthorised\n');
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { ...HEADERS, Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('405 method not allowed\n');
        return;
      }
      const url = URL.canParse(req.url ?? '/', 'http://x') ? new URL(req.url ?? '/', 'http://x') : null;
      if (!url) {
        // e.g. "//": a scheme-relative target with no host, which URL refuses
        res.writeHead(400, { ...HEADERS, 'Content-Type': 'text/plain' }).end('400 bad request\n');
        return;
      }
      const path = url.pathname;
      if (path === '/metrics') {
        const text = await this.observer.metrics.text();
        res.writeHead(200, { ...HEADERS, 'Content-Type': this.observer.metrics.contentType }).end(text);
      } else if (path === '/' || path === '/index.html') {
        res.writeHead(200, { ...HEADERS, 'Content-Type': 'text/html; charset=utf-8' }).end(DASHBOARD_HTML);
      } else if (path === '/api/state') {
        json(res, 200, this.observer.state());
      } else if (path === '/api/explain') {
        const who = (url.searchParams.get('who') ?? '').trim();
        if (who === '' || who.length > 256) return json(res, 400, { ok: false, error: 'who: a uid or an IP' });
        const e = this.observer.explain(who);
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
        res.writeHead(404, { ...HEADERS, 'Content-Type': 'text/plain' }).end('404 not found\n');
      }
    } catch (e) {
      this.log.debug(`metrics: ${req.url}: ${(e as Error).message}`);
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end('500 internal error\n');
    }
  }
}

function json(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { ...HEADERS, 'Content-Type': 'application/json' }).end(JSON.stringify(body));
}
