// The HA pair (issue 23): [ha] keys, the role and its file, the health judgement
// (src/ha/health.ts), the publisher switched off on a backup, and the two client verbs
// (`reselqos role`, `status --health`) against a control socket in a temporary run directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, ConfigError } from '../../src/config/config.js';
import { HaRole, parseRole, readRoleFile, roleFile, writeRoleFile, type RoleChange } from '../../src/ha/role.js';
import { HealthTracker, judgeHealth } from '../../src/ha/health.js';
import { Publisher } from '../../src/publish/publish.js';
import { MemoryLogger } from '../../src/log.js';
import { serveControl, type ControlAnswer, type ControlRequest } from '../../src/daemon/control.js';
import { main } from '../../src/cli/main.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { minimalConf } from './fixtures.js';
import type { Desired } from '../../src/plan/desired.js';
import type { Directory } from '../../src/sources/types.js';

const conf = (ha: string, qos = ''): ReturnType<typeof parseConfig> => parseConfig(minimalConf({ qos, extra: `[ha]\n${ha}` }), 'q');

test('[ha]: defaults keep a single gateway as it was (master); a bad role, failures or maxAge names the key', () => {
  const c = parseConfig(minimalConf(), 'q');
  assert.deepEqual(c.ha, { role: 'master', failures: 3, maxAgeMs: 120_000, trackTimeoutMs: 10_000 });
  assert.equal(conf('role = Backup').ha.role, 'backup');
  // unset maxAge follows a long interval (3 intervals), so that every cycle does not look stuck
  assert.equal(conf('', 'interval = 5m').ha.maxAgeMs, 900_000);
  const problems = (text: string, qos = ''): string => {
    try {
      conf(text, qos);
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      return e.message;
    }
    assert.fail(`accepted: ${text}`);
  };
  assert.match(problems('role = primary'), /\[ha\] role: expected one of master, backup, fault, got "primary"/);
  assert.match(problems('failures = 0'), /\[ha\] failures: expected an integer from 1 to 1000/);
  assert.match(problems('maxAge = 10s', 'interval = 30s'), /\[ha\] maxAge: must be more than \[qos\] interval \(30s\)/);
});

test('role: parsed case-insensitively; a change is told to the listeners once, with its time; only the master writes', () => {
  assert.equal(parseRole(' MASTER\n'), 'master');
  assert.equal(parseRole('primary'), null);
  const r = new HaRole('master', '2026-01-01T00:00:00Z');
  const seen: RoleChange[] = [];
  r.onChange((c) => seen.push(c));
  assert.equal(r.writes, true);
  assert.deepEqual(r.set('master', '2026-01-01T00:01:00Z'), { from: 'master', to: 'master', changed: false });
  assert.equal(r.since, '2026-01-01T00:00:00Z');
  r.set('backup', '2026-01-01T00:02:00Z');
  assert.equal(r.writes, false);
  assert.equal(r.since, '2026-01-01T00:02:00Z');
  r.set('fault', '2026-01-01T00:03:00Z');
  assert.equal(r.writes, false);
  assert.deepEqual(
    seen.map((c) => `${c.from}>${c.to}`),
    ['master>backup', 'backup>fault'],
  );
});

