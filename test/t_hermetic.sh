#!/usr/bin/env bash
# The test suite starts from a known state: it runs in a cluster of its
# own, made anew by scripts/test.sh, never in the quick start's, so what a
# user did in the quick start's cluster (ALTER SYSTEM SET
# lead_enrich.account_token = '...', databases, accounts on the provider)
# changes no test's outcome.
#
#   1. the suite's server is not the quick start's: another run dir, data
#      directory and port
#   2. the suite's cluster was created by this run and carries no ALTER
#      SYSTEM setting and no account token
#   3. a poisoned cluster (ALTER SYSTEM SET lead_enrich.account_token, a
#      database left behind) is made new by le_cluster_fresh, what
#      scripts/test.sh runs first: no setting, no database survives
#   4. as root, scripts/test.sh creates the cluster's user before it
#      chowns anything to it (a fresh machine has no such user)
#   5. a second run of scripts/test.sh in the same clone is refused, and
#      the first one's cluster left up
#   6. a run dir holding another major version's cluster (a run with
#      another LE_PGVERSION, the bench's) is refused with what to do, and
#      left as it was
#
# Prints "ok - ..." / "not ok - ..." and a final "N passed, N failed" line.
source "$(dirname "$0")/../scripts/common.sh"
le_deps >/dev/null
set +e

passed=0
failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1"; [ -n "${2:-}" ] && printf '#   %s\n' "$2"; failed=$((failed + 1)); }
check() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', expected '$3'"; fi; }
q() { le_psql -d "$1" -tA -c "$2" 2>&1; }

# 1. not the quick start's server.  scripts/test.sh passes the quick
# start's run dir; without it (an older test.sh) the suite runs in it.
qs=${LE_QUICKSTART_RUNDIR:-$LE_RUNDIR}
datadir=$(q postgres "SHOW data_directory")
if [ "$LE_RUNDIR" != "$qs" ] && [ "$datadir" = "$LE_RUNDIR/pgdata" ]; then
	ok "the suite's cluster ($datadir) is not the quick start's ($qs/pgdata)"
else
	not_ok "the suite's cluster is not the quick start's" "data directory $datadir, quick start's run dir $qs"
fi
qs_port=$(sed -n 's/^port = //p' "$qs/cluster.conf" 2>/dev/null)
if [ "$LE_RUNDIR" != "$qs" ] && [ "${qs_port:-55432}" != "$LE_PGPORT" ]; then
	ok "the suite's port ($LE_PGPORT) is not the quick start's (${qs_port:-55432})"
else
	not_ok "the suite's port is not the quick start's" "both $LE_PGPORT"
fi

# 2. created by this run, nothing set by ALTER SYSTEM.  The upper 32 bits
# of the system identifier are initdb's time.
created=$(q postgres "SELECT system_identifier >> 32 FROM pg_control_system()")
if [ -n "${LE_SUITE_START:-}" ] && [ "$created" -ge "$LE_SUITE_START" ] 2>/dev/null; then
	ok "the suite's cluster was created by this run"
else
	not_ok "the suite's cluster was created by this run" "initdb at $created, suite started at ${LE_SUITE_START:-(not recorded)}"
fi
check "no ALTER SYSTEM setting in the suite's cluster" \
	"$(q postgres "SELECT string_agg(name || ' = ' || setting, ', ') FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf'")" ""
check "no account token in the suite's cluster" "$(q postgres "SHOW lead_enrich.account_token")" ""

# 3. a poisoned cluster made new.  A scratch cluster in a directory of its
# own, reached by its socket only (no TCP port to collide with).
poisoned() {
	LE_RUNDIR=$LE_RUNDIR/hermetic
	le_cluster_start "listen_addresses = ''" >/dev/null 2>&1 || return 1
	le_psql -d postgres -c "ALTER SYSTEM SET lead_enrich.account_token = 'poison'" \
		-c "SELECT pg_reload_conf()" -c "CREATE DATABASE leftover" >/dev/null 2>&1
	sleep 0.5
	echo "before: $(q postgres "SHOW lead_enrich.account_token") $(q postgres "SELECT count(*) FROM pg_database WHERE datname = 'leftover'")"
	le_cluster_fresh >/dev/null 2>&1
	le_cluster_start "listen_addresses = ''" >/dev/null 2>&1 || return 1
	echo "after: '$(q postgres "SHOW lead_enrich.account_token")' $(q postgres "SELECT count(*) FROM pg_database WHERE datname = 'leftover'") $(q postgres "SELECT count(*) FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf'")"
	le_cluster_fresh >/dev/null 2>&1
}
if ! declare -F le_cluster_fresh >/dev/null; then
	not_ok "scripts/common.sh has le_cluster_fresh (a new cluster for each run)"
