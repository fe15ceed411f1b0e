/*-------------------------------------------------------------------------
 *
 * worker_ctl.c
 *	  The SQL functions that steer automatic enrichment: set_mode(),
 *	  wake(), wake_at_commit(), worker_start(), worker_stop() and
 *	  worker_info().
 *
 * They run in ordinary backends and talk to the workers through shared
 * memory (shmem.c); set_mode() also installs or removes the enqueue
 * triggers (trigger.c) through lead_enrich.sync_triggers().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "guard.h"
#include "lead_enrich.h"
#include "worker.h"

PG_FUNCTION_INFO_V1(lead_enrich_set_mode);
PG_FUNCTION_INFO_V1(lead_enrich_wake_at_commit);
PG_FUNCTION_INFO_V1(lead_enrich_wake);
PG_FUNCTION_INFO_V1(lead_enrich_worker_start);
PG_FUNCTION_INFO_V1(lead_enrich_worker_stop);
PG_FUNCTION_INFO_V1(lead_enrich_worker_info);

/*
 * lead_enrich.set_mode(mode): switch between 'manual' and 'auto', install
 * or remove the triggers.  Allowed to a superuser and to the attached
 * table's owner; the change itself runs as the extension's owner, who owns
 * lead_enrich.config.  The worker is woken at commit, so that it reads the
 * new mode.
 */
