// The soak's faults, in the order a run cycles through them. Each injects one fault into
// the sandbox gateway the daemon runs on, holds it, and ends it; it returns a short note of
// what it saw (the daemon's answers). `effects` names the kernel deviations the fault causes
// legitimately (the checker excuses them until repaired, at most two cycles after the end).
// Everything goes through argv arrays (ldapmodify reads LDIF on stdin). Test infrastructure.

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Campus } from './campus.js';
import type { Checker, KernelKind } from './soak-check.js';
import type { Exec } from '../src/exec/exec.js';
import { splitIptablesArgs, ruleTarget } from '../src/kernel/read.js';
import { askDaemon, type ControlAnswer } from '../src/daemon/control.js';
import { isAlive } from '../src/daemon/pidfile.js';
import { sleep, type Stage } from './stage.js';

export interface FaultContext {
  st: Stage;
  campus: Campus;
  checker: Checker;
  gwExec: Exec;
  intervalMs: number;
  /** how long this occurrence holds its fault, ms */
  holdMs: number;
  /** how many times this fault ran before (alternates its target) */
  occurrence: number;
  /** qos.conf variants: the good one, an invalid one, one naming an unreadable caFile */
  conf: { good: string; invalid: string; badCa: string };
  writeConf(text: string): void;
  /** `reselqos start` (the rebuild switch excused); returns its output */
  startDaemon(): Promise<string>;
  /** processes the soak must resume whatever happens (a frozen slapd) */
  thawOnExit: Set<number>;
}

export interface Fault {
  name: string;
  effects: KernelKind[];
  run(ctx: FaultContext): Promise<string>;
}

async function until(pred: () => boolean, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (pred()) return true;
    await sleep(stepMs);
  }
  return pred();
}

const runDir = (ctx: FaultContext): string => join(ctx.st.dir, 'run');
const brief = (a: ControlAnswer | Error): string =>
  a instanceof Error
    ? `error: ${a.message.split('\n')[0]}`
    : a.ok
      ? 'ok'
      : `refused: ${(typeof a['error'] === 'string' ? a['error'] : JSON.stringify(a)).replace(/\s+/g, ' ').slice(0, 200)}`;

