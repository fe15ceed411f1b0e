/*-------------------------------------------------------------------------
 *
 * enrich.c
 *	  Lead enrichment: pick the leads' e-mail domains, ask the provider in
 *	  one request per batch, fill the empty columns, record the outcome.
 *
 * The work on a batch is split in three steps so that the background
 * worker can run the network part outside any transaction:
 *
 *	enrich_prepare	 read and lock the leads, apply Odoo's skip rules,
 *					 collect the distinct domains to send (SPI, in a
 *					 transaction);
 *	enrich_call		 build the JSON-RPC call (no database access); the
 *					 caller performs it with http_perform;
 *	enrich_apply	 write the answer: fill-only-empty UPDATE, done flag,
 *					 lead_state row (SPI, in a transaction).
 *
 * The pipeline holds no SQL text: the statements on the CRM table are
 * lead_table.c's, those on lead_state and the batches queue.c's, the
 * webmail look-up webmail.c's; each runs as guard.c says.
 *
 * A manual call's request id is derived from the database and the (lead,
 * domain) pairs, so the same call made again after a failure is answered
 * from the provider's replay store and not charged twice; a worker's
 * batch carries the id recorded when it was claimed (queue.c).
 *
 * The worker holds no row lock while its request is in flight.  What keeps
 * a manual enrichment from sending the same lead at the same time is a
 * per-lead advisory lock (le_lock_lead, enrich.h): the worker takes it, without
 * waiting, for every lead it claims and keeps it until the answer is
 * written; a manual enrichment takes it, waiting, until it holds the
 * rows' locks, and then finds the lead done.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "chatter.h"
#include "enrich.h"
#include "errcodes.h"
#include "guard.h"
#include "lead_enrich.h"
#include "queue.h"

PG_FUNCTION_INFO_V1(lead_enrich_enrich_lead);
PG_FUNCTION_INFO_V1(lead_enrich_enrich_leads);

/*
 * text_array: a text[] datum of v[0 .. n-1], NULL elements kept.
 */
