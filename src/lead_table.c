/*-------------------------------------------------------------------------
 *
 * lead_table.c
 *	  The attached CRM table: how lead_enrich.attach() mapped it, and every
 *	  statement of enrichment on it and on Odoo's tables.
 *
 * attach() itself is PL/pgSQL (sql/install/10_core.sql): it checks the
 * catalog once.  The C code loads the resolved mapping here, per call or
 * per batch, through SPI.  The statements are built from the mapping,
 * prepared once per process and attached table (lt_prepare), and each
 * runs under le_guard_crm (guard.c): as the table's owner, restricted, in
 * the worker; as the calling role otherwise; with search_path pinned, so
 * every unqualified operator and function in them (=, <>, >=, coalesce's
 * casts, unnest, now, array_remove) is pg_catalog's.  Identifiers come
 * from the catalog through quote_identifier; values are parameters.
 * enrich.c, the pipeline, holds no SQL text.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "enrich.h"
#include "guard.h"
#include "lead_enrich.h"

/*
 * lead_table_load: the attached table, or NULL (missing_ok) / an error
 * when none is attached.  Needs SPI; the result lives in the current
 * memory context.
 */
LeadTable *
lead_table_load(bool missing_ok)
{
	static SPIPlanPtr plan = NULL;
	LeadTable		 *lt;
	HeapTuple		  tup;
	TupleDesc		  desc;
	bool			  isnull;
	int				  ret;
	LeGuard			  g;

	/*
	 * Read as the extension's owner under the pinned search_path: every
	 * operator and function below is resolved in pg_catalog.  "missing"
	 * lists the mapped columns that were dropped, renamed or retyped since
	 * attach() (a table renamed is followed through its oid).
	 */
	le_guard_extension(&g);
	if (plan == NULL)
	{
		plan = le_keep_plan(
			"SELECT c.lead_table::oid, r.relowner, "
			"       quote_ident(n.nspname) || '.' || quote_ident(r.relname), "
			"       quote_ident(n.nspname), c.dbuuid, c.layout = 'odoo', "
			"       coalesce(c.kinds ->> 'country' = 'fk', false), "
			"       coalesce(c.kinds ->> 'state' = 'fk', false), "
			"       c.mode, c.columns, lead_enrich._changed_columns(c.lead_table, c.columns) "
			"FROM lead_enrich.config c "
			"JOIN pg_catalog.pg_class r ON r.oid = c.lead_table "
			"JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace",
			0, NULL);
	}
	ret = SPI_execute_plan(plan, NULL, NULL, true, 1);
	le_guard_end(&g);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read lead_enrich.config: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
	{
		if (missing_ok)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no lead table is attached"),
				 errhint("Attach the CRM table first, for example SELECT lead_enrich.attach('crm_lead');")));
	}
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	lt = palloc0(sizeof(LeadTable));
	lt->relid = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
	lt->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
	lt->qualname = SPI_getvalue(tup, desc, 3);
	lt->nspname = SPI_getvalue(tup, desc, 4);
	lt->dbuuid = SPI_getvalue(tup, desc, 5);
	lt->odoo = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
	lt->country_fk = DatumGetBool(SPI_getbinval(tup, desc, 7, &isnull));
	lt->state_fk = DatumGetBool(SPI_getbinval(tup, desc, 8, &isnull));
	lt->mode = SPI_getvalue(tup, desc, 9);
	lt->columns = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 10, &isnull));
	lt->missing = SPI_getvalue(tup, desc, 11);
	return lt;
}

/*
 * lead_table_check: fail clearly when a mapped column was dropped, renamed
 * or retyped since attach().  The CRM itself goes on working (the enqueue
 * trigger does nothing meanwhile); enrichment waits for attach().
 */
void
lead_table_check(LeadTable *lt)
{
	if (lt->missing != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s changed since lead_enrich.attach(): enrichment is suspended",
						lt->qualname),
				 errdetail("These mapped columns were dropped, renamed or retyped: %s.", lt->missing),
				 errhint("Run SELECT lead_enrich.attach('%s'); again, with a column mapping if needed.",
						 lt->qualname)));
}

/*
 * lead_enrich._odoo_setting(lead_table, key): Odoo's ir_config_parameter
 * value for key in the table's schema, read as the table's owner with
 * SECURITY_RESTRICTED_OPERATION (attach() reads database.uuid with it):
 * the caller is a superuser, and ir_config_parameter may be a view or
 * carry a policy its owner wrote.  NULL when the table or the key is not
 * there.
 */
