// The seeded property runs of test/unit/fuzz-*.test.ts (fast-check, with shrinking). How many
// cases and from which seed come from the environment, so `npm test` runs a short, fixed and
// reproducible pass and `scripts/fuzz.sh` the long one:
//   FUZZ_RUNS   cases per property (default: the property's own short count, a few seconds)
//   FUZZ_SEED   the seed (default 20, fixed: CI replays the same cases)
//   FUZZ_PATH   with FUZZ_SEED, replays one failure as fast-check printed it (its "path")
// Every property prints one line `fuzz <name>: <cases> cases in <ms> ms (seed <seed>)` on
// stderr; a failure throws fast-check's report (seed, path, the shrunk counterexample).
import fc from 'fast-check';

export const FUZZ_SEED = Number(process.env['FUZZ_SEED'] ?? 20);
const RUNS = process.env['FUZZ_RUNS'] === undefined ? null : Number(process.env['FUZZ_RUNS']);

/** Cases for a property whose short run is `short`. */
export function fuzzRuns(short: number): number {
  return RUNS !== null && Number.isSafeInteger(RUNS) && RUNS > 0 ? RUNS : short;
}

function params<T>(short: number, extra: fc.Parameters<T>): fc.Parameters<T> {
  const path = process.env['FUZZ_PATH'];
  return { seed: FUZZ_SEED, numRuns: fuzzRuns(short), ...(path ? { path } : {}), ...extra };
}

function report<T>(name: string, details: fc.RunDetails<T>, ms: number): void {
  process.stderr.write(`fuzz ${name}: ${details.numRuns} cases in ${Math.round(ms)} ms (seed ${FUZZ_SEED})\n`);
  if (!details.failed) return;
  const why = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
  throw new Error(`fuzz ${name}: ${why}\n${fc.defaultReportMessage(details)}`);
}

/** Runs a synchronous property; throws the shrunk counterexample with its seed on failure. */
export function fuzz<T>(name: string, short: number, property: fc.IProperty<T>, extra: fc.Parameters<T> = {}): void {
  const t0 = performance.now();
  const details = fc.check(property, params(short, extra));
  report(name, details, performance.now() - t0);
}

/** The same for an asynchronous property (each case bounded by `timeout` ms: a hang fails). */
export async function fuzzAsync<T>(
  name: string,
  short: number,
  property: fc.IAsyncProperty<T>,
  extra: fc.Parameters<T> = {},
): Promise<void> {
  const t0 = performance.now();
  const details = await fc.check(property, params(short, { timeout: 5000, ...extra }));
  report(name, details, performance.now() - t0);
}

/** Fails when one case took longer than `ms` (a synchronous parser cannot be interrupted: a hang shows as time). */
export function timed<R>(what: string, ms: number, fn: () => R): R {
  const t0 = performance.now();
  const out = fn();
  const took = performance.now() - t0;
  if (took > ms) throw new Error(`${what} took ${Math.round(took)} ms (more than ${ms} ms)`);
  return out;
}
