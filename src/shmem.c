/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  Shared memory of the background workers: one slot per database with
 *	  the worker's pid, latch and status, and the wake-up at commit.  The
 *	  SQL functions that steer a worker are in worker_ctl.c.
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
			le_slot_clear(&le_shared->slots[i]);
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
 * le_slot_clear: a free database slot.
 */
void
le_slot_clear(LeDbSlot *slot)
{
	memset(slot, 0, sizeof(LeDbSlot));
	for (int k = 0; k < LE_MAX_WORKERS; k++)
	{
		pg_atomic_init_u32(&slot->workers[k].wake, 0);
		strlcpy(slot->workers[k].activity, "not started", sizeof(slot->workers[k].activity));
	}
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
	le_slot_clear(free_slot);
	free_slot->dboid = dboid;
	return free_slot;
}

/*
 * le_slot_set_activity: what the worker is doing, for the status view.
 */
void
le_slot_set_activity(LeWorkerSlot *w, const char *activity)
{
	LWLockAcquire(le_shared->lock, LW_EXCLUSIVE);
	strlcpy(w->activity, activity, sizeof(w->activity));
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
 * wake_workers: set the wake bits of the database's workers but skip (NULL:
 * all), and the latches of those running.  Returns how many run; *stopped
 * whether worker_stop() was called.
 */
static int
wake_workers(Oid dboid, uint32 bits, const LeWorkerSlot *skip, bool *stopped)
{
	LeDbSlot *slot;
	Latch	 *latches[LE_MAX_WORKERS];
	int		  nlatches = 0;

	*stopped = false;
	LWLockAcquire(le_shared->lock, LW_SHARED);
	slot = le_slot_find(dboid, false);
	for (int k = 0; slot != NULL && k < LE_MAX_WORKERS; k++)
	{
		LeWorkerSlot *w = &slot->workers[k];

		if (w == skip)
			continue;
		pg_atomic_fetch_or_u32(&w->wake, bits);
		if (w->pid != 0 && w->latch != NULL)
			latches[nlatches++] = w->latch;
	}
	if (slot != NULL)
		*stopped = slot->stopped;
	LWLockRelease(le_shared->lock);
	for (int k = 0; k < nlatches; k++)
		SetLatch(latches[k]);
	return nlatches;
}

/*
 * le_wake_worker: wake the database's workers; when none runs, ask the
 * launcher for them.  Returns whether a worker was running.
 */
bool
le_wake_worker(Oid dboid, uint32 bits)
{
	bool stopped;

	if (le_shared == NULL)
		return false;
	if (wake_workers(dboid, bits, NULL, &stopped) > 0)
		return true;
	if (!stopped)
		le_request_worker(dboid);
	return false;
}

/*
 * le_wake_others: wake the database's other workers (for leads a worker's
 * claim has just made visible to them).
 */
void
le_wake_others(Oid dboid, const LeWorkerSlot *self)
{
	bool stopped;

	(void) wake_workers(dboid, LE_WAKE_COMMIT, self, &stopped);
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
				le_wake_worker(MyDatabaseId, LE_WAKE_COMMIT);
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
