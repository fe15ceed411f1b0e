# shellcheck shell=bash
# What the bench's scripts share: the bench's cluster and provider, the
# arithmetic of the figures, the machine's idle share, the processes' CPU
# time and memory, an automatic run and the wait for its last lead, and a
# run of the DIY peer.  Sources scripts/common.sh, with the bench's
# own directory and ports unless the environment names others.

LE_RUNDIR=${LE_RUNDIR:-/tmp/lead_enrich-bench}
LE_PGPORT=${LE_PGPORT:-55700}
LE_PROVIDER_PORT=${LE_PROVIDER_PORT:-57700}
LE_FAULT_PORT=${LE_FAULT_PORT:-57701}
# shellcheck source=../scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

# bench_start WORKERS DURABLE: the bench's cluster (started, or restarted
# when its settings or the installed library changed) and provider.  The
# tests' clusters run without fsync, full-page writes or synchronous commits
# (scripts/common.sh); the bench's measures what a production cluster does,
# unless DURABLE is 0.  A commit then waits for its WAL to reach the disk:
# the workers commit twice a round, the peer once a call.  Further
# arguments are more postgresql.conf lines (bench/ab.sh's settings).
bench_start() {
	local workers=$1 durable=$2
	shift 2
	local durability=("fsync = on" "full_page_writes = on" "synchronous_commit = on")
	[ "$durable" = 1 ] || durability=()
	le_cluster_start "lead_enrich.account_token = 'bench-token'" \
		"lead_enrich.interval = '5min'" "lead_enrich.workers_per_database = $workers" \
		"shared_buffers = '512MB'" "max_wal_size = '4GB'" \
		"checkpoint_timeout = '30min'" "autovacuum = off" ${durability[@]+"${durability[@]}"} "$@"
}

bench_provider_start() {
	le_provider_start --trial-credits 0 --threads "${LE_BENCH_PROVIDER_THREADS:-4}"
}

# bench_provider_reset: the provider as if it had answered nothing yet: its
# replay store and ledger outlive a run of the bench (seven days of answers,
# about 700 MB a run), so that each run would otherwise start from the
# tables of all the runs before it.  Every run starts from the same state
# instead.
bench_provider_reset() {
	le_psql -d lead_provider -c "TRUNCATE provider.reply, provider.ledger" >/dev/null
	le_psql -d lead_provider -tAc "SELECT provider.add_credits('bench-token', 1000000000)" >/dev/null
}

PSQL() { le_psql -d bench -X -q -t -A "$@"; }

# bench_auto_setup WHO WORKERS LEADS: for a script whose automatic runs use
# the database bench/run.sh prepared (bench/ab.sh, bench/profile.sh): the
# cluster and the provider started, the database checked for lead sets of
# LEADS, the provider emptied (bench_provider_reset) and the automatic mode
# on.  Sets AUTO_SETS to run.sh's automatic runs' sets (r = 0, 2, 4, ...).
# shellcheck disable=SC2034 # AUTO_SETS is the callers' to read
bench_auto_setup() {
	local who=$1 workers=$2 leads=$3
	bench_start "$workers" 1
	bench_provider_start
	if ! PSQL -c "SELECT count(DISTINCT r) FROM bench_lead WHERE i = $leads AND r % 2 = 0" 2>/dev/null | grep -qv '^0$'; then
		echo "$who: no bench database with sets of $leads leads in $LE_RUNDIR: run bench/run.sh (--leads $leads or more) first" >&2
		exit 2
	fi
	read -r -a AUTO_SETS <<<"$(PSQL -c "SELECT string_agg(DISTINCT r::text, ' ') FROM bench_lead WHERE r % 2 = 0")"
	bench_provider_reset
	PSQL -c "SELECT lead_enrich.set_mode('auto')" >/dev/null
}

