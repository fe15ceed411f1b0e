#!/usr/bin/env bash
# Run every test: set up (packages, build, cluster, provider), then the
# extension's pg_regress suite, the provider's tests and the scripted
# tests under test/.  Exits non-zero on any failure; the last line is
# "N passed, N failed".
#
# It runs the whole suite on each PostgreSQL major version of LE_PGVERSIONS
# (default "15 17 18"; only LE_PGVERSION's when that is set), one after
# another, each in a new cluster of its own under <run dir>/test-pgNN
# (never the quick start's cluster: nothing left there changes an outcome)
# with ports of its own: LE_PGPORT + i, LE_PROVIDER_PORT, LE_FAULT_PORT and
# LE_WORKER_PROVIDER_PORT + 3i for the i-th version (defaults 25442, 27080,
# 27081, 27082: apart from the quick start's, and below Linux's ephemeral
# port range, 32768-60999, so that no outgoing connection holds one of
# them when a server binds it).  Versions Debian 12 lacks
# are built once by scripts/pg_build.sh; a version whose source package
# the registry does not have is reported as skipped (a failure with
# LE_REQUIRE_VERSIONS=1).  Each version's result, then the sum, is
# printed; each cluster is stopped afterwards (LE_KEEP_RUNNING=1 leaves
# them running).  LE_TESTS="t_queue.sh ..." runs only the scripted tests
# named (pg_regress, provider and check_packages.sh are names too): for
# development, never for CI.
if [ -z "${LE_TEST_ONE_VERSION:-}" ]; then
	le_user_pgport=${LE_PGPORT:-25442}
	le_user_provider_port=${LE_PROVIDER_PORT:-27080}
	le_user_fault_port=${LE_FAULT_PORT:-27081}
	le_user_worker_port=${LE_WORKER_PROVIDER_PORT:-$((le_user_fault_port + 1))}
	le_user_pgbin=${LE_PGBIN:-}
	le_versions=${LE_PGVERSIONS:-${LE_PGVERSION:-15 17 18}}
	source "$(dirname "$0")/common.sh"
	# the quick start's run dir; the suite's clusters live below it
	le_base=$LE_RUNDIR
	mkdir -p "$le_base"
	if [ "$(id -u)" = 0 ]; then
		le_run_user_ensure
		chown "$LE_RUN_USER" "$le_base"
	fi
	chmod 755 "$le_base"
	# one run of the suite at a time in a clone: a second run would delete
	# the first one's cluster (le_cluster_fresh) and fail it halfway
	le_lock=$le_base/test.pid
	le_other=$(cat "$le_lock" 2>/dev/null || true)
	if [ -n "$le_other" ] && [ "$le_other" != $$ ] &&
		tr '\0' ' ' <"/proc/$le_other/cmdline" 2>/dev/null | grep -q 'test\.sh'; then
		echo "not ok - another run of scripts/test.sh (pid $le_other) is using $le_base: wait for it to end"
		echo "0 passed, 1 failed"
		exit 1
	fi
	echo $$ >"$le_lock"
	trap 'rm -f "$le_lock"' EXIT
	total_passed=0
	total_failed=0
	total_skipped=0
	status=0
	summary=()
	i=0
	for v in $le_versions; do
		start=$(date +%s)
		brc=0
		bin_var=LE_PGBIN_$v
		if [ -n "${!bin_var:-}" ]; then
			bin=${!bin_var}
		elif [ -n "$le_user_pgbin" ] && [ "$(le_pg_major "$le_user_pgbin")" = "$v" ]; then
			bin=$le_user_pgbin
		else
			le_log "PostgreSQL $v: finding or building it"
			set +e
			bin=$(le_pgbin_for "$v")
			brc=$?
			set -e
			[ "$brc" = 0 ] || bin=
		fi
		if [ -z "$bin" ] || [ ! -x "$bin/pg_config" ]; then
			if [ "$brc" = 3 ] && [ "${LE_REQUIRE_VERSIONS:-}" != 1 ]; then
				# the registry does not have the source: say so, loudly
				echo "# SKIPPED: PostgreSQL $v, its source package cannot be had from the registry"
				summary+=("PostgreSQL $v: SKIPPED, source package not available (LE_REQUIRE_VERSIONS=1 makes this a failure)")
				total_skipped=$((total_skipped + 1))
			else
				echo "not ok - PostgreSQL $v: no installation (scripts/pg_build.sh $v failed)"
				summary+=("PostgreSQL $v: FAILED, no installation ($(($(date +%s) - start)) s)")
				total_failed=$((total_failed + 1))
				status=1
			fi
			i=$((i + 1))
			continue
		fi
		log=$le_base/test-pg$v.log
		le_log "$("$bin/pg_config" --version) in $le_base/test-pg$v"
		set +e
		env LE_TEST_ONE_VERSION=1 LE_PGVERSION="$v" LE_PGBIN="$bin" LE_SUITE_FIRST=$((i == 0)) \
			LE_RUNDIR="$le_base/test-pg$v" LE_QUICKSTART_RUNDIR="$le_base" \
			LE_PGPORT=$((le_user_pgport + i)) \
			LE_PROVIDER_PORT=$((le_user_provider_port + 3 * i)) \
			LE_FAULT_PORT=$((le_user_fault_port + 3 * i)) \
			LE_WORKER_PROVIDER_PORT=$((le_user_worker_port + 3 * i)) \
			bash "$0" 2>&1 | tee "$log"
		rc=${PIPESTATUS[0]}
		set -e
		line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1 || true)
		if [ -z "$line" ]; then
			line="0 passed, 1 failed"
			rc=1
		fi
		total_passed=$((total_passed + $(echo "$line" | cut -d' ' -f1)))
		total_failed=$((total_failed + $(echo "$line" | cut -d' ' -f3)))
		[ "$rc" = 0 ] || status=1
		note="$(($(date +%s) - start)) s"
		[ "$rc" = 0 ] || note="$note, exit $rc"
		summary+=("PostgreSQL $("$bin/pg_config" --version | sed 's/^PostgreSQL //'): $line ($note)")
		i=$((i + 1))
	done
	echo
	for s in "${summary[@]}"; do echo "# $s"; done
	[ "$total_failed" = 0 ] || status=1
	if [ "$total_skipped" = 0 ]; then
		echo "$total_passed passed, $total_failed failed"
	else
		echo "$total_passed passed, $total_failed failed, $total_skipped skipped"
	fi
	exit $status
