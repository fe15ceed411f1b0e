/* lead_enrich 1.0 -> 1.1: automatic enrichment (triggers, background worker) and lead mining */

\echo Use "ALTER EXTENSION lead_enrich UPDATE TO '1.1'" to load this file. \quit

/* attach() and detach() now keep the enqueue triggers of automatic mode in step */
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
		EXECUTE format('SELECT value FROM %I.ir_config_parameter WHERE key = %L', nspname, 'database.uuid')
			INTO uuid;
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

CREATE OR REPLACE FUNCTION lead_enrich.detach()
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

/*
 * Lead mining (Odoo's crm_iap_mine): generate_leads(criteria) asks the
 * provider for companies (and their contacts) matching countries, states,
 * industries and a size range, and creates them as leads in the attached
 * table.  Each call is recorded in lead_enrich.mining_request, like Odoo's
 * Lead Mining Requests.
 *
 * The criteria are checked here, in PL/pgSQL (_mining_prepare): like
 * attach(), the job is looking things up and saying clearly what is wrong.
 * The C function (src/mining.c) does the call and the inserts.
 */

/* Odoo 17's reference tables (the CSV files of addons/crm_iap_mine/data). */
CREATE TABLE lead_enrich.mining_industry (
	id			integer PRIMARY KEY,
	xml_id		text NOT NULL UNIQUE,
	name		text NOT NULL UNIQUE,
	reveal_ids	text[] NOT NULL,
	sequence	integer NOT NULL
);
CREATE TABLE lead_enrich.mining_role (
	id			integer PRIMARY KEY,
	xml_id		text NOT NULL UNIQUE,
	name		text NOT NULL UNIQUE,
	reveal_id	text NOT NULL UNIQUE
);
CREATE TABLE lead_enrich.mining_seniority (
	id			integer PRIMARY KEY,
	xml_id		text NOT NULL UNIQUE,
	name		text NOT NULL UNIQUE,
	reveal_id	text NOT NULL UNIQUE
);

/*
 * ISO 3166 codes, to check countries and states when the attached table is
 * not Odoo's (Odoo's own res_country / res_country_state are used when it
 * is).  Subdivisions only for the countries Odoo offers state filtering for.
 */
CREATE TABLE lead_enrich.iso_country (
	code		text PRIMARY KEY,
	name		text NOT NULL
);
CREATE TABLE lead_enrich.iso_subdivision (
	country		text NOT NULL REFERENCES lead_enrich.iso_country,
	code		text NOT NULL,		/* without the "US-" prefix, as Odoo stores it */
	name		text NOT NULL,
	PRIMARY KEY (country, code)
);

-- BEGIN generated by scripts/gen_mining_sql.py: do not edit by hand
INSERT INTO lead_enrich.mining_industry (id, xml_id, name, reveal_ids, sequence) VALUES
	(1, 'crm_iap_mine_industry_30_155', 'Consumer Discretionary', '{30,155}', 1),
	(2, 'crm_iap_mine_industry_33', 'Consumer Staples', '{33}', 4),
	(3, 'crm_iap_mine_industry_69_157', 'Banks & Insurance', '{69,157}', 2),
	(4, 'crm_iap_mine_industry_86', 'Media', '{86}', 7),
	(5, 'crm_iap_mine_industry_114', 'Real Estate', '{114}', 21),
	(6, 'crm_iap_mine_industry_136', 'Transportation', '{136}', 16),
	(7, 'crm_iap_mine_industry_138_156', 'Energy & Utilities', '{138}', 22),
	(8, 'crm_iap_mine_industry_148', 'Materials', '{148}', 17),
	(9, 'crm_iap_mine_industry_149', 'Telecommunication Services', '{149}', 20),
	(10, 'crm_iap_mine_industry_150_151', 'Consumer Services', '{150,151}', 9),
	(11, 'crm_iap_mine_industry_152', 'Retailing', '{152}', 3),
	(12, 'crm_iap_mine_industry_153_154', 'Food, Beverage & Tobacco', '{153,154}', 12),
	(13, 'crm_iap_mine_industry_158_159', 'Diversified Financials & Financial Services', '{158,159}', 15),
	(14, 'crm_iap_mine_industry_160', 'Health Care Equipment & Services', '{160}', 11),
	(15, 'crm_iap_mine_industry_161', 'Pharmaceuticals, Biotechnology & Life Sciences', '{161}', 13),
	(16, 'crm_iap_mine_industry_162', 'Capital Goods', '{162}', 6),
	(17, 'crm_iap_mine_industry_163', 'Commercial & Professional Services', '{163}', 5),
	(18, 'crm_iap_mine_industry_165', 'Software & Services', '{165}', 8),
	(19, 'crm_iap_mine_industry_166', 'Technology Hardware & Equipment', '{166}', 19),
	(20, 'crm_iap_mine_industry_167', 'Construction Materials', '{167}', 23),
	(21, 'crm_iap_mine_industry_168', 'Independent Power and Renewable Electricity Producers', '{168}', 14),
	(22, 'crm_iap_mine_industry_238', 'Automobiles & Components', '{238}', 18),
	(23, 'crm_iap_mine_industry_239', 'Consumer Durables & Apparel', '{239}', 10);
