/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  Automatic enrichment: a worker of one database (launcher.c starts
 *	  lead_enrich.workers_per_database of them per database).
 *
 * A database's worker sleeps on its latch.  It is woken when a transaction
 * that enqueued leads commits (shmem.c), by lead_enrich.wake(), when the
 * next retry is due, and every lead_enrich.interval for the periodic pass.
 * A pass repeats rounds until nothing due is left:
 *
 *	claim	 a short transaction: up to max_connections batches of
 *			 batch_size pending leads, each lead's advisory lock taken
 *			 without waiting, the rows locked FOR UPDATE SKIP LOCKED by
 *			 enrich_prepare for the whole round; outcomes that need no
 *			 provider (no e-mail, invalid e-mail, webmail domain) are
 *			 written; the others split into the round's batches
 *			 (enrich_split) and recorded; commit;
 *	call	 every batch's request at once, at most max_connections in
 *			 flight, outside any transaction;
 *	apply	 one short transaction for the round's answers: the leads are
 *			 locked and checked again (enrich_recheck), the answers written
 *			 in the same statements, commit (when that fails, or for a
 *			 batch without a usable answer, one transaction per batch);
 *			 then the advisory locks are released.
 * Rounds overlap, two in flight: once a round's answers are in, the round
 * after next is claimed and sent before they are written, so the provider
 * always has a round to work on while the worker claims and writes.  A
 * claim leaves the leads of the rounds not yet written alone (they belong
 * to recorded batches); on a pause or a failed write the rounds in flight
 * are given up, and their recorded batches are sent again later.
 *
 * Several workers of a database share its queue: a claim takes leads no
 * other claim holds (queue_claimable, FOR UPDATE SKIP LOCKED), a batch
 * belongs to the worker holding its advisory lock from the claim that
 * records it until its answer is written (queue.c), and the worker whose
 * claim collected new leads wakes the others.  Pauses are each worker's.
 *
 * Failures are isolated per batch: an error while applying a batch is
 * logged, the transaction aborted (as autovacuum does per table), the
 * batch left recorded to be sent again, and the worker goes on (a round
 * written together is written again batch by batch first); an error while
 * claiming a round is retried batch by batch, then lead by lead, in
 * subtransactions, so that one bad lead cannot hold back the others.
 * Transient failures (connection refused, timeout, HTTP error) keep the
 * leads pending with an exponential backoff, up to
 * lead_enrich.max_attempts.  Insufficient
 * credit pauses the worker without touching the leads; the balance is
 * checked every interval (or on wake()) and the worker resumes by itself.
 *
 * The worker leaves promptly on SIGTERM, even with requests in flight
 * (http_perform checks for interrupts every 100 ms); its leads stay
 * pending and the same batch, sent again, is answered from the provider's
 * replay store.  It also leaves when a DROP DATABASE (or CREATE DATABASE
 * ... TEMPLATE) waits for it: it probes the database's lock every second.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>
#include <unistd.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/guc.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "citus.h"
#include "enrich.h"
#include "guard.h"
#include "intake.h"
#include "lead_enrich.h"
#include "queue.h"
#include "worker.h"

/* How often an idle worker looks for due retries and DROP DATABASE. */
#define TICK_MS 1000

/* A batch between claim and apply. */
typedef struct WorkBatch
{
	EnrichBatch *b;
	int64		*locked; /* advisory locks held */
	int			 nlocked;
	bool		 owned; /* b's own advisory lock held (queue_batch_lock) */
} WorkBatch;

/* the database's worker: its slot and pass state */
static LeDbSlot		*my_slot = NULL;
static LeWorkerSlot *me = NULL;	   /* this worker in my_slot */
static int			 my_index = 0; /* its number there, from 0 */
static char			*my_dbname = NULL;
static MemoryContext pass_cxt = NULL;
/* rounds of a pass: one whose answers are written, one in flight, one claimed */
#define NROUNDS 3
static MemoryContext round_cxt[NROUNDS];  /* a round's, reset when it starts */
static MemoryContext work_cxt = NULL;	  /* where work allocates: one of these */
static ResourceOwner worker_owner = NULL; /* between transactions */
static bool			 paused = false;
static TimestampTz	 pause_check_at = 0;
static bool			 provider_down = false; /* paused because the provider is unavailable */
static int			 provider_failures = 0; /* consecutive failed sends or probes */
static int64		*skip_ids = NULL;		/* leads locked by others in this pass */
static int			 nskip = 0;
static int			 skip_cap = 0;

/* ------------------------------------------------------------------------
 * The database's worker: slot and status
 * ------------------------------------------------------------------------
 */

/*
 * worker_detach: clear the slot's pid when the worker exits, however.
 */
static void
worker_detach(int code, Datum arg)
{
	Latch *launcher;

	LWLockAcquire(le_shared->lock, LW_EXCLUSIVE);
	if (me->pid == MyProcPid)
	{
		me->pid = 0;
		me->latch = NULL;
		strlcpy(me->activity, "exited", sizeof(me->activity));
	}
	launcher = le_shared->launcher_latch;
	LWLockRelease(le_shared->lock);
	if (launcher != NULL)
		SetLatch(launcher);
}

/*
 * set_activity: the slot's activity and pg_stat_activity's query.
 */
static void
set_activity(const char *activity)
{
	le_slot_set_activity(me, activity);
	if (strcmp(activity, "idle") == 0 || strcmp(activity, "paused") == 0)
		pgstat_report_activity(STATE_IDLE, activity);
	else
		pgstat_report_activity(STATE_RUNNING, activity);
}

/*
 * set_error: remember the last error for the status view.
 */
