/*-------------------------------------------------------------------------
 *
 * queue.c
 *	  The batches of automatic enrichment: recorded when claimed, sent and
 *	  sent again exactly as recorded until the provider answers, settled
 *	  when the answer is written.
 *
 * Exactly-once charging rests on one rule: a batch's request id and its
 * members, the (lead, domain) pairs, are recorded in lead_enrich.batch in
 * the transaction that claims it, and each member's lead_state row points
 * to it (batch_id).  Whatever happens next (a timeout after the provider
 * committed, a crash, a restart, a lead won, deleted or changed
 * meanwhile), the batch is sent again with the same id and the same
 * domains, and the provider's replay store answers it without charging
 * again.  Leads in an unsettled batch are never claimed into another one,
 * and a manual enrichment leaves them to the worker.
 *
 * The request sends each distinct domain once, keyed by the first member
 * with that domain (the members are recorded in the batch's order), so the
 * request rebuilt from the record is the one first sent.
 *
 * A database can have several workers (lead_enrich.workers_per_database).
 * A batch belongs to the worker that holds its advisory lock
 * (queue_batch_lock): taken in the claim that records it, before that
 * claim commits, or when an unsettled batch is picked to be sent again,
 * and kept until its answer is written or the batch is given up.  So no
 * two workers send the same batch at once, and a worker that dies lets
 * its batches go with its session.  Pending leads are claimed FOR UPDATE
 * SKIP LOCKED (queue_claimable): two claims at once take different leads.
 *
 * Every statement here runs as the extension's owner under the pinned
 * search_path (guard.c): the operators and functions are pg_catalog's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "enrich.h"
#include "guard.h"
#include "queue.h"
#include "worker.h"

static const char *const status_names[] = {
	[LEAD_PENDING] = "pending",
	[LEAD_ENRICHED] = "enriched",
	[LEAD_NOT_FOUND] = "not_found",
	[LEAD_GENERIC_DOMAIN] = "generic_domain",
	[LEAD_INVALID_EMAIL] = "invalid_email",
	[LEAD_NO_EMAIL] = "no_email",
	[LEAD_INSUFFICIENT_CREDIT] = "insufficient_credit",
	[LEAD_ERROR] = "error",
	[LEAD_MINED] = "mined",
	[LEAD_SKIPPED] = "skipped",
	[LEAD_MISSING] = "missing",
	[LEAD_STALE] = "stale",
};

/*
 * lead_status_name: the status as lead_state and the SQL functions show it.
 */
const char *
lead_status_name(LeadStatus status)
{
	return status_names[status];
}

/*
 * lead_status_is_final: an outcome after which a lead is not sent again
 * (until its e-mail changes).
 */
bool
lead_status_is_final(LeadStatus status)
{
	return status == LEAD_ENRICHED || status == LEAD_NOT_FOUND ||
		   status == LEAD_GENERIC_DOMAIN || status == LEAD_MINED;
}

/*
 * final_statuses_sql: the final statuses as an SQL list, "('enriched', ...)",
 * built from lead_status_is_final.
 */
static const char *
final_statuses_sql(void)
{
	static char buf[256];

	if (buf[0] == '\0')
	{
		StringInfoData s;

		initStringInfo(&s);
		appendStringInfoChar(&s, '(');
		for (int i = 0; i < (int) lengthof(status_names); i++)
			if (lead_status_is_final((LeadStatus) i))
				appendStringInfo(&s, "%s'%s'", s.len > 1 ? ", " : "", status_names[i]);
		appendStringInfoChar(&s, ')');
		strlcpy(buf, s.data, sizeof(buf));
		pfree(s.data);
	}
	return buf;
}

/*
 * queue_requeue_clause: how an enqueue meets a lead that already has a
 * row: queued again with its new address, unless its outcome is final or
 * it is already queued with that address.  The enqueue trigger and the
 * intake append it to their INSERT INTO lead_state AS s ... .
 */