Datum
text_array(const char **v, int n)
{
	Datum *d = palloc(sizeof(Datum) * Max(n, 1));
	bool  *isnull = palloc(sizeof(bool) * Max(n, 1));
	int	   dims[1] = {n};
	int	   lbs[1] = {1};

	for (int i = 0; i < n; i++)
	{
		isnull[i] = v[i] == NULL;
		d[i] = isnull[i] ? (Datum) 0 : CStringGetTextDatum(v[i]);
	}
	return PointerGetDatum(construct_md_array(d, isnull, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * int8_array: an int8[] datum of ids.
 */
Datum
int8_array(int64 *ids, int n)
{
	Datum *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = Int64GetDatum(ids[i]);
	return PointerGetDatum(construct_array(d, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/*
 * set_key_locktag: the advisory lock of one of our keys (a lead, a batch).
 * Advisory locks taken from SQL use 1 or 2 in the last field; ours use
 * LE_LOCK_LEAD (0x4c45, "LE") and LE_LOCK_BATCH (0x4c42, "LB"), which no
 * SQL function can name.
 */
static void
set_key_locktag(LOCKTAG *tag, int64 key, uint16 space)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) ((uint64) key >> 32),
						 (uint32) key, space);
}

/*
 * le_lock_key: take the advisory lock of a key of the given space, for the
 * transaction or the session (the worker, across the transactions of a
 * claim).  Returns false when !wait and someone else holds it.
 */
bool
le_lock_key(int64 key, uint16 space, bool session, bool wait)
{
	LOCKTAG tag;

	set_key_locktag(&tag, key, space);
	return LockAcquire(&tag, ExclusiveLock, session, !wait) != LOCKACQUIRE_NOT_AVAIL;
}

/*
 * le_unlock_key: release a session-level key lock.
 */
void
le_unlock_key(int64 key, uint16 space)
{
	LOCKTAG tag;

	set_key_locktag(&tag, key, space);
	LockRelease(&tag, ExclusiveLock, true);
}

/*
 * select_waiting: the manual path's SELECT ... FOR UPDATE.  Wait for the
 * worker to finish with these leads (their advisory locks), lock the rows,
 * then let the advisory locks go: from here the row locks, held to the end
 * of the transaction, keep the worker away (it claims with SKIP LOCKED).
 * Holding one lock per lead to the end of a bulk call would exhaust the
 * lock table.
 */
static int
select_waiting(LeadTable *lt, int64 *ids, int nids, Datum arg)
{
	volatile int nlocked = 0;
	int			 ret;

	PG_TRY();
	{
		for (; nlocked < nids; nlocked++)
			(void) le_lock_lead(ids[nlocked], true, true);
		ret = lt_select(lt, arg, false);
	}
	PG_CATCH();
	{
		for (int i = 0; i < nlocked; i++)
			le_unlock_lead(ids[i]);
		PG_RE_THROW();
	}
	PG_END_TRY();
	for (int i = 0; i < nlocked; i++)
		le_unlock_lead(ids[i]);
	return ret;
}

/*
 * cmp_int64: qsort/bsearch order of lead ids.
 */
static int
cmp_int64(const void *a, const void *b)
{
	int64 x = *(const int64 *) a;
	int64 y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/*
 * enrich_add_domain: give row i of b its request entry: one per distinct
 * domain, owned by the first lead that has it (the provider answers it
 * under that lead's id).
 */
void
enrich_add_domain(EnrichBatch *b, int i)
{
	LeadRow *row = &b->rows[i];
	int		 j;

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

/*
 * enrich_prepare: read and lock the leads, classify them, collect the
 * distinct domains (a recheck does not look for webmail domains).  With skip_locked, leads locked by someone else are
 * left out (the worker); otherwise the call waits for them (manual).
 * Leads in ids that do not exist end with status "missing".
 *
 * Without skip_locked, the leads' advisory locks are taken first (and let
 * go once the rows are locked), so that a lead the worker is enriching
 * right now is seen done once its answer is written, not sent twice.
 */
EnrichBatch *
enrich_prepare(LeadTable *lt, int64 *ids, int nids, PrepareMode mode)
{
	bool		   skip_locked = mode == PREPARE_CLAIM;
	EnrichBatch	  *b = palloc0(sizeof(EnrichBatch));
	Datum		  *d = palloc(sizeof(Datum) * nids);
	Datum		   arg;
	int			   ret;
	int			   i;
	uint64		   r;
	uint64		   nrows;
	SPITupleTable *tt;
	LeGuard		   g;
	int64		  *done_ids = NULL;
	int			   ndone = 0;
	int64		  *queued_ids = NULL;
	int			   nqueued = 0;

	lt_prepare(lt);

	/*
	 * lead_state: final outcomes (a table without a done column, whose
	 * outcomes say what is done), and batches (a user's call leaves the
	 * worker's leads alone).  The worker on a table with a done column
	 * needs neither: not read (per claim and per recheck, 3% of its CPU).
	 */
	if (mode == PREPARE_MANUAL || lt_col(lt, "enrich_done") == NULL)
		queue_lead_flags(ids, nids, &done_ids, &ndone, &queued_ids, &nqueued);
	if (lt_col(lt, "enrich_done") != NULL)
		ndone = 0;
	if (mode != PREPARE_MANUAL)
		nqueued = 0;
	b->lt = lt;
	b->rows = palloc0(sizeof(LeadRow) * nids);
	b->domains = palloc0(sizeof(char *) * nids);
	b->owner = palloc0(sizeof(int) * nids);

	for (i = 0; i < nids; i++)
		d[i] = Int64GetDatum(ids[i]);
	arg = PointerGetDatum(construct_array(d, nids, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (skip_locked)
		ret = lt_select(lt, arg, true);
	else
		ret = select_waiting(lt, ids, nids, arg);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the leads: %s", SPI_result_code_string(ret));

	tt = SPI_tuptable;
	nrows = SPI_processed;
	for (r = 0; r < nrows; r++)
	{
		HeapTuple tup = tt->vals[r];
		TupleDesc desc = tt->tupdesc;
		LeadRow	 *row = &b->rows[b->n++];
		bool	  isnull;

		row->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		row->email_raw = SPI_getvalue(tup, desc, 2);
		row->rec_name = SPI_getvalue(tup, desc, 7);
		row->rec_company = SPI_getvalue(tup, desc, 8);
		row->credits = 0;
		row->owner = -1;
		if (DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull)))
			row->skip = "won";
		else if (nqueued > 0 && bsearch(&row->id, queued_ids, nqueued, sizeof(int64), cmp_int64) != NULL)
			row->skip = "queued"; /* the worker sends it again, with its batch */
		else if (mode != PREPARE_MANUAL && DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull)))
			row->skip = "archived";
		else if (DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull)) ||
				 (ndone > 0 && bsearch(&row->id, done_ids, ndone, sizeof(int64), cmp_int64) != NULL))
			row->skip = "already_enriched";
		else if (DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull)))
			row->skip = "reveal_id_set";
		if (row->skip != NULL)
		{
			row->status = LEAD_SKIPPED;
			continue;
		}
		if (row->email_raw == NULL || strspn(row->email_raw, " \t\r\n") == strlen(row->email_raw))
		{
			row->status = LEAD_NO_EMAIL;
			continue;
		}
		row->email = email_normalize_strict(row->email_raw);
		if (row->email == NULL)
		{
			row->status = LEAD_INVALID_EMAIL;
			continue;
		}
		row->domain = email_domain(row->email);
		row->status = LEAD_PENDING;
	}
	SPI_freetuptable(tt);

	/*
	 * generic webmail domains, one query for the batch.  Not in a recheck:
	 * the claim classified the same domains (a lead whose domain changed
	 * since is stale whatever it is now), and enrich_recheck reads each
	 * row's status and domain only.
	 */
	if (mode != PREPARE_RECHECK)
	{
		const char **doms = palloc(sizeof(char *) * Max(b->n, 1));
		int			*which = palloc(sizeof(int) * Max(b->n, 1));
		const char **webmail = palloc(sizeof(char *) * Max(b->n, 1));
		int			 nd = 0;

		for (i = 0; i < b->n; i++)
		{
			if (b->rows[i].status == LEAD_PENDING)
			{
				which[nd] = i;
				doms[nd++] = b->rows[i].domain;
			}
		}
		le_guard_extension(&g);
		webmail_matches(doms, nd, webmail);
		le_guard_end(&g);
		for (int k = 0; k < nd; k++)
		{
			LeadRow *row = &b->rows[which[k]];

			if (webmail[k] != NULL)
			{
				row->status = LEAD_GENERIC_DOMAIN;
				continue;
			}
			enrich_add_domain(b, which[k]);
		}
	}

	/* ids that are not (or no longer) in the table, or locked elsewhere */
	for (i = 0; i < nids && !skip_locked; i++)
	{
		int j;

		for (j = 0; j < b->n; j++)
			if (b->rows[j].id == ids[i])
				break;
		if (j == b->n)
		{
			LeadRow *row = &b->rows[b->n++];

			row->id = ids[i];
			row->status = LEAD_MISSING;
			row->owner = -1;
		}
	}
	return b;
}

/* a lead id and its position in the claim's list, for enrich_split */
typedef struct IdPos
{
	int64 id;
	int	  pos;
} IdPos;

static int
cmp_idpos(const void *a, const void *b)
{
	return cmp_int64(&((const IdPos *) a)->id, &((const IdPos *) b)->id);
}

