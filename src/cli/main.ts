// Entry point of the `reselqos` command: parses argv and dispatches to one verb.
// Verbs live in src/cli/*.ts; this file only routes and maps errors to exit codes.

import { parseArgs } from 'node:util';
import { systemClock } from '../clock.js';
import { runCheck } from './check.js';
import { runPlan } from './plan.js';
import { runOnce, runClear } from './kernel.js';
import { runForeground, runStart, runStop, runUpdate, runReload, runStatus, runExplain, runExplainComplete } from './service.js';
import { runTop } from './top.js';
import { runHealth, runRole } from './ha.js';
import { runShare, readStdin } from './share.js';
import { EXIT, UsageError, processIo, type Io } from './common.js';

export interface Verb {
  summary: string;
  usage: string;
  options: Record<string, { type: 'string' | 'boolean'; short?: string }>;
  /** options for scripts, not in the usage line nor the man page (bash completion's helpers) */
  hidden?: readonly string[];
  run(values: Record<string, string | boolean | undefined>, positionals: string[], io: Io): Promise<number>;
}

const CONFIG_OPT = { config: { type: 'string' as const, short: 'c' } };

export const VERBS: Readonly<Record<string, Verb>> = {
  check: {
    summary: 'validate qos.conf and show thresholds, the rate rule and the rates in force',
    usage: 'reselqos check [-c FILE] [--at ISO_LOCAL_TIME] [--json] [--kernel]',
    options: { ...CONFIG_OPT, at: { type: 'string' }, json: { type: 'boolean' }, kernel: { type: 'boolean' } },
    run: (v, _p, io) =>
      runCheck(
        {
          config: v['config'] as string | undefined,
          at: v['at'] as string | undefined,
          json: v['json'] === true,
          kernel: v['kernel'] === true,
        },
        io,
        systemClock,
      ),
  },
  plan: {
    summary: 'fetch LDAP and MySQL once and print the desired state (changes nothing)',
    usage: 'reselqos plan [-c FILE] [--json] [--force]',
    options: { ...CONFIG_OPT, json: { type: 'boolean' }, force: { type: 'boolean' } },
    run: (v, _p, io) =>
      runPlan({ config: v['config'] as string | undefined, json: v['json'] === true, force: v['force'] === true }, io, systemClock),
  },
  run: {
    summary: 'the daemon in the foreground (what systemd starts); --once: one full cycle, then exit',
    usage: 'reselqos run [--once] [-c FILE] [--force]',
    options: { ...CONFIG_OPT, once: { type: 'boolean' }, force: { type: 'boolean' } },
    run: (v, _p, io) =>
      v['once'] === true
        ? runOnce({ config: v['config'] as string | undefined, force: v['force'] === true }, io, systemClock)
        : runForeground(v['config'] as string | undefined, io, systemClock),
  },
  start: {
    summary: 'fetch a fresh snapshot, rebuild every object in one go, start the daemon in the background',
    usage: 'reselqos start [-c FILE]',
    options: { ...CONFIG_OPT },
    run: (v, _p, io) => runStart(v['config'] as string | undefined, io, systemClock),
  },
  stop: {
    summary: 'stop the daemon after any apply in flight; kernel state is kept',
    usage: 'reselqos stop [-c FILE]',
    options: { ...CONFIG_OPT },
    run: (v, _p, io) => runStop(v['config'] as string | undefined, io),
  },
  restart: {
    summary: 'stop, then start',
    usage: 'reselqos restart [-c FILE]',
    options: { ...CONFIG_OPT },
    run: async (v, _p, io) => {
      const code = await runStop(v['config'] as string | undefined, io);
      return code === EXIT.ok ? runStart(v['config'] as string | undefined, io, systemClock) : code;
    },
  },
  update: {
    summary:
      'run a cycle now, with a full LDAP fetch; prints its summary line, exit 1 if it failed or the directory was refused;\n' +
      '           --force: past the entry-count rule (maxShrink); --accept: take a directory the entitlement guard refuses',
    usage: 'reselqos update [-c FILE] [--force] [--accept]',
    options: { ...CONFIG_OPT, force: { type: 'boolean' }, accept: { type: 'boolean' } },
    run: (v, _p, io) => runUpdate(v['config'] as string | undefined, { force: v['force'] === true, accept: v['accept'] === true }, io),
  },
  reload: {
    summary: 're-read qos.conf: applied live, or rejected with every error (the running config stays)',
    usage: 'reselqos reload [-c FILE]',
    options: { ...CONFIG_OPT },
    run: (v, _p, io) => runReload(v['config'] as string | undefined, io),
  },
  status: {
    summary:
      'running or not, role, last cycle, sources, users and rate per group;\n' +
      "           --health: one line, exit 0 if this gateway can shape, 1 if not (keepalived's track_script)",
    usage: 'reselqos status [-c FILE] [--json | --health]',
    options: { ...CONFIG_OPT, json: { type: 'boolean' }, health: { type: 'boolean' } },
    run: (v, _p, io) =>
      v['health'] === true
        ? runHealth(v['config'] as string | undefined, io)
        : runStatus(v['config'] as string | undefined, v['json'] === true, io),
  },
  role: {
    summary: "set this gateway's role in an HA pair (keepalived's notify script): only the master writes the shared tables",
    usage: 'reselqos role master|backup|fault [-c FILE]',
    options: { ...CONFIG_OPT },
    run: (v, p, io) => runRole(v['config'] as string | undefined, p[0], io),
  },
  explain: {
    summary: "why is my connection slow: a user's volumes, groups, next threshold and rate",
    usage: 'reselqos explain <uid|ip> [-c FILE] [--json]',
    options: { ...CONFIG_OPT, json: { type: 'boolean' }, complete: { type: 'string' } },
    // --complete PREFIX: the uids and IPs of the running daemon's last plan starting with PREFIX,
    // one a line, for bash completion; nothing (exit 0) when the daemon does not answer.
    hidden: ['complete'],
    run: (v, p, io) =>
      typeof v['complete'] === 'string'
        ? runExplainComplete(v['config'] as string | undefined, v['complete'], io)
        : runExplain(v['config'] as string | undefined, p[0], v['json'] === true, io, systemClock),
  },
  top: {
    summary: "live view: each group's throughput now against its rate, the largest users; q quits",
    usage: 'reselqos top [-c FILE] [--once]',
    options: { ...CONFIG_OPT, once: { type: 'boolean' } },
    run: (v, _p, io) => runTop(v['config'] as string | undefined, v['once'] === true, io),
  },
  share: {
    summary: 'the allocation between sites for the rows given as JSON on stdin (no smoothing); exit 2 on bad input',
    usage: 'reselqos share [--json] < rows.json',
    options: { json: { type: 'boolean' } },
    run: async (v, _p, io) => runShare(await readStdin(), v['json'] === true, io),
  },
  clear: {
    summary: 'remove every kernel object reselqos owns (chains, rules, qdiscs, sets), nothing else',
    usage: 'reselqos clear [-c FILE]',
    options: { ...CONFIG_OPT },
    run: (v, _p, io) => runClear({ config: v['config'] as string | undefined }, io),
  },
};

