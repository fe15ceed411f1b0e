/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The launcher of automatic enrichment's per-database workers.
 *
 * The launcher is a static background worker (shared_preload_libraries)
 * connected to no database, as the logical replication launcher is.  It
 * reads pg_database and starts lead_enrich.workers_per_database dynamic
 * workers per database (those in lead_enrich.databases, or all), as
 * autoprewarm and pg_cron do; a worker that finds no extension says so and
 * leaves, and its database is probed again after lead_enrich.interval or
 * as soon as a backend asks (attach, set_mode, wake, worker_start).  A
 * worker that exits for any other reason is started again ten seconds
 * later; one whose number is no longer below the setting leaves at the
 * next reload and is not started again.
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
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "lead_enrich.h"
#include "worker.h"

/* How long a worker that exited waits before the launcher starts it again. */
#define RESTART_DELAY_MS 10000

/*
 * le_register_launcher: the static launcher worker; from _PG_init.
 */
void
le_register_launcher(void)
{
	BackgroundWorker w;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = 5;
	strlcpy(w.bgw_library_name, "lead_enrich", BGW_MAXLEN);
	strlcpy(w.bgw_function_name, "le_launcher_main", BGW_MAXLEN);
	strlcpy(w.bgw_name, "lead_enrich launcher", BGW_MAXLEN);
	strlcpy(w.bgw_type, "lead_enrich launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&w);
}

/* ------------------------------------------------------------------------
 * The launcher
 * ------------------------------------------------------------------------
 */

static BackgroundWorkerHandle *handles[LE_MAX_DATABASES][LE_MAX_WORKERS];

/*
 * launcher_detach: forget the launcher's latch when it exits.
 */
static void
launcher_detach(int code, Datum arg)
{
	LWLockAcquire(le_shared->lock, LW_EXCLUSIVE);
	if (le_shared->launcher_pid == MyProcPid)
	{
		le_shared->launcher_pid = 0;
		le_shared->launcher_latch = NULL;
	}
	LWLockRelease(le_shared->lock);
}

typedef struct DbEntry
{
	Oid	 oid;
	char name[NAMEDATALEN];
} DbEntry;

/*
 * list_databases: the connectable, non-template databases to serve.
 */
static DbEntry *
list_databases(int *n)
{
	Relation	  rel;
	TableScanDesc scan;
	HeapTuple	  tup;
	int			  cap = 16;
	DbEntry		 *dbs = palloc(sizeof(DbEntry) * cap);
	MemoryContext cxt = CurrentMemoryContext;

	*n = 0;
	StartTransactionCommand();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		MemoryContext	 old;

		/* an interrupted DROP DATABASE leaves an invalid database */
		if (!db->datallowconn || db->datistemplate || database_is_invalid_form(db))
			continue;
		if (!le_database_served(NameStr(db->datname)))
			continue;
		old = MemoryContextSwitchTo(cxt);
		if (*n == cap)
		{
			cap *= 2;
			dbs = repalloc(dbs, sizeof(DbEntry) * cap);
		}
		dbs[*n].oid = db->oid;
		strlcpy(dbs[*n].name, NameStr(db->datname), NAMEDATALEN);
		(*n)++;
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	return dbs;
}

/*
 * worker_alive: whether worker k of slot i runs, as the launcher sees it.
 */
static bool
worker_alive(int i, int k)
{
	LeWorkerSlot *w = &le_shared->slots[i].workers[k];
	pid_t		  pid;

	if (handles[i][k] != NULL)
	{
		BgwHandleStatus st = GetBackgroundWorkerPid(handles[i][k], &pid);

		if (st == BGWH_STARTED || st == BGWH_NOT_YET_STARTED)
			return true;
		if (st == BGWH_POSTMASTER_DIED)
			proc_exit(1);
		pfree(handles[i][k]);
		handles[i][k] = NULL;
	}
	/* a worker started by a previous launcher */
	return w->pid != 0 && kill(w->pid, 0) == 0;
}

/*
 * any_worker_alive: whether a worker of slot i runs.
 */
static bool
any_worker_alive(int i)
{
	for (int k = 0; k < LE_MAX_WORKERS; k++)
		if (worker_alive(i, k))
			return true;
	return false;
}

/*
 * start_worker: register worker k of one database (its number in
 * bgw_extra).
 */
static bool
start_worker(int i, int k, DbEntry *db)
{
	BackgroundWorker w;
	MemoryContext	 old;
	bool			 started;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(w.bgw_library_name, "lead_enrich", BGW_MAXLEN);
	strlcpy(w.bgw_function_name, "le_worker_main", BGW_MAXLEN);
	if (k == 0)
		snprintf(w.bgw_name, BGW_MAXLEN, "lead_enrich worker for database %s", db->name);
	else
		snprintf(w.bgw_name, BGW_MAXLEN, "lead_enrich worker %d for database %s", k + 1, db->name);
	strlcpy(w.bgw_type, "lead_enrich worker", BGW_MAXLEN);
	w.bgw_main_arg = ObjectIdGetDatum(db->oid);
	memcpy(w.bgw_extra, &k, sizeof(int));
	w.bgw_notify_pid = MyProcPid;
	/* the handle outlives the scan's memory context */
	old = MemoryContextSwitchTo(TopMemoryContext);
	started = RegisterDynamicBackgroundWorker(&w, &handles[i][k]);
	MemoryContextSwitchTo(old);
	return started;
}

/*
 * launcher_scan: start the workers that should run; returns how long the
 * launcher may sleep (ms) before something is due.
 */
static long
launcher_scan(void)
{
	static bool warned_full = false;
	static bool warned_slots = false;
	int			ndbs;
	DbEntry	   *dbs = list_databases(&ndbs);
	TimestampTz now = GetCurrentTimestamp();
	long		wait = 60 * 1000L;

	LWLockAcquire(le_shared->lock, LW_EXCLUSIVE);

	/* databases dropped (or no longer served): free their slots */
	for (int i = 0; i < LE_MAX_DATABASES; i++)
	{
		LeDbSlot *slot = &le_shared->slots[i];
		bool	  listed = false;

		if (slot->dboid == InvalidOid)
			continue;
		for (int j = 0; j < ndbs && !listed; j++)
			listed = dbs[j].oid == slot->dboid;
		if (!listed && !any_worker_alive(i))
			le_slot_clear(slot);
	}

	for (int j = 0; j < ndbs; j++)
	{
		LeDbSlot *slot = le_slot_find(dbs[j].oid, true);
		int		  i;

		if (slot == NULL)
		{
			if (!warned_full)
				ereport(WARNING,
						(errmsg("lead_enrich serves at most %d databases; database \"%s\" is not served",
								LE_MAX_DATABASES, dbs[j].name),
						 errhint("List the databases to serve in lead_enrich.databases.")));
			warned_full = true;
			continue;
		}
		i = slot - le_shared->slots;
		for (int k = 0; k < le_workers_per_database; k++)
		{
			LeWorkerSlot *w = &slot->workers[k];

			if (worker_alive(i, k))
				continue;
			w->pid = 0;
			w->latch = NULL;
			if (slot->stopped)
				continue;
			if (!slot->requested && w->started_at != 0)
			{
				long		delay = slot->no_extension ? le_interval_min * 60 * 1000L : RESTART_DELAY_MS;
				TimestampTz due = TimestampTzPlusMilliseconds(w->started_at, delay);

				if (now < due)
				{
					wait = Min(wait, (long) ((due - now) / 1000) + 1);
					continue;
				}
			}
			if (!start_worker(i, k, &dbs[j]))
			{
				if (!warned_slots)
					ereport(WARNING,
							(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
							 errmsg("could not start a lead_enrich worker for database \"%s\"", dbs[j].name),
							 errdetail("No background worker slot is free."),
							 errhint("Raise max_worker_processes, or lower lead_enrich.workers_per_database.")));
				warned_slots = true;
				wait = Min(wait, RESTART_DELAY_MS);
				continue;
			}
			warned_slots = false;
			slot->no_extension = false;
			w->started_at = now;
			strlcpy(w->activity, "starting", sizeof(w->activity));
		}
		slot->requested = false;
	}
	LWLockRelease(le_shared->lock);
	pfree(dbs);
	return wait;
}

/*
 * le_launcher_main: the launcher's loop.
 */
void
le_launcher_main(Datum arg)
{
	MemoryContext cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("lead_enrich launcher");

	LWLockAcquire(le_shared->lock, LW_EXCLUSIVE);
	le_shared->launcher_pid = MyProcPid;
	le_shared->launcher_latch = MyLatch;
	LWLockRelease(le_shared->lock);
	before_shmem_exit(launcher_detach, 0);

	cxt = AllocSetContextCreate(TopMemoryContext, "lead_enrich launcher",
								ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		long wait;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		MemoryContextSwitchTo(cxt);
		wait = launcher_scan();
		MemoryContextReset(cxt);
		pgstat_report_activity(STATE_IDLE, NULL);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(wait, 100), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
