-- What an Odoo user sees: the notes in a lead's chatter (mail_message, as
-- Odoo 17 stores a note: model crm.lead, subtype mail.mt_note, OdooBot),
-- and Odoo's stored computations kept consistent (phone_sanitized,
-- phone_state, write_uid)
\set SHOW_CONTEXT never
SET search_path = odoo, public;
SELECT set_config('lead_enrich.account_token', 'regress-chatter-' || md5(random()::text), false) IS NOT NULL AS token_set;

-- the simulator (test/fault_server.py) answers Odoo's mock company for every
-- domain, with the fields given per domain
CREATE FUNCTION url_encode(s text) RETURNS text LANGUAGE sql AS $$
	SELECT string_agg(CASE WHEN c ~ '^[A-Za-z0-9_.~-]$' THEN c
					  ELSE regexp_replace(upper(encode(convert_to(c, 'UTF8'), 'hex')), '(..)', '%\1', 'g') END, '')
	FROM regexp_split_to_table(s, '') c $$;
CREATE FUNCTION use_simulator(per_domain jsonb) RETURNS void LANGUAGE sql AS $$
	SELECT set_config('lead_enrich.endpoint',
					  current_setting('regress.fault_endpoint') || '/simulator/' || url_encode(per_domain::text), false) $$;
CREATE FUNCTION notes(lead bigint) RETURNS bigint LANGUAGE sql AS $$
	SELECT count(*) FROM odoo.mail_message WHERE model = 'crm.lead' AND res_id = lead $$;

INSERT INTO crm_lead (id, name, type, active, probability, email_from, phone, mobile, country_id, company_id,
					  iap_enrich_done, write_uid) VALUES
	(7001, 'Hostile card', 'lead', true, 10, 'a@hostile.example', NULL, NULL, NULL, 1, false, 2),
	(7002, 'Simulator', 'lead', true, 10, 'b@simulator.example', NULL, NULL, NULL, 1, false, 2),
	(7003, 'National phone', 'lead', true, 10, 'c@national.example', '0472 11 22 33', NULL, NULL, 1, false, 2),
	(7004, 'Phone kept, country set', 'lead', true, 10, 'd@kept.example', '020 7946 0958', NULL,
	 (SELECT id FROM res_country WHERE code = 'GB'), 1, false, 2);

SELECT use_simulator('{
	"hostile.example": {"name": "<script>alert(1)</script> & Sons", "description": "<b>bold</b> \"quoted\"",
						"twitter": "x\" onmouseover=\"alert(1)", "facebook": "../../evil",
						"linkedin": "company/hostile-co", "logo": "javascript:alert(1)",
						"tech": ["<img src=x>", "google_analytics"], "employees": "many <i>",
						"timezone": "Europe/Brussels"},
	"simulator.example": {"description": "Simulated for the tests.", "logo": "https://logo.example/Sim Logo.svg",
						  "company_type": "private", "founded_year": 1930, "employees": 3.14,
						  "estimated_annual_revenue": "1000000", "sector_primary": "Technology",
						  "industry": "Software", "sub_industry": "Software", "timezone": "Europe/Brussels",
						  "tech": ["google_analytics", "nginx"], "email": ["info@simulator.example"],
						  "linkedin": "company/simulator", "twitter_followers": 42, "twitter_bio": "We simulate."},
	"national.example": {"phone_numbers": ["+32 2 555 12 34"]},
	"kept.example": {"phone_numbers": []}
}');
SELECT lead_id, status FROM lead_enrich.enrich_leads(ARRAY[7001, 7002, 7003, 7004]) ORDER BY lead_id;

-- one note per enriched lead, as Odoo stores it
SELECT m.res_id, m.model, m.message_type, st.name ->> 'en_US' AS subtype, p.name AS author, m.email_from,
	   m.record_name, m.record_company_id, m.is_internal,
	   -- unique, and ordered by time from the left (its B-tree index grows at the right)
	   m.message_id LIKE '<' || to_char(m.date, 'YYYYMMDDHH24MISSUS') || '.%@%>' AS message_id_ok,
	   m.date IS NOT NULL AS dated, m.create_uid, m.write_uid
FROM mail_message m
LEFT JOIN mail_message_subtype st ON st.id = m.subtype_id
LEFT JOIN res_partner p ON p.id = m.author_id
WHERE m.res_id BETWEEN 7001 AND 7004 ORDER BY m.res_id;

-- the card, whole
SELECT body FROM mail_message WHERE res_id = 7002;

-- what the provider sent is text, never markup, links only from safe handles
SELECT body LIKE '%&lt;script&gt;alert(1)&lt;/script&gt; &amp; Sons%' AS name_escaped,
	   body NOT LIKE '%<script%' AND body NOT LIKE '%<img src=x%' AND body NOT LIKE '%<b>bold%' AS no_markup,
	   body NOT LIKE '%onmouseover%' AS no_twitter_link,
	   body NOT LIKE '%evil%' AS no_facebook_link,
	   body LIKE '%href="https://www.linkedin.com/company/hostile-co"%' AS linkedin_link,
	   body NOT LIKE '%javascript%' AS no_logo,
	   body LIKE '%many &lt;i&gt;%' AS employees_escaped
