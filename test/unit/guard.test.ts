// Issue 11, pure parts: the entitlement guard, a uid shared by several owners, IP holders,
// the user networks, snapshot re-validation, control characters in log lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/config.js';
import { createLogger, escapeControl, MemoryLogger } from '../../src/log.js';
import { planFirewall } from '../../src/plan/firewall.js';
import { buildDirectory, type RawEntry } from '../../src/ldap/directory.js';
import { allowanceOf, EntitlementGuard, GUARD_FLOOR } from '../../src/state/guard.js';
import { SnapshotStore } from '../../src/state/snapshot.js';
import type { Directory, Machine, Owner } from '../../src/sources/types.js';
import { minimalConf } from './fixtures.js';

const config = parseConfig(minimalConf({ firewall: 'area6Prefix = 2001:db8::\nuser6Networks = 2001:db8::/32' }), 'q');
const fw = config.firewall;
const HOUR = 3600_000;
const T0 = Date.UTC(2026, 10, 30, 12);

const entry = (dn: string, attrs: Record<string, string[]>): RawEntry => ({
  dn,
  attrs: new Map(Object.entries(attrs).map(([k, v]) => [k.toLowerCase(), v])),
});
const PEOPLE = 'ou=people,dc=x';
const ORGS = 'ou=organisations,dc=x';
const HOSTS = 'ou=machines,dc=x';

function owner(uid: string, extra: Partial<Owner> = {}): Owner {
  return {
    uid,
    dn: `uid=${uid},${PEOPLE}`,
    kind: 'person',
    endInternet: T0 + 365 * 24 * HOUR,
    coupure: false,
    ban: [],
    cotiz: [],
    ...extra,
  };
}
function machine(i: number, uid: string, extra: Partial<Machine> = {}): Machine {
  return {
    dn: `host=m${i},${HOSTS}`,
    host: `m${i}`,
    owner: uid,
    active: true,
    ips4: [`172.22.${1 + (i >> 8)}.${i & 255}`],
    ips6: [],
    ...extra,
  };
}
/** n owners, one machine each; `tweak` may change owner i and machine i. */
function campus(n: number, tweak: (i: number, o: Owner, m: Machine) => [Owner, Machine] = (_i, o, m) => [o, m]): Directory {
  const owners: Owner[] = [];
  const machines: Machine[] = [];
  for (let i = 1; i <= n; i++) {
    const uid = `u${String(i).padStart(4, '0')}`;
    const [o, m] = tweak(i, owner(uid), machine(i, uid));
    owners.push(o);
    machines.push(m);
  }
  machines.sort((a, b) => (a.dn < b.dn ? -1 : 1));
  return { owners, machines, skipped: [], fetchedAt: new Date(T0).toISOString() };
}

test('escapeControl: control characters, DEL, C1 and line separators shown escaped; twice changes nothing', () => {
  const raw = 'a\nb\rc\td\x1b[31me\x7ff\x85g\u2028h\\n';
  const once = escapeControl(raw);
  assert.equal(once, 'a\\nb\\rc\\td\\x1b[31me\\x7ff\\x85g\\u2028h\\n');
  assert.equal(escapeControl(once), once);
  // eslint-disable-next-line no-control-regex -- looking for control characters
  assert.doesNotMatch(once, /[\x00-\x1f\x7f-\x9f\u2028]/);
});

test('a value carrying a newline cannot forge a log line: one entry, one line', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rq-log-'));
  try {
    const log = createLogger({ level: 'info', dir });
    log.warn('ldap: skipped uid=x: uid "evil\n2026-11-30T00:00:00.000+00:00 info cycle ok users=0" contains whitespace');
    await log.close();
    const lines = readFileSync(join(dir, 'reselqos.log'), 'utf8').trimEnd().split('\n');
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0]!, /uid "evil\\n2026-11-30T00:00:00\.000\+00:00 info cycle ok/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('skip reasons built from LDAP values carry them escaped', () => {
  const d = buildDirectory(
    {
      people: [entry(`uid=ok,${PEOPLE}`, { uid: ['ok'], endInternet: ['2030\n0101000000Z'] })],
      orgas: [],
      hosts: [entry(`host=h,${HOSTS}`, { host: ['h'], uidProprio: [`uid=nobody\n2026 error forged,${PEOPLE}`], ipHostNumber: ['200.3'] })],
    },
    { ldap: config.ldap, firewall: fw, fetchedAt: new Date(T0).toISOString() },
  );
  // eslint-disable-next-line no-control-regex -- looking for control characters
  for (const s of d.skipped) assert.doesNotMatch(s.reason, /[\n\r\x1b]/, s.reason);
  assert.ok(
    d.skipped.some((s) => s.reason.includes('uid=nobody\\n2026 error forged')),
    JSON.stringify(d.skipped),
  );
  assert.ok(
    d.skipped.some((s) => s.reason.includes('"2030\\n0101000000Z"')),
    JSON.stringify(d.skipped),
  );
});

