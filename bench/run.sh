#!/usr/bin/env bash
# lead_enrich benchmarks: end-to-end enrichment throughput (automatic and
# bulk), the machine's limits for the same work (local updates with no
# network; the provider alone under wrk), insert overhead (pgbench), latency
# from INSERT commit to enriched, the worker's memory, and lead mining.
#
# Sets up its own cluster and provider (under $LE_RUNDIR, default
# /tmp/lead_enrich-bench, on their own ports) and prints one table; the
# same figures go to bench/results/latest.csv and .json.
#
# The peer a DBA would write instead (PL/pgSQL over the http extension,
# ../shared/peers/diy_http_enrich.sql, batches of 50 to the same provider)
# runs side by side with the automatic mode in the same run, on the same
# cluster and provider, alternated, and the medians are compared.  The http
# extension is built from ../shared/vendor/pgsql-http-*.tar.gz (or --peer-src)
# and installed into the PostgreSQL the bench uses (LE_PGBIN).
#
# Usage: bench/run.sh [--leads N] [--reps N] [--latency-seconds S]
#                     [--pgbench-seconds S] [--memory-leads N]
#                     [--peer-src DIR|TARBALL] [--peer-sql FILE] [--workers N]
#                     [--mining-crm N]
#   --leads N            leads per throughput run (default 100000)
#   --reps N             alternated runs of the peer and of the automatic mode (default 3)
#   --latency-seconds S  length of each 10 inserts/s latency run (default 30)
#   --pgbench-seconds S  length of each pgbench run (default 15)
#   --memory-leads N     leads of the worker-memory run, sampled (default 1000000; 0 skips)
#   --peer-src P         pgsql-http source (directory or tarball; default ../shared/vendor)
#   --peer-sql F         the peer's SQL (default ../shared/peers/diy_http_enrich.sql)
#   --workers N          lead_enrich.workers_per_database (default 2: one per core)
#   --mining-crm N       leads already in the CRM table of the second mining figures
#                        (default 1000000; 0 skips)
#   --no-fsync           the cluster as the tests' (fsync, full_page_writes and
#                        synchronous_commit off), as the bench ran before
#                        2026-12-03 21:18 UTC; by default they are on, as in production
set -euo pipefail

source "$(dirname "$0")/lib.sh"

leads=100000
reps=3
latency_s=30
pgbench_s=15
memory_leads=1000000
workers=2
mining_crm=1000000
durable=1
peer_src=$(ls -1 "$LE_REPO"/../shared/vendor/pgsql-http-*.tar.gz 2>/dev/null | tail -1 || true)
peer_sql=$LE_REPO/../shared/peers/diy_http_enrich.sql
while [ $# -gt 0 ]; do
	case "$1" in
		--leads) leads=$2; shift 2 ;;
		--reps) reps=$2; shift 2 ;;
		--latency-seconds) latency_s=$2; shift 2 ;;
		--pgbench-seconds) pgbench_s=$2; shift 2 ;;
		--memory-leads) memory_leads=$2; shift 2 ;;
		--peer-src) peer_src=$2; shift 2 ;;
		--peer-sql) peer_sql=$2; shift 2 ;;
		--workers) workers=$2; shift 2 ;;
		--mining-crm) mining_crm=$2; shift 2 ;;
		--no-fsync) durable=0; shift ;;
		-h|--help) sed -n '2,32p' "$0"; exit 0 ;;
		*) echo "unknown option $1" >&2; exit 2 ;;
	esac
done

results=$LE_REPO/bench/results
mkdir -p "$results"
csv=$results/latest.csv
echo "metric,value,unit,note" >"$csv"

# record NAME VALUE UNIT NOTE: one figure, printed and kept.
record() {
	printf '%-46s %14s %-8s %s\n' "$1" "$2" "$3" "$4"
	printf '%s,%s,%s,"%s"\n' "$1" "$2" "$3" "$4" >>"$csv"
}

le_deps wrk libcurl4-openssl-dev
le_build

# The peer's http extension, built with the bench's pg_config and installed
# into that PostgreSQL (never needed by lead_enrich itself).
peer_ok=0
if [ -n "$peer_src" ] && [ -e "$peer_src" ] && [ -f "$peer_sql" ]; then
	le_log "building the peer's http extension from $peer_src"
	peer_build=$LE_RUNDIR/peer-build
	rm -rf "$peer_build"
	mkdir -p "$peer_build"
	if [ -d "$peer_src" ]; then cp -r "$peer_src"/. "$peer_build"; else tar xzf "$peer_src" -C "$peer_build" --strip-components=1; fi
	if make -C "$peer_build" -s PG_CONFIG="$LE_PG_CONFIG" >"$LE_RUNDIR/peer-build.log" 2>&1 &&
		make -C "$peer_build" -s PG_CONFIG="$LE_PG_CONFIG" install >>"$LE_RUNDIR/peer-build.log" 2>&1; then
		peer_ok=1
	else
		tail -20 "$LE_RUNDIR/peer-build.log" >&2
		echo "the peer could not be built: it is left out of this run" >&2
	fi
else
	echo "no peer source (--peer-src) or peer SQL (--peer-sql): the peer is left out of this run" >&2
fi
bench_start "$workers" "$durable"
bench_provider_start