/*
 * enrich_split: the leads of a prepared batch b that need the provider, as
 * batches of the leads ids[k * size .. k * size + size - 1] (parts[k],
 * NULL when none of those needs it); each sends a domain once.  The worker
 * prepares a round's leads at once and sends them as batch_size batches,
 * as Odoo does.
 */
EnrichBatch **
enrich_split(EnrichBatch *b, const int64 *ids, int nids, int size)
{
	int			  nparts = (nids + size - 1) / size;
	EnrichBatch **parts = palloc0(sizeof(EnrichBatch *) * Max(nparts, 1));
	IdPos		 *map = palloc(sizeof(IdPos) * Max(nids, 1));

	for (int i = 0; i < nids; i++)
	{
		map[i].id = ids[i];
		map[i].pos = i;
	}
	qsort(map, nids, sizeof(IdPos), cmp_idpos);
	for (int i = 0; i < b->n; i++)
	{
		LeadRow		*row = &b->rows[i];
		IdPos		 key = {row->id, 0};
		IdPos		*at;
		EnrichBatch *p;

		if (!lead_awaits_answer(row))
			continue;
		at = bsearch(&key, map, nids, sizeof(IdPos), cmp_idpos);
		if (at == NULL)
			elog(ERROR, "lead " INT64_FORMAT " was not claimed", row->id);
		p = parts[at->pos / size];
		if (p == NULL)
		{
			p = parts[at->pos / size] = palloc0(sizeof(EnrichBatch));
			p->lt = b->lt;
			p->rows = palloc(sizeof(LeadRow) * size);
			p->domains = palloc(sizeof(char *) * size);
			p->owner = palloc(sizeof(int) * size);
		}
		p->rows[p->n] = *row;
		enrich_add_domain(p, p->n++);
	}
	return parts;
}

/*
 * cmp_row_id: qsort/bsearch order of LeadRows by lead id.
 */
static int
cmp_row_id(const void *a, const void *b)
{
	return cmp_int64(&((const LeadRow *) a)->id, &((const LeadRow *) b)->id);
}

/*
 * enrich_recheck: in the transaction that writes the answers of batches
 * bs[0 .. nb-1] (of one table), which is not the one that prepared them
 * (the worker), lock the leads again and leave out those that no longer
 * need the answer: done meanwhile, won, deleted, or whose e-mail domain
 * changed (to any address: a webmail domain, an invalid address, none;
 * the next claim classifies it).  They end with status "stale" and
 * enrich_apply does not write them to the lead.  The leads of every batch are read in the same statements (per
 * batch, their start-up was most of the recheck's cost).
 */
void
enrich_recheck(EnrichBatch **bs, int nb)
{
	int64		 *ids;
	int			  n = 0;
	int			  total = 0;
	EnrichBatch	 *fresh;
	MemoryContext cxt;

	for (int k = 0; k < nb; k++)
		total += bs[k]->n;
	ids = palloc(sizeof(int64) * Max(total, 1));
	for (int k = 0; k < nb; k++)
		for (int i = 0; i < bs[k]->n; i++)
			if (lead_awaits_answer(&bs[k]->rows[i]))
				ids[n++] = bs[k]->rows[i].id;
	if (n == 0)
		return;
	fresh = enrich_prepare(bs[0]->lt, ids, n, PREPARE_RECHECK);
	/* only looked up from here on: sorted by id */
	qsort(fresh->rows, fresh->n, sizeof(LeadRow), cmp_row_id);
	for (int k = 0; k < nb; k++)
	{
		for (int i = 0; i < bs[k]->n; i++)
		{
			LeadRow *row = &bs[k]->rows[i];
			LeadRow *f;

			if (!lead_awaits_answer(row))
				continue;
			f = bsearch(row, fresh->rows, fresh->n, sizeof(LeadRow), cmp_row_id);
			if (f == NULL || f->status != LEAD_PENDING ||
				f->domain == NULL || strcmp(f->domain, row->domain) != 0)
			{
				/*
				 * Still to enrich but with another address (another
				 * domain, an invalid or an empty one): it stays queued
				 * ("pending"), and its next claim classifies the new
				 * address.
				 */
				row->status = LEAD_STALE;
				row->skip = f == NULL ? "missing" : f->skip ? f->skip
															: lead_status_name(LEAD_PENDING);
				continue;
			}
			/* its note copies the lead as it is now, locked */
			cxt = GetMemoryChunkContext(bs[k]->rows);
			row->rec_name = f->rec_name ? MemoryContextStrdup(cxt, f->rec_name) : NULL;
			row->rec_company = f->rec_company ? MemoryContextStrdup(cxt, f->rec_company) : NULL;
		}
	}
}

/*
 * note_lead: the lead a chatter note is posted on, as its row was read.
 */
static NoteLead
note_lead(const LeadRow *row)
{
	NoteLead lead = {row->id, row->rec_name, row->rec_company};

	return lead;
}

/*
 * copy_str: pstrdup that keeps NULL.
 */
static char *
copy_str(const char *s)
{
	return s ? pstrdup(s) : NULL;
}

/*
 * enrich_batch_copy: a deep copy of a prepared batch (and of its lead
 * table) in cxt, before its call is built.  SPI allocates in a context it
 * deletes at SPI_finish, and the worker keeps a batch across the
 * transactions of a claim and of its apply.
 */