INSERT INTO lead_enrich.mining_role (id, xml_id, name, reveal_id) VALUES
	(1, 'crm_iap_mine_role_1', 'CEO', 'CEO'),
	(2, 'crm_iap_mine_role_2', 'Communications', 'communications'),
	(3, 'crm_iap_mine_role_3', 'Consulting', 'consulting'),
	(4, 'crm_iap_mine_role_4', 'Customer Service', 'customer_service'),
	(5, 'crm_iap_mine_role_5', 'Education', 'education'),
	(6, 'crm_iap_mine_role_6', 'Engineering', 'engineering'),
	(7, 'crm_iap_mine_role_7', 'Finance', 'finance'),
	(8, 'crm_iap_mine_role_8', 'Founder', 'founder'),
	(9, 'crm_iap_mine_role_9', 'Health Professional', 'health_professional'),
	(10, 'crm_iap_mine_role_10', 'Human Resources', 'human_resources'),
	(11, 'crm_iap_mine_role_11', 'Information Technology', 'information_technology'),
	(12, 'crm_iap_mine_role_12', 'Legal', 'legal'),
	(13, 'crm_iap_mine_role_13', 'Marketing', 'marketing'),
	(14, 'crm_iap_mine_role_14', 'Operations', 'operations'),
	(15, 'crm_iap_mine_role_15', 'Owner', 'owner'),
	(16, 'crm_iap_mine_role_16', 'President', 'president'),
	(17, 'crm_iap_mine_role_17', 'Product', 'product'),
	(18, 'crm_iap_mine_role_18', 'Public Relations', 'public_relations'),
	(19, 'crm_iap_mine_role_19', 'Real Estate', 'real_estate'),
	(20, 'crm_iap_mine_role_20', 'Recruiting', 'recruiting'),
	(21, 'crm_iap_mine_role_21', 'Research', 'research'),
	(22, 'crm_iap_mine_role_22', 'Sale', 'sale');
INSERT INTO lead_enrich.mining_seniority (id, xml_id, name, reveal_id) VALUES
	(1, 'crm_iap_mine_seniority_1', 'director', 'director'),
	(2, 'crm_iap_mine_seniority_2', 'executive', 'executive'),
	(3, 'crm_iap_mine_seniority_3', 'manager', 'manager');
