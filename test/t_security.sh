#!/usr/bin/env bash
# Attacks on the extension's trust boundary (issue 10).  An Odoo database is
# owned by an ordinary role (odoo_owner, a member of lead_enrich_user, as
# Odoo's own role would be) that also owns the CRM tables; a second ordinary
# role (sales) is a member of lead_enrich_user only.  A superuser installs
# the extension, attaches the table and sets the account token with ALTER
# SYSTEM.  Neither role may gain rights, read the token, forge outcomes or
# break the CRM through lead_enrich:
#
#   1. operator hijack: operators and functions in public that the
#      extension's SQL could resolve through search_path (the enqueue
#      trigger, enrich_lead, the worker)
#   2. a BEFORE UPDATE trigger on crm_lead, written by its owner, fired by
#      the worker's enrichment
#   3. views in place of res_country and ir_config_parameter, then attach()
#      again by a superuser and the worker
#   4. the token, read by a lead_enrich_user member through every function,
#      view, setting and error message; ALTER DATABASE / ALTER ROLE SET of
#      the token refused or warned about
#   5. forged outcomes: sales writing lead_enrich's tables
#   6. each mapped column dropped or renamed, and the table renamed: the
#      CRM's INSERT keeps working
#
# Each attack has its own database.  Escalation is checked through
# pg_roles.rolsuper of odoo_owner (reset between phases) and through a log
# table the attacker's code writes current_user into.  The superuser's own
# sessions pin search_path, so that only the extension can run the
# attacker's code with a superuser's rights.
#
# Needs the cluster and the reference provider of scripts/test.sh (the
# cluster's default lead_enrich.endpoint).  Prints "ok - ..." / "not ok -
# ..." and a final "N passed, N failed" line; exits non-zero on a failure.
source "$(dirname "$0")/lib.sh"

OWNER=odoo_owner
SALES=sales
RUN_ID=$(date +%s)$$
# recognisable, and a valid provider token ([A-Za-z0-9_+.-])
TOKEN="LeSecretToken-$RUN_ID-q7Zx"
DB_TOKEN="LeDbLevelToken-$RUN_ID-k3Wv"
ROLE_TOKEN="LeRoleLevelToken-$RUN_ID-m5Yu"
FIXTURE=$LE_REPO/test/fixtures/odoo17_crm.sql
OUT=$LE_RUNDIR/t_security
DBS="le_sec_hijack le_sec_trigger le_sec_view le_sec_ddl le_sec_token"
export PGCONNECT_TIMEOUT=10
mkdir -p "$OUT"
# the token never shows in a failure's diagnostic
not_ok_filter() { sed -e "s/$TOKEN/<TOKEN>/g"; }


# sql_as ROLE DB [psql args]: a session of ROLE (a login of its own, not
# SET ROLE), unaligned tuples only, every message on stdout.
sql_as() {
	local role=$1 db=$2
	shift 2
	PGOPTIONS="${PGOPTIONS:-} -c statement_timeout=60s" \
		psql -X -q -h "$LE_RUNDIR" -p "$LE_PGPORT" -U "$role" -d "$db" -tA -v ON_ERROR_STOP=1 "$@" 2>&1
}
# sup DB SQL: the superuser, with a search_path no ordinary role can write
sup() { PGOPTIONS="-c search_path=pg_catalog,pg_temp" sql_as postgres "$1" -c "$2"; }
own() { sql_as "$OWNER" "$1" -c "$2"; }
sales() { sql_as "$SALES" "$1" -c "$2"; }

is_super() { sup postgres "SELECT rolsuper FROM pg_roles WHERE rolname = '$OWNER'"; }
unsuper() { sup postgres "ALTER ROLE $OWNER NOSUPERUSER" >/dev/null; }


cleanup() {
	local db
	for db in $DBS; do
		sup postgres "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
	done
	sup postgres "DROP ROLE IF EXISTS $OWNER" >/dev/null
	sup postgres "DROP ROLE IF EXISTS $SALES" >/dev/null
	sup postgres "ALTER SYSTEM RESET lead_enrich.account_token" >/dev/null
	sup postgres "SELECT pg_reload_conf()" >/dev/null
}
trap cleanup EXIT

