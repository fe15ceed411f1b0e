#!/usr/bin/env bash
# The enqueue of automatic mode loses no lead.  New leads wait in shared
# memory until the worker makes them durable (src/intake.c); these
# scenarios take that memory away and check that every lead that needs
# enriching is still enriched by the worker:
#
#   a. SIGKILL of a backend: after other sessions committed leads the
#      worker had not collected yet, and in the middle of a transaction
#      that inserted leads (those are rolled back, the others kept); leads
#      from before automatic mode are not enqueued by the scan that follows
#   b. pg_ctl -m immediate restart right after a burst of committed
#      single-row INSERTs (pgbench, 4 clients), the worker collecting during
#      the first half and stopped during the second
#   c. failover: a streaming standby (pg_basebackup) promoted after the
#      primary stopped with leads it had not collected
#   d. Odoo's rule: archived leads are not enqueued, a lead made active
#      again is
#   e. leads that need no enrichment are not enqueued (done, won, reveal
#      id, no or blank e-mail)
#   f. the list of shared memory full: the leads that did not fit are
#      enqueued; a lead of a transaction still running when the worker
#      collects is enqueued once it commits
#   g. a large INSERT into a table of done leads, whose statistics say
#      nearly no lead needs enriching: the overflow range and the scan read
#      each lead once, not the whole range at every chunk
#
# Needs the cluster and the reference provider of scripts/test.sh (started
# when not running).  Prints "ok - ..." / "not ok - ..." and a final
# "N passed, N failed" line.
source "$(dirname "$0")/lib.sh"

RUN_ID=$(date +%s)$$
STANDBY=$LE_RUNDIR/standby
STANDBY_SOCK=$LE_RUNDIR/standby-sock


qs() { psql -X -q -h "$STANDBY_SOCK" -p "$LE_PGPORT" -U postgres -d "$1" -tA -c "$2" 2>&1; }



pg_ctl_run() { as_run_user "$LE_PGBIN/pg_ctl" "$@"; }

cleanup() {
	if [ -f "$STANDBY/postmaster.pid" ]; then
		pg_ctl_run -D "$STANDBY" -m immediate stop >/dev/null 2>&1
	fi
	rm -rf "$STANDBY" "$STANDBY_SOCK"
	if ! le_psql -d postgres -tAc "SELECT 1" >/dev/null 2>&1; then
		pg_ctl_run -D "$LE_RUNDIR/pgdata" -w start -l "$LE_RUNDIR/postgres.log" >/dev/null 2>&1
	fi
	le_psql -d postgres -qc "ALTER SYSTEM RESET lead_enrich.databases" -c "ALTER SYSTEM RESET lead_enrich.retry_delay" \
		-c "SELECT pg_reload_conf()" >/dev/null 2>&1
	for db in "${dbs[@]}"; do
		le_psql -d postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
	done
}
dbs=()
trap cleanup EXIT

# The leads of these tests need enriching unless said otherwise; a lead is
# done when its outcome is final.
TODO="SELECT count(*) FROM odoo.crm_lead l LEFT JOIN lead_enrich.lead_state s ON s.lead_id = l.id
	WHERE l.name LIKE 'T %' AND s.status IS DISTINCT FROM 'enriched' AND s.status IS DISTINCT FROM 'not_found'"

# new_db NAME: the Odoo fixture attached, its own token with credits, the
# directory's domains in public.domains; automatic mode, worker running.
new_db() {
	local db=$1
	dbs+=("$db")
	TOKEN="t-enqueue-$db-$RUN_ID"
	le_psql -d postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null || return 1
	{
		echo "CREATE EXTENSION lead_enrich;"
		echo "\\i $LE_REPO/test/fixtures/odoo17_crm.sql"
		echo "SELECT lead_enrich.attach('odoo.crm_lead');"
		echo "INSERT INTO odoo.iap_account (service_name, account_token) VALUES ('reveal', '$TOKEN');"
		echo "CREATE TABLE public.domains (n serial, d text);"
	} | le_psql -d "$db" -q >/dev/null || return 1
	prov "SELECT provider.add_credits('$TOKEN', 100000)" >/dev/null
	prov "COPY (SELECT domain FROM provider.org ORDER BY id LIMIT 1200) TO STDOUT" |
		le_psql -d "$db" -qc "COPY public.domains (d) FROM STDIN" || return 1
	q "$db" "DELETE FROM public.domains WHERE d IN (SELECT domain FROM lead_enrich.webmail_domain)" >/dev/null
	q "$db" "SELECT lead_enrich.set_mode('auto')" >/dev/null
}

