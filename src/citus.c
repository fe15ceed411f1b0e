/*-------------------------------------------------------------------------
 *
 * citus.c
 *	  lead_enrich on a Citus cluster: the attached table is a distributed
 *	  table (Citus's pg_dist_partition lists it).
 *
 * Citus runs a trigger of a distributed table on the worker nodes, once
 * per shard touched, never on the coordinator, and such a trigger cannot
 * run a distributed query; a write to several shards commits with
 * two-phase commit, so a worker node's backend sees PREPARE, never the
 * commit its wake-up callback waits for.  So in Citus mode
 * (lead_enrich.sync_triggers() sees a distributed table):
 *
 *	the queue
 *		lead_enrich.citus_queue (dist_key, lead_id, email, queued_at), a
 *		distributed table co-located with the lead table: its shards live
 *		beside the lead table's and move with them (rebalance, shard move);
 *	the triggers
 *		lead_enrich.citus_enqueue(), on the lead table and so, by Citus, on
 *		every shard (new shards and moved ones get them too): it appends
 *		the leads that need enriching to the co-located queue shard, a
 *		local INSERT on the worker node, in the writing transaction: what
 *		commits is queued, what aborts is not, whatever the commit protocol;
 *	the collect
 *		the background worker on the coordinator, at the start of every
 *		claim (beside le_intake_collect), moves the queue's rows into
 *		lead_enrich.lead_state (local to the coordinator) in one
 *		transaction: a DELETE ... RETURNING over the queue's shards and the
 *		same INSERT ... ON CONFLICT as the plain trigger's;
 *	the claim and the write-back
 *		every statement on the lead table that locks or writes rows by id
 *		(lead_table.c: lt_select, lt_update, lt_mark_done) is run once per
 *		shard, with the ids of that shard only, so that Citus routes it to
 *		one shard (a router query: FOR UPDATE [SKIP LOCKED] works there,
 *		and the UPDATE is pruned by "id = ANY($1)"); the rows are merged
 *		into one result for the caller;
 *	the wake-up
 *		a periodic pass every lead_enrich.citus_poll_interval (one second
 *		by default), which does not depend on any commit callback; it
 *		costs one multi-shard DELETE of nothing when the queue is empty.
 *
 * One worker on the coordinator serves the cluster: lead_state, the
 * batches and the provider's accounting stay in one place, so the
 * exactly-once guarantees of queue.c hold unchanged; the worker nodes only
 * run the triggers (they need the library installed, not preloaded).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <errno.h>

#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "citus.h"
#include "guard.h"
#include "lead_enrich.h"
#include "queue.h"
#include "worker.h"

PG_FUNCTION_INFO_V1(lead_enrich_citus_enqueue);

/* lead_enrich.citus_poll_interval, in milliseconds */
static int le_citus_poll_ms = 1000;

/* did this worker's last collect find a distributed lead table? */
static bool citus_mode_seen = false;

/*
 * le_citus_define_settings: the settings of Citus mode (called by
 * _PG_init).
 */
void
le_citus_define_settings(void)
{
	DefineCustomIntVariable("lead_enrich.citus_poll_interval",
							"Time between two passes of the worker when the lead table is a Citus distributed table.",
							"Triggers on the shards cannot wake the worker on the coordinator: "
							"it looks for new leads this often.",
							&le_citus_poll_ms, 1000, 100, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
}

/*
 * le_citus_distributed: is relid a Citus distributed table (hash or
 * range, not a reference table)?  False when Citus is not installed in
 * this database.  One catalog look-up; needs SPI.
 */
bool
le_citus_distributed(Oid relid)
{
	Oid	  argtype = OIDOID;
	Datum arg = ObjectIdGetDatum(relid);
	int	  ret;
	bool  result = false;

	if (!OidIsValid(get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE)))
		return false;
	ret = SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_dist_partition "
								"WHERE logicalrelid = $1 AND partmethod OPERATOR(pg_catalog.<>) 'n'",
								1, &argtype, &arg, NULL, true, 1);
	if (ret == SPI_OK_SELECT && SPI_processed == 1)
		result = true;
	if (SPI_tuptable != NULL)
		SPI_freetuptable(SPI_tuptable);
	return result;
}