le_log "preparing database bench ($leads leads per run)"
le_psql -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS bench WITH (FORCE)" -c "CREATE DATABASE bench" >/dev/null
le_psql -d bench -f "$LE_REPO/test/fixtures/odoo17_crm.sql" >/dev/null
python3 "$LE_REPO/scripts/gen_res_country.py" odoo | le_psql -d bench >/dev/null
# a fresh database uuid, so nothing is answered from the provider's replay store
PSQL -c "UPDATE odoo.ir_config_parameter SET value = gen_random_uuid()::text WHERE key = 'database.uuid'"
PSQL -c "CREATE EXTENSION lead_enrich; CREATE EXTENSION pg_prewarm" >/dev/null
PSQL -c "SELECT lead_enrich.attach('odoo.crm_lead')" >/dev/null
bench_provider_reset

# The directory's domains (shuffled), and the lead mix: 60% distinct
# companies, 20% repeats of those, 10% webmail, 10% unknown domains.
le_psql -d lead_provider -c "\copy (SELECT domain FROM provider.org ORDER BY md5(domain)) TO STDOUT" >"$LE_RUNDIR/domains.txt"
PSQL -c "CREATE TABLE bench_domain (n serial, domain text)"
le_psql -d bench -c "\copy bench_domain (domain) FROM '$LE_RUNDIR/domains.txt'"
ndomains=$(PSQL -c "SELECT count(*) FROM bench_domain")
PSQL -c "ALTER TABLE bench_domain ADD PRIMARY KEY (n)"
# Lead sets: automatic run k uses r = 2(k-1), the peer's run k r = 2k-1
# (and its runs beside the bulk runs too), the bulk runs r = 2 reps, the
# local limit r = 2 reps + 1, the automatic run k without notes
# r = 2 reps + 1 + k.  Lead ids never repeat, so no batch is answered from
# the provider's replay store: the automatic runs take 1 .. reps * leads,
# the bulk runs the next reps * leads, the local limit the next leads, the
# runs without notes the next reps * leads, and bench_seq starts after
# them (the peer's ids, in its own table, from 100,000,001).
nsets=$((3 * reps + 2))
PSQL -c "
CREATE TABLE bench_lead AS
SELECT i, r, 'lead' || i || '@' || CASE
		WHEN i % 10 < 6 THEN d1.domain
		WHEN i % 10 < 8 THEN d2.domain
		WHEN i % 10 = 8 THEN (ARRAY['gmail.com', 'yahoo.fr', 'outlook.com', 'web.de', 'qq.com'])[1 + i % 5]
		ELSE 'unknown-' || r || '-' || i || '.example.net' END AS email
FROM generate_series(1, $leads) i CROSS JOIN generate_series(0, $((nsets - 1))) r
LEFT JOIN bench_domain d1 ON d1.n = 1 + ((i / 10 * 6 + i % 10) + r * 7919) % $ndomains
LEFT JOIN bench_domain d2 ON d2.n = 1 + (i * 31 + r) % 2000;
CREATE INDEX ON bench_lead (r, i);"
if [ "$peer_ok" = 1 ]; then
	PSQL -c "CREATE EXTENSION http" >/dev/null
	# the table the peer's header asks for, with the index it recommends
	PSQL -c "CREATE TABLE leads (id bigint PRIMARY KEY, email_from text, partner_name text, city text,
		zip text, street text, phone text, country_code text, reveal_id text, iap_enrich_done bool);
		CREATE INDEX ON leads (id) WHERE iap_enrich_done IS NOT TRUE"
	PSQL -f "$peer_sql" >/dev/null
	# the peer's notes, for the like-for-like figure (disabled until used)
	PSQL -f "$LE_REPO/bench/peer_notes.sql" >/dev/null
fi

echo
printf '%-46s %14s %-8s %s\n' "metric" "value" "unit" "note"
printf '%-46s %14s %-8s %s\n' "------" "-----" "----" "----"

