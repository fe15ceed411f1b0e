#!/usr/bin/env bash
# bench/ab.sh: two builds of lead_enrich, or two sets of settings, compared
# side by side in automatic mode, the runs alternated (A B, B A, A B, ...)
# so that the machine's drift falls on both alike.  Each run is one of
# bench/run.sh's automatic runs: the cluster restarted with the side's
# library and settings, VACUUM ANALYZE and CHECKPOINT, N leads of the bench's
# mix inserted into Odoo's crm_lead in one statement, timed from the INSERT
# to the last lead enriched, the machine's idle share and its busy CPU time a
# lead (from the INSERT's commit on) from /proc/stat.
#
# Usage: bench/ab.sh [--pairs N] [--leads N] [--workers N] A B
#   A, B        REV[:SETTING[,SETTING...]]: a git revision of this repository
#               (built from `git archive` under $LE_RUNDIR/ab/), and
#               postgresql.conf lines for its runs, e.g.
#                 bench/ab.sh HEAD~1 HEAD
#                 bench/ab.sh HEAD HEAD:lead_enrich.max_connections=16
#               Both revisions must have the same SQL install scripts: only
#               the library is swapped, in the same database.
#   --pairs N   pairs of runs (default 8); each pair takes one lead set of
#               the bench for both sides
#   --leads N   leads per run (default 100000, at most bench/run.sh's --leads)
#   --workers N lead_enrich.workers_per_database (default 2)
#
# Needs the database bench/run.sh prepares (run it once before; it is kept
# in its cluster).  Prints every run, each side's medians, and each B run
# over the A run beside it; ends with the working tree's build installed
# again and the cluster stopped, as bench/run.sh does.
set -euo pipefail

source "$(dirname "$0")/lib.sh"

pairs=8
leads=100000
workers=2
sides=()
while [ $# -gt 0 ]; do
	case "$1" in
		--pairs) pairs=$2; shift 2 ;;
		--leads) leads=$2; shift 2 ;;
		--workers) workers=$2; shift 2 ;;
		-h|--help) sed -n '2,27p' "$0"; exit 0 ;;
		-*) echo "unknown option $1" >&2; exit 2 ;;
		*) sides+=("$1"); shift ;;
	esac