# insert_leads DB NAME FROM COUNT [ACTIVE]: one statement, committed durably;
# directory domains (enriched) for n < 1000, unknown ones (not found) above
insert_leads() {
	le_psql -d "$1" -qc "SET synchronous_commit = on" -c "
		INSERT INTO odoo.crm_lead (name, type, active, probability, email_from)
		SELECT '$2 ' || i, 'lead', ${5:-true}, 10,
			   'contact' || i || '@' || coalesce((SELECT d FROM public.domains WHERE n = i), 'nx' || i || '.lead-enrich-test.example')
		FROM generate_series($3 + 1, $3 + $4) i"
}

# want DB: T_ENQUEUE_ONLY="kill full" runs only those scenarios
want() { [ -z "${T_ENQUEUE_ONLY:-}" ] || [[ " $T_ENQUEUE_ONLY " == *" ${1#le_te_} "* ]]; }

if ! le_wait_http "http://127.0.0.1:$LE_PROVIDER_PORT/health" 2>/dev/null; then
	le_provider_start --trial-credits 1000 >/dev/null 2>&1 ||
		{ echo "not ok - the provider answers on port $LE_PROVIDER_PORT"; echo "0 passed, 1 failed"; exit 1; }
fi
le_psql -d postgres -qc "ALTER SYSTEM SET lead_enrich.retry_delay = '1s'" -c "SELECT pg_reload_conf()" >/dev/null

# ---------------------------------------------------------------------------
# a. SIGKILL of a backend
# ---------------------------------------------------------------------------
DB=le_te_kill
if ! want $DB; then :
elif new_db $DB; then
	# before automatic mode: never enqueued, even by the scan after a crash
	q $DB "SELECT lead_enrich.set_mode('manual')" >/dev/null
	insert_leads $DB "Old" 0 5 >/dev/null
	q $DB "SELECT lead_enrich.set_mode('auto')" >/dev/null
	q $DB "SELECT lead_enrich.worker_stop()" >/dev/null
	insert_leads $DB T 10 200 >/dev/null
	for i in $(seq 11 60); do echo "INSERT INTO odoo.crm_lead (name, type, active, email_from) VALUES ('T single $i', 'lead', true, 's$i@nx-single-$i.lead-enrich-test.example');"; done |
		le_psql -d $DB -q -c "SET synchronous_commit = on" -f - >/dev/null
	check "worker stopped: 250 new leads wait in shared memory, none in lead_state yet" \
		"$(q $DB "SELECT pending, (SELECT count(*) FROM lead_enrich.lead_state) FROM lead_enrich.status")" "250|0"
	# a transaction that inserted leads is in progress when a backend dies
	le_psql -d $DB -qc "BEGIN" -c "INSERT INTO odoo.crm_lead (name, type, active, email_from)
		SELECT 'Uncommitted ' || i, 'lead', true, 'u' || i || '@mit.edu' FROM generate_series(1, 20) i" \
		-c "SELECT pg_sleep(60)" -c "COMMIT" >/dev/null 2>&1 &
	bg=$!
	wait_for 10 $DB "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND state = 'active' AND pid <> pg_backend_pid()" 1 >/dev/null
	victim=$(q $DB "SELECT pid FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()")
	logstart=$(($(wc -l <"$LE_RUNDIR/postgres.log") + 1))
	kill -KILL "$victim" 2>/dev/null
	wait $bg 2>/dev/null
	sleep 1
	wait_ready 60
	if wait_for 90 $DB "$TODO" 0; then
		ok "after SIGKILL of a backend (crash restart) all 250 committed leads are enriched or not found"
	else
		not_ok "after SIGKILL of a backend all committed leads are enriched" "$(q $DB "SELECT outcomes, worker_pid, last_error FROM lead_enrich.status")"
	fi
	check "the transaction that was running when the backend died left no lead and no queue row" \
		"$(q $DB "SELECT count(*) FROM odoo.crm_lead WHERE name LIKE 'Uncommitted%'")|$(q $DB "SELECT count(*) FROM lead_enrich.lead_state s WHERE NOT EXISTS (SELECT 1 FROM odoo.crm_lead l WHERE l.id = s.lead_id)")" "0|0"
	check "leads from before automatic mode are not enqueued by the scan" \
		"$(q $DB "SELECT count(*) FROM lead_enrich.lead_state s JOIN odoo.crm_lead l ON l.id = s.lead_id WHERE l.name LIKE 'Old %'")" 0
	check "the scan after the crash queued the 250 leads (server log)" \
		"$(tail -n +"$logstart" "$LE_RUNDIR/postgres.log" | grep -c "scanned odoo.crm_lead for new leads the shared list may have lost: 250 queued")" 1
	check "charged once per company found" "$(prov "SELECT provider.spent('$TOKEN')")" \
		"$(q $DB "SELECT sum(credits) FROM lead_enrich.lead_state")"
