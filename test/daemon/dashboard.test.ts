// The dashboard in a real browser: Debian's chromium (headless) driven by playwright-core,
// against the real daemon (`reselqos start`) on a sandbox gateway with an iperf3 download
// through the shaper. Leaves a screenshot in docs/dashboard.png. Then with [metrics] token: the
// login form, the session cookie, and the dashboard's own JSON requests answered (not 401).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, chmodSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';
import { startSlapd, type SlapdServer, PEOPLE_BASE, MACHINES_BASE } from '../../sandbox/slapd.js';
import { startMariadb, type MariadbServer } from '../../sandbox/mariadb.js';
import { createGateway, startIperfServer, runIperf, type Gateway, type IperfServer } from '../../sandbox/netns.js';
import { gatewayConf } from '../../sandbox/conf.js';
import { hourBucket } from '../../sandbox/campus.js';
import { isAlive, readPid } from '../../src/daemon/pidfile.js';
import { runCli } from '../helpers/kernel.js';
import { freePort, get } from '../helpers/metrics.js';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = fileURLToPath(new URL('../../../docs/dashboard.png', import.meta.url));

let slapd: SlapdServer;
let db: MariadbServer;
let gw: Gateway;
let iperf: IperfServer;
let browser: BrowserContext | null = null;
let dir: string;
let conf: string;
let port: number;
const TOKEN = 'dashboard-test-token-0123456789';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const person = (uid: string): string =>
  `dn: uid=${uid},${PEOPLE_BASE}\nobjectClass: genericPerson\nobjectClass: reselPerson\nuid: ${uid}\nendInternet: 20300101000000Z\n\n`;
const machine = (host: string, uid: string, ip: string): string =>
  `dn: host=${host},${MACHINES_BASE}\nobjectClass: reselMachine\nhost: ${host}\nuidProprio: uid=${uid},${PEOPLE_BASE}\nipHostNumber: ${ip}\nzone: Brest\nzone: User\n\n`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const writeConf = (metrics: string): void => {
  writeFileSync(
    conf,
    gatewayConf(
      { slapd, db, gw },
      {
        dir,
        down: '30Mbit',
        up: '30Mbit',
        ratesrules: 'rule1From = 20:00\nrule1To = 20:01\nrule1GlobalUp = 0\nrule1GlobalDown = 0\nrule1Up = 0\nrule1Down = 20Mbit',
        metrics,
      },
    ),
  );
  chmodSync(conf, 0o600);
};

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} missing: run scripts/install-deps.sh`);
  dir = mkdtempSync(join(tmpdir(), 'rq-dash-'));
  conf = join(dir, 'qos.conf');
  port = await freePort();
  [slapd, db, gw] = await Promise.all([
    startSlapd(),
    startMariadb({ timezone: '+00:00' }),
    createGateway({ userIps: ['172.22.200.3', '172.22.201.1', '172.22.202.1'] }),
  ]);
  await slapd.add(
    person('alice') +
      machine('pc-alice', 'alice', '200.3') +
      person('bob') +
      machine('pc-bob', 'bob', '201.1') +
      person('carol') +
      machine('pc-carol', 'carol', '202.1'),
  );
  const hour = hourBucket(new Date());
  await db.insertTraffic([
    { ip: '172.22.200.3', time: hour, input: 1_500_000_000, output: 3_000_000 },
    { ip: '172.22.201.1', time: hour, input: 20_000_000, output: 1_000_000 },
  ]);
  iperf = await startIperfServer(gw, 5201);
  writeConf(`listen = 127.0.0.1:${port}`);
  const r = await runCli(['start', '-c', conf]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
});

after(async () => {
  await browser?.close().catch(() => undefined);
  const pid = await readPid(join(dir, 'run', 'reselqos.pid')).catch(() => null);
  if (pid && isAlive(pid)) {
    process.kill(pid, 'SIGKILL');
    while (isAlive(pid)) await sleep(50);
  }
  await iperf?.stop().catch(() => undefined);
  await Promise.allSettled([slapd?.stop(), db?.stop(), gw?.destroy()]);
  rmSync(dir, { recursive: true, force: true });
});

test('dashboard in chromium: charts have points, measured throughput within 20 % of iperf3, uid search shows the groups; screenshot', async (t) => {
  const home = mkdtempSync(join(tmpdir(), 'rq-chromium-'));
  try {
    // a fresh profile: launchPersistentContext on an empty directory (playwright's way to pass --user-data-dir)
    browser = await chromium.launchPersistentContext(home, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1300, height: 1000 },
      args: CHROMIUM_ARGS,
    });
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(`http://127.0.0.1:${port}/`);
    // bob (group 0 down) downloads for 14 s; the dashboard samples the class every 2 s cycle.
    const run = runIperf(gw, { bindIp: '172.22.201.1', port: iperf.port, seconds: 14, reverse: true, omit: 2 });
    await sleep(11_000);
    const seen: number[] = [];
    for (let i = 0; i < 3; i++) {
      const v = await page.locator('td[data-bps-down][data-group="0"]').getAttribute('data-bps-down');
      if (v) seen.push(Number(v));
      await sleep(1000);
    }
    const iperfBps = (await run).bitsPerSecond;
    const measured = seen.sort((a, b) => a - b)[Math.floor(seen.length / 2)]!;
    t.diagnostic(
      `iperf3 ${(iperfBps / 1e6).toFixed(2)} Mbit/s; dashboard group 0 down ${seen.map((x) => (x / 1e6).toFixed(2)).join(', ')} Mbit/s`,
    );
    assert.ok(Math.abs(measured - iperfBps) <= 0.2 * iperfBps, `dashboard ${measured} bit/s vs iperf3 ${iperfBps} bit/s`);
    const points = await page.evaluate<{
      down: number;
      up: number;
      group0: number;
    }>(`({ down: window.__charts.down.data[0].length, up: window.__charts.up.data[0].length,
      group0: window.__charts.down.data[1].filter((x) => x !== null && x > 0).length })`);
    assert.ok(points.down >= 3 && points.up >= 3, JSON.stringify(points));
    assert.ok(points.group0 >= 2, `group 0's line has points above 0: ${JSON.stringify(points)}`);
    // users per group and the rule
    assert.equal(await page.locator('td[data-users-down]').first().getAttribute('data-users-down'), '2', 'bob and carol in group 0');
    assert.match(await page.locator('#rule').innerText(), /none in force; next rule1 at/);
    assert.match(await page.locator('#ldap').innerText(), /^ok$/);
    // the search box: alice's groups
    await page.fill('#who', 'alice');
    await page.click('#search button');
    await page.locator('#explain[data-uid="alice"]').waitFor();
    const ex = await page.locator('#explain').innerText();
    assert.match(ex, /^alice: 172\.22\.200\.3/);
    assert.match(ex, /download\s+1\.50 GB\s+group 1\/5/);
    assert.match(ex, /upload\s+3\.0 MB\s+group 0\/5/);
    await page.fill('#who', '172.22.201.1');
    await page.click('#search button');
    await page.locator('#explain[data-uid="bob"]').waitFor();
    await page.fill('#who', 'mallory');
    await page.click('#search button');
    await page.locator('#explain', { hasText: 'no user or IP "mallory"' }).waitFor();
    await page.fill('#who', 'alice');
    await page.click('#search button');
    await page.locator('#explain[data-uid="alice"]').waitFor();
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    assert.deepEqual(errors, [], 'no script error');
    assert.ok(
      requests.every((u) => u.startsWith(`http://127.0.0.1:${port}/`)),
      `only the daemon is asked: ${requests.filter((u) => !u.startsWith(`http://127.0.0.1:${port}/`)).join(' ')}`,
    );
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
  // the assets come from the package: uPlot served by the daemon
  const js = await get(`http://127.0.0.1:${port}/assets/uPlot.iife.min.js`);
  assert.equal(js.status, 200);
  assert.match(js.text, /uPlot/);
});

