-- automatic mode: the enqueue triggers, set_mode, the settings, the status view
-- (the worker itself runs against the provider in test/t_worker.sh)
\set SHOW_CONTEXT never
SET search_path = odoo, public;

-- keep this database's worker out of the way: this test reads the queue
SELECT lead_enrich.worker_stop() IS NOT NULL AS worker_stopped;
SELECT lead_enrich.attach('odoo.crm_lead') ->> 'layout' AS layout;
SELECT mode FROM lead_enrich.config;

-- manual mode (the default): no trigger, an INSERT enqueues nothing
SELECT count(*) AS triggers FROM pg_trigger
WHERE tgfoid IN ('lead_enrich.enqueue()'::regprocedure, 'lead_enrich.intake()'::regprocedure);
INSERT INTO crm_lead (id, name, type, active, probability, email_from)
VALUES (501, 'Manual', 'lead', true, 10, 'm@harvard.edu');
SELECT count(*) AS queued FROM lead_enrich.lead_state WHERE lead_id = 501;

-- the mode is manual or auto
SELECT lead_enrich.set_mode('sometimes');
SELECT lead_enrich.set_mode('auto') AS previous_mode;
SELECT mode FROM lead_enrich.config;
SELECT tgname, pg_get_triggerdef(oid) AS definition FROM pg_trigger
WHERE tgfoid IN ('lead_enrich.enqueue()'::regprocedure, 'lead_enrich.intake()'::regprocedure) ORDER BY tgname;

-- one statement, many leads: only those that need enriching are queued
INSERT INTO crm_lead (id, name, type, active, probability, email_from, iap_enrich_done, reveal_id) VALUES
	(511, 'New', 'lead', true, 10, 'New <new@harvard.edu>', false, NULL),
	(512, 'Won', 'opportunity', true, 100, 'won@harvard.edu', false, NULL),
	(513, 'Done', 'lead', true, 10, 'done@harvard.edu', true, NULL),
	(514, 'No mail', 'lead', true, 10, NULL, false, NULL),
	(515, 'Blank mail', 'lead', true, 10, '  ', false, NULL),
	(516, 'Has reveal', 'lead', true, 10, 'rev@harvard.edu', false, 'abc'),
	(517, 'Bad mail', 'lead', true, 10, 'not an e-mail', false, NULL),
	(518, 'Webmail', 'lead', true, 10, 'bob@gmail.com', false, NULL),
	(519, 'Nulls', 'lead', true, NULL, 'n@ox.ac.uk', NULL, '');
-- new leads wait in shared memory until the worker (stopped here) collects them
SELECT pending AS waiting FROM lead_enrich.status;
SELECT lead_enrich.intake_collect() AS collected;
SELECT lead_id, status, email, source, attempts, next_attempt_at IS NULL AS due_now
FROM lead_enrich.lead_state WHERE lead_id BETWEEN 501 AND 599 ORDER BY lead_id;

-- a rolled-back INSERT leaves nothing behind
BEGIN;
INSERT INTO crm_lead (id, name, type, active, probability, email_from)
VALUES (521, 'Rolled back', 'lead', true, 10, 'rb@harvard.edu');
SELECT count(*) AS queued_inside FROM lead_enrich.lead_state WHERE lead_id = 521;
ROLLBACK;
SELECT lead_enrich.intake_collect() AS collected;
SELECT count(*) AS queued_after_rollback FROM lead_enrich.lead_state WHERE lead_id = 521;

-- collected inside the inserting transaction: kept until it commits
BEGIN;
INSERT INTO crm_lead (id, name, type, active, probability, email_from)
VALUES (522, 'Same transaction', 'lead', true, 10, 'same@harvard.edu');
SELECT lead_enrich.intake_collect() AS collected_inside;
COMMIT;
SELECT lead_enrich.intake_collect() AS collected_after_commit;
SELECT lead_id, status FROM lead_enrich.lead_state WHERE lead_id = 522;

