# shellcheck shell=bash
# Shared set-up for scripts/demo.sh, scripts/test.sh and bench/: install
# what is missing, build, and run a throwaway cluster plus the reference
# provider.  Everything lives under $LE_RUNDIR (default: <repo>/.run).

set -euo pipefail

LE_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LE_PGPORT=${LE_PGPORT:-55432}
LE_PROVIDER_PORT=${LE_PROVIDER_PORT:-57070}
LE_FAULT_PORT=${LE_FAULT_PORT:-57071}
# le_pg_major BINDIR: the major version of the PostgreSQL in BINDIR.
le_pg_major() {
	"$1/pg_config" --version 2>/dev/null | sed -n 's/^PostgreSQL \([0-9]*\).*/\1/p'
}
# The major version: LE_PGVERSION, else LE_PGBIN's, else 15.
if [ -z "${LE_PGVERSION:-}" ] && [ -n "${LE_PGBIN:-}" ]; then
	LE_PGVERSION=$(le_pg_major "$LE_PGBIN")
fi
LE_PGVERSION=${LE_PGVERSION:-15}
# Debian 12 packages PostgreSQL 15; other major versions are built from
# Debian's source packages by scripts/pg_build.sh (see le_pgbin_for).
LE_DEBIAN_PGVERSION=15
LE_PACKAGES="make gcc libcurl4-openssl-dev libmicrohttpd-dev libpq-dev zlib1g-dev python3 \
iso-codes tzdata publicsuffix ca-certificates"
if [ "$LE_PGVERSION" = "$LE_DEBIAN_PGVERSION" ]; then
	LE_PACKAGES="$LE_PACKAGES postgresql-$LE_PGVERSION postgresql-server-dev-$LE_PGVERSION"
fi

# PostgreSQL refuses to run as root: the cluster runs as this user.
if [ "$(id -u)" = 0 ]; then
	LE_RUN_USER=${LE_RUN_USER:-leadenrich}
else
	LE_RUN_USER=$(id -un)
fi

# le_world_reachable DIR: can any user reach DIR (o+x on it and its parents)?
le_world_reachable() {
	local d=$1
	while [ "$d" != / ] && [ -n "$d" ]; do
		[ $(($(stat -c %a "$d" | tail -c 2) & 1)) = 1 ] || return 1
		d=$(dirname "$d")
	done
}