static void
set_error(const char *msg)
{
	LWLockAcquire(le_shared->lock, LW_EXCLUSIVE);
	strlcpy(me->last_error, msg ? msg : "", LE_TEXT_LEN);
	me->last_error_at = GetCurrentTimestamp();
	LWLockRelease(le_shared->lock);
}

/*
 * set_pause: pause (reason != NULL) or resume; logged once per change.
 */
static void
set_pause(const char *reason, const char *hint)
{
	TimestampTz now = GetCurrentTimestamp();

	if (reason != NULL)
	{
		if (!paused)
			ereport(WARNING,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("lead enrichment paused in database \"%s\": %s",
							my_dbname, reason),
					 errdetail("Pending leads stay pending, and nothing is counted against them."),
					 hint ? errhint("%s", hint) : 0));
		paused = true;
		pause_check_at = TimestampTzPlusMilliseconds(now, le_interval_min * 60 * 1000L);
		LWLockAcquire(le_shared->lock, LW_EXCLUSIVE);
		if (me->paused_since == 0)
			me->paused_since = now;
		strlcpy(me->pause_reason, reason, LE_TEXT_LEN);
		LWLockRelease(le_shared->lock);
	}
	else if (paused)
	{
		ereport(LOG,
				(errmsg("lead enrichment resumed in database \"%s\"", my_dbname)));
		paused = false;
		provider_down = false;
		provider_failures = 0;
		LWLockAcquire(le_shared->lock, LW_EXCLUSIVE);
		me->paused_since = 0;
		me->pause_reason[0] = '\0';
		LWLockRelease(le_shared->lock);
	}
}

/*
 * pause_provider: the provider could not be reached or did not answer in
 * the protocol (refused, timeout, 5xx, garbage): the whole queue waits,
 * nothing is counted against the leads, and the provider is probed again
 * after retry_delay, doubling up to five minutes (or the interval).
 */
static void
pause_provider(const char *msg)
{
	TimestampTz now = GetCurrentTimestamp();
	long		delay_ms = (long) le_retry_delay_s * 1000L;
	long		cap_ms = Min(300 * 1000L, (long) le_interval_min * 60 * 1000L);
	TimestampTz since;
	char	   *since_s;
	char	   *next_s;

	for (int i = 1; i < provider_failures && delay_ms < cap_ms; i++)
		delay_ms *= 2;
	delay_ms = Min(Max(delay_ms, 1000L), Max(cap_ms, 1000L));
	provider_failures++;
	set_error(msg);
	LWLockAcquire(le_shared->lock, LW_SHARED);
	since = me->paused_since != 0 && provider_down ? me->paused_since : now;
	LWLockRelease(le_shared->lock);
	/* timestamptz_to_str returns a static buffer: one call at a time */
	since_s = pstrdup(timestamptz_to_str(since));
	next_s = pstrdup(timestamptz_to_str(TimestampTzPlusMilliseconds(now, delay_ms)));
	set_pause(psprintf("provider unavailable since %s: %s; next probe at %s", since_s, msg, next_s),
			  "Check the provider and lead_enrich.endpoint; the worker resumes by itself, or call lead_enrich.wake().");
	provider_down = true;
	pause_check_at = TimestampTzPlusMilliseconds(now, delay_ms);
}

/* ------------------------------------------------------------------------
 * The database's worker: transactions and queue updates
 * ------------------------------------------------------------------------
 */

/*
 * out_of_xact: between transactions, allocate in the pass's context, and
 * give resources (the MD5 of a request id, for one) an owner: a committed
 * or aborted transaction leaves CurrentResourceOwner NULL.
 */
static void
out_of_xact(void)
{
	MemoryContextSwitchTo(work_cxt);
	CurrentResourceOwner = worker_owner;
}

/*
 * begin_xact / end_xact: a short transaction with SPI, allocating in the
 * pass's memory context so that batches outlive it.
 */
static void
begin_xact(const char *activity)
{
	set_activity(activity);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	MemoryContextSwitchTo(work_cxt);
}

static void
end_xact(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	out_of_xact();
	pgstat_report_stat(false);
}

/*
 * extension_present: whether lead_enrich exists here (in a transaction).
 */
static bool
extension_present(void)
{
	return OidIsValid(get_extension_oid("lead_enrich", true));
}

/*
 * add_skip: remember a lead locked elsewhere, not to claim it again in this
 * pass.
 */
static void
add_skip(int64 id)
{
	if (nskip == skip_cap)
	{
		skip_cap = Max(64, skip_cap * 2);
		skip_ids = skip_ids ? repalloc(skip_ids, sizeof(int64) * skip_cap)
							: MemoryContextAlloc(pass_cxt, sizeof(int64) * skip_cap);
	}
	skip_ids[nskip++] = id;
}

/*
 * release_locks: the advisory locks of a batch: its leads', and its own
 * (another worker may send it again from now on).
 */
static void
release_locks(WorkBatch *wb)
{
	for (int i = 0; i < wb->nlocked; i++)
		le_unlock_lead(wb->locked[i]);
	wb->nlocked = 0;
	if (wb->owned)
		queue_batch_unlock(wb->b->batch_id);
	wb->owned = false;
}

/* ------------------------------------------------------------------------
 * The database's worker: claim, call, apply
 * ------------------------------------------------------------------------
 */

/*
 * skip_lead: a lead the claim cannot take now (locked elsewhere): left for
 * a later pass; one that came straight from the intake is queued (added to
 * orphan, whose pending rows the claim writes).
 */
static void
skip_lead(int64 id, LeDirect *direct, LeDirectLead *orphan, int *norphans)
{
	LeDirectLead *d = le_direct_find(direct, id);

	add_skip(id);
	if (d != NULL)
		orphan[(*norphans)++] = *d;
}

