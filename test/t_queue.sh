#!/usr/bin/env bash
# The queue of automatic enrichment under failure (issue 11): no lead lost,
# nothing charged twice, one bad lead does not sink its batch.  The worker
# talks to the real reference provider through test/fault_proxy.py, which
# refuses, hangs, delays, answers 5xx, garbage, truncated or huge bodies,
# unknown JSON-RPC errors, or forwards a request (the provider commits and
# charges) and then never answers.  Each scenario has its own database and
# its own funded account token; the provider's ledger (database
# lead_provider, schema provider) is the referee.
#
#   a. outage: ~2,000 leads (directory companies, repeats, webmail, unknown
#      domains) and T_QUEUE_OUTAGE_SECONDS (default 150) of every fault in
#      turn in the middle of the run; then the provider is back: every lead
#      ends enriched / not_found / generic_domain, the ledger equals the
#      credits recorded, the queue said "paused: provider unavailable"
#      meanwhile, and the outage used up no lead's attempts
#   b. re-chunking: a first round of 8 x 50 leads is committed by the
#      provider but never answered; one lead is deleted, one won, one marked
#      done, three get a new e-mail (webmail, invalid, empty); the retry
#      charges no company twice, and the three end as their new address says
#   c. crash: SIGKILL of the worker, then an immediate restart of the
#      cluster, both with requests in flight: no lead lost, none charged twice
#   d. per-lead isolation: a CHECK constraint rejects one lead of a batch of
#      50: the other 49 are enriched, the rejected one keeps its paid company
#      data and the reason
#   e. mining: generate_leads times out after the provider committed; the
#      same call again gets the same companies, free
#   f. archived leads (active = false) are not enriched automatically; a lead
#      made active again is
#   g. a slow provider and more batches than connections: no more than
#      lead_enrich.max_connections requests reach it at once, and every lead
#      is enriched, charged once
#
# Needs the cluster and the provider of scripts/test.sh (the provider on
# $LE_PROVIDER_PORT).  The proxy listens on LE_QUEUE_PROXY_PORT (default
# LE_FAULT_PORT + 1) and is steered on LE_QUEUE_CONTROL_PORT (default the
# next port).  T_QUEUE_ONLY="outage mining" runs only those scenarios.
# The cluster-wide settings it changes (ALTER SYSTEM) are reset at the end.
#
# Prints "ok - ..." / "not ok - ..." and a final "N passed, N failed" line;
# exits non-zero on a failure.
source "$(dirname "$0")/lib.sh"

PROXY_PORT=${LE_QUEUE_PROXY_PORT:-$((LE_FAULT_PORT + 1))}
CONTROL_PORT=${LE_QUEUE_CONTROL_PORT:-$((PROXY_PORT + 1))}
PROXY=http://127.0.0.1:$PROXY_PORT
OUTAGE_SECONDS=${T_QUEUE_OUTAGE_SECONDS:-150}
# the worker's lead_enrich.timeout in every scenario but g, which puts it back
TIMEOUT=2000ms
RECOVER_SECONDS=${T_QUEUE_RECOVER_SECONDS:-60}
RUN_ID=$(date +%s)$$
FINAL="'enriched', 'not_found', 'generic_domain'"
SETTINGS="lead_enrich.endpoint lead_enrich.timeout lead_enrich.connect_timeout lead_enrich.retry_delay lead_enrich.max_connections lead_enrich.batch_size"
proxy_pid=
dbs=()





# ctl PATH: a request to the proxy's control port; prints the JSON answer
ctl() {
	python3 - "http://127.0.0.1:$CONTROL_PORT/$1" <<'PY'
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=20).read().decode())
PY
}
# fault MODE[?ms=N&only=enrich|mining]: switch the proxy
fault() { ctl "mode/$1" >/dev/null || echo "#   could not switch the proxy to $1"; }
# proxy_count MODE: requests the proxy handled in that mode so far
proxy_count() {
	ctl stats | python3 -c "import json, sys; s = json.load(sys.stdin)
print(sum(n for k, n in s['counts'].items() if k.split(' ')[0] == sys.argv[1]))" "$1"
}