const char *
queue_requeue_clause(void)
{
	static char *clause = NULL;

	if (clause == NULL)
		clause = MemoryContextStrdup(TopMemoryContext,
									 psprintf(" ON CONFLICT (lead_id) DO UPDATE SET status = 'pending', "
											  "email = excluded.email, domain = NULL, source = 'worker', attempts = 0, "
											  "next_attempt_at = NULL, error = NULL, updated_at = now() "
											  "WHERE s.status NOT IN %s "
											  "AND (s.status <> 'pending' OR s.email IS DISTINCT FROM excluded.email)",
											  final_statuses_sql()));
	return clause;
}

/*
 * run_plan: execute a kept plan as the extension's owner, preparing it on
 * first use under the same guard.  The caller's memory context is current
 * again afterwards (SPI leaves its procedure context current), so what the
 * caller builds from the result outlives SPI_finish.
 */
static int
run_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types, Datum *args,
		 bool read_only)
{
	MemoryContext cxt = CurrentMemoryContext;
	LeGuard		  g;
	int			  ret;

	le_guard_extension(&g);
	if (*plan == NULL)
		*plan = le_keep_plan(sql, nargs, types);
	ret = SPI_execute_plan(*plan, args, NULL, read_only, 0);
	le_guard_end(&g);
	MemoryContextSwitchTo(cxt);
	if (ret < 0)
		elog(ERROR, "could not run \"%s\": %s", sql, SPI_result_code_string(ret));
	return ret;
}

/*
 * queue_batch_record: give the claimed batches bs[0 .. nb-1] (NULL ones
 * left out) their ids and request ids, and record them with their members,
 * in the claim's transaction: two statements whatever their number.  The
 * members are grouped by batch in one pass (an array per batch picked from
 * all the members was a scan of the round's members per batch: quadratic
 * in the round's size).  A member's row is its pending row, claimed; or,
 * for a lead the claim took straight from the intake (intake.h), a new
 * one.  A member whose row is not pending and free is an error: the claim
 * must not take a lead another batch holds or an outcome already final.
 */