-- ISO 3166-1 (iso-codes)
INSERT INTO lead_enrich.iso_country (code, name) VALUES
	('AD', 'Andorra'),
	('AE', 'United Arab Emirates'),
	('AF', 'Afghanistan'),
	('AG', 'Antigua and Barbuda'),
	('AI', 'Anguilla'),
	('AL', 'Albania'),
	('AM', 'Armenia'),
	('AO', 'Angola'),
	('AQ', 'Antarctica'),
	('AR', 'Argentina'),
	('AS', 'American Samoa'),
	('AT', 'Austria'),
	('AU', 'Australia'),
	('AW', 'Aruba'),
	('AX', 'Åland Islands'),
	('AZ', 'Azerbaijan'),
	('BA', 'Bosnia and Herzegovina'),
	('BB', 'Barbados'),
	('BD', 'Bangladesh'),
	('BE', 'Belgium'),
	('BF', 'Burkina Faso'),
	('BG', 'Bulgaria'),
	('BH', 'Bahrain'),
	('BI', 'Burundi'),
	('BJ', 'Benin'),
	('BL', 'Saint Barthélemy'),
	('BM', 'Bermuda'),
	('BN', 'Brunei Darussalam'),
	('BO', 'Bolivia'),
	('BQ', 'Bonaire, Sint Eustatius and Saba'),
	('BR', 'Brazil'),
	('BS', 'Bahamas'),
	('BT', 'Bhutan'),
	('BV', 'Bouvet Island'),
	('BW', 'Botswana'),
	('BY', 'Belarus'),
	('BZ', 'Belize'),
	('CA', 'Canada'),
	('CC', 'Cocos (Keeling) Islands'),
	('CD', 'Congo, The Democratic Republic of the'),
	('CF', 'Central African Republic'),
	('CG', 'Congo'),
	('CH', 'Switzerland'),
	('CI', 'Côte d''Ivoire'),
	('CK', 'Cook Islands'),
	('CL', 'Chile'),
	('CM', 'Cameroon'),
	('CN', 'China'),
	('CO', 'Colombia'),
	('CR', 'Costa Rica'),
	('CU', 'Cuba'),
	('CV', 'Cabo Verde'),
	('CW', 'Curaçao'),
	('CX', 'Christmas Island'),
	('CY', 'Cyprus'),
	('CZ', 'Czechia'),
	('DE', 'Germany'),
	('DJ', 'Djibouti'),
	('DK', 'Denmark'),
	('DM', 'Dominica'),
	('DO', 'Dominican Republic'),
	('DZ', 'Algeria'),
	('EC', 'Ecuador'),
	('EE', 'Estonia'),
	('EG', 'Egypt'),
	('EH', 'Western Sahara'),
	('ER', 'Eritrea'),
	('ES', 'Spain'),
	('ET', 'Ethiopia'),
	('FI', 'Finland'),
	('FJ', 'Fiji'),
	('FK', 'Falkland Islands (Malvinas)'),
	('FM', 'Micronesia, Federated States of'),
	('FO', 'Faroe Islands'),
	('FR', 'France'),
	('GA', 'Gabon'),
	('GB', 'United Kingdom'),
	('GD', 'Grenada'),
	('GE', 'Georgia'),
	('GF', 'French Guiana'),
	('GG', 'Guernsey'),
	('GH', 'Ghana'),
	('GI', 'Gibraltar'),
	('GL', 'Greenland'),
	('GM', 'Gambia'),
	('GN', 'Guinea'),
	('GP', 'Guadeloupe'),
	('GQ', 'Equatorial Guinea'),
	('GR', 'Greece'),
	('GS', 'South Georgia and the South Sandwich Islands'),
	('GT', 'Guatemala'),
	('GU', 'Guam'),
	('GW', 'Guinea-Bissau'),
	('GY', 'Guyana'),
	('HK', 'Hong Kong'),
	('HM', 'Heard Island and McDonald Islands'),
	('HN', 'Honduras'),
	('HR', 'Croatia'),
	('HT', 'Haiti'),
	('HU', 'Hungary'),
	('ID', 'Indonesia'),
	('IE', 'Ireland'),
	('IL', 'Israel'),
	('IM', 'Isle of Man'),
	('IN', 'India'),
	('IO', 'British Indian Ocean Territory'),
	('IQ', 'Iraq'),
	('IR', 'Iran'),
	('IS', 'Iceland'),
	('IT', 'Italy'),
	('JE', 'Jersey'),
	('JM', 'Jamaica'),
	('JO', 'Jordan'),
	('JP', 'Japan'),
	('KE', 'Kenya'),
	('KG', 'Kyrgyzstan'),
	('KH', 'Cambodia'),
	('KI', 'Kiribati'),
	('KM', 'Comoros'),
	('KN', 'Saint Kitts and Nevis'),
	('KP', 'North Korea'),
	('KR', 'South Korea'),
	('KW', 'Kuwait'),
	('KY', 'Cayman Islands'),
	('KZ', 'Kazakhstan'),
	('LA', 'Laos'),
	('LB', 'Lebanon'),
	('LC', 'Saint Lucia'),
	('LI', 'Liechtenstein'),
	('LK', 'Sri Lanka'),
	('LR', 'Liberia'),
	('LS', 'Lesotho'),
	('LT', 'Lithuania'),
	('LU', 'Luxembourg'),
	('LV', 'Latvia'),
	('LY', 'Libya'),
	('MA', 'Morocco'),
	('MC', 'Monaco'),
	('MD', 'Moldova'),
	('ME', 'Montenegro'),
	('MF', 'Saint Martin (French part)'),
	('MG', 'Madagascar'),
	('MH', 'Marshall Islands'),
	('MK', 'North Macedonia'),
	('ML', 'Mali'),
	('MM', 'Myanmar'),
	('MN', 'Mongolia'),
	('MO', 'Macao'),
	('MP', 'Northern Mariana Islands'),
	('MQ', 'Martinique'),
	('MR', 'Mauritania'),
	('MS', 'Montserrat'),
	('MT', 'Malta'),
	('MU', 'Mauritius'),
	('MV', 'Maldives'),
	('MW', 'Malawi'),
	('MX', 'Mexico'),
	('MY', 'Malaysia'),
	('MZ', 'Mozambique'),
	('NA', 'Namibia'),
	('NC', 'New Caledonia'),
	('NE', 'Niger'),
	('NF', 'Norfolk Island'),
	('NG', 'Nigeria'),
	('NI', 'Nicaragua'),
	('NL', 'Netherlands'),
	('NO', 'Norway'),
	('NP', 'Nepal'),
	('NR', 'Nauru'),
	('NU', 'Niue'),
	('NZ', 'New Zealand'),
	('OM', 'Oman'),
	('PA', 'Panama'),
	('PE', 'Peru'),
	('PF', 'French Polynesia'),
	('PG', 'Papua New Guinea'),
	('PH', 'Philippines'),
	('PK', 'Pakistan'),
	('PL', 'Poland'),
	('PM', 'Saint Pierre and Miquelon'),
	('PN', 'Pitcairn'),
	('PR', 'Puerto Rico'),
	('PS', 'Palestine, State of'),
	('PT', 'Portugal'),
	('PW', 'Palau'),
	('PY', 'Paraguay'),
	('QA', 'Qatar'),
	('RE', 'Réunion'),
	('RO', 'Romania'),
	('RS', 'Serbia'),
	('RU', 'Russian Federation'),
	('RW', 'Rwanda'),
	('SA', 'Saudi Arabia'),
	('SB', 'Solomon Islands'),
	('SC', 'Seychelles'),
	('SD', 'Sudan'),
	('SE', 'Sweden'),
	('SG', 'Singapore'),
	('SH', 'Saint Helena, Ascension and Tristan da Cunha'),
	('SI', 'Slovenia'),
	('SJ', 'Svalbard and Jan Mayen'),
	('SK', 'Slovakia'),
	('SL', 'Sierra Leone'),
	('SM', 'San Marino'),
	('SN', 'Senegal'),
	('SO', 'Somalia'),
	('SR', 'Suriname'),
	('SS', 'South Sudan'),
	('ST', 'Sao Tome and Principe'),
	('SV', 'El Salvador'),
	('SX', 'Sint Maarten (Dutch part)'),
	('SY', 'Syria'),
	('SZ', 'Eswatini'),
	('TC', 'Turks and Caicos Islands'),
	('TD', 'Chad'),
	('TF', 'French Southern Territories'),
	('TG', 'Togo'),
	('TH', 'Thailand'),
	('TJ', 'Tajikistan'),
	('TK', 'Tokelau'),
	('TL', 'Timor-Leste'),
	('TM', 'Turkmenistan'),
	('TN', 'Tunisia'),
	('TO', 'Tonga'),
	('TR', 'Türkiye'),
	('TT', 'Trinidad and Tobago'),
	('TV', 'Tuvalu'),
	('TW', 'Taiwan'),
	('TZ', 'Tanzania'),
	('UA', 'Ukraine'),
	('UG', 'Uganda'),
	('UM', 'United States Minor Outlying Islands'),
	('US', 'United States'),
	('UY', 'Uruguay'),
	('UZ', 'Uzbekistan'),
	('VA', 'Holy See (Vatican City State)'),
	('VC', 'Saint Vincent and the Grenadines'),
	('VE', 'Venezuela'),
	('VG', 'Virgin Islands, British'),
	('VI', 'Virgin Islands, U.S.'),
	('VN', 'Vietnam'),
	('VU', 'Vanuatu'),
	('WF', 'Wallis and Futuna'),
	('WS', 'Samoa'),
	('YE', 'Yemen'),
	('YT', 'Mayotte'),
	('ZA', 'South Africa'),
	('ZM', 'Zambia'),
	('ZW', 'Zimbabwe');
