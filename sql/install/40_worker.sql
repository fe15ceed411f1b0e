/*
 * Automatic enrichment: the enqueue triggers, the mode, the background
 * worker's controls and the status view (src/trigger.c, src/worker.c,
 * src/shmem.c).
 */

/*
 * The batches the worker sent and has not settled (src/queue.c): the
 * JSON-RPC id and the members, each lead with the domain sent for it,
 * recorded when the batch is claimed.  A batch is sent again exactly as
 * recorded until the provider answers it, so that its replay store
 * answers a resend without charging again.  lead_state.batch_id points
 * to it from each member.
 */
CREATE TABLE lead_enrich.batch (
	id			bigserial PRIMARY KEY,
	request_id	text NOT NULL UNIQUE,
	lead_ids	bigint[] NOT NULL,
	domains		text[] NOT NULL CHECK (cardinality(domains) = cardinality(lead_ids)),
	created_at	timestamptz NOT NULL DEFAULT now(),
	sends		integer NOT NULL DEFAULT 1,
	last_sent_at timestamptz,
	last_error	text
);
SELECT pg_catalog.pg_extension_config_dump('lead_enrich.batch', '');
SELECT pg_catalog.pg_extension_config_dump('lead_enrich.batch_id_seq', '');
REVOKE ALL ON lead_enrich.batch FROM PUBLIC;
REVOKE ALL ON SEQUENCE lead_enrich.batch_id_seq FROM PUBLIC;
GRANT SELECT ON lead_enrich.batch TO lead_enrich_user;

ALTER TABLE lead_enrich.lead_state ADD COLUMN batch_id bigint;
CREATE INDEX lead_state_batch_idx ON lead_enrich.lead_state (batch_id) WHERE batch_id IS NOT NULL;

/*
 * The worker's queue: pending leads not in a batch, read in lead id order.
 * A lead leaves it when a batch takes it (batch_id set), so the claim never
 * reads past the leads in flight (src/queue.c, queue_claimable).
 */
CREATE INDEX lead_state_pending_idx ON lead_enrich.lead_state (lead_id)
	WHERE status = 'pending' AND batch_id IS NULL;

/*
 * The trigger function; its arguments are the attached table's id, e-mail,
 * done, reveal_id, probability and active columns ('' when unmapped).  New
 * leads go to shared memory, and the worker makes them durable
 * (src/intake.c).  SECURITY DEFINER: the roles that insert leads need no
 * rights on lead_state.  Its
 * search_path is pinned: the statement it prepares reads columns of the
 * inserting role's table, and an operator that role created in its own
 * schema must never be picked (src/trigger.c).
 */
CREATE FUNCTION lead_enrich.enqueue()
RETURNS trigger
LANGUAGE C SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'lead_enrich_enqueue';
REVOKE ALL ON FUNCTION lead_enrich.enqueue() FROM PUBLIC;

/*
 * The same trigger function for INSERTs: it only appends the new leads'
 * ids to shared memory, which needs no rights, and is not SECURITY DEFINER
 * (a function with its own search_path costs a GUC nest level per INSERT).
 * Without shared memory it writes lead_state as the extension's owner with
 * search_path pinned, as enqueue() does (src/trigger.c).
 */
CREATE FUNCTION lead_enrich.intake()
RETURNS trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'lead_enrich_enqueue';
REVOKE ALL ON FUNCTION lead_enrich.intake() FROM PUBLIC;

/*
 * The enqueue trigger of Citus mode, on the shards of a distributed lead
 * table: appends the leads that need enriching to the co-located shard of
 * lead_enrich.citus_queue (src/citus.c).
 */
CREATE FUNCTION lead_enrich.citus_enqueue()
RETURNS trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'lead_enrich_citus_enqueue';
REVOKE ALL ON FUNCTION lead_enrich.citus_enqueue() FROM PUBLIC;

/*
 * Where the scan for new leads lost from shared memory (a crash, a
 * restart, a failover) starts: the largest id of the attached table when
 * automatic mode was switched on.  Leads at or below it were there before
 * and are not enqueued automatically (src/intake.c).
 */
