// The Grafana board (docs/grafana/reselqos.json) against a real Prometheus: a private Prometheus
// (Debian's binary, scripts/prometheus.sh) scrapes a sandbox daemon's /metrics every second and
// loads docs/prometheus/reselqos-rules.yml; iperf3 sends traffic through the shaped classes; then
// every PromQL expression of the board, with its variables substituted as Grafana would, must
// return a non-empty result through /api/v1/query. A panel whose query names a wrong metric or
// label shows nothing on a real gateway: this test is where that shows.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, chmodSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSlapd, type SlapdServer, PEOPLE_BASE } from '../../sandbox/slapd.js';
import { startMariadb, type MariadbServer } from '../../sandbox/mariadb.js';
import { createGateway, startIperfServer, runIperf, type Gateway, type IperfServer } from '../../sandbox/netns.js';
import { gatewayConf } from '../../sandbox/conf.js';
import { hourBucket } from '../../sandbox/campus.js';
import { isAlive, readPid } from '../../src/daemon/pidfile.js';
import { runCli } from '../helpers/kernel.js';
import { person, machine } from '../helpers/ldif.js';
import { freePort } from '../helpers/metrics.js';
import { root, startPrometheus, type PromServer } from '../helpers/prometheus.js';
import { boardExpressions, grafanaInterval, substitute, type Variables } from '../helpers/grafana-board.js';

let slapd: SlapdServer;
let db: MariadbServer;
let gw: Gateway;
let iperf: IperfServer;
let prom: PromServer;
let dir: string;
let conf: string;
let port: number;

const board = JSON.parse(readFileSync(join(root, 'docs', 'grafana', 'reselqos.json'), 'utf8')) as unknown;
const SCRAPE_S = 1;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const c = (verb: string, ...extra: string[]): ReturnType<typeof runCli> => runCli([verb, '-c', conf, ...extra]);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rq-grafana-'));
  conf = join(dir, 'qos.conf');
  port = await freePort();
  [slapd, db, gw] = await Promise.all([
    startSlapd(),
    startMariadb({ timezone: '+00:00' }),
    createGateway({ userIps: ['172.22.200.3', '172.22.201.1'] }),
  ]);
  const P = (uid: string): string => `uid=${uid},${PEOPLE_BASE}`;
  await slapd.add(person('alice') + machine('pc-alice', P('alice'), ['200.3']) + person('bob') + machine('pc-bob', P('bob'), ['201.1']));
  // alice: 2 GB down today (group 1); bob a little (group 0)
  const hour = hourBucket(new Date());
  await db.insertTraffic([
    { ip: '172.22.200.3', time: hour, input: 2_000_000_000, output: 5_000_000 },
    { ip: '172.22.201.1', time: hour, input: 7_000_000, output: 1_000 },
  ]);
  iperf = await startIperfServer(gw, 5201);
  writeFileSync(
    conf,
    gatewayConf(
      { slapd, db, gw },
      {
        dir,
        down: '40Mbit',
        up: '40Mbit',
        // one rule or the other is in force at any time of day (the "Rate rule in force" panel)
        ratesrules: [
          'rule1From = 00:00',
          'rule1To = 12:00',
          'rule1GlobalUp = 0',
          'rule1GlobalDown = 0',
          'rule1Up = 0',
          'rule1Down = 30Mbit',
          'rule2From = 12:00',
          'rule2To = 00:00',
          'rule2GlobalUp = 0',
          'rule2GlobalDown = 0',
          'rule2Up = 0',
          'rule2Down = 30Mbit',
        ].join('\n'),
        metrics: `listen = 127.0.0.1:${port}`,
      },
    ),
  );
  chmodSync(conf, 0o600);
  const r = await c('start');
  assert.equal(r.code, 0, r.stdout + r.stderr);
  prom = await startPrometheus([`127.0.0.1:${port}`], [join(root, 'docs', 'prometheus', 'reselqos-rules.yml')]);
});

after(async () => {
  await prom?.stop();
  const pid = await readPid(join(dir, 'run', 'reselqos.pid')).catch(() => null);
  if (pid && isAlive(pid)) {
    process.kill(pid, 'SIGKILL');
    while (isAlive(pid)) await sleep(50);
  }
  await iperf?.stop().catch(() => undefined);
  await Promise.allSettled([slapd?.stop(), db?.stop(), gw?.destroy()]);
  rmSync(dir, { recursive: true, force: true });
});