void
queue_batch_record(EnrichBatch **bs, int nb)
{
	static SPIPlanPtr seq_plan = NULL;
	static SPIPlanPtr plan = NULL;
	Oid				  seq_type = INT4OID;
	Oid				  types[6] = {INT8ARRAYOID, TEXTARRAYOID, INT8ARRAYOID, TEXTARRAYOID, INT8ARRAYOID,
								  TEXTARRAYOID};
	int				  total = 0;
	int				  nrec = 0;
	int64			 *bids;
	const char		**rids;
	int64			 *members;
	const char		**domains;
	int64			 *owners;
	const char		**emails;
	int				  n = 0;
	Datum			  args[6];

	for (int k = 0; k < nb; k++)
	{
		if (bs[k] == NULL)
			continue;
		total += bs[k]->n;
		nrec++;
	}
	if (nrec == 0)
		return;
	bids = palloc(sizeof(int64) * nrec);
	rids = palloc(sizeof(char *) * nrec);
	members = palloc(sizeof(int64) * Max(total, 1));
	domains = palloc(sizeof(char *) * Max(total, 1));
	owners = palloc(sizeof(int64) * Max(total, 1));
	emails = palloc(sizeof(char *) * Max(total, 1));

	args[0] = Int32GetDatum(nrec);
	(void) run_plan(&seq_plan, "SELECT nextval('lead_enrich.batch_id_seq') FROM generate_series(1, $1)",
					1, &seq_type, args, false);
	if ((int) SPI_processed != nrec)
		elog(ERROR, "could not number %d batches", nrec);
	nrec = 0;
	for (int k = 0; k < nb; k++)
	{
		EnrichBatch *b = bs[k];
		bool		 isnull;
		char		 id[33];

		if (b == NULL)
			continue;
		b->batch_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[nrec], SPI_tuptable->tupdesc, 1, &isnull));
		/* random, recorded: every resend carries the same id */
		rpc_make_id(id, NULL);
		b->request_id = pstrdup(id);
		bids[nrec] = b->batch_id;
		rids[nrec++] = b->request_id;
		for (int i = 0; i < b->n; i++)
		{
			if (lead_awaits_answer(&b->rows[i]))
			{
				members[n] = b->rows[i].id;
				domains[n] = b->rows[i].domain;
				emails[n] = b->rows[i].email_raw;
				owners[n++] = b->batch_id;
			}
		}
	}
	SPI_freetuptable(SPI_tuptable);

	args[0] = int8_array(bids, nrec);
	args[1] = text_array(rids, nrec);
	args[2] = int8_array(members, n);
	args[3] = text_array(domains, n);
	args[4] = int8_array(owners, n);
	args[5] = text_array(emails, n);
	if (run_plan(&plan,
				 "WITH m AS (SELECT * FROM unnest($3, $4, $5, $6) WITH ORDINALITY AS m(lead_id, domain, batch_id, email, o)), "
				 "g AS (SELECT m.batch_id, array_agg(m.lead_id ORDER BY m.o) AS ids, "
				 "             array_agg(m.domain ORDER BY m.o) AS doms FROM m GROUP BY m.batch_id), "
				 "b AS (INSERT INTO lead_enrich.batch (id, request_id, lead_ids, domains) "
				 "      SELECT r.id, r.request_id, coalesce(g.ids, '{}'), coalesce(g.doms, '{}') "
				 "      FROM unnest($1, $2) AS r(id, request_id) LEFT JOIN g ON g.batch_id = r.id) "
				 "INSERT INTO lead_enrich.lead_state AS s "
				 "(lead_id, status, email, source, attempts, updated_at, batch_id) "
				 "SELECT m.lead_id, 'pending', m.email, 'worker', 0, now(), m.batch_id FROM m "
				 "ON CONFLICT (lead_id) DO UPDATE SET batch_id = excluded.batch_id "
				 "WHERE s.status = 'pending' AND s.batch_id IS NULL",
				 6, types, args, false) != SPI_OK_INSERT)
		elog(ERROR, "could not record %d batches", nrec);
	if ((int) SPI_processed != n)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not record %d batches: %d of their %d leads are no longer pending",
						nrec, n - (int) SPI_processed, n),
				 errdetail("Another batch holds them, or their outcome was written meanwhile.")));
}

/*
 * queue_batch_lock: make a batch this worker's, for the session, without
 * waiting; false when another worker has it.
 */
bool
queue_batch_lock(int64 batch_id)
{
	return le_lock_key(batch_id, LE_LOCK_BATCH, true, false);
}

/*
 * queue_batch_unlock: let a batch go (written, or given up).
 */
void
queue_batch_unlock(int64 batch_id)
{
	le_unlock_key(batch_id, LE_LOCK_BATCH);
}

/*
 * queue_batch_unsettled: up to max batches sent and not yet answered, the
 * oldest first, rebuilt as they were claimed (in the current memory
 * context), leaving out the worker's own batches still in flight (inflight:
 * their ids) and those another worker holds.  The batches returned are
 * locked (queue_batch_lock).  Returns how many.
 *
 * The ids come first, from the batch table alone, so that the batches of
 * the other workers' rounds in flight cost no look-up of their members.
 * The batches are then read with a snapshot taken after their locks: a
 * worker lets a batch go once the transaction that wrote its answer and
 * deleted it has committed, and the claim's own snapshot, older, would
 * still show it (two workers then wrote the same answers twice).
 */
