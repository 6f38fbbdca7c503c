// Last good snapshots: kept in memory, persisted under [path] state with atomic
// writes, so that a restart while LDAP or MySQL is down still knows every user and
// their volumes of the day. Owns the refusal rules: an empty directory, or one that
// shrank by more than [ldap] maxShrink since the last good one, is refused unless forced;
// then the entitlement guard (guard.ts, its baseline persisted in guard.json), which only
// `accept` passes. Re-validates what it reads back from disk.

import { mkdir, readFile, rename, writeFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { escapeControl as esc, type Logger } from '../log.js';
import { parseIp } from '../net/ip.js';
import { holdersOf, outsideNetworks, type BuildOptions } from '../ldap/directory.js';
import { EMPTY, sharedList } from '../ldap/intern.js';
import { EntitlementGuard, parseBuckets, WINDOW_MS, type GuardFirewall } from './guard.js';
import { SnapshotRefusedError, type Directory, type Machine, type Owner, type Skipped, type Usage } from '../sources/types.js';

const DIRECTORY_FILE = 'directory.json';
const VOLUMES_FILE = 'volumes.json';
const GUARD_FILE = 'guard.json';
const FORMAT = 1;

export async function atomicWrite(file: string, data: string, mode = 0o600): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, data, { mode });
  const fh = await open(tmp, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
}

const isStr = (x: unknown): x is string => typeof x === 'string';
const isStrList = (x: unknown): x is string[] => Array.isArray(x) && x.every(isStr);

/**
 * A directory read back from disk, checked as strictly as one built from LDAP: the file may
 * have been edited or damaged, and what it holds goes to the kernel. Every IP must come out of
 * the strict parser (src/net/ip.ts) unchanged (canonical, no CIDR, no newline) and, with the
 * firewall on, inside the user networks (the rule of draftHost); an owner's uid obeys the
 * rule of buildOwner. A bad IP is dropped, a bad owner or machine skipped; each is named.
 * null when the shape is not a directory at all.
 */
export function revalidateDirectory(
  raw: unknown,
  fw: BuildOptions['firewall'] | null,
): { directory: Directory; problems: string[] } | null {
  const d = raw as { owners?: unknown; machines?: unknown; skipped?: unknown; fetchedAt?: unknown } | null;
  if (!d || !Array.isArray(d.owners) || !Array.isArray(d.machines) || !isStr(d.fetchedAt) || !Number.isFinite(Date.parse(d.fetchedAt)))
    return null;
  const problems: string[] = [];
  const owners: Owner[] = [];
  for (const o of d.owners as Record<string, unknown>[]) {
    const ok =
      o &&
      isStr(o['dn']) &&
      isStr(o['uid']) &&
      o['uid'] !== '' &&
      // eslint-disable-next-line no-control-regex -- the uid rule of buildOwner
      !/[\s\x00-\x1f]/.test(o['uid']) &&
      (o['kind'] === 'person' || o['kind'] === 'organisation') &&
      (o['endInternet'] === null || Number.isFinite(o['endInternet'])) &&
      typeof o['coupure'] === 'boolean' &&
      isStrList(o['ban']) &&
      isStrList(o['cotiz']);
    if (!ok) {
      problems.push(`owner ${esc(JSON.stringify(o?.['dn'] ?? o).slice(0, 200))}: not a valid owner`);
      continue;
    }
    owners.push({
      uid: o['uid'] as string,
      dn: o['dn'] as string,
      kind: o['kind'] as Owner['kind'],
      endInternet: o['endInternet'] as number | null,
      coupure: o['coupure'] as boolean,
      ban: sharedList(o['ban'] as string[]),
      cotiz: sharedList(o['cotiz'] as string[]),
    });
  }
  const machines: Machine[] = [];
  for (const m of d.machines as Record<string, unknown>[]) {
    if (
      !m ||
      !isStr(m['dn']) ||
      !isStr(m['host']) ||
      !isStr(m['owner']) ||
      typeof m['active'] !== 'boolean' ||
      !isStrList(m['ips4']) ||
      !isStrList(m['ips6'])
    ) {
      problems.push(`machine ${esc(JSON.stringify(m?.['dn'] ?? m).slice(0, 200))}: not a valid machine`);
      continue;
    }
    // the parsed list itself when every IP stays (JSON.parse makes it of its size), else a copy of its size
    const keep = (list: string[], family: 4 | 6): readonly string[] => {
      const kept = list.filter((ip) => {
        const p = parseIp(ip);
        const why = !p.ok
          ? p.reason
          : p.family !== family
            ? `not IPv${family}`
            : p.ip !== ip
              ? `not in canonical form (${p.ip})`
              : fw
                ? outsideNetworks(ip, fw)
                : null;
        if (why) problems.push(`machine ${esc(m['dn'] as string)}: IP ${JSON.stringify(ip)}: ${why}`);
        return why === null;
      });
      return kept.length === 0 ? EMPTY : kept.length === list.length ? list : kept.slice();
    };
    machines.push({
      dn: m['dn'],
      host: m['host'],
      owner: m['owner'],
      active: m['active'],
      ips4: keep(m['ips4'], 4),
      ips6: keep(m['ips6'], 6),
    });
  }
  const skipped = Array.isArray(d.skipped) ? (d.skipped as Skipped[]).filter((x) => x && isStr(x.dn) && isStr(x.reason)) : [];
  return { directory: { owners, machines, skipped, fetchedAt: d.fetchedAt }, problems };
}