test('role file: written whole, read back; absent or garbage is no role', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rq-role-'));
  try {
    assert.equal(await readRoleFile(dir), null);
    await writeRoleFile(dir, 'backup');
    assert.equal(await readFile(roleFile(dir), 'utf8'), 'backup\n');
    assert.equal(await readRoleFile(dir), 'backup');
    await writeRoleFile(dir, 'master');
    assert.equal(await readRoleFile(dir), 'master');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(roleFile(dir), 'primary\n');
    assert.equal(await readRoleFile(dir), null);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('health: unhealthy before the first cycle, after N kernel failures in a row, when no cycle ended for maxAge; source failures do not count', () => {
  const limits = { failures: 3, maxAgeMs: 60_000 };
  const t = new HealthTracker(0);
  assert.match(judgeHealth(t, limits, 2000).reason, /no cycle has ended yet \(started 2\.0s ago\)/);
  assert.equal(judgeHealth(t, limits, 2000).healthy, false);
  t.cycleEnded({ ok: true, desired: {}, error: null }, 3000);
  assert.equal(judgeHealth(t, limits, 4000).healthy, true);
  // a source outage with no directory at all: no plan, not the kernel's failure
  for (let i = 0; i < 5; i++) t.cycleEnded({ ok: false, desired: null, error: 'ldap down' }, 4000 + i * 1000);
  assert.equal(t.kernelFailures, 0);
  assert.equal(judgeHealth(t, limits, 9000).healthy, true);
  // two kernel failures: still healthy; the third: not, naming the error
  t.cycleEnded({ ok: false, desired: {}, error: 'tc: RTNETLINK answers: No such device' }, 10_000);
  t.cycleEnded({ ok: false, desired: {}, error: 'tc: RTNETLINK answers: No such device' }, 11_000);
  const two = judgeHealth(t, limits, 11_500);
  assert.equal(two.healthy, true);
  assert.match(two.reason, /2 kernel failure\(s\) in a row/);
  t.cycleEnded({ ok: false, desired: {}, error: 'tc: RTNETLINK answers: No such device' }, 12_000);
  const three = judgeHealth(t, limits, 12_500);
  assert.equal(three.healthy, false);
  assert.match(three.reason, /the last 3 cycles failed on the kernel \(\[ha\] failures = 3\): tc: RTNETLINK answers: No such device/);
  // one success clears it
  t.cycleEnded({ ok: true, desired: {}, error: null }, 13_000);
  assert.equal(judgeHealth(t, limits, 13_500).healthy, true);
  // stuck: nothing ended for longer than maxAge
  const stuck = judgeHealth(t, limits, 13_000 + 60_001);
  assert.equal(stuck.healthy, false);
  assert.match(stuck.reason, /no cycle has ended for 60\.0s \(more than \[ha\] maxAge 60\.0s\)/);
  // ended, but never succeeded (no directory at all since the start)
  const fresh = new HealthTracker(0);
  fresh.cycleEnded({ ok: false, desired: null, error: 'no directory' }, 1000);
  assert.deepEqual(judgeHealth(fresh, limits, 1500), { healthy: false, reason: 'no cycle has succeeded yet' });
});

test('publisher: a backup queues nothing; back to master it writes again', async () => {
  // A server nobody answers on: a write attempt is one error line.
  const c = parseConfig(
    minimalConf({ database: 'host = 127.0.0.1:9\nconnectTimeout = 1s', extra: '[publish]\nenabled = 1\ntimeout = 1s' }),
    'q',
  );
  const log = new MemoryLogger();
  const p = new Publisher(c, log);
  const d = { users: [], classes: [] } as unknown as Desired;
  const dir = { owners: [] } as unknown as Directory;
  p.setWriting(false);
  p.publish(d, dir);
  await p.whenIdle();
  assert.deepEqual(
    log.lines.filter((l) => l.msg.startsWith('publish:')),
    [],
  );
  p.setWriting(true);
  p.publish(d, dir);
  await p.whenIdle();
  assert.equal(log.lines.filter((l) => l.level === 'error' && l.msg.startsWith('publish: cannot write to 127.0.0.1:9/qos')).length, 1);
  await p.close();
});

test('metrics: reselqos_ha_role has one 1 and two 0', async () => {
  const m = new Metrics();
  for (const r of ['master', 'backup', 'fault']) m.haRole.set({ role: r }, r === 'backup' ? 1 : 0);
  const text = await m.text();
  assert.match(text, /reselqos_ha_role\{role="backup"\} 1/);
  assert.match(text, /reselqos_ha_role\{role="master"\} 0/);
  assert.match(text, /reselqos_ha_role\{role="fault"\} 0/);
});

async function withDaemonSocket<T>(
  handle: ((req: ControlRequest) => Promise<ControlAnswer>) | null,
  fn: (confFile: string, runDir: string) => Promise<T>,
): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'rq-ha-'));
  const runDir = join(dir, 'run');
  const file = join(dir, 'qos.conf');
  const { writeFile } = await import('node:fs/promises');
  await writeFile(file, minimalConf({ path: `run = ${runDir}\nstate = ${dir}/state\nlog = ${dir}/log` }), { mode: 0o600 });
  const server = handle ? await serveControl(runDir, handle) : null;
  try {
    return await fn(file, runDir);
  } finally {
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    await rm(dir, { recursive: true, force: true });
  }
}

