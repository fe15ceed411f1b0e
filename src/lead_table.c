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

#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

#include "citus.h"
#include "enrich.h"
#include "guard.h"
#include "lead_enrich.h"

/* One mapped column that changed, for changed_columns' sort. */
typedef struct ChangedColumn
{
	char *key;
	char *text;
} ChangedColumn;

/*
 * cmp_changed: by key, in the database's collation, as ORDER BY key.
 */
static int
cmp_changed(const void *a, const void *b)
{
	const char *x = ((const ChangedColumn *) a)->key;
	const char *y = ((const ChangedColumn *) b)->key;

	return varstr_cmp(x, strlen(x), y, strlen(y), DEFAULT_COLLATION_OID);
}

/*
 * column_as_attached: whether table relid has a column named col (not a
 * system column, not dropped) whose type is what attach() recorded under
 * "<key>:type" in columns.
 */
static bool
column_as_attached(Oid relid, Jsonb *columns, const char *key, const char *col)
{
	char			 *typekey;
	JsonbValue		 *want;
	HeapTuple		  tup;
	Form_pg_attribute att;
	bool			  same = false;

	if (col == NULL)
		return false;
	typekey = psprintf("%s:type", key);
	want = getKeyJsonValueFromContainer(&columns->root, typekey, strlen(typekey), NULL);
	if (want == NULL || want->type != jbvString)
		return false;
	tup = SearchSysCacheAttName(relid, col);
	if (!HeapTupleIsValid(tup))
		return false;
	att = (Form_pg_attribute) GETSTRUCT(tup);
	if (att->attnum > 0)
	{
		char *have = format_type_with_typemod(att->atttypid, att->atttypmod);

		same = strlen(have) == (size_t) want->val.string.len &&
			   memcmp(have, want->val.string.val, want->val.string.len) == 0;
	}
	ReleaseSysCache(tup);
	return same;
}

/*
 * changed_columns: the mapped columns of attach()'s "columns" that table
 * relid no longer has as attach() saw them (dropped, renamed or retyped),
 * as "key (column), ..." in the order of the keys; NULL when there is
 * none.  From the catalog caches, as it runs at every claim of the worker
 * (it was a SQL function, parsed and planned at each call).  Type names
 * are printed for the caller's search_path, which is pinned: attach()
 * recorded them under the same.
 */
static char *
changed_columns(Oid relid, Jsonb *columns)
{
	JsonbIterator	  *it = JsonbIteratorInit(&columns->root);
	JsonbIteratorToken tok;
	JsonbValue		   v;
	/* at most one a key */
	ChangedColumn *changed = palloc(sizeof(ChangedColumn) * Max(JsonContainerSize(&columns->root), 1));
	int			   n = 0;
	char		  *key = NULL;
	StringInfoData s;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char  *col = NULL;
		size_t klen;

		if (tok == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, v.val.string.len);
			continue;
		}
		if (tok != WJB_VALUE || key == NULL)
			continue;
		klen = strlen(key);
		if (klen >= 5 && strcmp(key + klen - 5, ":type") == 0)
			continue;
		if (v.type == jbvString)
			col = pnstrdup(v.val.string.val, v.val.string.len);
		if (column_as_attached(relid, columns, key, col))
			continue;
		changed[n].key = key;
		changed[n++].text = psprintf("%s (%s)", quote_identifier(key), col != NULL ? col : "");
	}
	if (n == 0)
		return NULL;
	qsort(changed, n, sizeof(ChangedColumn), cmp_changed);
	initStringInfo(&s);
	for (int i = 0; i < n; i++)
		appendStringInfo(&s, "%s%s", i > 0 ? ", " : "", changed[i].text);
	return s.data;
}

/*
 * lead_enrich._changed_columns(lead_table, columns): changed_columns, for
 * lead_enrich.status.
 */
PG_FUNCTION_INFO_V1(lead_enrich_changed_columns);
Datum
lead_enrich_changed_columns(PG_FUNCTION_ARGS)
{
	char *changed = changed_columns(PG_GETARG_OID(0), PG_GETARG_JSONB_P(1));

	if (changed == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(changed));
}

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
	 * attach() (a table renamed is followed through its oid), by
	 * changed_columns.
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
			"       c.mode, c.columns "
			"FROM lead_enrich.config c "
			"JOIN pg_catalog.pg_class r ON r.oid = c.lead_table "
			"JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace",
			0, NULL);
	}
	ret = SPI_execute_plan(plan, NULL, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed == 0)
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
	/* type names as attach() printed them: under the pinned search_path */
	lt->missing = changed_columns(lt->relid, lt->columns);
	le_guard_end(&g);
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
static char			  *notes_lead_columns(LeadTable *lt);


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
 * e164_of_code: a scalar subquery giving a number's phone_sanitized (what)
 * or phone_state, for a country given by its ISO code: for a new lead,
 * whose country is not yet an id.  number and code are expressions.
 */
