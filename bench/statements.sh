#!/usr/bin/env bash
# bench/statements.sh: which of the workers' statements an automatic run's
# time goes to.  Two of bench/ab.sh's automatic runs (the cluster as
# bench/run.sh leaves it, VACUUM ANALYZE and CHECKPOINT, N leads of the
# bench's mix inserted into Odoo's crm_lead in one statement, timed to the
# last lead enriched): a plain one, then one with PostgreSQL's auto_explain
# preloaded, which logs every statement the workers run with its duration
# (auto_explain.log_min_duration = 0, no ANALYZE, top-level statements
# only: a foreign key's check counts in the statement that fired it).  For
# each statement, by the start of its text: how many times it ran, its time
# in all, in µs a lead, and its share of all the workers' statement time;
# then that time against the workers' wall time from the INSERT's commit
# (the workers' count times the run's), in the logged run and in the plain
# one.  What is not in statements is the workers' C code (the answers'
# JSON, the notes' HTML, the requests), their commits, their waits for the
# provider, and in the logged run the logging.  A statement's duration is
# its wall time: it includes what the statement waited for (a lock, a new
# page, the other worker or the provider on the CPU).
#
# Usage: bench/statements.sh [--leads N] [--workers N]
#   --leads N    leads of each run (default 50000, at most bench/run.sh's --leads)
#   --workers N  lead_enrich.workers_per_database (default 2)
#
# Needs the database bench/run.sh prepares (run it once before).  The
# cluster is stopped at the end; the next bench script starts it with its
# own settings, without auto_explain.
set -euo pipefail

source "$(dirname "$0")/lib.sh"

leads=50000
workers=2
while [ $# -gt 0 ]; do
	case "$1" in
		--leads) leads=$2; shift 2 ;;
		--workers) workers=$2; shift 2 ;;
		-h|--help) sed -n '2,27p' "$0"; exit 0 ;;
		*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done
bench_numbers bench/statements.sh "--leads and --workers" "$leads" "$workers"
bench_script_start bench/statements.sh "$workers" "$leads"
log=$LE_RUNDIR/postgres.log
out=$LE_RUNDIR/statements
mkdir -p "$out"
# warm: 1,000 leads of another set enriched first, after a (re)start: the
# workers' scan of the table after a restart and their first statements'
# planning are then behind them
warm() { auto_run "$(next_lead_id)" "${AUTO_SETS[1]:-${AUTO_SETS[0]}}" 1000; }
# measured_run WHAT: after warm, the run of $leads leads; sets RUN_OFFSET
# (the log's size after the warm-up), RUN_WALL (s from the INSERT's
# commit) and RUN_CPU (the workers' CPU s from its start) and prints the
# run's rate, WHAT saying which run it was
measured_run() {
	local w0 w1
	warm
	RUN_OFFSET=$(stat -c %s "$log")
	w0=$(proc_ticks "${pids[@]}")
	auto_run "$(next_lead_id)" "${AUTO_SETS[0]}" "$leads"
	w1=$(proc_ticks "${pids[@]}")
	RUN_WALL=$(calc "$AUTO_T1 - $AUTO_TC")
	RUN_CPU=$(calc "($w1 - $w0) / $(getconf CLK_TCK)")
	printf '  %s: %s leads/s%s, %s s from the INSERT'"'"'s commit\n' "$(date -u +%H:%M:%S)" \
		"$(calc "round($leads / ($AUTO_T1 - $AUTO_T0))")" "$1" "$RUN_WALL"
}

# a plain run first: the workers' wall time without the logging
le_log "one automatic run of $leads leads"
read -r -a pids <<<"$(worker_pids)"
measured_run ""
plain=$RUN_WALL

# the same cluster, restarted with auto_explain (its settings last: they win)
bench_start "$workers" 1 "shared_preload_libraries = 'lead_enrich,auto_explain'" \
	"auto_explain.log_min_duration = 0" "auto_explain.log_analyze = off" \
	"auto_explain.log_nested_statements = off" "auto_explain.log_format = json"
read -r -a pids <<<"$(worker_pids)"
[ "${#pids[@]}" -gt 0 ] || { echo "bench/statements.sh: no worker of database bench is running" >&2; exit 1; }
le_log "the same run again, every statement of the workers logged"
measured_run " (every statement logged)"
# what the workers logged last (the outcomes of the last round) is written
# by now; the log's lines from the run only
sleep 1
tail -c +$((RUN_OFFSET + 1)) "$log" >"$out/run.log"

python3 - "$out/run.log" "$leads" "$RUN_WALL" "$plain" "$RUN_CPU" "${pids[@]}" <<'PY'
import collections, json, re, sys

path, leads, wall, plain, cpu = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
pids = set(sys.argv[6:])
text = open(path, encoding='utf-8', errors='replace').read()
# one entry per log line's start: "<time> UTC [pid] ... LOG:  duration: X ms  plan:" then the JSON plan
entry = re.compile(r'^\S+ \S+ UTC \[(\d+)\] [^\n]*?LOG:  duration: ([0-9.]+) ms  plan:\n(.*?)(?=^\S+ \S+ UTC \[\d+\] |\Z)',
                   re.M | re.S)
stats = collections.defaultdict(lambda: [0, 0.0])
for pid, ms, plan in entry.findall(text):
    if pid not in pids:
        continue
    try:
        query = json.loads(plan)['Query Text']
    except (ValueError, KeyError):
        query = plan
    key = ' '.join(query.split())[:96]
    stats[key][0] += 1
    stats[key][1] += float(ms)
total = sum(ms for _, ms in stats.values())
if total == 0:
    sys.exit('bench/statements.sh: no statement of the workers was logged (is auto_explain loaded?)')
print()
print(f"{'calls':>7} {'ms':>9} {'µs a lead':>10} {'share':>6}  statement (its text's start)")
for key, (calls, ms) in sorted(stats.items(), key=lambda kv: -kv[1][1]):
    if ms / total < 0.002:
        continue
    print(f"{calls:7d} {ms:9.1f} {1000.0 * ms / leads:10.2f} {100.0 * ms / total:5.1f}%  {key}")
print()
n = len(pids)
print(f"the workers' statements: {total:.0f} ms, {1000.0 * total / leads:.1f} µs a lead")
print(f"the workers' wall time from the INSERT's commit ({n} x {wall:.3f} s): {1e6 * n * wall / leads:.1f} µs a lead, "
      f"{100.0 * total / (1000.0 * n * wall):.1f}% in statements")
print(f"the same in the plain run before it ({n} x {plain:.3f} s): {1e6 * n * plain / leads:.1f} µs a lead, "
      f"{100.0 * total / (1000.0 * n * plain):.1f}% in statements (the logged run's difference is the logging's)")
print(f"the workers' CPU time in the logged run (/proc/PID/stat, from the INSERT's start): {1e6 * cpu / leads:.1f} µs a lead, "
      f"{100.0 * cpu / (n * wall):.1f}% of their wall time from the commit: the rest they waited, for a core "
      f"(the provider and the other worker), the provider's answers or a flush")
PY
