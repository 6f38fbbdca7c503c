#!/bin/bash
# scripts/vm/runner.sh — the distribution lane's checks, run inside the Debian 13 VM by
# rq-lane.service at every boot (from the lane disk /dev/vdb; see scripts/vm/lane.sh).
# Phase 1 (first boot): install the .deb, shaping with each classifier/leaf, the systemd
# service checks, then reboot with the unit enabled and the LDAP/MySQL servers stopped.
# Phase 2 (after the reboot): the boot check, logrotate under load, both iptables backends,
# apt remove and purge; the summary; poweroff.
# One line per check ("name PASS|FAIL figures") on /dev/ttyS1 (the host's results file).
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C.UTF-8
LANE=/opt/rq-lane
ST=/var/lib/rq-lane
CONF=/etc/reselqos/qos.conf
OUT=/dev/ttyS1
mkdir -p "$ST"
# RQ_* settings from the host (lane.sh writes them to the lane disk).
[ -r /mnt/lane/lane.env ] && . /mnt/lane/lane.env
ONLY=${RQ_ONLY:-}   # e.g. "install shaping": run only those groups (debugging)
want() { [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; }

# Rates sized for TCG (QEMU without KVM): a few Mbit/s.
DOWN=${RQ_DOWN:-6Mbit}
UP=${RQ_UP:-4Mbit}
# 20 s after 2 s of slow start: over 10 s, the slow sfq upload flow measured +2 % on an idle host and
# -10.6 % at host load 4-14 under TCG (71 drops in its class; sfq's 127 packets are ~1 s of queue at 1.5 Mbit/s).
SECS=${RQ_IPERF_SECONDS:-20}
ALICE=172.22.250.3
BOB=172.22.251.3
CAROL=172.22.250.4
DAVE=172.22.251.4
WAN=198.51.100.10

say() { echo "lane: $*" >/dev/console; echo "$(date +%T) $*" >>"$ST/log"; }
check() { # NAME PASS|FAIL FIGURES...
	local name=$1 st=$2
	shift 2
	local line
	line=$(printf '%-34s %s  %s' "$name" "$st" "$*")
	echo "$line" >>"$ST/results"
	echo "$line" >"$OUT"
	echo "lane: $line" >/dev/console
}
pass_if() { # NAME CONDITION-EXIT FIGURES
	local name=$1 rc=$2
	shift 2
	if [ "$rc" -eq 0 ]; then check "$name" PASS "$*"; else
		check "$name" FAIL "$*"
		{ echo "---- $name: journalctl -u reselqos (last 40 lines)"; journalctl -u reselqos -n 40 --no-pager; echo "----"; } >/dev/console 2>&1
	fi
}
wait_for() { # SECONDS CMD...: until CMD succeeds
	local end=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -ge "$end" ] && return 1
		sleep 1
	done
}
jcycles() { # cycle lines of reselqos.service in the journal since epoch $1 (this boot)
	journalctl -b -u reselqos.service -o cat --since "@$1" 2>/dev/null | grep -E 'cycle (ok|failed)'
}
n_cycles_since() { jcycles "$1" | grep -c 'cycle ok'; }
wait_cycle() { # SECONDS SINCE-EPOCH [N]: until N "cycle ok" lines since the epoch
	local need=${3:-1}
	wait_for "$1" bash -c "[ \$(journalctl -b -u reselqos.service -o cat --since @$2 | grep -c 'cycle ok') -ge $need ]"
}
mainpid() { systemctl show -p MainPID --value reselqos.service; }
pct() { awk -v m="$1" -v w="$2" 'BEGIN { printf "%+.1f%%", (m - w) * 100 / w }'; }
within10() { awk -v m="$1" -v w="$2" 'BEGIN { exit !(w > 0 && m >= w * 0.9 && m <= w * 1.1) }'; }
# Drops of an HTB class (its leaf's) since the tree was built: class_drops DEV CLASSID
class_drops() {
	tc -s class show dev "$1" | awk -v id="$2" '
		$1 == "class" { mine = ($2 == "htb" && $3 == id); next }
		mine && /dropped/ { sub(/.*dropped /, ""); sub(/,.*/, ""); print; found = 1; exit }
		END { if (!found) print -1 }'
}
# Two flows of two groups measured at once, against their policy rates:
# pair_ok NAME_A MA PA DROPS_A NAME_B MB PB DROPS_B (rates in bit/s, drops of each flow's class).
# Each within +-10 %; else, as HTB shares the link (ceil = the link): a flow under its rate whose
# class dropped nothing was not held back by the shaper (the TCG guest did not send faster), and
# the other flow may then borrow what it left (its excess at most that slack + 10 %); the two
# together stay within 110 % of their policies. Prints how it judged; exit 0 when it holds.
pair_ok() {
	awk -v na="$1" -v ma="$2" -v pa="$3" -v da="$4" -v nb="$5" -v mb="$6" -v pb="$7" -v db="$8" '
	function judge(n, m, p, d, slack) {
		if (m < 0.9 * p) { if (d == 0) why = why " " n " sender-limited (class dropped 0)"; else { ok = 0; why = why " " n " under (class dropped " d ")" } }
		if (m > 1.1 * p) { if (m <= 1.1 * p + slack) why = why " " n " borrowed the slack"; else { ok = 0; why = why " " n " over" } }
	}
	BEGIN {
		ok = 1; why = ""
		if (pa <= 0 || pb <= 0) exit 1
		if (ma + mb > 1.1 * (pa + pb)) { ok = 0; why = why " sum over the policies" }
		judge(na, ma, pa, da, (pb > mb ? pb - mb : 0))
		judge(nb, mb, pb, db, (pa > ma ? pa - ma : 0))
		print why
		exit !ok
	}'
}
mbit() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1e6 }'; }