# bench_numbers WHO WHAT VALUE...: exit 2 with WHO's message unless every
# VALUE is a positive number (WHAT names the options they came from)
bench_numbers() {
	local who=$1 what=$2 v
	shift 2
	for v in "$@"; do
		[[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "$who: $what take a positive number (see --help)" >&2; exit 2; }
	done
}

# bench_script_start WHO WORKERS LEADS: how bench/profile.sh and
# bench/statements.sh start: what they need installed and built, the
# cluster and provider stopped when the script exits, bench_auto_setup
bench_script_start() {
	le_deps
	le_build
	trap le_stop_all EXIT
	bench_auto_setup "$@"
}

now() { date +%s.%N; }
calc() { python3 -c "print(round($1, 3))"; }
# median of the arguments
median() { python3 -c "import statistics, sys; print(round(statistics.median(map(float, sys.argv[1:])), 3))" "$@"; }
# paired "A1 A2 ..." "B1 B2 ...": the median of A_k / B_k, each run over the
# run beside it (they alternate), which the machine's drift over a bench
# moves less than a ratio of medians
paired() { python3 -c "import statistics, sys; a, b = (list(map(float, x.split())) for x in sys.argv[1:3]); print(round(statistics.median(x / y for x, y in zip(a, b)), 3))" "$1" "$2"; }
# cpu_ticks: total and idle (idle + iowait) jiffies of all cores, from /proc/stat
cpu_ticks() { awk '/^cpu / {t = 0; for (i = 2; i <= NF; i++) t += $i; print t, $5 + $6}' /proc/stat; }
# idle_pct "T0 I0" "T1 I1": idle share of the machine between two cpu_ticks
idle_pct() { python3 -c "import sys; t0, i0 = map(int, sys.argv[1].split()); t1, i1 = map(int, sys.argv[2].split()); print(round(100.0 * (i1 - i0) / max(t1 - t0, 1), 1))" "$1" "$2"; }
# cpu_us_per_lead "T0 I0" "T1 I1" N: the whole machine's busy CPU time between
# two cpu_ticks (every process: PostgreSQL, the provider, the peer's curl),
# in microseconds per lead of N
cpu_us_per_lead() { python3 -c "import sys; t0, i0 = map(int, sys.argv[1].split()); t1, i1 = map(int, sys.argv[2].split()); print(round(((t1 - i1) - (t0 - i0)) * 1e6 / int(sys.argv[4]) / int(sys.argv[3])))" "$1" "$2" "$(getconf CLK_TCK)" "$3"; }

# settle: a checkpoint before each timed run, so that none starts with the
# dirty pages of the one before or in the middle of a checkpoint (an
# automatic run writes about 400 MB of WAL: with max_wal_size = 4GB, one run
# in a few met a checkpoint, the others not).
settle() { PSQL -c "CHECKPOINT"; }

# proc_ticks PID...: the CPU time (user + system, in clock ticks) the processes used, summed
proc_ticks() { sum_proc stat '{print $14 + $15}' "$@"; }
# rss_kb PID...: their private memory (RssAnon; VmRSS also counts the
# shared buffers touched), summed
rss_kb() { sum_proc status '/RssAnon/ {print $2}' "$@"; }
# sum_proc FILE AWK PID...: the sum over the processes of what AWK prints
# of /proc/PID/FILE (0 for a process gone)
sum_proc() {
	local f=$1 prog=$2 t=0 p v
	shift 2
	for p in "$@"; do
		v=$(awk "$prog" "/proc/$p/$f" 2>/dev/null)
		t=$((t + ${v:-0}))
	done
	echo $t
}

# worker_pids: the bench database's workers, once $workers of them run (the
# launcher starts them after the cluster starts)
worker_pids() {
	local pids
	for _ in $(seq 100); do
		pids=$(PSQL -c "SELECT string_agg(pid::text, ' ' ORDER BY pid) FROM pg_stat_activity WHERE backend_type = 'lead_enrich worker' AND datname = 'bench'")
		[ "$(wc -w <<<"$pids")" -ge "$workers" ] && break
		sleep 0.1
	done
	echo "$pids"
}

# next_lead_id: the first id no lead of Odoo's crm_lead has used, where
# the next automatic run of bench/ab.sh, bench/profile.sh or
# bench/statements.sh inserts its leads
next_lead_id() { echo $(($(PSQL -c "SELECT coalesce(max(id), 0) FROM odoo.crm_lead") + 1)); }

# auto_run FIRST SET N [WAIT]: one automatic run as the bench times it:
# VACUUM ANALYZE (autovacuum is off in the bench's cluster, and the rounds
# before left dead rows in the queue and its indexes, as the peer's table is
# vacuumed before its runs) and a CHECKPOINT, then the first N leads of
# bench_lead's set SET (run.sh makes them) inserted into crm_lead in one
# statement, ids from FIRST on, and the wait for the last one enriched
# (WAIT FIRST LAST, wait_enriched unless named: bench/profile.sh samples
# the sessions while it waits).
# Sets AUTO_T0, AUTO_TC and AUTO_T1 (now at the INSERT's start, at its
# commit, after the last lead) and AUTO_C0, AUTO_CC and AUTO_C1 (cpu_ticks
# at the same moments).
# shellcheck disable=SC2034 # the AUTO_ variables are the callers' to read
auto_run() {
	PSQL -c "VACUUM ANALYZE odoo.crm_lead, odoo.mail_message, lead_enrich.lead_state, lead_enrich.batch" 2>/dev/null
	settle
	AUTO_C0=$(cpu_ticks)
	AUTO_T0=$(now)
	PSQL -c "INSERT INTO odoo.crm_lead (id, name, type, active, email_from, iap_enrich_done, create_date)
		SELECT $1 - 1 + i, 'auto ' || i, 'lead', true, email, false, now() AT TIME ZONE 'UTC'
		FROM bench_lead WHERE r = $2 AND i <= $3 ORDER BY i"
	# the INSERT has committed: from here on, as for the peer (whose
	# leads are in its table before its clock starts), only enrichment
	AUTO_TC=$(now)
	AUTO_CC=$(cpu_ticks)
	"${4:-wait_enriched}" "$1" $(($1 + $3 - 1))
	AUTO_T1=$(now)
	AUTO_C1=$(cpu_ticks)
}

# peer_prepare FIRST SET N: the DIY peer's table (public.leads, bench/run.sh
# makes it) emptied and filled with the first N leads of bench_lead's set
# SET, ids FIRST + 1 on, then VACUUM ANALYZE and a checkpoint: how each of
# the peer's runs starts
peer_prepare() {
	PSQL -c "TRUNCATE leads; INSERT INTO leads (id, email_from)
		SELECT $1 + i, email FROM bench_lead WHERE r = $2 AND i <= $3 ORDER BY i" -c "VACUUM ANALYZE leads"
	settle
}
# peer_call: one call of the peer over its table; prints the leads it did
peer_call() { PSQL -c "SELECT diy_enrich('http://127.0.0.1:$LE_PROVIDER_PORT', 'bench-token')"; }

# enriched_test FIRST LAST: the SQL test that every lead of the range is
# done with: none pending outside a batch, no batch in flight, and as many
# outcomes as leads (total, a variable of the PL/pgSQL block that uses it)
enriched_test() {
	echo "NOT EXISTS (SELECT 1 FROM lead_enrich.lead_state WHERE status = 'pending' AND batch_id IS NULL
		AND lead_id BETWEEN $1 AND $2)
		AND NOT EXISTS (SELECT 1 FROM lead_enrich.batch)
		AND (SELECT count(*) FROM lead_enrich.lead_state WHERE lead_id BETWEEN $1 AND $2) >= total"
}

# wait_enriched FIRST LAST: until every lead of the range has an outcome
# that is not pending.  One session polls every 20 ms with cheap look-ups
# (a pending lead not in a batch found through the worker's partial index,
# any batch not settled, then one count): a psql
# started every 50 ms, counting the whole range each time, took about a
# quarter of the two cores during an automatic run, CPU taken from what it
# measured (the peer's runs are timed by one call and poll nothing).
wait_enriched() {
	local first=$1 last=$2
	PSQL -c "DO \$\$
	DECLARE
		total bigint := (SELECT count(*) FROM odoo.crm_lead WHERE id BETWEEN $first AND $last);
		deadline timestamptz := clock_timestamp() + interval '10 minutes';
	BEGIN
		LOOP
			EXIT WHEN $(enriched_test "$first" "$last");
			IF clock_timestamp() > deadline THEN
				RAISE EXCEPTION 'timed out waiting for leads $first..$last';
			END IF;
			-- ends the transaction: a snapshot held for the whole run
			-- would keep every tuple the worker leaves dead from being
			-- pruned or its index entries from being killed
			COMMIT;
			PERFORM pg_sleep(0.02);
		END LOOP;
	END \$\$"
}