/** Refuses an empty directory or one that lost more than maxShrink of its machines (entries, not entitlement: guard.ts). */
export function checkDirectory(next: Directory, prev: Directory | null, maxShrink: number, force: boolean): void {
  if (force) return;
  if (next.owners.length === 0 || next.machines.length === 0) {
    throw new SnapshotRefusedError(
      'ldap',
      `directory came back with ${next.owners.length} owner(s) and ${next.machines.length} machine(s): refused as empty (wrong base DN or filter?); the last good snapshot stays in force`,
    );
  }
  if (prev && prev.machines.length > 0) {
    const lost = (prev.machines.length - next.machines.length) / prev.machines.length;
    if (lost > maxShrink) {
      throw new SnapshotRefusedError(
        'ldap',
        `directory shrank from ${prev.machines.length} to ${next.machines.length} machines (-${(lost * 100).toFixed(1)}%, more than maxShrink ${(maxShrink * 100).toFixed(0)}%): refused; force it if this is intended`,
      );
    }
  }
}

export class SnapshotStore {
  private directory: Directory | null = null;
  private usage: Usage | null = null;
  private savedDirectoryAt: string | null = null;
  private savedUsageAtMs = 0;

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
    private readonly usageSaveEveryMs = 60_000,
  ) {}

  get lastDirectory(): Directory | null {
    return this.directory;
  }
  get lastUsage(): Usage | null {
    return this.usage;
  }

  /**
   * Loads what a previous process persisted (missing or unreadable files: nothing). The
   * directory is re-validated (revalidateDirectory, with `fw` the user networks): what fails is
   * dropped and named in one warning.
   */
  async load(fw: BuildOptions['firewall'] | null = null): Promise<void> {
    const file = join(this.dir, DIRECTORY_FILE);
    try {
      const j = JSON.parse(await readFile(file, 'utf8')) as { format: number; directory: unknown };
      const v = j.format === FORMAT ? revalidateDirectory(j.directory, fw) : null;
      if (!v) {
        this.log.warn(`state: ${file} is not a directory snapshot of format ${FORMAT}: ignored`);
      } else {
        if (v.problems.length > 0) {
          this.log.warn(
            `state: ${file}: ${v.problems.length} value(s) failed validation and were dropped, e.g. ${v.problems.slice(0, 5).join('; ')}`,
          );
        }
        this.directory = v.directory;
        // Not the file's content if something was dropped: the next persist rewrites it.
        if (v.problems.length === 0) {
          this.savedDirectoryAt = v.directory.fetchedAt;
          this.lastSavedDirectory = v.directory;
        }
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        this.log.warn(`state: cannot read ${join(this.dir, DIRECTORY_FILE)}: ${(e as Error).message}`);
    }
    try {
      const j = JSON.parse(await readFile(join(this.dir, GUARD_FILE), 'utf8')) as { format: number; buckets: unknown };
      const buckets = j.format === FORMAT ? parseBuckets(j.buckets) : null;
      if (buckets) {
        this.guard = new EntitlementGuard(buckets);
        this.savedGuardVersion = this.guard.version;
      } else {
        this.log.warn(`state: ${join(this.dir, GUARD_FILE)} is not a guard baseline of format ${FORMAT}: ignored`);
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        this.log.warn(`state: cannot read ${join(this.dir, GUARD_FILE)}: ${(e as Error).message}`);
    }
    try {
      const j = JSON.parse(await readFile(join(this.dir, VOLUMES_FILE), 'utf8')) as {
        format: number;
        resetAt: string;
        fetchedAt: string;
        volumes: [string, number, number][];
        timeline?: unknown;
      };
      this.savedTimeline = j.format === FORMAT ? (j.timeline ?? null) : null;
      if (j.format === FORMAT && Array.isArray(j.volumes)) {
        this.usage = { resetAt: j.resetAt, fetchedAt: j.fetchedAt, byIp: new Map(j.volumes.map(([ip, down, up]) => [ip, { down, up }])) };
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        this.log.warn(`state: cannot read ${join(this.dir, VOLUMES_FILE)}: ${(e as Error).message}`);
    }
  }

  /**
   * Checks and keeps a fresh directory; throws SnapshotRefusedError (nothing changes then).
   * `force` passes the entry-count rule (checkDirectory), `accept` both rules and restarts the
   * guard's baseline from `next`; a directory without a single IP passes neither.
   */
  acceptDirectory(next: Directory, maxShrink: number, opts: { force?: boolean; accept?: boolean; fw: GuardFirewall; nowMs: number }): void {
    const accept = opts.accept === true;
    checkDirectory(next, this.directory, maxShrink, opts.force === true || accept);
    const refusal = this.guard.check(next, opts.fw, opts.nowMs, maxShrink, accept);
    if (refusal) throw new SnapshotRefusedError('ldap', refusal.reason);
    this.directory = next;
    this.guard.record(next, opts.fw, opts.nowMs, accept);
  }

  /** With no baseline on disk (first start with this version): the directory loaded counts as of its fetch. */
  seedGuard(fw: GuardFirewall, nowMs: number): void {
    const d = this.directory;
    if (this.guard.state.length > 0 || !d) return;
    const at = Date.parse(d.fetchedAt);
    if (at <= nowMs && at > nowMs - WINDOW_MS) this.guard.record(d, fw, at);
  }

  guard = new EntitlementGuard();
  private savedGuardVersion = 0;

  private holdersCache: { of: Directory; map: Map<string, string> } | null = null;
  /** Who holds each IP in the directory in force (IP -> machine DN): they keep it in the next full build. */
  holders(): ReadonlyMap<string, string> | undefined {
    const d = this.directory;
    if (!d) return undefined;
    if (this.holdersCache?.of !== d) this.holdersCache = { of: d, map: holdersOf(d) };
    return this.holdersCache.map;
  }

  /** the users' day (src/metrics/timeline.ts) saved in volumes.json beside the volumes; set by the observer */
  timeline: { toJSON(): unknown } | null = null;
  /** the timeline a previous process saved (raw JSON: the observer checks it), null when none */
  savedTimeline: unknown = null;

  acceptUsage(next: Usage): void {
    this.usage = next;
  }

  /**
   * Persists what changed since the last save, at most every saveEveryMs (serialising a
   * 100 000-user directory costs seconds: not on every cycle) unless forced (stop, start).
   */
  async persist(opts: { forceUsage?: boolean } = {}): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o750 });
    const d = this.directory;
    const now = Date.now();
    // The common case: the very directory object already on disk (a cycle without changes).
    const due = opts.forceUsage === true || now - this.savedDirectoryAtMs >= this.usageSaveEveryMs;
    if (d && d !== this.lastSavedDirectory && d.fetchedAt !== this.savedDirectoryAt && due) {
      await atomicWrite(join(this.dir, DIRECTORY_FILE), JSON.stringify({ format: FORMAT, directory: d }));
      this.lastSavedDirectory = d;
      this.savedDirectoryAt = d.fetchedAt;
      this.savedDirectoryAtMs = now;
    }
    if (this.guard.version !== this.savedGuardVersion) {
      const version = this.guard.version;
      await atomicWrite(join(this.dir, GUARD_FILE), JSON.stringify({ format: FORMAT, buckets: this.guard.state }));
      this.savedGuardVersion = version;
    }
    const u = this.usage;
    const t = this.timeline;
    if (u && (opts.forceUsage || now - this.savedUsageAtMs >= this.usageSaveEveryMs)) {
      // volumes: the counted bytes (what the groups use); timeline: the users' day (added field)
      const volumes = [...u.byIp].map(([ip, v]) => [ip, v.down, v.up]);
      await atomicWrite(
        join(this.dir, VOLUMES_FILE),
        JSON.stringify({ format: FORMAT, resetAt: u.resetAt, fetchedAt: u.fetchedAt, volumes, ...(t ? { timeline: t.toJSON() } : {}) }),
      );
      this.savedUsageAtMs = now;
    }
  }

  private lastSavedDirectory: Directory | null = null;
  private savedDirectoryAtMs = 0;
}
