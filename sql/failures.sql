-- a provider that is down, slow, or answers garbage: a clear error, the lead
-- not marked, nothing half-written
\set SHOW_CONTEXT never
SET search_path = odoo, public;
SELECT set_config('lead_enrich.account_token', 'regress-fail-' || md5(random()::text), false) IS NOT NULL AS token_set;
INSERT INTO crm_lead (id, name, type, active, email_from, iap_enrich_done) VALUES
	(301, 'Fail one', 'lead', true, 'a@mit.edu', false),
	(302, 'Fail two', 'lead', true, 'b@noaa.gov', false);

-- an error as one line, with what varies between runs (ports, timings) masked
CREATE FUNCTION try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	st text; m text; d text; h text;
BEGIN
	EXECUTE q;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
	RETURN regexp_replace(regexp_replace(
		format(E'%s: %s\n  detail: %s\n  hint: %s', st, m, d, h),
		'127\.0\.0\.1(:| port )[0-9]+', '127.0.0.1:PORT', 'g'),
		'[0-9]+ (ms|milliseconds)', 'N \1', 'g');
END $$;

-- faults served by test/fault_server.py, selected by the URL's first segment
CREATE FUNCTION use_fault(kind text) RETURNS void LANGUAGE sql AS $$
	SELECT set_config('lead_enrich.endpoint', current_setting('regress.fault_endpoint') || '/' || kind, false) $$;
CREATE FUNCTION unchanged() RETURNS TABLE (id int, done boolean, partner_name varchar, state_rows bigint) LANGUAGE sql AS $$
	SELECT l.id, l.iap_enrich_done, l.partner_name,
		   (SELECT count(*) FROM lead_enrich.lead_state s WHERE s.lead_id = l.id)
	FROM odoo.crm_lead l WHERE l.id IN (301, 302) ORDER BY l.id $$;

-- nothing listening
SET lead_enrich.endpoint = 'http://127.0.0.1:9/';
SET lead_enrich.connect_timeout = '1s';
SELECT try('SELECT lead_enrich.enrich_lead(301)');
SELECT try('SELECT lead_enrich.iap_balance()');
-- too slow
SELECT use_fault('slow');
SET lead_enrich.timeout = '300ms';
SELECT try('SELECT lead_enrich.enrich_lead(301)');
RESET lead_enrich.timeout;
-- HTTP 500 with a plain body, 503 with a JSON-RPC error
SELECT use_fault('http500');
SELECT try('SELECT lead_enrich.enrich_lead(301)');
SELECT use_fault('http503json');
SELECT try('SELECT lead_enrich.enrich_lead(301)');
-- not JSON, JSON but not JSON-RPC, a result of the wrong shape, a value that is not a company
SELECT use_fault('garbage');
SELECT try('SELECT lead_enrich.enrich_lead(301)');
SELECT try('SELECT lead_enrich.iap_balance()');
SELECT use_fault('notrpc');
SELECT try('SELECT lead_enrich.enrich_lead(301)');
SELECT use_fault('wrongresult');
SELECT try('SELECT lead_enrich.enrich_lead(301)');
SELECT use_fault('servererror');
SELECT try('SELECT lead_enrich.enrich_lead(301)');
-- larger than lead_enrich.max_response_size
SELECT use_fault('big');
SET lead_enrich.max_response_size = '16kB';
SELECT try('SELECT lead_enrich.enrich_lead(301)');
SELECT * FROM unchanged();

