-- a plain table: its own column names, ISO codes as text, no Odoo tables
\set SHOW_CONTEXT never
SELECT set_config('lead_enrich.account_token', 'regress-plain-' || md5(random()::text), false) IS NOT NULL AS token_set;
CREATE TABLE public.prospects (
	pid bigserial PRIMARY KEY,
	contact_email text,
	company text,
	town varchar(6),
	country_code char(2),
	region text,
	tel text,
	enriched boolean DEFAULT false
);
SELECT lead_enrich.attach('public.prospects',
	'{"id": "pid", "email": "contact_email", "partner_name": "company", "city": "town",
	  "country": "country_code", "state": "region", "phone": "tel", "enrich_done": "enriched"}') ->> 'layout' AS layout;
INSERT INTO public.prospects (contact_email, company, region) VALUES
	('a@whitehouse.gov', NULL, NULL),
	('b@ox.ac.uk', 'Oxford (kept)', NULL),
	('c@ca.gov', NULL, 'XX'),
	('not-an-email', NULL, NULL);
-- a plain table has no chatter, even beside a table called mail_message
CREATE TABLE public.mail_message (LIKE odoo.mail_message INCLUDING DEFAULTS);
SELECT lead_id, status, filled, credits FROM lead_enrich.enrich_leads(ARRAY(SELECT pid FROM public.prospects)) ORDER BY lead_id;
SELECT count(*) AS notes FROM public.mail_message;
DROP TABLE public.mail_message;
-- town is varchar(6): values are cut to fit, never an error
SELECT pid, company, town, country_code, region, enriched FROM public.prospects ORDER BY pid;

-- a table with only an id and an e-mail: "done" lives in lead_state
CREATE TABLE public.minimal (id int PRIMARY KEY, email_from text);
SELECT lead_enrich.attach('public.minimal') -> 'columns' AS columns;
INSERT INTO public.minimal VALUES (1, 'x@noaa.gov'), (2, 'y@gmail.com');
SELECT lead_id, status, credits FROM lead_enrich.enrich_leads(ARRAY[1, 2]) ORDER BY lead_id;
SELECT lead_id, status, detail FROM lead_enrich.enrich_leads(ARRAY[1, 2]) ORDER BY lead_id;
SELECT lead_id, status, company_name, company_type FROM lead_enrich.enrichment WHERE lead_id IN (1, 2) ORDER BY lead_id;
-- companies under a public suffix the webmail list once held are enriched here too
INSERT INTO public.minimal VALUES (3, 'z@bancociudad.com.ar'), (4, 'w@kse.org.ua'), (5, 'v@corp.mail.ru');
SELECT lead_id, status, credits FROM lead_enrich.enrich_leads(ARRAY[3, 4, 5]) ORDER BY lead_id;
SELECT lead_id, status, company_name FROM lead_enrich.enrichment WHERE lead_id IN (3, 4, 5) ORDER BY lead_id;

SELECT lead_enrich.attach('odoo.crm_lead') ->> 'layout' AS layout;
