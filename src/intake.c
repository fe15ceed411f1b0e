/*-------------------------------------------------------------------------
 *
 * intake.c
 *	  New leads on their way to the queue.  The enqueue trigger writes no
 *	  row for a new lead: it appends (database, transaction id, lead id) to
 *	  a list in shared memory, and the worker, at the start of every claim
 *	  (le_intake_collect), takes the entries whose transaction committed:
 *	  those the claim has room for it claims straight away (their first row
 *	  in lead_enrich.lead_state is their batch's, or their outcome), the
 *	  others become 'pending' rows.
 *
 * An INSERT in automatic mode thus costs an append under a lock instead of
 * an INSERT ... ON CONFLICT into a logged, indexed table.  What shared
 * memory loses must be found again:
 *
 *	crash, restart, failover
 *		shared memory is set up empty (after a crash of any backend, the
 *		postmaster sets it up again; a promoted standby never had any).  A
 *		database's first collect after that scans the attached table for
 *		leads that need enriching, have no row in lead_state and an id
 *		above lead_enrich.intake.since_id, the largest id when automatic
 *		mode was switched on (sync_triggers() records it).  Transactions
 *		still running when it scans appended their leads after shared memory
 *		was set up, so they are in the list.
 *	the list is full
 *		the database's further new leads are kept as a range of ids with the
 *		newest transaction that added to it; the range is scanned once no
 *		transaction that may have added to it is still running.
 *	the collect's transaction aborts
 *		the entries it took are gone; an abort callback marks the database
 *		for a scan at the next collect.
 *
 * Whether an entry's transaction committed is decided against one
 * snapshot, the one the collect's statement on the lead table runs with:
 * an entry still running in that snapshot is put back, one that aborted
 * is dropped.  An entry is recorded with the (sub)transaction that inserted
 * the lead, so a rolled-back savepoint enqueues nothing.
 *
 * The collect reads the lead's row as it is now, so the filter is applied
 * once, to current values: an e-mail, not done, no reveal_id, not won,
 * and active (Odoo does not enrich archived leads automatically; a lead
 * made active again is enqueued by the update trigger, trigger.c).
 *
 * Limits, said here once: a lead inserted in automatic mode with an id
 * at or below since_id (an explicit id, or one from a sequence cached by a
 * session since before automatic mode) is found by the collect, but not by
 * the scan after a crash.  Entries of a dropped database stay in the list
 * until the server restarts.  An entry carries its table: those of a table
 * no longer attached are dropped.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "guard.h"
#include "intake.h"
#include "lead_enrich.h"
#include "queue.h"
#include "worker.h"

/* One new lead: its database and table, the (sub)transaction that inserted it. */
typedef struct IntakeEntry
{
	Oid			  dboid;
	Oid			  relid;
	TransactionId xid;
	int64		  id;
} IntakeEntry;

/* A database's state. */
typedef struct IntakeDb
{
	Oid				 dboid;
	bool			 scanned;	/* the scan for lost leads ran since set-up */
	pg_atomic_uint32 lost;		/* a collect's transaction aborted: scan */
	bool			 overflow;	/* leads that did not fit in the list: */
	Oid				 ovf_relid; /* ... their table (the last one seen) */
	int64			 ovf_min;	/* ... their smallest id */
	int64			 ovf_max;	/* ... their largest id */
	TransactionId	 ovf_xid;	/* ... the newest transaction among them */
} IntakeDb;

typedef struct IntakeShared
{
	LWLock	   *lock;
	int			nentries;
	IntakeDb	dbs[LE_MAX_DATABASES];
	IntakeEntry entries[LE_INTAKE_ENTRIES];
} IntakeShared;

static IntakeShared *intake = NULL;

PG_FUNCTION_INFO_V1(lead_enrich_intake_collect);
PG_FUNCTION_INFO_V1(lead_enrich_intake_pending);

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* The database whose entries this transaction took (worker only). */
static IntakeDb *taken_db = NULL;
static int		 taken_nestlevel = 0;
static bool		 callbacks_registered = false;

/*
 * intake_shmem_request: reserve the list and its lock.
 */
static void
intake_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(IntakeShared)));
	RequestNamedLWLockTranche("lead_enrich_intake", 1);
}

/*
 * intake_shmem_startup: set up the list, empty (also after a crash).
 */