else
	out=$( (poisoned) 2>&1)
	check "the poisoned scratch cluster had the token and the database" "$(echo "$out" | sed -n 's/^before: //p')" "poison 1"
	check "made new: no token, no database, no ALTER SYSTEM setting left" "$(echo "$out" | sed -n 's/^after: //p')" "'' 0 0"
	check "the scratch cluster is gone" "$([ -e "$LE_RUNDIR/hermetic" ] && echo present || echo gone)" gone
fi

# 4. the test command on a fresh machine: as root, the cluster's user does
# not exist yet when scripts/test.sh prepares its run dir (it chowned the
# run dir to a user nobody had created, and stopped).  Run its outer part
# with a user no machine has and no version to test.
if [ "$(id -u)" = 0 ]; then
	fresh_user=lefresh$$
	fresh_dir=$(mktemp -d)
	out=$(env -u LE_TEST_ONE_VERSION -u LE_QUICKSTART_RUNDIR LE_RUN_USER=$fresh_user \
		LE_RUNDIR="$fresh_dir/run" LE_PGVERSIONS=" " bash "$LE_REPO/scripts/test.sh" 2>&1)
	rc=$?
	check "the test command starts where the cluster's user does not exist yet" \
		"$rc $(stat -c %U "$fresh_dir/run" 2>&1) $(echo "$out" | tail -1)" "0 $fresh_user 0 passed, 0 failed"
	id "$fresh_user" >/dev/null 2>&1 && userdel -r "$fresh_user" >/dev/null 2>&1
	rm -rf "$fresh_dir"
fi

# 5. one run of the suite at a time in a clone: a second run, started while
# this one runs, deleted this one's cluster and failed it halfway.  This
# script runs inside such a run (LE_QUICKSTART_RUNDIR is its run dir): the
# outer part of scripts/test.sh in the same run dir, with no version to
# test, must refuse, and leave this run's cluster up.
if [ -n "${LE_QUICKSTART_RUNDIR:-}" ]; then
	out=$(env -u LE_TEST_ONE_VERSION -u LE_QUICKSTART_RUNDIR LE_RUNDIR="$LE_QUICKSTART_RUNDIR" \
		LE_PGVERSIONS=" " bash "$LE_REPO/scripts/test.sh" 2>&1)
	rc=$?
	check "a second run of the test command in the same clone is refused" \
		"$rc $(echo "$out" | grep -c '^not ok - another run of scripts/test.sh') $(echo "$out" | tail -1)" "1 1 0 passed, 1 failed"
	check "... and this run's cluster is still up" "$(le_psql -d postgres -tAc 'SELECT 1' 2>&1)" 1
fi

# 6. another major version's cluster in the run dir: its data directory
# went to this version's pg_ctl, which called it corrupt and stopped the
# bench.  A data directory that says it is PostgreSQL 9 must be refused
# before anything is written into it.
other_dir=$(mktemp -d)
mkdir -p "$other_dir/pgdata"
echo 9 >"$other_dir/pgdata/PG_VERSION"
echo "# theirs" >"$other_dir/pgdata/postgresql.conf"
out=$( (LE_RUNDIR=$other_dir le_cluster_prepare) 2>&1)
rc=$?
check "a run dir with another major version's cluster is refused, with what to do" \
	"$rc $(echo "$out" | grep -c "holds a PostgreSQL 9 cluster, not $LE_PGVERSION") $(echo "$out" | grep -c 'another LE_RUNDIR')" "1 1 1"
check "... and nothing written into it" \
	"$(cat "$other_dir/pgdata/postgresql.conf") $([ -e "$other_dir/cluster.conf" ] && echo conf || echo no-conf)" "# theirs no-conf"
rm -rf "$other_dir"

# 7. the server has lz4, as Debian's packages of every version do: the
# PostgreSQL versions scripts/pg_build.sh built from source had none, and
# there the provider's stored answers fell back to pglz without a word
# (provider/schema.sql asks for lz4 and goes on without it), a slower
# compression at every charging request than on the same version as users
# install it.
check "the server (PostgreSQL $LE_PGVERSION) can compress with lz4, as Debian's packages can" \
	"$(le_psql -d postgres -tA -c "SET default_toast_compression = 'lz4'" -c "SHOW default_toast_compression" 2>&1)" lz4

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
