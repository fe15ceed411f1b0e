-- lead_provider: schema "provider".
--
-- Everything the reference provider decides is decided here, in SQL, so that
-- each HTTP request is one transactional function call: look-ups, the mining
-- query, synthetic contacts, the credit ledger and replayed answers.  The C
-- daemon only moves bytes between HTTP and provider.rpc().
--
-- This file is idempotent.  Run by "lead_provider init" inside one
-- transaction: state tables (accounts, ledger, replies, mined) are created if
-- missing and kept; directory tables are dropped and created anew, then
-- loaded by COPY and finished by provider.finish_load().

SET client_min_messages = warning;

CREATE SCHEMA IF NOT EXISTS provider;

-- ---------------------------------------------------------------------------
-- State: kept across "init"
-- ---------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS provider.account
(
	token		text PRIMARY KEY,
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now()
);

-- An account's balance, in provider.nslots() rows that add up to it.  A
-- charge updates one slot and holds it until its transaction commits (for
-- a durable commit, until its WAL is on disk): with one balance row per
-- account, each request of an account waited for the one before it to
-- commit, and a busy account was served at one WAL flush per request.  No
-- slot goes below zero, so neither does the account; a charge that no free
-- slot covers takes them all (provider.take_credits).
CREATE TABLE IF NOT EXISTS provider.account_slot
(
	token		text NOT NULL REFERENCES provider.account (token) ON DELETE CASCADE,
	slot		integer NOT NULL CHECK (slot >= 0),
	balance		numeric NOT NULL DEFAULT 0 CHECK (balance >= 0),
	PRIMARY KEY (token, slot)
);
CREATE OR REPLACE FUNCTION provider.nslots() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 8 $$;

-- provider.spread: set an account's slots, all locked by the caller, to
-- add up to total, as evenly as whole credits allow.
CREATE OR REPLACE FUNCTION provider.spread(p_token text, p_total numeric)
RETURNS void LANGUAGE sql AS
$$
	UPDATE provider.account_slot s
	SET balance = CASE WHEN s.slot = 0
		THEN p_total - (provider.nslots() - 1) * trunc(p_total / provider.nslots())
		ELSE trunc(p_total / provider.nslots()) END
	WHERE s.token = p_token
$$;

-- provider.make_slots: an account's slots, holding p_total between them.
CREATE OR REPLACE FUNCTION provider.make_slots(p_token text, p_total numeric)
RETURNS void LANGUAGE sql AS
$$
	INSERT INTO provider.account_slot (token, slot)
	SELECT p_token, g FROM generate_series(0, provider.nslots() - 1) g;
	SELECT provider.spread(p_token, p_total);
$$;

-- An older version's accounts kept their balance in provider.account:
-- spread into the slots of each account that has none yet.
DO $$
BEGIN
	IF EXISTS (SELECT 1 FROM pg_attribute
			   WHERE attrelid = 'provider.account'::regclass
			   AND attname = 'balance' AND NOT attisdropped) THEN
		PERFORM provider.make_slots(a.token, a.balance) FROM provider.account a
		WHERE NOT EXISTS (SELECT 1 FROM provider.account_slot s WHERE s.token = a.token);
		ALTER TABLE provider.account DROP COLUMN balance;
	END IF;
END
$$;