EnrichBatch *
enrich_batch_copy(EnrichBatch *b, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	EnrichBatch	 *c = palloc0(sizeof(EnrichBatch));
	LeadTable	 *lt = palloc(sizeof(LeadTable));

	Assert(b->call == NULL);
	memcpy(lt, b->lt, sizeof(LeadTable));
	/* every pointer: the original's go with the claim's SPI memory */
	lt->qualname = copy_str(b->lt->qualname);
	lt->nspname = copy_str(b->lt->nspname);
	lt->dbuuid = copy_str(b->lt->dbuuid);
	lt->mode = copy_str(b->lt->mode);
	lt->missing = copy_str(b->lt->missing);
	lt->tenant = copy_str(b->lt->tenant);
	lt->columns = (Jsonb *) palloc(VARSIZE(b->lt->columns));
	memcpy(lt->columns, b->lt->columns, VARSIZE(b->lt->columns));
	c->lt = lt;
	c->n = b->n;
	c->rows = palloc0(sizeof(LeadRow) * Max(b->n, 1));
	for (int i = 0; i < b->n; i++)
	{
		LeadRow *r = &c->rows[i];

		*r = b->rows[i];
		r->email_raw = copy_str(r->email_raw);
		r->email = copy_str(r->email);
		r->rec_name = copy_str(r->rec_name);
		r->rec_company = copy_str(r->rec_company);
		r->domain = copy_str(r->domain);
		r->filled = copy_str(r->filled);
		if (r->company != NULL)
		{
			r->company = palloc(VARSIZE(b->rows[i].company));
			memcpy(r->company, b->rows[i].company, VARSIZE(b->rows[i].company));
		}
		r->error = copy_str(r->error);
		r->note = copy_str(r->note);
		/* skip points to a constant string */
	}
	c->batch_id = b->batch_id;
	c->request_id = copy_str(b->request_id);
	c->ndomains = b->ndomains;
	c->domains = palloc0(sizeof(char *) * Max(b->ndomains, 1));
	c->owner = palloc0(sizeof(int) * Max(b->ndomains, 1));
	for (int j = 0; j < b->ndomains; j++)
	{
		c->domains[j] = pstrdup(b->domains[j]);
		c->owner[j] = b->owner[j];
	}
	MemoryContextSwitchTo(old);
	return c;
}

/*
 * enrich_call: the JSON-RPC call for the batch's domains, or NULL when
 * nothing needs sending.  No database access.
 */
RpcCall *
enrich_call(EnrichBatch *b, const char *token)
{
	RpcCall		  *call;
	StringInfoData seed;
	StringInfo	   body;
	char		   id[33];
	int			   j;

	if (b->ndomains == 0)
		return NULL;
	if (b->request_id != NULL)
		strlcpy(id, b->request_id, sizeof(id)); /* a recorded batch (queue.c) */
	else
	{
		initStringInfo(&seed);
		appendStringInfoString(&seed, b->lt->dbuuid);
		for (j = 0; j < b->ndomains; j++)
			appendStringInfo(&seed, "|" INT64_FORMAT ":%s", b->rows[b->owner[j]].id, b->domains[j]);
		rpc_make_id(id, seed.data);
	}

	call = palloc(sizeof(RpcCall));
	rpc_init(call, LE_SERVICE_ENRICH, "/iap/clearbit/1/lead_enrichment_email", id);
	rpc_params_begin(call);
	body = &call->http.body;
	appendStringInfoString(body, "{\"domains\": {");
	for (j = 0; j < b->ndomains; j++)
	{
		appendStringInfo(body, "%s\"" INT64_FORMAT "\": ", j ? ", " : "", b->rows[b->owner[j]].id);
		append_json_string(body, b->domains[j]);
	}
	appendStringInfoString(body, "}, \"account_token\": ");
	append_json_string(body, token);
	appendStringInfoString(body, ", \"dbuuid\": ");
	append_json_string(body, b->lt->dbuuid);
	appendStringInfoChar(body, '}');
	rpc_params_end(call);
	b->call = call;
	return call;
}

/*
 * CompanyBuf: the batch UPDATE's input arrays, one element per lead.
 */
typedef struct CompanyBuf
{
	int		  n;
	LeadRow **rows;
	Datum	 *values[UPDATE_NARGS];
	bool	 *nulls[UPDATE_NARGS];
} CompanyBuf;

/*
 * company_add: queue the fill-only-empty update of one lead.
 */
static void
company_add(CompanyBuf *cb, LeadRow *row, JsonbContainer *company)
{
	char *v[UPDATE_NARGS];
	int	  k;

	v[0] = NULL;
	v[1] = jb_get_text(company, "name");
	v[2] = jb_get_text(company, "clearbit_id");
	v[3] = jb_get_text(company, "location");
	v[4] = jb_get_text(company, "city");
	v[5] = jb_get_text(company, "postal_code");
	v[6] = jb_get_array_text(company, "phone_numbers", 0);
	v[7] = jb_get_array_text(company, "phone_numbers", 1);
	v[8] = jb_get_text(company, "country_code");
	v[9] = jb_get_text(company, "state_code");

	cb->rows[cb->n] = row;
	cb->values[0][cb->n] = Int64GetDatum(row->id);
	cb->nulls[0][cb->n] = false;
	for (k = 1; k < UPDATE_NARGS; k++)
	{
		cb->nulls[k][cb->n] = v[k] == NULL;
		cb->values[k][cb->n] = v[k] ? CStringGetTextDatum(v[k]) : (Datum) 0;
	}
	cb->n++;
}

/*
 * company_update: the fill-only-empty UPDATE of cb's leads from .. from+n-1,
 * one statement; sets each updated lead's filled columns (a text[]
 * literal).  A lead deleted meanwhile gets none.
 */