CREATE TABLE lead_enrich.intake (
	lead_table	regclass PRIMARY KEY,
	since_id	bigint NOT NULL,
	since_at	timestamptz NOT NULL DEFAULT now()
);
SELECT pg_catalog.pg_extension_config_dump('lead_enrich.intake', '');

/*
 * sync_triggers(): remove the enqueue triggers wherever they are, and
 * install them on the attached table when the mode is 'auto'; record in
 * lead_enrich.intake where automatic mode started, unless it already ran
 * on that table.  Called by attach(), detach() and set_mode().
 *
 * A Citus distributed table (src/citus.c) gets lead_enrich.citus_enqueue()
 * instead, which Citus runs on every shard, and a queue co-located with it,
 * lead_enrich.citus_queue, created here; the recovery scan of the intake
 * is not needed (the queue is a table) and not recorded.
 */
CREATE FUNCTION lead_enrich.sync_triggers()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t			record;
	c			record;
	email		text;
	active		text;
	args		text;
	attached	boolean;
	was_auto	boolean;
	since		bigint;
	distcol		text;
	disttype	text;
BEGIN
	SELECT * INTO c FROM lead_enrich.config;
	attached := FOUND;
	was_auto := attached AND EXISTS (SELECT 1 FROM pg_trigger tg
								  WHERE tg.tgrelid = c.lead_table AND tg.tgname = 'lead_enrich_enqueue_insert'
									AND tg.tgfoid IN ('lead_enrich.enqueue()'::regprocedure,
													  'lead_enrich.intake()'::regprocedure));
	-- Citus: the distribution column of a distributed lead table
	IF attached AND to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
		EXECUTE 'SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
				 FROM pg_catalog.pg_dist_partition p
				 JOIN pg_attribute a ON a.attrelid = p.logicalrelid
					AND a.attname = column_to_column_name(p.logicalrelid, p.partkey)
				 WHERE p.logicalrelid = $1 AND p.partmethod <> ''n'''
			INTO distcol, disttype USING c.lead_table;
		PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
	END IF;
	FOR t IN SELECT tg.tgname, tg.tgrelid::regclass AS rel
			 FROM pg_trigger tg
			 WHERE tg.tgfoid IN ('lead_enrich.enqueue()'::regprocedure, 'lead_enrich.intake()'::regprocedure,
								 'lead_enrich.citus_enqueue()'::regprocedure) LOOP
		EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, t.rel);
	END LOOP;

	IF NOT attached OR c.mode <> 'auto' THEN
		DELETE FROM lead_enrich.intake;
		RETURN;
	END IF;
	email := c.columns ->> 'email';
	active := c.columns ->> 'active';
	args := format('%L, %L, %L, %L, %L, %L', c.columns ->> 'id', email,
				   coalesce(c.columns ->> 'enrich_done', ''),
				   coalesce(c.columns ->> 'reveal_id', ''),
				   coalesce(c.columns ->> 'probability', ''),
				   coalesce(active, ''));
	IF distcol IS NOT NULL THEN
		-- the queue, co-located with the lead table (made again for another table)
		IF to_regclass('lead_enrich.citus_queue') IS NOT NULL AND NOT EXISTS (
			SELECT 1 FROM pg_catalog.pg_dist_partition q, pg_catalog.pg_dist_partition l
			WHERE q.logicalrelid = to_regclass('lead_enrich.citus_queue') AND l.logicalrelid = c.lead_table
			  AND q.colocationid = l.colocationid) THEN
			DROP TABLE lead_enrich.citus_queue;
		END IF;
		IF to_regclass('lead_enrich.citus_queue') IS NULL THEN
			EXECUTE format('CREATE TABLE lead_enrich.citus_queue (dist_key %s, lead_id bigint NOT NULL, '
						   'email text, queued_at timestamptz NOT NULL DEFAULT now())', disttype);
			PERFORM create_distributed_table('lead_enrich.citus_queue', 'dist_key',
											 colocate_with => c.lead_table::text);
		END IF;
		args := format('%s, %L', args, distcol);
		EXECUTE format('CREATE TRIGGER lead_enrich_enqueue_insert AFTER INSERT ON %s '
					   'REFERENCING NEW TABLE AS lead_enrich_new '
					   'FOR EACH STATEMENT EXECUTE FUNCTION lead_enrich.citus_enqueue(%s)',
					   c.lead_table, args);
		EXECUTE format('CREATE TRIGGER lead_enrich_enqueue_update AFTER UPDATE OF %s ON %s '
					   'FOR EACH ROW WHEN (OLD.%I IS DISTINCT FROM NEW.%I%s) '
					   'EXECUTE FUNCTION lead_enrich.citus_enqueue(%s)',
					   concat_ws(', ', quote_ident(email), quote_ident(active)), c.lead_table, email, email,
					   CASE WHEN active IS NULL THEN ''
							ELSE format(' OR (OLD.%I IS FALSE AND NEW.%I IS NOT FALSE)', active, active) END,
					   args);
		DELETE FROM lead_enrich.intake;
		RETURN;
	END IF;
	EXECUTE format('CREATE TRIGGER lead_enrich_enqueue_insert AFTER INSERT ON %s '
				   'REFERENCING NEW TABLE AS lead_enrich_new '
				   'FOR EACH STATEMENT EXECUTE FUNCTION lead_enrich.intake(%s)',
				   c.lead_table, args);
	-- a changed e-mail, or an archived lead made active again
	IF active IS NULL THEN
		EXECUTE format('CREATE TRIGGER lead_enrich_enqueue_update AFTER UPDATE OF %I ON %s '
					   'FOR EACH ROW WHEN (OLD.%I IS DISTINCT FROM NEW.%I) '
					   'EXECUTE FUNCTION lead_enrich.enqueue(%s)',
					   email, c.lead_table, email, email, args);
	ELSE
		EXECUTE format('CREATE TRIGGER lead_enrich_enqueue_update AFTER UPDATE OF %I, %I ON %s '
					   'FOR EACH ROW WHEN (OLD.%I IS DISTINCT FROM NEW.%I '
					   'OR (OLD.%I IS FALSE AND NEW.%I IS NOT FALSE)) '
					   'EXECUTE FUNCTION lead_enrich.enqueue(%s)',
					   email, active, c.lead_table, email, email, active, active, args);
	END IF;

	-- after CREATE TRIGGER: the inserts it waited for are counted
	IF NOT was_auto OR NOT EXISTS (SELECT 1 FROM lead_enrich.intake i WHERE i.lead_table = c.lead_table) THEN
		EXECUTE format('SELECT coalesce(max(%I), 0) FROM %s', c.columns ->> 'id', c.lead_table) INTO since;
		DELETE FROM lead_enrich.intake;
		INSERT INTO lead_enrich.intake (lead_table, since_id) VALUES (c.lead_table, since);
	END IF;
END
$$;
REVOKE ALL ON FUNCTION lead_enrich.sync_triggers() FROM PUBLIC;

/*
 * set_mode('manual' | 'auto'): enrich on demand only, or automatically
 * (Odoo's two settings).  For a superuser or the attached table's owner.
 * Returns the previous mode.
 */
CREATE FUNCTION lead_enrich.set_mode(mode text)
RETURNS text
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'lead_enrich_set_mode';

/*
 * Enqueue leads for the worker: the given ones, or (NULL) every lead that
 * needs enriching and has no outcome yet or a retryable one (error,
 * insufficient_credit).  Leads created before automatic mode was switched
 * on are not enqueued otherwise.  Returns the number enqueued.
 */
CREATE FUNCTION lead_enrich.enqueue_leads(lead_ids bigint[] DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	c			record;
	cond		text := '';
	n			bigint;
BEGIN
	SELECT * INTO c FROM lead_enrich.config;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no lead table is attached'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Attach the CRM table first, for example SELECT lead_enrich.attach(''crm_lead'');';
	END IF;
	IF c.columns ? 'enrich_done' THEN
		cond := cond || format(' AND NOT coalesce(l.%I, false)', c.columns ->> 'enrich_done');
	END IF;
	IF c.columns ? 'reveal_id' THEN
		cond := cond || format(' AND coalesce(l.%I::text, '''') = ''''', c.columns ->> 'reveal_id');
	END IF;
	IF c.columns ? 'probability' THEN
		cond := cond || format(' AND coalesce(l.%I < 100, true)', c.columns ->> 'probability');
	END IF;
	EXECUTE format(
		'INSERT INTO lead_enrich.lead_state AS s (lead_id, status, email, source, attempts, updated_at) '
		'SELECT l.%1$I, ''pending'', l.%2$I, ''worker'', 0, now() FROM %3$s l '
		'WHERE btrim(coalesce(l.%2$I::text, '''')) <> '''' %4$s AND ($1 IS NULL OR l.%1$I = ANY ($1)) '
		'ON CONFLICT (lead_id) DO UPDATE SET status = ''pending'', email = excluded.email, '
		'  source = ''worker'', attempts = 0, next_attempt_at = NULL, error = NULL, updated_at = now() '
		'WHERE s.status IN (''error'', ''insufficient_credit'', ''invalid_email'', ''no_email'') '
		'   OR ($1 IS NOT NULL AND s.status = ''pending'')',
		c.columns ->> 'id', c.columns ->> 'email', c.lead_table, cond)
		USING lead_ids;
	GET DIAGNOSTICS n = ROW_COUNT;
	IF n > 0 THEN
		PERFORM lead_enrich.wake_at_commit();
	END IF;
	RETURN n;
END
$$;
REVOKE ALL ON FUNCTION lead_enrich.enqueue_leads(bigint[]) FROM PUBLIC;

/* Wake this database's worker when the current transaction commits. */
CREATE FUNCTION lead_enrich.wake_at_commit()
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'lead_enrich_wake_at_commit';
REVOKE ALL ON FUNCTION lead_enrich.wake_at_commit() FROM PUBLIC;

/* Run a pass now (also ends a pause for lack of credits when possible). */
CREATE FUNCTION lead_enrich.wake()
RETURNS boolean
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'lead_enrich_wake';

/* Start / stop this database's worker without a restart. */
CREATE FUNCTION lead_enrich.worker_start()
RETURNS integer
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'lead_enrich_worker_start';

CREATE FUNCTION lead_enrich.worker_stop()
RETURNS boolean
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'lead_enrich_worker_stop';

/* This database's worker as shared memory knows it. */
CREATE FUNCTION lead_enrich.worker_info(
	OUT launcher_running boolean, OUT pid integer, OUT activity text,
	OUT started_at timestamptz, OUT last_run timestamptz, OUT runs bigint,
	OUT requests bigint, OUT last_error text, OUT last_error_at timestamptz,
	OUT paused_since timestamptz, OUT pause_reason text, OUT stopped boolean)
RETURNS record
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'lead_enrich_worker_info';

/*
 * New leads wait in shared memory until the worker makes them durable
 * (src/intake.c).  intake_collect() does it now (for tests, and before a
 * planned switchover while the worker is stopped) and returns how many it
 * queued; intake_pending() counts the committed ones still waiting.
 */
CREATE FUNCTION lead_enrich.intake_collect()
RETURNS bigint
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'lead_enrich_intake_collect';
REVOKE ALL ON FUNCTION lead_enrich.intake_collect() FROM PUBLIC;

CREATE FUNCTION lead_enrich.intake_pending()
RETURNS bigint
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'lead_enrich_intake_pending';
REVOKE ALL ON FUNCTION lead_enrich.intake_pending() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lead_enrich.intake_pending() TO lead_enrich_user;

/*
 * The status of automatic enrichment in this database: the mode, the
 * worker, the queue, the outcomes and the credits spent.
 */
CREATE VIEW lead_enrich.status AS
SELECT
	c.mode,
	c.lead_table,
	w.pid AS worker_pid,
	w.activity AS worker_activity,
	q.pending + i.n AS pending,
	q.pending_due + i.n AS pending_due,
	q.retrying,
	w.last_run,
	w.last_error,
	w.last_error_at,
	w.paused_since,
	w.pause_reason,
	o.outcomes,
	q.credits_spent,
	w.runs,
	w.requests,
	w.started_at AS worker_started_at,
	w.launcher_running,
	CASE WHEN d.missing IS NOT NULL
		THEN format('table %s detached: mapped columns %s were dropped, renamed or retyped; '
					'new leads are not enqueued and enrichment is suspended until lead_enrich.attach() is run again',
					c.lead_table, d.missing) END AS problem
FROM lead_enrich.worker_info() w
LEFT JOIN lead_enrich.config c ON true
LEFT JOIN LATERAL (SELECT lead_enrich._changed_columns(c.lead_table, c.columns) AS missing) d ON true
CROSS JOIN LATERAL (SELECT lead_enrich.intake_pending() AS n) i
CROSS JOIN LATERAL (
	SELECT count(*) FILTER (WHERE s.status = 'pending') AS pending,
		   count(*) FILTER (WHERE s.status = 'pending'
							AND coalesce(s.next_attempt_at <= now(), true)) AS pending_due,
		   count(*) FILTER (WHERE s.status = 'pending' AND s.attempts > 0) AS retrying,
		   coalesce(sum(s.credits), 0) AS credits_spent
	FROM lead_enrich.lead_state s) q
CROSS JOIN LATERAL (
	SELECT coalesce(jsonb_object_agg(x.status, x.n), '{}') AS outcomes
	FROM (SELECT s.status, count(*) AS n FROM lead_enrich.lead_state s GROUP BY s.status) x) o;

REVOKE ALL ON FUNCTION lead_enrich.set_mode(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION lead_enrich.wake() FROM PUBLIC;
REVOKE ALL ON FUNCTION lead_enrich.worker_start() FROM PUBLIC;
REVOKE ALL ON FUNCTION lead_enrich.worker_stop() FROM PUBLIC;
REVOKE ALL ON FUNCTION lead_enrich.worker_info() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lead_enrich.set_mode(text) TO lead_enrich_user;
GRANT EXECUTE ON FUNCTION lead_enrich.wake() TO lead_enrich_user;
GRANT EXECUTE ON FUNCTION lead_enrich.worker_info() TO lead_enrich_user;
GRANT SELECT ON lead_enrich.status TO lead_enrich_user;

/*
 * forget(email, domain, lead_ids): the right to be forgotten (GDPR erasure).
 * Removes what lead_enrich recorded about a person (an e-mail address), a
 * company (a domain and its sub-domains) or leads (ids): their outcomes with
 * the company data in them, their membership of unsettled batches, and the
 * contacts of mined companies with that address or domain.  The CRM table
 * is not touched: it is the CRM's data, erased the CRM's way.  Returns what
 * was removed.  For superusers, or a role they grant it to (a data
 * protection officer's).
 */
CREATE FUNCTION lead_enrich.forget(email text DEFAULT NULL, domain text DEFAULT NULL,
	lead_ids bigint[] DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	e			text := lower(btrim(email));
	d			text := lower(btrim(btrim(domain), '.'));
	ids			bigint[];
	n_outcomes	bigint;
	n_members	bigint;
	n_contacts	bigint;
BEGIN
	IF num_nonnulls(email, domain, lead_ids) = 0 THEN
		RAISE EXCEPTION 'nothing to forget'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Name an e-mail address, a domain or lead ids, for example lead_enrich.forget(email => ''jane@example.com'').';
	END IF;
	IF e IS NOT NULL AND e !~ '^[^@[:space:]]+@[^@[:space:]]+$' THEN
		RAISE EXCEPTION 'invalid e-mail address "%"', email
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass one address, as in jane@example.com.';
	END IF;
	IF d IS NOT NULL AND (d = '' OR d !~ '^[a-z0-9._-]+$' OR d !~ '\.') THEN
		RAISE EXCEPTION 'invalid domain "%"', domain
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass a domain name, as in example.com.';
	END IF;

	-- the leads whose outcome is about that address, domain or id
	SELECT coalesce(array_agg(s.lead_id), '{}') INTO ids
	FROM lead_enrich.lead_state s
	WHERE (e IS NOT NULL AND (lower(s.email) = e OR lead_enrich.email_normalize(s.email) = e))
	   OR (d IS NOT NULL AND (s.domain = d OR s.domain LIKE '%.' || d
							  OR split_part(lead_enrich.email_normalize(s.email), '@', 2) = d
							  OR split_part(lead_enrich.email_normalize(s.email), '@', 2) LIKE '%.' || d))
	   OR s.lead_id = ANY (lead_ids);

	-- their places in unsettled batches (the rest of a batch is still sent
	-- with its id, and answered from the provider's replay store)
	WITH m AS (
		SELECT b.id, array_agg(u.lead_id ORDER BY u.o) AS lids, array_agg(u.dom ORDER BY u.o) AS doms,
			   count(*) FILTER (WHERE u.lead_id = ANY (ids) OR u.dom = d OR u.dom LIKE '%.' || d) AS gone
		FROM lead_enrich.batch b,
			 unnest(b.lead_ids, b.domains) WITH ORDINALITY AS u(lead_id, dom, o)
		GROUP BY b.id),
	kept AS (
		SELECT m.id, m.gone,
			   array_agg(k.lead_id ORDER BY k.o) FILTER (WHERE k.lead_id IS NOT NULL) AS lids,
			   array_agg(k.dom ORDER BY k.o) FILTER (WHERE k.lead_id IS NOT NULL) AS doms
		FROM m
		LEFT JOIN LATERAL (
			SELECT u.lead_id, u.dom, u.o
			FROM unnest(m.lids, m.doms) WITH ORDINALITY AS u(lead_id, dom, o)
			WHERE NOT (u.lead_id = ANY (ids) OR coalesce(u.dom = d OR u.dom LIKE '%.' || d, false))) k ON true
		WHERE m.gone > 0
		GROUP BY m.id, m.gone),
	upd AS (
		UPDATE lead_enrich.batch b SET lead_ids = coalesce(kept.lids, '{}'), domains = coalesce(kept.doms, '{}')
		FROM kept WHERE b.id = kept.id
		RETURNING kept.gone)
	SELECT coalesce(sum(upd.gone), 0) INTO n_members FROM upd;
	DELETE FROM lead_enrich.batch b WHERE cardinality(b.lead_ids) = 0;

	DELETE FROM lead_enrich.lead_state s WHERE s.lead_id = ANY (ids);
	GET DIAGNOSTICS n_outcomes = ROW_COUNT;

	-- contacts of mined companies with that address, or at that domain
	WITH c AS (
		SELECT s.lead_id, p.v, p.o,
			   (e IS NOT NULL AND lower(p.v ->> 'email') = e)
			   OR (d IS NOT NULL AND (split_part(lower(p.v ->> 'email'), '@', 2) = d
									 OR split_part(lower(p.v ->> 'email'), '@', 2) LIKE '%.' || d)) AS gone
		FROM lead_enrich.lead_state s,
			 jsonb_array_elements(s.company -> 'people_data') WITH ORDINALITY AS p(v, o)
		WHERE jsonb_typeof(s.company -> 'people_data') = 'array'),
	agg AS (
		SELECT c.lead_id, count(*) FILTER (WHERE c.gone) AS gone,
			   coalesce(jsonb_agg(c.v ORDER BY c.o) FILTER (WHERE NOT c.gone), '[]') AS people
		FROM c GROUP BY c.lead_id HAVING count(*) FILTER (WHERE c.gone) > 0),
	upd AS (
		UPDATE lead_enrich.lead_state s SET company = jsonb_set(s.company, '{people_data}', agg.people),
			updated_at = now()
		FROM agg WHERE s.lead_id = agg.lead_id
		RETURNING agg.gone)
	SELECT coalesce(sum(upd.gone), 0) INTO n_contacts FROM upd;

	RETURN jsonb_build_object('outcomes', n_outcomes, 'batch_members', n_members,
							  'mined_contacts', n_contacts);
END
$$;
REVOKE ALL ON FUNCTION lead_enrich.forget(text, text, bigint[]) FROM PUBLIC;