-- an INSERT of no rows, and COPY
INSERT INTO crm_lead (id, name, type, active, email_from)
SELECT id, name, type, active, email_from FROM crm_lead WHERE false;
COPY crm_lead (id, name, type, active, probability, email_from) FROM stdin;
531	Copied	lead	t	10	copy@ox.ac.uk
\.
SELECT lead_enrich.intake_collect() AS collected;
SELECT lead_id, status, email FROM lead_enrich.lead_state WHERE lead_id = 531;

-- e-mail changes: a lead not done is queued (again), with its new address
UPDATE crm_lead SET email_from = 'now@ox.ac.uk' WHERE id = 514;
UPDATE crm_lead SET email_from = 'changed@harvard.edu' WHERE id = 511;
-- an outcome that depends on the address (invalid e-mail): queued again
UPDATE lead_enrich.lead_state SET status = 'invalid_email' WHERE lead_id = 517;
UPDATE crm_lead SET email_from = 'fixed@mit.edu' WHERE id = 517;
-- done, won, reveal id: not queued; nor any other column changing
UPDATE crm_lead SET email_from = 'other@harvard.edu' WHERE id IN (512, 513, 516);
UPDATE crm_lead SET name = 'Renamed', city = 'Paris' WHERE id = 515;
-- an enriched lead whose address changes stays enriched
UPDATE lead_enrich.lead_state SET status = 'enriched' WHERE lead_id = 518;
UPDATE crm_lead SET email_from = 'bob@acme-lead-enrich.com' WHERE id = 518;
SELECT lead_id, status, email, attempts FROM lead_enrich.lead_state
WHERE lead_id BETWEEN 501 AND 599 ORDER BY lead_id;

-- a retry scheduled by the worker is reset when the address changes
UPDATE lead_enrich.lead_state SET attempts = 3, next_attempt_at = now() + interval '1 hour',
	error = 'timeout: ...' WHERE lead_id = 519;
UPDATE crm_lead SET email_from = 'n2@ox.ac.uk' WHERE id = 519;
SELECT lead_id, status, email, attempts, next_attempt_at, error FROM lead_enrich.lead_state WHERE lead_id = 519;

-- roles that insert leads need no rights on lead_state (the trigger is SECURITY DEFINER)
CREATE ROLE regress_le_inserter;
GRANT USAGE ON SCHEMA odoo TO regress_le_inserter;
GRANT INSERT, UPDATE, SELECT ON odoo.crm_lead TO regress_le_inserter;
SET ROLE regress_le_inserter;
INSERT INTO crm_lead (id, name, type, active, probability, email_from)
VALUES (541, 'By a plain role', 'lead', true, 10, 'plain@mit.edu');
SELECT count(*) FROM lead_enrich.lead_state;
-- and cannot change the mode, nor wake or stop the worker
SELECT lead_enrich.set_mode('manual');
SELECT lead_enrich.wake();
RESET ROLE;
SELECT lead_enrich.intake_collect() AS collected;
SELECT lead_id, status, email FROM lead_enrich.lead_state WHERE lead_id = 541;
-- lead_enrich_user may change the mode only as the table's owner
GRANT lead_enrich_user TO regress_le_inserter;
SET ROLE regress_le_inserter;
SELECT lead_enrich.set_mode('manual');
RESET ROLE;

-- enqueue_leads: leads from before automatic mode, or retryable outcomes
UPDATE lead_enrich.lead_state SET status = 'error', error = 'earlier failure' WHERE lead_id = 531;
SELECT lead_enrich.enqueue_leads(ARRAY[501, 531, 512, 513]) AS enqueued;
SELECT lead_id, status, email, error FROM lead_enrich.lead_state WHERE lead_id IN (501, 531) ORDER BY lead_id;

-- the status view
SELECT column_name, data_type FROM information_schema.columns
WHERE table_schema = 'lead_enrich' AND table_name = 'status' ORDER BY ordinal_position;
SELECT mode, lead_table, worker_pid, worker_activity, pending, pending_due, retrying,
	   pause_reason, outcomes ->> 'pending' AS outcomes_pending, launcher_running
FROM lead_enrich.status;
SELECT credits_spent = (SELECT sum(credits) FROM lead_enrich.lead_state) AS credits_match
FROM lead_enrich.status;

