// scripts/vm/servers.mjs — runs inside the lane's VM (copied to /opt/rq-lane with build/ and the
// production node_modules): the sandbox's private slapd and MariaDB (sandbox/slapd.ts,
// sandbox/mariadb.ts) on fixed loopback ports, seeded with the sandbox campus plus the lane's
// users (alice, bob: the shaping checks; carol, dave: the fairness checks). Writes the connection settings
// to the file named by argv[2] (shell-sourceable KEY=value lines) once both are ready, then
// stays up until SIGTERM (stops both servers, removes their temp dirs).
// Traffic rows are written only for alice and bob (the campus people stay idle), so with
// [qos] count = active each of them is alone in its class and its rate is the policy's.
import { writeFileSync, renameSync } from 'node:fs';
import { startSlapd, PEOPLE_BASE, MACHINES_BASE } from './build/sandbox/slapd.js';
import { startMariadb } from './build/sandbox/mariadb.js';
import { generateCampus, loadCampus } from './build/sandbox/campus.js';

const out = process.argv[2];
if (!out) throw new Error('usage: node servers.mjs ENVFILE');

// uid -> [ipHostNumber suffix, download bytes today, upload bytes today]
// Thresholds with the defaults (1250 MB, x1.6 + 1250): group 0 < 1250 MB, group 2 in
// [3250, 6450) MB, group 5 >= 19762 MB.
// carol and dave (no traffic rows: group 0, and not counted by count = active, so the shaping
// checks' per-user rates stay alice's and bob's) share alice's group-0 classes in the fairness
// checks: carol with one flow, dave with sixteen.
export const LANE_USERS = {
  alice: ['250.3', 1_000_000, 1_000_000], // down 0, up 0
  bob: ['251.3', 40_000_000_000, 5_000_000_000], // down 5, up 2
  carol: ['250.4', 0, 0],
  dave: ['251.4', 0, 0],
};

// Generous start timeouts: under TCG on a busy host the guest may get a fraction of a core.
const slapd = await startSlapd({ port: 3389, startTimeoutMs: 600_000 });
const db = await startMariadb({ port: 3307, timezone: '+00:00', startTimeoutMs: 900_000 });
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await Promise.allSettled([slapd.stop(), db.stop()]);
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

const campus = generateCampus({ users: 200, seed: 13 });
const taken = new Set(campus.machines.map((m) => m.ip));
for (const [, [suffix]] of Object.entries(LANE_USERS)) {
  if (taken.has(`172.22.${suffix}`)) throw new Error(`campus already uses 172.22.${suffix}`);
}
const loaded = await loadCampus(slapd, campus);
let ldif = '';
for (const [uid, [suffix]] of Object.entries(LANE_USERS)) {
  ldif += `dn: uid=${uid},${PEOPLE_BASE}\nobjectClass: genericPerson\nobjectClass: reselPerson\nuid: ${uid}\nendInternet: 20300101000000Z\n\n`;
  ldif += `dn: host=${uid}-0,${MACHINES_BASE}\nobjectClass: reselMachine\nhost: ${uid}-0\nuidProprio: uid=${uid},${PEOPLE_BASE}\nipHostNumber: ${suffix}\nzone: Brest\nzone: User\n\n`;
}
await slapd.add(ldif);

const now = new Date();
const hour = `${now.toISOString().slice(0, 13).replace('T', ' ')}:00:00`;
const rows = [];
for (const [, [suffix, down, up]] of Object.entries(LANE_USERS)) {
  let d = down;
  let u = up;
  while (d > 0 || u > 0) {
    const a = Math.min(d, 2_000_000_000);
    const b = Math.min(u, 2_000_000_000);
    rows.push({ ip: `172.22.${suffix}`, time: hour, input: a, output: b });
    d -= a;
    u -= b;
  }
}
await db.insertTraffic(rows);

const env = [
  `LDAP_URL=${slapd.url}`,
  `DB_HOST=${db.host}`,
  `DB_PORT=${db.port}`,
  `DB_USER=${db.user}`,
  `DB_PASS=${db.password}`,
  `CAMPUS_ENTRIES=${loaded.entries}`,
  `SERVERS_PID=${process.pid}`,
  '',
].join('\n');
writeFileSync(`${out}.tmp`, env);
renameSync(`${out}.tmp`, out);
console.log(`servers: slapd ${slapd.url} (campus ${loaded.entries} entries + ${Object.keys(LANE_USERS).length} lane users), mariadb ${db.host}:${db.port}`);
setInterval(() => undefined, 1 << 30);
