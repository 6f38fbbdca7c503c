#!/usr/bin/env bash
# The test command of the README (`npm test`): installs what is missing (Debian
# packages, npm packages), then, fastest first so that a mistake fails in seconds:
# lint and type checks of every tree, the build, the pure unit tests, then the
# suites that need root (private slapd/mariadbd servers, network namespaces rq-*).
#   --unit   lint, type checks and pure tests only (no root, no servers, no namespaces)
set -euo pipefail
cd "$(dirname "$0")/.."

unit_only=0
[ "${1:-}" = "--unit" ] && unit_only=1

if [ "$unit_only" = 0 ]; then
  bash scripts/install-deps.sh
fi
bash scripts/npm-deps.sh
echo "== lint" && npm run --silent lint
echo "== typecheck" && npm run --silent typecheck
npm run --silent build
npm run --silent build:test
echo "== unit tests"
node --test --test-concurrency=1 build/test/unit/
[ "$unit_only" = 1 ] && exit 0
# Real servers and real kernel: one file at a time (shaping is measured on 2 cores).
echo "== root suites"
suites=()
for d in build/test/*/; do
  case "$d" in build/test/unit/|build/test/helpers/) ;; *) suites+=("$d") ;; esac
done
exec node --test --test-concurrency=1 "${suites[@]}"
