#!/usr/bin/env bash
# The long fuzz run (issue 20): every parser of outside input (test/unit/fuzz-*.test.ts) with
# FUZZ_RUNS cases per property (default 100000; `npm test` runs the short, seeded pass).
# FUZZ_SEED picks another seed; a failure prints fast-check's seed and path to replay it
# (FUZZ_SEED=<seed> FUZZ_PATH=<path> node --test build/test/unit/fuzz-<parser>.test.js).
set -euo pipefail
cd "$(dirname "$0")/.."
npm run --silent build
npm run --silent build:test
export FUZZ_RUNS="${FUZZ_RUNS:-100000}"
echo "== fuzz: ${FUZZ_RUNS} cases per property, seed ${FUZZ_SEED:-20}"
status=0
for f in build/test/unit/fuzz-*.test.js; do
  start=$(date +%s)
  # one line per property: "fuzz <name>: <cases> cases in <ms> ms (seed <seed>)"
  if ! node --test --test-timeout=0 "$f" >"/tmp/fuzz-$$.out" 2>&1; then status=1; fi
  grep -E '^# fuzz |^not ok|Counterexample|Property failed' "/tmp/fuzz-$$.out" | sed 's/^# //' || true
  echo "   $(basename "$f" .test.js): $(( $(date +%s) - start )) s"
done
rm -f "/tmp/fuzz-$$.out"
exit $status