/*
 * claim_chunk: lock and prepare the leads ids[0 .. n-1] (in the claim
 * transaction), as batches of batch_size of them: wbs[k] gets the leads
 * ids[k * batch_size ..], its locks, and its batch to send (NULL when
 * none of them needs the provider).  The leads are read, classified and
 * their local outcomes written in the same statements whatever their
 * number (per batch, those statements were a sixth of the worker's CPU).
 * The leads of direct came straight from the intake with no row: one the
 * claim cannot take gets its pending row here, and one that needs no
 * enrichment none.
 */
static void
claim_chunk(LeadTable *lt, const char *token, int64 *ids, int n, WorkBatch *wbs, LeDirect *direct)
{
	EnrichBatch	 *b;
	EnrichBatch **parts;
	int64		 *locked = palloc(sizeof(int64) * n);
	int			  nlocked = 0;
	int64		 *gone = palloc(sizeof(int64) * n);
	int			  ngone = 0;
	LeDirectLead *orphan = palloc(sizeof(LeDirectLead) * n);
	int			  norphans = 0;
	int			  nparts = (n + le_batch_size - 1) / le_batch_size;

	for (int k = 0; k < nparts; k++)
	{
		wbs[k].locked = MemoryContextAlloc(work_cxt, sizeof(int64) * le_batch_size);
		wbs[k].nlocked = 0;
	}
	for (int i = 0; i < n; i++)
	{
		WorkBatch *wb = &wbs[i / le_batch_size];

		if (le_lock_lead(ids[i], true, false))
		{
			wb->locked[wb->nlocked++] = ids[i];
			locked[nlocked++] = ids[i];
		}
		else
			skip_lead(ids[i], direct, orphan, &norphans); /* a manual enrichment has it */
	}
	if (nlocked == 0)
	{
		le_intake_enqueue(orphan, norphans);
		return;
	}
	b = enrich_prepare(lt, locked, nlocked, PREPARE_CLAIM);

	/* leads not returned: row-locked elsewhere, or deleted */
	if (b->n < nlocked)
	{
		int64 *absent = palloc(sizeof(int64) * nlocked);
		int	   nabsent = 0;
		int	   ret;

		for (int i = 0; i < nlocked; i++)
		{
			bool found = false;

			for (int j = 0; j < b->n && !found; j++)
				found = b->rows[j].id == locked[i];
			if (!found)
				absent[nabsent++] = locked[i];
		}
		ret = lt_existing(lt, absent, nabsent);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not look for leads");
		for (int i = 0; i < nabsent; i++)
		{
			bool exists = false;

			for (uint64 r = 0; r < SPI_processed && !exists; r++)
			{
				bool isnull;

				exists = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r],
													 SPI_tuptable->tupdesc, 1, &isnull)) == absent[i];
			}
			if (exists)
				skip_lead(absent[i], direct, orphan, &norphans);
			else if (le_direct_find(direct, absent[i]) == NULL)
				gone[ngone++] = absent[i];
		}
	}
	for (int i = 0; i < b->n; i++)
		if (b->rows[i].status == LEAD_SKIPPED && le_direct_find(direct, b->rows[i].id) == NULL)
			gone[ngone++] = b->rows[i].id;
	queue_forget(gone, ngone);
	le_intake_enqueue(orphan, norphans);
	enrich_apply_local(b, "worker");

	/* recorded before it is sent; the call is built after the claim commits */
	parts = enrich_split(b, ids, n, le_batch_size);
	queue_batch_record(parts, nparts);
	for (int k = 0; k < nparts; k++)
		if (parts[k] != NULL)
			wbs[k].b = enrich_batch_copy(parts[k], work_cxt);
}

/* claim_chunk's arguments, for le_run_isolated */
typedef struct ClaimArgs
{
	LeadTable  *lt;
	const char *token;
	int64	   *ids;
	int			n;
	WorkBatch  *wbs;
	LeDirect   *direct;
} ClaimArgs;

/* claim_chunk for le_run_isolated */
static void
claim_chunk_cb(void *arg)
{
	ClaimArgs *a = (ClaimArgs *) arg;

	claim_chunk(a->lt, a->token, a->ids, a->n, a->wbs, a->direct);
}

/*
 * claim_chunk_guarded: claim_chunk in a subtransaction, into out after the
 * *nout batches already there; returns false on error, with the message,
 * the chunk's locks released and nothing added.  Batches with nothing to
 * send release their locks (their leads are done).
 */
static bool
claim_chunk_guarded(LeadTable *lt, const char *token, int64 *ids, int n, LeDirect *direct,
					WorkBatch *out, int *nout, char **msg)
{
	int		   nparts = (n + le_batch_size - 1) / le_batch_size;
	WorkBatch *wbs = palloc0(sizeof(WorkBatch) * nparts);
	ClaimArgs  a = {lt, token, ids, n, wbs, direct};
	ErrorData *ed;
	bool	   ok;

	ok = le_run_isolated(claim_chunk_cb, &a, &ed);
	for (int k = 0; k < nparts; k++)
	{
		if (ok && wbs[k].b != NULL)
		{
			/*
			 * this worker's before the claim commits: no other resends it (a
			 * new id: nobody else holds its lock, SQL cannot name the tag)
			 */
			wbs[k].owned = queue_batch_lock(wbs[k].b->batch_id);
			Assert(wbs[k].owned);
			out[(*nout)++] = wbs[k];
		}
		else
			release_locks(&wbs[k]);
	}
	if (!ok)
		*msg = ed->message;
	return ok;
}

