#!/usr/bin/env bash
# Runs one of the sandbox programs (build/sandbox/NAME.js: demo, soak) after installing what is
# missing (Debian packages, npm packages) and building the product and the sandbox.
#   bash scripts/sandbox.sh demo --duration 120
set -euo pipefail
cd "$(dirname "$0")/.."
name="$1"
shift
bash scripts/install-deps.sh
bash scripts/npm-deps.sh
npm run --silent build
npm run --silent build:sandbox
exec node "build/sandbox/$name.js" "$@"
