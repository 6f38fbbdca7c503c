// Regenerates docs/CONFIG.md from src/config/schema.ts: npm run build && node scripts/config-doc.mjs > docs/CONFIG.md
import { KEYS, SECTIONS } from '../dist/config/schema.js';
const out = [];
out.push(`# qos.conf reference

\`qos.conf\` is an INI file (installed as \`/etc/reselqos/qos.conf\`, mode 0600). \`reselqos check\` validates
it and shows what is in force; \`reselqos reload\` (or \`service reselqos reload\`, or SIGHUP) applies a valid
new file live. Keys marked **restart** in the *live* column are read only at start: \`reload\` names them
in its answer and keeps the running value until \`restart\`.

Validation collects every problem before refusing a file; each names \`file:line: [section] key\` and what
was expected. Unknown keys and sections are warnings. A file that holds a password (\`[ldap] password\`,
\`[database] password\`) and is readable by anyone but its owner is refused: \`chmod 600 qos.conf\`.
Key names are case-insensitive. Quote a value that contains \`;\` or \`#\` (\`password = "a;b"\`).

## Units

| kind | accepted | notes |
|---|---|---|
| rate | \`bit\`, \`kbit\`, \`Mbit\`, \`Gbit\`, \`bps\`, \`kbps\`, \`Mbps\`, \`Gbps\` | all **bits** per second, SI (1 kbit = 1000 bit). \`160Mbps\` = 160 megabits/s, as operators write it — unlike \`tc\`, where \`mbps\` means mega*bytes*. A bare number is refused. |
| size | \`B\`, \`kB\`/\`ko\`, \`MB\`/\`Mo\`, \`GB\`/\`Go\`, \`TB\`/\`To\`, \`KiB\`, \`MiB\`, \`GiB\`, \`TiB\` | a bare number means MB (10^6 bytes), as in the original defaults. \`Mb\`/\`Gb\` are refused as ambiguous. |
| time of day | \`H:MM\`, \`HH:MM\` | 0:00 to 23:59, wall clock of \`[qos] timezone\` |
| duration | \`10\`, \`10s\`, \`2m\`, \`1h\`, \`500ms\` | a bare number is seconds |
| share | \`20%\` or \`0.2\` | |
| boolean | \`1\`/\`0\` (also yes/no, true/false, on/off) | |
`);
const intro = {
  ldap: 'Users and machines. Anonymous bind when `user` is empty. `ldaps://` URLs and StartTLS verify the server certificate (no fallback to plaintext). Searches are paged, so a directory larger than the server size limit comes back whole; a search cut short is a failed snapshot, never a shorter list.',
  database: 'Daily volumes from the netacct-mysql (`nacctd`) tables: per IP, `SUM(downColumn)` and `SUM(upColumn)` over the hour buckets at or after the daily reset, compared in the database server\'s time zone. Rows holding NULL or negative values are ignored with a warning.',
  firewall: 'Interfaces, addresses and the dynamic firewall. Besides the keys below, any `eth_*` key names an interface, any `ip_*` key a gateway address (never locked out: traffic to it always passes), any `net*` key a network (`net6` is the default of `user6Networks`). With `enabled = 1`, a machine may go out when it is active (no `Inactive` zone), its owner exists and is entitled (paid, not cut, not banned from the internet, not blacklisted — each check switchable); everything else from `userNetworks` / `user6Networks` is refused at FORWARD. The rules match every packet, established flows included, so a ban or a cut-off ends open connections within one cycle. Traffic to and from `tunnel_name` (the other campus) is never blocked.',
  rates: 'Rates in bit/s units. `down` and `up` are the rates shared between the users of this gateway. Any further key (e.g. `tunnelUp`, `tunnelDown`) is accepted; rate rules scale a key ending in `Up` by ruleUp/up and one ending in `Down` by ruleDown/down.',
  ratesrules: '',
  qos: 'Groups, thresholds, class rates and kernel object names.',
  path: 'Directories.',
  log: 'Logging (winston): `reselqos.log` under `[path] log`, and stderr when `run` is in the foreground.',
};
for (const s of SECTIONS) {
  out.push(`## [${s}]\n`);
  if (s === 'ratesrules') {
    out.push(`Time windows in which rates change. Rule N has six fields, all required:
\`ruleNFrom\`, \`ruleNTo\` (time of day; a window may cross midnight, e.g. 20:00 to 4:00; From = To is an error),
\`ruleNGlobalUp\`, \`ruleNGlobalDown\`, \`ruleNUp\`, \`ruleNDown\` (rates; \`0\` leaves that rate unchanged).
Windows must not overlap (checked by \`check\`). The window is evaluated on the wall clock of \`[qos] timezone\`,
so DST days keep it at the same local hours (on a spring-forward day a window starting in the skipped hour starts at 03:00).
All keys are **live**.
`);
    continue;
  }
  if (intro[s]) out.push(intro[s] + '\n');
  out.push('| key | default | live | meaning |\n|---|---|---|---|');
  for (const k of KEYS.filter((k) => k.section === s)) {
    const def = k.def === undefined ? '*required*' : k.def === '' ? '*(empty)*' : '`' + k.def + '`';
    out.push(`| \`${k.key}\` | ${def} | ${k.live ? 'live' : '**restart**'} | ${k.doc.replace(/\|/g, '\\|')} |`);
  }
  out.push('');
}
console.log(out.join('\n'));
