#!/bin/sh
# scripts/prometheus.sh — bring `prometheus` and `promtool` from Debian's `prometheus` package into
# a cache directory, for the tests of docs/prometheus/ and docs/grafana/ (test/prometheus/):
# `apt-get download prometheus` then `dpkg-deb -x`. The package is NOT installed: no service, no
# system user, nothing under /etc or /usr. Idempotent: nothing is fetched when both binaries are
# in the cache and run. Prints the directory holding the two binaries on its last line.
#   RESELQOS_PROMETHEUS_CACHE   the cache directory (default: .cache/prometheus in the checkout)
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${RESELQOS_PROMETHEUS_CACHE:-$root/.cache/prometheus}
bin=$cache/usr/bin

works() { [ -x "$bin/prometheus" ] && [ -x "$bin/promtool" ] && "$bin/promtool" --version >/dev/null 2>&1; }

if works; then
  echo "$bin"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
  echo "prometheus.sh: apt-get and dpkg-deb are needed to fetch Debian's prometheus package" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Downloaded as root into a directory of ours (the _apt sandbox user cannot write into mktemp -d).
cd "$tmp"
if ! apt-get download -qq -o APT::Sandbox::User=root prometheus >&2; then
  # A bare machine whose package lists were never read: read them once, then try again.
  echo "prometheus.sh: apt-get download failed; apt-get update and one more try" >&2
  apt-get update -qq >&2
  apt-get download -qq -o APT::Sandbox::User=root prometheus >&2
fi
deb=$(ls "$tmp"/prometheus_*.deb)

# Unpack beside the cache, then swap it in: an interrupted run never leaves half a cache.
mkdir -p "$(dirname "$cache")"
rm -rf "$cache.new"
dpkg-deb -x "$deb" "$cache.new"
rm -rf "$cache"
mv "$cache.new" "$cache"

if ! works; then
  echo "prometheus.sh: $bin/promtool does not run after unpacking $(basename "$deb")" >&2
  exit 1
fi
echo "prometheus.sh: $(basename "$deb") unpacked into $cache" >&2
echo "$bin"