/*
 * le_citus_collect: move the queued leads of the distributed queue into
 * lead_state (see the file comment).  Called by the worker at the start of
 * every claim, in its transaction, with SPI connected; does nothing (one
 * catalog look-up) when the lead table is not distributed.
 */
void
le_citus_collect(void)
{
	Oid		queue;
	int		ret;
	uint64	n;
	Datum  *ids;
	Datum  *emails;
	bool   *enulls;
	LeGuard g;

	queue = get_relname_relid("citus_queue", get_namespace_oid("lead_enrich", false));
	citus_mode_seen = OidIsValid(queue) && le_citus_distributed(queue);
	if (!citus_mode_seen)
		return;

	le_guard_extension(&g);
	ret = SPI_execute("DELETE FROM lead_enrich.citus_queue RETURNING lead_id, email, queued_at", false, 0);
	if (ret != SPI_OK_DELETE_RETURNING)
	{
		le_guard_end(&g);
		elog(ERROR, "could not read lead_enrich.citus_queue: %s", SPI_result_code_string(ret));
	}
	n = SPI_processed;
	if (n == 0)
	{
		le_guard_end(&g);
		SPI_freetuptable(SPI_tuptable);
		return;
	}
	ids = palloc(sizeof(Datum) * n);
	emails = palloc(sizeof(Datum) * n);
	enulls = palloc(sizeof(bool) * n);
	{
		Datum *at = palloc(sizeof(Datum) * n);
		int	   dims[1] = {(int) n};
		int	   lbs[1] = {1};
		Datum  targs[3];
		Oid	   ttypes[3] = {INT8ARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID};
		char  *sql;
		bool   isnull;

		for (uint64 i = 0; i < n; i++)
		{
			HeapTuple tup = SPI_tuptable->vals[i];
			TupleDesc desc = SPI_tuptable->tupdesc;
			char	 *e;

			ids[i] = SPI_getbinval(tup, desc, 1, &isnull);
			e = SPI_getvalue(tup, desc, 2);
			enulls[i] = e == NULL;
			emails[i] = e ? CStringGetTextDatum(e) : (Datum) 0;
			at[i] = SPI_getbinval(tup, desc, 3, &isnull);
		}
		targs[0] = PointerGetDatum(construct_array(ids, (int) n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		targs[1] = PointerGetDatum(construct_md_array(emails, enulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
		targs[2] = PointerGetDatum(construct_array(at, (int) n, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		SPI_freetuptable(SPI_tuptable);
		/* the newest address of a lead queued twice */
		sql = psprintf("INSERT INTO lead_enrich.lead_state AS s "
					   "(lead_id, status, email, source, attempts, updated_at) "
					   "SELECT DISTINCT ON (u.l) u.l, 'pending', u.e, 'worker', 0, now() "
					   "FROM unnest($1, $2, $3) AS u(l, e, t) ORDER BY u.l, u.t DESC%s",
					   queue_requeue_clause());
		ret = SPI_execute_with_args(sql, 3, ttypes, targs, NULL, false, 0);
	}
	le_guard_end(&g);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not queue leads: %s", SPI_result_code_string(ret));
}

/*
 * le_citus_next_pass: when the worker's next pass is due, given the time
 * run_pass chose: no later than citus_poll_interval from now in Citus mode.
 */
TimestampTz
le_citus_next_pass(TimestampTz due)
{
	TimestampTz poll;

	if (!citus_mode_seen)
		return due;
	poll = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), le_citus_poll_ms);
	return Min(due, poll);
}

/*
 * le_citus_shard_groups: the shards the ids (an int8[] of lead ids, the
 * distribution column's values) fall in: sets (*group_of)[i] to the group
 * (0 .. n - 1) of the i-th element and returns n.  Needs SPI; leaves
 * SPI_tuptable alone.
 */
int
le_citus_shard_groups(Oid relid, Datum ids, int **group_of)
{
	Oid			   argtypes[2] = {OIDOID, INT8ARRAYOID};
	Datum		   args[2] = {ObjectIdGetDatum(relid), ids};
	SPITupleTable *saved = SPI_tuptable;
	uint64		   saved_n = SPI_processed;
	int			   ngroups = 0;
	int			   ret;

	ret = SPI_execute_with_args("SELECT (pg_catalog.dense_rank() OVER (ORDER BY "
								"pg_catalog.get_shard_id_for_distribution_column($1::pg_catalog.regclass, u.x)))::int4 "
								"FROM unnest($2) WITH ORDINALITY AS u(x, o) ORDER BY u.o",
								2, argtypes, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not find the shards of %d leads: %s",
			 ArrayGetNItems(ARR_NDIM(DatumGetArrayTypeP(ids)), ARR_DIMS(DatumGetArrayTypeP(ids))),
			 SPI_result_code_string(ret));
	*group_of = palloc(sizeof(int) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool isnull;
		int	 g = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull)) - 1;

		(*group_of)[i] = g;
		ngroups = Max(ngroups, g + 1);
	}
	SPI_freetuptable(SPI_tuptable);
	SPI_tuptable = saved;
	SPI_processed = saved_n;
	return ngroups;
}

/*
 * le_citus_tenant_column: the distribution column of the distributed
 * table relid when it is not idcol (a table distributed by tenant), with
 * its type; NULL when it is distributed by the lead id.  Needs SPI; leaves
 * SPI_tuptable alone.
 */
char *
le_citus_tenant_column(Oid relid, const char *idcol, Oid *type)
{
	Oid			   argtype = OIDOID;
	Datum		   arg = ObjectIdGetDatum(relid);
	SPITupleTable *saved = SPI_tuptable;
	uint64		   saved_n = SPI_processed;
	char		  *col = NULL;
	int			   ret;

	ret = SPI_execute_with_args("SELECT a.attname::text, a.atttypid FROM pg_catalog.pg_dist_partition p "
								"JOIN pg_catalog.pg_attribute a ON a.attrelid = p.logicalrelid "
								"AND a.attname OPERATOR(pg_catalog.=) pg_catalog.column_to_column_name(p.logicalrelid, p.partkey) "
								"WHERE p.logicalrelid = $1",
								1, &argtype, &arg, NULL, true, 1);
	if (ret == SPI_OK_SELECT && SPI_processed == 1)
	{
		bool isnull;

		col = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		*type = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		if (col != NULL && strcmp(col, idcol) == 0)
			col = NULL;
	}
	if (SPI_tuptable != NULL && SPI_tuptable != saved)
		SPI_freetuptable(SPI_tuptable);
	SPI_tuptable = saved;
	SPI_processed = saved_n;
	return col;
}

/*
 * le_citus_tenant_groups: for a table distributed by a tenant column tcol
 * (of type ttype), the shards of the leads of ids (int8[]): reads each
 * lead's tenant (one multi-shard SELECT, no lock), sets (*group_of)[i] to
 * the group of the i-th id (-1: no such lead) and (*tenants)[g] to an array
 * (ttype[]) of the tenants of group g, the pruning condition of its
 * statements.  Returns the number of groups.  Needs SPI; leaves
 * SPI_tuptable alone.
 */
int
le_citus_tenant_groups(Oid relid, const char *qualname, const char *idcol, const char *tcol,
					   Oid ttype, Datum ids, int **group_of, Datum **tenants)
{
	ArrayType	  *a = DatumGetArrayTypeP(ids);
	Datum		  *elems;
	bool		  *enulls;
	int			   nelems;
	Oid			   argtypes[2] = {OIDOID, INT8ARRAYOID};
	Datum		   args[2] = {ObjectIdGetDatum(relid), ids};
	SPITupleTable *saved = SPI_tuptable;
	uint64		   saved_n = SPI_processed;
	int64		  *shard_of_row;
	int64		  *id_of_row;
	Datum		  *tenant_of_row;
	int64		  *shards;
	int			   nrows;
	int			   ngroups = 0;
	int16		   typlen;
	bool		   typbyval;
	char		   typalign;
	int			   ret;

	get_typlenbyvalalign(ttype, &typlen, &typbyval, &typalign);
	deconstruct_array(a, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &enulls, &nelems);
	ret = SPI_execute_with_args(psprintf("SELECT l.%s::bigint, l.%s, "
										 "pg_catalog.get_shard_id_for_distribution_column($1::pg_catalog.regclass, l.%s) "
										 "FROM %s l WHERE l.%s = ANY ($2)",
										 quote_identifier(idcol), quote_identifier(tcol), quote_identifier(tcol),
										 qualname, quote_identifier(idcol)),
								2, argtypes, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the tenants of %d leads: %s", nelems, SPI_result_code_string(ret));
	nrows = (int) SPI_processed;
	shard_of_row = palloc(sizeof(int64) * Max(nrows, 1));
	id_of_row = palloc(sizeof(int64) * Max(nrows, 1));
	tenant_of_row = palloc(sizeof(Datum) * Max(nrows, 1));
	shards = palloc(sizeof(int64) * Max(nrows, 1));
	for (int r = 0; r < nrows; r++)
	{
		bool  isnull;
		Datum t;

		id_of_row[r] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
		t = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull);
		tenant_of_row[r] = isnull ? (Datum) 0 : datumCopy(t, typbyval, typlen);
		shard_of_row[r] = isnull ? -1 : DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 3, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);
	SPI_tuptable = saved;
	SPI_processed = saved_n;

	*group_of = palloc(sizeof(int) * Max(nelems, 1));
	for (int i = 0; i < nelems; i++)
	{
		(*group_of)[i] = -1;
		for (int r = 0; r < nrows && !enulls[i]; r++)
		{
			int g;

			if (id_of_row[r] != DatumGetInt64(elems[i]) || shard_of_row[r] < 0)
				continue;
			for (g = 0; g < ngroups && shards[g] != shard_of_row[r]; g++)
				;
			if (g == ngroups)
				shards[ngroups++] = shard_of_row[r];
			(*group_of)[i] = g;
			break;
		}
	}
	*tenants = palloc(sizeof(Datum) * Max(ngroups, 1));
	for (int g = 0; g < ngroups; g++)
	{
		Datum *v = palloc(sizeof(Datum) * Max(nrows, 1));
		int	   n = 0;

		for (int r = 0; r < nrows; r++)
			if (shard_of_row[r] == shards[g])
				v[n++] = tenant_of_row[r];
		(*tenants)[g] = PointerGetDatum(construct_array(v, n, ttype, typlen, typbyval, typalign));
	}
	return ngroups;
}

/* a lead id and its shard's group, for le_citus_order_claim */
typedef struct IdGroup
{
	int64 id;
	int	  group;
} IdGroup;

/*
 * cmp_id_group: by group, then by id.
 */
static int
cmp_id_group(const void *a, const void *b)
{
	const IdGroup *x = a;
	const IdGroup *y = b;

	if (x->group != y->group)
		return x->group < y->group ? -1 : 1;
	return (x->id > y->id) - (x->id < y->id);
}

/*
 * le_citus_order_claim: in Citus mode, order the ids the worker claims by
 * shard, so that each batch cut from them spans one shard, or two: every
 * statement of a batch runs once per shard it spans (lt_select,
 * lt_update), a round trip to a worker node each.  Needs SPI.
 */
void
le_citus_order_claim(Oid relid, const char *idcol, int64 *ids, int n)
{
	Datum	*d;
	int		*group_of;
	IdGroup *v;
	Oid		 ttype;

	/* by tenant: the shard is not a function of the id */
	if (!citus_mode_seen || n < 2 || le_citus_tenant_column(relid, idcol, &ttype) != NULL)
		return;
	d = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
		d[i] = Int64GetDatum(ids[i]);
	(void) le_citus_shard_groups(relid,
								 PointerGetDatum(construct_array(d, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE)),
								 &group_of);
	v = palloc(sizeof(IdGroup) * n);
	for (int i = 0; i < n; i++)
	{
		v[i].id = ids[i];
		v[i].group = group_of[i];
	}
	qsort(v, n, sizeof(IdGroup), cmp_id_group);
	for (int i = 0; i < n; i++)
		ids[i] = v[i].id;
}

/*
 * le_citus_subarray: the elements of a one-dimensional array whose group
 * (le_citus_shard_groups) is group, nulls kept.
 */
Datum
le_citus_subarray(Datum array, Oid elemtype, const int *group_of, int group)
{
	ArrayType *a = DatumGetArrayTypeP(array);
	int16	   typlen;
	bool	   typbyval;
	char	   typalign;
	Datum	  *elems;
	bool	  *nulls;
	int		   nelems;
	int		   n = 0;
	int		   dims[1];
	int		   lbs[1] = {1};

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(a, elemtype, typlen, typbyval, typalign, &elems, &nulls, &nelems);
	for (int i = 0; i < nelems; i++)
	{
		if (group_of[i] != group)
			continue;
		elems[n] = elems[i];
		nulls[n] = nulls[i];
		n++;
	}
	dims[0] = n;
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs, elemtype, typlen, typbyval, typalign));
}