PG_FUNCTION_INFO_V1(lead_enrich_odoo_setting);
Datum
lead_enrich_odoo_setting(PG_FUNCTION_ARGS)
{
	Oid			  relid = PG_GETARG_OID(0);
	text		 *key = PG_GETARG_TEXT_PP(1);
	HeapTuple	  tup;
	Oid			  owner;
	char		 *nsp;
	char		 *sql;
	char		 *value = NULL;
	Datum		  arg = PointerGetDatum(key);
	Oid			  argtype = TEXTOID;
	LeGuard		  g;
	MemoryContext outer = CurrentMemoryContext;

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		PG_RETURN_NULL();
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	nsp = get_namespace_name(((Form_pg_class) GETSTRUCT(tup))->relnamespace);
	ReleaseSysCache(tup);

	SPI_connect();
	le_guard_owner(&g, owner);
	/* schema-qualified, and planned under the pinned search_path */
	sql = psprintf("SELECT value::text FROM %s.ir_config_parameter WHERE key = $1 LIMIT 1",
				   quote_identifier(nsp));
	if (SPI_execute_with_args(sql, 1, &argtype, &arg, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		char *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (v != NULL)
			value = MemoryContextStrdup(outer, v);
	}
	le_guard_end(&g);
	SPI_finish();
	if (value == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(value));
}

/*
 * lt_col: the quoted column for a logical key, or NULL when unmapped.
 */
const char *
lt_col(LeadTable *lt, const char *key)
{
	char *c = jb_get_text(&lt->columns->root, key);

	return c ? quote_identifier(c) : NULL;
}

/*
 * lt_now: the current time for a timestamp column: in UTC for a column
 * without time zone, as Odoo stores its dates.
 */
const char *
lt_now(LeadTable *lt, const char *key)
{
	const char *type = lt_type(lt, key);

	return type != NULL && strcmp(type, "timestamp without time zone") == 0
			   ? "(now() AT TIME ZONE 'UTC')"
			   : "now()";
}

/*
 * lt_type: the column's SQL type (format_type), or NULL when unmapped.
 */
const char *
lt_type(LeadTable *lt, const char *key)
{
	char k[64];

	snprintf(k, sizeof(k), "%s:type", key);
	return jb_get_text(&lt->columns->root, k);
}

/* ------------------------------------------------------------------------
 * The statements of enrichment on the CRM table
 * ------------------------------------------------------------------------
 */

/* Plans cached per process, rebuilt when the attached table changes. */
typedef struct PlanCache
{
	char	  *key; /* relid + columns of the LeadTable */
	SPIPlanPtr select_plan;
	SPIPlanPtr select_skip_plan;
	SPIPlanPtr update_plan;
	SPIPlanPtr done_plan;
	SPIPlanPtr notes_plan; /* Odoo's chatter, or NULL */
} PlanCache;

static PlanCache plans = {0};

typedef struct OdooIds OdooIds;
static char			  *build_notes_sql(LeadTable *lt, OdooIds *ids);


/*
 * odoo_column: whether the table name of the attached table's schema has
 * the column; used for Odoo's own columns and tables, which attach() does
 * not map (write_uid, phone_sanitized, mail_message...).  Always false on
 * a table that is not Odoo's.
 */
static bool
odoo_column(LeadTable *lt, const char *table, const char *column)
{
	Oid relid;

	if (!lt->odoo)
		return false;
	relid = table ? get_relname_relid(table, get_rel_namespace(lt->relid)) : lt->relid;
	return OidIsValid(relid) && get_attnum(relid, column) != InvalidAttrNumber;
}

/*
 * OdooIds: the records Odoo names by XML id that enrichment writes with:
 * base.user_root (the user Odoo's cron enriches as: write_uid),
 * base.partner_root (OdooBot, the notes' author) and mail.mt_note (the
 * notes' subtype); each an id as text, or NULL when the database has none.
 */
struct OdooIds
{
	char *user_root;
	char *partner_root;
	char *bot_email_from; /* OdooBot's "name" <email>, a quoted literal */
	char *mt_note;
};

/* resolve_odoo_ids' statement, for le_run_isolated */
static void
odoo_ids_cb(void *arg)
{
	char *sql = (char *) arg;

	if (SPI_execute(sql, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read Odoo's ir_model_data");
}

/*
 * resolve_odoo_ids: read the ids of OdooIds once per prepared statement,
 * as the table's owner, restricted (like database.uuid in attach()): the
 * role enriching may update leads without reading ir_model_data.  An
 * ir_model_data that cannot be read leaves them NULL.
 */
static void
resolve_odoo_ids(LeadTable *lt, OdooIds *ids)
{
	StringInfoData s;
	ErrorData	  *ed;
	LeGuard		   g;
	bool		   ok;
	bool		   partner = odoo_column(lt, "res_partner", "email") && odoo_column(lt, "res_partner", "name");

	memset(ids, 0, sizeof(OdooIds));
	if (!odoo_column(lt, "ir_model_data", "res_id"))
		return;
	initStringInfo(&s);
	appendStringInfo(&s,
					 "SELECT u.res_id::text, p.res_id::text, n.res_id::text, %1$s "
					 "FROM (SELECT) x "
					 "LEFT JOIN %2$s.ir_model_data u ON u.module = 'base' AND u.name = 'user_root' "
					 "LEFT JOIN %2$s.ir_model_data p ON p.module = 'base' AND p.name = 'partner_root' "
					 "LEFT JOIN %2$s.ir_model_data n ON n.module = 'mail' AND n.name = 'mt_note' ",
					 partner ? "CASE WHEN b.email IS NOT NULL THEN '\"' || replace(b.name::text, '\"', '') "
							   "|| '\" <' || b.email || '>' END"
							 : "NULL",
					 lt->nspname);
	if (partner)
		appendStringInfo(&s, "LEFT JOIN %s.res_partner b ON b.id = p.res_id", lt->nspname);
	le_guard_owner(&g, lt->owner);
	ok = le_run_isolated(odoo_ids_cb, s.data, &ed);
	le_guard_end(&g);
	if (!ok || SPI_processed != 1)
		return;
	ids->user_root = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	ids->partner_root = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	ids->mt_note = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	ids->bot_email_from = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4);
	if (ids->bot_email_from != NULL)
		ids->bot_email_from = quote_literal_cstr(ids->bot_email_from);
}

/*
 * append_e164_candidate: the E.164 form of a phone number already stripped
 * of separators (col), for a country of dialling code cc (an expression):
 * kept when international ("+..." or "00..."), else the code prepended to
 * the national number without its trunk prefix (a leading 0, except in
 * Italy; a leading 1 of an 11-digit number in the NANP).  Validated by
 * E164_VALID afterwards.
 */
static void
append_e164_candidate(StringInfo s, const char *col, const char *cc)
{
	appendStringInfo(s,
					 "CASE WHEN %1$s ~ '^[+]' THEN %1$s "
					 "WHEN %1$s ~ '^00' THEN '+' || substr(%1$s, 3) "
					 "WHEN %1$s !~ '^[0-9]+$' OR %2$s IS NULL THEN NULL "
					 "WHEN %2$s = 1 AND %1$s ~ '^1[0-9]{10}$' THEN '+' || %1$s "
					 "WHEN %2$s <> 39 AND %1$s ~ '^0' THEN '+' || %2$s || substr(%1$s, 2) "
					 "ELSE '+' || %2$s || %1$s END",
					 col, cc);
}

/* a plausible E.164 number: '+', then 7 to 15 digits, the first not 0 */
#define E164_VALID "'^[+][1-9][0-9]{6,14}$'"

/*
 * text_set_expr: the new value of a text column under the fill-only-empty
 * rule, or NULL (SQL) for "leave it".  The value is cast to the column's
 * type, which truncates to a varchar's length instead of failing.
 */
static void
text_set_expr(StringInfo s, LeadTable *lt, const char *key, const char *input)
{
	appendStringInfo(s,
					 ", CASE WHEN coalesce(o.%s::text, '') = '' AND coalesce(o.%s, '') <> '' "
					 "THEN o.%s::%s END AS n_%s",
					 lt_col(lt, key), input, input, lt_type(lt, key), key);
}

/*
 * append_phone_ctes: after the CTE v of build_update_sql, the lead's phone
 * numbers as they will be (p: stripped of separators, with the dialling
 * code of the lead's country as it will be) and their E.164 candidates
 * (q); and into sets, the assignments of Odoo's stored computations that
 * depend on them, made only when a number or the country is filled, as
 * Odoo recomputes them only then: phone_sanitized (the mobile's E.164
 * form, else the phone's: crm.lead's number fields in that order) and
 * phone_state (whether the phone is a valid number).  lead_enrich checks
 * the form of a number, not a national numbering plan as Odoo's
 * phonenumbers library does (README, "Rules").
 */
static void
append_phone_ctes(StringInfo s, StringInfo sets, LeadTable *lt)
{
	const char *phone = lt_col(lt, "phone");
	const char *mobile = lt_col(lt, "mobile");
	const char *strip = "'[[:space:].()/-]', '', 'g'";

	appendStringInfo(s,
					 ", p AS (SELECT v.*, (SELECT rc.phone_code FROM %s.res_country rc "
					 "WHERE rc.id = coalesce(v.n_country, v.%s)) AS p_cc, "
					 "regexp_replace(coalesce(v.n_phone, v.%s)::text, %s) AS p_phone",
					 lt->nspname, lt_col(lt, "country"), phone, strip);
	if (mobile != NULL)
		appendStringInfo(s, ", regexp_replace(coalesce(v.n_mobile, v.%s)::text, %s) AS p_mobile",
						 mobile, strip);
	appendStringInfoString(s, " FROM v), q AS (SELECT p.*, ");
	append_e164_candidate(s, "p.p_phone", "p.p_cc");
	appendStringInfoString(s, " AS e_phone");
	if (mobile != NULL)
	{
		appendStringInfoString(s, ", ");
		append_e164_candidate(s, "p.p_mobile", "p.p_cc");
		appendStringInfoString(s, " AS e_mobile");
	}
	appendStringInfoString(s, " FROM p) ");

	if (odoo_column(lt, NULL, "phone_sanitized"))
		appendStringInfo(sets,
						 ", phone_sanitized = CASE WHEN v.n_phone IS NOT NULL%s OR v.n_country IS NOT NULL "
						 "THEN CASE %s WHEN v.e_phone ~ " E164_VALID " THEN v.e_phone END "
						 "ELSE t.phone_sanitized END",
						 mobile ? " OR v.n_mobile IS NOT NULL" : "",
						 mobile ? "WHEN v.e_mobile ~ " E164_VALID " THEN v.e_mobile" : "");
	if (odoo_column(lt, NULL, "phone_state"))
		appendStringInfoString(sets,
							   ", phone_state = CASE WHEN v.n_phone IS NOT NULL OR v.n_country IS NOT NULL "
							   "THEN CASE WHEN coalesce(v.p_phone, '') = '' THEN NULL "
							   "WHEN v.e_phone ~ " E164_VALID " THEN 'correct' ELSE 'incorrect' END "
							   "ELSE t.phone_state END");
}

/*
 * build_update_sql: the fill-only-empty UPDATE of a whole batch, one
 * statement (per-lead statements cost more in executor start-up than in
 * work).  Returns each updated lead's id and the columns it filled.
 *
 * Parameters, arrays of the same length: $1 lead ids, $2 name,
 * $3 clearbit_id, $4 location, $5 city, $6 postal_code,
 * $7 phone_numbers[0], $8 phone_numbers[1], $9 country_code, $10 state_code.
 */
static char *
build_update_sql(LeadTable *lt, OdooIds *ids)
{
	static const struct
	{
		const char *key;
		const char *input;
	} text_cols[] =
		{
			{"partner_name", "in_name"},
			{"reveal_id", "in_cid"},
			{"street", "in_loc"},
			{"city", "in_city"},
			{"zip", "in_zip"},
			{"phone", "in_ph0"},
			{"mobile", "in_ph1"},
		};
	StringInfoData s;
	StringInfoData sets;
	StringInfoData filled;
	const char	  *id = lt_col(lt, "id");
	const char	  *country = lt_col(lt, "country");
	const char	  *state = lt_col(lt, "state");
	bool		   phones;
	int			   i;

	/* Odoo's stored computations of the phone numbers (append_phone_ctes) */
	phones = lt->country_fk && country != NULL && lt_col(lt, "phone") != NULL &&
			 odoo_column(lt, "res_country", "phone_code") &&
			 (odoo_column(lt, NULL, "phone_sanitized") || odoo_column(lt, NULL, "phone_state"));

	initStringInfo(&s);
	initStringInfo(&sets);
	initStringInfo(&filled);

	appendStringInfo(&s,
					 "WITH i AS (SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], "
					 "$5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[]) "
					 "AS i(in_id, in_name, in_cid, in_loc, in_city, in_zip, in_ph0, in_ph1, in_cc, in_sc)), "
					 "o AS (SELECT l.*, i.* FROM %s l JOIN i ON l.%s = i.in_id), ",
					 lt->qualname, id);

	/* step 1: the new country, needed to find the state */
	appendStringInfoString(&s, "c AS (SELECT o.*");
	if (country != NULL)
	{
		if (lt->country_fk)
			appendStringInfo(&s,
							 ", CASE WHEN o.%s IS NULL AND coalesce(o.in_cc, '') <> '' THEN "
							 "(SELECT rc.id FROM %s.res_country rc WHERE rc.code = upper(o.in_cc) LIMIT 1) END AS n_country",
							 country, lt->nspname);
		else
			appendStringInfo(&s,
							 ", CASE WHEN coalesce(o.%s::text, '') = '' AND coalesce(o.in_cc, '') <> '' "
							 "THEN upper(o.in_cc)::%s END AS n_country",
							 country, lt_type(lt, "country"));
	}
	appendStringInfoString(&s, " FROM o), ");

	/* step 2: every other new value */
	appendStringInfoString(&s, "v AS (SELECT o.*");
	for (i = 0; i < (int) lengthof(text_cols); i++)
	{
		if (lt_col(lt, text_cols[i].key) == NULL)
			continue;
		text_set_expr(&s, lt, text_cols[i].key, text_cols[i].input);
		appendStringInfo(&sets, ", %s = coalesce(v.n_%s, t.%s)",
						 lt_col(lt, text_cols[i].key), text_cols[i].key,
						 lt_col(lt, text_cols[i].key));
		appendStringInfo(&filled, ", CASE WHEN v.n_%s IS NOT NULL THEN %s END",
						 text_cols[i].key,
						 quote_literal_cstr(jb_get_text(&lt->columns->root, text_cols[i].key)));
	}
	if (country != NULL)
	{
		appendStringInfo(&sets, ", %s = coalesce(v.n_country, t.%s)", country, country);
		appendStringInfo(&filled, ", CASE WHEN v.n_country IS NOT NULL THEN %s END",
						 quote_literal_cstr(jb_get_text(&lt->columns->root, "country")));
	}
	if (state != NULL)
	{
		if (lt->state_fk && lt->country_fk && country != NULL)
			appendStringInfo(&s,
							 ", CASE WHEN o.%s IS NULL AND coalesce(o.in_sc, '') <> '' THEN "
							 "(SELECT s.id FROM %s.res_country_state s WHERE s.code = o.in_sc "
							 "AND s.country_id = coalesce(o.n_country, o.%s) LIMIT 1) END AS n_state",
							 state, lt->nspname, country);
		else if (lt->state_fk)
			appendStringInfoString(&s, ", NULL::integer AS n_state");
		else
			appendStringInfo(&s,
							 ", CASE WHEN coalesce(o.%s::text, '') = '' AND coalesce(o.in_sc, '') <> '' "
							 "THEN o.in_sc::%s END AS n_state",
							 state, lt_type(lt, "state"));
		appendStringInfo(&sets, ", %s = coalesce(v.n_state, t.%s)", state, state);
		appendStringInfo(&filled, ", CASE WHEN v.n_state IS NOT NULL THEN %s END",
						 quote_literal_cstr(jb_get_text(&lt->columns->root, "state")));
	}
	appendStringInfoString(&s, " FROM c o) ");
	if (phones)
		append_phone_ctes(&s, &sets, lt);

	appendStringInfo(&s, "UPDATE %s t SET %s = t.%s", lt->qualname, id, id);
	appendStringInfoString(&s, sets.data);
	if (lt_col(lt, "enrich_done") != NULL)
		appendStringInfo(&s, ", %s = true", lt_col(lt, "enrich_done"));
	if (lt_col(lt, "write_date") != NULL)
		appendStringInfo(&s, ", %s = %s", lt_col(lt, "write_date"), lt_now(lt, "write_date"));
	if (odoo_column(lt, NULL, "write_uid") && ids->user_root != NULL)
		appendStringInfo(&s, ", write_uid = %s", ids->user_root);
	appendStringInfo(&s, " FROM %s v WHERE t.%s = v.in_id RETURNING v.in_id, array_remove(ARRAY[NULL::text%s], NULL)",
					 phones ? "q" : "v", id, filled.data);
	return s.data;
}

/*
 * lt_prepare: the SELECT, UPDATE, done-marking and chatter plans of the
 * attached table, rebuilt when attach() changed it (or Odoo's
 * mail_message appeared).
 */
void
lt_prepare(LeadTable *lt)
{
	char		  *key;
	StringInfoData s;
	const char	  *id = lt_col(lt, "id");
	const char	  *done = lt_col(lt, "enrich_done");
	const char	  *reveal = lt_col(lt, "reveal_id");
	const char	  *prob = lt_col(lt, "probability");
	Oid			   argtypes[UPDATE_NARGS];
	OdooIds		   ids;
	int			   i;
	MemoryContext  old;

	/* the name too: a renamed table's statements are prepared again */
	key = psprintf("%u|%s|%s|%d%d%d|%u", lt->relid, lt->qualname,
				   JsonbToCString(NULL, &lt->columns->root, VARSIZE(lt->columns)),
				   lt->odoo, lt->country_fk, lt->state_fk,
				   lt->odoo ? get_relname_relid("mail_message", get_rel_namespace(lt->relid)) : InvalidOid);
	if (plans.key != NULL && strcmp(plans.key, key) == 0)
		return;
	lead_table_check(lt);

	if (plans.key != NULL)
	{
		SPI_freeplan(plans.select_plan);
		SPI_freeplan(plans.select_skip_plan);
		SPI_freeplan(plans.update_plan);
		if (plans.done_plan)
			SPI_freeplan(plans.done_plan);
		if (plans.notes_plan)
			SPI_freeplan(plans.notes_plan);
		pfree(plans.key);
		memset(&plans, 0, sizeof(plans));
	}

	/*
	 * lead id, e-mail, done, reveal id set, won: the CRM table alone (the
	 * worker reads it as the table's owner, who has no rights on
	 * lead_state); without a done column, done_elsewhere() asks lead_state.
	 */
	initStringInfo(&s);
	appendStringInfo(&s, "SELECT l.%s::bigint, l.%s::text, ", id, lt_col(lt, "email"));
	if (done != NULL)
		appendStringInfo(&s, "coalesce(l.%s, false), ", done);
	else
		appendStringInfoString(&s, "false, ");
	if (reveal != NULL)
		appendStringInfo(&s, "coalesce(l.%s::text, '') <> '', ", reveal);
	else
		appendStringInfoString(&s, "false, ");
	if (prob != NULL)
		appendStringInfo(&s, "coalesce(l.%s >= 100, false), ", prob);
	else
		appendStringInfoString(&s, "false, ");
	/* archived (Odoo's active = false): not enriched automatically */
	if (lt_col(lt, "active") != NULL)
		appendStringInfo(&s, "NOT coalesce(l.%s, true) ", lt_col(lt, "active"));
	else
		appendStringInfoString(&s, "false ");
	appendStringInfo(&s,
					 "FROM %s l WHERE l.%s = ANY ($1) ORDER BY l.%s FOR UPDATE OF l",
					 lt->qualname, id, id);

	argtypes[0] = INT8ARRAYOID;
	plans.select_plan = le_keep_plan(s.data, 1, argtypes);
	appendStringInfoString(&s, " SKIP LOCKED");
	plans.select_skip_plan = le_keep_plan(s.data, 1, argtypes);

	argtypes[0] = INT8ARRAYOID;
	for (i = 1; i < UPDATE_NARGS; i++)
		argtypes[i] = TEXTARRAYOID;
	resolve_odoo_ids(lt, &ids);
	plans.update_plan = le_keep_plan(build_update_sql(lt, &ids), UPDATE_NARGS, argtypes);

	if (done != NULL)
	{
		resetStringInfo(&s);
		appendStringInfo(&s, "UPDATE %s SET %s = true", lt->qualname, done);
		if (lt_col(lt, "write_date") != NULL)
			appendStringInfo(&s, ", %s = %s", lt_col(lt, "write_date"), lt_now(lt, "write_date"));
		if (odoo_column(lt, NULL, "write_uid") && ids.user_root != NULL)
			appendStringInfo(&s, ", write_uid = %s", ids.user_root);
		appendStringInfo(&s, " WHERE %s = ANY ($1)", id);
		plans.done_plan = le_keep_plan(s.data, 1, argtypes);
	}

	if (lt->odoo)
	{
		char *notes = build_notes_sql(lt, &ids);

		if (notes != NULL)
		{
			argtypes[0] = INT8ARRAYOID;
			argtypes[1] = TEXTARRAYOID;
			argtypes[2] = BOOLARRAYOID;
			plans.notes_plan = le_keep_plan(notes, 3, argtypes);
		}
	}

	old = MemoryContextSwitchTo(TopMemoryContext);
	plans.key = pstrdup(key);
	MemoryContextSwitchTo(old);
}

/*
 * lt_select: the leads of ids (an int8[] datum), locked FOR UPDATE, with
 * what enrichment needs to know of them: id, e-mail, done, reveal id set,
 * won, archived.  Skipping rows locked elsewhere or waiting for them.
 * Returns SPI's result code; the rows are in SPI_tuptable.
 */
int
lt_select(LeadTable *lt, Datum ids, bool skip_locked)
{
	LeGuard g;
	int		ret;

	le_guard_crm(&g, lt);
	ret = SPI_execute_plan(skip_locked ? plans.select_skip_plan : plans.select_plan,
						   &ids, NULL, false, 0);
	le_guard_end(&g);
	return ret;
}

/*
 * lt_update: the batch's fill-only-empty UPDATE, arguments as
 * build_update_sql says.  Returns SPI's result code; each updated lead's id
 * and filled columns are in SPI_tuptable.
 */
int
lt_update(LeadTable *lt, Datum *args)
{
	LeGuard g;
	int		ret;

	le_guard_crm(&g, lt);
	ret = SPI_execute_plan(plans.update_plan, args, NULL, false, 0);
	le_guard_end(&g);
	return ret;
}

/*
 * lt_mark_done: set the table's done flag of several leads (generic domain,
 * not found) in one statement.
 */
void
lt_mark_done(LeadTable *lt, int64 *ids, int n)
{
	Datum	arg;
	int		ret;
	LeGuard g;

	if (plans.done_plan == NULL || n == 0)
		return;
	arg = int8_array(ids, n);
	le_guard_crm(&g, lt);
	ret = SPI_execute_plan(plans.done_plan, &arg, NULL, false, 0);
	le_guard_end(&g);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "could not mark %d leads enriched", n);
}

/*
 * lt_existing: which of ids are in the table; SPI's result code, the ids
 * in SPI_tuptable.
 */
int
lt_existing(LeadTable *lt, int64 *ids, int n)
{
	Datum	arg = int8_array(ids, n);
	Oid		type = INT8ARRAYOID;
	LeGuard g;
	int		ret;

	le_guard_crm(&g, lt);
	ret = SPI_execute_with_args(psprintf("SELECT l.%s::bigint FROM %s l WHERE l.%s = ANY ($1)",
										 lt_col(lt, "id"), lt->qualname, lt_col(lt, "id")),
								1, &type, &arg, NULL, true, 0);
	le_guard_end(&g);
	return ret;
}

/*
 * lt_odoo_token: the newest non-empty account token of Odoo's iap_account
 * for the reveal service in the table's schema, or NULL.  Read like the
 * CRM table: as the table's owner in the worker, as the caller otherwise.
 */
char *
lt_odoo_token(LeadTable *lt)
{
	char   *q;
	int		ret;
	char   *token = NULL;
	LeGuard g;

	le_guard_crm(&g, lt);
	q = psprintf("SELECT to_regclass(%s)::oid",
				 quote_literal_cstr(psprintf("%s.iap_account", lt->nspname)));
	ret = SPI_execute(q, true, 1);
	if (ret == SPI_OK_SELECT && SPI_processed == 1 &&
		SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1) != NULL)
	{
		q = psprintf("SELECT account_token FROM %s.iap_account "
					 "WHERE service_name = 'reveal' AND coalesce(account_token, '') <> '' "
					 "ORDER BY id DESC LIMIT 1",
					 lt->nspname);
		ret = SPI_execute(q, true, 1);
		if (ret == SPI_OK_SELECT && SPI_processed == 1)
			token = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	}
	le_guard_end(&g);
	return token;
}