/*
 * claim_round: claim up to maxb batches of due pending leads (the unsettled
 * batches not in flight first: inflight lists the batch ids of the round
 * whose answers wait to be written).  Returns the number of leads looked
 * at; *stop when the worker has nothing to do here (manual mode, nothing
 * attached, paused).
 */
static int
claim_round(WorkBatch *out, int maxb, int64 *inflight, int ninflight,
			int *nout, bool *stop, bool *more)
{
	LeadTable	 *lt;
	char		 *token;
	int64		 *ids;
	int			  nids;
	int			  limit;
	int			  nresent;
	EnrichBatch **resent = palloc(sizeof(EnrichBatch *) * maxb);
	char		 *msg = NULL;
	uint64		  collected;
	bool		  uncollected;
	int64		 *pending;
	int			  npending;
	int			  half;
	LeDirect	  direct;

	*nout = 0;
	*more = false;
	begin_xact("claiming pending leads");
	if (!extension_present())
	{
		end_xact();
		LWLockAcquire(le_shared->lock, LW_EXCLUSIVE);
		my_slot->no_extension = true;
		LWLockRelease(le_shared->lock);
		ereport(LOG, (errmsg("lead_enrich worker exiting: the extension was dropped")));
		proc_exit(0);
	}
	lt = lead_table_load(true);
	if (lt == NULL || strcmp(lt->mode, "auto") != 0)
	{
		end_xact();
		*stop = true;
		return 0;
	}
	if (lt->missing != NULL)
	{
		char *reason = psprintf("table %s detached: mapped columns %s were dropped, renamed or retyped",
								lt->qualname, lt->missing);
		char *hint = psprintf("Run SELECT lead_enrich.attach('%s'); again, then lead_enrich.wake().",
							  lt->qualname);

		end_xact();
		set_pause(reason, hint);
		*stop = true;
		return 0;
	}
	token = le_account_token_lookup(lt, true);
	if (token == NULL)
	{
		end_xact();
		set_pause("no IAP account token is configured",
				  "Set lead_enrich.account_token with ALTER SYSTEM and reload, then call lead_enrich.wake().");
		*stop = true;
		return 0;
	}

	/* batches sent before and not settled go first, exactly as recorded */
	nresent = queue_batch_unsettled(lt, maxb, inflight, ninflight, resent);
	if (nresent > 0)
		ereport(LOG,
				(errmsg("lead_enrich worker %d: sending again %d batches of database \"%s\" recorded before and not answered",
						my_index + 1, nresent, my_dbname),
				 errdetail("The first is batch " INT64_FORMAT "; the provider answers a batch it charged already from its replay store.",
						   resent[0]->batch_id)));
	for (int i = 0; i < nresent; i++)
	{
		out[*nout].b = enrich_batch_copy(resent[i], work_cxt);
		out[(*nout)++].owned = true;
	}
	limit = (maxb - nresent) * le_batch_size;

	/*
	 * Queued leads first, up to half the round; then new leads straight
	 * from the intake, for the rest; then queued leads again, if the
	 * intake had fewer (its leads queued again among them).  A
	 * new lead claimed directly is written once, as a member of its batch,
	 * instead of as a pending row read back and updated (about a fifth of
	 * the worker's CPU, bench/README.md); the queued half keeps older leads
	 * (retries, a backlog a scan found) moving under a stream of new ones.
	 * Citus mode's queue (the shards' triggers fill it, citus.c) becomes
	 * pending rows first.
	 */
	le_citus_collect();
	half = limit > le_batch_size ? limit / 2 : limit;
	npending = queue_claimable(skip_ids, nskip, half, &pending);
	direct.cap = limit - npending;
	direct.n = 0;
	direct.leads = palloc(sizeof(LeDirectLead) * Max(direct.cap, 1));
	/* new leads the trigger left in shared memory: this round's, or queued */
	collected = le_intake_collect(lt, &uncollected, &direct);
	if (direct.n < direct.cap && ((half > 0 && npending == half) || collected > 0))
	{
		/* the intake had fewer: queued leads fill the round */
		int64 *skip = palloc(sizeof(int64) * (nskip + npending + 1));
		int64 *more_ids;
		int	   nmore;

		memcpy(skip, skip_ids, sizeof(int64) * nskip);
		memcpy(skip + nskip, pending, sizeof(int64) * npending);
		nmore = queue_claimable(skip, nskip + npending, direct.cap - direct.n, &more_ids);
		pending = repalloc(pending, sizeof(int64) * (npending + nmore + 1));
		memcpy(pending + npending, more_ids, sizeof(int64) * nmore);
		npending += nmore;
	}
	nids = direct.n + npending;
	ids = palloc(sizeof(int64) * Max(nids, 1));
	/* the newest first, as the intake gave them */
	for (int i = 0; i < direct.n; i++)
		ids[i] = direct.leads[direct.n - 1 - i].id;
	memcpy(ids + direct.n, pending, sizeof(int64) * npending);
	/* Citus mode: a batch's leads in as few shards as can be */
	le_citus_order_claim(lt->relid, jb_get_text(&lt->columns->root, "id"), ids, nids);
	*more = nresent == maxb || (limit > 0 && nids == limit) || uncollected;

	/* the round's leads together; on an error, batch by batch */
	if (nids > 0 && !claim_chunk_guarded(lt, token, ids, nids, &direct, out, nout, &msg))
	{
		/* the direct leads queued first, as the collect would have */
		le_intake_enqueue(direct.leads, direct.n);
		for (int i = 0; i < nids; i += le_batch_size)
		{
			int n = Min(le_batch_size, nids - i);

			if (claim_chunk_guarded(lt, token, ids + i, n, NULL, out, nout, &msg))
				continue;
			ereport(WARNING,
					(errmsg("lead_enrich worker: could not prepare a batch of leads, retrying them one by one"),
					 errdetail("%s", msg)));
			set_error(msg);
			/* one lead at a time, so that a bad one holds back no other */
			for (int k = 0; k < n; k++)
			{
				if (claim_chunk_guarded(lt, token, ids + i + k, 1, NULL, out, nout, &msg))
					continue;
				ereport(WARNING,
						(errmsg("lead_enrich worker: could not prepare lead " INT64_FORMAT, ids[i + k]),
						 errdetail("%s", msg)));
				queue_record_failure(ids + i + k, 1, msg);
			}
		}
	}
	token = MemoryContextStrdup(work_cxt, token);
	end_xact();
	/* the leads collected, and those left, are the other workers' to claim too */
	if ((collected > 0 || uncollected) && le_workers_per_database > 1)
		le_wake_others(MyDatabaseId, me);

	/* the requests, outside the transaction, in the pass's context */
	for (int i = 0; i < *nout; i++)
		(void) enrich_call(out[i].b, token);
	return nids;
}

