// The full fetch (LdapSource.fetchFull: entries decoded from the BER bytes, src/ldap/ldapdecode.ts,
// and the issue-16 build) against the path it replaced, on a real slapd holding random campuses
// (several seeds): the same three searches through ldapts' own entry objects, read through the
// entry view the full fetch used before (copied below), built with buildDirectoryState. The
// Directory, the build state and the newest modifyTimestamp must be the same; and the change
// searches (decoded the same way since issue 16) must give the same entries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from 'ldapts';
import { startSlapd } from '../../sandbox/slapd.js';
import { generateCampus, loadCampus } from '../../sandbox/campus.js';
import { sandboxConf } from '../../sandbox/conf.js';
import { parseConfig } from '../../src/config/config.js';
import { LdapSource, MODIFY_TIMESTAMP, newestModify } from '../../src/ldap/ldap.js';
import { buildDirectoryState, type RawEntry } from '../../src/ldap/directory.js';
import { entryView } from '../helpers/ldap-reference.js';

// ---- the reference: the entry view before issue 16 (test/helpers/ldap-reference.ts)

for (const seed of [3, 4, 5]) {
  test(`full fetch of a random campus equals the build over ldapts' own entries (seed ${seed})`, async () => {
    const slapd = await startSlapd({ sizeLimit: 50 });
    try {
      const campus = generateCampus({ users: 220, seed });
      await loadCampus(slapd, campus, { method: 'ldapadd' });
      const config = parseConfig(
        sandboxConf({
          ldapUrl: slapd.url,
          db: { host: '127.0.0.1', port: 1, user: 'x', password: 'x' },
          dir: '/tmp',
          // wide enough for the campus' overflow addresses; its IPv6 lies outside user6Networks (named skips)
          firewall: 'userNetworks = 172.22.0.0/16, 10.0.0.0/8',
        }).replace(/^pageSize = \d+$/m, 'pageSize = 37'),
        'sandbox.conf',
      );
      const now = new Date(Date.UTC(2026, 5, 1));
      const full = await new LdapSource(config).fetchFull(now);

      const l = config.ldap;
      const a = l.attrs;
      const owner = [a.uid, a.endInternet, a.coupure, a.ban, a.cotiz, MODIFY_TIMESTAMP];
      const host = [a.host, a.owner, a.ip, a.ip6, a.zone, MODIFY_TIMESTAMP];
      const search = async (base: string, filter: string, attributes: string[]): Promise<RawEntry[]> => {
        const c = new Client({ url: l.url, strictDN: false });
        try {
          const res = await c.search(base, { scope: 'sub', filter, attributes, paged: { pageSize: 37 } });
          return res.searchEntries.map(entryView);
        } finally {
          await c.unbind();
        }
      };
      const people = await search(l.basePeople, l.peopleFilter, owner);
      const orgas = await search(l.baseOrga, l.orgaFilter, owner);
      const hosts = await search(l.baseHosts, l.hostsFilter, host);
      assert.equal(people.length + orgas.length + hosts.length, campus.entryCount);
      const ref = buildDirectoryState({ people, orgas, hosts }, { ldap: l, firewall: config.firewall, fetchedAt: now.toISOString() });

      assert.deepEqual(full.directory, ref.directory);
      assert.deepEqual(full.state, ref.state);
      assert.equal(full.newestMs, newestModify([people, orgas, hosts]));
      assert.ok(full.newestMs !== null);
      assert.equal(full.directory.machines.length, campus.machines.length);
      assert.ok(full.directory.skipped.length > 0, 'the campus IPv6 addresses are named');

      // Change searches decode the same way: since the epoch they bring back every entry, each
      // (an attribute absent = no values, as the build reads it)
      // attribute as ldapts' own entries give it, and patching rules build the same directory.
      const changes = await new LdapSource(config).fetchChanges(0);
      const values = (list: readonly RawEntry[], attrs: readonly string[]): unknown =>
        list.map((e) => [e.dn, attrs.map((k) => e.attrs.get(k.toLowerCase()) ?? [])]);
      assert.deepEqual(values(changes.people, owner), values(people, owner));
      assert.deepEqual(values(changes.orgas, owner), values(orgas, owner));
      assert.deepEqual(values(changes.hosts, host), values(hosts, host));
      assert.equal(changes.newestMs, full.newestMs);
      const viaChanges = buildDirectoryState(
        { people: changes.people, orgas: changes.orgas, hosts: changes.hosts },
        { ldap: l, firewall: config.firewall, fetchedAt: now.toISOString() },
      );
      assert.deepEqual(viaChanges.directory, ref.directory);
    } finally {
      await slapd.stop();
    }
  });
}