-- the settings: interval (minutes, at least 5), attempts, retry delay, databases
SELECT name, setting, unit, context FROM pg_settings
WHERE name IN ('lead_enrich.interval', 'lead_enrich.max_attempts', 'lead_enrich.retry_delay',
			   'lead_enrich.databases', 'lead_enrich.batch_size', 'lead_enrich.max_connections')
ORDER BY name;
-- (PostgreSQL 18 words the range with its unit: the SQLSTATE only)
\set VERBOSITY sqlstate
ALTER SYSTEM SET lead_enrich.interval = '4min';
\set VERBOSITY default
ALTER SYSTEM SET lead_enrich.interval = '1h';
ALTER SYSTEM RESET lead_enrich.interval;
ALTER SYSTEM SET lead_enrich.max_attempts = 0;
ALTER SYSTEM SET lead_enrich.databases = 'crm,,sales';
SET lead_enrich.interval = '10min';

-- back to manual: the triggers go, inserts are not queued
SELECT lead_enrich.set_mode('manual') AS previous_mode;
SELECT count(*) AS triggers FROM pg_trigger WHERE tgfoid IN ('lead_enrich.enqueue()'::regprocedure, 'lead_enrich.intake()'::regprocedure);
INSERT INTO crm_lead (id, name, type, active, probability, email_from)
VALUES (551, 'Manual again', 'lead', true, 10, 'again@harvard.edu');
SELECT lead_enrich.intake_collect() AS collected;
SELECT count(*) AS queued FROM lead_enrich.lead_state WHERE lead_id = 551;

-- detach and attach take the triggers along; a plain table without a done flag
SELECT lead_enrich.set_mode('auto') AS previous_mode;
SELECT lead_enrich.detach();
SELECT count(*) AS triggers FROM pg_trigger WHERE tgfoid IN ('lead_enrich.enqueue()'::regprocedure, 'lead_enrich.intake()'::regprocedure);
CREATE TABLE public.auto_leads (lead_id bigserial PRIMARY KEY, mail text, company text);
SET client_min_messages = warning;
SELECT lead_enrich.attach('public.auto_leads', '{"id": "lead_id", "email": "mail", "partner_name": "company"}') ->> 'layout' AS layout;
RESET client_min_messages;
SELECT lead_enrich.set_mode('auto') AS previous_mode;
SELECT tgrelid::regclass AS on_table, tgname FROM pg_trigger
WHERE tgfoid IN ('lead_enrich.enqueue()'::regprocedure, 'lead_enrich.intake()'::regprocedure) ORDER BY tgname;
INSERT INTO public.auto_leads (mail) VALUES ('a@harvard.edu'), (NULL), ('b@ox.ac.uk');
SELECT lead_enrich.intake_collect() AS collected;
SELECT lead_id, status, email FROM lead_enrich.lead_state WHERE lead_id < 100 ORDER BY lead_id;
UPDATE public.auto_leads SET mail = 'c@mit.edu' WHERE mail IS NULL;
SELECT lead_id, status, email FROM lead_enrich.lead_state WHERE lead_id < 100 ORDER BY lead_id;
-- attaching another table moves the triggers
SET client_min_messages = warning;
SELECT lead_enrich.attach('odoo.crm_lead') ->> 'layout' AS layout;
RESET client_min_messages;
SELECT tgrelid::regclass AS on_table, tgname FROM pg_trigger
WHERE tgfoid IN ('lead_enrich.enqueue()'::regprocedure, 'lead_enrich.intake()'::regprocedure) ORDER BY tgname;

-- clean up: manual mode, the worker back
SELECT lead_enrich.set_mode('manual') AS previous_mode;
DROP TABLE public.auto_leads;
DELETE FROM crm_lead WHERE id BETWEEN 501 AND 599;
DELETE FROM lead_enrich.lead_state WHERE lead_id BETWEEN 501 AND 599;
DROP OWNED BY regress_le_inserter;
DROP ROLE regress_le_inserter;
SELECT lead_enrich.worker_start() IS NOT NULL AS worker_started;
RESET search_path;
