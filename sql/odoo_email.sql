-- Odoo 17's own test cases for reading an e-mail address, and crm_iap_enrich's
-- enrichment tests, on lead_enrich.  Inputs and Odoo's expected results are
-- taken as facts from odoo/addons/base/tests/test_mail.py (TestEmailTools:
-- test_email_normalize, test_email_split, test_email_split_and_format) and
-- addons/crm_iap_enrich/tests/test_lead_enrich.py; the test code is ours.
\set SHOW_CONTEXT never
SET search_path = odoo, public;

-- "odoo" is what Odoo's strict email_normalize gives (the one address
-- email_split finds, its ASCII local part and its domain lower-cased;
-- NULL for False, i.e. none or several); "found" how many addresses Odoo's
-- test expects email_split to find.
CREATE TEMP TABLE odoo_case (id serial, test text, input text, found int, odoo text);
INSERT INTO odoo_case (test, input, found, odoo) VALUES
	('email_normalize', $q$"Super Déboulonneur" <deboulonneur@example.com>$q$, 1, 'deboulonneur@example.com'),
	('email_normalize', $q$Déboulonneur deboulonneur@example.com$q$, 1, 'deboulonneur@example.com'),
	('email_normalize', $q$deboulonneur@example.com Déboulonneur$q$, 1, 'deboulonneur@example.comdéboulonneur'),
	('email_normalize', $q$"Super Déboulonneur" <DEBOULONNEUR@example.com>, "Super Déboulonneur 2" <deboulonneur2@EXAMPLE.com>$q$, 2, NULL),
	('email_normalize', $q$ Déboulonneur deboulonneur@example.com déboulonneur deboulonneur2@example.com$q$, 2, NULL),
	('email_normalize', $q$"Déboulonneur 😊" <deboulonneur.😊@example.com>$q$, 1, 'deboulonneur.😊@example.com'),
	('email_normalize', $q$"Déboulonneur" <déboulonneur@examplé.com>$q$, 1, 'déboulonneur@examplé.com'),
	('email_normalize', $q$"Déboulonneur" <DéBoulonneur@Examplé.com>$q$, 1, 'DéBoulonneur@examplé.com'),
	('email_split', $q$John <12345@gmail.com>$q$, 1, '12345@gmail.com'),
	('email_split', $q$d@x; 1@2$q$, 2, NULL),
	('email_split', $q$'(ss)' <123@gmail.com>, 'foo' <foo@bar>$q$, 2, NULL),
	('email_split', $q$"john@gmail.com"<johnny@gmail.com>$q$, 1, 'johnny@gmail.com'),
	('email_split', $q$"<jg>" <johnny@gmail.com>$q$, 1, 'johnny@gmail.com'),
	('email_split', $q$@gmail.com$q$, 1, '@gmail.com'),
	('email_split', $q$fr@ncois.th@notgmail.com$q$, 1, 'fr@ncois.th'),
	('email_split', $q$f@r@nc.gz,ois@notgmail.com$q$, 2, NULL),
	('email_split', $q$@notgmail.com esteban_gnole@coldmail.com@notgmail.com$q$, 1, 'esteban_gnole@coldmail.com'),
	('email_split', $q$Ivan@dezotos.com Cc iv.an@notgmail.com$q$, 2, NULL),
	('email_split', $q$ivan-dredi@coldmail.com ivan.dredi@notgmail.com$q$, 2, NULL),
	('email_split', $q$@notgmail.com ivan@coincoin.com.ar jeanine@coincoin.com.ar$q$, 2, NULL),
	('email_split', $q$@notgmail.com whoareyou@youhou.com.   ivan.dezotos@notgmail.com$q$, 2, NULL),
	('email_split', $q$francois@nc.gz CC: ois@notgmail.com ivan@dezotos.com$q$, 3, NULL),
	('email_split', $q$francois@nc.gz CC: ois@notgmail.com,ivan@dezotos.com$q$, 3, NULL),
	('email_split', $q$ivan.plein@dezotos.com / ivan.plu@notgmail.com$q$, 2, NULL),
	('email_split', $q$@notgmail.com ivan.parfois@notgmail.com/ ivan.souvent@notgmail.com$q$, 2, NULL),
	('email_split', $q$ivan@dezotos.com - ivan.dezotos@notgmail.com$q$, 2, NULL),
	('email_split', $q$car.pool@notgmail.com - co (TAMBO) Registration car.warsh@notgmail.com$q$, 2, NULL),
	('email_split_and_format', $q$deboulonneur@example.com$q$, 1, 'deboulonneur@example.com'),
	('email_split_and_format', $q$"Super Déboulonneur" <deboulonneur@example.com>$q$, 1, 'deboulonneur@example.com'),
	('email_split_and_format', $q$Déboulonneur <deboulonneur@example.com$q$, 1, 'deboulonneur@example.com'),
	('email_split_and_format', $q$Déboulonneur deboulonneur@example.com$q$, 1, 'deboulonneur@example.com'),
	('email_split_and_format', $q$deboulonneur@example.com Déboulonneur$q$, 1, 'deboulonneur@example.comdéboulonneur'),
	('email_split_and_format', $q$Déboulonneur, deboulonneur@example.com$q$, 1, 'deboulonneur@example.com'),
	('email_split_and_format', $q$deboulonneur@example.com, deboulonneur2@example.com$q$, 2, NULL),
	('email_split_and_format', $q$ Déboulonneur deboulonneur@example.com déboulonneur deboulonneur2@example.com$q$, 2, NULL),
	('email_split_and_format', $q$"Déboulonneur" <"Déboulonneur Encapsulated" <deboulonneur@example.com>>$q$, 1, 'deboulonneur@example.com'),
	('email_split_and_format', $q$"Super Déboulonneur" <deboulonneur@example.com>, "Super Déboulonneur 2" <deboulonneur2@example.com>$q$, 2, NULL),
	('email_split_and_format', $q$"Super Déboulonneur" <deboulonneur@example.com>, wrong, $q$, 1, 'deboulonneur@example.com'),
	('email_split_and_format', $q$"Déboulonneur 😊" <deboulonneur@example.com>$q$, 1, 'deboulonneur@example.com'),
	('email_split_and_format', $q$"Déboulonneur 😊" <deboulonneur.😊@example.com>$q$, 1, 'deboulonneur.😊@example.com'),
	('email_split_and_format', $q$"Déboulonneur" <déboulonneur@examplé.com>$q$, 1, 'déboulonneur@examplé.com'),
	-- crm_iap_enrich's test leads
	('crm_iap_enrich', $q$test@test1$q$, 1, 'test@test1'),
	('crm_iap_enrich', $q$test_mail_0@megaexample.com$q$, 1, 'test_mail_0@megaexample.com');