-- in bulk, a failed batch is reported per lead, recorded, and not marked done
SELECT use_fault('http500');
SET client_min_messages = error;   -- the WARNING's detail names the fault server's port
SELECT lead_id, status, credits, detail FROM lead_enrich.enrich_leads(ARRAY[301, 302]);
RESET client_min_messages;
SELECT use_fault('badvalue');
SELECT lead_id, status, credits, detail FROM lead_enrich.enrich_leads(ARRAY[301, 302]);
SELECT * FROM unchanged();
SELECT lead_id, status, error FROM lead_enrich.lead_state WHERE lead_id IN (301, 302) ORDER BY lead_id;
-- an error while the next batch is in flight (the statement's timeout, the
-- first batch's answer slow to come): the whole call fails, nothing of it
-- stays, and the session goes on
SELECT use_fault('slow');
SET lead_enrich.batch_size = 1;
SET statement_timeout = '1s';
SELECT count(*) FROM lead_enrich.enrich_leads(ARRAY[301, 302]);
RESET statement_timeout;
RESET lead_enrich.batch_size;
SELECT * FROM unchanged();
SELECT lead_id, status, error FROM lead_enrich.lead_state WHERE lead_id IN (301, 302) ORDER BY lead_id;

-- the provider is back: the same leads are enriched
RESET lead_enrich.endpoint;
RESET lead_enrich.max_response_size;
SELECT lead_id, status, credits FROM lead_enrich.enrich_leads(ARRAY[301, 302]) ORDER BY lead_id;

-- insufficient credit: an error with the buy-credits hint; nothing charged, the lead not marked
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT set_config('lead_enrich.account_token', 'regress-poor-' || md5(random()::text), false) IS NOT NULL AS token_set;
SELECT lead_enrich.iap_balance() > 0 AS has_trial_credits;
SELECT * FROM dblink(format('host=127.0.0.1 port=%s dbname=lead_provider user=postgres', current_setting('port')),
					 format('SELECT provider.add_credits(%L, -provider.balance(%L))',
							current_setting('lead_enrich.account_token'), current_setting('lead_enrich.account_token')))
	AS t(new_balance numeric);
SELECT lead_enrich.iap_balance() AS balance;
INSERT INTO crm_lead (id, name, type, active, email_from, iap_enrich_done) VALUES
	(303, 'Poor', 'lead', true, 'c@stanford.edu', false), (304, 'Poor 2', 'lead', true, 'd@noaa.gov', false);
SELECT try('SELECT lead_enrich.enrich_lead(303)');
SET client_min_messages = error;   -- the WARNING's hint names the provider's port
SELECT lead_id, status, credits, detail FROM lead_enrich.enrich_leads(ARRAY[303, 304]);
RESET client_min_messages;
SELECT id, iap_enrich_done, partner_name FROM crm_lead WHERE id IN (303, 304) ORDER BY id;
-- credits running out in a bulk call of several batches: the batch after the
-- refused one was already in flight (the next batch is sent before this one's
-- answer is written) and the provider refuses it too; the batches after it
-- are not sent
INSERT INTO crm_lead (id, name, type, active, email_from, iap_enrich_done) VALUES
	(305, 'Poor 3', 'lead', true, 'e@mit.edu', false);
SET lead_enrich.batch_size = 1;
SET client_min_messages = error;
SELECT lead_id, status, credits, detail FROM lead_enrich.enrich_leads(ARRAY[303, 304, 305]);
RESET client_min_messages;
RESET lead_enrich.batch_size;
SELECT id, iap_enrich_done, partner_name FROM crm_lead WHERE id IN (303, 304, 305) ORDER BY id;
-- credits added: the same leads go through
SELECT * FROM dblink(format('host=127.0.0.1 port=%s dbname=lead_provider user=postgres', current_setting('port')),
					 format('SELECT provider.add_credits(%L, 5)', current_setting('lead_enrich.account_token')))
	AS t(new_balance numeric);
SELECT lead_id, status, credits FROM lead_enrich.enrich_leads(ARRAY[303, 304]) ORDER BY lead_id;
SELECT lead_enrich.iap_balance();

-- settings: endpoints must be http(s) URLs
SET lead_enrich.endpoint = 'ftp://example.com';
SET lead_enrich.endpoint = 'file:///etc/passwd';
RESET search_path;
