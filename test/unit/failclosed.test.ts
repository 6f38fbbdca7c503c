// Closed by default (issue 20), in kernel terms (pure): the filter chains refuse by interface,
// whatever the source address; martian and spoofed sources go first; passSources passes; the
// portal redirect takes every other source on the users' interface. `[firewall] passSources`
// is parsed strictly and shown by `check`. On a real kernel: test/firewall/failclosed.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DateTime } from 'luxon';
import { parseConfig, ConfigError } from '../../src/config/config.js';
import { specOf } from '../../src/config/schema.js';
import { planDesired } from '../../src/plan/desired.js';
import { buildKernelDesired } from '../../src/kernel/model.js';
import { firewallLine } from '../../src/cli/check.js';
import type { Directory } from '../../src/sources/types.js';
import { minimalConf } from './fixtures.js';

const at = DateTime.fromISO('2026-11-22T12:00', { zone: 'UTC' });
const FW = [
  'userNetworks = 172.22.192.0/19',
  'user6Networks = 2001:db8:d000::/40',
  'ip_int = 172.22.199.30',
  'ip_int6 = 2001:db8:d199::30',
  'openDestinations = 192.0.2.53/32, 2001:db8:53::/64',
  'tunnel_name = to_rennes',
  'passSources = 10.9.0.0/24, 2001:db8:f000::/48',
].join('\n');
const dir: Directory = { owners: [], machines: [], skipped: [], fetchedAt: at.toISO()! };

const config = (firewall = ''): ReturnType<typeof parseConfig> => parseConfig(minimalConf({ firewall: `${FW}\n${firewall}` }), 'q');
function kernel(firewall = ''): ReturnType<typeof buildKernelDesired> {
  const c = config(firewall);
  return buildKernelDesired(c, planDesired(c, dir, null, at, at));
}
/** A rule as text, without the identity hash stamped into its comment (src/kernel/ruleid.ts). */
const text = (r: readonly string[]): string => r.join(' ').replace(/(reselqos:[a-z-]+):[A-Za-z0-9_-]{12}(?=\s|$)/g, '$1');
const c = (what: string): string => `-m comment --comment reselqos:${what}`;
function chain(k: ReturnType<typeof buildKernelDesired>, family: 4 | 6, table: string, name: string): string[] {
  const t = k.tables.find((x) => x.family === family && x.table === table)!;
  return t.chains.find((x) => x.name === name)!.rules.map(text);
}

test('IPv4 fwout: martians and spoofed gateway sources dropped first, then what passes, then everything else refused whatever its source', () => {
  assert.deepEqual(chain(kernel(), 4, 'filter', 'RESELQOS-fwout'), [
    `-s 0.0.0.0/8 ${c('martian')} -j DROP`,
    `-s 127.0.0.0/8 ${c('martian')} -j DROP`,
    `-s 224.0.0.0/4 ${c('martian')} -j DROP`,
    `-s 240.0.0.0/4 ${c('martian')} -j DROP`,
    `-s 172.22.199.30/32 ${c('spoofed')} -j DROP`,
    `-s 10.9.0.0/24 ${c('pass')} -j RETURN`,
    `-d 172.22.199.30/32 ${c('gateway')} -j RETURN`,
    `-d 192.0.2.53/32 ${c('open')} -j RETURN`,
    `-o to_rennes ${c('tunnel')} -j RETURN`,
    `-m set --match-set qos_allow src ${c('allowed')} -j RETURN`,
    // refuse = reject answers the user networks (immediate feedback) ...
    `-s 172.22.192.0/19 -p tcp ${c('refused')} -j REJECT --reject-with tcp-reset`,
    `-s 172.22.192.0/19 ${c('refused')} -j REJECT --reject-with icmp-admin-prohibited`,
    // ... and drops any other source: the rule that closes the interface matches every packet
    `${c('refused')} -j DROP`,
  ]);
});

test('IPv6 fwout and fwin: the same contract (v6Enabled = 1)', () => {
  const k = kernel();
  assert.deepEqual(chain(k, 6, 'filter', 'RESELQOS-fwout'), [
    `-s ::/128 ${c('martian')} -j DROP`,
    `-s ::1/128 ${c('martian')} -j DROP`,
    `-s ::ffff:0.0.0.0/96 ${c('martian')} -j DROP`,
    `-s ff00::/8 ${c('martian')} -j DROP`,
    `-s 2001:db8:d199::30/128 ${c('spoofed')} -j DROP`,
    `-s 2001:db8:f000::/48 ${c('pass')} -j RETURN`,
    `-d 2001:db8:d199::30/128 ${c('gateway')} -j RETURN`,
    `-d 2001:db8:53::/64 ${c('open')} -j RETURN`,
    `-o to_rennes ${c('tunnel')} -j RETURN`,
    `-m set --match-set v6qos_allow src ${c('allowed')} -j RETURN`,
    `-s 2001:db8:d000::/40 -p tcp ${c('refused')} -j REJECT --reject-with tcp-reset`,
    `-s 2001:db8:d000::/40 ${c('refused')} -j REJECT --reject-with icmp6-adm-prohibited`,
    `${c('refused')} -j DROP`,
  ]);
  assert.deepEqual(chain(k, 6, 'filter', 'RESELQOS-fwin'), [
    `-d 2001:db8:f000::/48 ${c('pass')} -j RETURN`,
    `-s 2001:db8:53::/64 ${c('open')} -j RETURN`,
    `-i to_rennes ${c('tunnel')} -j RETURN`,
    `-m set --match-set v6qos_allow dst ${c('allowed')} -j RETURN`,
    `${c('refused')} -j DROP`,
  ]);
  assert.deepEqual(chain(k, 4, 'filter', 'RESELQOS-fwin').at(-1), `${c('refused')} -j DROP`, 'IPv4 fwin closes the same way');
});