fi

# One version, in the cluster of $LE_RUNDIR, made anew (set by the loop
# above: never the quick start's, which is not to be deleted).
source "$(dirname "$0")/common.sh"
if [ -z "${LE_QUICKSTART_RUNDIR:-}" ] || [ "$LE_RUNDIR" = "$LE_QUICKSTART_RUNDIR" ]; then
	echo "LE_TEST_ONE_VERSION is for scripts/test.sh itself" >&2
	exit 2
fi
export LE_SUITE_START=${LE_SUITE_START:-$(date +%s)}

le_deps
le_build
le_cluster_fresh
le_cluster_start
echo "$LE_PGBIN" >"$LE_RUNDIR/pgbin" # for scripts/stop.sh
le_provider_start --trial-credits 1000
le_fault_start

passed=0
failed=0
status=0

# tally OUTPUT_FILE: add a sub-suite's "N passed, N failed" line.
tally() {
	local line
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -1 || true)
	if [ -z "$line" ]; then
		echo "no result line in $1" >&2
		failed=$((failed + 1))
		return
	fi
	passed=$((passed + $(echo "$line" | cut -d' ' -f1)))
	failed=$((failed + $(echo "$line" | cut -d' ' -f3)))
}

# LE_TESTS="t_enqueue.sh t_queue.sh" runs only those scripted tests (for
# development; the suite is everything)
only() { [ -z "${LE_TESTS:-}" ] || [[ " $LE_TESTS " == *" $1 "* ]]; }

# 1. pg_regress against the running cluster (it needs no root-refusing initdb)
if only pg_regress; then
le_log "pg_regress"
regress_out=$LE_RUNDIR/regress
rm -rf "$regress_out"
mkdir -p "$regress_out"
tests=$(make -s -C "$LE_REPO" PG_CONFIG="$LE_PG_CONFIG" print-regress 2>/dev/null || true)
pg_regress=$("$LE_PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress
set +e
cd "$LE_REPO"
"$pg_regress" --inputdir="$LE_REPO" --outputdir="$regress_out" --bindir="$LE_PGBIN" \
	--host=127.0.0.1 --port="$LE_PGPORT" --user=postgres --dbname=contrib_regression \
	$tests 2>&1 | tee "$regress_out/summary.log"
rc=${PIPESTATUS[0]}
set -e
p=$(grep -cE '\.\.\. ok|^ok ' "$regress_out/summary.log" || true)
f=$(grep -cE '\.\.\. FAILED|^not ok ' "$regress_out/summary.log" || true)
passed=$((passed + p))
failed=$((failed + f))
if [ "$rc" != 0 ]; then
	status=1
	[ -f "$regress_out/regression.diffs" ] && head -200 "$regress_out/regression.diffs"
	[ "$f" = 0 ] && failed=$((failed + 1))
fi
fi

# 2. the provider's own tests
if only provider; then
le_log "provider tests"
le_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'lead_provider_test'" | grep -q 1 ||
	le_psql -d postgres -c "CREATE DATABASE lead_provider_test"
set +e
python3 "$LE_REPO/provider/test/run.py" --bin "$LE_REPO/provider/lead_provider" \
	--db "$(le_conninfo lead_provider_test)" --data "$LE_REPO/data/directory.csv.gz" 2>&1 |
	tee "$LE_RUNDIR/provider-test.log"
[ "${PIPESTATUS[0]}" = 0 ] || status=1
set -e
tally "$LE_RUNDIR/provider-test.log"
fi

# 3. scripted end-to-end tests (worker, crash, credits, races).  The
# static analysis reads Debian's PostgreSQL 15 headers whatever the version,
# and the packages are built for Debian's server: both once, with the first
# version.
for t in "$LE_REPO"/test/t_*.sh; do
	[ -e "$t" ] || continue
	only "$(basename "$t")" || continue
	if [ "$(basename "$t")" = t_lint.sh ] && [ "${LE_SUITE_FIRST:-1}" != 1 ]; then
		echo "# t_lint.sh ran with the first version"
		continue
	fi
	le_log "$(basename "$t")"
	set +e
	bash "$t" 2>&1 | tee "$LE_RUNDIR/$(basename "$t").log"
	[ "${PIPESTATUS[0]}" = 0 ] || status=1
	set -e
	tally "$LE_RUNDIR/$(basename "$t").log"
done
if [ "${LE_SUITE_FIRST:-1}" = 1 ] && only check_packages.sh; then
	le_log check_packages.sh
	set +e
	bash "$LE_REPO/scripts/check_packages.sh" 2>&1 | tee "$LE_RUNDIR/check_packages.log"
	[ "${PIPESTATUS[0]}" = 0 ] || status=1
	set -e
	tally "$LE_RUNDIR/check_packages.log"
else
	echo "# check_packages.sh ran with the first version"
fi

[ "$failed" = 0 ] || status=1
[ "${LE_KEEP_RUNNING:-}" = 1 ] || le_stop_all
echo "$passed passed, $failed failed"
exit $status
