// The HTTP listener on a loopback port with a stand-in for the observer: the security headers
// on every response (errors included), the connection cap and timeouts, and the login form's
// session cookie (its attributes, its checks, what invalidates it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request, type IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import { HttpListener, type HttpLimits, type HttpSource } from '../../src/http/server.js';
import { MemoryLogger } from '../../src/log.js';
import { freePort } from '../helpers/metrics.js';

const TOKEN = 'correct-horse-battery-staple';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function source(o: { failMetrics?: boolean } = {}): HttpSource {
  return {
    metrics: {
      contentType: 'text/plain; version=0.0.4; charset=utf-8',
      text: async () => {
        if (o.failMetrics) throw new Error('registry exploded');
        return 'reselqos_up 1\n';
      },
    },
    state: () => ({ site: 'gw-unit' }) as unknown as ReturnType<HttpSource['state']>,
    explain: () => null,
  };
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}
function req(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const r = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    r.on('error', reject);
    r.end(body);
  });
}
const form = (token: string): string => new URLSearchParams({ token }).toString();
const FORM = { 'Content-Type': 'application/x-www-form-urlencoded' };

async function listener(
  o: { token?: string; failMetrics?: boolean; now?: () => number; limits?: Partial<HttpLimits> } = {},
): Promise<{ http: HttpListener; port: number; log: MemoryLogger }> {
  const port = await freePort();
  const log = new MemoryLogger();
  const http = new HttpListener(source(o), log, { now: o.now, limits: o.limits });
  await http.configure({ metrics: { listen: { host: '127.0.0.1', port }, token: o.token ?? '' } });
  assert.equal(http.address, `127.0.0.1:${port}`);
  return { http, port, log };
}

const SECURITY = ['content-security-policy', 'x-content-type-options', 'x-frame-options', 'referrer-policy'];

test('every response, 401, 404, 405, 400 and 500 included, carries the security headers and no-store', async () => {
  const { http, port } = await listener({ token: TOKEN, failMetrics: true });
  try {
    const auth = { Authorization: `Bearer ${TOKEN}` };
    const replies: [string, Reply][] = [
      ['200 /', await req(port, 'GET', '/', auth)],
      ['200 /api/state', await req(port, 'GET', '/api/state', auth)],
      ['401 /', await req(port, 'GET', '/')],
      ['401 /metrics', await req(port, 'GET', '/metrics')],
      ['404', await req(port, 'GET', '/nope', auth)],
      ['405', await req(port, 'PUT', '/', auth)],
      ['400', await req(port, 'GET', '/api/explain?who=', auth)],
      ['500', await req(port, 'GET', '/metrics', auth)],
      ['401 login', await req(port, 'POST', '/login', FORM, form('wrong'))],
      ['303 login', await req(port, 'POST', '/login', FORM, form(TOKEN))],
    ];
    const ref = replies[0]![1].headers;
    for (const [what, r] of replies) {
      for (const h of SECURITY) assert.equal(r.headers[h], ref[h], `${what}: ${h}`);
      assert.equal(r.headers['cache-control'], 'no-store', `${what}: cache-control`);
    }
    for (const h of SECURITY) assert.ok(ref[h], `${h} on the dashboard page`);
    assert.match(String(ref['content-security-policy']), /frame-ancestors 'none'/);
    assert.equal(ref['x-frame-options'], 'DENY');
    assert.equal(ref['referrer-policy'], 'same-origin', 'no-referrer would make a browser send Origin: null on the login POST');
    assert.deepEqual(
      replies.map(([w, r]) => `${w.slice(0, 3)}=${r.status}`),
      ['200=200', '200=200', '401=401', '401=401', '404=404', '405=405', '400=400', '500=500', '401=401', '303=303'],
    );
    assert.doesNotMatch(replies[7]![1].body, /exploded/, 'the 500 does not show the error');
  } finally {
    await http.close();
  }
});

/** n connections that send `first` (or nothing) and then wait; counts those the server closes. */
async function idle(port: number, n: number, first?: string): Promise<{ sockets: Socket[]; closed: () => number }> {
  let closed = 0;
  const sockets: Socket[] = [];
  await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<void>((resolve) => {
          const s = connect(port, '127.0.0.1', () => {
            if (first) s.write(first);
            resolve();
          });
          sockets.push(s);
          s.resume(); // reads, so the server's FIN is seen
          s.on('error', () => resolve());
          s.on('close', () => {
            closed++;
            resolve();
          });
        }),
    ),
  );
  return { sockets, closed: () => closed };
}

test('connections above maxConnections are dropped; silent ones and slow headers are closed after the headers timeout', async () => {
  const { http, port } = await listener({
    limits: { maxConnections: 5, headersTimeoutMs: 400, requestTimeoutMs: 800, checkIntervalMs: 100 },
  });
  try {
    const silent = await idle(port, 9);
    const slow = await idle(port, 1, 'GET / HTTP/1.1\r\nHost: x\r\n'); // headers never finished
    await sleep(150);
    assert.ok(silent.closed() + slow.closed() >= 5, `over the cap of 5, ${silent.closed() + slow.closed()} of 10 closed at once`);
    assert.ok(silent.closed() + slow.closed() < 10, 'those within the cap wait for the timeout');
    for (let i = 0; silent.closed() + slow.closed() < 10; i++) {
      assert.ok(i < 30, `${10 - silent.closed() - slow.closed()} connections still open 3 s later`);
      await sleep(100);
    }
    const r = await req(port, 'GET', '/metrics');
    assert.equal(r.status, 200, 'the listener answers again');
  } finally {
    await http.close();
  }
});

