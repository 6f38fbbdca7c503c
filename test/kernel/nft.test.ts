// The nftables table on a real kernel (a scratch rq-* namespace, `nft` from Debian's nftables):
// the full script applies as one transaction and reads back with nothing to change; drift (an
// element, a rule, a verdict, the whole table) is planned and repaired in one `nft -f`; a
// transaction that fails leaves the kernel as it was; an operator's own table survives every
// apply and the clear.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { DateTime } from 'luxon';
import { parseConfig, type Config } from '../../src/config/config.js';
import { planDesired } from '../../src/plan/desired.js';
import { buildNftDesired, NFT_TABLE, type NftDesired } from '../../src/kernel/nft.js';
import { planNft, renderNftClear } from '../../src/kernel/nft-plan.js';
import { parseNftTable } from '../../src/kernel/nft-read.js';
import type { Exec } from '../../src/exec/exec.js';
import { createScratchNetns, type ScratchNetns } from '../../sandbox/netns.js';
import type { Directory } from '../../src/sources/types.js';
import { minimalConf } from '../unit/fixtures.js';

const at = DateTime.fromISO('2026-11-22T12:00', { zone: 'UTC' });
let ns: ScratchNetns;
let exec: Exec;

function campus(n: number, paid = (i: number): boolean => i % 3 !== 0): Directory {
  const owners: Directory['owners'][number][] = [];
  const machines: Directory['machines'][number][] = [];
  for (let i = 0; i < n; i++) {
    const uid = `u${i}`;
    owners.push({
      uid,
      dn: `uid=${uid}`,
      kind: 'person',
      endInternet: paid(i) ? Date.UTC(2030, 0, 1) : Date.UTC(2020, 0, 1),
      coupure: false,
      ban: [],
      cotiz: [],
    });
    machines.push({
      dn: `host=${uid}`,
      host: uid,
      owner: uid,
      active: true,
      ips4: [`172.22.${200 + Math.floor(i / 250)}.${(i % 250) + 1}`],
      ips6: [`2001:db8:d200::${(i + 1).toString(16)}`],
    });
  }
  return { owners, machines, skipped: [], fetchedAt: at.toISO()! };
}

const config: Config = parseConfig(
  minimalConf({
    qos: 'classifier = fw\nleaf = pfifo\nfairness = flow\ngroups = 6',
    firewall:
      'area6Prefix = 2001:db8:d200::\nnet6 = 2001:db8:d200::/48\nuserNetworks = 172.22.192.0/19\nip_int = 172.22.0.1\n' +
      'portal = 10.0.0.9:8080\nportal6 = [2001:db8::9]:8080\nportalBan = 10.0.0.9:8081\npassSources = 10.9.0.0/24\nopenDestinations = 10.53.0.0/24',
  }),
  'q',
);
const usage = { byIp: new Map(), resetAt: at.toISO()!, fetchedAt: at.toISO()! };
const desiredOf = (dir: Directory): NftDesired => buildNftDesired(config, planDesired(config, dir, usage, at, at));

async function readBack(): Promise<ReturnType<typeof parseNftTable>> {
  try {
    const r = await exec('nft', ['-j', 'list', 'table', 'inet', NFT_TABLE]);
    return parseNftTable(r.stdout);
  } catch (e) {
    if (/No such file or directory/.test(String((e as Error).message))) return null;
    throw e;
  }
}
const nftApply = (script: string): Promise<unknown> => exec('nft', ['-f', '-'], { input: script });

before(async () => {
  ns = await createScratchNetns('nft');
  exec = ns.exec;
  await nftApply(
    'add table inet filter\nadd chain inet filter forward { type filter hook forward priority 0; policy accept; }\n' +
      'add rule inet filter forward counter comment "the operator\'s"\n',
  );
});
after(async () => {
  await ns?.destroy();
});

