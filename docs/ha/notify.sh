#!/bin/sh
#
# notify.sh — keepalived's notify script for a reselqos HA pair (docs/INSTALL.md, "HA pair").
# Installed by the reselqos package as /usr/share/doc/reselqos/examples/ha/notify.sh; copy it
# to /etc/keepalived/reselqos-notify.sh (root, mode 0755) and name it in keepalived.conf:
#
#   vrrp_sync_group RESELQOS { ... notify /etc/keepalived/reselqos-notify.sh }
#
# keepalived calls it with: $1 = GROUP or INSTANCE, $2 = its name, $3 = the new state
# (MASTER, BACKUP, FAULT, STOP), $4 = the priority.
#
# Two jobs on each transition, in this order:
#  1. conntrackd (Primary-Backup): the conntrackd part is Debian's
#     /usr/share/doc/conntrackd/examples/sync/primary-backup.sh
#     (C) 2006-2011 by Pablo Neira Ayuso <pablo@netfilter.org>, GPL-2+,
#     turned into functions and driven by keepalived's state. On MASTER the synchronised
#     connections are committed to the kernel first, so that the users' open connections go on.
#  2. reselqos: `reselqos role master|backup|fault` tells the daemon who writes the shared
#     tables ([publish], [sharing]); it never changes the kernel (both gateways shape the same).
#     When the daemon is not running the role is kept in [path] run/ha-role for its start.
#
# The paths can be changed through the environment (a wrapper that exports them): the test
# suite (test/ha/failover.test.ts) runs this very script in network namespaces that way.

CONNTRACKD_BIN=${CONNTRACKD_BIN:-/usr/sbin/conntrackd}
CONNTRACKD_LOCK=${CONNTRACKD_LOCK:-/var/lock/conntrack.lock}
CONNTRACKD_CONFIG=${CONNTRACKD_CONFIG:-/etc/conntrackd/conntrackd.conf}
RESELQOS_BIN=${RESELQOS_BIN:-/usr/bin/reselqos}
RESELQOS_CONF=${RESELQOS_CONF:-/etc/reselqos/qos.conf}

say() {
	logger -t reselqos-notify "$*" 2>/dev/null || echo "reselqos-notify: $*" >&2
}

ct() {
	"$CONNTRACKD_BIN" -C "$CONNTRACKD_CONFIG" "$@"
}

conntrack_primary() {
	# commit the external cache into the kernel table
	ct -c || say "ERROR: failed to invoke conntrackd -c"
	# flush the internal and the external caches
	ct -f || say "ERROR: failed to invoke conntrackd -f"
	# resynchronize my internal cache to the kernel table
	ct -R || say "ERROR: failed to invoke conntrackd -R"
	# send a bulk update to backups
	ct -B || say "ERROR: failed to invoke conntrackd -B"
}

conntrack_backup() {
	# is conntrackd running? request some statistics to check it
	if ! ct -s >/dev/null 2>&1; then
		# something's wrong, do we have a lock file?
		if [ -f "$CONNTRACKD_LOCK" ]; then
			say "WARNING: conntrackd was not cleanly stopped (lock file $CONNTRACKD_LOCK removed)"
			rm -f "$CONNTRACKD_LOCK"
		fi
		ct -d || { say "ERROR: cannot launch conntrackd"; return 1; }
	fi
	# shorten kernel conntrack timers to remove the zombie entries
	ct -t || say "ERROR: failed to invoke conntrackd -t"
	# request resynchronization with master firewall replica (if any)
	ct -n || say "ERROR: failed to invoke conntrackd -n"
}

conntrack_fault() {
	# shorten kernel conntrack timers to remove the zombie entries
	ct -t || say "ERROR: failed to invoke conntrackd -t"
}

role() {
	"$RESELQOS_BIN" role "$1" -c "$RESELQOS_CONF" >/dev/null || say "ERROR: reselqos role $1 failed"
}

case "$3" in
MASTER)
	conntrack_primary
	role master
	;;
BACKUP)
	role backup
	conntrack_backup
	;;
FAULT)
	role fault
	conntrack_fault
	;;
STOP)
	# keepalived stops: this gateway no longer holds the addresses; it must not write
	role backup
	;;
*)
	say "ERROR: unknown state transition: $*"
	echo "usage: notify.sh GROUP|INSTANCE NAME MASTER|BACKUP|FAULT|STOP [PRIORITY]" >&2
	exit 1
	;;
esac
exit 0
