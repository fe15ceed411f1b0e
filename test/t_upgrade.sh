#!/usr/bin/env bash
# Upgrade path: install the previous version, ALTER EXTENSION ... UPDATE,
# check that the result is the same as a fresh install (catalog, grants,
# reference data) and that data survives, then run the whole pg_regress
# suite against the upgraded extension.
#
# Prints "ok - ..." / "not ok - ..." and a final "N passed, N failed" line.
source "$(dirname "$0")/lib.sh"


current=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$LE_REPO/lead_enrich.control")
previous=$(ls "$LE_REPO"/sql/lead_enrich--*--"$current".sql 2>/dev/null | sed 's/.*lead_enrich--\(.*\)--.*/\1/' | sort -V | tail -1)
if [ -z "$previous" ]; then
	not_ok "an upgrade script to $current exists"
	finish
fi

# every object of schema lead_enrich, with its definition and privileges,
# and the contents of the reference tables
catalog() {
	le_psql -d "$1" -tA -c "
	SELECT kind || ' ' || what FROM (
	  SELECT 'function' AS kind, p.oid::regprocedure || ' ' || md5(pg_get_functiondef(p.oid))
			 || ' ' || coalesce(p.proacl::text, '') || ' ' || p.prosecdef AS what
	  FROM pg_proc p WHERE p.pronamespace = 'lead_enrich'::regnamespace
	  UNION ALL
	  SELECT 'relation', c.relname || ' ' || c.relkind::text || ' ' || coalesce(c.relacl::text, '')
			 || ' ' || coalesce(array_to_string(c.reloptions, ','), '')
	  FROM pg_class c WHERE c.relnamespace = 'lead_enrich'::regnamespace
	  UNION ALL
	  SELECT 'column', c.relname || '.' || a.attnum || ' ' || a.attname || ' '
			 || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull || ' '
			 || coalesce(pg_get_expr(d.adbin, d.adrelid), '') || ' ' || a.attgenerated::text
	  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
	  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
	  WHERE c.relnamespace = 'lead_enrich'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
	  UNION ALL
	  SELECT 'constraint', conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
	  FROM pg_constraint WHERE connamespace = 'lead_enrich'::regnamespace
	  UNION ALL
	  SELECT 'index', pg_get_indexdef(indexrelid)
	  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	  WHERE c.relnamespace = 'lead_enrich'::regnamespace
	  UNION ALL
	  SELECT 'view', c.relname || ' ' || md5(pg_get_viewdef(c.oid))
	  FROM pg_class c WHERE c.relnamespace = 'lead_enrich'::regnamespace AND c.relkind = 'v'
	  UNION ALL
	  SELECT 'config_dump', array_to_string(extconfig::regclass[]::text[], ',') FROM pg_extension
	  WHERE extname = 'lead_enrich'
	  UNION ALL
	  SELECT 'member', count(*)::text FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
	  WHERE e.extname = 'lead_enrich' AND d.deptype = 'e'
	  UNION ALL
	  SELECT 'data webmail', count(*) || ' ' || md5(string_agg(domain, ',' ORDER BY domain))
	  FROM lead_enrich.webmail_domain
	  UNION ALL
	  SELECT 'data ' || c.relname, (xpath('/row/n/text()',
			 query_to_xml(format('SELECT count(*) AS n FROM lead_enrich.%I', c.relname), false, true, '')))[1]::text
	  FROM pg_class c WHERE c.relnamespace = 'lead_enrich'::regnamespace AND c.relkind = 'r'
	) x ORDER BY 1"
}
# a failed catalog query must not pass as "equal": both files must look right
catalog_ok() { [ "$(wc -l <"$1")" -gt 100 ] && ! grep -q '^ERROR' "$1"; }

for db in le_up_fresh le_up_upgraded le_up_regress; do
	le_psql -d postgres -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" 2>/dev/null
done

check "install version $previous" "$(q le_up_upgraded "CREATE EXTENSION lead_enrich VERSION '$previous'; SELECT extversion FROM pg_extension WHERE extname = 'lead_enrich'")" "$previous"
# data made under the previous version
q le_up_upgraded "CREATE TABLE public.leads (id bigint PRIMARY KEY, email_from text, partner_name text);
	SELECT lead_enrich.attach('public.leads');
	INSERT INTO lead_enrich.lead_state (lead_id, status, domain, company, credits)
	VALUES (1, 'enriched', 'acme.com', '{\"name\": \"Acme\"}', 1)" >/dev/null
check "ALTER EXTENSION lead_enrich UPDATE" "$(q le_up_upgraded "ALTER EXTENSION lead_enrich UPDATE; SELECT extversion FROM pg_extension WHERE extname = 'lead_enrich'")" "$current"
check "data survives the upgrade" \
	"$(q le_up_upgraded "SELECT c.lead_table::text || ' ' || s.status || ' ' || (s.company ->> 'name') FROM lead_enrich.config c, lead_enrich.lead_state s")" \
	"leads enriched Acme"
q le_up_fresh "CREATE EXTENSION lead_enrich" >/dev/null
q le_up_upgraded "SELECT lead_enrich.detach(); TRUNCATE lead_enrich.lead_state" >/dev/null
catalog le_up_fresh >"$LE_RUNDIR/catalog-fresh.txt"
catalog le_up_upgraded >"$LE_RUNDIR/catalog-upgraded.txt"
if catalog_ok "$LE_RUNDIR/catalog-fresh.txt" && catalog_ok "$LE_RUNDIR/catalog-upgraded.txt" &&
	diff -u "$LE_RUNDIR/catalog-fresh.txt" "$LE_RUNDIR/catalog-upgraded.txt" >"$LE_RUNDIR/catalog.diff"; then
	ok "the upgraded extension equals a fresh install of $current ($(wc -l <"$LE_RUNDIR/catalog-fresh.txt") catalog entries)"
else
	not_ok "the upgraded extension equals a fresh install of $current" "$(head -20 "$LE_RUNDIR/catalog.diff")"
fi

# the whole regression suite against an upgraded extension
q le_up_regress "CREATE EXTENSION lead_enrich VERSION '$previous'; ALTER EXTENSION lead_enrich UPDATE" >/dev/null
out=$LE_RUNDIR/regress-upgrade
rm -rf "$out"
mkdir -p "$out"
cd "$LE_REPO" || exit 1
# shellcheck disable=SC2046 # the test names are words
"$("$LE_PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress" --inputdir="$LE_REPO" --outputdir="$out" \
	--bindir="$LE_PGBIN" --host=127.0.0.1 --port="$LE_PGPORT" --user=postgres \
	--use-existing --dbname=le_up_regress $(make -s -C "$LE_REPO" PG_CONFIG="$LE_PG_CONFIG" print-regress) >"$out/summary.log" 2>&1
rc=$?
sed 's/^/#   /' "$out/summary.log" | grep -E 'ok|FAILED'
if [ $rc = 0 ]; then
	ok "the regression suite passes on the upgraded extension"
else
	not_ok "the regression suite passes on the upgraded extension" "$(head -40 "$out/regression.diffs" 2>/dev/null)"
fi
le_psql -d postgres -q -c "DROP DATABASE IF EXISTS le_up_fresh WITH (FORCE)" -c "DROP DATABASE IF EXISTS le_up_upgraded WITH (FORCE)" \
	-c "DROP DATABASE IF EXISTS le_up_regress WITH (FORCE)" 2>/dev/null
finish
