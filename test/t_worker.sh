#!/usr/bin/env bash
# Automatic enrichment end to end: the insert trigger and the background
# worker against the reference provider.  Each scenario has its own
# database and account token; the worker's databases talk to a private
# provider instance (same ledger database, its own port) that this script
# stops and starts without disturbing anything else.
#
#   1. leads inserted in auto mode are enriched without any call
#   2. the provider stops in the middle of a run, then comes back: every
#      lead ends enriched, none charged twice
#   3. the worker killed with SIGKILL (crash recovery) comes back and finishes
#   4. credits run out: pause, leads untouched; credits added: resume
#   5. a manual enrich_leads racing the worker: one charge per company
#   6. a lead inserted while a backlog is worked off does not wait behind it,
#      also when a round holds one batch
#   7. a round's answers are written together; when that fails, batch by
#      batch: the one batch the table refuses holds back no other
#   8. a round's leads are claimed together; when that fails, batch by
#      batch, then lead by lead: the one lead the table refuses holds back
#      no other
#   9. one INSERT of more leads than the shared list holds: the worker
#      takes them into the queue without its memory growing with their
#      number
#  10. two workers on one database: both at work at once, every lead
#      enriched once, no batch sent twice, charged once per company; one
#      of them terminated in the middle of a run: the other sends its
#      batches again
#  11. one enrich_leads call over 20,000 leads: the calling session's
#      memory does not grow with their number
#  12. a claim takes new leads into the queue 2,000 at a time, the list's
#      newest first: after one INSERT of 70,000, the first round is claimed
#      and sent before the rest is queued; the rest, list and overflow
#      range, follows
#
# Prints "ok - ..." / "not ok - ..." and a final "N passed, N failed" line.
source "$(dirname "$0")/lib.sh"

PORT=${LE_WORKER_PROVIDER_PORT:-$((LE_FAULT_PORT + 1))}
ENDPOINT=http://127.0.0.1:$PORT
RUN_ID=$(date +%s)$$
provider_pid=





provider_start() {
	provider_stop
	"$LE_REPO/provider/lead_provider" serve --port "$PORT" --db "$(le_conninfo lead_provider)" \
		--trial-credits 1000 >>"$LE_RUNDIR/provider-worker.log" 2>&1 &
	provider_pid=$!
	le_wait_http "$ENDPOINT/health"
}

provider_stop() {
	if [ -n "$provider_pid" ]; then
		kill "$provider_pid" 2>/dev/null
		wait "$provider_pid" 2>/dev/null
		provider_pid=
	fi
}

cleanup() {
	provider_stop
	le_psql -d postgres -qc "ALTER SYSTEM RESET lead_enrich.retry_delay" -c "ALTER SYSTEM RESET lead_enrich.workers_per_database" \
		-c "SELECT pg_reload_conf()" >/dev/null 2>&1
	for db in "${dbs[@]}"; do
		le_psql -d postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
	done
}
dbs=()
trap cleanup EXIT

# new_db NAME: a database with the Odoo fixture attached in auto mode, its
# own token, the private provider, and the worker running.  Sets $TOKEN.
new_db() {
	local db=$1
	dbs+=("$db")
	TOKEN="t-worker-$db-$RUN_ID"
	le_psql -d postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null || return 1
	le_psql -d postgres -qc "ALTER DATABASE $db SET lead_enrich.endpoint = '$ENDPOINT'" >/dev/null
	{
		echo "CREATE EXTENSION lead_enrich;"
		echo "\\i $LE_REPO/test/fixtures/odoo17_crm.sql"
		echo "SELECT lead_enrich.attach('odoo.crm_lead');"
		echo "INSERT INTO odoo.iap_account (service_name, account_token) VALUES ('reveal', '$TOKEN');"
		echo "CREATE TABLE public.directory (n serial, d text);"
	} | le_psql -d "$db" -q >/dev/null || return 1
	# organisations of the directory, one lead each (no webmail domain)
	prov "COPY (SELECT domain FROM provider.org ORDER BY id LIMIT 1000) TO STDOUT" |
		le_psql -d "$db" -qc "COPY public.directory (d) FROM STDIN"
	q "$db" "CREATE TABLE public.domains AS SELECT row_number() OVER (ORDER BY n) AS n, d
			 FROM public.directory WHERE d NOT IN (SELECT domain FROM lead_enrich.webmail_domain)" >/dev/null
	q "$db" "SELECT lead_enrich.set_mode('auto')" >/dev/null
	# a worker with this database's settings (the endpoint)
	q "$db" "SELECT lead_enrich.worker_stop()" >/dev/null
	[ -n "$(q "$db" "SELECT lead_enrich.worker_start()")" ]
}

# insert_leads DB FROM COUNT: COUNT leads, domains FROM+1 .. FROM+COUNT
insert_leads() {
	le_psql -d "$1" -qc "SET synchronous_commit = on" -c "
		INSERT INTO odoo.crm_lead (name, type, active, probability, email_from)
		SELECT 'Lead ' || n, 'lead', true, 10, 'contact' || n || '@' || d
		FROM public.domains WHERE n > $2 AND n <= $2 + $3 ORDER BY n"
}

# refuse_done DB ID: the table refuses to mark lead ID done (a trigger)
refuse_done() {
	le_psql -d "$1" -q >/dev/null <<-SQL
		CREATE FUNCTION public.refuse_done() RETURNS trigger LANGUAGE plpgsql AS
		\$\$BEGIN RAISE EXCEPTION 'this lead cannot be marked done'; END\$\$;
		CREATE TRIGGER refuse_done BEFORE UPDATE ON odoo.crm_lead FOR EACH ROW
		WHEN (NEW.id = $2 AND NEW.iap_enrich_done) EXECUTE FUNCTION public.refuse_done();
	SQL
}

