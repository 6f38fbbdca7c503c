// scripts/package-refs.mjs LIBDIR — the references scripts/package.sh checks before and after
// pruning node_modules: prints one line per reference that does NOT resolve, sorted, and the
// count of references checked on stderr. package.sh fails when pruning adds a line, i.e. when
// a deleted file was the target of
//   - a package's entry point: package.json `main`, `bin`, and every `exports` target except
//     those under a `types`/`typings` condition (what Node resolves for `import`/`require`);
//   - a literal specifier of require('...'), import ... from '...', import('...') or
//     require.resolve('...') in a remaining .js/.cjs/.mjs file of dist/ or node_modules/
//     (relative, or a package's subpath such as 'uplot/dist/uPlot.iife.min.js').
// A reference unresolved before pruning too (a browser-only file, a regex false positive in a
// comment) cancels out in the comparison. Dynamic specifiers are not seen: the root test
// (test/daemon/package.test.ts) runs the shipped daemon for those.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';

const lib = resolve(process.argv[2] ?? '.');
const CODE = /\.(c|m)?js$/;
const SPEC = /(?:\brequire(?:\.resolve)?\s*\(\s*|\bimport\s*\(\s*|\bfrom\s*|\bimport\s+)(['"])((?:\.{1,2}\/|[@a-z])[^'"\s]*)\1/g;
const missing = new Set();
let checked = 0;

function* walk(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else if (e.isFile()) yield p;
  }
}

function note(from, spec, ok) {
  checked++;
  if (!ok) missing.add(`${relative(lib, from)} -> ${spec}`);
}

const exists = (p) => {
  try {
    return statSync(p).isFile() || existsSync(join(p, 'package.json')) || existsSync(join(p, 'index.js'));
  } catch {
    return false;
  }
};

/** Every string target of an exports map, skipping type-only conditions. */
function* targets(x, key = '') {
  if (key === 'types' || key === 'typings') return;
  if (typeof x === 'string') yield x;
  else if (Array.isArray(x)) for (const v of x) yield* targets(v);
  else if (x && typeof x === 'object') for (const [k, v] of Object.entries(x)) yield* targets(v, k);
}

function entryPoints(pkgFile) {
  const pkg = JSON.parse(readFileSync(pkgFile, 'utf8'));
  if (typeof pkg.name !== 'string') return; // a {"type": "module"} marker, not a package
  const dir = dirname(pkgFile);
  const t = [];
  if (typeof pkg.main === 'string' && pkg.main !== '') t.push(pkg.main);
  if (typeof pkg.bin === 'string') t.push(pkg.bin);
  else if (pkg.bin && typeof pkg.bin === 'object') t.push(...Object.values(pkg.bin));
  if (pkg.exports !== undefined) t.push(...[...targets(pkg.exports)].filter((s) => !s.includes('*')));
  for (const s of t) {
    const p = resolve(dir, s);
    note(pkgFile, s, exists(p) || exists(`${p}.js`) || exists(`${p}.json`));
  }
}

function specifiers(file) {
  const text = readFileSync(file, 'utf8');
  const req = createRequire(file);
  for (const m of text.matchAll(SPEC)) {
    const spec = m[2];
    if (spec.startsWith('node:')) continue;
    let ok;
    try {
      const r = req.resolve(spec);
      ok = !r.startsWith('/') || existsSync(r); // a builtin resolves to its own name
    } catch {
      // an ESM-only exports map refuses require.resolve: a relative file may still be there
      ok = spec.startsWith('.') && exists(resolve(dirname(file), spec));
    }
    note(file, spec, ok);
  }
}

for (const top of ['dist', 'node_modules']) {
  const root = join(lib, top);
  if (!existsSync(root)) continue;
  for (const f of walk(root)) {
    if (f.endsWith('/package.json')) entryPoints(f);
    else if (CODE.test(f)) specifiers(f);
  }
}
for (const l of [...missing].sort()) console.log(l);
console.error(`${checked} references checked, ${missing.size} unresolved`);