SELECT id, test, input, odoo, lead_enrich.email_normalize(input) AS lead_enrich,
	   odoo IS NOT DISTINCT FROM lead_enrich.email_normalize(input) AS same
FROM odoo_case ORDER BY id;
-- where lead_enrich deliberately reads an address otherwise (README, "The rules"):
-- a word after the address is not glued to its domain (3, 32), and an address
-- with two '@' is invalid rather than cut at a guess (15, 17)
SELECT id, input, odoo, lead_enrich.email_normalize(input) AS lead_enrich
FROM odoo_case WHERE odoo IS DISTINCT FROM lead_enrich.email_normalize(input) ORDER BY id;
-- nothing outside the strict rule: several addresses are never one
SELECT count(*) AS several_but_read FROM odoo_case WHERE found > 1 AND lead_enrich.email_normalize(input) IS NOT NULL;
-- lead_enrich's own cases: two angle-addrs are two addresses, a comment or a
-- final semicolon is no address, a quoted comma splits nothing, and what
-- cannot be a host name is invalid
SELECT e AS input, lead_enrich.email_normalize(e) AS lead_enrich
FROM unnest(ARRAY['A <a@x.com> B <b@y.com>', 'x@acme.com (work)', 'Name <a@x.com>;', '"Doe, John" <John@Doe.com>',
				  'a@x.com <b@y.com>', 'a@@example', 'x@-bad-.com', 'x@123', 'x@acme.com.', '@', 'a@']) e;
-- NULL in, NULL out; the function is what enrichment uses
SELECT lead_enrich.email_normalize(NULL) IS NULL AS null_in_null_out, lead_enrich.email_normalize('') IS NULL AS empty;

-- crm_iap_enrich test_enrich_internals: four leads of megaexample.com, the
-- first changed to test@test1 with a company name already set; the IAP mock
-- answers Odoo's simulator company, with AU / NSW for test1
SELECT set_config('lead_enrich.account_token', 'regress-odoo-' || md5(random()::text), false) IS NOT NULL AS token_set;
INSERT INTO crm_lead (id, name, type, active, email_from, partner_name, iap_enrich_done)
SELECT 800 + x, 'Test ' || x, 'lead', true, 'test_mail_' || x || '@megaexample.com', NULL, false
FROM generate_series(0, 3) x;
UPDATE crm_lead SET partner_name = 'Already set', email_from = 'test@test1' WHERE id = 800;
SELECT set_config('lead_enrich.endpoint', current_setting('regress.fault_endpoint') || '/simulator/'
				  || '%7B%22test1%22%3A%7B%22country_code%22%3A%22AU%22%2C%22state_code%22%3A%22NSW%22%7D%7D',
				  false) IS NOT NULL AS simulator;
SELECT lead_id, status, filled FROM lead_enrich.enrich_leads(ARRAY[800, 801, 802, 803]) ORDER BY lead_id;
SELECT l.id, l.partner_name, l.street, c.code AS country, s.code AS state, l.iap_enrich_done
FROM crm_lead l LEFT JOIN res_country c ON c.id = l.country_id LEFT JOIN res_country_state s ON s.id = l.state_id
WHERE l.id BETWEEN 800 AND 803 ORDER BY l.id;

-- test_enrich_error_jsonrpc_exception: the IAP call fails, no lead gets a street
INSERT INTO crm_lead (id, name, type, active, email_from, iap_enrich_done)
SELECT 810 + x, 'Test ' || x, 'lead', true, 'test_mail_' || x || '@megaexample.com', false
FROM generate_series(0, 3) x;
SELECT set_config('lead_enrich.endpoint', current_setting('regress.fault_endpoint') || '/servererror', false) IS NOT NULL AS failing;
SET client_min_messages = error;   -- the WARNING names the fault server's port
SELECT lead_id, status FROM lead_enrich.enrich_leads(ARRAY[810, 811, 812, 813]) ORDER BY lead_id;
RESET client_min_messages;
SELECT id, street, iap_enrich_done FROM crm_lead WHERE id BETWEEN 810 AND 813 ORDER BY id;
RESET lead_enrich.endpoint;
RESET search_path;