test('nftables: the whole table in one transaction, read back with nothing to change; an operator table untouched', async () => {
  const d = desiredOf(campus(300));
  const plan = planNft(d, await readBack());
  assert.equal(plan.counts.full, true);
  await nftApply(plan.script);
  const back = await readBack();
  assert.ok(back);
  assert.equal(back.sets.get('qos_allow')!.members.size, 200, 'paid machines allowed');
  assert.equal(back.sets.get('v6qos_d0')!.members.size, 300);
  assert.equal(planNft(d, back).script, '', 'idempotent');
  // applied again whole: same result (delete + add in one transaction)
  await nftApply(planNft(d, null).script);
  assert.equal(planNft(d, await readBack()).script, '');
  const other = await exec('nft', ['-j', 'list', 'table', 'inet', 'filter']);
  assert.match(other.stdout, /the operator's/);
});

test('nftables drift: an element deleted, a rule deleted, a verdict replaced, the table deleted: each planned and repaired in one nft -f', async () => {
  const d = desiredOf(campus(300));
  await nftApply(planNft(d, await readBack()).script);
  assert.equal(planNft(d, await readBack()).script, '');
  // an element
  await exec('nft', ['delete', 'element', 'inet', NFT_TABLE, 'qos_allow', '{ 172.22.200.2 }']);
  let p = planNft(d, await readBack());
  assert.deepEqual(p.counts, { elementsAdded: 1, elementsDeleted: 0, chainsRewritten: 0, full: false });
  await nftApply(p.script);
  assert.equal(planNft(d, await readBack()).script, '');
  // a rule (the last drop of fwout), then a verdict replaced under our comment
  const rules = JSON.parse((await exec('nft', ['-a', '-j', 'list', 'chain', 'inet', NFT_TABLE, 'RESELQOS-fwout'])).stdout).nftables.filter(
    (x: { rule?: unknown }) => x.rule,
  );
  const last = rules[rules.length - 1].rule as { handle: number; comment: string };
  await exec('nft', ['delete', 'rule', 'inet', NFT_TABLE, 'RESELQOS-fwout', 'handle', String(last.handle)]);
  p = planNft(d, await readBack());
  assert.equal(p.counts.chainsRewritten, 1);
  await nftApply(p.script);
  const rules2 = JSON.parse((await exec('nft', ['-a', '-j', 'list', 'chain', 'inet', NFT_TABLE, 'RESELQOS-fwout'])).stdout).nftables.filter(
    (x: { rule?: unknown }) => x.rule,
  );
  const last2 = rules2[rules2.length - 1].rule as { handle: number; comment: string };
  await exec('nft', [
    'replace',
    'rule',
    'inet',
    NFT_TABLE,
    'RESELQOS-fwout',
    'handle',
    String(last2.handle),
    'accept',
    'comment',
    JSON.stringify(last2.comment),
  ]);
  p = planNft(d, await readBack());
  assert.equal(p.counts.chainsRewritten, 1, 'an accept under our comment is seen');
  await nftApply(p.script);
  assert.equal(planNft(d, await readBack()).script, '');
  // the whole table
  await exec('nft', ['delete', 'table', 'inet', NFT_TABLE]);
  p = planNft(d, await readBack());
  assert.equal(p.counts.full, true);
  await nftApply(p.script);
  assert.equal(planNft(d, await readBack()).script, '');
});

test('nftables moves: users paying, groups changing, machines leaving; a failing transaction changes nothing', async () => {
  const d1 = desiredOf(campus(300));
  await nftApply(planNft(d1, await readBack()).script);
  const d2 = desiredOf(campus(250, () => true));
  const p = planNft(d2, await readBack());
  assert.equal(p.counts.full, false);
  assert.ok(p.counts.elementsAdded > 0 && p.counts.elementsDeleted > 0, JSON.stringify(p.counts));
  // the same script with one bad line at the end: nft refuses it whole
  await assert.rejects(nftApply(`${p.script}add element inet ${NFT_TABLE} qos_allow { 172.22.999.1 }\n`));
  assert.equal(planNft(d1, await readBack()).script, '', 'the kernel still holds the first state');
  await nftApply(p.script);
  const back = await readBack();
  assert.equal(planNft(d2, back).script, '');
  assert.equal(back!.sets.get('qos_allow')!.members.size, 250);
});

test('nftables clear removes our table and nothing else; clearing twice is fine', async () => {
  await nftApply(planNft(desiredOf(campus(10)), await readBack()).script);
  await nftApply(renderNftClear());
  assert.equal(await readBack(), null);
  await nftApply(renderNftClear());
  const other = await exec('nft', ['-j', 'list', 'table', 'inet', 'filter']);
  assert.match(other.stdout, /the operator's/);
});

test('nftables one-lookup maps (address -> mark): applied, read back with nothing to change, a user moving is one key changed', async () => {
  const mapOf = (dir: Directory, up = 0): NftDesired =>
    buildNftDesired(
      config,
      planDesired(config, dir, { ...usage, byIp: new Map(up ? [['172.22.200.2', { down: 0, up }]] : []) }, at, at),
      undefined,
      { lookup: 'map' },
    );
  const d = mapOf(campus(300));
  const p0 = planNft(d, await readBack());
  assert.equal(p0.counts.full, true, 'the sets form is replaced whole by the maps form');
  await nftApply(p0.script);
  const back = await readBack();
  assert.equal(back!.maps.get('qos_umap')!.entries.size, 300);
  assert.equal(back!.maps.get('qos_umap')!.entries.get('172.22.200.2'), '2000');
  assert.equal(planNft(d, back).script, '');
  const d2 = mapOf(campus(300), 1e15);
  const p = planNft(d2, await readBack());
  assert.deepEqual(p.counts, { elementsAdded: 2, elementsDeleted: 2, chainsRewritten: 0, full: false });
  await nftApply(p.script);
  const back2 = await readBack();
  assert.equal(back2!.maps.get('qos_umap')!.entries.get('172.22.200.2'), '2005');
  assert.equal(planNft(d2, back2).script, '');
});

test('nftables per-element counters (top talkers): a user sending 10 datagrams is counted in their map entry and their group set, nobody else', async () => {
  // a veth ext0 the namespace routes to; the user's address on lo; datagrams sent from it go
  // out through POSTROUTING on ext0, as a user's upload through the gateway would
  await exec('ip', ['link', 'add', 'ext0', 'type', 'veth', 'peer', 'name', 'ext0p']).catch(() => undefined);
  await exec('ip', ['link', 'set', 'ext0p', 'up']);
  await exec('ip', ['link', 'set', 'ext0', 'up']);
  await exec('ip', ['route', 'replace', '10.99.0.0/24', 'dev', 'ext0']);
  await exec('ip', ['addr', 'replace', '172.22.200.2/32', 'dev', 'lo']);
  const send = (): Promise<unknown> =>
    exec(process.execPath, [
      '-e',
      `const s=require('dgram').createSocket('udp4');s.bind({address:'172.22.200.2'},async()=>{for(let i=0;i<10;i++)await new Promise(r=>s.send(Buffer.alloc(100),9,'10.99.0.1',r));s.close()})`,
    ]);
  for (const lookup of ['map', 'sets'] as const) {
    const d = buildNftDesired(config, planDesired(config, campus(50), usage, at, at), undefined, { lookup, counters: true });
    const p = planNft(d, await readBack());
    assert.equal(p.counts.full, true, 'counters on: the sets are declared anew');
    await nftApply(p.script);
    assert.equal(planNft(d, await readBack()).script, '', 'read back with counters: nothing to change');
    await send();
    const back = await readBack();
    const where = lookup === 'map' ? 'qos_umap' : 'qos_u0';
    const c = back!.counters!.get(where)!;
    assert.equal(c.get('172.22.200.2')!.packets, 10, `${lookup}: 10 packets`);
    assert.equal(c.get('172.22.200.2')!.bytes, 10 * 128, `${lookup}: 10 x (100 + 8 UDP + 20 IP) bytes`);
    assert.equal(c.get('172.22.200.3')!.packets, 0, `${lookup}: a neighbour counts nothing`);
  }
});
