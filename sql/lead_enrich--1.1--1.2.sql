/* lead_enrich 1.1 -> 1.2: trust boundary, Odoo fidelity, platform */

\echo Use "ALTER EXTENSION lead_enrich UPDATE TO '1.2'" to load this file. \quit

/*
 * Each change below has a section of its own; the install script
 * (sql/install/) holds the same definitions, and test/t_upgrade.sh checks
 * that an upgraded catalog equals a fresh one.
 */

/* --- trust boundary (issue 10) --- */

/*
 * lead_enrich_user reads lead_enrich's tables and no longer writes them;
 * the extension writes them as its owner (src/guard.c).
 */
REVOKE INSERT, UPDATE ON lead_enrich.lead_state FROM lead_enrich_user;
REVOKE INSERT, UPDATE ON lead_enrich.mining_request FROM lead_enrich_user;
REVOKE ALL ON SEQUENCE lead_enrich.mining_request_id_seq FROM PUBLIC, lead_enrich_user;

/* the enqueue trigger's search_path is pinned */
ALTER FUNCTION lead_enrich.enqueue() SET search_path = pg_catalog, pg_temp;

/* attach() reads Odoo's database.uuid as the table's owner */
CREATE OR REPLACE FUNCTION lead_enrich._changed_columns(lead_table regclass, columns jsonb)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT string_agg(format('%I (%s)', j.key, j.value), ', ' ORDER BY j.key)
	FROM jsonb_each_text(columns) j
	WHERE j.key !~ ':type$' AND NOT EXISTS (
		SELECT FROM pg_attribute a
		WHERE a.attrelid = lead_table AND a.attname = j.value
		  AND a.attnum > 0 AND NOT a.attisdropped
		  AND format_type(a.atttypid, a.atttypmod) = columns ->> (j.key || ':type'))
