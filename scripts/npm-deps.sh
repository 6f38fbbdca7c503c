#!/usr/bin/env bash
# Installs npm dependencies from package-lock.json when node_modules is missing or
# older than the lock file. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