# provider_back DB SECONDS N LABEL: the provider started again and the
# worker woken, N leads of DB answered "not found" within SECONDS
provider_back() {
	provider_start
	q "$1" "SELECT lead_enrich.wake()" >/dev/null
	if wait_for "$2" "$1" "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'not_found'" "$3"; then
		ok "$4"
	else
		not_ok "$4" "$(q "$1" "SELECT outcomes, last_error, pause_reason FROM lead_enrich.status")"
	fi
}

# want DB: T_WORKER_ONLY="insert race" runs only those scenarios
want() { [ -z "${T_WORKER_ONLY:-}" ] || [[ " $T_WORKER_ONLY " == *" ${1#le_tw_} "* ]]; }

spent() { prov "SELECT provider.spent('$1')"; }

# sample_rss PID FILE: the private memory (RssAnon, kB) of process PID
# every 20 ms into FILE, in the background until PID ends or $sampler is
# killed
sample_rss() {
	: >"$2"
	(while kill -0 "$1" 2>/dev/null; do awk '/RssAnon/ {print $2}' "/proc/$1/status"; sleep 0.02; done) >>"$2" 2>/dev/null &
	sampler=$!
}
enriched() { q "$1" "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'enriched'"; }

le_psql -d postgres -qc "ALTER SYSTEM SET lead_enrich.retry_delay = '1s'" -c "SELECT pg_reload_conf()" >/dev/null
provider_start || { echo "could not start the provider on port $PORT"; echo "0 passed, 1 failed"; exit 1; }

