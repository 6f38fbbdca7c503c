// TCP probes for the sandbox gateway: a banner server ("SERVER <port>" on connect, then
// echo) and clients bound to a user's IP, run with node itself inside the namespaces.
// For the firewall tests and the demo; nothing here reaches beyond our namespaces.

import { realExec } from '../src/exec/exec.js';
import { spawnBackground, type BackgroundProcess } from './spawn.js';

const SERVER = `
const net = require('node:net');
for (const port of process.argv.slice(1).map(Number)) {
  net.createServer((s) => { s.on('error', () => {}); s.write('SERVER ' + port + '\\n'); s.pipe(s); })
    .listen({ port, host: '::', ipv6Only: false }, () => console.log('listening ' + port));
}`;

const CLIENT = `
const net = require('node:net');
const [host, port, local, timeout, mode] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port), localAddress: local });
let banner = '';
const done = (what) => { console.log(what); process.exit(0); };
const t = setTimeout(() => done('timeout'), Number(timeout));
s.on('error', (e) => done('error ' + e.code));
s.on('data', (d) => {
  banner += d.toString();
  if (mode === 'banner' && banner.includes('\\n')) { clearTimeout(t); done('banner ' + banner.split('\\n')[0]); }
});
s.on('connect', () => {
  if (mode !== 'hold') return;
  clearTimeout(t);
  console.log('connected');
  let last = Date.now();
  s.on('data', () => { last = Date.now(); });
  setInterval(() => {
    s.write('x');
    if (Date.now() - last > 1500) done('stalled');
  }, 100);
  s.on('close', () => done('closed'));
});`;

/** Starts banner servers on `ports` inside namespace `ns`; resolves once they listen. */
export async function startBannerServer(ns: string, ports: number[]): Promise<BackgroundProcess> {
  const p = await spawnBackground('ip', ['netns', 'exec', ns, process.execPath, '-e', SERVER, ...ports.map(String)]);
  for (let i = 0; i < 100; i++) {
    if ((p.output().stdout.match(/listening/g) ?? []).length === ports.length) return p;
    if (!p.running()) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await p.stop();
  throw new Error(`banner server in ${ns} did not start: ${p.output().stderr}`);
}

/**
 * Connects from `local` (a user IP in namespace `ns`) to host:port and reads the banner.
 * Returns "banner SERVER <port>", "error ECONNRESET", "error ECONNREFUSED", "timeout", ...
 */
export async function probe(ns: string, host: string, port: number, local: string, timeoutMs = 1500): Promise<string> {
  const r = await realExec(
    'ip',
    ['netns', 'exec', ns, process.execPath, '-e', CLIENT, host, String(port), local, String(timeoutMs), 'banner'],
    { timeoutMs: timeoutMs + 5000 },
  );
  return r.stdout.trim();
}

/** A long-lived connection that writes every 100 ms and reports "closed" or "stalled" when it ends. */
export async function hold(ns: string, host: string, port: number, local: string): Promise<BackgroundProcess> {
  const p = await spawnBackground('ip', ['netns', 'exec', ns, process.execPath, '-e', CLIENT, host, String(port), local, '3000', 'hold']);
  for (let i = 0; i < 100; i++) {
    const out = p.output().stdout;
    if (out.includes('connected')) return p;
    if (!p.running()) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await p.stop();
  throw new Error(`connection from ${local} to ${host}:${port} did not open: ${p.output().stdout} ${p.output().stderr}`);
}
