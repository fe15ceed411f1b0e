#!/usr/bin/env bash
# lead_enrich on a Citus cluster (src/citus.c, docs/citus.md): a coordinator
# and two worker nodes on loopback, Odoo's crm_lead distributed by id, the
# reference provider of scripts/test.sh as the referee.
#
#   1. thousands of leads inserted by single-row and multi-row INSERTs and
#      COPY are enriched automatically, once each
#   2. a manual enrich_leads racing the worker
#   3. a worker node restarted in the middle of a run
#   4. a shard moved to the other node in the middle of a run
#   5. mining into the distributed table
#   6. after each of them: the provider's ledger equals the credits
#      recorded; every enriched lead holds its own domain's company (its
#      reveal_id is the clearbit_id the provider has for that domain); each
#      lead has one note in Odoo's chatter (mail_message, local to the
#      coordinator), as on one server: its name and company, Odoo's note
#      subtype and author, the company card of the lead's company
#   7. the tenant variant: crm_lead distributed by company_id (INSERTs,
#      COPY, a race, mining)
#
# Citus is built once from ../shared/vendor and cached (scripts/citus_build.sh),
# then installed into the PostgreSQL under test; without the tarball, or
# for a PostgreSQL major version Citus does not support, the test says
# "skipped: ..." and passes nothing.  The nodes listen on LE_PGPORT + 10,
# + 11 and + 12 (LE_CITUS_PORT sets the first).  LE_CITUS_BENCH=N (with
# LE_CITUS_WORKERS=1|2, LE_CITUS_SHARDS=n) measures docs/citus.md's
# throughput instead; LE_CITUS_KEEP=1 leaves the nodes running.
#
# Prints "ok - ..." / "not ok - ..." and a final "N passed, N failed" line.
source "$(dirname "$0")/lib.sh"

CPORT=${LE_CITUS_PORT:-$((LE_PGPORT + 10))}
W1PORT=$((CPORT + 1))
W2PORT=$((CPORT + 2))
CDIR=$LE_RUNDIR/citus
ENDPOINT=http://127.0.0.1:$LE_PROVIDER_PORT
RUN_ID=$(date +%s)$$
DB=le_citus
# LE_CITUS_WORKERS=1: one worker node (for the throughput figure)
WORKERS=${LE_CITUS_WORKERS:-2}
# the extra column and value of the inserted leads (the tenant variant)
XCOL=
XVAL=
TOKEN="t-citus-$RUN_ID"

why=$("$LE_REPO/scripts/citus_build.sh" "$LE_PG_CONFIG" 2>"$LE_RUNDIR/citus-build.log")
rc=$?
if [ "$rc" = 3 ]; then
	echo "# skipped: Citus not available ($why)"
	echo "skipped: Citus not available"
	finish
elif [ "$rc" != 0 ]; then
	not_ok "Citus builds and installs" "$(tail -15 "$LE_RUNDIR/citus-build.log")"
	finish
fi