int
queue_batch_unsettled(LeadTable *lt, int max, int64 *inflight, int ninflight,
					  EnrichBatch **out)
{
	static SPIPlanPtr id_plan = NULL;
	static SPIPlanPtr plan = NULL;
	Oid				  types[2] = {INT4OID, INT8ARRAYOID};
	/* enough ids to pass the other workers' batches: three rounds of max each */
	Datum		   args[2] = {Int32GetDatum(max * LE_MAX_WORKERS * 3 + max),
							  int8_array(inflight, ninflight)};
	Oid			   type = INT8ARRAYOID;
	Datum		   arg;
	int64		  *mine;
	int			   nmine = 0;
	SPITupleTable *tt;
	int			   nb;

	(void) run_plan(&id_plan,
					"SELECT b.id FROM lead_enrich.batch b WHERE b.id <> ALL ($2) ORDER BY b.id LIMIT $1",
					2, types, args, true);
	mine = palloc(sizeof(int64) * Max(SPI_processed, 1));
	for (uint64 r = 0; r < SPI_processed && nmine < max; r++)
	{
		bool  isnull;
		int64 id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));

		if (queue_batch_lock(id))
			mine[nmine++] = id;
	}
	SPI_freetuptable(SPI_tuptable);
	if (nmine == 0)
		return 0;

	arg = int8_array(mine, nmine);
	(void) run_plan(&plan,
					"SELECT b.id, b.request_id, b.lead_ids, b.domains, "
					"       ARRAY(SELECT s.email FROM unnest(b.lead_ids) WITH ORDINALITY AS m(id, o) "
					"             LEFT JOIN lead_enrich.lead_state s ON s.lead_id = m.id ORDER BY m.o) "
					"FROM lead_enrich.batch b WHERE b.id = ANY ($1) ORDER BY b.id",
					1, &type, &arg, false);
	tt = SPI_tuptable;
	nb = (int) SPI_processed;
	for (int k = 0; k < nb; k++)
	{
		HeapTuple	 tup = tt->vals[k];
		TupleDesc	 desc = tt->tupdesc;
		EnrichBatch *b = palloc0(sizeof(EnrichBatch));
		bool		 isnull;
		Datum		*ids;
		Datum		*doms;
		Datum		*emails;
		bool		*enulls;
		int			 n;

		b->lt = lt;
		b->batch_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		b->request_id = SPI_getvalue(tup, desc, 2);
		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 3, &isnull)),
						  INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &ids, NULL, &n);
		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 4, &isnull)),
						  TEXTOID, -1, false, TYPALIGN_INT, &doms, NULL, &n);
		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 5, &isnull)),
						  TEXTOID, -1, false, TYPALIGN_INT, &emails, &enulls, &n);
		b->rows = palloc0(sizeof(LeadRow) * Max(n, 1));
		b->domains = palloc0(sizeof(char *) * Max(n, 1));
		b->owner = palloc0(sizeof(int) * Max(n, 1));
		for (int i = 0; i < n; i++)
		{
			LeadRow *row = &b->rows[b->n++];

			row->id = DatumGetInt64(ids[i]);
			row->domain = TextDatumGetCString(doms[i]);
			row->email = enulls[i] ? NULL : TextDatumGetCString(emails[i]);
			row->email_raw = row->email;
			row->status = LEAD_PENDING;
			enrich_add_domain(b, i);
		}
		out[k] = b;
	}
	SPI_freetuptable(tt);

	/* settled by their worker between the two statements: not ours to keep */
	for (int j = 0; j < nmine; j++)
	{
		bool found = false;

		for (int k = 0; k < nb && !found; k++)
			found = out[k]->batch_id == mine[j];
		if (!found)
			queue_batch_unlock(mine[j]);
	}
	return nb;
}

/*
 * queue_batch_settle: the answers of the batches bs[0 .. nb-1] are
 * written: forget them.
 */
