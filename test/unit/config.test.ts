import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseConfig, ConfigError, restartOnlyChanges, type ConfigProblem } from '../../src/config/config.js';
import { KEYS } from '../../src/config/schema.js';
import { minimalConf } from './fixtures.js';

function problems(text: string, mode?: number): ConfigProblem[] {
  try {
    parseConfig(text, 'qos.conf', mode === undefined ? {} : { mode });
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return [...e.problems];
  }
  assert.fail('expected a ConfigError');
}

function one(text: string, section: string, key: string | null, re: RegExp, mode?: number): ConfigProblem {
  const ps = problems(text, mode);
  const hit = ps.find((p) => p.section === section && p.key === key && re.test(p.message));
  assert.ok(hit, `no problem [${section}] ${key} ~ ${re} in:\n${ps.map((p) => JSON.stringify(p)).join('\n')}`);
  return hit;
}

test('a minimal file gets every default', () => {
  const c = parseConfig(minimalConf(), 'qos.conf');
  assert.equal(c.qos.groups, 6);
  assert.equal(c.qos.base, 1250e6);
  assert.equal(c.qos.parameter, 1.6);
  assert.equal(c.qos.factor, 0.8);
  assert.equal(c.qos.resetHour, 5);
  assert.equal(c.qos.intervalMs, 10_000);
  assert.equal(c.qos.count, 'all');
  assert.equal(c.qos.classifier, 'fw');
  assert.equal(c.qos.leaf, 'fq_codel');
  assert.equal(c.paths.log, '/var/log/reselqos');
  assert.equal(c.paths.state, '/var/lib/reselqos');
  assert.equal(c.paths.run, '/run/reselqos');
  assert.equal(c.ldap.url, 'ldap://ldap.example.org');
  assert.equal(c.ldap.basePeople, 'ou=people,dc=maisel,dc=enst-bretagne,dc=fr');
  assert.equal(c.ldap.attrs.owner, 'uidProprio');
  assert.equal(c.database.port, 3306);
  assert.equal(c.database.table, 'traffic');
  assert.equal(c.rates['down'], 100e6);
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.qos) && Object.isFrozen(c.rates));
  assert.ok(c.qos.timezone.length > 0);
});

test('hosts: name, host:port, URLs', () => {
  assert.equal(parseConfig(minimalConf({ ldap: 'host = ldap.example.org:1389' }), 'q').ldap.url, 'ldap://ldap.example.org:1389');
  assert.equal(parseConfig(minimalConf({ ldap: 'host = ldaps://ldap.example.org' }), 'q').ldap.url, 'ldaps://ldap.example.org');
  const db = parseConfig(minimalConf({ database: 'host = db.example.org:3307' }), 'q').database;
  assert.equal(db.host, 'db.example.org');
  assert.equal(db.port, 3307);
  assert.equal(parseConfig(minimalConf({ database: 'port = 3310' }), 'q').database.port, 3310);
});

test('every problem is collected, each with file:line, section and key', () => {
  const text = minimalConf({
    qos: 'groups = 0\nclassRateFactor = 1.5\ninterval = soon\ncount = some',
    rates: 'up = 100',
    ratesrules: 'rule2From = 20:00\nrule2To = 25:00\nrule2GlobalUp = 0\nrule2GlobalDown = 0\nrule2Up = 0\nrule2Down = 0',
  });
  const ps = problems(text);
  assert.ok(ps.length >= 6, ps.map((p) => p.message).join('\n'));
  const to = ps.find((p) => p.key === 'rule2To')!;
  assert.equal(to.message, 'expected HH:MM, got "25:00"');
  const lines = text.split('\n');
  assert.match(lines[to.line! - 1]!, /^rule2To = 25:00$/);
  const err = new ConfigError('qos.conf', ps);
  assert.match(err.message, /qos\.conf:\d+: \[ratesrules\] rule2To: expected HH:MM, got "25:00"/);
});

