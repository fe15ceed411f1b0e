#!/usr/bin/env bash
# Stop the cluster and the provider started by demo.sh, and any cluster
# the test suite (test.sh) left running below it.  With --clean, also
# delete them (.run).
source "$(dirname "$0")/common.sh"
LE_PGBIN=${LE_PGBIN:-/usr/lib/postgresql/$LE_PGVERSION/bin}
le_stop_all
# the test suite's clusters (scripts/test.sh), one per PostgreSQL version
for d in "$LE_RUNDIR"/test-pg*/; do
	[ -f "$d/pgbin" ] || continue
	(LE_RUNDIR=${d%/} LE_PGBIN=$(cat "$d/pgbin") && le_stop_all)
done
if [ "${1:-}" = "--clean" ]; then
	rm -rf "$LE_RUNDIR"
fi
echo "stopped"
