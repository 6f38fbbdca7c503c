#!/bin/sh
# scripts/install.sh [--root DIR] [--prefix /usr] [--build] [--npm-ci]
#
# Installs reselqos from this source tree:
#   PREFIX/lib/reselqos/            dist/, package.json, the production node_modules
#   PREFIX/bin/reselqos             wrapper: exec node PREFIX/lib/reselqos/dist/cli.js "$@"
#   PREFIX/share/doc/reselqos/      INSTALL.md, CONFIG.md, DESIGN.md; examples/ha/ (keepalived,
#                                   conntrackd, the notify script of an HA pair)
#   PREFIX/share/man/man8/reselqos.8.gz, man5/qos.conf.5.gz   from man/ (gzip -9n)
#   PREFIX/share/bash-completion/completions/reselqos           from completion/
#   /etc/reselqos/qos.conf          0600, from conf/qos.conf; an existing, different file is
#                                   never overwritten (the new sample goes to qos.conf.dist)
#   /etc/default/reselqos           settings of the init script (same rule: .dist if edited)
#   /lib/systemd/system/reselqos.service, /etc/init.d/reselqos (0755), /etc/logrotate.d/reselqos
#   /lib/tmpfiles.d/reselqos.conf   /run/netns and /run/xtables.lock, which the unit needs
#   /var/log/reselqos (0750), /var/lib/reselqos (0750)
# every path under --root DIR (default /: a staging tree otherwise, e.g. for a package).
# Idempotent. Builds dist/ with `npm run build` when it is missing (or always with --build).
# The production node_modules are copied from ./node_modules, or with --npm-ci (the package
# build, scripts/package.sh) installed fresh by `npm ci --omit=dev` into the staging dir.
# Enables and starts nothing: prints the commands to do so. With --root / and systemd
# running, runs `systemctl daemon-reload`.
set -eu

usage() {
	echo "usage: $0 [--root DIR] [--prefix /usr] [--build] [--npm-ci]"
}

ROOT=/
PREFIX=/usr
BUILD=0
NPMCI=0
while [ $# -gt 0 ]; do
	case "$1" in
		--root) [ $# -ge 2 ] || { usage >&2; exit 64; }; ROOT=$2; shift 2 ;;
		--root=*) ROOT=${1#--root=}; shift ;;
		--prefix) [ $# -ge 2 ] || { usage >&2; exit 64; }; PREFIX=$2; shift 2 ;;
		--prefix=*) PREFIX=${1#--prefix=}; shift ;;
		--build) BUILD=1; shift ;;
		--npm-ci) NPMCI=1; shift ;;
		-h|--help) usage; exit 0 ;;
		*) echo "install.sh: unknown argument: $1" >&2; usage >&2; exit 64 ;;
	esac