# 1. end to end, automatic mode (from the first INSERT to the last lead
# enriched), alternated with the peer over the same number of leads (from
# the call to its return); the machine's idle share during each run.
PSQL -c "SELECT lead_enrich.set_mode('auto')" >/dev/null
sleep 1
read -r -a worker_pids_a <<<"$(worker_pids)"
rss_start=$(rss_kb "${worker_pids_a[@]}")
auto_rates=() auto_idles=() auto_busy=() peer_rates=() peer_idles=() commit_rates=() commit_idles=() insert_secs=()
auto_cpu=() peer_cpu=()
bulk_rates=() bulk_peer_rates=()
run_auto() {
	local k=$1 w0 w1
	# the workers' CPU time (they are idle during the VACUUM before it)
	w0=$(proc_ticks "${worker_pids_a[@]}")
	auto_run $((($1 - 1) * leads + 1)) $((2 * (k - 1))) "$leads"
	w1=$(proc_ticks "${worker_pids_a[@]}")
	auto_rates+=("$(calc "$leads / ($AUTO_T1 - $AUTO_T0)")")
	auto_idles+=("$(idle_pct "$AUTO_C0" "$AUTO_C1")")
	auto_busy+=("$(calc "100.0 * ($w1 - $w0) / $(getconf CLK_TCK) / ($AUTO_T1 - $AUTO_T0)")")
	commit_rates+=("$(calc "$leads / ($AUTO_T1 - $AUTO_TC)")")
	commit_idles+=("$(idle_pct "$AUTO_CC" "$AUTO_C1")")
	insert_secs+=("$(calc "$AUTO_TC - $AUTO_T0")")
	auto_cpu+=("$(cpu_us_per_lead "$AUTO_CC" "$AUTO_C1" "$leads")")
	printf '  run %d automatic: %s leads/s, %s%% idle, workers busy %s%% of a core; from the INSERT'"'"'s commit (%s s after its start): %s leads/s, %s%% idle, %s µs of CPU a lead\n' \
		"$k" "${auto_rates[-1]}" "${auto_idles[-1]}" "${auto_busy[-1]}" "${insert_secs[-1]}" "${commit_rates[-1]}" "${commit_idles[-1]}" "${auto_cpu[-1]}"
}
# run_peer K [second|notes]: the peer's run K on set r = 2K - 1; with
# second, its run beside bulk run K, on new ids, recorded apart; with
# notes, a run on new ids with Odoo's notes posted (bench/peer_notes.sql's
# trigger enabled), recorded apart
peer_notes_rates=() peer_notes_cpu=()
run_peer() {
	local k=$1 mode=${2:-} off=0 first t0 t1 c0 c1 n rate idle us notes label='' cpu=''
	case $mode in
		second) off=$reps label=' (beside bulk)' ;;
		notes) off=$((2 * reps)) label=' with notes' ;;
	esac
	first=$((100000000 + (k + off) * leads))
	peer_prepare "$first" $((2 * k - 1)) "$leads"
	[ "$mode" = notes ] && PSQL -c "ALTER TABLE leads ENABLE TRIGGER diy_notes" >/dev/null
	c0=$(cpu_ticks)
	t0=$(now)
	n=$(peer_call)
	t1=$(now)
	c1=$(cpu_ticks)
	[ "$n" = "$leads" ] || echo "the peer processed $n leads of $leads" >&2
	rate=$(calc "$leads / ($t1 - $t0)")
	idle=$(idle_pct "$c0" "$c1")
	us=$(cpu_us_per_lead "$c0" "$c1" "$leads")
	case $mode in
		second) bulk_peer_rates+=("$rate") ;;
		notes)
			PSQL -c "ALTER TABLE leads DISABLE TRIGGER diy_notes" >/dev/null
			notes=$(PSQL -c "SELECT count(*) FROM odoo.mail_message WHERE model = 'crm.lead'
				AND res_id BETWEEN $((first + 1)) AND $((first + leads))")
			[ "$notes" = "$leads" ] || echo "the peer's run with notes posted $notes notes for $leads leads" >&2
			peer_notes_rates+=("$rate")
			peer_notes_cpu+=("$us")
			;;
		*)
			peer_rates+=("$rate")
			peer_idles+=("$idle")
			peer_cpu+=("$us")
			;;
	esac
	[ "$mode" = second ] || cpu=", $us µs of CPU a lead"
	printf '  run %d peer%s: %s leads/s, %s%% idle%s\n' "$k" "$label" "$rate" "$idle" "$cpu"
}
# run_quiet K: automatic run K again without Odoo's chatter notes
# (lead_enrich.odoo_chatter = off), on set r = 2 reps + 1 + K: the same
# leads, the same CRM writes and lead_state rows, no mail_message row.  The
# peer writes no notes; these runs say what the notes cost and where the
# rest of lead_enrich stands against the peer.  Not a target's figure: the
# automatic mode's figures above keep the notes, as Odoo posts them.
quiet_base=$(((2 * reps + 1) * leads + 1))
quiet_rates=() quiet_cpu=()
run_quiet() {
	local k=$1 first=$((quiet_base + ($1 - 1) * leads)) notes
	PSQL -c "ALTER SYSTEM SET lead_enrich.odoo_chatter = off" -c "SELECT pg_reload_conf()" >/dev/null
	auto_run "$first" $((2 * reps + 1 + k)) "$leads"
	PSQL -c "ALTER SYSTEM RESET lead_enrich.odoo_chatter" -c "SELECT pg_reload_conf()" >/dev/null
	notes=$(PSQL -c "SELECT count(*) FROM odoo.mail_message WHERE model = 'crm.lead'
		AND res_id BETWEEN $first AND $((first + leads - 1))")
	[ "$notes" = 0 ] || echo "the run without notes posted $notes notes: the worker did not read odoo_chatter = off" >&2
	quiet_rates+=("$(calc "$leads / ($AUTO_T1 - $AUTO_T0)")")
	quiet_cpu+=("$(cpu_us_per_lead "$AUTO_CC" "$AUTO_C1" "$leads")")
	printf '  run %d automatic without notes: %s leads/s, %s%% idle, %s µs of CPU a lead\n' \
		"$k" "${quiet_rates[-1]}" "$(idle_pct "$AUTO_C0" "$AUTO_C1")" "${quiet_cpu[-1]}"
}
# each automatic run beside the peer's; the run without notes and the
# peer's run with notes before it or after it in turn
for k in $(seq "$reps"); do
	if [ $((k % 2)) = 1 ]; then
		if [ "$peer_ok" = 1 ]; then run_peer "$k"; fi
		run_auto "$k"
		run_quiet "$k"
		if [ "$peer_ok" = 1 ]; then run_peer "$k" notes; fi
	else
		if [ "$peer_ok" = 1 ]; then run_peer "$k" notes; fi
		run_quiet "$k"
		run_auto "$k"
		if [ "$peer_ok" = 1 ]; then run_peer "$k"; fi
	fi
done
auto_rate=$(median "${auto_rates[@]}")
record "e2e_auto_leads_per_s" "$auto_rate" "leads/s" "median of ${auto_rates[*]}; $leads leads inserted in one statement each; target >= 15000"
record "e2e_auto_idle_pct" "$(median "${auto_idles[@]}")" "%" "machine idle during the automatic runs (/proc/stat), median of ${auto_idles[*]}; target < 10"
record "e2e_auto_worker_busy_pct" "$(median "${auto_busy[@]}")" "%" "the $workers workers' CPU time over the run's wall time, in % of one core (/proc/PID/stat), median of ${auto_busy[*]}"
if [ "$peer_ok" = 1 ]; then
	peer_rate=$(median "${peer_rates[@]}")
	record "e2e_peer_leads_per_s" "$peer_rate" "leads/s" "DIY peer (pgsql-http + PL/pgSQL, batches of 50), median of ${peer_rates[*]}, alternated with the above"
	record "e2e_peer_idle_pct" "$(median "${peer_idles[@]}")" "%" "machine idle during the peer's runs, median of ${peer_idles[*]}"
	record "ratio_auto_to_peer" "$(calc "$auto_rate / $peer_rate")" "" "median over median; target >= 2"
	record "ratio_auto_to_peer_paired" "$(paired "${auto_rates[*]}" "${peer_rates[*]}")" "" "median of each automatic run over the peer's run beside it"
fi
# The same runs timed as the peer's are: from the moment the leads are in
# the table (the INSERT's commit), not from the INSERT's start.  The
# figures above, the targets', keep the INSERT in.
commit_rate=$(median "${commit_rates[@]}")
record "e2e_auto_from_commit_leads_per_s" "$commit_rate" "leads/s" \
	"the same runs from the INSERT's commit (it took ${insert_secs[*]} s), median of ${commit_rates[*]}"
record "e2e_auto_from_commit_idle_pct" "$(median "${commit_idles[@]}")" "%" "machine idle over that part, median of ${commit_idles[*]}"
if [ "$peer_ok" = 1 ]; then
	record "ratio_auto_from_commit_to_peer" "$(calc "$commit_rate / $peer_rate")" "" "like for like: both from leads already in their table"
fi
# What a lead costs the whole machine (both use the provider, on this
# machine).  Twice the peer's rate on two cores needs a lead to cost at
# most the peer's CPU a lead over the cores the peer keeps busy (about one:
# it waits for each answer), with both cores busy.
record "e2e_auto_cpu_us_per_lead" "$(median "${auto_cpu[@]}")" "µs" "the machine's busy CPU time a lead, from the INSERT's commit to the last lead enriched (/proc/stat), median of ${auto_cpu[*]}"
if [ "$peer_ok" = 1 ]; then
	record "e2e_peer_cpu_us_per_lead" "$(median "${peer_cpu[@]}")" "µs" "the same for the peer's runs, median of ${peer_cpu[*]}"
	record "ratio_auto_to_peer_cpu_per_lead" "$(paired "${auto_cpu[*]}" "${peer_cpu[*]}")" "" "median of each automatic run's CPU a lead over the peer's beside it"
fi
# What Odoo's notes cost: the runs without them, beside the others
record "e2e_auto_no_notes_leads_per_s" "$(median "${quiet_rates[@]}")" "leads/s" \
	"the automatic runs again with lead_enrich.odoo_chatter = off (no mail_message row; the peer writes none), median of ${quiet_rates[*]}; not a target's figure"
record "e2e_auto_no_notes_cpu_us_per_lead" "$(median "${quiet_cpu[@]}")" "µs" "their CPU a lead, as above, median of ${quiet_cpu[*]}"
record "ratio_auto_to_auto_no_notes_paired" "$(paired "${auto_rates[*]}" "${quiet_rates[*]}")" "" "each automatic run over the run without notes beside it: the notes' share"
if [ "$peer_ok" = 1 ]; then
	record "ratio_auto_no_notes_to_peer_paired" "$(paired "${quiet_rates[*]}" "${peer_rates[*]}")" "" "each run without notes over the peer's run of the same round"
	# Like for like the other way: the peer with a note a lead too
	# (bench/peer_notes.sql; shorter notes than lead_enrich's)
	record "e2e_peer_notes_leads_per_s" "$(median "${peer_notes_rates[@]}")" "leads/s" \
		"the peer again, posting Odoo's note a lead (bench/peer_notes.sql's trigger), median of ${peer_notes_rates[*]}; not a target's figure"
	record "e2e_peer_notes_cpu_us_per_lead" "$(median "${peer_notes_cpu[@]}")" "µs" "their CPU a lead, median of ${peer_notes_cpu[*]}"
	record "ratio_auto_to_peer_notes_paired" "$(paired "${auto_rates[*]}" "${peer_notes_rates[*]}")" "" "each automatic run over the peer's run with notes of the same round: both post Odoo's notes"
fi
PSQL -c "SELECT status, count(*) FROM lead_enrich.lead_state WHERE lead_id <= $((reps * leads)) GROUP BY 1 ORDER BY 1" >"$LE_RUNDIR/auto_outcomes.txt"

# 1b. bulk manual enrichment of the same kind of set, one enrich_leads()
# call per run, alternated with the peer again (its own runs, on new ids)
PSQL -c "SELECT lead_enrich.set_mode('manual')" >/dev/null
run_bulk() {
	local k=$1 base=$(((reps + $1 - 1) * leads + 1)) t0 t1
	PSQL -c "INSERT INTO odoo.crm_lead (id, name, type, active, email_from, iap_enrich_done)
		SELECT $base - 1 + i, 'bulk ' || i, 'lead', true, email, false FROM bench_lead WHERE r = $((2 * reps)) ORDER BY i" \
		-c "VACUUM ANALYZE odoo.crm_lead, odoo.mail_message, lead_enrich.lead_state" 2>/dev/null
	settle
	t0=$(now)
	PSQL -c "SELECT count(*) FROM lead_enrich.enrich_leads(ARRAY(SELECT generate_series($base, $((base + leads - 1)))::bigint))" >/dev/null
	t1=$(now)
	bulk_rates+=("$(calc "$leads / ($t1 - $t0)")")
	printf '  run %d bulk:      %s leads/s\n' "$k" "${bulk_rates[-1]}"
}
for k in $(seq "$reps"); do
	if [ "$peer_ok" = 1 ] && [ $((k % 2)) = 0 ]; then run_peer "$k" second; fi
	run_bulk "$k"
	if [ "$peer_ok" = 1 ] && [ $((k % 2)) = 1 ]; then run_peer "$k" second; fi
done
bulk_rate=$(median "${bulk_rates[@]}")
record "e2e_bulk_leads_per_s" "$bulk_rate" "leads/s" "one enrich_leads() call over $leads leads, batches of 50, median of ${bulk_rates[*]}"
if [ "$peer_ok" = 1 ]; then
	bulk_peer_rate=$(median "${bulk_peer_rates[@]}")
	record "e2e_peer_beside_bulk_leads_per_s" "$bulk_peer_rate" "leads/s" "the peer's runs alternated with the bulk runs, median of ${bulk_peer_rates[*]}"
	record "ratio_bulk_to_peer" "$(calc "$bulk_rate / $bulk_peer_rate")" "" "median over median"
	record "ratio_bulk_to_peer_paired" "$(paired "${bulk_rates[*]}" "${bulk_peer_rates[*]}")" "" "median of each bulk run over the peer's run beside it"
fi

# 2a. limit: the same column updates from a local table, no network
le_psql -d lead_provider -c "\copy (SELECT d.domain, o.company FROM provider.org_domain d JOIN provider.org o ON o.id = d.org_id) TO STDOUT" >"$LE_RUNDIR/companies.tsv"
PSQL -c "DROP TABLE IF EXISTS local_company; CREATE TABLE local_company (domain text PRIMARY KEY, company jsonb)"
le_psql -d bench -c "\copy local_company FROM '$LE_RUNDIR/companies.tsv'"
PSQL -c "ANALYZE local_company"
base=$((2 * reps * leads + 1))
PSQL -c "INSERT INTO odoo.crm_lead (id, name, type, active, email_from, iap_enrich_done)
	SELECT $base - 1 + i, 'local ' || i, 'lead', true, email, false FROM bench_lead WHERE r = $((2 * reps + 1)) ORDER BY i"
settle
t0=$(now)
PSQL -c "
WITH m AS (
	SELECT l.id, c.company
	FROM odoo.crm_lead l JOIN local_company c ON c.domain = split_part(l.email_from, '@', 2)
	WHERE l.id BETWEEN $base AND $((base + leads - 1))),
u AS (
	UPDATE odoo.crm_lead l SET
		partner_name = coalesce(nullif(l.partner_name, ''), m.company ->> 'name'),
		reveal_id = coalesce(nullif(l.reveal_id, ''), m.company ->> 'clearbit_id'),
		street = coalesce(nullif(l.street, ''), m.company ->> 'location'),
		city = coalesce(nullif(l.city, ''), m.company ->> 'city'),
		zip = coalesce(nullif(l.zip, ''), m.company ->> 'postal_code'),
		phone = coalesce(nullif(l.phone, ''), m.company #>> '{phone_numbers,0}'),
		country_id = coalesce(l.country_id, (SELECT id FROM odoo.res_country WHERE code = upper(m.company ->> 'country_code'))),
		iap_enrich_done = true, write_date = now() AT TIME ZONE 'UTC'
	FROM m WHERE l.id = m.id RETURNING l.id, m.company)
INSERT INTO lead_enrich.lead_state (lead_id, status, company, credits, source)
SELECT id, 'enriched', company, 1, 'manual' FROM u"
t1=$(now)
local_rate=$(calc "$leads / ($t1 - $t0)")
record "limit_local_updates_leads_per_s" "$local_rate" "leads/s" "same updates + outcome rows from a local table, one statement"

# 2b. limit: the provider alone, 50-domain batches under wrk, three times
# (one 10-second run moved by a third from one run to the next)
prov_rates=()
for _ in 1 2 3; do
	settle
	prov=$(DURATION=10s "$LE_REPO/bench/provider.sh" --db "$(le_conninfo lead_provider)" "http://127.0.0.1:$LE_PROVIDER_PORT" 2>&1 | grep '^enrich')
	prov_rates+=("$(calc "$(grep -oE '[0-9.]+ req/s' <<<"$prov" | awk '{print $1}') * 50")")
done
prov_rate=$(median "${prov_rates[@]}")
record "limit_provider_domains_per_s" "$prov_rate" "domains/s" "wrk -c16 -d10s, 50-domain batches, median of ${prov_rates[*]}; target >= 50000"
record "ratio_auto_to_local_limit" "$(calc "$auto_rate / $local_rate")" "" "target >= 0.5"
record "ratio_auto_to_provider_limit" "$(calc "$auto_rate / $prov_rate")" "" ""
record "ratio_bulk_to_local_limit" "$(calc "$bulk_rate / $local_rate")" "" ""

# 3. insert overhead: pgbench single-row INSERTs, attached + automatic vs not attached
PSQL -c "CREATE TABLE odoo.crm_lead_plain (LIKE odoo.crm_lead INCLUDING ALL)"
PSQL -c "CREATE SEQUENCE bench_seq START $(((3 * reps + 1) * leads + 1))"
cat >"$LE_RUNDIR/insert_auto.sql" <<EOF
INSERT INTO odoo.crm_lead (id, name, type, active, email_from, iap_enrich_done)
VALUES (nextval('bench_seq'), 'pgbench', 'lead', true, 'p' || :client_id || '-' || random() || '@unknown-pgbench.example.net', false);
EOF
sed 's/odoo.crm_lead /odoo.crm_lead_plain /' "$LE_RUNDIR/insert_auto.sql" >"$LE_RUNDIR/insert_plain.sql"
PSQL -c "SELECT lead_enrich.set_mode('auto')" >/dev/null
# (no settle here: the two sides insert into different tables, the
# attached one far larger, and after a checkpoint the first change to each
# of its index pages writes the page whole into the WAL, which the new
# table's fresh pages do not; bench/insert_overhead.sh compares one table
# with itself)
pgb() {
	"$LE_PGBIN/pgbench" -n -h "$LE_RUNDIR" -p "$LE_PGPORT" -U postgres -c 4 -j 2 -T "$pgbench_s" -f "$1" bench 2>/dev/null |
		awk '/^tps/ {print $3; exit}'
}
# with the workers enriching meanwhile: one pair (the workers take about a
# core of the two while they run)
tps_plain=$(pgb "$LE_RUNDIR/insert_plain.sql")
tps_auto=$(pgb "$LE_RUNDIR/insert_auto.sql")
record "insert_tps_not_attached" "$tps_plain" "tps" "pgbench -c4 -j2 -T$pgbench_s, single-row INSERT"
record "insert_tps_auto_mode" "$tps_auto" "tps" "same, attached table in automatic mode (workers enriching meanwhile)"
record "ratio_insert_tps" "$(calc "$tps_auto / $tps_plain")" "" "one pair"
# the trigger alone (workers stopped): three alternated pairs, the medians
# (one pair moved by a quarter from one run to the next)
PSQL -c "SELECT lead_enrich.worker_stop()" >/dev/null
sleep 1
keep=$(PSQL -c "SELECT coalesce(max(id), 0) FROM odoo.crm_lead")
plain_runs=() trig_runs=()
for _ in 1 2 3; do
	plain_runs+=("$(pgb "$LE_RUNDIR/insert_plain.sql")")
	trig_runs+=("$(pgb "$LE_RUNDIR/insert_auto.sql")")
done
tps_plain=$(median "${plain_runs[@]}")
tps_trig=$(median "${trig_runs[@]}")
record "insert_tps_not_attached_2" "$tps_plain" "tps" "median of ${plain_runs[*]}, alternated with the next"
record "insert_tps_auto_worker_stopped" "$tps_trig" "tps" "trigger only (workers stopped): the enqueue cost alone; median of ${trig_runs[*]}"
record "ratio_insert_tps_trigger_only" "$(calc "$tps_trig / $tps_plain")" "" "median over median; target >= 0.90"
record "ratio_insert_tps_trigger_only_paired" "$(paired "${trig_runs[*]}" "${plain_runs[*]}")" "" "median of each pair's ratio"
# those leads were there to be inserted, not enriched: gone before the
# workers start again, so that they catch up on no more than before
PSQL -c "DELETE FROM odoo.crm_lead WHERE id > $keep"
PSQL -c "SELECT lead_enrich.worker_start()" >/dev/null
sleep 2
# let the worker catch up on what pgbench inserted: nothing left in shared
# memory (intake_pending), nothing pending, no batch in flight
caught_up=f
for _ in $(seq 1200); do
	caught_up=$(PSQL -c "SELECT lead_enrich.intake_pending() = 0
				  AND NOT EXISTS (SELECT 1 FROM lead_enrich.lead_state WHERE status = 'pending' AND batch_id IS NULL)
				  AND NOT EXISTS (SELECT 1 FROM lead_enrich.batch)")
	[ "$caught_up" = t ] && break
	sleep 0.1
done
[ "$caught_up" = t ] || echo "the workers had not caught up with pgbench's leads after 120 s: the idle-queue latency below is not idle" >&2

# 4. latency at about 10 inserts per second, one lead per transaction:
# lat_run TAG prints "p50 p99 n" (ms, INSERT commit to enriched).
lat_run() {
	local first last n=$((latency_s * 10))
	first=$(PSQL -c "SELECT nextval('bench_seq') + 1")
	{
		for i in $(seq "$n"); do
			echo "INSERT INTO odoo.crm_lead (id, name, type, active, email_from, iap_enrich_done, create_date)
				SELECT nextval('bench_seq'), 'latency $1', 'lead', true, 'l$i-$1@' || domain, false, clock_timestamp() AT TIME ZONE 'UTC'
				FROM bench_domain WHERE n = 1 + ($i * 97) % 40000;"
			sleep 0.1
		done
	} | le_psql -d bench -q >/dev/null
	last=$(PSQL -c "SELECT max(id) FROM odoo.crm_lead WHERE name = 'latency $1'")
	wait_enriched "$first" "$last" >&2 || true
	PSQL -F ' ' -c "
		SELECT round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY d)),
			   round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY d)), count(*)
		FROM (SELECT extract(epoch FROM s.updated_at - (l.create_date AT TIME ZONE 'UTC')) AS d
			  FROM odoo.crm_lead l JOIN lead_enrich.lead_state s ON s.lead_id = l.id
			  WHERE l.id BETWEEN $first AND $last AND l.name = 'latency $1' AND s.status <> 'pending') x"
}
read -r p50 p99 nlat < <(lat_run idle)
record "latency_p50_ms" "$p50" "ms" "idle queue: INSERT commit to enriched, 10 inserts/s for ${latency_s}s ($nlat leads); target < 100"
record "latency_p99_ms" "$p99" "ms" "target < 500"

