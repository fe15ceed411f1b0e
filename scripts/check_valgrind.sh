#!/usr/bin/env bash
# Run some of the extension's pg_regress tests (default: attach) with every
# PostgreSQL process under valgrind's memcheck.  Slow (minutes); not part
# of scripts/test.sh or CI.  See docs/developing.md, "Memory checking".
#
#   scripts/check_valgrind.sh [test ...]
#
# It uses its own cluster, provider and ports (rundir /tmp/le-valgrind,
# PostgreSQL 55479, provider 57479, fault server 57480), and the installed
# lead_enrich (build it with `make COPT='-O0 -g'` and install it first for
# readable stacks).  Exits non-zero when a test fails or valgrind reports
# an error; the reports are in $LE_RUNDIR/valgrind/<pid>.log.
#
# Environment: PG_VALGRIND_SUPP, PostgreSQL's src/tools/valgrind.supp (it
# is fetched from the REL_15_STABLE branch when not given and reachable);
# VALGRIND_EXTRA, more valgrind options; WITH_PROVIDER=1 to start the
# provider and the fault server (tests that enrich need them; loading the
# directory under valgrind takes many minutes); KEEP_CLUSTER=1.
LE_RUNDIR=${LE_RUNDIR:-/tmp/le-valgrind}
LE_PGPORT=${LE_PGPORT:-55479}
LE_PROVIDER_PORT=${LE_PROVIDER_PORT:-57479}
LE_FAULT_PORT=${LE_FAULT_PORT:-57480}
source "$(dirname "$0")/common.sh"

tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(attach)

le_deps valgrind
make -C "$LE_REPO/provider" -s >/dev/null

mkdir -p "$LE_RUNDIR"
[ "$(id -u)" = 0 ] && chown "$LE_RUN_USER" "$LE_RUNDIR"
chmod 755 "$LE_RUNDIR"
vgdir=$LE_RUNDIR/valgrind
rm -rf "$vgdir"
mkdir -p "$vgdir"
[ "$(id -u)" = 0 ] && chown "$LE_RUN_USER" "$vgdir"

supp=${PG_VALGRIND_SUPP:-$LE_RUNDIR/valgrind.supp}
if [ ! -s "$supp" ]; then
	le_log "no valgrind.supp (set PG_VALGRIND_SUPP to PostgreSQL's src/tools/valgrind.supp); going on without it"
fi
supp_opt=()
[ -s "$supp" ] && supp_opt=(--suppressions="$supp")

# pg_ctl -p runs this instead of postgres.  Backends are forked, not
# exec'd, so valgrind follows them anyway; --trace-children=yes also
# covers anything the server execs.  Leak checking is off: a backend
# frees its memory by deleting memory contexts or by exiting.
wrapper=$LE_RUNDIR/postgres-valgrind
cat >"$wrapper" <<WRAP
#!/bin/sh
exec valgrind --quiet --trace-children=yes --track-origins=yes --num-callers=30 \\
	--leak-check=no --error-markers=VALGRINDERROR-BEGIN,VALGRINDERROR-END \\
	${supp_opt[*]} ${VALGRIND_EXTRA:-} --log-file=$vgdir/%p.log \\
	$LE_PGBIN/postgres "\$@"
WRAP
chmod 755 "$wrapper"

pgdata=$LE_RUNDIR/pgdata
le_cluster_prepare

stop_all() {
	le_provider_stop
	le_fault_stop
	[ "${KEEP_CLUSTER:-0}" = 1 ] ||
		as_run_user "$LE_PGBIN/pg_ctl" -D "$pgdata" -m fast -t 600 stop >/dev/null 2>&1 || true
}
trap stop_all EXIT
as_run_user "$LE_PGBIN/pg_ctl" -D "$pgdata" -m fast stop >/dev/null 2>&1 || true
le_log "starting PostgreSQL under valgrind on port $LE_PGPORT (slow)"
as_run_user "$LE_PGBIN/pg_ctl" -D "$pgdata" -p "$wrapper" -w -t 600 start \
	-l "$LE_RUNDIR/postgres.log" >/dev/null
# The provider's directory takes long to load into a server under
# valgrind, and `attach` never calls it: start it only when asked.
if [ "${WITH_PROVIDER:-0}" = 1 ]; then
	le_provider_start --trial-credits 1000
	le_fault_start
fi

le_log "pg_regress ${tests[*]}"
out=$LE_RUNDIR/regress
rm -rf "$out"
mkdir -p "$out"
cd "$LE_REPO"
set +e
"$("$LE_PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress" --inputdir="$LE_REPO" \
	--outputdir="$out" --bindir="$LE_PGBIN" --host=127.0.0.1 --port="$LE_PGPORT" \
	--user=postgres --dbname=contrib_regression "${tests[@]}"
rc=$?
set -e
[ "$rc" = 0 ] || { [ -f "$out/regression.diffs" ] && head -100 "$out/regression.diffs"; }

# stop the server so that every process has written its report
stop_all
trap - EXIT
# An error counts when a frame of its stack is in lead_enrich.so.  The
# others are PostgreSQL's own: mostly padding bytes written to WAL and
# sockets, which valgrind.supp would hide if Debian's stripped binary
# still named the static functions it matches on.
python3 - "$vgdir" <<'PY' || rc=1
import glob, re, sys
ours = theirs = 0
for path in sorted(glob.glob(sys.argv[1] + "/*.log")):
    text = open(path, errors="replace").read()
    for block in re.findall(r"VALGRINDERROR-BEGIN\n(.*?)VALGRINDERROR-END", text, re.S):
        if "lead_enrich" in block:
            ours += 1
            print("----", path)
            print(block)
        else:
            theirs += 1
print("valgrind: %d error(s) in lead_enrich, %d in PostgreSQL itself (ignored)" % (ours, theirs))
sys.exit(1 if ours else 0)
PY
le_log "$(ls "$vgdir" | wc -l) processes checked, logs in $vgdir"
exit "$rc"