FROM mail_message WHERE res_id = 7001;

-- Odoo's stored computations: the mobile's E.164 form, else the phone's;
-- recomputed when a number or the country was filled, only then
SELECT l.id, l.phone, l.mobile, c.code AS country, l.phone_sanitized, l.phone_state, l.write_uid,
	   l.write_date IS NOT NULL AS write_date_set
FROM crm_lead l LEFT JOIN res_country c ON c.id = l.country_id
WHERE l.id BETWEEN 7001 AND 7004 ORDER BY l.id;

-- the reference provider: a country filled makes a national number E.164
RESET lead_enrich.endpoint;
INSERT INTO crm_lead (id, name, type, active, probability, email_from, phone, iap_enrich_done, write_uid) VALUES
	(7011, 'US national', 'lead', true, 10, 'a@harvard.edu', '(617) 495-1000', false, 2),
	(7012, 'US with 1', 'lead', true, 10, 'b@harvard.edu', '1-617-495-1000', false, 2),
	(7013, 'International', 'lead', true, 10, 'c@harvard.edu', '+44 20 7946 0958', false, 2),
	(7014, 'International 00', 'lead', true, 10, 'd@harvard.edu', '0032 2 555 12 34', false, 2),
	(7015, 'Not a number', 'lead', true, 10, 'e@harvard.edu', 'ask reception', false, 2),
	(7016, 'Too short', 'lead', true, 10, 'f@harvard.edu', '12', false, 2);
SELECT count(*) FILTER (WHERE status = 'enriched') AS enriched
FROM lead_enrich.enrich_leads(ARRAY[7011, 7012, 7013, 7014, 7015, 7016]);
SELECT l.id, l.phone, c.code AS country, l.phone_sanitized, l.phone_state, l.write_uid
FROM crm_lead l LEFT JOIN res_country c ON c.id = l.country_id
WHERE l.id BETWEEN 7011 AND 7016 ORDER BY l.id;

-- not found, webmail: Odoo's "no company data" note; an invalid e-mail:
-- its note once, however often it is tried; no e-mail: nothing
INSERT INTO crm_lead (id, name, type, active, probability, email_from, iap_enrich_done) VALUES
	(7021, 'Unknown', 'lead', true, 10, 'who@no-such-company-lead-enrich.com', false),
	(7022, 'Webmail', 'lead', true, 10, 'bob@gmail.com', false),
	(7023, 'Invalid', 'lead', true, 10, 'not an e-mail', false),
	(7024, 'No e-mail', 'lead', true, 10, NULL, false);
SELECT lead_id, status FROM lead_enrich.enrich_leads(ARRAY[7021, 7022, 7023, 7024]) ORDER BY lead_id;
SELECT r ->> 'status' AS status FROM lead_enrich.enrich_lead(7023) r;
SELECT r ->> 'status' AS status FROM lead_enrich.enrich_lead(7023) r;
SELECT res_id, count(*) AS notes, min(body) AS body
FROM mail_message WHERE res_id BETWEEN 7021 AND 7024 GROUP BY res_id ORDER BY res_id;
SELECT write_uid FROM crm_lead WHERE id IN (7021, 7022) ORDER BY id;

-- a role that may enrich but not write to mail_message: the lead is
-- enriched, the note is not, and a WARNING says why
CREATE ROLE regress_le_chatter IN ROLE lead_enrich_user;
GRANT USAGE ON SCHEMA odoo TO regress_le_chatter;
GRANT SELECT, UPDATE ON crm_lead, res_country, res_country_state, ir_model_data, res_partner TO regress_le_chatter;
GRANT SELECT ON mail_message TO regress_le_chatter;
INSERT INTO crm_lead (id, name, type, active, probability, email_from, iap_enrich_done) VALUES
	(7031, 'No chatter rights', 'lead', true, 10, 'x@ox.ac.uk', false);
SET ROLE regress_le_chatter;
SELECT r ->> 'status' AS status FROM lead_enrich.enrich_lead(7031) r;
RESET ROLE;
SELECT partner_name IS NOT NULL AS enriched, notes(7031) AS notes FROM crm_lead WHERE id = 7031;

-- clean up: the leads, their notes and outcomes
DELETE FROM mail_message WHERE res_id BETWEEN 7001 AND 7031;
DELETE FROM lead_enrich.lead_state WHERE lead_id BETWEEN 7001 AND 7031;
DELETE FROM crm_lead WHERE id BETWEEN 7001 AND 7031;
REVOKE ALL ON crm_lead, res_country, res_country_state, ir_model_data, res_partner, mail_message FROM regress_le_chatter;
REVOKE USAGE ON SCHEMA odoo FROM regress_le_chatter;
DROP ROLE regress_le_chatter;
RESET lead_enrich.endpoint;
RESET search_path;
