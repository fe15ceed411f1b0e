#!/usr/bin/env bash
# Build a PostgreSQL major version from Debian's source package, once, for
# testing the extension against it: scripts/pg_build.sh 17 (or 18).
#
# Debian 12 has no binary packages of PostgreSQL 17 or 18, but Debian's
# source packages postgresql-17 (trixie) and postgresql-18 (sid) build on
# it.  This script
#   - writes a sources file of its own holding only deb-src lines for
#     trixie and sid, and runs apt-get update/source with it alone, with a
#     lists directory of its own: the system's sources and package lists are
#     not changed and nothing is ever installed from trixie or sid;
#   - fetches the source package with `apt-get source --download-only`
#     (apt checks its files against the signed index) into a cache outside
#     the clone ($LE_PGCACHE, default /var/cache/lead_enrich as root,
#     ${XDG_CACHE_HOME:-~/.cache}/lead_enrich otherwise) and unpacks its
#     upstream tarball as it is (Debian's patches would move the library
#     directory to /usr/lib/postgresql/NN, outside the cache);
#   - builds only what an extension and its tests need: the server, psql
#     and the other client programs, libpq, the headers, PGXS and
#     pg_regress, and the contrib modules the tests and benchmarks use
#     (dblink, pg_prewarm); no documentation, no readline, ICU, LLVM or SSL
#     (configure_opts below); lz4 as Debian's packages have it (TOAST
#     compression: without it a column set to lz4 silently stays pglz);
#   - installs it under $LE_PGCACHE/pg-VERSION/install and writes a stamp
#     file there.  A later run finds the stamp and does nothing.
#
# It prints the bin directory last (for LE_PGBIN).  Exit status 3: the
# registry does not have the source package (nothing was built); 1: any
# other failure.  The build dependencies (bison, flex, libxml2-dev, ...)
# are installed with apt-get when missing, which needs root.
# LE_PGBUILD_JOBS (default 2) sets make's -j.
set -euo pipefail

usage() {
	echo "usage: $0 MAJOR_VERSION   (e.g. 17 or 18)" >&2
	exit 2
}
[ $# = 1 ] || usage
ver=$1
case $ver in
	1[6-9] | [2-9][0-9]) ;;
	*) usage ;;
esac

source "$(dirname "$0")/cache_dir.sh"
jobs=${LE_PGBUILD_JOBS:-2}
top=$LE_PGCACHE/pg-$ver
prefix=$top/install
stamp=$prefix/.lead_enrich-built

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# What the tests need of the server: zlib (pg_dump), libxml (t_upgrade.sh
# counts rows with query_to_xml); no readline, ICU, LLVM, SSL or NLS.  The
# stamp records these options: a build made with others is made again.
configure_opts="--without-readline --without-icu --without-llvm --without-openssl --with-zlib --with-lz4 --with-libxml --disable-nls"
built() {
	[ -x "$prefix/bin/pg_config" ] && grep -qxF "options: $configure_opts" "$stamp" 2>/dev/null
}
if built; then
	echo "$prefix/bin"
	exit 0
fi

mkdir -p "$top"
# One build at a time per version (two test runs may ask at once).
exec 9>"$top/.lock"
flock 9
if built; then
	echo "$prefix/bin"
	exit 0
fi
start=$(date +%s)

# Build dependencies, from Debian 12's own packages.
deps="bison flex perl make gcc pkg-config zlib1g-dev liblz4-dev libxml2-dev dpkg-dev"
missing=()
for p in $deps; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "missing packages: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
		exit 1
	fi
	log "installing the build dependencies: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# apt with only our deb-src entries and our own lists and cache: the
# system's configuration is read for everything else (proxy, keyrings) but
# its sources are not used and its lists are not touched.
apt_dir=$top/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial"
cat >"$apt_dir/sources.list" <<'EOF'
# lead_enrich scripts/pg_build.sh: source packages only, never binaries.
deb-src http://deb.debian.org/debian trixie main
deb-src http://deb.debian.org/debian sid main
EOF
apt_opts=(
	-o "Dir::Etc::sourcelist=$apt_dir/sources.list"
	-o "Dir::Etc::sourceparts=-"
	-o "Dir::State::lists=$apt_dir/lists"
	-o "Dir::Cache::archives=$apt_dir/archives"
	-o "Dir::Cache::pkgcache="
	-o "Dir::Cache::srcpkgcache="
	-o "APT::Get::List-Cleanup=0"
)

# The upstream tarball of the source package, unpacked as it is: Debian's
# patches move the library directory to /usr/lib/postgresql/NN, outside
# the cache, and add nothing an extension's tests need.
orig=$(find "$top" -maxdepth 1 -name "postgresql-${ver}_*.orig.tar.*" | sort | tail -1)
# or an upstream tarball (postgresql-NN.M.tar.*) in ../shared/vendor, for a
# version the registry does not serve
if [ -z "$orig" ]; then
	orig=$(find "$(dirname "$0")/../../shared/vendor" -maxdepth 1 -name "postgresql-${ver}.*.tar.*" 2>/dev/null |
		sort | tail -1)
	[ -z "$orig" ] || log "using $orig"
fi
if [ -z "$orig" ]; then
	log "fetching the source package postgresql-$ver (deb-src trixie/sid) into $top"
	apt-get "${apt_opts[@]}" update -q >"$top/apt-update.log" 2>&1 ||
		{ cat "$top/apt-update.log" >&2; exit 1; }
	if ! (cd "$top" && apt-get "${apt_opts[@]}" source -q --download-only "postgresql-$ver") >"$top/apt-source.log" 2>&1; then
		grep -E '^(E|Err):' "$top/apt-source.log" >&2
		echo "the source package postgresql-$ver cannot be had from the registry" >&2
		exit 3
	fi
	orig=$(find "$top" -maxdepth 1 -name "postgresql-${ver}_*.orig.tar.*" | sort | tail -1)
	[ -n "$orig" ] || { echo "no postgresql-${ver}_*.orig.tar.* in $top" >&2; exit 1; }
fi
src=$top/src
if [ ! -f "$src/configure" ]; then
	rm -rf "$src"
	mkdir -p "$src"
	tar -xf "$orig" -C "$src" --strip-components=1
fi

build=$top/build
rm -rf "$build" "$prefix"
mkdir -p "$build"
log "configuring $(basename "$orig") (logs in $build)"
# shellcheck disable=SC2086 # the options are words
(cd "$build" && "$src/configure" --prefix="$prefix" $configure_opts) >"$build/configure.log" 2>&1 ||
	{ tail -30 "$build/configure.log" >&2; exit 1; }
log "building PostgreSQL $ver with make -j$jobs"
{
	make -C "$build" -j"$jobs" -s &&
		make -C "$build" -s install &&
		for m in dblink pg_prewarm; do
			make -C "$build/contrib/$m" -j"$jobs" -s && make -C "$build/contrib/$m" -s install || exit 1
		done
} >"$build/make.log" 2>&1 || { tail -40 "$build/make.log" >&2; exit 1; }
# The cluster runs as an unprivileged user: it must read everything.
chmod -R a+rX "$prefix"
end=$(date +%s)
printf 'built from %s in %s s\noptions: %s\n' "$(basename "$orig")" "$((end - start))" "$configure_opts" >"$stamp"
log "PostgreSQL $ver built in $((end - start)) s into $prefix"
echo "$prefix/bin"
