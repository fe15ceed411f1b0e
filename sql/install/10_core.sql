/*
 * Core objects: the role, the attached table, lead outcomes, enrichment
 * functions.  The files of sql/install are concatenated in name order into
 * lead_enrich--<version>.sql by the Makefile.
 */

/*
 * The role that may enrich leads and read outcomes.  PUBLIC gets nothing:
 * every call may spend credits.  Roles are cluster-wide, so the role is
 * created only when missing and survives DROP EXTENSION.
 */
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lead_enrich_user') THEN
		CREATE ROLE lead_enrich_user NOLOGIN;
	END IF;
END
$$;

REVOKE ALL ON SCHEMA lead_enrich FROM PUBLIC;
GRANT USAGE ON SCHEMA lead_enrich TO lead_enrich_user;

/*
 * The attached CRM table: one per database.  "columns" maps the logical
 * names used by the C code (email, partner_name, country, ...) to the
 * table's columns; "kinds" says how country and state are stored
 * ("fk" to Odoo's res_country / res_country_state, or "code" as text).
 */
CREATE TABLE lead_enrich.config (
	singleton	boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	lead_table	regclass NOT NULL,
	columns		jsonb NOT NULL,
	kinds		jsonb NOT NULL,
	layout		text NOT NULL CHECK (layout IN ('odoo', 'plain')),
	dbuuid		text NOT NULL,
	mode		text NOT NULL DEFAULT 'manual' CHECK (mode IN ('manual', 'auto')),
	attached_at timestamptz NOT NULL DEFAULT now()
);
SELECT pg_catalog.pg_extension_config_dump('lead_enrich.config', '');

/*
 * One row per lead the extension has looked at: the outcome of the last
 * attempt (Odoo's chatter note, for SQL users), and the queue state the
 * background worker uses.  "email" is the address the outcome was computed
 * from, so a changed address is evaluated again.
 */
CREATE TABLE lead_enrich.lead_state (
	lead_id		bigint PRIMARY KEY,
	status		text NOT NULL CHECK (status IN ('pending', 'enriched', 'not_found',
												'generic_domain', 'invalid_email', 'no_email',
												'insufficient_credit', 'error', 'mined')),
	email		text,
	domain		text,
	company		jsonb,
	filled		text[] NOT NULL DEFAULT '{}',
	credits		integer NOT NULL DEFAULT 0,
	attempts	integer NOT NULL DEFAULT 0,
	next_attempt_at timestamptz,
	error		text,
	source		text NOT NULL DEFAULT 'manual' CHECK (source IN ('manual', 'worker', 'mining')),
	updated_at	timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 80);
SELECT pg_catalog.pg_extension_config_dump('lead_enrich.lead_state', '');

/*
 * Generic webmail domains: a lead whose e-mail domain, or a parent domain
 * of it that is not a public suffix, is listed here is marked
 * generic_domain: never sent, never charged.  The rows the extension ships
 * (npm email-providers, ISC, curated: data/README.md) have shipped = true;
 * a DBA adds and deletes rows.  pg_dump keeps the rows a DBA added (the
 * shipped ones come with CREATE EXTENSION); lower case, no outer dots, as
 * the look-up compares them with normalised domains.
 */
CREATE TABLE lead_enrich.webmail_domain (
	domain		text PRIMARY KEY,
	shipped		boolean NOT NULL DEFAULT false,
	CONSTRAINT webmail_domain_domain_check
		CHECK (domain <> '' AND domain = lower(domain) AND domain !~ '^\.|\.$|\s')
);
SELECT pg_catalog.pg_extension_config_dump('lead_enrich.webmail_domain', 'WHERE NOT shipped');

REVOKE ALL ON ALL TABLES IN SCHEMA lead_enrich FROM PUBLIC;
GRANT SELECT ON lead_enrich.webmail_domain TO lead_enrich_user;
GRANT SELECT ON lead_enrich.config TO lead_enrich_user;
/*
 * lead_enrich_user reads outcomes, including each lead's e-mail address
 * and company data: the same facts it reads in the CRM table it enriches.
 * Only the extension writes them (as its owner, src/guard.c).
 */
GRANT SELECT ON lead_enrich.lead_state TO lead_enrich_user;

/*
 * Outcomes with the company data as typed columns.
 */