function io(): { out: string[]; err: string[]; io: { out(t: string): void; err(t: string): void } } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (t) => out.push(t), err: (t) => err.push(t) } };
}

test('reselqos role: sent to the daemon; with none running, kept in [path] run/ha-role (exit 0); a bad role is a usage error', async () => {
  const asked: ControlRequest[] = [];
  await withDaemonSocket(
    async (req) => {
      asked.push(req);
      return { ok: true, role: 'backup', from: 'master', changed: true, kept: true };
    },
    async (file) => {
      const o = io();
      assert.equal(await main(['role', 'backup', '-c', file], o.io), 0);
      assert.deepEqual(asked, [{ cmd: 'role', role: 'backup' }]);
      assert.deepEqual(o.out, ['role master -> backup']);
      const bad = io();
      assert.equal(await main(['role', 'primary', '-c', file], bad.io), 64);
      assert.match(bad.err.join('\n'), /role needs one of master, backup, fault, got "primary"/);
    },
  );
  await withDaemonSocket(null, async (file, runDir) => {
    const o = io();
    assert.equal(await main(['role', 'fault', '-c', file], o.io), 0);
    assert.match(o.out.join('\n'), /reselqos is not running: role fault kept in .*ha-role, taken at start/);
    assert.equal(await readRoleFile(runDir), 'fault');
  });
});

test('reselqos status --health: the daemon judges (exit 0 / 1, one line); not running or no answer is unhealthy', async () => {
  let answer: ControlAnswer = { ok: true, healthy: true, reason: 'last cycle ended 1.0s ago', role: 'master' };
  await withDaemonSocket(
    async (req) => {
      assert.equal(req.cmd, 'health');
      return answer;
    },
    async (file) => {
      const ok = io();
      assert.equal(await main(['status', '--health', '-c', file], ok.io), 0);
      assert.deepEqual(ok.out, ['healthy (master): last cycle ended 1.0s ago']);
      answer = { ok: true, healthy: false, reason: 'the last 3 cycles failed on the kernel', role: 'backup' };
      const bad = io();
      assert.equal(await main(['status', '--health', '-c', file], bad.io), 1);
      assert.deepEqual(bad.out, ['unhealthy (backup): the last 3 cycles failed on the kernel']);
    },
  );
  await withDaemonSocket(null, async (file) => {
    const o = io();
    assert.equal(await main(['status', '--health', '-c', file], o.io), 1);
    assert.match(o.out.join('\n'), /^unhealthy: reselqos is not running \(no answer on .*reselqos\.sock\)$/);
  });
  // a daemon that does not answer within the timeout (a stuck event loop)
  await withDaemonSocket(
    () => new Promise<ControlAnswer>(() => undefined),
    async (file) => {
      const o = io();
      const t0 = Date.now();
      assert.equal(await main(['status', '--health', '-c', file], o.io), 1);
      assert.ok(Date.now() - t0 >= 4900);
      assert.match(o.out.join('\n'), /^unhealthy: no answer from the daemon on .* within 5000 ms$/);
    },
  );
});