# ---------------------------------------------------------------------------
# 1. inserted leads are enriched by the worker, no call needed
# ---------------------------------------------------------------------------
DB=le_tw_insert
if ! want $DB; then :
elif new_db $DB; then
	ok "auto mode: database set up, worker started"
	start=$SECONDS
	insert_leads $DB 0 120
	q $DB "INSERT INTO odoo.crm_lead (name, type, active, email_from) VALUES
		('Webmail', 'lead', true, 'someone@gmail.com'),
		('Unknown', 'lead', true, 'x@no-such-company-lead-enrich.example'),
		('No mail', 'lead', true, NULL)" >/dev/null
	if wait_for 20 $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'pending'" 0 &&
		wait_for 5 $DB "SELECT count(*) FROM odoo.crm_lead WHERE iap_enrich_done" 122; then
		ok "122 leads enriched (or marked) by the worker in $((SECONDS - start)) s, without any call"
	else
		not_ok "leads enriched by the worker" "$(q $DB "SELECT outcomes, last_error, pause_reason FROM lead_enrich.status")"
	fi
	check "outcomes: 120 enriched, 1 not found, 1 generic domain" \
		"$(q $DB "SELECT outcomes FROM lead_enrich.status")" \
		'{"enriched": 120, "not_found": 1, "generic_domain": 1}'
	# claimed straight from the intake, a lead's row is written once as a
	# member of its batch (or with its outcome), then once with the answer:
	# no pending row read back and updated (122 rows, 121 answered; the
	# worker's counts reach the statistics after its transactions, in turn)
	if msg=$(wait_for 10 $DB "SELECT n_tup_ins || '|' || n_tup_upd FROM pg_stat_user_tables
							  WHERE relid = 'lead_enrich.lead_state'::regclass" "122|121"); then
		ok "lead_state: each lead's row inserted once, updated once with its answer (none for the webmail lead)"
	else
		not_ok "lead_state: each lead's row inserted once, updated once with its answer (none for the webmail lead)" \
			"${msg#\#   } (inserted|updated; 122|243 when each was queued, claimed, then answered)"
	fi
	check "lead columns filled (partner_name, reveal_id)" \
		"$(q $DB "SELECT count(*) FROM odoo.crm_lead WHERE partner_name IS NOT NULL AND reveal_id IS NOT NULL")" 120
	check "charged once per company (120)" "$(spent "$TOKEN")" 120
	check "the chatter: one note by OdooBot per lead enriched or not found (122), written by user_root" \
		"$(q $DB "SELECT count(DISTINCT m.res_id) || '/' || count(*) FROM odoo.mail_message m
				  JOIN odoo.ir_model_data d ON d.module = 'base' AND d.name = 'partner_root' AND d.res_id = m.author_id
				  WHERE m.model = 'crm.lead'")|$(q $DB "SELECT count(*) FROM odoo.crm_lead WHERE write_uid = 3")" "122/122|122"
	check "credits spent in the status view" "$(q $DB "SELECT credits_spent FROM lead_enrich.status")" 120
	check "the worker in pg_stat_activity" \
		"$(q $DB "SELECT backend_type || ' / ' || application_name FROM pg_stat_activity WHERE pid = (SELECT worker_pid FROM lead_enrich.status)")" \
		"lead_enrich worker / lead_enrich worker"
	check "status: worker pid, last run, no error" \
		"$(q $DB "SELECT worker_pid IS NOT NULL, last_run IS NOT NULL, last_error IS NULL, pause_reason IS NULL FROM lead_enrich.status")" "t|t|t|t"
	# a rolled-back insert leaves nothing and wakes nothing
	runs=$(q $DB "SELECT runs FROM lead_enrich.status")
	q $DB "BEGIN; INSERT INTO odoo.crm_lead (name, type, active, email_from) VALUES ('rb', 'lead', true, 'rb@mit.edu'); ROLLBACK;" >/dev/null
	sleep 1.5
	check "a rolled-back INSERT leaves nothing and wakes nothing" \
		"$(q $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'pending'")|$(q $DB "SELECT runs FROM lead_enrich.status")" "0|$runs"
	# a new lead whose row someone else holds locked when the worker claims
	# it: queued, and enriched once the lock is let go
	q $DB "SELECT lead_enrich.worker_stop()" >/dev/null
	insert_leads $DB 130 1
	id=$(q $DB "SELECT max(id) FROM odoo.crm_lead")
	le_psql -d $DB -qc "BEGIN" -c "SELECT id FROM odoo.crm_lead WHERE id = $id FOR UPDATE" \
		-c "SELECT pg_sleep(3)" -c "COMMIT" >/dev/null &
	bg=$!
	sleep 0.5
	q $DB "SELECT lead_enrich.worker_start()" >/dev/null
	if wait_for 5 $DB "SELECT status FROM lead_enrich.lead_state WHERE lead_id = $id" pending; then
		ok "a new lead locked elsewhere when claimed is queued"
	else
		not_ok "a new lead locked elsewhere when claimed is queued" "$(q $DB "SELECT status, batch_id FROM lead_enrich.lead_state WHERE lead_id = $id")"
	fi
	wait $bg
	if wait_for 10 $DB "SELECT status FROM lead_enrich.lead_state WHERE lead_id = $id" enriched; then
		ok "... and enriched once the lock is let go"
	else
		not_ok "... and enriched once the lock is let go" "$(q $DB "SELECT status, attempts, error FROM lead_enrich.lead_state WHERE lead_id = $id")"
	fi
	check "... charged once (121 in all)" "$(spent "$TOKEN")" 121
	# an e-mail set later is enriched too
	id=$(q $DB "SELECT id FROM odoo.crm_lead WHERE name = 'No mail'")
	q $DB "UPDATE odoo.crm_lead SET email_from = 'late@' || (SELECT d FROM public.domains WHERE n = 500) WHERE id = $id" >/dev/null
	if wait_for 10 $DB "SELECT status FROM lead_enrich.lead_state WHERE lead_id = $id" enriched; then
		ok "an e-mail set after the insert is enriched"
	else
		not_ok "an e-mail set after the insert is enriched"
	fi
	# the worker's commits: a claim's waits for its WAL whatever the
	# server's setting (this cluster's is off), a round's answers' does not
	# (a crash that loses it leaves the batch recorded, sent again free).
	# The webmail lead is marked done in its claim, the other lead filled
	# in the answers' transaction; a trigger of the table's owner notes the
	# setting each time.
	le_psql -d $DB -q >/dev/null <<-'SQL'
		CREATE TABLE public.commit_seen (email text, mode text);
		CREATE FUNCTION public.note_commit_mode() RETURNS trigger LANGUAGE plpgsql AS
		$$BEGIN INSERT INTO public.commit_seen VALUES (NEW.email_from, current_setting('synchronous_commit')); RETURN NEW; END$$;
		CREATE TRIGGER note_commit_mode AFTER UPDATE ON odoo.crm_lead FOR EACH ROW
		WHEN (NEW.iap_enrich_done AND NOT coalesce(OLD.iap_enrich_done, false)) EXECUTE FUNCTION public.note_commit_mode();
	SQL
	q $DB "INSERT INTO odoo.crm_lead (name, type, active, email_from) VALUES
		('Webmail 2', 'lead', true, 'someone.else@gmail.com'),
		('Company', 'lead', true, 'c@' || (SELECT d FROM public.domains WHERE n = 501))" >/dev/null
	if msg=$(wait_for 10 $DB "SELECT string_agg(split_part(email, '@', 1) || ' ' || mode, ', ' ORDER BY email)
							  FROM public.commit_seen" "c off, someone.else on"); then
		ok "the worker's commits: the claim's waits for its WAL (on), the answers' does not (off)"
	else
		not_ok "the worker's commits: the claim's waits for its WAL (on), the answers' does not (off)" "${msg#\#   }"
	fi
else
	not_ok "auto mode: database set up, worker started"
fi

# ---------------------------------------------------------------------------
# 2. the provider stops in the middle of a run, then comes back
# ---------------------------------------------------------------------------
DB=le_tw_outage
if ! want $DB; then :
elif new_db $DB; then
	insert_leads $DB 0 250
	sleep 0.15
	provider_stop
	insert_leads $DB 250 100
	# the whole queue pauses; the leads' attempts are not counted
	if wait_for 20 $DB "SELECT pause_reason LIKE 'provider unavailable since %next probe at%' FROM lead_enrich.status" t; then
		ok "provider down: the queue pauses, the provider is probed"
	else
		not_ok "provider down: the queue pauses, the provider is probed"
	fi
	check "provider down: no lead's attempts counted" \
		"$(q $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'pending' AND attempts > 0")" 0
	check "provider down: the failure shows in the status" \
		"$(q $DB "SELECT last_error LIKE 'unreachable%' FROM lead_enrich.status")" t
	check "provider down: no lead marked failed" \
		"$(q $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'error'")" 0
	provider_start
	if wait_for 40 $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'enriched'" 350; then
		ok "provider back: all 350 leads enriched"
	else
		not_ok "provider back: all 350 leads enriched" "$(q $DB "SELECT outcomes, last_error FROM lead_enrich.status")"
	fi
	check "none charged twice: spent = companies found (350)" "$(spent "$TOKEN")" 350
	check "lead_state credits agree with the ledger" "$(q $DB "SELECT sum(credits) FROM lead_enrich.lead_state")" 350
else
	not_ok "outage: database set up"
fi

