#!/usr/bin/env bash
# bench/profile.sh: where the time of an automatic run goes, without perf.
# Each run is one of bench/ab.sh's automatic runs (the cluster as
# bench/run.sh leaves it, VACUUM ANALYZE and CHECKPOINT, N leads of the
# bench's mix inserted into Odoo's crm_lead in one statement, timed to the
# last lead enriched), and while it waits for that last lead one session
# samples pg_stat_activity every 10 ms: for the workers of the bench's
# database and for the provider's database sessions, the share of their
# samples on the CPU (active, no wait event), in each wait event, and idle
# (waiting for work).  Around each run: the pages each table and index of
# the odoo and lead_enrich schemas gained, and the WAL written
# (pg_stat_wal: the whole cluster's, the provider's database included), per
# lead, and the last run's WAL records by type (pg_waldump --stats=record,
# from the INSERT's commit to the last lead: the workers' and the
# provider's); the same pages and WAL around as many runs of the DIY peer
# when bench/run.sh
# installed it (its table public.leads, emptied and filled before each run,
# as run.sh does).  Last, what this machine takes to add a new 8 kB page at
# the end of a file (as PostgreSQL extends a relation) against writing the
# same page again, in the cluster's directory.
#
# Usage: bench/profile.sh [--runs N] [--leads N] [--workers N]
#   --runs N     automatic runs (default 3); the figures are their medians
#   --leads N    leads per run (default 100000, at most bench/run.sh's --leads)
#   --workers N  lead_enrich.workers_per_database (default 2)
#
# Needs the database bench/run.sh prepares (run it once before; it is kept
# in its cluster).  The sampling session takes some CPU of its own: the
# rates it prints show that the runs were alike, and are not to be compared
# with bench/run.sh's or bench/ab.sh's.
set -euo pipefail

source "$(dirname "$0")/lib.sh"

runs=3
leads=100000
workers=2
while [ $# -gt 0 ]; do
	case "$1" in
		--runs) runs=$2; shift 2 ;;
		--leads) leads=$2; shift 2 ;;
		--workers) workers=$2; shift 2 ;;
		-h|--help) sed -n '2,30p' "$0"; exit 0 ;;
		*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done
bench_numbers bench/profile.sh "--runs, --leads and --workers" "$runs" "$leads" "$workers"
bench_script_start bench/profile.sh "$workers" "$leads"
sets=("${AUTO_SETS[@]}")
worker_pids >/dev/null

out=$LE_RUNDIR/profile
rm -rf "$out"
mkdir -p "$out"

# sizes: "relation bytes" of every table (with its TOAST table) and index
# of the odoo and lead_enrich schemas, and of the peer's table
sizes() {
	PSQL -F ' ' -c "SELECT c.oid::regclass, pg_relation_size(c.oid) + coalesce(pg_relation_size(nullif(c.reltoastrelid, 0)), 0)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE (n.nspname IN ('odoo', 'lead_enrich') OR c.oid IN (to_regclass('public.leads'), to_regclass('public.leads_pkey')))
		AND c.relkind IN ('r', 'i')"
}
wal() { PSQL -F ' ' -c "SELECT wal_bytes, wal_records, wal_fpi FROM pg_stat_wal"; }
lsn() { PSQL -c "SELECT pg_current_wal_insert_lsn()"; }

