/*-------------------------------------------------------------------------
 *
 * trigger.c
 *	  The enqueue trigger of automatic mode: new leads, and leads whose
 *	  e-mail changed, become "pending" in lead_enrich.lead_state, and the
 *	  background worker is woken when the transaction commits.
 *
 * attach() and set_mode() install two triggers on the attached table while
 * the mode is 'auto':
 *
 *	AFTER INSERT ... REFERENCING NEW TABLE ... FOR EACH STATEMENT
 *		one INSERT ... SELECT ... ON CONFLICT over the transition table per
 *		statement, however many rows it inserted;
 *	AFTER UPDATE OF <email> ... FOR EACH ROW WHEN (old <> new e-mail)
 *		PostgreSQL refuses transition tables on triggers with a column list,
 *		and a statement trigger on every UPDATE would copy every updated row
 *		(the worker's own enrichment UPDATEs included) into a tuplestore;
 *		the WHEN clause makes this trigger fire only for a changed e-mail.
 *
 * Both run lead_enrich.enqueue(id, email, done, reveal_id, probability),
 * whose arguments are the table's column names ('' when unmapped).  No
 * network I/O, no catalog lookups per row: the statement is prepared once
 * per trigger and process.  Only leads that need enriching are enqueued:
 * an e-mail, not done, no reveal_id, not won.
 *
 * enqueue() is SECURITY DEFINER (the inserting roles have no rights on
 * lead_state) with search_path pinned to pg_catalog, pg_temp, so its
 * statement can resolve no operator or function an ordinary role created;
 * it reads only the new rows' columns of the types attach() accepted, so
 * no code of the table's owner runs with the extension owner's rights.
 * When a column it names is gone (dropped or renamed since attach()), it
 * does nothing and says so once per process in the server log: the CRM
 * keeps working, and lead_enrich.status shows why nothing is enqueued.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "guard.h"
#include "lead_enrich.h"
#include "worker.h"

PG_FUNCTION_INFO_V1(lead_enrich_enqueue);

typedef struct EnqueuePlan
{
	Oid		   tgoid;
	SPIPlanPtr plan;
} EnqueuePlan;

#define MAX_ENQUEUE_PLANS 16

static EnqueuePlan enqueue_plans[MAX_ENQUEUE_PLANS];
static int		   n_enqueue_plans = 0;

/*
 * build_enqueue_sql: the INSERT ... SELECT from "source" (the transition
 * table, or the row passed as $1).
 */
static char *
build_enqueue_sql(Trigger *tg, const char *source)
{
	StringInfoData s;
	const char	  *id = quote_identifier(tg->tgargs[0]);
	const char	  *email = quote_identifier(tg->tgargs[1]);

	initStringInfo(&s);
	appendStringInfo(&s,
					 "INSERT INTO lead_enrich.lead_state AS s "
					 "(lead_id, status, email, source, attempts, updated_at) "
					 "SELECT n.%s, 'pending', n.%s, 'worker', 0, now() FROM %s n "
					 "WHERE btrim(coalesce(n.%s::text, '')) <> ''",
					 id, email, source, email);
	if (tg->tgargs[2][0] != '\0')
		appendStringInfo(&s, " AND NOT coalesce(n.%s, false)", quote_identifier(tg->tgargs[2]));
	if (tg->tgargs[3][0] != '\0')
		appendStringInfo(&s, " AND coalesce(n.%s::text, '') = ''", quote_identifier(tg->tgargs[3]));
	/* probability is numeric or float: the operator is named exactly */
	if (tg->tgargs[4][0] != '\0')
		appendStringInfo(&s, " AND coalesce(n.%s OPERATOR(pg_catalog.<) 100, true)",
						 quote_identifier(tg->tgargs[4]));
	/* a lead already done (or mined) is not enriched again */
	appendStringInfoString(&s,
						   " ON CONFLICT (lead_id) DO UPDATE SET status = 'pending', "
						   "email = excluded.email, domain = NULL, source = 'worker', attempts = 0, "
						   "next_attempt_at = NULL, error = NULL, updated_at = now() "
						   "WHERE s.status NOT IN ('enriched', 'not_found', 'generic_domain', 'mined') "
						   "AND (s.status <> 'pending' OR s.email IS DISTINCT FROM excluded.email)");
	return s.data;
}