test('validation error classes', () => {
  one(minimalConf({ extra: '' }).replace('host = ldap.example.org', ''), 'ldap', 'host', /is required/);
  one(minimalConf({ rates: 'down = 100' }), 'rates', 'down', /no unit/);
  one(minimalConf({ rates: 'up = 100MB' }), 'rates', 'up', /is a size, not a rate/);
  one(minimalConf({ qos: 'classSeperationBase = 1250Mbps' }), 'qos', 'classSeperationBase', /is a rate, not a size/);
  one(minimalConf({ qos: 'groups = 0' }), 'qos', 'groups', /from 1 to 64/);
  one(minimalConf({ qos: 'groups = six' }), 'qos', 'groups', /expected an integer/);
  one(minimalConf({ qos: 'classRateFactor = 1.5' }), 'qos', 'classRateFactor', /0 < f <= 1/);
  one(minimalConf({ qos: 'classSeperationParameter = 0.5' }), 'qos', 'classSeperationParameter', />= 1/);
  one(minimalConf({ qos: 'resetHour = 24' }), 'qos', 'resetHour', /0 to 23/);
  one(minimalConf({ qos: 'timezone = Mars/Olympus' }), 'qos', 'timezone', /unknown time zone/);
  one(minimalConf({ qos: 'classifier = u32' }), 'qos', 'classifier', /one of fw, classify/);
  one(minimalConf({ qos: 'leaf = red' }), 'qos', 'leaf', /one of sfq, fq_codel, cake, pfifo, none/);
  one(minimalConf({ qos: 'enabled = maybe' }), 'qos', 'enabled', /0 or 1/);
  one(minimalConf({ qos: 'ceil = 150%' }), 'qos', 'ceil', /share/);
  one(minimalConf({ qos: 'interval = 0s' }), 'qos', 'interval', /at least/);
  one(minimalConf({ qos: 'markUp = 1003' }), 'qos', 'markUp', /overlap/);
  one(minimalConf({ qos: 'setPrefix = qos$(reboot)' }), 'qos', 'setPrefix', /letters/);
  one(minimalConf({ rates: 'down = 2Mbit', qos: 'defaultRate = 2Mbit' }), 'rates', 'down', /leaves nothing/);
  one(minimalConf({ ldap: 'host = ldap://x y' }), 'ldap', 'host', /expected a host name/);
  one(minimalConf({ ldap: 'host = ldaps://x\nstarttls = 1' }), 'ldap', 'starttls', /ldaps/);
  one(minimalConf({ ldap: 'hostsFilter = objectClass=reselMachine' }), 'ldap', 'hostsFilter', /LDAP filter/);
  one(minimalConf({ ldap: 'ownerAttr = uid Proprio' }), 'ldap', 'ownerAttr', /attribute name/);
  one(minimalConf({ ldap: 'maxShrink = lots' }), 'ldap', 'maxShrink', /share/);
  one(minimalConf({ database: 'table = traffic` OR 1=1' }), 'database', 'table', /SQL identifier/);
  one(minimalConf({ database: 'exclude = peer, international' }), 'database', 'exclude', /peer, direct, local/);
  one(minimalConf({ database: 'host = db:99999' }), 'database', 'host', /port out of range/);
  one(minimalConf({ firewall: 'ip_int = 172.22.199.030' }), 'firewall', 'ip_int', /leading zero/);
  one(minimalConf({ firewall: 'areaPrefix = 172.22' }), 'firewall', 'areaPrefix', /IPv4 prefix/);
  one(minimalConf({ firewall: 'eth_dmz = this-name-is-way-too-long' }), 'firewall', 'eth_dmz', /interface name/);
  one(minimalConf().replace('eth_int = int0', 'eth_int = ext0'), 'firewall', 'eth_int', /must differ/);
  one(minimalConf({ path: 'log = var/log' }), 'path', 'log', /absolute path/);
  one('stray = 1\n' + minimalConf(), '', 'stray', /outside any section/);
});