static void
company_update(LeadTable *lt, CompanyBuf *cb, int from, int n)
{
	Datum  args[UPDATE_NARGS];
	int	   dims[1] = {n};
	int	   lbs[1] = {1};
	int	   ret;
	uint64 r;

	args[0] = PointerGetDatum(construct_md_array(cb->values[0] + from, cb->nulls[0] + from, 1, dims, lbs,
												 INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	for (int k = 1; k < UPDATE_NARGS; k++)
		args[k] = PointerGetDatum(construct_md_array(cb->values[k] + from, cb->nulls[k] + from, 1, dims, lbs,
													 TEXTOID, -1, false, TYPALIGN_INT));
	ret = lt_update(lt, args);
	if (ret != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not update %d leads: %s", n, SPI_result_code_string(ret));
	for (r = 0; r < SPI_processed; r++)
	{
		bool  isnull;
		int64 id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc,
											   1, &isnull));

		for (int k = from; k < from + n; k++)
		{
			if (cb->rows[k]->id == id)
			{
				cb->rows[k]->filled = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2);
				break;
			}
		}
	}
	SPI_freetuptable(SPI_tuptable);
}

/* company_update's arguments, for le_run_isolated */
typedef struct UpdateArgs
{
	LeadTable  *lt;
	CompanyBuf *cb;
	int			from;
	int			n;
} UpdateArgs;

/* company_update for le_run_isolated */
static void
company_update_cb(void *arg)
{
	UpdateArgs *a = (UpdateArgs *) arg;

	company_update(a->lt, a->cb, a->from, a->n);
}

/*
 * try_update: company_update in a subtransaction.  On error, the
 * subtransaction is rolled back (with whatever a trigger of the table did)
 * and the message returned in *err; false.
 */
static bool
try_update(LeadTable *lt, CompanyBuf *cb, int from, int n, char **err)
{
	UpdateArgs a = {lt, cb, from, n};
	ErrorData *ed;

	if (le_run_isolated(company_update_cb, &a, &ed))
		return true;
	*err = ed->detail ? psprintf("%s (%s)", ed->message, ed->detail) : ed->message;
	return false;
}

/*
 * company_flush: the batch's leads in one UPDATE; when the CRM table
 * refuses it (a CHECK, a unique reveal_id, a trigger of the table's
 * owner), lead by lead, each in its own subtransaction, so that one lead
 * the table refuses holds back no other.  A refused lead is marked
 * rejected, with the reason; the company data paid for is kept in its
 * outcome (enrich_apply).
 */
static void
company_flush(LeadTable *lt, CompanyBuf *cb)
{
	char *err = NULL;

	if (cb->n == 0 || try_update(lt, cb, 0, cb->n, &err))
		return;
	for (int k = 0; k < cb->n; k++)
	{
		if (!try_update(lt, cb, k, 1, &err))
		{
			cb->rows[k]->rejected = true;
			cb->rows[k]->error = psprintf("the lead could not take the company found: %s", err);
		}
	}
}

/*
 * enrich_apply_local: record the outcomes decided without the provider
 * (no e-mail, invalid e-mail, generic domain).
 */
void
enrich_apply_local(EnrichBatch *b, const char *source)
{
	OutcomeBuf sb = {0};
	ChatterBuf notes;
	int64	  *done = palloc(sizeof(int64) * Max(b->n, 1));
	int		   ndone = 0;
	int		   i;

	chatter_init(&notes, b->lt);
	for (i = 0; i < b->n; i++)
	{
		LeadRow *row = &b->rows[i];

		if (row->status == LEAD_GENERIC_DOMAIN)
		{
			done[ndone++] = row->id;
			chatter_not_found(&notes, note_lead(row));
		}
		if (row->status == LEAD_INVALID_EMAIL)
			chatter_invalid_email(&notes, note_lead(row));
		if (row->status == LEAD_GENERIC_DOMAIN ||
			row->status == LEAD_INVALID_EMAIL ||
			row->status == LEAD_NO_EMAIL)
			queue_outcome_add(&sb, row->id, row->status, row->email ? row->email : row->email_raw,
							  row->domain, NULL, NULL, 0, NULL);
	}
	lt_mark_done(b->lt, done, ndone);
	chatter_flush(b->lt, &notes);
	queue_outcomes_write(&sb, source);
}

/* A company charged in a batch, and the lead it was charged with. */
typedef struct Charge
{
	const char *key;
	int64		lead_id;
} Charge;

/*
 * first_charge: 1 for the first lead of a company in a batch, 0 after.
 * The provider charges one credit per company found in a request, so
 * acme.com and mail.acme.com leads cost one credit together.  *with is
 * the lead the company was charged with (this one for the first).
 */
static int
first_charge(Charge *charged, int *ncharged, const char *company_id, const char *domain,
			 int64 lead_id, int64 *with)
{
	const char *key = company_id ? company_id : domain;

	for (int i = 0; i < *ncharged; i++)
		if (strcmp(charged[i].key, key) == 0)
		{
			*with = charged[i].lead_id;
			return 0;
		}
	charged[*ncharged].key = pstrdup(key);
	charged[(*ncharged)++].lead_id = *with = lead_id;
	return 1;
}

/*
 * enrich_apply: write the provider's answer (or the failure) for every
 * lead that was sent, in three statements whatever the batch's size: the
 * fill-only-empty UPDATE of the leads found, the done flag of those not
 * found, and the outcomes.  A failed call leaves the leads not done, with
 * the failure recorded.
 */
void
enrich_apply(EnrichBatch *b, const char *source)
{
	enrich_apply_many(&b, 1, source);
}

/*
 * enrich_apply_many: enrich_apply for the batches of a round, all of one
 * table, in the same statements (the worker writes a round at once: per
 * batch, the statements' start-up and the commits were a tenth of its
 * CPU).  Credits are counted per batch, as the provider charges per call.
 */