# proxy_stat KEY: one of the proxy's counters: inflight (requests it holds
# right now, sent to it and not yet answered), max_inflight (the most it held
# at once since its last mode change)
proxy_stat() { ctl stats | python3 -c "import json, sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }

proxy_start() {
	nohup python3 "$LE_REPO/test/fault_proxy.py" --listen "$PROXY_PORT" --control "$CONTROL_PORT" \
		--upstream "http://127.0.0.1:$LE_PROVIDER_PORT" --lifetime $((OUTAGE_SECONDS + 900)) \
		--log "$LE_RUNDIR/fault-proxy.log" >>"$LE_RUNDIR/fault-proxy.out" 2>&1 &
	proxy_pid=$!
	le_wait_http "http://127.0.0.1:$CONTROL_PORT/health"
}

cleanup() {
	local s db
	if [ -n "$proxy_pid" ]; then
		kill "$proxy_pid" 2>/dev/null
		wait "$proxy_pid" 2>/dev/null
	fi
	wait_ready 30
	for s in $SETTINGS; do
		le_psql -d postgres -qc "ALTER SYSTEM RESET $s" >/dev/null 2>&1
	done
	le_psql -d postgres -qc "SELECT pg_reload_conf()" >/dev/null 2>&1
	for db in "${dbs[@]}"; do
		le_psql -d postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
	done
}
trap cleanup EXIT

# want NAME: T_QUEUE_ONLY="outage crash" runs only those scenarios
want() { [ -z "${T_QUEUE_ONLY:-}" ] || [[ " $T_QUEUE_ONLY " == *" $1 "* ]]; }

# new_db NAME MODE: a database with the Odoo fixture attached, its own
# funded token (in Odoo's iap_account), the proxy as its endpoint, the table
# of directory domains (public.domains: n, d, name; none is a webmail
# domain or under one); in MODE 'auto' the worker is (re)started with these
# settings.  Sets $TOKEN.
new_db() {
	local db=$1
	dbs+=("$db")
	TOKEN="t-queue-$db-$RUN_ID"
	le_psql -d postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
	le_psql -d postgres -qc "CREATE DATABASE $db" >/dev/null || return 1
	le_psql -d postgres -qc "ALTER DATABASE $db SET lead_enrich.endpoint = '$PROXY'" >/dev/null
	{
		echo "CREATE EXTENSION lead_enrich;"
		echo "\\i $LE_REPO/test/fixtures/odoo17_crm.sql"
		echo "SELECT lead_enrich.attach('odoo.crm_lead');"
		echo "INSERT INTO odoo.iap_account (service_name, account_token) VALUES ('reveal', '$TOKEN');"
		echo "CREATE TABLE public.directory (n serial, d text, name text);"
	} | le_psql -d "$db" -q >/dev/null || return 1
	prov "SELECT provider.add_credits('$TOKEN', 1000000)" >/dev/null || return 1
	# organisations of the directory by their main domain (one company each)
	prov "COPY (SELECT o.domain, o.name FROM provider.org o
				JOIN provider.org_domain od ON od.domain = o.domain AND od.org_id = o.id
				ORDER BY o.id LIMIT 2200) TO STDOUT" |
		le_psql -d "$db" -qc "COPY public.directory (d, name) FROM STDIN" || return 1
	q "$db" "CREATE TABLE public.domains AS SELECT row_number() OVER (ORDER BY n) AS n, d, name
			 FROM public.directory
			 WHERE NOT EXISTS (SELECT 1 FROM generate_series(1, cardinality(string_to_array(d, '.'))) i
							   JOIN lead_enrich.webmail_domain w
								 ON w.domain = array_to_string((string_to_array(d, '.'))[i:], '.'))" >/dev/null
	if [ "$2" = auto ]; then
		q "$db" "SELECT lead_enrich.set_mode('auto')" >/dev/null
		q "$db" "SELECT lead_enrich.worker_stop()" >/dev/null
		[ -n "$(q "$db" "SELECT lead_enrich.worker_start()")" ] || return 1
	fi
}

