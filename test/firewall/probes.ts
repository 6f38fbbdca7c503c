// UDP and ICMP probes for the firewall tests (TCP ones are in sandbox/tcp.ts): a UDP echo
// server, a one-shot UDP probe and a long-lived UDP flow with node; an ICMP echo with python3
// (node has no ICMP sockets; python3 is on the project's machines). All bound to a user's
// address inside the sandbox namespaces; nothing reaches beyond them.

import { realExec } from '../../src/exec/exec.js';
import { spawnBackground, type BackgroundProcess } from '../../sandbox/spawn.js';

const UDP_SERVER = `
const dgram = require('node:dgram');
const port = Number(process.argv[1]);
const s = dgram.createSocket({ type: 'udp6', ipv6Only: false });
s.on('message', (m, r) => s.send(m, r.port, r.address));
s.bind(port, '::', () => console.log('listening ' + port));`;

// mode "once": one datagram, "echo" or "timeout"/"error"; mode "hold": one datagram every
// 100 ms from the same port (one conntrack flow), a line "reply" per echo received.
const UDP_CLIENT = `
const dgram = require('node:dgram');
const [host, port, local, timeout, mode] = process.argv.slice(1);
const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
const done = (what) => { console.log(what); process.exit(0); };
s.on('error', (e) => done('error ' + e.code));
s.on('message', () => { if (mode === 'once') done('echo'); else console.log('reply'); });
s.bind({ address: local, port: 0 }, () => {
  const send = () => s.send('x', Number(port), host);
  send();
  if (mode === 'once') setTimeout(() => done('timeout'), Number(timeout));
  else setInterval(send, 100);
});`;

// An ICMP echo through a ping socket (the kernel fills in the id and checksum).
const ICMP_CLIENT = `
import socket, struct, sys
src, dst, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
v6 = ':' in dst
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM,
                  socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
s.bind((src, 0))
s.settimeout(timeout)
s.sendto(struct.pack('!BBHHH', 128 if v6 else 8, 0, 0, 0, 1) + b'rq', (dst, 0))
try:
    while True:
        d = s.recv(2048)
        if d[0] == (129 if v6 else 0):
            print('reply')
            break
except socket.timeout:
    print('timeout')
except OSError as e:
    print('error', e.errno)
`;

/** Starts a UDP echo server on `port` (IPv4 and IPv6) inside namespace `ns`. */
export async function startUdpEcho(ns: string, port: number): Promise<BackgroundProcess> {
  const p = await spawnBackground('ip', ['netns', 'exec', ns, process.execPath, '-e', UDP_SERVER, String(port)]);
  for (let i = 0; i < 100; i++) {
    if (p.output().stdout.includes('listening')) return p;
    if (!p.running()) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await p.stop();
  throw new Error(`UDP echo server in ${ns} did not start: ${p.output().stderr}`);
}

/** One datagram from `local` to host:port: "echo" when answered, else "timeout" / "error <code>". */
export async function udpProbe(ns: string, host: string, port: number, local: string, timeoutMs = 1000): Promise<string> {
  const r = await realExec(
    'ip',
    ['netns', 'exec', ns, process.execPath, '-e', UDP_CLIENT, host, String(port), local, String(timeoutMs), 'once'],
    { timeoutMs: timeoutMs + 5000 },
  );
  return r.stdout.trim();
}

/** A UDP flow that sends every 100 ms from one port; resolves once its first echo came back. */
export async function udpHold(ns: string, host: string, port: number, local: string): Promise<BackgroundProcess> {
  const p = await spawnBackground('ip', ['netns', 'exec', ns, process.execPath, '-e', UDP_CLIENT, host, String(port), local, '0', 'hold']);
  for (let i = 0; i < 100; i++) {
    if (p.output().stdout.includes('reply')) return p;
    if (!p.running()) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await p.stop();
  throw new Error(`UDP flow from ${local} to ${host}:${port} got no echo: ${p.output().stdout} ${p.output().stderr}`);
}

/** Echoes a UDP flow got so far. */
export const replies = (p: BackgroundProcess): number => (p.output().stdout.match(/^reply$/gm) ?? []).length;

/** An ICMP echo request from `local` to `host`: "reply", "timeout" or "error <errno>". */
export async function icmpProbe(ns: string, host: string, local: string, timeoutMs = 1000): Promise<string> {
  const r = await realExec('ip', ['netns', 'exec', ns, 'python3', '-c', ICMP_CLIENT, local, host, String(timeoutMs / 1000)], {
    timeoutMs: timeoutMs + 5000,
  });
  return r.stdout.trim();
}