/** Children of a process (any of its threads), from /proc. */
function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((t) =>
      readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

/** A server stopped (SIGTERM), kept down for the hold, started again on the same port. */
async function downFor(
  server: { pid(): number | undefined; running(): boolean; restart(): Promise<void> },
  what: string,
  holdMs: number,
): Promise<string> {
  const pid = server.pid();
  if (pid === undefined) throw new Error(`${what} is not running`);
  process.kill(pid, 'SIGTERM');
  await until(() => !server.running(), 30_000);
  await sleep(holdMs);
  await server.restart();
  return `${what} down ${(holdMs / 1000).toFixed(0)} s`;
}

const slapdStop: Fault = {
  name: 'slapd-stop',
  effects: [],
  run: (ctx) => downFor(ctx.st.slapd!, 'slapd', ctx.holdMs),
};

const slapdFreeze: Fault = {
  name: 'slapd-freeze',
  effects: [],
  async run(ctx) {
    const pid = ctx.st.slapd!.pid();
    if (pid === undefined) throw new Error('slapd-freeze: slapd is not running');
    ctx.thawOnExit.add(pid);
    process.kill(pid, 'SIGSTOP');
    await sleep(ctx.holdMs);
    process.kill(pid, 'SIGCONT');
    ctx.thawOnExit.delete(pid);
    return `slapd frozen ${(ctx.holdMs / 1000).toFixed(0)} s`;
  },
};

const mariadbRestart: Fault = {
  name: 'mariadb-restart',
  effects: [],
  run: (ctx) => downFor(ctx.st.db!, 'mariadbd', ctx.holdMs),
};

/** The directory fault of issue 11: every machine loses its IP attribute, then gets it back. */
const ldapNoIp: Fault = {
  name: 'ldap-no-ip',
  effects: [],
  async run(ctx) {
    const ms = ctx.campus.machines;
    await ctx.st.slapd!.modify(ms.map((m) => `dn: ${m.dn}\nchangetype: modify\ndelete: ipHostNumber\n-\n`).join('\n'));
    await sleep(ctx.holdMs);
    await ctx.st.slapd!.modify(
      ms.map((m) => `dn: ${m.dn}\nchangetype: modify\nadd: ipHostNumber\nipHostNumber: ${m.ipHostNumber}\n-\n`).join('\n'),
    );
    return `ipHostNumber removed from ${ms.length} machines for ${(ctx.holdMs / 1000).toFixed(0)} s`;
  },
};

const setFlush: Fault = {
  name: 'set-flush',
  effects: ['entitled-missing', 'qos-sets'],
  async run(ctx) {
    // Alternately the allow set and the fullest download set.
    const set = ctx.occurrence % 2 === 0 ? 'qos_allow' : await fullestSet(ctx.gwExec, 'qos_d');
    await ctx.gwExec('ipset', ['flush', set]);
    return `ipset flush ${set}`;
  },
};

async function fullestSet(exec: Exec, prefix: string): Promise<string> {
  const { stdout } = await exec('ipset', ['list', '-t']);
  let best = `${prefix}0`;
  let most = -1;
  let name = '';
  for (const line of stdout.split('\n')) {
    if (line.startsWith('Name: ')) name = line.slice(6).trim();
    const m = /^Number of entries: (\d+)/.exec(line);
    if (m && name.startsWith(prefix) && /\d$/.test(name) && Number(m[1]) > most) {
      most = Number(m[1]);
      best = name;
    }
  }
  return best;
}

/** One of our chains removed from outside: the rules jumping to it, then -F and -X. */
const chainDelete: Fault = {
  name: 'chain-delete',
  effects: ['chains'],
  async run(ctx) {
    const [table, chain] = ctx.occurrence % 2 === 0 ? ['filter', 'RESELQOS-fwout'] : ['mangle', 'RESELQOS-down'];
    const { stdout } = await ctx.gwExec('iptables-save', ['-t', table]);
    const jumps = stdout.split('\n').filter((l) => l.startsWith('-A ') && ruleTarget(l) === chain);
    for (const line of jumps) await ctx.gwExec('iptables', ['-t', table, '-D', ...splitIptablesArgs(line).slice(1)]);
    await ctx.gwExec('iptables', ['-t', table, '-F', chain]);
    await ctx.gwExec('iptables', ['-t', table, '-X', chain]);
    return `iptables -t ${table}: ${jumps.length} jump(s) removed, -F/-X ${chain}`;
  },
};

/** SIGKILL while the daemon has a child (a kernel tool: mid-cycle), then `reselqos start`. */
const daemonKill: Fault = {
  name: 'daemon-kill',
  effects: [],
  async run(ctx) {
    const pid = ctx.checker.pid;
    if (pid === null || !isAlive(pid)) throw new Error('daemon-kill: no daemon to kill');
    ctx.checker.daemonExpectedDown = true;
    try {
      const mid = await until(() => childrenOf(pid).length > 0, 3 * ctx.intervalMs, 5);
      process.kill(pid, 'SIGKILL');
      await until(() => !isAlive(pid), 10_000);
      const out = await ctx.startDaemon();
      return `pid ${pid} killed ${mid ? 'mid-cycle (a kernel tool running)' : 'between cycles (no child seen)'}; ${out.split('\n').pop()}`;
    } finally {
      ctx.checker.daemonExpectedDown = false;
    }
  },
};

/**
 * Ten reloads in a second (socket and SIGHUP). The first names an invalid qos.conf and is awaited
 * before the good file is back: the daemon reads the file when it handles a reload, so an invalid
 * file in place while other reloads are pending would be read by them too.
 */
const reloadStorm: Fault = {
  name: 'reload-storm',
  effects: [],
  async run(ctx) {
    const t0 = Date.now();
    ctx.writeConf(ctx.conf.invalid);
    let a: ControlAnswer | Error;
    try {
      a = await askDaemon(runDir(ctx), { cmd: 'reload' }, 10_000).catch((e: Error) => e);
    } finally {
      ctx.writeConf(ctx.conf.good);
    }
    const invalid = brief(a);
    if (a instanceof Error || a.ok) ctx.checker.violate('reload', `the invalid qos.conf was answered ${invalid}`);
    const answers: Promise<string>[] = [];
    const pid = ctx.checker.pid;
    for (let i = 1; i < 10; i++) {
      await sleep(Math.max(0, t0 + i * 100 - Date.now()));
      if ((i === 4 || i === 8) && pid !== null && isAlive(pid)) process.kill(pid, 'SIGHUP');
      else answers.push(askDaemon(runDir(ctx), { cmd: 'reload' }, 60_000).then(brief, (e: Error) => brief(e)));
    }
    const sent = Date.now() - t0;
    const got = await Promise.all(answers);
    const bad = got.filter((x) => x !== 'ok');
    if (bad.length) ctx.checker.violate('reload', `valid reloads answered: ${bad.join(' | ')}`);
    return `10 reloads in ${sent} ms (1 invalid: ${invalid}; 7 socket: ${got.length - bad.length} ok; 2 SIGHUP)`;
  },
};

/** A reload naming an unreadable [ldap] caFile (socket, then SIGHUP), then the good file again. */
const reloadBadCa: Fault = {
  name: 'reload-bad-cafile',
  effects: [],
  async run(ctx) {
    ctx.writeConf(ctx.conf.badCa);
    let socket = '';
    try {
      const a = await askDaemon(runDir(ctx), { cmd: 'reload' }, 30_000).catch((e: Error) => e);
      socket = brief(a);
      if (!(a instanceof Error) && a.ok) ctx.checker.violate('reload', 'a reload naming an unreadable caFile was accepted');
      const pid = ctx.checker.pid;
      if (pid !== null && isAlive(pid)) process.kill(pid, 'SIGHUP');
      await sleep(ctx.holdMs);
    } finally {
      ctx.writeConf(ctx.conf.good);
    }
    const back = ctx.checker.daemonAlive()
      ? brief(await askDaemon(runDir(ctx), { cmd: 'reload' }, 30_000).catch((e: Error) => e))
      : 'daemon gone';
    return `socket reload: ${socket}; SIGHUP sent; good qos.conf reloaded: ${back}`;
  },
};

export const FAULTS: readonly Fault[] = [
  slapdStop,
  setFlush,
  ldapNoIp,
  daemonKill,
  reloadStorm,
  chainDelete,
  reloadBadCa,
  slapdFreeze,
  mariadbRestart,
];
