// This gateway's role in an HA pair (docs/INSTALL.md, "HA pair"): master, backup or fault, as
// keepalived decides it (its notify script runs `reselqos role …`). The role decides who
// writes to the shared database: only the master writes the [publish] tables and the
// [sharing] row; a backup or a gateway in fault reads only. It never changes the kernel: both
// gateways keep the full desired state from the same LDAP and MySQL whatever their role.
// The role in force is kept in [path] run/ha-role (a tmpfs: it survives a restart of the
// daemon, not a reboot, after which keepalived tells the role again); `[ha] role` is the role
// when that file is absent. Owns the role and its file; no policy, no I/O beyond that file.

import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const ROLES = ['master', 'backup', 'fault'] as const;
export type Role = (typeof ROLES)[number];

export function parseRole(s: string): Role | null {
  const v = s.trim().toLowerCase();
  return (ROLES as readonly string[]).includes(v) ? (v as Role) : null;
}

export const roleFile = (runDir: string): string => join(runDir, 'ha-role');

/** The role kept in [path] run/ha-role, or null (absent, unreadable, not a role). */
export async function readRoleFile(runDir: string): Promise<Role | null> {
  try {
    return parseRole(await readFile(roleFile(runDir), 'utf8'));
  } catch {
    return null;
  }
}

/** Writes [path] run/ha-role (a temporary file renamed over it: never half-written). */
export async function writeRoleFile(runDir: string, role: Role): Promise<void> {
  const file = roleFile(runDir);
  const tmp = `${file}.tmp`;
  await writeFile(tmp, role + '\n', { mode: 0o600 });
  await rename(tmp, file);
}

export interface RoleChange {
  readonly from: Role;
  readonly to: Role;
  readonly changed: boolean;
}

/** The role in force and since when; listeners are told each change (the publisher, the sharing site). */
export class HaRole {
  private role: Role;
  private at: string;
  private readonly listeners: ((c: RoleChange) => void)[] = [];

  constructor(initial: Role, nowIso: string) {
    this.role = initial;
    this.at = nowIso;
  }

  get current(): Role {
    return this.role;
  }

  /** When the role in force began (ISO), or the start of the process. */
  get since(): string {
    return this.at;
  }

  /** Only the master writes to the shared database ([publish] tables, [sharing] row). */
  get writes(): boolean {
    return this.role === 'master';
  }

  onChange(fn: (c: RoleChange) => void): void {
    this.listeners.push(fn);
  }

  set(role: Role, nowIso: string): RoleChange {
    const from = this.role;
    if (from === role) return { from, to: role, changed: false };
    this.role = role;
    this.at = nowIso;
    const c = { from, to: role, changed: true };
    for (const fn of this.listeners) fn(c);
    return c;
  }
}
