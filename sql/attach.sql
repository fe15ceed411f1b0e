-- attach(): Odoo 17 layout, a plain layout, and the errors
\set SHOW_CONTEXT never
-- IF NOT EXISTS: test/t_upgrade.sh runs this suite on an upgraded extension
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS lead_enrich;
RESET client_min_messages;
\set ECHO none
\i test/fixtures/odoo17_crm.sql
\set ECHO all

-- nothing attached yet
SELECT lead_enrich.enrich_lead(1);

-- an Odoo 17 crm_lead works as it is
SELECT jsonb_pretty(lead_enrich.attach('odoo.crm_lead'));
SELECT lead_table, layout, kinds, dbuuid, mode FROM lead_enrich.config;

-- a plain table with text columns and its own names
CREATE TABLE public.leads (
	lead_id bigserial PRIMARY KEY,
	mail text,
	company text,
	town varchar(20),
	country_code char(2),
	region text,
	done boolean
);
SELECT jsonb_pretty(lead_enrich.attach('public.leads',
	'{"id": "lead_id", "email": "mail", "partner_name": "company", "city": "town",
	  "country": "country_code", "state": "region", "enrich_done": "done"}'));
SELECT layout, kinds, length(dbuuid) = 36 AS has_uuid FROM lead_enrich.config;

-- errors name the column or the key
SELECT lead_enrich.attach('public.leads');                              -- no email_from, no id
SELECT lead_enrich.attach('public.leads', '{"id": "lead_id"}');          -- no email_from
SELECT lead_enrich.attach('public.leads', '{"id": "lead_id", "email": "nope"}');
SELECT lead_enrich.attach('public.leads', '{"id": "lead_id", "email": "mail", "colour": "x"}');
SELECT lead_enrich.attach('public.leads', '{"id": "lead_id", "email": "mail", "enrich_done": "company"}');
SELECT lead_enrich.attach('public.leads', '{"id": "lead_id", "email": "done"}');
SELECT lead_enrich.attach('public.leads', '{"id": "lead_id", "email": null}');
SELECT lead_enrich.attach('public.leads', '["lead_id"]');
SELECT lead_enrich.attach('public.leads', '{"id": 5, "email": "mail"}');
CREATE TABLE public.int_country (id int PRIMARY KEY, email_from text, country_id int);
SELECT lead_enrich.attach('public.int_country');
CREATE VIEW public.lead_view AS SELECT * FROM public.leads;
SELECT lead_enrich.attach('public.lead_view');
SELECT lead_enrich.attach('public.no_such_table');

-- a failed attach changed nothing: still the plain table
SELECT lead_table FROM lead_enrich.config;

-- a table with no index on its id column: attached, with a warning
CREATE TABLE public.unindexed (id bigint, email_from text);
CREATE INDEX unindexed_partial ON public.unindexed (id) WHERE email_from IS NOT NULL;
SELECT lead_enrich.attach('public.unindexed') ->> 'layout' AS layout;
SELECT lead_table FROM lead_enrich.config;
CREATE UNIQUE INDEX ON public.unindexed (id);
SELECT lead_enrich.attach('public.unindexed') ->> 'layout' AS layout;

-- back to Odoo's table for the next tests
SELECT lead_enrich.attach('odoo.crm_lead') ->> 'layout' AS layout;