# wait_sampled FIRST LAST: wait_enriched's wait, in one session that also
# samples the workers and the provider's sessions every 10 ms; writes
# "class|event|samples" lines to $sample_file, and the WAL's position at
# its start (the INSERT has committed) to $out/lsn0
wait_sampled() {
	lsn >"$out/lsn0"
	PSQL -F '|' -c "CREATE TEMP TABLE le_sample (class text, event text)" -c "DO \$\$
	DECLARE
		total bigint := (SELECT count(*) FROM odoo.crm_lead WHERE id BETWEEN $1 AND $2);
		deadline timestamptz := clock_timestamp() + interval '10 minutes';
		k int := 0;
	BEGIN
		LOOP
			INSERT INTO le_sample
			SELECT CASE WHEN a.backend_type = 'lead_enrich worker' THEN 'workers' ELSE 'provider' END,
				   CASE WHEN a.state = 'idle' THEN 'idle (waiting for work)'
						WHEN a.wait_event IS NULL THEN 'CPU'
						ELSE a.wait_event_type || ':' || a.wait_event END
			FROM pg_stat_activity a
			WHERE a.pid <> pg_backend_pid()
			  AND ((a.backend_type = 'lead_enrich worker' AND a.datname = 'bench')
				   OR (a.backend_type = 'client backend' AND a.datname = 'lead_provider'));
			PERFORM pg_stat_clear_snapshot();
			k := k + 1;
			-- every other sample (20 ms), wait_enriched's test
			IF k % 2 = 0 THEN
				EXIT WHEN $(enriched_test "$1" "$2");
				IF clock_timestamp() > deadline THEN
					RAISE EXCEPTION 'timed out waiting for leads $1..$2';
				END IF;
			END IF;
			-- no snapshot held over the run (see wait_enriched)
			COMMIT;
			PERFORM pg_sleep(0.01);
		END LOOP;
	END \$\$" -c "SELECT class, event, count(*) FROM le_sample GROUP BY 1, 2" >"$sample_file"
}

le_log "$runs automatic runs of $leads leads, sampled"
for k in $(seq "$runs"); do
	sample_file=$out/samples.$k
	sizes >"$out/sizes0.$k"
	wal >"$out/wal0.$k"
	auto_run "$(next_lead_id)" \
		"${sets[$(((k - 1) % ${#sets[@]}))]}" "$leads" wait_sampled
	lsn >"$out/lsn1"
	sizes >"$out/sizes1.$k"
	wal >"$out/wal1.$k"
	printf '  %s run %d: %s leads/s (with the sampler)\n' "$(date -u +%H:%M:%S)" "$k" \
		"$(calc "round($leads / ($AUTO_T1 - $AUTO_T0))")"
done
# the last run's WAL by record type, before a checkpoint recycles it
"$LE_PGBIN/pg_waldump" -p "$LE_RUNDIR/pgdata/pg_wal" -s "$(cat "$out/lsn0")" -e "$(cat "$out/lsn1")" \
	--stats=record >"$out/waldump" 2>"$out/waldump.err" || true

