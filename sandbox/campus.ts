// sandbox/campus.ts — deterministic fake campus directories (people, organisations, machines)
// shaped like the real RESEL/MAISEL LDAP (see docs in /work/shared/spec/data.md), their LDIF,
// matching netacct traffic rows, and the loaders that put them into the sandbox servers
// (ldapadd for small sets, offline slapadd -q for big ones; batched INSERTs into MariaDB).
// Seeded PRNG only: the same options (seed, now) always give the same campus.
// Test-only code; never used by the daemon.

import type { MariadbServer, TrafficRow } from './mariadb.js';
import { MACHINES_BASE, ORGS_BASE, PEOPLE_BASE, type SlapdServer } from './slapd.js';

export interface CampusOptions {
  /** number of people */
  users: number;
  /** PRNG seed. Default 1. */
  seed?: number;
  /** Reference "now" for endInternet/dateInscr/cotiz. Default: today 00:00 UTC (so a day's runs agree). */
  now?: Date;
  /** Prefix the ipHostNumber suffixes complete. Default '172.22.' (Brest). */
  areaPrefix?: string;
  /** campus / zone name. Default 'Brest'. */
  campus?: string;
  /** How many suffix addresses ('X.Y') to hand out before switching to full quads. Default 60 000 (max 64 770). */
  suffixPool?: number;
  /** First octet(s) of the full-quad addresses used beyond the suffix pool. Default '10.' (10.16.0.1 …). */
  overflowPrefix?: string;
  /** Machines per person: [min, max]. Default [1, 4] weighted 15/30/30/25 % (mean ≈ 2.65). */
  machinesPerUser?: [number, number];
  /** Organisations (clubs) owning machines under ou=organisations. Default max(1, round(users / 100)). */
  orgs?: number;
  /** Machines per organisation: [min, max]. Default [1, 6]. */
  machinesPerOrg?: [number, number];
  /** Share of machines with zone Inactive instead of User. Default 0.05. */
  inactiveShare?: number;
  /** Share of people whose endInternet is in the past. Default 0.05. */
  unpaidShare?: number;
  /** Share of people with coupure TRUE. Default 0.01. */
  cutShare?: number;
  /** Share of people with a BLACKLIST<year> cotiz. Default 0.005. */
  blacklistShare?: number;
  /** Share of people with a ban value. Default 0.01. */
  banShare?: number;
  /** Share of people with shapePropre/shapeSale. Default 0.02. */
  shapeShare?: number;
  /** Share of people with a v6Prefix (their machines get ipv6HostNumber). Default 0.2. */
  ipv6Share?: number;
  /** IPv6 prefix head; a person's /64 is `<head><hi>:<lo>::/64`. Default '2001:db8:'. */
  area6Prefix?: string;
}

export interface Person {
  kind: 'person';
  dn: string;
  uid: string;
  firstName: string;
  lastName: string;
  mail: string;
  campus: string;
  objectClasses: string[];
  dateInscr: string;
  /** generalizedTime YYYYMMDDHHMMSSZ */
  endInternet: string;
  endInternetDate: Date;
  cotiz: string[];
  coupure: boolean;
  ban: string[];
  shapePropre?: number;
  shapeSale?: number;
  v6Prefix?: string;
  /** endInternet after `now` */
  paid: boolean;
  blacklisted: boolean;
}

/** A club: objectClass reselOrganisation + reselPerson (so it carries cotiz/endInternet, always paid). */
export interface Org {
  kind: 'org';
  dn: string;
  uid: string;
  displayName: string;
  mail: string;
  campus: string;
  dateInscr: string;
  endInternet: string;
  endInternetDate: Date;
  cotiz: string[];
  paid: true;
}

export type Owner = Person | Org;

export interface Machine {
  dn: string;
  host: string;
  ownerDn: string;
  ownerUid: string;
  /** as stored in LDAP: 'X.Y' suffix or a full dotted quad */
  ipHostNumber: string;
  /** full IPv4 address */
  ip: string;
  ipv6: string[];
  mac: string;
  zones: string[];
  /** zone User (not Inactive) */
  active: boolean;
  hostAlias?: string;
  lastDate?: string;
  description?: string;
}