write_conf() { # CLASSIFIER LEAF DOWN UP [FAIRNESS]
	. "$ST/servers.env"
	umask 077
	local FAIR_DEFAULT=host; [ "$2" = sfq ] && FAIR_DEFAULT=flow
	cat >"$CONF" <<CONF
; written by the reselqos VM lane (scripts/vm/runner.sh)
[ldap]
host = $LDAP_URL
pageSize = 200
timeout = 5s
connectTimeout = 2s

[database]
host = $DB_HOST:$DB_PORT
user = $DB_USER
password = $DB_PASS
db = netacct
timeout = 5s
connectTimeout = 2s

[firewall]
eth_ext = ext0
eth_int = int0
areaPrefix = 172.22.
areaOtherPrefix = 172.23.
area6Prefix = 2001:db8:d
net6 = 2001:db8:d000::/36

[rates]
down = $3
up = $4

[qos]
timezone = UTC
classifier = $1
leaf = $2
fairness = ${5:-$FAIR_DEFAULT}
interval = 3s
count = active
verifyInterval = 5s
; 1 % of the total (default 1Mbit = 10 % at these TCG-sized rates): the idle default class lends
; its rate to the busy classes (ceil 100 %), which would show as +10 % over the per-user policy.
defaultRate = 100kbit

[log]
level = info
CONF
	chmod 600 "$CONF"
	umask 022
}

start_servers() {
	rm -f "$ST/servers.env"
	(cd "$LANE" && setsid node servers.mjs "$ST/servers.env" >>"$ST/servers.log" 2>&1 </dev/null &)
	local t0=$SECONDS
	sleep 2
	local pid
	pid=$(pgrep -n -f 'node servers.mjs')
	if wait_for 1200 bash -c "[ -f $ST/servers.env ] || ! kill -0 ${pid:-1}" && [ -f "$ST/servers.env" ]; then
		. "$ST/servers.env"
		say "servers up in $((SECONDS - t0)) s: $LDAP_URL $DB_HOST:$DB_PORT"
		return 0
	fi
	say "servers did not start after $((SECONDS - t0)) s:"
	cat "$ST/servers.log" >/dev/console
	return 1
}
stop_servers() {
	[ -f "$ST/servers.env" ] || return 0
	. "$ST/servers.env"
	kill "$SERVERS_PID" 2>/dev/null
	wait_for 60 bash -c "! kill -0 $SERVERS_PID"
	rm -f "$ST/servers.env.stopped"
	mv "$ST/servers.env" "$ST/servers.env.stopped"
	cp "$ST/servers.env.stopped" "$ST/servers.env.last"
}

iperf_servers() {
	pkill -F "$ST/iperf1.pid" 2>/dev/null; pkill -F "$ST/iperf2.pid" 2>/dev/null
	ip netns exec rq-wan iperf3 -s -p 5201 -D -I "$ST/iperf1.pid" >/dev/null 2>&1
	ip netns exec rq-wan iperf3 -s -p 5202 -D -I "$ST/iperf2.pid" >/dev/null 2>&1
	sleep 1
}
fairness_servers() { # carol on 5203, dave on 5204
	pkill -F "$ST/iperf3.pid" 2>/dev/null; pkill -F "$ST/iperf4.pid" 2>/dev/null
	ip netns exec rq-wan iperf3 -s -p 5203 -D -I "$ST/iperf3.pid" >/dev/null 2>&1
	ip netns exec rq-wan iperf3 -s -p 5204 -D -I "$ST/iperf4.pid" >/dev/null 2>&1
	sleep 1
}
# rtt SRC SECONDS: ping the wan from SRC at 5 Hz; prints "median p95" in ms ("-1 -1" when none came back)
rtt() {
	ip netns exec rq-users ping -n -i 0.2 -w "$2" -I "$1" "$WAN" 2>/dev/null |
		sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' | sort -n |
		awk '{ v[NR] = $1 } END { if (NR == 0) { print "-1 -1"; exit } m = v[int((NR + 1) / 2)]; i = int(NR * 0.95); if (i < NR * 0.95) i++; print m, v[i] }'
}
# received FILE...: each iperf3 -J result's received bit/s (all its streams), 0 when it failed
received() {
	node -e 'const fs=require("fs");const r=[];for(const f of process.argv.slice(1)){try{r.push(Math.round(JSON.parse(fs.readFileSync(f,"utf8")).end.sum_received.bits_per_second))}catch{r.push(0)}}console.log(r.join(" "))' "$@"
}
# iperf_pair [-R]: alice on 5201 and bob on 5202 at once; prints "bitsA bitsB" (received).
iperf_pair() {
	ip netns exec rq-users iperf3 -c "$WAN" -B "$ALICE" -p 5201 -t "$SECS" -O 2 "$@" -J >"$ST/a.json" 2>&1 &
	local a=$!
	ip netns exec rq-users iperf3 -c "$WAN" -B "$BOB" -p 5202 -t "$SECS" -O 2 "$@" -J >"$ST/b.json" 2>&1 &
	local b=$!
	wait "$a" "$b"
	node -e 'const fs=require("fs");const r=[];for(const f of process.argv.slice(1)){try{r.push(Math.round(JSON.parse(fs.readFileSync(f,"utf8")).end.sum_received.bits_per_second))}catch{r.push(0)}}console.log(r.join(" "))' "$ST/a.json" "$ST/b.json"
}
# Per-user policy rates (bit/s) from `reselqos plan --json`: "down0 down5 up0 up2".
policy_rates() {
	reselqos plan -c "$CONF" --json >"$ST/plan.json" 2>"$ST/plan.err" || return 1
	node -e '
		const p = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
		const r = (d, g) => { const c = p.classes.find((x) => x.direction === d && x.group === g); return c && c.users ? Math.round(c.rateBps / c.users) : 0; };
		console.log([r("down", 0), r("down", 5), r("up", 0), r("up", 2)].join(" "));' "$ST/plan.json"
}
our_rules() { # our iptables lines, both tables (mangle, filter)
	{ iptables-save -t mangle; iptables-save -t filter; } 2>/dev/null | grep -E '^-A' | grep -iE 'reselqos|qos_' || true
}

