-- generate_leads(): lead mining against the reference provider, on Odoo's
-- crm_lead and on a plain table
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dblink;
RESET client_min_messages;
CREATE FUNCTION pg_temp.provider_query(sql text) RETURNS SETOF text LANGUAGE sql AS $$
	SELECT v FROM dblink(format('host=127.0.0.1 port=%s dbname=lead_provider user=postgres',
								current_setting('port')), sql) AS t(v text) $$;
-- credits spent on the provider, read from its ledger
CREATE FUNCTION pg_temp.spent() RETURNS integer LANGUAGE sql AS $$
	SELECT v::numeric::integer FROM pg_temp.provider_query(format('SELECT coalesce(provider.spent(%L), 0)',
		current_setting('lead_enrich.account_token'))) v $$;
-- set the account's balance
CREATE FUNCTION pg_temp.set_balance(n integer) RETURNS integer LANGUAGE sql AS $$
	SELECT v::numeric::integer FROM pg_temp.provider_query(format('SELECT provider.add_credits(%L, %s - provider.balance(%L))',
		current_setting('lead_enrich.account_token'), n, current_setting('lead_enrich.account_token'))) v $$;

-- a fresh account (1000 trial credits) and a fresh database uuid per run:
-- the provider never hands the same company twice to one database
SELECT set_config('lead_enrich.account_token', 'regress-mine-' || md5(random()::text), false) IS NOT NULL AS token_set;
CREATE TEMP TABLE saved_uuid AS SELECT value FROM odoo.ir_config_parameter WHERE key = 'database.uuid';
UPDATE odoo.ir_config_parameter SET value = gen_random_uuid()::text WHERE key = 'database.uuid';
SELECT lead_enrich.attach('odoo.crm_lead') ->> 'layout' AS layout;
-- earlier tests inserted leads with explicit ids
SELECT setval(pg_get_serial_sequence('odoo.crm_lead', 'id'), max(id)) > 0 AS seq_set FROM odoo.crm_lead;
SELECT max(id) AS last_old_lead FROM odoo.crm_lead \gset

-- every criterion is checked before anything is sent
SELECT * FROM lead_enrich.generate_leads('["BE"]');
SELECT * FROM lead_enrich.generate_leads(NULL);
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "colour": "red"}');
SELECT * FROM lead_enrich.generate_leads('{}');
SELECT * FROM lead_enrich.generate_leads('{"countries": []}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "lead_number": "ten"}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "lead_number": 2.5}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "lead_number": 201}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "lead_number": 0}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "search_type": "contacts"}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["XX"]}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["ES"]}');       -- ISO, but not in res_country
SELECT * FROM lead_enrich.generate_leads('{"countries": [32]}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["US"], "states": ["ZZ"]}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "states": ["BE-VAN"]}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["CA"], "states": ["US-CA"]}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "industries": ["Farming"]}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "industries": [{"id": 1}]}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "industries": [999]}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "company_size_min": 0}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "company_size_min": 500, "company_size_max": 50}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "contact_number": 2}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "search_type": "people", "contact_number": 6}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "search_type": "people", "preferred_role": "Wizard"}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "search_type": "people", "other_roles": ["sale", "dancing"]}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "search_type": "people", "seniority": "intern"}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "search_type": "people", "seniority": "manager", "preferred_role": "CEO"}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "search_type": "people", "contact_filter_type": "seniority"}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "search_type": "people", "contact_filter_type": "age"}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "lead_type": "deal"}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "team_id": 99}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "user_id": 99}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "tags": ["Cold"]}');
-- wrong types and bounds
SELECT * FROM lead_enrich.generate_leads('{"countries": {"BE": true}}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["  "]}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["US"], "states": [6]}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "industries": ["Software & Services", true]}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "search_type": 1}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "company_size_max": 3000000000}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "company_size_max": -5}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "company_size_min": "10"}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "search_type": "people", "contact_number": 0}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "search_type": "people", "preferred_role": ["CEO"]}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "search_type": "people", "seniority": 3}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "search_type": "people", "contact_filter_type": "role", "seniority": "manager"}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "lead_type": 1}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "team_id": "1"}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "user_id": 0}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "tags": [true]}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "tags": 99}');
-- a JSON null is the same as leaving the key out, but names no unknown key
SELECT * FROM lead_enrich.generate_leads('{"countries": null, "lead_number": 2}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "colour": null}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE", "be", "XX"], "search_type": null}');
-- a tag name two tags share
INSERT INTO odoo.crm_tag (name, color) VALUES ('{"en_US": "Hot", "fr_FR": "Chaud"}', 3);
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "tags": ["Mined", " hot "]}');
DELETE FROM odoo.crm_tag WHERE name ->> 'fr_FR' = 'Chaud';
-- nothing recorded, nothing sent, nothing charged
SELECT (SELECT count(*) FROM lead_enrich.mining_request) AS requests,
	   (SELECT count(*) FROM odoo.crm_iap_lead_mining_request) AS odoo_requests,
	   (SELECT count(*) FROM odoo.crm_lead WHERE id > :last_old_lead) AS leads;