test('a uid shared by a banned club and a paid person: every machine of that uid is refused, whatever the DN order', () => {
  const person = (extra: Record<string, string[]>): RawEntry =>
    entry(`uid=foo,${PEOPLE}`, { uid: ['foo'], endInternet: ['20300101000000Z'], ...extra });
  const club = (extra: Record<string, string[]>): RawEntry =>
    entry(`uid=foo,${ORGS}`, { uid: ['foo'], endInternet: ['20300101000000Z'], ...extra });
  const hosts = [
    entry(`host=pc-person,${HOSTS}`, { host: ['pc-person'], uidProprio: [`uid=foo,${PEOPLE}`], ipHostNumber: ['200.1'] }),
    entry(`host=srv-club,${HOSTS}`, { host: ['srv-club'], uidProprio: [`uid=foo,${ORGS}`], ipHostNumber: ['200.2'] }),
  ];
  const o = { ldap: config.ldap, firewall: fw, fetchedAt: new Date(T0).toISOString() };
  for (const [p, c] of [
    [person({}), club({ ban: ['internet'] })],
    [person({ coupure: ['TRUE'] }), club({})],
  ] as const) {
    const d = buildDirectory({ people: [p], orgas: [c], hosts }, o);
    const plan = planFirewall(d, fw, T0);
    assert.deepEqual([...plan.allow4], [], 'the most restrictive entitlement applies to both machines');
    assert.deepEqual([...plan.banned4].sort(), ['172.22.200.1', '172.22.200.2']);
    const warn = d.skipped.find((s) => /shared by/.test(s.reason))!;
    assert.ok(warn.reason.includes(`uid=foo,${ORGS}`) && warn.reason.includes(`uid=foo,${PEOPLE}`), warn.reason);
  }
  // Both paid: both machines out.
  const d = buildDirectory({ people: [person({})], orgas: [club({})], hosts }, o);
  assert.deepEqual([...planFirewall(d, fw, T0).allow4].sort(), ['172.22.200.1', '172.22.200.2']);
});

test('IP collisions: the holder keeps its IP; a first build decides by uid, then DN; the newcomer is named', () => {
  const people = ['aaa', 'zzz'].map((u) => entry(`uid=${u},${PEOPLE}`, { uid: [u], endInternet: ['20300101000000Z'] }));
  const hosts = [
    entry(`host=old,${HOSTS}`, { host: ['old'], uidProprio: [`uid=zzz,${PEOPLE}`], ipHostNumber: ['200.9'] }),
    entry(`host=new,${HOSTS}`, { host: ['new'], uidProprio: [`uid=aaa,${PEOPLE}`], ipHostNumber: ['200.9'] }),
  ];
  const o = { ldap: config.ldap, firewall: fw, fetchedAt: new Date(T0).toISOString() };
  const first = buildDirectory({ people, orgas: [], hosts }, o);
  assert.deepEqual(first.machines.find((m) => m.host === 'new')!.ips4, ['172.22.200.9'], 'first build: uid aaa sorts first');
  const held = buildDirectory({ people, orgas: [], hosts }, { ...o, holders: new Map([['172.22.200.9', `host=old,${HOSTS}`]]) });
  assert.deepEqual(held.machines.find((m) => m.host === 'old')!.ips4, ['172.22.200.9'], 'the holder keeps it');
  assert.deepEqual(held.machines.find((m) => m.host === 'new')!.ips4, []);
  assert.ok(
    held.skipped.some((s) => s.dn === `host=new,${HOSTS}` && s.reason.startsWith(`IP 172.22.200.9 also claimed by host=old,${HOSTS}`)),
    JSON.stringify(held.skipped),
  );
});

