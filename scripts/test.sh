#!/usr/bin/env bash
# The test command of the README (`npm test`): installs what is missing (Debian
# packages, npm packages), builds, and runs every test with node's test runner.
#   --unit   pure tests only (no root, no servers, no namespaces)
set -euo pipefail
cd "$(dirname "$0")/.."

unit_only=0
[ "${1:-}" = "--unit" ] && unit_only=1

if [ "$unit_only" = 0 ]; then
  bash scripts/install-deps.sh
fi
bash scripts/npm-deps.sh
npm run --silent build
npm run --silent build:test

if [ "$unit_only" = 1 ]; then
  exec node --test --test-concurrency=1 build/test/unit/
fi
# Real servers and real kernel: one file at a time (shaping is measured on 2 cores).
exec node --test --test-concurrency=1 build/test/
