#!/usr/bin/env bash
# The README's first command (`npm run demo`): installs what is missing, builds, and runs
# reselqos on a sandbox gateway (private slapd + MariaDB, network namespaces).
#   npm run demo -- --duration 120 --keep
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/npm-deps.sh
npm run --silent build
npm run --silent build:sandbox
exec node build/sandbox/demo.js "$@"