# insert_leads DB FROM COUNT: COUNT leads of distinct companies, domains FROM+1 .. FROM+COUNT
insert_leads() {
	le_psql -d "$1" -qc "SET synchronous_commit = on" -c "
		INSERT INTO odoo.crm_lead (name, type, active, probability, email_from)
		SELECT 'Lead ' || n, 'lead', true, 10, 'contact' || n || '@' || d
		FROM public.domains WHERE n > $2 AND n <= $2 + $3 ORDER BY n"
}

spent() { prov "SELECT provider.spent('$1')"; }
# wait_spent SECONDS TOKEN N: poll until the ledger shows N credits spent
wait_spent() {
	local deadline=$((SECONDS + $1))
	until [ "$(spent "$2")" = "$3" ]; do
		[ $SECONDS -ge $deadline ] && return 1
		sleep 0.25
	done
}
# twice TOKEN: domains the enrichment ledger charged more than once
twice() {
	prov "SELECT count(*) FROM (SELECT d FROM provider.ledger l, jsonb_array_elements_text(l.detail -> 'found') d
		  WHERE l.token = '$1' AND l.reason = 'enrich' GROUP BY d HAVING count(*) > 1) x"
}
status_line() { q "$1" "SELECT worker_activity, pending, outcomes, last_error, pause_reason FROM lead_enrich.status"; }

if ! le_wait_http "http://127.0.0.1:$LE_PROVIDER_PORT/health"; then
	echo "not ok - the provider answers on port $LE_PROVIDER_PORT (run scripts/test.sh)"
	echo "0 passed, 1 failed"
	exit 1
fi
if ! proxy_start; then
	echo "not ok - the fault proxy listens on ports $PROXY_PORT / $CONTROL_PORT"
	echo "0 passed, 1 failed"
	exit 1
fi
le_psql -d postgres -q -c "ALTER SYSTEM SET lead_enrich.endpoint = '$PROXY'" \
	-c "ALTER SYSTEM SET lead_enrich.timeout = '$TIMEOUT'" \
	-c "ALTER SYSTEM SET lead_enrich.connect_timeout = '1000ms'" \
	-c "ALTER SYSTEM SET lead_enrich.retry_delay = '1s'" \
	-c "ALTER SYSTEM SET lead_enrich.max_connections = 8" \
	-c "ALTER SYSTEM SET lead_enrich.batch_size = 50" \
	-c "SELECT pg_reload_conf()" >/dev/null