$$;
REVOKE ALL ON FUNCTION lead_enrich._changed_columns(regclass, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lead_enrich._changed_columns(regclass, jsonb) TO lead_enrich_user;

CREATE OR REPLACE FUNCTION lead_enrich._odoo_setting(lead_table regclass, key text)
RETURNS text
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'lead_enrich_odoo_setting';
REVOKE ALL ON FUNCTION lead_enrich._odoo_setting(regclass, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION lead_enrich.attach(lead_table regclass, columns jsonb DEFAULT NULL)
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

/* mining requests are recorded through these, as the extension's owner */
CREATE OR REPLACE FUNCTION lead_enrich._mining_request_open(criteria jsonb, lead_table text)
RETURNS jsonb
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'lead_enrich_mining_request_open';

CREATE OR REPLACE FUNCTION lead_enrich._mining_request_link(request_id integer, odoo_request_id integer)
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'lead_enrich_mining_request_link';

CREATE OR REPLACE FUNCTION lead_enrich._mining_request_close(request_id integer, state text, error_type text,
	error text, lead_ids bigint[], companies integer, contacts integer, skipped integer)
RETURNS jsonb
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'lead_enrich_mining_request_close';

REVOKE ALL ON FUNCTION lead_enrich._mining_request_open(jsonb, text),
	lead_enrich._mining_request_link(integer, integer),
	lead_enrich._mining_request_close(integer, text, text, text, bigint[], integer, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lead_enrich._mining_request_open(jsonb, text),
	lead_enrich._mining_request_link(integer, integer),
	lead_enrich._mining_request_close(integer, text, text, text, bigint[], integer, integer, integer) TO lead_enrich_user;

CREATE OR REPLACE FUNCTION lead_enrich._mining_prepare(criteria jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	known constant text[] := ARRAY['lead_number', 'search_type', 'countries', 'states',
		'industries', 'company_size_min', 'company_size_max', 'contact_number',
		'contact_filter_type', 'preferred_role', 'other_roles', 'seniority', 'lead_type',
		'team_id', 'user_id', 'tags'];
	-- iap_tools._STATES_FILTER_COUNTRIES_WHITELIST
	state_countries constant text[] := ARRAY['AR', 'AU', 'BR', 'CA', 'IN', 'MY', 'MX', 'NZ', 'AE', 'US'];
	cfg			record;
	nsp			text;
	odoo		boolean;
	k			text;
	v			jsonb;
	e			jsonb;
	x			text;
	c			text;
	n			integer;
	id_found	integer;
	code_found	text;
	hint		text;
	lead_number integer := 3;
	search_type text := 'companies';
	people		boolean;
	countries	text[] := '{}';
	country_ids integer[] := '{}';
	states		text[] := '{}';
	state_ids	integer[] := '{}';
	industries	text[] := '{}';
	reveal_ids	text[] := '{}';
	size_min	integer;
	size_max	integer;
	contact_number integer;
	filter_type text;
	preferred	text;
	preferred_rid text;
	other		text[] := '{}';
	other_rids	text[] := '{}';
	seniority	text;
	seniority_rid text;
	lead_type	text;
	team_id		integer;
	user_id		integer;
	tag_ids		integer[] := '{}';
	stage_id	integer;
	norm		jsonb;
	payload		jsonb;
	req_id		integer;
	req_name	text;
	rec			jsonb;
	odoo_req	integer;
	ids			integer[];
BEGIN
	IF criteria IS NULL OR jsonb_typeof(criteria) <> 'object' THEN
		RAISE EXCEPTION 'criteria must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'For example ''{"countries": ["BE"], "industries": ["Software & Services"], "lead_number": 10}''.';
	END IF;
	FOR k IN SELECT jsonb_object_keys(criteria) LOOP
		IF NOT k = ANY (known) THEN
			PERFORM lead_enrich._mining_invalid(k, 'unknown key',
				format('Known keys: %s.', array_to_string(known, ', ')));
		END IF;
	END LOOP;
	-- a JSON null is the same as leaving the key out
	criteria := jsonb_strip_nulls(criteria);

	SELECT c2.lead_table, c2.layout, c2.columns, c2.kinds, n2.nspname
	INTO cfg
	FROM lead_enrich.config c2
	JOIN pg_class r ON r.oid = c2.lead_table
	JOIN pg_namespace n2 ON n2.oid = r.relnamespace;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no lead table is attached'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Attach the CRM table first, for example SELECT lead_enrich.attach(''crm_lead'');';
	END IF;
	nsp := cfg.nspname;
	odoo := cfg.layout = 'odoo';

	-- how many, and what
	IF criteria ? 'lead_number' THEN
		lead_number := lead_enrich._mining_int('lead_number', criteria -> 'lead_number', 1, 200,
			'lead_number goes from 1 to 200 (default 3).');
	END IF;
	IF criteria ? 'search_type' THEN
		search_type := criteria ->> 'search_type';
		IF jsonb_typeof(criteria -> 'search_type') <> 'string'
			OR search_type NOT IN ('companies', 'people') THEN
			PERFORM lead_enrich._mining_invalid('search_type', format('%s is not a search type', criteria -> 'search_type'),
				'Use "companies" (companies only) or "people" (companies and their contacts).');
		END IF;
	END IF;
	people := search_type = 'people';

	-- countries: ISO 3166-1 alpha-2, in res_country on Odoo's layout
	IF NOT criteria ? 'countries' THEN
		PERFORM lead_enrich._mining_invalid('countries', 'at least one country is required',
			'For example "countries": ["BE", "FR"] (ISO 3166-1 alpha-2 codes).');
	END IF;
	IF odoo THEN
		EXECUTE format('SELECT CASE WHEN count(*) <= 40 THEN ''Countries of %I.res_country: '' || string_agg(code, '', '' ORDER BY code) || ''.'' '
					   'ELSE ''Use the codes of %I.res_country (ISO 3166-1 alpha-2, e.g. BE, US).'' END FROM %I.res_country',
					   nsp, nsp, nsp) INTO hint;
	ELSE
		hint := 'Use ISO 3166-1 alpha-2 codes such as BE, DE or US (lead_enrich.iso_country lists them).';
	END IF;
	FOR e IN SELECT * FROM lead_enrich._mining_list('countries', criteria -> 'countries', false, hint) LOOP
		x := e #>> '{}';
		id_found := NULL;
		code_found := NULL;
		IF odoo THEN
			EXECUTE format('SELECT id, code FROM %I.res_country WHERE upper(code) = upper($1) ORDER BY id LIMIT 1', nsp)
				INTO id_found, code_found USING x;
		ELSE
			SELECT ic.code INTO code_found FROM lead_enrich.iso_country ic WHERE ic.code = upper(x);
		END IF;
		IF code_found IS NULL THEN
			PERFORM lead_enrich._mining_invalid('countries', format('unknown country %s', e), hint);
		END IF;
		code_found := upper(code_found);
		IF NOT code_found = ANY (countries) THEN
			countries := countries || code_found;
			country_ids := country_ids || id_found;
		END IF;
	END LOOP;
	IF cardinality(countries) = 0 THEN
		PERFORM lead_enrich._mining_invalid('countries', 'at least one country is required',
			'For example "countries": ["BE", "FR"] (ISO 3166-1 alpha-2 codes).');
	END IF;

	-- states: "CA" or "US-CA", only in the selected state-filtering countries
	IF criteria ? 'states' THEN
		hint := format('States are subdivision codes of the selected countries, "CA" or "US-CA"; '
					   'state filtering exists for %s only.', array_to_string(state_countries, ', '));
		FOR e IN SELECT * FROM lead_enrich._mining_list('states', criteria -> 'states', false, hint) LOOP
			x := upper(e #>> '{}');
			code_found := NULL;
			id_found := NULL;
			n := 0;
			FOREACH c IN ARRAY countries LOOP
				IF position('-' IN x) > 0 AND split_part(x, '-', 1) <> c THEN
					CONTINUE;
				END IF;
				IF position('-' IN x) > 0 AND NOT c = ANY (state_countries) THEN
					PERFORM lead_enrich._mining_invalid('states',
						format('%s: Odoo offers no state filtering for %s', e, c), hint);
				END IF;
				IF NOT c = ANY (state_countries) THEN
					CONTINUE;
				END IF;
				IF odoo THEN
					EXECUTE format('SELECT s.id, s.code FROM %I.res_country_state s JOIN %I.res_country rc ON rc.id = s.country_id '
								   'WHERE upper(rc.code) = $1 AND upper(s.code) = $2 ORDER BY s.id LIMIT 1', nsp, nsp)
						INTO id_found, code_found
						USING c, CASE WHEN position('-' IN x) > 0 THEN substr(x, length(c) + 2) ELSE x END;
				ELSE
					SELECT s.code INTO code_found FROM lead_enrich.iso_subdivision s
					WHERE s.country = c AND s.code = CASE WHEN position('-' IN x) > 0 THEN substr(x, length(c) + 2) ELSE x END;
				END IF;
				IF code_found IS NOT NULL THEN
					n := n + 1;
					IF n > 1 THEN
						PERFORM lead_enrich._mining_invalid('states',
							format('%s is ambiguous: it is a state of %s and of %s', e, split_part(states[cardinality(states)], '-', 1), c),
							'Prefix the country: "US-CA".');
					END IF;
					IF NOT (c || '-' || code_found) = ANY (states) THEN
						states := states || (c || '-' || code_found);
						state_ids := state_ids || id_found;
					END IF;
					code_found := NULL;
				END IF;
			END LOOP;
			IF n = 0 THEN
				IF position('-' IN x) > 0 AND NOT split_part(x, '-', 1) = ANY (countries) THEN
					PERFORM lead_enrich._mining_invalid('states',
						format('%s is not in a selected country', e), 'Add its country to "countries".');
				END IF;
				PERFORM lead_enrich._mining_invalid('states', format('unknown state %s', e),
					hint || CASE WHEN odoo THEN format(' Odoo''s states are in %I.res_country_state.', nsp)
						ELSE ' ISO 3166-2 codes are in lead_enrich.iso_subdivision.' END);
			END IF;
		END LOOP;
	END IF;

	-- industries: Odoo's names or reveal ids
	IF criteria ? 'industries' THEN
		SELECT 'Industries: ' || string_agg(name, ', ' ORDER BY sequence, id) || '.' INTO hint
		FROM lead_enrich.mining_industry;
		FOR e IN SELECT * FROM lead_enrich._mining_list('industries', criteria -> 'industries', true, hint) LOOP
			x := lower(e #>> '{}');
			SELECT i.name INTO code_found FROM lead_enrich.mining_industry i
			WHERE lower(i.name) = x OR x = ANY (i.reveal_ids) OR x = array_to_string(i.reveal_ids, ',');
			IF NOT FOUND THEN
				PERFORM lead_enrich._mining_invalid('industries', format('unknown industry %s', e), hint);
			END IF;
			IF NOT code_found = ANY (industries) THEN
				industries := industries || code_found;
				reveal_ids := reveal_ids || (SELECT i.reveal_ids FROM lead_enrich.mining_industry i
											 WHERE i.name = code_found);
			END IF;
		END LOOP;
	END IF;

	-- company size (employees): a bound left out is not sent
	IF criteria ? 'company_size_min' THEN
		size_min := lead_enrich._mining_int('company_size_min', criteria -> 'company_size_min', 1, 2147483647,
			'company_size_min is a number of employees, at least 1.');
	END IF;
	IF criteria ? 'company_size_max' THEN
		size_max := lead_enrich._mining_int('company_size_max', criteria -> 'company_size_max', 1, 2147483647,
			'company_size_max is a number of employees, at least 1.');
	END IF;
	IF size_min > size_max THEN
		PERFORM lead_enrich._mining_invalid('company_size_min',
			format('%s exceeds company_size_max %s', size_min, size_max),
			'company_size_min must not exceed company_size_max.');
	END IF;

	-- contacts
	FOREACH k IN ARRAY ARRAY['contact_number', 'contact_filter_type', 'preferred_role', 'other_roles', 'seniority'] LOOP
		IF criteria ? k AND NOT people THEN
			PERFORM lead_enrich._mining_invalid(k, format('%s applies to contacts only', criteria -> k),
				'Add "search_type": "people" to get companies and their contacts.');
		END IF;
	END LOOP;
	IF people THEN
		contact_number := 5;
		IF criteria ? 'contact_number' THEN
			contact_number := lead_enrich._mining_int('contact_number', criteria -> 'contact_number', 1, 5,
				'contact_number goes from 1 to 5 contacts per company (default 5).');
		END IF;
		filter_type := CASE WHEN criteria ? 'seniority' THEN 'seniority' ELSE 'role' END;
		IF criteria ? 'contact_filter_type' THEN
			filter_type := criteria ->> 'contact_filter_type';
			IF jsonb_typeof(criteria -> 'contact_filter_type') <> 'string' OR filter_type NOT IN ('role', 'seniority') THEN
				PERFORM lead_enrich._mining_invalid('contact_filter_type',
					format('%s is not a filter type', criteria -> 'contact_filter_type'),
					'Use "role" (preferred_role, other_roles) or "seniority".');
			END IF;
		END IF;
		SELECT 'Roles: ' || string_agg(r.name, ', ' ORDER BY r.id) || '.' INTO hint FROM lead_enrich.mining_role r;
		IF filter_type = 'role' THEN
			IF criteria ? 'seniority' THEN
				PERFORM lead_enrich._mining_invalid('seniority', format('%s needs "contact_filter_type": "seniority"', criteria -> 'seniority'),
					'Filter contacts by role or by seniority, not both.');
			END IF;
			IF criteria ? 'preferred_role' THEN
				IF jsonb_typeof(criteria -> 'preferred_role') <> 'string' THEN
					PERFORM lead_enrich._mining_invalid('preferred_role', format('%s is not a role name', criteria -> 'preferred_role'), hint);
				END IF;
				x := lower(btrim(criteria ->> 'preferred_role'));
				SELECT r.name, r.reveal_id INTO preferred, preferred_rid FROM lead_enrich.mining_role r
				WHERE lower(r.name) = x OR lower(r.reveal_id) = x;
				IF NOT FOUND THEN
					PERFORM lead_enrich._mining_invalid('preferred_role', format('unknown role %s', criteria -> 'preferred_role'), hint);
				END IF;
			END IF;
			IF criteria ? 'other_roles' THEN
				FOR e IN SELECT * FROM lead_enrich._mining_list('other_roles', criteria -> 'other_roles', false, hint) LOOP
					x := lower(e #>> '{}');
					SELECT r.name INTO code_found FROM lead_enrich.mining_role r
					WHERE lower(r.name) = x OR lower(r.reveal_id) = x;
					IF NOT FOUND THEN
						PERFORM lead_enrich._mining_invalid('other_roles', format('unknown role %s', e), hint);
					END IF;
					IF NOT code_found = ANY (other) THEN
						other := other || code_found;
						other_rids := other_rids || (SELECT r.reveal_id FROM lead_enrich.mining_role r WHERE r.name = code_found);
					END IF;
				END LOOP;
			END IF;
		ELSE
			SELECT 'Seniorities: ' || string_agg(s.name, ', ' ORDER BY s.id) || '.' INTO hint FROM lead_enrich.mining_seniority s;
			FOREACH k IN ARRAY ARRAY['preferred_role', 'other_roles'] LOOP
				IF criteria ? k THEN
					PERFORM lead_enrich._mining_invalid(k, format('%s needs "contact_filter_type": "role"', criteria -> k),
						'Filter contacts by role or by seniority, not both.');
				END IF;
			END LOOP;
			IF NOT criteria ? 'seniority' THEN
				PERFORM lead_enrich._mining_invalid('seniority', 'a seniority is required to filter contacts by seniority', hint);
			END IF;
			IF jsonb_typeof(criteria -> 'seniority') <> 'string' THEN
				PERFORM lead_enrich._mining_invalid('seniority', format('%s is not a seniority name', criteria -> 'seniority'), hint);
			END IF;
			x := lower(btrim(criteria ->> 'seniority'));
			SELECT s.name, s.reveal_id INTO seniority, seniority_rid FROM lead_enrich.mining_seniority s
			WHERE lower(s.name) = x OR lower(s.reveal_id) = x;
			IF NOT FOUND THEN
				PERFORM lead_enrich._mining_invalid('seniority', format('unknown seniority %s', criteria -> 'seniority'), hint);
			END IF;
		END IF;
	END IF;

	-- assignment: team, salesperson, type, tags
	IF criteria ? 'team_id' THEN
		team_id := lead_enrich._mining_int('team_id', criteria -> 'team_id', 1, 2147483647, 'team_id is the id of a sales team.');
		IF NOT cfg.columns ? 'team_id' THEN
			PERFORM lead_enrich._mining_invalid('team_id', format('%s cannot be stored: %s has no team column', team_id, cfg.lead_table),
				'Map "team_id" to a column with lead_enrich.attach(), or leave team_id out.');
		END IF;
		IF odoo AND to_regclass(format('%I.crm_team', nsp)) IS NOT NULL THEN
			EXECUTE format('SELECT id FROM %I.crm_team WHERE id = $1', nsp) INTO id_found USING team_id;
			IF id_found IS NULL THEN
				PERFORM lead_enrich._mining_invalid('team_id', format('unknown sales team %s', team_id),
					format('team_id is an id of %I.crm_team.', nsp));
			END IF;
		END IF;
	END IF;
	IF criteria ? 'user_id' THEN
		user_id := lead_enrich._mining_int('user_id', criteria -> 'user_id', 1, 2147483647, 'user_id is the id of a salesperson.');
		IF NOT cfg.columns ? 'user_id' THEN
			PERFORM lead_enrich._mining_invalid('user_id', format('%s cannot be stored: %s has no salesperson column', user_id, cfg.lead_table),
				'Map "user_id" to a column with lead_enrich.attach(), or leave user_id out.');
		END IF;
		IF odoo AND to_regclass(format('%I.res_users', nsp)) IS NOT NULL THEN
			id_found := NULL;
			EXECUTE format('SELECT id FROM %I.res_users WHERE id = $1', nsp) INTO id_found USING user_id;
			IF id_found IS NULL THEN
				PERFORM lead_enrich._mining_invalid('user_id', format('unknown user %s', user_id),
					format('user_id is an id of %I.res_users.', nsp));
			END IF;
		END IF;
	END IF;
	IF criteria ? 'lead_type' THEN
		lead_type := criteria ->> 'lead_type';
		IF jsonb_typeof(criteria -> 'lead_type') <> 'string' OR lead_type NOT IN ('lead', 'opportunity') THEN
			PERFORM lead_enrich._mining_invalid('lead_type', format('%s is not a lead type', criteria -> 'lead_type'),
				'Use "lead" or "opportunity".');
		END IF;
		IF NOT cfg.columns ? 'type' THEN
			PERFORM lead_enrich._mining_invalid('lead_type', format('%s cannot be stored: %s has no type column', criteria -> 'lead_type', cfg.lead_table),
				'Map "type" to a column with lead_enrich.attach(), or leave lead_type out.');
		END IF;
	ELSE
		-- Odoo: leads if the team uses leads (or no team), else opportunities
		lead_type := 'lead';
		IF odoo AND team_id IS NOT NULL AND EXISTS (
			SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(format('%I.crm_team', nsp))
			AND attname = 'use_leads' AND NOT attisdropped) THEN
			EXECUTE format('SELECT CASE WHEN use_leads IS FALSE THEN ''opportunity'' ELSE ''lead'' END FROM %I.crm_team WHERE id = $1', nsp)
				INTO lead_type USING team_id;
		END IF;
	END IF;
	IF criteria ? 'tags' THEN
		IF NOT odoo OR to_regclass(format('%I.crm_tag', nsp)) IS NULL OR to_regclass(format('%I.crm_tag_rel', nsp)) IS NULL THEN
			PERFORM lead_enrich._mining_invalid('tags', format('%s cannot be stored: tags need Odoo''s crm_tag and crm_tag_rel next to %s', criteria -> 'tags', cfg.lead_table),
				'Leave tags out for a table that is not Odoo''s crm_lead.');
		END IF;
		EXECUTE format('SELECT ''Tags of %I.crm_tag: '' || string_agg(coalesce(name ->> ''en_US'', name::text) || '' ('' || id || '')'', '', '' ORDER BY id) || ''.'' FROM %I.crm_tag', nsp, nsp)
			INTO hint;
		FOR e IN SELECT * FROM lead_enrich._mining_list('tags', criteria -> 'tags', true, hint) LOOP
			ids := NULL;
			IF jsonb_typeof(e) = 'number' THEN
				EXECUTE format('SELECT array_agg(id) FROM %I.crm_tag WHERE id::numeric = $1', nsp) INTO ids USING (e::text)::numeric;
			ELSE
				EXECUTE format('SELECT array_agg(id ORDER BY id) FROM %I.crm_tag t WHERE EXISTS '
							   '(SELECT 1 FROM jsonb_each_text(CASE WHEN jsonb_typeof(to_jsonb(t.name)) = ''object'' THEN to_jsonb(t.name) ELSE jsonb_build_object(''x'', t.name) END) n '
							   'WHERE lower(n.value) = lower($1))', nsp)
					INTO ids USING e #>> '{}';
			END IF;
			IF ids IS NULL THEN
				PERFORM lead_enrich._mining_invalid('tags', format('unknown tag %s', e), hint);
			ELSIF cardinality(ids) > 1 THEN
				PERFORM lead_enrich._mining_invalid('tags', format('%s names several tags (%s)', e, array_to_string(ids, ', ')),
					'Give the tag''s id instead.');
			END IF;
			IF NOT ids[1] = ANY (tag_ids) THEN
				tag_ids := tag_ids || ids[1];
			END IF;
		END LOOP;
	END IF;

	-- Odoo's stage on create: the first non-folded stage of the team or of no team
	IF odoo AND to_regclass(format('%I.crm_stage', nsp)) IS NOT NULL THEN
		EXECUTE format('SELECT id FROM %I.crm_stage WHERE (team_id IS NULL OR team_id = $1) AND fold IS NOT TRUE '
					   'ORDER BY sequence, id LIMIT 1', nsp)
			INTO stage_id USING team_id;
	END IF;

	norm := jsonb_strip_nulls(jsonb_build_object(
		'lead_number', lead_number, 'search_type', search_type,
		'countries', to_jsonb(countries),
		'states', CASE WHEN cardinality(states) > 0 THEN to_jsonb(states) END,
		'industries', CASE WHEN cardinality(industries) > 0 THEN to_jsonb(industries) END,
		'company_size_min', size_min, 'company_size_max', size_max,
		'contact_number', contact_number, 'contact_filter_type', filter_type,
		'preferred_role', preferred,
		'other_roles', CASE WHEN cardinality(other) > 0 THEN to_jsonb(other) END,
		'seniority', seniority,
		'lead_type', lead_type, 'team_id', team_id, 'user_id', user_id,
		'tags', CASE WHEN cardinality(tag_ids) > 0 THEN to_jsonb(tag_ids) END));

	-- the "data" object of Odoo's _prepare_iap_payload
	payload := jsonb_build_object('lead_number', lead_number, 'search_type', search_type,
		'countries', (SELECT jsonb_agg(jsonb_build_object('code', cc,
							'states', (SELECT coalesce(jsonb_agg(substr(s, length(cc) + 2) ORDER BY o), '[]')
									   FROM unnest(states) WITH ORDINALITY u(s, o)
									   WHERE s LIKE cc || '-%')) ORDER BY co)
					  FROM unnest(countries) WITH ORDINALITY t(cc, co)));
	IF cardinality(reveal_ids) > 0 THEN
		payload := payload || jsonb_build_object('industry_ids', to_jsonb(reveal_ids));
	END IF;
	IF size_min IS NOT NULL THEN
		payload := payload || jsonb_build_object('company_size_min', size_min);
	END IF;
	IF size_max IS NOT NULL THEN
		payload := payload || jsonb_build_object('company_size_max', size_max);
	END IF;
	IF people THEN
		payload := payload || jsonb_build_object('contact_number', contact_number, 'contact_filter_type', filter_type);
		IF filter_type = 'role' THEN
			payload := payload || jsonb_build_object('preferred_role', coalesce(to_jsonb(preferred_rid), 'false'),
													 'other_roles', to_jsonb(other_rids));
		ELSE
			payload := payload || jsonb_build_object('seniority', seniority_rid);
		END IF;
	END IF;

	rec := lead_enrich._mining_request_open(norm, cfg.lead_table::text);
	req_id := (rec ->> 'id')::integer;
	req_name := rec ->> 'name';

	-- Odoo's own request row, so that leads can point to it
	IF odoo AND to_regclass(format('%I.crm_iap_lead_mining_request', nsp)) IS NOT NULL
		AND cfg.columns ? 'mining_request' THEN
		odoo_req := lead_enrich._mining_odoo_insert(format('%I.crm_iap_lead_mining_request', nsp)::regclass,
			jsonb_build_object('name', req_name, 'state', 'draft', 'lead_number', lead_number,
				'search_type', search_type, 'lead_type', lead_type, 'team_id', team_id,
				'user_id', user_id, 'filter_on_size', size_min IS NOT NULL OR size_max IS NOT NULL,
				'company_size_min', coalesce(size_min, 1), 'company_size_max', coalesce(size_max, 1000),
				'contact_number', contact_number, 'contact_filter_type', filter_type,
				'create_uid', user_id, 'write_uid', user_id,
				'create_date', now() AT TIME ZONE 'UTC', 'write_date', now() AT TIME ZONE 'UTC'));
		PERFORM lead_enrich._mining_odoo_rel(nsp, 'crm_iap_lead_mining_request_res_country_rel',
			'crm_iap_lead_mining_request_id', 'res_country_id', odoo_req, country_ids);
		PERFORM lead_enrich._mining_odoo_rel(nsp, 'crm_iap_lead_mining_request_res_country_state_rel',
			'crm_iap_lead_mining_request_id', 'res_country_state_id', odoo_req, state_ids);
		PERFORM lead_enrich._mining_odoo_rel(nsp, 'crm_iap_lead_mining_request_crm_tag_rel',
			'crm_iap_lead_mining_request_id', 'crm_tag_id', odoo_req, tag_ids);
		-- industries, roles and seniority by reveal id, when Odoo's tables are there
		IF to_regclass(format('%I.crm_iap_lead_industry', nsp)) IS NOT NULL AND cardinality(industries) > 0 THEN
			EXECUTE format('SELECT array_agg(id) FROM %I.crm_iap_lead_industry WHERE replace(reveal_ids, '' '', '''') = ANY ($1)', nsp)
				INTO ids USING (SELECT array_agg(array_to_string(i.reveal_ids, ',')) FROM lead_enrich.mining_industry i
								WHERE i.name = ANY (industries));
			PERFORM lead_enrich._mining_odoo_rel(nsp, 'crm_iap_lead_industry_crm_iap_lead_mining_request_rel',
				'crm_iap_lead_mining_request_id', 'crm_iap_lead_industry_id', odoo_req, coalesce(ids, '{}'));
		END IF;
		IF to_regclass(format('%I.crm_iap_lead_role', nsp)) IS NOT NULL THEN
			IF cardinality(other_rids) > 0 THEN
				EXECUTE format('SELECT array_agg(id) FROM %I.crm_iap_lead_role WHERE reveal_id = ANY ($1)', nsp)
					INTO ids USING other_rids;
				PERFORM lead_enrich._mining_odoo_rel(nsp, 'crm_iap_lead_mining_request_crm_iap_lead_role_rel',
					'crm_iap_lead_mining_request_id', 'crm_iap_lead_role_id', odoo_req, coalesce(ids, '{}'));
			END IF;
			IF preferred_rid IS NOT NULL THEN
				EXECUTE format('UPDATE %I.crm_iap_lead_mining_request SET preferred_role_id = '
							   '(SELECT min(id) FROM %I.crm_iap_lead_role WHERE reveal_id = $1) WHERE id = $2', nsp, nsp)
					USING preferred_rid, odoo_req;
			END IF;
		END IF;
		IF to_regclass(format('%I.crm_iap_lead_seniority', nsp)) IS NOT NULL AND seniority_rid IS NOT NULL THEN
			EXECUTE format('UPDATE %I.crm_iap_lead_mining_request SET seniority_id = '
						   '(SELECT min(id) FROM %I.crm_iap_lead_seniority WHERE reveal_id = $1) WHERE id = $2', nsp, nsp)
				USING seniority_rid, odoo_req;
		END IF;
		PERFORM lead_enrich._mining_request_link(req_id, odoo_req);
	END IF;

	RETURN jsonb_build_object('request_id', req_id, 'request_name', req_name,
		'odoo_request_id', odoo_req, 'payload', payload, 'people', people,
		'lead_type', lead_type, 'team_id', team_id, 'user_id', user_id,
		'tag_ids', to_jsonb(tag_ids), 'stage_id', stage_id);
END
$$;

CREATE OR REPLACE FUNCTION lead_enrich._mining_finish(request_id integer, state text, error_type text,
	error text, lead_ids bigint[], companies integer, contacts integer, skipped integer)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r jsonb;
BEGIN
	r := lead_enrich._mining_request_close(request_id, state, error_type, error, lead_ids,
										   companies, contacts, skipped);
	IF r ->> 'odoo_request_id' IS NOT NULL THEN
		EXECUTE format('UPDATE %s SET state = $1, error_type = $2, write_date = now() AT TIME ZONE ''UTC'' WHERE id = $3',
					   (SELECT format('%I.crm_iap_lead_mining_request', n.nspname)
						FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
						WHERE c.oid = (r ->> 'lead_table')::regclass))
			USING state, error_type, (r ->> 'odoo_request_id')::integer;
	END IF;
END
$$;
/* --- end of trust boundary --- */

/* --- the queue (issue 11): batches recorded when claimed --- */

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
 * Webmail by registrable domain (issue 12).  A listed domain that is a
 * public suffix (com.ar, org.ua, spb.ru) no longer matches the companies
 * under it: the Public Suffix List is compiled into the library.  The
 * shipped list drops its public suffixes and six real organisations and
 * gains consumer mail services; its rows are marked shipped, and pg_dump
 * keeps only the rows a DBA added.  email_normalize() and webmail_match()
 * show how enrichment reads an address.
 */
ALTER TABLE lead_enrich.webmail_domain ADD COLUMN shipped boolean NOT NULL DEFAULT false;
DELETE FROM lead_enrich.webmail_domain WHERE domain = ANY ('{berlin.de,bt.com,ch.tc,cloudns.asia,com.ar,ddnsfree.com,dynu.net,gleeze.com,kozow.com,msk.ru,net.ua,nom.za,nus.edu.sg,org.ua,pochta.ru,pp.ua,singpost.com,spb.ru,unican.es,web.id,za.com,zp.ua}'::text[]);
-- rows a DBA added in another spelling (upper case, outer dots or blanks)
INSERT INTO lead_enrich.webmail_domain (domain)
SELECT DISTINCT lower(btrim(btrim(domain), '.')) FROM lead_enrich.webmail_domain
WHERE lower(btrim(btrim(domain), '.')) ~ '^[^.\s](.*[^.\s])?$' AND lower(btrim(btrim(domain), '.')) !~ '\s'
ON CONFLICT (domain) DO NOTHING;
DELETE FROM lead_enrich.webmail_domain
WHERE NOT (domain <> '' AND domain = lower(domain) AND domain !~ '^\.|\.$|\s');
ALTER TABLE lead_enrich.webmail_domain ADD CONSTRAINT webmail_domain_domain_check
	CHECK (domain <> '' AND domain = lower(domain) AND domain !~ '^\.|\.$|\s');
SELECT pg_catalog.pg_extension_config_dump('lead_enrich.webmail_domain', 'WHERE NOT shipped');
-- the 1.2 list (data/webmail_domains.txt, as scripts/gen_webmail_sql.sh prints it):
-- the rows of it that are there are marked shipped; a shipped row the DBA deleted
-- stays deleted; the names new in 1.2 are added
UPDATE lead_enrich.webmail_domain SET shipped = true
WHERE domain = ANY ('{001.igg.biz,027168.com,0815.ru,0815.ry,0815.su,0845.ru,0ak.org,0box.eu,0clickemail.com,0hcow.com,0hdear.com,0mel.com,0mixmail.info,0u.ro,0v.ro,0w.ro,0wnd.net,0wnd.org,0x00.name,0x207.info,1-8.biz,10.dns-cloud.net,1000rebates.stream,100likers.com,1033edge.com,105kg.ru,10host.top,10mail.com,10mail.org,10minut.com.pl,10minut.xyz,10minute-email.com,10minute.cf,10minutemail.be,10minutemail.cf,10minutemail.co.uk,10minutemail.co.za,10minutemail.com,10minutemail.de,10minutemail.ga,10minutemail.gq,10minutemail.info,10minutemail.ml,10minutemail.net,10minutemail.nl,10minutemail.org,10minutemail.ru,10minutemail.us,10minutemailbox.com,10minutenemail.de,10minutesmail.com,10minutesmail.fr,10minutesmail.net,10minutesmail.ru,10vpn.info,10x.es,10x9.com,11mail.com,11top.xyz,123-m.com,123.com,123.dns-cloud.net,123box.net,123india.com,123mail.cl,123qwe.co.uk,126.com,12hosting.net,12houremail.com,12minutemail.com,12minutemail.net,12storage.com,139.com,140unichars.com,147.cl,14n.co.uk,150ml.com,15meg4free.com,15qm-mail.red,15qm.com,163.com,188.com,189.cn,1blackmoon.com,1ce.us,1chuan.com,1clck2.com,1coolplace.com,1freeemail.com,1fsdfdsfsdf.tk,1funplace.com,1internetdrive.com,1mail.ml,1mail.net,1mail.x24hr.com,1me.net,1mum.com,1musicrow.com,1netdrive.com,1nsyncfan.com,1pad.de,1rentcar.top,1s.fr,1secmail.com,1secmail.net,1secmail.org,1secmail.xyz,1shivom.com,1ss.noip.me,1st-forms.com,1thecity.biz,1to1mail.org,1under.com,1usemail.com,1webave.com,1webhighway.com,1webmail.info,1zhuan.com,2-ch.space,2.emailfake.ml,2.sexymail.ooo,2.tebwinsoi.ooo,20.dns-cloud.net,2000rebates.stream,2012-2016.ru,2014mail.ru,20boxme.org,20email.eu,20email.it,20mail.eu,20mail.in,20mail.it,20minute.email,20minutemail.com,20minutemail.it,212.com,2120001.net,21cn.com,225522.ml,22office.com,247emaildata.com,24horas.com,24hourmail.com,24hourmail.net,291.usa.cc,2911.net,2anom.com,2bmail.co.uk,2ch.coms.hk,2ch.orgs.hk,2d2i.com,2die4.com,2ether.net,2fdgdfgdfgdf.tk,2mailnext.com,2mailnext.top,2nd-mail.xyz,2odem.com,2p-mail.com,2prong.com,2sea.org,2sea.xyz,2trom.com,30.dns-cloud.net,3000.it,30minutemail.com,30minutenmail.eu,30wave.com,321-email.com,321media.com,33mail.com,36ru.com,37.com,3ammagazine.com,3d-painting.com,3dmail.com,3email.com,3ew.usa.cc,3l6.com,3mail.ga,3mail.rocks,3trtretgfrfe.tk,3xl.net,4-n.us,4.fackme.gq,40.volvo-xc.ml,40.volvo-xc.tk,418.dk,420blaze.it,42o.org,444.net,44556677.igg.biz,456.dns-cloud.net,466453.usa.cc,487.nut.cc,4alphapro.com,4easyemail.com,4email.com,4email.net,4free.li,4gfdsgfdgfd.tk,4mail.cf,4mail.ga,4mail.top,4mg.com,4newyork.com,4nmv.ru,4pet.ro,4senditnow.com,4simpleemail.com,4tb.host,4w.io,4warding.com,4warding.net,4warding.org,4x4man.com,5-mail.info,50saleclub.com,50set.ru,510520.org,54np.club,55hosting.net,5dsmartstore.com,5ghgfhfghfgh.tk,5gramos.com,5iron.com,5july.org,5mail.cf,5mail.ga,5music.info,5music.top,5oz.ru,5star.com,5x25.com,5ymail.com,6.emailfake.ml,60-minuten-mail.de,60.volvo-xc.ml,60.volvo-xc.tk,60minutemail.com,672643.net,675hosting.com,675hosting.net,675hosting.org,69-ew.tk,69postix.info,6hjgjhgkilkj.tk,6ip.us,6mail.cf,6mail.ga,6mail.ml,6mail.top,6paq.com,6somok.ru,6url.com,75hosting.com,75hosting.net,75hosting.org,789.dns-cloud.net,7days-printing.com,7ddf32e.info,7mail.ga,7mail.ml,7mail7.com,7rent.top,7tags.com,7uy35p.tk,806.flu.cc,80665.com,8127ep.com,8191.at,88.am,8848.net,888.nu,88clean.pro,8chan.co,8mail.cf,8mail.ga,8mail.ml,8xyz8.dynu.net,90.volvo-xc.ml,90.volvo-xc.tk,900k.es,97rock.com,99cows.com,99experts.com,99pubblicita.com,9mail.cf,9me.site,9mot.ru,9ox.net,9q.ro,a-bc.net,a.a.fbmail.usa.cc,a.yertxenor.tk,a0.igg.biz,a0f7ukc.com,a1.usa.cc,a2.flu.cc,a41odgz7jh.com,a45.in,a54pd15op.com,aaamail.zzn.com,aaaw45e.com,aamail.net,aaronkwok.net,abacuswe.us,abakiss.com,abb.dns-cloud.net,abb.dnsabr.com,abbeyroadlondon.co.uk,abcflash.net,abcmail.email,abcz.info.tm,abdulnour.com,aberystwyth.com,abilitywe.us,abolition-now.com,about.com,abovewe.us,absolutewe.us,abundantwe.us,abusemail.de,abuser.eu,abv.bg,abyssemail.com,abyssmail.com,ac20mail.in,academiccommunity.com,academycougars.com,academywe.us,acceleratewe.us,accentwe.us,acceptwe.us,acceso.or.cr,access4less.net,accessgcc.com,acclaimwe.us,accordwe.us,accountant.com,accreditedwe.us,acdcfan.com,ace-mail.net,ace-of-base.com,acemail.info,acentri.com,acgapp.hk,achievementwe.us,achievewe.us,acmecity.com,acmemail.net,acninc.net,acornwe.us,activatewe.us,activist.com,activitywe.us,acucre.com,acuitywe.us,acumenwe.us,adaptivewe.us,adaptwe.us,adbet.co,add3000.pp.ua,adelphia.net,adeptwe.us,adesktop.com,adexec.com,adfarrow.com,adios.net,adipex7z.com,adiq.eu,aditus.info,admiralwe.us,adobeccepdm.com,adoniswe.us,ados.fr,adpugh.org,adresseemailtemporaire.com,adrianou.gq,adsd.org,advalvas.be,advantagewe.us,advantimo.com,adventurewe.us,adventwe.us,advisorwe.us,advocatewe.us,adwaterandstir.com,adx-telecom.com,aegia.net,aegiscorp.net,aegiswe.us,aeiou.pt,aelo.es,aemail4u.com,aeneasmail.com,aeonpsi.com,affiliatedwe.us,affinitywe.us,affluentwe.us,affordablewe.us,afmail.com,afreeinternet.com,africamail.com,afrobacon.com,afterhourswe.us,agedmail.com,agendawe.us,agger.ro,agilewe.us,agoodmail.com,agtx.net,agustusmp3.xyz,ahaa.dk,aheadwe.us,ahem.email,ahk.jp,aichi.com,aim.com,air-blog.com,air2token.com,aircraftmail.com,airforce.net,airforceemail.com,airmail.net,airmailhub.com,airpost.net,airsi.de,airsport.top,aistis.xyz,ajacied.com,ajaxapp.net,aji.kr,ak47.hu,akademiyauspexa.xyz,akapost.com,akash9.gq,akerd.com,akgq701.com,aklqo.com,aknet.kg,akorde.al,aktiefmail.nl,al-qaeda.us,albawaba.com,albionwe.us,alchemywe.us,aldeyaa.ae,alessia1818.site,alex4all.com,alexandria.cc,alexbox.online,alfamailr.org,algeria.com,alhilal.net,aliaswe.us,alibaba.com,alice.it,aliceadsl.fr,alienware13.com,aligamel.com,alimunjaya.xyz,alisongamel.com,alivance.com,alive.cz,alivewe.us,aliyun.com,all-cats.ru,all-mail.net,allaccesswe.us,allamericanwe.us,allaroundwe.us,alldirectbuy.com,allegiancewe.us,allegrowe.us,allemails.co.uk,allen.nom.za,allergist.com,allgoodwe.us,alliancewe.us,allinonewe.us,allmail.net,alloutwe.us,allowed.org,alloymail.com,alloywe.us,allprowe.us,allracing.com,allsaintsfan.com,allseasonswe.us,allstarwe.us,alltel.net,alltempmail.com,allthegoodnamesaretaken.org,alltopmail.com,allurewe.us,almondwe.us,alph.wtf,alpha-web.net,alphaomegawe.us,alpinewe.us,alsheim.no-ip.org,alskens.dk,altairwe.us,altavista.com,altavista.net,altavista.se,alternativagratis.com,altitudewe.us,altmails.com,altuswe.us,alumni.com,alumnidirector.com,alumnimp3.xyz,alvilag.hu,ama-trade.de,ama-trans.de,amadamus.com,amadeuswe.us,amail.club,amail.com,amail3.com,amail4.me,amav.ro,amazon-aws.org,amazon.coms.hk,ambassadorwe.us,amberwe.us,ambiancewe.us,ambitiouswe.us,amelabs.com,amele.com,ameraldmail.com,america.hm,americanawe.us,americasbestwe.us,americaswe.us,ameritech.net,amicuswe.us,amigowe.us,amilegit.com,amiri.net,amiriindustries.com,amitywe.us,amnetsal.com,amoksystems.com,amplewe.us,amplifiedwe.us,amplifywe.us,ampsylike.com,amrer.net,amuro.net,amuromail.com,an.id.au,analysiswe.us,analyticalwe.us,analyticswe.us,analyticwe.us,ananzi.co.za,anappfor.com,anappthat.com,ancestry.com,andreihusanu.ro,andthen.us,andylau.net,anfmail.com,angelfan.com,angelfire.com,angelic.com,animal.net,animalhouse.com,animalwoman.net,animesos.com,anit.ro,anjungcafe.com,ano-mail.net,anon-mail.de,anonbox.net,anonmail.xyz,anonmails.de,anonymail.dk,anonymbox.com,anonymize.com,anonymized.org,anonymous-email.net,anonymousfeedback.net,anonymousmail.org,anonymousness.com,anonymousspeech.com,anote.com,another.com,anotherdomaincyka.tk,anotherwin95.com,ansibleemail.com,anthony-junkmail.com,anthropologycommunity.com,anti-social.com,antichef.com,antichef.net,antireg.com,antireg.ru,antisocial.com,antispam.de,antispam24.de,antispammail.de,antongijsen.com,antwerpen.com,anyalias.com,anymoment.com,anytimenow.com,anywhere.pw,ao4ffqty.com,aoeuhtns.com,aol.co.uk,aol.com,aol.it,apexmail.com,apfelkorps.de,aphlog.com,apkmd.com,apmail.com,apollo.lv,app-expert.com,app-mailer.com,appc.se,appdollars.com,appinventor.nl,appixie.com,apple.dnsabr.com,appmail.top,appmail24.com,appmaillist.com,appraiser.net,approvers.net,apps.dj,arabia.com,arabtop.net,arcademaster.com,archaeologist.com,arcor.de,arcotronics.bg,arcticmail.com,arduino.hk,argentina.com,ariasexy.tk,ariaz.jetzt,aristotle.org,armail.in,army.net,armyspy.com,arnet.com.ar,arno.fi,arockee.com,aron.us,arroisijewellery.com,art-en-ligne.pro,artlover.com,artlover.com.au,artman-conception.com,arur01.tk,arurgitu.gq,arurimport.ml,arvato-community.de,as-if.com,asana.biz,aschenbrandt.net,asdasd.nl,asdasd.ru,asdfasdfmail.net,asdfghmail.com,asdfmail.net,asean-mail.com,asheville.com,ashleyandrew.com,ashotmail.com,asia-links.com,asia-mail.com,asia.com,asiafind.com,asianavenue.com,asiancityweb.com,asiansonly.net,asianwired.net,asiapoint.net,asiarap.usa.cc,ask-mail.com,asooemail.net,asorent.com,ass.pp.ua,assala.com,assamesemail.com,asspoo.com,assurancespourmoi.eu,astonut.cf,astonut.ga,astonut.ml,astonut.tk,astroboymail.com,astroempires.info,astrolover.com,astrosfan.com,astrosfan.net,asu.mx,asu.su,asurfer.com,at.hm,at0mik.org,atech5.com,atheist.com,athenachu.net,atina.cl,atl.lv,atlanticbb.net,atlaswebmail.com,atlink.com,atnextmail.com,ato.check.com,atozasia.com,atrickmail.com,att.net,attbi.com,attglobal.net,attnetwork.com,attymail.com,atvclub.msk.ru,au.ru,auctioneer.net,augmentationtechnology.com,ausi.com,austin.rr.com,australia.edu,australiamail.com,austrosearch.net,auti.st,autoescuelanerja.com,automotiveauthority.com,autorobotica.com,autosouvenir39.ru,autotwollow.com,autowb.com,aver.com,averdov.com,avh.hu,avia-tonic.fr,avls.pt,awatum.de,awiki.org,aws910.com,awsom.net,ax80mail.com,axeprim.eu,axiz.org,axon7zte.com,axoskate.com,axsup.net,ay33rs.flu.cc,ayna.com,azazazatashkent.tk,azcomputerworks.com,azimiweb.com,azjuggalos.com,azmeil.tk,b.cr.cloudns.asia,b.yertxenor.tk,b0.nut.cc,b1of96u.com,b2bx.net,b2cmail.de,b9x45v1m.com,babau.cf,babau.flu.cc,babau.ga,babau.gq,babau.igg.biz,babau.ml,babau.mywire.org,babau.nut.cc,babau.usa.cc,bachelorboy.com,bachelorgal.com,backalleybowling.info,backflip.cf,backpackers.com,backstreet-boys.com,backstreetboysclub.com,badgerland.eu,badhus.org,badoop.com,badpotato.tk,bagherpour.com,bakar.bid,balanc3r.com,ballsofsteel.net,bandai.nom.co,bangkok.com,bangkok2000.com,bangsat.in,banhbeovodich.vn,banit.club,banit.me,bank-opros1.ru,bannertown.net,baptistmail.com,baptized.com,barcelona.com,bareed.ws,barrabravaz.com,barryogorman.com,barrypov.com,barryspov.com,bartdevos.be,bartender.net,bartoparcadecabinet.com,baseballmail.com,basketballmail.com,basscode.org,battricks.com,batuta.net,baudoinconsulting.com,bauwerke-online.com,baxomale.ht.cx,bazaaboom.com,bbhost.us,bbox.fr,bboy.zzn.com,bcaoo.com,bcast.ws,bcb.ro,bccto.me,bcpl.net,bcvibes.com,bd.dns-cloud.net,bdmuzic.pw,bearsarefuzzy.com,beck-it.net,beddly.com,beeebank.com,beefmilk.com,beenhad.com,beep.ru,beer.com,beerolympics.se,beethoven.com,begoz.com,bei.kr,belamail.org,belastingdienst.pw,belice.com,belizehome.com,bell.net,bellair.com,bellatlantic.net,belljonestax.com,bellnet.ca,bellsouth.net,beluckygame.com,benipaula.org,beo.kr,beribase.ru,beribaza.ru,berirabotay.ru,berkscounty.com,berlin.com,berlinexpo.de,best-mail.net,bestats.top,bestchoiceusedcar.com,bestmail.us,bestoption25.club,bestpieter.com,bestsoundeffects.com,bestvpn.top,bestweb.net,betr.co,bettergolf.net,bev.net,bfo.kr,bgtmail.com,bgx.ro,bharatmail.com,bho.hu,bho.kr,bickmail.com.au,bidourlnks.com,big1.us,bigassweb.com,bigblue.net.au,bigboab.com,bigfoot.com,bigfoot.de,bigger.com,bigmailbox.com,bigpond.com,bigpond.com.au,bigpond.net.au,bigprofessor.so,bigramp.com,bigstring.com,bigwhoop.co.za,bigwiki.xyz,bij.pl,bikemechanics.com,bikeracer.com,bikeracers.net,bikerider.com,billsfan.com,billsfan.net,bimamail.com,bimla.net,bin.8191.at,binka.me,binkmail.com,binnary.com,bio-muesli.info,bio-muesli.net,biometicsliquidvitamins.com,bione.co,biosor.cf,birdlover.com,birdowner.net,bisons.com,bit-degree.com,bit2tube.com,bitchmail.ga,bitmail.com,bitpage.net,bitwerke.com,bitwhites.top,bitymails.us,biz.st,bizhosting.com,bizsearch.info,bk.ru,bko.kr,bla-bla.com,blackbird.ws,blackburnmail.com,blackgoldagency.ru,blackmarket.to,blackplanet.com,blacksburg.net,blader.com,bladesmail.net,blazemail.com,blazenet.net,blip.ch,bloatbox.com,blogmyway.org,blogos.com,blogos.net,blogspam.ro,bloq.ro,bloxter.cu.cc,blu.it,bluebottle.com,bluedumpling.info,bluehyppo.com,bluemail.ch,bluemail.dk,bluesfan.com,bluewerks.com,bluewin.ch,blueyonder.co.uk,blushmail.com,blutig.me,bmlsports.net,boardermail.com,boatmail.us,boatracers.com,bobmail.info,bobmurchison.com,bodhi.lawlita.com,bofthew.com,bogotadc.info,boimail.com,bol.com.br,bolando.com,bollywoodz.com,bolt.com,boltonfans.com,bombdiggity.com,bonbon.net,bongobongo.cf,bongobongo.flu.cc,bongobongo.ga,bongobongo.gq,bongobongo.igg.biz,bongobongo.ml,bongobongo.nut.cc,bongobongo.tk,bongobongo.usa.cc,bonobo.email,bookthemmore.com,boom.com,bootmail.com,bootybay.de,bopra.xyz,bopunkten.se,borged.com,borged.net,borged.org,bornnaked.com,bossmail.de,bossofthemoss.com,bostonoffice.com,bot.nu,boun.cr,bounce.net,bouncr.com,box.az,box.yadavnaresh.com.np,boxbg.com,boxemail.com,boxformail.in,boxfrog.com,boximail.com,boxmail.co,boxtemp.com.br,boyzoneclub.com,bradfordfans.com,brainonfire.net,brandallday.net,brasilia.net,brasx.org,bratwurst.dnsabr.com,braun4email.com,brazilmail.com,brazilmail.com.br,breadtimes.press,breakthru.com,breathe.com,brefmail.com,brennendesreich.de,bresnan.net,brew-master.com,brew-meister.com,brfree.com.br,briefkasten2go.de,briggsmarcus.com,bright.net,britishintelligence.co.uk,britneyclub.com,brittonsign.com,broadbandninja.com,broadcast.net,browniesgoreng.com,brownieslumer.com,brunhilde.ml,brutaldate.com,bsdmail.com,bsnow.net,bspamfree.org,bspooky.com,bst-72.com,btb-notes.com,btc.email,btcmail.pw,btconnect.com,btinternet.com,btizet.pl,btopenworld.co.uk,btopenworld.com,buccalmassage.ru,budaya-tionghoa.com,budayationghoa.com,buffemail.com,buffymail.com,bugmenever.com,bugmenot.com,bugmenot.ml,bullbeer.org,bullsfan.com,bullsgame.com,bulrushpress.com,bum.net,bumerang.ro,bumpymail.com,bunchofidiots.com,bund.us,bundes-li.ga,bungabunga.cf,bunko.com,bunsenhoneydew.com,burgercentral.us,burnthespam.info,burstmail.info,buryfans.com,business-agent.info,business-man.com,businessagent.email,businessbackend.com,businesscredit.xyz,businessman.net,businesssource.net,businesssuccessislifesuccess.com,businessweekmail.com,buspad.org,busta-rhymes.com,busymail.com,buxap.com,buy003.com,buyersusa.com,buygapfashion.com,buymoreplays.com,buyordie.info,buyusedlibrarybooks.org,bvimailbox.com,bwa33.net,by8006l.com,byebyemail.com,byespm.com,byom.de,byteme.com,c1oramn.com,c2.hu,c2i.net,c3.hu,c4.com,c4utar.ml,c51vsgq.com,c7fk799.com,ca.rr.com,cabacabana.com,cableone.net,cachedot.net,caere.it,cafecar.xyz,cairomail.com,cais.net,californiafitnessdeals.com,californiamail.com,callnetuk.com,callsign.net,caltanet.it,cam4you.cc,camidge.com,campano.cl,canada-11.com,canada.com,canadianmail.com,candymail.de,cane.pw,canoemail.com,canwetalk.com,capu.net,car101.pro,caramail.com,carbtc.net,card.zp.ua,care2.com,careerbuildermail.com,carins.io,carioca.net,carolina.rr.com,carrnelpartners.com,cars2.club,cart.4.0.0.1.com,cartelera.org,cartestraina.ro,casablancaresort.com,caseedu.tk,cash4u.com,casino.com,casualdx.com,catcha.com,catholic.org,catlover.com,catsrule.garfield.com,cavi.mx,cazis.fr,cbair.com,cbes.net,cc.liamria,ccnmail.com,cd.mintemail.com,cd2.com,cdnqa.com,cdpa.cc,cdr.fastmail.fm,ce.mintemail.com,ceed.se,cegetel.net,cek.pm,celineclub.com,cellurl.com,celtic.com,cem.net,centermail.com,centermail.net,centoper.it,central-servers.xyz,centrallosana.ga,centralpets.com,centrum.cz,centrum.sk,centurylink.net,centurytel.net,cetpass.com,cfl.rr.com,cfo2go.ro,cgac.es,chacuo.net,chaiyomail.com,chammy.info,champmails.com,chance2mail.com,chandrasekar.net,changingemail.com,chapar.cf,chaparmail.tk,charm.net,charmedmail.com,charter.net,chat.ru,chattown.com,chauhanweb.com,cheap3ddigitalcameras.com,cheaphorde.com,cheaphub.net,cheatmail.de,chechnya.conf.work,check.com,check1check.com,checknew.pw,cheerful.com,chef.asana.biz,chef.net,chek.com,chello.nl,chemist.com,chequemail.com,chewiemail.com,cheyenneweb.com,chez.com,chibakenma.ml,chickenkiller.com,chickmail.com,chielo.com,childsavetrust.org,chilelinks.cl,chilkat.com,china.net.vg,chinalook.com,chinamail.com,chinatov.com,chirk.com,chithinh.com,chocaholic.com.au,choco.la,chogmail.com,choicemail1.com,chong-mail.com,chong-mail.net,chong-mail.org,chris.burgercentral.us,christianmail.net,christopherfretz.com,chumpstakingdumps.com,churchusa.com,cia-agent.com,cia.hu,ciaoweb.it,cicciociccio.com,cid.kr,cigar-auctions.com,cinci.rr.com,cincinow.net,citeweb.net,citlink.net,city-of-bath.org,city-of-birmingham.com,city-of-brighton.org,city-of-cambridge.com,city-of-coventry.com,city-of-edinburgh.com,city-of-lichfield.com,city-of-lincoln.com,city-of-liverpool.com,city-of-manchester.com,city-of-nottingham.com,city-of-oxford.com,city-of-swansea.com,city-of-westminster.com,city-of-westminster.net,city-of-york.net,city2city.com,cityofcardiff.net,cityoflondon.org,civilizationdesign.xyz,civvic.ro,civx.org,ckaazaza.tk,ckiso.com,cko.kr,ckoie.com,cl-cl.org,cl.gl,cl0ne.net,claimab.com,clandest.in,claramail.com,clashatclintonemail.com,classicalfan.com,classicmail.co.za,clay.xyz,clean.pro,cleansafemail.com,clearmail.online,clearwatermail.info,clerk.com,click-email.com,click-mail.net,click-mail.top,clickanerd.net,clickmail.info,cliffhanger.com,clinicatbf.com,clintonemailhearing.com,clipmail.cf,clipmail.eu,clipmail.ga,clipmail.gq,clipmail.ml,clipmail.tk,cliptik.net,clixser.com,close2you.net,cloud-mail.net,cloud99.pro,cloud99.top,cloudstat.top,clrmail.com,cls-audio.club,club-internet.fr,club4x4.net,clubalfa.com,clubbers.net,clubducati.com,clubfier.com,clubhonda.net,clubmember.org,clubvdo.net,cluemail.com,cmail.club,cmail.com,cmail.net,cmail.org,cmailg.com,cmpmail.com,cnamed.com,cndps.com,cnew.ir,cnmsg.net,cnn.coms.hk,cnnsimail.com,cnsds.de,co.cc,cobarekyo1.ml,cobin2hood.com,cock.li,cocodani.cf,cocovpn.com,codeandscotch.com,codec.ro,coder.hu,codivide.com,codupmyspace.com,codyting.com,coffeelovers.life,cogeco.ca,cognitiveways.xyz,coid.biz,coieo.com,coin-link.com,coin-one.com,coinbroker.club,coinlink.club,colafanta.cf,coldemail.info,coldmail.com,collectiblesuperstore.com,collector.org,collegebeat.com,collegeclub.com,collegemail.com,colleges.com,colorweb.cf,columbus.rr.com,columbusrr.com,columnist.com,comcast.net,comic.com,comilzilla.org,communitybuildingworks.xyz,communityconnect.com,compareshippingrates.org,completegolfswing.com,comprendemail.com,compuserve.com,computer-freak.com,computer4u.com,computermail.net,coms.hk,comsafe-mail.net,comwest.de,concealed.company,concentric.net,conexcol.com,conf.work,confidential.life,config.work,conk.com,connect4free.net,connectbox.com,conok.com,consultant.com,consumerriot.com,contbay.com,contentwanted.com,contractor.net,contrasto.cu.cc,cookiecooker.de,cookiemonster.com,cool.br,cool.fr.nf,coolandwacky.us,coolgoose.ca,coolgoose.com,coolimpool.org,coolkiwi.com,coollist.com,coolmail.com,coolmail.net,coolsend.com,coolsite.net,coolyour.pw,cooooool.com,cooperation.net,cooperationtogo.net,copacabana.com,cornells.com,cornerpub.com,corporatedirtbag.com,correo.blogos.net,correo.terra.com.gt,cortex.kicks-ass.net,cortinet.com,cosmorph.com,cotas.net,counsellor.com,countrylover.com,courriel.fr.nf,courrieltemporaire.com,covad.net,cowcell.com,cowstore.net,cox.net,coxinet.net,coxmail.com,coza.ro,cpaonline.net,cpmail.life,cpsystems.ru,cr.cloudns.asia,cr97mt49.com,cracker.hu,crankhole.com,crankmails.com,crapmail.org,crastination.de,crazedanddazed.com,crazespaces.pw,crazymail.info,crazymail.online,crazymailing.com,crazysexycool.com,cream.pink,creazionisa.com,cristianemail.com,critterpost.com,croeso.com,cross-law.ga,cross-law.gq,crosshairs.com,crosslink.net,crossroadsmail.com,crosswinds.net,crotslep.ml,crotslep.tk,crowd-mail.com,crwmail.com,cry4helponline.com,crymail2.com,cryp.email,crypemail.info,crypto-net.club,cryptonet.top,cs.com,csh.ro,csi.com,csinibaba.hu,csoftmail.cn,cszbl.com,ctmailing.us,ctos.ch,cu.cc,cubiclink.com,cuemail.com,cultmovie.com,cumallover.me,curio-city.com,curlhph.tk,curryworld.de,cust.in,customs2g3.com,cute-girl.com,cuteandcuddly.com,cutey.com,cutout.club,cuvox.de,cww.de,cx.de-a.org,cyber-africa.net,cyber-host.net,cyber-innovation.club,cyber-phone.eu,cyber-wizard.com,cyber4all.com,cyberbabies.com,cybercafemaui.com,cyberdude.com,cyberforeplay.net,cybergal.com,cybergrrl.com,cyberinbox.com,cyberleports.com,cybermail.net,cybernet.it,cyberservices.com,cybersex.com,cyberspace-asia.com,cybertrains.org,cyclefanz.com,cylab.org,cynetcity.com,czqjii8.com,d3p.dk,d58pb91.com,d8u.us,daabox.com,dab.ro,dabsol.net,dacha-24.ru,dacoolest.com,dadacasa.com,daemsteam.com,daha.com,daily-email.com,dailypioneer.com,daintly.com,dallas.theboys.com,dallasmail.com,damai.webcam,dammexe.net,damnthespam.com,dancemanual.com,dandikmail.com,dangerous-minds.com,dansegulvet.com,darkharvestfilms.com,darknode.org,daryxfox.net,dasdasdascyka.tk,dash-pads.com,data54.com,dataarca.com,datarca.com,datasoma.com,datazo.ca,datum2.com,daum.net,davegracey.com,davidkoh.net,davidlcreative.com,dawnsonmail.com,dawsonmail.com,daymail.life,daymailonline.com,dayrep.com,dazedandconfused.com,dbo.kr,dbunker.com,dbzmail.com,dc-business.com,dca.net,dcemail.com,ddcrew.com,ddosed.us,de-a.org,de-fake.instafly.cf,de.sytes.net,deadaddress.com,deadchildren.org,deadfake.cf,deadfake.ga,deadfake.ml,deadfake.tk,deadlymob.org,deadspam.com,deagot.com,deal-maker.com,dealja.com,dealrek.com,dearriba.com,death-star.com,decoymail.mx,deekayen.us,defomail.com,degradedfun.net,dejanews.com,delayload.com,delayload.net,delikkt.de,deliverme.top,deliveryman.com,deltanet.com,demen.ml,deneg.net,depechemode.com,der-kombi.de,derder.net,derkombi.de,derluxuswagen.de,deseretmail.com,desertmail.com,desilota.com,deskmail.com,deskpilot.com,desoz.com,despam.it,despammed.com,destin.com,detik.com,deutschland-net.com,dev-null.cf,dev-null.ga,dev-null.gq,dev-null.ml,devnullmail.com,devotedcouples.com,dextm.ro,deyom.com,dfgggg.org,dfgh.net,dfghj.ml,dfwatson.com,dharmatel.net,dhm.ro,di-ve.com,dialogus.com,diapaulpainting.com,dicksinhisan.us,dicksinmyan.us,digdown.xyz,digibel.be,digital-email.com,digital-message.com,digital-work.net,digitalmail.info,digitalmariachis.com,digitalsanctuary.com,dildosfromspace.com,dim-coin.com,dingbone.com,dinkmail.com,diplomats.com,direct-mail.info,direct-mail.top,directmail.top,directmail24.net,direcway.com,dirtracer.com,disaq.com,disario.info,disbox.net,disbox.org,discard-email.cf,discard.cf,discard.email,discard.ga,discard.gq,discard.ml,discard.tk,discardmail.com,discardmail.de,disciples.com,discofan.com,discordmail.com,discoverwatch.com,discovery.com,discoverymail.com,dishmail.net,disign-concept.eu,disign-revelation.com,disinfo.net,dispo.in,dispomail.eu,disposable-email.ml,disposable.cf,disposable.com,disposable.ga,disposable.ml,disposableaddress.com,disposableemail.org,disposableemailaddresses.com,disposableinbox.com,disposablemail.top,disposablemails.com,dispose.it,disposeamail.com,disposemail.com,dispostable.com,divad.ga,divermail.com,divismail.ru,diwaq.com,dko.kr,dlemail.ru,dm.w3internet.co.uk,dm.w3internet.co.ukexample.com,dma.in-ulm.de,dmail.kyty.net,dmailman.com,dmarc.ro,dmv.com,dns-cloud.net,dnsabr.com,dnsdeer.com,dnses.ro,dnsmadeeasy.com,doanart.com,dob.jp,doc-mail.net,docmail.com,docomo.ne.jp,docs.coms.hk,doctor.com,dodgeit.com,dodgemail.de,dodgit.com,dodgit.org,dodo.com.au,dodsi.com,dog.com,doglover.com,dogmail.co.uk,dogsnob.net,doiea.com,doityourself.com,dolphinnet.net,domforfb1.tk,domforfb18.tk,domforfb19.tk,domforfb2.tk,domforfb23.tk,domforfb27.tk,domforfb29.tk,domforfb3.tk,domforfb4.tk,domforfb5.tk,domforfb6.tk,domforfb7.tk,domforfb8.tk,domforfb9.tk,domozmail.com,doneasy.com,donemail.ru,donjuan.com,donot-reply.com,dontgotmail.com,dontmesswithtexas.com,dontreg.com,dontsendmespam.de,doquier.tk,doramail.com,dostmail.com,dot-mail.top,dot-ml.ml,dot-ml.tk,dotcom.fr,dotman.de,dotmsg.com,dotslashrage.com,dott.it,douchelounge.com,doxcity.net,doy.kr,dozvon-spb.ru,dp76.com,dplanet.ch,dqkerui.com,dr.com,dr69.site,dragoncon.net,dragons-spirit.org,dragracer.com,drama.tw,drdrb.com,drdrb.net,dreamcatcher.email,dred.ru,drevo.si,drivetagdev.com,droolingfanboy.de,dropcake.de,drope.ml,dropjar.com,droplar.com,droplister.com,dropmail.me,dropzone.com,drotposta.hu,drynic.com,dsiay.com,dslextreme.com,dspwebservices.com,dtools.info,duam.net,dubaimail.com,dublin.com,dublin.ie,duck2.club,dudmail.com,duk33.com,dukedish.com,dumoac.net,dump-email.info,dumpandjunk.com,dumpmail.de,dumpyemail.com,dunesmail.com,dunflimblag.mailexpire.com,dunlopdriver.com,dunloprider.com,duno.com,durandinterstellar.com,duskmail.com,dutchmail.com,dvd.dns-cloud.net,dvd.dnsabr.com,dvx.dnsabr.com,dw.now.im,dwp.net,dwse.edu.pl,dx.ez.lv,dx.sly.io,dyceroprojects.com,dygo.com,dynamitemail.com,dz-geek.org,dz17.net,e-apollo.lv,e-mail.com,e-mail.dk,e-mail.jp,e-mail.net,e-mail.org,e-mail.ru,e-mailanywhere.com,e-mails.ru,e-marketstore.ru,e-postkasten.com,e-postkasten.de,e-postkasten.eu,e-postkasten.info,e-tapaal.com,e0yk-mail.ml,e3z.de,e4ward.com,e7n06wz.com,eaglemail.top,earthalliance.com,earthcam.net,earthdome.com,earthling.net,earthlink.net,earthonline.net,eastcoast.co.za,eastmail.com,eastwan.net,easy-apps.info,easy-mail.top,easy-trash-mail.com,easy.to,easyemail.info,easymail.top,easypost.com,easytrashmail.com,eatmea2z.club,eatmydirt.com,eatrnet.com,eb609s25w.com,ebano.campano.cl,ebeschlussbuch.de,ebs.com.ar,ecallheandi.com,ecardmail.com,ecbsolutions.net,echina.com,echt-mail.de,eco.ilmale.it,ecolo-online.fr,ecompare.com,edge.net,edgex.ru,edinburgh-airporthotels.com,edmail.com,ednatx.com,edrishn.xyz,edtnmail.com,educacao.te.pt,educastmail.com,edv.to,ee1.pl,ee2.pl,eelmail.com,efo.kr,efxs.ca,ehmail.com,eho.kr,eilersmail.com,einfach.to,einmalmail.de,einrot.com,einrot.de,eintagsmail.de,eircom.net,elearningjournal.org,electro.mn,elitevipatlantamodels.com,elki-mkzn.ru,elp.rr.com,elsitio.com,elvis.com,elvisfan.com,ely.kr,email-fake.cf,email-fake.com,email-fake.ga,email-fake.gq,email-fake.ml,email-fake.tk,email-host.info,email-jetable.fr,email-lab.com,email-list.online,email-london.co.uk,email-server.info,email-wizard.com,email.cbes.net,email.com,email.cz,email.de,email.ee,email.it,email.net,email.nu,email.plala.or.jp,email.ro,email.ru,email.si,email.women.com,email2me.net,email60.com,emailacc.com,emailaccount.com,emailage.cf,emailage.ga,emailage.gq,emailage.ml,emailage.tk,emailahi.com,emailapps.in,emailapps.info,emailchoice.com,emailcorner.net,emaildienst.de,emailem.com,emailengine.net,emailfake.com,emailfake.ml,emailfake.nut.cc,emailforyou.net,emailfreedom.ml,emailgenerator.de,emailgo.de,emailgroups.net,emailhearing.com,emailias.com,emailigo.de,emailinbox.xyz,emailinfive.com,emailirani.ir,emailisvalid.com,emaillime.com,emailll.org,emailmenow.info,emailmiser.com,emailna.co,emailnode.net,emailo.pro,emailondeck.com,emailpinoy.com,emailplanet.com,emailportal.info,emailproxsy.com,emailresort.com,emails.ga,emails.ru,emailsecurer.com,emailsensei.com,emailsingularity.net,emailspam.cf,emailspam.ga,emailspam.gq,emailspam.ml,emailspam.tk,emailsy.info,emailtea.com,emailtech.info,emailtemporanea.com,emailtemporanea.net,emailtemporar.ro,emailtemporario.com.br,emailthe.net,emailtmp.com,emailto.de,emailure.net,emailuser.net,emailwarden.com,emailx.at.hm,emailx.net,emailxfer.com,emailz.cf,emailz.ga,emailz.gq,emailz.ml,emall.ml,ematic.com,embarqmail.com,emeil.cf,emeil.in,emeil.ir,emeraldwebmail.com,emeyle.com,emil.com,emkei.cf,emkei.ga,emkei.gq,emkei.ml,emkei.tk,eml.pp.ua,emlhub.com,emlpro.com,emltmp.com,empireanime.ga,empiremail.de,emstjzh.com,emumail.com,emy.kr,emz.net,end-war.com,endrix.org,enel.net,engineer.com,england.com,england.edu,englandmail.com,enjoy.email.ne.jp,enter.net,enterto.com,enu.kr,envy17.com,eny.kr,eoffice.top,eonmech.com,eos2mail.com,epatra.com,epb.ro,ephemail.net,ephemeral.email,epix.net,epost.de,eposta.hu,eqeqeqeqe.tk,eqiluxspam.ga,eqqu.com,eramail.co.za,erasf.com,eresmas.com,ericjohnson.ml,eriga.lv,ero-tube.org,erols.com,esbano-ru.ru,esc.la,escapehatchapp.com,ese.kr,esemay.com,esgeneri.com,esprity.com,esseriod.com,est.une.victime.ninja,estate-invest.fr,estranet.it,etcmail.com,etgdev.de,eth2btc.info,ether123.net,ethereal.email,ethereum1.top,ethersports.org,ethersportz.info,ethos.st,etlgr.com,etoast.com,etoic.com,etotvibor.ru,etrademail.com,etranquil.com,etranquil.net,etranquil.org,eu.igg.biz,euaqa.com,eudoramail.com,europe.com,europemail.com,euroseek.com,euroweb.email,evanfox.info,eveav.com,every1.net,everyday.com.kh,everyone.net,everytg.ml,evopo.com,evyush.com,ewa.kr,examnotes.net,example.com,excite.co.jp,excite.com,excite.it,exclusivemail.co.za,execs.com,executive.co.za,exemail.com.au,exi.kr,existiert.net,exitstageleft.net,explodemail.com,express.net.ua,expressasia.com,extenda.net,extended.com,extremail.ru,eyepaste.com,eyou.com,ez.lv,ezcybersearch.com,ezehe.com,ezfill.club,ezfill.com,ezlo.co,ezmail.egine.com,ezmail.ru,ezrs.com,ezstest.com,ezweb.ne.jp,ezy.net,f.moza.pl,f1fans.net,f4k.es,f5.si,facebook-email.cf,facebook-email.ga,facebook-email.ml,facebook.com,facebookmail.gq,facebookmail.ml,fackme.gq,fadingemail.com,fag.wf,failbone.com,faithkills.com,faithkills.org,fake-box.com,fake-email.pp.ua,fake-mail.cf,fake-mail.ga,fake-mail.gq,fake-mail.ml,fake-mail.tk,fakedemail.com,fakeinbox.cf,fakeinbox.com,fakeinbox.ga,fakeinbox.info,fakeinbox.ml,fakeinbox.tk,fakeinformation.com,fakemail.fr,fakemail.win,fakemailgenerator.com,fakemails.cf,fakemails.ga,fakemails.gq,fakemails.ml,fakemailz.com,fakemyinbox.com,fammix.com,fan.com,fan.theboys.com,fangoh.com,fansonlymail.com,fansworldwide.de,fantasticmail.com,fantasymail.de,farang.net,faroweb.com,farrse.co.uk,fartwallet.com,fast-coin.com,fast-email.info,fast-mail.fr,fast-mail.one,fastacura.com,fastair.info,fastchevy.com,fastchrysler.com,fastem.com,fastemail.us,fastemailer.com,fastemails.us,fastermail.com,fasternet.biz,fastimap.com,fastkawasaki.com,fastmail.com.au,fastmail.fm,fastmailbox.net,fastmailforyou.net,fastmailnow.com,fastmazda.com,fastmessaging.com,fastmitsubishi.com,fastnissan.com,fastservice.com,fastsubaru.com,fastsuzuki.com,fasttoyota.com,fastyamaha.com,fatcock.net,fatflap.com,fathersrightsne.org,faze.biz,fbi-agent.com,fbi.coms.hk,fbi.hu,fbma.tk,fbmail1.ml,fc66998.com,fcc.net,fcml.mx,fddns.ml,fdfdsfds.com,feamail.com,federalcontractors.com,felicity.com,felicitymail.com,femenino.com,fer-gabon.org,fermaxxi.ru,fetchmail.co.uk,fetchmail.com,fetchnet.co.uk,fettometern.com,feyenoorder.com,ffanet.com,fghmail.net,fiberia.com,fibertel.com.ar,ficken.de,fictionsite.com,fidelium10.com,fido.be,fightallspam.com,figjs.com,figshot.com,figurescoin.com,fiifke.de,filbert4u.com,filberts4u.com,filipinolinks.com,film-blog.biz,filzmail.com,financemail.net,financier.com,findemail.info,findmail.com,findu.pl,finebody.com,finfin.com,fingermouse.org,fir.hk,fire-brigade.com,fireman.net,first-email.net,first-mail.info,fishburne.org,fishfortomorrow.xyz,fitnesrezink.ru,five-club.com,five-plus.net,fivemail.de,fixmail.tk,fizmail.com,flashbox.5july.org,flashcom.net,flashemail.com,flashmail.com,flashmail.net,fleckens.hu,flemail.com,flemail.ru,flipcode.com,flitafir.de,flowu.com,flu.cc,flurre.com,flurred.com,fly-ts.de,flyinggeek.net,flyspam.com,fmail.co.uk,fmail.pw,fmailbox.com,fmgirl.com,fmguy.com,fnbmail.co.za,fnmail.com,fnzm.net,folkfan.com,foobarbot.net,foodbooto.com,foodmail.com,footard.com,football.theboys.com,footballmail.com,foquita.com,for-president.com,for4mail.com,forecastertests.com,foreskin.cf,foreskin.ga,foreskin.gq,foreskin.tk,forfree.at,forgetmail.com,fornow.eu,forpresident.com,forspam.net,forthnet.gr,fortuncity.com,fortunecity.com,forum.dk,forward.cat,four.fackme.gq,foxja.com,foxmail.com,foxtrotter.info,foy.kr,fr.nf,fr33mail.info,fragolina2.tk,francanet.com.br,frapmail.com,frappina.tk,frappina99.tk,free-email.cf,free-email.ga,free-org.com,free.com.pe,free.fr,freeaccess.nl,freeaccount.com,freeandsingle.com,freebabysittercam.com,freeblackbootytube.com,freebullets.net,freecat.net,freechristianbookstore.com,freedom-mail.ga,freedom.casa,freedom.usa.com,freedomlover.com,freedompop.us,freefattymovies.com,freegates.be,freeghana.com,freehotmail.net,freeinbox.email,freelance-france.eu,freeler.nl,freeletter.me,freemail.c3.hu,freemail.com.au,freemail.com.pk,freemail.de,freemail.et,freemail.gr,freemail.hu,freemail.it,freemail.lt,freemail.ms,freemail.nl,freemail.org.mk,freemaillink.com,freemailnow.net,freemails.cf,freemails.ga,freemails.ml,freemeil.ga,freemeil.gq,freemeil.ml,freemeil.tk,freemommyvids.com,freenet.de,freenet.kg,freeola.com,freeola.net,freeplumpervideos.com,freerubli.ru,freeschoolgirlvids.com,freeserve.co.uk,freeshemaledvds.com,freesistercam.com,freesistervids.com,freestamp.com,freestart.hu,freesurf.fr,freesurf.nl,freeteenbums.com,freetmail.in,freetmail.net,freetubearchive.com,freeuk.com,freeuk.net,freeukisp.co.uk,freeweb.email,freeweb.org,freewebemail.com,freeyellow.com,freezone.co.uk,fresnomail.com,freunde.ru,freundin.ru,friendlymail.co.uk,friends-cafe.com,friendsfan.com,from-africa.com,from-america.com,from-argentina.com,from-asia.com,from-australia.com,from-belgium.com,from-brazil.com,from-canada.com,from-china.net,from-england.com,from-europe.com,from-france.net,from-germany.net,from-holland.com,from-israel.com,from-italy.net,from-japan.net,from-korea.com,from-mexico.com,from-outerspace.com,from-russia.com,from-spain.net,from.onmypc.info,fromalabama.com,fromalaska.com,fromarizona.com,fromarkansas.com,fromcalifornia.com,fromcolorado.com,fromconnecticut.com,fromdelaware.com,fromflorida.net,fromgeorgia.com,fromhawaii.net,fromidaho.com,fromillinois.com,fromindiana.com,fromiowa.com,fromjupiter.com,fromkansas.com,fromkentucky.com,fromlouisiana.com,frommaine.net,frommaryland.com,frommassachusetts.com,frommiami.com,frommichigan.com,fromminnesota.com,frommississippi.com,frommissouri.com,frommontana.com,fromnebraska.com,fromnevada.com,fromnewhampshire.com,fromnewjersey.com,fromnewmexico.com,fromnewyork.net,fromnorthcarolina.com,fromnorthdakota.com,fromohio.com,fromoklahoma.com,fromoregon.net,frompennsylvania.com,fromrhodeisland.com,fromru.com,fromsouthcarolina.com,fromsouthdakota.com,fromtennessee.com,fromtexas.com,fromthestates.com,fromutah.com,fromvermont.com,fromvirginia.com,fromwashington.com,fromwashingtondc.com,fromwestvirginia.com,fromwisconsin.com,fromwyoming.com,front.ru,front14.org,frontier.com,frontiernet.net,frostbyte.uk.net,fsagc.xyz,fsfsdf.org,fsmail.net,ftml.net,ftp.sh,ftpinc.ca,fuckedupload.com,fuckingduh.com,fuckme69.club,fudgerub.com,fuhoy.com,fuirio.com,fullchannel.net,fullmail.com,fulvie.com,fun2.biz,fun64.com,fun64.net,funkfan.com,funnycodesnippets.com,funnymail.de,fuorissimo.com,fuqus.com,furnitureprovider.com,furusato.tokyo,furzauflunge.de,fuse.net,fut.es,fuwamofu.com,fux0ringduh.com,fw2.me,fw6m0bd.com,fwbfleamarket.gccoxmail.com,fwnb.com,fxnxs.com,fxprix.com,fxsmails.com,fyii.de,g-mailix.com,g-meil.com,g.ycn.ro,g4444mail.com,g4hdrop.us,gabox.store,gaf.oseanografi.id,gafy.net,gaggle.net,galamb.net,galaxy.tv,galaxy5.com,galaxyhit.com,gally.jp,game.com,gamebox.net,gamegeek.com,gamegregious.com,games.com,games4free.flu.cc,gamespotmail.com,gamgling.com,gamil.com,gamno.config.work,garage46.com,garasikita.pw,garbage.com,garbagecollector.org,garbagemail.org,gardener.com,gardenscape.ca,garizo.com,garliclife.com,garrymccooey.com,gateway.net,gav0.com,gawab.com,gaybrighton.co.uk,gaza.net,gazeta.pl,gazibooks.com,gci.net,geartower.com,gee-wiz.com,geecities.com,geek.com,geek.hu,geeklife.com,geew.ru,gehensiemirnichtaufdensack.de,geldwaschmaschine.de,gelitik.in,genderfuck.net,general-hospital.com,geo-crypto.com,geocities.com,geologist.com,geopia.com,germanmails.biz,germanymail.com,gero.us,geroev.net,geronra.com,geschent.biz,get-mail.cf,get-mail.ga,get-mail.ml,get-mail.tk,get.pp.ua,get1mail.com,get2mail.fr,getairmail.cf,getairmail.com,getairmail.ga,getairmail.gq,getairmail.ml,getairmail.tk,getapet.net,getcoolmail.info,geteit.com,getjulia.com,getmails.eu,getnada.com,getnowtoday.cf,getocity.com,getonemail.com,getonemail.net,getsimpleemail.com,gett.icu,getvmail.net,gfcom.com,gh2000.com,ghanamail.com,ghostmail.com,ghosttexter.de,giaiphapmuasam.com,giantmail.de,giantsfan.com,gibit.us,gifto12.com,giga4u.de,gigileung.org,ginzi.be,ginzi.co.uk,ginzi.es,ginzi.net,ginzy.co.uk,ginzy.eu,girlsindetention.com,girlsundertheinfluence.com,gishpuppy.com,giuras.club,giuypaiw8.com,givepeaceachance.com,givmail.com,givmy.com,giyam.com,glay.org,glendale.net,glitch.sx,globaleuro.net,globalfree.it,globalpagan.com,globalsite.com.br,globaltouron.com,globo.com,globomail.com,glubex.com,glucosegrin.com,gmai.com,gmail,gmail.co,gmail.co.uk,gmail.com,gmail.com.com,gmail.con,gmail.fr,gmail.it,gmail.om,gmailcom,gmaildottrick.com,gmaill.com,gmailssdf.com,gmal.com,gmial.com,gmil.com,gmx.at,gmx.ch,gmx.com,gmx.de,gmx.dns-cloud.net,gmx.dnsabr.com,gmx.fr,gmx.li,gmx.net,gn8.cc,gnctr-calgary.com,gnwmail.com,go.com,go.irc.so,go.ro,go.ru,go2.com.py,go2net.com,go2usa.info,go2vpn.net,goat.si,gocollege.com,gocubs.com,godataflow.xyz,godut.com,goemailgo.com,gofree.co.uk,gok.kr,goldenmail.ru,goldmail.ru,golemico.com,golfemail.com,golfilla.info,golfmail.be,golidi.net,gomail.in,gonavy.net,goodjab.club,goodstick.com,googdad.tk,googlemail.com,goooogle.flu.cc,goooogle.igg.biz,goooogle.nut.cc,goooogle.usa.cc,goplay.com,goplaygame.ru,goranko.ga,gorillaswithdirtyarmpits.com,gorontalo.net,gospelfan.com,gosuslugi-spravka.ru,gothere.biz,gothere.uk.com,gotmail.com,gotmail.net,gotmail.org,gotomy.com,gotti.otherinbox.com,govolsfan.com,gowikibooks.com,gowikicampus.com,gowikicars.com,gowikifilms.com,gowikigames.com,gowikimusic.com,gowikimusic.great-host.in,gowikinetwork.com,gowikitravel.com,gowikitv.com,gportal.hu,gqlsryi.xyz,grabmail.com,graduate.org,graffiti.net,gramszu.net,grandmamail.com,grandmasmail.com,graphic-designer.com,grapplers.com,gratislose.de,gratisweb.com,great-host.in,greenhousemail.com,greenmail.net,greensloth.com,greenst.info,greentech5.com,greggamel.com,greggamel.net,gregorsky.zone,gregorygamel.com,gregorygamel.net,greyjack.com,grish.de,griuc.schule,grn.cc,groupmail.com,grr.la,grungecafe.com,gruz-m.ru,gs-arc.org,gsredcross.org,gsrv.co.uk,gsxstring.ga,gtemail.net,gti.net,gtmc.net,gua.net,gudanglowongan.com,guerillamail.biz,guerillamail.com,guerillamail.de,guerillamail.info,guerillamail.net,guerillamail.org,guerillamailblock.com,guerrillamail.biz,guerrillamail.com,guerrillamail.de,guerrillamail.info,guerrillamail.net,guerrillamail.org,guerrillamailblock.com,guessmail.com,guju.net,guqoo.com,gurlmail.com,gustr.com,guy.com,guy2.com,guyanafriends.com,gwspt71.com,gynzi.co.uk,gynzi.es,gynzy.at,gynzy.es,gynzy.eu,gynzy.gr,gynzy.info,gynzy.lt,gynzy.mobi,gynzy.pl,gynzy.ro,gynzy.sk,gyorsposta.com,gyorsposta.hu,gzb.ro,h.mintemail.com,h1z8ckvz.com,h2-yy.nut.cc,h8s.org,h9js8y6.com,habitue.net,hacccc.com,hacked.jp,hackermail.com,hackermail.net,hackersquad.tk,hackrz.xyz,hackthatbit.ch,hahawrong.com,hailmail.net,hairdresser.com,hairdresser.net,hairs24.ru,haltospam.com,hamptonroads.com,handbag.com,handleit.com,hang-ten.com,hanmail.net,happemail.com,happycounsel.com,happydomik.ru,happygoluckyclub.com,happykorea.club,happykoreas.xyz,happymail.guru,happypuppy.com,haqed.com,harakirimail.com,hard-life.org,hardcorefreak.com,haribu.com,haribu.net,harmonyst.xyz,hartbot.de,hasanmail.ml,hash.pp.ua,hat-geld.de,hatespam.org,hawaii.rr.com,hawaiiantel.net,hawrong.com,haydoo.com,hazelnut4u.com,hazelnuts4u.com,hazmatshipping.org,hbo.dns-cloud.net,hbo.dnsabr.com,hbxrlg4sae.ga,hcac.net,hd-mail.com,hdmoviestore.us,headbone.com,headstrong.de,healyourself.xyz,heartthrob.com,heathenhammer.com,heathenhero.com,hecat.es,heerschap.com,heesun.net,hehe.com,hello.hu,hello.net.au,hello.to,hellodream.mobi,helloricky.com,helpinghandtaxcenter.org,helpjobs.ru,helter-skelter.com,hempseed.com,herediano.com,heremail.com,herono1.com,heros3.com,herp.in,herpderp.nl,hetnet.nl,heximail.com,hey.com,hey.to,hezll.com,hhdevel.com,hi2.in,hi5.si,hiddencorner.xyz,hiddentragedy.com,hidebox.org,hidebusiness.xyz,hidemail.de,hidemail.pro,hidemail.us,hideme.be,hidemyass.com,hideweb.xyz,hidzz.com,highbros.org,highmilton.com,highonline.store,highquality.com,highveldmail.co.za,hilarious.com,hiltonvr.com,himail.online,hiphopfan.com,hiru-dea.com,hispavista.com,hitbts.com,hitthe.net,hix.kr,hjdosage.com,hkg.net,hkstarphoto.com,hmail.us,hmamail.com,hmh.ro,hoanggiaanh.com,hoanglong.tech,hochsitze.com,hockeymail.com,hoer.pw,holl.ga,hollywoodkids.com,homail.com,home-email.com,home.nl,home.no.net,home.ro,home.se,homeart.com,homelocator.com,homemail.co.za,homemail.com,homestead.com,homeworkcentral.com,hongkong.com,honor-8.com,hookup.net,hoopsmail.com,hopemail.biz,hornyalwary.top,horrormail.com,horsefucker.org,horvathurtablahoz.ml,host-info.com,host-it.com.sg,hostcalls.com,hostguru.info,hostguru.top,hostmonitor.net,hot-mail.cf,hot-mail.ga,hot-mail.gq,hot-mail.ml,hot-mail.tk,hot-shot.com,hot.ee,hot.rr.com,hotakama.tk,hotbot.com,hotbrev.com,hotelnextmail.com,hotepmail.com,hotfire.net,hotletter.com,hotmai.com,hotmail.be,hotmail.ca,hotmail.cm,hotmail.co.il,hotmail.co.jp,hotmail.co.kr,hotmail.co.nz,hotmail.co.th,hotmail.co.uk,hotmail.com,hotmail.com.ar,hotmail.com.au,hotmail.com.br,hotmail.com.mx,hotmail.con,hotmail.de,hotmail.dk,hotmail.es,hotmail.fr,hotmail.gr,hotmail.it,hotmail.kg,hotmail.kz,hotmail.nl,hotmail.ru,hotmail.sg,hotmailpro.info,hotmailproduct.com,hotmails.com,hotmial.com,hotpop.com,hotpop3.com,hotvoice.com,housat.com,housefan.com,housemail.com,hpc.tw,hroundb.com,hs.vc,hsbc.coms.hk,hstermail.com,hsuchi.net,ht.cx,html.tou.com,huajiachem.cn,hubii-network.com,hughes.net,hukkmu.tk,hulapla.de,humaility.com,humanoid.net,humn.ws.gy,hungpackage.com,hunrap.usa.cc,hunsa.com,hurify1.com,hush.ai,hush.com,hushmail.cf,hushmail.com,huskion.net,hvastudiesucces.nl,hvc.rr.com,hvtechnical.com,hwsye.net,hypernautica.com,i-3gk.cf,i-3gk.ga,i-3gk.gq,i-3gk.ml,i-connect.com,i-france.com,i-mail.com.au,i-mail.jp,i-p.com,i-plus.net,i-taiwan.tv,i.am,i.softbank.jp,i.ua,i12.com,i201zzf8x.com,i2pmail.org,i4j0j3iz0.com,i6.cloudns.cc,i6.cloudns.cx,iamawoman.com,iamwaiting.com,iamwasted.com,iamyours.com,iaoss.com,ibm.coms.hk,ibm.net,ibnuh.bz,ibsats.com,icantbelieveineedtoexplainthisshit.com,icemail.club,icemovie.link,icestorm.com,ichigo.me,ichimail.com,icloud.com,icmsconsultants.com,icq.com,icqmail.com,icrazy.com,icx.in,icx.ro,id-base.com,idea-mail.com,ididitmyway.com,idigo.org,idirect.com,idx4.com,ieatspam.eu,ieatspam.info,ieh-mail.de,iespana.es,iffymedia.com,ifoward.com,ig.com.br,ige.es,igg.biz,ignazio.it,ignmail.com,ignoremail.com,ihateclowns.com,ihateyoualot.info,ihaxyour.info,ihazspam.ca,iheartspam.org,ihwy.com,iigmail.com,iinet.net.au,ijustdontcare.com,ikbenspamvrij.nl,iki.kr,iku.us,illistnoise.com,ilmale.it,ilnostrogrossograssomatrimoniomolisano.com,ilovechocolate.com,ilovejesus.com,ilovespam.com,ilovethemovies.com,ilovetocollect.net,ilse.nl,imaginemail.com,imail.org,imail.ru,imailbox.com,imails.info,imankul.com,imel.org,imgof.com,imgv.de,immo-gerance.info,imneverwrong.com,imovie.link,imposter.co.uk,imstations.com,imstressed.com,imtoosexy.com,in-box.net,inaby.com,iname.com,inapplicable.org,inappmail.com,inbax.tk,inbound.plus,inbox.com,inbox.lv,inbox.net,inbox.ru,inbox.si,inbox2.info,inboxalias.com,inboxbear.com,inboxclean.com,inboxclean.org,inboxdesign.me,inboxed.im,inboxed.pw,inboxhub.net,inboxkitten.com,inboxmail.world,inboxproxy.com,inboxstore.me,incamail.com,inclusiveprogress.com,incognitomail.com,incognitomail.net,incognitomail.org,incq.com,incredimail.com,ind.st,indexa.fr,india.com,indiatimes.com,indieclad.com,indirect.ws,indo-mail.com,indocities.com,indomaed.pw,indomail.com,indomina.cf,indonesianherbalmedicine.com,indoserver.stream,indosukses.press,indyracers.com,ineec.net,infest.org,info-media.de,info-radio.ml,info66.com,infocom.zp.ua,infohq.com,infomail.es,infomart.or.jp,infoseek.jp,infospacemail.com,infovia.com.ar,inggo.org,inicia.es,inmail.sk,inmynetwork.cf,inmynetwork.ga,inmynetwork.gq,inmynetwork.ml,inmynetwork.tk,innocent.com,inorbit.com,inoutmail.de,inoutmail.eu,inoutmail.info,inoutmail.net,inpowiki.xyz,insanumingeniumhomebrew.com,insidebaltimore.net,insight.rr.com,insorg-mail.info,instance-email.com,instant-mail.de,instantblingmail.info,instantemailaddress.com,instantlyemail.com,instantmail.fr,instantmailaddress.com,instruction.com,insurer.com,integra.net,intel.coms.hk,intempmail.com,interaccess.com,interburp.com,interfree.it,interia.pl,interlap.com.ar,intermail.co.il,internet-club.com,internet-police.com,internet-v-stavropole.ru,internetbiz.com,internetdrive.com,internetegypt.com,internetemails.net,internetmailing.net,internetmci.com,internetoftags.com,internode.on.net,interserver.ga,interstats.org,intersteller.com,investormail.com,inwind.it,iobox.com,iobox.fi,iol.it,ionemail.net,ionet.net,iowaemail.com,iozak.com,ip3.com,ip4.pp.ua,ip6.li,ip6.pp.ua,ipdeer.com,ipoo.org,ippandansei.tk,iprimus.com.au,ipsur.org,ipswell.com,iqemail.com,irabops.com,irangate.net,iraqmail.com,irc.so,ircbox.xyz,ireland.com,irelandmail.com,irish2me.com,irishspringrealty.com,irj.hu,iroid.com,ironiebehindert.de,irr.kr,irssi.tv,is.af,isdaq.com,isellcars.com,islam.igg.biz,islamonline.net,isleuthmail.com,ismart.net,isonfire.com,isp9.net,ispuntheweb.com,ispyco.ru,israelmail.com,ist-genial.at,ist-genial.info,ist-genial.net,istakalisa.club,istii.ro,isukrainestillacountry.com,it-simple.net,it7.ovh,italia.flu.cc,italia.igg.biz,italymail.com,itelefonica.com.br,itis0k.com,itloox.com,itmom.com,itmtx.com,itol.com,its0k.com,itsme.edu.pl,itunesgiftcodegenerator.com,ivebeenframed.com,ivillage.com,iwan-fals.com,iwi.net,iwmail.com,iwon.com,ix.netcom.com,ixx.io,izadpanah.com,j-p.us,j3rqt89ez.com,jafps.com,jahoopa.com,jakuza.hu,jamit.com.au,jancok.in,janproz.com,japan.com,jaydemail.com,jazzandjava.com,jazzfan.com,jazzgame.com,jbnote.com,jcom.home.ne.jp,jcpclothing.ga,jdmadventures.com,jdz.ro,je-recycle.info,jellow.ml,jellyrolls.com,jeramywebb.com,jerusalemmail.com,jet-renovation.fr,jetable.com,jetable.fr.nf,jetable.net,jetable.org,jetable.pp.ua,jetableemail.com,jetemail.net,jewishmail.com,jil.kr,jippii.fi,jmail.co.za,jmail.ovh,jmail.ro,jnxjn.com,jo-mail.com,job4u.com,jobbikszimpatizans.hu,jobposts.net,jobs-to-be-done.net,joelpet.com,joetestalot.com,joinme.com,jokes.com,jombase.com,jopho.com,jordanmail.com,josefadventures.org,josse.ltd,journalist.com,jourrapide.com,jovem.te.pt,joymail.com,jp.bigplanet.com,jpco.org,jpopmail.com,jredm.com,jsonp.ro,jsrsolutions.com,jswfdb48z.com,jto.kr,jubiimail.dk,jump.com,jumpy.it,jungkamushukum.com,juniormail.com,junk.to,junk1e.com,junkmail.com,junkmail.ga,junkmail.gq,juno.com,jupimail.com,just-email.com,just4spam.com,justemail.ml,justemail.net,justicemail.com,justonemail.net,jv6hgh1.com,jwk4227ufn.com,jwork.ru,jyliananderik.com,k3663a40w.com,k4ds.org,kaazoo.com,kabelmail.de,kadag.ir,kademen.com,kah.pw,kaijenwan.com,kaixo.com,kakadua.net,kalapi.org,kalpoint.com,kamen-market.ru,kampoeng3d.club,kamsg.com,kandymail.com,kanker.website,kansascity.com,kaovo.com,kapoorweb.com,karachian.com,karachioye.com,karatraman.ml,karbasi.com,kariplan.com,karta-kykyruza.ru,kartvelo.com,kasmail.com,kaspop.com,katamail.com,katergizmo.de,katztube.com,kayafmmail.co.za,kazelink.ml,kbjrmail.com,kc.rr.com,kcks.com,kcrw.de,keepmymail.com,keepmyshitprivate.com,keepyourshitprivate.com,keg-party.com,kein.hk,keinhirn.de,keinpardon.de,keipino.de,kekecog.com,keko.com.ar,kellychen.com,kemptvillebaseball.com,kemska.pw,kennedy808.com,keromail.com,ketiksms.club,key-mail.net,keyemail.com,kgb.hu,khosropour.com,khtyler.com,kiani.com,kickassmail.com,kickmark.com,kiham.club,killermail.com,killmail.com,killmail.net,kimo.com,kimsdisk.com,kingsq.ga,kinki-kids.com,kino-100.ru,kiois.com,kir.ch.tc,kismail.ru,kissfans.com,kisstwink.com,kitnastar.com,kitten-mittons.com,kittymail.com,kitznet.at,kiwibox.com,kiwitown.com,klammlose.org,klassmaster.com,klassmaster.net,klipp.su,klipschx12.com,kloap.com,kludgemush.com,klzlk.com,kmail.com.au,kmhow.com,knol-power.nl,koiqe.com,kommunity.biz,kon42.com,kontol.city,kontol.co.uk,konultant-jurist.ru,konx.com,kook.ml,kopagas.com,kopaka.net,korea.com,koreamail.com,kormail.xyz,korona-nedvizhimosti.ru,koshu.ru,kosmetik-obatkuat.com,kostenlosemailadresse.de,koszmail.pl,kozmail.com,kpnmail.nl,kpooa.com,krongthip.com,krsw.tk,krunis.com,krypton.tk,ksanmail.com,ksee24mail.com,ksmtrck.tk,kuai909.com,kuaijenwan.com,kuatcak.cf,kuatcak.tk,kuatmail.gq,kuatmail.tk,kube93mail.com,kuhrap.com,kukamail.com,kulmeo.com,kulturbetrieb.info,kumail8.info,kumarweb.com,kurzepost.de,kusrc.com,kutakbisajauhjauh.gq,kuwait-mail.com,kwift.net,kwilco.net,kyal.pl,kyoto.email.ne.jp,l-c-a.us,l0real.net,l33r.eu,l5.ca,l8oaypr.com,la.com,labetteraverouge.at,labo.ch,lacedmail.com,lackmail.net,lackmail.ru,ladymacbeth.tk,ladymail.cz,lagerlouts.com,lagify.com,lags.us,lahoreoye.com,lain.ch,lajoska.pe.hu,lakelivingstonrealestate.com,lakmail.com,lal.kr,lalala.fun,lalamailbox.com,lamer.hu,land.ru,landmail.co,lankamail.com,laoeq.com,laoho.com,laposte.net,larjem.com,last-chance.pro,lastmail.co,lastmail.com,latemodels.com,latinmail.com,latino.com,lavabit.com,law.com,lawlita.com,lawyer.com,lazyinbox.com,lazyinbox.us,lbe.kr,lcebull.com,ldop.com,ldtp.com,le-tim.ru,ledoktre.com,lee.mx,leeching.net,leehom.net,leemail.me,legalactions.com,legalrc.loan,legislator.com,lellno.gq,lenovog4.com,leonlai.net,lequitywk.com,lesbugs.com,letmeinonthis.com,letmymail.com,letsgomets.net,letsmail9.com,letterbox.com,letthemeatspam.com,levele.com,levele.hu,lex.bg,lexis-nexis-mail.com,lexisense.com,lez.se,lgxscreen.com,lhsdv.com,liamcyrus.com,liamekaens.com,libero.it,liberomail.com,liberto.it,libox.fr,lick101.com,lifebyfood.com,lifetotech.com,ligsb.com,likesyouback.com,lillemap.net,lilo.me,lilylee.com,lindenbaumjapan.com,link2mail.net,linkedintuts2016.pw,linkmaster.com,linktrader.com,linshiyouxiang.net,linuxfreemail.com,linuxmail.com,linuxmail.org,linuxmail.so,linuxmail.tk,linuxpl.eu,linx.email,lionsfan.com.au,liontrucks.com,liquidinformation.net,liquidmail.de,list.ru,litedrop.com,littleblueroom.com,live.be,live.ca,live.cn,live.co.kr,live.co.uk,live.com,live.com.ar,live.com.au,live.com.mx,live.com.sg,live.de,live.dk,live.fr,live.hk,live.ie,live.in,live.it,live.jp,live.mdx.ac.uk,live.nl,live.vu.edu.au,liveradio.tk,liverpoolfans.com,lkgn.se,lko.kr,llandudno.com,llangollen.com,llogin.ru,lmcudh4h.com,lmxmail.sk,ln0hio.com,loadby.us,loan101.pro,loanins.org,lobbyist.com,localbar.com,localserv.no-ip.org,locanto1.club,locantofuck.top,locantospot.top,locantowsite.club,locateme10.com,locomodev.net,login-email.cf,login-email.ga,login-email.ml,login-email.tk,logular.com,loh.pp.ua,loin.in,loketa.com,lol.it,lol.ovpn.to,lolfreak.net,lolitka.cf,lolitka.ga,lolitka.gq,lolito.tk,lolmail.biz,lom.kr,london.com,london2.space,loobie.com,looksmart.co.uk,looksmart.com,looksmart.com.au,lookugly.com,lopezclub.com,lopl.co.cc,lordsofts.com,lortemail.dk,losemymail.com,lostpositive.xyz,louiskoo.com,love.com,love.cz,loveable.com,lovebitco.in,lovecat.com,lovefall.ml,lovelygirl.net,lovemail.com,lovemeleaveme.com,lover-boy.com,lovergirl.com,lovesea.gq,lovingjesus.com,lowandslow.com,loy.kr,lpfmgmtltd.com,lr7.us,lr78.com,lroid.com,lron0re.com,lru.me,ls-server.ru,luckymail.org,lucyu.com,lukecarriere.com,lukemail.info,lukop.dk,luo.kr,luso.pt,luukku.com,luv2.us,luxusmail.gq,luxusmail.tk,luxusmail.uk,lycos.at,lycos.co.uk,lycos.com,lycos.de,lycos.es,lycos.it,lycos.ne.jp,lycos.nl,lycosemail.com,lycosmail.com,lyfestylecreditsolutions.com,m-a-i-l.com,m-hmail.com,m21.cc,m2r60ff.com,m4.org,m4ilweb.info,ma.rr.com,maaill.com,maboard.com,mac.com,macbox.com,macfreak.com,machinecandy.com,macmail.com,macr2.com,macromaid.com,madcreations.com,madonnafan.com,madrid.com,maffia.hu,magamail.com,maggotymeat.ga,magicbox.ro,magicmail.co.za,magspam.net,mahmoodweb.com,maidlow.info,mail-2-you.com,mail-address.live,mail-apps.com,mail-apps.net,mail-awu.de,mail-box.cz,mail-card.com,mail-cart.com,mail-center.com,mail-central.com,mail-click.net,mail-easy.fr,mail-fake.com,mail-filter.com,mail-finder.net,mail-fix.com,mail-group.net,mail-hub.info,mail-list.top,mail-me.com,mail-owl.com,mail-page.com,mail-point.net,mail-pro.info,mail-register.com,mail-share.com,mail-space.net,mail-temp.com,mail-temporaire.com,mail-temporaire.fr,mail-tester.com,mail.austria.com,mail.aws910.com,mail.az,mail.bbexcite.jp,mail.bccto.com,mail.bccto.me,mail.bcu.ac.uk,mail.be,mail.bulgaria.com,mail.by,mail.byte.it,mail.co.za,mail.com,mail.dcu.ie,mail.ee,mail.entrepeneurmag.com,mail.freetown.com,mail.goo.ne.jp,mail.gr,mail.hitthebeach.com,mail.ie,mail.illistnoise.com,mail.kmsp.com,mail.mailinator.com,mail.md,mail.me,mail.mezimages.net,mail.nu,mail.org.uk,mail.partskyline.com,mail.pf,mail.pharmacy.com,mail.pt,mail.r-o-o-t.com,mail.rossam.com,mail.ru,mail.salu.net,mail.sisna.com,mail.spaceports.com,mail.theboys.com,mail.usa.com,mail.vasarhely.hu,mail.vrfarm.com.tw,mail.wtf,mail.zp.ua,mail1.drama.tw,mail1.hacked.jp,mail1.i-taiwan.tv,mail1.ismoke.hk,mail1.kaohsiung.tv,mail1.kein.hk,mail114.net,mail15.com,mail1a.de,mail1st.com,mail2.drama.tw,mail2.info.tm,mail2.ntuz.me,mail2.space,mail2.worksmobile.ml,mail2000.ru,mail2007.com,mail21.cc,mail22.club,mail22.space,mail2aaron.com,mail2abby.com,mail2abc.com,mail2actor.com,mail2admiral.com,mail2adorable.com,mail2adoration.com,mail2adore.com,mail2adventure.com,mail2aeolus.com,mail2aether.com,mail2affection.com,mail2afghanistan.com,mail2africa.com,mail2agent.com,mail2aha.com,mail2ahoy.com,mail2aim.com,mail2air.com,mail2airbag.com,mail2airforce.com,mail2airport.com,mail2alabama.com,mail2alan.com,mail2alaska.com,mail2albania.com,mail2alcoholic.com,mail2alec.com,mail2alexa.com,mail2algeria.com,mail2alicia.com,mail2alien.com,mail2allan.com,mail2allen.com,mail2allison.com,mail2alpha.com,mail2alyssa.com,mail2amanda.com,mail2amazing.com,mail2amber.com,mail2america.com,mail2american.com,mail2andorra.com,mail2andrea.com,mail2andy.com,mail2anesthesiologist.com,mail2angela.com,mail2angola.com,mail2ann.com,mail2anna.com,mail2anne.com,mail2anthony.com,mail2anything.com,mail2aphrodite.com,mail2apollo.com,mail2april.com,mail2aquarius.com,mail2arabia.com,mail2arabic.com,mail2architect.com,mail2ares.com,mail2argentina.com,mail2aries.com,mail2arizona.com,mail2arkansas.com,mail2armenia.com,mail2army.com,mail2arnold.com,mail2art.com,mail2artemus.com,mail2arthur.com,mail2artist.com,mail2ashley.com,mail2ask.com,mail2astronomer.com,mail2athena.com,mail2athlete.com,mail2atlas.com,mail2atom.com,mail2attitude.com,mail2auction.com,mail2aunt.com,mail2australia.com,mail2austria.com,mail2azerbaijan.com,mail2baby.com,mail2bahamas.com,mail2bahrain.com,mail2ballerina.com,mail2ballplayer.com,mail2band.com,mail2bangladesh.com,mail2bank.com,mail2banker.com,mail2bankrupt.com,mail2baptist.com,mail2bar.com,mail2barbados.com,mail2barbara.com,mail2barter.com,mail2basketball.com,mail2batter.com,mail2beach.com,mail2beast.com,mail2beatles.com,mail2beauty.com,mail2becky.com,mail2beijing.com,mail2belgium.com,mail2belize.com,mail2ben.com,mail2bernard.com,mail2beth.com,mail2betty.com,mail2beverly.com,mail2beyond.com,mail2biker.com,mail2bill.com,mail2billionaire.com,mail2billy.com,mail2bio.com,mail2biologist.com,mail2black.com,mail2blackbelt.com,mail2blake.com,mail2blind.com,mail2blonde.com,mail2blues.com,mail2bob.com,mail2bobby.com,mail2bolivia.com,mail2bombay.com,mail2bonn.com,mail2bookmark.com,mail2boreas.com,mail2bosnia.com,mail2boston.com,mail2botswana.com,mail2bradley.com,mail2brazil.com,mail2breakfast.com,mail2brian.com,mail2bride.com,mail2brittany.com,mail2broker.com,mail2brook.com,mail2bruce.com,mail2brunei.com,mail2brunette.com,mail2brussels.com,mail2bryan.com,mail2bug.com,mail2bulgaria.com,mail2business.com,mail2buy.com,mail2ca.com,mail2california.com,mail2calvin.com,mail2cambodia.com,mail2cameroon.com,mail2canada.com,mail2cancer.com,mail2capeverde.com,mail2capricorn.com,mail2cardinal.com,mail2cardiologist.com,mail2care.com,mail2caroline.com,mail2carolyn.com,mail2casey.com,mail2cat.com,mail2caterer.com,mail2cathy.com,mail2catlover.com,mail2catwalk.com,mail2cell.com,mail2chad.com,mail2champaign.com,mail2charles.com,mail2chef.com,mail2chemist.com,mail2cherry.com,mail2chicago.com,mail2chile.com,mail2china.com,mail2chinese.com,mail2chocolate.com,mail2christian.com,mail2christie.com,mail2christmas.com,mail2christy.com,mail2chuck.com,mail2cindy.com,mail2clark.com,mail2classifieds.com,mail2claude.com,mail2cliff.com,mail2clinic.com,mail2clint.com,mail2close.com,mail2club.com,mail2coach.com,mail2coastguard.com,mail2colin.com,mail2college.com,mail2colombia.com,mail2color.com,mail2colorado.com,mail2columbia.com,mail2comedian.com,mail2composer.com,mail2computer.com,mail2computers.com,mail2concert.com,mail2congo.com,mail2connect.com,mail2connecticut.com,mail2consultant.com,mail2convict.com,mail2cook.com,mail2cool.com,mail2cory.com,mail2costarica.com,mail2country.com,mail2courtney.com,mail2cowboy.com,mail2cowgirl.com,mail2craig.com,mail2crave.com,mail2crazy.com,mail2create.com,mail2croatia.com,mail2cry.com,mail2crystal.com,mail2cuba.com,mail2culture.com,mail2curt.com,mail2customs.com,mail2cute.com,mail2cutey.com,mail2cynthia.com,mail2cyprus.com,mail2czechrepublic.com,mail2dad.com,mail2dale.com,mail2dallas.com,mail2dan.com,mail2dana.com,mail2dance.com,mail2dancer.com,mail2danielle.com,mail2danny.com,mail2darlene.com,mail2darling.com,mail2darren.com,mail2daughter.com,mail2dave.com,mail2dawn.com,mail2dc.com,mail2dealer.com,mail2deanna.com,mail2dearest.com,mail2debbie.com,mail2debby.com,mail2deer.com,mail2delaware.com,mail2delicious.com,mail2demeter.com,mail2democrat.com,mail2denise.com,mail2denmark.com,mail2dennis.com,mail2dentist.com,mail2derek.com,mail2desert.com,mail2devoted.com,mail2devotion.com,mail2diamond.com,mail2diana.com,mail2diane.com,mail2diehard.com,mail2dilemma.com,mail2dillon.com,mail2dinner.com,mail2dinosaur.com,mail2dionysos.com,mail2diplomat.com,mail2director.com,mail2dirk.com,mail2disco.com,mail2dive.com,mail2diver.com,mail2divorced.com,mail2djibouti.com,mail2doctor.com,mail2doglover.com,mail2dominic.com,mail2dominica.com,mail2dominicanrepublic.com,mail2don.com,mail2donald.com,mail2donna.com,mail2doris.com,mail2dorothy.com,mail2doug.com,mail2dough.com,mail2douglas.com,mail2dow.com,mail2downtown.com,mail2dream.com,mail2dreamer.com,mail2dude.com,mail2dustin.com,mail2dyke.com,mail2dylan.com,mail2earl.com,mail2earth.com,mail2eastend.com,mail2eat.com,mail2economist.com,mail2ecuador.com,mail2eddie.com,mail2edgar.com,mail2edwin.com,mail2egypt.com,mail2electron.com,mail2eli.com,mail2elizabeth.com,mail2ellen.com,mail2elliot.com,mail2elsalvador.com,mail2elvis.com,mail2emergency.com,mail2emily.com,mail2engineer.com,mail2english.com,mail2environmentalist.com,mail2eos.com,mail2eric.com,mail2erica.com,mail2erin.com,mail2erinyes.com,mail2eris.com,mail2eritrea.com,mail2ernie.com,mail2eros.com,mail2estonia.com,mail2ethan.com,mail2ethiopia.com,mail2eu.com,mail2europe.com,mail2eurus.com,mail2eva.com,mail2evan.com,mail2evelyn.com,mail2everything.com,mail2exciting.com,mail2expert.com,mail2fairy.com,mail2faith.com,mail2fanatic.com,mail2fancy.com,mail2fantasy.com,mail2farm.com,mail2farmer.com,mail2fashion.com,mail2fat.com,mail2feeling.com,mail2female.com,mail2fever.com,mail2fighter.com,mail2fiji.com,mail2filmfestival.com,mail2films.com,mail2finance.com,mail2finland.com,mail2fireman.com,mail2firm.com,mail2fisherman.com,mail2flexible.com,mail2florence.com,mail2florida.com,mail2floyd.com,mail2fly.com,mail2fond.com,mail2fondness.com,mail2football.com,mail2footballfan.com,mail2found.com,mail2france.com,mail2frank.com,mail2frankfurt.com,mail2franklin.com,mail2fred.com,mail2freddie.com,mail2free.com,mail2freedom.com,mail2french.com,mail2freudian.com,mail2friendship.com,mail2from.com,mail2fun.com,mail2gabon.com,mail2gabriel.com,mail2gail.com,mail2galaxy.com,mail2gambia.com,mail2games.com,mail2gary.com,mail2gavin.com,mail2gemini.com,mail2gene.com,mail2genes.com,mail2geneva.com,mail2george.com,mail2georgia.com,mail2gerald.com,mail2german.com,mail2germany.com,mail2ghana.com,mail2gilbert.com,mail2gina.com,mail2girl.com,mail2glen.com,mail2gloria.com,mail2goddess.com,mail2gold.com,mail2golfclub.com,mail2golfer.com,mail2gordon.com,mail2government.com,mail2grab.com,mail2grace.com,mail2graham.com,mail2grandma.com,mail2grandpa.com,mail2grant.com,mail2greece.com,mail2green.com,mail2greg.com,mail2grenada.com,mail2gsm.com,mail2guard.com,mail2guatemala.com,mail2guy.com,mail2hades.com,mail2haiti.com,mail2hal.com,mail2handhelds.com,mail2hank.com,mail2hannah.com,mail2harold.com,mail2harry.com,mail2hawaii.com,mail2headhunter.com,mail2heal.com,mail2heather.com,mail2heaven.com,mail2hebe.com,mail2hecate.com,mail2heidi.com,mail2helen.com,mail2hell.com,mail2help.com,mail2helpdesk.com,mail2henry.com,mail2hephaestus.com,mail2hera.com,mail2hercules.com,mail2herman.com,mail2hermes.com,mail2hespera.com,mail2hestia.com,mail2highschool.com,mail2hindu.com,mail2hip.com,mail2hiphop.com,mail2holland.com,mail2holly.com,mail2hollywood.com,mail2homer.com,mail2honduras.com,mail2honey.com,mail2hongkong.com,mail2hope.com,mail2horse.com,mail2hot.com,mail2hotel.com,mail2houston.com,mail2howard.com,mail2hugh.com,mail2human.com,mail2hungary.com,mail2hungry.com,mail2hygeia.com,mail2hyperspace.com,mail2hypnos.com,mail2ian.com,mail2ice-cream.com,mail2iceland.com,mail2idaho.com,mail2idontknow.com,mail2illinois.com,mail2imam.com,mail2in.com,mail2india.com,mail2indian.com,mail2indiana.com,mail2indonesia.com,mail2infinity.com,mail2intense.com,mail2iowa.com,mail2iran.com,mail2iraq.com,mail2ireland.com,mail2irene.com,mail2iris.com,mail2irresistible.com,mail2irving.com,mail2irwin.com,mail2isaac.com,mail2israel.com,mail2italian.com,mail2italy.com,mail2jackie.com,mail2jacob.com,mail2jail.com,mail2jaime.com,mail2jake.com,mail2jamaica.com,mail2james.com,mail2jamie.com,mail2jan.com,mail2jane.com,mail2janet.com,mail2janice.com,mail2japan.com,mail2japanese.com,mail2jasmine.com,mail2jason.com,mail2java.com,mail2jay.com,mail2jazz.com,mail2jed.com,mail2jeffrey.com,mail2jennifer.com,mail2jenny.com,mail2jeremy.com,mail2jerry.com,mail2jessica.com,mail2jessie.com,mail2jesus.com,mail2jew.com,mail2jeweler.com,mail2jim.com,mail2jimmy.com,mail2joan.com,mail2joann.com,mail2joanna.com,mail2jody.com,mail2joe.com,mail2joel.com,mail2joey.com,mail2john.com,mail2join.com,mail2jon.com,mail2jonathan.com,mail2jones.com,mail2jordan.com,mail2joseph.com,mail2josh.com,mail2joy.com,mail2juan.com,mail2judge.com,mail2judy.com,mail2juggler.com,mail2julian.com,mail2julie.com,mail2jumbo.com,mail2junk.com,mail2justin.com,mail2justme.com,mail2kansas.com,mail2karate.com,mail2karen.com,mail2karl.com,mail2karma.com,mail2kathleen.com,mail2kathy.com,mail2katie.com,mail2kay.com,mail2kazakhstan.com,mail2keen.com,mail2keith.com,mail2kelly.com,mail2kelsey.com,mail2ken.com,mail2kendall.com,mail2kennedy.com,mail2kenneth.com,mail2kenny.com,mail2kentucky.com,mail2kenya.com,mail2kerry.com,mail2kevin.com,mail2kim.com,mail2kimberly.com,mail2king.com,mail2kirk.com,mail2kiss.com,mail2kosher.com,mail2kristin.com,mail2kurt.com,mail2kuwait.com,mail2kyle.com,mail2kyrgyzstan.com,mail2la.com,mail2lacrosse.com,mail2lance.com,mail2lao.com,mail2larry.com,mail2latvia.com,mail2laugh.com,mail2laura.com,mail2lauren.com,mail2laurie.com,mail2lawrence.com,mail2lawyer.com,mail2lebanon.com,mail2lee.com,mail2leo.com,mail2leon.com,mail2leonard.com,mail2leone.com,mail2leslie.com,mail2letter.com,mail2liberia.com,mail2libertarian.com,mail2libra.com,mail2libya.com,mail2liechtenstein.com,mail2life.com,mail2linda.com,mail2linux.com,mail2lionel.com,mail2lipstick.com,mail2liquid.com,mail2lisa.com,mail2lithuania.com,mail2litigator.com,mail2liz.com,mail2lloyd.com,mail2lois.com,mail2lola.com,mail2london.com,mail2looking.com,mail2lori.com,mail2lost.com,mail2lou.com,mail2louis.com,mail2louisiana.com,mail2lovable.com,mail2love.com,mail2lucky.com,mail2lucy.com,mail2lunch.com,mail2lust.com,mail2luxembourg.com,mail2luxury.com,mail2lyle.com,mail2lynn.com,mail2madagascar.com,mail2madison.com,mail2madrid.com,mail2maggie.com,mail2mail4.com,mail2maine.com,mail2malawi.com,mail2malaysia.com,mail2maldives.com,mail2mali.com,mail2malta.com,mail2mambo.com,mail2man.com,mail2mandy.com,mail2manhunter.com,mail2mankind.com,mail2many.com,mail2marc.com,mail2marcia.com,mail2margaret.com,mail2margie.com,mail2marhaba.com,mail2maria.com,mail2marilyn.com,mail2marines.com,mail2mark.com,mail2marriage.com,mail2married.com,mail2marries.com,mail2mars.com,mail2marsha.com,mail2marshallislands.com,mail2martha.com,mail2martin.com,mail2marty.com,mail2marvin.com,mail2mary.com,mail2maryland.com,mail2mason.com,mail2massachusetts.com,mail2matt.com,mail2matthew.com,mail2maurice.com,mail2mauritania.com,mail2mauritius.com,mail2max.com,mail2maxwell.com,mail2maybe.com,mail2mba.com,mail2me4u.com,mail2mechanic.com,mail2medieval.com,mail2megan.com,mail2mel.com,mail2melanie.com,mail2melissa.com,mail2melody.com,mail2member.com,mail2memphis.com,mail2methodist.com,mail2mexican.com,mail2mexico.com,mail2mgz.com,mail2miami.com,mail2michael.com,mail2michelle.com,mail2michigan.com,mail2mike.com,mail2milan.com,mail2milano.com,mail2mildred.com,mail2milkyway.com,mail2millennium.com,mail2millionaire.com,mail2milton.com,mail2mime.com,mail2mindreader.com,mail2mini.com,mail2minister.com,mail2minneapolis.com,mail2minnesota.com,mail2miracle.com,mail2missionary.com,mail2mississippi.com,mail2missouri.com,mail2mitch.com,mail2model.com,mail2moldova.commail2molly.com,mail2mom.com,mail2monaco.com,mail2money.com,mail2mongolia.com,mail2monica.com,mail2montana.com,mail2monty.com,mail2moon.com,mail2morocco.com,mail2morpheus.com,mail2mors.com,mail2moscow.com,mail2moslem.com,mail2mouseketeer.com,mail2movies.com,mail2mozambique.com,mail2mp3.com,mail2mrright.com,mail2msright.com,mail2museum.com,mail2music.com,mail2musician.com,mail2muslim.com,mail2my.com,mail2myboat.com,mail2mycar.com,mail2mycell.com,mail2mygsm.com,mail2mylaptop.com,mail2mymac.com,mail2mypager.com,mail2mypalm.com,mail2mypc.com,mail2myphone.com,mail2myplane.com,mail2namibia.com,mail2nancy.com,mail2nasdaq.com,mail2nathan.com,mail2nauru.com,mail2navy.com,mail2neal.com,mail2nebraska.com,mail2ned.com,mail2neil.com,mail2nelson.com,mail2nemesis.com,mail2nepal.com,mail2netherlands.com,mail2network.com,mail2nevada.com,mail2newhampshire.com,mail2newjersey.com,mail2newmexico.com,mail2newyork.com,mail2newzealand.com,mail2nicaragua.com,mail2nick.com,mail2nicole.com,mail2niger.com,mail2nigeria.com,mail2nike.com,mail2no.com,mail2noah.com,mail2noel.com,mail2noelle.com,mail2normal.com,mail2norman.com,mail2northamerica.com,mail2northcarolina.com,mail2northdakota.com,mail2northpole.com,mail2norway.com,mail2notus.com,mail2noway.com,mail2nowhere.com,mail2nuclear.com,mail2nun.com,mail2ny.com,mail2oasis.com,mail2oceanographer.com,mail2ohio.com,mail2ok.com,mail2oklahoma.com,mail2oliver.com,mail2oman.com,mail2one.com,mail2onfire.com,mail2online.com,mail2oops.com,mail2open.com,mail2ophthalmologist.com,mail2optometrist.com,mail2oregon.com,mail2oscars.com,mail2oslo.com,mail2painter.com,mail2pakistan.com,mail2palau.com,mail2pan.com,mail2panama.com,mail2paraguay.com,mail2paralegal.com,mail2paris.com,mail2park.com,mail2parker.com,mail2party.com,mail2passion.com,mail2pat.com,mail2patricia.com,mail2patrick.com,mail2patty.com,mail2paul.com,mail2paula.com,mail2pay.com,mail2peace.com,mail2pediatrician.com,mail2peggy.com,mail2pennsylvania.com,mail2perry.com,mail2persephone.com,mail2persian.com,mail2peru.com,mail2pete.com,mail2peter.com,mail2pharmacist.com,mail2phil.com,mail2philippines.com,mail2phoenix.com,mail2phonecall.com,mail2phyllis.com,mail2pickup.com,mail2pilot.com,mail2pisces.com,mail2planet.com,mail2platinum.com,mail2plato.com,mail2pluto.com,mail2pm.com,mail2podiatrist.com,mail2poet.com,mail2poland.com,mail2policeman.com,mail2policewoman.com,mail2politician.com,mail2pop.com,mail2pope.com,mail2popular.com,mail2portugal.com,mail2poseidon.com,mail2potatohead.com,mail2power.com,mail2presbyterian.com,mail2president.com,mail2priest.com,mail2prince.com,mail2princess.com,mail2producer.com,mail2professor.com,mail2protect.com,mail2psychiatrist.com,mail2psycho.com,mail2psychologist.com,mail2qatar.com,mail2queen.com,mail2rabbi.com,mail2race.com,mail2racer.com,mail2rachel.com,mail2rage.com,mail2rainmaker.com,mail2ralph.com,mail2randy.com,mail2rap.com,mail2rare.com,mail2rave.com,mail2ray.com,mail2raymond.com,mail2realtor.com,mail2rebecca.com,mail2recruiter.com,mail2recycle.com,mail2redhead.com,mail2reed.com,mail2reggie.com,mail2register.com,mail2rent.com,mail2republican.com,mail2resort.com,mail2rex.com,mail2rhodeisland.com,mail2rich.com,mail2richard.com,mail2ricky.com,mail2ride.com,mail2riley.com,mail2rita.com,mail2rob.com,mail2robert.com,mail2roberta.com,mail2robin.com,mail2rock.com,mail2rocker.com,mail2rod.com,mail2rodney.com,mail2romania.com,mail2rome.com,mail2ron.com,mail2ronald.com,mail2ronnie.com,mail2rose.com,mail2rosie.com,mail2roy.com,mail2rss.org,mail2rudy.com,mail2rugby.com,mail2runner.com,mail2russell.com,mail2russia.com,mail2russian.com,mail2rusty.com,mail2ruth.com,mail2rwanda.com,mail2ryan.com,mail2sa.com,mail2sabrina.com,mail2safe.com,mail2sagittarius.com,mail2sail.com,mail2sailor.com,mail2sal.com,mail2salaam.com,mail2sam.com,mail2samantha.com,mail2samoa.com,mail2samurai.com,mail2sandra.com,mail2sandy.com,mail2sanfrancisco.com,mail2sanmarino.com,mail2santa.com,mail2sara.com,mail2sarah.com,mail2sat.com,mail2saturn.com,mail2saudi.com,mail2saudiarabia.com,mail2save.com,mail2savings.com,mail2school.com,mail2scientist.com,mail2scorpio.com,mail2scott.com,mail2sean.com,mail2search.com,mail2seattle.com,mail2secretagent.com,mail2senate.com,mail2senegal.com,mail2sensual.com,mail2seth.com,mail2sevenseas.com,mail2sexy.com,mail2seychelles.com,mail2shane.com,mail2sharon.com,mail2shawn.com,mail2ship.com,mail2shirley.com,mail2shoot.com,mail2shuttle.com,mail2sierraleone.com,mail2simon.com,mail2singapore.com,mail2single.com,mail2site.com,mail2skater.com,mail2skier.com,mail2sky.com,mail2sleek.com,mail2slim.com,mail2slovakia.com,mail2slovenia.com,mail2smile.com,mail2smith.com,mail2smooth.com,mail2soccer.com,mail2soccerfan.com,mail2socialist.com,mail2soldier.com,mail2somalia.com,mail2son.com,mail2song.com,mail2sos.com,mail2sound.com,mail2southafrica.com,mail2southamerica.com,mail2southcarolina.com,mail2southdakota.com,mail2southkorea.com,mail2southpole.com,mail2spain.com,mail2spanish.com,mail2spare.com,mail2spectrum.com,mail2splash.com,mail2sponsor.com,mail2sports.com,mail2srilanka.com,mail2stacy.com,mail2stan.com,mail2stanley.com,mail2star.com,mail2state.com,mail2stephanie.com,mail2steve.com,mail2steven.com,mail2stewart.com,mail2stlouis.com,mail2stock.com,mail2stockholm.com,mail2stockmarket.com,mail2storage.com,mail2store.com,mail2strong.com,mail2student.com,mail2studio.com,mail2studio54.com,mail2stuntman.com,mail2subscribe.com,mail2sudan.com,mail2superstar.com,mail2surfer.com,mail2suriname.com,mail2susan.com,mail2suzie.com,mail2swaziland.com,mail2sweden.com,mail2sweetheart.com,mail2swim.com,mail2swimmer.com,mail2swiss.com,mail2switzerland.com,mail2sydney.com,mail2sylvia.com,mail2syria.com,mail2taboo.com,mail2taiwan.com,mail2tajikistan.com,mail2tammy.com,mail2tango.com,mail2tanya.com,mail2tanzania.com,mail2tara.com,mail2taurus.com,mail2taxi.com,mail2taxidermist.com,mail2taylor.com,mail2taz.com,mail2teacher.com,mail2technician.com,mail2ted.com,mail2telephone.com,mail2teletubbie.com,mail2tenderness.com,mail2tennessee.com,mail2tennis.com,mail2tennisfan.com,mail2terri.com,mail2terry.com,mail2test.com,mail2texas.com,mail2thailand.com,mail2therapy.com,mail2think.com,mail2tickets.com,mail2tiffany.com,mail2tim.com,mail2time.com,mail2timothy.com,mail2tina.com,mail2titanic.com,mail2toby.com,mail2todd.com,mail2togo.com,mail2tom.com,mail2tommy.com,mail2tonga.com,mail2tony.com,mail2tor.com,mail2touch.com,mail2tourist.com,mail2tracey.com,mail2tracy.com,mail2tramp.com,mail2travel.com,mail2traveler.com,mail2travis.com,mail2trekkie.com,mail2trex.com,mail2triallawyer.com,mail2trick.com,mail2trillionaire.com,mail2troy.com,mail2truck.com,mail2trump.com,mail2try.com,mail2tunisia.com,mail2turbo.com,mail2turkey.com,mail2turkmenistan.com,mail2tv.com,mail2tycoon.com,mail2tyler.com,mail2u4me.com,mail2uae.com,mail2uganda.com,mail2uk.com,mail2ukraine.com,mail2uncle.com,mail2unsubscribe.com,mail2uptown.com,mail2uruguay.com,mail2usa.com,mail2utah.com,mail2uzbekistan.com,mail2v.com,mail2vacation.com,mail2valentines.com,mail2valerie.com,mail2valley.com,mail2vamoose.com,mail2vanessa.com,mail2vanuatu.com,mail2venezuela.com,mail2venous.com,mail2venus.com,mail2vermont.com,mail2vickie.com,mail2victor.com,mail2victoria.com,mail2vienna.com,mail2vietnam.com,mail2vince.com,mail2virginia.com,mail2virgo.com,mail2visionary.com,mail2vodka.com,mail2volleyball.com,mail2waiter.com,mail2wallstreet.com,mail2wally.com,mail2walter.com,mail2warren.com,mail2washington.com,mail2wave.com,mail2way.com,mail2waycool.com,mail2wayne.com,mail2web.com,mail2webmaster.com,mail2webtop.com,mail2webtv.com,mail2weird.com,mail2wendell.com,mail2wendy.com,mail2westend.com,mail2westvirginia.com,mail2whether.com,mail2whip.com,mail2white.com,mail2whitehouse.com,mail2whitney.com,mail2why.com,mail2wilbur.com,mail2wild.com,mail2willard.com,mail2willie.com,mail2wine.com,mail2winner.com,mail2wired.com,mail2wisconsin.com,mail2woman.com,mail2wonder.com,mail2world.com,mail2worship.com,mail2wow.com,mail2www.com,mail2wyoming.com,mail2xfiles.com,mail2xox.com,mail2yachtclub.com,mail2yahalla.com,mail2yemen.com,mail2yes.com,mail2yugoslavia.com,mail2zack.com,mail2zambia.com,mail2zenith.com,mail2zephir.com,mail2zeus.com,mail2zipper.com,mail2zoo.com,mail2zoologist.com,mail2zurich.com,mail3.drama.tw,mail3000.com,mail333.com,mail4-us.org,mail4.drama.tw,mail4.online,mail4gmail.com,mail4trash.com,mail4you.usa.cc,mail5.drama.tw,mail56.me,mail666.ru,mail707.com,mail72.com,mailabconline.com,mailadadad.org,mailandftp.com,mailandnews.com,mailapi.ru,mailapps.online,mailas.com,mailasia.com,mailback.com,mailbidon.com,mailbiz.biz,mailblocks.com,mailblog.biz,mailbolt.com,mailbomb.net,mailboom.com,mailbox.as,mailbox.co.za,mailbox.gr,mailbox.hu,mailbox.org,mailbox.r2.dns-cloud.net,mailbox2go.de,mailbox52.ga,mailbox72.biz,mailbox80.biz,mailbox87.de,mailbox92.biz,mailboxy.fun,mailbr.com.br,mailbucket.org,mailc.net,mailcan.com,mailcat.biz,mailcatch.com,mailcc.com,mailchoose.co,mailchop.com,mailcity.com,mailcker.com,mailclub.fr,mailclub.net,mailde.de,mailde.info,maildrop.cc,maildrop.cf,maildrop.ga,maildrop.gq,maildrop.ml,maildu.de,maildump.tk,maildx.com,maileater.com,mailed.in,mailed.ro,maileimer.de,maileme101.com,mailexcite.com,mailexpire.com,mailf5.com,mailfa.tk,mailfall.com,mailfavorite.com,mailfish.de,mailforce.net,mailformail.com,mailforspam.com,mailfree.ga,mailfree.gq,mailfree.ml,mailfreeonline.com,mailfs.com,mailftp.com,mailgate.gr,mailgenie.net,mailgov.info,mailguard.me,mailgutter.com,mailhaven.com,mailhazard.com,mailhazard.us,mailhero.io,mailhex.com,mailhood.com,mailhost.top,mailhub.top,mailhz.me,mailimate.com,mailin8r.com,mailinatar.com,mailinater.com,mailinator.co.uk,mailinator.com,mailinator.gq,mailinator.info,mailinator.net,mailinator.org,mailinator.pl,mailinator.us,mailinator2.com,mailincubator.com,mailing.one,mailingweb.com,mailisent.com,mailismagic.com,mailita.tk,mailite.com,mailjunk.cf,mailjunk.ga,mailjunk.gq,mailjunk.ml,mailjunk.tk,mailkor.xyz,mailline.net,maillink.info,maillink.live,maillink.top,maillist.in,mailmate.com,mailme.dk,mailme.gq,mailme.ir,mailme.lv,mailme24.com,mailmetrash.com,mailmetrash.comilzilla.org,mailmight.com,mailmij.nl,mailmoat.com,mailmoth.com,mailms.com,mailna.biz,mailna.co,mailna.in,mailna.me,mailnator.com,mailnesia.com,mailnew.com,mailnow2.com,mailnowapp.com,mailnull.com,mailonaut.com,mailops.com,mailorc.com,mailorg.org,mailox.biz,mailox.fun,mailoye.com,mailpanda.com,mailpick.biz,mailpm.live,mailpooch.com,mailpost.zzn.com,mailpride.com,mailprotech.com,mailproxsy.com,mailpuppy.com,mailquack.com,mailrazer.com,mailrc.biz,mailrock.biz,mailroom.com,mailru.com,mailsac.com,mailscheap.us,mailscrap.com,mailseal.de,mailsearch.net,mailsent.net,mailshell.com,mailshiv.com,mailshuttle.com,mailsiphon.com,mailslapping.com,mailslite.com,mailspam.xyz,mailspeed.ru,mailstart.com,mailstartplus.com,mailsucker.net,mailsucre.com,mailsurf.com,mailtag.com,mailtemp.info,mailtemp.net,mailtemporaire.com,mailtemporaire.fr,mailthunder.ml,mailto.de,mailtome.de,mailtothis.com,mailtoyou.top,mailtraps.com,mailtrash.net,mailtrix.net,mailtv.net,mailtv.tv,mailup.net,mailway.com,mailwire.com,mailwithyou.com,mailzi.ru,mailzilla.com,mailzilla.org,maine.rr.com,majorleaguemail.com,makemenaughty.club,makemetheking.com,maktoob.com,malahov.de,malayalamdtp.com,malayalamtelevision.net,malboxe.com,malibucoding.com,mallinator.com,mamulenok.ru,manager.de,mandraghen.cf,manifestgenerator.com,mansiondev.com,mantrafreenet.com,mantramail.com,mantraonline.com,manybrain.com,manyme.com,mao.igg.biz,mar.email.ne.jp,marchmail.com,mariah-carey.ml.org,mariahc.com,marijuana.nl,mark-compressoren.ru,marketing.lu,marketlink.info,markmurfin.com,married-not.com,marsattack.com,martindalemail.com,martyvole.ml,mask03.ru,maskmail.net,masrawy.com,mastahype.net,master-mail.net,maswae.world,matchpol.net,materiali.ml,matmail.com,matra.top,mattmason.xyz,mauimail.com,mauritius.com,max-direct.com,max-mail.com,max-mail.info,max88.club,maxleft.com,maxmail.co.uk,maxmail.in,maxmail.info,mbe.kr,mbox.com.au,mbx.cc,mcache.net,mccreedymail.com,mchsi.com,mciek.com,mciworldcom.net,md5hashing.net,me-mail.hu,me.com,mechanicalresumes.com,medical.net.au,medione.net,medkabinet-uzi.ru,medmail.com,medscape.com,medsheet.com,meepsheep.eu,meetingmall.com,mega.zik.dj,megago.com,megamail.pt,megapathdsl.net,megapoint.com,megotmail.com,mehrani.com,mehtaweb.com,meinspamschutz.de,mejjang.xyz,mekhong.com,melodymail.com,meloo.com,meltedbrownies.com,meltmail.com,members.student.com,memeil.top,memsg.site,merry.pink,message.hu,messagebeamer.de,messageden.net,messages.to,messagesafe.co,messwiththebestdielikethe.rest,metacrawler.com,metalfan.com,metroset.net,metta.lk,mettamarketingsolutions.com,metuwar.tk,mexicomail.com,mezimages.net,mfsa.ru,mhwolf.net,miaferrari.com,miatadriver.com,miauj.com,micsocks.net,midcoastcustoms.com,midcoastcustoms.net,midcoastsolutions.com,midcoastsolutions.net,midlertidig.com,midlertidig.net,midlertidig.org,mierdamail.com,miesto.sk,mighty.co.za,migmail.net,migmail.pl,migserver2.ml,migumail.com,mihanmail.ir,mihep.com,miho-nakayama.com,mijnhva.nl,mikrotamanet.com,milavitsaromania.ro,mildin.org.ua,millionaireintraining.com,milmail.com,mindless.com,mindspring.com,minecraftrabbithole.com,minex-coin.com,mini-mail.com,mini-mail.net,minister.com,ministry-of-silly-walks.de,minsmail.com,mintemail.com,miodonski.ch,miraigames.net,misery.net,misterpinball.de,mittalweb.com,mixmail.com,mjfrogmail.com,mji.ro,mjukglass.nu,mk24.at,mko.kr,mkpfilm.com,ml1.net,ml8.ca,mm.my,mm5.se,mmail.igg.biz,mmailinater.com,mmmmail.com,moakt.co,moakt.com,moakt.ws,mobi.web.id,mobilbatam.com,mobileemail.vodafone.net,mobileninja.co.uk,mobilevpn.top,moburl.com,mochamail.com,mockmyid.co,mockmyid.com,moeri.org,mohammed.com,mohmal.com,mohmal.im,mohmal.in,mohmal.tech,moldova.cc,moldova.com,moldovacc.com,molms.com,momentics.ru,moncourrier.fr.nf,monemail.fr.nf,money.net,moneypipe.net,monmail.fr.nf,montevideo.com.uy,montokop.pw,monumentmail.com,moonman.com,moonwake.com,moose-mail.com,moot.es,mor19.uu.gl,morahdsl.cf,moreawesomethanyou.com,moreorcs.com,morriesworld.ml,mortaza.com,moruzza.com,mosaicfx.com,moscowmail.com,most-wanted.com,mostlysunny.com,motique.de,motormania.com,mountainregionallibrary.net,movemail.com,movieluver.com,mowgli.jungleheart.com,mox.pp.ua,moy-elektrik.ru,moza.pl,mozej.com,mp4.it,mqg77378.ga,mr-potatohead.com,mr24.co,mrblacklist.gq,mrmail.info,mrpost.com,mrresourcepacks.tk,msa.minsmail.com,mscold.com,msft.cloudns.asia,msgbox.com,msgden.com,msgos.com,msgsafe.ninja,msn.co.uk,msn.com,mspeciosa.com,msrc.ml,mswork.ru,msxd.com,mt2009.com,mt2014.com,mt2015.com,mt2016.com,mt2017.com,mtmdev.com,mttestdriver.com,muathegame.com,muchomail.com,mucincanon.com,muehlacker.tk,muell.email,muellemail.com,muellmail.com,mufux.com,mugglenet.org,muimail.com,mundomail.net,munich.com,munoubengoshi.gq,music.com,musician.org,musicscene.org,muslim.com,mustbedestroyed.org,mutant.me,muttwalker.net,mvdmail.com,mvrht.com,mvrht.net,mwarner.org,mx0.wwwnew.eu,mxfuel.com,mxp.dns-cloud.net,mxp.dnsabr.com,my-pomsies.ru,my-teddyy.ru,my.efxs.ca,my.email.ne.jp,my.vondata.com.ar,my10minutemail.com,my6mail.com,myalias.pw,mybitti.de,mybox.it,mycabin.com,mycampus.com,mycard.net.ua,mycity.com,mycleaninbox.net,mycool.com,mycorneroftheinter.net,myde.ml,mydemo.equipment,mydomain.com,mydotcomaddress.com,myecho.es,myemail.my,myemailboxy.com,myfamily.com,myfreemail.space,mygeoweb.info,mygo.com,myindohome.services,myinterserver.ml,myiris.com,mykickassideas.com,myletter.online,myloans.space,mymail-in.net,mymail90.com,mymailbest.com,mymailjos.cf,mymailjos.ga,mymailjos.tk,mymailoasis.com,mymailto.cf,mymailto.ga,myn4s.ddns.net,mynamedot.com,myneocards.cz,mynetaddress.com,mynetstore.de,mynetwork.cf,myopang.com,myownemail.com,myownfriends.com,mypacks.net,mypad.com,mypartyclip.de,mypersonalemail.com,myphantomemail.com,myplace.com,myrealbox.com,myremarq.com,mysamp.de,myself.com,mysentmail.com,myspaceinc.com,myspaceinc.net,myspaceinc.org,myspacepimpedup.com,myspamless.com,mystupidjob.com,mystvpn.com,mysugartime.ru,mytemp.email,mytempemail.com,mytempmail.com,mythirdage.com,mythnick.club,mytmail.in,mytrashmail.com,mytrommleronline.com,mywarnernet.net,myway.com,myworldmail.com,mywrld.top,myzx.com,n1nja.org,n2.com,n2business.com,n2mail.com,n2software.com,nabc.biz,nabuma.com,nacho.pw,nada.email,nada.ltd,nafe.com,nagpal.net,nakedgreens.com,nakedtruth.biz,name.com,nameplanet.com,nando1.com,nandomail.com,nanonym.ch,napalm51.cf,napalm51.flu.cc,napalm51.ga,napalm51.gq,napalm51.igg.biz,napalm51.ml,napalm51.nut.cc,napalm51.tk,napalm51.usa.cc,naplesnews.net,naseej.com,naslazhdai.ru,nate.com,nationalgardeningclub.com,nativestar.net,nativeweb.net,naturalious.com,naui.net,nauticom.net,naver.com,navigator.lv,navy.org,naz.com,nbox.notif.me,nc.rr.com,nchoicemail.com,nctuiem.xyz,neb.rr.com,neeva.net,negated.com,neibu306.com,neibu963.com,neko2.net,nemra1.com,nenter.com,neo.rr.com,neomailbox.com,neotlozhniy-zaim.ru,nepwk.com,nervhq.org,nervmich.net,nervtmich.net,net-list.com,net-pager.net,net-shopping.com,net-solution.info,net.email.ne.jp,net4b.pt,net4you.at,netbounce.com,netbroadcaster.com,netby.dk,netcenter-vn.net,netcom.ca,netcom.com,netcourrier.com,netexecutive.com,netexpressway.com,netgenie.com,netian.com,netins.net,netizen.com.ar,netlane.com,netlimit.com,netmail3.net,netmails.com,netmails.info,netmails.net,netmanor.com,netmongol.com,netnet.com.sg,netpiper.com,netposta.net,netradiomail.com,netralink.com,netricity.nl,netris.net,netscape.com,netscape.net,netscapeonline.co.uk,netsero.net,netspace.net.au,netspeedway.com,netsquare.com,netster.com,nettaxi.com,netviewer-france.com,netvision.net.il,netzero.com,netzero.net,netzidiot.de,neuf.fr,neverbox.com,nevermail.de,new-purse.com,new.rr.com,newairmail.com,newbpotato.tk,newdawnnm.xyz,newfilm24.ru,newmail.com,newmail.net,newmail.ru,newtmail.com,newyork.com,next-mail.info,next-mail.online,next.ovh,next2cloud.info,nextemail.in,nextemail.net,nextmail.in,nextmail.info,nextstopvalhalla.com,nexxmail.com,nezdiro.org,nezzart.com,nfast.net,nfmail.com,nguyenusedcars.com,nh3.ro,nhmail.com,nice-4u.com,nicebush.com,nicegal.com,nicemail.pro,nicewoodenbaskets.com,nicholastse.net,nicknassar.com,nickrizos.com,nicolastse.com,nie-podam.pl,niepodam.pl,nigge.rs,nightmail.com,nike.coms.hk,nikopage.com,nimail.com,nincsmail.com,nincsmail.hu,ninfan.com,nirvanafan.com,niwl.net,nko.kr,nl.szucsati.net,nm7.cc,nmail.cf,nnh.com,nnot.net,no-spam.hu,no-spam.ws,no-spammers.com,no-ux.com,noavar.com,noblepioneer.com,nobugmail.com,nobulk.com,nobuma.com,noclickemail.com,nodezine.com,nodie.cc,nodnor.club,nogmailspam.info,noicd.com,noifeelings.com,nokiamail.com,nomail.cf,nomail.ch,nomail.ga,nomail.nodns.xyz,nomail.pw,nomail.xl.cx,nomail2me.com,nomailthankyou.com,nomorespamemails.com,nonexisted.nondomain,nonpartisan.com,nonspam.eu,nonspammer.de,nonze.ro,noref.in,norih.com,norika-fujiwara.com,norikomail.com,norseforce.com,northemquest.com,northgates.net,nospam.ze.tc,nospam4.us,nospamfor.us,nospammail.net,nospamthanks.info,nostrajewellery.xyz,nothingtoseehere.ca,notif.me,notmailinator.com,notrnailinator.com,notsharingmy.info,now.im,now.mefound.com,noway.pw,nowhere.org,nowmymail.com,npv.kr,nsaking.de,ntlhelp.net,ntlworld.com,ntscan.com,ntub.cf,nubescontrol.com,null.net,nullbox.info,nuo.kr,nurfuerspam.de,nut.cc,nutpa.net,nuts2trade.com,nvc-e.com,nwldx.com,nwldx.net,nwytg.com,nwytg.net,ny.com,ny7.me,nyc.com,nycap.rr.com,nycmail.com,nyrmusic.com,nzoomail.com,o-tay.com,o.spamtrap.ro,o060bgr3qg.com,o2.co.uk,o2.pl,o2stk.org,o3enzyme.com,o7i.net,oai.asia,oaklandas-fan.com,oalsp.com,oath.com,obfusko.com,objectmail.com,obo.kr,obobbo.com,oborudovanieizturcii.ru,obxpestcontrol.com,oceancares.xyz,oceanfree.net,odaymail.com,oddpost.com,odmail.com,odnorazovoe.ru,oerpub.org,office-email.com,officedomain.com,offroadwarrior.com,offshore-proxies.net,oh.rr.com,ohaaa.de,ohdomain.xyz,ohi.tw,ohioticketpayments.xyz,oi.com.br,oicexchange.com,oing.cf,okbank.com,okclprojects.com,okhuman.com,okmad.com,okmagic.com,okname.net,okrent.us,okuk.com,okzk.com,oldies1041.com,oldies104mail.com,ole.com,olemail.com,olg.com,olimp-case.ru,olympist.net,olypmall.ru,omail.pro,omaninfo.com,omegafive.net,omnievents.org,one-time.email,one2mail.info,onebiginbox.com,onebox.com,onecitymail.com,onedaymail.cf,onedaymail.ga,onelegalplan.com,onemail1.com,onemoremail.net,onenet.com.ar,oneoffemail.com,oneoffmail.com,onet.pl,onewaymail.com,oninet.pt,onlatedotcom.info,online.de,online.ie,online.ms,onlinehome.de,onlineidea.info,onlinewiz.com,onmilwaukee.com,onobox.com,onqin.com,ontyne.biz,onvillage.com,oolus.com,oonies-shoprus.ru,oopi.org,op.pl,opayq.com,opende.de,opendns.ro,opentrash.com,operafan.com,operamail.com,opmmedia.ga,opp24.com,optician.com,optician.net,optimum.net,optonline.net,optusnet.com.au,oranek.com,orange.fr,orange.net,orangotango.cf,orangotango.ga,orangotango.gq,orangotango.ml,orangotango.tk,orbitel.bg,ordinaryamerican.net,oreidresume.com,orgmail.net,orgmbx.cc,oroki.de,orthodontist.net,oshietechan.link,osite.com.br,oso.com,otakumail.com,otherinbox.codupmyspace.com,otherinbox.com,our-computer.com,our-office.com,our.st,ourbrisbane.com,ourklips.com,ournet.md,ourpreviewdomain.com,outel.com,outgun.com,outlawspam.com,outlook.at,outlook.be,outlook.cl,outlook.co.id,outlook.co.il,outlook.co.nz,outlook.co.th,outlook.com,outlook.com.ar,outlook.com.au,outlook.com.br,outlook.com.gr,outlook.com.pe,outlook.com.tr,outlook.com.vn,outlook.cz,outlook.de,outlook.dk,outlook.es,outlook.fr,outlook.hu,outlook.ie,outlook.in,outlook.it,outlook.jp,outlook.kr,outlook.lv,outlook.my,outlook.ph,outlook.pt,outlook.sa,outlook.sg,outlook.sk,outlookpro.net,over-the-rainbow.com,ovpn.to,ovvee.com,owlpic.com,owlymail.com,ownmail.net,ownsyou.de,oxopoha.com,oyu.kr,ozbytes.net.au,ozemail.com.au,ozyl.de,p-banlis.ru,p33.org,p71ce1m.com,pa9e.com,pacbell.net,pachilly.com,pacific-ocean.com,pacific-re.com,pacificwest.com,packersfan.com,pagamenti.tk,pagina.de,pagons.org,paharpurmim.ga,pakadebu.ga,pakistanoye.com,palestinemail.com,paller.cf,pancakemail.com,papa.email.ne.jp,papierkorb.me,paplease.com,para2019.ru,parcel4.net,parkcrestlakewood.xyz,parkjiyoon.com,parlimentpetitioner.tk,parrot.com,parsmail.com,partlycloudy.com,partskyline.com,partynight.at,parvazi.com,passwordmail.com,pastebitch.com,pathfindermail.com,patmedia.net,patonce.com,paulfucksallthebitches.com,pavilionx2.com,pay-mon.com,payperex2.com,payspun.com,pc1520.com,pcmylife.com,pconnections.net,pcpostal.com,pcsrock.com,pcusers.otherinbox.com,pdold.com,pe.hu,peachworld.com,peapz.com,pecdo.com,pecinan.net,pecinan.org,pediatrician.com,pedimed-szczecin.pl,pemail.net,pencalc.xyz,penis.computer,penisgoes.in,penpen.com,peoplepc.com,peopleweb.com,pepbot.com,peppe.usa.cc,pepsi.coms.hk,perfectmail.com,personal-email.ml,personal.ro,personales.com,peterdethier.com,petlover.com,petml.com,petrzilka.net,pettypool.com,pezeshkpour.com,pfui.ru,phaantm.de,phayze.com,phone-elkey.ru,photo-impact.eu,photographer.net,photomark.net,phpbb.uu.gl,phreaker.net,phus8kajuspa.cu.cc,physicist.net,pi.vu,picknameme.fun,pickupman.com,picusnet.com,pidmail.com,pig.pp.ua,pigpig.net,pii.at,piki.si,pimpedupmyspace.com,pinehill-seattle.org,pingir.com,pinoymail.com,pipeline.com,piracha.net,pisem.net,pisls.com,pitaniezdorovie.ru,pivo-bar.ru,pjjkp.com,placemail.online,planet-mail.com,planet-travel.club,planet.nl,planetaccess.com,planetall.com,planetarymotion.net,planetdirect.com,planetearthinter.net,planetmail.com,planetmail.net,planetout.com,plasa.com,playersodds.com,playful.com,pleasenoham.org,plexolan.de,plhk.ru,ploae.com,plusmail.com.br,plutocow.com,plw.me,pm.me,pmail.net,po.bot.nu,pobox.com,pobox.hu,pobox.sk,poczta.fm,podam.pl,poehali-otdihat.ru,poetic.com,poh.pp.ua,pojok.ml,pokemail.net,pokiemobile.com,polacy-dungannon.tk,polandmail.com,polarkingxx.ml,polbox.com,policeoffice.com,politician.com,politikerclub.de,poliusraas.tk,poly-swarm.com,polyfaust.com,polyswarms.com,pooae.com,poofy.org,pookmail.com,pool-sharks.com,poond.com,poopiebutt.club,pop3.xyz,popaccount.com,popesodomy.com,popgx.com,popmail.com,popmail.io,popmailserv.org,popsmail.com,popstar.com,populus.net,porco.cf,porco.ga,porco.gq,porco.ml,portableoffice.com,portugalmail.com,portugalmail.pt,portugalnet.com,positive-thinking.com,post.com,post.cz,post.sk,posta.net,posta.ro,postaccesslite.com,postacin.com,postafree.com,postalmail.biz,postaweb.com,poste.it,postemail.net,posteo.de,postfach2go.de,postinbox.com,postino.ch,postmark.net,postmaster.co.uk,postonline.me,postpro.net,pousa.com,poutineyourface.com,powered.name,powerfan.com,powlearn.com,poy.kr,ppc-e.com,ppetw.com,pqoss.com,praize.com,prazdnik-37.ru,predatorrat.cf,predatorrat.ga,predatorrat.gq,predatorrat.ml,predatorrat.tk,premium-mail.fr,premiumperson.website,premiumservice.com,presidency.com,press.co.jp,priest.com,primabananen.net,primposta.com,primposta.hu,privacy.net,privatdemail.net,privaterelay.appleid.com,privy-mail.com,privy-mail.de,privymail.de,prmail.top,pro-tag.org,pro.hu,probemail.com,procrackers.com,prodigy.net,prodigy.net.mx,proeasyweb.com,profast.top,profilific.com,progetplus.it,programmer.net,programozo.hu,proinbox.com,project-xhabbo.com,project2k.com,projectcl.com,prolaunch.com,promessage.com,prontomail.com,proprietativalcea.ro,propscore.com,protestant.com,proto2mail.com,proton.me,protonmail.ch,protonmail.com,providier.com,provmail.net,proxymail.eu,proxyparking.com,prs7.xyz,prtnx.com,prtz.eu,psh.me,psi.net,psles.com,psoxs.com,psv-supporter.com,psychedelicwarrior.xyz,ptd.net,pterodactyl.email,public.usa.com,publicist.com,puglieisi.com,puji.pro,puk.us.to,pulp-fiction.com,pulpmail.us,pumps-fashion.com,punkass.com,purcell.email,purelogistics.org,purple.flu.cc,purple.igg.biz,purple.nut.cc,purple.usa.cc,pushmojo.com,put2.net,puttanamaiala.tk,putthisinyourspamdatabase.com,pw.flu.cc,pw.igg.biz,pw.islam.igg.biz,pw.nut.cc,pw.r4.dns-cloud.net,pwp.lv,pwrby.com,q.com,q314.net,q5vm7pi9.com,qacquirep.com,qafatwallet.com,qasti.com,qatarmail.com,qbfree.us,qbi.kr,qc.to,qiaua.com,qibl.at,qipmail.net,qiq.us,qis.net,qisdo.com,qisoa.com,qj97r73md7v5.com,qoika.com,qprfans.com,qq.com,qq.my,qrio.com,qs2k.com,qsl.ro,qt1.ddns.net,qtum-ico.com,quackquack.com,quadrafit.com,quakemail.com,qualityservice.com,qudsmail.com,quepasa.com,querydirect.com,quick-mail.club,quick-mail.info,quick-mail.online,quickemail.info,quickemail.top,quickinbox.com,quickmail.best,quickmail.in,quickmail.nl,quickmail.rocks,quickreport.it,quickwebmail.com,quiklinks.com,quikmail.com,qvap.ru,qvy.me,qwest.net,qwestoffice.net,qwfox.com,qwickmail.com,r-o-o-t.com,r0.igg.biz,r2cakes.com,r4.dns-cloud.net,r4nd0m.de,r7.com,r8r4p0cb.com,ra3.us,raakim.com,rabin.ca,rabiot.reisen,racedriver.com,racefanz.com,racingfan.com.au,racingmail.com,radecoratingltd.com,radicalz.com,radiologist.net,raetp9.com,ragingbull.com,rainmail.biz,rainwaterstudios.org,rajeshcon.cf,raketenmann.de,ramail.co.uk,rambler.ru,rancidhome.net,randomail.net,ranmamail.com,rao.kr,raqid.com,rarame.club,rastogi.net,ratt-n-roll.com,rattle-snake.com,ravearena.com,ravemail.co.za,ravemail.com,rawhidefc.org,rawmails.com,rax.la,raxtest.com,razemail.com,razormail.com,rbb.org,rblx.site,rcasd.com,rccgmail.org,rcn.com,rcpt.at,rcs7.xyz,re-gister.com,reagan.com,realemail.net,reality-concept.club,reallyfast.biz,reallymymail.com,realradiomail.com,realtyagent.com,realtyalerts.ca,reborn.com,receiveee.com,recipeforfailure.com,recode.me,reconmail.com,recursor.net,recyclemail.dk,recycler.com,red-mail.info,red-mail.top,redchan.it,reddcoin2.com,reddithub.com,redfeathercrow.com,rediffmail.com,rediffmailpro.com,rednecks.com,redpeanut.com,redseven.de,redsfans.com,reftoken.net,refurhost.com,regbypass.com,regbypass.comsafe-mail.net,reggaefan.com,reggafan.com,registerednurses.com,regspaces.tk,reincarnate.com,rejectmail.com,rejo.technology,reliable-mail.com,religious.com,remail.cf,remail.ga,remarkable.rocks,remote.li,renraku.in,repairman.com,reply.hu,representative.com,reptilegenetics.com,rescueteam.com,resgedvgfed.tk,resolution4print.info,resumemail.com,retkesbusz.nut.cc,revenue.com,revolvingdoorhoax.org,rezai.com,rfc822.org,rgphotos.net,rhombushorizons.com,rhyta.com,riamof.club,richmondhill.com,rickymail.com,ricrk.com,riddermark.de,rifkian.ga,rin.ru,riopreto.com.br,risencraft.ru,risingsuntouch.com,riski.cf,rklips.com,rko.kr,rkomo.com,rma.ec,rmailcloud.com,rmailgroup.in,rmqkr.net,rn.com,rnailinator.com,ro.lt,roadrunner.com,roanokemail.com,robertspcrepair.com,robo3.club,robo3.co,robo3.me,robo3.site,robot-mail.com,robot2.club,robot2.me,rochester.rr.com,rock.com,rocketmail.com,rocketship.com,rockfan.com,rockmail.top,rockmailapp.com,rockmailgroup.com,rodrun.com,rogers.com,rollindo.agency,rome.com,ronnierage.net,rooftest.net,roosh.com,rootfest.net,rosebearmylove.ru,rotaniliam.com,rotfl.com,roughnet.com,row.kr,rowe-solutions.com,royal-soft.net,royal.net,royaldoodles.org,royalgifts.info,royalhost.info,royalmail.top,royalmarket.club,royalmarket.life,royalmarket.online,royalweb.email,rppkn.com,rq6668f.com,rr-0.cu.cc,rr-1.cu.cc,rr-2.cu.cc,rr-3.cu.cc,rr.ccs.pl,rr.com,rrohio.com,rrwbltw.xyz,rstarmail.com,rsub.com,rsvhr.com,rtotlmail.net,rtrtr.com,rubyridge.com,rudymail.ml,ruffrey.com,ruggedinbox.com,rumgel.com,runbox.com,runi.ca,rupayamail.com,ruru.be,rushpost.com,rustydoor.com,ruttolibero.com,ruu.kr,rvb.ro,rvshop.com,rxtx.us,ryanb.com,s-mail.com,s-s.flu.cc,s.bungabunga.cf,s.sa.igg.biz,s0ny.net,s33db0x.com,s51zdw001.com,sa.igg.biz,sabreshockey.com,sabrestlouis.com,sacbeemail.com,sach.ir,sackboii.com,safaat.cf,safarimail.com,safe-mail.net,safe-planet.com,safermail.info,safersignup.com,safersignup.de,safetymail.info,safetypost.de,safrica.com,sagra.lu,saharanightstempe.com,saigonmail.us,sailormoon.com,saintly.com,saintmail.net,saitama.email.ne.jp,sale-sale-sale.com,salehi.net,salesperson.net,salmeow.tk,salonyfryzjerskie.info,samerica.com,samilan.net,sammimail.com,samsclass.info,san.rr.com,sandcars.net,sandelf.de,sandwhichvideo.com,sanfinder.com,sanfranmail.com,sanim.net,sanook.com,sanstr.com,sapo.pt,sapya.com,sasa22.usa.cc,sast.ro,sativa.ro.org,satukosong.com,satx.rr.com,saudia.com,sausen.com,savelife.ml,savetimeerr.fun,sawoe.com,sayhi.net,saynotospams.com,sazhimail.ooo,sbcglobal.net,sburningk.com,sc.rr.com,scandalmail.com,scarlet.be,scatmail.com,scay.net,scbox.one.pl,schachrol.com,schafmail.de,schizo.com,schmeissweg.tk,schmid.cf,schoolemail.com,schoolmail.com,schoolsucks.com,schrott-email.de,schweiz.org,sci.fi,science.com.au,scientist.com,scifianime.com,scotlandmail.com,scottishmail.co.uk,scubadiving.com,sd3.in,sdf.org,sdfghyj.tk,seanet.com,searchwales.com,searzh.com,sebil.com,secmail.pw,secret-police.com,secretary.net,secretemail.de,secretservices.net,sector2.org,secure-fb.com,secure-mail.biz,secure-mail.cc,secure-mail.cn,secured-link.net,securehost.com.es,secureinvox.com,secureserver.usa.cc,seductive.com,seekapps.com,seekstoyboy.com,seguros.com.br,sejaa.lv,selfdestructingmail.com,selfdestructingmail.org,sellcow.net,semut-kecil.com,semutkecil.com,send-email.org,send.hu,send22u.info,sendbananas.website,sendfree.org,sendingspecialflyers.com,sendme.cz,sendspamhere.com,sendto.cf,senseless-entertainment.com,sent.com,sentrismail.com,serga.com.ar,servemymail.com,server.ms,servermaps.net,service4.ml,services391.com,sesmail.com,sex.dns-cloud.net,sexforswingers.com,sexical.com,sexmagnet.com,sexyalwasmi.top,sezet.com,seznam.cz,sfamo.com,sfgov.net,sfmail.top,sfr.fr,shahweb.net,shaniastuff.com,shapoo.ch,sharedmailbox.org,sharewaredevelopers.com,sharklasers.com,sharmaweb.com,shaw.ca,shayzam.net,she.com,shhmail.com,shhuut.org,shieldedmail.com,shieldemail.com,shiftmail.com,shinnemo.com,shipfromto.com,shiphazmat.org,shipping-regulations.com,shippingterms.org,shit.dns-cloud.net,shit.dnsabr.com,shitaway.cf,shitaway.flu.cc,shitaway.ga,shitaway.gq,shitaway.igg.biz,shitaway.ml,shitaway.nut.cc,shitaway.tk,shitaway.usa.cc,shitmail.de,shitmail.me,shitmail.org,shitposting.agency,shitware.nl,shmeriously.com,shockinmytown.cu.cc,shonky.info,shootmail.com,shop4mail.net,shoproyal.net,shortmail.me,shortmail.net,shotgun.hu,shotmail.ru,showme.social,showslow.de,shrib.com,shuf.com,shuffle.email,shurs.xyz,shut.name,shut.ws,sialkotcity.com,sialkotian.com,sialkotoye.com,sibmail.com,sidelka-mytischi.ru,siftportal.ru,sify.com,sikux.com,siliwangi.ga,silkroad.net,silvercoin.life,sim-simka.ru,simplebox.email,simpleemail.in,simpleemail.info,simpleitsecurity.info,simplemail.in,simplemail.top,simscity.cf,sin.cl,sina.cn,sina.com,sinamail.com,sinda.club,sinema.ml,sinfiltro.cl,singapore.com,singlespride.com,singmail.com,singnet.com.sg,sinnlos-mail.de,sino.tw,siteposter.net,sizzlemctwizzle.com,sjuaq.com,skafan.com,skeefmail.com,skim.com,skizo.hu,skrx.tk,sky-inbox.com,sky-mail.ga,sky-ts.de,sky.com,sky.dnsabr.com,skymailapp.com,skymailgroup.com,skynet.be,slamdunkfan.com,slapsfromlastnight.com,slaskpost.se,slave-auctions.net,slingshot.com,slippery.email,slipry.net,slo.net,slopsbox.com,slothmail.net,slotter.com,slowfoodfoothills.xyz,slowslow.de,slsrs.ru,slu21svky.com,slushmail.com,slutty.horse,sly.io,smailpro.com,smallker.tk,smap.4nmv.ru,smapfree24.com,smapfree24.de,smapfree24.eu,smapfree24.info,smapfree24.org,smapxsmap.net,smart-email.me,smart-mail.info,smart-mail.top,smartbusiness.me,smashmail.de,smellfear.com,smellrear.com,smellypotato.tk,smileyface.comsmithemail.net,smoothmail.com,smoug.net,smsforum.ro,smtp99.com,smwg.info,snail-mail.net,snail-mail.ney,snakebite.com,snakemail.com,sndt.net,sneakemail.com,sneakmail.de,snet.net,snip.net,sniper.hu,snkmail.com,snoopymail.com,snowboarding.com,snowdonia.net,socal.rr.com,socamail.com,socceramerica.net,soccermail.com,soccermomz.com,social-mailer.tk,socialfurry.org,socialworker.net,sociologist.com,sofimail.com,sofort-mail.de,sofortmail.de,softbank.ne.jp,softhome.net,softkey-office.ru,softpls.asia,sogetthis.com,sohu.com,sohu.net,soioa.com,soisz.com,sol.dk,solar-impact.pro,soldier.hu,solution4u.com,solvemail.info,solventtrap.wiki,songwriter.net,sonshi.cf,soodmail.com,soodomail.com,soodonims.com,soon.com,soon.it,sosmanga.com,soulfoodcookbook.com,sp.nl,spa.com,space-bank.com,space-man.com,space-ship.com,space-travel.com,space.com,spaceart.com,spacebank.com,spacebazzar.ru,spacemart.com,spacetowns.com,spacewar.com,spaereplease.com,spainmail.com,spam-be-gone.com,spam.2012-2016.ru,spam.care,spam.flu.cc,spam.igg.biz,spam.la,spam.nut.cc,spam.org.es,spam.su,spam.usa.cc,spam4.me,spamail.de,spamarrest.com,spamavert.com,spambob.com,spambob.net,spambob.org,spambog.com,spambog.de,spambog.net,spambog.ru,spambooger.com,spambox.info,spambox.irishspringrealty.com,spambox.me,spambox.org,spambox.us,spambox.xyz,spamcannon.com,spamcannon.net,spamcero.com,spamcon.org,spamcorptastic.com,spamcowboy.com,spamcowboy.net,spamcowboy.org,spamday.com,spamdecoy.net,spamex.com,spamfighter.cf,spamfighter.ga,spamfighter.gq,spamfighter.ml,spamfighter.tk,spamfree.eu,spamfree24.com,spamfree24.de,spamfree24.eu,spamfree24.info,spamfree24.net,spamfree24.org,spamgoes.in,spamgourmet.com,spamgourmet.net,spamgourmet.org,spamherelots.com,spamhereplease.com,spamhole.com,spamify.com,spaminator.de,spamkill.info,spaml.com,spaml.de,spamlot.net,spammedic.com,spammotel.com,spamobox.com,spamoff.de,spamsalad.in,spamserver.cf,spamserver.ml,spamserver.tk,spamslicer.com,spamspameverywhere.org,spamspot.com,spamstack.net,spamthis.co.uk,spamthisplease.com,spamtrail.com,spamtrap.co,spamtrap.ro,spamtroll.net,spamwc.cf,spamwc.de,spamwc.ga,spamwc.gq,spamwc.ml,spartapiet.com,spazmail.com,speed.1s.fr,speedemail.net,speedgaus.net,speedpost.net,speedrules.com,speedrulz.com,speedy.com.ar,sperma.cf,spikio.com,spils.com,spindl-e.com,spinfinder.com,spoofmail.de,sportemail.com,sportsmail.com,sporttruckdriver.com,spr.io,spray.no,spray.se,sprintmail.com,spritzzone.de,sprynet.com,spybox.de,spymac.com,sqoai.com,squizzy.de,squizzy.eu,squizzy.net,sr.ro.lt,sraka.xyz,srilankan.net,sroff.com,sry.li,ssgjylc1013.com,ssl.tls.cloudns.asia,ssoia.com,st-davids.net,stade.fr,stalag13.com,stanfordujjain.com,stargateradio.com,starlight-breaker.net,starmail.co.za,starmail.com,starmail.org,starmedia.com,starplace.com,starpower.net,starspath.com,start.com.au,startfu.com,starting-point.com,startkeys.com,startrekmail.com,statdvr.com,stathost.net,statiix.com,stattech.info,stealthmail.com,stealthypost.org,steam-area.ru,steambot.net,steamprank.com,stelliteop.info,stevesmusclecars.arcoxmail.com,stexsy.com,stg.malibucoding.com,stinkefinger.net,stny.rr.com,stockracer.com,stones.com,stop-my-spam.cf,stop-my-spam.com,stop-my-spam.ga,stop-my-spam.ml,stop-my-spam.pp.ua,stop-my-spam.tk,stopdropandroll.com,stophabbos.tk,storegmail.com,storiqax.com,storiqax.top,storj99.com,storj99.top,storksite.com,stpetersandstpauls.xyz,streamfly.biz,streamfly.link,streetwisemail.com,stribmail.com,stromox.com,strompost.com,strongguy.com,stuckmail.com,studentcenter.org,studiopolka.tokyo,stuffmail.de,stumpfwerk.com,stx.rr.com,stylist-volos.ru,subnetwork.com,subram.com,suburbanthug.com,suckmyd.com,sucknfuck.site,sudanmail.net,suddenlinkmail.com,sudolife.me,sudolife.net,sudomail.biz,sudomail.com,sudomail.net,sudoverse.com,sudoverse.net,sudoweb.net,sudoworld.com,sudoworld.net,suhabi.com,suioe.com,suisse.org,sukhumvit.net,sullivanemail.net,sunpoint.net,sunrise-sunset.com,sunsgame.com,sunumail.sn,super-auswahl.de,superdada.com,supere.ml,supereva.it,supergreatmail.com,supermail.ru,supermailer.jp,superplatyna.com,superrito.com,superstachel.de,surat.com,suremail.info,surf3.net,surfree.com,surfy.net,surgical.net,surimail.com,surveyrnonkey.net,survivormail.com,susi.ml,sute.jp,svk.jp,svxr.org,swbell.net,sweb.cz,swedenmail.com,sweetpotato.ml,sweetxxx.de,swift10minutemail.com,swiftdesk.com,swingeasyhithard.com,swingfan.com,swipermail.zzn.com,swirve.com,swissinfo.org,swissmail.com,swissmail.net,switchboardmail.com,switzerland.org,swva.net,sx172.com,sxylc113.com,sylvannet.com,sympatico.ca,symphonyresume.com,synonyme.email,syom.com,syriamail.com,syujob.accountants,szerz.com,szucsati.net,t-online.de,t-online.hu,t24e4p7.com,t2mail.com,t3t97d1d.com,tafmail.com,tafoi.gr,taglead.com,tagmymedia.com,tagyourself.com,takedowns.org,takuyakimura.com,talk21.com,talkcity.com,talkinator.com,talktalk.co.uk,talktalk.net,tamil.com,tampabay.rr.com,tanukis.org,taosjw.com,tapchicuoihoi.com,tarzanmail.cf,tarzanmail.ml,taskforcetech.com,tastyemail.xyz,tatanova.com,taylorventuresllc.com,tb-on-line.net,tbwt.com,tdf-illustration.com,tds.net,teachers.org,teamdiscovery.com,teamspeak3.ga,teamtulsa.net,tech-center.com,tech4peace.org,tech5group.com,techemail.com,techgroup.me,techgroup.top,techie.com,techmail.info,technisamail.co.za,techno5.club,technologist.com,technoproxy.ru,techpointer.com,techscout.com,techseek.com,techspot.com,teenagedirtbag.com,teerest.com,teewars.org,tefl.ro,telebot.com,telebot.net,telecomix.pl,teleline.es,telenet.be,teleosaurs.xyz,telerymd.com,teleserve.dynip.com,teletu.it,teleworm.com,teleworm.us,telinco.net,telkom.net,tellos.xyz,telpage.net,telstra.com,telus.net,temp-mail.com,temp-mail.de,temp-mail.live,temp-mail.ml,temp-mail.net,temp-mail.org,temp-mail.ru,temp-mails.com,temp.emeraldwebmail.com,temp.headstrong.de,temp1.club,temp15qm.com,temp2.club,tempail.com,tempalias.com,tempcloud.info,tempe-mail.com,tempemail.biz,tempemail.co.za,tempemail.com,tempemail.net,tempemail.org,tempemails.io,tempinbox.co.uk,tempinbox.com,tempmail.co,tempmail.de,tempmail.eu,tempmail.it,tempmail.pro,tempmail.space,tempmail.us,tempmail.win,tempmail2.com,tempmailapp.com,tempmaildemo.com,tempmailer.com,tempmailer.de,tempmails.cf,tempmails.gq,tempomail.fr,temporamail.com,temporarily.de,temporarioemail.com.br,temporary-email.com,temporary-email.world,temporaryemail.net,temporaryemail.us,temporaryforwarding.com,temporaryinbox.com,temporarymailaddress.com,tempr.email,tempsky.com,tempthe.net,tempymail.com,temtulsa.net,tenchiclub.com,tenderkiss.com,tennismail.com,ternaklele.ga,terra.cl,terra.com,terra.com.ar,terra.com.br,terra.es,test.com,test.de,testudine.com,tfanus.com.er,tfwno.gf,tfz.net,thai.com,thaimail.com,thaimail.net,thanksnospam.info,thankyou2010.com,thc.st,the-african.com,the-airforce.com,the-aliens.com,the-american.com,the-animal.com,the-army.com,the-astronaut.com,the-beauty.com,the-big-apple.com,the-biker.com,the-boss.com,the-brazilian.com,the-canadian.com,the-canuck.com,the-captain.com,the-chinese.com,the-country.com,the-cowboy.com,the-davis-home.com,the-dutchman.com,the-eagles.com,the-englishman.com,the-fastest.net,the-first.email,the-fool.com,the-frenchman.com,the-galaxy.net,the-genius.com,the-gentleman.com,the-german.com,the-gremlin.com,the-hooligan.com,the-italian.com,the-japanese.com,the-lair.com,the-madman.com,the-mailinglist.com,the-marine.com,the-master.com,the-mexican.com,the-ministry.com,the-monkey.com,the-newsletter.net,the-pentagon.com,the-police.com,the-prayer.com,the-professional.com,the-quickest.com,the-russian.com,the-snake.com,the-spaceman.com,the-stock-market.com,the-student.net,the-whitehouse.net,the-wild-west.com,the18th.com,theaperturelabs.com,theaperturescience.com,theaviors.com,thebearshark.com,thebest4ever.com,thecloudindex.com,thecoolguy.com,thecricket.co.za,thecriminals.com,thediamants.org,thedoghousemail.com,thedorm.com,theeasymail.com,theend.hu,theglobe.com,thegolf.co.za,thegolfcourse.com,thegooner.com,theheadoffice.com,thelanddownunder.com,thelightningmail.net,thelimestones.com,themailpro.net,thembones.com.au,themegreview.com,themillionare.net,themostemail.com,theoffice.net,theopposition.club,theplate.com,theplug.org,thepokerface.com,thepostmaster.net,thepub.co.za,theraces.com,theracetrack.com,therapist.net,thereddoors.online,theroyalweb.club,therugby.co.za,thescrappermovie.com,theskymail.com,thespawningpool.com,thestreetfighter.com,theteastory.info,theteebox.com,thetrash.email,thewatercooler.com,thewebpros.co.uk,thewizzard.com,thewizzkid.com,thex.ro,thezhangs.net,thietbivanphong.asia,thirdage.com,this-is-a-free-domain.usa.cc,thisgirl.com,thisisnotmyrealemail.com,thismail.net,thisurl.website,thnikka.com,thoas.ru,thoic.com,thraml.com,thrma.com,throam.com,thrott.com,throwam.com,throwawayemail.com,throwawayemailaddress.com,throwawaymail.com,throya.com,thrubay.com,thtt.us,thundermail.com,thunkinator.org,thxmate.com,tic.ec,ticket-please.ga,tidni.com,tijdelijke-email.nl,tijdelijkmailadres.nl,tilien.com,timein.net,timekr.xyz,timgiarevn.com,timkassouf.com,tin.it,tinoza.org,tinyurl24.com,tipsb.com,tiscali.at,tiscali.be,tiscali.co.uk,tiscali.it,tiscali.lu,tiscali.se,tittbit.in,tiv.cc,tizi.com,tkcity.com,tkitc.de,tkmy88m.com,tko.kr,tlpn.org,tls.cloudns.asia,tm.slsrs.ru,tm2mail.com,tmail.com,tmail.ws,tmailcloud.net,tmailinator.com,tmails.net,tmailservices.com,tmo.kr,tmpeml.info,tmpjr.me,tmpmail.net,tmpmail.org,tntitans.club,toddsbighug.com,toi.kr,toiea.com,toke.com,tokem.co,tokenmail.de,tokuriders.club,tokyo.com,tom.com,tonymanso.com,tool.pp.ua,toolsource.com,toomail.biz,toon.ml,toothandmail.com,toothfairy.com,top-mailer.net,top-mails.net,top-shop-tovar.ru,top101.de,top1mail.ru,top1post.ru,top9appz.info,topchat.com,topgamers.co.uk,topikt.com,topinrock.cf,topletter.com,topmail.com.ar,topmailer.info,topmall.com,topmall.info,topmall.org,topnet.tn,topofertasdehoy.com,topplayers.fun,topranklist.de,toprumours.com,topsurf.com,topteam.bg,torchmail.com,tormail.net,tormail.org,torontomail.com,toss.pw,tosunkaya.com,tot.net,totalmusic.net,totalvista.com,totesmail.com,toughguy.net,tp-qa-mail.com,tpg.com.au,tpg24.com,tqoai.com,tqosi.com,tracciabi.li,tradermail.info,tralalajos.ga,tralalajos.gq,tralalajos.ml,tralalajos.tk,tranceversal.com,trash-amil.com,trash-mail.at,trash-mail.cf,trash-mail.com,trash-mail.de,trash-mail.ga,trash-mail.gq,trash-mail.ml,trash-mail.net,trash-mail.tk,trash-me.com,trash2009.com,trash2010.com,trash2011.com,trash247.com,trash4.me,trashcanmail.com,trashdevil.com,trashdevil.de,trashemail.de,trashemails.de,trashinbox.com,trashmail.at,trashmail.com,trashmail.de,trashmail.gq,trashmail.io,trashmail.me,trashmail.net,trashmail.org,trashmail.ws,trashmailer.com,trashymail.com,trashymail.net,trasz.com,travala10.com,travel.li,trayna.com,trbvm.com,trbvn.com,trbvo.com,trebusinde.cf,trebusinde.ml,trend-maker.ru,trendingtopic.cl,triad.rr.com,trialbytrivia.com,trialmail.de,trickmail.net,trillianpro.com,trimsj.com,tritium.net,trixtrux1.ru,trmailbox.com,trollproject.com,trommlergroup.com,tropicalbass.info,tropicalstorm.com,truckers.com,truckerz.com,truckracer.com,trump.flu.cc,trump.igg.biz,trungtamtoeic.com,trust-me.com,tryalert.com,tryninja.io,tryzoe.com,ts-by-tashkent.cf,ts-by-tashkent.ga,ts-by-tashkent.gq,ts-by-tashkent.ml,ts-by-tashkent.tk,tsamail.co.za,ttml.co.in,ttszuo.xyz,tualias.com,tucumcaritonite.com,tug.minecraftrabbithole.com,tunisiamail.com,turkey.com,turoid.com,turual.com,tutye.com,tvcablenet.be,tvchd.com,tverya.com,tvstar.com,twc.com,twcny.rr.com,tweakly.net,twinmail.de,twinstarsmail.com,twkly.ml,twocowmail.net,twoweirdtricks.com,tx.rr.com,txt7e99.com,txtadvertise.com,tycoonmail.com,tyhe.ro,tyldd.com,typemail.com,tz.tz,u14269.gq,u14269.ml,u2club.com,u6lvty2.com,ua3jx7n0w3.com,uacro.com,uae.ac,uaemail.com,ubbi.com,ubbi.com.br,uber-mail.com,ubismail.net,ubm.md,uboot.com,ubuntu.dns-cloud.net,ubuntu.dnsabr.com,ucche.us,ucupdong.ml,ucylu.com,uemail99.com,ufacturing.com,ufgqgrid.xyz,uggsrock.com,ugimail.net,uguuchantele.com,uha.kr,uhhu.ru,uikd.com,ujijima1129.gq,uk.flu.cc,uk.igg.biz,uk.nut.cc,uk.to,uk2k.com,uk2net.com,uk7.net,uk8.net,ukbuilder.com,ukcool.com,ukdreamcast.com,ukexample.com,ukmail.com,ukmail.org,ukmax.com,uko.kr,ukr.net,uku.co.uk,ultapulta.com,ultra.fyi,ultrada.ru,ultrapostman.com,umail.net,umail2.com,ummah.org,umpire.com,umy.kr,unbounded.com,undo.it,unforgettable.com,uni.de,unids.com,unihome.com,unimark.org,unit7lahaina.com,universal.pt,unlimit.com,unmail.ru,uno.ee,uno.it,unofree.it,unomail.com,unseen.is,uny.kr,uol.com.ar,uol.com.br,uol.com.co,uol.com.mx,uol.com.ve,uole.com,uole.com.ve,uolmail.com,uomail.com,upcmail.ie,upf.org,upliftnow.com,uplipht.com,uploadnolimit.com,upy.kr,urbanchickencoop.com,urbismail.com,ureach.com,urfey.com,urfunktion.se,urgentmail.biz,urhen.com,uroid.com,us.af,us.to,usa.cc,usa.com,usa.net,usaaccess.net,usako.net,usanetmail.com,uscaves.com,used-product.fr,usermail.com,username.e4ward.com,ushijima1129.cf,ushijima1129.ga,ushijima1129.gq,ushijima1129.ml,ushijima1129.tk,usit.net,usma.net,usmc.net,uswestmail.net,utiket.us,utoo.email,utooemail.com,uu.gl,uu.net,uu2.ovh,uvy.kr,uwork4.us,uyhip.com,uymail.com,uyu.kr,uyuyuy.com,uz6tgwk.com,v-sexi.com,vaasfc4.tk,vaati.org,vaffanculo.gq,vahoo.com,valemail.net,valhalladev.com,valuemailers.com,vanacken.xyz,vankin.de,varbizmail.com,vba.kr,vcbox.pro,vcmail.com,vctel.com,vda.ro,vdig.com,veanlo.com,vektik.com,velnet.co.uk,velocall.com,venompen.com,verdejo.com,verifymail.win,verizon.net,verizonmail.com,vermutlich.net,veryday.ch,veryday.eu,veryday.info,veryfast.biz,veryrealemail.com,veryspeedy.net,vesa.pw,vfemail.net,vickaentb.cf,vickaentb.ga,vickaentb.gq,vickaentb.ml,vickaentb.tk,victime.ninja,victoriantwins.com,vidchart.com,videotron.ca,viditag.com,viewcastmedia.com,viewcastmedia.net,viewcastmedia.org,vihost.ml,vihost.tk,vikingsonly.com,vimail24.com,vinernet.com,violinmakers.co.uk,vip-mail.tk,vip.gr,vip.qq.com,vip.sina.com,vipmail.name,vipmail.pw,vipmail.ru,vipsohu.net,vipxm.net,viralplays.com,virgilio.it,virgin.net,virginmedia.co.uk,virginmedia.com,viroleni.cu.cc,virtual-email.com,virtualactive.com,virtualemail.info,virtualmail.com,visa.coms.hk,visa.dns-cloud.net,visa.dnsabr.com,visitmail.com,visitweb.com,visto.com,vistomail.com,visualcities.com,vivavelocity.com,vivianhsu.net,vixletdev.com,vjmail.com,vjtimail.com,vkcode.ru,vlmail.com,vmail.co.il,vmail.me,vmailcloud.com,vmailing.info,vmailpro.net,vmani.com,vmpanda.com,vncoders.net,vnedu.me,vnn.vn,voidbay.com,voila.fr,volcanomail.com,voltaer.com,volvo-xc.ml,volvo-xc.tk,vomoto.com,voo.be,vorga.org,vote-democrats.com,vote-hillary.com,vote-republicans.com,vote4gop.org,votenet.com,votiputox.org,voxelcore.com,vp.ycare.de,vpn.st,vpn33.top,vps30.com,vps911.net,vpslists.com,vpsorg.pro,vpsorg.top,vpstraffic.com,vr9.com,vradportal.com,vremonte24-store.ru,vrmtr.com,vrsim.ir,vs904a6.com,vsimcard.com,vssms.com,vtxmail.us,vubby.com,vuemail.com,vuiy.pw,vzlom4ik.tk,vztc.com,w-asertun.ru,w22fe21.com,w3.to,w3internet.co.uk,w4i3em6r.com,w6mail.com,w918bsq.com,w9f.de,w9y9640c.com,wahoye.com,wakingupesther.com,walala.org,wales2000.net,walkmail.net,walkmail.ru,walla.co.il,walla.com,wallm.com,wam.co.za,wamail.net,wanadoo.co.uk,wanadoo.es,wanadoo.fr,warau-kadoni.com,warmmail.com,warpmail.net,warrior.hu,wasd.10mail.org,wasdfgh.cf,wasdfgh.ga,wasdfgh.gq,wasdfgh.ml,wasdfgh.tk,wasimismail.com,wasteland.rfc822.org,watch-harry-potter.com,watchever.biz,watchfull.net,watchironman3onlinefreefullmovie.com,waumail.com,wawi.es,wazabi.club,wbdet.com,wbdev.tech,wbml.net,wearab.net,weave.email,web-contact.info,web-emailbox.eu,web-experts.net,web-ideal.fr,web-mail.com.ar,web-mail.de,web-mail.pp.ua,web-police.com,web.de,web2mailco.com,webarnak.fr.eu.org,webave.com,webcammail.com,webcity.ca,webcontact-france.eu,webdream.com,webemail.me,webgmail.info,webinbox.com,webindia123.com,webjump.com,webm4il.in,webm4il.info,webmail.bellsouth.net,webmail.co.yu,webmail.co.za,webmail.hu,webmail24.to,webmail24.top,webmails.com,webmails.top,webmeetme.com,webname.com,webprogramming.com,websecuremail.com,webstable.net,webstation.com,websurfer.co.za,webtempmail.online,webtopmail.com,webtrip.ch,webuser.in,wee.my,weedmail.com,weekmail.com,weekonline.com,wef.gr,wefjo.grn.cc,weg-werf-email.de,wegas.ru,wegwerf-email-addressen.de,wegwerf-email-adressen.de,wegwerf-email.at,wegwerf-email.de,wegwerf-email.net,wegwerf-emails.de,wegwerfadresse.de,wegwerfemail.com,wegwerfemail.de,wegwerfemail.info,wegwerfemail.net,wegwerfemail.org,wegwerfemailadresse.com,wegwerfmail.de,wegwerfmail.info,wegwerfmail.net,wegwerfmail.org,wegwerpmailadres.nl,wegwrfmail.de,wegwrfmail.net,wegwrfmail.org,wehshee.com,welikecookies.com,welsh-lady.com,wem.com,wemel.top,westnet.com.au,wetrainbayarea.com,wetrainbayarea.org,wfgdfhj.tk,wg0.com,wh4f.org,whale-mail.com,whartontx.com,whatiaas.com,whatifanalytics.com,whatpaas.com,whatsaas.com,wheelweb.com,whiffles.org,whipmail.com,whitebot.ru,whoever.com,whoopymail.com,whopy.com,whtjddn.33mail.com,whyspam.me,wi.rr.com,wibblesmith.com,wickedmail.com,wickmail.net,wideopenwest.com,widget.gg,wierie.tk,wiki.8191.at,wil.kr,wildblue.net,wildmail.com,wilemail.com,willhackforfood.biz,willselfdestruct.com,wimsg.com,windowslive.com,windrivers.net,windstream.net,winemaven.in,winemaven.info,winfreegifts.xyz,wingnutz.com,winmail.com.au,winning.com,wins.com.br,wishan.net,witty.com,wiz.cc,wiz2.site,wkbwmail.com,wlist.ro,wmail.cf,wmail.club,woh.rr.com,wokcy.com,wolf-web.com,wolfmission.com,wolfsmail.ml,wolfsmail.tk,wolfsmails.tk,wollan.info,wombles.com,wonder-net.com,wongfaye.com,wooow.it,worker.com,workflowy.cn,workflowy.top,workmail.co.za,workmail.com,worldemail.com,worldmailer.com,worldnet.att.net,worldspace.link,wormseo.cn,wosaddict.com,wouldilie.com,wovz.cu.cc,wow.com,wowgirl.com,wowmail.com,wowway.com,wp.pl,wpg.im,wptamail.com,wr9v6at7.com,wralawfirm.com,wrestlingpages.com,wrexham.net,writeme.com,writeme.us,writemeback.com,wronghead.com,wrongmail.com,ws.gy,wtvhmail.com,wudet.men,wupics.com,wuzup.net,wuzupmail.net,wwdg.com,www.bccto.com,www.bccto.me,www.com,www.e4ward.com,www.gishpuppy.com,www.live.co.kr.beo.kr,www.mailinator.com,www.redpeanut.com,www2000.net,wwwnew.eu,wx88.net,wxnw.net,wxs.net,wyrm.supernews.com,wyvernia.net,wzukltd.com,x-mail.net,x-networks.net,x.ip6.li,x1x.spb.ru,x1x22716.com,x24.com,x4y.club,x5a9m8ugq.com,x5g.com,x8h8x941l.com,xagloo.co,xagloo.com,xcode.ro,xcodes.net,xcompress.com,xcpy.com,xemaps.com,xents.com,xgmailoo.com,xing886.uu.gl,xjoi.com,xl.cx,xlgaokao.com,xmail.com,xmaily.com,xmastime.com,xmsg.com,xn--9kq967o.com,xoom.com,xoommail.com,xost.us,xoxox.cc,xoxy.net,xperiae5.com,xpressmail.zzn.com,xrho.com,xs4all.nl,xsmail.com,xtra.co.nz,xuno.com,xvx.us,xwaretech.com,xwaretech.info,xwaretech.net,xww.ro,xx-9.tk,xxhamsterxx.ga,xxlocanto.us,xxolocanto.us,xxqx3802.com,xy9ce.tk,xyzfree.net,xzapmail.com,xzsok.com,y.bcb.ro,y.email.ne.jp,y59.jp,y7mail.com,ya.ru,ya.yomail.info,yada-yada.com,yadavnaresh.com.np,yaho.com,yahoo.ca,yahoo.cn,yahoo.co.id,yahoo.co.in,yahoo.co.jp,yahoo.co.kr,yahoo.co.nz,yahoo.co.th,yahoo.co.uk,yahoo.com,yahoo.com.ar,yahoo.com.asia,yahoo.com.au,yahoo.com.br,yahoo.com.cn,yahoo.com.es,yahoo.com.hk,yahoo.com.is,yahoo.com.malaysia,yahoo.com.mx,yahoo.com.my,yahoo.com.ph,yahoo.com.ru,yahoo.com.sg,yahoo.com.tw,yahoo.com.vn,yahoo.de,yahoo.dk,yahoo.es,yahoo.fr,yahoo.gr,yahoo.ie,yahoo.in,yahoo.it,yahoo.jp,yahoo.om,yahoo.ro,yahoo.ru,yahoo.se,yahoofs.com,yahooproduct.net,yalla.com,yalla.com.lb,yalook.com,yam.com,yandere.cu.cc,yandex.com,yandex.ru,yanet.me,yapost.com,yapped.net,yaqp.com,yarnpedia.ga,yasser.ru,yawmail.com,ybb.ne.jp,ycare.de,yclub.com,ycn.ro,ye.vc,yeah.net,yebox.com,yedi.org,yehaa.com,yehey.com,yellow.flu.cc,yellow.igg.biz,yemenmail.com,yentzscholarship.xyz,yep.it,yepmail.net,yeppee.net,yertxenon.tk,yesaccounts.net,yesbox.net,yevme.com,ygm.com,ygroupvideoarchive.com,ygroupvideoarchive.net,yhg.biz,yifan.net,yk20.com,ymail.com,ymail.net,ymail.org,ymail4.com,ynmrealty.com,ynnmail.com,yodx.ro,yogamaven.com,yogotemail.com,yomail.info,yoo.ro,yop.ze.cx,yopmail.com,yopmail.fr,yopmail.gq,yopmail.info,yopmail.net,yopmail.org,yopmail.pp.ua,yopolis.com,yordanmail.cf,yoru-dea.com,you-spam.com,you.e4ward.com,youareadork.com,youcankeepit.info,yougotgoated.com,youmail.ga,youmailr.com,youmails.online,youneedmore.info,youporn.flu.cc,youporn.igg.biz,youporn.usa.cc,youpy.com,your-house.com,yourdomain.com,yourewronghereswhy.com,yourinbox.com,yourlms.biz,yourlover.net,yourname.ddns.org,yourname.freeservers.com,yournightmare.com,yours.com,yourspamgoesto.space,yourssincerely.com,yoursubdomain.findhere.com,yoursubdomain.zzn.com,yourteacher.net,yourtube.ml,yourwap.com,yourweb.email,youvegotmail.net,youzend.net,ypmail.webarnak.fr.eu.org,yroid.com,yspend.com,yugasandrika.com,yui.it,yuoia.com,yuuhuu.net,yuurok.com,yx.dns-cloud.net,yx48bxdv.ga,yxzx.net,yy-h2.nut.cc,yyhmail.com,yyj295r31.com,yyolf.net,yytv.ddns.net,z-o-e-v-a.ru,z0d.eu,z1p.biz,z7az14m.com,z86.ru,zahadum.com,zahav.net.il,zain.site,zainmax.net,zaktouni.fr,zamge.com,zane.rocks,zarabotokdoma11.ru,zasod.com,zasve.info,zavio.nl,zaym-zaym.ru,zchatz.ga,zcities.com,zdenka.net,zdfpost.net,zdnetmail.com,ze.cx,ze.gally.jp,ze.tc,zebins.com,zebins.eu,zebra.email,zeeks.com,zeepost.nl,zehnminuten.de,zehnminutenmail.de,zensearch.net,zep-hyr.com,zepp.dk,zeta-telecom.com,zetmail.com,zexeet9i5l49ocke.ga,zfymail.com,zhaowei.net,zhcne.com,zhorachu.com,zhouemail.510520.org,ziggo.nl,zik.dj,zionweb.org,zip.net,zipido.com,ziplink.net,ziplip.com,zipmail.com,zipmail.com.br,zipmax.com,zipo1.gq,zippiex.com,zippymail.in,zippymail.info,zipsendtest.com,zipzaps.de,ziyap.com,zlmsl0rkw0232hph.gq,zmail.info.tm,zmail.ru,zoaxe.com,zoemail.com,zoemail.net,zoemail.org,zoetropes.org,zoho.com,zombie-hive.com,zombo.flu.cc,zombo.igg.biz,zombo.nut.cc,zomg.info,zonnet.nl,zoominternet.net,zoqqa.com,zoutlook.com,zsero.com,zubee.com,zumpul.com,zuvio.com,zuzzurello.com,zwallet.com,zxcv.com,zxcvbnm.com,zxcxc.com,zybermail.com,zydecofan.com,zzi.us,zzn.com,zzom.co.uk,zzom.co.uk0-mail.com}'::text[]);
INSERT INTO lead_enrich.webmail_domain (domain, shipped)
SELECT unnest('{139.com,189.cn,bbox.fr,cegetel.net,gmail,gmail.con,gmail.fr,gmailcom,gmaill.com,gmil.com,gmx.ch,live.in,op.pl,posteo.de,scarlet.be,sohu.com,topnet.tn,xs4all.nl,ziggo.nl}'::text[]), true
ON CONFLICT (domain) DO UPDATE SET shipped = true;

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

/* --- the right to be forgotten (issue 12) --- */

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

/* --- cheap enqueue (issue 11) --- */

/*
 * New leads go to shared memory and the worker makes them durable
 * (src/intake.c); archived leads are not enqueued, a lead made active
 * again is.  The triggers are installed again with their sixth argument
 * (the active column), and where automatic mode started is recorded.
 */
CREATE FUNCTION lead_enrich.intake()
RETURNS trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'lead_enrich_enqueue';
REVOKE ALL ON FUNCTION lead_enrich.intake() FROM PUBLIC;

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
 */
CREATE OR REPLACE FUNCTION lead_enrich.sync_triggers()
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
BEGIN
	SELECT * INTO c FROM lead_enrich.config;
	attached := FOUND;
	was_auto := attached AND EXISTS (SELECT 1 FROM pg_trigger tg
								  WHERE tg.tgrelid = c.lead_table AND tg.tgname = 'lead_enrich_enqueue_insert'
									AND tg.tgfoid IN ('lead_enrich.enqueue()'::regprocedure,
													  'lead_enrich.intake()'::regprocedure));
	FOR t IN SELECT tg.tgname, tg.tgrelid::regclass AS rel
			 FROM pg_trigger tg
			 WHERE tg.tgfoid IN ('lead_enrich.enqueue()'::regprocedure, 'lead_enrich.intake()'::regprocedure) LOOP
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

SELECT lead_enrich.sync_triggers();

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

/* --- the status view, as 1.2 has it (the columns above are all there now) --- */

CREATE OR REPLACE VIEW lead_enrich.status AS
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

-- ------------------------------------------------------------------------
-- Citus mode: a distributed lead table is queued by triggers on its shards
-- into a co-located queue (src/citus.c)
-- ------------------------------------------------------------------------
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
CREATE OR REPLACE FUNCTION lead_enrich.sync_triggers()
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
