// Issue 20, finding 4: `[path] run` (and state, log) must be directories of our own. A shared
// one (/tmp, any world-writable directory, one another user owns) lets that user replace the
// control socket, plant a snapshot or a symlink where reselqos.log goes; and reselqos must never
// change the mode of a directory it did not create (run = /tmp lost its sticky bit: 1777 -> 0700).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveControl } from '../../src/daemon/control.js';
import { minimalConf } from './fixtures.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const cli = join(root, 'dist/cli.js');
const modeOf = (p: string): string => (statSync(p).mode & 0o7777).toString(8).padStart(4, '0');

function cli3(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { cwd: root, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** A temp dir with our own run/state/log subdirectories (0700) and a qos.conf naming them, `over` replacing some. */
function setup(over: { run?: string; state?: string; log?: string } = {}): { dir: string; file: string; write: (o: typeof over) => void } {
  const dir = mkdtempSync(join(tmpdir(), 'rq-dirs-'));
  const file = join(dir, 'qos.conf');
  const write = (o: typeof over): void => {
    const paths = { run: join(dir, 'run'), state: join(dir, 'state'), log: join(dir, 'log'), ...o };
    const text = minimalConf({ path: `run = ${paths.run}\nstate = ${paths.state}\nlog = ${paths.log}` }).replace(
      'host = ldap.example.org',
      'host = ldap://127.0.0.1:9',
    );
    writeFileSync(file, text);
    chmodSync(file, 0o600);
  };
  write(over);
  return { dir, file, write };
}

/** A directory like /tmp: mode 1777. */
function sharedDir(parent: string, name = 'shared'): string {
  const d = join(parent, name);
  mkdirSync(d);
  chmodSync(d, 0o1777);
  return d;
}

test('the control socket never changes the mode of an existing run directory; a missing one is created 0700', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rq-dirs-'));
  try {
    const sticky = sharedDir(dir);
    const open = join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o755);
    const fresh = join(dir, 'a', 'fresh');
    for (const runDir of [sticky, open, fresh]) {
      const server = await serveControl(runDir, () => Promise.resolve({ ok: true }));
      await new Promise<void>((r) => server.close(() => r()));
    }
    assert.equal(modeOf(sticky), '1777');
    assert.equal(modeOf(open), '0755');
    assert.equal(modeOf(fresh), '0700');
    assert.equal(modeOf(join(dir, 'a')), '0700');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('check refuses a world-writable directory as [path] run, state or log, naming key, file:line and why; its mode is kept', async () => {
  const s = setup();
  try {
    const shared = sharedDir(s.dir);
    for (const key of ['run', 'state', 'log'] as const) {
      s.write({ [key]: shared });
      const r = await cli3(['check', '-c', s.file]);
      assert.equal(r.code, 2, `${key}: ${r.stdout}${r.stderr}`);
      assert.match(
        r.stderr,
        new RegExp(`qos\\.conf:\\d+: \\[path\\] ${key}: ${shared.replaceAll('/', '\\/')} is writable by everyone \\(mode 1777\\)`),
      );
      assert.equal(modeOf(shared), '1777');
    }
    // what is at stake is named per key
    s.write({ run: shared });
    assert.match((await cli3(['check', '-c', s.file])).stderr, /control socket/);
    s.write({ log: shared });
    assert.match((await cli3(['check', '-c', s.file])).stderr, /symlink/);
  } finally {
    rmSync(s.dir, { recursive: true, force: true });
  }
});

test('check refuses the shared system directories and directories other users own or can swap', async () => {
  const s = setup();
  try {
    for (const shared of ['/', '/tmp', '/var/tmp', '/dev/shm']) {
      s.write({ run: shared });
      const r = await cli3(['check', '-c', s.file]);
      assert.equal(r.code, 2, `${shared}: ${r.stderr}`);
      assert.match(r.stderr, /\[path\] run: .*shared/);
    }
    // owned by another user
    const theirs = join(s.dir, 'theirs');
    mkdirSync(theirs, { mode: 0o700 });
    chownSync(theirs, 12345, 12345);
    s.write({ state: theirs });
    let r = await cli3(['check', '-c', s.file]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /\[path\] state: .*owned by uid 12345/);
    // ours, but inside a directory another user owns: they can rename it away and put theirs
    const inside = join(theirs, 'ours');
    mkdirSync(inside, { mode: 0o700 });
    chownSync(inside, 0, 0);
    s.write({ state: inside });
    r = await cli3(['check', '-c', s.file]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /\[path\] state: .*theirs is owned by uid 12345/);
    // missing, to be created inside a world-writable directory: another user can create it first
    s.write({ run: join(sharedDir(s.dir), 'reselqos') });
    r = await cli3(['check', '-c', s.file]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /\[path\] run: .*does not exist and would be created in .*shared, which everyone can write/);
    // a plain file
    s.write({ log: s.file });
    r = await cli3(['check', '-c', s.file]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /\[path\] log: .*is not a directory/);
  } finally {
    rmSync(s.dir, { recursive: true, force: true });
  }
});

test('a group-writable directory draws a warning; our own directories (existing or to create) pass', async () => {
  const s = setup();
  try {
    mkdirSync(join(s.dir, 'run'), { mode: 0o700 });
    const group = join(s.dir, 'group');
    mkdirSync(group);
    chmodSync(group, 0o2770);
    s.write({ log: group });
    let r = await cli3(['check', '-c', s.file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning: .*qos\.conf:\d+: \[path\] log: .*group\b.*writable by its group/);
    s.write({});
    r = await cli3(['check', '-c', s.file]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /\[path\]/);
    // a sticky world-writable ancestor is fine for a directory we own (as /tmp/rq-dirs-*)
    const stickyOurs = join(sharedDir(s.dir), 'ours');
    mkdirSync(stickyOurs, { mode: 0o700 });
    s.write({ run: stickyOurs });
    r = await cli3(['check', '-c', s.file]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /\[path\]/);
  } finally {
    rmSync(s.dir, { recursive: true, force: true });
  }
});

test('start and run --once refuse a world-writable run directory before creating anything in it', async () => {
  const s = setup();
  try {
    const shared = sharedDir(s.dir);
    s.write({ run: shared });
    for (const verb of [['start'], ['run', '--once']]) {
      const r = await cli3([...verb, '-c', s.file]);
      assert.equal(r.code, 2, `${verb.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /\[path\] run: .*writable by everyone/);
      assert.equal(modeOf(shared), '1777');
      assert.deepEqual(readdirSync(shared), []);
    }
  } finally {
    rmSync(s.dir, { recursive: true, force: true });
  }
});