/*
 * recover_from_error: what autovacuum does after an error in one table:
 * report it, abort the transaction, and go on.  Returns the error, copied
 * into the pass's memory context.
 */
static ErrorData *
recover_from_error(void)
{
	ErrorData *ed;

	HOLD_INTERRUPTS();
	MemoryContextSwitchTo(work_cxt);
	ed = CopyErrorData();
	EmitErrorReport();
	AbortOutOfAnyTransaction();
	FlushErrorState();
	out_of_xact();
	RESUME_INTERRUPTS();
	return ed;
}

/* What became of a batch's send. */
typedef enum BatchResult
{
	BATCH_SETTLED,	  /* the answer is written */
	BATCH_NO_CREDIT,  /* refused for lack of credits: stays recorded */
	BATCH_UNANSWERED, /* no answer in the protocol: stays recorded */
	BATCH_FAILED	  /* writing the answer failed: stays recorded */
} BatchResult;

/*
 * answered: whether a batch's call got a result the apply can read.
 */
static bool
answered(WorkBatch *wb)
{
	RpcCall *call = wb->b->call;

	return call->status == RPC_OK && JsonContainerIsObject(&call->result->root);
}

/*
 * write_answers: in one transaction, lock the leads of the answered
 * batches bs[0 .. n-1] again, write their answers in the same statements
 * and settle the batches.
 *
 * Its commit does not wait for its WAL to reach the disk (the claim's
 * does, see le_worker_main).  A crash can lose it: the batches are then
 * still recorded, sent again under the same ids (the provider's replay
 * store answers them without charging again) and their answers written
 * again.  Nothing of it leaves the server before a commit that waits:
 * the next claim's, whose flush takes this WAL with its own, as does any
 * other session's synchronous commit that read what this one wrote.
 * The worker's two WAL flushes a round become one.  Not on a Citus table:
 * its nodes commit once the coordinator's commit record is written, which
 * a crash must not then lose.
 */
static void
write_answers(EnrichBatch **bs, int n)
{
	begin_xact("writing enrichment results");
	enrich_recheck(bs, n);
	if (!bs[0]->lt->citus)
		(void) set_config_option("synchronous_commit", "off", PGC_SUSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
	enrich_apply_many(bs, n, "worker");
	queue_batch_settle(bs, n);
	end_xact();
}

/*
 * apply_batch: write one batch's answer in its own transaction, and settle
 * it.  A batch without a usable answer is left recorded (queue.c): it is
 * sent again as it is, and its leads' attempts are not counted.
 */
static BatchResult
apply_batch(WorkBatch *wb)
{
	EnrichBatch			*b = wb->b;
	RpcCall				*call = b->call;
	volatile BatchResult result = BATCH_SETTLED;

	if (call->status == RPC_OK && !answered(wb))
	{
		call->status = RPC_BAD_RESPONSE;
		call->message = pstrdup("the result is not an object keyed by lead id");
	}
	if (call->status == RPC_INSUFFICIENT_CREDIT)
		return BATCH_NO_CREDIT;

	PG_TRY();
	{
		if (call->status != RPC_OK)
		{
			begin_xact("recording a failed send");
			queue_batch_failed(b, psprintf("%s: %s", rpc_status_name(call->status), call->message));
			end_xact();
			result = BATCH_UNANSWERED;
		}
		else
			write_answers(&b, 1);
	}
	PG_CATCH();
	{
		ErrorData *ed = recover_from_error();

		ereport(WARNING,
				(errmsg("lead_enrich worker: could not write the answer of a batch of %d leads; it will be sent again", b->n)));
		set_error(ed->message);
		result = BATCH_FAILED;
	}
	PG_END_TRY();
	return result;
}

/*
 * fetch_balance: the reveal service's balance, outside any transaction;
 * -1 (and *msg) when the provider cannot say.
 */
static double
fetch_balance(const char *dbuuid, const char *token, char **msg)
{
	RpcCall call;
	Numeric balance = le_fetch_balance(dbuuid, token, &call);

	if (balance == NULL)
	{
		*msg = psprintf("%s: %s", rpc_status_name(call.status), call.message);
		return -1;
	}
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(balance)));
}

/*
 * resume_check: while paused, whether enrichment can go on: a token, and
 * credits on the provider.
 */
