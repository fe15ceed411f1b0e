/*-------------------------------------------------------------------------
 *
 * attach.c
 *	  The attached CRM table, as lead_enrich.attach() recorded it.
 *
 * attach() itself is PL/pgSQL (sql/lead_enrich--*.sql): it checks the
 * catalog once.  The C code loads the resolved mapping here, per call or
 * per batch, through SPI.
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
#include "utils/syscache.h"

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