export interface Campus {
  options: Required<CampusOptions>;
  now: Date;
  people: Person[];
  orgs: Org[];
  machines: Machine[];
  /** people + orgs + machines (the ou/suffix entries are not included: the sandbox slapd creates them) */
  entryCount: number;
  owner(uid: string): Owner | undefined;
  machinesOf(uid: string): Machine[];
  /** full IPv4 addresses of every machine (active or not) owned by uid */
  ipsOf(uid: string): string[];
  /** IPv6 addresses of every machine owned by uid */
  ip6sOf(uid: string): string[];
  /** The whole LDIF (people, organisations, machines). Large for 100 000 users: prefer ldifChunks(). */
  ldif(): string;
  /** The same LDIF in chunks of `entriesPerChunk` entries. */
  ldifChunks(entriesPerChunk?: number): Generator<string>;
}

// ------------------------------------------------------------------ PRNG

/** mulberry32: small, fast, good enough for fixtures. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FIRST = [
  'Jean',
  'Marie',
  'Pierre',
  'Sophie',
  'Louis',
  'Camille',
  'Lucas',
  'Léa',
  'Hugo',
  'Chloé',
  'Thomas',
  'Manon',
  'Nicolas',
  'Inès',
  'Julien',
  'Emma',
  'Antoine',
  'Sarah',
  'Maxime',
  'Clara',
  'Alexandre',
  'Zoé',
  'Mathieu',
  'Juliette',
  'Guillaume',
  'Hélène',
  'François',
  'Anaïs',
  'Yann',
  'Gwenaëlle',
  'Erwan',
  'Maëlle',
  'Loïc',
  'Nolwenn',
  'Ronan',
  'Soizic',
  'Kévin',
  'Océane',
  'Benoît',
  'Aurélie',
  'Jérôme',
  'Élodie',
  'Mehdi',
  'Yasmine',
  'Wei',
  'Mei',
  'Arjun',
  'Priya',
  'Diego',
  'Lucía',
  'Jonas',
  'Lena',
  'Ahmed',
  'Fatima',
  'Noé',
  'Adèle',
];
const LAST = [
  'Dupont',
  'Martin',
  'Bernard',
  'Dubois',
  'Thomas',
  'Robert',
  'Richard',
  'Petit',
  'Durand',
  'Leroy',
  'Moreau',
  'Simon',
  'Laurent',
  'Lefèvre',
  'Michel',
  'Garcia',
  'David',
  'Bertrand',
  'Roux',
  'Vincent',
  'Fournier',
  'Morel',
  'Girard',
  'André',
  'Lefebvre',
  'Mercier',
  'Dupuis',
  'Lambert',
  'Bonnet',
  'François',
  'Martinez',
  'Le Gall',
  'Le Goff',
  'Le Bris',
  'Kerbrat',
  'Quéré',
  'Tanguy',
  'Le Roux',
  'Guéguen',
  'Cariou',
  'Le Floch',
  'Jézéquel',
  'Nguyen',
  'Wang',
  'Chen',
  'Ben Ali',
  'Benali',
  'Diallo',
  'Traoré',
  'Müller',
  'Schmidt',
  'Rossi',
  'Fernández',
  "D'Arc",
  'Saint-Martin',
  'Lévêque',
  'Côté',
  'Gauthier',
  'Perrin',
  'Morin',
];
const CLUBS = [
  'bde',
  'bds',
  'robotique',
  'theatre',
  'musique',
  'photo',
  'cine',
  'oenologie',
  'voile',
  'rugby',
  'foot',
  'echecs',
  'jeux',
  'radio',
  'journal',
  'humanitaire',
  'forum',
  'gala',
  'junior',
  'resel',
  'linux',
  'astro',
];
const BANS = ['mail', 'wifi', 'p2p', 'irc', 'web'];

// ------------------------------------------------------------------ helpers

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** generalizedTime YYYYMMDDHHMMSSZ */
export function generalizedTime(d: Date): string {
  return (
    `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}` +
    `${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}Z`
  );
}