static bool
resume_check(void)
{
	LeadTable *lt;
	char	  *token = NULL;
	char	  *msg = NULL;
	double	   balance;
	char	  *dbuuid = NULL;

	begin_xact("checking the balance");
	lt = lead_table_load(true);
	if (lt != NULL)
	{
		token = le_account_token_lookup(lt, true);
		dbuuid = MemoryContextStrdup(work_cxt, lt->dbuuid);
		if (token != NULL)
			token = MemoryContextStrdup(work_cxt, token);
	}
	end_xact();
	if (dbuuid == NULL || token == NULL)
	{
		set_pause(dbuuid == NULL ? "no lead table is attached" : "no IAP account token is configured", NULL);
		return false;
	}
	set_activity(provider_down ? "probing the provider" : "checking the balance");
	balance = fetch_balance(dbuuid, token, &msg);
	if (provider_down)
	{
		/* any answer in the protocol ends the outage; credits are seen next */
		if (balance >= 0)
		{
			set_pause(NULL, NULL);
			return true;
		}
		pause_provider(msg ? msg : "no answer");
		return false;
	}
	if (balance > 0)
	{
		set_pause(NULL, NULL);
		return true;
	}
	if (balance < 0)
		set_error(msg);
	pause_check_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), le_interval_min * 60 * 1000L);
	return false;
}

/*
 * next_due: when the next pending lead is due; leads due now but locked
 * elsewhere are tried again after retry_delay.
 */
static TimestampTz
next_due(void)
{
	TimestampTz due;

	begin_xact("looking for retries");
	due = queue_next_due();
	end_xact();
	return due;
}

/*
 * A round: up to max_connections batches claimed in one transaction and
 * sent at once.  A pass keeps three (NROUNDS): while the provider answers
 * one, the worker claims the next and writes the answers of the one
 * before.
 */
typedef struct Round
{
	MemoryContext cxt;	   /* the round's memory, reset when it starts */
	int			  maxb;	   /* batches per round */
	WorkBatch	 *batches; /* maxb * batch_size + maxb slots (one lead each at worst) */
	int			  nslots;
	int			  nb;	/* batches to send */
	HttpRequest **reqs; /* their requests, in flight until waited for */
	bool		  more; /* more leads may be due after this round */
} Round;

/* What the answers of a round said. */
typedef struct RoundOutcome
{
	RpcCall *refused;	 /* a batch refused for lack of credits */
	RpcCall *unanswered; /* a batch without a usable answer */
	bool	 failed;	 /* writing an answer failed */
} RoundOutcome;

/*
 * round_start: claim a round and put its requests in flight; others are
 * the rounds whose batches are in flight or whose answers are still to be
 * written (unsettled, but not to be resent).
 */
static void
round_start(Round *r, Round **others, int nothers, bool *stop)
{
	int64 *inflight = NULL;
	int	   ninflight = 0;

	MemoryContextReset(r->cxt);
	memset(r->batches, 0, sizeof(WorkBatch) * r->nslots);
	r->nb = 0;
	r->reqs = NULL;
	r->more = false;
	work_cxt = r->cxt;
	out_of_xact();
	inflight = palloc(sizeof(int64) * Max(nothers * r->nslots, 1));
	for (int k = 0; k < nothers; k++)
		for (int i = 0; i < others[k]->nb; i++)
			if (others[k]->batches[i].b->batch_id != 0)
				inflight[ninflight++] = others[k]->batches[i].b->batch_id;
	(void) claim_round(r->batches, r->maxb, inflight, ninflight, &r->nb, stop, &r->more);
	if (r->nb == 0)
		return;
	r->reqs = palloc(sizeof(HttpRequest *) * r->nb);
	for (int i = 0; i < r->nb; i++)
		r->reqs[i] = &r->batches[i].b->call->http;
	set_activity(psprintf("calling the provider: %d requests", r->nb));
	http_start(r->reqs, r->nb, le_max_connections);
	LWLockAcquire(le_shared->lock, LW_EXCLUSIVE);
	me->requests += r->nb;
	LWLockRelease(le_shared->lock);
}

/*
 * round_wait: wait for every answer of a round, and read them.
 */
static void
round_wait(Round *r)
{
	if (r->nb == 0)
		return;
	set_activity(psprintf("calling the provider: %d requests", r->nb));
	http_wait(r->reqs, r->nb);
	work_cxt = r->cxt;
	out_of_xact();
	for (int i = 0; i < r->nb; i++)
		rpc_finish(r->batches[i].b->call);
}

/*
 * apply_together: write the answers of a round's answered batches in one
 * transaction and the same statements (enrich_apply_many): per batch, the
 * statements' start-up and the commit cost as much as a fifth of the
 * writing.  Returns false, with nothing written and the batches as they
 * were, when any of it fails: the caller then writes them one by one, so
 * that one bad batch holds back no other.
 */