void
enrich_apply_many(EnrichBatch **bs, int nb, const char *source)
{
	LeadTable *lt = NULL;
	OutcomeBuf sb = {0};
	CompanyBuf cb = {0};
	ChatterBuf notes;
	Jsonb	 **companies; /* per lead of the round, what was found */
	int64	  *not_found;
	int		   nnot_found = 0;
	int		   total = 0;
	int		   pos;

	for (int k = 0; k < nb; k++)
	{
		if (bs[k]->call == NULL)
			continue;
		lt = bs[k]->lt;
		total += bs[k]->n;
	}
	if (lt == NULL)
		return;
	chatter_init(&notes, lt);
	companies = palloc0(sizeof(Jsonb *) * Max(total, 1));
	not_found = palloc(sizeof(int64) * Max(total, 1));
	cb.rows = palloc(sizeof(LeadRow *) * Max(total, 1));
	for (int k = 0; k < UPDATE_NARGS; k++)
	{
		cb.values[k] = palloc(sizeof(Datum) * Max(total, 1));
		cb.nulls[k] = palloc(sizeof(bool) * Max(total, 1));
	}

	/* what each answer says of each lead sent */
	pos = 0;
	for (int k = 0; k < nb; k++)
	{
		EnrichBatch	   *b = bs[k];
		RpcCall		   *call = b->call;
		JsonbContainer *result = NULL;

		if (call == NULL)
			continue;
		if (call->status == RPC_OK)
		{
			result = &call->result->root;
			if (!JsonContainerIsObject(result))
			{
				call->status = RPC_BAD_RESPONSE;
				call->message = pstrdup("the result is not an object keyed by lead id");
			}
		}
		for (int i = 0; i < b->n; i++, pos++)
		{
			LeadRow	   *row = &b->rows[i];
			JsonbValue	buf;
			JsonbValue *val;
			char		key[32];
			bool		stale = row->status == LEAD_STALE;

			if (row->owner < 0 || (!stale && row->status != LEAD_PENDING))
				continue;
			if (call->status != RPC_OK)
			{
				if (stale)
					continue;
				row->status = call->status == RPC_INSUFFICIENT_CREDIT ? LEAD_INSUFFICIENT_CREDIT : LEAD_ERROR;
				row->error = call->message;
				queue_outcome_add(&sb, row->id, row->status, row->email, row->domain, NULL, NULL, 0,
								  psprintf("%s: %s", rpc_status_name(call->status), call->message));
				continue;
			}
			snprintf(key, sizeof(key), INT64_FORMAT, b->rows[b->owner[row->owner]].id);
			val = jb_get(result, key, &buf);
			if (val != NULL && val->type == jbvBinary && JsonContainerIsObject(val->val.binary.data))
			{
				/* a jsonb of its own (a copy of the container): no text, no parse */
				companies[pos] = JsonbValueToJsonb(val);
				if (!stale)
					company_add(&cb, row, &companies[pos]->root);
			}
			else if (stale)
				continue;
			else if (val == NULL || val->type == jbvNull ||
					 (val->type == jbvBool && !val->val.boolean))
			{
				not_found[nnot_found++] = row->id;
				chatter_not_found(&notes, note_lead(row));
				row->status = LEAD_NOT_FOUND;
				queue_outcome_add(&sb, row->id, LEAD_NOT_FOUND, row->email, row->domain, NULL, NULL, 0, NULL);
			}
			else
			{
				row->status = LEAD_ERROR;
				row->error = psprintf("the provider's value for lead %s is neither a company nor false", key);
				queue_outcome_add(&sb, row->id, LEAD_ERROR, row->email, row->domain, NULL, NULL, 0, row->error);
			}
		}
	}

	company_flush(lt, &cb);
	pos = 0;
	for (int k = 0; k < nb; k++)
	{
		EnrichBatch *b = bs[k];
		Charge		*charged;
		int			 ncharged = 0;

		if (b->call == NULL)
			continue;
		charged = palloc0(sizeof(Charge) * Max(b->ndomains, 1));
		for (int i = 0; i < b->n; i++, pos++)
		{
			LeadRow *row = &b->rows[i];
			int64	 with;

			if (companies[pos] == NULL)
				continue;
			row->company = companies[pos];
			row->credits = first_charge(charged, &ncharged, jb_get_text(&companies[pos]->root, "clearbit_id"),
										row->domain, row->id, &with);
			if (row->status == LEAD_STALE)
			{
				/*
				 * A resent batch's lead that changed since the claim: the
				 * company was paid for, so it is kept with its credit; the
				 * lead is not written.  A lead whose e-mail changed stays
				 * queued for its new address.
				 */
				if (row->skip != NULL && strcmp(row->skip, lead_status_name(LEAD_PENDING)) == 0)
					queue_add_credits(row->id, row->credits);
				else
					queue_outcome_add(&sb, row->id, LEAD_ENRICHED, row->email, row->domain, row->company, "{}",
									  row->credits,
									  psprintf("the company was found but not written to the lead (%s)",
											   row->skip ? row->skip : "changed"));
				continue;
			}
			if (row->rejected)
			{
				row->status = LEAD_ERROR;
				queue_outcome_add(&sb, row->id, LEAD_ERROR, row->email, row->domain, row->company, "{}",
								  row->credits, row->error);
				continue;
			}
			if (row->filled == NULL)
			{
				/* deleted meanwhile: the company paid for is kept */
				row->status = LEAD_MISSING;
				queue_outcome_add(&sb, row->id, LEAD_ENRICHED, row->email, row->domain, row->company, "{}",
								  row->credits, "the company was found but the lead was deleted meanwhile");
				continue;
			}
			row->status = LEAD_ENRICHED;
			chatter_enriched(&notes, note_lead(row), &companies[pos]->root);
			if (row->credits == 0)
				row->note = psprintf("no credit: the same company as lead %lld, charged once in this request",
									 (long long) with);
			queue_outcome_add(&sb, row->id, LEAD_ENRICHED, row->email, row->domain, row->company,
							  row->filled, row->credits, NULL);
		}
	}
	lt_mark_done(lt, not_found, nnot_found);
	chatter_flush(lt, &notes);
	queue_outcomes_write(&sb, source);
}