/*
 * le_citus_merge_results: make the results of n statements (one per shard,
 * same columns) one: the rows go into the last one's memory, which becomes
 * SPI_tuptable (so that SPI_freetuptable frees them all), the others are
 * freed, and SPI_processed is the total.
 */
void
le_citus_merge_results(SPITupleTable **tts, int n)
{
	SPITupleTable *last = NULL;
	uint64		   total = 0;
	HeapTuple	  *vals;
	uint64		   k = 0;
	MemoryContext  old;

	for (int i = 0; i < n; i++)
		if (tts[i] != NULL)
		{
			last = tts[i];
			total += tts[i]->numvals;
		}
	if (last == NULL)
	{
		SPI_tuptable = NULL;
		SPI_processed = 0;
		return;
	}
	old = MemoryContextSwitchTo(last->tuptabcxt);
	vals = palloc(sizeof(HeapTuple) * Max(total, 1));
	for (int i = 0; i < n; i++)
	{
		if (tts[i] == NULL || tts[i] == last)
			continue;
		for (uint64 r = 0; r < tts[i]->numvals; r++)
			vals[k++] = heap_copytuple(tts[i]->vals[r]);
	}
	for (uint64 r = 0; r < last->numvals; r++)
		vals[k++] = last->vals[r];
	MemoryContextSwitchTo(old);
	for (int i = 0; i < n; i++)
		if (tts[i] != NULL && tts[i] != last)
			SPI_freetuptable(tts[i]);
	last->vals = vals;
	last->numvals = total;
	last->alloced = Max(total, 1);
	SPI_tuptable = last;
	SPI_processed = total;
}