-- ISO 3166-2 subdivisions of the state-filtering countries (iso-codes)
INSERT INTO lead_enrich.iso_subdivision (country, code, name) VALUES
	('AE', 'AJ', '‘Ajmān'),
	('AE', 'AZ', 'Abū Z̧aby'),
	('AE', 'DU', 'Dubayy'),
	('AE', 'FU', 'Al Fujayrah'),
	('AE', 'RK', 'Ra’s al Khaymah'),
	('AE', 'SH', 'Ash Shāriqah'),
	('AE', 'UQ', 'Umm al Qaywayn'),
	('AR', 'A', 'Salta'),
	('AR', 'B', 'Buenos Aires'),
	('AR', 'C', 'Ciudad Autónoma de Buenos Aires'),
	('AR', 'D', 'San Luis'),
	('AR', 'E', 'Entre Ríos'),
	('AR', 'F', 'La Rioja'),
	('AR', 'G', 'Santiago del Estero'),
	('AR', 'H', 'Chaco'),
	('AR', 'J', 'San Juan'),
	('AR', 'K', 'Catamarca'),
	('AR', 'L', 'La Pampa'),
	('AR', 'M', 'Mendoza'),
	('AR', 'N', 'Misiones'),
	('AR', 'P', 'Formosa'),
	('AR', 'Q', 'Neuquén'),
	('AR', 'R', 'Río Negro'),
	('AR', 'S', 'Santa Fe'),
	('AR', 'T', 'Tucumán'),
	('AR', 'U', 'Chubut'),
	('AR', 'V', 'Tierra del Fuego'),
	('AR', 'W', 'Corrientes'),
	('AR', 'X', 'Córdoba'),
	('AR', 'Y', 'Jujuy'),
	('AR', 'Z', 'Santa Cruz'),
	('AU', 'ACT', 'Australian Capital Territory'),
	('AU', 'NSW', 'New South Wales'),
	('AU', 'NT', 'Northern Territory'),
	('AU', 'QLD', 'Queensland'),
	('AU', 'SA', 'South Australia'),
	('AU', 'TAS', 'Tasmania'),
	('AU', 'VIC', 'Victoria'),
	('AU', 'WA', 'Western Australia'),
	('BR', 'AC', 'Acre'),
	('BR', 'AL', 'Alagoas'),
	('BR', 'AM', 'Amazonas'),
	('BR', 'AP', 'Amapá'),
	('BR', 'BA', 'Bahia'),
	('BR', 'CE', 'Ceará'),
	('BR', 'DF', 'Distrito Federal'),
	('BR', 'ES', 'Espírito Santo'),
	('BR', 'GO', 'Goiás'),
	('BR', 'MA', 'Maranhão'),
	('BR', 'MG', 'Minas Gerais'),
	('BR', 'MS', 'Mato Grosso do Sul'),
	('BR', 'MT', 'Mato Grosso'),
	('BR', 'PA', 'Pará'),
	('BR', 'PB', 'Paraíba'),
	('BR', 'PE', 'Pernambuco'),
	('BR', 'PI', 'Piauí'),
	('BR', 'PR', 'Paraná'),
	('BR', 'RJ', 'Rio de Janeiro'),
	('BR', 'RN', 'Rio Grande do Norte'),
	('BR', 'RO', 'Rondônia'),
	('BR', 'RR', 'Roraima'),
	('BR', 'RS', 'Rio Grande do Sul'),
	('BR', 'SC', 'Santa Catarina'),
	('BR', 'SE', 'Sergipe'),
	('BR', 'SP', 'São Paulo'),
	('BR', 'TO', 'Tocantins'),
	('CA', 'AB', 'Alberta'),
	('CA', 'BC', 'British Columbia'),
	('CA', 'MB', 'Manitoba'),
	('CA', 'NB', 'New Brunswick'),
	('CA', 'NL', 'Newfoundland and Labrador'),
	('CA', 'NS', 'Nova Scotia'),
	('CA', 'NT', 'Northwest Territories'),
	('CA', 'NU', 'Nunavut'),
	('CA', 'ON', 'Ontario'),
	('CA', 'PE', 'Prince Edward Island'),
	('CA', 'QC', 'Quebec'),
	('CA', 'SK', 'Saskatchewan'),
	('CA', 'YT', 'Yukon'),
	('IN', 'AN', 'Andaman and Nicobar Islands'),
	('IN', 'AP', 'Andhra Pradesh'),
	('IN', 'AR', 'Arunāchal Pradesh'),
	('IN', 'AS', 'Assam'),
	('IN', 'BR', 'Bihār'),
	('IN', 'CH', 'Chandīgarh'),
	('IN', 'CT', 'Chhattīsgarh'),
	('IN', 'DH', 'Dādra and Nagar Haveli and Damān and Diu'),
	('IN', 'DL', 'Delhi'),
	('IN', 'GA', 'Goa'),
	('IN', 'GJ', 'Gujarāt'),
	('IN', 'HP', 'Himāchal Pradesh'),
	('IN', 'HR', 'Haryāna'),
	('IN', 'JH', 'Jhārkhand'),
	('IN', 'JK', 'Jammu and Kashmīr'),
	('IN', 'KA', 'Karnātaka'),
	('IN', 'KL', 'Kerala'),
	('IN', 'LA', 'Ladākh'),
	('IN', 'LD', 'Lakshadweep'),
	('IN', 'MH', 'Mahārāshtra'),
	('IN', 'ML', 'Meghālaya'),
	('IN', 'MN', 'Manipur'),
	('IN', 'MP', 'Madhya Pradesh'),
	('IN', 'MZ', 'Mizoram'),
	('IN', 'NL', 'Nāgāland'),
	('IN', 'OR', 'Odisha'),
	('IN', 'PB', 'Punjab'),
	('IN', 'PY', 'Puducherry'),
	('IN', 'RJ', 'Rājasthān'),
	('IN', 'SK', 'Sikkim'),
	('IN', 'TG', 'Telangāna'),
	('IN', 'TN', 'Tamil Nādu'),
	('IN', 'TR', 'Tripura'),
	('IN', 'UP', 'Uttar Pradesh'),
	('IN', 'UT', 'Uttarākhand'),
	('IN', 'WB', 'West Bengal'),
	('MX', 'AGU', 'Aguascalientes'),
	('MX', 'BCN', 'Baja California'),
	('MX', 'BCS', 'Baja California Sur'),
	('MX', 'CAM', 'Campeche'),
	('MX', 'CHH', 'Chihuahua'),
	('MX', 'CHP', 'Chiapas'),
	('MX', 'CMX', 'Ciudad de México'),
	('MX', 'COA', 'Coahuila de Zaragoza'),
	('MX', 'COL', 'Colima'),
	('MX', 'DUR', 'Durango'),
	('MX', 'GRO', 'Guerrero'),
	('MX', 'GUA', 'Guanajuato'),
	('MX', 'HID', 'Hidalgo'),
	('MX', 'JAL', 'Jalisco'),
	('MX', 'MEX', 'México'),
	('MX', 'MIC', 'Michoacán de Ocampo'),
	('MX', 'MOR', 'Morelos'),
	('MX', 'NAY', 'Nayarit'),
	('MX', 'NLE', 'Nuevo León'),
	('MX', 'OAX', 'Oaxaca'),
	('MX', 'PUE', 'Puebla'),
	('MX', 'QUE', 'Querétaro'),
	('MX', 'ROO', 'Quintana Roo'),
	('MX', 'SIN', 'Sinaloa'),
	('MX', 'SLP', 'San Luis Potosí'),
	('MX', 'SON', 'Sonora'),
	('MX', 'TAB', 'Tabasco'),
	('MX', 'TAM', 'Tamaulipas'),
	('MX', 'TLA', 'Tlaxcala'),
	('MX', 'VER', 'Veracruz de Ignacio de la Llave'),
	('MX', 'YUC', 'Yucatán'),
	('MX', 'ZAC', 'Zacatecas'),
	('MY', '01', 'Johor'),
	('MY', '02', 'Kedah'),
	('MY', '03', 'Kelantan'),
	('MY', '04', 'Melaka'),
	('MY', '05', 'Negeri Sembilan'),
	('MY', '06', 'Pahang'),
	('MY', '07', 'Pulau Pinang'),
	('MY', '08', 'Perak'),
	('MY', '09', 'Perlis'),
	('MY', '10', 'Selangor'),
	('MY', '11', 'Terengganu'),
	('MY', '12', 'Sabah'),
	('MY', '13', 'Sarawak'),
	('MY', '14', 'Wilayah Persekutuan Kuala Lumpur'),
	('MY', '15', 'Wilayah Persekutuan Labuan'),
	('MY', '16', 'Wilayah Persekutuan Putrajaya'),
	('NZ', 'AUK', 'Auckland'),
	('NZ', 'BOP', 'Bay of Plenty'),
	('NZ', 'CAN', 'Canterbury'),
	('NZ', 'CIT', 'Chatham Islands Territory'),
	('NZ', 'GIS', 'Gisborne'),
	('NZ', 'HKB', 'Hawke''s Bay'),
	('NZ', 'MBH', 'Marlborough'),
	('NZ', 'MWT', 'Manawatu-Wanganui'),
	('NZ', 'NSN', 'Nelson'),
	('NZ', 'NTL', 'Northland'),
	('NZ', 'OTA', 'Otago'),
	('NZ', 'STL', 'Southland'),
	('NZ', 'TAS', 'Tasman'),
	('NZ', 'TKI', 'Taranaki'),
	('NZ', 'WGN', 'Wellington'),
	('NZ', 'WKO', 'Waikato'),
	('NZ', 'WTC', 'West Coast'),
	('US', 'AK', 'Alaska'),
	('US', 'AL', 'Alabama'),
	('US', 'AR', 'Arkansas'),
	('US', 'AS', 'American Samoa'),
	('US', 'AZ', 'Arizona'),
	('US', 'CA', 'California'),
	('US', 'CO', 'Colorado'),
	('US', 'CT', 'Connecticut'),
	('US', 'DC', 'District of Columbia'),
	('US', 'DE', 'Delaware'),
	('US', 'FL', 'Florida'),
	('US', 'GA', 'Georgia'),
	('US', 'GU', 'Guam'),
	('US', 'HI', 'Hawaii'),
	('US', 'IA', 'Iowa'),
	('US', 'ID', 'Idaho'),
	('US', 'IL', 'Illinois'),
	('US', 'IN', 'Indiana'),
	('US', 'KS', 'Kansas'),
	('US', 'KY', 'Kentucky'),
	('US', 'LA', 'Louisiana'),
	('US', 'MA', 'Massachusetts'),
	('US', 'MD', 'Maryland'),
	('US', 'ME', 'Maine'),
	('US', 'MI', 'Michigan'),
	('US', 'MN', 'Minnesota'),
	('US', 'MO', 'Missouri'),
	('US', 'MP', 'Northern Mariana Islands'),
	('US', 'MS', 'Mississippi'),
	('US', 'MT', 'Montana'),
	('US', 'NC', 'North Carolina'),
	('US', 'ND', 'North Dakota'),
	('US', 'NE', 'Nebraska'),
	('US', 'NH', 'New Hampshire'),
	('US', 'NJ', 'New Jersey'),
	('US', 'NM', 'New Mexico'),
	('US', 'NV', 'Nevada'),
	('US', 'NY', 'New York'),
	('US', 'OH', 'Ohio'),
	('US', 'OK', 'Oklahoma'),
	('US', 'OR', 'Oregon'),
	('US', 'PA', 'Pennsylvania'),
	('US', 'PR', 'Puerto Rico'),
	('US', 'RI', 'Rhode Island'),
	('US', 'SC', 'South Carolina'),
	('US', 'SD', 'South Dakota'),
	('US', 'TN', 'Tennessee'),
	('US', 'TX', 'Texas'),
	('US', 'UM', 'United States Minor Outlying Islands'),
	('US', 'UT', 'Utah'),
	('US', 'VA', 'Virginia'),
	('US', 'VI', 'Virgin Islands, U.S.'),
	('US', 'VT', 'Vermont'),
	('US', 'WA', 'Washington'),
	('US', 'WI', 'Wisconsin'),
	('US', 'WV', 'West Virginia'),
	('US', 'WY', 'Wyoming');