/*
 * append_filled_json: a text[] literal as a JSON array of strings.
 */
static void
append_filled_json(StringInfo s, const char *literal)
{
	Datum  arr = OidInputFunctionCall(F_ARRAY_IN, (char *) literal, TEXTOID, -1);
	Datum *elems;
	bool  *nulls;
	int	   n;

	deconstruct_array(DatumGetArrayTypeP(arr), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	appendStringInfoChar(s, '[');
	for (int i = 0; i < n; i++)
	{
		if (i)
			appendStringInfoString(s, ", ");
		append_json_string(s, TextDatumGetCString(elems[i]));
	}
	appendStringInfoChar(s, ']');
}

/*
 * row_to_jsonb: enrich_lead's answer for one lead.
 */
static Datum
row_to_jsonb(LeadRow *row)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s, "{\"lead_id\": " INT64_FORMAT ", \"status\": ", row->id);
	append_json_string(&s, lead_status_name(row->status));
	if (row->skip)
	{
		appendStringInfoString(&s, ", \"reason\": ");
		append_json_string(&s, row->skip);
	}
	if (row->domain)
	{
		appendStringInfoString(&s, ", \"domain\": ");
		append_json_string(&s, row->domain);
	}
	appendStringInfo(&s, ", \"credits\": %d, \"filled\": ", row->credits);
	append_filled_json(&s, row->filled ? row->filled : "{}");
	if (row->company)
		appendStringInfo(&s, ", \"company\": %s",
						 JsonbToCString(NULL, &row->company->root, VARSIZE(row->company)));
	appendStringInfoChar(&s, '}');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data));
}

/*
 * sort_unique_ids: sort ids and drop duplicates; returns the new count.
 */
int
sort_unique_ids(int64 *ids, int n)
{
	int m = 0;

	qsort(ids, n, sizeof(int64), cmp_int64);
	for (int i = 0; i < n; i++)
		if (m == 0 || ids[i] != ids[m - 1])
			ids[m++] = ids[i];
	return m;
}

/*
 * batch_send: prepare one batch in the caller's transaction (its leads
 * locked and classified, the outcomes that need no provider written) and
 * put its request in flight, at most max_parallel requests of this process
 * at once; batch_finish waits for the answer and writes it.  With
 * stop_credit nothing is sent: the leads that needed the provider are
 * reported as not sent for lack of credits.
 *
 * The batch is in the caller's memory context; what preparing it took
 * besides is freed here.  After a statement SPI leaves the procedure's
 * context current, and everything allocated afterwards stays there until
 * SPI_finish: in enrich_leads, for the whole call (every batch's rows,
 * answers and notes: about 14 kB a lead, 700 MB for 50,000).  So the
 * statements run at an SPI level of their own, ended once the batch is
 * copied out, as the worker's claim does.
 */
static EnrichBatch *
batch_send(LeadTable *lt, int64 *ids, int n, const char *token, bool stop_credit,
		   int max_parallel)
{
	MemoryContext cxt = CurrentMemoryContext;
	EnrichBatch	 *b;
	RpcCall		 *call;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	b = enrich_prepare(lt, ids, n, PREPARE_MANUAL);
	enrich_apply_local(b, "manual");
	b = enrich_batch_copy(b, cxt);
	SPI_finish();
	if (stop_credit)
	{
		for (int i = 0; i < b->n; i++)
		{
			if (b->rows[i].status == LEAD_PENDING)
			{
				b->rows[i].status = LEAD_INSUFFICIENT_CREDIT;
				b->rows[i].error = "not sent: credits ran out on an earlier batch";
			}
		}
		return b;
	}
	call = enrich_call(b, token);
	if (call != NULL)
	{
		HttpRequest *h = &call->http;

		http_start(&h, 1, max_parallel);
	}
	return b;
}

/*
 * batch_finish: wait for the answer of a batch batch_send put in flight,
 * and write it in the caller's transaction.
 */
static void
batch_finish(EnrichBatch *b)
{
	HttpRequest *h;

	if (b->call == NULL)
		return;
	h = &b->call->http;
	http_wait(&h, 1);
	rpc_finish(b->call);
	enrich_apply(b, "manual");
}

/*
 * batch_abort: tear down the request of a batch still in flight, when an
 * error leaves it unwritten (its memory goes with the transaction; libcurl
 * must not write into it afterwards).
 */
static void
batch_abort(EnrichBatch *b)
{
	HttpRequest *h;

	if (b == NULL || b->call == NULL)
		return;
	h = &b->call->http;
	http_abort(&h, 1);
}

/*
 * lead_enrich.enrich_lead(id): enrich one lead now, as a batch of one.
 * Failures of the provider are errors, and the transaction rolls back: the
 * lead is not marked and nothing is half-written.
 */
Datum
lead_enrich_enrich_lead(PG_FUNCTION_ARGS)
{
	int64		  id = PG_GETARG_INT64(0);
	LeadTable	 *lt;
	EnrichBatch	 *b;
	char		 *token;
	Datum		  result;
	MemoryContext outer = CurrentMemoryContext;

	SPI_connect();
	lt = lead_table_load(false);
	token = le_account_token_lookup(lt, false);
	b = batch_send(lt, &id, 1, token, false, 1);
	batch_finish(b);
	if (b->rows[0].status == LEAD_MISSING)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("lead " INT64_FORMAT " does not exist in %s", id, lt->qualname)));
	/* failures are errors here, not recorded outcomes: the ERROR rolls back */
	if (b->call != NULL && b->call->status != RPC_OK)
		rpc_report(b->call, ERROR);
	if (b->rows[0].status == LEAD_ERROR)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("the IAP provider sent an invalid response"),
				 errdetail("%s", b->rows[0].error)));
	MemoryContextSwitchTo(outer);
	result = row_to_jsonb(&b->rows[0]);
	result = PointerGetDatum(DatumGetJsonbPCopy(result));
	SPI_finish();
	PG_RETURN_DATUM(result);
}

