#!/usr/bin/env bash
# The shipped webmail list against the project's directory of real
# organisations (data/directory.csv.gz): how many organisations would be
# skipped as generic_domain, through the same rule enrichment applies
# (lead_enrich.webmail_match).  The figure is printed; the skipped set must
# be exactly the consumer mail services named below, each an organisation
# whose domain is also its customers' mail domain, so their addresses are
# private persons'.  A change of the list or of the rule that skips a real
# organisation (a whole country under a public suffix, a city, a
# university) fails here.
#
# Prints "ok - ..." / "not ok - ..." and a final "N passed, N failed" line.
source "$(dirname "$0")/lib.sh"


# consumer mail services that are also organisations of the directory
expected="docomo.ne.jp free.fr freenet.de frontier.com gaggle.net homestead.com o2.co.uk oi.com.br \
poste.it rogers.com sfr.fr telenet.be virginmedia.com vnn.vn voo.be yandex.ru ziggo.nl"

db=le_webmail
le_psql -d postgres -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" 2>/dev/null
le_psql -d $db -q -c "CREATE EXTENSION lead_enrich" -c "CREATE TABLE org (domain text PRIMARY KEY, aliases text, name text)"
# the directory's domain, aliases and name columns
python3 -c '
import csv, gzip, sys
w = csv.writer(sys.stdout)
for r in csv.DictReader(gzip.open(sys.argv[1], "rt", encoding="utf-8")):
    w.writerow([r["domain"], r["aliases"], r["name"]])
' "$LE_REPO/data/directory.csv.gz" | le_psql -d $db -c "\\copy org FROM STDIN WITH (FORMAT csv)" >/dev/null

total=$(le_psql -d $db -tA -c "SELECT count(*) FROM org")
check "the directory is loaded" "$([ "$total" -gt 40000 ] && echo yes)" "yes"
skipped=$(le_psql -d $db -tA -c "SELECT string_agg(domain, ' ' ORDER BY domain) FROM org WHERE lead_enrich.webmail_match(domain) IS NOT NULL")
n=$(echo "$skipped" | wc -w)
echo "# the shipped webmail list skips $n of $total directory organisations: $skipped"
check "the organisations skipped as webmail are the $(echo "$expected" | wc -w) consumer mail services" "$skipped" "$expected"
aliases=$(le_psql -d $db -tA -c "SELECT count(DISTINCT o.domain) FROM org o, unnest(o.aliases::text[]) a
	WHERE lead_enrich.webmail_match(a) IS NOT NULL AND lead_enrich.webmail_match(o.domain) IS NULL")
echo "# $aliases more organisations have a consumer mail domain among their aliases (mac.com of apple.com, orange.fr of orange.com); their own domain is enriched"
check "no organisation under a public suffix is skipped" \
	"$(le_psql -d $db -tA -c "SELECT count(*) FROM org WHERE domain ~ '\\.(com\\.ar|org\\.ua|net\\.ua|spb\\.ru|msk\\.ru|za\\.com)$' AND lead_enrich.webmail_match(domain) IS NOT NULL")" \
	"0"

# pg_dump and restore: the rows a DBA added come back, the shipped rows come
# from CREATE EXTENSION alone (a dump of them too would collide with them)
le_psql -d $db -q -c "DROP TABLE org" -c "INSERT INTO lead_enrich.webmail_domain (domain) VALUES ('mail.example-isp.net')"
le_psql -d postgres -q -c "DROP DATABASE IF EXISTS ${db}_restored WITH (FORCE)" -c "CREATE DATABASE ${db}_restored" 2>/dev/null
restore_log=$LE_RUNDIR/t_webmail-restore.log
pg_dump -h "$LE_RUNDIR" -p "$LE_PGPORT" -U postgres -d $db 2>&1 |
	psql -X -q -h "$LE_RUNDIR" -p "$LE_PGPORT" -U postgres -d ${db}_restored >"$restore_log" 2>&1
check "a dump restores without errors" "$(grep -c ERROR "$restore_log")" "0"
list_of() { le_psql -d "$1" -tA -c "SELECT count(*) FILTER (WHERE shipped) || ' shipped + ' || string_agg(domain, ',') FILTER (WHERE NOT shipped) FROM lead_enrich.webmail_domain" 2>&1; }
before=$(list_of $db)
case $before in *" shipped + mail.example-isp.net") ;; *) before="unexpected: $before" ;; esac
check "the restored list is the shipped list plus the DBA's row" "$(list_of ${db}_restored)" "$before"

# ALTER EXTENSION UPDATE from 1.1 keeps a DBA's rows (in the spelling the
# look-up needs), drops what 1.2 no longer ships, marks the shipped rows
le_psql -d postgres -q -c "DROP DATABASE IF EXISTS ${db}_up WITH (FORCE)" -c "CREATE DATABASE ${db}_up" 2>/dev/null
le_psql -d ${db}_up -q -c "CREATE EXTENSION lead_enrich VERSION '1.1'" \
	-c "INSERT INTO lead_enrich.webmail_domain VALUES ('Mail.Example-ISP.net.'), ('intranet-mail.example')" \
	-c "DELETE FROM lead_enrich.webmail_domain WHERE domain = 'free.fr'" -c "ALTER EXTENSION lead_enrich UPDATE"
check "an upgrade keeps the DBA's rows, lower-cased" \
	"$(le_psql -d ${db}_up -tA -c "SELECT string_agg(domain, ',' ORDER BY domain) FROM lead_enrich.webmail_domain WHERE NOT shipped")" \
	"intranet-mail.example,mail.example-isp.net"
check "an upgrade ships the 1.2 list (a shipped row the DBA deleted stays deleted)" \
	"$(le_psql -d ${db}_up -tA -c "SELECT count(*) FROM lead_enrich.webmail_domain WHERE shipped")" \
	"$(($(le_psql -d ${db}_restored -tA -c "SELECT count(*) FROM lead_enrich.webmail_domain WHERE shipped") - 1))"
check "after the upgrade, a company under com.ar is not webmail" \
	"$(le_psql -d ${db}_up -tA -c "SELECT coalesce(lead_enrich.webmail_match('bna.com.ar'), 'enriched')")" "enriched"
le_psql -d postgres -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "DROP DATABASE IF EXISTS ${db}_restored WITH (FORCE)" \
	-c "DROP DATABASE IF EXISTS ${db}_up WITH (FORCE)" 2>/dev/null
finish
