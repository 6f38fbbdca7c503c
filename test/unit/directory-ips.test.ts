// A machine's IP values: parsed in linear time (a crafted entry with tens of thousands of values
// must not block the event loop), and capped by [ldap] maxIpsPerMachine (beyond it the machine
// keeps no IP: fail safe, it cannot claim other machines' addresses).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildDirectory, DEFAULT_MAX_IPS_PER_MACHINE, type BuildOptions, type RawEntry } from '../../src/ldap/directory.js';
import { parseConfig } from '../../src/config/config.js';
import { minimalConf } from './fixtures.js';

const PEOPLE = 'ou=people,dc=example';
const HOSTS = 'ou=machines,dc=example';

function entry(dn: string, attrs: Record<string, string[]>): RawEntry {
  const m = new Map(Object.entries(attrs).map(([k, v]) => [k.toLowerCase(), v]));
  return { dn, attrs: { get: (k) => m.get(k) } };
}
const person = (uid: string): RawEntry => entry(`uid=${uid},${PEOPLE}`, { uid: [uid], endInternet: ['20300101000000Z'] });
const machine = (name: string, uid: string, v4: string[], v6: string[] = []): RawEntry =>
  entry(`host=${name},${HOSTS}`, {
    host: [name],
    uidProprio: [`uid=${uid},${PEOPLE}`],
    ipHostNumber: v4,
    ipv6HostNumber: v6,
    zone: ['User'],
  });

function options(max?: number): BuildOptions {
  const config = parseConfig(
    minimalConf({ ldap: max === undefined ? '' : `maxIpsPerMachine = ${max}`, firewall: 'area6Prefix = 2001:db8:d' }),
    'x.conf',
  );
  return { ldap: config.ldap, firewall: config.firewall, fetchedAt: '2026-01-01T00:00:00.000Z' };
}

/** n distinct campus suffixes "X.Y" */
const suffixes = (n: number, from = 0): string[] => Array.from({ length: n }, (_, i) => `${((i + from) >> 8) & 255}.${(i + from) & 255}`);

test('40 000 IP values on one entry (and the same 40 000 claimed by another owner) are built in well under a second', () => {
  const values = suffixes(40_000);
  // each value twice on the entry: the duplicate check runs 80 000 times
  const raw = {
    people: [person('aaa'), person('zzz')],
    orgas: [],
    hosts: [machine('big', 'aaa', [...values, ...values]), machine('thief', 'zzz', values.slice().reverse())],
  };
  const t0 = performance.now();
  const d = buildDirectory(raw, options(100_000));
  const ms = performance.now() - t0;
  console.log(`# buildDirectory with 80 000 values on one entry and 40 000 contested by another owner: ${ms.toFixed(0)} ms`);
  const big = d.machines.find((m) => m.host === 'big')!;
  const thief = d.machines.find((m) => m.host === 'thief')!;
  assert.equal(big.ips4.length, 40_000, 'every distinct value, once');
  assert.equal(new Set(big.ips4).size, 40_000);
  assert.equal(big.ips4[0], '172.22.0.0');
  assert.equal(big.ips4[39_999], `172.22.${39_999 >> 8}.${39_999 & 255}`);
  assert.equal(thief.ips4.length, 0, 'the owner whose uid sorts first holds them');
  assert.equal(d.skipped.filter((s) => s.dn.startsWith('host=thief')).length, 40_000, 'each lost IP named');
  assert.ok(ms < 2000, `${ms} ms`);
});

test(`the default cap is ${DEFAULT_MAX_IPS_PER_MACHINE}: at the cap a machine keeps every IP, one above it keeps none and is named`, () => {
  assert.equal(options().ldap.maxIpsPerMachine, DEFAULT_MAX_IPS_PER_MACHINE);
  const at = suffixes(DEFAULT_MAX_IPS_PER_MACHINE - 2);
  const over = suffixes(DEFAULT_MAX_IPS_PER_MACHINE, 1000);
  const d = buildDirectory(
    {
      people: [person('alice'), person('mallory')],
      orgas: [],
      hosts: [machine('ok', 'alice', at, ['200::1', '200::2']), machine('huge', 'mallory', over, ['300::1'])],
    },
    options(),
  );
  const ok = d.machines.find((m) => m.host === 'ok')!;
  assert.equal(ok.ips4.length + ok.ips6.length, DEFAULT_MAX_IPS_PER_MACHINE);
  const huge = d.machines.find((m) => m.host === 'huge')!;
  assert.deepEqual([huge.ips4, huge.ips6], [[], []], 'none of its IPs is used');
  const why = d.skipped.filter((s) => s.dn === `host=huge,${HOSTS}`);
  assert.equal(why.length, 1, JSON.stringify(why));
  assert.match(
    why[0]!.reason,
    new RegExp(
      `^${DEFAULT_MAX_IPS_PER_MACHINE + 1} IP values \\(ipHostNumber: ${DEFAULT_MAX_IPS_PER_MACHINE}, ipv6HostNumber: 1\\), more than \\[ldap\\] maxIpsPerMachine = ${DEFAULT_MAX_IPS_PER_MACHINE}`,
    ),
  );
  assert.equal(d.skipped.filter((s) => s.dn.startsWith('host=ok')).length, 0);
});

test('a capped entry costs nothing: 40 000 values with the default cap', () => {
  const t0 = performance.now();
  const d = buildDirectory({ people: [person('m')], orgas: [], hosts: [machine('x', 'm', suffixes(40_000))] }, options());
  const ms = performance.now() - t0;
  console.log(`# 40 000 values over the default cap: ${ms.toFixed(1)} ms`);
  assert.equal(d.machines[0]!.ips4.length, 0);
  assert.ok(ms < 200, `${ms} ms`);
});

test('maxIpsPerMachine is checked: 0 and non-numbers are refused', () => {
  for (const bad of ['0', 'many', '-1']) {
    assert.throws(() => parseConfig(minimalConf({ ldap: `maxIpsPerMachine = ${bad}` }), 'x.conf'), /maxIpsPerMachine/);
  }
});