test('the default limits: a cap, a headers timeout of 10 s, a request timeout, a short keep-alive', () => {
  const l = new HttpListener(source(), new MemoryLogger()).limits;
  assert.ok(l.maxConnections >= 16 && l.maxConnections <= 128, `maxConnections ${l.maxConnections}`);
  assert.equal(l.headersTimeoutMs, 10_000);
  assert.ok(l.requestTimeoutMs > l.headersTimeoutMs && l.requestTimeoutMs <= 30_000);
  assert.ok(l.keepAliveTimeoutMs <= 5_000);
  assert.ok(l.idleTimeoutMs <= 30_000);
  assert.ok(l.checkIntervalMs <= 1_000);
});

function cookieOf(r: Reply): string {
  const c = r.headers['set-cookie'];
  assert.ok(c && c.length === 1, `one Set-Cookie: ${JSON.stringify(c)}`);
  return c[0]!;
}

test('login form: the token POSTed once gives an HttpOnly SameSite=Strict cookie every endpoint accepts; cross-site, wrong, expired, forged or stale cookies are refused', async () => {
  let now = Date.UTC(2026, 11, 1, 12);
  const { http, port } = await listener({ token: TOKEN, now: () => now });
  try {
    // the page itself, unauthenticated: the login form (401), not a bare 401 text
    const page = await req(port, 'GET', '/');
    assert.equal(page.status, 401);
    assert.match(page.body, /<form[^>]*method="post"[^>]*action="login"/);
    assert.match(page.body, /type="password"/);
    // wrong token: 401 again with a message, no cookie
    const wrong = await req(port, 'POST', '/login', FORM, form(TOKEN + 'x'));
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers['set-cookie'], undefined);
    assert.match(wrong.body, /wrong token/);
    // cross-site POSTs are refused before the token is even looked at
    for (const h of [{ Origin: 'http://evil.example' }, { 'Sec-Fetch-Site': 'cross-site' }] as Record<string, string>[]) {
      const r = await req(port, 'POST', '/login', { ...FORM, ...h }, form(TOKEN));
      assert.equal(r.status, 403, JSON.stringify(h));
      assert.equal(r.headers['set-cookie'], undefined);
    }
    assert.equal((await req(port, 'POST', '/login', { 'Content-Type': 'text/plain' }, `token=${TOKEN}`)).status, 415);
    assert.equal((await req(port, 'POST', '/login', FORM, 'token=' + 'a'.repeat(5000))).status, 413);
    // the right token, same origin: a redirect to the dashboard and the cookie
    const ok = await req(
      port,
      'POST',
      '/login',
      { ...FORM, Origin: `http://127.0.0.1:${port}`, 'Sec-Fetch-Site': 'same-origin' },
      form(TOKEN),
    );
    assert.equal(ok.status, 303);
    assert.equal(ok.headers.location, './');
    const set = cookieOf(ok);
    assert.match(set, /; HttpOnly/);
    assert.match(set, /; SameSite=Strict/);
    assert.match(set, /; Path=\//);
    assert.match(set, /; Max-Age=\d+/);
    assert.doesNotMatch(set, /; Secure/, 'plain HTTP: no Secure (the browser would drop it)');
    assert.ok(!set.includes(TOKEN), 'the cookie is not the token');
    const cookie = set.split(';')[0]!;
    for (const path of ['/', '/api/state', '/metrics', '/assets/uPlot.min.css']) {
      assert.equal((await req(port, 'GET', path, { Cookie: `other=1; ${cookie}` })).status, 200, path);
    }
    assert.match((await req(port, 'GET', '/', { Cookie: cookie })).body, /action="logout"/, 'a logged-in page offers to log out');
    // behind a TLS proxy: Secure
    const tls = await req(port, 'POST', '/login', { ...FORM, 'X-Forwarded-Proto': 'https' }, form(TOKEN));
    assert.match(cookieOf(tls), /; Secure/);
    // a forged cookie (another expiry, the same signature) is refused
    const [name, value] = cookie.split('=') as [string, string];
    const [exp, sig] = value.split('.') as [string, string];
    assert.equal((await req(port, 'GET', '/api/state', { Cookie: `${name}=${Number(exp) + 86400}.${sig}` })).status, 401);
    // it expires
    now += 13 * 3600_000;
    assert.equal((await req(port, 'GET', '/api/state', { Cookie: cookie })).status, 401, 'expired after 12 h');
    now -= 13 * 3600_000;
    // log out clears it
    const out = await req(port, 'POST', '/logout', { Cookie: cookie });
    assert.equal(out.status, 303);
    assert.match(cookieOf(out), /Max-Age=0/);
    // a new token (reload) invalidates every cookie
    await http.configure({ metrics: { listen: { host: '127.0.0.1', port }, token: TOKEN + '-rotated' } });
    assert.equal((await req(port, 'GET', '/api/state', { Cookie: cookie })).status, 401);
    // Bearer still works beside the cookie
    assert.equal((await req(port, 'GET', '/api/state', { Authorization: `Bearer ${TOKEN}-rotated` })).status, 200);
  } finally {
    await http.close();
  }
});

test('without a token there is nothing to log in to: POST /login is 404 and every page is open', async () => {
  const { http, port } = await listener();
  try {
    assert.equal((await req(port, 'POST', '/login', FORM, form('x'))).status, 404);
    const page = await req(port, 'GET', '/');
    assert.equal(page.status, 200);
    assert.doesNotMatch(page.body, /action="logout"/);
  } finally {
    await http.close();
  }
});
