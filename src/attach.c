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

#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

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

	if (plan == NULL)
	{
		plan = le_keep_plan(
			"SELECT c.lead_table::oid, "
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
	lt->qualname = SPI_getvalue(tup, desc, 2);
	lt->nspname = SPI_getvalue(tup, desc, 3);
	lt->dbuuid = SPI_getvalue(tup, desc, 4);
	lt->odoo = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
	lt->country_fk = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
	lt->state_fk = DatumGetBool(SPI_getbinval(tup, desc, 7, &isnull));
	lt->mode = SPI_getvalue(tup, desc, 8);
	lt->columns = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 9, &isnull));
	return lt;
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
