/*-------------------------------------------------------------------------
 *
 * trigger.c
 *	  The enqueue trigger of automatic mode: new leads, and leads whose
 *	  e-mail changed, become "pending" in lead_enrich.lead_state, and the
 *	  background worker is woken when the transaction commits.
 *
 * attach() and set_mode() install two triggers on the attached table while
 * the mode is 'auto' (lead_enrich.sync_triggers()):
 *
 *	AFTER INSERT ... REFERENCING NEW TABLE ... FOR EACH STATEMENT
 *		the new leads' ids are appended to the shared list of intake.c, with
 *		the (sub)transaction that inserted them, under one lock per
 *		statement however many rows it inserted: no statement, no row, no
 *		WAL.  The worker makes the committed ones durable 'pending' rows and
 *		applies the filter below to their current values (intake.c, which
 *		also says how no lead is lost across a crash, a restart or a
 *		failover).  Without shared memory for this database (the library not
 *		preloaded, or every database slot taken), the rows are written here,
 *		as below;
 *	AFTER UPDATE OF <email>, <active> ... FOR EACH ROW
 *	WHEN (old <> new e-mail OR the lead made active again)
 *		one INSERT ... ON CONFLICT into lead_state, as the change happens:
 *		PostgreSQL refuses transition tables on triggers with a column list,
 *		and a statement trigger on every UPDATE would copy every updated row
 *		(the worker's own enrichment UPDATEs included) into a tuplestore;
 *		the WHEN clause makes this trigger fire only for such a change.
 *
 * Both run this function, with the table's id, e-mail, done, reveal_id,
 * probability and active columns as arguments ('' when unmapped; triggers
 * of version 1.1 pass the first five).  Only leads that need enriching are
 * enqueued: an e-mail, not done, no reveal_id, not won, not archived (Odoo
 * enriches no archived lead automatically).
 *
 * The insert trigger runs it as lead_enrich.intake(), an ordinary function:
 * appending to shared memory needs no rights, and a SECURITY DEFINER
 * function with its own search_path costs a GUC nest level on every
 * INSERT, about as much as the append itself.  The update trigger runs it
 * as lead_enrich.enqueue(), SECURITY DEFINER (the inserting roles have no
 * rights on lead_state) with search_path pinned to pg_catalog, pg_temp.
 * Either way, every statement it runs (the update, and the insert without
 * shared memory) runs as the extension's owner, restricted, with the
 * search_path pinned (guard.c), so it can resolve no operator or function
 * an ordinary role created; it reads only the new rows' columns of the
 * types attach() accepted, so no code of the table's owner runs with the
 * extension owner's rights.  When a column it names is gone (dropped or
 * renamed since attach()), it does nothing and says so once per process
 * in the server log: the CRM keeps working, and lead_enrich.status shows
 * why nothing is enqueued.
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
#include "utils/tuplestore.h"

#include "citus.h"
#include "guard.h"
#include "intake.h"
#include "lead_enrich.h"
#include "queue.h"
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
 * le_enqueue_filter: the WHERE clause on the new rows "n" that keeps only
 * the leads that need enriching (an e-mail, not done, no reveal_id, not
 * won, active).  Also used by the shard-level trigger of Citus mode
 * (citus.c).
 */
void
le_enqueue_filter(StringInfo s, Trigger *tg)
{
	appendStringInfo(s, " WHERE btrim(coalesce(n.%s::text, '')) <> ''", quote_identifier(tg->tgargs[1]));
	if (tg->tgargs[2][0] != '\0')
		appendStringInfo(s, " AND NOT coalesce(n.%s, false)", quote_identifier(tg->tgargs[2]));
	if (tg->tgargs[3][0] != '\0')
		appendStringInfo(s, " AND coalesce(n.%s::text, '') = ''", quote_identifier(tg->tgargs[3]));
	/* probability is numeric or float: the operator is named exactly */
	if (tg->tgargs[4][0] != '\0')
		appendStringInfo(s, " AND coalesce(n.%s OPERATOR(pg_catalog.<) 100, true)",
						 quote_identifier(tg->tgargs[4]));
	if (tg->tgnargs > 5 && tg->tgargs[5][0] != '\0')
		appendStringInfo(s, " AND coalesce(n.%s, true)", quote_identifier(tg->tgargs[5]));
}

/*
 * le_enqueue_begin: what an enqueue trigger does before its statement: SPI,
 * the transition table made visible to it (a statement trigger), and the
 * extension owner's rights with search_path pinned (le_guard_end() after).
 */
void
le_enqueue_begin(TriggerData *td, bool row, LeGuard *g)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!row && SPI_register_trigger_data(td) != SPI_OK_TD_REGISTER)
		elog(ERROR, "SPI_register_trigger_data failed");
	le_guard_extension(g);
}

/*
 * le_enqueue_run: run an enqueue statement kept for this trigger: on the
 * row that fired it (a row trigger: the new row as $1) or on the statement's
 * transition table (registered by the caller).  Returns SPI's result.
 */
