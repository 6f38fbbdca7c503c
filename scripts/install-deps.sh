#!/usr/bin/env bash
# scripts/install-deps.sh — install the system tools the tests, the benchmark and the demo need
# (slapd, ldap-utils, mariadb server + client, ipset, iptables, nftables, iproute2, iperf3; chromium for the
# dashboard's browser test; man-db and groff-base for rendering the man pages; keepalived and
# conntrackd for the HA pair's failover test, test/ha/) on Debian/Ubuntu.
# Idempotent: does nothing when every command is already there. Never leaves the system slapd or
# mariadb services running: the test suite starts its own private servers (sandbox/).
set -euo pipefail

PACKAGES=(slapd ldap-utils mariadb-server mariadb-client ipset iptables nftables iproute2 iperf3 logrotate openssl chromium man-db groff-base keepalived conntrackd)
COMMANDS=(slapd ldapsearch mariadbd mariadb-install-db mariadb ipset iptables nft ip6tables ip tc iperf3 logrotate openssl chromium man groff keepalived conntrackd)

# sbin dirs are not always on root's PATH (sudo, containers)
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

missing=()
for c in "${COMMANDS[@]}"; do
  command -v "$c" >/dev/null 2>&1 || missing+=("$c")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: nothing to do (all of ${COMMANDS[*]} present)"
  exit 0
fi

if [ "${EUID}" -ne 0 ]; then
  echo "install-deps: missing ${missing[*]}; run as root to install: ${PACKAGES[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: missing ${missing[*]} and apt-get is not available; install ${PACKAGES[*]} by hand" >&2
  exit 1
fi

# Keep maintainer scripts from starting slapd/mariadb: policy-rc.d exit 101 = "action forbidden"
# (honoured by invoke-rc.d and deb-systemd-invoke). Only if there is none already; removed after.
POLICY=/usr/sbin/policy-rc.d
created_policy=0
cleanup() {
  if [ "$created_policy" -eq 1 ]; then rm -f "$POLICY"; fi
}
trap cleanup EXIT
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# temporary, written by reselqos scripts/install-deps.sh\nexit 101\n' >"$POLICY"
  chmod 755 "$POLICY"
  created_policy=1
fi

# Which system daemons were running before us (we only stop the ones the install started).
was_running() { [ -f "$1" ] && kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null; }
slapd_before=0; mariadb_before=0
was_running /run/slapd/slapd.pid && slapd_before=1
was_running /run/mysqld/mysqld.pid && mariadb_before=1
keepalived_before=0; conntrackd_before=0
was_running /run/keepalived.pid && keepalived_before=1
if [ -d /run/systemd/system ] && systemctl is-active --quiet conntrackd 2>/dev/null; then conntrackd_before=1; fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null

# Belt and braces: if a system daemon came up anyway (no policy-rc.d honoured, systemd socket
# activation, ...), stop it. Only the system instances use these pid files; the sandbox servers
# keep theirs in their own temp dirs.
stopped=()
stop_service() { # name pidfile
  local name=$1 pidfile=$2 pid
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl stop "$name" >/dev/null 2>&1 || true
  fi
  if was_running "$pidfile"; then
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
  stopped+=("$name")
}
if [ "$slapd_before" -eq 0 ] && was_running /run/slapd/slapd.pid; then stop_service slapd /run/slapd/slapd.pid; fi
if [ "$mariadb_before" -eq 0 ] && was_running /run/mysqld/mysqld.pid; then stop_service mariadb /run/mysqld/mysqld.pid; fi
# keepalived and conntrackd: the HA test runs its own in namespaces; a system instance would
# take addresses or sync connections of the host
if [ "$keepalived_before" -eq 0 ] && was_running /run/keepalived.pid; then stop_service keepalived /run/keepalived.pid; fi
if [ "$conntrackd_before" -eq 0 ] && [ -d /run/systemd/system ] && systemctl is-active --quiet conntrackd 2>/dev/null; then
  stop_service conntrackd /nonexistent
fi

still=()
for c in "${COMMANDS[@]}"; do
  command -v "$c" >/dev/null 2>&1 || still+=("$c")
done
if [ "${#still[@]}" -ne 0 ]; then
  echo "install-deps: installed ${PACKAGES[*]} but still missing: ${still[*]}" >&2
  exit 1
fi

msg="install-deps: installed ${PACKAGES[*]} (was missing: ${missing[*]})"
if [ "${#stopped[@]}" -ne 0 ]; then msg+="; stopped system services the install started: ${stopped[*]}"; fi
echo "$msg"
