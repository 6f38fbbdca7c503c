// A random batch of set operations over existing sets (moves with dels and adds, maxelem exactly
// the size so that an add before its del would overfill), a created set and a rebuilt one: the
// input of the real-kernel batch test (test/kernel/kernel.test.ts).
import type { SetOp } from '../../src/kernel/diff.js';
import { createLine } from '../../src/kernel/render.js';
import { prng } from '../../sandbox/campus.js';

const ip4 = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

/** A kernel with `existing` sets holding members, and a random batch over them (moves, a created set, a rebuild). */
export function scenario(seed: number): { start: string; ops: SetOp[] } {
  const rnd = prng(seed);
  const start: string[] = [];
  const ops: SetOp[] = [];
  let next = 1;
  for (let s = 0; s < 6; s++) {
    const name = `qos_d${s}`;
    const size = Math.floor(rnd() * 3000);
    const members = Array.from({ length: size }, () => ip4(next++));
    // maxelem exactly what the set holds before and after: an add before its del would overfill
    const maxelem = Math.max(1, size);
    start.push(createLine(name, { family: 'inet', maxelem }), ...members.map((m) => `add ${name} ${m}`));
    const del = members.filter(() => rnd() < 0.3);
    const add = del.map(() => ip4(next++));
    ops.push({ name, family: 'inet', maxelem, create: false, add, del, rebuild: null });
  }
  ops.push({
    name: 'qos_u0',
    family: 'inet',
    maxelem: 65536,
    create: true,
    add: Array.from({ length: Math.floor(rnd() * 20000) }, () => ip4(next++)),
    del: [],
    rebuild: null,
  });
  start.push(createLine('qos_allow', { family: 'inet', maxelem: 8 }), 'add qos_allow 10.255.0.1');
  ops.push({
    name: 'qos_allow',
    family: 'inet',
    maxelem: 65536,
    create: false,
    add: [],
    del: [],
    rebuild: Array.from({ length: Math.floor(rnd() * 12000) + 1 }, () => ip4(next++)),
  });
  return { start: start.join('\n') + '\n', ops };
}