done
if [ ${#sides[@]} != 2 ]; then
	echo "usage: bench/ab.sh [--pairs N] [--leads N] [--workers N] A B (see --help)" >&2
	exit 2
fi

le_deps libcurl4-openssl-dev
le_build
libdir=$("$LE_PG_CONFIG" --pkglibdir)

# Each side: its revision, built once into $LE_RUNDIR/ab/SHA, and its
# settings, one postgresql.conf line each.
declare -a rev sha settings lib
for s in 0 1; do
	rev[s]=${sides[s]%%:*}
	settings[s]=
	[ "${sides[s]}" = "${rev[s]}" ] || settings[s]=${sides[s]#*:}
	if ! sha[s]=$(git -C "$LE_REPO" rev-parse --verify -q "${rev[s]}^{commit}"); then
		echo "bench/ab.sh: ${rev[s]} is not a revision of $LE_REPO" >&2
		exit 2
	fi
done
if ! git -C "$LE_REPO" diff --quiet "${sha[0]}" "${sha[1]}" -- sql/lead_enrich--*.sql lead_enrich.control; then
	echo "bench/ab.sh: ${rev[0]} and ${rev[1]} install different SQL; swapping the library alone would measure neither." >&2
	echo "Compare revisions with the same install scripts, or run bench/run.sh on each." >&2
	exit 2
fi
for s in 0 1; do
	dir=$LE_RUNDIR/ab/${sha[s]}
	if [ ! -f "$dir/lead_enrich.so" ]; then
		le_log "building ${rev[s]} (${sha[s]:0:7}) in $dir"
		rm -rf "$dir"
		mkdir -p "$dir"
		git -C "$LE_REPO" archive "${sha[s]}" | tar -x -C "$dir"
		make -C "$dir" -s PG_CONFIG="$LE_PG_CONFIG" >"$dir.log" 2>&1 || { tail -20 "$dir.log" >&2; exit 1; }
	fi
	lib[s]=$dir/lead_enrich.so
done

# the working tree's build back in place, whatever happens
trap 'install -m 755 "$LE_REPO/lead_enrich.so" "$libdir/lead_enrich.so"; le_stop_all' EXIT

bench_auto_setup bench/ab.sh "$workers" "$leads"
# pair k takes the automatic runs' set k of bench/run.sh
sets=("${AUTO_SETS[@]}")

# run SIDE SET: one automatic run; appends to rates[SIDE], idles[SIDE] and
# cpus[SIDE] (the machine's CPU a lead from the INSERT's commit on)
declare -a rates idles cpus
run() {
	local s=$1 set=$2 rate idle cpu
	install -m 755 "${lib[s]}" "$libdir/lead_enrich.so"
	local extra=()
	[ -z "${settings[s]}" ] || IFS=, read -r -a extra <<<"${settings[s]}"
	# a library newer than the postmaster's pid file restarts it
	bench_start "$workers" 1 ${extra[@]+"${extra[@]}"} >/dev/null 2>&1 ||
		{ tail -20 "$LE_RUNDIR/postgres.log" >&2; exit 1; }
	worker_pids >/dev/null
	# each setting as the server took it (a name it does not know would
	# compare nothing)
	local shown='' kv name v
	for kv in ${extra[@]+"${extra[@]}"}; do
		name=$(echo "${kv%%=*}" | tr -d ' ')
		v=$(PSQL -c "SELECT name || ' = ' || setting FROM pg_settings WHERE name = lower('$name')")
		[ -n "$v" ] || { echo "bench/ab.sh: the server has no setting $name" >&2; exit 2; }
		shown+="${shown:+, }$v"
	done
	auto_run "$(next_lead_id)" "$set" "$leads"
	rate=$(calc "round($leads / ($AUTO_T1 - $AUTO_T0))")
	idle=$(idle_pct "$AUTO_C0" "$AUTO_C1")
	cpu=$(cpu_us_per_lead "$AUTO_CC" "$AUTO_C1" "$leads")
	rates[s]="${rates[s]:-} $rate"
	idles[s]="${idles[s]:-} $idle"
	cpus[s]="${cpus[s]:-} $cpu"
	printf '  %s %s: %s leads/s, %s%% idle, %s µs of CPU a lead%s\n' "$(date -u +%H:%M:%S)" "$(label "$s")" \
		"$rate" "$idle" "$cpu" "${shown:+ ($shown)}"
}
label() { if [ "$1" = 0 ]; then echo "A ${sides[0]}"; else echo "B ${sides[1]}"; fi; }

le_log "$pairs pairs of $leads-lead automatic runs, alternated"
for p in $(seq "$pairs"); do
	set=${sets[$(((p - 1) % ${#sets[@]}))]}
	if [ $((p % 2)) = 1 ]; then run 0 "$set"; run 1 "$set"; else run 1 "$set"; run 0 "$set"; fi
done

echo
for s in 0 1; do
	read -r -a r <<<"${rates[s]}"
	read -r -a i <<<"${idles[s]}"
	read -r -a c <<<"${cpus[s]}"
	printf '%s: %s leads/s, %s%% idle, %s µs of CPU a lead (medians of %d runs)\n' "$(label "$s")" \
		"$(median "${r[@]}")" "$(median "${i[@]}")" "$(median "${c[@]}")" "${#r[@]}"
done
python3 - "${rates[0]}" "${rates[1]}" "${idles[0]}" "${idles[1]}" "${cpus[0]}" "${cpus[1]}" <<'PY'
import statistics, sys
ra, rb, ia, ib, ca, cb = (list(map(float, x.split())) for x in sys.argv[1:7])
ratios = [b / a for a, b in zip(ra, rb)]
diffs = [b - a for a, b in zip(ia, ib)]
print("B / A, run by run: %s; median %.3f; B faster in %d of %d"
      % (" ".join("%.3f" % x for x in ratios), statistics.median(ratios),
         sum(x > 1 for x in ratios), len(ratios)))
print("B - A idle, run by run: %s; median %+.1f points; B lower in %d of %d"
      % (" ".join("%+.1f" % x for x in diffs), statistics.median(diffs),
         sum(x < 0 for x in diffs), len(diffs)))
cost = [b / a for a, b in zip(ca, cb)]
print("B / A CPU a lead, run by run: %s; median %.3f; B cheaper in %d of %d"
      % (" ".join("%.3f" % x for x in cost), statistics.median(cost),
         sum(x < 1 for x in cost), len(cost)))
PY
echo "machine: $(nproc) cores, $(uname -r); PostgreSQL $("$LE_PG_CONFIG" --version | awk '{print $2}'); $leads leads a run, $workers workers"