-- END generated by scripts/gen_mining_sql.py

/*
 * One row per generate_leads() call that reached the provider (or was about
 * to): Odoo's crm.iap.lead.mining.request.  state/error_type as in Odoo:
 * done; error + credits; draft + no_result.  criteria is the normalised
 * criteria (defaults applied, names and codes resolved), valid input for
 * generate_leads() again.  credits is what the provider charged: one per
 * company delivered plus one per contact, skipped duplicates included.
 */
CREATE TABLE lead_enrich.mining_request (
	id			serial PRIMARY KEY,
	name		text NOT NULL GENERATED ALWAYS AS
		('LMR' || CASE WHEN id < 1000 THEN lpad(id::text, 3, '0') ELSE id::text END) STORED,
	state		text NOT NULL DEFAULT 'draft' CHECK (state IN ('draft', 'done', 'error')),
	error_type	text CHECK (error_type IN ('credits', 'no_result')),
	error		text,
	criteria	jsonb NOT NULL,
	lead_table	text NOT NULL,
	odoo_request_id integer,	/* the row in Odoo's crm_iap_lead_mining_request, if any */
	lead_ids	bigint[] NOT NULL DEFAULT '{}',
	companies	integer NOT NULL DEFAULT 0,
	contacts	integer NOT NULL DEFAULT 0,
	skipped		integer NOT NULL DEFAULT 0,
	credits		integer NOT NULL DEFAULT 0,
	requested_by name NOT NULL DEFAULT current_user,
	created_at	timestamptz NOT NULL DEFAULT now(),
	finished_at timestamptz
);
SELECT pg_catalog.pg_extension_config_dump('lead_enrich.mining_request', '');
SELECT pg_catalog.pg_extension_config_dump('lead_enrich.mining_request_id_seq', '');