done
case "$PREFIX" in
	/*) PREFIX=${PREFIX%/}; [ -n "$PREFIX" ] || PREFIX=/ ;;
	*) echo "install.sh: --prefix must be an absolute path" >&2; exit 64 ;;
esac
[ "$PREFIX" != / ] || { echo "install.sh: --prefix / is not supported; use /usr" >&2; exit 64; }
mkdir -p "$ROOT"
ROOT=$(cd "$ROOT" && pwd -P)
[ "$ROOT" = / ] && R= || R=$ROOT   # R + an absolute path = where it goes

SRC=$(cd "$(dirname "$0")/.." && pwd -P)
LIBDIR=$PREFIX/lib/reselqos   # as seen by the installed system
BINDIR=$PREFIX/bin
DOCDIR=$PREFIX/share/doc/reselqos

say() { printf 'install: %s\n' "$*"; }

# ---- node -----------------------------------------------------------------------
if [ -x /usr/bin/node ]; then NODE=/usr/bin/node
elif NODE=$(command -v node 2>/dev/null) && [ -n "$NODE" ]; then :
else echo "install.sh: node not found (Debian: apt-get install nodejs; Node 20.17 or later)" >&2; exit 1
fi
node_ok=$("$NODE" -e 'const [a,b]=process.versions.node.split(".").map(Number);console.log(a>20||(a===20&&b>=17)?"yes":"no")')
if [ "$node_ok" != yes ]; then
	msg="$NODE is $("$NODE" --version); reselqos needs Node 20.17 or later"
	if [ -z "$R" ]; then echo "install.sh: $msg" >&2; exit 1; fi
	say "warning: $msg"
fi

# ---- build ------------------------------------------------------------------------
cd "$SRC"
if [ "$BUILD" = 1 ] || [ ! -f dist/cli.js ]; then
	bash scripts/npm-deps.sh
	say "building dist/ (npm run build)"
	npm run --silent build
elif [ -n "$(find src -newer dist/cli.js -name '*.ts' 2>/dev/null | head -n 1)" ]; then
	say "warning: dist/ is older than src/; installing it as it is (pass --build to rebuild)"
fi
[ -f dist/cli.js ] || { echo "install.sh: dist/cli.js missing after the build" >&2; exit 1; }

# ---- helpers ------------------------------------------------------------------------
# put MODE SRC DEST: install a file, saying whether it changed.
put() {
	if [ -f "$3" ] && cmp -s "$2" "$3"; then
		chmod "$1" "$3"
		say "unchanged $3"
	else
		install -m "$1" "$2" "$3"
		say "installed $3 (mode $1)"
	fi
}
# conffile MODE SRC DEST: like put, but an existing different DEST (edited by the
# operator) is kept and the new version goes to DEST.dist.
conffile() {
	if [ ! -e "$3" ]; then
		install -m "$1" "$2" "$3"
		say "installed $3 (mode $1)"
	elif cmp -s "$2" "$3"; then
		say "unchanged $3"
	else
		install -m "$1" "$2" "$3.dist"
		say "kept your $3 (it differs from the new sample); the new sample is $3.dist"
	fi
}
# Path rewriting of the unit and init script for another --prefix.
subst() {
	sed -e "s#/usr/bin/reselqos#$BINDIR/reselqos#g" -e "s#/usr/lib/reselqos#$LIBDIR#g" \
		-e "s#/usr/share/doc/reselqos#$DOCDIR#g" -e "s#^NODE=/usr/bin/node\$#NODE=$NODE#" "$1"
}

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/reselqos-install.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
trap 'exit 1' HUP INT TERM PIPE

# ---- PREFIX/lib/reselqos ----------------------------------------------------------------
mkdir -p "$STAGE/lib/reselqos"
cp -R dist "$STAGE/lib/reselqos/dist"
cp package.json package-lock.json "$STAGE/lib/reselqos/"
# The production dependencies: every package of package-lock.json not marked dev,
# copied from node_modules (offline, exactly the locked versions); npm ci --omit=dev
# into the staging dir if one is missing here.
if [ "$NPMCI" = 1 ]; then deps="missing (--npm-ci)"; else
deps=$(cd "$SRC" && "$NODE" -e '
	const fs = require("node:fs");
	const dest = process.argv[1];
	const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
	const missing = [];
	let n = 0;
	for (const [p, v] of Object.entries(lock.packages || {})) {
		if (!p.startsWith("node_modules/") || v.dev || v.link) continue;
		if (!fs.existsSync(p + "/package.json")) { if (!v.optional) missing.push(p); continue; }
		// nested node_modules/ are entries of their own
		fs.cpSync(p, dest + "/" + p, { recursive: true, filter: (s) => !/\/node_modules(\/|$)/.test(s.slice(p.length)) });
		n++;
	}
	console.log(missing.length ? "missing " + missing.join(" ") : "ok " + n);
' "$STAGE/lib/reselqos")
fi
case "$deps" in
	ok\ *) ndeps=${deps#ok } ;;
	*)
		set -- ${deps#missing }
		if [ "$NPMCI" = 1 ]; then say "npm ci --omit=dev into the staging directory"
		else say "$# locked packages not in node_modules/ (e.g. $1): npm ci --omit=dev into the staging directory"; fi
		rm -rf "$STAGE/lib/reselqos/node_modules"
		(cd "$STAGE/lib/reselqos" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
		rm -f "$STAGE/lib/reselqos/node_modules/.package-lock.json"
		ndeps=$(cd "$STAGE/lib/reselqos" && "$NODE" -e 'const l=require("./package-lock.json");console.log(Object.entries(l.packages).filter(([p,v])=>p.startsWith("node_modules/")&&!v.dev).length)')
		;;
esac

mkdir -p "$R$PREFIX/lib"
if [ -d "$R$LIBDIR" ] && diff -r "$STAGE/lib/reselqos" "$R$LIBDIR" >/dev/null 2>&1; then
	say "unchanged $R$LIBDIR"
else
	rm -rf "$R$LIBDIR.new"
	cp -R "$STAGE/lib/reselqos" "$R$LIBDIR.new"
	chmod -R u=rwX,go=rX "$R$LIBDIR.new"
	rm -rf "$R$LIBDIR.old"
	[ ! -d "$R$LIBDIR" ] || mv "$R$LIBDIR" "$R$LIBDIR.old"
	mv "$R$LIBDIR.new" "$R$LIBDIR"
	rm -rf "$R$LIBDIR.old"
	say "installed $R$LIBDIR (dist/, package.json, $ndeps production packages in node_modules/)"
fi

# ---- PREFIX/bin/reselqos -------------------------------------------------------------------
cat >"$STAGE/reselqos" <<EOF
#!/bin/sh
# reselqos — installed by scripts/install.sh: runs the command line tool (and the daemon)
# with node. Node and the library are found where they were at install time; a tree
# staged with --root runs its own copy, relative to this script.
NODE=$NODE
LIB=$LIBDIR
here=\$(dirname "\$(readlink -f "\$0" 2>/dev/null || echo "\$0")")
if [ "\$here" != "$BINDIR" ] && [ -f "\$here/../lib/reselqos/dist/cli.js" ]; then
	LIB=\$(cd "\$here/../lib/reselqos" && pwd -P)
fi
if [ ! -x "\$NODE" ]; then
	NODE=\$(command -v node) || { echo "reselqos: node not found" >&2; exit 1; }
fi
exec "\$NODE" "\$LIB/dist/cli.js" "\$@"
EOF
mkdir -p "$R$BINDIR"
put 0755 "$STAGE/reselqos" "$R$BINDIR/reselqos"

# ---- documentation -------------------------------------------------------------------------
mkdir -p "$R$DOCDIR"
for f in INSTALL.md CONFIG.md DESIGN.md; do
	if [ -f "docs/$f" ]; then put 0644 "docs/$f" "$R$DOCDIR/$f"; fi
done
# The HA pair's examples (docs/INSTALL.md, "HA pair"): keepalived, conntrackd, the notify script
# (0644 here, as documentation: install it with mode 0755 where keepalived.conf names it).
mkdir -p "$R$DOCDIR/examples/ha"
for f in keepalived.conf conntrackd.conf notify.sh; do
	put 0644 "docs/ha/$f" "$R$DOCDIR/examples/ha/$f"
done

# ---- man pages (generated by scripts/man.mjs, committed) and bash completion --------------------
for page in man/reselqos.8 man/qos.conf.5; do
	sect=${page##*.}
	gzip -9n -c "$page" >"$STAGE/page.gz"
	mkdir -p "$R$PREFIX/share/man/man$sect"
	put 0644 "$STAGE/page.gz" "$R$PREFIX/share/man/man$sect/${page#man/}.gz"
done
mkdir -p "$R$PREFIX/share/bash-completion/completions"
put 0644 completion/reselqos "$R$PREFIX/share/bash-completion/completions/reselqos"

# ---- /etc ---------------------------------------------------------------------------------------
mkdir -p "$R/etc/reselqos"
chmod 0755 "$R/etc/reselqos"
conffile 0600 conf/qos.conf "$R/etc/reselqos/qos.conf"
if [ -e "$R/etc/reselqos/qos.conf" ]; then
	mode=$(stat -c %a "$R/etc/reselqos/qos.conf")
	case "$mode" in
		600|400) ;;
		*) say "warning: $R/etc/reselqos/qos.conf has mode $mode: a password in it is refused unless you chmod 600 it" ;;
	esac
fi

cat >"$STAGE/default" <<EOF
# /etc/default/reselqos — read by /etc/init.d/reselqos (not by reselqos.service:
# change the unit with \`systemctl edit reselqos\`).
#
# The configuration file.
#CONF=/etc/reselqos/qos.conf
# Where the daemon writes its pid: [path] run of that file, + /reselqos.pid.
#PIDFILE=/run/reselqos/reselqos.pid
# The node binary running the daemon (start-stop-daemon --exec).
#NODE=$NODE
# start-stop-daemon --retry schedule when the daemon does not answer \`reselqos stop\`.
#STOP_RETRY=TERM/30/KILL/5
EOF
mkdir -p "$R/etc/default"
conffile 0644 "$STAGE/default" "$R/etc/default/reselqos"

mkdir -p "$R/etc/init.d"
subst init/reselqos >"$STAGE/init"
put 0755 "$STAGE/init" "$R/etc/init.d/reselqos"

mkdir -p "$R/etc/logrotate.d"
put 0644 init/reselqos.logrotate "$R/etc/logrotate.d/reselqos"

mkdir -p "$R/lib/systemd/system"
subst systemd/reselqos.service >"$STAGE/unit"
put 0644 "$STAGE/unit" "$R/lib/systemd/system/reselqos.service"
mkdir -p "$R/lib/tmpfiles.d"
put 0644 systemd/reselqos.tmpfiles "$R/lib/tmpfiles.d/reselqos.conf"

# ---- /var ---------------------------------------------------------------------------------------
for d in /var/log/reselqos /var/lib/reselqos; do
	if [ -d "$R$d" ]; then
		chmod 0750 "$R$d"
		say "exists $R$d (mode 0750)"
	else
		mkdir -p "$R$d"
		chmod 0750 "$R$d"
		say "created $R$d (mode 0750)"
	fi
done

# ---- what next ----------------------------------------------------------------------------------
if [ -z "$R" ]; then
	if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
		systemctl daemon-reload
		say "systemctl daemon-reload"
		if command -v systemd-tmpfiles >/dev/null 2>&1; then
			systemd-tmpfiles --create reselqos.conf && say "systemd-tmpfiles --create reselqos.conf"
		fi
	fi
	cat <<EOF

reselqos is installed; nothing was enabled or started. Next:
  edit /etc/reselqos/qos.conf          (LDAP, MySQL, interfaces, rates; every key in $DOCDIR/CONFIG.md)
  reselqos check                       (validate it)
  systemctl enable --now reselqos      (systemd)
  or: update-rc.d reselqos defaults && service reselqos start   (sysvinit)
An already running daemon keeps the old version until: service reselqos restart
EOF
else
	say "staged under $ROOT (no systemctl, nothing enabled)"
fi