function help(io: Io): number {
  const lines = [
    'reselqos — dynamic firewall and fair-share QoS for a Linux gateway',
    '',
    'usage: reselqos <verb> [options]',
    '',
    'verbs:',
    ...Object.entries(VERBS).map(([name, v]) => `  ${name.padEnd(8)} ${v.summary}\n           ${v.usage}`),
    `  ${'help'.padEnd(8)} this text`,
    '',
    'The configuration file is -c FILE, else $RESELQOS_CONF, else /etc/reselqos/qos.conf.',
    'Exit codes: 0 ok, 1 failed, 2 invalid configuration, 3 not running (status),',
    '7 not running (update, reload), 64 usage error.',
    'Signals to the daemon: SIGHUP reload, SIGTERM/SIGINT stop, SIGUSR2 reopen the log file.',
  ];
  io.out(lines.join('\n'));
  return EXIT.ok;
}

export async function main(argv: string[], io: Io = processIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') return help(io);
  const verb = VERBS[name];
  if (!verb) {
    io.err(`reselqos: unknown verb "${name}" (try: reselqos help)`);
    return EXIT.usage;
  }
  try {
    const { values, positionals } = parseArgs({ args: rest, options: verb.options, allowPositionals: true, strict: true });
    return await verb.run(values, positionals, io);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (e instanceof UsageError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))) {
      io.err(`reselqos ${name}: ${(e as Error).message}\nusage: ${verb.usage}`);
      return EXIT.usage;
    }
    io.err(`reselqos ${name}: ${(e as Error).stack ?? String(e)}`);
    return EXIT.failed;
  }
}