test('IPs outside the user networks are skipped and named (firewall on), kept with the firewall off', () => {
  const people = [entry(`uid=a,${PEOPLE}`, { uid: ['a'], endInternet: ['20300101000000Z'] })];
  const hosts = [
    entry(`host=h,${HOSTS}`, {
      host: ['h'],
      uidProprio: [`uid=a,${PEOPLE}`],
      ipHostNumber: ['200.1', '8.8.8.8'],
      ipv6HostNumber: ['fe80::1', '2001:db8::5', '2a00::1'],
    }),
  ];
  const d = buildDirectory({ people, orgas: [], hosts }, { ldap: config.ldap, firewall: fw, fetchedAt: '' });
  assert.deepEqual(d.machines[0]!.ips4, ['172.22.200.1']);
  assert.deepEqual(d.machines[0]!.ips6, ['2001:db8::5']);
  const reasons = d.skipped.map((s) => s.reason);
  assert.ok(reasons.includes('ipHostNumber "8.8.8.8": 8.8.8.8 is outside [firewall] userNetworks (172.22.0.0/16)'), reasons.join('\n'));
  assert.ok(reasons.includes('ipv6HostNumber "fe80::1": fe80::1 is outside [firewall] user6Networks (2001:db8::/32)'), reasons.join('\n'));
  assert.ok(
    reasons.some((r) => r.startsWith('ipv6HostNumber "2a00::1": 2a00::1 is outside')),
    reasons.join('\n'),
  );
  const off = buildDirectory({ people, orgas: [], hosts }, { ldap: config.ldap, firewall: { ...fw, enabled: false }, fetchedAt: '' });
  assert.deepEqual(off.machines[0]!.ips4, ['8.8.8.8', '172.22.200.1']);
});

