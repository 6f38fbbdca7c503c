#!/usr/bin/env bash
# scripts/package.sh [--out DIR] — `npm run package`: builds build/ (or DIR/) reselqos_<version>_all.deb with dpkg-deb
# and checks it with lintian (an error fails the build; warnings are listed in docs/INSTALL.md).
# The tree is staged by scripts/install.sh --root (the one list of what is installed where),
# with the production npm dependencies installed fresh (npm ci --omit=dev) and dist/ rebuilt:
# no dev dependency, no test or sandbox code. Then, for the package:
#   - /var/log/reselqos and /var/lib/reselqos are created by the postinst, not shipped;
#   - the unit and the tmpfiles.d file move under /usr/lib (Debian 13's merged /usr);
#   - every file under /etc is a conffile; qos.conf keeps its mode 0600;
#   - debian/ holds the maintainer scripts (postinst, prerm, postrm) and the copyright file;
#   - node_modules/ is pruned to what runs (the list below, "prune node_modules"); the sizes
#     before and after are printed, and the build fails if a required file went.
# Installs dpkg-dev and lintian from Debian when missing (root; idempotent).
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
cd "$(dirname "$0")/.."
SRC=$(pwd -P)
say() { printf 'package: %s\n' "$*"; }

need=()
command -v dpkg-deb >/dev/null || need+=(dpkg)
command -v dpkg-architecture >/dev/null || need+=(dpkg-dev)
command -v lintian >/dev/null || need+=(lintian)
if [ "${#need[@]}" -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || { echo "package: missing ${need[*]}; run as root or apt-get install ${need[*]}" >&2; exit 1; }
  say "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

NAME=reselqos
VERSION=$(node -p 'require("./package.json").version')
OUT=build
case "${1:-}" in
  --out) [ $# -ge 2 ] || { echo "usage: $0 [--out DIR]" >&2; exit 64; }; OUT=$2 ;;
  '') ;;
  *) echo "usage: $0 [--out DIR]" >&2; exit 64 ;;
esac
DEB=$OUT/${NAME}_${VERSION}_all.deb
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/reselqos-package.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
ROOT=$STAGE/root

bash scripts/npm-deps.sh
sh scripts/install.sh --root "$ROOT" --prefix /usr --build --npm-ci | sed 's/^/  /'

# ---- adjust the staged tree for a package ------------------------------------------------
rm -rf "$ROOT/var"                                   # created by the postinst
mkdir -p "$ROOT/usr/lib/systemd"
mv "$ROOT/lib/systemd/system" "$ROOT/usr/lib/systemd/system"
mv "$ROOT/lib/tmpfiles.d" "$ROOT/usr/lib/tmpfiles.d"
rm -rf "$ROOT/lib"
sed -i 's#installed by scripts/install.sh to /lib/systemd/system/#installed by the reselqos package#' \
  "$ROOT/usr/lib/systemd/system/reselqos.service"
rm -f "$ROOT/usr/lib/reselqos/package-lock.json"
# npm packages' own development dotfiles (.eslintrc, .npmignore, .gitattributes, ...).
find "$ROOT/usr/lib/reselqos/node_modules" -name '.*' -type f -delete

DOC=$ROOT/usr/share/doc/$NAME
install -m 0644 debian/copyright "$DOC/copyright"
{
  echo "$NAME ($VERSION) unstable; urgency=medium"
  echo
  echo "  * Package built from the source tree by scripts/package.sh."
  echo
  echo " -- $(git log -1 --format='%an <%ae>' 2>/dev/null || echo 'reselqos <root@localhost>')  $(date -R -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")"
} | gzip -9n >"$DOC/changelog.gz"
chmod 0644 "$DOC/changelog.gz"
# Reproducible-ish, lintian-clean modes and owners.
find "$ROOT" -type d -exec chmod 0755 {} +
find "$ROOT/usr/lib/reselqos" -type f -exec chmod 0644 {} +
chmod 0755 "$ROOT/usr/lib/reselqos/dist/cli.js"   # the bin (#!/usr/bin/env node)
chmod 0600 "$ROOT/etc/reselqos/qos.conf"