/*
 * Plans of the shard-level trigger, per trigger (each shard has its own):
 * the INSERT into the co-located queue shard.
 */
typedef struct ShardPlan
{
	Oid		   tgoid;
	SPIPlanPtr plan;
} ShardPlan;

#define MAX_SHARD_PLANS 256

static ShardPlan shard_plans[MAX_SHARD_PLANS];
static int		 n_shard_plans = 0;

/*
 * queue_shard_of: the name of the queue's shard co-located with the lead
 * table's shard rel (its name ends in _<shardid>), or an error.
 */
static const char *
queue_shard_of(Relation rel)
{
	const char *relname = RelationGetRelationName(rel);
	const char *us = strrchr(relname, '_');
	int64		shardid;
	char	   *end;
	Oid			argtype = INT8OID;
	Datum		arg;
	char	   *name = NULL;

	if (us == NULL || us[1] == '\0')
		shardid = -1;
	else
	{
		errno = 0;
		shardid = strtoll(us + 1, &end, 10);
		if (errno != 0 || *end != '\0')
			shardid = -1;
	}
	if (shardid > 0)
	{
		int ret;

		arg = Int64GetDatum(shardid);
		ret = SPI_execute_with_args("SELECT 'citus_queue_' || q.shardid FROM pg_catalog.pg_dist_shard s "
									"JOIN pg_catalog.pg_dist_shard q ON q.shardminvalue = s.shardminvalue "
									"AND q.logicalrelid = 'lead_enrich.citus_queue'::pg_catalog.regclass "
									"WHERE s.shardid = $1",
									1, &argtype, &arg, NULL, true, 1);
		if (ret == SPI_OK_SELECT && SPI_processed == 1)
			name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	}
	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lead_enrich.citus_enqueue() fired on \"%s\", which is no shard of a distributed lead table",
						relname),
				 errdetail("The trigger queues leads into the co-located shard of lead_enrich.citus_queue."),
				 errhint("Run SELECT lead_enrich.attach(...) again on the coordinator.")));
	return quote_identifier(name);
}