CREATE VIEW lead_enrich.enrichment AS
SELECT
	s.lead_id,
	s.status,
	s.domain,
	s.company ->> 'name' AS company_name,
	s.company ->> 'clearbit_id' AS clearbit_id,
	s.company ->> 'company_type' AS company_type,
	CASE WHEN jsonb_typeof(s.company -> 'employees') = 'number'
		THEN (s.company ->> 'employees')::numeric END AS employees,
	CASE WHEN (s.company ->> 'founded_year') ~ '^[0-9]{1,4}$'
		THEN (s.company ->> 'founded_year')::integer END AS founded_year,
	coalesce(s.company ->> 'sector_primary', s.company ->> 'sector') AS sector,
	s.company ->> 'industry' AS industry,
	s.company ->> 'estimated_annual_revenue' AS estimated_annual_revenue,
	s.company ->> 'timezone' AS timezone,
	CASE WHEN jsonb_typeof(s.company -> 'tech') = 'array'
		THEN ARRAY(SELECT jsonb_array_elements_text(s.company -> 'tech')) END AS technologies,
	s.company ->> 'twitter' AS twitter,
	s.company ->> 'facebook' AS facebook,
	s.company ->> 'linkedin' AS linkedin,
	s.company ->> 'crunchbase' AS crunchbase,
	s.company ->> 'logo' AS logo,
	s.company ->> 'description' AS description,
	s.filled,
	s.credits,
	s.attempts,
	s.error,
	s.source,
	s.updated_at
FROM lead_enrich.lead_state s;
GRANT SELECT ON lead_enrich.enrichment TO lead_enrich_user;

/*
 * _changed_columns(lead_table, columns): the mapped columns (attach()'s
 * "columns") that were dropped, renamed or retyped since, as
 * "key (column), ..."; NULL when the table is as attach() saw it.  The
 * worker suspends enrichment then, and lead_enrich.status shows it.  In C
 * (src/lead_table.c, changed_columns): the worker asks at every claim.
 */