# 4b. the same behind a backlog: $leads leads inserted in one statement
# just before (the bulk run's e-mails, new ids), then 10 inserts/s.
backlog_first=$(PSQL -c "SELECT nextval('bench_seq')")
PSQL -c "INSERT INTO odoo.crm_lead (id, name, type, active, email_from, iap_enrich_done, create_date)
	SELECT nextval('bench_seq'), 'backlog ' || i, 'lead', true, email, false, now() AT TIME ZONE 'UTC'
	FROM bench_lead WHERE r = $((2 * reps)) ORDER BY i"

read -r bp50 bp99 bnlat < <(lat_run backlog)
record "latency_backlog_p50_ms" "$bp50" "ms" "the same with $leads leads inserted just before, not yet enriched; $bnlat leads"
record "latency_backlog_p99_ms" "$bp99" "ms" "target < 1000"
wait_enriched "$backlog_first" "$(PSQL -c "SELECT max(id) FROM odoo.crm_lead")" || true

# 5. worker memory: its private memory (RssAnon; VmRSS also counts the
# shared buffers it touched) sampled every second over a run of
# $memory_leads leads inserted in statements of $leads; the plateau after
# the first tenth of the run, and its slope per million leads, show whether
# it grows.
read -r -a worker_pids_a <<<"$(worker_pids)"
if [ "$memory_leads" -gt 0 ]; then
	samples=$LE_RUNDIR/worker_rss.tsv
	mem_first=$(PSQL -c "SELECT nextval('bench_seq') + 1")
	# the sampler reads the workers' memory only; the leads done by each
	# sample's second are counted once the run is over, from their outcomes'
	# times (a count of lead_state every second, millions of rows by then,
	# took most of a core and slowed the run it measured)
	: >"$samples.raw"
	(
		while kill -0 "${worker_pids_a[0]}" 2>/dev/null; do
			printf '%s\t%s\n' "$(date +%s)" "$(rss_kb "${worker_pids_a[@]}")" >>"$samples.raw"
			sleep 1
		done
	) &
	sampler=$!
	left=$memory_leads
	while [ "$left" -gt 0 ]; do
		chunk=$((left < leads ? left : leads))
		PSQL -c "INSERT INTO odoo.crm_lead (id, name, type, active, email_from, iap_enrich_done, create_date)
			SELECT nextval('bench_seq'), 'memory ' || i, 'lead', true, 'm' || email, false, now() AT TIME ZONE 'UTC'
			FROM bench_lead WHERE r = $(((left / leads) % nsets)) AND i <= $chunk ORDER BY i"
		# keep the backlog under two statements' worth
		for _ in $(seq 6000); do
			[ "$(PSQL -c "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'pending' AND batch_id IS NULL")" -le "$leads" ] && break
			sleep 0.2
		done
		left=$((left - chunk))
	done
	wait_enriched "$mem_first" "$(PSQL -c "SELECT max(id) FROM odoo.crm_lead")" || true
	sleep 2
	kill "$sampler" 2>/dev/null || true
	wait "$sampler" 2>/dev/null || true
	# each sample: its second, the run's leads with an outcome by the end of
	# that second, the workers' memory
	PSQL -F $'\t' -c "SELECT floor(extract(epoch FROM updated_at))::bigint, count(*) FROM lead_enrich.lead_state
		WHERE lead_id >= $mem_first AND status <> 'pending' GROUP BY 1 ORDER BY 1" >"$samples.done"
	python3 - "$samples.raw" "$samples.done" >"$samples" <<'PY'
