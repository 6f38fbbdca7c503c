#!/usr/bin/env bash
# The README's first command (`npm run demo`): installs what is missing, builds, and runs
# reselqos on a sandbox gateway (private slapd + MariaDB, network namespaces).
#   npm run demo -- --duration 120 --keep
exec bash "$(dirname "$0")/sandbox.sh" demo "$@"