# ---------------------------------------------------------------------------
# a. an outage of every kind in the middle of a run of ~2,000 leads
# ---------------------------------------------------------------------------
DB=le_tq_outage
if ! want outage; then :
elif new_db $DB auto; then
	fault "delay?ms=1500"
	# the bench's mix, shuffled: 1,200 companies, 400 repeats of them, 200
	# webmail addresses, 200 unknown domains
	start=$SECONDS
	le_psql -d $DB -qc "SET synchronous_commit = on" -c "
		INSERT INTO odoo.crm_lead (name, type, active, probability, email_from)
		SELECT 'Lead ' || k, 'lead', true, 10, e FROM (
			SELECT n AS k, 'contact' || n || '@' || d AS e FROM public.domains WHERE n <= 1200
			UNION ALL
			SELECT 1200 + n, 'other' || n || '@' || d FROM public.domains WHERE n <= 400
			UNION ALL
			SELECT 1600 + g, 'someone' || g || '@' || w.domain
			FROM generate_series(1, 200) g
			JOIN (SELECT domain, row_number() OVER (ORDER BY domain) - 1 AS i FROM lead_enrich.webmail_domain
				  WHERE domain IN ('gmail.com', 'yahoo.com', 'hotmail.com', 'outlook.com', 'aol.com')) w
			  ON w.i = g % 5
			UNION ALL
			SELECT 1800 + g, 'x@unknown' || g || '.no-such-company-lead-enrich.example'
			FROM generate_series(1, 200) g) v
		ORDER BY md5(k::text)"
	total=$(q $DB "SELECT count(*) FROM odoo.crm_lead")
	# the outage starts once the first answers are in
	wait_for 20 $DB "SELECT count(*) > 0 FROM lead_enrich.lead_state WHERE status = 'enriched'" t >/dev/null
	left=$(q $DB "SELECT count(*) FROM odoo.crm_lead l WHERE NOT EXISTS
				 (SELECT 1 FROM lead_enrich.lead_state s WHERE s.lead_id = l.id AND s.status IN ($FINAL))")
	if [ "$total" = 2000 ] && [ "$left" -gt 500 ] 2>/dev/null; then
		ok "outage: it starts in the middle of a run ($((2000 - left)) of 2000 leads done)"
	else
		not_ok "outage: it starts in the middle of a run" "$total leads, $left not done"
	fi
	# T_QUEUE_OUTAGE_SECONDS=0: no outage at all, a control run of the rest
	modes=(refuse hang http503 nonjson truncated huge rpcerror http500 "delay?ms=2500")
	[ "$OUTAGE_SECONDS" -gt 0 ] || modes=()
	step=$(((OUTAGE_SECONDS + 8) / 9))
	pause_seen=
	max_attempts=0
	max_errors=0
	for m in "${modes[@]}"; do
		fault "$m"
		until_t=$((SECONDS + step))
		while [ $SECONDS -lt $until_t ]; do
			IFS='|' read -r since reason att err < <(q $DB "SELECT s.paused_since IS NOT NULL, s.pause_reason,
				(SELECT coalesce(max(attempts), 0) FROM lead_enrich.lead_state),
				(SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'error')
				FROM lead_enrich.status s")
			if [ "$since" = t ] && printf '%s' "$reason" | grep -qiE 'unavailable|unreachable|provider'; then
				[ -z "$pause_seen" ] && pause_seen="$m: $reason"
			fi
			[ "${att:-0}" -gt "$max_attempts" ] 2>/dev/null && max_attempts=$att
			[ "${err:-0}" -gt "$max_errors" ] 2>/dev/null && max_errors=$err
			sleep 1
		done
	done
	faults=$(ctl stats | python3 -c "import json, sys; s = json.load(sys.stdin)
print(' '.join('%s=%d' % (m, sum(n for k, n in s['counts'].items() if k.split(' ')[0] == m))
               for m in ['refuse', 'hang', 'http503', 'nonjson', 'truncated', 'huge', 'rpcerror', 'http500', 'delay']))")
	echo "# outage of $((step * ${#modes[@]})) s; requests the proxy failed: $faults"
	fault pass
	q $DB "SELECT lead_enrich.wake()" >/dev/null
	if wait_for "$RECOVER_SECONDS" $DB "SELECT count(*) FILTER (WHERE status IN ($FINAL)) FROM lead_enrich.lead_state" 2000; then
		ok "outage: provider back, every lead enriched, not_found or generic_domain ($((SECONDS - start)) s in all)"
	else
		not_ok "outage: provider back, every lead enriched, not_found or generic_domain" "$(status_line $DB)"
	fi
	check "outage: outcomes 1600 enriched, 200 not found, 200 generic domain" \
		"$(q $DB "SELECT outcomes FROM lead_enrich.status")" \
		'{"enriched": 1600, "not_found": 200, "generic_domain": 200}'
	check "outage: 1600 CRM rows filled" \
		"$(q $DB "SELECT count(*) FROM odoo.crm_lead WHERE partner_name IS NOT NULL AND reveal_id IS NOT NULL")" 1600
	s=$(spent "$TOKEN")
	check "outage: the provider's ledger equals the credits recorded" \
		"$s" "$(q $DB "SELECT sum(credits) FROM lead_enrich.lead_state")"
	if [ ${#modes[@]} = 0 ]; then
		echo "# no outage (T_QUEUE_OUTAGE_SECONDS=0): pause not checked"
	elif [ -n "$pause_seen" ]; then
		ok "outage: the status said paused, provider unavailable ($pause_seen)"
	else
		not_ok "outage: the status said paused, provider unavailable" \
			"never seen paused_since with such a pause_reason; now: $(q $DB "SELECT paused_since, pause_reason, last_error FROM lead_enrich.status")"
	fi
	check "outage: no lead marked error during the outage" "$max_errors" 0
	check_true "outage: no lead's attempts used up by the outage (max attempts <= 1)" \
		"$([ "$max_attempts" -le 1 ] && echo t)" "max(attempts) reached $max_attempts"
	check "outage: resumed, no pause left" "$(q $DB "SELECT paused_since IS NULL, pause_reason IS NULL FROM lead_enrich.status")" "t|t"
else
	not_ok "outage: database set up"
fi

# ---------------------------------------------------------------------------
# b. a committed, unanswered round; leads change before the retry
# ---------------------------------------------------------------------------
DB=le_tq_rechunk
if ! want rechunk; then :
elif new_db $DB auto; then
	fault "commit_then_drop?only=enrich"
	insert_leads $DB 0 400
	if wait_spent 30 "$TOKEN" 400; then
		ok "re-chunking: the provider committed the first round of 400 leads, the worker saw no answer"
	else
		not_ok "re-chunking: the provider committed the first round of 400 leads" "spent $(spent "$TOKEN"); $(status_line $DB)"
	fi
	# before the retry: the first lead deleted (every later batch shifts),
	# one lead won, one marked done by hand
	q $DB "DELETE FROM odoo.crm_lead WHERE id = (SELECT min(id) FROM odoo.crm_lead)" >/dev/null
	won=$(q $DB "UPDATE odoo.crm_lead SET probability = 100 WHERE id = (SELECT min(id) + 100 FROM odoo.crm_lead) RETURNING id")
	done_id=$(q $DB "UPDATE odoo.crm_lead SET iap_enrich_done = true WHERE id = (SELECT min(id) + 200 FROM odoo.crm_lead) RETURNING id")
	# and three leads' e-mails changed: to a webmail address, to an invalid one, emptied
	webmail_id=$(q $DB "UPDATE odoo.crm_lead SET email_from = 'someone@gmail.com' WHERE id = (SELECT min(id) + 300 FROM odoo.crm_lead) RETURNING id")
	invalid_id=$(q $DB "UPDATE odoo.crm_lead SET email_from = 'no address here' WHERE id = (SELECT min(id) + 350 FROM odoo.crm_lead) RETURNING id")
	empty_id=$(q $DB "UPDATE odoo.crm_lead SET email_from = '' WHERE id = (SELECT min(id) + 390 FROM odoo.crm_lead) RETURNING id")
	fault pass
	q $DB "SELECT lead_enrich.wake()" >/dev/null
	if wait_for 60 $DB "SELECT count(*) FROM odoo.crm_lead l JOIN lead_enrich.lead_state s ON s.lead_id = l.id
						 WHERE s.status = 'enriched' AND l.partner_name IS NOT NULL
						 AND l.id NOT IN ($won, $done_id, $webmail_id, $invalid_id, $empty_id)" 394; then
		ok "re-chunking: the 394 remaining leads enriched"
	else
		not_ok "re-chunking: the 394 remaining leads enriched" "$(status_line $DB)"
	fi
	# the company paid for with the old address is kept (its credit), not
	# written; the new address is classified as any new one is
	wait_for 30 $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE lead_id IN ($webmail_id, $invalid_id, $empty_id)
					 AND status IN ('generic_domain', 'invalid_email', 'no_email')" 3 >/dev/null
	check "re-chunking: the leads whose e-mail changed end as their new address says, the credit paid kept, no company written" \
		"$(q $DB "SELECT string_agg(s.status || ':' || coalesce(s.email, '-') || ':' || s.credits || ':' || (l.partner_name IS NULL), ' ' ORDER BY s.lead_id)
				  FROM lead_enrich.lead_state s JOIN odoo.crm_lead l ON l.id = s.lead_id
				  WHERE s.lead_id IN ($webmail_id, $invalid_id, $empty_id)")" \
		"generic_domain:someone@gmail.com:1:true invalid_email:no address here:1:true no_email::1:true"
	check "re-chunking: their chatter says so (a not-found note, an invalid-address note; none without an address)" \
		"$(q $DB "SELECT count(*) FROM odoo.mail_message WHERE model = 'crm.lead' AND res_id IN ($webmail_id, $invalid_id)")" 2
	check "re-chunking: the won lead and the lead marked done left as they were" \
		"$(q $DB "SELECT count(*) FROM odoo.crm_lead WHERE id IN ($won, $done_id) AND partner_name IS NULL AND reveal_id IS NULL")" 2
	check "re-chunking: no company charged twice (ledger)" "$(twice "$TOKEN")" 0
	check "re-chunking: the ledger is the 400 companies sent, once each" "$(spent "$TOKEN")" 400
else
	not_ok "re-chunking: database set up"
fi

# ---------------------------------------------------------------------------
# c. SIGKILL of the worker, then an immediate restart, requests in flight
# ---------------------------------------------------------------------------
DB=le_tq_crash
if ! want crash; then :
elif new_db $DB auto; then
	# slow answers, so that a request is in flight (and committed by the
	# provider after the client is gone) whenever the blow falls
	fault "delay?ms=1500"
	insert_leads $DB 0 1000
	wait_for 30 $DB "SELECT count(*) >= 100 FROM lead_enrich.lead_state WHERE status = 'enriched'" t >/dev/null
	pid=$(q $DB "SELECT pid FROM pg_stat_activity WHERE backend_type = 'lead_enrich worker' AND datname = current_database()")
	done1=$(q $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'enriched'")
	busy=$(proxy_stat inflight)
	if [ -n "$pid" ] && kill -KILL "$pid"; then
		ok "crash: worker $pid killed with SIGKILL after $done1 of 1000 leads, $busy requests in flight"
	else
		not_ok "crash: worker killed with SIGKILL" "no worker process for $DB ('$pid')"
	fi
	sleep 1
	wait_ready 60
	if wait_for 60 $DB "SELECT count(*) >= 600 FROM lead_enrich.lead_state WHERE status = 'enriched'" t; then
		ok "crash: the worker is back after crash recovery and goes on"
	else
		not_ok "crash: the worker is back after crash recovery and goes on" "$(status_line $DB)"
	fi
	done2=$(q $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'enriched'")
	busy=$(proxy_stat inflight)
	if as_run_user "$LE_PGBIN/pg_ctl" -D "$LE_RUNDIR/pgdata" -w -t 60 -m immediate restart \
		-l "$LE_RUNDIR/postgres.log" >/dev/null 2>&1 && wait_ready 60; then
		ok "crash: cluster restarted (-m immediate) after $done2 of 1000 leads, $busy requests in flight"
	else
		not_ok "crash: cluster restarted (-m immediate)"
	fi
	fault pass
	if wait_for 60 $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'enriched'" 1000; then
		ok "crash: all 1000 leads enriched in the end"
	else
		not_ok "crash: all 1000 leads enriched in the end" "$(status_line $DB)"
	fi
	check "crash: no lead lost (1000 CRM rows, 1000 filled)" \
		"$(q $DB "SELECT count(*), count(*) FILTER (WHERE partner_name IS NOT NULL AND iap_enrich_done) FROM odoo.crm_lead")" "1000|1000"
	check "crash: no company charged twice (ledger)" "$(twice "$TOKEN")" 0
	s=$(spent "$TOKEN")
	check "crash: the ledger is 1000 companies, once each" "$s" 1000
	check "crash: the ledger equals the credits recorded" "$s" "$(q $DB "SELECT sum(credits) FROM lead_enrich.lead_state")"
else
	not_ok "crash: database set up"
fi

# ---------------------------------------------------------------------------
# d. one lead of a batch of 50 rejected by a CHECK constraint
# ---------------------------------------------------------------------------
DB=le_tq_isolation
if ! want isolation; then :
elif new_db $DB auto; then
	fault pass
	# the 25th company of the batch, with a name no other of the 50 has
	victim=$(q $DB "SELECT n FROM public.domains d WHERE n BETWEEN 20 AND 50 AND name !~ '''' AND name IS NOT NULL
					AND (SELECT count(*) FROM public.domains e WHERE e.n <= 50 AND e.name = d.name) = 1
					ORDER BY n LIMIT 1")
	vname=$(q $DB "SELECT name FROM public.domains WHERE n = $victim")
	q $DB "ALTER TABLE odoo.crm_lead ADD CONSTRAINT le_tq_reject CHECK (partner_name IS DISTINCT FROM '$vname')" >/dev/null
	insert_leads $DB 0 50
	vid=$(q $DB "SELECT id FROM odoo.crm_lead WHERE email_from = (SELECT 'contact' || n || '@' || d FROM public.domains WHERE n = $victim)")
	if wait_for 45 $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE status <> 'pending'" 50; then
		ok "isolation: every lead of the batch has an outcome"
	else
		not_ok "isolation: every lead of the batch has an outcome" "$(status_line $DB)"
	fi
	check "isolation: the other 49 leads enriched" \
		"$(q $DB "SELECT count(*) FROM lead_enrich.lead_state s JOIN odoo.crm_lead l ON l.id = s.lead_id
				  WHERE s.status = 'enriched' AND l.partner_name IS NOT NULL AND s.lead_id <> $vid")" 49
	check "isolation: the rejected lead is not enriched, its paid company data kept, the constraint named" \
		"$(q $DB "SELECT status <> 'enriched', company IS NOT NULL, coalesce(error, '') LIKE '%le_tq_reject%'
				  FROM lead_enrich.lead_state WHERE lead_id = $vid")" "t|t|t"
	check "isolation: the rejected CRM row unchanged" \
		"$(q $DB "SELECT partner_name IS NULL, reveal_id IS NULL FROM odoo.crm_lead WHERE id = $vid")" "t|t"
	s=$(spent "$TOKEN")
	check "isolation: 50 companies charged once" "$s|$(twice "$TOKEN")" "50|0"
	check "isolation: the ledger equals the credits recorded" "$s" "$(q $DB "SELECT sum(credits) FROM lead_enrich.lead_state")"
else
	not_ok "isolation: database set up"
fi

# ---------------------------------------------------------------------------
# e. mining: a timeout after the provider committed, then the same call
# ---------------------------------------------------------------------------
DB=le_tq_mining
if ! want mining; then :
elif new_db $DB manual; then
	CRITERIA='{"countries": ["be"], "lead_number": 5}'
	mine_spent() { prov "SELECT coalesce(-sum(delta), 0) FROM provider.ledger WHERE token = '$TOKEN' AND reason = 'mine'"; }
	mined() {
		prov "SELECT string_agg(o.domain, ',' ORDER BY o.domain) FROM provider.mined m
			  JOIN provider.org o ON o.clearbit_id = m.clearbit_id WHERE m.token = '$TOKEN'"
	}
	fault "commit_then_hang?only=mining"
	out=$(q $DB "SELECT count(*) FROM lead_enrich.generate_leads('$CRITERIA')")
	rc=$?
	if [ $rc != 0 ]; then ok "mining: the call fails when the answer never comes"; else not_ok "mining: the call fails when the answer never comes" "$out"; fi
	s1=$(mine_spent)
	m1=$(mined)
	check_true "mining: the provider committed and charged the first call" "$([ "${s1%.*}" -gt 0 ] 2>/dev/null && echo t)" "spent $s1"
	fault pass
	got=$(q $DB "SELECT string_agg(domain, ',' ORDER BY domain) FROM lead_enrich.generate_leads('$CRITERIA')")
	rc=$?
	check "mining: the same call again succeeds with the companies the provider recorded for the first" \
		"$rc|$got" "0|$m1"
	check "mining: the retry was free (ledger unchanged), no company mined twice" "$(mine_spent)|$(mined)" "$s1|$m1"
else
	not_ok "mining: database set up"
fi

# ---------------------------------------------------------------------------
# f. archived leads
# ---------------------------------------------------------------------------
DB=le_tq_archived
if ! want archived; then :
elif new_db $DB auto; then
	fault pass
	q $DB "INSERT INTO odoo.crm_lead (name, type, active, probability, email_from)
		   SELECT 'Lead ' || n, 'lead', n = 2, 10, 'contact@' || d FROM public.domains WHERE n <= 2" >/dev/null
	arch=$(q $DB "SELECT id FROM odoo.crm_lead WHERE NOT active")
	wait_for 20 $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'enriched'" 1 >/dev/null
	q $DB "SELECT lead_enrich.wake()" >/dev/null
	sleep 2
	check "archived: an archived lead is not enriched automatically (nor charged)" \
		"$(q $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE lead_id = $arch AND status = 'enriched'")|$(q $DB "SELECT partner_name IS NULL FROM odoo.crm_lead WHERE id = $arch")|$(spent "$TOKEN")" \
		"0|t|1"
	q $DB "UPDATE odoo.crm_lead SET active = true WHERE id = $arch" >/dev/null
	if wait_for 20 $DB "SELECT s.status || '/' || (l.partner_name IS NOT NULL) FROM odoo.crm_lead l
						 LEFT JOIN lead_enrich.lead_state s ON s.lead_id = l.id WHERE l.id = $arch" "enriched/true"; then
		ok "archived: made active again, it is enriched"
	else
		not_ok "archived: made active again, it is enriched" "$(status_line $DB)"
	fi
	check "archived: two companies charged in all" "$(spent "$TOKEN")" 2
else
	not_ok "archived: database set up"
fi

# ---------------------------------------------------------------------------
# g. a slow provider and more batches than connections
# ---------------------------------------------------------------------------
DB=le_tq_rounds
if ! want rounds; then :
elif new_db $DB auto; then
	# the proxy holds every request 5 s before it forwards it (the worker
	# waits up to 10 s); 1,000 leads make 20 batches, two rounds of them in
	# flight, and the connections' cap alone keeps the provider's load
	le_psql -d postgres -qc "ALTER SYSTEM SET lead_enrich.timeout = '10s'" -c "SELECT pg_reload_conf()" >/dev/null
	fault "delay?ms=5000&only=enrich"
	insert_leads $DB 0 1000
	if wait_for 10 $DB "SELECT count(*) >= 16 FROM lead_enrich.batch" t >/dev/null; then
		ok "rounds: two rounds of batches recorded and in flight ($(q $DB "SELECT count(*) FROM lead_enrich.batch") batches)"
	else
		not_ok "rounds: two rounds of batches recorded and in flight" "$(status_line $DB)"
	fi
	check "rounds: no more than lead_enrich.max_connections (8) requests reached the provider at once" \
		"$(proxy_stat max_inflight)" 8
	fault pass
	q $DB "SELECT lead_enrich.wake()" >/dev/null
	if wait_for 60 $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'enriched'" 1000; then
		ok "rounds: the 1,000 leads enriched"
	else
		not_ok "rounds: the 1,000 leads enriched" "$(status_line $DB)"
	fi
	check "rounds: 1,000 companies charged, none twice" "$(spent "$TOKEN")/$(twice "$TOKEN")" "1000/0"
	le_psql -d postgres -qc "ALTER SYSTEM SET lead_enrich.timeout = '$TIMEOUT'" -c "SELECT pg_reload_conf()" >/dev/null
else
	not_ok "rounds: database set up"
fi

finish
