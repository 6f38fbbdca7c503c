// The alerting and recording rules of docs/prometheus/ as Prometheus itself reads them: promtool
// (Debian's prometheus package, unpacked by scripts/prometheus.sh) checks the rule file and runs
// its unit tests (reselqos-rules.test.yml: each alert firing and not firing on input series).
// The metric names the rules use are checked against the daemon's own registry, so a rule can
// never watch a metric the daemon does not export.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Metrics } from '../../src/metrics/metrics.js';
import { prometheusBin, root, run } from '../helpers/prometheus.js';

const docs = join(root, 'docs', 'prometheus');
const rules = join(docs, 'reselqos-rules.yml');

test('promtool check rules: docs/prometheus/reselqos-rules.yml is valid', async () => {
  const bin = await prometheusBin();
  const r = await run(join(bin, 'promtool'), ['check', 'rules', rules]);
  process.stdout.write(`# ${r.stdout.trim().replace(/\n/g, '\n# ')}\n`);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /SUCCESS: \d+ rules found/);
});

test('promtool test rules: every alert fires on its input series and stays silent on the healthy ones', async () => {
  const bin = await prometheusBin();
  const r = await run(join(bin, 'promtool'), ['test', 'rules', 'reselqos-rules.test.yml'], { cwd: docs });
  process.stdout.write(`# ${(r.stdout + r.stderr).trim().replace(/\n/g, '\n# ')}\n`);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  // every alert of the rule file has a test that expects it to fire
  const alerts = [...readFileSync(rules, 'utf8').matchAll(/^\s*- alert: (\w+)$/gm)].map((m) => m[1]!);
  const tests = readFileSync(join(docs, 'reselqos-rules.test.yml'), 'utf8');
  assert.ok(alerts.length >= 10, alerts.join(' '));
  for (const a of alerts) {
    const firing = new RegExp(`alertname: ${a}\\n\\s+exp_alerts:\\n\\s+- exp_labels`);
    const silent = new RegExp(`alertname: ${a}\\n\\s+exp_alerts: \\[\\]`);
    assert.match(tests, firing, `${a}: no test expects it to fire`);
    assert.match(tests, silent, `${a}: no test expects it silent`);
  }
});

test('the rules watch only metrics the daemon exports (or prom-client and Prometheus do)', async () => {
  const m = new Metrics();
  const exported = new Set((await m.registry.getMetricsAsJSON()).map((x) => x.name));
  const text = readFileSync(rules, 'utf8');
  const used = new Set([...text.matchAll(/\b(reselqos_[a-z_]+|process_[a-z_]+)\b/g)].map((x) => x[1]!));
  assert.ok(used.size >= 10, [...used].join(' '));
  for (const name of used) assert.ok(exported.has(name), `${name} is used by a rule but not exported by src/metrics/metrics.ts`);
});