# new_db NAME: a database owned by odoo_owner with the Odoo fixture (owned
# by odoo_owner too), the extension, the table attached by the superuser,
# automatic mode and a running worker.
new_db() {
	local db=$1 out
	out=$(
		sup postgres "CREATE DATABASE $db OWNER $OWNER" &&
			sup "$db" "CREATE EXTENSION lead_enrich" &&
			sup "$db" "GRANT lead_enrich_user TO $OWNER, $SALES" &&
			sql_as "$OWNER" "$db" -f "$FIXTURE" &&
			sup "$db" "SELECT lead_enrich.attach('odoo.crm_lead')" &&
			sup "$db" "SELECT lead_enrich.set_mode('auto')" &&
			sup "$db" "SELECT lead_enrich.worker_stop()" &&
			sup "$db" "SELECT lead_enrich.worker_start()"
	) || { echo "#   $out" | head -5; return 1; }
}

# domains FROM COUNT: directory domains with a country of the fixture, so
# that enrichment looks res_country up
DOMAINS=()
domains() { printf "('%s')," "${DOMAINS[@]:$1:$2}" | sed 's/,$//'; }

# insert_leads DB FROM COUNT [session SQL]: COUNT leads as odoo_owner
insert_leads() {
	own "$1" "${4:-SELECT 1}; INSERT INTO odoo.crm_lead (name, type, active, probability, email_from)
		SELECT 'Lead ' || d, 'lead', true, 10, 'contact@' || d FROM (VALUES $(domains "$2" "$3")) AS v(d)"
}

# the attacker's "payload": note who runs it, then try to become superuser;
# swallows every error so that the statement it hides in goes on
PAYLOAD_SQL="
CREATE TABLE public.attack_log (what text, usr name, sess name, is_super bool,
	UNIQUE (what, usr));