/** 'YYYY-MM-DD HH:00:00' of a Date read in UTC (shift it yourself for another zone). */
export function hourBucket(d: Date): string {
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:00:00`;
}

const DAY = 86_400_000;

function ascii(s: string): string {
  return s
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z]/g, '');
}

const SAFE = /^[\x21-\x39\x3b\x3d-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/;

/** One LDIF attribute line, base64 when the value is not a SAFE-STRING (accents, leading space…). */
export function ldifLine(attr: string, value: string): string {
  return SAFE.test(value) ? `${attr}: ${value}\n` : `${attr}:: ${Buffer.from(value, 'utf8').toString('base64')}\n`;
}

function pick<T>(rnd: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rnd() * xs.length)] as T;
}

function intBetween(rnd: () => number, [min, max]: [number, number]): number {
  return min + Math.floor(rnd() * (max - min + 1));
}

const hex2 = (n: number): string => (n & 255).toString(16).padStart(2, '0');

// ------------------------------------------------------------------ generator

export function generateCampus(opts: CampusOptions): Campus {
  const today = new Date();
  const o: Required<CampusOptions> = {
    users: opts.users,
    seed: opts.seed ?? 1,
    now: opts.now ?? new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate())),
    areaPrefix: opts.areaPrefix ?? '172.22.',
    campus: opts.campus ?? 'Brest',
    suffixPool: Math.min(opts.suffixPool ?? 60_000, 255 * 254),
    overflowPrefix: opts.overflowPrefix ?? '10.',
    machinesPerUser: opts.machinesPerUser ?? [1, 4],
    orgs: opts.orgs ?? Math.max(1, Math.round(opts.users / 100)),
    machinesPerOrg: opts.machinesPerOrg ?? [1, 6],
    inactiveShare: opts.inactiveShare ?? 0.05,
    unpaidShare: opts.unpaidShare ?? 0.05,
    cutShare: opts.cutShare ?? 0.01,
    blacklistShare: opts.blacklistShare ?? 0.005,
    banShare: opts.banShare ?? 0.01,
    shapeShare: opts.shapeShare ?? 0.02,
    ipv6Share: opts.ipv6Share ?? 0.2,
    area6Prefix: opts.area6Prefix ?? '2001:db8:',
  };
  const rnd = prng(o.seed);
  const now = o.now;
  const year = now.getUTCFullYear();
  const defaultMachineCount = opts.machinesPerUser === undefined;

  // ---- addresses: 'X.Y' suffixes (users' /19 first: 192–255, then 1–191), then full quads
  let nextAddr = 0;
  const allocIp = (): { ipHostNumber: string; ip: string } => {
    const k = nextAddr++;
    if (k < o.suffixPool) {
      const blk = Math.floor(k / 254);
      const third = blk < 64 ? 192 + blk : blk - 63; // 192..255 then 1..191
      const suffix = `${third}.${(k % 254) + 1}`;
      return { ipHostNumber: suffix, ip: `${o.areaPrefix}${suffix}` };
    }
    const j = k - o.suffixPool;
    const quad = `${o.overflowPrefix}${16 + Math.floor(j / (256 * 254))}.${Math.floor(j / 254) % 256}.${(j % 254) + 1}`;
    return { ipHostNumber: quad, ip: quad };
  };

  const machines: Machine[] = [];
  const byOwner = new Map<string, Machine[]>();
  const owners = new Map<string, Owner>();

  const addMachines = (owner: Owner, count: number, v6Prefix: string | undefined): void => {
    const list: Machine[] = [];
    for (let n = 1; n <= count; n++) {
      const idx = machines.length;
      const host = `pc-${owner.uid}-${n}`;
      const { ipHostNumber, ip } = allocIp();
      const active = rnd() >= o.inactiveShare;
      const m: Machine = {
        dn: `host=${host},${MACHINES_BASE}`,
        host,
        ownerDn: owner.dn,
        ownerUid: owner.uid,
        ipHostNumber,
        ip,
        ipv6: v6Prefix ? [`${v6Prefix.replace(/::\/64$/, '')}::${n}`] : [],
        mac: `02:${hex2(Math.floor(rnd() * 256))}:${hex2(idx >>> 24)}:${hex2(idx >>> 16)}:${hex2(idx >>> 8)}:${hex2(idx)}`,
        zones: [o.campus, active ? 'User' : 'Inactive'],
        active,
      };
      if (rnd() < 0.1) m.hostAlias = `${owner.uid}-${n}`;
      if (rnd() < 0.5) m.lastDate = generalizedTime(new Date(now.getTime() - Math.floor(rnd() * 60) * DAY));
      if (rnd() < 0.05) m.description = n === 1 ? 'Laptop' : 'Console de jeux';
      machines.push(m);
      list.push(m);
    }
    byOwner.set(owner.uid, list);
  };

  const uids = new Set<string>();
  const people: Person[] = [];
  for (let i = 0; i < o.users; i++) {
    const firstName = pick(rnd, FIRST);
    const lastName = pick(rnd, LAST);
    const base = `${ascii(firstName).slice(0, 1)}${ascii(lastName).slice(0, 12)}`;
    let num = 1 + Math.floor(rnd() * 999);
    while (uids.has(`${base}${num}`)) num += 1 + Math.floor(rnd() * 50);
    const uid = `${base}${num}`;
    uids.add(uid);

    const paid = rnd() >= o.unpaidShare;
    const blacklisted = rnd() < o.blacklistShare;
    const end = paid
      ? new Date(now.getTime() + (30 + Math.floor(rnd() * 336)) * DAY)
      : new Date(now.getTime() - (1 + Math.floor(rnd() * 400)) * DAY);
    const inscr = new Date(now.getTime() - Math.floor(rnd() * 4 * 365) * DAY - Math.floor(rnd() * 86_400) * 1000);
    const cotiz: string[] = [];
    for (let y = inscr.getUTCFullYear(); y < year; y++) cotiz.push(String(y));
    if (paid) cotiz.push(String(year));
    else if (cotiz.length === 0) cotiz.push(`NONE${year}`);
    if (blacklisted) cotiz.push(`BLACKLIST${year}`);
    const full = rnd() < 0.8;
    const p: Person = {
      kind: 'person',
      dn: `uid=${uid},${PEOPLE_BASE}`,
      uid,
      firstName,
      lastName,
      mail: `${ascii(firstName)}.${ascii(lastName)}${num}@example.org`,
      campus: o.campus,
      objectClasses: full ? ['genericPerson', 'enstbPerson', 'maiselPerson', 'reselPerson'] : ['genericPerson', 'reselPerson'],
      dateInscr: generalizedTime(inscr),
      endInternet: generalizedTime(end),
      endInternetDate: end,
      cotiz,
      coupure: rnd() < o.cutShare,
      ban: rnd() < o.banShare ? [pick(rnd, BANS)] : [],
      paid,
      blacklisted,
    };
    if (rnd() < o.shapeShare) {
      p.shapePropre = 256 * (1 + Math.floor(rnd() * 16));
      p.shapeSale = 64 * (1 + Math.floor(rnd() * 16));
    }
    if (rnd() < o.ipv6Share) p.v6Prefix = `${o.area6Prefix}${(i >>> 16).toString(16)}:${(i & 0xffff).toString(16)}::/64`;
    people.push(p);
    owners.set(uid, p);

    let count: number;
    if (defaultMachineCount) {
      const r = rnd();
      count = r < 0.15 ? 1 : r < 0.45 ? 2 : r < 0.75 ? 3 : 4;
    } else {
      count = intBetween(rnd, o.machinesPerUser);
    }
    addMachines(p, count, p.v6Prefix);
  }

  const orgs: Org[] = [];
  for (let i = 0; i < o.orgs; i++) {
    const club = CLUBS[i % CLUBS.length] as string;
    const uid = i < CLUBS.length ? `club-${club}` : `club-${club}${Math.floor(i / CLUBS.length) + 1}`;
    const end = new Date(now.getTime() + (60 + Math.floor(rnd() * 300)) * DAY);
    const org: Org = {
      kind: 'org',
      dn: `uid=${uid},${ORGS_BASE}`,
      uid,
      displayName: `Club ${club}${i < CLUBS.length ? '' : ` ${Math.floor(i / CLUBS.length) + 1}`}`,
      mail: `${uid}@example.org`,
      campus: o.campus,
      dateInscr: generalizedTime(new Date(now.getTime() - Math.floor(rnd() * 3000) * DAY)),
      endInternet: generalizedTime(end),
      endInternetDate: end,
      cotiz: [String(year)],
      paid: true,
    };
    orgs.push(org);
    owners.set(uid, org);
    addMachines(org, intBetween(rnd, o.machinesPerOrg), undefined);
  }

  const personLdif = (p: Person): string => {
    let s = `dn: ${p.dn}\n`;
    for (const oc of p.objectClasses) s += `objectClass: ${oc}\n`;
    s += `uid: ${p.uid}\n`;
    s += ldifLine('firstName', p.firstName);
    s += ldifLine('lastName', p.lastName);
    s += ldifLine('displayName', `${p.firstName} ${p.lastName}`);
    s += `mail: ${p.mail}\n`;
    s += `campus: ${p.campus}\n`;
    s += `dateInscr: ${p.dateInscr}\n`;
    for (const c of p.cotiz) s += `cotiz: ${c}\n`;
    s += `endInternet: ${p.endInternet}\n`;
    if (p.coupure) s += 'coupure: TRUE\n';
    for (const b of p.ban) s += `ban: ${b}\n`;
    if (p.shapePropre !== undefined) s += `shapePropre: ${p.shapePropre}\n`;
    if (p.shapeSale !== undefined) s += `shapeSale: ${p.shapeSale}\n`;
    if (p.v6Prefix !== undefined) s += `v6Prefix: ${p.v6Prefix}\n`;
    return `${s}\n`;
  };
  const orgLdif = (g: Org): string =>
    `dn: ${g.dn}\nobjectClass: reselOrganisation\nobjectClass: reselPerson\nuid: ${g.uid}\n` +
    ldifLine('displayName', g.displayName) +
    `mail: ${g.mail}\ncampus: ${g.campus}\ndateInscr: ${g.dateInscr}\n` +
    g.cotiz.map((c) => `cotiz: ${c}\n`).join('') +
    `endInternet: ${g.endInternet}\n\n`;
  // uidproprio / iphostnumber in lower case on purpose: the real entries were written that way.
  const machineLdif = (m: Machine): string => {
    let s = `dn: ${m.dn}\nobjectClass: reselMachine\nhost: ${m.host}\nuidproprio: ${m.ownerDn}\niphostnumber: ${m.ipHostNumber}\n`;
    for (const a of m.ipv6) s += `ipv6HostNumber: ${a}\n`;
    s += `macAddress: ${m.mac}\n`;
    for (const z of m.zones) s += `zone: ${z}\n`;
    if (m.hostAlias !== undefined) s += `hostAlias: ${m.hostAlias}\n`;
    if (m.lastDate !== undefined) s += `lastDate: ${m.lastDate}\n`;
    if (m.description !== undefined) s += ldifLine('description', m.description);
    return `${s}\n`;
  };

  function* ldifChunks(entriesPerChunk = 2000): Generator<string> {
    let parts: string[] = [];
    const entries = function* (): Generator<string> {
      for (const p of people) yield personLdif(p);
      for (const g of orgs) yield orgLdif(g);
      for (const m of machines) yield machineLdif(m);
    };
    for (const e of entries()) {
      parts.push(e);
      if (parts.length >= entriesPerChunk) {
        yield parts.join('');
        parts = [];
      }
    }
    if (parts.length > 0) yield parts.join('');
  }

  return {
    options: o,
    now,
    people,
    orgs,
    machines,
    entryCount: people.length + orgs.length + machines.length,
    owner: (uid) => owners.get(uid),
    machinesOf: (uid) => byOwner.get(uid) ?? [],
    ipsOf: (uid) => (byOwner.get(uid) ?? []).map((m) => m.ip),
    ip6sOf: (uid) => (byOwner.get(uid) ?? []).flatMap((m) => m.ipv6),
    ldif: () => [...ldifChunks(10_000)].join(''),
    ldifChunks,
  };
}

// ------------------------------------------------------------------ loaders

export interface LoadResult {
  method: 'ldapadd' | 'slapadd';
  entries: number;
  ms: number;
}

/**
 * Put a campus into a sandbox slapd. Up to `slapaddThreshold` entries (default 3000) it uses
 * ldapadd on the live server; above, offline `slapadd -q` (slapd is stopped and started again on
 * the same port, which takes well under a second).
 */
export async function loadCampus(
  slapd: SlapdServer,
  campus: Campus,
  opts: { method?: 'auto' | 'ldapadd' | 'slapadd'; slapaddThreshold?: number } = {},
): Promise<LoadResult> {
  const t0 = performance.now();
  const method =
    opts.method === 'ldapadd' || opts.method === 'slapadd'
      ? opts.method
      : campus.entryCount > (opts.slapaddThreshold ?? 3000)
        ? 'slapadd'
        : 'ldapadd';
  if (method === 'slapadd') {
    await slapd.slapadd(campus.ldifChunks());
  } else {
    for (const chunk of campus.ldifChunks(5000)) await slapd.add(chunk);
  }
  return { method, entries: campus.entryCount, ms: Math.round(performance.now() - t0) };
}

export interface TrafficOptions {
  /** hour buckets 'YYYY-MM-DD HH:00:00' in the DB server's local time. Default: hourBucket(campus.now) */
  hours?: string[];
  /** share of machines that have traffic. Default 1 */
  share?: number;
  /** include inactive machines. Default false */
  includeInactive?: boolean;
  /** share of (ip, hour) pairs written as two rows (nacctd does not enforce one row). Default 0.1 */
  duplicateShare?: number;
  /** max bytes per row (≤ 2 147 483 647, the INT column). Default 2e9 */
  maxBytes?: number;
  seed?: number;
}

/** Deterministic netacct rows for a campus: log-uniform volumes (many small, a few heavy). */
export function trafficRows(campus: Campus, opts: TrafficOptions = {}): TrafficRow[] {
  const rnd = prng(opts.seed ?? campus.options.seed + 7919);
  const hours = opts.hours ?? [hourBucket(campus.now)];
  const share = opts.share ?? 1;
  const dup = opts.duplicateShare ?? 0.1;
  const max = Math.min(opts.maxBytes ?? 2e9, 2_147_483_647);
  const lnMax = Math.log(max);
  const volume = (): number => Math.floor(Math.exp(rnd() * lnMax));
  const rows: TrafficRow[] = [];
  for (const m of campus.machines) {
    if (!m.active && !opts.includeInactive) continue;
    if (rnd() >= share) continue;
    for (const time of hours) {
      const n = rnd() < dup ? 2 : 1;
      for (let k = 0; k < n; k++) {
        const input = volume();
        rows.push({ ip: m.ip, time, input, output: Math.floor(input * rnd() * 0.3) });
      }
    }
  }
  return rows;
}

/** trafficRows() into the sandbox MariaDB (netacct.traffic). */
export async function loadTraffic(db: MariadbServer, campus: Campus, opts: TrafficOptions = {}): Promise<{ rows: number; ms: number }> {
  const t0 = performance.now();
  const rows = trafficRows(campus, opts);
  await db.insertTraffic(rows);
  return { rows: rows.length, ms: Math.round(performance.now() - t0) };
}