# ------------------------------------------------------------------------ checks
shaping() { # CLASSIFIER LEAF
	local cl=$1 leaf=$2 name="shaping $1+$2"
	write_conf "$cl" "$leaf" "$DOWN" "$UP"
	reselqos clear -c "$CONF" >>"$ST/log" 2>&1
	local out rc
	out=$(reselqos run --once -c "$CONF" 2>&1); rc=$?
	if [ "$rc" -ne 0 ]; then check "$name" FAIL "run --once exit $rc: $(echo "$out" | tail -n 3 | tr '\n' ' ')"; return; fi
	local rates
	rates=$(policy_rates) || { check "$name" FAIL "plan --json failed: $(tail -n 3 "$ST/plan.err" | tr '\n' ' ')"; return; }
	set -- $rates
	local pd0=$1 pd5=$2 pu0=$3 pu2=$4
	local kinds
	kinds=$(tc qdisc show dev int0 | awk '{print $2}' | sort | uniq -c | tr -s ' ' | tr '\n' ',')
	local filt ok=0
	if [ "$cl" = fw ]; then
		tc filter show dev int0 | grep -q ' fw ' || ok=1
		filt="fw filters $(tc filter show dev int0 | grep -c 'handle 0x')"
	else
		iptables-save -t mangle | grep -q CLASSIFY || ok=1
		filt="CLASSIFY rules $(iptables-save -t mangle | grep -c CLASSIFY)"
	fi
	tc qdisc show dev int0 | grep -q "qdisc $leaf " || ok=1
	set -- $(iperf_pair -R)
	local d0=$1 d5=$2
	local dd0 dd5 du0 du2 jd ju
	dd0=$(class_drops int0 1:10) dd5=$(class_drops int0 1:15)
	set -- $(iperf_pair)
	local u0=$1 u2=$2
	du0=$(class_drops ext0 1:10) du2=$(class_drops ext0 1:12)
	jd=$(pair_ok g0 "$d0" "$pd0" "$dd0" g5 "$d5" "$pd5" "$dd5") || ok=1
	ju=$(pair_ok g0 "$u0" "$pu0" "$du0" g2 "$u2" "$pu2" "$du2") || ok=1
	local judged=""
	[ -n "$jd" ] && judged="$judged; down:$jd"
	[ -n "$ju" ] && judged="$judged; up:$ju"
	if [ "$ok" -ne 0 ]; then
		{ echo "---- $name: kernel state after the measurement"; ipset list qos_d0; ipset list qos_d5; ipset list qos_u0; ipset list qos_u2
		  tc -s class show dev int0; tc filter show dev int0; tc -s class show dev ext0; iptables-save -t mangle -c; cat "$ST/plan.json"; echo "----"; } >/dev/console 2>&1
	fi
	pass_if "$name" "$ok" "down g0 $(mbit "$d0")/$(mbit "$pd0") ($(pct "$d0" "$pd0")) g5 $(mbit "$d5")/$(mbit "$pd5") ($(pct "$d5" "$pd5")); up g0 $(mbit "$u0")/$(mbit "$pu0") ($(pct "$u0" "$pu0")) g2 $(mbit "$u2")/$(mbit "$pu2") ($(pct "$u2" "$pu2")) Mbit/s measured/policy; class drops d $dd0/$dd5 u $du0/$du2$judged; int0 qdiscs ${kinds%,}; $filt"
}