else
	not_ok "kill: database set up"
fi

# ---------------------------------------------------------------------------
# b. immediate restart right after a burst of committed INSERTs
# ---------------------------------------------------------------------------
DB=le_te_restart
if ! want $DB; then :
elif new_db $DB; then
	cat >"$LE_RUNDIR/t_enqueue_burst.sql" <<'EOF'
SET synchronous_commit = on;
INSERT INTO odoo.crm_lead (name, type, active, email_from)
VALUES ('T burst', 'lead', true, 'b' || :client_id || '-' || random() || '@nx-burst.lead-enrich-test.example');
EOF
	chmod 644 "$LE_RUNDIR/t_enqueue_burst.sql"
	# half with the worker collecting, half with it stopped: the restart
	# finds leads in shared memory only
	for half in 1 2; do
		"$LE_PGBIN/pgbench" -n -h "$LE_RUNDIR" -p "$LE_PGPORT" -U postgres -c 4 -j 2 -t 150 \
			-f "$LE_RUNDIR/t_enqueue_burst.sql" $DB >>"$LE_RUNDIR/t_enqueue_pgbench.log" 2>&1
		[ $half = 1 ] && q $DB "SELECT lead_enrich.worker_stop()" >/dev/null
	done
	uncollected=$(q $DB "SELECT 1200 - count(*) FROM lead_enrich.lead_state")
	if [ "$uncollected" -gt 0 ] 2>/dev/null; then
		ok "at the restart $uncollected leads of the burst are in shared memory only"
	else
		not_ok "at the restart some leads are in shared memory only" "$uncollected"
	fi
	pg_ctl_run -D "$LE_RUNDIR/pgdata" -m immediate -w restart -l "$LE_RUNDIR/postgres.log" >/dev/null 2>&1
	wait_ready 60
	n=$(q $DB "SELECT count(*) FROM odoo.crm_lead WHERE name = 'T burst'")
	check "the burst committed 1200 single-row INSERTs (4 clients)" "$n" 1200
	if wait_for 120 $DB "$TODO" 0; then
		ok "after pg_ctl -m immediate restart every lead of the burst is enriched or not found"
	else
		not_ok "after an immediate restart every lead is enriched" "$(q $DB "SELECT outcomes, worker_pid, last_error FROM lead_enrich.status")"
	fi
	check "one outcome per lead, no lead twice" \
		"$(q $DB "SELECT count(*), count(DISTINCT s.lead_id) FROM lead_enrich.lead_state s")" "1200|1200"
else
	not_ok "restart: database set up"
fi

