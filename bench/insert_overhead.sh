#!/usr/bin/env bash
# The cost of the enqueue trigger: pgbench single-row INSERTs (-c4 -j2) into
# the same table, alternately unattached (mode 'manual': no trigger) and
# attached in automatic mode with the worker stopped (the trigger alone),
# on two tables: a plain narrow leads table and Odoo's crm_lead (the
# fixture, as bench/run.sh section 3).  Prints each run, the median tps of
# each side and their ratio (the target is >= 0.90), and the median of the
# pairs' own ratios.
#
# Usage: bench/insert_overhead.sh [--pairs N] [--seconds S] [--table plain|odoo|both]
#   --pairs N     alternating (unattached, attached) pairs per table (default 3)
#   --seconds S   length of each pgbench run (default 10)
#   --table T     which table(s) to measure (default both)
#
# Uses the cluster of scripts/common.sh (LE_RUNDIR, LE_PGPORT, LE_PGBIN);
# starts it when it is not running and then stops it at the end, and leaves
# it running when it was.
set -euo pipefail
source "$(dirname "$0")/../scripts/common.sh"

pairs=3
secs=10
which=both
while [ $# -gt 0 ]; do
	case "$1" in
		--pairs) pairs=$2; shift 2 ;;
		--seconds) secs=$2; shift 2 ;;
		--table) which=$2; shift 2 ;;
		-h|--help) sed -n '2,17p' "$0"; exit 0 ;;
		*) echo "unknown option $1" >&2; exit 2 ;;
	esac
done

le_deps >/dev/null
le_build
# A cluster started here is stopped at the end: left running, it held the
# quick start's port, and ./scripts/demo.sh of another clone could not start.
started_here=0
if ! { [ -f "$LE_RUNDIR/pgdata/PG_VERSION" ] &&
	as_run_user "$LE_PGBIN/pg_ctl" -D "$LE_RUNDIR/pgdata" status >/dev/null 2>&1; }; then
	started_here=1
fi
le_cluster_start

DB=le_bench_insert
PSQL() { le_psql -d "$DB" -X -q -t -A "$@"; }

le_psql -d postgres -qc "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" \
	-c "CREATE DATABASE $DB" >/dev/null
le_psql -d "$DB" -f "$LE_REPO/test/fixtures/odoo17_crm.sql" >/dev/null
PSQL -c "CREATE EXTENSION lead_enrich" \
	-c "CREATE TABLE public.leads (id bigserial PRIMARY KEY, email text, name text, done boolean NOT NULL DEFAULT false)" >/dev/null
# at the end: the database goes, and the cluster too if it was started here
cleanup() {
	le_psql -d postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
	if [ "$started_here" = 1 ]; then
		as_run_user "$LE_PGBIN/pg_ctl" -D "$LE_RUNDIR/pgdata" -m fast stop >/dev/null 2>&1 || true
	fi
}
trap cleanup EXIT

work=$(mktemp -d)
chmod 755 "$work"
# the same script for both sides: only the trigger differs
cat >"$work/plain.sql" <<'EOF'
INSERT INTO public.leads (email, name) VALUES ('p' || :client_id || '-' || random() || '@unknown-pgbench.example.net', 'pgbench');
EOF
cat >"$work/odoo.sql" <<'EOF'
INSERT INTO odoo.crm_lead (name, type, active, email_from, iap_enrich_done)
VALUES ('pgbench', 'lead', true, 'p' || :client_id || '-' || random() || '@unknown-pgbench.example.net', false);
EOF

# pgb SCRIPT: one pgbench run, prints its tps (without connection time)
pgb() {
	"$LE_PGBIN/pgbench" -n -h "$LE_RUNDIR" -p "$LE_PGPORT" -U postgres -c 4 -j 2 -T "$secs" -f "$1" "$DB" 2>/dev/null |
		awk '/^tps/ {print int($3); exit}'
}

median() { tr ' ' '\n' | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# measure NAME TABLE COLUMNS SCRIPT
measure() {
	local name=$1 table=$2 columns=$3 script=$4 off=() on=() t
	PSQL -c "SELECT lead_enrich.attach('$table', $columns)" >/dev/null
	PSQL -c "SELECT lead_enrich.worker_stop()" >/dev/null 2>&1 || true
	PSQL -c "CHECKPOINT" >/dev/null
	for i in $(seq "$pairs"); do
		PSQL -c "SELECT lead_enrich.set_mode('manual')" -c "VACUUM $table" >/dev/null
		t=$(pgb "$script")
		off+=("$t")
		PSQL -c "SELECT lead_enrich.set_mode('auto')" -c "VACUUM $table" >/dev/null
		PSQL -c "SELECT lead_enrich.worker_stop()" >/dev/null 2>&1 || true
		t=$(pgb "$script")
		on+=("$t")
		printf '%-6s pair %d: unattached %8s tps   attached (auto, worker stopped) %8s tps\n' "$name" "$i" "${off[-1]}" "${on[-1]}"
	done
	local moff mon
	moff=$(echo "${off[*]}" | median)
	mon=$(echo "${on[*]}" | median)
	printf '%-6s median: unattached %8s tps   attached %8s tps   ratio %s\n' "$name" "$moff" "$mon" \
		"$(python3 -c "print(round($mon / $moff, 3))")"
	# each attached run over the unattached run beside it: the machine's
	# drift, which moves both runs of a pair alike, moves this less
	printf '%-6s paired: the median of the pairs'"'"' ratios %s\n' "$name" \
		"$(python3 -c "import statistics, sys; a, b = (list(map(float, x.split())) for x in sys.argv[1:3]); print(round(statistics.median(y / x for x, y in zip(a, b)), 3))" "${off[*]}" "${on[*]}")"
	PSQL -c "SELECT lead_enrich.set_mode('manual')" -c "SELECT lead_enrich.detach()" >/dev/null
}

echo "pgbench -c4 -j2 -T$secs, single-row INSERT, $pairs alternating pairs; $(nproc) cores, PostgreSQL $("$LE_PG_CONFIG" --version | awk '{print $2}')"
if [ "$which" = plain ] || [ "$which" = both ]; then
	measure plain public.leads "'{\"email\": \"email\", \"enrich_done\": \"done\"}'" "$work/plain.sql"
fi
if [ "$which" = odoo ] || [ "$which" = both ]; then
	measure odoo odoo.crm_lead NULL "$work/odoo.sql"
fi
PSQL -c "SELECT lead_enrich.worker_start()" >/dev/null 2>&1 || true
rm -rf "$work"
