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

/* the status view says when the attached table changed under lead_enrich */
CREATE OR REPLACE VIEW lead_enrich.status AS
SELECT
	c.mode,
	c.lead_table,
	w.pid AS worker_pid,
	w.activity AS worker_activity,
	q.pending,
	q.pending_due,
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
CROSS JOIN LATERAL (
	SELECT count(*) FILTER (WHERE s.status = 'pending') AS pending,
		   count(*) FILTER (WHERE s.status = 'pending'
							AND coalesce(s.next_attempt_at <= now(), true)) AS pending_due,
		   count(*) FILTER (WHERE s.status = 'pending' AND s.attempts > 0) AS retrying,
		   coalesce(sum(s.credits), 0) AS credits_spent
	FROM lead_enrich.lead_state s) q
CROSS JOIN LATERAL (
	SELECT coalesce(jsonb_object_agg(x.status, x.n), '{}') AS outcomes
	FROM (SELECT s.status, count(*) AS n FROM lead_enrich.lead_state s GROUP BY s.status) x) o;/* --- end of trust boundary --- */


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

/* the status view counts the new leads waiting in shared memory as pending */
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
