# scripts/vm/guest-files.sh — sourced by image.sh: the guest's own configuration, written into
# the debootstrapped tree ($1). Kept minimal and stable (it is part of the image's cache key):
# everything the checks do comes from the lane disk (/dev/vdb) at each boot.
guest_files() {
  local root=$1
  echo rq-vm >"$root/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 rq-vm\n::1 localhost ip6-localhost\n' >"$root/etc/hosts"
  printf '/dev/vda / ext4 rw,errors=remount-ro 0 0\n' >"$root/etc/fstab"
  # Console login as root without a password (serial console debugging only; no network).
  chroot "$root" passwd -d root >/dev/null
  # The system slapd and mariadb stay off: the lane runs the sandbox's private servers.
  chroot "$root" systemctl disable slapd.service mariadb.service keepalived.service conntrackd.service >/dev/null 2>&1 || true
  chroot "$root" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
    e2scrub_reap.service fstrim.timer man-db.timer logrotate.timer >/dev/null 2>&1 || true
  # The lane's bootstrap: mount the lane disk and run its runner, at every boot.
  cat >"$root/usr/local/sbin/rq-lane-boot" <<'SH'
#!/bin/sh
# Mounts the lane disk (/dev/vdb, ext4 made by scripts/vm/lane.sh) on /mnt/lane and runs
# /mnt/lane/runner.sh; nothing when there is no lane disk.
[ -b /dev/vdb ] || exit 0
mkdir -p /mnt/lane
mountpoint -q /mnt/lane || mount -o ro /dev/vdb /mnt/lane || exit 1
[ -x /mnt/lane/runner.sh ] || exit 0
exec /mnt/lane/runner.sh
SH
  chmod 755 "$root/usr/local/sbin/rq-lane-boot"
  cat >"$root/etc/systemd/system/rq-lane.service" <<'UNIT'
[Unit]
Description=reselqos distribution lane runner (scripts/vm)
After=multi-user.target
Wants=dev-vdb.device

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/rq-lane-boot
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
UNIT
  chroot "$root" systemctl enable rq-lane.service >/dev/null 2>&1
}