static bool
apply_together(Round *r)
{
	EnrichBatch **bs = palloc(sizeof(EnrichBatch *) * r->nb);
	LeadRow		**saved = palloc(sizeof(LeadRow *) * r->nb);
	int			  n = 0;
	volatile bool ok = true;

	for (int i = 0; i < r->nb; i++)
	{
		EnrichBatch *b = r->batches[i].b;

		if (!answered(&r->batches[i]))
			continue;
		/* the rows' outcomes are set as they are written: kept to undo */
		saved[n] = palloc(sizeof(LeadRow) * Max(b->n, 1));
		memcpy(saved[n], b->rows, sizeof(LeadRow) * b->n);
		bs[n++] = b;
	}
	if (n < 2)
		return false;
	PG_TRY();
	{
		write_answers(bs, n);
	}
	PG_CATCH();
	{
		ErrorData *ed = recover_from_error();

		ereport(LOG,
				(errmsg("lead_enrich worker: could not write the answers of %d batches at once; writing them one by one", n),
				 errdetail("%s", ed->message)));
		for (int i = 0; i < n; i++)
			memcpy(bs[i]->rows, saved[i], sizeof(LeadRow) * bs[i]->n);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/*
 * round_apply: write a round's answers and release its leads: the
 * answered batches together, the rest (and all of them when that fails)
 * one transaction per batch, the next round's transfers moved on between
 * batches.  Returns false when the pass must stop (a refusal, no answer, a
 * failed write).
 */
static bool
round_apply(Round *r, RoundOutcome *o)
{
	bool together;

	memset(o, 0, sizeof(RoundOutcome));
	work_cxt = r->cxt;
	out_of_xact();
	together = apply_together(r);
	for (int i = 0; i < r->nb; i++)
	{
		if (!together || !answered(&r->batches[i]))
		{
			switch (apply_batch(&r->batches[i]))
			{
				case BATCH_SETTLED:
					break;
				case BATCH_NO_CREDIT:
					o->refused = r->batches[i].b->call;
					break;
				case BATCH_UNANSWERED:
					o->unanswered = r->batches[i].b->call;
					break;
				case BATCH_FAILED:
					o->failed = true;
					break;
			}
		}
		release_locks(&r->batches[i]);
		http_progress();
	}
	r->nb = 0;
	return o->refused == NULL && o->unanswered == NULL && !o->failed;
}

/*
 * round_abort: give up a round in flight.  Its batches stay recorded and
 * are sent again, exactly as they are, by a later pass (the provider
 * answers a batch it already charged from its replay store).
 */
static void
round_abort(Round *r)
{
	if (r->reqs != NULL)
		http_abort(r->reqs, r->nb);
	for (int i = 0; i < r->nslots; i++)
		if (r->batches[i].nlocked > 0 || r->batches[i].owned)
			release_locks(&r->batches[i]);
	r->nb = 0;
}

/*
 * round_outcome: pause the worker for what a round's answers said: once
 * every answer of the round is written.
 */
static void
round_outcome(RoundOutcome *o)
{
	if (o->refused != NULL)
		set_pause(psprintf("insufficient credit: %s; the balance is checked again at %s",
						   o->refused->message,
						   timestamptz_to_str(TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
																		  le_interval_min * 60 * 1000L))),
				  o->refused->credit_url
					  ? psprintf("Buy credits at %s, then call lead_enrich.wake().", o->refused->credit_url)
					  : "Buy credits, then call lead_enrich.wake().");
	else if (o->unanswered != NULL)
		pause_provider(psprintf("%s: %s", rpc_status_name(o->unanswered->status),
								o->unanswered->message));
	else if (!o->failed)
		provider_failures = 0;
}

/*
 * run_pass: enrich what is due; returns when the next pass is due.
 *
 * Rounds overlap, two in flight: once the answers of round k are in,
 * round k+2 is claimed and sent while the provider works on round k+1,
 * and only then are round k's answers written.  The provider always has a
 * round to work on while the worker claims and writes (with one round in
 * flight it waited for every claim).  A claim leaves the leads of the
 * rounds not yet written alone (they are in recorded batches) and does not
 * resend their batches.
 */
static TimestampTz
run_pass(uint32 bits)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz next = TimestampTzPlusMilliseconds(now, le_interval_min * 60 * 1000L);
	int			maxb = Max(le_max_connections, 1);
	Round		rounds[NROUNDS];

	MemoryContextReset(pass_cxt);
	work_cxt = pass_cxt;
	out_of_xact();
	skip_ids = NULL;
	nskip = skip_cap = 0;
	for (int i = 0; i < NROUNDS; i++)
	{
		MemoryContextReset(round_cxt[i]);
		memset(&rounds[i], 0, sizeof(Round));
		rounds[i].cxt = round_cxt[i];
		rounds[i].maxb = maxb;
		rounds[i].nslots = maxb * le_batch_size + maxb;
		rounds[i].batches = palloc0(sizeof(WorkBatch) * rounds[i].nslots);
	}

	if (paused && !(bits & LE_WAKE_EXPLICIT) && now < pause_check_at)
		return pause_check_at;

	PG_TRY();
	{
		bool   stop = false;
		bool   claiming = true; /* the last claim says more may be due */
		Round *r[NROUNDS];		/* answers next, in flight, free */

		for (int i = 0; i < NROUNDS; i++)
			r[i] = &rounds[i];
		if (paused && !resume_check())
			stop = true;
		for (int i = 0; i < NROUNDS - 1 && !stop && claiming; i++)
		{
			round_start(r[i], r, i, &stop);
			claiming = r[i]->more;
		}
		for (;;)
		{
			RoundOutcome o;
			Round		*t;
			bool		 sent = r[0]->nb > 0;

			round_wait(r[0]);
			r[2]->nb = 0;
			if (!stop && claiming)
			{
				round_start(r[2], r, 2, &stop);
				claiming = r[2]->more;
			}
			if (!round_apply(r[0], &o))
			{
				round_abort(r[1]);
				round_abort(r[2]);
				round_outcome(&o);
				break;
			}
			if (sent)
				round_outcome(&o);
			if (r[1]->nb == 0 && r[2]->nb == 0 && (stop || !claiming))
				break;
			t = r[0];
			r[0] = r[1];
			r[1] = r[2];
			r[2] = t;
			CHECK_FOR_INTERRUPTS();
		}
		work_cxt = pass_cxt;
		out_of_xact();
		if (paused)
			next = pause_check_at;
		else
		{
			TimestampTz due = next_due();

			if (due != 0 && due < next)
				next = due;
		}
	}
	PG_CATCH();
	{
		ErrorData *ed;

		work_cxt = pass_cxt;
		ed = recover_from_error();
		for (int i = 0; i < NROUNDS; i++)
			round_abort(&rounds[i]);
		set_error(ed->message);
		next = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), le_retry_delay_s * 1000L);
	}
	PG_END_TRY();

	LWLockAcquire(le_shared->lock, LW_EXCLUSIVE);
	me->runs++;
	me->last_run = GetCurrentTimestamp();
	LWLockRelease(le_shared->lock);
	pgstat_report_stat(true);
	return next;
}