REVOKE ALL ON lead_enrich.mining_industry, lead_enrich.mining_role, lead_enrich.mining_seniority,
	lead_enrich.iso_country, lead_enrich.iso_subdivision, lead_enrich.mining_request FROM PUBLIC;
GRANT SELECT ON lead_enrich.mining_industry, lead_enrich.mining_role, lead_enrich.mining_seniority,
	lead_enrich.iso_country, lead_enrich.iso_subdivision TO lead_enrich_user;
GRANT SELECT, INSERT, UPDATE ON lead_enrich.mining_request TO lead_enrich_user;
GRANT USAGE ON SEQUENCE lead_enrich.mining_request_id_seq TO lead_enrich_user;

/*
 * _mining_invalid: the error of a bad criterion, naming the key.
 */
CREATE FUNCTION lead_enrich._mining_invalid(key text, problem text, hint text)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
	RAISE EXCEPTION 'criteria "%": %', key, problem
		USING ERRCODE = 'invalid_parameter_value', HINT = hint;
END
$$;

/*
 * _mining_int: an integer criterion within lo..hi.
 */
CREATE FUNCTION lead_enrich._mining_int(key text, v jsonb, lo integer, hi integer, hint text)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
	n numeric;
BEGIN
	IF jsonb_typeof(v) <> 'number' OR (v::text)::numeric <> trunc((v::text)::numeric) THEN
		PERFORM lead_enrich._mining_invalid(key, format('%s is not an integer', v), hint);
	END IF;
	n := (v::text)::numeric;
	IF n < lo OR n > hi THEN
		PERFORM lead_enrich._mining_invalid(key, format('%s is out of range', v), hint);
	END IF;
	RETURN n::integer;
