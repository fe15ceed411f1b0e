/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  Shared memory of the background workers: one slot per database with
 *	  the worker's pid, latch and status; the wake-up at commit; the SQL
 *	  functions that wake, start and stop a database's worker.
 *
 * A transaction that enqueues leads asks for a wake-up (le_wake_at_commit);
 * a transaction callback sets the worker's latch when the transaction
 * commits, once however many rows it enqueued, and never when it aborts.
 * As in pg_net, the latch lives in the worker's PGPROC, so the pointer in
 * shared memory is always valid memory: at worst it wakes a process that
 * took over the PGPROC, which is harmless.
 *
 * Everything here works without shared_preload_libraries too: le_shared
 * is then NULL, enqueued leads simply wait for a worker, and the SQL
 * functions say why nothing happens.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "lead_enrich.h"
#include "worker.h"

PG_FUNCTION_INFO_V1(lead_enrich_wake);
PG_FUNCTION_INFO_V1(lead_enrich_worker_start);
PG_FUNCTION_INFO_V1(lead_enrich_worker_stop);
PG_FUNCTION_INFO_V1(lead_enrich_worker_info);

LeShared *le_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static bool wake_pending = false;
static bool xact_callback_registered = false;

/*
 * le_shmem_request: reserve our struct and one LWLock.
 */
static void
le_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(LeShared)));
	RequestNamedLWLockTranche("lead_enrich", 1);
}

/*
 * le_shmem_startup: create (or, after a crash, recreate) the struct.
 */
static void
le_shmem_startup(void)
{
	bool found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	le_shared = ShmemInitStruct("lead_enrich", sizeof(LeShared), &found);
	if (!found)
	{
		memset(le_shared, 0, sizeof(LeShared));
		le_shared->lock = &(GetNamedLWLockTranche("lead_enrich"))->lock;
		for (int i = 0; i < LE_MAX_DATABASES; i++)
			pg_atomic_init_u32(&le_shared->slots[i].wake, 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * le_shmem_init: install the hooks; called from _PG_init while the
 * library is preloaded.
 */
void
le_shmem_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = le_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = le_shmem_startup;
}

/*
 * le_slot_find: the slot of a database, or NULL.  With create, a free slot
 * is taken for it (NULL when all are taken).  The caller holds the lock
 * exclusively when create is true, at least shared otherwise.
 */
LeDbSlot *
le_slot_find(Oid dboid, bool create)
{
	LeDbSlot *free_slot = NULL;

	if (le_shared == NULL)
		return NULL;
	for (int i = 0; i < LE_MAX_DATABASES; i++)
	{
		LeDbSlot *s = &le_shared->slots[i];

		if (s->dboid == dboid)
			return s;
		if (s->dboid == InvalidOid && free_slot == NULL)
			free_slot = s;
	}
	if (!create || free_slot == NULL)
		return NULL;
	memset(free_slot, 0, sizeof(LeDbSlot));
	pg_atomic_init_u32(&free_slot->wake, 0);
	free_slot->dboid = dboid;
	strlcpy(free_slot->activity, "not started", sizeof(free_slot->activity));
	return free_slot;
}

/*
 * le_slot_set_activity: what the worker is doing, for the status view.
 */
void
le_slot_set_activity(LeDbSlot *slot, const char *activity)
{
	LWLockAcquire(le_shared->lock, LW_EXCLUSIVE);
	strlcpy(slot->activity, activity, sizeof(slot->activity));
	LWLockRelease(le_shared->lock);
}

/*
 * le_request_worker: ask the launcher to start the database's worker (it
 * ignores the request while the worker runs or was stopped).
 */
void
le_request_worker(Oid dboid)
{
	LeDbSlot *slot;
	Latch	 *launcher = NULL;

	if (le_shared == NULL)
		return;
	LWLockAcquire(le_shared->lock, LW_EXCLUSIVE);
	slot = le_slot_find(dboid, true);
	if (slot != NULL)
		slot->requested = true;
	launcher = le_shared->launcher_latch;
	LWLockRelease(le_shared->lock);
	if (launcher != NULL)
		SetLatch(launcher);
}

/*
 * wake_worker: set the wake bits and the latch of the database's worker;
 * when none runs, ask the launcher for one.  Returns whether a worker
 * was running.
 */
static bool
wake_worker(Oid dboid, uint32 bits)
{
	LeDbSlot *slot;
	Latch	 *latch = NULL;
	bool	  stopped = false;

	if (le_shared == NULL)
		return false;
	LWLockAcquire(le_shared->lock, LW_SHARED);
	slot = le_slot_find(dboid, false);
	if (slot != NULL)
	{
		pg_atomic_fetch_or_u32(&slot->wake, bits);
		if (slot->pid != 0)
			latch = slot->latch;
		stopped = slot->stopped;
	}
	LWLockRelease(le_shared->lock);
	if (latch != NULL)
	{
		SetLatch(latch);
		return true;
	}
	if (!stopped)
		le_request_worker(dboid);
	return false;
}

/*
 * le_xact_callback: wake the worker when a transaction that enqueued
 * leads commits.  Nothing here may fail: the transaction is committed.
 */
static void
le_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (wake_pending)
			{
				wake_pending = false;
				wake_worker(MyDatabaseId, LE_WAKE_COMMIT);
			}
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_ABORT:
			/* a prepared transaction is picked up by the periodic pass */
			wake_pending = false;
			break;
		default:
			break;
	}
}