/*
 * BulkCall: what enrich_leads carries from batch to batch.
 */
typedef struct BulkCall
{
	ReturnSetInfo *rsinfo;
	bool		   no_credit;  /* a batch was refused for lack of credits */
	char		  *credit_url; /* where to buy them, as the provider said */
} BulkCall;

/*
 * bulk_finish: write the answer of one of enrich_leads' batches and return
 * its leads' rows; a refusal for lack of credits stops the batches not yet
 * sent.  At an SPI level of its own, for the reason batch_send gives: the
 * answer, its notes and the rows are freed once returned.
 */
static void
bulk_finish(BulkCall *bc, EnrichBatch *b)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	batch_finish(b);
	if (b->call != NULL && b->call->status == RPC_INSUFFICIENT_CREDIT)
	{
		if (!bc->no_credit && b->call->credit_url != NULL)
			bc->credit_url = MemoryContextStrdup(bc->rsinfo->econtext->ecxt_per_query_memory,
												 b->call->credit_url);
		bc->no_credit = true;
	}
	else if (b->call != NULL && b->call->status != RPC_OK)
		rpc_report(b->call, WARNING);

	for (int r = 0; r < b->n; r++)
	{
		LeadRow *row = &b->rows[r];
		Datum	 values[5];
		bool	 isnull[5] = {false, false, false, false, false};

		values[0] = Int64GetDatum(row->id);
		values[1] = CStringGetTextDatum(lead_status_name(row->status));
		if (row->filled)
			values[2] = OidInputFunctionCall(F_ARRAY_IN, row->filled, TEXTOID, -1);
		else
			isnull[2] = true;
		values[3] = Int32GetDatum(row->credits);
		if (row->skip || row->error || row->note)
			values[4] = CStringGetTextDatum(row->skip ? row->skip : row->error ? row->error
																			   : row->note);
		else
			isnull[4] = true;
		tuplestore_putvalues(bc->rsinfo->setResult, bc->rsinfo->setDesc, values, isnull);
	}
	SPI_finish();
}

/*
 * lead_enrich.enrich_leads(ids): bulk enrichment, batch by batch.  Unlike
 * enrich_lead, a failed batch does not abort the call: its leads are
 * reported (and recorded) with the error and the next batch goes on, as
 * Odoo does; credits running out stops the remaining batches.
 *
 * The next batch is prepared and its request put in flight before this
 * batch's answer is written, so that the provider works while this process
 * writes, as the worker's rounds overlap (one batch at a time, the call was
 * slower than the same loop in PL/pgSQL over the http extension).  A batch
 * is therefore already sent when the one before it is refused for lack of
 * credits: its answer is written as the provider gave it (a refusal, or
 * leads enriched and charged), and only the batches after it are not sent.
 * With lead_enrich.max_connections = 1, one request at a time, nothing
 * overlaps.
 */
Datum
lead_enrich_enrich_leads(PG_FUNCTION_ARGS)
{
	ArrayType	 *arr = PG_GETARG_ARRAYTYPE_P(0);
	Datum		 *elems;
	bool		 *nulls;
	int			  nelems;
	int64		 *ids;
	int			  nids = 0;
	LeadTable	 *lt;
	char		 *token;
	BulkCall	  bc = {(ReturnSetInfo *) fcinfo->resultinfo, false, NULL};
	bool		  overlap = le_max_connections > 1;
	MemoryContext cxt[2];
	EnrichBatch *volatile sent = NULL; /* in flight, not yet written */
	EnrichBatch *volatile next = NULL;

	InitMaterializedSRF(fcinfo, 0);
	deconstruct_array(arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &elems, &nulls, &nelems);
	ids = palloc(sizeof(int64) * Max(nelems, 1));
	for (int i = 0; i < nelems; i++)
		if (!nulls[i])
			ids[nids++] = DatumGetInt64(elems[i]);
	/* sorted: each lead once, and locks always taken in the same order */
	nids = sort_unique_ids(ids, nids);

	SPI_connect();
	lt = lead_table_load(false);
	token = le_account_token_lookup(lt, false);
	/* a batch's memory lives until it is written: two batches at a time */
	for (int k = 0; k < 2; k++)
		cxt[k] = AllocSetContextCreate(CurrentMemoryContext, "lead_enrich batch",
									   ALLOCSET_DEFAULT_SIZES);

	PG_TRY();
	{
		for (int i = 0, k = 0; i < nids; i += le_batch_size, k ^= 1)
		{
			MemoryContext old;

			MemoryContextReset(cxt[k]);
			old = MemoryContextSwitchTo(cxt[k]);
			next = batch_send(lt, ids + i, Min(le_batch_size, nids - i), token,
							  bc.no_credit, overlap ? 2 : 1);
			if (sent != NULL)
				bulk_finish(&bc, sent);
			sent = next;
			next = NULL;
			if (!overlap)
			{
				bulk_finish(&bc, sent);
				sent = NULL;
			}
			MemoryContextSwitchTo(old);
		}
		if (sent != NULL)
			bulk_finish(&bc, sent);
	}
	PG_CATCH();
	{
		batch_abort(sent);
		batch_abort(next);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (bc.no_credit)
		ereport(WARNING,
				(errcode(ERRCODE_LE_INSUFFICIENT_CREDIT),
				 errmsg("not enough credits for lead enrichment: remaining leads were not sent"),
				 errhint("Buy credits at %s", bc.credit_url ? bc.credit_url : "the URL lead_enrich.iap_credit_url() returns")));
	SPI_finish();
	return (Datum) 0;
}
