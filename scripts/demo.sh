#!/usr/bin/env bash
# Quick start: installs what is missing, builds, starts a throwaway cluster
# and the reference provider, creates an Odoo-style CRM table with
# realistic leads, enriches them and shows the table before and after.
# Leaves everything running; scripts/stop.sh stops it.
source "$(dirname "$0")/common.sh"

le_deps
le_build
le_cluster_start "lead_enrich.account_token = 'demo-account'"
le_provider_start --trial-credits 1000

le_log "creating database crm with an Odoo 17 crm_lead table"
le_psql -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS crm" -c "CREATE DATABASE crm" >/dev/null
le_psql -d crm -f "$LE_REPO/test/fixtures/odoo17_crm.sql" >/dev/null
python3 "$LE_REPO/scripts/gen_res_country.py" odoo | le_psql -d crm >/dev/null
le_psql -d crm -c "CREATE EXTENSION lead_enrich" \
	-c "SELECT lead_enrich.attach('odoo.crm_lead')" >/dev/null

# Real organisations from the provider's directory, a few of each kind.
domains=$(le_psql -d lead_provider -tA -c "
	(SELECT domain FROM provider.org WHERE company ->> 'company_type' = 'government' AND state_code IS NOT NULL
	 ORDER BY md5(domain) LIMIT 3)
	UNION ALL (SELECT domain FROM provider.org WHERE company ->> 'company_type' = 'education'
			   AND country_code IN ('GB', 'DE', 'FR', 'AU') ORDER BY md5(domain) LIMIT 3)
	UNION ALL (SELECT domain FROM provider.org WHERE company ->> 'company_type' = 'private'
			   AND company ->> 'logo' IS NOT NULL AND country_code = 'US' ORDER BY md5(domain) LIMIT 3)
	UNION ALL (SELECT domain FROM provider.org WHERE company -> 'tech' ? 'php' ORDER BY md5(domain) LIMIT 2)")
i=0
values=""
for d in $domains; do
	i=$((i + 1))
	values+="('Lead $i', 'lead', true, 10, 'contact$i@$d', false),"
done
values+="('Webmail lead', 'lead', true, 10, 'Jane Doe <jane.doe@gmail.com>', false),"
values+="('Typo lead', 'lead', true, 10, 'john.doe@@example', false),"
values+="('Two addresses', 'lead', true, 10, 'a@x.org, b@y.org', false),"
values+="('Unknown company', 'lead', true, 10, 'sales@no-such-company-$(date +%s).com', false),"
values+="('Subdomain lead', 'lead', true, 10, 'press@news.$(echo "$domains" | head -1)', false)"
le_psql -d crm -c "INSERT INTO odoo.crm_lead (name, type, active, probability, email_from, iap_enrich_done) VALUES $values" >/dev/null

show() {
	le_psql -d crm -P pager=off -c "
	SELECT l.id, l.email_from, l.partner_name, l.city, c.code AS country, s.code AS state,
		   left(l.reveal_id, 8) AS reveal_id, l.iap_enrich_done AS done
	FROM odoo.crm_lead l
	LEFT JOIN odoo.res_country c ON c.id = l.country_id
	LEFT JOIN odoo.res_country_state s ON s.id = l.state_id
	ORDER BY l.id"
}

le_log "the leads before enrichment"
show
le_log "SELECT * FROM lead_enrich.enrich_leads(ARRAY(SELECT id FROM odoo.crm_lead))"
le_psql -d crm -P pager=off -c "SELECT lead_id, status, filled, credits, detail
	FROM lead_enrich.enrich_leads(ARRAY(SELECT id FROM odoo.crm_lead)) ORDER BY lead_id"
le_log "the leads after enrichment"
show
le_log "what the provider knew (lead_enrich.enrichment)"
le_psql -d crm -P pager=off -c "SELECT lead_id, company_name, company_type, sector, industry, timezone,
	   technologies, twitter, left(logo, 40) AS logo
	FROM lead_enrich.enrichment WHERE status = 'enriched' ORDER BY lead_id"
le_log "the notes posted to Odoo's chatter (odoo.mail_message, as OdooBot)"
le_psql -d crm -P pager=off -c "SELECT m.res_id AS lead_id, m.record_name AS lead,
	   left(regexp_replace(regexp_replace(m.body, '<[^>]*>', ' ', 'g'), '\s+', ' ', 'g'), 90) AS note
	FROM odoo.mail_message m WHERE m.model = 'crm.lead' ORDER BY m.res_id, m.id"
le_log "credits"
le_psql -d crm -P pager=off -c "SELECT lead_enrich.iap_balance() AS balance, sum(credits) AS spent_here
	FROM lead_enrich.lead_state"

cat <<EOT

The cluster and the provider are still running:
  psql -h $LE_RUNDIR -p $LE_PGPORT -U postgres crm
  provider: http://127.0.0.1:$LE_PROVIDER_PORT  (log: $LE_RUNDIR/provider.log)
Stop them with:
  scripts/stop.sh            (add --clean to delete $LE_RUNDIR)
EOT