test('the hooks stay in FORWARD only (DHCP, ND and the gateway services are INPUT), by interface', () => {
  for (const family of [4, 6] as const) {
    const t = kernel().tables.find((x) => x.family === family && x.table === 'filter')!;
    assert.deepEqual(
      t.hooks.map((h) => [h.builtin, text(h.args)]),
      [
        ['FORWARD', `-i int0 ${c('hook')} -j RESELQOS-fwout`],
        ['FORWARD', `-o int0 ${c('hook')} -j RESELQOS-fwin`],
      ],
    );
  }
});

test('refuse = drop: no answer to anyone, one closing rule; without user networks the interface is still closed', () => {
  const out = chain(kernel('refuse = drop'), 4, 'filter', 'RESELQOS-fwout');
  assert.equal(out.filter((r) => r.includes('refused')).length, 1);
  assert.equal(out.at(-1), `${c('refused')} -j DROP`);
  assert.ok(out.every((r) => !r.includes('REJECT')));
  // no passSources, no open destinations: the last rule still refuses everything
  const bare = parseConfig(minimalConf({ firewall: 'userNetworks = 10.0.0.0/8' }), 'q');
  const kd = buildKernelDesired(bare, planDesired(bare, dir, null, at, at));
  for (const family of [4, 6] as const) {
    assert.equal(chain(kd, family, 'filter', 'RESELQOS-fwout').at(-1), `${c('refused')} -j DROP`, `v${family}`);
    assert.equal(chain(kd, family, 'filter', 'RESELQOS-fwin').at(-1), `${c('refused')} -j DROP`, `v${family}`);
  }
});

test('the portal redirect takes every source on the interface that is not allowed nor passSources, both families', () => {
  const k = kernel('portal = 172.22.199.5:80\nportal6 = [2001:db8:d199::5]:80');
  assert.deepEqual(chain(k, 4, 'nat', 'RESELQOS-portal'), [
    `-d 172.22.199.30/32 ${c('gateway')} -j RETURN`,
    `-d 192.0.2.53/32 ${c('open')} -j RETURN`,
    `-s 10.9.0.0/24 ${c('pass')} -j RETURN`,
    `-m set --match-set qos_allow src ${c('allowed')} -j RETURN`,
    `-p tcp -m set --match-set qos_banned src -m tcp --dport 80 ${c('ban-page')} -j DNAT --to-destination 172.22.199.5:80`,
    `-p tcp -m tcp --dport 80 ${c('portal')} -j DNAT --to-destination 172.22.199.5:80`,
  ]);
  const nat6 = chain(k, 6, 'nat', 'RESELQOS-portal');
  assert.ok(nat6.includes(`-s 2001:db8:f000::/48 ${c('pass')} -j RETURN`), nat6.join('\n'));
  assert.equal(nat6.at(-1), `-p tcp -m tcp --dport 80 ${c('portal')} -j DNAT --to-destination [2001:db8:d199::5]:80`);
});

function problem(firewall: string): string {
  try {
    parseConfig(minimalConf({ firewall }), 'qos.conf');
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    const p = e.problems.find((x) => x.section === 'firewall' && x.key === 'passSources');
    assert.ok(p, e.message);
    return p.message;
  }
  assert.fail(`expected a problem with ${firewall}`);
}

test('[firewall] passSources: canonical CIDRs of both families, empty by default, live; a bare address, host bits, junk or /0 refused', () => {
  assert.deepEqual(parseConfig(minimalConf(), 'q').firewall.passSources, []);
  assert.deepEqual(
    parseConfig(minimalConf({ firewall: 'passSources = 10.9.0.0/24 , 2001:DB8:F000:0::/48, 10.9.0.0/24' }), 'q').firewall.passSources,
    ['10.9.0.0/24', '2001:db8:f000::/48'],
  );
  assert.equal(specOf('firewall', 'passSources')?.live, true);
  assert.match(problem('passSources = 10.9.0.5'), /expected a network/);
  assert.match(problem('passSources = 10.9.0.5/24'), /host bits/);
  assert.match(problem('passSources = 10.9.0.0/24 10.8.0.0/24'), /expected a network|not an IPv4 network/);
  assert.match(problem('passSources = 0.0.0.0/0'), /every source.*enabled = 0/);
  assert.match(problem('passSources = ::/0'), /every source/);
});

test('check shows that refusal is by interface, and passSources', () => {
  assert.equal(
    firewallLine(config()),
    'firewall: refuses by interface: IPv4 and IPv6 arriving on int0 and not allowed is refused, whatever its source address; passSources 10.9.0.0/24, 2001:db8:f000::/48',
  );
  assert.match(firewallLine(config('v6Enabled = 0')), /IPv4 \(IPv6 passes: v6Enabled = 0\).*passSources 10\.9/);
  assert.match(firewallLine(parseConfig(minimalConf(), 'q')), /passSources none$/);
  assert.equal(firewallLine(config('enabled = 0')), 'firewall: off (enabled = 0), nothing refused');
});
