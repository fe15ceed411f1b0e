#!/usr/bin/env bash
# Run every test: set up (packages, build, cluster, provider), then the
# extension's pg_regress suite, the provider's tests and the scripted
# tests under test/.  Exits non-zero on any failure; the last line is
# "N passed, N failed".
source "$(dirname "$0")/common.sh"

le_deps
le_build
le_cluster_start
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

# 1. pg_regress against the running cluster (it needs no root-refusing initdb)
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

# 2. the provider's own tests
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

# 3. scripted end-to-end tests (worker, crash, credits, races)
for t in "$LE_REPO"/test/t_*.sh; do
	[ -e "$t" ] || continue
	le_log "$(basename "$t")"
	set +e
	bash "$t" 2>&1 | tee "$LE_RUNDIR/$(basename "$t").log"
	[ "${PIPESTATUS[0]}" = 0 ] || status=1
	set -e
	tally "$LE_RUNDIR/$(basename "$t").log"
done
le_log check_packages.sh; set +e; bash "$LE_REPO/scripts/check_packages.sh" 2>&1 | tee "$LE_RUNDIR/check_packages.log"; [ "${PIPESTATUS[0]}" = 0 ] || status=1; set -e; tally "$LE_RUNDIR/check_packages.log"

[ "$failed" = 0 ] || status=1
echo "$passed passed, $failed failed"
exit $status
