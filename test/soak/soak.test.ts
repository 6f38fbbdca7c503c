// The two-minute soak of `npm test` (issue 11): the real daemon on the sandbox gateway under
// the whole fault schedule; the soak must inject at least five faults, see no violation of
// its invariants, and end with its one JSON line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const soakJs = fileURLToPath(new URL('../../sandbox/soak.js', import.meta.url));
const KEYS = ['minutes', 'cycles', 'failedCycles', 'faults', 'violations', 'maxRepairCycles', 'rssStartMB', 'rssEndMB', 'fdStart', 'fdEnd'];

function runSoak(minutes: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [soakJs, '--minutes', String(minutes)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

test('a two-minute soak: at least five faults, every one repaired within two cycles, no violation', { timeout: 8 * 60_000 }, async () => {
  const { code, out } = await runSoak(2);
  const lines = out.trim().split('\n');
  const last = lines[lines.length - 1] ?? '';
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(last) as Record<string, unknown>;
  } catch {
    assert.fail(`the last line is not JSON (exit ${code}):\n${out.slice(-3000)}`);
  }
  assert.deepEqual(Object.keys(r).sort(), [...KEYS].sort(), last);
  for (const k of KEYS) assert.equal(typeof r[k], 'number', `${k} in ${last}`);
  const problems = lines.filter((l) => /VIOLATION|NOT repaired|could not inject/.test(l) || /^\s{6}/.test(l)).join('\n');
  assert.equal(r['minutes'], 2);
  assert.ok((r['faults'] as number) >= 5, `faults ${String(r['faults'])} < 5`);
  assert.ok((r['cycles'] as number) > 20, `cycles ${String(r['cycles'])}`);
  assert.equal(r['violations'], 0, `${last}\nviolations:\n${problems}`);
  assert.ok((r['maxRepairCycles'] as number) <= 2, last);
  assert.equal(code, 0, out.slice(-2000));
  assert.deepEqual(
    lines.filter((l) => /could not inject/.test(l)),
    [],
    'every fault was injected',
  );
  // Progress: one line per fault.
  assert.equal(lines.filter((l) => /^fault \d+ /.test(l)).length, r['faults']);
});