# cq PORT SQL: a query on a node
cq() { psql -X -q -v ON_ERROR_STOP=1 -h "$CDIR" -p "$1" -U postgres -d "$DB" -tA -c "$2" 2>&1; }
# c SQL: on the coordinator (for wait_for: c DB SQL)
c() { if [ $# = 2 ]; then cq "$CPORT" "$2"; else cq "$CPORT" "$1"; fi; }

node_dir() { echo "$CDIR/n$1"; }
node_start() {
	as_run_user "$LE_PGBIN/pg_ctl" -D "$(node_dir "$1")" -w -t 60 -l "$(node_dir "$1").log" start >/dev/null
}
node_stop() {
	as_run_user "$LE_PGBIN/pg_ctl" -D "$(node_dir "$1")" -m "${2:-fast}" -w -t 60 stop >/dev/null 2>&1
}
cleanup() {
	[ "${LE_CITUS_KEEP:-}" = 1 ] && return
	for p in $CPORT $W1PORT $W2PORT; do node_stop $p immediate; done
}
trap cleanup EXIT

# node_init PORT PRELOAD: a new node
node_init() {
	local d
	d=$(node_dir "$1")
	as_run_user "$LE_PGBIN/initdb" -D "$d" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null || return 1
	cat >>"$d/postgresql.conf" <<CONF
port = $1
listen_addresses = '127.0.0.1'
unix_socket_directories = '$CDIR'
shared_preload_libraries = '$2'
max_prepared_transactions = 100
max_worker_processes = 32
max_connections = 100
wal_level = logical
fsync = off
full_page_writes = off
log_line_prefix = '%m [%p] %q%a '
lead_enrich.endpoint = '$ENDPOINT'
lead_enrich.retry_delay = '1s'
citus.log_distributed_deadlock_detection = off
citus.recover_2pc_interval = '1s'
CONF
	node_start "$1"
}

setup_cluster() {
	for p in $CPORT $W1PORT $W2PORT; do node_stop $p immediate; done
	rm -rf "$CDIR"
	mkdir -p "$CDIR"
	chown "$LE_RUN_USER" "$CDIR" 2>/dev/null
	node_init "$CPORT" "citus,lead_enrich" || return 1
	node_init "$W1PORT" citus || return 1
	[ "$WORKERS" = 1 ] || node_init "$W2PORT" citus || return 1
	setup_cluster_db
}

# setup_cluster_db: database $DB on every node, the workers added to it
setup_cluster_db() {
	for p in $CPORT $W1PORT $([ "$WORKERS" = 1 ] || echo $W2PORT); do
		psql -X -q -h "$CDIR" -p $p -U postgres -d postgres -c "CREATE DATABASE $DB" >/dev/null || return 1
		cq $p "CREATE EXTENSION citus" >/dev/null || return 1
	done
	cq "$CPORT" "SELECT citus_set_coordinator_host('127.0.0.1', $CPORT)" >/dev/null || return 1
	cq "$CPORT" "SELECT citus_add_node('127.0.0.1', $W1PORT)" >/dev/null || return 1
	[ "$WORKERS" = 1 ] || cq "$CPORT" "SELECT citus_add_node('127.0.0.1', $W2PORT)" >/dev/null || return 1
}

# setup_db DISTRIBUTION: lead_enrich and the Odoo fixture on the cluster,
# crm_lead distributed by DISTRIBUTION, the tables it refers to reference
# tables, attached in automatic mode.
setup_db() {
	{
		echo "SET client_min_messages = warning;"
		echo "CREATE EXTENSION lead_enrich;"
		echo "\\i $LE_REPO/test/fixtures/odoo17_crm.sql"
		# the tag relation refers to crm_lead: distributed with it (by id),
		# a local table (by tenant)
		echo "ALTER TABLE odoo.crm_tag_rel DROP CONSTRAINT crm_tag_rel_lead_id_fkey;"
		if [ "$1" != id ]; then
			# Citus: a unique key includes the distribution column
			echo "ALTER TABLE odoo.crm_lead DROP CONSTRAINT crm_lead_pkey;"
			echo "ALTER TABLE odoo.crm_lead ALTER $1 SET NOT NULL, ALTER $1 SET DEFAULT 1;"
			echo "ALTER TABLE odoo.crm_lead ADD PRIMARY KEY (id, $1);"
		fi
		for t in res_country res_country_state res_users crm_team crm_stage crm_tag crm_iap_lead_mining_request; do
			echo "SELECT create_reference_table('odoo.$t');"
		done
		echo "SELECT create_distributed_table('odoo.crm_lead', '$1', shard_count => ${LE_CITUS_SHARDS:-8});"
		if [ "$1" = id ]; then
			echo "SELECT create_distributed_table('odoo.crm_tag_rel', 'lead_id', colocate_with => 'odoo.crm_lead');"
			echo "ALTER TABLE odoo.crm_tag_rel ADD FOREIGN KEY (lead_id) REFERENCES odoo.crm_lead (id) ON DELETE CASCADE;"
		fi
		echo "SELECT lead_enrich.attach('odoo.crm_lead');"
		echo "INSERT INTO odoo.iap_account (service_name, account_token) VALUES ('reveal', '$TOKEN');"
		echo "CREATE TABLE public.directory (n serial, d text);"
		# what the provider answers for each domain (company_check)
		echo "CREATE TABLE public.truth (domain text PRIMARY KEY, clearbit_id text NOT NULL);"
	} | psql -X -q -v ON_ERROR_STOP=1 -h "$CDIR" -p "$CPORT" -U postgres -d "$DB" >"$CDIR/setup.log" 2>&1 || return 1
	{
		prov "SELECT provider.add_credits('$TOKEN', 1000000)" &&
			prov "COPY (SELECT domain FROM provider.org ORDER BY id LIMIT $((${LE_CITUS_BENCH:-0} > 5000 ? LE_CITUS_BENCH + 1000 : 6000))) TO STDOUT" |
			psql -X -q -h "$CDIR" -p "$CPORT" -U postgres -d "$DB" -c "COPY public.directory (d) FROM STDIN" &&
			cq "$CPORT" "CREATE TABLE public.domains AS SELECT row_number() OVER (ORDER BY n) AS n, d
				 FROM public.directory WHERE d NOT IN (SELECT domain FROM lead_enrich.webmail_domain)" &&
			prov "COPY (SELECT od.domain, o.clearbit_id FROM provider.org_domain od
				  JOIN provider.org o ON o.id = od.org_id WHERE od.domain IN (SELECT domain FROM provider.org
				  ORDER BY id LIMIT $((${LE_CITUS_BENCH:-0} > 5000 ? LE_CITUS_BENCH + 1000 : 6000)))) TO STDOUT" |
			psql -X -q -h "$CDIR" -p "$CPORT" -U postgres -d "$DB" -c "COPY public.truth FROM STDIN" &&
			cq "$CPORT" "SELECT create_reference_table('public.truth')" &&
			cq "$CPORT" "SELECT lead_enrich.set_mode('auto')" &&
			cq "$CPORT" "SELECT lead_enrich.worker_stop()" &&
			cq "$CPORT" "SELECT lead_enrich.worker_start()"
	} >>"$CDIR/setup.log" 2>&1
}

# insert_leads FROM COUNT: one multi-row INSERT of COUNT leads, domains FROM+1 ..
insert_leads() {
	cq "$CPORT" "INSERT INTO odoo.crm_lead (name, type, active, probability, email_from$XCOL)
		SELECT 'Lead ' || n, 'lead', true, 10, 'contact' || n || '@' || d$XVAL
		FROM public.domains WHERE n > $1 AND n <= $1 + $2 ORDER BY n"
}
# insert_single FROM COUNT: COUNT single-row INSERTs, each its own transaction
insert_single() {
	for n in $(seq $(($1 + 1)) $(($1 + $2))); do
		echo "INSERT INTO odoo.crm_lead (name, type, active, probability, email_from$XCOL)
			SELECT 'Lead ' || n, 'lead', true, 10, 'contact' || n || '@' || d$XVAL FROM public.domains WHERE n = $n;"
	done | psql -X -q -v ON_ERROR_STOP=1 -h "$CDIR" -p "$CPORT" -U postgres -d "$DB" >/dev/null
}
# copy_leads FROM COUNT: COPY of COUNT leads
copy_leads() {
	cq "$CPORT" "COPY (SELECT 'Lead ' || n, 'lead', true, 10, 'contact' || n || '@' || d$XVAL
		FROM public.domains WHERE n > $1 AND n <= $1 + $2 ORDER BY n) TO STDOUT" |
		psql -X -q -v ON_ERROR_STOP=1 -h "$CDIR" -p "$CPORT" -U postgres -d "$DB" \
			-c "COPY odoo.crm_lead (name, type, active, probability, email_from$XCOL) FROM STDIN"
}