/*
 * le_wake_at_commit: wake this database's worker when the current
 * transaction commits.  Cheap: a flag, and the callback is registered
 * once per process.
 */
void
le_wake_at_commit(void)
{
	if (le_shared == NULL)
		return;
	if (!xact_callback_registered)
	{
		RegisterXactCallback(le_xact_callback, NULL);
		xact_callback_registered = true;
	}
	wake_pending = true;
}

/*
 * require_shared: an error when the library was not preloaded.
 */
static void
require_shared(void)
{
	if (le_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the lead_enrich background worker is not available"),
				 errdetail("lead_enrich is not in shared_preload_libraries."),
				 errhint("Add lead_enrich to shared_preload_libraries and restart the server.")));
}

/*
 * lead_enrich.wake(): make this database's worker run a pass now; also
 * ends a pause for lack of credits if the balance allows.  Returns whether
 * a worker was running (otherwise one is requested from the launcher).
 */
Datum
lead_enrich_wake(PG_FUNCTION_ARGS)
{
	if (le_shared == NULL)
	{
		ereport(WARNING,
				(errmsg("the lead_enrich background worker is not available"),
				 errdetail("lead_enrich is not in shared_preload_libraries.")));
		PG_RETURN_BOOL(false);
	}
	PG_RETURN_BOOL(wake_worker(MyDatabaseId, LE_WAKE_EXPLICIT));
}

/*
 * wait_for_pid: poll the slot until its pid is (or is no longer) set, for
 * at most ten seconds.  Returns the pid seen last.
 */
static pid_t
wait_for_pid(LeDbSlot *slot, bool running)
{
	pid_t pid = 0;

	for (int i = 0; i < 100; i++)
	{
		LWLockAcquire(le_shared->lock, LW_SHARED);
		pid = slot->pid;
		LWLockRelease(le_shared->lock);
		if ((pid != 0) == running)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	return pid;
}

/*
 * lead_enrich.worker_start(): start this database's worker (again, after
 * worker_stop()).  Returns its pid, or NULL if it did not start within ten
 * seconds (see the server log).
 */
Datum
lead_enrich_worker_start(PG_FUNCTION_ARGS)
{
	LeDbSlot *slot;
	pid_t	  pid;

	require_shared();
	LWLockAcquire(le_shared->lock, LW_EXCLUSIVE);
	if (le_shared->launcher_pid == 0)
	{
		LWLockRelease(le_shared->lock);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the lead_enrich launcher is not running"),
				 errhint("Check the server log; the postmaster restarts it after a crash.")));
	}
	slot = le_slot_find(MyDatabaseId, true);
	if (slot == NULL)
	{
		LWLockRelease(le_shared->lock);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("the lead_enrich launcher already serves %d databases", LE_MAX_DATABASES),
				 errhint("List the databases to serve in lead_enrich.databases.")));
	}
	slot->stopped = false;
	slot->no_extension = false;
	LWLockRelease(le_shared->lock);
	le_request_worker(MyDatabaseId);
	pid = wait_for_pid(slot, true);
	if (pid == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT32(pid);
}