void
queue_batch_settle(EnrichBatch **bs, int nb)
{
	static SPIPlanPtr plan = NULL;
	Oid				  type = INT8ARRAYOID;
	int64			 *ids = palloc(sizeof(int64) * Max(nb, 1));
	int				  n = 0;
	Datum			  arg;

	for (int k = 0; k < nb; k++)
		if (bs[k]->batch_id != 0)
			ids[n++] = bs[k]->batch_id;
	if (n == 0)
		return;
	arg = int8_array(ids, n);
	(void) run_plan(&plan,
					"WITH d AS (DELETE FROM lead_enrich.batch WHERE id = ANY ($1)) "
					"UPDATE lead_enrich.lead_state SET batch_id = NULL WHERE batch_id = ANY ($1)",
					1, &type, &arg, false);
}

/*
 * queue_batch_failed: a send that got no usable answer; the batch stays
 * as it is, to be sent again.
 */
void
queue_batch_failed(EnrichBatch *b, const char *msg)
{
	static SPIPlanPtr plan = NULL;
	Oid				  types[2] = {INT8OID, TEXTOID};
	Datum			  args[2] = {Int64GetDatum(b->batch_id), CStringGetTextDatum(msg)};

	if (b->batch_id == 0)
		return;
	(void) run_plan(&plan,
					"UPDATE lead_enrich.batch SET sends = sends + 1, last_error = $2, last_sent_at = now() "
					"WHERE id = $1",
					2, types, args, false);
}

/*
 * queue_lead_flags: among ids, those whose last outcome is final, and
 * those in an unsettled batch (both sorted, in palloc'd arrays).
 */
void
queue_lead_flags(int64 *ids, int nids, int64 **final_ids, int *nfinal,
				 int64 **queued_ids, int *nqueued)
{
	static SPIPlanPtr plan = NULL;
	Oid				  type = INT8ARRAYOID;
	Datum			  arg = int8_array(ids, nids);
	char			 *sql = NULL;

	if (plan == NULL)
		sql = psprintf("SELECT lead_id, status IN %s, batch_id IS NOT NULL "
					   "FROM lead_enrich.lead_state "
					   "WHERE lead_id = ANY ($1) AND (status IN %s OR batch_id IS NOT NULL) "
					   "ORDER BY lead_id",
					   final_statuses_sql(), final_statuses_sql());
	(void) run_plan(&plan, sql, 1, &type, &arg, true);
	*final_ids = palloc(sizeof(int64) * Max(SPI_processed, 1));
	*queued_ids = palloc(sizeof(int64) * Max(SPI_processed, 1));
	*nfinal = *nqueued = 0;
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple tup = SPI_tuptable->vals[r];
		TupleDesc desc = SPI_tuptable->tupdesc;
		bool	  isnull;
		int64	  id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));

		if (DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull)))
			(*final_ids)[(*nfinal)++] = id;
		if (DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull)))
			(*queued_ids)[(*nqueued)++] = id;
	}
	SPI_freetuptable(SPI_tuptable);
}

/*
 * queue_add_credits: credits paid for a lead whose outcome is not written
 * (its e-mail changed while its batch was unsettled; it stays queued).
 */
void
queue_add_credits(int64 lead_id, int credits)
{
	static SPIPlanPtr plan = NULL;
	Oid				  types[2] = {INT8OID, INT4OID};
	Datum			  args[2] = {Int64GetDatum(lead_id), Int32GetDatum(credits)};

	if (credits == 0)
		return;
	(void) run_plan(&plan,
					"UPDATE lead_enrich.lead_state SET credits = credits + $2 WHERE lead_id = $1",
					2, types, args, false);
}

/*
 * queue_record_failure: a failed attempt for leads still pending: retried after
 * retry_delay * 2^attempts (at most the interval), or marked "error" once
 * max_attempts is reached.
 */
