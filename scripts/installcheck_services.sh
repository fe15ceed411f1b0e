#!/usr/bin/env bash
# What `make installcheck` needs besides the server: the reference provider
# (its database on the server under test) and the fault server of the
# failure tests.  Called by the Makefile before pg_regress, with make's pid:
#
#   scripts/installcheck_services.sh MAKE_PID
#
# The server is the one libpq's environment names (PGHOST, PGPORT, PGUSER),
# as for pg_regress.  A provider or fault server already answering on its
# port (LE_PROVIDER_PORT, LE_FAULT_PORT; those of scripts/demo.sh and
# scripts/test.sh by default) is used as it is; one this script starts is
# stopped when MAKE_PID exits.  The endpoints reach the tests' sessions
# through PGOPTIONS (see the Makefile), nothing is stored in the server.
#
# LEAD_PROVIDER names the provider's binary (default: provider/lead_provider,
# built when missing); LEAD_PROVIDER_DATA the directory it loads (default:
# data/directory.csv.gz); LE_INSTALLCHECK_DIR where logs and pid files go
# (default: tmp_installcheck/).
set -euo pipefail

srcdir=$(cd "$(dirname "$0")/.." && pwd)
make_pid=${1:?usage: $0 MAKE_PID}
provider_port=${LE_PROVIDER_PORT:-57070}
fault_port=${LE_FAULT_PORT:-57071}
psql=${PSQL:-psql}
rundir=${LE_INSTALLCHECK_DIR:-$srcdir/tmp_installcheck}
provider_bin=${LEAD_PROVIDER:-$srcdir/provider/lead_provider}
provider_data=${LEAD_PROVIDER_DATA:-$srcdir/data/directory.csv.gz}

say() { echo "installcheck: $*"; }
die() {
	echo "installcheck: $1" >&2
	[ -n "${2:-}" ] && echo "HINT: $2" >&2
	exit 1
}
# q DB SQL: one value from the server under test
q() { "$psql" -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

# http_ok URL [SECONDS]: does URL answer 200 (waiting up to SECONDS)?
http_ok() {
	python3 - "$1" "${2:-0}" <<'PY'
import sys, time, urllib.request
deadline = time.monotonic() + float(sys.argv[2])
while True:
    try:
        if urllib.request.urlopen(sys.argv[1], timeout=1).status == 200:
            sys.exit(0)
    except Exception:
        pass
    if time.monotonic() >= deadline:
        sys.exit(1)
    time.sleep(0.1)
PY
}

# stop_with_make PIDFILE: stop the process in PIDFILE once make has exited.
stop_with_make() {
	local pid
	pid=$(cat "$1")
	(
		while kill -0 "$make_pid" 2>/dev/null; do sleep 0.5; done
		kill "$pid" 2>/dev/null || true
		rm -f "$1"
	) </dev/null >/dev/null 2>&1 &
}

# 1. the server: reachable, lead_enrich preloaded, a superuser, and the
#    tests' own dblink connections (host=127.0.0.1 user=postgres) accepted.
q postgres "SELECT 1" >/dev/null ||
	die "cannot connect to the server" "Set PGHOST, PGPORT and PGUSER as for psql."
spl=$(q postgres "SHOW shared_preload_libraries")
[[ ",${spl// /}," == *,lead_enrich,* ]] ||
	die "the server does not preload lead_enrich (shared_preload_libraries = '$spl')" \
		"Add lead_enrich to shared_preload_libraries in postgresql.conf and restart the server."
[ "$(q postgres "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")" = t ] ||
	die "the tests must run as a superuser (PGUSER)" "CREATE EXTENSION lead_enrich needs one."
port=$(q postgres "SHOW port")
PGPASSWORD='' PGPASSFILE=/dev/null "$psql" -X -q -At \
	-d "host=127.0.0.1 port=$port user=postgres dbname=postgres" -c "SELECT 1" >/dev/null 2>&1 ||
	die "the server does not accept host=127.0.0.1 port=$port user=postgres without a password" \
		"The tests read the provider's ledger through dblink with that connection; allow it in pg_hba.conf (trust for 127.0.0.1/32)."

mkdir -p "$rundir"

# 2. the reference provider, with its database lead_provider on this server
if http_ok "http://127.0.0.1:$provider_port/health"; then
	say "using the provider already running on port $provider_port"
else
	if [ -z "${LEAD_PROVIDER:-}" ] && [ ! -x "$provider_bin" ]; then
		say "building the provider"
		make -s -C "$srcdir/provider" >/dev/null
	fi
	[ -x "$provider_bin" ] || die "no provider binary at $provider_bin"
	[ "$(q postgres "SELECT count(*) FROM pg_database WHERE datname = 'lead_provider'")" = 1 ] ||
		q postgres "CREATE DATABASE lead_provider" >/dev/null
	if [ "$(q lead_provider "SELECT to_regclass('provider.org') IS NOT NULL")" != t ]; then
		say "loading the directory into database lead_provider"
		"$provider_bin" init --db "dbname=lead_provider" --data "$provider_data" \
			>"$rundir/provider-init.log" 2>&1 ||
			{
				cat "$rundir/provider-init.log" >&2
				die "loading the directory failed"
			}
	fi
	say "starting the provider on port $provider_port"
	"$provider_bin" serve --port "$provider_port" --db "dbname=lead_provider" --trial-credits 1000 \
		</dev/null >>"$rundir/provider.log" 2>&1 &
	echo $! >"$rundir/provider.pid"
	stop_with_make "$rundir/provider.pid"
	http_ok "http://127.0.0.1:$provider_port/health" 15 ||
		{
			tail -20 "$rundir/provider.log" >&2
			die "the provider did not start"
		}
fi

# 3. the fault server (test/fault_server.py)
if http_ok "http://127.0.0.1:$fault_port/"; then
	say "using the fault server already running on port $fault_port"
else
	say "starting the fault server on port $fault_port"
	python3 "$srcdir/test/fault_server.py" "$fault_port" </dev/null >>"$rundir/fault.log" 2>&1 &
	echo $! >"$rundir/fault.pid"
	stop_with_make "$rundir/fault.pid"
	http_ok "http://127.0.0.1:$fault_port/" 15 ||
		{
			tail -20 "$rundir/fault.log" >&2
			die "the fault server did not start"
		}
fi