/*
 * lead_enrich.citus_enqueue(id, email, done, reveal_id, probability,
 * active, distribution column): the trigger of Citus mode, on every shard
 * of the lead table (see the file comment).  As the plain enqueue trigger,
 * it runs its statement as the extension's owner, restricted, with the
 * search_path pinned, and reads only the new rows' mapped columns.
 */
Datum
lead_enrich_citus_enqueue(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Trigger		*tg;
	bool		 row;
	SPIPlanPtr	 plan = NULL;
	int			 ret;
	LeGuard		 g;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("lead_enrich.citus_enqueue() must be called as an AFTER trigger")));
	tg = td->tg_trigger;
	if (tg->tgnargs != 7)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" must pass 7 column names to lead_enrich.citus_enqueue()",
						tg->tgname),
				 errhint("Call lead_enrich.attach() again to reinstall the triggers.")));
	row = TRIGGER_FIRED_FOR_ROW(td->tg_event);
	if (!row && (td->tg_newtable == NULL || tuplestore_tuple_count(td->tg_newtable) == 0))
		return PointerGetDatum(NULL);

	le_enqueue_begin(td, row, &g);
	for (int i = 0; i < n_shard_plans; i++)
		if (shard_plans[i].tgoid == tg->tgoid)
			plan = shard_plans[i].plan;
	if (plan == NULL)
	{
		StringInfoData s;
		Oid			   argtype = td->tg_relation->rd_rel->reltype;

		initStringInfo(&s);
		appendStringInfo(&s,
						 "INSERT INTO lead_enrich.%s (dist_key, lead_id, email, queued_at) "
						 "SELECT n.%s, n.%s, n.%s, pg_catalog.clock_timestamp() FROM %s n",
						 queue_shard_of(td->tg_relation), quote_identifier(tg->tgargs[6]),
						 quote_identifier(tg->tgargs[0]), quote_identifier(tg->tgargs[1]),
						 row ? "(SELECT ($1).*)" : quote_identifier(tg->tgnewtable));
		le_enqueue_filter(&s, tg);
		plan = le_keep_plan(s.data, row ? 1 : 0, &argtype);
		if (n_shard_plans == MAX_SHARD_PLANS)
		{
			SPI_freeplan(shard_plans[0].plan);
			memmove(&shard_plans[0], &shard_plans[1], sizeof(ShardPlan) * (MAX_SHARD_PLANS - 1));
			n_shard_plans--;
		}
		shard_plans[n_shard_plans].tgoid = tg->tgoid;
		shard_plans[n_shard_plans].plan = plan;
		n_shard_plans++;
	}
	ret = le_enqueue_run(plan, td, row);
	le_guard_end(&g);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not queue leads: %s", SPI_result_code_string(ret));
	SPI_finish();
	return PointerGetDatum(NULL);
}
