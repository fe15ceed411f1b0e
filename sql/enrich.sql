-- enrich_lead / enrich_leads against the reference provider (Odoo layout)
\set SHOW_CONTEXT never
CREATE EXTENSION IF NOT EXISTS dblink;
-- credits spent on the provider, read from its ledger
CREATE FUNCTION provider_spent(tok text) RETURNS numeric LANGUAGE sql AS $$
	SELECT s FROM dblink(format('host=127.0.0.1 port=%s dbname=lead_provider user=postgres',
								current_setting('port')),
						 format('SELECT coalesce(provider.spent(%L), 0)', tok)) AS t(s numeric) $$;
CREATE FUNCTION provider_exec(sql text) RETURNS text LANGUAGE sql AS $$
	SELECT dblink_exec(format('host=127.0.0.1 port=%s dbname=lead_provider user=postgres',
							  current_setting('port')), sql) $$;
-- a fresh account per run of the suite, so the ledger starts at zero
SELECT set_config('lead_enrich.account_token', 'regress-' || md5(random()::text), false) IS NOT NULL AS token_set;
SELECT provider_spent(current_setting('lead_enrich.account_token')) AS spent_before;

SET search_path = odoo, public;
INSERT INTO crm_lead (id, name, type, active, probability, email_from, partner_name, city, iap_enrich_done, reveal_id) VALUES
	(101, 'Visit', 'lead', true, 10, 'John Doe <John.Doe@WhiteHouse.gov>', NULL, NULL, false, NULL),
	(102, 'Sub', 'lead', true, 10, 'ann@mail.whitehouse.gov', NULL, NULL, false, NULL),
	(103, 'Won', 'opportunity', true, 100, 'x@harvard.edu', NULL, NULL, false, NULL),
	(104, 'Done', 'lead', true, 10, 'y@harvard.edu', NULL, NULL, true, NULL),
	(105, 'Has reveal', 'lead', true, 10, 'z@harvard.edu', NULL, NULL, false, 'abc'),
	(106, 'No mail', 'lead', true, 10, NULL, NULL, NULL, false, NULL),
	(107, 'Blank mail', 'lead', true, 10, '   ', NULL, NULL, false, NULL),
	(108, 'Bad mail', 'lead', true, 10, 'not an e-mail', NULL, NULL, false, NULL),
	(109, 'Two mails', 'lead', true, 10, 'a@harvard.edu, b@ox.ac.uk', NULL, NULL, false, NULL),
	(110, 'Webmail', 'lead', true, 10, 'bob@gmail.com', NULL, NULL, false, NULL),
	(111, 'Webmail sub', 'lead', true, 10, 'bob@mail.yahoo.co.uk', NULL, NULL, false, NULL),
	(112, 'Unknown', 'lead', true, 10, 'who@no-such-company-lead-enrich.com', NULL, NULL, false, NULL),
	(113, 'Filled', 'lead', true, 10, 'kim@ca.gov', 'Already Named Inc', 'Sacramento', false, NULL),
	(114, 'Bad domain', 'lead', true, 10, 'x@-bad-.com', NULL, NULL, false, NULL),
	(115, 'Reveal blank', 'lead', true, NULL, 'o@ox.ac.uk', NULL, NULL, NULL, '');

-- found: fills the empty columns, country and state resolved through res_country(_state)
SELECT r ->> 'status' AS status, r ->> 'domain' AS domain, r -> 'filled' AS filled, r -> 'credits' AS credits,
	   r #>> '{company,name}' AS company
FROM lead_enrich.enrich_lead(101) r;
SELECT l.partner_name, l.city, c.code AS country, s.code AS state, l.iap_enrich_done,
	   l.reveal_id = (SELECT company ->> 'clearbit_id' FROM lead_enrich.lead_state WHERE lead_id = 101) AS reveal_ok,
	   l.write_date IS NOT NULL AS write_date_set
FROM crm_lead l LEFT JOIN res_country c ON c.id = l.country_id LEFT JOIN res_country_state s ON s.id = l.state_id
WHERE l.id = 101;
-- a sub-domain finds the organisation
SELECT r ->> 'status' AS status, r #>> '{company,domain}' AS company_domain FROM lead_enrich.enrich_lead(102) r;

-- skip rules: won, already enriched, reveal id set: nothing sent, nothing recorded
SELECT r ->> 'status' AS status, r ->> 'reason' AS reason FROM unnest(ARRAY[103, 104, 105]) i, lead_enrich.enrich_lead(i) r;
-- no e-mail, invalid e-mails: recorded, not marked done
SELECT r ->> 'status' AS status FROM unnest(ARRAY[106, 107, 108, 109, 114]) i, lead_enrich.enrich_lead(i) r;
-- generic webmail (also a sub-domain of one): marked done, no call, no charge
SELECT r ->> 'status' AS status, r ->> 'credits' AS credits FROM unnest(ARRAY[110, 111]) i, lead_enrich.enrich_lead(i) r;
-- not found: marked done, no charge
SELECT r ->> 'status' AS status, r ->> 'credits' AS credits FROM lead_enrich.enrich_lead(112) r;
-- fill only the empty columns: partner_name and city stay
SELECT r -> 'filled' AS filled FROM lead_enrich.enrich_lead(113) r;
SELECT partner_name, city, (SELECT code FROM res_country WHERE id = country_id) AS country,
	   (SELECT code FROM res_country_state WHERE id = state_id) AS state FROM crm_lead WHERE id = 113;