test('a tampered snapshot is re-validated on load: bad IPs never come back', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rq-snap-'));
  try {
    const d = campus(3, (i, o, m) => [
      o,
      i === 1
        ? { ...m, ips4: ['8.8.8.8/0', '172.22.1.1'] }
        : i === 2
          ? { ...m, ips4: ['1.2.3.4\n-A FORWARD -j ACCEPT'] }
          : { ...m, ips4: ['172.22.1.3', '8.8.4.4'], ips6: ['2001:db8::0:1'] },
    ]);
    writeFileSync(
      join(dir, 'directory.json'),
      JSON.stringify({
        format: 1,
        directory: {
          ...d,
          owners: [...d.owners, { uid: 'x\ny', dn: 'uid=bad', kind: 'person', endInternet: null, coupure: false, ban: [], cotiz: [] }],
        },
      }),
    );
    const log = new MemoryLogger();
    const store = new SnapshotStore(dir, log);
    await store.load(fw);
    const got = store.lastDirectory!;
    assert.deepEqual(
      got.machines.map((m) => [...m.ips4, ...m.ips6]),
      [['172.22.1.1'], [], ['172.22.1.3']],
    );
    assert.deepEqual(
      got.owners.map((o) => o.uid),
      ['u0001', 'u0002', 'u0003'],
      'an owner whose uid has a newline is dropped',
    );
    const warn = log.of('warn').join('\n');
    assert.match(warn, /5 value\(s\) failed validation/);
    assert.match(warn, /"8\.8\.8\.8\/0": CIDR/);
    assert.doesNotMatch(warn, /\n-A/);
    const allIps = got.machines.flatMap((m) => [...m.ips4, ...m.ips6]);
    assert.ok(allIps.every((ip) => !/[\s/]/.test(ip)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('allowance: allowed per family, entitled owners, machines with an IP', () => {
  const d = campus(4, (i, o, m) => [
    i === 1 ? { ...o, endInternet: null } : o,
    i === 2 ? { ...m, active: false } : i === 3 ? { ...m, ips6: ['2001:db8::3'] } : i === 4 ? { ...m, ips4: [] } : m,
  ]);
  assert.deepEqual(allowanceOf(d, fw, T0), { allowed4: 1, allowed6: 1, entitled: 3, withIp: 3 });
  assert.deepEqual(allowanceOf(d, { ...fw, enabled: false }, T0), { allowed4: 2, allowed6: 1, entitled: 4, withIp: 3 });
});

test('guard: a directory with no IP at all is refused even when accepted; an empty allow set is refused unless accepted', () => {
  const g = new EntitlementGuard();
  const noIp = campus(50, (_i, o, m) => [o, { ...m, ips4: [] }]);
  const r = g.check(noIp, fw, T0, 0.2, true);
  assert.ok(r?.absolute && /not one IP address/.test(r.reason), r?.reason);
  const inactive = campus(50, (_i, o, m) => [o, { ...m, active: false }]);
  assert.match(g.check(inactive, fw, T0, 0.2, false)!.reason, /allow no machine/);
  assert.equal(g.check(inactive, fw, T0, 0.2, true), null, 'update --accept takes it');
  const unpaid = campus(50, (_i, o, m) => [{ ...o, endInternet: null }, m]);
  assert.match(g.check(unpaid, fw, T0, 0.2, false)!.reason, /allow no machine/, 'no owner with endInternet, even with no baseline');
});

test('guard: seven successive drops of 19 % do not drain it; the baseline is the peak of 24 h and survives a restart', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rq-guard-'));
  try {
    const store = new SnapshotStore(dir, new MemoryLogger(), 0);
    let n = 1000;
    store.acceptDirectory(campus(n), 0.2, { fw, nowMs: T0 });
    let accepted = n;
    let t = T0;
    for (let step = 1; step <= 7; step++) {
      n = Math.floor(n * 0.81);
      t += 5 * 60_000;
      // The machines of the others are Inactive: every entry is still there (the count rule sees nothing).
      const d = campus(1000, (i, o, m) => [o, i <= n ? m : { ...m, active: false }]);
      try {
        store.acceptDirectory(d, 0.2, { fw, nowMs: t });
        accepted = n;
      } catch (e) {
        assert.match(
          (e as Error).message,
          /machines allowed \(IPv4\) from 1000 to \d+ .*more than maxShrink 20% of the largest accepted in the last 24 h/,
        );
      }
    }
    assert.equal(accepted, 810, 'only the first 19 % drop passes');
    await store.persist({ forceUsage: true });
    // A restart keeps the baseline.
    const again = new SnapshotStore(dir, new MemoryLogger());
    await again.load(fw);
    assert.throws(
      () =>
        again.acceptDirectory(
          campus(1000, (i, o, m) => [o, i <= 700 ? m : { ...m, active: false }]),
          0.2,
          { fw, nowMs: t + HOUR },
        ),
      /from 1000 to 700/,
    );
    // A day later the peak has aged out: the 810 in force is the baseline.
    again.acceptDirectory(
      campus(1000, (i, o, m) => [o, i <= 700 ? m : { ...m, active: false }]),
      0.2,
      { fw, nowMs: t + 25 * HOUR },
    );
    // --accept: taken, and the baseline starts again from it.
    const g = new EntitlementGuard();
    g.record(campus(1000), fw, T0);
    const half = campus(1000, (i, o, m) => [o, i <= 500 ? m : { ...m, active: false }]);
    assert.ok(g.check(half, fw, T0 + 60_000, 0.2, false));
    assert.equal(g.check(half, fw, T0 + 60_000, 0.2, true), null);
    g.record(half, fw, T0 + 60_000, true);
    assert.equal(g.check(half, fw, T0 + 120_000, 0.2, false), null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('guard: a mass expiry on one date applies (time passing); the same drop from changed attributes is refused', () => {
  const end = T0 + 2 * HOUR;
  const g = new EntitlementGuard();
  const expiring = campus(100, (_i, o, m) => [{ ...o, endInternet: end }, m]);
  g.record(expiring, fw, T0);
  // The next day, the same attributes: nobody is paid any more. Applied.
  assert.equal(g.check(expiring, fw, end + 1, 0.2, false), null);
  assert.equal(planFirewall(expiring, fw, end + 1).allow4.size, 0);
  // Half the owners lost endInternet (a mistyped attribute, a schema migration): refused.
  const lost = campus(100, (i, o, m) => [{ ...o, endInternet: i <= 50 ? end : null }, m]);
  assert.match(g.check(lost, fw, T0 + HOUR, 0.2, false)!.reason, /entitled owners from 100 to 50/);
  // Every machine Inactive / no IP attribute: refused.
  assert.ok(
    g.check(
      campus(100, (_i, o, m) => [o, { ...m, active: false }]),
      fw,
      T0 + HOUR,
      0.2,
      false,
    ),
  );
  assert.ok(
    g.check(
      campus(100, (_i, o, m) => [o, { ...m, ips4: [] }]),
      fw,
      T0 + HOUR,
      0.2,
      false,
    )!.absolute,
  );
  // A small drop, or one of at most GUARD_FLOOR machines, passes.
  assert.equal(
    g.check(
      campus(100, (i, o, m) => [o, i <= 85 ? m : { ...m, active: false }]),
      fw,
      T0 + HOUR,
      0.2,
      false,
    ),
    null,
  );
  const small = new EntitlementGuard();
  small.record(campus(GUARD_FLOOR), fw, T0);
  assert.equal(
    small.check(
      campus(GUARD_FLOOR, (i, o, m) => [o, i === 1 ? m : { ...m, active: false }]),
      fw,
      T0 + HOUR,
      0.2,
      false,
    ),
    null,
  );
});