import bisect, itertools, sys
done = [tuple(map(int, l.split("\t"))) for l in open(sys.argv[2]) if l.strip()]
secs = [t for t, _ in done]
cum = list(itertools.accumulate(n for _, n in done))
for l in open(sys.argv[1]):
    if l.count("\t") == 1:
        t, rss = map(int, l.split("\t"))
        k = bisect.bisect_right(secs, t)
        print(f"{t}\t{cum[k - 1] if k else 0}\t{rss}")
PY
	# RssAnon at the start, after the first tenth of the run (the caches
	# fill there: a step, not growth), at the middle and at the end, by leads
	# processed; then the plateau (lowest and highest sample after that first
	# tenth) and its slope (least squares over those samples)
	read -r m0 m10 mh m1 n0 n10 n1 pmin pmax slope < <(python3 - "$samples" <<'PY'
import sys
rows = [tuple(map(int, l.split("\t"))) for l in open(sys.argv[1]) if l.count("\t") == 2]
n0, n1 = rows[0][1], rows[-1][1]
at = lambda n: min(rows, key=lambda r: abs(r[1] - n))
r10, rh = at(n0 + (n1 - n0) / 10), at((n0 + n1) / 2)
tail = [r for r in rows if r[1] >= r10[1]]
xs = [r[1] for r in tail]
ys = [r[2] for r in tail]
mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
var = sum((x - mx) ** 2 for x in xs)
slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0
print(rows[0][2], r10[2], rh[2], rows[-1][2], n0, r10[1], n1, min(ys), max(ys),
      round(slope * 1000000 / 1024, 3))
PY
	)
	record "worker_private_rss_kb" "$m0 / $m10 / $mh / $m1" "kB" "RssAnon of the ${#worker_pids_a[@]} workers together at the start / after a tenth / middle / end of a run of $((n1 - n0)) leads (samples: $samples)"
	record "worker_rss_plateau_kb" "$pmin - $pmax" "kB" "lowest and highest sample over the last nine tenths ($((n1 - n10)) leads)"
	record "worker_rss_growth_per_1M_leads_mb" "$slope" "MB" \
		"least-squares slope of those samples, per million leads; target < 10"