# fairness LEAF MODE ([qos] fairness): carol (1 TCP flow) and dave (16) in the same group-0 class,
# together saturating it, each direction: their throughput ratio and carol's ping RTT idle and
# under that load; then, down, alice's (group 0) RTT while bob (group 5) saturates his class with
# 16 flows. host passes with 1/1.3 <= heavy/light <= 1.3 and load median <= idle median + 20 ms; the
# flow control passes when it shows the imbalance host removes (ratio > 1.3). Across groups:
# median <= idle + 20 ms. Figures: "light / heavy Mbit/s (ratio); rtt idle / load ms (p95)".
fairness() {
	local leaf=$1 mode=$2
	write_conf fw "$leaf" "$DOWN" "$UP" "$mode"
	reselqos clear -c "$CONF" >>"$ST/log" 2>&1
	local out rc
	out=$(reselqos run --once -c "$CONF" 2>&1); rc=$?
	if [ "$rc" -ne 0 ]; then check "fairness $leaf $mode" FAIL "run --once exit $rc: $(echo "$out" | tail -n 3 | tr '\n' ' ')"; return; fi
	local filters
	filters=$(tc filter show dev int0 parent 110: 2>/dev/null | grep -o 'keys [^ ]*' | head -n 1)
	fairness_servers
	local dir R idle load light heavy ok why
	for dir in down up; do
		R=""; [ "$dir" = down ] && R=-R
		set -- $(rtt "$CAROL" 5); idle="$1 $2"
		ip netns exec rq-users iperf3 -c "$WAN" -B "$CAROL" -p 5203 -t "$SECS" -O 2 $R -J >"$ST/c.json" 2>&1 &
		local c=$!
		ip netns exec rq-users iperf3 -c "$WAN" -B "$DAVE" -p 5204 -t "$SECS" -O 2 -P 16 $R -J >"$ST/d.json" 2>&1 &
		local d=$!
		sleep 4
		set -- $(rtt "$CAROL" $((SECS - 6))); load="$1 $2"
		wait "$c" "$d"
		set -- $(received "$ST/c.json" "$ST/d.json"); light=$1 heavy=$2
		why=$(awk -v l="$light" -v h="$heavy" -v i="${idle% *}" -v m="${load% *}" -v mode="$mode" 'BEGIN {
			if (l <= 0 || h <= 0) { print "a flow failed"; exit 1 }
			if (i < 0 || m < 0) { print "no ping came back"; exit 1 }
			r = h / l
			if (mode == "host") { if (r > 1.3) { print "heavy/light above 1.3"; exit 1 } if (r < 1 / 1.3) { print "heavy/light below 1/1.3"; exit 1 } if (m > i + 20) { print "median under load above idle + 20 ms"; exit 1 } }
			else if (r <= 1.3) { print "the control shows no imbalance"; exit 1 }
			exit 0 }'); ok=$?
		pass_if "fairness $leaf $dir $mode" "$ok" "light $(mbit "$light") / heavy $(mbit "$heavy") Mbit/s ($(awk -v l="$light" -v h="$heavy" 'BEGIN { printf "%.2fx", (l > 0 ? h / l : 0) }')); rtt idle ${idle% *} / load ${load% *} ms (p95 ${load#* })${why:+; $why}${filters:+; int0 110: $filters}"
	done
	# across groups: bob's group-5 class saturated with 16 flows, alice (group 0) pings
	set -- $(rtt "$ALICE" 5); idle="$1 $2"
	ip netns exec rq-users iperf3 -c "$WAN" -B "$BOB" -p 5202 -t "$SECS" -O 2 -P 16 -R -J >"$ST/b.json" 2>&1 &
	local b=$!
	sleep 4
	set -- $(rtt "$ALICE" $((SECS - 6))); load="$1 $2"
	wait "$b"
	set -- $(received "$ST/b.json")
	# a load that did not run proves nothing (a failed iperf3 reads as 0)
	awk -v i="${idle% *}" -v m="${load% *}" -v b="$1" 'BEGIN { exit !(b > 0 && i >= 0 && m >= 0 && m <= i + 20) }'; ok=$?
	pass_if "fairness $leaf across $mode" "$ok" "g5 load $(mbit "$1") Mbit/s; g0 rtt idle ${idle% *} / load ${load% *} ms (p95 ${load#* })"
}

# leaf = sfq with fairness = host is refused (one FIFO per user: seconds of delay, measured in
# an earlier run) by start, naming the key, before anything is touched
refused_sfq_host() {
	# cleared with a valid file first: clear refuses the invalid one like every verb
	write_conf fw sfq "$DOWN" "$UP" flow
	reselqos clear -c "$CONF" >>"$ST/log" 2>&1
	write_conf fw sfq "$DOWN" "$UP" host
	local out rc ok=0
	out=$(reselqos run --once -c "$CONF" 2>&1); rc=$?
	[ "$rc" -ne 0 ] || ok=1
	echo "$out" | grep -q 'fairness: host needs leaf = fq_codel or cake' || ok=1
	tc qdisc show dev int0 | grep -q 'qdisc htb' && ok=1
	pass_if "fairness sfq host refused" "$ok" "run --once exit $rc: $(echo "$out" | grep -m1 -o 'fairness: host needs[^:]*')"
}