# Where the cluster and the provider live: <repo>/.run, unless the cluster's
# user cannot reach it (a clone under /root) or the socket path would be too
# long for a Unix socket.
if [ -z "${LE_RUNDIR:-}" ]; then
	LE_RUNDIR=$LE_REPO/.run
	if [ ${#LE_RUNDIR} -gt 80 ] ||
		{ [ "$(id -u)" = 0 ] && ! le_world_reachable "$LE_REPO"; }; then
		LE_RUNDIR=/tmp/lead_enrich-$(printf '%s' "$LE_REPO" | md5sum | cut -c1-8)
	fi
fi

le_log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# as_run_user CMD...: run a command as the cluster's owner.
as_run_user() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u "$LE_RUN_USER" -- "$@"
	else
		"$@"
	fi
}

# le_deps [extra packages]: install the Debian packages that are missing.
le_deps() {
	local missing=() p
	for p in $LE_PACKAGES "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		if [ "$(id -u)" != 0 ]; then
			echo "missing packages: ${missing[*]}" >&2
			echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
			exit 1
		fi
		le_log "installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q >/dev/null
		apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
	fi
	# LE_PGBIN picks another PostgreSQL installation (a version built from
	# source, or a private copy); the default is Debian's, or for a version
	# Debian 12 does not have, the one scripts/pg_build.sh builds and caches.
	LE_PGBIN=${LE_PGBIN:-$(le_pgbin_for "$LE_PGVERSION")}
	if [ "$(le_pg_major "$LE_PGBIN")" != "$LE_PGVERSION" ]; then
		echo "LE_PGBIN=$LE_PGBIN is not PostgreSQL $LE_PGVERSION (LE_PGVERSION)" >&2
		exit 1
	fi
	export PATH="$LE_PGBIN:$PATH"
	LE_PG_CONFIG=$LE_PGBIN/pg_config
	[ -x "$LE_PG_CONFIG" ] || LE_PG_CONFIG=$(command -v pg_config)
	le_run_user_ensure
}

# le_run_user_ensure: as root, create the cluster's user when the machine
# does not have it yet (a fresh machine); before anything is chowned to it.
le_run_user_ensure() {
	if [ "$(id -u)" = 0 ] && ! id "$LE_RUN_USER" >/dev/null 2>&1; then
		useradd --system --create-home --home-dir "/var/lib/$LE_RUN_USER" --shell /bin/bash "$LE_RUN_USER"
	fi
}

# le_pgbin_for VERSION: the bin directory of that PostgreSQL major version:
# Debian's when it is installed, else the build cached by
# scripts/pg_build.sh (built first when missing; that needs root or a
# writable cache, and a while: see docs/developing.md).
le_pgbin_for() {
	if [ -x "/usr/lib/postgresql/$1/bin/pg_config" ] || [ "$1" = "$LE_DEBIAN_PGVERSION" ]; then
		echo "/usr/lib/postgresql/$1/bin"
	else
		"$LE_REPO/scripts/pg_build.sh" "$1"
	fi
}

# le_build: build and install the extension, build the provider.  Objects
# built against another PostgreSQL (another pg_config) are cleaned first.
le_build() {
	le_log "building the extension and the provider"
	local built_for=$LE_REPO/.built-for
	if [ "$(cat "$built_for" 2>/dev/null)" != "$LE_PG_CONFIG" ]; then
		make -C "$LE_REPO" -s PG_CONFIG="$LE_PG_CONFIG" clean >/dev/null
		echo "$LE_PG_CONFIG" >"$built_for"
	fi
	make -C "$LE_REPO" -s PG_CONFIG="$LE_PG_CONFIG" >/dev/null
	if [ -w "$("$LE_PG_CONFIG" --pkglibdir)" ]; then
		make -C "$LE_REPO" -s PG_CONFIG="$LE_PG_CONFIG" install >/dev/null
	else
		sudo make -C "$LE_REPO" -s PG_CONFIG="$LE_PG_CONFIG" install >/dev/null
	fi
	make -C "$LE_REPO/provider" -s >/dev/null
}

le_psql() {
	psql -X -q -v ON_ERROR_STOP=1 -h "$LE_RUNDIR" -p "$LE_PGPORT" -U postgres "$@"
}

le_conninfo() {
	echo "host=$LE_RUNDIR port=$LE_PGPORT user=postgres dbname=$1"
}

# le_cluster_prepare [extra postgresql.conf lines]: create the throwaway
# cluster if needed and write its settings; LE_CONF_CHANGED=1 when they
# changed.
le_cluster_prepare() {
	mkdir -p "$LE_RUNDIR"
	[ "$(id -u)" = 0 ] && chown "$LE_RUN_USER" "$LE_RUNDIR"
	chmod 755 "$LE_RUNDIR"
	local pgdata=$LE_RUNDIR/pgdata
	if [ -f "$pgdata/PG_VERSION" ] && [ "$(cat "$pgdata/PG_VERSION")" != "$LE_PGVERSION" ]; then
		# another major version's cluster (a run with another
		# LE_PGVERSION): its pg_ctl would call it corrupt
		echo "$pgdata holds a PostgreSQL $(cat "$pgdata/PG_VERSION") cluster, not $LE_PGVERSION." >&2
		echo "Stop it (scripts/stop.sh) and remove it, or give this run another LE_RUNDIR." >&2
		return 1
	fi
	if [ ! -f "$pgdata/PG_VERSION" ]; then
		le_log "creating a cluster in $pgdata"
		as_run_user "$LE_PGBIN/initdb" -D "$pgdata" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
	fi
	local conf=$LE_RUNDIR/cluster.conf.new
	cat >"$conf" <<CONF
port = $LE_PGPORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$LE_RUNDIR'
shared_preload_libraries = 'lead_enrich'
max_worker_processes = 32
fsync = off
synchronous_commit = off
full_page_writes = off
log_line_prefix = '%m [%p] %q%a '
lead_enrich.endpoint = 'http://127.0.0.1:$LE_PROVIDER_PORT'
regress.fault_endpoint = 'http://127.0.0.1:$LE_FAULT_PORT'
CONF
	local extra
	for extra in "$@"; do echo "$extra" >>"$conf"; done
	LE_CONF_CHANGED=1
	if cmp -s "$conf" "$LE_RUNDIR/cluster.conf"; then LE_CONF_CHANGED=0; fi
	mv "$conf" "$LE_RUNDIR/cluster.conf"
	chown "$LE_RUN_USER" "$LE_RUNDIR/cluster.conf" 2>/dev/null || true
	grep -qF "include '$LE_RUNDIR/cluster.conf'" "$pgdata/postgresql.conf" ||
		echo "include '$LE_RUNDIR/cluster.conf'" >>"$pgdata/postgresql.conf"
}

# le_cluster_fresh: stop whatever runs in $LE_RUNDIR (cluster, provider,
# fault server) and delete it, so that the next le_cluster_start creates a
# new cluster: no ALTER SYSTEM setting, database or account left by an
# earlier run.  For the test suite, which must start from a known state.
le_cluster_fresh() {
	local pid
	le_stop_all
	# a postmaster pg_ctl could not stop (another version's cluster): by its pid
	if [ -f "$LE_RUNDIR/pgdata/postmaster.pid" ]; then
		pid=$(head -1 "$LE_RUNDIR/pgdata/postmaster.pid")
		if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-D $LE_RUNDIR/pgdata" &&
			kill -INT "$pid" 2>/dev/null; then
			for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		fi
	fi
	rm -rf "${LE_RUNDIR:?}"
}

# le_cluster_start [extra postgresql.conf lines]: a throwaway cluster.
le_cluster_start() {
	local pgdata=$LE_RUNDIR/pgdata
	le_cluster_prepare "$@"
	if as_run_user "$LE_PGBIN/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
		# restart only when the settings or the preloaded library changed
		if [ "$LE_CONF_CHANGED" = 1 ] || [ "$("$LE_PG_CONFIG" --pkglibdir)/lead_enrich.so" -nt "$pgdata/postmaster.pid" ]; then
			le_log "restarting PostgreSQL"
			as_run_user "$LE_PGBIN/pg_ctl" -D "$pgdata" -w -m fast restart -l "$LE_RUNDIR/postgres.log" >/dev/null
		fi
	else
		le_log "starting PostgreSQL on port $LE_PGPORT"
		# The port may be held for a moment as the local end of some
		# connection (it is in Linux's ephemeral range): try again then.
		local try
		for try in 1 2 3 4 5; do
			as_run_user "$LE_PGBIN/pg_ctl" -D "$pgdata" -w start -l "$LE_RUNDIR/postgres.log" >/dev/null && return 0
			tail -5 "$LE_RUNDIR/postgres.log" | grep -q "Address already in use" || return 1
			[ "$try" = 5 ] && return 1
			le_log "port $LE_PGPORT in use, trying again"
			sleep 3
		done
	fi
}

# le_provider_start [serve flags]: load the directory and serve it.
le_provider_start() {
	le_provider_stop
	le_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'lead_provider'" | grep -q 1 ||
		le_psql -d postgres -c "CREATE DATABASE lead_provider"
	if ! le_psql -d lead_provider -tAc "SELECT to_regclass('provider.org') IS NOT NULL" | grep -q t ||
		[ "$LE_REPO/data/directory.csv.gz" -nt "$LE_RUNDIR/provider.loaded" ] ||
		[ "$LE_REPO/provider/lead_provider" -nt "$LE_RUNDIR/provider.loaded" ]; then
		le_log "loading the directory into the provider's database"
		"$LE_REPO/provider/lead_provider" init --db "$(le_conninfo lead_provider)" \
			--data "$LE_REPO/data/directory.csv.gz" >"$LE_RUNDIR/provider-init.log" 2>&1 ||
			{ cat "$LE_RUNDIR/provider-init.log" >&2; return 1; }
		touch "$LE_RUNDIR/provider.loaded"
	fi
	le_log "starting the provider on port $LE_PROVIDER_PORT"
	nohup "$LE_REPO/provider/lead_provider" serve --port "$LE_PROVIDER_PORT" \
		--db "$(le_conninfo lead_provider)" --access-log "$LE_RUNDIR/provider-access.log" "$@" \
		>>"$LE_RUNDIR/provider.log" 2>&1 &
	echo $! >"$LE_RUNDIR/provider.pid"
	le_wait_http "http://127.0.0.1:$LE_PROVIDER_PORT/health" ||
		{ tail -20 "$LE_RUNDIR/provider.log" >&2; return 1; }
}

le_provider_stop() {
	if [ -f "$LE_RUNDIR/provider.pid" ]; then
		kill "$(cat "$LE_RUNDIR/provider.pid")" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$(cat "$LE_RUNDIR/provider.pid")" 2>/dev/null || break; sleep 0.1; done
		rm -f "$LE_RUNDIR/provider.pid"
	fi
}

le_fault_start() {
	le_fault_stop
	nohup python3 "$LE_REPO/test/fault_server.py" "$LE_FAULT_PORT" >>"$LE_RUNDIR/fault.log" 2>&1 &
	echo $! >"$LE_RUNDIR/fault.pid"
	le_wait_http "http://127.0.0.1:$LE_FAULT_PORT/"
}

le_fault_stop() {
	if [ -f "$LE_RUNDIR/fault.pid" ]; then
		kill "$(cat "$LE_RUNDIR/fault.pid")" 2>/dev/null || true
		rm -f "$LE_RUNDIR/fault.pid"
	fi
}

# le_wait_http URL: wait up to 15 s for a 200.
le_wait_http() {
	python3 - "$1" <<'PY'
import sys, time, urllib.request
for _ in range(150):
    try:
        if urllib.request.urlopen(sys.argv[1], timeout=1).status == 200:
            sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit(1)
PY
}

le_stop_all() {
	le_provider_stop
	le_fault_stop
	if [ -f "$LE_RUNDIR/pgdata/PG_VERSION" ]; then
		as_run_user "$LE_PGBIN/pg_ctl" -D "$LE_RUNDIR/pgdata" -m fast stop >/dev/null 2>&1 || true
	fi
}