# ---------------------------------------------------------------------------
# c. failover: a streaming standby promoted
# ---------------------------------------------------------------------------
DB=le_te_failover
if ! want $DB; then :
elif new_db $DB; then
	q $DB "SELECT lead_enrich.set_mode('manual')" >/dev/null
	insert_leads $DB "Old" 0 5 >/dev/null
	q $DB "SELECT lead_enrich.set_mode('auto')" >/dev/null
	q $DB "SELECT lead_enrich.worker_stop()" >/dev/null
	rm -rf "$STANDBY" "$STANDBY_SOCK"
	mkdir -p "$STANDBY_SOCK"
	chown "$LE_RUN_USER" "$STANDBY_SOCK" 2>/dev/null
	if as_run_user "$LE_PGBIN/pg_basebackup" -h "$LE_RUNDIR" -p "$LE_PGPORT" -U postgres -D "$STANDBY" -R -X stream \
		>"$LE_RUNDIR/t_enqueue_basebackup.log" 2>&1; then
		# same port number, its own socket directory, no TCP
		printf "listen_addresses = ''\nunix_socket_directories = '%s'\n" "$STANDBY_SOCK" |
			as_run_user tee -a "$STANDBY/postgresql.auto.conf" >/dev/null
		pg_ctl_run -D "$STANDBY" -w start -l "$LE_RUNDIR/standby.log" >/dev/null 2>&1
		check "a streaming standby runs" "$(qs postgres "SELECT pg_is_in_recovery()")" t
		# the primary serves no database's worker from here on (it comes back
		# after the failover, for the next tests)
		le_psql -d postgres -qc "ALTER SYSTEM SET lead_enrich.databases = 'postgres'" -c "SELECT pg_reload_conf()" >/dev/null
		insert_leads $DB T 10 300 >/dev/null
		check "primary: 300 new leads in shared memory only" \
			"$(q $DB "SELECT pending, (SELECT count(*) FROM lead_enrich.lead_state) FROM lead_enrich.status")" "300|0"
		lsn=$(q postgres "SELECT pg_current_wal_lsn()")
		wait_for 30 postgres "SELECT pg_last_wal_replay_lsn() >= '$lsn'" t qs >/dev/null
		pg_ctl_run -D "$LE_RUNDIR/pgdata" -m immediate stop >/dev/null 2>&1
		pg_ctl_run -D "$STANDBY" -w promote >/dev/null 2>&1
		# the provider keeps its ledger in the old primary: bring it back
		pg_ctl_run -D "$LE_RUNDIR/pgdata" -w start -l "$LE_RUNDIR/postgres.log" >/dev/null 2>&1
		wait_ready 60
		check "the standby is promoted" "$(qs postgres "SELECT pg_is_in_recovery()")" f
		if wait_for 120 $DB "$TODO" 0 qs; then
			ok "after the failover the new primary's worker enriched all 300 leads"
		else
			not_ok "after the failover all leads are enriched" "$(qs $DB "SELECT outcomes, worker_pid, last_error FROM lead_enrich.status")"
		fi
		check "new primary: leads from before automatic mode not enqueued" \
			"$(qs $DB "SELECT count(*) FROM lead_enrich.lead_state s JOIN odoo.crm_lead l ON l.id = s.lead_id WHERE l.name LIKE 'Old %'")" 0
		pg_ctl_run -D "$STANDBY" -m immediate stop >/dev/null 2>&1
		rm -rf "$STANDBY" "$STANDBY_SOCK"
		# the old primary's copy of the database must not be enriched as well
		le_psql -d postgres -qc "DROP DATABASE $DB WITH (FORCE)" >/dev/null
	else
		not_ok "pg_basebackup of the primary" "$(tail -3 "$LE_RUNDIR/t_enqueue_basebackup.log")"
	fi
	le_psql -d postgres -qc "ALTER SYSTEM RESET lead_enrich.databases" -c "SELECT pg_reload_conf()" >/dev/null
else
	not_ok "failover: database set up"
fi