# ha: the example notify script (installed by the .deb) drives `reselqos role` under systemd: the
# daemon starts as [ha] role = backup, keepalived alone on int0 becomes MASTER and runs
# notify.sh, which runs `reselqos role master`; status --health answers 0 for track_script
ha_check() {
	write_conf fw fq_codel "$DOWN" "$UP"
	printf '\n[ha]\nrole = backup\n' >>"$CONF"
	install -m 0600 "$CONF" /etc/reselqos/qos.conf
	reselqos clear -c /etc/reselqos/qos.conf >>"$ST/log" 2>&1
	rm -f /run/reselqos/ha-role
	systemctl restart reselqos >>"$ST/log" 2>&1
	local ok=0 before after health ex=/usr/share/doc/reselqos/examples/ha/notify.sh
	wait_for 120 bash -c "reselqos status --json 2>/dev/null | grep -q '\"role\": *\"backup\"'" || ok=1
	before=$(reselqos status --json 2>/dev/null | grep -o '"role": *"[a-z]*"' | head -n 1)
	[ -f "$ex" ] || ok=1
	install -d /etc/keepalived
	install -m 0755 "$ex" /etc/keepalived/reselqos-notify.sh
	cat >/etc/keepalived/keepalived.conf <<KA
global_defs {
	script_user root
	enable_script_security
}
vrrp_sync_group RESELQOS {
	group {
		USERS
	}
	notify /etc/keepalived/reselqos-notify.sh
}
vrrp_instance USERS {
	state BACKUP
	interface int0
	virtual_router_id 51
	priority 100
	advert_int 1
	virtual_ipaddress {
		10.250.0.254/32
	}
}
KA
	systemctl restart keepalived >>"$ST/log" 2>&1
	wait_for 60 bash -c "reselqos status --json 2>/dev/null | grep -q '\"role\": *\"master\"'" || ok=1
	after=$(reselqos status --json 2>/dev/null | grep -o '"role": *"[a-z]*"' | head -n 1)
	health=$(reselqos status --health 2>&1); local hrc=$?
	[ "$hrc" -eq 0 ] || ok=1
	local said
	said=$(journalctl -t reselqos-notify --no-pager -o cat 2>/dev/null | tail -n 2 | tr '\n' ' ')
	systemctl stop keepalived >>"$ST/log" 2>&1
	pass_if "ha: notify.sh drives reselqos role" "$ok" "before ${before:-none}, after keepalived MASTER ${after:-none}; status --health exit $hrc: $health; notify: ${said:-nothing logged}"
}

check_install() {
	local deb
	deb=$(ls "$LANE"/reselqos_*_all.deb | head -n 1)
	local out rc t0=$SECONDS
	out=$(DEBIAN_FRONTEND=noninteractive apt-get install -y "$deb" 2>&1); rc=$?
	echo "$out" >>"$ST/log"
	[ "$rc" -eq 0 ] || { say "apt-get install $deb failed:"; echo "$out" >/dev/console; }
	local ok=$rc why=""
	[ "$(stat -c %a "$CONF" 2>/dev/null)" = 600 ] || { ok=1; why+=" qos.conf-mode=$(stat -c %a "$CONF" 2>&1)"; }
	for d in /var/log/reselqos /var/lib/reselqos; do
		[ "$(stat -c %a "$d" 2>/dev/null)" = 750 ] || { ok=1; why+=" $d=$(stat -c %a "$d" 2>&1)"; }
	done
	[ -x /usr/bin/reselqos ] && [ -f /usr/lib/systemd/system/reselqos.service ] && [ -x /etc/init.d/reselqos ] && [ -f /etc/logrotate.d/reselqos ] || { ok=1; why+=" files-missing"; }
	[ -d /usr/lib/reselqos/node_modules/ldapts ] || { ok=1; why+=" no-node_modules"; }
	# no dev-only package of package-lock.json (lane.sh lists them), no test or sandbox code
	local dev=0 p
	while read -r p; do [ -e "/usr/lib/reselqos/$p" ] && { dev=$((dev + 1)); why+=" shipped:$p"; }; done <"$LANE/dev-packages.txt"
	[ "$dev" -eq 0 ] || ok=1
	[ -e /usr/lib/reselqos/dist/sandbox ] || [ -e /usr/lib/reselqos/build ] || [ -e /usr/lib/reselqos/test ] && { ok=1; why+=" test-code-shipped"; }
	local en act
	en=$(systemctl is-enabled reselqos 2>&1); act=$(systemctl is-active reselqos 2>&1)
	[ "$en" = disabled ] && [ "$act" = inactive ] || { ok=1; why+=" enabled=$en active=$act"; }
	pass_if "apt install ./deb" "$ok" "exit $rc in $((SECONDS - t0)) s; qos.conf $(stat -c %a "$CONF" 2>&1), /var dirs 0750; unit $en/$act; $(ls /usr/lib/reselqos/node_modules | wc -l) modules, 0 of $(wc -l <"$LANE/dev-packages.txt") dev-only; $(reselqos help >/dev/null 2>&1 && echo 'reselqos runs')$why"
}