test('every PromQL expression of the Grafana board returns data from a Prometheus scraping the daemon', async () => {
  // a download through the shaper (bob, group 0), while Prometheus scrapes every second
  const dl = await runIperf(gw, { bindIp: '172.22.201.1', port: iperf.port, seconds: 6, reverse: true });
  assert.ok(dl.bitsPerSecond > 1e6, `iperf3 download ${dl.bitsPerSecond} bit/s`);
  await sleep(3000); // a cycle (2 s) reads the counters after the download, a scrape takes them

  // The template variables as Grafana resolves them: label_values(metric, label) through the series API.
  const vars: Variables = {};
  for (const v of boardExpressions(board).variables) {
    const r = await fetch(`${prom.url}/api/v1/label/${v.label}/values?${new URLSearchParams({ 'match[]': v.metric }).toString()}`);
    const values = ((await r.json()) as { data: string[] }).data;
    process.stdout.write(`# variable $${v.name} = label_values(${v.metric}, ${v.label}) -> ${JSON.stringify(values)}\n`);
    assert.deepEqual(values, [`127.0.0.1:${port}`], `$${v.name}: the scraped daemon`);
    vars[v.name] = values;
  }
  const time = (board as { time: { from: string; to: string } }).time;
  const interval = grafanaInterval(time, SCRAPE_S);
  process.stdout.write(`# board range ${time.from}..${time.to}: ${JSON.stringify(interval)}\n`);

  const exprs = boardExpressions(board).targets;
  assert.ok(exprs.length >= 12, `${exprs.length} expressions`);
  const empty: string[] = [];
  for (const t of exprs) {
    const q = substitute(t.expr, vars, interval);
    // Prometheus has scraped for a few seconds only: a recording rule may need one more evaluation.
    let n = 0;
    let sample = '';
    for (let i = 0; i < 20 && n === 0; i++) {
      const d = await prom.query(q);
      n = d.result.length;
      sample = d.result
        .slice(0, 3)
        .map((x) => `${JSON.stringify(x.metric)} ${x.value[1]}`)
        .join('; ');
      if (n === 0) await sleep(500);
    }
    process.stdout.write(`# [${t.panel}] ${q}\n#   -> ${n} series: ${sample}\n`);
    if (n === 0) empty.push(`[${t.panel}] ${q}`);
  }
  assert.deepEqual(empty, [], 'expressions with no data');
});

test('the rules of docs/prometheus/ evaluate without error on the real series; a healthy gateway raises no alert', async () => {
  interface Rule {
    name: string;
    type: string;
    health: string;
    lastError?: string;
    state?: string;
  }
  const rules = async (): Promise<Rule[]> => {
    const r = await fetch(`${prom.url}/api/v1/rules`);
    const j = (await r.json()) as { data: { groups: { rules: Rule[] }[] } };
    return j.data.groups.flatMap((g) => g.rules);
  };
  // every rule evaluated at least once (evaluation every second)
  let all: Rule[] = [];
  for (let i = 0; i < 20; i++) {
    all = await rules();
    if (all.length > 0 && all.every((x) => x.health !== 'unknown')) break;
    await sleep(500);
  }
  for (const x of all) process.stdout.write(`# ${x.type} ${x.name}: health ${x.health}${x.state ? `, ${x.state}` : ''}\n`);
  assert.ok(all.length >= 13, `${all.length} rules loaded`);
  assert.deepEqual(
    all.filter((x) => x.health !== 'ok').map((x) => `${x.name}: ${x.health} ${x.lastError ?? ''}`),
    [],
    'rules that failed to evaluate',
  );
  // the recorded drop share exists for the class that carried the download
  const share = await prom.query(`reselqos:class_drop_ratio:rate5m{direction="down",group="0"}`);
  assert.equal(share.result.length, 1, 'drop share of down 0');
  const v = Number(share.result[0]!.value[1]);
  assert.ok(v >= 0 && v < 1, `drop share ${v}`);
  assert.deepEqual(
    all.filter((x) => x.type === 'alerting' && x.state !== 'inactive').map((x) => `${x.name}: ${x.state}`),
    [],
    'alerts pending or firing on a healthy gateway',
  );
});