void
queue_record_failure(int64 *ids, int n, const char *msg)
{
	static SPIPlanPtr plan = NULL;
	Datum			  values[5];
	int				  ret;
	LeGuard			  g;

	if (n == 0)
		return;
	le_guard_extension(&g);
	if (plan == NULL)
	{
		Oid types[5] = {INT8ARRAYOID, INT4OID, FLOAT8OID, FLOAT8OID, TEXTOID};

		plan = le_keep_plan("UPDATE lead_enrich.lead_state SET attempts = attempts + 1, "
							"status = CASE WHEN attempts + 1 >= $2 THEN 'error' ELSE 'pending' END, "
							"next_attempt_at = CASE WHEN attempts + 1 >= $2 THEN NULL "
							"  ELSE now() + make_interval(secs => least($3 * power(2, least(attempts, 30)), $4)) END, "
							"error = $5, source = 'worker', updated_at = now() "
							"WHERE lead_id = ANY ($1) AND status = 'pending'",
							5, types);
	}
	values[0] = int8_array(ids, n);
	values[1] = Int32GetDatum(le_max_attempts);
	values[2] = Float8GetDatum((double) le_retry_delay_s);
	values[3] = Float8GetDatum((double) le_interval_min * 60.0);
	values[4] = CStringGetTextDatum(msg);
	ret = SPI_execute_plan(plan, values, NULL, false, 0);
	le_guard_end(&g);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "could not record a failed attempt: %s", SPI_result_code_string(ret));
}

/*
 * queue_forget: leads that no longer need enriching (won, done by other
 * means, reveal id set, deleted) leave the queue.
 */
void
queue_forget(int64 *ids, int n)
{
	Datum	arg;
	Oid		type = INT8ARRAYOID;
	int		ret;
	LeGuard g;

	if (n == 0)
		return;
	arg = int8_array(ids, n);
	le_guard_extension(&g);
	ret = SPI_execute_with_args("DELETE FROM lead_enrich.lead_state "
								"WHERE lead_id = ANY ($1) AND status = 'pending' AND batch_id IS NULL",
								1, &type, &arg, NULL, false, 0);
	le_guard_end(&g);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "could not remove leads from the queue");
}

/*
 * queue_claimable: up to limit pending leads that are due and in no
 * batch, leaving out skip (locked elsewhere in this pass).  Returns how
 * many, in *ids.  Their rows are locked FOR UPDATE SKIP LOCKED until the
 * claim commits: another worker's claim at the same moment takes the
 * next ones, and none of them can join another batch meanwhile.
 *
 * The newest batch_size leads come first, then the oldest in lead id
 * order, when limit holds at least two batches: a lead inserted while a
 * backlog is being worked off is sent in the next round instead of
 * waiting behind every older lead (a backlog of 100,000 leads kept a fresh
 * lead waiting half a minute), and the backlog still gets every other
 * batch of each round, so no lead waits for ever.  A smaller round
 * (lead_enrich.max_connections = 1, or a round mostly taken by batches
 * sent again) takes the newest and the oldest leads in turns, for the same
 * reasons: taking the oldest only, it kept a fresh lead behind the whole
 * backlog.
 *
 * Both ends are read in index order from lead_state_pending_idx, a few
 * hundred entries a round.  The index holds only the leads no batch holds:
 * when it held every pending lead, each claim first read the entries of
 * the two rounds in flight and their heap tuples (perf: 10% of the
 * worker's CPU in index_fetch_heap under queue_claimable).  The statement is planned with bitmap and
 * sequential scans off: lead_state is rarely analyzed while a backlog is
 * worked off (its statistics say it is nearly empty), and the planner then
 * picked a bitmap scan of every pending lead and a sort, at every round;
 * with 100,000 leads pending that was 60% of the worker's CPU (perf:
 * btgetbitmap, tbm_add_tuples), and it grew as the index filled with the
 * entries of leads done (a bitmap scan never marks them dead).
 */