test('rate rules: a missing field, an empty window and overlapping windows are errors', () => {
  one(
    minimalConf({ ratesrules: 'rule1From = 20:00\nrule1To = 4:00\nrule1Up = 160Mbit\nrule1Down = 160Mbit\nrule1GlobalUp = 0' }),
    'ratesrules',
    'rule1GlobalDown',
    /is missing/,
  );
  one(
    minimalConf({ ratesrules: 'rule1From = 20:00\nrule1To = 20:00\nrule1Up = 0\nrule1Down = 0\nrule1GlobalUp = 0\nrule1GlobalDown = 0' }),
    'ratesrules',
    'rule1To',
    /empty/,
  );
  const overlap =
    'rule1From = 20:00\nrule1To = 4:00\nrule1Up = 0\nrule1Down = 0\nrule1GlobalUp = 0\nrule1GlobalDown = 0\n' +
    'rule2From = 3:00\nrule2To = 6:00\nrule2Up = 0\nrule2Down = 0\nrule2GlobalUp = 0\nrule2GlobalDown = 0';
  one(minimalConf({ ratesrules: overlap }), 'ratesrules', 'rule2From', /overlaps rule1/);
  one(
    minimalConf({ ratesrules: 'rule1From = 20:00\nrule1To = 4:00\nrule1Up = 160\nrule1Down = 0\nrule1GlobalUp = 0\nrule1GlobalDown = 0' }),
    'ratesrules',
    'rule1Up',
    /no unit/,
  );
  // Adjacent windows do not overlap.
  const adjacent = overlap.replace('rule2From = 3:00', 'rule2From = 4:00');
  assert.equal(parseConfig(minimalConf({ ratesrules: adjacent }), 'q').rateRules.length, 2);
});

test('unknown keys, unknown sections and duplicates are warnings, not errors', () => {
  const c = parseConfig(minimalConf({ qos: 'colour = blue\ngroups = 6\ngroups = 5', extra: '[mystery]\na = 1' }), 'qos.conf');
  assert.equal(c.qos.groups, 5);
  assert.ok(
    c.warnings.some((w) => /\[qos\] colour: unknown key/.test(w)),
    c.warnings.join('\n'),
  );
  assert.ok(
    c.warnings.some((w) => /\[mystery\]: unknown section/.test(w)),
    c.warnings.join('\n'),
  );
  assert.ok(
    c.warnings.some((w) => /\[qos\] groups: appears twice/.test(w)),
    c.warnings.join('\n'),
  );
});

test('a password in a file readable by others is refused, with the fix', () => {
  const text = minimalConf({ database: 'password = s3cret' });
  const p = one(text, '', null, /chmod 600 qos\.conf/, 0o100644);
  assert.match(p.message, /mode 0644/);
  assert.doesNotMatch(p.message, /s3cret/);
  assert.equal(parseConfig(text, 'qos.conf', { mode: 0o100600 }).database.password, 's3cret');
  // no password: any mode is fine
  parseConfig(minimalConf(), 'qos.conf', { mode: 0o100644 });
});

test('ini booleans come back as written (true/false are not lost)', () => {
  const c = parseConfig(minimalConf({ qos: 'enabled = false' }), 'q');
  assert.equal(c.qos.enabled, false);
});

test('restart-only keys are named between two configs', () => {
  const a = parseConfig(minimalConf(), 'q');
  const b = parseConfig(minimalConf({ qos: 'groups = 5\nclassRateFactor = 0.7' }), 'q');
  assert.deepEqual(restartOnlyChanges(a, b), ['[qos] groups']);
});

test('docs/CONFIG.md documents every key of the schema', () => {
  const doc = readFileSync(new URL('../../../docs/CONFIG.md', import.meta.url), 'utf8');
  for (const spec of KEYS) {
    assert.ok(doc.includes(`\`${spec.key}\``), `docs/CONFIG.md lacks [${spec.section}] ${spec.key}`);
  }
});

