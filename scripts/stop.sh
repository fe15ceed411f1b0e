#!/usr/bin/env bash
# Stop the cluster and the provider started by demo.sh or test.sh.
# With --clean, also delete them (.run).
source "$(dirname "$0")/common.sh"
LE_PGBIN=${LE_PGBIN:-/usr/lib/postgresql/$LE_PGVERSION/bin}
le_stop_all
if [ "${1:-}" = "--clean" ]; then
	rm -rf "$LE_RUNDIR"
fi
echo "stopped"