test('docs/ha/notify.sh: conntrackd first on MASTER, reselqos role for every state, in the order of Debian primary-backup.sh', async () => {
  const { execFile } = await import('node:child_process');
  const { writeFile, chmod } = await import('node:fs/promises');
  const { fileURLToPath } = await import('node:url');
  const script = fileURLToPath(new URL('../../../docs/ha/notify.sh', import.meta.url));
  const dir = await mkdtemp(join(tmpdir(), 'rq-notify-'));
  try {
    const calls = join(dir, 'calls');
    // stand-ins that record their argv; `conntrackd -s` fails so that BACKUP starts the daemon (-d)
    const stand = async (name: string, failOn = ''): Promise<string> => {
      const f = join(dir, name);
      await writeFile(f, `#!/bin/sh\necho "${name} $*" >> ${calls}\n${failOn ? `case "$*" in *"${failOn}") exit 1;; esac\n` : ''}exit 0\n`);
      await chmod(f, 0o755);
      return f;
    };
    const env = {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      CONNTRACKD_BIN: await stand('conntrackd', ' -s'),
      CONNTRACKD_CONFIG: '/etc/ct.conf',
      CONNTRACKD_LOCK: join(dir, 'lock'),
      RESELQOS_BIN: await stand('reselqos'),
      RESELQOS_CONF: '/etc/q.conf',
    };
    const run = (...args: string[]): Promise<{ code: number; lines: string[] }> =>
      new Promise((resolve) => {
        execFile('sh', [script, ...args], { env }, (e) => {
          void readFile(calls, 'utf8')
            .catch(() => '')
            .then(async (text) => {
              await rm(calls, { force: true });
              resolve({ code: e ? Number(e.code) : 0, lines: text.trim().split('\n').filter(Boolean) });
            });
        });
      });
    assert.deepEqual((await run('GROUP', 'RESELQOS', 'MASTER', '150')).lines, [
      'conntrackd -C /etc/ct.conf -c',
      'conntrackd -C /etc/ct.conf -f',
      'conntrackd -C /etc/ct.conf -R',
      'conntrackd -C /etc/ct.conf -B',
      'reselqos role master -c /etc/q.conf',
    ]);
    assert.deepEqual((await run('GROUP', 'RESELQOS', 'BACKUP', '100')).lines, [
      'reselqos role backup -c /etc/q.conf',
      'conntrackd -C /etc/ct.conf -s',
      'conntrackd -C /etc/ct.conf -d',
      'conntrackd -C /etc/ct.conf -t',
      'conntrackd -C /etc/ct.conf -n',
    ]);
    assert.deepEqual((await run('GROUP', 'RESELQOS', 'FAULT', '0')).lines, [
      'reselqos role fault -c /etc/q.conf',
      'conntrackd -C /etc/ct.conf -t',
    ]);
    assert.deepEqual((await run('GROUP', 'RESELQOS', 'STOP', '0')).lines, ['reselqos role backup -c /etc/q.conf']);
    const bad = await run('GROUP', 'RESELQOS', 'PRIMARY');
    assert.equal(bad.code, 1);
    assert.deepEqual(bad.lines, []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('track watch: a master whose health asks stop for trackTimeout steps down once; asks coming back make it master again; a role set from outside lets go', async () => {
  const { TrackWatch } = await import('../../src/ha/health.js');
  const w = new TrackWatch(3000);
  // never asked (a single gateway without keepalived): never demoted
  assert.equal(w.check('master', 1_000_000).demote, false);
  assert.equal(w.asked(0), null);
  assert.equal(w.check('master', 2000).demote, false);
  assert.equal(w.check('backup', 10_000).demote, false, 'only a master steps down');
  const d = w.check('master', 3500);
  assert.deepEqual(d, { demote: true, silentMs: 3500 });
  assert.equal(w.check('master', 9000).demote, false, 'once');
  assert.equal(w.asked(9500), 'master', 'keepalived asks again');
  assert.equal(w.asked(9600), null);
  // demoted, then `reselqos role backup` (keepalived restarted): the asks do not make it master
  assert.equal(w.check('master', 13_000).demote, true);
  w.roleSet();
  assert.equal(w.asked(13_500), null);
  // 0 = off
  const off = new TrackWatch(0);
  off.asked(0);
  assert.equal(off.check('master', 1e9).demote, false);
});