test('portal6 / portalBan6: [IPv6]:port, canonical; anything else is an error naming the key', () => {
  const c = parseConfig(minimalConf({ firewall: 'portal6 = [2001:DB8:0:0::5]:8080\nportalBan6 = [2001:db8::6]:80' }), 'qos.conf');
  assert.deepEqual(
    [c.firewall.portal6, c.firewall.portalBan6],
    [
      { ip: '2001:db8::5', port: 8080 },
      { ip: '2001:db8::6', port: 80 },
    ],
  );
  assert.deepEqual([c.firewall.portal, parseConfig(minimalConf(), 'q').firewall.portal6], [null, null], 'off by default');
  for (const bad of [
    '2001:db8::5:80',
    '[2001:db8::5]',
    '[2001:db8::5]:0',
    '[2001:db8::5]:65536',
    '[172.22.199.5]:80',
    '[::ffff:1.2.3.4]:80',
    '[ff02::1]:80',
    '[::1]:80',
    '[2001:db8::5%eth0]:80',
    ' [2001:db8::5]:80x',
  ]) {
    one(minimalConf({ firewall: `portal6 = ${bad}` }), 'firewall', 'portal6', /expected an IPv6 address in brackets/);
  }
  one(minimalConf({ firewall: 'portalBan6 = [fe80::1]:80' }), 'firewall', 'portalBan6', /link-local/);
  one(minimalConf({ firewall: 'v6Enabled = 0\nportal6 = [2001:db8::5]:80' }), 'firewall', 'portal6', /IPv6 is off/);
  one(minimalConf({ firewall: 'portal = [2001:db8::5]:80' }), 'firewall', 'portal', /an IPv6 portal goes in portal6/);
});

test('a reload keeps every restart-only key (from the schema) at its running value and applies the live ones', async () => {
  const { withRunningRestartKeys, restartOnlyChanges } = await import('../../src/config/config.js');
  const { KEYS } = await import('../../src/config/schema.js');
  const running = parseConfig(
    minimalConf({ qos: 'groups = 6\nclassifier = classify\nleaf = pfifo\nfairness = flow', path: 'log = /var/log/a' }),
    'q',
    {
      hostname: 'gw1',
    },
  );
  const next = parseConfig(
    minimalConf({
      qos: 'groups = 4\nclassifier = fw\nleaf = sfq\nsetPrefix = zz_\nmarkDown = 3000\nclassRateFactor = 0.5',
      firewall: 'netns = other',
      path: 'log = /var/log/b',
      extra: '[site]\nname = elsewhere',
    })
      .replace('eth_int = int0', 'eth_int = int9')
      .replace('down = 100Mbit', 'down = 80Mbit'),
    'q',
    { hostname: 'gw1' },
  );
  const changed = restartOnlyChanges(running, next);
  assert.ok(changed.length >= 8, changed.join(', '));
  const applied = withRunningRestartKeys(running, next);
  for (const spec of KEYS) {
    if (spec.live) continue;
    const id = `${spec.section}.${spec.key.toLowerCase()}`;
    assert.equal(applied.raw[id], running.raw[id], `[${spec.section}] ${spec.key} keeps its running value`);
  }
  assert.deepEqual(
    [applied.qos.groups, applied.qos.classifier, applied.qos.leaf, applied.qos.setPrefix, applied.qos.markDown],
    [6, 'classify', 'pfifo', 'qos_', 1000],
  );
  assert.deepEqual(
    [applied.firewall.ethInt, applied.firewall.netns, applied.paths.log, applied.site.name],
    ['int0', '', '/var/log/a', 'gw1'],
  );
  assert.equal(applied.qos.factor, 0.5, 'a live key takes the new value');
  assert.equal(applied.rates['down'], 80_000_000);
  assert.deepEqual(restartOnlyChanges(running, applied), []);
});

test('[sharing] weight is held to the bounds every peer row is (0.001 to 1000): a weight peers would ignore is refused here', () => {
  for (const w of ['0.0001', '1001', '5000000'])
    one(minimalConf({ extra: `[sharing]\nweight = ${w}` }), 'sharing', 'weight', /expected a number from 0.001 to 1000/);
  assert.equal(parseConfig(minimalConf({ extra: '[sharing]\nweight = 1000' }), 'q').sharing.weight, 1000);
});