-- companies mode on Odoo's table: team, salesperson, tags
SELECT count(*) AS leads, min(request_name) AS request, sum(contacts) AS contacts,
	   count(DISTINCT domain) AS domains
FROM lead_enrich.generate_leads('{"countries": ["be"], "lead_number": 5, "team_id": 1, "user_id": 2,
								  "tags": ["mined", 2]}');
SELECT pg_temp.spent() AS spent;
SELECT name, state, error_type, companies, contacts, skipped, credits, cardinality(lead_ids) AS leads,
	   jsonb_pretty(criteria) AS criteria
FROM lead_enrich.mining_request ORDER BY id;
SELECT r.name, r.state, r.error_type, r.lead_number, r.search_type, r.lead_type, r.team_id, r.user_id,
	   r.filter_on_size, r.create_date IS NOT NULL AS dated
FROM odoo.crm_iap_lead_mining_request r ORDER BY r.id;
-- Odoo's rules (lead_vals_from_response) and the ORM's defaults
SELECT count(*) AS leads,
	   bool_and(l.name = coalesce(c ->> 'name', c ->> 'domain')) AS name,
	   bool_and(l.partner_name IS NOT DISTINCT FROM coalesce(c ->> 'legal_name', c ->> 'name')) AS partner_name,
	   bool_and(l.email_from IS NOT DISTINCT FROM c -> 'email' ->> 0) AS email_from,
	   bool_and(l.phone IS NOT DISTINCT FROM coalesce(c ->> 'phone', c -> 'phone_numbers' ->> 0)) AS phone,
	   bool_and(l.website = 'https://www.' || (c ->> 'domain')) AS website,
	   bool_and(l.street IS NOT DISTINCT FROM c ->> 'location' AND l.city IS NOT DISTINCT FROM c ->> 'city'
				AND l.zip IS NOT DISTINCT FROM c ->> 'postal_code') AS address,
	   bool_and(l.country_id = (SELECT id FROM odoo.res_country WHERE code = 'BE')) AS country,
	   bool_and(l.reveal_id = c ->> 'clearbit_id') AS reveal_id,
	   bool_and(l.contact_name IS NULL AND l.function IS NULL) AS no_contact,
	   bool_and(l.type = 'lead' AND l.active AND l.priority = '0' AND l.color = 0
				AND l.message_bounce = 0) AS odoo_defaults,
	   bool_and(l.stage_id = (SELECT id FROM odoo.crm_stage WHERE name ->> 'en_US' = 'New')) AS stage,
	   bool_and(l.team_id = 1 AND l.user_id = 2 AND l.create_uid = 2 AND l.write_uid = 2) AS assigned,
	   bool_and(l.date_open IS NOT NULL AND l.date_last_stage_update IS NOT NULL
				AND l.create_date IS NOT NULL AND l.write_date IS NOT NULL) AS dates,
	   bool_and(l.email_from IS NULL OR (l.email_normalized = lower(l.email_from)
				AND l.email_domain_criterion = '@' || split_part(lower(l.email_from), '@', 2)
				AND l.email_state = 'correct')) AS email_computed,
	   bool_and(l.lead_mining_request_id = (SELECT odoo_request_id FROM lead_enrich.mining_request WHERE name = 'LMR001')) AS request_link,
	   bool_and(l.iap_enrich_done IS NULL) AS not_marked,
	   bool_and((SELECT count(*) FROM odoo.crm_tag_rel t WHERE t.lead_id = l.id) = 2) AS tagged,
	   bool_and(s.status = 'mined' AND s.source = 'mining' AND s.credits = 1
				AND s.domain = c ->> 'domain') AS lead_state