else
	processed=$(PSQL -c "SELECT count(*) FROM lead_enrich.lead_state WHERE source = 'worker'")
	rss_end=$(rss_kb "${worker_pids_a[@]}")
	record "worker_private_rss_kb" "$rss_start / $rss_end" "kB" "RssAnon of the ${#worker_pids_a[@]} workers together after start / after $processed leads"
	# the caches filling from a cold start included: not the target's
	# figure, which is the plateau's slope of a --memory-leads run
	record "worker_rss_start_to_end_per_1M_leads_mb" "$(calc "($rss_end - $rss_start) / 1024 * 1000000 / max($processed, 1)")" "MB" \
		"from the start to the end of this run over $processed leads, start-up caches included (no --memory-leads run: no plateau measured)"
fi

# 6. lead mining: 200 leads, companies and contacts mode, into an empty CRM
# table of a database of its own (the bench table holds every company by now)
le_psql -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS bench_mining WITH (FORCE)" -c "CREATE DATABASE bench_mining" >/dev/null
le_psql -d bench_mining -f "$LE_REPO/test/fixtures/odoo17_crm.sql" >/dev/null
python3 "$LE_REPO/scripts/gen_res_country.py" odoo | le_psql -d bench_mining >/dev/null
le_psql -d bench_mining -c "UPDATE odoo.ir_config_parameter SET value = gen_random_uuid()::text WHERE key = 'database.uuid'" \
	-c "CREATE EXTENSION lead_enrich" -c "SELECT lead_enrich.attach('odoo.crm_lead')" >/dev/null