# ---------------------------------------------------------------------------
# d. archived leads (Odoo's rule), e. leads that need no enrichment
# ---------------------------------------------------------------------------
DB=le_te_rules
if ! want $DB; then :
elif new_db $DB; then
	insert_leads $DB "T active" 0 3 >/dev/null
	insert_leads $DB "Archived" 3 3 false >/dev/null
	q $DB "INSERT INTO odoo.crm_lead (name, type, active, probability, email_from, iap_enrich_done, reveal_id) VALUES
		('Done', 'lead', true, 10, 'd@' || (SELECT d FROM public.domains WHERE n = 10), true, NULL),
		('Won', 'opportunity', true, 100, 'w@' || (SELECT d FROM public.domains WHERE n = 11), false, NULL),
		('Reveal', 'lead', true, 10, 'r@' || (SELECT d FROM public.domains WHERE n = 12), false, 'abc'),
		('No mail', 'lead', true, 10, NULL, false, NULL),
		('Blank mail', 'lead', true, 10, '   ', false, NULL)" >/dev/null
	if wait_for 30 $DB "$TODO" 0; then ok "active leads enriched"; else not_ok "active leads enriched"; fi
	sleep 1
	check "archived leads are not enqueued nor enriched" \
		"$(q $DB "SELECT count(*) FROM lead_enrich.lead_state s JOIN odoo.crm_lead l ON l.id = s.lead_id WHERE l.name LIKE 'Archived%'")|$(q $DB "SELECT count(*) FROM odoo.crm_lead WHERE name LIKE 'Archived%' AND partner_name IS NOT NULL")" "0|0"
	check "done, won, reveal id, no e-mail, blank e-mail: not enqueued" \
		"$(q $DB "SELECT count(*) FROM lead_enrich.lead_state s JOIN odoo.crm_lead l ON l.id = s.lead_id WHERE l.name IN ('Done', 'Won', 'Reveal', 'No mail', 'Blank mail')")" 0
	q $DB "UPDATE odoo.crm_lead SET active = true, name = 'T reactivated' WHERE name = 'Archived 4'" >/dev/null
	q $DB "UPDATE odoo.crm_lead SET name = 'Archived 5 renamed' WHERE name = 'Archived 5'" >/dev/null
	if wait_for 30 $DB "$TODO" 0; then
		ok "a lead made active again is enqueued and enriched"
	else
		not_ok "a lead made active again is enqueued and enriched" "$(q $DB "SELECT outcomes, last_error FROM lead_enrich.status")"
	fi
	sleep 1
	check "the archived leads left archived are still not enqueued" \
		"$(q $DB "SELECT count(*) FROM lead_enrich.lead_state s JOIN odoo.crm_lead l ON l.id = s.lead_id WHERE l.name LIKE 'Archived%'")" 0
	check "charged for the 4 active leads only" \
		"$(prov "SELECT provider.spent('$TOKEN')")|$(q $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'enriched'")" "4|4"
else
	not_ok "rules: database set up"
fi

# ---------------------------------------------------------------------------
# f. the shared list full; a transaction running while the worker collects
# ---------------------------------------------------------------------------
DB=le_te_full
if ! want $DB; then :
elif new_db $DB; then
	q $DB "SELECT lead_enrich.worker_stop()" >/dev/null
	# the database's first collect scans from since_id (recovery), which
	# queues every committed lead, overflow included; whether the worker
	# made it before it stopped is a race, so make it here
	q $DB "SELECT lead_enrich.intake_collect()" >/dev/null
	# a transaction that stays open across a collect, until public.go has a row
	q $DB "CREATE TABLE public.go (x int)" >/dev/null
	le_psql -d $DB -qc "BEGIN" -c "INSERT INTO odoo.crm_lead (name, type, active, email_from)
		VALUES ('Open', 'lead', true, 'open@nx-open.lead-enrich-test.example')" \
		-c "DO \$\$ BEGIN FOR i IN 1..1200 LOOP EXIT WHEN EXISTS (SELECT 1 FROM public.go); PERFORM pg_sleep(0.1); END LOOP; END \$\$" \
		-c "COMMIT" >/dev/null &
	bg=$!
	wait_for 30 $DB "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'DO %public.go%' AND backend_xid IS NOT NULL
		AND pid <> pg_backend_pid()" 1 >/dev/null || not_ok "a transaction that inserted a lead stays open"
	# more new leads than the list holds (65536), from several statements
	for s in 0 1 2 3; do
		insert_leads $DB "Bulk" $((2000 + s * 20000)) 20000 >/dev/null
	done
	check "80,001 leads waiting (the list and its overflow range)" \
		"$(q $DB "SELECT pending >= 80000 FROM lead_enrich.status")" t
	c1=$(q $DB "SELECT lead_enrich.intake_collect()")
	c1_open=$(q $DB "SELECT count(*) FROM lead_enrich.lead_state s JOIN odoo.crm_lead l ON l.id = s.lead_id WHERE l.name = 'Open'")
	q $DB "INSERT INTO public.go VALUES (1)" >/dev/null
	wait $bg
	c2=$(q $DB "SELECT lead_enrich.intake_collect()")
	if [[ "$c1" =~ ^[0-9]+$ ]] && [ "$c1" -gt 60000 ] && [ "$c1" -lt 80000 ] && [ "$c1_open" = 0 ]; then
		ok "collect while a transaction is open: the list's committed leads queued ($c1); the open one and the overflow range wait"
	else
		not_ok "collect while a transaction is open" "queued $c1, open lead queued: $c1_open"
	fi
	if [[ "$c1$c2" =~ ^[0-9]+$ ]]; then total=$((c1 + c2)); else total="$c1 / $c2"; fi
	check "after it commits: the rest queued, 80,001 in all" "$total" 80001
	check "the open transaction's lead is pending" \
		"$(q $DB "SELECT status FROM lead_enrich.lead_state s JOIN odoo.crm_lead l ON l.id = s.lead_id WHERE l.name = 'Open'")" pending
	check "every bulk lead has exactly one pending row" \
		"$(q $DB "SELECT count(*) FROM odoo.crm_lead l JOIN lead_enrich.lead_state s ON s.lead_id = l.id AND s.status = 'pending' WHERE l.name LIKE 'Bulk %'")" 80000
	check "nothing left waiting" "$(q $DB "SELECT pending - (SELECT count(*) FROM lead_enrich.lead_state) FROM lead_enrich.status")" 0
	q $DB "DELETE FROM lead_enrich.lead_state; DELETE FROM odoo.crm_lead" >/dev/null