# The peer, as bench/run.sh's run_peer starts it (peer_prepare), one call.
peer_runs=0
if [ "$(PSQL -c "SELECT to_regproc('public.diy_enrich') IS NOT NULL AND to_regclass('public.leads') IS NOT NULL")" = t ]; then
	peer_runs=$runs
	le_log "$runs runs of the DIY peer on $leads leads"
	for k in $(seq "$runs"); do
		peer_prepare $((200000000 + k * leads)) $((2 * ((k - 1) % ${#sets[@]}) + 1)) "$leads"
		sizes >"$out/peer_sizes0.$k"
		wal >"$out/peer_wal0.$k"
		t0=$(now)
		n=$(peer_call)
		t1=$(now)
		sizes >"$out/peer_sizes1.$k"
		wal >"$out/peer_wal1.$k"
		printf '  %s peer run %d: %s leads/s (%s leads)\n' "$(date -u +%H:%M:%S)" "$k" "$(calc "round($leads / ($t1 - $t0))")" "$n"
	done
else
	echo "no peer in the bench database (bench/run.sh installs it when it can build it): left out" >&2
fi

# What this machine takes for a page at the end of a file: dd of 8 kB
# blocks into a new file (each block extends it), then over the same blocks
# again; three times, a pause before each so that the memory the last file
# freed has been handed back (a virtual machine may return free memory to
# its host, and take it back page by page).
le_log "a new 8 kB page at the end of a file against the same page again"
probe=$out/pages
for k in 1 2 3; do
	rm -f "$probe"
	sleep 3
	t0=$(now)
	dd if=/dev/zero of="$probe" bs=8k count=20000 status=none
	t1=$(now)
	dd if=/dev/zero of="$probe" bs=8k count=20000 conv=notrunc status=none
	t2=$(now)
	echo "$t0 $t1 $t2" >"$out/probe.$k"
done
rm -f "$probe"

python3 - "$out" "$runs" "$leads" "$peer_runs" <<'PY'
import collections, re, statistics, sys

out, runs, leads, peer_runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])


def med(xs):
    return statistics.median(xs) if xs else 0.0


# the sessions: each event's share of each class's samples, per run (0 in
# a run that never saw it)
counts = []
for k in range(1, runs + 1):
    c = collections.defaultdict(dict)
    for line in open(f"{out}/samples.{k}"):
        cls, ev, n = line.rstrip("\n").split("|")
        c[cls][ev] = int(n)
    counts.append(c)
for cls in ("workers", "provider"):
    events = set().union(*(c[cls].keys() for c in counts))
    if not events:
        continue
    shares = {ev: [100.0 * c[cls].get(ev, 0) / max(1, sum(c[cls].values())) for c in counts]
              for ev in events}
    busy = 100.0 - med(shares.get("idle (waiting for work)", []))
    print(f"{cls}: busy {busy:.1f}% of their samples (medians of {runs} runs)")
    for ev, xs in sorted(shares.items(), key=lambda kv: -med(kv[1])):
        if med(xs) >= 0.5:
            print(f"  {med(xs):5.1f}%  {ev}")

# the pages each relation gained, and the WAL, per lead
def sizes(path):
    return {rel: int(b) for rel, b in (l.split() for l in open(path) if l.strip())}


def writes(who, prefix, n):
    """the new pages of each relation and the WAL a lead, medians of n runs"""
    grown = collections.defaultdict(list)
    totals, wal = [], collections.defaultdict(list)
    for k in range(1, n + 1):
        s0, s1 = sizes(f"{out}/{prefix}sizes0.{k}"), sizes(f"{out}/{prefix}sizes1.{k}")
        d = {rel: s1[rel] - s0.get(rel, 0) for rel in s1}
        for rel, b in d.items():
            grown[rel].append(b / leads)
        totals.append(sum(d.values()) / leads)
        w0 = list(map(int, open(f"{out}/{prefix}wal0.{k}").read().split()))
        w1 = list(map(int, open(f"{out}/{prefix}wal1.{k}").read().split()))
        for name, a, b in zip(("bytes", "records", "full-page images"), w0, w1):
            wal[name].append((b - a) / leads)
    print(f"{who}: {med(totals):.0f} bytes a lead in new pages of its tables and indexes, "
          f"{med(totals) / 8192 * 1000:.0f} pages a thousand leads")
    for rel, xs in sorted(grown.items(), key=lambda kv: -med(kv[1])):
        if med(xs) >= 0.01 * med(totals) and med(xs) > 0:
            print(f"  {med(xs):7.0f} bytes a lead  {rel}")
    print("  WAL a lead (the whole cluster's): %.0f bytes, %.1f records, %.3f full-page images"
          % (med(wal["bytes"]), med(wal["records"]), med(wal["full-page images"])))


writes("automatic mode", "", runs)
# pg_waldump --stats=record: "Type N (%) ..." lines
row = re.compile(r"(\S+/\S+)\s+(\d+)\s+\(\s*[\d.]+\)\s+\d+\s+\(\s*[\d.]+\)\s+\d+\s+\(\s*[\d.]+\)\s+(\d+)")
types = []
for line in open(f"{out}/waldump"):
    m = row.match(line)
    if m:
        types.append((int(m.group(2)), int(m.group(3)), m.group(1)))
if types:
    print("  the last run's WAL records a lead, from the INSERT's commit on (count, bytes with full-page images):")
    for n, size, name in sorted(types, reverse=True):
        if n >= 0.05 * leads:
            print(f"    {n / leads:6.2f} {size / leads:7.0f}  {name}")
else:
    print("  (pg_waldump gave no statistics: see " + out + "/waldump.err)")
if peer_runs:
    writes("the DIY peer", "peer_", peer_runs)

appends, rewrites = [], []
for k in (1, 2, 3):
    t0, t1, t2 = map(float, open(f"{out}/probe.{k}").read().split())
    appends.append((t1 - t0) / 20000 * 1e6)
    rewrites.append((t2 - t1) / 20000 * 1e6)
print("a new 8 kB page at the end of a file: %.1f µs (%s); the same page again: %.1f µs (%s)"
      % (med(appends), " / ".join("%.1f" % x for x in appends),
         med(rewrites), " / ".join("%.1f" % x for x in rewrites)))
PY
echo "machine: $(nproc) cores, $(uname -r); PostgreSQL $("$LE_PG_CONFIG" --version | awk '{print $2}'); $leads leads a run, $workers workers"