service_checks() {
	write_conf fw sfq "$DOWN" "$UP"
	reselqos clear -c "$CONF" >>"$ST/log" 2>&1
	local t0 pid pid2 rc out
	t0=$(date +%s)
	systemctl enable --now reselqos >>"$ST/log" 2>&1; rc=$?
	wait_cycle 120 "$t0"; local cyc=$?
	pid=$(mainpid)
	pass_if "systemctl enable --now" "$(( rc || cyc ))" "exit $rc; $(systemctl is-enabled reselqos)/$(systemctl is-active reselqos) pid $pid; first cycle after $(( $(date +%s) - t0 )) s"

	# reload: a changed rate applied live, same pid
	write_conf fw sfq 5Mbit "$UP"
	t0=$(date +%s)
	systemctl reload reselqos >>"$ST/log" 2>&1; rc=$?
	wait_for 60 bash -c "tc class show dev int0 | grep -E '^class htb 1:1 root' | grep -q 'rate 5Mbit'"; local applied=$?
	pid2=$(mainpid)
	local root1
	root1=$(tc class show dev int0 | grep -E '^class htb 1:1 root' | grep -oE 'rate [^ ]+' | head -n 1)
	pass_if "systemctl reload (rate live)" "$(( rc || applied || (pid != pid2) ))" "exit $rc; int0 1:1 $root1 after $(( $(date +%s) - t0 )) s; pid $pid -> $pid2"
	write_conf fw sfq "$DOWN" "$UP"
	systemctl reload reselqos >>"$ST/log" 2>&1

	# service update / status
	out=$(service reselqos update 2>&1); rc=$?
	local ok=$rc
	echo "$out" | grep -q 'cycle ok' || ok=1
	pass_if "service reselqos update" "$ok" "exit $rc: $(echo "$out" | grep -m1 cycle | cut -c1-110)"
	out=$(service reselqos status 2>&1); rc=$?
	ok=$rc
	echo "$out" | grep -qi 'running\|active' || ok=1
	pass_if "service reselqos status" "$ok" "exit $rc: $(echo "$out" | grep -m1 -iE 'running|active' | sed 's/^ *//' | cut -c1-100)"

	# journal
	local nj
	nj=$(journalctl -u reselqos -o cat | grep -c 'cycle ok')
	pass_if "journalctl -u reselqos" "$(( nj < 2 ))" "$nj cycle lines, e.g. $(journalctl -u reselqos -o cat | grep -m1 'cycle ok' | cut -c1-90)"

	# stop keeps the kernel state
	local before after sets_b sets_a
	before=$(our_rules | wc -l); sets_b=$(ipset list -n | grep -c '^qos_')
	systemctl stop reselqos >>"$ST/log" 2>&1; rc=$?
	after=$(our_rules | wc -l); sets_a=$(ipset list -n | grep -c '^qos_')
	local htb
	tc qdisc show dev int0 | grep -q 'qdisc htb 1: root' && htb=yes || htb=no
	ipset test qos_d5 "$BOB" >/dev/null 2>&1 && local bobin=yes || local bobin=no
	pass_if "systemctl stop keeps kernel state" "$(( rc || before != after || before == 0 || sets_b != sets_a || sets_a == 0 ))" "$(systemctl is-active reselqos); rules $before -> $after, qos_ sets $sets_b -> $sets_a, htb root $htb, bob in qos_d5 $bobin"

	# restart
	t0=$(date +%s)
	systemctl start reselqos >>"$ST/log" 2>&1
	pid=$(mainpid)
	systemctl restart reselqos >>"$ST/log" 2>&1; rc=$?
	wait_cycle 120 "$t0" 1; local c=$?
	pid2=$(mainpid)
	pass_if "systemctl restart" "$(( rc || c || pid == pid2 || pid2 == 0 ))" "exit $rc; pid $pid -> $pid2; $(systemctl is-active reselqos)"

	# kill -9: systemd restarts it; it adopts the state, no duplicate rule
	before=$(our_rules | sort | md5sum | cut -c1-8); local nb
	nb=$(our_rules | wc -l)
	pid=$(mainpid)
	kill -9 "$pid"
	t0=$(date +%s)
	wait_for 90 bash -c "p=\$(systemctl show -p MainPID --value reselqos); [ \"\$p\" != 0 ] && [ \"\$p\" != $pid ] && systemctl is-active -q reselqos"
	local back=$?
	wait_cycle 90 "$t0" 2; c=$?
	pid2=$(mainpid)
	local na dups
	na=$(our_rules | wc -l)
	dups=$(our_rules | sort | uniq -d | wc -l)
	local tcdup
	tcdup=$(tc filter show dev int0 | grep -E 'handle 0x' | sort | uniq -d | wc -l)
	after=$(our_rules | sort | md5sum | cut -c1-8)
	pass_if "kill -9 -> restarted, state adopted" "$(( back || c || nb != na || dups > 0 || tcdup > 0 ))" "pid $pid -> $pid2 after $(( $(date +%s) - t0 )) s (NRestarts=$(systemctl show -p NRestarts --value reselqos)); rules $nb -> $na ($before/$after), duplicate rules $dups, duplicate tc filters $tcdup"
}