# ---------------------------------------------------------------------------
# 3. the worker killed with SIGKILL comes back and finishes
# ---------------------------------------------------------------------------
DB=le_tw_kill
if ! want $DB; then :
elif new_db $DB; then
	pid=$(q $DB "SELECT worker_pid FROM lead_enrich.status")
	insert_leads $DB 0 400
	sleep 0.1
	kill -KILL "$pid" 2>/dev/null
	sleep 1
	wait_ready 30
	if wait_for 45 $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'enriched'" 400; then
		ok "after SIGKILL and crash recovery the worker finishes: 400 leads enriched"
	else
		not_ok "after SIGKILL the worker finishes" "$(q $DB "SELECT worker_pid, worker_activity, pending, outcomes, last_error FROM lead_enrich.status")"
	fi
	newpid=$(q $DB "SELECT worker_pid FROM lead_enrich.status")
	if [ -n "$newpid" ] && [ "$newpid" != "$pid" ]; then ok "a new worker runs (pid $pid -> $newpid)"; else not_ok "a new worker runs" "pid $pid -> '$newpid'"; fi
	check "none charged twice after the crash (400)" "$(spent "$TOKEN")" 400
	# the per-database worker alone: worker_stop / worker_start without a restart
	check "worker_stop() stops it" "$(q $DB "SELECT lead_enrich.worker_stop()")|$(q $DB "SELECT worker_pid IS NULL, worker_activity FROM lead_enrich.status")" "t|t|stopped"
	insert_leads $DB 400 10
	sleep 1.5
	check "while stopped, new leads wait" "$(q $DB "SELECT pending FROM lead_enrich.status")" 10
	q $DB "SELECT lead_enrich.worker_start()" >/dev/null
	if wait_for 15 $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'enriched'" 410; then
		ok "worker_start(): the waiting leads are enriched"
	else
		not_ok "worker_start(): the waiting leads are enriched"
	fi
else
	not_ok "kill: database set up"
fi

# ---------------------------------------------------------------------------
# 4. credits run out: pause without marking, resume when credits are added
# ---------------------------------------------------------------------------
DB=le_tw_credit
if ! want $DB; then :
elif new_db $DB; then
	prov "SELECT provider.add_credits('$TOKEN', 60)" >/dev/null
	logstart=$(wc -l <"$LE_RUNDIR/postgres.log")
	insert_leads $DB 0 100
	if wait_for 20 $DB "SELECT pause_reason LIKE 'insufficient credit%' FROM lead_enrich.status" t; then
		ok "credits ran out: the worker pauses, the status says why"
	else
		not_ok "credits ran out: the worker pauses" "$(q $DB "SELECT worker_activity, pause_reason, last_error, outcomes FROM lead_enrich.status")"
	fi
	check "paused: the refused leads stay pending, not marked" \
		"$(q $DB "SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status IN ('insufficient_credit', 'error')) FROM lead_enrich.lead_state")" \
		"$((100 - $(enriched $DB)))|0"
	check "paused: the credits that were there were used" "$(spent "$TOKEN")" "$(enriched $DB)"
	insert_leads $DB 100 5
	sleep 1.5
	check "paused: said once in the log, at WARNING" \
		"$(tail -n +"$logstart" "$LE_RUNDIR/postgres.log" | grep -c "WARNING:  lead enrichment paused in database \"$DB\"")" 1
	check "paused: new leads wait too" "$(q $DB "SELECT worker_activity, pending FROM lead_enrich.status")" "paused|$((105 - $(enriched $DB)))"
	prov "SELECT provider.add_credits('$TOKEN', 100)" >/dev/null
	q $DB "SELECT lead_enrich.wake()" >/dev/null
	if wait_for 20 $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'enriched'" 105; then
		ok "credits added: the worker resumes, all 105 leads enriched"
	else
		not_ok "credits added: the worker resumes" "$(q $DB "SELECT worker_activity, pause_reason, last_error, outcomes FROM lead_enrich.status")"
	fi
	check "resumed: no pause left, charged once per company" \
		"$(q $DB "SELECT pause_reason IS NULL FROM lead_enrich.status")|$(spent "$TOKEN")" "t|105"
else
	not_ok "credits: database set up"
fi

# ---------------------------------------------------------------------------
# 5. a manual enrich_leads racing the worker
# ---------------------------------------------------------------------------
DB=le_tw_race
if ! want $DB; then :
elif new_db $DB; then
	# a: the INSERT wakes the worker while enrich_leads runs on the same leads
	insert_leads $DB 0 200 &
	bg=$!
	sleep 0.05
	for _ in 1 2 3; do
		q $DB "SELECT count(*) FROM lead_enrich.enrich_leads(ARRAY(SELECT id FROM odoo.crm_lead))" >/dev/null
	done
	wait $bg
	# b: enrich_leads holds its leads while the worker wants them
	q $DB "SELECT lead_enrich.worker_stop()" >/dev/null
	insert_leads $DB 200 100
	le_psql -d $DB -qc "BEGIN" \
		-c "SELECT count(*) FROM lead_enrich.enrich_leads(ARRAY(SELECT id FROM odoo.crm_lead WHERE NOT coalesce(iap_enrich_done, false) ORDER BY id LIMIT 60))" \
		-c "SELECT pg_sleep(2)" -c "COMMIT" >/dev/null &
	bg=$!
	sleep 0.5
	q $DB "SELECT lead_enrich.worker_start()" >/dev/null
	wait $bg
	if wait_for 30 $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'enriched'" 300; then
		ok "race: all 300 leads enriched"
	else
		not_ok "race: all 300 leads enriched" "$(q $DB "SELECT outcomes, last_error FROM lead_enrich.status")"
	fi
	check "race: one charge per company (300)" "$(spent "$TOKEN")" 300
	check "race: both enriched some leads" \
		"$(q $DB "SELECT count(DISTINCT source) FROM lead_enrich.lead_state WHERE status = 'enriched'")" 2
	check "race: lead_state credits agree with the ledger" "$(q $DB "SELECT sum(credits) FROM lead_enrich.lead_state")" 300
else
	not_ok "race: database set up"
fi