mine() {
	# the first request of a session warms its caches; the second is timed
	le_psql -d bench_mining -tA -c "SELECT count(*) FROM lead_enrich.generate_leads('$1')" \
		-c "\\timing on" -c "SELECT count(*) FROM lead_enrich.generate_leads('$1')" 2>/dev/null |
		awk '/^Time:/ {print $2}'
}
mine_companies='{"lead_number": 200, "countries": ["US"]}'
record "mining_200_companies_ms" "$(mine "$mine_companies")" "ms" "target < 250"
record "mining_200_people_ms" "$(mine '{"lead_number": 200, "countries": ["DE", "FR", "GB", "US"], "search_type": "people", "contact_number": 3, "preferred_role": "CEO"}')" "ms" "3 contacts each; target < 250"

# 6b. the same into a CRM table that already holds leads: the duplicate
# look-up reads every lead's e-mail and website domain, unless the
# expression indexes of README's "Mining into a large CRM table" are there.
# Without and with them, alternated, three times each; before each timed
# pair of calls the leads mined before are deleted and the database uuid
# changed (so the provider sends the same companies, none a duplicate).
if [ "$mining_crm" -gt 0 ]; then
	le_psql -d bench_mining -qc "ALTER TABLE odoo.crm_lead DISABLE TRIGGER USER" -c "
		INSERT INTO odoo.crm_lead (name, type, active, email_from, website)
		SELECT 'Customer ' || n, 'lead', true, 'sales' || n || '@customer-' || n || '.example',
			'https://www.customer-' || n || '.example'
		FROM generate_series(1, $mining_crm) n" -c "ALTER TABLE odoo.crm_lead ENABLE TRIGGER USER" \
		-c "VACUUM ANALYZE odoo.crm_lead" >/dev/null
	crm_top=$(le_psql -d bench_mining -tAc "SELECT max(id) FROM odoo.crm_lead")
	mine_reset() {
		le_psql -d bench_mining -qc "DELETE FROM odoo.crm_lead WHERE id > $crm_top" \
			-c "DELETE FROM lead_enrich.lead_state WHERE status = 'mined'" \
			-c "UPDATE odoo.ir_config_parameter SET value = gen_random_uuid()::text WHERE key = 'database.uuid'" >/dev/null
	}
	no_idx=()
	idx=()
	for _ in 1 2 3; do
		le_psql -d bench_mining -qc "SET client_min_messages = warning" -c "DROP INDEX IF EXISTS odoo.crm_lead_email_domain_idx, odoo.crm_lead_website_domain_idx, odoo.crm_lead_reveal_id_idx" \
			-c "ANALYZE odoo.crm_lead" >/dev/null
		mine_reset
		no_idx+=("$(mine "$mine_companies")")
		le_psql -d bench_mining -q >/dev/null <<-'SQL'
			CREATE INDEX crm_lead_email_domain_idx ON odoo.crm_lead
				(lower(substring(email_from::text from '@([^@>[:space:]]+)')));
			CREATE INDEX crm_lead_website_domain_idx ON odoo.crm_lead
				(lower(substring(website::text from '^(?:[A-Za-z][A-Za-z0-9+.-]*://)?(?:www\.)?([^/:?#[:space:]]+)')));
			CREATE INDEX crm_lead_reveal_id_idx ON odoo.crm_lead (reveal_id);
			ANALYZE odoo.crm_lead;
		SQL
		mine_reset
		idx+=("$(mine "$mine_companies")")
	done
	record "mining_200_in_crm_no_index_ms" "$(median "${no_idx[@]}")" "ms" "into a CRM of $mining_crm leads, no index on their domains (${no_idx[*]})"
	record "mining_200_in_crm_indexed_ms" "$(median "${idx[@]}")" "ms" "into the same, with README's three expression indexes (${idx[*]}); target < 250"
fi

python3 - "$csv" "$results/latest.json" <<'PY'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
json.dump(rows, open(sys.argv[2], "w"), indent=1)
PY
echo
echo "outcomes of the automatic run:"; sed 's/^/  /' "$LE_RUNDIR/auto_outcomes.txt"
echo "written: $csv, $results/latest.json"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r); PostgreSQL $("$LE_PG_CONFIG" --version | awk '{print $2}'); fsync $(PSQL -c "SHOW fsync"), full_page_writes $(PSQL -c "SHOW full_page_writes"), synchronous_commit $(PSQL -c "SHOW synchronous_commit")"
le_stop_all