Datum
lead_enrich_set_mode(PG_FUNCTION_ARGS)
{
	char		 *mode = text_to_cstring(PG_GETARG_TEXT_PP(0));
	LeadTable	 *lt;
	char		 *old;
	LeGuard		  g;
	Datum		  arg;
	Oid			  argtype = TEXTOID;
	text		 *result;
	MemoryContext outer = CurrentMemoryContext;

	if (strcmp(mode, "manual") != 0 && strcmp(mode, "auto") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid enrichment mode \"%s\"", mode),
				 errhint("The mode is 'manual' (enrich on demand only) or 'auto' (enrich new leads automatically).")));

	SPI_connect();
	lt = lead_table_load(false);
	if (!superuser() && !pg_class_ownercheck(lt->relid, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be the owner of table %s or a superuser to change the enrichment mode",
						lt->qualname)));
	old = lt->mode;

	/* as the extension's owner, restricted, search_path pinned */
	le_guard_extension(&g);
	arg = CStringGetTextDatum(mode);
	if (SPI_execute_with_args("UPDATE lead_enrich.config SET mode = $1", 1, &argtype, &arg,
							  NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update lead_enrich.config");
	if (SPI_execute("SELECT lead_enrich.sync_triggers()", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not install the enqueue triggers");
	le_guard_end(&g);

	if (strcmp(mode, "auto") == 0)
	{
		if (le_shared == NULL)
			ereport(WARNING,
					(errmsg("leads will be queued but not enriched: the background worker is not running"),
					 errdetail("lead_enrich is not in shared_preload_libraries."),
					 errhint("Add lead_enrich to shared_preload_libraries and restart the server.")));
		le_wake_at_commit();
	}
	MemoryContextSwitchTo(outer);
	result = cstring_to_text(old);
	SPI_finish();
	PG_RETURN_TEXT_P(result);
}

/*
 * lead_enrich.wake_at_commit(): wake this database's worker when the
 * transaction commits (for enqueue_leads and other SQL that enqueues).
 */
Datum
lead_enrich_wake_at_commit(PG_FUNCTION_ARGS)
{
	le_wake_at_commit();
	PG_RETURN_VOID();
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
	PG_RETURN_BOOL(le_wake_worker(MyDatabaseId, LE_WAKE_EXPLICIT));
}

/*
 * slot_pid: the pid of the database's first running worker, 0 when none
 * runs (the caller holds the lock).
 */
static pid_t
slot_pid(LeDbSlot *slot)
{
	for (int k = 0; k < LE_MAX_WORKERS; k++)
		if (slot->workers[k].pid != 0)
			return slot->workers[k].pid;
	return 0;
}

/*
 * wait_for_pid: poll the slot until a worker runs (or none does any
 * more), for at most ten seconds.  Returns the pid seen last.
 */
static pid_t
wait_for_pid(LeDbSlot *slot, bool running)
{
	pid_t pid = 0;

	for (int i = 0; i < 100; i++)
	{
		LWLockAcquire(le_shared->lock, LW_SHARED);
		pid = slot_pid(slot);
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
 * lead_enrich.worker_stop(): stop this database's workers until
 * worker_start() or the next server start.  A request in flight is
 * abandoned; its leads stay pending.  Returns whether one was running.
 */
Datum
lead_enrich_worker_stop(PG_FUNCTION_ARGS)
{
	LeDbSlot *slot;
	pid_t	  pids[LE_MAX_WORKERS];
	int		  npids = 0;

	require_shared();
	LWLockAcquire(le_shared->lock, LW_EXCLUSIVE);
	slot = le_slot_find(MyDatabaseId, true);
	if (slot != NULL)
	{
		slot->stopped = true;
		for (int k = 0; k < LE_MAX_WORKERS; k++)
			if (slot->workers[k].pid != 0)
				pids[npids++] = slot->workers[k].pid;
	}
	LWLockRelease(le_shared->lock);
	if (npids == 0)
		PG_RETURN_BOOL(false);
	for (int k = 0; k < npids; k++)
		if (kill(pids[k], SIGTERM) != 0)
			ereport(WARNING,
					(errmsg("could not signal the lead_enrich worker (pid %d): %m", (int) pids[k])));
	wait_for_pid(slot, false);
	PG_RETURN_BOOL(true);
}

/*
 * workers_sum: the database's workers as one (the caller holds the lock):
 * the first running worker's pid, the sums of their passes and requests,
 * the earliest start and pause, the latest pass and error.  Returns what
 * they do: a single running worker's activity as it is, several workers'
 * each numbered ("1: idle; 2: calling the provider: 8 requests"), NULL
 * when none runs.
 */
static char *
workers_sum(LeDbSlot *slot, LeWorkerSlot *sum)
{
	StringInfoData act;
	int			   nrun = 0;
	const char	  *only = NULL;

	memset(sum, 0, sizeof(LeWorkerSlot));
	initStringInfo(&act);
	for (int k = 0; k < LE_MAX_WORKERS; k++)
	{
		LeWorkerSlot *w = &slot->workers[k];

		if (w->pid != 0)
		{
			if (nrun++ == 0)
			{
				sum->pid = w->pid;
				only = w->activity;
			}
			appendStringInfo(&act, "%s%d: %s", act.len > 0 ? "; " : "", k + 1, w->activity);
		}
		if (w->started_at != 0 && (sum->started_at == 0 || w->started_at < sum->started_at))
			sum->started_at = w->started_at;
		sum->last_run = Max(sum->last_run, w->last_run);
		sum->runs += w->runs;
		sum->requests += w->requests;
		if (w->last_error_at > sum->last_error_at)
		{
			sum->last_error_at = w->last_error_at;
			strlcpy(sum->last_error, w->last_error, LE_TEXT_LEN);
		}
		if (w->paused_since != 0 && (sum->paused_since == 0 || w->paused_since < sum->paused_since))
		{
			sum->paused_since = w->paused_since;
			strlcpy(sum->pause_reason, w->pause_reason, LE_TEXT_LEN);
		}
	}
	if (nrun == 0)
		return NULL;
	return nrun == 1 ? pstrdup(only) : act.data;
}

/*
 * lead_enrich.worker_info(): this database's workers as shared memory has
 * them, as one row (workers_sum); NULLs where nothing is known.
 */
Datum
lead_enrich_worker_info(PG_FUNCTION_ARGS)
{
	TupleDesc	 desc;
	Datum		 values[12];
	bool		 nulls[12];
	LeWorkerSlot copy;
	char		*activity = NULL;
	bool		 found = false;
	bool		 stopped = false;
	bool		 no_extension = false;
	bool		 launcher = false;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	memset(nulls, true, sizeof(nulls));

	if (le_shared != NULL)
	{
		LeDbSlot *slot;

		LWLockAcquire(le_shared->lock, LW_SHARED);
		launcher = le_shared->launcher_pid != 0;
		slot = le_slot_find(MyDatabaseId, false);
		if (slot != NULL)
		{
			found = true;
			activity = workers_sum(slot, &copy);
			stopped = slot->stopped;
			no_extension = slot->no_extension;
		}
		LWLockRelease(le_shared->lock);
	}
	values[0] = BoolGetDatum(le_shared != NULL && launcher);
	nulls[0] = false;
	if (found)
	{
		if (copy.pid != 0)
		{
			values[1] = Int32GetDatum(copy.pid);
			nulls[1] = false;
		}
		values[2] = CStringGetTextDatum(activity != NULL ? activity : stopped	 ? "stopped"
																  : no_extension ? "no extension"
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
		values[11] = BoolGetDatum(stopped);
		nulls[11] = false;
	}
	else
	{
		values[2] = CStringGetTextDatum(le_shared == NULL ? "not preloaded" : "not running");
		nulls[2] = false;
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