/*
 * drop_pending: whether DROP DATABASE, ALTER DATABASE RENAME or CREATE
 * DATABASE ... TEMPLATE waits for this database's sessions to leave.
 * They lock the database in a mode that conflicts with RowExclusiveLock,
 * the mode a new connection takes.
 */
static bool
drop_pending(void)
{
	LOCKTAG tag;

	SET_LOCKTAG_OBJECT(tag, InvalidOid, DatabaseRelationId, MyDatabaseId, 0);
	if (LockAcquire(&tag, RowExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
		return true;
	LockRelease(&tag, RowExclusiveLock, true);
	return false;
}

/*
 * le_worker_main: a database's worker.
 */
void
le_worker_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	TimestampTz due;
	char	   *dbname;
	bool		present;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	memcpy(&my_index, MyBgworkerEntry->bgw_extra, sizeof(int));
	if (my_index < 0 || my_index >= LE_MAX_WORKERS)
		proc_exit(0);
	LWLockAcquire(le_shared->lock, LW_SHARED);
	my_slot = le_slot_find(dboid, false);
	LWLockRelease(le_shared->lock);
	if (my_slot == NULL)
		proc_exit(0);
	me = &my_slot->workers[my_index];

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("lead_enrich worker");

	/*
	 * The worker connects as the bootstrap superuser, as autovacuum does,
	 * and acts on the CRM table as the table's owner, restricted, and on
	 * lead_enrich's tables as the extension's owner (guard.c).  Its
	 * search_path is pinned for the life of the process, above any SET a
	 * trigger of the table's owner could run.
	 */
	le_acting_for_owner = true;
	SetConfigOption("search_path", LE_SAFE_SEARCH_PATH, PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * A batch's record must be on disk before its request leaves: with
	 * synchronous_commit off, a crash could lose a claim committed a moment
	 * before, and its leads would be sent again under a new id and charged
	 * twice.  The worker's transactions wait for their WAL, whatever the
	 * server's setting; but for the answers' (write_answers).
	 */
	SetConfigOption("synchronous_commit", "on", PGC_SUSET, PGC_S_OVERRIDE);

	/* one process per worker of the database */
	LWLockAcquire(le_shared->lock, LW_EXCLUSIVE);
	if (my_slot->dboid != dboid ||
		(me->pid != 0 && me->pid != MyProcPid && kill(me->pid, 0) == 0))
	{
		LWLockRelease(le_shared->lock);
		proc_exit(0);
	}
	me->pid = MyProcPid;
	me->latch = MyLatch;
	LWLockRelease(le_shared->lock);
	before_shmem_exit(worker_detach, 0);

	pass_cxt = AllocSetContextCreate(TopMemoryContext, "lead_enrich pass",
									 ALLOCSET_DEFAULT_SIZES);
	for (int i = 0; i < NROUNDS; i++)
		round_cxt[i] = AllocSetContextCreate(TopMemoryContext, "lead_enrich round",
											 ALLOCSET_DEFAULT_SIZES);
	work_cxt = pass_cxt;
	worker_owner = ResourceOwnerCreate(NULL, "lead_enrich worker");

	set_activity("starting");
	StartTransactionCommand();
	present = extension_present();
	dbname = MemoryContextStrdup(TopMemoryContext, get_database_name(MyDatabaseId));
	my_dbname = dbname;
	CommitTransactionCommand();
	if (!present || !le_database_served(dbname))
	{
		LWLockAcquire(le_shared->lock, LW_EXCLUSIVE);
		my_slot->no_extension = !present;
		LWLockRelease(le_shared->lock);
		proc_exit(0);
	}
	ereport(LOG, (errmsg("lead_enrich worker %d started for database \"%s\"", my_index + 1, dbname)));

	/* leads left pending while no worker ran are due now */
	due = 0;
	for (;;)
	{
		uint32 bits;

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			if (!le_database_served(dbname))
			{
				ereport(LOG, (errmsg("lead_enrich worker exiting: database \"%s\" is no longer in lead_enrich.databases", dbname)));
				proc_exit(0);
			}
			if (my_index >= le_workers_per_database)
			{
				ereport(LOG, (errmsg("lead_enrich worker %d of database \"%s\" exiting: lead_enrich.workers_per_database is %d",
									 my_index + 1, dbname, le_workers_per_database)));
				proc_exit(0);
			}
			/* a shorter interval applies now */
			due = Min(due, TimestampTzPlusMilliseconds(GetCurrentTimestamp(), le_interval_min * 60 * 1000L));
		}
		if (drop_pending())
		{
			ereport(LOG, (errmsg("lead_enrich worker leaving database \"%s\" for a DROP, RENAME or copy of it", dbname)));
			proc_exit(0);
		}
		if (my_slot->stopped)
			proc_exit(0);

		bits = pg_atomic_exchange_u32(&me->wake, 0);
		if (bits != 0 || GetCurrentTimestamp() >= due)
			due = le_citus_next_pass(run_pass(bits));
		set_activity(paused ? "paused" : "idle");

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 TICK_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}