test('with [metrics] token: the login form, then an HttpOnly SameSite=Strict session; the dashboard loads its JSON (no 401) and shows data; log out', async () => {
  writeConf(`listen = 127.0.0.1:${port}\ntoken = ${TOKEN}`);
  const r = await runCli(['reload', '-c', conf]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal((await get(`http://127.0.0.1:${port}/api/state`)).status, 401, 'the token is in force');
  const home = mkdtempSync(join(tmpdir(), 'rq-chromium-'));
  const ctx = await chromium.launchPersistentContext(home, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  try {
    const page = await ctx.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const json: string[] = [];
    page.on('response', (res) => {
      if (new URL(res.url()).pathname.startsWith('/api/')) json.push(`${res.status()} ${new URL(res.url()).pathname}`);
    });
    const first = await page.goto(`http://127.0.0.1:${port}/`);
    assert.equal(first?.status(), 401);
    await page.locator('form#login').waitFor();
    // a wrong token: the form again, with the reason
    await page.fill('#token', TOKEN + '-wrong');
    await page.click('form#login button');
    await page.locator('#login-error', { hasText: 'wrong token' }).waitFor();
    assert.deepEqual(await ctx.cookies(), [], 'no cookie for a wrong token');
    // the right one: the dashboard, filled from its own requests
    await page.fill('#token', TOKEN);
    await page.click('form#login button');
    await page.locator('td[data-users-down]').first().waitFor();
    assert.equal(new URL(page.url()).pathname, '/');
    assert.equal(await page.locator('td[data-users-down]').first().getAttribute('data-users-down'), '2', 'bob and carol in group 0');
    assert.match(await page.locator('#ldap').innerText(), /^ok$/);
    await page.fill('#who', 'alice');
    await page.click('#search button');
    await page.locator('#explain[data-uid="alice"]').waitFor();
    const cookies = await ctx.cookies();
    assert.equal(cookies.length, 1, JSON.stringify(cookies));
    assert.equal(cookies[0]!.name, 'reselqos_session');
    assert.equal(cookies[0]!.httpOnly, true);
    assert.equal(cookies[0]!.sameSite, 'Strict');
    assert.equal(cookies[0]!.secure, false, 'plain http on loopback');
    assert.ok(!cookies[0]!.value.includes(TOKEN), 'the cookie is not the token');
    assert.equal(await page.evaluate('document.cookie'), '', 'no script can read the session');
    assert.ok(json.length >= 2 && json.every((l) => l.startsWith('200 ')), `the page's own JSON requests: ${json.join(', ')}`);
    // log out: the form again, and the page's requests would be refused
    await page.click('#logout button');
    await page.locator('form#login').waitFor();
    assert.deepEqual(
      (await ctx.cookies()).filter((c) => c.value !== ''),
      [],
      'the session is cleared',
    );
    assert.deepEqual(errors, [], 'no script error');
  } finally {
    await ctx.close().catch(() => undefined);
    rmSync(home, { recursive: true, force: true });
  }
});