else
	not_ok "full: database set up"
fi

# ---------------------------------------------------------------------------
# g. the overflow range and the scan, under statistics of done leads
# ---------------------------------------------------------------------------
# crm_lead's rows read (sequential and by index) while SQL runs in one
# session; the forced flush reports them before the statement returns
rows_read() {
	local stat="SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables
		WHERE relid = 'odoo.crm_lead'::regclass"
	local r0 r1
	r0=$(q "$1" "$stat")
	le_psql -d "$1" -qtA -c "SELECT pg_stat_force_next_flush()" -c "$2" >/dev/null
	r1=$(q "$1" "$stat")
	echo $((r1 - r0))
}
DB=le_te_plan
if ! want $DB; then :
elif new_db $DB; then
	q $DB "SELECT lead_enrich.worker_stop()" >/dev/null
	q $DB "SELECT lead_enrich.intake_collect()" >/dev/null
	# 100,000 done leads, their ids in no order on the heap (as after
	# months of updates), analysed: the filter looks nearly never true
	le_psql -d $DB -qc "INSERT INTO odoo.crm_lead (id, name, type, active, probability, email_from, iap_enrich_done)
		SELECT i, 'Done ' || i, 'lead', true, 10, 'c' || i || '@nx-done.lead-enrich-test.example', true
		FROM generate_series(1, 100000) i ORDER BY random()" \
		-c "SELECT setval(pg_get_serial_sequence('odoo.crm_lead', 'id'), 100000)" \
		-c "SELECT lead_enrich.intake_collect()" -c "VACUUM ANALYZE odoo.crm_lead" >/dev/null
	# then 125,000 new leads in one INSERT: 65,536 in the list, the rest its range
	insert_leads $DB "Bulk" 2000 125000 >/dev/null
	n=$(rows_read $DB "SELECT lead_enrich.intake_collect()")
	check "125,000 leads queued" "$(q $DB "SELECT count(*) FROM lead_enrich.lead_state")" 125000
	# in chunks of 10,000 by id: each lead read once (about 272,000 rows
	# when each chunk read the rest of the range)
	check_true "the list and its overflow range read each lead once ($n rows of crm_lead for 125,000 leads)" \
		"$(q $DB "SELECT $n BETWEEN 125000 AND 131250")"
	# a collect whose transaction aborts: the next one scans every lead
	# above since_id (100,000 done, 125,000 already queued)
	le_psql -d $DB -qc "BEGIN" -c "SELECT lead_enrich.intake_collect()" -c "ROLLBACK" >/dev/null
	logstart=$(($(wc -l <"$LE_RUNDIR/postgres.log") + 1))
	n=$(rows_read $DB "SELECT lead_enrich.intake_collect()")
	check "the scan ran and queued nothing more (server log)" \
		"$(tail -n +"$logstart" "$LE_RUNDIR/postgres.log" | grep -c "scanned odoo.crm_lead for new leads the shared list may have lost: 0 queued")" 1
	check_true "the scan read each lead once ($n rows of crm_lead for 225,000 leads)" \
		"$(q $DB "SELECT $n BETWEEN 225000 AND 236250")"
	q $DB "DELETE FROM lead_enrich.lead_state; DELETE FROM odoo.crm_lead" >/dev/null
else
	not_ok "plan: database set up"
fi

finish