FROM odoo.crm_lead l
JOIN lead_enrich.lead_state s ON s.lead_id = l.id
CROSS JOIN LATERAL (SELECT s.company AS c) x
WHERE l.id > :last_old_lead;
-- the result rows are the leads of the request
SELECT (SELECT array_agg(x ORDER BY x) FROM unnest(lead_ids) x)
	 = (SELECT array_agg(id::bigint ORDER BY id) FROM odoo.crm_lead WHERE id > :last_old_lead) AS same_leads
FROM lead_enrich.mining_request WHERE name = 'LMR001';
-- mined leads are never sent for enrichment
SELECT DISTINCT r.status, r.detail
FROM lead_enrich.enrich_leads(ARRAY(SELECT id FROM odoo.crm_lead WHERE id > :last_old_lead)) r;
SELECT pg_temp.spent() AS spent_still;

-- contacts mode: US states, an industry, roles; opportunities
SELECT pg_temp.spent() AS before_people \gset
SELECT max(id) AS last_lead FROM odoo.crm_lead \gset
SELECT count(*) AS leads, sum(contacts) > count(*) AS several_contacts, bool_and(contacts BETWEEN 1 AND 2) AS at_most_2
FROM lead_enrich.generate_leads('{"countries": ["US"], "states": ["CA", "us-ny"], "industries": ["Consumer Services", 136],
								  "lead_number": 4, "search_type": "people", "contact_number": 2,
								  "preferred_role": "ceo", "other_roles": ["Marketing", "sale"],
								  "lead_type": "opportunity"}');
SELECT name, state, companies, cardinality(lead_ids) AS leads, credits = companies + contacts AS priced,
	   credits = pg_temp.spent() - :before_people AS charged_as_recorded, criteria
FROM lead_enrich.mining_request WHERE name = 'LMR002';
SELECT count(*) AS leads,
	   bool_and(l.contact_name = p ->> 'full_name') AS contact_name,
	   bool_and(l.function IS NOT DISTINCT FROM p ->> 'title') AS function,
	   bool_and(l.email_from = p ->> 'email') AS email_from,
	   bool_and(st.code IN ('CA', 'NY') AND st.code = c ->> 'state_code') AS state,
	   bool_and(l.country_id = (SELECT id FROM odoo.res_country WHERE code = 'US')) AS country,
	   bool_and(l.type = 'opportunity' AND l.user_id IS NULL AND l.date_open IS NULL) AS opportunity,
	   bool_and(s.credits = 1 + jsonb_array_length(c -> 'people_data')) AS lead_credits,
	   bool_and(p ->> 'role' IN ('CEO', 'marketing', 'sale')) AS first_contact_role,
	   bool_and(NOT EXISTS (SELECT 1 FROM odoo.crm_tag_rel t WHERE t.lead_id = l.id)) AS untagged
FROM odoo.crm_lead l
JOIN lead_enrich.lead_state s ON s.lead_id = l.id
LEFT JOIN odoo.res_country_state st ON st.id = l.state_id
CROSS JOIN LATERAL (SELECT s.company AS c, s.company -> 'people_data' -> 0 AS p) x
WHERE l.id > :last_lead;
SELECT count(*) AS contacts_kept FROM lead_enrich.lead_state s, jsonb_array_elements(s.company -> 'people_data')
WHERE s.lead_id > :last_lead;
-- contacts filtered by seniority
SELECT count(*) AS leads FROM lead_enrich.generate_leads('{"countries": ["GB"], "lead_number": 2,
	"search_type": "people", "seniority": "Director", "contact_number": 1}');
