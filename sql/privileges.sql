-- who may enrich, and who may see the token or move the endpoint
\set SHOW_CONTEXT never
SELECT set_config('lead_enrich.account_token', 'regress-priv-' || md5(random()::text), false) IS NOT NULL AS token_set;
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_le_nogrant;   -- left over by an interrupted run
DROP ROLE IF EXISTS regress_le_sales;
RESET client_min_messages;
CREATE ROLE regress_le_nogrant;
CREATE ROLE regress_le_sales IN ROLE lead_enrich_user;
GRANT USAGE ON SCHEMA odoo TO regress_le_nogrant, regress_le_sales;
GRANT SELECT, UPDATE ON odoo.crm_lead TO regress_le_nogrant, regress_le_sales;
GRANT SELECT ON odoo.res_country, odoo.res_country_state, odoo.iap_account TO regress_le_sales;
-- the notes of an enrichment go to Odoo's chatter with the enriching role's rights
GRANT SELECT, INSERT ON odoo.mail_message TO regress_le_sales;
GRANT USAGE ON SEQUENCE odoo.mail_message_id_seq TO regress_le_sales;
INSERT INTO odoo.crm_lead (id, name, type, active, email_from, iap_enrich_done) VALUES
	(401, 'Priv', 'lead', true, 'p@nasa.gov', false);

-- PUBLIC gets nothing
SET ROLE regress_le_nogrant;
SELECT lead_enrich.enrich_lead(401);
SELECT * FROM lead_enrich.enrich_leads(ARRAY[401]);
SELECT lead_enrich.iap_balance();
SELECT count(*) FROM lead_enrich.lead_state;
-- PostgreSQL's wording of this refusal changed in 16: its SQLSTATE only
\set VERBOSITY sqlstate
SHOW lead_enrich.account_token;
SELECT current_setting('lead_enrich.account_token');
\set VERBOSITY default
SELECT count(*) AS visible FROM pg_settings WHERE name = 'lead_enrich.account_token';
SET lead_enrich.endpoint = 'http://attacker.example';
SET lead_enrich.account_token = 'stolen';
RESET ROLE;

-- the role granted lead_enrich_user enriches, but still cannot read the
-- token, move the endpoint, or attach a table
SET ROLE regress_le_sales;
SELECT r ->> 'status' AS status, r #>> '{company,name}' AS company FROM lead_enrich.enrich_lead(401) r;
SELECT lead_id, status FROM lead_enrich.enrichment WHERE lead_id = 401;
SELECT count(*) AS notes FROM odoo.mail_message WHERE model = 'crm.lead' AND res_id = 401;
SELECT lead_enrich.iap_balance() >= 0 AS balance_ok;
\set VERBOSITY sqlstate
SHOW lead_enrich.account_token;
\set VERBOSITY default
SET lead_enrich.endpoint = 'http://attacker.example';
SET lead_enrich.iap_endpoint = 'http://attacker.example';
SELECT lead_enrich.attach('odoo.crm_lead');
SET lead_enrich.batch_size = 10;   -- tunables are per session
RESET ROLE;

DROP OWNED BY regress_le_nogrant, regress_le_sales;
DROP ROLE regress_le_nogrant, regress_le_sales;