# ---- prune node_modules: ship what runs ----------------------------------------------------
# npm packages publish their type declarations, tests, docs and source maps; none of it is
# loaded by node. THE list of what goes (the only one: install.sh copies node_modules whole),
# each with why deleting it cannot break a require/import at run time:
NM=$ROOT/usr/lib/reselqos/node_modules
PRUNE_FILES=(
  # TypeScript, declarations (.d.ts/.d.cts/.d.mts: all of @types/node, undici-types,
  # @types/triple-beam, mysql2/typings) and sources shipped beside their compiled .js
  # (ldapts/src, fecha/src): read by the compiler only. Node 20 cannot run TypeScript, and
  # later Node refuses to strip types of a file under node_modules.
  '*.ts' '*.cts' '*.mts'
  # Source maps: read by a debugger or by node --enable-source-maps, which neither the wrapper,
  # the unit nor the init script passes. (dist/'s own maps stay: not pruned here.)
  '*.map'
  # Documentation: READMEs, changelogs, guides. Nothing reads them; the LICENSE files are
  # kept (see KEEP below: debian/copyright points at them).
  '*.md' '*.markdown' 'CHANGELOG*' 'CHANGES*' 'HISTORY*'
  # Test files at a package's top (enabled/test.js, kuler/test.js, safer-buffer/tests.js)
  # and specs (tdigest/specs/*.spec.js): they require test runners that are not installed.
  'test.js' 'tests.js' '*.test.js' '*.spec.js'
)
PRUNE_DIRS=(
  # Test suites, their data and benchmarks (bintrees/test: 2.3 MB of sample trees), examples,
  # documentation and CI settings. A directory of one of these names that is code (an entry
  # point, or required by a remaining file) fails the check below.
  test tests __tests__ spec specs example examples benchmark benchmarks doc docs .github
)
# Never deleted, whatever the patterns: licenses and every package.json (a package's identity,
# and the {"type": "module"} markers node reads to load .js files as ESM).
KEEP=(-iname 'LICEN[CS]E*' -o -iname 'COPYING*' -o -iname 'NOTICE*' -o -name package.json)
sizes() { # the staged tree: sum of the file sizes, and du -sk (what Installed-Size says)
  printf '%s bytes in %s files, Installed-Size %s KiB' \
    "$(find "$ROOT" -path "$ROOT/DEBIAN" -prune -o -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')" \
    "$(find "$ROOT" -path "$ROOT/DEBIAN" -prune -o -type f -print | wc -l)" \
    "$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)"
}
say "installed size before pruning node_modules: $(sizes)"
node scripts/package-refs.mjs "$ROOT/usr/lib/reselqos" >"$STAGE/refs.before" 2>/dev/null
name_args=()
for p in "${PRUNE_FILES[@]}"; do name_args+=(-o -name "$p"); done
find "$NM" -type f \( "${name_args[@]:1}" \) ! \( "${KEEP[@]}" \) -delete
name_args=()
for p in "${PRUNE_DIRS[@]}"; do name_args+=(-o -name "$p"); done
# (a package's own root of one of these names, node_modules/[@scope/]test, is not touched)
find "$NM" -depth -type d \( "${name_args[@]:1}" \) ! -regex '.*/node_modules/\(@[^/]*/\)?[^/]*' -exec rm -rf {} +
find "$NM" -mindepth 1 -depth -type d -empty -delete
# A package emptied of all but its package.json and LICENSE (@types/node, undici-types: type
# declarations only) stays as that: npm's view of the tree, package-lock.json and the count of
# installed packages are unchanged, only the files nothing loads are gone.
node scripts/package-refs.mjs "$ROOT/usr/lib/reselqos" >"$STAGE/refs.after" 2>"$STAGE/refs.count"
lost=$(comm -13 "$STAGE/refs.before" "$STAGE/refs.after")
if [ -n "$lost" ]; then
  printf '%s\n' "$lost" | sed 's/^/  unresolved after pruning: /' >&2
  echo "package: pruning removed a file that is required or is an entry point (above)" >&2
  exit 1
fi
say "references of dist/ and node_modules/: $(cat "$STAGE/refs.count"), none lost by pruning"
say "installed size after pruning node_modules:  $(sizes)"

# ---- DEBIAN/ ----------------------------------------------------------------------------------
mkdir -p "$ROOT/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
maint=$(git log -1 --format='%an <%ae>' 2>/dev/null || echo 'reselqos <root@localhost>')
desc=$(node -p 'require("./package.json").description + "."' | fold -s -w 72 | sed 's/ *$//; s/^/ /')
cat >"$ROOT/DEBIAN/control" <<CTRL
Package: $NAME
Version: $VERSION
Architecture: all
Maintainer: $maint
Installed-Size: $size
Depends: nodejs (>= 20), ipset, iptables, iproute2, logrotate
Suggests: keepalived, conntrackd
Section: net
Priority: optional
Description: dynamic firewall and fair-share QoS daemon for a Linux gateway
$desc
 .
 Users and machines come from LDAP, daily traffic volumes from netacct tables
 in MySQL/MariaDB; each user's IPs go into ipsets by volume group, marked by
 iptables and shaped by tc HTB classes. Installing enables and starts nothing:
 edit /etc/reselqos/qos.conf, then systemctl enable --now reselqos.
CTRL
(cd "$ROOT" && find etc -type f | sort | sed 's#^#/#') >"$ROOT/DEBIAN/conffiles"
install -m 0755 debian/postinst debian/prerm debian/postrm "$ROOT/DEBIAN/"
(cd "$ROOT" && find . -path ./DEBIAN -prune -o -type f -print0 | sort -z | xargs -0 md5sum | sed 's#  \./#  #') >"$ROOT/DEBIAN/md5sums"
chmod 0644 "$ROOT/DEBIAN/control" "$ROOT/DEBIAN/conffiles" "$ROOT/DEBIAN/md5sums"

mkdir -p "$OUT"
rm -f "$DEB"
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$DEB" >/dev/null
say "built $DEB ($(stat -c %s "$DEB") bytes, $(dpkg-deb -c "$DEB" | wc -l) entries; Installed-Size: $(dpkg-deb -f "$DEB" Installed-Size) KiB)"

# ---- lintian -------------------------------------------------------------------------------------
set +e
lint=$(lintian --tag-display-limit 0 "$DEB" 2>&1 | grep -v "running with root privileges")
set -e
[ -n "$lint" ] && printf '%s\n' "$lint" | sed 's/^/  lintian: /'
if printf '%s\n' "$lint" | grep -q '^E: '; then
  echo "package: lintian reports errors" >&2
  exit 1
fi
say "lintian: $(printf '%s\n' "$lint" | grep -c '^E: ' || true) errors, $(printf '%s\n' "$lint" | grep -c '^W: ' || true) warnings"