static char *
e164_of_code(LeadTable *lt, const char *number, const char *code, bool state)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfoString(&s, "(SELECT ");
	if (state)
		appendStringInfo(&s, "CASE WHEN coalesce(%s, '') = '' THEN NULL WHEN y.e ~ " E164_VALID " THEN 'correct' ELSE 'incorrect' END",
						 number);
	else
		appendStringInfoString(&s, "CASE WHEN y.e ~ " E164_VALID " THEN y.e END");
	appendStringInfoString(&s, " FROM (SELECT ");
	append_e164_candidate(&s, "x.c", "x.cc");
	appendStringInfo(&s,
					 " AS e FROM (SELECT regexp_replace(%s, '[[:space:].()/-]', '', 'g') AS c, "
					 "(SELECT rc.phone_code FROM %s.res_country rc WHERE rc.code = upper(%s) "
					 "ORDER BY rc.id LIMIT 1) AS cc) x) y)",
					 number, lt->nspname, code);
	return s.data;
}

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
					 ", p AS (SELECT v.*, pc.phone_code AS p_cc, "
					 "regexp_replace(coalesce(v.n_phone, v.%s)::text, %s) AS p_phone",
					 phone, strip);
	if (mobile != NULL)
		appendStringInfo(s, ", regexp_replace(coalesce(v.n_mobile, v.%s)::text, %s) AS p_mobile",
						 mobile, strip);
	appendStringInfo(s, " FROM v LEFT JOIN %s.res_country pc "
						"ON pc.id OPERATOR(pg_catalog.=) coalesce(v.n_country, v.%s)), q AS (SELECT p.*, ",
					 lt->nspname, lt_col(lt, "country"));
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
	bool		   by_code;
	bool		   phones;
	int			   i;

	/* Odoo's stored computations of the phone numbers (append_phone_ctes) */
	by_code = lt->country_fk && country != NULL;
	phones = by_code && lt_col(lt, "phone") != NULL &&
			 odoo_column(lt, "res_country", "phone_code") &&
			 (odoo_column(lt, NULL, "phone_sanitized") || odoo_column(lt, NULL, "phone_state"));

	initStringInfo(&s);
	initStringInfo(&sets);
	initStringInfo(&filled);

	/*
	 * The country of each ISO code as a join, not a sub-select per lead
	 * (perf: the per-row look-ups were a third of the UPDATE's time); the
	 * lowest id when a code is not unique.
	 */
	appendStringInfo(&s,
					 "WITH i AS (SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], "
					 "$5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[]) "
					 "AS i(in_id, in_name, in_cid, in_loc, in_city, in_zip, in_ph0, in_ph1, in_cc, in_sc)), "
					 "o AS (SELECT l.*, i.*%s FROM %s l JOIN i ON l.%s = i.in_id%s%s), ",
					 by_code ? ", k.le_cc_id" : "",
					 lt->qualname, id,
					 by_code ? psprintf(" LEFT JOIN (SELECT DISTINCT ON (rc.code) rc.code AS le_cc, rc.id AS le_cc_id "
										"FROM %s.res_country rc ORDER BY rc.code, rc.id) k "
										"ON k.le_cc OPERATOR(pg_catalog.=) upper(i.in_cc)",
										lt->nspname)
							 : "",
					 lt->citus ? psprintf(" WHERE l.%s = ANY ($1)%s", id,
										  lt->tenant ? psprintf(" AND l.%s = ANY ($11)", quote_identifier(lt->tenant)) : "")
							   : "");

	/* step 1: the new country, needed to find the state */
	appendStringInfoString(&s, "c AS (SELECT o.*");
	if (country != NULL)
	{
		if (by_code)
			appendStringInfo(&s,
							 ", CASE WHEN o.%s IS NULL AND coalesce(o.in_cc, '') <> '' THEN o.le_cc_id END AS n_country",
							 country);
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
	/* Citus: pruned to the shard of the ids (a router query) */
	if (lt->citus)
		appendStringInfo(&s, " FROM %s v WHERE t.%s = v.in_id AND t.%s = ANY ($1)%s RETURNING",
						 phones ? "q" : "v", id, id,
						 lt->tenant ? psprintf(" AND t.%s = ANY ($11)", quote_identifier(lt->tenant)) : "");
	else
		appendStringInfo(&s, " FROM %s v WHERE t.%s = v.in_id RETURNING", phones ? "q" : "v", id);
	appendStringInfo(&s, " v.in_id, array_remove(ARRAY[NULL::text%s], NULL)",
					 filled.data);
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
	Oid			   argtypes[UPDATE_NARGS + 1];
	OdooIds		   ids;
	int			   i;
	MemoryContext  old;

	/* a table distributed by Citus since: statements per shard */
	lt->citus = le_citus_distributed(lt->relid);
	lt->tenant = lt->citus ? le_citus_tenant_column(lt->relid, jb_get_text(&lt->columns->root, "id"),
													&lt->tenant_type)
						   : NULL;
	/* the name too: a renamed table's statements are prepared again */
	key = psprintf("%u|%s|%s|%d%d%d%d|%s|%u", lt->relid, lt->qualname,
				   JsonbToCString(NULL, &lt->columns->root, VARSIZE(lt->columns)),
				   lt->odoo, lt->country_fk, lt->state_fk, lt->citus, lt->tenant ? lt->tenant : "",
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
		appendStringInfo(&s, "NOT coalesce(l.%s, true), ", lt_col(lt, "active"));
	else
		appendStringInfoString(&s, "false, ");
	/* what a chatter note copies from its lead: its name and company */
	appendStringInfo(&s, "%s ", notes_lead_columns(lt));
	/* Citus, distributed by tenant: the tenants prune to one shard */
	appendStringInfo(&s, "FROM %s l WHERE l.%s = ANY ($1)", lt->qualname, id);
	if (lt->tenant)
		appendStringInfo(&s, " AND l.%s = ANY ($2)", quote_identifier(lt->tenant));
	appendStringInfo(&s, " ORDER BY l.%s FOR UPDATE OF l", id);

	argtypes[0] = INT8ARRAYOID;
	if (lt->tenant)
		argtypes[1] = get_array_type(lt->tenant_type);
	plans.select_plan = le_keep_plan(s.data, lt->tenant ? 2 : 1, argtypes);
	appendStringInfoString(&s, " SKIP LOCKED");
	plans.select_skip_plan = le_keep_plan(s.data, lt->tenant ? 2 : 1, argtypes);

	argtypes[0] = INT8ARRAYOID;
	for (i = 1; i < UPDATE_NARGS; i++)
		argtypes[i] = TEXTARRAYOID;
	if (lt->tenant)
		argtypes[UPDATE_NARGS] = get_array_type(lt->tenant_type);
	resolve_odoo_ids(lt, &ids);
	plans.update_plan = le_keep_plan(build_update_sql(lt, &ids), UPDATE_NARGS + (lt->tenant ? 1 : 0),
									 argtypes);

	if (done != NULL)
	{
		resetStringInfo(&s);
		appendStringInfo(&s, "UPDATE %s SET %s = true", lt->qualname, done);
		if (lt_col(lt, "write_date") != NULL)
			appendStringInfo(&s, ", %s = %s", lt_col(lt, "write_date"), lt_now(lt, "write_date"));
		if (odoo_column(lt, NULL, "write_uid") && ids.user_root != NULL)
			appendStringInfo(&s, ", write_uid = %s", ids.user_root);
		appendStringInfo(&s, " WHERE %s = ANY ($1)", id);
		if (lt->tenant)
		{
			appendStringInfo(&s, " AND %s = ANY ($2)", quote_identifier(lt->tenant));
			argtypes[1] = get_array_type(lt->tenant_type);
		}
		plans.done_plan = le_keep_plan(s.data, lt->tenant ? 2 : 1, argtypes);
	}

	if (lt->odoo)
	{
		char *notes = build_notes_sql(lt, &ids);

		if (notes != NULL)
		{
			argtypes[0] = INT8ARRAYOID;
			argtypes[1] = TEXTARRAYOID;
			argtypes[2] = BOOLARRAYOID;
			argtypes[3] = TEXTARRAYOID;
			argtypes[4] = TEXTARRAYOID;
			plans.notes_plan = le_keep_plan(notes, 5, argtypes);
		}
	}

	old = MemoryContextSwitchTo(TopMemoryContext);
	plans.key = pstrdup(key);
	MemoryContextSwitchTo(old);
}

/*
 * run_per_shard: run plan once per shard of the ids in args[0] (Citus
 * mode), each time with the elements of every array argument that belong
 * to that shard, and merge the rows returned.  Returns the last SPI
 * result code (each must be expected).
 */
static int
run_per_shard(LeadTable *lt, SPIPlanPtr plan, Datum *args, int nargs, int expected)
{
	int			   *group_of;
	Datum		   *tenants = NULL;
	int				ngroups;
	SPITupleTable **tts;
	Datum		   *sub = palloc(sizeof(Datum) * (nargs + 1));
	int				ret = expected;
	uint64			processed = 0;

	if (lt->tenant)
		ngroups = le_citus_tenant_groups(lt->relid, lt->qualname, jb_get_text(&lt->columns->root, "id"),
										 lt->tenant, lt->tenant_type, args[0], &group_of, &tenants);
	else
	{
		ngroups = le_citus_shard_groups(lt->relid, args[0], &group_of);
		if (ngroups <= 1)
			return SPI_execute_plan(plan, args, NULL, false, 0);
	}
	if (ngroups == 0)
	{
		/* none of the leads is there */
		SPI_tuptable = NULL;
		SPI_processed = 0;
		return expected;
	}
	tts = palloc0(sizeof(SPITupleTable *) * ngroups);
	for (int gi = 0; gi < ngroups; gi++)
	{
		for (int k = 0; k < nargs; k++)
			sub[k] = le_citus_subarray(args[k], k == 0 ? INT8OID : TEXTOID, group_of, gi);
		if (lt->tenant)
			sub[nargs] = tenants[gi];
		ret = SPI_execute_plan(plan, sub, NULL, false, 0);
		if (ret != expected)
			return ret;
		tts[gi] = SPI_tuptable;
		processed += SPI_processed;
	}
	if (tts[ngroups - 1] != NULL)
		le_citus_merge_results(tts, ngroups);
	else
		SPI_processed = processed;
	return ret;
}

/*
 * lt_select: the leads of ids (an int8[] datum), locked FOR UPDATE, with
 * what enrichment needs to know of them: id, e-mail, done, reveal id set,
 * won, archived, then the name and company a chatter note copies (as text,
 * NULL when the table has no such column).  Skipping rows locked
 * elsewhere or waiting for them.
 * Returns SPI's result code; the rows are in SPI_tuptable.
 */
int
lt_select(LeadTable *lt, Datum ids, bool skip_locked)
{
	LeGuard g;
	int		ret;

	le_guard_crm(&g, lt);
	if (lt->citus)
		ret = run_per_shard(lt, skip_locked ? plans.select_skip_plan : plans.select_plan,
							&ids, 1, SPI_OK_SELECT);
	else
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
	if (lt->citus)
		ret = run_per_shard(lt, plans.update_plan, args, UPDATE_NARGS, SPI_OK_UPDATE_RETURNING);
	else
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
	if (lt->citus)
		ret = run_per_shard(lt, plans.done_plan, &arg, 1, SPI_OK_UPDATE);
	else
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
 * lead_column_type: the SQL type (format_type, with its modifier) of the
 * lead table's column col (unquoted).
 */
static char *
lead_column_type(LeadTable *lt, const char *col)
{
	AttrNumber attnum = get_attnum(lt->relid, col);
	Oid		   type;
	int32	   typmod;
	Oid		   coll;

	if (attnum == InvalidAttrNumber)
		elog(ERROR, "column \"%s\" of %s not found", col, lt->qualname);
	get_atttypetypmodcoll(lt->relid, attnum, &type, &typmod, &coll);
	return format_type_with_typemod(type, typmod);
}

/*
 * notes_lead_columns: what a chatter note copies from its lead, its name
 * and its company, as two text columns of the statements that read the
 * lead for enrichment (lt_select) or insert it (lt_mine_insert), NULL::text
 * where the table has no such column.  The notes' INSERT takes them as
 * parameters, cast back to the lead's column types (build_notes_sql).
 */
static char *
notes_lead_columns(LeadTable *lt)
{
	const char *name = lt_col(lt, "name");

	return psprintf("%s, %s",
					name != NULL ? psprintf("l.%s::text", name) : "NULL::text",
					odoo_column(lt, NULL, "company_id") ? "l.company_id::text" : "NULL::text");
}

/*
 * A note's Message-ID: unique (a random UUID) and, read from the left,
 * ordered by time (the transaction's start, to the microsecond, in UTC).
 * Odoo indexes mail_message.message_id with a B-tree that grows with the
 * chatter (millions of rows in a CRM in use): a key starting with a random
 * UUID lands on a random leaf page of it, read from disk or evicted dirty
 * at almost every note, where a key starting with the time lands on the
 * few rightmost pages, in memory.
 */
#define NOTE_MESSAGE_ID \
	"'<' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS') || '.' " \
	"|| gen_random_uuid() || '.lead_enrich@localhost>'"

/*
 * build_notes_sql: the INSERT of a batch's notes into Odoo's mail_message,
 * as Odoo 17 stores a note posted on a lead: model crm.lead, message type
 * notification, subtype mail.mt_note, OdooBot (base.partner_root) as
 * author and base.user_root as the writing user, dates in UTC.  Only the
 * columns the table has are written (they change between Odoo versions).
 * Parameters: $1 lead ids, $2 bodies, $3 once flags, $4 the leads' names
 * and $5 their companies (as text, cast back here to the lead's column
 * types); a note marked once is left out when the lead has the same note
 * already.  NULL when the schema has no mail_message fit for it.
 *
 * What a note copies from its lead is what the statement that locked the
 * lead in the same transaction read (lt_select, or the INSERT of a mined
 * lead), not a join with the lead table: the join was a sixth of the
 * INSERT's cost, and on a Citus distributed table Citus refuses it
 * (mail_message is local to the coordinator), so the rows are the same on
 * one server and on Citus.
 */
static char *
build_notes_sql(LeadTable *lt, OdooIds *ids)
{
	StringInfoData			 s;
	StringInfoData			 cols;
	StringInfoData			 vals;
	const char				*name = lt_col(lt, "name");
	bool					 company = odoo_column(lt, NULL, "company_id");
	static const char *const required[] = {"body", "model", "res_id", "message_type"};

	for (int i = 0; i < (int) lengthof(required); i++)
		if (!odoo_column(lt, "mail_message", required[i]))
			return NULL;

	initStringInfo(&cols);
	initStringInfo(&vals);
	appendStringInfoString(&cols, "body, model, res_id, message_type");
	appendStringInfoString(&vals, "n.body, 'crm.lead', n.lead_id, 'notification'");
	if (name != NULL)
		note_column(lt, &cols, &vals, "record_name",
					psprintf("n.rec_name::%s", lead_column_type(lt, jb_get_text(&lt->columns->root, "name"))));
	note_column(lt, &cols, &vals, "subtype_id", ids->mt_note);
	note_column(lt, &cols, &vals, "is_internal", "false");
	note_column(lt, &cols, &vals, "author_id", ids->partner_root);
	note_column(lt, &cols, &vals, "email_from", ids->bot_email_from);
	note_column(lt, &cols, &vals, "date", "now() AT TIME ZONE 'UTC'");
	note_column(lt, &cols, &vals, "message_id", NOTE_MESSAGE_ID);
	if (company)
		note_column(lt, &cols, &vals, "record_company_id",
					psprintf("n.rec_company::%s", lead_column_type(lt, "company_id")));
	note_column(lt, &cols, &vals, "email_add_signature", "true");
	note_column(lt, &cols, &vals, "reply_to_force_new", "false");
	note_column(lt, &cols, &vals, "create_uid", ids->user_root);
	note_column(lt, &cols, &vals, "create_date", "now() AT TIME ZONE 'UTC'");
	note_column(lt, &cols, &vals, "write_uid", ids->user_root);
	note_column(lt, &cols, &vals, "write_date", "now() AT TIME ZONE 'UTC'");

	initStringInfo(&s);
	appendStringInfo(&s, "INSERT INTO %s.mail_message (%s) SELECT %s "
						 "FROM unnest($1::int8[], $2::text[], $3::bool[], $4::text[], $5::text[]) "
						 "AS n(lead_id, body, once, rec_name, rec_company) "
						 "WHERE NOT (n.once AND EXISTS (SELECT 1 FROM %s.mail_message m "
						 "WHERE m.model = 'crm.lead' AND m.res_id = n.lead_id AND m.body = n.body))",
					 lt->nspname, cols.data, vals.data, lt->nspname);
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
	Datum args[5];
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
 * WARNING and holds back no enrichment.  names and companies are what
 * each note copies from its lead, as the statement that locked the lead
 * in this transaction read them (notes_lead_columns; NULL elements for
 * none).  Nothing when the table has no chatter.
 */
void
lt_post_notes(LeadTable *lt, int64 *lead_ids, const char **names, const char **companies,
			  const char **bodies, bool *once, int n)
{
	NotesArgs  a;
	Datum	  *o;
	ErrorData *ed;
	LeGuard	   g;
	bool	   ok;

	if (plans.notes_plan == NULL || n == 0)
		return;
	o = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
		o[i] = BoolGetDatum(once[i]);
	a.args[0] = int8_array(lead_ids, n);
	a.args[1] = text_array(bodies, n);
	a.args[2] = PointerGetDatum(construct_array(o, n, BOOLOID, 1, true, TYPALIGN_CHAR));
	a.args[3] = text_array(names, n);
	a.args[4] = text_array(companies, n);
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

/* ========================================================================
 * Lead mining: the statements of generate_leads() (mining.c) on the CRM
 * table and on Odoo's request tables.
 *
 * The same rules as above: identifiers from the catalog or the mapping
 * through quote_identifier, values as parameters, run under le_guard_crm
 * (the caller's rights) with search_path pinned.  The lead INSERT and the
 * duplicate look-up are kept per process and rebuilt when the table, its
 * mapping or the Odoo columns the INSERT fills change.
 * ========================================================================
 */

/* A column list and its value expressions, being built. */
typedef struct InsertBuild
{
	StringInfoData cols;
	StringInfoData vals;
	List		  *used; /* column names already in the list */
} InsertBuild;

/* The mining plans of the attached table. */
typedef struct MinePlans
{
	char	  *key;
	SPIPlanPtr insert_plan;
	SPIPlanPtr dup_plan;
} MinePlans;

static MinePlans mine_plans = {0};

/*
 * add_col: one column and its value expression, unless the column is
 * already set (a mapping and an Odoo default naming the same column).
 */
static void
add_col(InsertBuild *b, const char *name, const char *expr)
{
	ListCell *lc;

	foreach(lc, b->used)
	{
		if (strcmp((char *) lfirst(lc), name) == 0)
			return;
	}
	b->used = lappend(b->used, pstrdup(name));
	appendStringInfo(&b->cols, "%s%s", b->cols.len ? ", " : "", quote_identifier(name));
	appendStringInfo(&b->vals, "%s%s", b->vals.len ? ", " : "", expr);
}

/*
 * add_mapped: a mapped logical key, if the table has it.
 */
static void
add_mapped(InsertBuild *b, LeadTable *lt, const char *key, const char *expr)
{
	char *col = jb_get_text(&lt->columns->root, key);

	if (col != NULL)
		add_col(b, col, expr);
}

/*
 * add_mapped_text: a mapped text key from a parameter, cast to the
 * column's type so that a varchar(n) gets a cut value instead of an error.
 */
static void
add_mapped_text(InsertBuild *b, LeadTable *lt, const char *key, int param)
{
	if (lt_col(lt, key) != NULL)
		add_mapped(b, lt, key, psprintf("$%d::%s", param, lt_type(lt, key)));
}

/*
 * mine_odoo_columns: which of the columns Odoo's ORM fills on create the
 * table has now, in a fixed order ("" when it is not Odoo's table).  Part
 * of the plans' key: a column dropped or added since attach() rebuilds the
 * INSERT instead of failing in a kept plan.
 */
static char *
mine_odoo_columns(LeadTable *lt)
{
	StringInfoData q;
	char		  *found;
	LeGuard		   g;

	if (!lt->odoo)
		return "";
	initStringInfo(&q);
	appendStringInfo(&q,
					 "SELECT coalesce(string_agg(a.attname::text, ',' ORDER BY a.attname), '') "
					 "FROM pg_catalog.pg_attribute a "
					 "WHERE a.attrelid OPERATOR(pg_catalog.=) %u AND a.attnum OPERATOR(pg_catalog.>) 0 "
					 "AND NOT a.attisdropped AND a.attname OPERATOR(pg_catalog.=) ANY "
					 "('{priority,color,message_bounce,stage_id,date_open,date_last_stage_update,"
					 "create_date,write_date,create_uid,write_uid,email_normalized,"
					 "email_domain_criterion,email_state,phone_sanitized,phone_state,active,type}'"
					 "::pg_catalog.name[])",
					 lt->relid);
	le_guard_crm(&g, lt);
	if (SPI_execute(q.data, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the columns of %s", lt->qualname);
	found = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	le_guard_end(&g);
	return found;
}

/*
 * has_column: whether a comma-separated list of names holds s.
 */
static bool
has_column(const char *list, const char *s)
{
	size_t len = strlen(s);

	for (const char *p = list; p != NULL && *p; p = strchr(p, ','), p = p ? p + 1 : NULL)
	{
		if (strncmp(p, s, len) == 0 && (p[len] == ',' || p[len] == '\0'))
			return true;
	}
	return false;
}

/*
 * build_mine_insert_sql: the INSERT of one mined lead, parameters as in
 * MINE_P_* (lead_table.h); it returns the new id.  Columns that are not
 * mapped (or, for Odoo's defaults, do not exist) are left out.
 */
static char *
build_mine_insert_sql(LeadTable *lt, const char *odoo_cols)
{
	InsertBuild	   b;
	StringInfoData s;

	memset(&b, 0, sizeof(b));
	initStringInfo(&b.cols);
	initStringInfo(&b.vals);

	add_mapped_text(&b, lt, "name", MINE_P_NAME);
	add_mapped_text(&b, lt, "partner_name", MINE_P_PARTNER_NAME);
	add_mapped_text(&b, lt, "email", MINE_P_EMAIL);
	add_mapped_text(&b, lt, "phone", MINE_P_PHONE);
	add_mapped_text(&b, lt, "website", MINE_P_WEBSITE);
	add_mapped_text(&b, lt, "street", MINE_P_STREET);
	add_mapped_text(&b, lt, "city", MINE_P_CITY);
	add_mapped_text(&b, lt, "zip", MINE_P_ZIP);
	add_mapped_text(&b, lt, "contact_name", MINE_P_CONTACT_NAME);
	add_mapped_text(&b, lt, "function", MINE_P_FUNCTION);
	add_mapped_text(&b, lt, "reveal_id", MINE_P_REVEAL_ID);
	add_mapped_text(&b, lt, "type", MINE_P_TYPE);
	if (lt_col(lt, "country") != NULL)
	{
		if (lt->country_fk)
			add_mapped(&b, lt, "country",
					   psprintf("(SELECT rc.id FROM %s.res_country rc WHERE rc.code = upper($%d) "
								"ORDER BY rc.id LIMIT 1)",
								lt->nspname, MINE_P_COUNTRY));
		else
			add_mapped(&b, lt, "country",
					   psprintf("upper($%d)::%s", MINE_P_COUNTRY, lt_type(lt, "country")));
	}
	if (lt_col(lt, "state") != NULL)
	{
		if (lt->state_fk && lt->country_fk)
			add_mapped(&b, lt, "state",
					   psprintf("(SELECT s.id FROM %s.res_country_state s JOIN %s.res_country rc "
								"ON rc.id = s.country_id WHERE rc.code = upper($%d) AND s.code = $%d "
								"ORDER BY s.id LIMIT 1)",
								lt->nspname, lt->nspname, MINE_P_COUNTRY, MINE_P_STATE));
		else if (!lt->state_fk)
			add_mapped(&b, lt, "state", psprintf("$%d::%s", MINE_P_STATE, lt_type(lt, "state")));
	}
	add_mapped(&b, lt, "team_id", psprintf("$%d", MINE_P_TEAM));
	add_mapped(&b, lt, "user_id", psprintf("$%d", MINE_P_USER));
	add_mapped(&b, lt, "mining_request", psprintf("$%d", MINE_P_REQUEST));
	add_mapped(&b, lt, "active", "true");
	/* without a reveal id column, the done flag keeps enrichment away */
	if (lt_col(lt, "reveal_id") == NULL)
		add_mapped(&b, lt, "enrich_done", "true");
	if (lt_col(lt, "write_date") != NULL)
		add_mapped(&b, lt, "write_date", lt_now(lt, "write_date"));

	/* what Odoo's ORM sets on create and the database has no default for */
	if (lt->odoo)
	{
		static const struct
		{
			const char *col;
			const char *expr;
		} defaults[] =
			{
				{"active", "true"},
				{"priority", "'0'"},
				{"color", "0"},
				{"message_bounce", "0"},
				{"stage_id", "$20"},
				{"date_open", "CASE WHEN $18 IS NOT NULL THEN (now() AT TIME ZONE 'UTC') END"},
				{"date_last_stage_update", "(now() AT TIME ZONE 'UTC')"},
				{"create_date", "(now() AT TIME ZONE 'UTC')"},
				{"write_date", "(now() AT TIME ZONE 'UTC')"},
				{"create_uid", "$18"},
				{"write_uid", "$18"},
				{"email_normalized", "$14"},
				{"email_domain_criterion", "$15"},
				{"email_state", "CASE WHEN $14 IS NOT NULL THEN 'correct' WHEN $3 IS NOT NULL THEN 'incorrect' END"},
				{"type", "$16"},
			};

		StaticAssertStmt(MINE_P_USER == 18 && MINE_P_STAGE == 20 && MINE_P_EMAIL_NORMALIZED == 14 &&
							 MINE_P_EMAIL_DOMAIN == 15 && MINE_P_EMAIL == 3 && MINE_P_TYPE == 16,
						 "parameter numbers of the Odoo defaults");
		for (int i = 0; i < (int) lengthof(defaults); i++)
			if (has_column(odoo_cols, defaults[i].col))
				add_col(&b, defaults[i].col, defaults[i].expr);
		/* Odoo's stored computations of the phone (see append_phone_ctes) */
		if (odoo_column(lt, "res_country", "phone_code"))
		{
			char *phone = psprintf("$%d", MINE_P_PHONE);
			char *code = psprintf("$%d", MINE_P_COUNTRY);

			if (has_column(odoo_cols, "phone_sanitized"))
				add_col(&b, "phone_sanitized", e164_of_code(lt, phone, code, false));
			if (has_column(odoo_cols, "phone_state"))
				add_col(&b, "phone_state", e164_of_code(lt, phone, code, true));
		}
	}

	/*
	 * INSERT ... SELECT, not VALUES: Citus refuses subqueries (the country
	 * and state look-ups) in the VALUES of an INSERT into a distributed
	 * table, and runs this one on the coordinator (docs/citus.md).
	 */
	initStringInfo(&s);
	appendStringInfo(&s, "INSERT INTO %s AS l (%s) SELECT %s RETURNING l.%s::bigint, %s",
					 lt->qualname, b.cols.data, b.vals.data, lt_col(lt, "id"), notes_lead_columns(lt));
	return s.data;
}

/*
 * build_mine_dup_sql: which companies of an answer ($1, the "data" list)
 * are already in the table, by position: same reveal id, same website
 * domain, same e-mail domain, or mined before into a lead that still
 * exists.
 *
 * Each test is a join of the table with the answer's companies, hashed on
 * the companies: one scan of the table per test, in memory that depends on
 * the answer's size, not the table's.  The table's values were the hashed
 * side before (c.dom IN (SELECT ... FROM the table)): once they no longer
 * fitted in work_mem the planner made each test a subplan rescanned for
 * every company, spilled to disk (a CRM of 1,000,000 leads: minutes per
 * call).  With no index the scans stay linear in the table's size (the
 * domains are computed per lead); an index on exactly these expressions
 * (docs/mining.md gives them) turns each test into a probe per company.
 */
static char *
build_mine_dup_sql(LeadTable *lt)
{
	StringInfoData q;
	const char	  *reveal = lt_col(lt, "reveal_id");
	const char	  *website = lt_col(lt, "website");

	initStringInfo(&q);
	appendStringInfoString(&q,
						   "WITH c AS MATERIALIZED (SELECT e.ord::int4 AS ord, "
						   "e.v #>> '{company_data,clearbit_id}' AS cid, "
						   "lower(e.v #>> '{company_data,domain}') AS dom "
						   "FROM jsonb_array_elements($1) WITH ORDINALITY AS e(v, ord)) ");
	if (reveal != NULL)
		appendStringInfo(&q, "SELECT c.ord FROM c JOIN %s l ON l.%s::text = c.cid UNION ",
						 lt->qualname, reveal);
	if (website != NULL)
		appendStringInfo(&q,
						 "SELECT c.ord FROM c JOIN %s l ON lower(substring(l.%s::text from "
						 "'^(?:[A-Za-z][A-Za-z0-9+.-]*://)?(?:www\\.)?([^/:?#[:space:]]+)')) = c.dom UNION ",
						 lt->qualname, website);
	appendStringInfo(&q,
					 "SELECT c.ord FROM c JOIN %s l "
					 "ON lower(substring(l.%s::text from '@([^@>[:space:]]+)')) = c.dom UNION "
					 "SELECT c.ord FROM c JOIN lead_enrich.lead_state s ON s.domain = c.dom "
					 "AND s.status = 'mined' JOIN %s l ON l.%s = s.lead_id",
					 lt->qualname, lt_col(lt, "email"), lt->qualname, lt_col(lt, "id"));
	return q.data;
}

/*
 * lt_mine_prepare: the lead INSERT and the duplicate look-up of the
 * attached table, built once per process and table (and rebuilt when the
 * table, its mapping or its Odoo columns change).
 */
void
lt_mine_prepare(LeadTable *lt)
{
	char		 *odoo_cols = mine_odoo_columns(lt);
	char		 *key;
	Oid			  argtypes[MINE_P_COUNT];
	MemoryContext old;

	key = psprintf("%u|%s|%s|%d%d%d|%s", lt->relid, lt->qualname,
				   JsonbToCString(NULL, &lt->columns->root, VARSIZE(lt->columns)),
				   lt->odoo, lt->country_fk, lt->state_fk, odoo_cols);
	if (mine_plans.key != NULL && strcmp(mine_plans.key, key) == 0)
		return;
	if (mine_plans.key != NULL)
	{
		SPI_freeplan(mine_plans.insert_plan);
		SPI_freeplan(mine_plans.dup_plan);
		pfree(mine_plans.key);
		memset(&mine_plans, 0, sizeof(mine_plans));
	}

	for (int i = 0; i < MINE_P_COUNT; i++)
		argtypes[i] = TEXTOID;
	argtypes[MINE_P_TEAM - 1] = INT8OID;
	argtypes[MINE_P_USER - 1] = INT8OID;
	argtypes[MINE_P_REQUEST - 1] = INT8OID;
	argtypes[MINE_P_STAGE - 1] = INT8OID;
	mine_plans.insert_plan = le_keep_plan(build_mine_insert_sql(lt, odoo_cols), MINE_P_COUNT, argtypes);
	argtypes[0] = JSONBOID;
	mine_plans.dup_plan = le_keep_plan(build_mine_dup_sql(lt), 1, argtypes);

	old = MemoryContextSwitchTo(TopMemoryContext);
	mine_plans.key = pstrdup(key);
	MemoryContextSwitchTo(old);
}

/*
 * lt_mine_duplicates: for each of the n companies of data (the answer's
 * "data" list), whether it is already in the table (see
 * build_mine_dup_sql).  After lt_mine_prepare.
 */
bool *
lt_mine_duplicates(LeadTable *lt, Jsonb *data, int n)
{
	bool   *dup = palloc0(sizeof(bool) * Max(n, 1));
	Datum	arg = JsonbPGetDatum(data);
	LeGuard g;

	le_guard_crm(&g, lt);
	if (SPI_execute_plan(mine_plans.dup_plan, &arg, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not look for duplicates in %s", lt->qualname);
	le_guard_end(&g);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool isnull;
		int	 ord = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r],
											   SPI_tuptable->tupdesc, 1, &isnull));

		if (ord >= 1 && ord <= n)
			dup[ord - 1] = true;
	}
	return dup;
}

/*
 * lt_mine_insert: insert one mined lead (parameters as MINE_P_*); returns
 * its id, and what its chatter note copies from it (its name and company,
 * as text, NULL for none) in *name and *company.  After lt_mine_prepare.
 */
int64
lt_mine_insert(LeadTable *lt, Datum *values, const char *nulls, char **name, char **company)
{
	bool	isnull;
	int		ret;
	LeGuard g;

	le_guard_crm(&g, lt);
	ret = SPI_execute_plan(mine_plans.insert_plan, values, nulls, false, 1);
	le_guard_end(&g);
	if (ret != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "could not insert a lead into %s", lt->qualname);
	*name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	*company = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * lt_mine_tag: Odoo's default tags of the request on the new leads, in
 * crm_tag_rel; tag_ids is an int4[] literal.
 */
void
lt_mine_tag(LeadTable *lt, Datum lead_ids, const char *tag_ids)
{
	Oid		types[2] = {INT8ARRAYOID, TEXTOID};
	Datum	args[2];
	int		ret;
	LeGuard g;

	args[0] = lead_ids;
	args[1] = CStringGetTextDatum(tag_ids);
	le_guard_crm(&g, lt);
	ret = SPI_execute_with_args(psprintf("INSERT INTO %s.crm_tag_rel (lead_id, tag_id) "
										 "SELECT l, t FROM unnest($1) l, unnest($2::int4[]) t "
										 "ON CONFLICT DO NOTHING",
										 lt->nspname),
								2, types, args, NULL, false, 0);
	le_guard_end(&g);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not tag the mined leads");
}

/*
 * lt_has_odoo_table: whether the table's schema holds an Odoo table of
 * that name (Odoo's optional tables: crm_team, the request's links...).
 */
bool
lt_has_odoo_table(LeadTable *lt, const char *name)
{
	Oid	  type = TEXTOID;
	Datum arg = CStringGetTextDatum(psprintf("%s.%s", lt->nspname, quote_identifier(name)));

	return SPI_execute_with_args("SELECT 1 WHERE pg_catalog.to_regclass($1) IS NOT NULL",
								 1, &type, &arg, NULL, true, 1) == SPI_OK_SELECT &&
		   SPI_processed == 1;
}

/*
 * odoo_rel: link Odoo's request row to ids (an int4[] or NULL) in one of
 * its many2many tables, when that table exists.
 */
static void
odoo_rel(LeadTable *lt, int32 request, const char *rel, const char *other_col, Datum ids)
{
	Oid	  types[2] = {INT4OID, INT4ARRAYOID};
	Datum args[2] = {Int32GetDatum(request), ids};

	if (ids == (Datum) 0 || ArrayGetNItems(ARR_NDIM(DatumGetArrayTypeP(ids)), ARR_DIMS(DatumGetArrayTypeP(ids))) == 0 ||
		!lt_has_odoo_table(lt, rel))
		return;
	if (SPI_execute_with_args(psprintf("INSERT INTO %s.%s (crm_iap_lead_mining_request_id, %s) "
									   "SELECT $1, unnest($2) ON CONFLICT DO NOTHING",
									   lt->nspname, quote_identifier(rel), quote_identifier(other_col)),
							  2, types, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not fill %s.%s", lt->nspname, rel);
}

/*
 * odoo_ids: the ids of an Odoo reference table whose match column is one
 * of keys (a text[] datum), as an int4[] datum, or (Datum) 0 when none.
 */
static Datum
odoo_ids(LeadTable *lt, const char *table, const char *match, Datum keys)
{
	Oid			  type = TEXTARRAYOID;
	bool		  isnull = true;
	Datum		  ids = (Datum) 0;
	MemoryContext cxt = CurrentMemoryContext;

	if (SPI_execute_with_args(psprintf("SELECT pg_catalog.array_agg(t.id::int4) FROM %s.%s t "
									   "WHERE %s OPERATOR(pg_catalog.=) ANY ($1)",
									   lt->nspname, quote_identifier(table), match),
							  1, &type, &keys, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		ids = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
		{
			MemoryContext old = MemoryContextSwitchTo(cxt);

			ids = PointerGetDatum(DatumGetArrayTypePCopy(ids));
			MemoryContextSwitchTo(old);
		}
	}
	return isnull ? (Datum) 0 : ids;
}

/*
 * jb_array_datum: an array-valued key of a jsonb object as a SQL array of
 * the given element type (int4 or text), or (Datum) 0 when absent or
 * empty.
 */
static Datum
jb_array_datum(JsonbContainer *obj, const char *key, Oid elemtype)
{
	JsonbValue	buf;
	JsonbValue *v = jb_get(obj, key, &buf);
	int			n;
	Datum	   *d;

	if (v == NULL || v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data) ||
		(n = JsonContainerSize(v->val.binary.data)) == 0)
		return (Datum) 0;
	d = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(v->val.binary.data, i);
		char	   *s = e->type == jbvString ? pnstrdup(e->val.string.val, e->val.string.len)
											 : (e->type == jbvNumeric
													? DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(e->val.numeric)))
													: NULL);

		if (s == NULL)
			elog(ERROR, "unexpected element in \"%s\"", key);
		d[i] = elemtype == INT4OID ? Int32GetDatum(pg_strtoint32(s)) : CStringGetTextDatum(s);
	}
	if (elemtype == INT4OID)
		return PointerGetDatum(construct_array(d, n, INT4OID, 4, true, TYPALIGN_INT));
	return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * odoo_request_role: set a many2one of Odoo's request row from the
 * reveal id of a role or seniority, when Odoo's table of them exists.
 */
static void
odoo_request_role(LeadTable *lt, int32 request, const char *col, const char *table,
				  const char *reveal_id)
{
	Oid	  types[2] = {TEXTOID, INT4OID};
	Datum args[2];

	if (reveal_id == NULL || !lt_has_odoo_table(lt, table))
		return;
	args[0] = CStringGetTextDatum(reveal_id);
	args[1] = Int32GetDatum(request);
	if (SPI_execute_with_args(psprintf("UPDATE %s.crm_iap_lead_mining_request SET %s = "
									   "(SELECT pg_catalog.min(t.id) FROM %s.%s t "
									   " WHERE t.reveal_id OPERATOR(pg_catalog.=) $1) "
									   "WHERE id OPERATOR(pg_catalog.=) $2",
									   lt->nspname, quote_identifier(col), lt->nspname,
									   quote_identifier(table)),
							  2, types, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not set %s of the mining request", col);
}

/* what Odoo's request row gets besides the checked values */
#define ODOO_REQUEST_EXTRA \
	"pg_catalog.jsonb_build_object('name', $2, " \
	"'create_date', now() AT TIME ZONE 'UTC', 'write_date', now() AT TIME ZONE 'UTC')"

/*
 * lt_mine_odoo_request: Odoo's own row for a request (crm.iap.lead.mining.
 * request), so that the leads point to it as Odoo's do: the columns of
 * vals (and the name and dates) the table has, then its many2many links (countries, states, tags,
 * industries, roles) and its preferred role and seniority, each when
 * Odoo's table is there.  prep is what mining.c's check_criteria
 * returned.  Returns
 * the row's id, or 0 when the table is not Odoo's, has no such table or
 * no mapped request column.
 */
int32
lt_mine_odoo_request(LeadTable *lt, const char *name, Jsonb *prep)
{
	JsonbContainer *root = &prep->root;
	JsonbContainer *vals = jb_get_object(root, "odoo_request");
	Oid				types[2] = {JSONBOID, TEXTOID};
	Datum			args[2];
	char		   *table;
	bool			isnull;
	int32			request;
	LeGuard			g;

	if (!lt->odoo || vals == NULL || lt_col(lt, "mining_request") == NULL)
		return 0;
	le_guard_crm(&g, lt);
	if (!lt_has_odoo_table(lt, "crm_iap_lead_mining_request"))
	{
		le_guard_end(&g);
		return 0;
	}
	table = psprintf("%s.crm_iap_lead_mining_request", lt->nspname);

	/* the keys of vals that are columns of the table, the name and the dates */
	args[0] = DirectFunctionCall1(jsonb_in, CStringGetDatum(jsonb_container_to_cstring(vals)));
	args[1] = CStringGetTextDatum(name);
	if (SPI_execute_with_args(psprintf("SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' "
									   "ORDER BY a.attnum) "
									   "FROM pg_catalog.pg_attribute a "
									   "WHERE a.attrelid OPERATOR(pg_catalog.=) %s::pg_catalog.regclass "
									   "AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped "
									   "AND ($1 OPERATOR(pg_catalog.||) " ODOO_REQUEST_EXTRA ") "
									   "OPERATOR(pg_catalog.?) a.attname",
									   quote_literal_cstr(table)),
							  2, types, args, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not read the columns of %s", table);
	{
		char *cols = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (SPI_execute_with_args(psprintf("INSERT INTO %s (%s) SELECT %s FROM "
										   "pg_catalog.jsonb_populate_record(NULL::%s, "
										   "$1 OPERATOR(pg_catalog.||) " ODOO_REQUEST_EXTRA ") "
										   "RETURNING id::int4",
										   table, cols, cols, table),
								  2, types, args, NULL, false, 1) != SPI_OK_INSERT_RETURNING ||
			SPI_processed != 1)
			elog(ERROR, "could not insert into %s", table);
	}
	request = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	odoo_rel(lt, request, "crm_iap_lead_mining_request_res_country_rel", "res_country_id",
			 jb_array_datum(root, "country_ids", INT4OID));
	odoo_rel(lt, request, "crm_iap_lead_mining_request_res_country_state_rel", "res_country_state_id",
			 jb_array_datum(root, "state_ids", INT4OID));
	odoo_rel(lt, request, "crm_iap_lead_mining_request_crm_tag_rel", "crm_tag_id",
			 jb_array_datum(root, "tag_ids", INT4OID));
	/* industries, roles and seniority by reveal id, when Odoo's tables are there */
	if (jb_array_datum(root, "industry_reveal_ids", TEXTOID) != (Datum) 0 &&
		lt_has_odoo_table(lt, "crm_iap_lead_industry"))
		odoo_rel(lt, request, "crm_iap_lead_industry_crm_iap_lead_mining_request_rel",
				 "crm_iap_lead_industry_id",
				 odoo_ids(lt, "crm_iap_lead_industry", "pg_catalog.replace(t.reveal_ids, ' ', '')",
						  jb_array_datum(root, "industry_reveal_ids", TEXTOID)));
	if (lt_has_odoo_table(lt, "crm_iap_lead_role"))
	{
		if (jb_array_datum(root, "other_role_rids", TEXTOID) != (Datum) 0)
			odoo_rel(lt, request, "crm_iap_lead_mining_request_crm_iap_lead_role_rel",
					 "crm_iap_lead_role_id",
					 odoo_ids(lt, "crm_iap_lead_role", "t.reveal_id",
							  jb_array_datum(root, "other_role_rids", TEXTOID)));
		odoo_request_role(lt, request, "preferred_role_id", "crm_iap_lead_role",
						  jb_get_text(root, "preferred_rid"));
	}
	odoo_request_role(lt, request, "seniority_id", "crm_iap_lead_seniority",
					  jb_get_text(root, "seniority_rid"));
	le_guard_end(&g);
	return request;
}

/*
 * lt_mine_odoo_finish: the outcome on Odoo's request row.
 */
void
lt_mine_odoo_finish(LeadTable *lt, int32 request, const char *state, const char *error_type)
{
	Oid		types[3] = {TEXTOID, TEXTOID, INT4OID};
	Datum	args[3];
	char	nulls[3] = {' ', ' ', ' '};
	int		ret;
	LeGuard g;

	args[0] = CStringGetTextDatum(state);
	if (error_type != NULL)
		args[1] = CStringGetTextDatum(error_type);
	else
		nulls[1] = 'n';
	args[2] = Int32GetDatum(request);
	le_guard_crm(&g, lt);
	ret = SPI_execute_with_args(psprintf("UPDATE %s.crm_iap_lead_mining_request "
										 "SET state = $1, error_type = $2, "
										 "write_date = (now() AT TIME ZONE 'UTC') "
										 "WHERE id OPERATOR(pg_catalog.=) $3",
										 lt->nspname),
								3, types, args, nulls, false, 0);
	le_guard_end(&g);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "could not record the outcome in %s.crm_iap_lead_mining_request", lt->nspname);
}