CREATE FUNCTION lead_enrich._changed_columns(lead_table regclass, columns jsonb)
RETURNS text
LANGUAGE C STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'lead_enrich_changed_columns';
REVOKE ALL ON FUNCTION lead_enrich._changed_columns(regclass, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lead_enrich._changed_columns(regclass, jsonb) TO lead_enrich_user;

/*
 * _odoo_setting(lead_table, key): Odoo's ir_config_parameter value in the
 * table's schema, read as the table's owner with
 * SECURITY_RESTRICTED_OPERATION (src/attach.c): attach() runs as a
 * superuser, and the owner of Odoo's tables wrote them.
 */
CREATE FUNCTION lead_enrich._odoo_setting(lead_table regclass, key text)
RETURNS text
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'lead_enrich_odoo_setting';
REVOKE ALL ON FUNCTION lead_enrich._odoo_setting(regclass, text) FROM PUBLIC;

/*
 * attach(lead_table, columns): the CRM table to work on and which of its
 * columns hold what.  Written in PL/pgSQL: it runs once, and its job is
 * checking a catalog and saying clearly what is wrong.
 */
CREATE FUNCTION lead_enrich.attach(lead_table regclass, columns jsonb DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	defaults constant jsonb := '{
		"id": "id", "email": "email_from", "name": "name",
		"partner_name": "partner_name", "reveal_id": "reveal_id",
		"street": "street", "city": "city", "zip": "zip",
		"phone": "phone", "mobile": "mobile",
		"country": "country_id", "state": "state_id",
		"website": "website", "enrich_done": "iap_enrich_done",
		"probability": "probability", "active": "active",
		"contact_name": "contact_name", "function": "function",
		"type": "type", "team_id": "team_id", "user_id": "user_id",
		"mining_request": "lead_mining_request_id",
		"write_date": "write_date"}';
	text_keys constant text[] := ARRAY['email', 'name', 'partner_name', 'reveal_id',
		'street', 'city', 'zip', 'phone', 'mobile', 'website', 'contact_name',
		'function', 'type'];
	required constant text[] := ARRAY['id', 'email'];
	nsp			oid;
	nspname		text;
	mapping		jsonb := '{}';
	kinds		jsonb := '{}';
	k			text;
	v			jsonb;
	col			text;
	typ			oid;
	typname		text;
	explicit	boolean;
	is_odoo		boolean;
	uuid		text;
	n_removed	bigint;
BEGIN
	IF columns IS NOT NULL AND jsonb_typeof(columns) <> 'object' THEN
		RAISE EXCEPTION 'columns must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Got a JSON %s.', jsonb_typeof(columns)),
				  HINT = 'Pass for example ''{"email": "mail", "country": "country_code"}''.';
	END IF;
	FOR k IN SELECT jsonb_object_keys(coalesce(columns, '{}')) LOOP
		IF NOT defaults ? k THEN
			RAISE EXCEPTION 'unknown column key "%"', k
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = format('Known keys: %s.',
									(SELECT string_agg(x, ', ' ORDER BY x) FROM jsonb_object_keys(defaults) x));
		END IF;
		IF jsonb_typeof(columns -> k) NOT IN ('string', 'null') THEN
			RAISE EXCEPTION 'column key "%" must map to a column name or null', k
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
	END LOOP;

	SELECT c.relnamespace, n.nspname INTO nsp, nspname
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE c.oid = lead_table AND c.relkind IN ('r', 'p');
	IF nsp IS NULL THEN
		RAISE EXCEPTION '"%" is not a table', lead_table
			USING ERRCODE = 'wrong_object_type';
	END IF;

	FOR k, v IN SELECT * FROM jsonb_each(defaults) LOOP
		explicit := columns IS NOT NULL AND columns ? k;
		IF explicit AND jsonb_typeof(columns -> k) = 'null' THEN
			IF k = ANY (required) THEN
				RAISE EXCEPTION 'column key "%" is required', k
					USING ERRCODE = 'invalid_parameter_value';
			END IF;
			CONTINUE;
		END IF;
		col := CASE WHEN explicit THEN columns ->> k ELSE v #>> '{}' END;
		SELECT a.atttypid, format_type(a.atttypid, a.atttypmod) INTO typ, typname
		FROM pg_attribute a
		WHERE a.attrelid = lead_table AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
		IF typ IS NULL THEN
			IF explicit OR k = ANY (required) THEN
				RAISE EXCEPTION 'table % has no column "%" (for "%")', lead_table, col, k
					USING ERRCODE = 'undefined_column',
						  HINT = format('Map "%s" to an existing column with attach(%L, ''{"%s": "<column>"}'').',
										k, lead_table::text, k);
			END IF;
			CONTINUE;
		END IF;
		IF (k = 'id' AND typ NOT IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype))
			OR (k = ANY (text_keys) AND typ NOT IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype))
			OR (k IN ('enrich_done', 'active') AND typ <> 'bool'::regtype)
			OR (k = 'probability' AND typ NOT IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype,
												  'float4'::regtype, 'float8'::regtype, 'numeric'::regtype))
			OR (k IN ('team_id', 'user_id', 'mining_request')
				AND typ NOT IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype))
			OR (k = 'write_date' AND typ NOT IN ('timestamp'::regtype, 'timestamptz'::regtype))
			OR (k IN ('country', 'state')
				AND typ NOT IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype,
								'text'::regtype, 'varchar'::regtype, 'bpchar'::regtype)) THEN
			RAISE EXCEPTION 'column "%" of table % has type %, which cannot hold "%"', col, lead_table, typname, k
				USING ERRCODE = 'datatype_mismatch',
					  HINT = CASE WHEN k IN ('country', 'state')
							 THEN 'Use an integer referencing res_country / res_country_state, or a text column for ISO codes.'
							 ELSE 'Map the key to a column of a suitable type, or to null to leave it unused.' END;
		END IF;
		IF k IN ('country', 'state') THEN
			IF typ IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype) THEN
				kinds := kinds || jsonb_build_object(k, 'code');
			ELSIF to_regclass(format('%I.%I', nspname,
									 CASE k WHEN 'country' THEN 'res_country' ELSE 'res_country_state' END)) IS NULL THEN
				RAISE EXCEPTION 'column "%" of table % is an integer but %.% does not exist', col, lead_table, nspname,
					CASE k WHEN 'country' THEN 'res_country' ELSE 'res_country_state' END
					USING ERRCODE = 'undefined_table',
						  HINT = 'Integer country and state columns reference Odoo''s res_country and res_country_state in the same schema; use text columns for ISO codes otherwise.';
			ELSE
				kinds := kinds || jsonb_build_object(k, 'fk');
			END IF;
		END IF;
		mapping := mapping || jsonb_build_object(k, col, k || ':type', typname);
	END LOOP;

	-- every read and write of leads is by id, a batch at a time, and the
	-- intake reads new leads in chunks in the order of their ids
	IF NOT EXISTS (SELECT 1 FROM pg_index i
				   JOIN pg_class ic ON ic.oid = i.indexrelid
				   JOIN pg_am am ON am.oid = ic.relam
				   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
				   WHERE i.indrelid = lead_table AND a.attname = mapping ->> 'id'
				   AND am.amname = 'btree' AND i.indisvalid AND i.indpred IS NULL) THEN
		RAISE WARNING 'table % has no B-tree index on its id column "%"', lead_table, mapping ->> 'id'
			USING DETAIL = 'lead_enrich reads and updates leads by id, a batch at a time: without such an index each batch reads the whole table.',
				  HINT = format('Create one, for example: CREATE UNIQUE INDEX ON %s (%I);', lead_table, mapping ->> 'id');
	END IF;

	is_odoo := mapping ? 'enrich_done' AND kinds ->> 'country' = 'fk'
		AND to_regclass(format('%I.ir_config_parameter', nspname)) IS NOT NULL;
	IF is_odoo THEN
		uuid := lead_enrich._odoo_setting(lead_table, 'database.uuid');
	END IF;
	IF uuid IS NULL THEN
		SELECT c.dbuuid INTO uuid FROM lead_enrich.config c;
	END IF;
	uuid := coalesce(uuid, gen_random_uuid()::text);

	IF EXISTS (SELECT 1 FROM lead_enrich.config c WHERE c.lead_table <> attach.lead_table) THEN
		DELETE FROM lead_enrich.lead_state;
		GET DIAGNOSTICS n_removed = ROW_COUNT;
		IF n_removed > 0 THEN
			RAISE NOTICE 'removed % lead outcomes of the previously attached table', n_removed;
		END IF;
	END IF;

	INSERT INTO lead_enrich.config AS c (lead_table, columns, kinds, layout, dbuuid)
	VALUES (lead_table, mapping, kinds, CASE WHEN is_odoo THEN 'odoo' ELSE 'plain' END, uuid)
	ON CONFLICT (singleton) DO UPDATE
		SET lead_table = excluded.lead_table, columns = excluded.columns, kinds = excluded.kinds,
			layout = excluded.layout, dbuuid = excluded.dbuuid, attached_at = now();

	-- automatic mode: the enqueue triggers follow the attached table
	PERFORM lead_enrich.sync_triggers();

	RETURN jsonb_build_object('lead_table', lead_table::text,
							  'layout', CASE WHEN is_odoo THEN 'odoo' ELSE 'plain' END,
							  'dbuuid', uuid,
							  'columns', (SELECT jsonb_object_agg(key, value) FROM jsonb_each(mapping)
										  WHERE key NOT LIKE '%:type'),
							  'kinds', kinds);
