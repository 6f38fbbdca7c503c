// Prometheus and promtool for the tests of docs/prometheus/ and docs/grafana/: the binaries of
// Debian's `prometheus` package, unpacked into a cache by scripts/prometheus.sh (run here when
// they are missing; it never installs the package nor starts a service), and a private
// Prometheus on loopback with its own TSDB in a temporary directory.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './metrics.js';

/** The checkout's root (this file runs from build/test/helpers/). */
export const root = fileURLToPath(new URL('../../../', import.meta.url));

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: opts.cwd, timeout: opts.timeoutMs ?? 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

let binDir: Promise<string> | null = null;

/** The directory holding `prometheus` and `promtool` (scripts/prometheus.sh's last line). */
export function prometheusBin(): Promise<string> {
  binDir ??= run('sh', [join(root, 'scripts', 'prometheus.sh')], { timeoutMs: 300_000 }).then((r) => {
    assert.equal(r.code, 0, `scripts/prometheus.sh failed:\n${r.stdout}${r.stderr}`);
    const dir = r.stdout.trim().split('\n').pop()!;
    return dir;
  });
  return binDir;
}

export interface PromServer {
  readonly url: string;
  /** GET /api/v1/query at the server's now; the `data` of a success, else an assertion fails */
  query(expr: string): Promise<{ resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] }>;
  stop(): Promise<void>;
}

/**
 * A private Prometheus: scrapes `targets` (host:port, job `reselqos`) every second, evaluates
 * `ruleFiles` every second, keeps its TSDB in a temporary directory removed by stop().
 */
export async function startPrometheus(targets: string[], ruleFiles: string[] = []): Promise<PromServer> {
  const bin = await prometheusBin();
  const dir = mkdtempSync(join(tmpdir(), 'rq-prom-'));
  const port = await freePort();
  const config = join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  evaluation_interval: 1s',
      'rule_files:',
      ...ruleFiles.map((f) => `  - ${JSON.stringify(f)}`),
      'scrape_configs:',
      '  - job_name: reselqos',
      '    static_configs:',
      `      - targets: ${JSON.stringify(targets)}`,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(
    join(bin, 'prometheus'),
    [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr!.on('data', (b: Buffer) => {
    log = (log + b.toString()).slice(-20_000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // Ready when /-/ready answers 200 (TSDB open, config loaded), within 30 s.
  const end = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      assert.fail(`prometheus exited (${child.exitCode}):\n${log}`);
    }
    const ok = await fetch(`${url}/-/ready`)
      .then((r) => r.status === 200)
      .catch(() => false);
    if (ok) break;
    if (Date.now() > end) {
      await stop();
      assert.fail(`prometheus not ready within 30 s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    async query(expr) {
      const r = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: expr }).toString()}`);
      const j = (await r.json()) as { status: string; error?: string; data: Awaited<ReturnType<PromServer['query']>> };
      assert.equal(j.status, 'success', `${expr}: ${j.error ?? r.status}`);
      return j.data;
    },
    stop,
  };
}