/*
 * lead_enrich.worker_stop(): stop this database's worker until
 * worker_start() or the next server start.  A request in flight is
 * abandoned; its leads stay pending.  Returns whether one was running.
 */
Datum
lead_enrich_worker_stop(PG_FUNCTION_ARGS)
{
	LeDbSlot *slot;
	pid_t	  pid = 0;

	require_shared();
	LWLockAcquire(le_shared->lock, LW_EXCLUSIVE);
	slot = le_slot_find(MyDatabaseId, true);
	if (slot != NULL)
	{
		slot->stopped = true;
		pid = slot->pid;
	}
	LWLockRelease(le_shared->lock);
	if (pid == 0)
		PG_RETURN_BOOL(false);
	if (kill(pid, SIGTERM) != 0)
		ereport(WARNING,
				(errmsg("could not signal the lead_enrich worker (pid %d): %m", (int) pid)));
	wait_for_pid(slot, false);
	PG_RETURN_BOOL(true);
}

/*
 * lead_enrich.worker_info(): this database's worker as shared memory has
 * it; one row, NULLs where nothing is known.
 */
Datum
lead_enrich_worker_info(PG_FUNCTION_ARGS)
{
	TupleDesc desc;
	Datum	  values[12];
	bool	  nulls[12];
	LeDbSlot  copy;
	LeDbSlot *slot = NULL;
	bool	  launcher = false;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	memset(nulls, true, sizeof(nulls));

	if (le_shared != NULL)
	{
		LWLockAcquire(le_shared->lock, LW_SHARED);
		launcher = le_shared->launcher_pid != 0;
		slot = le_slot_find(MyDatabaseId, false);
		if (slot != NULL)
			memcpy(&copy, slot, sizeof(LeDbSlot));
		LWLockRelease(le_shared->lock);
	}
	values[0] = BoolGetDatum(le_shared != NULL && launcher);
	nulls[0] = false;
	if (slot != NULL)
	{
		if (copy.pid != 0)
		{
			values[1] = Int32GetDatum(copy.pid);
			nulls[1] = false;
		}
		values[2] = CStringGetTextDatum(copy.pid != 0 ? copy.activity : copy.stopped	? "stopped"
																	: copy.no_extension ? "no extension"
																						: "not running");
		nulls[2] = false;
#define TS(i, v) \
	do \
	{ \
		if ((v) != 0) \
		{ \
			values[i] = TimestampTzGetDatum(v); \
			nulls[i] = false; \
		} \
	} while (0)
#define TXT(i, v) \
	do \
	{ \
		if ((v)[0] != '\0') \
		{ \
			values[i] = CStringGetTextDatum(v); \
			nulls[i] = false; \
		} \
	} while (0)
		TS(3, copy.started_at);
		TS(4, copy.last_run);
		values[5] = Int64GetDatum(copy.runs);
		nulls[5] = false;
		values[6] = Int64GetDatum(copy.requests);
		nulls[6] = false;
		TXT(7, copy.last_error);
		TS(8, copy.last_error_at);
		TS(9, copy.paused_since);
		TXT(10, copy.pause_reason);
#undef TS
#undef TXT
		values[11] = BoolGetDatum(copy.stopped);
		nulls[11] = false;
	}
	else
	{
		values[2] = CStringGetTextDatum(le_shared == NULL ? "not preloaded" : "not running");
		nulls[2] = false;
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