int
queue_claimable(int64 *skip, int nskip, int limit, int64 **ids)
{
	static SPIPlanPtr plan = NULL;
	Oid				  types[3] = {INT8ARRAYOID, INT4OID, INT4OID};
	Datum			  values[3];
	int				  n;
	int				  nest;
	int				  nnewest;

	if (limit >= 2 * le_batch_size)
		nnewest = le_batch_size;
	else
	{
		static bool newest_turn = false;

		newest_turn = !newest_turn;
		nnewest = newest_turn ? limit : 0;
	}
	values[0] = int8_array(skip, nskip);
	values[1] = Int32GetDatum(limit);
	values[2] = Int32GetDatum(nnewest);
	/* the settings hold while the plan is made (first run, invalidation) */
	nest = NewGUCNestLevel();
	(void) set_config_option("enable_bitmapscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) run_plan(&plan,
					"WITH newest AS ("
					"  SELECT lead_id, 0 AS o FROM lead_enrich.lead_state "
					"  WHERE status = 'pending' AND batch_id IS NULL "
					"  AND coalesce(next_attempt_at <= now(), true) "
					"  AND lead_id <> ALL ($1) ORDER BY lead_id DESC LIMIT $3 "
					"  FOR UPDATE SKIP LOCKED), "
					" oldest AS ("
					"  SELECT lead_id, 1 AS o FROM lead_enrich.lead_state "
					"  WHERE status = 'pending' AND batch_id IS NULL "
					"  AND coalesce(next_attempt_at <= now(), true) "
					"  AND lead_id <> ALL ($1) ORDER BY lead_id LIMIT $2 "
					"  FOR UPDATE SKIP LOCKED) "
					"SELECT lead_id FROM (TABLE newest UNION ALL TABLE oldest) c "
					"GROUP BY lead_id ORDER BY min(o), lead_id LIMIT $2",
					3, types, values, false);
	AtEOXact_GUC(true, nest);
	n = (int) SPI_processed;
	*ids = palloc(sizeof(int64) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		bool isnull;

		(*ids)[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);
	return n;
}

/*
 * queue_next_due: when the next pending lead is due (0: none); leads due
 * now but locked elsewhere, and unsettled batches, are tried again after
 * retry_delay.
 */
TimestampTz
queue_next_due(void)
{
	static SPIPlanPtr plan = NULL;
	Oid				  type = FLOAT8OID;
	Datum			  arg = Float8GetDatum((double) le_retry_delay_s);
	bool			  isnull = true;
	TimestampTz		  due = 0;

	(void) run_plan(&plan,
					"SELECT min(d) FROM ("
					" SELECT CASE WHEN next_attempt_at > now() THEN next_attempt_at "
					" ELSE now() + make_interval(secs => $1) END AS d "
					" FROM lead_enrich.lead_state WHERE status = 'pending' AND batch_id IS NULL "
					" UNION ALL "
					" (SELECT now() + make_interval(secs => $1) FROM lead_enrich.batch LIMIT 1)) q",
					1, &type, &arg, true);
	if (SPI_processed == 1)
	{
		Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			due = DatumGetTimestampTz(d);
	}
	return due;
}

/* ------------------------------------------------------------------------
 * Outcomes (lead_state)
 * ------------------------------------------------------------------------
 */

static const Oid state_types[STATE_NCOLS] = {INT8OID, TEXTOID, TEXTOID, TEXTOID,
											 JSONBOID, TEXTOID, INT4OID, TEXTOID};

/*
 * queue_outcome_add: one outcome; filled is a text[] literal, company the
 * jsonb the provider answered (kept as it is: no text, no parse).
 */
void
queue_outcome_add(OutcomeBuf *sb, int64 lead_id, LeadStatus status, const char *email,
				  const char *domain, Jsonb *company, const char *filled,
				  int credits, const char *error)
{
	const char *texts[STATE_NCOLS] = {NULL, lead_status_name(status), email, domain, NULL,
									  filled, NULL, error};
	int			k;

	if (sb->n == sb->cap)
	{
		sb->cap = sb->cap ? sb->cap * 2 : 64;
		for (k = 0; k < STATE_NCOLS; k++)
		{
			sb->values[k] = sb->values[k] ? repalloc(sb->values[k], sizeof(Datum) * sb->cap)
										  : palloc(sizeof(Datum) * sb->cap);
			sb->nulls[k] = sb->nulls[k] ? repalloc(sb->nulls[k], sizeof(bool) * sb->cap)
										: palloc(sizeof(bool) * sb->cap);
		}
	}
	for (k = 0; k < STATE_NCOLS; k++)
	{
		sb->nulls[k][sb->n] = false;
		if (k == 0)
			sb->values[k][sb->n] = Int64GetDatum(lead_id);
		else if (k == 4 && company != NULL)
			sb->values[k][sb->n] = JsonbPGetDatum(company);
		else if (k == 6)
			sb->values[k][sb->n] = Int32GetDatum(credits);
		else if (texts[k] != NULL)
			sb->values[k][sb->n] = CStringGetTextDatum(texts[k]);
		else
			sb->nulls[k][sb->n] = true;
	}
	sb->n++;
}

/*
 * queue_outcomes_write: upsert the outcomes, one statement, as the
 * extension's owner.  attempts counts provider calls that
 * concerned the lead.  A lead with an outcome leaves its batch here, in the
 * same row version (queue_batch_settle then finds only the members without
 * an outcome: a second UPDATE of every member was 6% of the worker's CPU).
 */
void
queue_outcomes_write(OutcomeBuf *sb, const char *source)
{
	static SPIPlanPtr plan = NULL;
	Datum			  args[STATE_NCOLS + 1];
	int				  dims[1];
	int				  lbs[1] = {1};
	int				  ret;
	int				  k;

	LeGuard g;

	if (sb->n == 0)
		return;
	le_guard_extension(&g);
	if (plan == NULL)
	{
		Oid types[STATE_NCOLS + 1] = {INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
									  JSONBARRAYOID, TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID, TEXTOID};

		plan = le_keep_plan(
			"INSERT INTO lead_enrich.lead_state AS s "
			"(lead_id, status, email, domain, company, filled, credits, attempts, error, source, "
			" next_attempt_at, updated_at) "
			"SELECT u.id, u.st, u.em, u.dom, u.comp, coalesce(u.fil::text[], '{}'), u.cr, "
			"       CASE WHEN u.st IN ('enriched', 'not_found', 'error', 'insufficient_credit') THEN 1 ELSE 0 END, "
			"       u.err, $9, NULL, now() "
			"FROM unnest($1, $2, $3, $4, $5, $6, $7, $8) AS u(id, st, em, dom, comp, fil, cr, err) "
			"ON CONFLICT (lead_id) DO UPDATE SET status = excluded.status, email = excluded.email, "
			"  domain = excluded.domain, company = coalesce(excluded.company, CASE WHEN excluded.status = 'error' "
			"  OR excluded.status = 'insufficient_credit' THEN s.company END), "
			"  filled = excluded.filled, credits = s.credits + excluded.credits, "
			"  attempts = s.attempts + excluded.attempts, error = excluded.error, "
			"  source = excluded.source, next_attempt_at = NULL, batch_id = NULL, updated_at = now()",
			STATE_NCOLS + 1, types);
	}
	dims[0] = sb->n;
	for (k = 0; k < STATE_NCOLS; k++)
	{
		int16 typlen;
		bool  typbyval;
		char  typalign;

		get_typlenbyvalalign(state_types[k], &typlen, &typbyval, &typalign);
		args[k] = PointerGetDatum(construct_md_array(sb->values[k], sb->nulls[k], 1, dims, lbs,
													 state_types[k], typlen, typbyval, typalign));
	}
	args[STATE_NCOLS] = CStringGetTextDatum(source);
	ret = SPI_execute_plan(plan, args, NULL, false, 0);
	le_guard_end(&g);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not record lead outcomes: %s", SPI_result_code_string(ret));
	sb->n = 0;
}