/* ------------------------------------------------------------------------
 * Odoo's chatter
 * ------------------------------------------------------------------------
 */

/*
 * note_column: one column of the notes' INSERT, when mail_message has it
 * and the value (an SQL expression) is known.
 */
static void
note_column(LeadTable *lt, StringInfo cols, StringInfo vals, const char *col, const char *value)
{
	if (value == NULL || !odoo_column(lt, "mail_message", col))
		return;
	appendStringInfo(cols, ", %s", col);
	appendStringInfo(vals, ", %s", value);
}

/*
 * build_notes_sql: the INSERT of a batch's notes into Odoo's mail_message,
 * as Odoo 17 stores a note posted on a lead: model crm.lead, message type
 * notification, subtype mail.mt_note, OdooBot (base.partner_root) as
 * author and base.user_root as the writing user, dates in UTC.  Only the
 * columns the table has are written (they change between Odoo versions).
 * Parameters: $1 lead ids, $2 bodies, $3 once flags; a note marked once is
 * left out when the lead has the same note already.  NULL when the schema
 * has no mail_message fit for it.
 */
static char *
build_notes_sql(LeadTable *lt, OdooIds *ids)
{
	StringInfoData			 s;
	StringInfoData			 cols;
	StringInfoData			 vals;
	const char				*id = lt_col(lt, "id");
	static const char *const required[] = {"body", "model", "res_id", "message_type"};

	for (int i = 0; i < (int) lengthof(required); i++)
		if (!odoo_column(lt, "mail_message", required[i]))
			return NULL;

	initStringInfo(&cols);
	initStringInfo(&vals);
	appendStringInfoString(&cols, "body, model, res_id, message_type");
	appendStringInfo(&vals, "n.body, 'crm.lead', l.%s, 'notification'", id);
	if (lt_col(lt, "name") != NULL)
		note_column(lt, &cols, &vals, "record_name", psprintf("l.%s", lt_col(lt, "name")));
	note_column(lt, &cols, &vals, "subtype_id", ids->mt_note);
	note_column(lt, &cols, &vals, "is_internal", "false");
	note_column(lt, &cols, &vals, "author_id", ids->partner_root);
	note_column(lt, &cols, &vals, "email_from", ids->bot_email_from);
	note_column(lt, &cols, &vals, "date", "now() AT TIME ZONE 'UTC'");
	note_column(lt, &cols, &vals, "message_id", "'<' || gen_random_uuid() || '.lead_enrich@localhost>'");
	if (odoo_column(lt, NULL, "company_id"))
		note_column(lt, &cols, &vals, "record_company_id", "l.company_id");
	note_column(lt, &cols, &vals, "email_add_signature", "true");
	note_column(lt, &cols, &vals, "reply_to_force_new", "false");
	note_column(lt, &cols, &vals, "create_uid", ids->user_root);
	note_column(lt, &cols, &vals, "create_date", "now() AT TIME ZONE 'UTC'");
	note_column(lt, &cols, &vals, "write_uid", ids->user_root);
	note_column(lt, &cols, &vals, "write_date", "now() AT TIME ZONE 'UTC'");

	initStringInfo(&s);
	appendStringInfo(&s,
					 "INSERT INTO %1$s.mail_message (%2$s) SELECT %3$s "
					 "FROM unnest($1::int8[], $2::text[], $3::bool[]) AS n(lead_id, body, once) "
					 "JOIN %4$s l ON l.%5$s = n.lead_id "
					 "WHERE NOT (n.once AND EXISTS (SELECT 1 FROM %1$s.mail_message m "
					 "WHERE m.model = 'crm.lead' AND m.res_id = l.%5$s AND m.body = n.body))",
					 lt->nspname, cols.data, vals.data, lt->qualname, id);
	return s.data;
}