SELECT bool_and(s.company #>> '{people_data,0,seniority}' = 'director') AS directors
FROM lead_enrich.mining_request r, unnest(r.lead_ids) i JOIN lead_enrich.lead_state s ON s.lead_id = i
WHERE r.name = 'LMR003';
-- each mined lead's chatter: Odoo's note, with the company card and its contacts
SELECT count(*) AS notes, count(DISTINCT m.res_id) AS leads,
	   bool_and(m.body LIKE '<div class="o_lead_enrich_card"><p><em>Opportunity created by Odoo Lead Generation</em></p>%') AS card,
	   bool_and(m.body LIKE '%<p><b>Contacts</b></p><table>%<small>%') AS contacts,
	   bool_and(m.subtype_id = d.res_id AND m.message_type = 'notification') AS note,
	   -- what the note copies from its lead: its name and company
	   bool_and(m.record_name = l.name AND l.name IS NOT NULL
				AND m.record_company_id IS NOT DISTINCT FROM l.company_id) AS copies_lead
FROM lead_enrich.mining_request r, unnest(r.lead_ids) i
JOIN odoo.mail_message m ON m.model = 'crm.lead' AND m.res_id = i
JOIN odoo.crm_lead l ON l.id = i
JOIN odoo.ir_model_data d ON d.module = 'mail' AND d.name = 'mt_note'
WHERE r.name = 'LMR003';

-- no duplicates: the same request again gets other companies
SELECT count(*) AS leads FROM lead_enrich.generate_leads('{"countries": ["BE"], "lead_number": 5}');
SELECT count(*) AS mined, count(DISTINCT reveal_id) AS companies, count(DISTINCT website) AS websites
FROM odoo.crm_lead WHERE id > :last_old_lead;
-- ... and a company already in the table is not created again, even when the
-- provider sends it (here: a new database uuid, so the provider starts over)
UPDATE odoo.ir_config_parameter SET value = gen_random_uuid()::text WHERE key = 'database.uuid';
SELECT lead_enrich.attach('odoo.crm_lead') ->> 'layout' AS layout;
-- a lead from elsewhere (no reveal id, no website) with an e-mail at the
-- domain of the first Dutch company the provider will send
INSERT INTO odoo.crm_lead (name, type, active, email_from)
SELECT 'Known customer', 'lead', true, 'sales@' || d
FROM pg_temp.provider_query('SELECT domain FROM provider.org WHERE country_code = ''NL''
							 ORDER BY mine_rank, clearbit_id LIMIT 1') d;
\set VERBOSITY terse
SELECT count(*) AS leads FROM lead_enrich.generate_leads('{"countries": ["BE"], "lead_number": 5}');
SELECT count(*) AS leads FROM lead_enrich.generate_leads('{"countries": ["NL"], "lead_number": 3}');
\set VERBOSITY default
SELECT name, state, companies, skipped, cardinality(lead_ids) AS leads, credits
FROM lead_enrich.mining_request WHERE name IN ('LMR005', 'LMR006') ORDER BY id;
SELECT count(reveal_id) AS mined, count(DISTINCT reveal_id) AS companies,
	   count(DISTINCT split_part(email_from, '@', 2)) FILTER (WHERE email_from LIKE '%@%')
	   = count(*) FILTER (WHERE email_from LIKE '%@%') AS distinct_email_domains
FROM odoo.crm_lead WHERE id > :last_old_lead;

-- no result: nothing charged, the request stays a draft with error_type no_result
SELECT pg_temp.spent() AS before_none \gset
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "industries": ["Construction Materials"]}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"], "company_size_min": 100000000}');
SELECT name, state, error_type, credits, cardinality(lead_ids) AS leads, pg_temp.spent() - :before_none AS charged
FROM lead_enrich.mining_request WHERE name IN ('LMR007', 'LMR008') ORDER BY id;
SELECT name, state, error_type FROM odoo.crm_iap_lead_mining_request WHERE name = 'LMR007';

-- insufficient credit: a WARNING, no leads, the request kept in error/credits
SELECT pg_temp.set_balance(3) AS balance;
SELECT max(id) AS last_lead FROM odoo.crm_lead \gset
\set VERBOSITY terse
SELECT * FROM lead_enrich.generate_leads('{"countries": ["FR"], "lead_number": 5}');
\set VERBOSITY default
SELECT name, state, error_type, error IS NOT NULL AS has_error, credits, cardinality(lead_ids) AS leads
FROM lead_enrich.mining_request WHERE name = 'LMR009';
SELECT name, state, error_type FROM odoo.crm_iap_lead_mining_request WHERE name = 'LMR009';
SELECT count(*) AS new_leads FROM odoo.crm_lead WHERE id > :last_lead;
-- the credits still cover a smaller request
SELECT count(*) AS leads FROM lead_enrich.generate_leads('{"countries": ["FR"], "lead_number": 3}');
SELECT pg_temp.set_balance(1000) AS balance;

-- a plain table: ISO codes, its own column names, no Odoo tables.  attach()
-- forgets the outcomes of the previous table: keep those of the other tests
CREATE TEMP TABLE saved_state AS
SELECT * FROM lead_enrich.lead_state WHERE lead_id <= :last_old_lead;
SET client_min_messages = warning;
CREATE TABLE public.prospects_mined (
	id bigserial PRIMARY KEY,
	email text,
	company text,
	legal text,
	site text,
	town varchar(8),
	country char(2),
	region text,
	contact text,
	job text,
	kind text,
	request integer,
	done boolean NOT NULL DEFAULT false
);
SELECT lead_enrich.attach('public.prospects_mined',
	'{"email": "email", "name": "company", "partner_name": "legal", "website": "site", "city": "town",
	  "country": "country", "state": "region", "contact_name": "contact", "function": "job",
	  "type": "kind", "mining_request": "request", "enrich_done": "done"}') ->> 'layout' AS layout;
RESET client_min_messages;
SELECT * FROM lead_enrich.generate_leads('{"countries": ["XX"]}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["US", "AU"], "states": ["WA"]}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["US"], "states": ["US-XX"]}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["ES"], "tags": [1]}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["ES"], "team_id": 1}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["ES"], "industries": [999]}');
SELECT * FROM lead_enrich.generate_leads('{"countries": ["ES"], "states": ["ES-M"]}');
-- a mapped column renamed since attach(): nothing is recorded or sent
ALTER TABLE public.prospects_mined RENAME COLUMN town TO city;
SELECT * FROM lead_enrich.generate_leads('{"countries": ["ES"]}');
ALTER TABLE public.prospects_mined RENAME COLUMN city TO town;
-- retyped (a length) and renamed, three at once: each named, by key,
-- whatever the caller's search_path; then the table as attach() saw it
ALTER TABLE public.prospects_mined ALTER COLUMN town TYPE varchar(9);
ALTER TABLE public.prospects_mined RENAME COLUMN site TO web;
ALTER TABLE public.prospects_mined RENAME COLUMN region TO area;
SET search_path = public, lead_enrich;
SELECT _changed_columns(c.lead_table, c.columns) AS changed FROM lead_enrich.config c;
RESET search_path;
SELECT * FROM lead_enrich.generate_leads('{"countries": ["ES"]}');
ALTER TABLE public.prospects_mined ALTER COLUMN town TYPE varchar(8);
ALTER TABLE public.prospects_mined RENAME COLUMN web TO site;
ALTER TABLE public.prospects_mined RENAME COLUMN area TO region;
SELECT lead_enrich._changed_columns(c.lead_table, c.columns) IS NULL AS as_attached FROM lead_enrich.config c;
SELECT count(*) AS requests FROM lead_enrich.mining_request;
SELECT pg_temp.spent() AS before_plain \gset
SELECT count(*) AS leads, sum(contacts) AS contacts
FROM lead_enrich.generate_leads('{"countries": ["us", "AU"], "states": ["US-WA", "au-wa"], "lead_number": 6,
								  "search_type": "people", "seniority": "executive", "contact_number": 1}');
SELECT name, state, odoo_request_id, companies, contacts, credits, credits = pg_temp.spent() - :before_plain AS charged_as_recorded
FROM lead_enrich.mining_request WHERE name = 'LMR011';
SELECT count(*) AS leads,
	   bool_and(p.company = coalesce(c ->> 'name', c ->> 'domain')) AS company,
	   bool_and(p.legal IS NOT DISTINCT FROM coalesce(c ->> 'legal_name', c ->> 'name')) AS legal,
	   bool_and(p.site = 'https://www.' || (c ->> 'domain')) AS site,
	   bool_and(p.town IS NOT DISTINCT FROM left(c ->> 'city', 8)) AS town_cut_to_fit,
	   bool_and(p.country = c ->> 'country_code' AND p.country IN ('US', 'AU')) AS country,
	   bool_and(p.region = 'WA') AS region,
	   bool_and(p.contact = c #>> '{people_data,0,full_name}' AND p.email = c #>> '{people_data,0,email}'
				AND p.job IS NOT DISTINCT FROM c #>> '{people_data,0,title}') AS contact,
	   bool_and(p.kind = 'lead') AS kind,
	   bool_and(p.request = (SELECT id FROM lead_enrich.mining_request WHERE name = 'LMR011')) AS request,
	   bool_and(p.done) AS done,
	   bool_and(s.status = 'mined') AS mined
FROM public.prospects_mined p
JOIN lead_enrich.lead_state s ON s.lead_id = p.id
CROSS JOIN LATERAL (SELECT s.company AS c) x;
SELECT DISTINCT r.status, r.detail FROM lead_enrich.enrich_leads(ARRAY(SELECT id FROM public.prospects_mined)) r;
-- the same request again: other companies, none twice
SELECT count(*) AS leads FROM lead_enrich.generate_leads('{"countries": ["us", "AU"], "states": ["US-WA", "au-wa"],
	"lead_number": 6, "search_type": "people", "seniority": "executive", "contact_number": 1}');
SELECT count(*) AS leads, count(DISTINCT site) AS sites FROM public.prospects_mined;

-- who may mine: lead_enrich_user (with rights on the table), not PUBLIC
CREATE ROLE regress_le_miner_nogrant;
CREATE ROLE regress_le_miner IN ROLE lead_enrich_user;
GRANT SELECT, INSERT ON public.prospects_mined TO regress_le_miner_nogrant, regress_le_miner;
GRANT USAGE ON SEQUENCE public.prospects_mined_id_seq TO regress_le_miner_nogrant, regress_le_miner;
SET ROLE regress_le_miner_nogrant;
SELECT * FROM lead_enrich.generate_leads('{"countries": ["BE"]}');
SET ROLE regress_le_miner;
SELECT count(*) AS leads FROM lead_enrich.generate_leads('{"countries": ["BE"], "lead_number": 1}');
SELECT name, requested_by, credits FROM lead_enrich.mining_request ORDER BY id DESC LIMIT 1;
RESET ROLE;
DROP OWNED BY regress_le_miner_nogrant, regress_le_miner;
DROP ROLE regress_le_miner_nogrant, regress_le_miner;

-- Odoo's request row and its links, when Odoo's tables for them are there
SET client_min_messages = warning;
SELECT lead_enrich.attach('odoo.crm_lead') ->> 'layout' AS layout;
RESET client_min_messages;
CREATE TABLE odoo.crm_iap_lead_mining_request_res_country_rel (
	crm_iap_lead_mining_request_id int4, res_country_id int4, PRIMARY KEY (crm_iap_lead_mining_request_id, res_country_id));
CREATE TABLE odoo.crm_iap_lead_mining_request_res_country_state_rel (
	crm_iap_lead_mining_request_id int4, res_country_state_id int4, PRIMARY KEY (crm_iap_lead_mining_request_id, res_country_state_id));
CREATE TABLE odoo.crm_iap_lead_mining_request_crm_tag_rel (
	crm_iap_lead_mining_request_id int4, crm_tag_id int4, PRIMARY KEY (crm_iap_lead_mining_request_id, crm_tag_id));
CREATE TABLE odoo.crm_iap_lead_industry (id serial PRIMARY KEY, name varchar, reveal_ids varchar);
CREATE TABLE odoo.crm_iap_lead_industry_crm_iap_lead_mining_request_rel (
	crm_iap_lead_mining_request_id int4, crm_iap_lead_industry_id int4, PRIMARY KEY (crm_iap_lead_mining_request_id, crm_iap_lead_industry_id));
CREATE TABLE odoo.crm_iap_lead_role (id serial PRIMARY KEY, name varchar, reveal_id varchar);
CREATE TABLE odoo.crm_iap_lead_mining_request_crm_iap_lead_role_rel (
	crm_iap_lead_mining_request_id int4, crm_iap_lead_role_id int4, PRIMARY KEY (crm_iap_lead_mining_request_id, crm_iap_lead_role_id));
CREATE TABLE odoo.crm_iap_lead_seniority (id serial PRIMARY KEY, name varchar, reveal_id varchar);
INSERT INTO odoo.crm_iap_lead_industry (name, reveal_ids) VALUES
	('Media', '86'), ('Consumer Services', '150, 151'), ('Transportation', '136');
INSERT INTO odoo.crm_iap_lead_role (name, reveal_id) VALUES ('CEO', 'CEO'), ('Marketing', 'marketing'), ('Sale', 'sale');
INSERT INTO odoo.crm_iap_lead_seniority (name, reveal_id) VALUES ('director', 'director'), ('manager', 'manager');
CREATE FUNCTION pg_temp.odoo_request(name text) RETURNS TABLE (
	state text, search_type text, lead_type text, contacts integer, filter text, size text,
	countries text, states text, tags text, industries text, other_roles text,
	preferred_role text, seniority text) LANGUAGE sql AS $$
	SELECT r.state, r.search_type, r.lead_type, r.contact_number, r.contact_filter_type,
		   CASE WHEN r.filter_on_size THEN r.company_size_min || '-' || r.company_size_max END,
		   (SELECT string_agg(c.code, ',' ORDER BY c.code) FROM odoo.crm_iap_lead_mining_request_res_country_rel x
			JOIN odoo.res_country c ON c.id = x.res_country_id WHERE x.crm_iap_lead_mining_request_id = r.id),
		   (SELECT string_agg(s.code, ',' ORDER BY s.code) FROM odoo.crm_iap_lead_mining_request_res_country_state_rel x
			JOIN odoo.res_country_state s ON s.id = x.res_country_state_id WHERE x.crm_iap_lead_mining_request_id = r.id),
		   (SELECT string_agg(t.name ->> 'en_US', ',' ORDER BY t.id) FROM odoo.crm_iap_lead_mining_request_crm_tag_rel x
			JOIN odoo.crm_tag t ON t.id = x.crm_tag_id WHERE x.crm_iap_lead_mining_request_id = r.id),
		   (SELECT string_agg(i.name, ',' ORDER BY i.name) FROM odoo.crm_iap_lead_industry_crm_iap_lead_mining_request_rel x
			JOIN odoo.crm_iap_lead_industry i ON i.id = x.crm_iap_lead_industry_id WHERE x.crm_iap_lead_mining_request_id = r.id),
		   (SELECT string_agg(o.name, ',' ORDER BY o.name) FROM odoo.crm_iap_lead_mining_request_crm_iap_lead_role_rel x
			JOIN odoo.crm_iap_lead_role o ON o.id = x.crm_iap_lead_role_id WHERE x.crm_iap_lead_mining_request_id = r.id),
		   (SELECT o.name FROM odoo.crm_iap_lead_role o WHERE o.id = r.preferred_role_id),
		   (SELECT s.name FROM odoo.crm_iap_lead_seniority s WHERE s.id = r.seniority_id)
	FROM odoo.crm_iap_lead_mining_request r
	WHERE r.id = (SELECT m.odoo_request_id FROM lead_enrich.mining_request m WHERE m.name = $1) $$;
SELECT count(*) >= 0 AS mined FROM lead_enrich.generate_leads('{"countries": ["US", "CA"], "states": ["CA", "US-NY"],
	"industries": ["Consumer Services", 136], "lead_number": 2, "search_type": "people", "contact_number": 1,
	"preferred_role": "ceo", "other_roles": ["Marketing", "sale"], "tags": ["Hot"], "company_size_min": 10}');
SELECT max(name) AS request FROM lead_enrich.mining_request \gset
SELECT * FROM pg_temp.odoo_request(:'request');
-- a column of Odoo's table renamed under the kept INSERT: unmapped, so
-- mining goes on without it, and uses it again once it is back
SELECT max(id) AS last_lead FROM odoo.crm_lead \gset
ALTER TABLE odoo.crm_lead RENAME COLUMN color TO colour;
SELECT count(*) AS leads FROM lead_enrich.generate_leads('{"countries": ["DE"], "lead_number": 1,
	"search_type": "people", "seniority": "manager", "contact_number": 1}');
SELECT max(name) AS request FROM lead_enrich.mining_request \gset
SELECT * FROM pg_temp.odoo_request(:'request');
SELECT count(*) AS uncoloured FROM odoo.crm_lead WHERE id > :last_lead AND colour IS NULL;
ALTER TABLE odoo.crm_lead RENAME COLUMN colour TO color;
SELECT max(id) AS last_lead FROM odoo.crm_lead \gset
SELECT count(*) AS leads FROM lead_enrich.generate_leads('{"countries": ["DE"], "lead_number": 1}');
SELECT count(*) AS coloured FROM odoo.crm_lead WHERE id > :last_lead AND color = 0;
DROP TABLE odoo.crm_iap_lead_mining_request_res_country_rel, odoo.crm_iap_lead_mining_request_res_country_state_rel,
	odoo.crm_iap_lead_mining_request_crm_tag_rel, odoo.crm_iap_lead_industry,
	odoo.crm_iap_lead_industry_crm_iap_lead_mining_request_rel, odoo.crm_iap_lead_role,
	odoo.crm_iap_lead_mining_request_crm_iap_lead_role_rel, odoo.crm_iap_lead_seniority;

-- a CRM table larger than work_mem: the duplicate look-up hashes the answer's
-- companies, not the table's leads, and writes no temporary file (it made
-- each test a subplan rescanned per company and spilled to disk: minutes per
-- call on a table of 1,000,000 leads)
ALTER TABLE odoo.crm_lead DISABLE TRIGGER USER;
INSERT INTO odoo.crm_lead (name, type, active, email_from, website)
SELECT 'Old ' || n, 'lead', true, 'x' || n || '@old-' || n || '.example', 'https://www.old-' || n || '.example'
FROM generate_series(1, 20000) n;
ALTER TABLE odoo.crm_lead ENABLE TRIGGER USER;
ANALYZE odoo.crm_lead;
SET work_mem = '64kB';
SET stats_fetch_consistency = none;
SELECT pg_stat_force_next_flush();
SELECT temp_files AS temp_before FROM pg_stat_database WHERE datname = current_database() \gset
SELECT count(*) AS leads FROM lead_enrich.generate_leads('{"countries": ["DE"], "lead_number": 2}');
SELECT pg_stat_force_next_flush();
SELECT temp_files - :temp_before AS temp_files FROM pg_stat_database WHERE datname = current_database();
RESET work_mem;
RESET stats_fetch_consistency;

-- back to Odoo's table as the other tests left it
SET client_min_messages = warning;
DROP TABLE public.prospects_mined;
DELETE FROM odoo.crm_lead WHERE id > :last_old_lead;
DELETE FROM odoo.crm_iap_lead_mining_request;
UPDATE odoo.ir_config_parameter SET value = (SELECT value FROM saved_uuid) WHERE key = 'database.uuid';
SELECT lead_enrich.attach('odoo.crm_lead') ->> 'layout' AS layout;
DELETE FROM lead_enrich.lead_state;
INSERT INTO lead_enrich.lead_state SELECT * FROM saved_state;
RESET client_min_messages;
SELECT dbuuid = (SELECT value FROM saved_uuid) AS uuid_restored FROM lead_enrich.config;
