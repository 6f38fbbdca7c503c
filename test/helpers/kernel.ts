// Read-back assertions shared by the real-kernel tests.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { readIpsets, readMangle } from '../../src/kernel/read.js';
import type { Exec } from '../../src/exec/exec.js';

export const cli = fileURLToPath(new URL('../../../dist/cli.js', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `node dist/cli.js ...args`. */
export function runCli(args: string[], timeoutMs = 120_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: timeoutMs }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** Our sets, and for each IP the sorted list of our sets holding it. */
export async function ourSets(exec: Exec): Promise<{ setOf: Map<string, string[]>; sets: Map<string, Set<string>> }> {
  const sets = await readIpsets(exec, (n) => /^(v6)?qos_[du]\d+$/.test(n));
  const setOf = new Map<string, string[]>();
  const out = new Map<string, Set<string>>();
  for (const [name, info] of sets) {
    out.set(name, new Set(info.entries));
    for (const ip of info.entries) setOf.set(ip, [...(setOf.get(ip) ?? []), name].sort());
  }
  return { setOf, sets: out };
}

/** Our two chains exist once per family, with one rule per group, each once, and one hook each. */
export async function assertRulesOnce(exec: Exec, groups = 6): Promise<void> {
  for (const family of [4, 6] as const) {
    const m = await readMangle(exec, family, (n) => n.startsWith('RESELQOS-'));
    assert.deepEqual([...m.chains.keys()].sort(), ['RESELQOS-down', 'RESELQOS-up']);
    assert.equal(m.hooks.length, 2, `exactly one hook per direction (v${family}): ${m.hooks.join(' | ')}`);
    for (const rules of m.chains.values()) {
      assert.equal(rules.length, groups);
      assert.equal(new Set(rules).size, groups, 'no duplicate rule');
      assert.ok(rules.every((r) => /--comment "?reselqos:/.test(r) && /CLASSIFY --set-class 0001:00[0-9a-f]{2}/.test(r)));
    }
  }
}
