// The IPv6 portal in kernel terms (pure): the ip6tables nat chain, the v6 banned set, the IPv6
// filter chains letting the portal pages through, and the kernel probe naming what is missing.
// The same on a real kernel with real TCP: test/firewall/firewall.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DateTime } from 'luxon';
import { parseConfig } from '../../src/config/config.js';
import { planDesired } from '../../src/plan/desired.js';
import { buildKernelDesired } from '../../src/kernel/model.js';
import { missingFeatures, type KernelFeatures } from '../../src/kernel/features.js';
import type { Directory } from '../../src/sources/types.js';
import { minimalConf } from './fixtures.js';

const at = DateTime.fromISO('2026-11-22T12:00', { zone: 'UTC' });
const FW = 'userNetworks = 172.22.0.0/16\nuser6Networks = 2001:db8:d000::/36\nip_int = 172.22.199.30';
const dir: Directory = {
  owners: [
    { uid: 'paid', dn: 'uid=paid', kind: 'person', endInternet: Date.UTC(2030, 0, 1), coupure: false, ban: [], cotiz: [] },
    { uid: 'cut', dn: 'uid=cut', kind: 'person', endInternet: Date.UTC(2030, 0, 1), coupure: true, ban: [], cotiz: [] },
  ],
  machines: [
    { dn: 'host=a', host: 'a', owner: 'paid', active: true, ips4: ['172.22.200.3'], ips6: ['2001:db8:d200::3'] },
    { dn: 'host=b', host: 'b', owner: 'cut', active: true, ips4: ['172.22.201.1'], ips6: ['2001:db8:d201::1'] },
  ],
  skipped: [],
  fetchedAt: at.toISO()!,
};

function kernel(firewall: string): ReturnType<typeof buildKernelDesired> {
  const c = parseConfig(minimalConf({ firewall: `${FW}\n${firewall}` }), 'q');
  return buildKernelDesired(c, planDesired(c, dir, null, at, at));
}
/** A rule as text, without the identity hash stamped into its comment (src/kernel/ruleid.ts). */
const text = (r: readonly string[]): string => r.join(' ').replace(/(reselqos:[a-z-]+):[A-Za-z0-9_-]{12}(?=\s|$)/g, '$1');
const table = (k: ReturnType<typeof buildKernelDesired>, family: 4 | 6, name: string) =>
  k.tables.find((t) => t.family === family && t.table === name)!;

test('portal6 + portalBan6: an ip6tables nat chain like the IPv4 one, DNAT to [addr]:port, the banned IPv6 machines in v6qos_banned', () => {
  const k = kernel('portal = 172.22.199.5:80\nportal6 = [2001:db8:199::5]:8080\nportalBan6 = [2001:db8:199::6]:8081');
  const nat6 = table(k, 6, 'nat');
  assert.deepEqual(
    nat6.hooks.map((h) => text(h.args)),
    ['-i int0 -p tcp -m comment --comment reselqos:hook -j RESELQOS-portal'],
  );
  const rules = nat6.chains[0]!.rules.map(text);
  assert.deepEqual(rules, [
    '-m set --match-set v6qos_allow src -m comment --comment reselqos:allowed -j RETURN',
    '-p tcp -m set --match-set v6qos_banned src -m tcp --dport 80 -m comment --comment reselqos:ban-page -j DNAT --to-destination [2001:db8:199::6]:8081',
    // any other source on the users' interface, inside user6Networks or not (issue 20)
    '-p tcp -m tcp --dport 80 -m comment --comment reselqos:portal -j DNAT --to-destination [2001:db8:199::5]:8080',
  ]);
  const banned6 = k.sets.find((s) => s.name === 'v6qos_banned')!;
  assert.deepEqual([banned6.family, [...banned6.members]], ['inet6', ['2001:db8:d201::1']]);
  const out6 = table(k, 6, 'filter')
    .chains.find((c) => c.name === 'RESELQOS-fwout')!
    .rules.map(text);
  for (const [ip, port] of [
    ['2001:db8:199::5', 8080],
    ['2001:db8:199::6', 8081],
  ]) {
    assert.ok(out6.includes(`-d ${ip}/128 -p tcp -m tcp --dport ${port} -m comment --comment reselqos:portal -j RETURN`), out6.join('\n'));
  }
  // the IPv4 chain is untouched by the IPv6 keys, and carries no IPv6 address
  const nat4 = table(k, 4, 'nat').chains[0]!.rules.map(text);
  assert.ok(
    nat4.every((r) => !r.includes('2001:')),
    nat4.join('\n'),
  );
  assert.ok(nat4.some((r) => r.endsWith('--to-destination 172.22.199.5:80')));
});

test('without portal6 / portalBan6 the IPv6 nat spec is empty (a chain left from before is removed), and no v6 banned set', () => {
  const k = kernel('portal = 172.22.199.5:80');
  assert.deepEqual([table(k, 6, 'nat').chains, table(k, 6, 'nat').hooks], [[], []]);
  assert.equal(
    k.sets.some((s) => s.name === 'v6qos_banned'),
    false,
  );
  const ban6only = kernel('portalBan6 = [2001:db8:199::6]:80');
  assert.equal(
    table(ban6only, 6, 'nat').chains[0]!.rules.filter((r) => r.includes('DNAT')).length,
    1,
    'a ban page alone: only the banned are redirected',
  );
});

test('a kernel without ip6tables nat is refused at start naming the keys, only when an IPv6 portal is configured', () => {
  const f: KernelFeatures = {
    fwFilter: true,
    flowFilter: true,
    sfq: true,
    fq_codel: true,
    cake: true,
    pfifo: true,
    htb: true,
    classifyTarget: true,
    setMatch: true,
    ipset: true,
    nat6: false,
    iptablesBackend: 'nf_tables',
    errors: { nat6: "ip6tables v1.8.9 (nf_tables): table 'nat' does not exist" },
  };
  const with6 = parseConfig(minimalConf({ firewall: `${FW}\nportal6 = [2001:db8:199::5]:80` }), 'q');
  assert.deepEqual(
    missingFeatures(with6, f).filter((p) => /nat/.test(p)),
    [
      "ip6tables nat (DNAT) not supported by this kernel (ip6tables v1.8.9 (nf_tables): table 'nat' does not exist): empty [firewall] portal6 and portalBan6",
    ],
  );
  assert.deepEqual(
    missingFeatures(parseConfig(minimalConf({ firewall: FW }), 'q'), f).filter((p) => /nat/.test(p)),
    [],
  );
});