logrotate_check() {
	systemctl is-active -q reselqos || systemctl start reselqos
	local t0
	t0=$(date +%s)
	sleep 1
	local i rc=0
	for i in $(seq 1 12); do
		service reselqos update >/dev/null 2>&1 &
		if [ $((i % 4)) -eq 0 ]; then logrotate -f /etc/logrotate.d/reselqos || rc=1; fi
		sleep 0.5
	done
	wait
	sleep 4
	local t1
	t1=$(date +%s)
	# compared without the timestamp: each winston transport (file, stderr) stamps the line itself,
	# so the two copies of one line may differ by a millisecond
	jcycles "$t0" | cut -d' ' -f2- | sort -u >"$ST/jc.txt"
	# every cycle line of the journal since t0 must be in the log files (rotated ones included)
	zcat -f /var/log/reselqos/reselqos.log* 2>/dev/null | grep -E 'cycle (ok|failed)' | cut -d' ' -f2- | sort -u >"$ST/fc.txt"
	local nj lost files
	nj=$(wc -l <"$ST/jc.txt")
	lost=$(comm -23 "$ST/jc.txt" "$ST/fc.txt" | wc -l)
	files=$(ls /var/log/reselqos | tr '\n' ' ')
	pass_if "logrotate -f under load" "$(( rc || nj < 5 || lost > 0 ))" "$nj cycle lines in $((t1 - t0)) s with 3 forced rotations, $lost missing from the files; files: $files"
}

backend_check() { # nft|legacy
	local b=$1
	systemctl stop reselqos >>"$ST/log" 2>&1
	reselqos clear -c "$CONF" >>"$ST/log" 2>&1
	update-alternatives --set iptables "/usr/sbin/iptables-$b" >>"$ST/log" 2>&1
	update-alternatives --set ip6tables "/usr/sbin/ip6tables-$b" >>"$ST/log" 2>&1
	if [ "$b" = legacy ]; then
		printf 'ip_tables\nip6_tables\n' >/etc/modules-load.d/reselqos.conf
		modprobe ip_tables; modprobe ip6_tables
	fi
	local v t0
	v=$(iptables -V)
	t0=$(date +%s)
	systemctl start reselqos >>"$ST/log" 2>&1
	wait_cycle 120 "$t0" 2; local c=$?
	local n
	n=$(our_rules | wc -l)
	# steady: a cycle on an unchanged kernel changes nothing (read-back matches)
	local out steady=0
	out=$(service reselqos update 2>&1)
	echo "$out" | grep -q 'moves=d0/u0 tc=0' || steady=1
	# drift: one of our mangle rules deleted, one set entry removed -> repaired
	local rule
	rule=$(iptables-save -t mangle | grep -E '^-A' | grep -iE 'reselqos|qos_' | grep -v -- '-A (PREROUTING|POSTROUTING|FORWARD|INPUT|OUTPUT) ' | head -n 1)
	[ -n "$rule" ] || rule=$(iptables-save -t mangle | grep -E '^-A' | grep -iE 'reselqos|qos_' | head -n 1)
	printf '*mangle\n%s\nCOMMIT\n' "${rule/#-A /-D }" | iptables-restore --noflush
	local gone=$?
	ipset del qos_d5 "$BOB" 2>/dev/null
	t0=$SECONDS
	wait_for 60 bash -c "iptables-save -t mangle | grep -qxF -- \"\$0\" && ipset test qos_d5 $BOB" "$rule"
	local rep=$?
	local other
	if [ "$b" = nft ]; then other=$(iptables-legacy-save 2>/dev/null | grep -ciE 'reselqos|qos_'); else other=$(iptables-nft-save 2>/dev/null | grep -ciE 'reselqos|qos_'); fi
	pass_if "iptables-$b: apply, read-back, drift" "$(( c || n == 0 || steady || gone || rep || other > 0 ))" "$v; $n rules; steady cycle: $(echo "$out" | grep -oE 'moves=[^ ]+ tc=[0-9]+'); rule deleted + set entry removed -> repaired in $((SECONDS - t0)) s; rules in the other backend: $other"
}

remove_purge() {
	local rules sets rc ok=0
	rules=$(our_rules | wc -l); sets=$(ipset list -n | grep -c '^qos_')
	DEBIAN_FRONTEND=noninteractive apt-get remove -y reselqos >>"$ST/log" 2>&1; rc=$?
	local act
	act=$(systemctl is-active reselqos 2>&1)
	pgrep -f 'reselqos/dist/cli.js run' >/dev/null && ok=1
	[ "$act" != active ] || ok=1
	[ -f "$CONF" ] || ok=1
	[ -d /var/lib/reselqos ] || ok=1
	[ ! -e /usr/lib/reselqos ] || ok=1
	local r2 s2
	r2=$(our_rules | wc -l); s2=$(ipset list -n | grep -c '^qos_')
	[ "$r2" = "$rules" ] && [ "$s2" = "$sets" ] && [ "$r2" -gt 0 ] || ok=1
	pass_if "apt remove" "$(( rc || ok ))" "exit $rc; daemon $act; qos.conf $( [ -f "$CONF" ] && echo kept || echo gone), /var/lib/reselqos $( [ -d /var/lib/reselqos ] && echo kept || echo gone), /usr/lib/reselqos $( [ -e /usr/lib/reselqos ] && echo present || echo gone); kernel rules $rules -> $r2, sets $sets -> $s2"
	DEBIAN_FRONTEND=noninteractive apt-get purge -y reselqos >>"$ST/log" 2>&1; rc=$?
	ok=0
	local left=""
	for p in /etc/reselqos /var/lib/reselqos /var/log/reselqos /etc/default/reselqos /etc/init.d/reselqos /etc/logrotate.d/reselqos /usr/lib/systemd/system/reselqos.service; do
		[ -e "$p" ] && { ok=1; left+=" $p"; }
	done
	dpkg -s reselqos >/dev/null 2>&1 && { ok=1; left+=" (dpkg still knows it)"; }
	pass_if "apt purge" "$(( rc || ok ))" "exit $rc; left:${left:- nothing}"
}