END
$$;

/*
 * _mining_list: a list criterion as its elements; a lone scalar is a list
 * of one.  Elements must be strings (or numbers where numbers_ok).
 */
CREATE FUNCTION lead_enrich._mining_list(key text, v jsonb, numbers_ok boolean, hint text)
RETURNS SETOF jsonb
LANGUAGE plpgsql
AS $$
DECLARE
	e jsonb;
BEGIN
	IF jsonb_typeof(v) <> 'array' THEN
		v := jsonb_build_array(v);
	END IF;
	FOR e IN SELECT value FROM jsonb_array_elements(v) LOOP
		IF jsonb_typeof(e) = 'string' AND btrim(e #>> '{}') <> '' THEN
			RETURN NEXT to_jsonb(btrim(e #>> '{}'));
		ELSIF numbers_ok AND jsonb_typeof(e) = 'number' THEN
			RETURN NEXT e;
		ELSE
			PERFORM lead_enrich._mining_invalid(key,
				format('%s is not a %s', e, CASE WHEN numbers_ok THEN 'name or an id' ELSE 'code' END), hint);
		END IF;
	END LOOP;
END
$$;

/*
 * _mining_odoo_insert: insert a row into an Odoo table from a JSON object,
 * keeping only the keys that are columns of the table; returns the id.
 */
CREATE FUNCTION lead_enrich._mining_odoo_insert(tbl regclass, vals jsonb)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
	cols text;
	new_id integer;
BEGIN
	SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
	FROM pg_attribute a
	WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped AND vals ? a.attname;
	EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM jsonb_populate_record(NULL::%s, $1) RETURNING id',
				   tbl, cols, cols, tbl)
		INTO new_id USING vals;
	RETURN new_id;
END
$$;

/*
 * _mining_odoo_rel: fill one of Odoo's many2many tables of the request,
 * when it exists.
 */
CREATE FUNCTION lead_enrich._mining_odoo_rel(nsp text, rel text, req_col text, other_col text,
	req_id integer, ids integer[])
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
	IF cardinality(ids) > 0 AND to_regclass(format('%I.%I', nsp, rel)) IS NOT NULL THEN
		EXECUTE format('INSERT INTO %I.%I (%I, %I) SELECT $1, unnest($2) ON CONFLICT DO NOTHING',
					   nsp, rel, req_col, other_col)
			USING req_id, ids;
	END IF;
END
$$;

/*
 * _mining_prepare(criteria): check the criteria against the attached table
 * and the reference tables, record the request (and Odoo's request row when
 * the table is Odoo's), and return what src/mining.c needs:
 *
 *	{"request_id", "request_name", "odoo_request_id", "payload" (the "data"
 *	 object of the IAP call), "lead_type", "team_id", "user_id", "tag_ids",
 *	 "stage_id", "people"}
 *
 * Every error names the key and the value; nothing is recorded then.
 */
CREATE FUNCTION lead_enrich._mining_prepare(criteria jsonb)
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

	INSERT INTO lead_enrich.mining_request (criteria, lead_table)
	VALUES (norm, cfg.lead_table::text)
	RETURNING id, name INTO req_id, req_name;

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
		UPDATE lead_enrich.mining_request SET odoo_request_id = odoo_req WHERE id = req_id;
	END IF;

	RETURN jsonb_build_object('request_id', req_id, 'request_name', req_name,
		'odoo_request_id', odoo_req, 'payload', payload, 'people', people,
		'lead_type', lead_type, 'team_id', team_id, 'user_id', user_id,
		'tag_ids', to_jsonb(tag_ids), 'stage_id', stage_id);
END
$$;

/*
 * _mining_finish: the request's outcome, in our table and in Odoo's.
 */
CREATE FUNCTION lead_enrich._mining_finish(request_id integer, state text, error_type text,
	error text, lead_ids bigint[], companies integer, contacts integer, skipped integer)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r lead_enrich.mining_request;
BEGIN
	UPDATE lead_enrich.mining_request m
	SET state = _mining_finish.state, error_type = _mining_finish.error_type,
		error = _mining_finish.error, lead_ids = _mining_finish.lead_ids,
		companies = _mining_finish.companies, contacts = _mining_finish.contacts,
		skipped = _mining_finish.skipped,
		credits = _mining_finish.companies + _mining_finish.contacts,
		finished_at = clock_timestamp()
	WHERE m.id = request_id
	RETURNING * INTO r;
	IF r.odoo_request_id IS NOT NULL THEN
		EXECUTE format('UPDATE %s SET state = $1, error_type = $2, write_date = now() AT TIME ZONE ''UTC'' WHERE id = $3',
					   (SELECT format('%I.crm_iap_lead_mining_request', n.nspname)
						FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
						WHERE c.oid = r.lead_table::regclass))
			USING state, error_type, r.odoo_request_id;
	END IF;
END
$$;

REVOKE ALL ON FUNCTION lead_enrich._mining_invalid(text, text, text),
	lead_enrich._mining_int(text, jsonb, integer, integer, text),
	lead_enrich._mining_list(text, jsonb, boolean, text),
	lead_enrich._mining_odoo_insert(regclass, jsonb),
	lead_enrich._mining_odoo_rel(text, text, text, text, integer, integer[]),
	lead_enrich._mining_prepare(jsonb),
	lead_enrich._mining_finish(integer, text, text, text, bigint[], integer, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lead_enrich._mining_invalid(text, text, text),
	lead_enrich._mining_int(text, jsonb, integer, integer, text),
	lead_enrich._mining_list(text, jsonb, boolean, text),
	lead_enrich._mining_odoo_insert(regclass, jsonb),
	lead_enrich._mining_odoo_rel(text, text, text, text, integer, integer[]),
	lead_enrich._mining_prepare(jsonb),
	lead_enrich._mining_finish(integer, text, text, text, bigint[], integer, integer, integer) TO lead_enrich_user;

/*
 * generate_leads(criteria): Odoo's "Generate Leads".  One row per lead
 * created; the request is in lead_enrich.mining_request.  See
 * docs/mining.md for the criteria.
 */
CREATE FUNCTION lead_enrich.generate_leads(criteria jsonb,
	OUT request_id integer, OUT request_name text, OUT lead_id bigint,
	OUT company text, OUT domain text, OUT contacts integer)
RETURNS SETOF record
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'lead_enrich_generate_leads';
REVOKE ALL ON FUNCTION lead_enrich.generate_leads(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lead_enrich.generate_leads(jsonb) TO lead_enrich_user;

/*
 * Automatic enrichment: the enqueue triggers, the mode, the background
 * worker's controls and the status view (src/trigger.c, src/worker.c,
 * src/shmem.c).
 */

/* The worker's queue: pending leads, read in lead id order. */
CREATE INDEX lead_state_pending_idx ON lead_enrich.lead_state (lead_id)
	WHERE status = 'pending';

/*
 * The trigger function; its arguments are the attached table's id, e-mail,
 * done, reveal_id and probability columns ('' when unmapped).  SECURITY
 * DEFINER: the roles that insert leads need no rights on lead_state.  Its
 * statement uses only schema-qualified names and is prepared once per
 * process, so it sets no search_path (which would cost a GUC save and
 * restore on every INSERT).
 */
CREATE FUNCTION lead_enrich.enqueue()
RETURNS trigger
LANGUAGE C SECURITY DEFINER
AS 'MODULE_PATHNAME', 'lead_enrich_enqueue';
REVOKE ALL ON FUNCTION lead_enrich.enqueue() FROM PUBLIC;

/*
 * sync_triggers(): remove the enqueue triggers wherever they are, and
 * install them on the attached table when the mode is 'auto'.  Called by
 * attach(), detach() and set_mode().
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
	args		text;
BEGIN
	FOR t IN SELECT tg.tgname, tg.tgrelid::regclass AS rel
			 FROM pg_trigger tg
			 WHERE tg.tgfoid = 'lead_enrich.enqueue()'::regprocedure LOOP
		EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, t.rel);
	END LOOP;

	SELECT * INTO c FROM lead_enrich.config;
	IF NOT FOUND OR c.mode <> 'auto' THEN
		RETURN;
	END IF;
	email := c.columns ->> 'email';
	args := format('%L, %L, %L, %L, %L', c.columns ->> 'id', email,
				   coalesce(c.columns ->> 'enrich_done', ''),
				   coalesce(c.columns ->> 'reveal_id', ''),
				   coalesce(c.columns ->> 'probability', ''));
	EXECUTE format('CREATE TRIGGER lead_enrich_enqueue_insert AFTER INSERT ON %s '
				   'REFERENCING NEW TABLE AS lead_enrich_new '
				   'FOR EACH STATEMENT EXECUTE FUNCTION lead_enrich.enqueue(%s)',
				   c.lead_table, args);
	EXECUTE format('CREATE TRIGGER lead_enrich_enqueue_update AFTER UPDATE OF %I ON %s '
				   'FOR EACH ROW WHEN (OLD.%I IS DISTINCT FROM NEW.%I) '
				   'EXECUTE FUNCTION lead_enrich.enqueue(%s)',
				   email, c.lead_table, email, email, args);
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
 * The status of automatic enrichment in this database: the mode, the
 * worker, the queue, the outcomes and the credits spent.
 */
CREATE VIEW lead_enrich.status AS
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
	w.launcher_running
FROM lead_enrich.worker_info() w
LEFT JOIN lead_enrich.config c ON true
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
