// scripts/man.mjs — the man pages reselqos(8) and qos.conf(5), in roff, from the command's own
// tables so that they cannot drift: the verbs, usage lines and options from VERBS
// (src/cli/main.ts), the exit codes from src/cli/common.ts and service.ts, every qos.conf key
// from KEYS/SECTIONS (src/config/schema.ts, which also writes docs/CONFIG.md). The prose around
// them is here. Run after `npm run build`:
//   node scripts/man.mjs                  writes man/reselqos.8 and man/qos.conf.5
//   node scripts/man.mjs --print NAME     prints one of them (test/unit/man.test.ts compares)
// The generated pages are committed; the unit test fails when they differ from this output.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
const { KEYS, SECTIONS } = await import('../dist/config/schema.js');
const { VERBS } = await import('../dist/cli/main.js');
const { EXIT } = await import('../dist/cli/common.js');
const { NOT_RUNNING, NOT_RUNNING_STATUS } = await import('../dist/cli/service.js');
const VERSION = JSON.parse(readFileSync(`${repo}/package.json`, 'utf8')).version;

// ---- roff helpers -------------------------------------------------------------------------------
/** Plain text for roff: backslashes and minus signs escaped. */
const esc = (s) => s.replace(/\\/g, '\\e').replace(/-/g, '\\-');
/** A line of text: Markdown's `code`, **bold** and *italic* as roff fonts; never a control line. */
function md(s) {
  const out = s
    .split('`')
    .map((part, i) =>
      i % 2 === 1
        ? `\\fB${esc(part).replace(/,(?=\S)/g, ',\\:')}\\fR` // \: a break point in long JSON
        : esc(part)
            .replace(/\*\*([^*]+)\*\*/g, '\\fB$1\\fR')
            .replace(/\*([^*\s][^*]*)\*/g, '\\fI$1\\fR'),
    )
    .join('');
  return /^[.']/.test(out) ? `\\&${out}` : out;
}
/** A usage line: options bold, metavariables (FILE, <uid|ip>) italic. */
function usage(u) {
  return u
    .split(' ')
    .map((w) =>
      esc(w)
        .replace(/^(\[?)(reselqos)$/, '$1\\fB$2\\fR')
        .replace(/(\\-\\-?[a-z]+)/g, '\\fB$1\\fR')
        .replace(/<([^>]+)>/g, '\\fI$1\\fR')
        .replace(/\b([A-Z][A-Z_]{2,})\b/g, '\\fI$1\\fR'),
    )
    .join(' ')
    .replace(/^\\fBreselqos\\fR (\w+)/, '\\fBreselqos $1\\fR');
}
const oneLine = (s) => s.replace(/\s*\n\s*/g, ' ');
/** Non-ASCII characters as groff's \[uXXXX], so that the page needs no input encoding. */
const ascii = (page) => page.replace(/[^\x00-\x7f]/gu, (c) => `\\[u${c.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')}]`);

// ---- reselqos(8) ----------------------------------------------------------------------------------
/** What each option does; every option of VERBS must be here (the generator fails otherwise). */
const OPTION_DOC = {
  config:
    'the configuration file; without it, `$RESELQOS_CONF`, else `/etc/reselqos/qos.conf`. The client verbs (`stop`, `update`, `reload`, `status`, `explain`) read only its `[path] run` to find the control socket.',
  json: 'print one JSON object (the shape is part of the public interface) instead of text.',
  kernel:
    'with `check` (root): probe this kernel, in a throw-away network namespace, for every feature the file needs (the classifier, the leaf, the `flow` filter of `[qos] fairness = host`, the IPv6 portal): each missing one on stderr, exit 1.',
  at: 'with `check`: show the rate rule and the rates in force at this local time (`2025-01-15T21:30`, on the wall clock of `[qos] timezone`) instead of now.',
  force:
    'with `plan`, `run --once`, `update`: take a directory smaller than the last one by more than `[ldap] maxShrink` of its entries.',
  accept:
    "with `update`: take a directory the entitlement guard refuses, deliberately; the guard's baseline then starts again from it. Never a directory in which no machine has an IP.",
  health:
    "with `status`: one line and exit 0 when this gateway can shape, 1 when it cannot (not running, no answer within 5 s, no cycle ended yet or for `[ha] maxAge`, the last `[ha] failures` cycles failed on the kernel); an LDAP or MySQL outage does not count. For keepalived's `track_script`.",
  once: 'with `run`: one full cycle (sources, plan, kernel), print the cycle line, exit; refused while the daemon runs. With `top`: print one view and exit.',
};
/** More than the one-line summary of VERBS, for some verbs. */
const VERB_MORE = {
  check:
    'Exit 2 naming file:line and key for an error, including settings that open the gateway (a `qos.conf` or CA file writable by everyone, a CA with no certificate valid now, `openDestinations` covering every address, a shared `[path]` directory such as `/tmp`); warnings on stderr for risky ones. `start`, `run` and `reload` apply the same checks.',
  plan: 'Prints each user\'s groups, the class rates, skipped entries and the changes it would make to the kernel.',
  start:
    'Takes the snapshot on disk instead when it is younger than `[ldap] refresh` (the daemon then fetches in the background); the switch to the new objects takes milliseconds.',
  stop: 'The gateway is never cut by a stop: sets, rules and classes stay in force until the next start adopts them.',
  update:
    'Deleted entries are gone at once. The reason of a refusal goes to stderr.',
  reload: 'CA files are read and clients built before anything changes; the answer names keys that need a restart.',
  status: 'Each source is `ok`, `down since …` or `refused since …: reason, using snapshot of …`.',
  explain: 'Answered by the running daemon from its last cycle, else from a fresh fetch of LDAP and MySQL.',
  clear: 'Refused (exit 1, naming its pid) while the daemon runs.',
  role:
    'Run by keepalived\'s notify script. Only the master writes the `[publish]` tables and the `[sharing]` row; both gateways keep the same kernel state. Kept in `[path] run/ha-role` for a restart of the daemon; when the daemon is not running, only kept there (exit 0).',
  share:
    "Input: one JSON object, the global rates (`global`: `down`, `up` in bit/s) and each site's `site`, `weight`, `cap`, `demand`, `allocated` and `fresh`; output: each site's `down` and `up`. See `DESIGN.md`, \"Sites\".",
};
const EXIT_DOC = {
  [EXIT.ok]: 'success (`stop` also when the daemon was not running).',
  [EXIT.failed]:
    'failed: a cycle that could not apply, not healthy (`status --health`), a refused directory (`update`), a daemon that did not come up (`start`), `run --once` or `clear` while the daemon runs, a user not found (`explain`).',
  [EXIT.invalid]: 'invalid configuration (`check`, `start`, `run`, `reload`: the running configuration stays) or invalid input (`share`).',
  [NOT_RUNNING_STATUS]: 'not running (`status`).',
  [NOT_RUNNING]: 'not running (`update`, `reload`).',
  [EXIT.usage]: 'usage error: an unknown verb or option, a missing argument.',
};

function reselqos8() {
  const verbs = Object.entries(VERBS);
  const options = new Map(); // name -> { short, type, verbs }
  for (const [name, v] of verbs) {
    for (const [opt, spec] of Object.entries(v.options)) {
      if (v.hidden?.includes(opt)) continue;
      const o = options.get(opt) ?? { short: spec.short, type: spec.type, verbs: [] };
      o.verbs.push(name);
      options.set(opt, o);
    }
  }
  const missing = [...options.keys()].filter((o) => !OPTION_DOC[o]);
  if (missing.length) throw new Error(`scripts/man.mjs: no OPTION_DOC for --${missing.join(', --')}`);
  const codes = [...new Set([...Object.values(EXIT), NOT_RUNNING_STATUS, NOT_RUNNING])].sort((a, b) => a - b);
  const noDoc = codes.filter((c) => !EXIT_DOC[c]);
  if (noDoc.length) throw new Error(`scripts/man.mjs: no EXIT_DOC for exit code ${noDoc.join(', ')}`);

  const L = [];
  L.push(
    '.\\" Generated by scripts/man.mjs from src/cli/main.ts (VERBS); edit that script, then: npm run build && node scripts/man.mjs',
    `.TH RESELQOS 8 "" "reselqos ${VERSION}" "System Administration"`,
    '.SH NAME',
    'reselqos \\- dynamic firewall and fair\\-share QoS daemon for a Linux gateway',
    '.SH SYNOPSIS',
    '.nf',
    ...verbs.map(([, v]) => usage(v.usage)),
    '\\fBreselqos help\\fR',
    '.fi',
    '.SH DESCRIPTION',
    md('`reselqos` keeps a campus or ISP Linux gateway fair. A long-running daemon reads `qos.conf`, pulls users and their machines from LDAP every few seconds and each user\'s traffic volume since the daily reset from the netacct tables in MySQL, then places each user\'s IPs into ipsets by volume group (`qos_d0`.. download, `qos_u0`.. upload, `v6qos_*` for IPv6).'),
    md('iptables marks packets by set, and tc HTB gives one class per group, rates recomputed so that a user of group n+1 gets `classRateFactor` times the rate of a user of group n while the whole link is shared. A dynamic firewall lets only registered, paid, unbanned machines out.'),
    '.PP',
    md('The daemon is `reselqos run` (what systemd starts) or `reselqos start` (in the background); the other verbs are its clients over the control socket, or work on their own. Stopping the daemon never removes the kernel state: the gateway keeps shaping and filtering until the next start adopts it.'),
    '.SH VERBS',
  );
  for (const [name, v] of verbs) {
    L.push('.TP', usage(v.usage), md(oneLine(v.summary) + '.'));
    if (VERB_MORE[name]) L.push(md(VERB_MORE[name]));
  }
  L.push('.TP', '\\fBreselqos help\\fR', 'every verb with its usage line (also \\fB\\-h\\fR, \\fB\\-\\-help\\fR).');
  L.push('.SH OPTIONS');
  for (const [name, o] of options) {
    const arg = o.type === 'string' ? ` \\fI${name === 'config' ? 'FILE' : name === 'at' ? 'ISO_LOCAL_TIME' : name.toUpperCase()}\\fR` : '';
    const head = (o.short ? `\\fB\\-${o.short}\\fR${arg}, ` : '') + `\\fB\\-\\-${esc(name)}\\fR${arg}`;
    L.push('.TP', head, md(OPTION_DOC[name]), md(`Verbs: ${o.verbs.map((x) => `\`${x}\``).join(', ')}.`));
  }
  L.push('.SH EXIT STATUS');
  for (const c of codes) L.push('.TP', `\\fB${c}\\fR`, md(EXIT_DOC[c]));
  L.push(
    '.SH SIGNALS',
    'Sent to the daemon (its pid is in \\fI[path] run\\fR\\fB/reselqos.pid\\fR):',
    '.TP',
    '\\fBSIGHUP\\fR',
    md('reload `qos.conf`, as `reselqos reload`.'),
    '.TP',
    '\\fBSIGTERM\\fR, \\fBSIGINT\\fR',
    md('stop after any apply in flight, as `reselqos stop`; the kernel state is kept.'),
    '.TP',
    '\\fBSIGUSR2\\fR',
    md('reopen the log file (after logrotate moved it).'),
    '.SH ENVIRONMENT',
    '.TP',
    '\\fBRESELQOS_CONF\\fR',
    md('the configuration file when no `-c FILE` is given.'),
    '.SH FILES',
    '.TP',
    '\\fI/etc/reselqos/qos.conf\\fR',
    md('the configuration (INI, mode 0600 when it holds a password); every key in **qos.conf**(5).'),
    '.TP',
    '\\fI/var/log/reselqos/reselqos.log\\fR',
    md('the log (`[path] log`); rotated by `/etc/logrotate.d/reselqos`.'),
    '.TP',
    '\\fI/run/reselqos/\\fR',
    md('`[path] run`: the control socket `reselqos.sock` (mode 0600), the pid file `reselqos.pid`, the lock `reselqos.lock` shared by the daemon, `run --once` and `clear`.'),
    '.TP',
    '\\fI/var/lib/reselqos/\\fR',
    md("`[path] state`: the last good directory and volume snapshots, the entitlement guard's peaks (`guard.json`), the other sites' last rows."),
    '.TP',
    '\\fI/usr/share/doc/reselqos/\\fR',
    md('`INSTALL.md`, `CONFIG.md`, `DESIGN.md`: installing, every key, the pipeline and the kernel objects.'),
    '.SH EXAMPLES',
    '.nf',
    '\\fBreselqos check\\fR',
    '\\fBsystemctl enable \\-\\-now reselqos\\fR',
    '\\fBreselqos status\\fR',
    '\\fBreselqos explain alice\\fR',
    '\\fBreselqos update \\-\\-force\\fR',
    '.fi',
    '.SH SEE ALSO',
    '.BR qos.conf (5),',
    '.BR ipset (8),',
    '.BR iptables (8),',
    '.BR tc (8),',
    '.BR tc\\-htb (8),',
    '.BR logrotate (8)',
  );
  return L.join('\n') + '\n';
}

// ---- qos.conf(5) ----------------------------------------------------------------------------------
const SECTION_DOC = {
  ldap: 'Users and machines. Anonymous bind when `user` is empty. `ldaps://` URLs and StartTLS verify the server certificate (no fallback to plaintext). Searches are paged; a search cut short is a failed snapshot, never a shorter list.',
  database:
    "Daily volumes from the netacct-mysql (`nacctd`) tables: per IP, the sums of `downColumn` and `upColumn` over the hour buckets at or after the daily reset, compared in the database server's time zone.",
  firewall:
    'Interfaces, addresses and the dynamic firewall. Besides the keys below, any `eth_*` key names an interface, any `ip_*` key a gateway address (never locked out), any `net*` key a network. With `enabled = 1`, a machine may go out when it is active, its owner exists and is entitled (paid, not cut, not banned, not blacklisted); everything else from `userNetworks` / `user6Networks` is refused at FORWARD, established flows included.',
  rates:
    'Rates shared between the users of this gateway. Any further key (e.g. `tunnelUp`) is accepted; rate rules scale a key ending in `Up` by ruleUp/up and one ending in `Down` by ruleDown/down.',
  qos: 'Groups, thresholds, class rates and kernel object names.',
  site: 'This gateway among the sites of a campus.',
  sharing: 'Several gateways sharing one global link (`[rates] globalDown/globalUp`) through the `[database]` server.',
  path: 'Directories.',
  log: 'Logging: `reselqos.log` under `[path] log`, and stderr when `run` is in the foreground.',
  metrics: 'The HTTP listener: Prometheus metrics at `/metrics` and a read-only dashboard at `/`.',
  publish: 'The tables `people_data` and `classes` written after each applied cycle, for the campus site.',
  ha: 'Two gateways of one site with keepalived: the role at start and the limits of `status --health`.',
};

function qosconf5() {
  const noDoc = SECTIONS.filter((s) => s !== 'ratesrules' && !SECTION_DOC[s]);
  if (noDoc.length) throw new Error(`scripts/man.mjs: no SECTION_DOC for [${noDoc.join('], [')}]`);
  const L = [];
  L.push(
    '.\\" Generated by scripts/man.mjs from src/config/schema.ts (KEYS, SECTIONS); edit them, then: npm run build && node scripts/man.mjs',
    `.TH QOS.CONF 5 "" "reselqos ${VERSION}" "File Formats"`,
    '.SH NAME',
    'qos.conf \\- configuration of the reselqos gateway daemon',
    '.SH SYNOPSIS',
    '\\fI/etc/reselqos/qos.conf\\fR',
    '.SH DESCRIPTION',
    md('`qos.conf` is an INI file: `[section]` lines, then `key = value` lines; `;` or `#` starts a comment. Key names are case-insensitive. Quote a value that contains `;` or `#` (`password = "a;b"`).'),
    '.PP',
    md('`reselqos check` validates it and shows what is in force; `reselqos reload` (or SIGHUP) applies a valid new file live. Keys marked **restart** below are read only at start: `reload` names them and keeps the running value until `reselqos restart`.'),
    '.PP',
    md('Validation collects every problem before refusing a file; each names `file:line: [section] key` and what was expected. Unknown keys and sections are warnings. A file that holds a password and is readable by anyone but its owner is refused: `chmod 600 qos.conf`.'),
    '.SH UNITS',
    '.TP',
    '\\fBrate\\fR',
    md('`bit`, `kbit`, `Mbit`, `Gbit`, `bps`, `kbps`, `Mbps`, `Gbps`: all **bits** per second, SI (1 kbit = 1000 bit). `160Mbps` is 160 megabits/s, unlike tc(8), where `mbps` means megabytes. A bare number is refused.'),
    '.TP',
    '\\fBsize\\fR',
    md('`B`, `kB`/`ko`, `MB`/`Mo`, `GB`/`Go`, `TB`/`To`, `KiB`, `MiB`, `GiB`, `TiB`; a bare number means MB (10^6 bytes). `Mb` and `Gb` are refused as ambiguous.'),
    '.TP',
    '\\fBtime of day\\fR',
    md('`H:MM` or `HH:MM`, 0:00 to 23:59, wall clock of `[qos] timezone`.'),
    '.TP',
    '\\fBduration\\fR',
    md('`10`, `10s`, `2m`, `1h`, `500ms`; a bare number is seconds.'),
    '.TP',
    '\\fBshare\\fR',
    md('`20%` or `0.2`.'),
    '.TP',
    '\\fBboolean\\fR',
    md('`1`/`0` (also yes/no, true/false, on/off).'),
    '.SH KEYS',
    md('Each key with its default; **restart**: read only at start (every other key is applied by `reload`).'),
  );
  for (const s of SECTIONS) {
    L.push(`.SS [${s}]`);
    if (s === 'ratesrules') {
      L.push(
        md('Time windows in which rates change. Rule N has six fields, all required: `ruleNFrom`, `ruleNTo` (time of day; a window may cross midnight, e.g. 20:00 to 4:00; From = To is an error), `ruleNGlobalUp`, `ruleNGlobalDown`, `ruleNUp`, `ruleNDown` (rates; `0` leaves that rate unchanged).'),
        md('Windows must not overlap (checked by `check`); they are evaluated on the wall clock of `[qos] timezone`. All keys are live.'),
      );
      continue;
    }
    L.push(md(SECTION_DOC[s]));
    for (const k of KEYS.filter((x) => x.section === s)) {
      const def = k.def === undefined ? 'required' : k.def === '' ? 'default: empty' : `default: \\fB${esc(k.def)}\\fR`;
      L.push('.TP', `\\fB${esc(k.key)}\\fR (${def}${k.live ? '' : '; \\fBrestart\\fR'})`, md(k.doc));
    }
  }
  L.push(
    '.SH FILES',
    '.TP',
    '\\fI/etc/reselqos/qos.conf\\fR',
    'the file read by default (else \\fB\\-c\\fR \\fIFILE\\fR or \\fB$RESELQOS_CONF\\fR).',
    '.TP',
    '\\fI/usr/share/doc/reselqos/CONFIG.md\\fR',
    'the same keys, as tables.',
    '.SH SEE ALSO',
    '.BR reselqos (8)',
  );
  return L.join('\n') + '\n';
}

// ---- main ------------------------------------------------------------------------------------------
const PAGES = { 'reselqos.8': reselqos8, 'qos.conf.5': qosconf5 };
const args = process.argv.slice(2);
if (args[0] === '--print') {
  const page = PAGES[args[1]];
  if (!page) {
    console.error(`usage: node scripts/man.mjs [--print ${Object.keys(PAGES).join('|')}]`);
    process.exit(64);
  }
  process.stdout.write(ascii(page()));
} else if (args.length === 0) {
  mkdirSync(`${repo}/man`, { recursive: true });
  for (const [name, page] of Object.entries(PAGES)) {
    writeFileSync(`${repo}/man/${name}`, ascii(page()));
    console.log(`man/${name}`);
  }
} else {
  console.error(`usage: node scripts/man.mjs [--print ${Object.keys(PAGES).join('|')}]`);
  process.exit(64);
}
