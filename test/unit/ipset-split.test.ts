// splitIpset (src/kernel/render.ts): a large set batch split over parallel `ipset restore`
// processes ends in the same kernel state as the one batch (ipsetPieces), whatever order the
// parts run in; an existing set's lines stay in one part, dels before adds (a set near its
// maxelem never overfills); the parts are balanced. On the fake kernel, random batches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TMP_SUFFIX } from '../../src/kernel/names.js';
import { ipsetLineCount, renderIpset, splitIpset } from '../../src/kernel/render.js';
import { FakeKernel } from '../helpers/fake-kernel.js';
import { scenario } from '../helpers/ipset-scenario.js';

const restore = async (k: FakeKernel, input: string | Iterable<string>): Promise<void> => {
  await k.exec('ipset', ['restore'], { input: typeof input === 'string' ? input : [...input].join('') });
};
const state = (k: FakeKernel): Map<string, string[]> => new Map([...k.sets].map(([n, s]) => [n, [...s.members].sort()]));

for (const seed of [1, 2, 3, 4, 5]) {
  test(`split over 2 and 3 parts, parts run in reverse order: the same sets as the one batch (seed ${seed})`, async () => {
    const { start, ops } = scenario(seed);
    const one = new FakeKernel([]);
    await restore(one, start);
    await restore(one, renderIpset(ops)!);
    for (const parts of [2, 3]) {
      const k = new FakeKernel([]);
      await restore(k, start);
      const split = splitIpset(ops, parts, { chunk: 1000 });
      assert.ok(split.prelude, 'the created and rebuilt sets are created first');
      await restore(k, split.prelude);
      for (const p of [...split.parts].reverse()) await restore(k, p());
      if (split.postlude) await restore(k, split.postlude);
      assert.deepEqual(state(k), state(one));
      assert.ok(![...k.sets.keys()].some((n) => n.endsWith(TMP_SUFFIX)), 'no temporary set left');

      // every existing set's lines in one part, its dels before its adds
      const texts = split.parts.map((p) => [...p()].join(''));
      for (const op of ops.filter((o) => !o.create && !o.rebuild && o.del.length + o.add.length > 0)) {
        const holders = texts.filter((t) => t.includes(` ${op.name} `));
        assert.equal(holders.length, 1, `${op.name} in one part`);
        const lines = holders[0]!.split('\n').filter((l) => l.includes(` ${op.name} `));
        const firstAdd = lines.findIndex((l) => l.startsWith('add '));
        const lastDel = lines.map((l) => l.startsWith('del ')).lastIndexOf(true);
        assert.ok(firstAdd === -1 || lastDel < firstAdd, `${op.name}: dels before adds`);
      }
      // balanced: no part over its share by more than the largest unit that cannot be cut
      const loads = texts.map((t) => t.split('\n').length - 1);
      const total = loads.reduce((a, b) => a + b, 0);
      const biggestWhole = Math.max(0, ...ops.filter((o) => !o.create && !o.rebuild).map((o) => 1 + o.del.length + o.add.length));
      assert.ok(Math.max(...loads) <= Math.ceil(total / parts) + Math.max(biggestWhole, 1000), `loads ${loads.join('/')}`);
    }
  });
}

test('the same lines as the one batch, and nothing else (the line count is that of ipsetLineCount, less the creates moved out)', () => {
  const { ops } = scenario(9);
  const split = splitIpset(ops, 2);
  const all = [split.prelude ?? '', ...split.parts.map((p) => [...p()].join('')), split.postlude ?? ''].join('');
  const sorted = (t: string): string[] => t.split('\n').filter(Boolean).sort();
  assert.deepEqual(sorted(all), sorted(renderIpset(ops)!));
  assert.equal(sorted(all).length, ipsetLineCount(ops));
});
