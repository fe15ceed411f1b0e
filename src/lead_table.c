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

#include "citus.h"
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
} PlanCache;

static PlanCache plans = {0};


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
 * build_update_sql: the fill-only-empty UPDATE of a whole batch, one
 * statement (per-lead statements cost more in executor start-up than in
 * work).  Returns each updated lead's id and the columns it filled.
 *
 * Parameters, arrays of the same length: $1 lead ids, $2 name,
 * $3 clearbit_id, $4 location, $5 city, $6 postal_code,
 * $7 phone_numbers[0], $8 phone_numbers[1], $9 country_code, $10 state_code.
 */
static char *
build_update_sql(LeadTable *lt)
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
	int			   i;

	initStringInfo(&s);
	initStringInfo(&sets);
	initStringInfo(&filled);

	appendStringInfo(&s,
					 "WITH i AS (SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], "
					 "$5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[]) "
					 "AS i(in_id, in_name, in_cid, in_loc, in_city, in_zip, in_ph0, in_ph1, in_cc, in_sc)), "
					 "o AS (SELECT l.*, i.* FROM %s l JOIN i ON l.%s = i.in_id%s), ",
					 lt->qualname, id,
					 lt->citus ? psprintf(" WHERE l.%s = ANY ($1)%s", id,
										  lt->tenant ? psprintf(" AND l.%s = ANY ($11)", quote_identifier(lt->tenant)) : "")
							   : "");

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

	appendStringInfo(&s, "UPDATE %s t SET %s = t.%s", lt->qualname, id, id);
	appendStringInfoString(&s, sets.data);
	if (lt_col(lt, "enrich_done") != NULL)
		appendStringInfo(&s, ", %s = true", lt_col(lt, "enrich_done"));
	if (lt_col(lt, "write_date") != NULL)
		appendStringInfo(&s, ", %s = %s", lt_col(lt, "write_date"), lt_now(lt, "write_date"));
	/* Citus: pruned to the shard of the ids (a router query) */
	if (lt->citus)
		appendStringInfo(&s, " FROM v WHERE t.%s = v.in_id AND t.%s = ANY ($1)%s RETURNING", id, id,
						 lt->tenant ? psprintf(" AND t.%s = ANY ($11)", quote_identifier(lt->tenant)) : "");
	else
		appendStringInfo(&s, " FROM v WHERE t.%s = v.in_id RETURNING", id);
	appendStringInfo(&s, " v.in_id, array_remove(ARRAY[NULL::text%s], NULL)",
					 filled.data);
	return s.data;
}

/*
 * lt_prepare: the SELECT, UPDATE and done-marking plans of the
 * attached table, rebuilt when attach() changed it.
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
	int			   i;
	MemoryContext  old;

	/* a table distributed by Citus since: statements per shard */
	lt->citus = le_citus_distributed(lt->relid);
	lt->tenant = lt->citus ? le_citus_tenant_column(lt->relid, jb_get_text(&lt->columns->root, "id"),
													&lt->tenant_type)
						   : NULL;
	/* the name too: a renamed table's statements are prepared again */
	key = psprintf("%u|%s|%s|%d%d%d%d|%s", lt->relid, lt->qualname,
				   JsonbToCString(NULL, &lt->columns->root, VARSIZE(lt->columns)),
				   lt->odoo, lt->country_fk, lt->state_fk, lt->citus, lt->tenant ? lt->tenant : "");
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
	plans.update_plan = le_keep_plan(build_update_sql(lt), UPDATE_NARGS + (lt->tenant ? 1 : 0), argtypes);

	if (done != NULL)
	{
		resetStringInfo(&s);
		appendStringInfo(&s, "UPDATE %s SET %s = true", lt->qualname, done);
		if (lt_col(lt, "write_date") != NULL)
			appendStringInfo(&s, ", %s = %s", lt_col(lt, "write_date"), lt_now(lt, "write_date"));
		appendStringInfo(&s, " WHERE %s = ANY ($1)", id);
		if (lt->tenant)
		{
			appendStringInfo(&s, " AND %s = ANY ($2)", quote_identifier(lt->tenant));
			argtypes[1] = get_array_type(lt->tenant_type);
		}
		plans.done_plan = le_keep_plan(s.data, lt->tenant ? 2 : 1, argtypes);
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
 * won, archived.  Skipping rows locked elsewhere or waiting for them.
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