CREATE TABLE IF NOT EXISTS provider.ledger
(
	id			bigserial PRIMARY KEY,
	token		text NOT NULL REFERENCES provider.account (token),
	delta		numeric NOT NULL,
	reason		text NOT NULL CHECK (reason IN ('trial', 'enrich', 'mine', 'admin')),
	rpc_id		text,
	detail		jsonb,
	created_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ledger_token_idx ON provider.ledger (token);

-- Stored answers of charging calls, keyed by account, service and JSON-RPC
-- id, so that a retried request gets the same answer without a new charge.
-- The answer is kept as the text sent, the response's member "result": ...
-- (see provider.rpc()): it is written at every charging call and read only
-- when a call is retried, so it is never parsed into jsonb and printed back.
CREATE TABLE IF NOT EXISTS provider.reply
(
	token		text NOT NULL,
	service		text NOT NULL,
	rpc_id		text NOT NULL,
	response	text NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (token, service, rpc_id)
);
CREATE INDEX IF NOT EXISTS reply_created_idx ON provider.reply (created_at);
-- A provider.reply of an older version keeps its answers as jsonb objects
-- {"result": ...}: the same answers as text.  A refusal is never stored
-- (it charged nothing: the same call is evaluated again); one left by an
-- older version is dropped.
DO $$
BEGIN
	IF (SELECT atttypid FROM pg_attribute
		WHERE attrelid = 'provider.reply'::regclass
		AND attname = 'response') = 'jsonb'::regtype THEN
		DELETE FROM provider.reply WHERE NOT response ? 'result';
		ALTER TABLE provider.reply ALTER COLUMN response TYPE text
			USING '"result": ' || (response->'result')::text;
	END IF;
END
$$;
-- Replies are written once and rarely read: compress them cheaply if lz4 is
-- available in this build.
DO $$
BEGIN
	ALTER TABLE provider.reply ALTER COLUMN response SET COMPRESSION lz4;
EXCEPTION WHEN others THEN
	NULL;
END
$$;

-- Companies already delivered by mining, per account and database (dbuuid):
-- keyed by both, so that an account sending another account's dbuuid never
-- uses up that account's mining directory.
CREATE TABLE IF NOT EXISTS provider.mined
(
	token		text NOT NULL,
	dbuuid		text NOT NULL,
	clearbit_id	text NOT NULL,
	mined_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (token, dbuuid, clearbit_id)
);

-- A provider.mined of an older version is keyed by (dbuuid, clearbit_id)
-- with a nullable token: re-key it.  Rows without a token (never written by
-- the daemon) cannot be attributed to an account and are dropped.
DO $$
BEGIN
	IF EXISTS (SELECT 1 FROM pg_constraint
			   WHERE conrelid = 'provider.mined'::regclass AND contype = 'p'
			   AND conkey = ARRAY[(SELECT attnum FROM pg_attribute
								   WHERE attrelid = 'provider.mined'::regclass
								   AND attname = 'dbuuid'),
								  (SELECT attnum FROM pg_attribute
								   WHERE attrelid = 'provider.mined'::regclass
								   AND attname = 'clearbit_id')]::smallint[]) THEN
		DELETE FROM provider.mined WHERE token IS NULL;
		ALTER TABLE provider.mined ALTER COLUMN token SET NOT NULL;
		ALTER TABLE provider.mined DROP CONSTRAINT mined_pkey;
		ALTER TABLE provider.mined ADD PRIMARY KEY (token, dbuuid, clearbit_id);
	END IF;
END
$$;

-- ---------------------------------------------------------------------------
-- Directory: dropped and rebuilt by every "init"
-- ---------------------------------------------------------------------------

DROP TABLE IF EXISTS provider.org_stage;
DROP TABLE IF EXISTS provider.org_domain;
DROP TABLE IF EXISTS provider.org CASCADE;
DROP TABLE IF EXISTS provider.public_suffix;
DROP TABLE IF EXISTS provider.psl_stage;
DROP TABLE IF EXISTS provider.industry;
DROP TABLE IF EXISTS provider.role;
DROP TABLE IF EXISTS provider.seniority;

-- The CSV exactly as shipped (COPY ... HEADER MATCH checks the header).
CREATE UNLOGGED TABLE provider.org_stage
(
	clearbit_id text, domain text, aliases text, name text, legal_name text,
	description text, logo text, company_type text, founded_year text,
	sector text, industry_group text, industry text, sub_industry text,
	industry_reveal_id text, employees text, estimated_annual_revenue text,
	phone_numbers text, email text, timezone text, tech text, twitter text,
	facebook text, linkedin text, crunchbase text, location text, city text,
	postal_code text, state_code text, state_name text, country_code text,
	country_name text, source text
);

CREATE TABLE provider.org
(
	id			integer PRIMARY KEY,
	clearbit_id	text NOT NULL UNIQUE,
	domain		text NOT NULL,
	name		text,
	country_code text,
	state_code	text,
	industry_reveal_id text,
	employees	integer,
	mine_rank	integer NOT NULL,
	source		text,
	company		jsonb NOT NULL,
	-- company as JSON text, what enrichment sends: printed once here, not
	-- at every request (a tenth of an enrichment request's CPU)
	company_text text NOT NULL
);

-- Every domain and alias of an organisation a look-up may match: never a
-- public suffix or a name without a dot (finish_load() leaves them out, so
-- that a look-up needs no suffix test).  Domains and
-- suffixes are compared byte for byte ("C"): a request's look-ups are a few
-- hundred index probes, and a linguistic collation's comparisons were a
-- tenth of its CPU (perf: bttextcmp, varstr_cmp).  Equality is the same.
CREATE TABLE provider.org_domain
(
	domain		text COLLATE "C" PRIMARY KEY,
	org_id		integer NOT NULL
);

-- The Public Suffix List (Debian "publicsuffix"), to never match a bare
-- public suffix such as co.uk.  wildcard rules (*.ck) are kept as "ck" with
-- wildcard = true.
CREATE UNLOGGED TABLE provider.psl_stage (line text);
CREATE TABLE provider.public_suffix
(
	suffix		text COLLATE "C" PRIMARY KEY,
	wildcard	boolean NOT NULL DEFAULT false,
	exception	boolean NOT NULL DEFAULT false
);

-- Odoo 17's mining industries and every reveal id of each.
CREATE TABLE provider.industry
(
	reveal_id	text PRIMARY KEY,
	industry	text NOT NULL,
	sequence	integer NOT NULL
);
INSERT INTO provider.industry (reveal_id, industry, sequence) VALUES
	('30', 'Consumer Discretionary', 1), ('155', 'Consumer Discretionary', 1),
	('33', 'Consumer Staples', 4),
	('69', 'Banks & Insurance', 2), ('157', 'Banks & Insurance', 2),
	('86', 'Media', 7),
	('114', 'Real Estate', 21),
	('136', 'Transportation', 16),
	('138', 'Energy & Utilities', 22), ('156', 'Energy & Utilities', 22),
	('148', 'Materials', 17),
	('149', 'Telecommunication Services', 20),
	('150', 'Consumer Services', 9), ('151', 'Consumer Services', 9),
	('152', 'Retailing', 3),
	('153', 'Food, Beverage & Tobacco', 12), ('154', 'Food, Beverage & Tobacco', 12),
	('158', 'Diversified Financials & Financial Services', 15),
	('159', 'Diversified Financials & Financial Services', 15),
	('160', 'Health Care Equipment & Services', 11),
	('161', 'Pharmaceuticals, Biotechnology & Life Sciences', 13),
	('162', 'Capital Goods', 6),
	('163', 'Commercial & Professional Services', 5),
	('165', 'Software & Services', 8),
	('166', 'Technology Hardware & Equipment', 19),
	('167', 'Construction Materials', 23),
	('168', 'Independent Power and Renewable Electricity Producers', 14),
	('238', 'Automobiles & Components', 18),
	('239', 'Consumer Durables & Apparel', 10);

-- Odoo's 22 mining roles, with titles per seniority for synthetic contacts.
CREATE TABLE provider.role
(
	reveal_id	text PRIMARY KEY,
	position	integer NOT NULL,
	executive_title text NOT NULL,
	director_title text NOT NULL,
	manager_title text NOT NULL,
	always_executive boolean NOT NULL DEFAULT false
);
INSERT INTO provider.role VALUES
	('CEO', 1, 'Chief Executive Officer', 'Chief Executive Officer', 'Chief Executive Officer', true),
	('communications', 2, 'VP Communications', 'Director of Communications', 'Communications Manager', false),
	('consulting', 3, 'VP Consulting', 'Director of Consulting', 'Consulting Manager', false),
	('customer_service', 4, 'VP Customer Service', 'Director of Customer Service', 'Customer Service Manager', false),
	('education', 5, 'Chief Learning Officer', 'Director of Education', 'Education Manager', false),
	('engineering', 6, 'VP Engineering', 'Director of Engineering', 'Engineering Manager', false),
	('finance', 7, 'Chief Financial Officer', 'Director of Finance', 'Finance Manager', false),
	('founder', 8, 'Founder', 'Co-Founder', 'Co-Founder', true),
	('health_professional', 9, 'Chief Medical Officer', 'Medical Director', 'Clinical Manager', false),
	('human_resources', 10, 'Chief People Officer', 'Director of Human Resources', 'HR Manager', false),
	('information_technology', 11, 'Chief Information Officer', 'IT Director', 'IT Manager', false),
	('legal', 12, 'General Counsel', 'Director of Legal Affairs', 'Legal Manager', false),
	('marketing', 13, 'Chief Marketing Officer', 'Marketing Director', 'Marketing Manager', false),
	('operations', 14, 'Chief Operating Officer', 'Director of Operations', 'Operations Manager', false),
	('owner', 15, 'Owner', 'Owner', 'Owner', true),
	('president', 16, 'President', 'Vice President', 'Vice President', true),
	('product', 17, 'Chief Product Officer', 'Director of Product', 'Product Manager', false),
	('public_relations', 18, 'VP Public Relations', 'Director of Public Relations', 'Public Relations Manager', false),
	('real_estate', 19, 'VP Real Estate', 'Director of Real Estate', 'Real Estate Manager', false),
	('recruiting', 20, 'VP Talent Acquisition', 'Director of Recruiting', 'Recruiting Manager', false),
	('research', 21, 'Chief Scientific Officer', 'Director of Research', 'Research Manager', false),
	('sale', 22, 'Chief Revenue Officer', 'Sales Director', 'Sales Manager', false);

CREATE TABLE provider.seniority (reveal_id text PRIMARY KEY);
INSERT INTO provider.seniority VALUES ('director'), ('executive'), ('manager');

-- ---------------------------------------------------------------------------
-- Helpers
-- ---------------------------------------------------------------------------

-- A stable non-negative 28-bit hash of a text (md5 based: the same on every
-- PostgreSQL version and platform, unlike hashtext()).
CREATE OR REPLACE FUNCTION provider.h(t text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT ('x' || substr(md5(t), 1, 7))::bit(28)::integer $$;

-- 28 bits of a hex digest m from position i, as a non-negative integer.
CREATE OR REPLACE FUNCTION provider.hx(m text, i integer) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT ('x' || substr(m, i, 7))::bit(28)::integer $$;

-- Parse a PostgreSQL array literal from the CSV into text[], empty = NULL.
CREATE OR REPLACE FUNCTION provider.csv_array(t text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT CASE WHEN nullif(btrim(t), '') IS NULL THEN NULL ELSE t::text[] END $$;

-- Minimal HTML escaping for the credit page.
CREATE OR REPLACE FUNCTION provider.html(t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT replace(replace(replace(replace(replace(coalesce(t, ''),
	'&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'), '''', '&#39;') $$;

-- A JSON-RPC error object ({"code", "message", "data": {"name", "message"}}).
CREATE OR REPLACE FUNCTION provider.rpc_error(code integer, kind text, detail text)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS
$$
	SELECT jsonb_build_object('code', code,
		'message', CASE code
			WHEN -32700 THEN 'Parse error'
			WHEN -32600 THEN 'Invalid Request'
			WHEN -32601 THEN 'Method not found'
			WHEN -32602 THEN 'Invalid params'
			WHEN -32603 THEN 'Internal error'
			ELSE 'Server error' END,
		'data', jsonb_build_object('name', kind, 'message', detail))
$$;

-- The InsufficientCreditError of odoo-iap.md 1.3; data.message is itself a
-- JSON string, formatted as Odoo's Python json.dumps() does (key order,
-- ": " separators, the credit as a float such as 4.0).
CREATE OR REPLACE FUNCTION provider.credit_error(cost numeric, base_url text)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS
$$
	SELECT jsonb_build_object('code', 200, 'message', 'Odoo Server Error',
		'data', jsonb_build_object(
			'name', 'odoo.addons.iap.tools.iap_tools.InsufficientCreditError',
			'message', format('{"credit": %s, "service_name": "reveal", "base_url": %s, "message": "You don''t have enough credits on your account to use this service."}',
				CASE WHEN cost = trunc(cost) THEN trunc(cost)::text || '.0' ELSE cost::text END,
				to_json(base_url || '/iap/1/credit')::text)))
$$;

-- Raise a validation error the dispatcher turns into a JSON-RPC error:
-- LP600 = invalid request (400, -32600), LP602 = invalid params (400,
-- -32602), LP413 = too many items (413, -32602).
CREATE OR REPLACE FUNCTION provider.reject(state text, msg text) RETURNS void
LANGUAGE plpgsql AS
$$
BEGIN
	RAISE EXCEPTION USING ERRCODE = state, MESSAGE = msg;
END
$$;

-- Is this JSON value an integer number?
CREATE OR REPLACE FUNCTION provider.is_int(v jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS
$$
	SELECT v IS NOT NULL AND jsonb_typeof(v) = 'number'
		AND (v::text)::numeric = trunc((v::text)::numeric)
		AND abs((v::text)::numeric) < 2147483648
$$;

-- ---------------------------------------------------------------------------
-- Directory load and look-up
-- ---------------------------------------------------------------------------

-- Turn the staged CSV and PSL lines into the directory tables and indexes.
-- Called by "lead_provider init" after COPY, in the same transaction.
CREATE OR REPLACE FUNCTION provider.finish_load() RETURNS integer
LANGUAGE plpgsql AS
$$
DECLARE
	n integer;
BEGIN
	INSERT INTO provider.org (id, clearbit_id, domain, name, country_code,
		state_code, industry_reveal_id, employees, mine_rank, source, company,
		company_text)
	SELECT row_number() OVER (ORDER BY s.clearbit_id),
		s.clearbit_id, s.domain, s.name, s.country_code, s.state_code,
		s.industry_reveal_id, s.employees, provider.h(s.clearbit_id), s.source,
		c.company, c.company::text
	FROM (
		SELECT nullif(btrim(clearbit_id), '') AS clearbit_id,
			rtrim(lower(btrim(domain)), '.') AS domain,
			provider.csv_array(lower(aliases)) AS aliases,
			nullif(name, '') AS name, nullif(legal_name, '') AS legal_name,
			nullif(description, '') AS description, nullif(logo, '') AS logo,
			nullif(company_type, '') AS company_type,
			nullif(btrim(founded_year), '')::integer AS founded_year,
			nullif(sector, '') AS sector,
			nullif(industry_group, '') AS industry_group,
			nullif(industry, '') AS industry,
			nullif(sub_industry, '') AS sub_industry,
			nullif(btrim(industry_reveal_id), '') AS industry_reveal_id,
			nullif(btrim(employees), '')::integer AS employees,
			nullif(estimated_annual_revenue, '') AS estimated_annual_revenue,
			provider.csv_array(phone_numbers) AS phone_numbers,
			provider.csv_array(email) AS email,
			nullif(timezone, '') AS timezone,
			provider.csv_array(tech) AS tech,
			nullif(twitter, '') AS twitter, nullif(facebook, '') AS facebook,
			nullif(linkedin, '') AS linkedin, nullif(crunchbase, '') AS crunchbase,
			nullif(location, '') AS location, nullif(city, '') AS city,
			nullif(postal_code, '') AS postal_code,
			nullif(upper(btrim(state_code)), '') AS state_code,
			nullif(state_name, '') AS state_name,
			nullif(upper(btrim(country_code)), '') AS country_code,
			nullif(country_name, '') AS country_name,
			nullif(source, '') AS source
		FROM provider.org_stage
	) s
	CROSS JOIN LATERAL (SELECT jsonb_build_object(
			'name', s.name,
			'legal_name', s.legal_name,
			'domain', s.domain,
			'clearbit_id', s.clearbit_id,
			'logo', s.logo,
			'description', s.description,
			'company_type', s.company_type,
			'founded_year', s.founded_year,
			'sector', s.sector,
			'sector_primary', s.sector,
			'industry_group', s.industry_group,
			'industry', s.industry,
			'sub_industry', s.sub_industry,
			'employees', s.employees,
			'estimated_annual_revenue', s.estimated_annual_revenue,
			'phone', s.phone_numbers[1],
			'phone_numbers', coalesce(to_jsonb(s.phone_numbers), '[]'::jsonb),
			'email', coalesce(to_jsonb(s.email), '[]'::jsonb),
			'timezone', s.timezone,
			'tech', coalesce(to_jsonb(s.tech), '[]'::jsonb),
			'twitter', s.twitter,
			'facebook', s.facebook,
			'linkedin', s.linkedin,
			'crunchbase', s.crunchbase,
			'location', s.location,
			'city', s.city,
			'postal_code', s.postal_code,
			'state_code', s.state_code,
			'state_name', s.state_name,
			'country_code', s.country_code,
			'country_name', s.country_name) AS company) c
	WHERE s.clearbit_id IS NOT NULL AND s.domain <> '';
	GET DIAGNOSTICS n = ROW_COUNT;

	-- Primary domains first, so that an alias never hides an organisation's
	-- own domain.
	INSERT INTO provider.org_domain (domain, org_id)
	SELECT domain, min(id) FROM provider.org GROUP BY domain;
	INSERT INTO provider.org_domain (domain, org_id)
	SELECT DISTINCT ON (a.alias) a.alias, o.id
	FROM provider.org o
	JOIN provider.org_stage s ON s.clearbit_id = o.clearbit_id
	CROSS JOIN LATERAL unnest(provider.csv_array(lower(s.aliases))) AS a(alias)
	WHERE a.alias <> ''
	ORDER BY a.alias, o.id
	ON CONFLICT (domain) DO NOTHING;

	INSERT INTO provider.public_suffix (suffix, wildcard, exception)
	SELECT DISTINCT ON (suffix) suffix, wildcard, exception
	FROM (
		SELECT lower(regexp_replace(l, '^(\*\.|!)', '')) AS suffix,
			l LIKE '*.%' AS wildcard, l LIKE '!%' AS exception
		FROM (SELECT btrim(split_part(line, ' ', 1)) AS l FROM provider.psl_stage) x
		WHERE l <> '' AND l NOT LIKE '//%'
	) y
	ORDER BY suffix, exception DESC;

	-- A public suffix or a name without a dot is never matched: the names
	-- a look-up may match are the others.
	DELETE FROM provider.org_domain od WHERE provider.is_public_suffix(od.domain);

	TRUNCATE provider.org_stage, provider.psl_stage;

	CREATE INDEX org_country_rank_idx ON provider.org (country_code, mine_rank);
	CREATE INDEX org_country_state_idx ON provider.org (country_code, state_code);
	CREATE INDEX org_industry_rank_idx ON provider.org (industry_reveal_id, mine_rank);
	CREATE INDEX org_rank_idx ON provider.org (mine_rank);
	RETURN n;
END
$$;

-- Normalise what a client sent as a domain: lower-case, trimmed, without a
-- trailing dot, and the part after "@" if an e-mail address was sent.
-- Linear in the length of d.
CREATE OR REPLACE FUNCTION provider.norm_domain(d text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT rtrim(lower(btrim(split_part(d, '@', -1))), '.') $$;

-- Can this normalised domain be a DNS name at all: at most 253 characters
-- and 127 labels (RFC 1035)?  Only such names are split into their parent
-- names for a look-up; the split is quadratic in the number of labels, so
-- an unbounded domain would hold a thread and its connection for minutes.
-- Both counts are linear.
CREATE OR REPLACE FUNCTION provider.domain_ok(d text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$
	SELECT length(d) <= 253
		AND length(d) - length(replace(d, '.', '')) + 1 <= 127
$$;

-- Is this name a public suffix (never matched as an organisation)?
-- finish_load() removes such names from provider.org_domain.
CREATE OR REPLACE FUNCTION provider.is_public_suffix(d text) RETURNS boolean
LANGUAGE sql STABLE AS
$$
	SELECT EXISTS (SELECT 1 FROM provider.public_suffix p
				   WHERE p.suffix = d AND NOT p.exception)
		OR (NOT EXISTS (SELECT 1 FROM provider.public_suffix p
						WHERE p.suffix = d AND p.exception)
			AND EXISTS (SELECT 1 FROM provider.public_suffix p
						WHERE p.wildcard
						AND p.suffix = substr(d, strpos(d, '.') + 1)))
		OR strpos(d, '.') = 0
$$;

-- The organisation for a domain: exact domain or alias, else the longest
-- parent domain (labels stripped from the left) that is known (provider.
-- org_domain holds no public suffix).  NULL when nothing matches or the
-- domain is over the limits of provider.domain_ok().  rpc_enrich() writes
-- the same look-up out for a whole request: keep them equal.
CREATE OR REPLACE FUNCTION provider.find_org(d text) RETURNS integer
LANGUAGE sql STABLE AS
$$
	SELECT od.org_id
	FROM (SELECT string_to_array(n.d, '.') AS l
		  FROM (SELECT provider.norm_domain(d) AS d) n
		  WHERE provider.domain_ok(n.d)) s
	CROSS JOIN LATERAL generate_series(1, cardinality(s.l) - 1) AS i
	JOIN provider.org_domain od
		ON od.domain = array_to_string(s.l[i:cardinality(s.l)], '.')
	ORDER BY i
	LIMIT 1
$$;

-- ---------------------------------------------------------------------------
-- Accounts and the ledger
-- ---------------------------------------------------------------------------

-- The sum of an account's slots, each locked in the order of the slots
-- (waiting for the requests that hold them): the account to itself, for
-- an operator's change or a charge no free slot covers.  NULL when there
-- is no such account.
CREATE OR REPLACE FUNCTION provider.lock_slots(p_token text)
RETURNS numeric LANGUAGE sql AS
$$
	SELECT sum(x.balance) FROM
		(SELECT s.balance FROM provider.account_slot s WHERE s.token = p_token
		 ORDER BY s.slot FOR UPDATE) x
$$;

-- The account's balance, creating the account with p_trial credits (and its
-- "trial" ledger row) when there is none.  Called by add_credits() (the
-- operator's command, p_trial 0) and by a charging call when the daemon
-- runs with --trial-credits N > 0; never by a balance call.
CREATE OR REPLACE FUNCTION provider.ensure_account(p_token text, p_trial numeric)
RETURNS numeric LANGUAGE plpgsql AS
$$
BEGIN
	IF EXISTS (SELECT 1 FROM provider.account WHERE token = p_token) THEN
		RETURN provider.balance(p_token);
	END IF;
	INSERT INTO provider.account (token) VALUES (p_token)
	ON CONFLICT (token) DO NOTHING;
	IF FOUND THEN
		PERFORM provider.make_slots(p_token, greatest(coalesce(p_trial, 0), 0));
		IF coalesce(p_trial, 0) > 0 THEN
			INSERT INTO provider.ledger (token, delta, reason)
			VALUES (p_token, p_trial, 'trial');
		END IF;
	END IF;
	RETURN provider.balance(p_token);
END
$$;

-- Admin: add (or, negative, remove) credits; never below zero.  Creates the
-- account without a trial grant when needed.  Returns the new balance.
CREATE OR REPLACE FUNCTION provider.add_credits(token text, credits numeric)
RETURNS numeric LANGUAGE plpgsql AS
$$
DECLARE
	t text := token;
	b numeric;
	d numeric;
BEGIN
	IF t IS NULL OR t !~ '^[A-Za-z0-9_+.-]{1,128}$' THEN
		RAISE EXCEPTION 'invalid account token: %', coalesce(t, 'null')
			USING HINT = 'a token is 1 to 128 characters of [A-Za-z0-9_+.-]';
	END IF;
	PERFORM provider.ensure_account(t, 0);
	b := provider.lock_slots(t);
	d := greatest(coalesce(credits, 0), -b);
	IF d <> 0 THEN
		PERFORM provider.spread(t, b + d);
		UPDATE provider.account a SET updated_at = now() WHERE a.token = t;
		INSERT INTO provider.ledger (token, delta, reason, detail)
		VALUES (t, d, 'admin', jsonb_build_object('requested', credits));
	END IF;
	RETURN b + d;
END
$$;

-- Take p_cost credits (> 0) from an account that exists, in the caller's
-- transaction: from a slot no other request holds that covers the cost
-- (tried from a place of this session's own, so that concurrent requests
-- take different slots), else from all of them, waiting for the requests
-- that hold them, and spread again.  False, nothing taken, when the whole
-- balance does not cover the cost.
CREATE OR REPLACE FUNCTION provider.take_credits(p_token text, p_cost numeric)
RETURNS boolean LANGUAGE plpgsql AS
$$
DECLARE
	k integer;
	b numeric;
BEGIN
	SELECT s.slot INTO k FROM provider.account_slot s
	WHERE s.token = p_token AND s.balance >= p_cost
	ORDER BY (s.slot + pg_backend_pid()) % provider.nslots()
	LIMIT 1 FOR UPDATE SKIP LOCKED;
	IF FOUND THEN
		UPDATE provider.account_slot s SET balance = s.balance - p_cost
		WHERE s.token = p_token AND s.slot = k;
		RETURN true;
	END IF;
	b := provider.lock_slots(p_token);
	IF coalesce(b, 0) < p_cost THEN
		RETURN false;
	END IF;
	PERFORM provider.spread(p_token, b - p_cost);
	RETURN true;
END
$$;

-- The balance of an account, NULL when there is none.
CREATE OR REPLACE FUNCTION provider.balance(token text) RETURNS numeric
LANGUAGE sql STABLE AS
$$ SELECT sum(s.balance) FROM provider.account_slot s WHERE s.token = balance.token $$;

-- Credits charged by enrichment and mining, as a positive number.
CREATE OR REPLACE FUNCTION provider.spent(token text) RETURNS numeric
LANGUAGE sql STABLE AS
$$
	SELECT coalesce(-sum(l.delta), 0) FROM provider.ledger l
	WHERE l.token = spent.token AND l.reason IN ('enrich', 'mine')
$$;

-- Admin listing.
CREATE OR REPLACE FUNCTION provider.accounts()
RETURNS TABLE (token text, balance numeric, spent numeric, created timestamptz)
LANGUAGE sql STABLE AS
$$
	SELECT a.token, coalesce(provider.balance(a.token), 0),
		coalesce((SELECT -sum(l.delta) FROM provider.ledger l
				  WHERE l.token = a.token AND l.reason IN ('enrich', 'mine')), 0),
		a.created_at
	FROM provider.account a ORDER BY a.created_at, a.token
$$;

-- Answers are texts from here on: an endpoint returns its answer as the
-- member of the JSON-RPC response that carries it, "result": ... or
-- "error": ..., which provider.rpc() writes into the envelope after "id"
-- (no copy or character count of the answer but that one concatenation).
-- An enrichment answer is 40 kB of company records
-- for 50 domains; built as jsonb it was taken apart and put together again
-- at each step (aggregate, envelope, concatenation, output), half of a
-- request's CPU.  Functions of an older version returned jsonb: dropped.
DROP FUNCTION IF EXISTS provider.stored_reply(text, text, text);
DROP FUNCTION IF EXISTS provider.open_call(text, numeric, text, text);
DROP FUNCTION IF EXISTS provider.charge(text, text, text, numeric, jsonb, jsonb, text);
DROP FUNCTION IF EXISTS provider.rpc_enrich(jsonb, text, numeric, text, integer);
DROP FUNCTION IF EXISTS provider.rpc_mine(jsonb, text, numeric, text);

-- A stored answer for (token, service, id), if any and younger than 7 days.
-- PL/pgSQL, not SQL: a SQL function that cannot be inlined is parsed and
-- planned again at every call, a PL/pgSQL one keeps its plan for the
-- session (the provider's connections live as long as its threads).
CREATE OR REPLACE FUNCTION provider.stored_reply(p_token text, p_service text, p_id text)
RETURNS text LANGUAGE plpgsql STABLE AS
$$
BEGIN
	RETURN (SELECT r.response FROM provider.reply r
			WHERE r.token = p_token AND r.service = p_service AND r.rpc_id = p_id
			AND r.created_at > now() - interval '7 days');
END
$$;

-- The start of every charging call: the account, created with the trial
-- credits on first use only when the daemon grants some (--trial-credits
-- N > 0; the default is none), and, for an id already answered, the stored
-- answer to send again (NULL otherwise).  Without a trial grant an unknown
-- token gets no account: it writes nothing, and charge() refuses any cost.
CREATE OR REPLACE FUNCTION provider.open_call(p_token text, p_trial numeric,
	p_service text, p_id text)
RETURNS text LANGUAGE plpgsql AS
$$
BEGIN
	IF coalesce(p_trial, 0) > 0 THEN
		PERFORM provider.ensure_account(p_token, p_trial);
	END IF;
	IF p_id IS NULL THEN
		RETURN NULL;
	END IF;
	RETURN provider.stored_reply(p_token, p_service, p_id);
END
$$;

-- Charge cost credits for a computed result (p_result, JSON text) and store
-- the answer, in the caller's transaction.  Requests with the same id are
-- taken one at a time (a transaction-level advisory lock on the id), so a
-- concurrent request with an id being answered waits and gets the stored
-- answer; credits come from provider.take_credits, which never overdraws
-- the account and lets requests with different ids charge it at once.
-- Returns what to send: a stored answer, the InsufficientCreditError when
-- the balance does not cover the cost (nothing charged, answered false),
-- else "result": p_result.  A token without an account has nothing to
-- charge: a free answer is sent but not stored, any cost is refused;
-- nothing is written either way.
CREATE OR REPLACE FUNCTION provider.charge(p_token text, p_service text,
	p_id text, p_cost numeric, p_result text, p_detail jsonb, p_base_url text,
	OUT answer text, OUT answered boolean)
LANGUAGE plpgsql AS
$$
DECLARE
	known boolean := EXISTS (SELECT 1 FROM provider.account WHERE token = p_token);
BEGIN
	answered := true;
	IF known AND p_id IS NOT NULL THEN
		PERFORM pg_advisory_xact_lock(hashtextextended(p_token || ' ' || p_service || ' ' || p_id, 0));
		answer := provider.stored_reply(p_token, p_service, p_id);
		IF answer IS NOT NULL THEN
			RETURN;
		END IF;
	END IF;
	IF p_cost > 0 AND NOT (known AND provider.take_credits(p_token, p_cost)) THEN
		-- A refusal charged nothing and is not stored: the same request
		-- sent again after credits are added is evaluated again.
		answer := '"error": ' || provider.credit_error(p_cost, p_base_url)::text;
		answered := false;
		RETURN;
	END IF;
	answer := '"result": ' || p_result;
	IF NOT known THEN
		RETURN;
	END IF;
	IF p_cost > 0 THEN
		INSERT INTO provider.ledger (token, delta, reason, rpc_id, detail)
		VALUES (p_token, -p_cost, p_service, p_id, p_detail);
	END IF;
	IF p_id IS NOT NULL THEN
		INSERT INTO provider.reply (token, service, rpc_id, response)
		VALUES (p_token, p_service, p_id, answer)
		ON CONFLICT (token, service, rpc_id)
		DO UPDATE SET response = EXCLUDED.response, created_at = now();
		-- Forget old replies now and then (about one call in 200).
		IF random() < 0.005 THEN
			DELETE FROM provider.reply WHERE created_at < now() - interval '7 days';
		END IF;
	END IF;
END
$$;

-- ---------------------------------------------------------------------------
-- Endpoints
-- ---------------------------------------------------------------------------

-- Lead enrichment: {domains: {lead_id: domain}} -> {lead_id: company|false}.
-- 1 credit per distinct organisation found: acme.com and mail.acme.com in
-- one request are one company and cost one credit.
CREATE OR REPLACE FUNCTION provider.rpc_enrich(params jsonb, rpc_id text,
	trial numeric, base_url text DEFAULT 'http://127.0.0.1:7070',
	max_domains integer DEFAULT 1000)
RETURNS text LANGUAGE plpgsql
-- a few dozen index probes: never hash the whole domain table, nor cache
-- probes of names that are all different
SET enable_hashjoin = off SET enable_mergejoin = off SET enable_memoize = off
SET jit = off AS
$$
DECLARE
	tok text := params->>'account_token';
	doms jsonb := params->'domains';
	bad text;
	n integer;
	nlong integer;
	longkey text;
	r text;
	res text;
	cost integer;
	found_domains text[];
BEGIN
	IF doms IS NULL OR jsonb_typeof(doms) <> 'object' THEN
		PERFORM provider.reject('LP602', 'params.domains must be an object mapping lead ids to domains');
	END IF;
	-- A value that cannot be a domain name (provider.domain_ok) is never
	-- split into parent names.  In a batch it is answered false, like any
	-- domain naming no company, so that one lead's bad e-mail does not fail
	-- its neighbours (Odoo skips a failed batch and retries it only within
	-- the leads' first hour); a request in which no value is a domain name
	-- is refused.  One pass over the values for the three checks.
	SELECT count(*), min(e.key) FILTER (WHERE NOT e.str),
		count(*) FILTER (WHERE NOT e.ok), min(e.key) FILTER (WHERE NOT e.ok)
	INTO n, bad, nlong, longkey
	FROM (SELECT key, jsonb_typeof(value) = 'string' AS str,
			  provider.domain_ok(provider.norm_domain(value #>> '{}')) AS ok
		  FROM jsonb_each(doms)) e;
	IF n > max_domains THEN
		PERFORM provider.reject('LP413', format('params.domains has %s entries, more than the %s allowed per request', n, max_domains));
	END IF;
	IF bad IS NOT NULL THEN
		PERFORM provider.reject('LP602', format('params.domains[%s] must be a string (a domain such as "acme.com")', to_jsonb(bad)));
	END IF;
	IF n > 0 AND nlong = n THEN
		PERFORM provider.reject('LP602', format('params.domains[%s] is not a domain name: a domain has at most 253 characters and 127 labels', to_jsonb(longkey)));
	END IF;

	r := provider.open_call(tok, trial, 'enrich', rpc_id);
	IF r IS NOT NULL THEN
		RETURN r;
	END IF;

	-- All domains in one statement: for each, the longest of its names
	-- (the domain itself, then its parents, labels stripped from the left)
	-- that provider.org_domain knows, as in provider.find_org(); that table
	-- holds no public suffix, so no suffix test is needed here.  A value
	-- over the limits is split into nothing (a NULL array), whatever the
	-- plan.  The result object is written as text from the companies'
	-- stored JSON texts: the keys are jsonb_each()'s, so distinct, each
	-- escaped by to_json().
	SELECT '{' || coalesce(string_agg(to_json(q.key)::text || ': '
									  || coalesce(o.company_text, 'false'), ', '), '') || '}',
		count(DISTINCT o.id),
		array_agg(DISTINCT nd.d) FILTER (WHERE o.id IS NOT NULL)
	INTO res, cost, found_domains
	FROM jsonb_each(doms) q
	CROSS JOIN LATERAL provider.norm_domain(q.value #>> '{}') AS nd(d)
	CROSS JOIN LATERAL string_to_array(CASE WHEN provider.domain_ok(nd.d) THEN nd.d END, '.') AS l
	LEFT JOIN LATERAL (
		SELECT od.org_id
		FROM generate_series(1, cardinality(l) - 1) AS i
		JOIN provider.org_domain od ON od.domain = array_to_string(l[i:cardinality(l)], '.')
		ORDER BY i
		LIMIT 1) hit ON true
	LEFT JOIN provider.org o ON o.id = hit.org_id;

	RETURN (provider.charge(tok, 'enrich', rpc_id, cost, res,
		jsonb_build_object('requested', n, 'found', found_domains), base_url)).answer;
END
$$;

-- Synthetic contacts of an organisation: deterministic (seeded by the
-- clearbit_id, role and index), never real people, marked "synthetic".
-- Role mode: p_roles in order (preferred first), 1 to 3 people per role;
-- no role given means every role in a per-company order.  Seniority mode
-- (p_seniority not null): people of every role with that seniority.
-- Called once per company by rpc_mine, whose force_custom_plan would, from
-- PostgreSQL 18 on (SQL functions use the plan cache), plan this query
-- again at every call: six times slower.  Its plan does not depend on the
-- arguments, so one generic plan it is, as in older versions.
CREATE OR REPLACE FUNCTION provider.contacts(p_cid text, p_domain text,
	p_roles text[], p_seniority text, p_n integer)
RETURNS jsonb LANGUAGE sql STABLE
SET plan_cache_mode = force_generic_plan AS
$$
	WITH given(a) AS (SELECT ARRAY['James','Mary','John','Patricia','Robert',
		'Jennifer','Michael','Linda','David','Elizabeth','William','Barbara',
		'Richard','Susan','Joseph','Jessica','Thomas','Sarah','Charles','Karen',
		'Daniel','Nancy','Matthew','Lisa','Anthony','Sandra','Mark','Emily',
		'Paul','Anna','Lucas','Sofia','Noah','Emma','Luca','Julia','Leon',
		'Marie','Hugo','Laura','Ana','Pedro','Elena','Marco','Sara','Jan',
		'Eva','Ahmed','Fatima','Kenji','Yuki','Wei','Mei','Raj','Priya']),
	family(a) AS (SELECT ARRAY['Smith','Johnson','Williams','Brown','Jones',
		'Garcia','Miller','Davis','Rodriguez','Martinez','Wilson','Anderson',
		'Taylor','Thomas','Moore','Martin','Lee','Thompson','White','Clark',
		'Lewis','Walker','Hall','Young','King','Wright','Lopez','Hill','Green',
		'Adams','Baker','Nelson','Mueller','Schmidt','Schneider','Fischer',
		'Weber','Dubois','Laurent','Bernard','Rossi','Russo','Ferrari',
		'Silva','Santos','Costa','Jansen','de Vries','Peeters','Nowak',
		'Kowalski','Novak','Tanaka','Sato','Kim','Park','Chen','Wang','Patel',
		'Singh','Khan','Haddad','Nielsen','Hansen','Larsen','Johansson']),
	roles AS (
		SELECT r.reveal_id, r.executive_title, r.director_title, r.manager_title,
			r.always_executive,
			CASE WHEN p_seniority IS NULL AND cardinality(p_roles) > 0
				THEN array_position(p_roles, r.reveal_id)
				ELSE provider.h(p_cid || '/order/' || r.reveal_id) END AS pos
		FROM provider.role r
		WHERE p_seniority IS NOT NULL OR coalesce(cardinality(p_roles), 0) = 0
			OR r.reveal_id = ANY (p_roles)
	),
	people AS (
		SELECT ro.*, k,
			CASE WHEN ro.always_executive THEN 'executive'
				ELSE (ARRAY['executive','director','director','manager','manager','manager'])
					[1 + provider.hx(m, 1) % 6]
			END AS seniority,
			provider.hx(m, 9) AS hg,
			provider.hx(m, 17) AS hf
		FROM roles ro
		CROSS JOIN LATERAL generate_series(0,
			CASE WHEN ro.always_executive THEN 0
				ELSE provider.h(p_cid || '/n/' || ro.reveal_id) % 3 END) AS k
		CROSS JOIN LATERAL md5(p_cid || '/p/' || ro.reveal_id || '/' || k) AS m
	),
	picked AS (
		SELECT p.*, g.a[1 + p.hg % cardinality(g.a)] AS first_name,
			f.a[1 + p.hf % cardinality(f.a)] AS last_name
		FROM people p, given g, family f
		WHERE p_seniority IS NULL OR p.seniority = p_seniority
		ORDER BY p.pos, p.k
		LIMIT p_n
	),
	named AS (
		SELECT pk.*,
			lower(regexp_replace(first_name, '[^A-Za-z]', '', 'g') || '.'
				|| regexp_replace(last_name, '[^A-Za-z]', '', 'g')) AS local,
			row_number() OVER (ORDER BY pos, k) AS ord
		FROM picked pk
	),
	numbered AS (
		SELECT n.*, row_number() OVER (PARTITION BY local ORDER BY ord) AS dup
		FROM named n
	)
	SELECT coalesce(jsonb_agg(jsonb_build_object(
		'full_name', first_name || ' ' || last_name,
		'email', local || CASE WHEN dup > 1 THEN dup::text ELSE '' END || '@' || p_domain,
		'phone', NULL,
		'title', CASE seniority WHEN 'executive' THEN executive_title
			WHEN 'director' THEN director_title ELSE manager_title END,
		'role', reveal_id,
		'seniority', seniority,
		'synthetic', true) ORDER BY ord), '[]'::jsonb)
	FROM numbered
$$;

-- Lead mining: Odoo's payload (odoo-iap.md 4.3) -> {data: [...],
-- credit_error: false}.  1 credit per company + 1 per contact delivered;
-- never the same company twice to one account for one dbuuid.
CREATE OR REPLACE FUNCTION provider.rpc_mine(params jsonb, rpc_id text,
	trial numeric, base_url text DEFAULT 'http://127.0.0.1:7070')
RETURNS text LANGUAGE plpgsql
-- plan the mining query for the filters actually given, every time
SET plan_cache_mode = force_custom_plan SET jit = off AS
$$
DECLARE
	tok text := params->>'account_token';
	db text;
	d jsonb := params->'data';
	lead_number integer;
	stype text;
	people boolean;
	cc text[];
	cs text[];
	all_cc text[] := '{}';
	all_countries boolean := true;
	rids text[];
	smin integer;
	smax integer;
	cnum integer;
	ftype text;
	roles text[];
	sen text;
	el jsonb;
	st jsonb;
	x text;
	r text;
	ok boolean;
	res jsonb;
	ncomp integer;
	ncont integer;
	ids text[];
BEGIN
	IF jsonb_typeof(params->'dbuuid') IS DISTINCT FROM 'string' OR params->>'dbuuid' = '' THEN
		PERFORM provider.reject('LP602', 'params.dbuuid must be a non-empty string (mining never returns a company twice to one database)');
	END IF;
	db := params->>'dbuuid';
	IF d IS NULL OR jsonb_typeof(d) <> 'object' THEN
		PERFORM provider.reject('LP602', 'params.data must be an object (the lead mining payload)');
	END IF;

	IF NOT provider.is_int(d->'lead_number') OR (d->>'lead_number')::numeric NOT BETWEEN 1 AND 200 THEN
		PERFORM provider.reject('LP602', 'data.lead_number must be an integer from 1 to 200');
	END IF;
	lead_number := (d->>'lead_number')::numeric::integer;

	stype := coalesce(d->>'search_type', 'companies');
	IF (d ? 'search_type' AND jsonb_typeof(d->'search_type') <> 'string')
		OR stype NOT IN ('companies', 'people') THEN
		PERFORM provider.reject('LP602', 'data.search_type must be "companies" or "people"');
	END IF;
	people := stype = 'people';

	IF d ? 'countries' AND jsonb_typeof(d->'countries') <> 'null' THEN
		IF jsonb_typeof(d->'countries') <> 'array' THEN
			PERFORM provider.reject('LP602', 'data.countries must be a list of {"code", "states"}');
		END IF;
		cc := '{}';
		cs := '{}';
		FOR el IN SELECT value FROM jsonb_array_elements(d->'countries') LOOP
			all_countries := false;
			IF jsonb_typeof(el) = 'string' THEN
				el := jsonb_build_object('code', el);
			END IF;
			IF jsonb_typeof(el) <> 'object' OR jsonb_typeof(el->'code') IS DISTINCT FROM 'string' THEN
				PERFORM provider.reject('LP602', 'data.countries[] items must be objects with a string "code"');
			END IF;
			IF el ? 'states' AND jsonb_typeof(el->'states') NOT IN ('array', 'null') THEN
				PERFORM provider.reject('LP602', 'data.countries[].states must be a list of state codes');
			END IF;
			IF coalesce(jsonb_array_length(CASE WHEN jsonb_typeof(el->'states') = 'array' THEN el->'states' END), 0) = 0 THEN
				cc := cc || upper(el->>'code');
			ELSE
				FOR st IN SELECT value FROM jsonb_array_elements(el->'states') LOOP
					IF jsonb_typeof(st) <> 'string' THEN
						PERFORM provider.reject('LP602', 'data.countries[].states items must be strings');
					END IF;
					x := upper(st #>> '{}');
					-- accept "US-CA" as well as Odoo's "CA"
					IF x LIKE upper(el->>'code') || '-%' THEN
						x := substr(x, length(el->>'code') + 2);
					END IF;
					cs := cs || (upper(el->>'code') || '/' || x);
				END LOOP;
				all_cc := all_cc || upper(el->>'code');
			END IF;
		END LOOP;
	END IF;

	IF d ? 'industry_ids' AND jsonb_typeof(d->'industry_ids') <> 'null' THEN
		IF jsonb_typeof(d->'industry_ids') <> 'array' THEN
			PERFORM provider.reject('LP602', 'data.industry_ids must be a list of industry reveal id strings');
		END IF;
		IF EXISTS (SELECT 1 FROM jsonb_array_elements(d->'industry_ids') v
				   WHERE jsonb_typeof(v) NOT IN ('string', 'number')) THEN
			PERFORM provider.reject('LP602', 'data.industry_ids items must be strings such as "165"');
		END IF;
		IF jsonb_array_length(d->'industry_ids') > 0 THEN
			-- every reveal id of every industry asked for
			SELECT coalesce(array_agg(DISTINCT i2.reveal_id), '{}') INTO rids
			FROM provider.industry i1
			JOIN provider.industry i2 ON i2.industry = i1.industry
			WHERE i1.reveal_id IN (SELECT btrim(v #>> '{}') FROM jsonb_array_elements(d->'industry_ids') v);
		END IF;
	END IF;

	IF d->'company_size_min' IS NOT NULL AND jsonb_typeof(d->'company_size_min') <> 'null' THEN
		IF NOT provider.is_int(d->'company_size_min') OR (d->>'company_size_min')::numeric < 0 THEN
			PERFORM provider.reject('LP602', 'data.company_size_min must be a non-negative integer');
		END IF;
		smin := (d->>'company_size_min')::numeric::integer;
	END IF;
	IF d->'company_size_max' IS NOT NULL AND jsonb_typeof(d->'company_size_max') <> 'null' THEN
		IF NOT provider.is_int(d->'company_size_max') OR (d->>'company_size_max')::numeric < 0 THEN
			PERFORM provider.reject('LP602', 'data.company_size_max must be a non-negative integer');
		END IF;
		smax := (d->>'company_size_max')::numeric::integer;
	END IF;
	IF smin IS NOT NULL AND smax IS NOT NULL AND smin > smax THEN
		PERFORM provider.reject('LP602', 'data.company_size_min must not exceed data.company_size_max');
	END IF;

	IF people THEN
		IF NOT provider.is_int(d->'contact_number') OR (d->>'contact_number')::numeric NOT BETWEEN 1 AND 5 THEN
			PERFORM provider.reject('LP602', 'data.contact_number must be an integer from 1 to 5 in people mode');
		END IF;
		cnum := (d->>'contact_number')::numeric::integer;
		ftype := coalesce(d->>'contact_filter_type', 'role');
		IF ftype NOT IN ('role', 'seniority') THEN
			PERFORM provider.reject('LP602', 'data.contact_filter_type must be "role" or "seniority"');
		END IF;
		IF ftype = 'role' THEN
			roles := '{}';
			IF jsonb_typeof(d->'preferred_role') = 'string' THEN
				roles := roles || (d->>'preferred_role');
			ELSIF d->'preferred_role' IS NOT NULL AND d->'preferred_role' NOT IN ('false', 'null') THEN
				PERFORM provider.reject('LP602', 'data.preferred_role must be a role reveal id string or false');
			END IF;
			IF d->'other_roles' IS NOT NULL AND jsonb_typeof(d->'other_roles') <> 'null' THEN
				IF jsonb_typeof(d->'other_roles') <> 'array' OR EXISTS (
					SELECT 1 FROM jsonb_array_elements(d->'other_roles') v
					WHERE jsonb_typeof(v) <> 'string') THEN
					PERFORM provider.reject('LP602', 'data.other_roles must be a list of role reveal id strings');
				END IF;
				SELECT roles || coalesce(array_agg(v ORDER BY o), '{}') INTO roles
				FROM jsonb_array_elements_text(d->'other_roles') WITH ORDINALITY AS t(v, o)
				WHERE v <> ALL (roles);
			END IF;
			SELECT min(x2) INTO x FROM unnest(roles) x2
			WHERE NOT EXISTS (SELECT 1 FROM provider.role WHERE reveal_id = x2);
			IF x IS NOT NULL THEN
				PERFORM provider.reject('LP602', format('unknown role %s in data.preferred_role/other_roles', to_jsonb(x)));
			END IF;
		ELSE
			sen := d->>'seniority';
			IF jsonb_typeof(d->'seniority') IS DISTINCT FROM 'string'
				OR NOT EXISTS (SELECT 1 FROM provider.seniority WHERE reveal_id = sen) THEN
				PERFORM provider.reject('LP602', 'data.seniority must be "director", "executive" or "manager" in seniority mode');
			END IF;
		END IF;
	END IF;

	r := provider.open_call(tok, trial, 'mine', rpc_id);
	IF r IS NOT NULL THEN
		RETURN r;
	END IF;

	-- One miner per (account, database) at a time, so that concurrent
	-- requests cannot hand out the same company twice.
	PERFORM pg_advisory_xact_lock(provider.h('mine/' || tok || '/' || db));

	WITH pick AS (
		SELECT o.clearbit_id, o.domain, o.company, o.mine_rank
		FROM provider.org o
		WHERE (all_countries OR (o.country_code = ANY (cc || all_cc)
			   AND (o.country_code = ANY (cc)
					OR (o.country_code || '/' || o.state_code) = ANY (cs))))
		AND (rids IS NULL OR o.industry_reveal_id = ANY (rids))
		AND (smin IS NULL OR o.employees >= smin)
		AND (smax IS NULL OR o.employees <= smax)
		-- OFFSET 0 keeps this a per-row primary-key probe, whatever the
		-- statistics of provider.mined say
		AND NOT EXISTS (SELECT 1 FROM provider.mined m
						WHERE m.token = tok AND m.dbuuid = db
						AND m.clearbit_id = o.clearbit_id
						OFFSET 0)
		ORDER BY o.mine_rank, o.clearbit_id
		LIMIT lead_number
	),
	withp AS (
		SELECT p.*, CASE WHEN people
			THEN provider.contacts(p.clearbit_id, p.domain, roles, sen, cnum) END AS ppl
		FROM pick p
	)
	SELECT coalesce(jsonb_agg(CASE WHEN people
				THEN jsonb_build_object('company_data', company, 'people_data', ppl)
				ELSE jsonb_build_object('company_data', company) END
			ORDER BY mine_rank, clearbit_id), '[]'::jsonb),
		count(*), coalesce(sum(jsonb_array_length(ppl)), 0),
		array_agg(clearbit_id)
	INTO res, ncomp, ncont, ids
	FROM withp;

	SELECT c.answer, c.answered INTO r, ok
	FROM provider.charge(tok, 'mine', rpc_id, ncomp + ncont,
		jsonb_build_object('data', res, 'credit_error', false)::text,
		jsonb_build_object('companies', ncomp, 'contacts', ncont, 'dbuuid', db), base_url) c;
	IF ok AND ncomp > 0 THEN
		INSERT INTO provider.mined (token, dbuuid, clearbit_id)
		SELECT tok, db, unnest(ids)
		ON CONFLICT DO NOTHING;
	END IF;
	RETURN r;
END
$$;

-- The HTTP entry point of every JSON-RPC call: parse the raw body, check the
-- envelope and the account token, run the endpoint, and return the HTTP
-- status with the complete JSON-RPC response text.  Validation errors are
-- rolled back (nothing charged, no account created, nothing stored).
CREATE OR REPLACE FUNCTION provider.rpc(endpoint text, body text, trial numeric,
	base_url text, max_domains integer,
	OUT status integer, OUT response text)
LANGUAGE plpgsql AS
$$
DECLARE
	req jsonb;
	id jsonb := 'null';
	params jsonb;
	tok text;
	rid text;
	answer text;
BEGIN
	BEGIN
		req := body::jsonb;
	EXCEPTION WHEN others THEN
		status := 400;
		response := jsonb_build_object('jsonrpc', '2.0', 'id', NULL,
			'error', provider.rpc_error(-32700, 'ParseError',
				'the request body is not valid JSON: ' || SQLERRM))::text;
		RETURN;
	END;

	BEGIN
		IF jsonb_typeof(req) <> 'object' THEN
			PERFORM provider.reject('LP600', 'the request must be a JSON-RPC 2.0 object');
		END IF;
		IF req ? 'id' THEN
			IF jsonb_typeof(req->'id') NOT IN ('string', 'number', 'null') THEN
				PERFORM provider.reject('LP600', '"id" must be a string, a number or null');
			END IF;
			id := req->'id';
		END IF;
		IF jsonb_typeof(req->'jsonrpc') IS DISTINCT FROM 'string' OR req->>'jsonrpc' <> '2.0' THEN
			PERFORM provider.reject('LP600', '"jsonrpc" must be "2.0"');
		END IF;
		IF req ? 'method' AND jsonb_typeof(req->'method') <> 'string' THEN
			PERFORM provider.reject('LP600', '"method" must be a string (Odoo sends "call")');
		END IF;
		params := req->'params';
		IF params IS NULL OR jsonb_typeof(params) <> 'object' THEN
			PERFORM provider.reject('LP600', '"params" must be an object');
		END IF;
		IF jsonb_typeof(params->'account_token') IS DISTINCT FROM 'string'
			OR params->>'account_token' !~ '^[A-Za-z0-9_+.-]{1,128}$' THEN
			PERFORM provider.reject('LP602', 'params.account_token must be a non-empty string of at most 128 characters of [A-Za-z0-9_+.-]');
		END IF;
		IF params ? 'dbuuid' AND jsonb_typeof(params->'dbuuid') NOT IN ('string', 'null') THEN
			PERFORM provider.reject('LP602', 'params.dbuuid must be a string');
		END IF;
		tok := params->>'account_token';
		rid := CASE WHEN jsonb_typeof(id) = 'null' THEN NULL ELSE id::text END;

		IF endpoint = 'balance' THEN
			-- Read-only: an unknown token's balance is what its first
			-- charging call would grant it (0 unless --trial-credits).
			answer := '"result": ' ||
				to_jsonb(coalesce(provider.balance(tok), greatest(coalesce(trial, 0), 0)))::text;
		ELSIF endpoint = 'enrich' THEN
			answer := provider.rpc_enrich(params, rid, trial, base_url, max_domains);
		ELSIF endpoint = 'mine' THEN
			answer := provider.rpc_mine(params, rid, trial, base_url);
		ELSE
			RAISE EXCEPTION 'unknown endpoint %', endpoint;
		END IF;
		status := 200;
		response := '{"jsonrpc": "2.0", "id": ' || id::text || ', ' || answer || '}';
	EXCEPTION
		WHEN SQLSTATE 'LP600' THEN
			status := 400;
			response := jsonb_build_object('jsonrpc', '2.0', 'id', id,
				'error', provider.rpc_error(-32600, 'InvalidRequest', SQLERRM))::text;
		WHEN SQLSTATE 'LP602' THEN
			status := 400;
			response := jsonb_build_object('jsonrpc', '2.0', 'id', id,
				'error', provider.rpc_error(-32602, 'InvalidParams', SQLERRM))::text;
		WHEN SQLSTATE 'LP413' THEN
			status := 413;
			response := jsonb_build_object('jsonrpc', '2.0', 'id', id,
				'error', provider.rpc_error(-32602, 'TooManyDomains', SQLERRM))::text;
	END;
END
$$;

-- The "buy credits" page (GET /iap/1/credit): the balance and how credits
-- are added.  Read-only: it does not create the account.
CREATE OR REPLACE FUNCTION provider.credit_page(p_token text, p_dbuuid text,
	p_service text, p_credit text)
RETURNS text LANGUAGE sql STABLE AS
$$
	SELECT '<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>lead_provider credits</title></head>
<body>
<h1>Credits</h1>
' || CASE
		WHEN coalesce(p_token, '') = '' THEN '<p>No account token was given.</p>'
		WHEN b.balance IS NULL THEN '<p>Account <code>' || provider.html(p_token)
			|| '</code> has not been used yet: it has no credits of its own (trial credits, when this provider grants any, come with its first enrichment or mining call).</p>'
		ELSE '<p>Account <code>' || provider.html(p_token) || '</code>: balance <strong>'
			|| provider.html(b.balance::text) || '</strong> credits (spent '
			|| provider.html(provider.spent(p_token)::text) || ').</p>'
	END || '
<p>Service: ' || provider.html(coalesce(nullif(p_service, ''), 'reveal'))
	|| CASE WHEN coalesce(p_credit, '') NOT IN ('', '0')
		THEN '; credits needed: ' || provider.html(p_credit) ELSE '' END
	|| CASE WHEN coalesce(p_dbuuid, '') <> ''
		THEN '; database: <code>' || provider.html(p_dbuuid) || '</code>' ELSE '' END || '.</p>
<h2>Adding credits</h2>
<p>This is a self-hosted provider: there is nothing to buy. The operator adds credits with</p>
<pre>lead_provider credits add ' || provider.html(coalesce(nullif(p_token, ''), 'TOKEN')) || ' 1000</pre>
<p>Enrichment costs 1 credit per domain found; lead mining 1 per company and 1 per contact.</p>
</body></html>
'
	FROM (SELECT provider.balance(p_token) AS balance) b
$$;