GRANT SELECT, INSERT ON public.attack_log TO PUBLIC;
CREATE FUNCTION public.attack(what text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS \$\$
BEGIN
	BEGIN
		INSERT INTO public.attack_log
		SELECT what, current_user, session_user, r.rolsuper FROM pg_roles r
		WHERE r.rolname = current_user
		ON CONFLICT DO NOTHING;
	EXCEPTION WHEN OTHERS THEN NULL;
	END;
	BEGIN
		EXECUTE 'ALTER ROLE $OWNER SUPERUSER';
	EXCEPTION WHEN OTHERS THEN NULL;
	END;
END
\$\$;"

# attack_report DB: who ran the attacker's code as a superuser (empty: nobody)
attack_report() {
	sup "$1" "SELECT string_agg(what || ' ran as ' || usr, '; ' ORDER BY what)
			  FROM public.attack_log WHERE is_super"
}
# no_escalation DB LABEL: odoo_owner is not superuser and the attacker's code
# never ran as one; then the log and the role are reset for the next phase
no_escalation() {
	local rep
	check "$2: odoo_owner is still not a superuser" "$(is_super)" f
	rep=$(attack_report "$1")
	if [ -z "$rep" ]; then ok "$2: the attacker's code never ran as a superuser"; else not_ok "$2: the attacker's code never ran as a superuser" "$rep"; fi
	unsuper
	sup "$1" "TRUNCATE public.attack_log" >/dev/null
}

# ---------------------------------------------------------------------------
# set-up: roles, token, provider account
# ---------------------------------------------------------------------------
logstart=$(($(wc -l <"$LE_RUNDIR/postgres.log" 2>/dev/null || echo 0) + 1))
if ! le_wait_http "http://127.0.0.1:$LE_PROVIDER_PORT/health"; then
	echo "not ok - the provider answers on port $LE_PROVIDER_PORT (run scripts/test.sh)"
	echo "0 passed, 1 failed"
	exit 1
fi
cleanup
setup=$(
	sup postgres "CREATE ROLE $OWNER LOGIN" &&
		sup postgres "CREATE ROLE $SALES LOGIN" &&
		sup postgres "ALTER SYSTEM SET lead_enrich.account_token = '$TOKEN'" &&
		sup postgres "SELECT pg_reload_conf()"
)
rc=$?
prov "SELECT provider.add_credits('$TOKEN', 100000)" >/dev/null
mapfile -t DOMAINS < <(prov "SELECT o.domain FROM provider.org o
	WHERE o.country_code IN ('US', 'BE', 'FR', 'GB', 'DE', 'AU', 'CA', 'IN', 'NL', 'JP')
	ORDER BY o.id LIMIT 200")
if [ $rc = 0 ] && [ ${#DOMAINS[@]} = 200 ]; then
	ok "set-up: roles $OWNER and $SALES, token set with ALTER SYSTEM"
else
	not_ok "set-up: roles $OWNER and $SALES, token set with ALTER SYSTEM" "$setup ${#DOMAINS[@]} domains"
fi

# ---------------------------------------------------------------------------
# 1. operator hijack: public operators and functions the extension's SQL
#    could pick up through search_path
# ---------------------------------------------------------------------------
DB=le_sec_hijack
if new_db $DB; then
	# exact matches in public win over pg_catalog's coercions (float8 < int,
	# varchar = text); with public before pg_catalog in the path, public
	# wins for everything
	hj=$(own $DB "$PAYLOAD_SQL
		CREATE FUNCTION public.hj_lt(a float8, b int) RETURNS bool LANGUAGE plpgsql SET search_path = pg_catalog
			AS \$\$ BEGIN PERFORM public.attack('<(float8,int)'); RETURN a < b; END \$\$;
		CREATE OPERATOR public.< (LEFTARG = float8, RIGHTARG = int, FUNCTION = public.hj_lt);
		CREATE FUNCTION public.hj_ge(a float8, b int) RETURNS bool LANGUAGE plpgsql SET search_path = pg_catalog
			AS \$\$ BEGIN PERFORM public.attack('>=(float8,int)'); RETURN a >= b; END \$\$;
		CREATE OPERATOR public.>= (LEFTARG = float8, RIGHTARG = int, FUNCTION = public.hj_ge);
		CREATE FUNCTION public.hj_eq_vt(a varchar, b text) RETURNS bool LANGUAGE plpgsql SET search_path = pg_catalog
			AS \$\$ BEGIN PERFORM public.attack('=(varchar,text)'); RETURN a::text = b; END \$\$;
		CREATE OPERATOR public.= (LEFTARG = varchar, RIGHTARG = text, FUNCTION = public.hj_eq_vt);
		CREATE FUNCTION public.hj_eq_84(a bigint, b int) RETURNS bool LANGUAGE plpgsql SET search_path = pg_catalog
			AS \$\$ BEGIN PERFORM public.attack('=(bigint,int)'); RETURN a = b; END \$\$;
		CREATE OPERATOR public.= (LEFTARG = bigint, RIGHTARG = int, FUNCTION = public.hj_eq_84);
		CREATE FUNCTION public.hj_eq_48(a int, b bigint) RETURNS bool LANGUAGE plpgsql SET search_path = pg_catalog
			AS \$\$ BEGIN PERFORM public.attack('=(int,bigint)'); RETURN a = b; END \$\$;
		CREATE OPERATOR public.= (LEFTARG = int, RIGHTARG = bigint, FUNCTION = public.hj_eq_48);
		CREATE FUNCTION public.hj_ne_tt(a text, b text) RETURNS bool LANGUAGE plpgsql SET search_path = pg_catalog
			AS \$\$ BEGIN PERFORM public.attack('<>(text,text)'); RETURN a <> b; END \$\$;
		CREATE OPERATOR public.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = public.hj_ne_tt);
		CREATE FUNCTION public.upper(a text) RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog
			AS \$\$ BEGIN PERFORM public.attack('upper(text)'); RETURN pg_catalog.upper(a); END \$\$;
		CREATE FUNCTION public.btrim(a text) RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog
			AS \$\$ BEGIN PERFORM public.attack('btrim(text)'); RETURN pg_catalog.btrim(a); END \$\$;
		CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql SET search_path = pg_catalog
			AS \$\$ BEGIN PERFORM public.attack('now()'); RETURN pg_catalog.now(); END \$\$;
		-- the worker's sessions too: the database's owner may set this
		ALTER DATABASE $DB SET search_path = public, pg_catalog;")
	check "hijack: odoo_owner created its operators and functions in public" "$hj" ""

	# a: the enqueue trigger, fired by the owner's INSERT
	sup $DB "SELECT lead_enrich.worker_stop()" >/dev/null
	insert_leads $DB 0 8 "SET search_path = public, pg_catalog" >/dev/null
	own $DB "SET search_path = public; UPDATE odoo.crm_lead SET email_from = 'new@' || split_part(email_from, '@', 2)
		WHERE id = (SELECT min(id) FROM odoo.crm_lead)" >/dev/null
	no_escalation $DB "hijack, INSERT and UPDATE in automatic mode"

	# b: enrich_lead / enrich_leads called by the owner
	ids=$(sup $DB "SELECT string_agg(id::text, ',' ORDER BY id) FROM (SELECT id FROM odoo.crm_lead ORDER BY id LIMIT 3) x")
	own $DB "SET search_path = public, pg_catalog;
		SELECT lead_enrich.enrich_lead(${ids%%,*});
		SELECT count(*) FROM lead_enrich.enrich_leads(ARRAY[$ids]::bigint[])" >"$OUT/hijack-enrich.out"
	no_escalation $DB "hijack, enrich_lead and enrich_leads by odoo_owner"

	# c: the worker (restarted: it reads the database's search_path)
	sup $DB "SELECT lead_enrich.worker_start()" >/dev/null
	insert_leads $DB 8 4 "SET search_path = public, pg_catalog" >/dev/null
	sup $DB "SELECT lead_enrich.wake()" >/dev/null
	if wait_for 30 $DB "SELECT count(*) FILTER (WHERE status = 'pending') = 0 AND count(*) FILTER (WHERE status = 'enriched') > 3
						FROM lead_enrich.lead_state" t sup; then
		ok "hijack: the worker processed the queued leads"
	else
		not_ok "hijack: the worker processed the queued leads" "$(sup $DB "SELECT s::text FROM lead_enrich.status s")"
	fi
	no_escalation $DB "hijack, the worker's pass"
	sup $DB "SELECT lead_enrich.worker_stop()" >/dev/null
else
	not_ok "hijack: database set up"
fi
unsuper

# ---------------------------------------------------------------------------
# 2. a BEFORE UPDATE trigger on crm_lead, written by its owner
# ---------------------------------------------------------------------------
DB=le_sec_trigger
if new_db $DB; then
	own $DB "$PAYLOAD_SQL
		CREATE FUNCTION public.crm_lead_touch() RETURNS trigger LANGUAGE plpgsql AS \$\$
		BEGIN
			PERFORM public.attack('BEFORE UPDATE trigger');
			RETURN NEW;
		END
		\$\$;
		CREATE TRIGGER crm_lead_touch BEFORE UPDATE ON odoo.crm_lead
			FOR EACH ROW EXECUTE FUNCTION public.crm_lead_touch();" >/dev/null
	insert_leads $DB 20 3 >/dev/null
	if wait_for 30 $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'enriched'" 3 sup; then
		ok "trigger: the worker enriched the 3 leads"
	else
		not_ok "trigger: the worker enriched the 3 leads" "$(sup $DB "SELECT s::text FROM lead_enrich.status s")"
	fi
	check "trigger: the leads' company names are filled" \
		"$(sup $DB "SELECT count(*) FROM odoo.crm_lead WHERE partner_name IS NOT NULL")" 3
	check "trigger: the owner's trigger ran as odoo_owner when the worker wrote" \
		"$(sup $DB "SELECT coalesce(string_agg(DISTINCT usr::text, ','), '(never ran)') FROM public.attack_log")" "$OWNER"
	no_escalation $DB "trigger, the worker's UPDATE"
	sup $DB "SELECT lead_enrich.worker_stop()" >/dev/null
else
	not_ok "trigger: database set up"
fi
unsuper

# ---------------------------------------------------------------------------
# 3. views in place of res_country and ir_config_parameter, attach() again
# ---------------------------------------------------------------------------
DB=le_sec_view
if new_db $DB; then
	v=$(own $DB "$PAYLOAD_SQL
		CREATE FUNCTION public.evil(what text, v anyelement) RETURNS anyelement LANGUAGE plpgsql AS \$\$
		BEGIN
			PERFORM public.attack(what);
			RETURN v;
		END
		\$\$;
		ALTER TABLE odoo.res_country RENAME TO res_country_data;
		CREATE VIEW odoo.res_country AS
			SELECT id, name, public.evil('res_country view', code) AS code, phone_code FROM odoo.res_country_data;
		ALTER TABLE odoo.ir_config_parameter RENAME TO ir_config_parameter_data;
		CREATE VIEW odoo.ir_config_parameter AS
			SELECT id, public.evil('ir_config_parameter view', key) AS key, public.evil('ir_config_parameter view', value) AS value
			FROM odoo.ir_config_parameter_data;
		ALTER TABLE odoo.iap_account RENAME TO iap_account_data;
		CREATE VIEW odoo.iap_account AS
			SELECT id, name, public.evil('iap_account view', service_name) AS service_name, account_token
			FROM odoo.iap_account_data;")
	check "view: odoo_owner replaced res_country, ir_config_parameter and iap_account with views" "$v" ""
	sup $DB "SELECT lead_enrich.attach('odoo.crm_lead')" >"$OUT/view-attach.out"
	no_escalation $DB "view, attach() again by the superuser"
	insert_leads $DB 30 3 >/dev/null
	if wait_for 30 $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'pending' AND attempts = 0" 0 sup; then
		ok "view: the worker looked at every lead"
	else
		not_ok "view: the worker looked at every lead" "$(sup $DB "SELECT s::text FROM lead_enrich.status s")"
	fi
	no_escalation $DB "view, the worker's pass"
	sup $DB "SELECT lead_enrich.worker_stop()" >/dev/null
	insert_leads $DB 40 1 >/dev/null
	own $DB "SELECT lead_enrich.enrich_lead(max(id)) FROM odoo.crm_lead" >"$OUT/view-enrich.out"
	no_escalation $DB "view, enrich_lead by odoo_owner"
else
	not_ok "view: database set up"
fi
unsuper

# ---------------------------------------------------------------------------
# 6. a mapped column dropped or renamed, the table renamed: the CRM's
#    INSERT keeps working (each on a fresh copy, attached, automatic mode)
# ---------------------------------------------------------------------------
DB=le_sec_ddl
# ddl_case N COLUMN ACTION: copy N of crm_lead, attached; then, in one
# session of odoo_owner, an INSERT (plans warm), the ALTER TABLE, an INSERT.
# Sets DDL_INSERT (ok or the error), DDL_DONE (t: the DDL took effect),
# DDL_OUT (the session's output).
ddl_case() {
	local n=$1 col=$2 action=$3 t=crm_lead_c$1 alter newcol
	case $action in
	drop) alter="ALTER TABLE odoo.$t DROP COLUMN $col" newcol= ;;
	rename) alter="ALTER TABLE odoo.$t RENAME COLUMN $col TO ${col}_moved" newcol=${col}_moved ;;
	table) alter="ALTER TABLE odoo.$t RENAME TO ${t}_old" newcol= ;;
	esac
	own $DB "CREATE TABLE odoo.$t (LIKE odoo.crm_lead INCLUDING ALL)" >/dev/null
	sup $DB "SELECT lead_enrich.attach('odoo.$t')" >/dev/null
	# the second INSERT names only the columns the table still has
	DDL_OUT=$(sql_as "$OWNER" $DB -v ON_ERROR_STOP=0 -v VERBOSITY=verbose <<-SQL
		INSERT INTO odoo.$t (name, type, active, probability, email_from)
			VALUES ('before $n', 'lead', true, 10, 'before$n@gmail.com') RETURNING 'INSERT1 ok';
		$alter;
		SELECT to_regclass('odoo.${t}_old') IS NOT NULL
			OR NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('odoo.$t')
						   AND attname = '$col' AND NOT attisdropped) AS done \gset
		SELECT coalesce(to_regclass('odoo.${t}_old'), to_regclass('odoo.$t')) AS rel,
			   string_agg(quote_ident(c), ', ') AS cols,
			   string_agg(v, ', ') AS vals
		FROM (VALUES ('name', '''after $n'''), ('type', '''lead'''), ('active', 'true'),
					 ('probability', '10'), ('email_from', '''after$n@gmail.com''')) AS x(c, v)
		WHERE c <> '$col' OR NOT :'done' \gset
		\if :done
		SELECT 'DDL done';
		\if $([ -n "$newcol" ] && echo true || echo false)
		SELECT :'cols' || ', ' || quote_ident('$newcol') AS cols,
			   :'vals' || ', ' || CASE '$col' WHEN 'name' THEN '''after $n''' WHEN 'type' THEN '''lead''' ELSE 'DEFAULT' END AS vals \gset
		\endif
		\endif
		INSERT INTO :rel (:cols) VALUES (:vals) RETURNING 'INSERT2 ok';
	SQL
	)
	DDL_DONE=f
	[[ $DDL_OUT == *"DDL done"* ]] && DDL_DONE=t
	if [[ $DDL_OUT == *"INSERT2 ok"* ]]; then DDL_INSERT=ok; else DDL_INSERT=$(grep -m1 ERROR <<<"$DDL_OUT"); fi
}

if new_db $DB; then
	mapfile -t COLS < <(sup $DB "SELECT value FROM lead_enrich.config, jsonb_each_text(columns)
								 WHERE key NOT LIKE '%:type' AND key <> 'id' ORDER BY key")
	if [ ${#COLS[@]} -ge 10 ]; then
		ok "ddl: attach() maps ${#COLS[@]} columns besides id"
	else
		not_ok "ddl: attach() maps ${#COLS[@]} columns besides id" "${COLS[*]}"
	fi
	n=0
	status_missing=()
	for col in "${COLS[@]}"; do
		n=$((n + 1))
		ddl_case $n "$col" drop
		if [ "$DDL_INSERT" = ok ]; then
			ok "ddl: DROP COLUMN $col, then an INSERT into crm_lead succeeds$([ $DDL_DONE = f ] && echo ' (the DROP was refused)')"
		else
			not_ok "ddl: DROP COLUMN $col, then an INSERT into crm_lead succeeds" "$DDL_INSERT"
		fi
		# soft: the status says the table needs attach() again (or the
		# DROP was refused with a message naming lead_enrich)
		if [ $DDL_DONE = f ] && grep -q 'ERROR.*lead_enrich\|DETAIL.*lead_enrich' <<<"$DDL_OUT"; then
			:
		elif ! wait_for 1 $DB "SELECT bool_or(s::text ~* 'detach|attach') FROM lead_enrich.status s" t sup >/dev/null; then
			status_missing+=("$col")
		fi
	done
	if [ ${#status_missing[@]} = 0 ]; then
		ok "ddl (soft): after each DROP COLUMN, lead_enrich.status mentions attach/detach (or the DROP was refused naming lead_enrich)"
	else
		not_ok "ddl (soft): after each DROP COLUMN, lead_enrich.status mentions attach/detach (or the DROP was refused naming lead_enrich)" \
			"not mentioned after dropping: ${status_missing[*]}"
	fi
	for col in "${COLS[@]}"; do
		n=$((n + 1))
		ddl_case $n "$col" rename
		if [ "$DDL_INSERT" = ok ]; then
			ok "ddl: RENAME COLUMN $col, then an INSERT into crm_lead succeeds$([ $DDL_DONE = f ] && echo ' (the RENAME was refused)')"
		else
			not_ok "ddl: RENAME COLUMN $col, then an INSERT into crm_lead succeeds" "$DDL_INSERT"
		fi
	done
	n=$((n + 1))
	ddl_case $n "" table
	if [ "$DDL_INSERT" = ok ]; then
		ok "ddl: RENAME TO crm_lead_old, then an INSERT into the renamed table succeeds"
	else
		not_ok "ddl: RENAME TO crm_lead_old, then an INSERT into the renamed table succeeds" "$DDL_INSERT"
	fi
	sup $DB "SELECT lead_enrich.worker_stop()" >/dev/null
else
	not_ok "ddl: database set up"
fi

# ---------------------------------------------------------------------------
# 4. the token, read by a member of lead_enrich_user
# ---------------------------------------------------------------------------
DB=le_sec_token
# leaks FILE: the lines of FILE holding the token
leaks() { grep -F -- "$TOKEN" "$1"; }
if new_db $DB; then
	own $DB "GRANT USAGE ON SCHEMA odoo TO $SALES;
		GRANT SELECT, UPDATE ON odoo.crm_lead TO $SALES;
		GRANT SELECT ON ALL TABLES IN SCHEMA odoo TO $SALES;" >/dev/null
	insert_leads $DB 50 3 >/dev/null
	wait_for 30 $DB "SELECT count(*) FROM lead_enrich.lead_state WHERE status = 'enriched'" 3 sup >/dev/null
	# no credits left: calls are refused, the worker pauses
	prov "SELECT provider.add_credits('$TOKEN', -1000000000)" >/dev/null
	insert_leads $DB 60 3 >/dev/null
	wait_for 20 $DB "SELECT pause_reason IS NOT NULL OR last_error IS NOT NULL FROM lead_enrich.status" t sup >/dev/null
	sup $DB "SELECT lead_enrich.worker_stop()" >/dev/null
	# a lead in no batch of the worker's (those are left to the worker),
	# so that a manual call is sent and refused
	insert_leads $DB 70 1 >/dev/null
	pending=$(sup $DB "SELECT coalesce(min(lead_id), 0) FROM lead_enrich.lead_state WHERE status = 'pending' AND batch_id IS NULL")

	# every function sales may call: zero-argument ones (or all defaulted),
	# and the ones taking a lead, a credit or mining criteria
	mapfile -t FUNCS < <(sales $DB "SELECT p.oid::regproc FROM pg_proc p
		WHERE p.pronamespace = 'lead_enrich'::regnamespace AND p.prokind = 'f'
		  AND p.prorettype <> 'trigger'::regtype AND p.pronargs = p.pronargdefaults
		  AND has_function_privilege(p.oid, 'EXECUTE') ORDER BY 1")
	CALLS=()
	for f in "${FUNCS[@]}"; do CALLS+=("SELECT x::text FROM $f() x"); done
	CALLS+=("SELECT lead_enrich.iap_credit_url(0)"
		"SELECT lead_enrich.iap_credit_url(100)"
		"SELECT lead_enrich.enrich_lead($pending)"
		"SELECT x::text FROM lead_enrich.enrich_leads(ARRAY(SELECT id FROM odoo.crm_lead)::bigint[]) x"
		"SELECT x::text FROM lead_enrich.generate_leads('{\"countries\": [\"BE\"], \"lead_number\": 1}') x")
	refused=f
	i=0
	for c in "${CALLS[@]}"; do
		i=$((i + 1))
		sql_as "$SALES" $DB -v ON_ERROR_STOP=0 -v VERBOSITY=verbose -c "$c" >"$OUT/token-call-$i.out"
		grep -qi 'credit' "$OUT/token-call-$i.out" && grep -q 'ERROR\|WARNING' "$OUT/token-call-$i.out" && refused=t
		if leaks "$OUT/token-call-$i.out" >/dev/null; then
			not_ok "token: not shown to $SALES by: $c" "$(leaks "$OUT/token-call-$i.out")"
		else
			ok "token: not shown to $SALES by: $c"
		fi
	done
	check "token: a call of $SALES was refused for lack of credits (error paths exercised)" "$refused" t

	# every view and table of the schema sales may read
	mapfile -t RELS < <(sales $DB "SELECT c.oid::regclass FROM pg_class c
		WHERE c.relnamespace = 'lead_enrich'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
		  AND has_table_privilege(c.oid, 'SELECT') ORDER BY 1")
	: >"$OUT/token-rels.out"
	for r in "${RELS[@]}"; do
		echo "== $r" >>"$OUT/token-rels.out"
		sales $DB "SELECT x::text FROM $r x" >>"$OUT/token-rels.out"
	done
	if [ ${#RELS[@]} -gt 0 ] && ! leaks "$OUT/token-rels.out" >/dev/null; then
		ok "token: not in the ${#RELS[@]} lead_enrich views and tables $SALES can read (status included)"
	else
		not_ok "token: not in the ${#RELS[@]} lead_enrich views and tables $SALES can read" "$(leaks "$OUT/token-rels.out")"
	fi

	# settings
	sql_as "$SALES" $DB -v ON_ERROR_STOP=0 -v VERBOSITY=verbose >"$OUT/token-settings.out" <<-SQL
		SELECT current_setting('lead_enrich.account_token', true);
		SHOW lead_enrich.account_token;
		SELECT x::text FROM pg_settings x WHERE name ~ 'lead_enrich';
		SELECT x::text FROM pg_show_all_settings() x WHERE name ~ 'lead_enrich';
		SELECT x::text FROM pg_db_role_setting x;
		SELECT x::text FROM pg_file_settings x;
	SQL
	if leaks "$OUT/token-settings.out" >/dev/null; then
		not_ok "token: not readable by $SALES through current_setting, SHOW, pg_settings, pg_db_role_setting, pg_file_settings" "$(leaks "$OUT/token-settings.out")"
	else
		ok "token: not readable by $SALES through current_setting, SHOW, pg_settings, pg_db_role_setting, pg_file_settings"
	fi
	# the server log: lead_enrich's own messages, then PostgreSQL's report
	# of a reloaded setting ('parameter "..." changed to "..."'), which
	# shows the value of any parameter set with ALTER SYSTEM
	tail -n +"$logstart" "$LE_RUNDIR/postgres.log" | grep -F -- "$TOKEN" >"$OUT/token-log.out"
	if grep -v 'parameter "lead_enrich.account_token" changed to' "$OUT/token-log.out" >/dev/null; then
		not_ok "token: not in any server log line of lead_enrich (errors, warnings, the worker)" \
			"$(grep -v 'parameter "lead_enrich.account_token" changed to' "$OUT/token-log.out" | head -3)"
	else
		ok "token: not in any server log line of lead_enrich (errors, warnings, the worker)"
	fi
	# PostgreSQL's own 'parameter ... changed to' line on reload is the
	# server's, written to a log only the server's OS user and superusers
	# read (README, Security model): it is not lead_enrich's to hide.

	# the token as a database- or role-level setting, even by a superuser:
	# refused, or a WARNING (when set, or when a session starts)
	for target in "DATABASE $DB" "ROLE $SALES"; do
		tok=$DB_TOKEN
		[ "$target" = "ROLE $SALES" ] && tok=$ROLE_TOKEN
		out=$(sup $DB "ALTER $target SET lead_enrich.account_token = '$tok'")
		rc=$?
		if [ $rc = 0 ]; then
			out+=" / new session of postgres: $(sql_as postgres $DB -c "SELECT 1")"
			out+=" / new session of $SALES: $(sql_as "$SALES" $DB -c "SELECT 1")"
		fi
		if [ $rc != 0 ] || grep -q 'WARNING.*account_token\|WARNING.*token' <<<"$out"; then
			ok "token: ALTER $target SET lead_enrich.account_token is refused or warned about"
		else
			not_ok "token: ALTER $target SET lead_enrich.account_token is refused or warned about" "accepted without an error or a WARNING: $out"
		fi
		sup $DB "ALTER $target RESET lead_enrich.account_token" >/dev/null
	done

	# ---------------------------------------------------------------------------
	# 5. forged outcomes: sales writes no table of lead_enrich
	# ---------------------------------------------------------------------------
	# a lead without an outcome, and one with an outcome that is not 'enriched'
	own $DB "INSERT INTO odoo.crm_lead (name, type, active, email_from) VALUES ('No mail', 'lead', true, NULL)" >/dev/null
	nomail=$(sup $DB "SELECT max(id) FROM odoo.crm_lead")
	victim=$(sup $DB "SELECT coalesce(min(lead_id), 0) FROM lead_enrich.lead_state WHERE status <> 'enriched'")
	victim_was=$(sup $DB "SELECT status FROM lead_enrich.lead_state WHERE lead_id = $victim")
	mapfile -t TABLES < <(sup $DB "SELECT c.oid::regclass FROM pg_class c
		WHERE c.relnamespace = 'lead_enrich'::regnamespace AND c.relkind IN ('r', 'p') ORDER BY 1")
	for t in "${TABLES[@]}"; do
		col1=$(sup $DB "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = '$t'::regclass AND attnum = 1")
		if [ "$t" = lead_enrich.lead_state ]; then
			ins="INSERT INTO $t (lead_id, status) VALUES ($nomail, 'enriched')"
			upd="UPDATE $t SET status = 'enriched', credits = 0 WHERE lead_id = $victim"
			del="DELETE FROM $t WHERE lead_id = $victim"
		else
			ins="INSERT INTO $t ($col1) SELECT $col1 FROM $t WHERE false"
			upd="UPDATE $t SET $col1 = $col1 WHERE false"
			del="DELETE FROM $t WHERE false"
		fi
		allowed=()
		for stmt in "$ins" "$upd" "$del" "TRUNCATE $t"; do
			out=$(sales $DB "$stmt")
			grep -q 'permission denied' <<<"$out" || allowed+=("${stmt%% *}: ${out:-succeeded}")
		done
		if [ ${#allowed[@]} = 0 ]; then
			ok "forge: $SALES cannot INSERT, UPDATE, DELETE or TRUNCATE $t"
		else
			not_ok "forge: $SALES cannot INSERT, UPDATE, DELETE or TRUNCATE $t" "$(printf '%s\n' "${allowed[@]}")"
		fi
	done
	check "forge: no forged outcome stuck (lead $nomail has none, lead $victim still '$victim_was')" \
		"$(sup $DB "SELECT (SELECT count(*) FROM lead_enrich.lead_state WHERE lead_id = $nomail) || '|' ||
						   (SELECT status FROM lead_enrich.lead_state WHERE lead_id = $victim)")" "0|$victim_was"
	out=$(sales $DB "SELECT count(*) > 0 FROM lead_enrich.lead_state")
	check "forge: $SALES still reads lead_enrich.lead_state" "$out" t
else
	not_ok "token: database set up"
fi

finish