# ---------------------------------------------------------------------------
# 6. a fresh lead does not wait behind a backlog: with rounds of several
#    batches (the default), and with rounds of one batch
#    (lead_enrich.max_connections = 1), where the newest and the oldest
#    leads take turns
# ---------------------------------------------------------------------------
# fresh_lead DB LABEL N: the scenario in database DB with a backlog of N
# leads, its checks named LABEL
fresh_lead() {
	local DB=$1 label=$2 n=$3 id left
	if ! new_db $DB; then
		not_ok "$label: database set up"
		return
	fi
	# a backlog of N leads of unknown domains (each is sent: the provider
	# answers false), then, once the worker is working it off, one lead of
	# a directory company
	q $DB "SELECT lead_enrich.worker_stop()" >/dev/null
	le_psql -d $DB -qc "SET synchronous_commit = on" -c "
		INSERT INTO odoo.crm_lead (name, type, active, email_from)
		SELECT 'Backlog ' || n, 'lead', true, 'b' || n || '@backlog-' || n || '.example'
		FROM generate_series(1, $n) n"
	q $DB "SELECT lead_enrich.worker_start()" >/dev/null
	wait_for 30 $DB "SELECT count(*) > 0 FROM lead_enrich.lead_state WHERE status <> 'pending'" t >/dev/null
	insert_leads $DB 0 1
	id=$(q $DB "SELECT id FROM odoo.crm_lead WHERE name = 'Lead 1'")
	if wait_for 30 $DB "SELECT status FROM lead_enrich.lead_state WHERE lead_id = $id" enriched; then
		# the backlog's leads written after it (each write's transaction
		# time; a count of what is left when this script looks would depend
		# on how fast the rest goes)
		wait_for 60 $DB "SELECT count(*) FROM odoo.crm_lead WHERE iap_enrich_done" $((n + 1)) >/dev/null
		left=$(q $DB "SELECT count(*) FROM lead_enrich.lead_state s JOIN odoo.crm_lead l ON l.id = s.lead_id
					 WHERE l.name LIKE 'Backlog %'
					 AND s.updated_at > (SELECT updated_at FROM lead_enrich.lead_state WHERE lead_id = $id)")
		if [ "$left" -gt 0 ]; then
			ok "$label: enriched while $left of the $n older leads still waited"
		else
			not_ok "$label: enriched before the backlog was worked off" "it waited behind all $n older leads"
		fi
	else
		not_ok "$label: enriched" "$(q $DB "SELECT outcomes, last_error FROM lead_enrich.status")"
	fi
	if wait_for 60 $DB "SELECT count(*) FROM odoo.crm_lead WHERE iap_enrich_done" $((n + 1)); then
		ok "$label: the backlog is worked off too ($n leads done)"
	else
		not_ok "$label: the backlog is worked off too"
	fi
	q $DB "SELECT lead_enrich.worker_stop()" >/dev/null
}
if want le_tw_fresh; then
	# 20,000: with rounds of several batches the workers go through 8,000
	# in about a second, as long as it takes this script to see the first
	# outcome and insert the fresh lead (a run on a loaded machine found
	# the backlog gone first; the runs before it, 801 and 1,601 left)
	fresh_lead le_tw_fresh "fresh lead" 20000
fi
if want le_tw_fresh1; then
	le_psql -d postgres -qc "ALTER SYSTEM SET lead_enrich.max_connections = 1" -c "SELECT pg_reload_conf()" >/dev/null
	fresh_lead le_tw_fresh1 "fresh lead, rounds of one batch" 8000
	le_psql -d postgres -qc "ALTER SYSTEM RESET lead_enrich.max_connections" -c "SELECT pg_reload_conf()" >/dev/null
fi

# ---------------------------------------------------------------------------
# 7. a round written together; one batch that cannot be written
# ---------------------------------------------------------------------------
DB=le_tw_together
if ! want $DB; then :
elif new_db $DB; then
	# 200 directory leads and one of an unknown domain, in one round (the
	# worker stopped while they are inserted); the table refuses the done
	# flag of that one lead, so its batch cannot be written
	bad_email=x@bad-lead.no-such-company-lead-enrich.example
	q $DB "SELECT lead_enrich.worker_stop()" >/dev/null
	insert_leads $DB 0 200
	q $DB "INSERT INTO odoo.crm_lead (name, type, active, email_from) VALUES ('Bad', 'lead', true, '$bad_email')" >/dev/null
	bad=$(q $DB "SELECT id FROM odoo.crm_lead WHERE name = 'Bad'")
	refuse_done $DB "$bad"
	logstart=$(wc -l <"$LE_RUNDIR/postgres.log")
	q $DB "SELECT lead_enrich.worker_start()" >/dev/null
	# every directory lead is written, or waits in the one batch not
	# written (one batch left: while the round is in flight, every lead
	# is in a batch and none written yet)
	if wait_for 30 $DB "SELECT (SELECT count(*) FROM lead_enrich.batch) = 1
						 AND (SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'enriched')
						 + (SELECT count(*) FROM lead_enrich.batch b, unnest(b.lead_ids) m(id) WHERE m.id <> $bad) = 200" t; then
		ok "together: the round is written, but for the batch the table refuses"
	else
		not_ok "together: the round is written, but for the batch the table refuses" "$(q $DB "SELECT outcomes, last_error, pause_reason FROM lead_enrich.status")"
	fi
	n=$(enriched $DB)
	if [ "$n" -ge 150 ] 2>/dev/null && [ "$n" -lt 200 ]; then
		ok "together: the round's other batches are written ($n of 200 leads enriched)"
	else
		not_ok "together: the round's other batches are written" "$n of 200 leads enriched"
	fi
	check "together: the refused lead's batch stays recorded, to be sent again" \
		"$(q $DB "SELECT s.status, s.batch_id IS NOT NULL, b.id IS NOT NULL FROM lead_enrich.lead_state s
				   LEFT JOIN lead_enrich.batch b ON b.id = s.batch_id WHERE s.lead_id = $bad")" "pending|t|t"
	check "together: the log says the round was written again batch by batch" \
		"$(tail -n +"$logstart" "$LE_RUNDIR/postgres.log" | grep -c "could not write the answers of [0-9]* batches at once; writing them one by one")" 1
	q $DB "DROP TRIGGER refuse_done ON odoo.crm_lead" >/dev/null
	q $DB "SELECT lead_enrich.wake()" >/dev/null
	if wait_for 30 $DB "SELECT outcomes FROM lead_enrich.status" '{"enriched": 200, "not_found": 1}'; then
		ok "together: once the table takes it, every lead is written"
	else
		not_ok "together: once the table takes it, every lead is written" "$(q $DB "SELECT outcomes, last_error, pause_reason FROM lead_enrich.status")"
	fi
	check "together: none charged twice (200), and the ledger agrees with lead_state" \
		"$(spent "$TOKEN")|$(q $DB "SELECT sum(credits) FROM lead_enrich.lead_state")" "200|200"
else
	not_ok "together: database set up"
fi

# ---------------------------------------------------------------------------
# 8. a round claimed together; one lead that cannot be claimed
# ---------------------------------------------------------------------------
DB=le_tw_claim
if ! want $DB; then :
elif new_db $DB; then
	# 200 directory leads and one webmail lead, in one round; the table
	# refuses the webmail lead's done flag, written when it is claimed
	q $DB "SELECT lead_enrich.worker_stop()" >/dev/null
	insert_leads $DB 0 200
	q $DB "INSERT INTO odoo.crm_lead (name, type, active, email_from) VALUES ('Bad', 'lead', true, 'someone@gmail.com')" >/dev/null
	bad=$(q $DB "SELECT id FROM odoo.crm_lead WHERE name = 'Bad'")
	refuse_done $DB "$bad"
	logstart=$(wc -l <"$LE_RUNDIR/postgres.log")
	q $DB "SELECT lead_enrich.worker_start()" >/dev/null
	if wait_for 30 $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'enriched'" 200; then
		ok "claim: the other 200 leads of the round are enriched"
	else
		not_ok "claim: the other 200 leads of the round are enriched" "$(q $DB "SELECT outcomes, last_error FROM lead_enrich.status")"
	fi
	check "claim: the refused lead's failure is recorded (retried, then an error), with the table's error" \
		"$(q $DB "SELECT status IN ('pending', 'error'), attempts > 0, error LIKE '%cannot be marked done%'
				   FROM lead_enrich.lead_state WHERE lead_id = $bad")" "t|t|t"
	log=$(tail -n +"$logstart" "$LE_RUNDIR/postgres.log")
	check "claim: the log says the batch was retried lead by lead, and names the lead" \
		"$(grep -c "could not prepare a batch of leads, retrying them one by one" <<<"$log" | sed 's/^[1-9][0-9]*$/some/')|$(grep -c "could not prepare lead $bad\$" <<<"$log" | sed 's/^[1-9][0-9]*$/some/')" "some|some"
	check "claim: charged once per company (200)" "$(spent "$TOKEN")" 200
else
	not_ok "claim: database set up"
fi

# ---------------------------------------------------------------------------
# 9. one INSERT larger than the shared list: the worker's memory is bounded
# ---------------------------------------------------------------------------
DB=le_tw_intake
if ! want $DB; then :
elif new_db $DB; then
	# a worker that has done some work, then idle: its memory before
	insert_leads $DB 0 5
	wait_for 30 $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'enriched'" 5 >/dev/null
	pid=$(q $DB "SELECT worker_pid FROM lead_enrich.status")
	before=$(awk '/RssAnon/ {print $2}' "/proc/$pid/status")
	# its private memory every 20 ms while it takes 300,000 new leads
	# (webmail: no provider call) from one INSERT: 65,536 through the
	# shared list, the rest as the list's overflow range
	samples=$LE_RUNDIR/t_worker_intake_rss
	sample_rss "$pid" "$samples"
	q $DB "INSERT INTO odoo.crm_lead (name, type, active, email_from)
		   SELECT 'Webmail ' || i, 'lead', true, 'w' || i || '@gmail.com' FROM generate_series(1, 300000) i" >/dev/null
	if wait_for 120 $DB "SELECT count(*) FROM lead_enrich.lead_state" 300005; then
		ok "intake: the 300,000 leads of one INSERT are queued"
	else
		not_ok "intake: the 300,000 leads of one INSERT are queued"
	fi
	kill "$sampler" 2>/dev/null
	wait "$sampler" 2>/dev/null
	peak=$(sort -n "$samples" | tail -1)
	# read in one statement, they took it up by 60 MB and more (about
	# 270 bytes a lead: 81 MB seen); in chunks of 10,000, by about 12 MB
	# (the chunk and the rounds that work the leads off meanwhile)
	check "intake: the worker's private memory grew by less than 30 MB taking them (from ${before} kB to a peak of ${peak} kB)" \
		"$(( (peak - before) < 30720 ))" 1
	q $DB "SELECT lead_enrich.worker_stop()" >/dev/null
else
	not_ok "intake: database set up"
fi

# ---------------------------------------------------------------------------
# 10. two workers on one database
# ---------------------------------------------------------------------------
DB=le_tw_two
WORKERS="SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'lead_enrich worker' AND datname = current_database()"
if ! want $DB; then :
elif new_db $DB; then
	# batches of 10: about a hundred, many rounds of each worker in flight
	# while the other claims
	q $DB "SELECT lead_enrich.worker_stop()" >/dev/null
	q $DB "ALTER DATABASE $DB SET lead_enrich.batch_size = 10" >/dev/null
	le_psql -d postgres -qc "ALTER SYSTEM SET lead_enrich.workers_per_database = 2" -c "SELECT pg_reload_conf()" >/dev/null
	q $DB "SELECT lead_enrich.worker_start()" >/dev/null
	if wait_for 10 $DB "$WORKERS" 2; then
		ok "two: lead_enrich.workers_per_database = 2 starts two workers for the database"
	else
		not_ok "two: two workers for the database"
	fi
	# 5,000 companies of the directory, one lead each, and credits for them
	prov "COPY (SELECT domain FROM provider.org ORDER BY id OFFSET 1000 LIMIT 4000) TO STDOUT" |
		le_psql -d $DB -qc "COPY public.directory (d) FROM STDIN"
	q $DB "INSERT INTO public.domains SELECT 1000 + row_number() OVER (ORDER BY n), d FROM public.directory
		   WHERE n > 1000 AND d NOT IN (SELECT domain FROM lead_enrich.webmail_domain)" >/dev/null
	prov "SELECT provider.add_credits('$TOKEN', 10000)" >/dev/null
	n=$(q $DB "SELECT count(*) FROM public.domains")
	logstart=$(wc -l <"$LE_RUNDIR/postgres.log")
	samples=$LE_RUNDIR/t_worker_two_activity
	(while :; do q $DB "SELECT worker_activity FROM lead_enrich.status"; sleep 0.05; done) >"$samples" 2>/dev/null &
	sampler=$!
	insert_leads $DB 0 100000 >/dev/null
	if wait_for 120 $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'enriched'" "$n"; then
		ok "two: the $n leads are enriched"
	else
		not_ok "two: the $n leads are enriched" "$(q $DB "SELECT outcomes, last_error, pause_reason FROM lead_enrich.status")"
	fi
	kill "$sampler" 2>/dev/null
	wait "$sampler" 2>/dev/null
	# "1: claiming pending leads; 2: calling the provider: 8 requests"
	check "two: both workers at work at the same moment (the status view's activity, sampled every 50 ms)" \
		"$(grep -v idle "$samples" | grep -c '^1: .*; 2: ' | sed 's/^[1-9][0-9]*$/some/')" some
	# each worker's activity whole ("2: calling the provider: 8 reque" was cut to 63 bytes)
	acts='idle|paused|starting|claiming pending leads|calling the provider: [0-9]+ requests|writing enrichment results|looking for retries|recording a failed send|checking the balance|probing the provider'
	check "two: the status view shows each worker's activity whole" \
		"$(grep -c '^1: ' "$samples" | sed 's/^[1-9][0-9]*$/some/')|$(grep '^1: ' "$samples" | grep -cvE "^1: ($acts); 2: ($acts)\$")" "some|0"
	check "two: charged once per company ($n), and the ledger agrees with lead_state" \
		"$(spent "$TOKEN")|$(q $DB "SELECT sum(credits) FROM lead_enrich.lead_state")" "$n|$n"
	check "two: one chatter note per lead ($n)" \
		"$(q $DB "SELECT count(DISTINCT res_id) || '/' || count(*) FROM odoo.mail_message WHERE model = 'crm.lead'")" "$n/$n"
	check "two: no batch sent twice (no worker sent one again), none left" \
		"$(tail -n +"$logstart" "$LE_RUNDIR/postgres.log" | grep -c "sending again .* batches of database \"$DB\"")|$(q $DB "SELECT count(*) FROM lead_enrich.batch")" "0|0"
	# a worker that leaves with batches in flight: the other sends them
	# again (answered from the replay store), nothing charged or written twice
	logstart=$(wc -l <"$LE_RUNDIR/postgres.log")
	insert_leads $DB 0 100000 >/dev/null
	victim=
	for _ in $(seq 200); do
		victim=$(q $DB "SELECT pid FROM pg_stat_activity WHERE backend_type = 'lead_enrich worker'
						AND datname = current_database() AND query LIKE 'calling the provider%' LIMIT 1")
		[ -n "$victim" ] && break
		sleep 0.02
	done
	q $DB "SELECT pg_terminate_backend(${victim:-0})" >/dev/null
	if wait_for 120 $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'enriched'" $((2 * n)); then
		ok "two: a worker terminated in the middle of a run (pid ${victim:-none}), every lead is enriched"
	else
		not_ok "two: a worker terminated in the middle of a run, every lead is enriched" "$(q $DB "SELECT outcomes, last_error, pause_reason FROM lead_enrich.status")"
	fi
	check "two: the other worker sent the leaving one's batches again" \
		"$(tail -n +"$logstart" "$LE_RUNDIR/postgres.log" | grep -c "sending again .* batches of database \"$DB\"" | sed 's/^[1-9][0-9]*$/some/')" some
	check "two: still charged once per company per request ($((2 * n))), the ledger agrees with lead_state, one note per lead" \
		"$(spent "$TOKEN")|$(q $DB "SELECT sum(credits) FROM lead_enrich.lead_state")|$(q $DB "SELECT count(DISTINCT res_id) || '/' || count(*) FROM odoo.mail_message WHERE model = 'crm.lead'")" \
		"$((2 * n))|$((2 * n))|$((2 * n))/$((2 * n))"
	le_psql -d postgres -qc "ALTER SYSTEM RESET lead_enrich.workers_per_database" -c "SELECT pg_reload_conf()" >/dev/null
	if wait_for 10 $DB "$WORKERS" 1; then
		ok "two: back to one worker when the setting is reset (the second leaves on reload)"
	else
		not_ok "two: back to one worker when the setting is reset"
	fi
	q $DB "SELECT lead_enrich.worker_stop()" >/dev/null
