#!/usr/bin/env bash
# scripts/vm/lane.sh — `npm run test:vm`: the distribution lane. Builds the .deb (npm run package)
# and the sandbox (build/sandbox), gets the cached Debian 13 image (scripts/vm/image.sh), writes
# the lane disk (an ext4 image made by mke2fs -d: the .deb, runner.sh, net-up.sh, servers.mjs,
# build/sandbox + build/src, the production node_modules), and boots the image with QEMU (KVM
# when it works, TCG otherwise) on a throw-away qcow2 overlay: no network (-nic none), systemd
# as PID 1, console on ttyS0 (build/vm/console.log), results on ttyS1 (build/vm/results.txt).
# The guest runs the checks (scripts/vm/runner.sh), reboots once, powers off. Prints the
# results; exit 0 only when every check passed. Root only. One VM at a time (a lock).
# (The body is one function, parsed whole before it runs: editing this file during a run is safe.)
main() {
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
cd "$(dirname "$0")/../.."
SRC=$(pwd -P)
OUTDIR=$SRC/build/vm
T0=$(date +%s)
say() { printf 'test:vm: %s\n' "$*" >&2; }
[ "$(id -u)" -eq 0 ] || { say "must run as root"; exit 1; }

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v qemu-img >/dev/null || need+=(qemu-utils)
if [ "${#need[@]}" -gt 0 ]; then
  say "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

exec 9>/run/reselqos-vm.lock
flock -n 9 || { say "another lane VM is running (lock /run/reselqos-vm.lock)"; exit 1; }

bash scripts/package.sh >&2
deb=$(ls -t build/reselqos_*_all.deb | head -n 1)
npm run --silent build:sandbox
img=$(bash scripts/vm/image.sh)
[ -d "$img" ] && [ "$(printf '%s\n' "$img" | wc -l)" -eq 1 ] || { say "image.sh gave no single image directory: $img"; exit 1; }
T1=$(date +%s)

rm -rf "$OUTDIR"
mkdir -p "$OUTDIR"
lane=$(mktemp -d "${TMPDIR:-/tmp}/reselqos-lane.XXXXXX")
trap 'rm -rf "$lane"' EXIT
mkdir -p "$lane/disk"
cp scripts/vm/runner.sh scripts/vm/net-up.sh scripts/vm/servers.mjs "$deb" "$lane/disk/"
mkdir -p "$lane/disk/build"
cp -R build/sandbox build/src "$lane/disk/build/"
cp sandbox/resel.schema "$lane/disk/build/sandbox/" 2>/dev/null || true
dpkg-deb -x "$deb" "$lane/deb"
cp -R "$lane/deb/usr/lib/reselqos/node_modules" "$lane/disk/node_modules"
echo '{"type":"module"}' >"$lane/disk/package.json"
node -e 'const l=require("./package-lock.json");for(const [p,v] of Object.entries(l.packages))if(p&&v.dev)console.log(p)' >"$lane/disk/dev-packages.txt"
env | grep -E '^RQ_[A-Z_]+=' | sed -E "s/^([A-Z_]+)=(.*)$/\1='\2'/" >"$lane/disk/lane.env" || true
mke2fs -q -F -t ext4 -L rqlane -d "$lane/disk" "$lane/lane.img" 256M
qemu-img create -q -f qcow2 -b "$img/root.img" -F raw "$lane/root.qcow2"

# KVM when it really works: a kernel that gets as far as printing its version in 20 s
# without QEMU aborting (nested KVM here fails with "failed to set MSR 0x10a").
accel=(-accel tcg -cpu max)
if [ -w /dev/kvm ]; then
  set +e
  (timeout 20 qemu-system-x86_64 -enable-kvm -cpu host -m 256 -nodefaults -display none -no-reboot \
    -serial "file:$lane/kvm.log" -kernel "$img/vmlinuz" -append 'console=ttyS0 panic=-1 root=/dev/null' \
    >"$lane/kvm.err" 2>&1) 2>/dev/null
  set -e
  if grep -q 'Linux version' "$lane/kvm.log" 2>/dev/null && ! grep -qE 'error|Assertion' "$lane/kvm.err"; then
    accel=(-enable-kvm -cpu host)
    say "KVM works"
  else
    say "KVM does not work here ($(head -n 1 "$lane/kvm.err")): TCG"
  fi
fi
SMP=${RQ_VM_SMP:-2}
MEM=${RQ_VM_MEM:-2048}
say "booting ${accel[*]} -smp $SMP -m $MEM (kernel $(cat "$img/kernel-version"))"
: >"$OUTDIR/results.txt"
set +e
timeout "${RQ_VM_TIMEOUT:-2700}" qemu-system-x86_64 "${accel[@]}" -smp "$SMP" -m "$MEM" \
  -nodefaults -display none -nic none \
  -kernel "$img/vmlinuz" -initrd "$img/initrd" \
  -append 'root=/dev/vda rw console=ttyS0 panic=-1 systemd.show_status=0' \
  -drive "file=$lane/root.qcow2,if=virtio,format=qcow2" \
  -drive "file=$lane/lane.img,if=virtio,format=raw,readonly=on" \
  -serial "file:$OUTDIR/console.log" -serial "file:$OUTDIR/results.txt" \
  >"$OUTDIR/qemu.log" 2>&1
rc=$?
set -e
T2=$(date +%s)
tr -d '\r' <"$OUTDIR/results.txt"
# the fairness checks' figures as JSON (one object per line "fairness LEAF DIR|across MODE ...")
tr -d '\r' <"$OUTDIR/results.txt" | node -e '
  const out = [];
  for (const l of require("fs").readFileSync(0, "utf8").split("\n")) {
    const m = /^fairness (\S+) (down|up|across) (\S+)\s+(PASS|FAIL)\s+(.*)$/.exec(l);
    if (!m) continue;
    const n = (re) => { const x = re.exec(m[5]); return x ? Number(x[1]) : null; };
    out.push({ leaf: m[1], direction: m[2], fairness: m[3], result: m[4],
      lightMbit: n(/light ([\d.]+)/), heavyMbit: n(/heavy ([\d.]+)/), ratio: n(/\(([\d.]+)x\)/),
      rttIdleMs: n(/rtt idle ([\d.-]+)/), rttLoadMs: n(/load ([\d.-]+) ms/), rttLoadP95Ms: n(/p95 ([\d.-]+)/), text: m[5] });
  }
  require("fs").writeFileSync(process.argv[1], JSON.stringify(out, null, 1) + "\n");' "$OUTDIR/fairness.json"
echo "lane: $((T2 - T0)) s in all (build + image $((T1 - T0)) s, VM $((T2 - T1)) s); console in $OUTDIR/console.log"
if [ "$rc" -ne 0 ]; then say "qemu exit $rc$([ "$rc" = 124 ] && echo ' (timeout)'): $(tail -n 3 "$OUTDIR/qemu.log")"; exit 1; fi
if grep -q '^SUMMARY [0-9]* passed, 0 failed' "$OUTDIR/results.txt" && ! grep -q '  FAIL  ' "$OUTDIR/results.txt"; then
  exit 0
fi
exit 1
}
main "$@"
exit $?