/*
 * lt_has_chatter: whether notes are posted for the table (an Odoo table
 * with a mail_message); after lt_prepare.
 */
bool
lt_has_chatter(LeadTable *lt)
{
	return lt->odoo && plans.notes_plan != NULL;
}

/* lt_post_notes' statement and arguments, for le_run_isolated */
typedef struct NotesArgs
{
	Datum args[3];
	int	  ret;
} NotesArgs;

/* the notes' INSERT, for le_run_isolated */
static void
post_notes_cb(void *arg)
{
	NotesArgs *a = (NotesArgs *) arg;

	a->ret = SPI_execute_plan(plans.notes_plan, a->args, NULL, false, 0);
}

/*
 * lt_post_notes: post n notes (chatter.c renders them) in the chatter of
 * their leads, with the CRM table's rights (the table's owner in the
 * worker, the caller otherwise), in a subtransaction: a note that cannot
 * be written (the caller may not insert into mail_message) is said in a
 * WARNING and holds back no enrichment.  Nothing when the table has no
 * chatter.
 */
void
lt_post_notes(LeadTable *lt, int64 *lead_ids, char **bodies, bool *once, int n)
{
	NotesArgs  a;
	Datum	  *b;
	Datum	  *o;
	ErrorData *ed;
	LeGuard	   g;
	bool	   ok;

	if (plans.notes_plan == NULL || n == 0)
		return;
	b = palloc(sizeof(Datum) * n);
	o = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
	{
		b[i] = CStringGetTextDatum(bodies[i]);
		o[i] = BoolGetDatum(once[i]);
	}
	a.args[0] = int8_array(lead_ids, n);
	a.args[1] = PointerGetDatum(construct_array(b, n, TEXTOID, -1, false, TYPALIGN_INT));
	a.args[2] = PointerGetDatum(construct_array(o, n, BOOLOID, 1, true, TYPALIGN_CHAR));
	le_guard_crm(&g, lt);
	ok = le_run_isolated(post_notes_cb, &a, &ed);
	le_guard_end(&g);
	if (!ok)
		ereport(WARNING,
				(errcode(ed->sqlerrcode),
				 errmsg_plural("the note of %d lead was not posted to Odoo's chatter: %s",
							   "the notes of %d leads were not posted to Odoo's chatter: %s",
							   n, n, ed->message),
				 errdetail("Enrichment went on; only the notes in %s.mail_message are missing.",
						   lt->nspname),
				 errhint("Grant INSERT on %s.mail_message (and USAGE on its sequence) to the role that enriches.",
						 lt->nspname)));
	else if (a.ret != SPI_OK_INSERT)
		elog(ERROR, "could not post %d notes: %s", n, SPI_result_code_string(a.ret));
}
