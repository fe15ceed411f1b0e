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

#include "guard.h"
#include "queue.h"

/* the outcomes after which a lead is not sent again (LeadStatus: final) */
#define FINAL_STATUSES "('enriched', 'not_found', 'generic_domain', 'mined')"

/*
 * text_array: a text[] datum.
 */
static Datum
text_array(const char **v, int n)
{
	Datum *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = CStringGetTextDatum(v[i]);
	return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
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
 * queue_batch_record: give a claimed batch its id and request id, and
 * record it with its members, in the claim's transaction.
 */
void
queue_batch_record(EnrichBatch *b)
{
	static SPIPlanPtr seq_plan = NULL;
	static SPIPlanPtr plan = NULL;
	Oid				  types[4] = {INT8OID, TEXTOID, INT8ARRAYOID, TEXTARRAYOID};
	int64			 *members = palloc(sizeof(int64) * Max(b->n, 1));
	const char		**domains = palloc(sizeof(char *) * Max(b->n, 1));
	int				  n = 0;
	Datum			  args[4];
	bool			  isnull;
	char			  id[33];

	for (int i = 0; i < b->n; i++)
	{
		if (b->rows[i].owner >= 0 && strcmp(b->rows[i].status, "pending") == 0)
		{
			members[n] = b->rows[i].id;
			domains[n++] = b->rows[i].domain;
		}
	}
	(void) run_plan(&seq_plan, "SELECT nextval('lead_enrich.batch_id_seq')", 0, NULL, NULL, false);
	b->batch_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	/* random, recorded: every resend carries the same id */
	rpc_make_id(id, NULL);
	b->request_id = pstrdup(id);

	args[0] = Int64GetDatum(b->batch_id);
	args[1] = CStringGetTextDatum(b->request_id);
	args[2] = int8_array(members, n);
	args[3] = text_array(domains, n);
	if (run_plan(&plan,
				 "WITH b AS (INSERT INTO lead_enrich.batch (id, request_id, lead_ids, domains) "
				 "           VALUES ($1, $2, $3, $4)) "
				 "UPDATE lead_enrich.lead_state SET batch_id = $1 WHERE lead_id = ANY ($3)",
				 4, types, args, false) != SPI_OK_UPDATE)
		elog(ERROR, "could not record a batch");
}

/*
 * queue_batch_unsettled: up to max batches sent and not yet answered, the
 * oldest first, rebuilt as they were claimed (in the current memory
 * context).  Returns how many.
 */
int
queue_batch_unsettled(LeadTable *lt, int max, EnrichBatch **out)
{
	static SPIPlanPtr plan = NULL;
	Oid				  type = INT4OID;
	Datum			  arg = Int32GetDatum(max);
	SPITupleTable	 *tt;
	int				  nb;

	(void) run_plan(&plan,
					"SELECT b.id, b.request_id, b.lead_ids, b.domains, "
					"       ARRAY(SELECT s.email FROM unnest(b.lead_ids) WITH ORDINALITY AS m(id, o) "
					"             LEFT JOIN lead_enrich.lead_state s ON s.lead_id = m.id ORDER BY m.o) "
					"FROM lead_enrich.batch b ORDER BY b.id LIMIT $1",
					1, &type, &arg, true);
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
			int		 j;

			row->id = DatumGetInt64(ids[i]);
			row->domain = TextDatumGetCString(doms[i]);
			row->email = enulls[i] ? NULL : TextDatumGetCString(emails[i]);
			row->email_raw = row->email;
			row->status = "pending";
			for (j = 0; j < b->ndomains; j++)
				if (strcmp(b->domains[j], row->domain) == 0)
					break;
			if (j == b->ndomains)
			{
				b->domains[j] = pstrdup(row->domain);
				b->owner[j] = i;
				b->ndomains++;
			}
			row->owner = j;
		}
		out[k] = b;
	}
	SPI_freetuptable(tt);
	return nb;
}

/*
 * queue_batch_settle: the batch's answer is written: forget it.
 */
void
queue_batch_settle(EnrichBatch *b)
{
	static SPIPlanPtr plan = NULL;
	Oid				  type = INT8OID;
	Datum			  arg = Int64GetDatum(b->batch_id);

	if (b->batch_id == 0)
		return;
	(void) run_plan(&plan,
					"WITH d AS (DELETE FROM lead_enrich.batch WHERE id = $1) "
					"UPDATE lead_enrich.lead_state SET batch_id = NULL WHERE batch_id = $1",
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

	(void) run_plan(&plan,
					"SELECT lead_id, status IN " FINAL_STATUSES ", batch_id IS NOT NULL "
					"FROM lead_enrich.lead_state "
					"WHERE lead_id = ANY ($1) AND (status IN " FINAL_STATUSES " OR batch_id IS NOT NULL) "
					"ORDER BY lead_id",
					1, &type, &arg, true);
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
