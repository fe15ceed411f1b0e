#!/usr/bin/env bash
# Build Citus from the source snapshot in ../shared/vendor, once per
# PostgreSQL installation, and install it into that installation:
#   scripts/citus_build.sh PG_CONFIG
# Citus is a test dependency only (AGPL-3.0): it is never linked into
# lead_enrich and never copied into this tree.  The build tree is cached
# under $LE_PGCACHE/citus-VERSION-pgMAJOR/KEY (default /var/cache/lead_enrich
# as root, ${XDG_CACHE_HOME:-~/.cache}/lead_enrich otherwise), KEY naming
# the PostgreSQL installation (its pg_config path and version); a later run
# only installs it again when the installation lacks it.
#
# Exit status 0: Citus is installed (the citus.so path is printed);
# 3: Citus is not available here (no tarball, a PostgreSQL major version
# this release does not support, or its build dependencies cannot be had);
# the reason is printed on stdout.  1: any other failure.
set -euo pipefail

[ $# = 1 ] || { echo "usage: $0 PG_CONFIG" >&2; exit 2; }
pg_config=$1
repo=$(cd "$(dirname "$0")/.." && pwd)
citus_ver=${LE_CITUS_VERSION:-13.2.2}
tarball=${LE_CITUS_TARBALL:-$repo/../shared/vendor/citus-$citus_ver.tar.gz}
[ -f "$tarball" ] || { echo "no Citus source ($tarball)"; exit 3; }
pg_major=$("$pg_config" --version | sed -n 's/^PostgreSQL \([0-9]*\).*/\1/p')
# Citus 13.2 supports PostgreSQL 15, 16 and 17
case $pg_major in
	15 | 16 | 17) ;;
	*) echo "Citus $citus_ver does not support PostgreSQL $pg_major"; exit 3 ;;
esac

source "$(dirname "$0")/cache_dir.sh"
key=$(printf '%s\n%s\n' "$(readlink -f "$pg_config")" "$("$pg_config" --version)" | md5sum | cut -c1-12)
top=$LE_PGCACHE/citus-$citus_ver-pg$pg_major/$key
src=$top/citus-$citus_ver
stamp=$top/.built
pkglib=$("$pg_config" --pkglibdir)
sharedir=$("$pg_config" --sharedir)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

installed() {
	[ -f "$pkglib/citus.so" ] && [ -f "$sharedir/extension/citus.control" ] &&
		cmp -s "$src/src/backend/distributed/citus.so" "$pkglib/citus.so"
}

mkdir -p "$top"
exec 9>"$top/.lock"
flock 9

if [ ! -f "$stamp" ]; then
	# build dependencies, from Debian 12's own packages
	missing=()
	for p in liblz4-dev libzstd-dev libkrb5-dev libcurl4-openssl-dev; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		if [ "$(id -u)" != 0 ]; then
			echo "Citus needs ${missing[*]} (apt-get install as root)"
			exit 3
		fi
		log "installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
			{ apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; } ||
			{ echo "cannot install ${missing[*]}"; exit 3; }
	fi
	start=$(date +%s)
	log "building Citus $citus_ver for $("$pg_config" --version) in $top"
	rm -rf "$src"
	tar xzf "$tarball" -C "$top"
	# PostgreSQL 15.20 declares have_createdb_privilege() itself, and Citus's
	# static copy of it then clashes: drop the copy when the headers have it.
	if grep -q 'have_createdb_privilege' "$("$pg_config" --includedir-server)/commands/dbcommands.h"; then
		perl -0pi -e 's/static inline bool\nhave_createdb_privilege\(void\)\n\{.*?\n\}\n//s' \
			"$src/src/include/pg_version_compat.h"
	fi
	(
		cd "$src"
		./configure PG_CONFIG="$pg_config" --without-libcurl >"$top/configure.log" 2>&1
		make -j"${LE_PGBUILD_JOBS:-2}" >"$top/build.log" 2>&1
	) || { echo "Citus build failed: see $top/configure.log and $top/build.log" >&2; exit 1; }
	date -u +%FT%TZ >"$stamp"
	log "Citus built in $(($(date +%s) - start)) s"
fi

if ! installed; then
	if [ ! -w "$pkglib" ] || [ ! -w "$sharedir/extension" ]; then
		echo "cannot install Citus into $pkglib (not writable: run as root)"
		exit 3
	fi
	log "installing Citus into $pkglib"
	make -C "$src" install >"$top/install.log" 2>&1 ||
		{ echo "Citus install failed: see $top/install.log" >&2; exit 1; }
fi
echo "$pkglib/citus.so"