END
$$;
REVOKE ALL ON FUNCTION lead_enrich.attach(regclass, jsonb) FROM PUBLIC;

/* Forget the attached table; its enqueue triggers (automatic mode) go too. */
CREATE FUNCTION lead_enrich.detach()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	DELETE FROM lead_enrich.config;
	PERFORM lead_enrich.sync_triggers();
END
$$;
REVOKE ALL ON FUNCTION lead_enrich.detach() FROM PUBLIC;

/* Enrich one lead now (Odoo's Enrich button). */
CREATE FUNCTION lead_enrich.enrich_lead(lead_id bigint)
RETURNS jsonb
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'lead_enrich_enrich_lead';

/* Bulk enrichment (Odoo's list-view action): batches, one request each. */
CREATE FUNCTION lead_enrich.enrich_leads(lead_ids bigint[],
	OUT lead_id bigint, OUT status text, OUT filled text[], OUT credits integer, OUT detail text)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'lead_enrich_enrich_leads';

/* The balance of the "reveal" service on the provider. */
CREATE FUNCTION lead_enrich.iap_balance()
RETURNS numeric
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'lead_enrich_iap_balance';

/* Where to buy credits (a browser URL). */
CREATE FUNCTION lead_enrich.iap_credit_url(credit integer DEFAULT 0)
RETURNS text
LANGUAGE C STRICT STABLE
AS 'MODULE_PATHNAME', 'lead_enrich_iap_credit_url';

/*
 * email_normalize(text): the one address enrichment reads from an e-mail
 * field (Odoo's strict email_normalize), NULL when there is none or more
 * than one.  webmail_match(domain): the webmail_domain row that makes a
 * domain generic, NULL when it would be sent.  Both say what enrichment
 * would do, without doing it.
 */
CREATE FUNCTION lead_enrich.email_normalize(email text)
RETURNS text
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'lead_enrich_email_normalize';

CREATE FUNCTION lead_enrich.webmail_match(domain text)
RETURNS text
LANGUAGE C STABLE STRICT
AS 'MODULE_PATHNAME', 'lead_enrich_webmail_match';

REVOKE ALL ON FUNCTION lead_enrich.email_normalize(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION lead_enrich.webmail_match(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lead_enrich.email_normalize(text) TO lead_enrich_user;
GRANT EXECUTE ON FUNCTION lead_enrich.webmail_match(text) TO lead_enrich_user;

REVOKE ALL ON FUNCTION lead_enrich.enrich_lead(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION lead_enrich.enrich_leads(bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION lead_enrich.iap_balance() FROM PUBLIC;
REVOKE ALL ON FUNCTION lead_enrich.iap_credit_url(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lead_enrich.enrich_lead(bigint) TO lead_enrich_user;
GRANT EXECUTE ON FUNCTION lead_enrich.enrich_leads(bigint[]) TO lead_enrich_user;
GRANT EXECUTE ON FUNCTION lead_enrich.iap_balance() TO lead_enrich_user;
GRANT EXECUTE ON FUNCTION lead_enrich.iap_credit_url(integer) TO lead_enrich_user;