else
	not_ok "two: database set up"
fi

# ---------------------------------------------------------------------------
# 11. the bulk call's memory: every batch's rows, answers and notes stayed
# in SPI's procedure context until the call ended (about 14 kB a lead)
# ---------------------------------------------------------------------------
DB=le_tw_bulk
if ! want $DB; then :
elif new_db $DB; then
	q $DB "SELECT lead_enrich.worker_stop()" >/dev/null
	q $DB "SELECT lead_enrich.set_mode('manual')" >/dev/null
	q $DB "SELECT lead_enrich.iap_balance()" >/dev/null
	prov "SELECT provider.add_credits('$TOKEN', 30000)" >/dev/null
	# 20,000 leads, the directory's companies over and over: 50 companies
	# in each batch, every one found
	q $DB "INSERT INTO odoo.crm_lead (name, type, active, probability, email_from)
		   SELECT 'Bulk ' || i, 'lead', true, 10, 'bulk' || i || '@' || d.d
		   FROM generate_series(1, 20000) i
		   JOIN public.domains d ON d.n = 1 + i % (SELECT count(*) FROM public.domains)" >/dev/null
	out=$LE_RUNDIR/t_worker_bulk_out
	q $DB "SELECT status, count(*) FROM lead_enrich.enrich_leads(ARRAY(SELECT id FROM odoo.crm_lead)) GROUP BY 1" >"$out" &
	bg=$!
	pid=
	for _ in $(seq 200); do
		pid=$(q $DB "SELECT pid FROM pg_stat_activity WHERE query LIKE '%enrich_leads(ARRAY(SELECT id FROM odoo.crm_lead))%'
					 AND pid <> pg_backend_pid()")
		[ -n "$pid" ] && break
		sleep 0.02
	done
	# the session's private memory every 20 ms while the call runs
	samples=$LE_RUNDIR/t_worker_bulk_rss
	: >"$samples"
	sampler=
	[ -n "$pid" ] && sample_rss "$pid" "$samples"
	wait "$bg"
	if [ -n "$sampler" ]; then
		kill "$sampler" 2>/dev/null
		wait "$sampler" 2>/dev/null
	fi
	check "bulk: the 20,000 leads of one enrich_leads call are enriched" "$(cat "$out")" "enriched|20000"
	low=$(sort -n "$samples" | head -1)
	peak=$(sort -n "$samples" | tail -1)
	# 280 MB and more before (14 kB a lead); at an SPI level per batch,
	# the two batches on their way and the returned rows
	check "bulk: the session's private memory grew by less than 50 MB over the call ($(wc -l <"$samples") samples, ${low:-?} to ${peak:-?} kB)" \
		"$([ -n "$peak" ] && echo $(((peak - low) < 51200)))" 1
else
	not_ok "bulk: database set up"
fi

# ---------------------------------------------------------------------------
# 12. a claim collects new leads a chunk at a time
# ---------------------------------------------------------------------------
DB=le_tw_chunks
if ! want $DB; then :
elif new_db $DB; then
	# 70,000 leads of domains the directory does not know (the provider
	# answers "not found", free) in one INSERT: 65,536 through the shared
	# list, the rest as its overflow range; the provider down
	provider_stop
	q $DB "INSERT INTO odoo.crm_lead (name, type, active, probability, email_from)
		   SELECT 'Chunk ' || i, 'lead', true, 10, 'c' || i || '@u' || i || '-chunks.com'
		   FROM generate_series(1, 70000) i" >/dev/null
	if wait_for 30 $DB "SELECT pause_reason LIKE 'provider unavailable%' FROM lead_enrich.status" t; then
		ok "chunks: the provider down, the queue pauses"
	else
		not_ok "chunks: the provider down, the queue pauses"
	fi
	# the claims made before the first round's failure (up to three: two
	# rounds in flight and the next) took a round's worth each (2,000 each
	# before they claimed new leads directly), the list's newest; one claim
	# queued all 70,000 before that (the other worker, the provider waiting)
	queued=$(q $DB "SELECT count(*) FROM lead_enrich.lead_state")
	left=$(q $DB "SELECT lead_enrich.intake_pending()")
	check "chunks: at most 1,200 leads taken before the pause, three rounds of 400 ($queued), the rest in shared memory ($left)" \
		"$((queued <= 1200 && queued + left == 70000))" 1
	# (the list holds 65,536 entries, fewer if other databases left some)
	check "chunks: those queued are the list's newest: one run of leads, not from its start, not beyond the 65,536th" \
		"$(q $DB "SELECT min(n) > 1 AND max(n) <= 65536 AND max(n) - min(n) + 1 = count(*)
				  FROM (SELECT substr(l.name, 7)::int AS n FROM lead_enrich.lead_state s
						JOIN odoo.crm_lead l ON l.id = s.lead_id) x")" t
	provider_back $DB 120 70000 "chunks: provider back, the 70,000 leads answered"
	check "chunks: none left in shared memory, none queued twice" \
		"$(q $DB "SELECT lead_enrich.intake_pending(), count(*), count(DISTINCT lead_id) FROM lead_enrich.lead_state")" "0|70000|70000"
	check "chunks: nothing charged" "$(spent "$TOKEN")" 0
	# queued leads alone (a backlog of pending rows, no new lead in shared
	# memory) fill whole rounds: the same three claims before the pause
	# take 1,200 of them, not half of that
	q $DB "SELECT lead_enrich.worker_stop()" >/dev/null
	q $DB "INSERT INTO odoo.crm_lead (name, type, active, probability, email_from)
		   SELECT 'Queued ' || i, 'lead', true, 10, 'q' || i || '@u' || i || '-chunks.com'
		   FROM generate_series(1, 3000) i" >/dev/null
	q $DB "SELECT lead_enrich.intake_collect()" >/dev/null
	provider_stop
	q $DB "SELECT lead_enrich.worker_start()" >/dev/null
	if wait_for 30 $DB "SELECT pause_reason LIKE 'provider unavailable%' FROM lead_enrich.status" t; then
		check "chunks: from queued leads alone, three whole rounds taken before the pause" \
			"$(q $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE batch_id IS NOT NULL")" 1200
	else
		not_ok "chunks: from queued leads alone, three whole rounds taken before the pause"
	fi
	provider_back $DB 60 73000 "chunks: provider back, the 3,000 queued leads answered"
	q $DB "SELECT lead_enrich.worker_stop()" >/dev/null
else
	not_ok "chunks: database set up"
fi

finish