summary() {
	local p f
	p=$(grep -c '  PASS  ' "$ST/results"); f=$(grep -c '  FAIL  ' "$ST/results")
	echo "SUMMARY $p passed, $f failed" >"$OUT"
	echo "lane: SUMMARY $p passed, $f failed" >/dev/console
}

# ------------------------------------------------------------------------ phases
phase=$(cat "$ST/phase" 2>/dev/null || echo 1)
say "phase $phase"
if [ "$phase" = 1 ]; then
	echo 2 >"$ST/phase"
	rm -rf "$LANE"; mkdir -p "$LANE"; cp -a /mnt/lane/. "$LANE/"
	cat >/etc/systemd/system/rq-lane-net.service <<UNIT
[Unit]
Description=reselqos lane: the gateway's user and wan sides (scripts/vm/net-up.sh)
Before=reselqos.service network-online.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=$LANE/net-up.sh
[Install]
WantedBy=multi-user.target
UNIT
	systemctl daemon-reload
	systemctl enable --now rq-lane-net.service >>"$ST/log" 2>&1
	echo "VM $(uname -r), $(nproc) vCPU, systemd $(systemctl --version | head -n 1 | cut -d' ' -f2), node $(node --version), $(iptables -V)" >"$OUT"
	start_servers || { check "sandbox servers" FAIL "$(grep -m1 -iE 'error' "$ST/servers.log" | cut -c1-200)"; summary; systemctl poweroff; exit 0; }
	check "sandbox slapd + mariadb" PASS "campus $CAMPUS_ENTRIES entries + alice/bob/carol/dave; $LDAP_URL, $DB_HOST:$DB_PORT"
	check_install
	iperf_servers
	if want shaping; then
		shaping fw sfq
		shaping fw fq_codel
		shaping fw cake
		shaping classify sfq
	fi
	if want fairness; then
		iperf_servers
		refused_sfq_host
		fairness fq_codel host
		fairness cake host
		fairness sfq flow
	fi
	want service && service_checks
	want ha && ha_check
	if ! want reboot; then summary; cat "$ST/log" >/dev/console; systemctl poweroff; exit 0; fi
	# reboot with the unit enabled and the sources stopped
	systemctl is-enabled -q reselqos || systemctl enable reselqos >>"$ST/log" 2>&1
	ipset list qos_d5 >"$ST/before-reboot.d5" 2>&1
	stop_servers
	say "rebooting"
	date +%s >"$ST/reboot-at"
	systemctl reboot
	exit 0
fi

if [ "$phase" = 2 ]; then
	echo 3 >"$ST/phase"
	t0=$(date +%s)
	up=$(cut -d' ' -f1 /proc/uptime)
	wait_for 300 systemctl is-active -q reselqos; a=$?
	wait_for 120 bash -c "journalctl -b -u reselqos -o cat | grep -q 'cycle ok'"; c=$?
	full=$(journalctl -b -u reselqos -o cat | grep -m1 'cycle ok')
	line=$(printf '%s' "$full" | sed -E 's/^([^ ]+) info cycle ok (users=[0-9]+ ips=[0-9]+).*( using=[^ ]+).*$/\1 cycle ok \2\3/')
	ok=$(( a || c ))
	ipset test qos_d5 "$BOB" >/dev/null 2>&1 || ok=1
	ipset test qos_d0 "$ALICE" >/dev/null 2>&1 || ok=1
	pgrep -x slapd >/dev/null && ok=1
	# the first cycle of this boot ran on the snapshot: LDAP was down, and the line says so
	case "$full" in *using=*ldap:*) ;; *) ok=1 ;; esac
	src=$(journalctl -b -u reselqos -o cat | grep -m2 -iE 'snapshot|ldap down|ldap:' | cut -c1-120 | tr '\n' ' ')
	pass_if "reboot: starts, sets from snapshot" "$ok" "slapd $(pgrep -x slapd >/dev/null && echo running || echo stopped); $(systemctl is-enabled reselqos)/$(systemctl is-active reselqos) at uptime $(cut -d' ' -f1 /proc/uptime) s; bob in qos_d5 $(ipset test qos_d5 $BOB >/dev/null 2>&1 && echo yes || echo no), alice in qos_d0 $(ipset test qos_d0 $ALICE >/dev/null 2>&1 && echo yes || echo no); first: $line; $src"
	start_servers || true
	write_conf fw sfq "$DOWN" "$UP"
	systemctl restart reselqos >>"$ST/log" 2>&1
	t1=$(date +%s); wait_cycle 120 "$t1"
	logrotate_check
	backend_check nft
	backend_check legacy
	remove_purge
	stop_servers
	summary
	say "done; the runner's log:"
	cat "$ST/log" >/dev/console
	systemctl poweroff
	exit 0
fi
say "phase $phase: nothing to do"
systemctl poweroff
