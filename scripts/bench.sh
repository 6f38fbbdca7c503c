#!/usr/bin/env bash
# The benchmark (`npm run bench`, `npm run bench -- --quick` for CI): installs what is
# missing (Debian packages, npm packages), builds, then runs bench/bench.ts. Needs root:
# it starts private slapd and mariadbd servers on loopback and network namespaces rq-*,
# and stops/removes all of them at the end (also on error or Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
bash scripts/npm-deps.sh
npm run --silent build
npm run --silent build:bench
exec node build/bench/bench.js "$@"