spent() { prov "SELECT provider.spent('$TOKEN')"; }
# unfinished: leads of crm_lead without a final outcome in lead_state (a
# local table: compared through the ids' digests, Citus joins no local
# table); "error" is no such outcome: every lead's company is known
FINAL="'enriched', 'not_found', 'generic_domain', 'mined'"
unfinished() {
	local a b
	a=$(c "SELECT count(*) || ' ' || md5(string_agg(id::text, ',' ORDER BY id)) FROM odoo.crm_lead")
	b=$(c "SELECT count(*) || ' ' || md5(string_agg(lead_id::text, ',' ORDER BY lead_id))
		   FROM lead_enrich.lead_state WHERE status IN ($FINAL)")
	if [ "$a" = "$b" ]; then echo 0; else echo "crm_lead: $a, final in lead_state: $b"; fi
}
status_line() { c "SELECT outcomes, pending, last_error, pause_reason FROM lead_enrich.status"; }

# maxid: the largest lead id so far
maxid() { c "SELECT coalesce(max(id), 0) FROM odoo.crm_lead"; }
# all_final: wait until every lead of crm_lead has a final outcome
all_final() {
	local deadline=$((SECONDS + $1)) u
	while :; do
		u=$(unfinished)
		[ "$u" = 0 ] && return 0
		[ $SECONDS -ge $deadline ] && { echo "#   waited $1 s: $u; $(status_line)"; return 1; }
		sleep 0.5
	done
}
# ledger_check WHAT: the provider's ledger equals the credits lead_state
# records; then company_check and notes_check
ledger_check() {
	check "$1: the provider's ledger equals the credits recorded" \
		"$(spent)" "$(c "SELECT sum(credits) FROM lead_enrich.lead_state")"
	company_check "$1"
	notes_check "$1"
}
# company_check WHAT: every lead inserted (not mined) holds the company the
# provider has for its own e-mail domain, none another lead's
company_check() {
	check "$1: every enriched lead holds its own domain's company" \
		"$(c "SELECT count(*) FILTER (WHERE l.reveal_id IS DISTINCT FROM t.clearbit_id) || ' of ' || count(*)
			  FROM odoo.crm_lead l JOIN public.truth t ON t.domain = lower(split_part(l.email_from, '@', 2))
			  WHERE l.lead_mining_request_id IS NULL")" \
		"0 of $(c "SELECT count(*) FROM odoo.crm_lead WHERE lead_mining_request_id IS NULL")"
}
# html SQL: the text as chatter.c escapes it in a note
html() {
	echo "replace(replace(replace(replace(replace($1, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '\"', '&quot;'), '''', '&#39;')"
}
# xmlid MODULE NAME: the res_id of an Odoo XML id
xmlid() { echo "(SELECT res_id FROM odoo.ir_model_data WHERE module = '$1' AND name = '$2')"; }
# notes_check WHAT: Odoo's chatter (mail_message, a local table of the
# coordinator) holds one note per lead, as lead_enrich posts it on one
# server (sql/chatter.sql): the lead's name and company, a notification of
# subtype mail.mt_note by OdooBot written by base.user_root, and, for an
# enriched lead, the card of the company it holds
notes_check() {
	check "$1: one note per lead in Odoo's chatter, with the lead's name and company" \
		"$(c "SELECT count(*) || ' ' || md5(string_agg(res_id || '|' || coalesce(record_name, '') || '|' ||
			  coalesce(record_company_id::text, ''), ',' ORDER BY res_id))
			  FROM odoo.mail_message WHERE model = 'crm.lead'")" \
		"$(c "SELECT count(*) || ' ' || md5(string_agg(id || '|' || coalesce(name, '') || '|' ||
			  coalesce(company_id::text, ''), ',' ORDER BY id)) FROM odoo.crm_lead")"
	check "$1: every note is Odoo's note, by OdooBot" \
		"$(c "SELECT count(*) FILTER (WHERE NOT (m.message_type = 'notification'
			  AND m.subtype_id = $(xmlid mail mt_note) AND m.author_id = $(xmlid base partner_root)
			  AND m.create_uid = $(xmlid base user_root) AND m.write_uid = $(xmlid base user_root)
			  AND NOT m.is_internal AND m.email_from LIKE '\"%\" <%@%>'
			  AND m.message_id LIKE '<%.lead_enrich@localhost>' AND m.date IS NOT NULL)) || ' of ' || count(*)
			  FROM odoo.mail_message m WHERE m.model = 'crm.lead'")" \
		"0 of $(c "SELECT count(*) FROM odoo.crm_lead")"
	check "$1: an enriched lead's note is the card of the company it holds" \
		"$(c "CREATE TEMP TABLE lp AS SELECT id, partner_name FROM odoo.crm_lead WHERE lead_mining_request_id IS NULL;
			  SELECT count(*) FILTER (WHERE m.body NOT LIKE '<div class=\"o_lead_enrich_card\">%'
			  OR strpos(m.body, '<h4 style=\"margin:0\">' || $(html lp.partner_name) || '</h4>') = 0)
			  || ' of ' || count(*) FROM lp JOIN odoo.mail_message m ON m.model = 'crm.lead' AND m.res_id = lp.id")" \
		"0 of $(c "SELECT count(*) FROM odoo.crm_lead WHERE lead_mining_request_id IS NULL")"
}

if setup_cluster; then
	ok "a coordinator and $WORKERS worker nodes (ports $CPORT, $W1PORT$([ "$WORKERS" = 1 ] || echo ", $W2PORT"))"
else
	not_ok "a coordinator and two worker nodes" "$(tail -5 "$CDIR"/*.log 2>/dev/null)"
	finish
fi

# ---------------------------------------------------------------------------
# 1. distributed by id: INSERTs and COPY enriched automatically
# ---------------------------------------------------------------------------
if setup_db id; then
	ok "crm_lead distributed by id, attached in automatic mode, the worker running on the coordinator"
else
	not_ok "crm_lead distributed by id, attached" "$(tail -5 "$CDIR/setup.log")"
	finish
fi
# LE_CITUS_BENCH=N: the throughput figure of docs/citus.md, nothing else:
# a COPY of N leads of distinct companies, timed until every one has its
# outcome
if [ -n "${LE_CITUS_BENCH:-}" ]; then
	t0=$(date +%s.%N)
	copy_leads 0 "$LE_CITUS_BENCH"
	t1=$(date +%s.%N)
	if all_final 600; then
		t2=$(date +%s.%N)
		ok "$(python3 -c "import sys; n, a, b, c = int(sys.argv[1]), *map(float, sys.argv[2:5])
print(f'throughput: {n} leads, {sys.argv[5]} worker node(s): COPY {b - a:.1f} s, all enriched after {c - a:.1f} s: {n / (c - a):.0f} leads/s')" \
			"$LE_CITUS_BENCH" "$t0" "$t1" "$t2" "$WORKERS")"
	else
		not_ok "throughput: every lead enriched"
	fi
	ledger_check throughput
	finish
fi

check "the queue is co-located with crm_lead" \
	"$(c "SELECT count(DISTINCT colocationid) FROM pg_dist_partition
		  WHERE logicalrelid IN ('odoo.crm_lead'::regclass, 'lead_enrich.citus_queue'::regclass)")" 1
check "the enqueue triggers are on every shard (8 shards, 2 triggers)" \
	"$(c "SELECT sum(result::int) FROM run_command_on_shards('odoo.crm_lead',
		  \$\$SELECT count(*) FROM pg_trigger WHERE tgrelid = '%s'::regclass AND tgname LIKE 'lead_enrich_enqueue_%%'\$\$)")" 16

start=$SECONDS
insert_single 0 200
insert_leads 200 1400 >/dev/null
copy_leads 1600 1400
N=3000
if wait_for 180 $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'enriched'" $N c; then
	ok "$N leads (200 single-row INSERTs, a multi-row INSERT, a COPY) enriched automatically in $((SECONDS - start)) s"
else
	not_ok "$N leads enriched automatically" "$(status_line)"
fi
check "every lead has a final outcome" "$(unfinished)" 0
check "the queue is empty" "$(c "SELECT count(*) FROM lead_enrich.citus_queue")" 0
ledger_check "insert"
check "enriched leads have their columns filled and are marked done" \
	"$(c "SELECT count(*) FROM odoo.crm_lead WHERE iap_enrich_done AND partner_name IS NOT NULL")" \
	"$(c "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'enriched'")"

# ---------------------------------------------------------------------------
# 2. manual enrichment racing the worker
# ---------------------------------------------------------------------------
from=$(maxid)
spent0=$(spent)
insert_leads 3000 300 >/dev/null
# the ids as a literal, as Odoo passes them: Citus would push a function
# over a subquery of a distributed table down to the shards (docs/citus.md)
ids=$(c "SELECT array_agg(id ORDER BY id) FROM odoo.crm_lead WHERE id > $from")
out=$(c "SELECT count(*) FROM lead_enrich.enrich_leads('$ids')")
check "race: enrich_leads on 300 new leads answers for each of them while the worker claims them" "$out" 300
if all_final 120; then ok "race: every lead ends with a final outcome"; else not_ok "race: every lead ends with a final outcome"; fi
check "race: one charge per company (300 companies, none charged twice)" \
	"$(($(spent) - spent0))|$(c "SELECT count(*) FROM lead_enrich.lead_state WHERE lead_id > $from AND status = 'enriched'")" "300|300"
ledger_check race

[ "$WORKERS" = 1 ] && finish

# ---------------------------------------------------------------------------
# 3. a worker node restarted in the middle of a run
# ---------------------------------------------------------------------------
(
	for i in $(seq 0 9); do
		insert_leads $((3300 + i * 100)) 100 >/dev/null 2>&1
		sleep 0.3
	done
) &
inserter=$!
sleep 1
if node_stop "$W2PORT" fast && sleep 1 && node_start "$W2PORT"; then
	ok "restart: worker node $W2PORT stopped and started again while leads were inserted and enriched"
else
	not_ok "restart: worker node $W2PORT restarted" "$(tail -5 "$(node_dir "$W2PORT").log")"
fi
wait $inserter
n=$(c "SELECT count(*) FROM odoo.crm_lead WHERE id > $from")
if all_final 180; then
	ok "restart: every committed lead ($n since the race) ends with a final outcome"
else
	not_ok "restart: every committed lead ends with a final outcome"
fi
ledger_check restart

# ---------------------------------------------------------------------------
# 4. a shard moved to the other node in the middle of a run
# ---------------------------------------------------------------------------
shard=$(c "SELECT shardid FROM citus_shards WHERE table_name = 'odoo.crm_lead'::regclass AND nodeport = $W1PORT
		   ORDER BY shardid LIMIT 1")
(
	for i in $(seq 0 9); do
		insert_leads $((4300 + i * 100)) 100 >/dev/null 2>&1
		sleep 0.3
	done
) &
inserter=$!
sleep 1
out=$(c "SELECT citus_move_shard_placement($shard, '127.0.0.1', $W1PORT, '127.0.0.1', $W2PORT,
										  shard_transfer_mode => 'block_writes')")
check "move: shard $shard moved from node $W1PORT to node $W2PORT during the run" \
	"$out|$(c "SELECT nodeport FROM citus_shards WHERE shardid = $shard")" "|$W2PORT"
wait $inserter
check "move: the queue's co-located shard moved with it" \
	"$(c "SELECT count(DISTINCT nodeport) FROM citus_shards s JOIN pg_dist_shard d USING (shardid)
		  WHERE s.table_name IN ('odoo.crm_lead'::regclass, 'lead_enrich.citus_queue'::regclass)
		    AND d.shardminvalue = (SELECT shardminvalue FROM pg_dist_shard WHERE shardid = $shard)")" 1
check "move: the enqueue triggers are on every shard, the moved one included" \
	"$(c "SELECT sum(result::int) FROM run_command_on_shards('odoo.crm_lead',
		  \$\$SELECT count(*) FROM pg_trigger WHERE tgrelid = '%s'::regclass AND tgname LIKE 'lead_enrich_enqueue_%%'\$\$)")" 16
# leads of the moved shard, inserted after the move
moved_from=$(maxid)
insert_single 5300 100
check "move: new leads land in the moved shard too" \
	"$(c "SELECT count(*) > 0 FROM odoo.crm_lead WHERE id > $moved_from
		  AND get_shard_id_for_distribution_column('odoo.crm_lead', id) = $shard")" t
if all_final 180; then
	ok "move: every lead ends with a final outcome ($(c "SELECT count(*) FROM odoo.crm_lead") in all)"
else
	not_ok "move: every lead ends with a final outcome"
fi
ledger_check move

# ---------------------------------------------------------------------------
# 5. mining into the distributed table
# ---------------------------------------------------------------------------
before=$(c "SELECT count(*) FROM odoo.crm_lead")
spent0=$(spent)
out=$(c "SET client_min_messages = warning;
		 SELECT count(*) FROM lead_enrich.generate_leads('{\"countries\": [\"be\"], \"lead_number\": 8, \"tags\": [\"Mined\"]}')")
added=$(($(c "SELECT count(*) FROM odoo.crm_lead") - before))
check_true "mining: generate_leads adds its leads to the distributed table ($out returned, $added added)" \
	"$([ "$out" = "$added" ] && [ "$added" -gt 0 ] 2>/dev/null && echo t)"
check "mining: each mined lead carries its request and its tag (crm_tag_rel, co-located)" \
	"$(c "SELECT count(*) FROM odoo.crm_lead l JOIN odoo.crm_tag_rel r ON r.lead_id = l.id
		  WHERE l.lead_mining_request_id IS NOT NULL")" "$added"
# the trigger queued them; the next collect finds them mined
wait_for 30 $DB "SELECT count(*) FROM lead_enrich.citus_queue" 0 c >/dev/null
check "mining: the mined leads are recorded as mined, not enriched again by the worker" \
	"$(c "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'mined'")|$(c "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'pending'")|$(c "SELECT count(*) FROM lead_enrich.citus_queue")" "$added|0|0"
check_true "mining: the provider charged the mining request (ledger grew)" \
	"$([ "$(spent)" != "$spent0" ] && echo t)" "spent $spent0 -> $(spent)"
company_check mining
notes_check mining

# ---------------------------------------------------------------------------
# 6. the tenant variant: crm_lead distributed by company_id
# ---------------------------------------------------------------------------
DB=le_citus_tenant
TOKEN="t-citus-tenant-$RUN_ID"
XCOL=", company_id"
XVAL=", 1 + n % 5"
if setup_cluster_db && setup_db company_id; then
	ok "tenant: crm_lead distributed by company_id, attached in automatic mode"
	check "tenant: the queue is co-located with crm_lead, distributed by the tenant" \
		"$(c "SELECT count(DISTINCT colocationid) FROM pg_dist_partition
			  WHERE logicalrelid IN ('odoo.crm_lead'::regclass, 'lead_enrich.citus_queue'::regclass)")" 1
	start=$SECONDS
	insert_single 0 100
	insert_leads 100 700 >/dev/null
	copy_leads 800 700
	if all_final 180 && [ "$(c "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'enriched'")" = 1500 ]; then
		ok "tenant: 1500 leads of 5 tenants (single-row and multi-row INSERTs, COPY) enriched automatically in $((SECONDS - start)) s"
	else
		not_ok "tenant: 1500 leads enriched automatically"
	fi
	check "tenant: enriched leads have their columns filled and are marked done" \
		"$(c "SELECT count(*) FROM odoo.crm_lead WHERE iap_enrich_done AND partner_name IS NOT NULL")" \
		"$(c "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'enriched'")"
	ledger_check tenant
	from=$(maxid)
	spent0=$(spent)
	insert_leads 1500 200 >/dev/null
	ids=$(c "SELECT array_agg(id ORDER BY id) FROM odoo.crm_lead WHERE id > $from")
	check "tenant: enrich_leads on 200 new leads racing the worker answers for each" \
		"$(c "SELECT count(*) FROM lead_enrich.enrich_leads('$ids')")" 200
	all_final 120 || not_ok "tenant: race: every lead ends with a final outcome"
	check "tenant: race: one charge per company" \
		"$(($(spent) - spent0))|$(c "SELECT count(*) FROM lead_enrich.lead_state WHERE lead_id > $from AND status = 'enriched'")" "200|200"
	ledger_check "tenant: race"
	before=$(c "SELECT count(*) FROM odoo.crm_lead")
	out=$(c "SET client_min_messages = warning;
			 SELECT count(*) FROM lead_enrich.generate_leads('{\"countries\": [\"fr\"], \"lead_number\": 5}')")
	check_true "tenant: mining adds its leads to the table distributed by tenant ($out)" \
		"$([ "$out" = "$(($(c "SELECT count(*) FROM odoo.crm_lead") - before))" ] && [ "$out" -gt 0 ] 2>/dev/null && echo t)"
	notes_check "tenant: mining"
else
	not_ok "tenant: crm_lead distributed by company_id, attached" "$(tail -5 "$CDIR/setup.log")"
fi

finish