int
le_enqueue_run(SPIPlanPtr plan, TriggerData *td, bool row)
{
	HeapTuple tup;
	Datum	  arg;

	if (!row)
		return SPI_execute_plan(plan, NULL, NULL, false, 0);
	tup = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	arg = heap_copy_tuple_as_datum(tup, RelationGetDescr(td->tg_relation));
	return SPI_execute_plan(plan, &arg, NULL, false, 0);
}

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
					 "SELECT n.%s, 'pending', n.%s, 'worker', 0, now() FROM %s n",
					 id, email, source);
	le_enqueue_filter(&s, tg);
	/* a lead already done (or mined) is not enriched again */
	appendStringInfoString(&s, queue_requeue_clause());
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

	if (tg->tgnargs != 5 && tg->tgnargs != 6)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" must pass 6 column names to lead_enrich.enqueue()",
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
 * The columns a trigger names, as attribute numbers (0: unmapped), for the
 * trigger seen last in this process.  Checked at every call by name, which
 * is cheaper than looking each name up in the table's descriptor.
 */
static Oid		  cols_tgoid = InvalidOid;
static AttrNumber cols_attnum[6];

/*
 * columns_present: are the columns the trigger names all in the table?
 * A missing one is reported once per trigger and process, in the log.
 * Sets *id_attnum to the id column's attribute number.
 */
static bool
columns_present(TriggerData *td, AttrNumber *id_attnum)
{
	static Oid warned_tgoid = InvalidOid;
	Trigger	  *tg = td->tg_trigger;
	TupleDesc  desc = RelationGetDescr(td->tg_relation);
	bool	   cached = cols_tgoid == tg->tgoid;

	for (int i = 0; i < tg->tgnargs; i++)
	{
		AttrNumber a;

		if (tg->tgargs[i][0] == '\0')
		{
			cols_attnum[i] = 0;
			continue;
		}
		a = cached ? cols_attnum[i] : 0;
		if (a <= 0 || a > desc->natts || TupleDescAttr(desc, a - 1)->attisdropped ||
			strcmp(NameStr(TupleDescAttr(desc, a - 1)->attname), tg->tgargs[i]) != 0)
			a = SPI_fnumber(desc, tg->tgargs[i]);
		if (a > 0)
		{
			cols_attnum[i] = a;
			continue;
		}
		cols_tgoid = InvalidOid;
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
	cols_tgoid = tg->tgoid;
	*id_attnum = cols_attnum[0];
	return true;
}

/*
 * id_of: a lead's id from its column's datum (int2, int4 or int8: attach()
 * accepts no other type).
 */
static int64
id_of(Datum d, Oid typid)
{
	if (typid == INT2OID)
		return DatumGetInt16(d);
	if (typid == INT4OID)
		return DatumGetInt32(d);
	return DatumGetInt64(d);
}

/*
 * intake_new_leads: hand the ids of the inserted rows to intake.c.  Returns
 * false when it has no room for this database: the caller enqueues them.
 */
static bool
intake_new_leads(TriggerData *td, bool row, AttrNumber id_attnum)
{
	TupleDesc		 desc = RelationGetDescr(td->tg_relation);
	Oid				 typid = TupleDescAttr(desc, id_attnum - 1)->atttypid;
	Tuplestorestate *ts = td->tg_newtable;
	bool			 isnull;
	Datum			 d;
	int64			 one;
	int64			*ids = &one;
	int				 n = 0;
	TupleTableSlot	*slot;
	int				 ptr;

	if (row)
	{
		d = heap_getattr(td->tg_trigtuple, id_attnum, desc, &isnull);
		if (isnull)
			return true;
		one = id_of(d, typid);
		return le_intake_add(RelationGetRelid(td->tg_relation), &one, 1);
	}

	/* a read pointer of our own: other triggers may read the same rows */
	if (tuplestore_tuple_count(ts) > 1)
		ids = palloc(sizeof(int64) * tuplestore_tuple_count(ts));
	slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	ptr = tuplestore_alloc_read_pointer(ts, 0);
	tuplestore_select_read_pointer(ts, ptr);
	tuplestore_rescan(ts);
	while (tuplestore_gettupleslot(ts, true, false, slot))
	{
		d = slot_getattr(slot, id_attnum, &isnull);
		if (!isnull)
			ids[n++] = id_of(d, typid);
	}
	ExecDropSingleTupleTableSlot(slot);
	return n == 0 || le_intake_add(RelationGetRelid(td->tg_relation), ids, n);
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
	AttrNumber	 id_attnum = 0;
	LeGuard		 g;

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
	if ((td->tg_trigger->tgnargs == 5 || td->tg_trigger->tgnargs == 6) && !columns_present(td, &id_attnum))
		return PointerGetDatum(NULL);

	/* new leads: into shared memory, the worker makes them durable */
	if (TRIGGER_FIRED_BY_INSERT(td->tg_event) && id_attnum > 0 && intake_new_leads(td, row, id_attnum))
	{
		le_wake_at_commit();
		return PointerGetDatum(NULL);
	}

	/* as the extension's owner, restricted, search_path pinned */
	le_enqueue_begin(td, row, &g);
	plan = get_plan(td, row);
	ret = le_enqueue_run(plan, td, row);
	le_guard_end(&g);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not enqueue leads: %s", SPI_result_code_string(ret));
	if (SPI_processed > 0)
		le_wake_at_commit();
	SPI_finish();
	return PointerGetDatum(NULL);
}
