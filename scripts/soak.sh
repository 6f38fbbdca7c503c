#!/usr/bin/env bash
# `npm run soak -- --minutes N`: the real daemon on the sandbox gateway under injected faults
# (docs/RELIABILITY.md). Installs what is missing, builds, runs; the last line is one JSON object.
#   npm run soak -- --minutes 60 --log /tmp/soak-daemon.log
exec bash "$(dirname "$0")/sandbox.sh" soak "$@"
