#!/usr/bin/env bash
# Run the provider's tests (provider/test/run.py) against a build of the
# daemon with AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer
# (make -C provider asan).  Any sanitizer report fails the run: memory
# errors, undefined behaviour, and leaks found when a server exits.
#
# The daemon exits 0 after SIGTERM, and LeakSanitizer reports at exit, so
# the exit code alone is not enough: ASan and LSan write their reports to
# $LE_RUNDIR/sanitizer/<tool>.<pid>, and any such file fails the run.
# UBSan (gcc's runtime) ignores log_path and writes to stderr, which the
# tests read and do not print: the tests run the binary through a wrapper
# that copies its stderr to $LE_RUNDIR/sanitizer/stderr.<pid>, and a
# sanitizer message in any of those fails the run too.
#
# It uses its own throwaway cluster (no extension needed), by default in
# /tmp/le-asan on port 55477, so it can run next to scripts/test.sh.
# Environment: LE_RUNDIR, LE_PGPORT, KEEP_CLUSTER=1 to leave it running.
# Last line: "N passed, N failed" (the provider's tests).
LE_RUNDIR=${LE_RUNDIR:-/tmp/le-asan}
LE_PGPORT=${LE_PGPORT:-55477}
LE_PROVIDER_PORT=${LE_PROVIDER_PORT:-57477}
LE_FAULT_PORT=${LE_FAULT_PORT:-57478}
source "$(dirname "$0")/common.sh"

le_deps

le_log "building provider/asan/lead_provider"
make -C "$LE_REPO/provider" -s asan >/dev/null

# A cluster of our own: plain PostgreSQL, nothing preloaded.
mkdir -p "$LE_RUNDIR"
[ "$(id -u)" = 0 ] && chown "$LE_RUN_USER" "$LE_RUNDIR"
chmod 755 "$LE_RUNDIR"
pgdata=$LE_RUNDIR/pgdata
if [ ! -f "$pgdata/PG_VERSION" ]; then
	le_log "creating a cluster in $pgdata"
	as_run_user "$LE_PGBIN/initdb" -D "$pgdata" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
fi
stop_cluster() {
	[ "${KEEP_CLUSTER:-0}" = 1 ] ||
		as_run_user "$LE_PGBIN/pg_ctl" -D "$pgdata" -m fast stop >/dev/null 2>&1 || true
}
if ! as_run_user "$LE_PGBIN/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
	le_log "starting PostgreSQL on port $LE_PGPORT"
	as_run_user "$LE_PGBIN/pg_ctl" -D "$pgdata" -w start -l "$LE_RUNDIR/postgres.log" \
		-o "-p $LE_PGPORT -c listen_addresses='' -c unix_socket_directories='$LE_RUNDIR' -c fsync=off -c max_connections=200" >/dev/null
fi
trap stop_cluster EXIT
le_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'lead_provider_asan'" | grep -q 1 ||
	le_psql -d postgres -c "CREATE DATABASE lead_provider_asan"

logdir=$LE_RUNDIR/sanitizer
rm -rf "$logdir"
mkdir -p "$logdir"
# halt_on_error plus -fno-sanitize-recover: the first error ends the process.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=86:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1:log_path=$logdir/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$logdir/ubsan"
export LSAN_OPTIONS="log_path=$logdir/lsan"

wrapper=$LE_RUNDIR/lead_provider_asan
cat >"$wrapper" <<WRAP
#!/usr/bin/env bash
# exec keeps the pid, so the tests' signals reach the daemon itself.
exec "$LE_REPO/provider/asan/lead_provider" "\$@" 2> >(tee -a "$logdir/stderr.\$\$" >&2)
WRAP
chmod 755 "$wrapper"

# the sanitized build is slower: relax the test's timing limit
export LEAD_PROVIDER_TEST_TIME_FACTOR=${LEAD_PROVIDER_TEST_TIME_FACTOR:-4}

le_log "provider tests under ASan/UBSan"
start=$(date +%s)
set +e
python3 "$LE_REPO/provider/test/run.py" --bin "$wrapper" \
	--db "$(le_conninfo lead_provider_asan)" --data "$LE_REPO/data/directory.csv.gz" 2>&1 |
	tee "$LE_RUNDIR/provider-asan-test.log"
rc=${PIPESTATUS[0]}
set -e
le_log "provider tests took $(($(date +%s) - start)) s"

# give the tee processes of the last servers a moment to finish writing
sleep 1
reports=$(
	find "$logdir" -type f -size +0 ! -name 'stderr.*'
	grep -l -E 'runtime error:|ERROR: (AddressSanitizer|LeakSanitizer)|SUMMARY: (Address|Undefined|Leak)' "$logdir"/stderr.* 2>/dev/null || true
)
reports=$(echo "$reports" | sort -u)
if [ -n "$reports" ]; then
	echo "sanitizer reports:" >&2
	for r in $reports; do
		echo "---- $r" >&2
		cat "$r" >&2
	done
	rc=1
fi
if [ "$rc" = 0 ]; then
	le_log "no sanitizer reports"
fi
exit "$rc"