static void
intake_shmem_startup(void)
{
	bool found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	intake = ShmemInitStruct("lead_enrich_intake", sizeof(IntakeShared), &found);
	if (!found)
	{
		intake->lock = &(GetNamedLWLockTranche("lead_enrich_intake"))->lock;
		intake->nentries = 0;
		memset(intake->dbs, 0, sizeof(intake->dbs));
		for (int i = 0; i < LE_MAX_DATABASES; i++)
			pg_atomic_init_u32(&intake->dbs[i].lost, 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * le_intake_shmem_init: install the hooks; called from _PG_init while the
 * library is preloaded.  Without it le_intake_add() returns false and the
 * trigger writes lead_state itself.
 */
void
le_intake_shmem_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = intake_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = intake_shmem_startup;
}

/*
 * intake_db: the state of a database, taken when missing (NULL when every
 * slot is taken).  The caller holds the lock exclusively.
 */
static IntakeDb *
intake_db(Oid dboid)
{
	IntakeDb *free_db = NULL;

	for (int i = 0; i < LE_MAX_DATABASES; i++)
	{
		IntakeDb *d = &intake->dbs[i];

		if (d->dboid == dboid)
			return d;
		if (d->dboid == InvalidOid && free_db == NULL)
			free_db = d;
	}
	if (free_db != NULL)
	{
		free_db->dboid = dboid;
		free_db->scanned = false;
		free_db->overflow = false;
		pg_atomic_write_u32(&free_db->lost, 0);
	}
	return free_db;
}

/*
 * range_add: the ids lo .. hi of table relid, xid the newest transaction
 * among them, into the database's overflow range.  A range of another
 * table is the caller's to drop first.  The caller holds the lock
 * exclusively.
 */
static void
range_add(IntakeDb *db, Oid relid, TransactionId xid, int64 lo, int64 hi)
{
	if (!db->overflow)
	{
		db->overflow = true;
		db->ovf_relid = relid;
		db->ovf_min = lo;
		db->ovf_max = hi;
		db->ovf_xid = xid;
	}
	else
	{
		db->ovf_min = Min(db->ovf_min, lo);
		db->ovf_max = Max(db->ovf_max, hi);
		if (TransactionIdFollows(xid, db->ovf_xid))
			db->ovf_xid = xid;
	}
}

/*
 * keep: one entry into the list, or into the database's overflow range
 * when the list is full.  The caller holds the lock exclusively.
 */
static void
keep(IntakeDb *db, Oid relid, TransactionId xid, int64 id)
{
	if (intake->nentries < LE_INTAKE_ENTRIES)
	{
		IntakeEntry *e = &intake->entries[intake->nentries++];

		e->dboid = db->dboid;
		e->relid = relid;
		e->xid = xid;
		e->id = id;
		return;
	}
	/* another table attached meanwhile: its range is all that matters */
	if (db->overflow && db->ovf_relid != relid)
		db->overflow = false;
	range_add(db, relid, xid, id, id);
}

/*
 * le_intake_add: keep new leads of the current (sub)transaction in shared
 * memory.  Returns false when there is none for this database (the
 * library was not preloaded, or every database slot is taken): the caller
 * then writes the queue rows itself.
 */
bool
le_intake_add(Oid relid, const int64 *ids, int n)
{
	TransactionId xid;
	IntakeDb	 *db;

	if (intake == NULL)
		return false;
	xid = GetCurrentTransactionId();
	LWLockAcquire(intake->lock, LW_EXCLUSIVE);
	db = intake_db(MyDatabaseId);
	if (db != NULL)
		for (int i = 0; i < n; i++)
			keep(db, relid, xid, ids[i]);
	LWLockRelease(intake->lock);
	return db != NULL;
}

/*
 * intake_xact_callback / intake_subxact_callback: when the transaction (or
 * the subtransaction) in which a collect took entries aborts, the rows it
 * wrote are gone: the database's next collect scans.
 */
static void
intake_xact_callback(XactEvent event, void *arg)
{
	if (taken_db == NULL)
		return;
	switch (event)
	{
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			pg_atomic_write_u32(&taken_db->lost, 1);
			taken_db = NULL;
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			taken_db = NULL;
			break;
		default:
			break;
	}
}

static void
intake_subxact_callback(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid,
						void *arg)
{
	if (taken_db != NULL && event == SUBXACT_EVENT_ABORT_SUB &&
		GetCurrentTransactionNestLevel() <= taken_nestlevel)
	{
		pg_atomic_write_u32(&taken_db->lost, 1);
		taken_db = NULL;
	}
}

/*
 * needs_filter: the conditions on a lead's current row for it to be
 * enriched automatically (the worker checks them again when it claims).
 */
static char *
needs_filter(LeadTable *lt)
{
	StringInfoData s;
	const char	  *email = lt_col(lt, "email");
	const char	  *c;

	initStringInfo(&s);
	appendStringInfo(&s, "btrim(coalesce(l.%s::text, '')) <> ''", email);
	if ((c = lt_col(lt, "enrich_done")) != NULL)
		appendStringInfo(&s, " AND NOT coalesce(l.%s, false)", c);
	if ((c = lt_col(lt, "reveal_id")) != NULL)
		appendStringInfo(&s, " AND coalesce(l.%s::text, '') = ''", c);
	if ((c = lt_col(lt, "probability")) != NULL)
		appendStringInfo(&s, " AND coalesce(l.%s OPERATOR(pg_catalog.<) 100, true)", c);
	if ((c = lt_col(lt, "active")) != NULL)
		appendStringInfo(&s, " AND coalesce(l.%s, true)", c);
	return s.data;
}

/*
 * Leads read and queued per statement by enqueue_where.  A collect may
 * bring hundreds of thousands of leads at once (one INSERT larger than the
 * shared list, a scan after a restart): read in one statement they took
 * the worker's memory up by their number (about 100 bytes a lead, then
 * kept by malloc), a step that never came down.  In chunks of this many,
 * a collect holds about a megabyte whatever its size.
 */
#define INTAKE_CHUNK 10000

/*
 * The claim's direct leads while collect reads the list and its overflow
 * range (NULL otherwise: the scan, lead_enrich.intake_collect()).
 */
static LeDirect *direct_sink = NULL;

/*
 * insert_pending: the pending rows of the leads ids[0 .. n-1] (int8
 * Datums) with their e-mails, as the extension's owner.  With reset, a
 * lead whose outcome is not final is queued again, as the trigger always
 * did; otherwise an existing row is left alone.  Returns the number of
 * rows written.
 */
static uint64
insert_pending(Datum *ids, Datum *emails, bool *nulls, int n, bool reset)
{
	static SPIPlanPtr ins_reset = NULL;
	static SPIPlanPtr ins_keep = NULL;
	SPIPlanPtr		  plan;
	LeGuard			  g;
	int				  ret;
	int				  dims[1] = {n};
	int				  lbs[1] = {1};
	Datum			  vals[2];
	char			  nullflags[2] = {' ', ' '};

	vals[0] = PointerGetDatum(construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	vals[1] = PointerGetDatum(construct_md_array(emails, nulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
	le_guard_extension(&g);
	plan = reset ? ins_reset : ins_keep;
	if (plan == NULL)
	{
		Oid			arrtypes[2] = {INT8ARRAYOID, TEXTARRAYOID};
		const char *base =
			"INSERT INTO lead_enrich.lead_state AS s "
			"(lead_id, status, email, source, attempts, updated_at) "
			"SELECT u.id, 'pending', u.email, 'worker', 0, now() FROM unnest($1, $2) AS u(id, email) ";

		if (reset)
			plan = ins_reset = le_keep_plan(
				psprintf("%s%s", base, queue_requeue_clause()),
				2, arrtypes);
		else
			plan = ins_keep = le_keep_plan(psprintf("%s ON CONFLICT (lead_id) DO NOTHING", base), 2, arrtypes);
	}
	ret = SPI_execute_plan(plan, vals, nullflags, false, 0);
	le_guard_end(&g);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not enqueue new leads: %s", SPI_result_code_string(ret));
	return SPI_processed;
}

/*
 * take_direct: move to direct_sink, up to what it has room for, the leads
 * of ids[0 .. n-1] (with their e-mails) that have no row in lead_state;
 * returns the number left in the arrays, compacted in place.  One lead
 * with a row (an outcome, a batch, a pending row) takes the usual path:
 * what the requeue rule says of it is the INSERT's.
 */
static int
take_direct(Datum *ids, Datum *emails, bool *nulls, int n)
{
	static SPIPlanPtr plan = NULL;
	LeDirect		 *d = direct_sink;
	MemoryContext	  caller = CurrentMemoryContext;
	MemoryContext	  cxt = GetMemoryChunkContext(d->leads);
	bool			 *taken = palloc0(sizeof(bool) * n);
	Datum			  vals[2];
	LeGuard			  g;
	int				  ret;
	int				  left = 0;

	vals[0] = PointerGetDatum(construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	vals[1] = Int32GetDatum(d->cap - d->n);
	le_guard_extension(&g);
	if (plan == NULL)
	{
		Oid types[2] = {INT8ARRAYOID, INT4OID};

		plan = le_keep_plan("SELECT u.o::int4 FROM unnest($1) WITH ORDINALITY AS u(id, o) "
							"WHERE NOT EXISTS (SELECT 1 FROM lead_enrich.lead_state s "
							"WHERE s.lead_id OPERATOR(pg_catalog.=) u.id) ORDER BY u.o LIMIT $2",
							2, types);
	}
	ret = SPI_execute_plan(plan, vals, NULL, true, 0);
	le_guard_end(&g);
	/* SPI calls leave SPI's context current: the caller's again */
	MemoryContextSwitchTo(caller);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not look for new leads' rows: %s", SPI_result_code_string(ret));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool isnull;
		int	 i = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull)) - 1;

		taken[i] = true;
		d->leads[d->n].id = DatumGetInt64(ids[i]);
		d->leads[d->n++].email = nulls[i] ? NULL : MemoryContextStrdup(cxt, TextDatumGetCString(emails[i]));
	}
	SPI_freetuptable(SPI_tuptable);
	for (int i = 0; i < n; i++)
	{
		if (taken[i])
			continue;
		ids[left] = ids[i];
		emails[left] = emails[i];
		nulls[left++] = nulls[i];
	}
	return left;
}

/*
 * enqueue_chunk: queue the leads of one chunk read by enqueue_where (in
 * SPI_tuptable), or hand them to the claim (direct_sink); returns the
 * number queued and sets *last to the largest id read.  Allocates in the
 * current memory context, which the caller resets.
 */
static uint64
enqueue_chunk(bool reset, int64 *last)
{
	int	   n = (int) SPI_processed;
	Datum *ids = palloc(sizeof(Datum) * n);
	Datum *emails = palloc(sizeof(Datum) * n);
	bool  *nulls = palloc(sizeof(bool) * n);

	for (int i = 0; i < n; i++)
	{
		bool  isnull;
		char *e;

		ids[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		e = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		nulls[i] = e == NULL;
		emails[i] = e ? CStringGetTextDatum(e) : (Datum) 0;
	}
	/* read in the order of the ids: the last is the largest */
	*last = DatumGetInt64(ids[n - 1]);
	SPI_freetuptable(SPI_tuptable);

	if (direct_sink != NULL && direct_sink->n < direct_sink->cap)
		n = take_direct(ids, emails, nulls, n);
	if (n == 0)
		return 0;
	return insert_pending(ids, emails, nulls, n, reset);
}

/*
 * le_intake_enqueue: see intake.h.  The pending rows of direct leads the
 * claim did not take (locked elsewhere, or its statements failed).
 */
void
le_intake_enqueue(const LeDirectLead *leads, int n)
{
	Datum *ids;
	Datum *emails;
	bool  *nulls;

	if (n == 0)
		return;
	ids = palloc(sizeof(Datum) * n);
	emails = palloc(sizeof(Datum) * n);
	nulls = palloc(sizeof(bool) * n);
	for (int i = 0; i < n; i++)
	{
		ids[i] = Int64GetDatum(leads[i].id);
		nulls[i] = leads[i].email == NULL;
		emails[i] = leads[i].email ? CStringGetTextDatum(leads[i].email) : (Datum) 0;
	}
	(void) insert_pending(ids, emails, nulls, n, true);
}

/*
 * cmp_direct: LeDirectLead by id.
 */
static int
cmp_direct(const void *a, const void *b)
{
	int64 x = ((const LeDirectLead *) a)->id;
	int64 y = ((const LeDirectLead *) b)->id;

	return (x > y) - (x < y);
}

/*
 * le_direct_find: the direct lead id, or NULL.
 */
LeDirectLead *
le_direct_find(LeDirect *direct, int64 id)
{
	LeDirectLead key = {id, NULL};

	if (direct == NULL || direct->n == 0)
		return NULL;
	return bsearch(&key, direct->leads, direct->n, sizeof(LeDirectLead), cmp_direct);
}

/*
 * enqueue_where: enqueue the leads of the attached table matching "cond"
 * (over l, with parameters $1 .. $nargs of the given types) that need
 * enriching, as read in snap, INTAKE_CHUNK at a time in the order of their
 * ids.  The table is read as its owner (the worker acts for the owner),
 * lead_state written as the extension's owner.  With reset, a lead whose
 * outcome is not final is queued again, as the trigger always did;
 * otherwise an existing outcome is left alone.  With max_read above 0, at
 * most that many leads are read: *stopped_at is then the largest id read
 * when leads may be left above it, else PG_INT64_MIN.
 *
 * With range (cond bounds the ids by a range: the overflow range, the scan
 * after a restart), each chunk is read in the order of the id index,
 * sorting disabled while it is planned.  The planner cannot estimate the
 * filter (coalesce() over the columns, and its statistics describe the
 * old leads, nearly all done, not the new ones of the range): it expected
 * a few rows, so the LIMIT would stop nothing, and picked a bitmap scan and
 * a sort of the whole range, at every chunk: a claim that took 2,000 leads
 * of a range of 100,000 read the 100,000, and a large INSERT was enriched
 * several times slower than small ones.  A table with no index on its id
 * column is read as before (every plan sorts).
 *
 * Returns the number queued.
 */
static uint64
enqueue_where(LeadTable *lt, Snapshot snap, const char *cond, int nargs, Oid *types, Datum *args,
			  bool range, bool reset, uint64 max_read, int64 *stopped_at)
{
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext chunk_cxt;
	const char	 *id = lt_col(lt, "id");
	Oid			 *ptypes = palloc(sizeof(Oid) * (nargs + 2));
	Datum		 *pargs = palloc(sizeof(Datum) * (nargs + 2));
	SPIPlanPtr	  plan;
	LeGuard		  g;
	char		 *sql;
	int64		  last = PG_INT64_MIN;
	uint64		  queued = 0;
	uint64		  nread;
	uint64		  total = 0;
	uint64		  want;

	memcpy(ptypes, types, sizeof(Oid) * nargs);
	memcpy(pargs, args, sizeof(Datum) * nargs);
	ptypes[nargs] = INT8OID;
	ptypes[nargs + 1] = INT8OID;
	sql = psprintf("SELECT DISTINCT ON (l.%1$s) l.%1$s::int8, l.%2$s::text FROM %3$s l "
				   "WHERE (%4$s) AND %5$s AND l.%1$s OPERATOR(pg_catalog.>) $%6$d "
				   "ORDER BY l.%1$s LIMIT $%7$d",
				   id, lt_col(lt, "email"), lt->qualname, cond, needs_filter(lt),
				   nargs + 1, nargs + 2);
	le_guard_crm(&g, lt);
	plan = SPI_prepare(sql, nargs + 2, ptypes);
	le_guard_end(&g);
	if (plan == NULL)
		elog(ERROR, "could not prepare the intake scan: %s", SPI_result_code_string(SPI_result));
	chunk_cxt = AllocSetContextCreate(caller, "lead_enrich intake chunk", ALLOCSET_DEFAULT_SIZES);
	do
	{
		int ret;

		/* a chunk, or what is left of max_read; the leads, as their owner */
		want = max_read > 0 ? Min(max_read - total, INTAKE_CHUNK) : INTAKE_CHUNK;
		pargs[nargs] = Int64GetDatum(last);
		pargs[nargs + 1] = Int64GetDatum((int64) want);
		le_guard_crm(&g, lt);
		/* the guard's own GUC nest level restores it */
		if (range)
			(void) set_config_option("enable_sort", "off", PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_SAVE, true, 0, false);
		ret = SPI_execute_snapshot(plan, pargs, NULL, snap, InvalidSnapshot, true, false, 0);
		le_guard_end(&g);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read new leads: %s", SPI_result_code_string(ret));
		nread = SPI_processed;
		total += nread;
		if (nread > 0)
		{
			/* SPI calls leave SPI's context current: allocate in the chunk's */
			MemoryContextSwitchTo(chunk_cxt);
			queued += enqueue_chunk(reset, &last);
			MemoryContextSwitchTo(caller);
			MemoryContextReset(chunk_cxt);
		}
		else
			SPI_freetuptable(SPI_tuptable);
	} while (nread == want && (max_read == 0 || total < max_read));
	if (stopped_at != NULL)
		*stopped_at = nread == want ? last : PG_INT64_MIN;
	MemoryContextSwitchTo(caller);
	MemoryContextDelete(chunk_cxt);
	SPI_freeplan(plan);
	return queued;
}

/*
 * prepared_xacts: whether this database has prepared transactions.
 */
static bool
prepared_xacts(void)
{
	LeGuard g;
	int		ret;
	bool	isnull;
	bool	any;

	le_guard_extension(&g);
	ret = SPI_execute("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_xacts "
					  "WHERE database = pg_catalog.current_database())",
					  true, 1);
	le_guard_end(&g);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read pg_prepared_xacts: %s", SPI_result_code_string(ret));
	any = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return any;
}

/*
 * scan_since: the largest id when automatic mode was switched on for the
 * attached table, or false when none is recorded.
 */
static bool
scan_since(LeadTable *lt, int64 *since)
{
	Oid		argtype = OIDOID;
	Datum	arg = ObjectIdGetDatum(lt->relid);
	LeGuard g;
	int		ret;
	bool	isnull;

	le_guard_extension(&g);
	ret = SPI_execute_with_args("SELECT since_id FROM lead_enrich.intake WHERE lead_table = $1",
								1, &argtype, &arg, NULL, true, 1);
	le_guard_end(&g);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read lead_enrich.intake: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		return false;
	*since = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return !isnull;
}

/* What take_entries does with an entry of the list. */
typedef enum EntryFate
{
	ENTRY_KEEP = 0, /* stays in the list */
	ENTRY_TAKE,		/* committed: queued by this collect */
	ENTRY_DROP		/* aborted, or of a table no longer attached */
} EntryFate;

/*
 * take_entries: this database's committed entries of table relid, the
 * newest first, at most budget of them (0: no bound), removed from the
 * list into ids; the entries still running in snap (this transaction's
 * included) stay, those aborted or of another table are dropped.  Once the
 * budget is spent the older entries are left as they are (the lock is held
 * no longer than that takes) and *left is set.  Returns the number of ids.
 * The newest go first so that a lead inserted one by one behind a large
 * INSERT is not queued after all of it.  The caller holds the lock
 * exclusively.
 */
static int
take_entries(Oid relid, Snapshot snap, int budget, Datum *ids, bool *left)
{
	uint8		 *fate = palloc0(Max(intake->nentries, 1));
	TransactionId last_xid = InvalidTransactionId;
	bool		  last_done = false;
	bool		  last_committed = false;
	int			  nids = 0;
	int			  start = 0; /* the entries before it stay as they are */
	int			  j;

	for (int i = intake->nentries - 1; i >= 0; i--)
	{
		IntakeEntry *e = &intake->entries[i];

		if (e->dboid != MyDatabaseId)
			continue;
		/* the rest is the next collect's to sort out */
		if (budget > 0 && nids == budget)
		{
			*left = true;
			start = i + 1;
			break;
		}
		if (e->relid != relid)
		{
			fate[i] = ENTRY_DROP;
			continue;
		}
		if (e->xid != last_xid)
		{
			last_xid = e->xid;
			/* a snapshot leaves out its own transaction: still running too */
			last_done = !XidInMVCCSnapshot(e->xid, snap) &&
						!TransactionIdIsCurrentTransactionId(e->xid);
			last_committed = last_done && TransactionIdDidCommit(e->xid);
		}
		if (!last_done)
			continue;
		if (!last_committed)
			fate[i] = ENTRY_DROP;
		else
		{
			fate[i] = ENTRY_TAKE;
			ids[nids++] = Int64GetDatum(e->id);
		}
	}
	j = start;
	for (int i = start; i < intake->nentries; i++)
		if (fate[i] == ENTRY_KEEP)
			intake->entries[j++] = intake->entries[i];
	intake->nentries = j;
	pfree(fate);
	return nids;
}

/*
 * collect: see le_intake_collect and the file comment; returns the number
 * of leads queued.  budget bounds the leads read from the list and its
 * overflow range (0: no bound); *left is set when leads were left for the
 * next collect.  With update_snapshot, the caller's active snapshot (one of
 * its own, as the worker's) is made to see them.  lt: the attached table as
 * read in this transaction, or NULL.  direct: see le_intake_collect (NULL:
 * every lead read gets its pending row).
 */
static uint64
collect(LeadTable *lt, bool update_snapshot, int budget, bool *left, LeDirect *direct)
{
	Snapshot	  snap;
	IntakeDb	 *db;
	Datum		 *ids;
	int			  nids = 0;
	bool		  scan;
	bool		  ovf = false;
	int64		  ovf_min = 0;
	int64		  ovf_max = 0;
	TransactionId ovf_xid = InvalidTransactionId;
	uint64		  queued = 0;
	int64		  since;

	*left = false;
	direct_sink = NULL;
	if (intake == NULL)
		return 0;
	if (lt == NULL)
		lt = lead_table_load(true);
	if (lt == NULL || lt->missing != NULL)
		return 0;
	if (!callbacks_registered)
	{
		RegisterXactCallback(intake_xact_callback, NULL);
		RegisterSubXactCallback(intake_subxact_callback, NULL);
		callbacks_registered = true;
	}

	snap = RegisterSnapshot(GetTransactionSnapshot());

	/*
	 * Take this database's committed entries, the newest first, within the
	 * budget (which transactions committed is decided against snap, under
	 * the lock); then its overflow range, once complete, with what is left
	 * of the budget.  The list first: taking from it makes room at once
	 * for the leads inserted next, which a range would keep behind the
	 * rest of a large INSERT.
	 */
	LWLockAcquire(intake->lock, LW_EXCLUSIVE);
	db = intake_db(MyDatabaseId);
	if (db == NULL)
	{
		LWLockRelease(intake->lock);
		UnregisterSnapshot(snap);
		return 0;
	}
	scan = !db->scanned || pg_atomic_exchange_u32(&db->lost, 0) != 0;
	db->scanned = true;
	ids = palloc(sizeof(Datum) * Max(budget > 0 ? Min(budget, intake->nentries) : intake->nentries, 1));
	nids = take_entries(lt->relid, snap, budget, ids, left);
	if (db->overflow && TransactionIdPrecedes(db->ovf_xid, snap->xmin))
	{
		if (db->ovf_relid != lt->relid)
			db->overflow = false;
		else if (budget == 0 || nids < budget)
		{
			ovf = true;
			ovf_min = db->ovf_min;
			ovf_max = db->ovf_max;
			ovf_xid = db->ovf_xid;
			db->overflow = false;
		}
		else
			*left = true;
	}
	taken_db = db;
	taken_nestlevel = GetCurrentTransactionNestLevel();
	LWLockRelease(intake->lock);

	/* the list's leads, a chunk of ids at a time; then the range's */
	direct_sink = direct;
	for (int i = 0; i < nids; i += INTAKE_CHUNK)
	{
		Datum arg = PointerGetDatum(construct_array(ids + i, Min(INTAKE_CHUNK, nids - i), INT8OID,
													8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		Oid	  t = INT8ARRAYOID;

		queued += enqueue_where(lt, snap, psprintf("l.%s = ANY ($1)", lt_col(lt, "id")), 1, &t, &arg,
								false, true, 0, NULL);
	}
	if (ovf)
	{
		Datum args[2] = {Int64GetDatum(ovf_min), Int64GetDatum(ovf_max)};
		Oid	  t[2] = {INT8OID, INT8OID};
		int64 last;

		queued += enqueue_where(lt, snap, psprintf("l.%s BETWEEN $1 AND $2", lt_col(lt, "id")), 2, t, args,
								true, false, budget > 0 ? budget - nids : 0, &last);
		/*
		 * the range's rest, put back for the next collect (unless another
		 * table was attached since: its range is all that matters)
		 */
		if (last != PG_INT64_MIN && last < ovf_max)
		{
			LWLockAcquire(intake->lock, LW_EXCLUSIVE);
			if (!db->overflow || db->ovf_relid == lt->relid)
				range_add(db, lt->relid, ovf_xid, last + 1, ovf_max);
			LWLockRelease(intake->lock);
			*left = true;
		}
	}
	direct_sink = NULL;
	if (direct != NULL && direct->n > 1)
	{
		int n = 1;

		/* by id, once each (a lead updated after its INSERT has two entries) */
		qsort(direct->leads, direct->n, sizeof(LeDirectLead), cmp_direct);
		for (int i = 1; i < direct->n; i++)
			if (direct->leads[i].id != direct->leads[n - 1].id)
				direct->leads[n++] = direct->leads[i];
		direct->n = n;
	}
	if (scan && scan_since(lt, &since))
	{
		Datum  arg = Int64GetDatum(since);
		Oid	   t = INT8OID;
		uint64 found = enqueue_where(lt, snap, psprintf("l.%s > $1", lt_col(lt, "id")), 1, &t, &arg,
									 true, false, 0, NULL);

		/*
		 * A prepared transaction survives a restart, its leads in shared
		 * memory do not, and this scan cannot see them: scan again at the
		 * next collect while there is one.
		 */
		if (prepared_xacts())
			pg_atomic_write_u32(&db->lost, 1);
		ereport(LOG,
				(errmsg("lead_enrich: scanned %s for new leads the shared list may have lost: %llu queued",
						lt->qualname, (unsigned long long) found),
				 errdetail("Leads with an id above %lld that need enriching and have no outcome.",
						   (long long) since)));
		queued += found;
	}
	UnregisterSnapshot(snap);

	/* the caller's statements see the rows written here */
	if (queued > 0)
	{
		CommandCounterIncrement();
		if (update_snapshot && ActiveSnapshotSet())
			UpdateActiveSnapshotCommandId();
	}
	return queued;
}

/*
 * The new leads a claim collects at most when it takes none directly (its
 * round is full of batches sent again).  After an INSERT of 100,000 leads
 * the first claim used to queue all of them (0.8 to 0.9 s on the bench's
 * machine) before anything was sent, the other worker and the provider
 * waiting; and while the list was left full, a lead inserted next went to
 * the overflow range, behind the rest.  A claim that takes new leads
 * directly collects what its round has room for: the rest stays in the
 * list, the newest taken first by the next claim, this worker's or
 * another's.
 */
#define COLLECT_BUDGET 2000

/*
 * le_intake_collect: see intake.h.
 */
uint64
le_intake_collect(LeadTable *lt, bool *left, LeDirect *direct)
{
	if (direct != NULL && direct->cap > 0)
		return collect(lt, true, direct->cap, left, direct);
	return collect(lt, true, COLLECT_BUDGET, left, NULL);
}

/*
 * lead_enrich.intake_collect(): what the worker does at the start of every
 * claim, on demand: for tests, and before a planned switchover while the
 * worker is stopped.  Returns the number of leads queued.
 */
Datum
lead_enrich_intake_collect(PG_FUNCTION_ARGS)
{
	uint64 n;
	bool   left;

	if (intake == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("new leads are not kept in shared memory"),
				 errdetail("lead_enrich is not in shared_preload_libraries: the trigger queues them itself."),
				 errhint("Add lead_enrich to shared_preload_libraries and restart the server.")));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	n = collect(NULL, false, 0, &left, NULL);
	SPI_finish();
	PG_RETURN_INT64((int64) n);
}

/*
 * lead_enrich.intake_pending(): how many new leads of this database wait
 * in shared memory, committed (the status view adds them to "pending").
 * Leads that turn out to need no enrichment are counted too.
 */
Datum
lead_enrich_intake_pending(PG_FUNCTION_ARGS)
{
	Snapshot	  snap;
	int64		  n = 0;
	TransactionId last_xid = InvalidTransactionId;
	bool		  last_committed = false;

	if (intake == NULL)
		PG_RETURN_INT64(0);
	snap = GetActiveSnapshot();
	LWLockAcquire(intake->lock, LW_SHARED);
	for (int i = 0; i < intake->nentries; i++)
	{
		IntakeEntry *e = &intake->entries[i];

		if (e->dboid != MyDatabaseId || XidInMVCCSnapshot(e->xid, snap))
			continue;
		if (e->xid != last_xid)
		{
			last_xid = e->xid;
			last_committed = TransactionIdDidCommit(e->xid);
		}
		if (last_committed)
			n++;
	}
	for (int i = 0; i < LE_MAX_DATABASES; i++)
		if (intake->dbs[i].dboid == MyDatabaseId && intake->dbs[i].overflow)
			n += intake->dbs[i].ovf_max - intake->dbs[i].ovf_min + 1;
	LWLockRelease(intake->lock);
	PG_RETURN_INT64(n);
}