/*
 * get_plan: the prepared statement of this trigger.
 */
static SPIPlanPtr
get_plan(TriggerData *td, bool row)
{
	Trigger	  *tg = td->tg_trigger;
	SPIPlanPtr plan;
	char	  *sql;
	Oid		   argtype;

	for (int i = 0; i < n_enqueue_plans; i++)
		if (enqueue_plans[i].tgoid == tg->tgoid)
			return enqueue_plans[i].plan;

	if (tg->tgnargs != 5)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" must pass 5 column names to lead_enrich.enqueue()",
						tg->tgname),
				 errhint("Call lead_enrich.attach() again to reinstall the triggers.")));
	if (row)
	{
		argtype = td->tg_relation->rd_rel->reltype;
		sql = build_enqueue_sql(tg, "(SELECT ($1).*)");
		plan = le_keep_plan(sql, 1, &argtype);
	}
	else
	{
		sql = build_enqueue_sql(tg, quote_identifier(tg->tgnewtable));
		plan = le_keep_plan(sql, 0, NULL);
	}

	/* forget the oldest plan when full: triggers are rarely recreated */
	if (n_enqueue_plans == MAX_ENQUEUE_PLANS)
	{
		SPI_freeplan(enqueue_plans[0].plan);
		memmove(&enqueue_plans[0], &enqueue_plans[1],
				sizeof(EnqueuePlan) * (MAX_ENQUEUE_PLANS - 1));
		n_enqueue_plans--;
	}
	enqueue_plans[n_enqueue_plans].tgoid = tg->tgoid;
	enqueue_plans[n_enqueue_plans].plan = plan;
	n_enqueue_plans++;
	return plan;
}

/*
 * columns_present: are the columns the trigger names all in the table?
 * A missing one is reported once per trigger and process, in the log.
 */
static bool
columns_present(TriggerData *td)
{
	static Oid warned_tgoid = InvalidOid;
	Trigger	  *tg = td->tg_trigger;
	TupleDesc  desc = RelationGetDescr(td->tg_relation);

	for (int i = 0; i < tg->tgnargs; i++)
	{
		if (tg->tgargs[i][0] == '\0' || SPI_fnumber(desc, tg->tgargs[i]) > 0)
			continue;
		if (warned_tgoid != tg->tgoid)
		{
			warned_tgoid = tg->tgoid;
			ereport(LOG,
					(errmsg("lead_enrich: column \"%s\" of table \"%s\" is gone: new leads are not enqueued",
							tg->tgargs[i], RelationGetRelationName(td->tg_relation)),
					 errhint("Run lead_enrich.attach() again.")));
		}
		return false;
	}
	return true;
}

/*
 * lead_enrich.enqueue(): the trigger function (see the file comment).
 */
Datum
lead_enrich_enqueue(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	bool		 row;
	SPIPlanPtr	 plan;
	int			 ret;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("lead_enrich.enqueue() must be called as a trigger")));
	if (!TRIGGER_FIRED_AFTER(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("lead_enrich.enqueue() must be an AFTER trigger")));
	row = TRIGGER_FIRED_FOR_ROW(td->tg_event);
	if (!row && td->tg_newtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("statement trigger \"%s\" needs a NEW TABLE transition table",
						td->tg_trigger->tgname)));
	/* an INSERT of no rows costs nothing more */
	if (!row && tuplestore_tuple_count(td->tg_newtable) == 0)
		return PointerGetDatum(NULL);
	if (td->tg_trigger->tgnargs == 5 && !columns_present(td))
		return PointerGetDatum(NULL);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!row && SPI_register_trigger_data(td) != SPI_OK_TD_REGISTER)
		elog(ERROR, "SPI_register_trigger_data failed");
	plan = get_plan(td, row);
	if (row)
	{
		HeapTuple tup = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
		Datum	  arg = heap_copy_tuple_as_datum(tup, RelationGetDescr(td->tg_relation));

		ret = SPI_execute_plan(plan, &arg, NULL, false, 0);
	}
	else
		ret = SPI_execute_plan(plan, NULL, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not enqueue leads: %s", SPI_result_code_string(ret));
	if (SPI_processed > 0)
		le_wake_at_commit();
	SPI_finish();
	return PointerGetDatum(NULL);
}
