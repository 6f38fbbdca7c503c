#!/usr/bin/env bash
# scripts/vm/image.sh — the Debian 13 (trixie) disk image of the distribution lane (npm run test:vm).
# Builds it once with debootstrap from the Debian archive apt uses on this machine, and caches it
# under $RESELQOS_VM_CACHE (default /var/cache/reselqos-vm)/<key>/ where key = hash of this recipe:
#   root.img          raw ext4 image (mke2fs -d: no loop mount), the root filesystem /dev/vda
#   vmlinuz, initrd   the image's own kernel and initramfs (booted with qemu -kernel/-initrd)
# Prints the cache directory on stdout. Root only. Idempotent: an existing complete image is reused.
# The lane never writes root.img: each run boots a qcow2 overlay on it.
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

SUITE=trixie
# What the checks need on top of the issue's list: kmod (the kernel's request_module runs
# modprobe), procps (pgrep/ps), udev (device nodes, initramfs), e2fsprogs (mount of vdb is ext4),
# iputils-ping (the fairness checks: the light user's latency under load).
PACKAGES=(linux-image-amd64 systemd-sysv udev kmod procps nodejs slapd ldap-utils mariadb-server
  mariadb-client ipset iptables iproute2 iperf3 logrotate e2fsprogs iputils-ping keepalived conntrackd)
SIZE=4G

here=$(cd "$(dirname "$0")" && pwd -P)
CACHE=${RESELQOS_VM_CACHE:-/var/cache/reselqos-vm}
key=$(cat "$here/image.sh" "$here/guest-files.sh" | sha256sum | cut -c1-16)
dir=$CACHE/$key
log() { printf 'vm-image: %s\n' "$*" >&2; }

if [ -f "$dir/complete" ]; then
  log "cached image $dir"
  echo "$dir"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { log "must run as root (debootstrap)"; exit 1; }

# Our stdout is the image's path and nothing else: every tool below writes to stderr
# (mke2fs -q still prints "Creating regular file ..." on stdout, which made the first,
# uncached run hand qemu-img two lines as its backing file).
exec 3>&1 1>&2

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v mke2fs >/dev/null || need+=(e2fsprogs)
if [ "${#need[@]}" -gt 0 ]; then
  log "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The Debian archive apt uses here (deb822 URIs: or one-line deb), not the security one.
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
  awk '/^URIs:/ {for (i=2;i<=NF;i++) print $i} /^deb / {for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}' |
  grep -E '/debian/?$' | head -n 1 || true)
mirror=${mirror:-http://deb.debian.org/debian}
log "building $SUITE image from $mirror into $dir (once; takes several minutes)"

t0=$(date +%s)
mkdir -p "$CACHE"
rm -rf "$dir.tmp"
mkdir -p "$dir.tmp"
root=$dir.tmp/root
mounted=()
cleanup() {
  local m
  for m in "${mounted[@]}"; do umount -l "$m" 2>/dev/null || true; done
  if [ ! -f "$dir/complete" ]; then rm -rf "$dir.tmp"; fi
}
trap cleanup EXIT

debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$root" "$mirror" >"$dir.tmp/debootstrap.log" 2>&1 ||
  { tail -n 30 "$dir.tmp/debootstrap.log" >&2; exit 1; }

# Install the rest through apt inside the chroot, with services forbidden to start
# (policy-rc.d 101): slapd and mariadb must not start on this host.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
mount -t proc proc "$root/proc"; mounted+=("$root/proc")
mount -t sysfs sysfs "$root/sys"; mounted+=("$root/sys")
printf 'deb %s %s main\n' "$mirror" "$SUITE" >"$root/etc/apt/sources.list"
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "${PACKAGES[@]}" >"$dir.tmp/apt.log" 2>&1 || { tail -n 30 "$dir.tmp/apt.log" >&2; exit 1; }
chroot "$root" apt-get clean
rm -f "$root/usr/sbin/policy-rc.d"

# The guest's own configuration (fstab, units of the lane's runner, services off).
# shellcheck source=guest-files.sh
. "$here/guest-files.sh"
guest_files "$root"

for m in "${mounted[@]}"; do umount "$m"; done
mounted=()

kver=$(ls "$root/boot" | sed -n 's/^vmlinuz-//p' | sort -V | tail -n 1)
[ -n "$kver" ] && [ -f "$root/boot/initrd.img-$kver" ] || { log "no kernel/initrd in $root/boot"; exit 1; }
cp "$root/boot/vmlinuz-$kver" "$dir.tmp/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$dir.tmp/initrd"
echo "$kver" >"$dir.tmp/kernel-version"
mke2fs -q -F -t ext4 -L rqroot -d "$root" "$dir.tmp/root.img" "$SIZE"
rm -rf "$root"
rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "$(( $(date +%s) - t0 ))" >"$dir/build-seconds"
touch "$dir/complete"
log "built $dir in $(cat "$dir/build-seconds") s (kernel $kver)"
echo "$dir" >&3
