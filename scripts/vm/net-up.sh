#!/bin/sh
# scripts/vm/net-up.sh — inside the lane's VM: the gateway's two sides, with the VM's root
# namespace as the gateway itself (as on a real gateway: no [firewall] netns):
#   rq-users: eth0 ══ int0 (root ns) ext0 ══ eth0 :rq-wan
#   users 172.22.250.3, 172.22.251.3, 172.22.250.4, 172.22.251.4 (/32 on eth0: alice, bob, carol,
#   dave), link 10.253.0.0/30; wan 198.51.100.10/24.
# Run at boot by rq-lane-net.service (Before=reselqos.service). Idempotent.
set -eu
ip netns list | grep -q '^rq-users' && exit 0
ip netns add rq-users
ip netns add rq-wan
ip link add int0 type veth peer name eth0 netns rq-users
ip link add ext0 type veth peer name eth0 netns rq-wan
ip addr add 10.253.0.1/30 dev int0
ip addr add 198.51.100.1/24 dev ext0
ip link set int0 up
ip link set ext0 up
ip -n rq-users link set lo up
ip -n rq-users addr add 10.253.0.2/30 dev eth0
ip -n rq-users link set eth0 up
for a in 172.22.250.3 172.22.251.3 172.22.250.4 172.22.251.4; do
	ip -n rq-users addr add "$a/32" dev eth0
	ip route add "$a/32" dev int0
done
ip -n rq-users route add default via 10.253.0.1 dev eth0
ip -n rq-wan link set lo up
ip -n rq-wan addr add 198.51.100.10/24 dev eth0
ip -n rq-wan link set eth0 up
ip -n rq-wan route add default via 198.51.100.1 dev eth0
sysctl -q -w net.ipv4.ip_forward=1