-- reveal_id = '' counts as empty, a NULL done flag as not done
SELECT r ->> 'status' AS status FROM lead_enrich.enrich_lead(115) r;
-- no such lead
SELECT lead_enrich.enrich_lead(999999);

SELECT id, iap_enrich_done FROM crm_lead WHERE id BETWEEN 101 AND 115 ORDER BY id;
SELECT lead_id, status, domain, credits, error FROM lead_enrich.lead_state WHERE lead_id BETWEEN 101 AND 115 ORDER BY lead_id;
-- whitehouse.gov twice (two calls: the second one is charged again), ca.gov, ox.ac.uk
SELECT provider_spent(current_setting('lead_enrich.account_token')) AS spent;

-- bulk: 6 leads of 3 companies + 1 webmail + 1 unknown + 1 won + duplicates in the input
INSERT INTO crm_lead (id, name, type, active, probability, email_from, iap_enrich_done)
SELECT 200 + g, 'bulk ' || g, 'lead', true, CASE WHEN g = 9 THEN 100 ELSE 0 END,
	   (ARRAY['a@harvard.edu', 'b@harvard.edu', 'c@www.harvard.edu', 'd@ca.gov', 'e@ca.gov',
			  'f@ox.ac.uk', 'g@hotmail.com', 'h@unknown-lead-enrich-test.org', 'i@ox.ac.uk'])[g], false
FROM generate_series(1, 9) g;
SELECT provider_spent(current_setting('lead_enrich.account_token')) AS spent_before_bulk \gset
SELECT lead_id, status, filled, credits, detail
FROM lead_enrich.enrich_leads(ARRAY[201, 202, 203, 204, 205, 206, 207, 208, 209, 201, 202, 424242]) ORDER BY lead_id;
-- one credit per company: harvard.edu (www.harvard.edu is the same company), ca.gov, ox.ac.uk
SELECT provider_spent(current_setting('lead_enrich.account_token')) - :spent_before_bulk AS bulk_spent;
-- enriching again changes nothing and costs nothing
SELECT count(*) FILTER (WHERE status = 'skipped') AS skipped FROM lead_enrich.enrich_leads(ARRAY[201, 202, 203, 204, 205, 206]);
SELECT provider_spent(current_setting('lead_enrich.account_token')) - :spent_before_bulk AS bulk_spent_after_rerun;

-- thousands of ids in one call, in batches of lead_enrich.batch_size
INSERT INTO crm_lead (id, name, type, active, email_from, iap_enrich_done)
SELECT 10000 + g, 'many ' || g, 'lead', true, 'p' || g || '@unknown-many-' || (g % 40) || '.example', false
FROM generate_series(1, 3000) g;
SET lead_enrich.batch_size = 100;
SELECT status, count(*) FROM lead_enrich.enrich_leads(ARRAY(SELECT generate_series(10001, 13000)::bigint)) GROUP BY 1;
RESET lead_enrich.batch_size;

-- companies under a public suffix that the webmail list once held (com.ar,
-- org.ua, net.ua, spb.ru) are enriched; webmail and its sub-domains are not
INSERT INTO crm_lead (id, name, type, active, email_from, iap_enrich_done) VALUES
	(130, 'Argentina', 'lead', true, 'ana@bna.com.ar', false),
	(131, 'Ukraine', 'lead', true, 'olena@redcross.org.ua', false),
	(132, 'Ukraine net', 'lead', true, 'petro@apteka.net.ua', false),
	(133, 'Petersburg', 'lead', true, 'ivan@artacademy.spb.ru', false),
	(134, 'Mail.ru sub-domain', 'lead', true, 'x@corp.mail.ru', false),
	(135, 'Yahoo Argentina', 'lead', true, 'x@yahoo.com.ar', false),
	(136, 'Listed under spb.ru', 'lead', true, 'x@x1x.spb.ru', false);
SELECT lead_id, status, credits FROM lead_enrich.enrich_leads(ARRAY[130, 131, 132, 133, 134, 135, 136]) ORDER BY lead_id;
SELECT id, partner_name, iap_enrich_done FROM crm_lead WHERE id BETWEEN 130 AND 136 ORDER BY id;

-- the view exposes typed columns
SELECT lead_id, status, company_name, company_type, sector, timezone, pg_typeof(technologies) AS tech_type,
	   pg_typeof(employees) AS employees_type, pg_typeof(founded_year) AS founded_type
FROM lead_enrich.enrichment WHERE lead_id IN (101, 113) ORDER BY lead_id;

-- balance and credit URL
SELECT lead_enrich.iap_balance() = 1000 - provider_spent(current_setting('lead_enrich.account_token')) AS balance_matches_ledger;
SELECT regexp_replace(regexp_replace(lead_enrich.iap_credit_url(), 'account_token=[^&]+', 'account_token=XXX'),
					  '127\.0\.0\.1:[0-9]+', '127.0.0.1:PORT') AS credit_url;
RESET search_path;
