/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  Automatic enrichment: shared memory of the background workers, the
 *	  wake-up at commit, the launcher and the per-database workers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LEAD_ENRICH_WORKER_H
#define LEAD_ENRICH_WORKER_H

#include "postgres.h"

#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"

/* Databases the launcher can serve at once. */
#define LE_MAX_DATABASES 64

/* Why a worker was woken (LeWorkerSlot.wake bits). */
#define LE_WAKE_COMMIT	 0x01 /* leads were enqueued and committed */
#define LE_WAKE_EXPLICIT 0x02 /* lead_enrich.wake(): also ends a pause */

#define LE_TEXT_LEN 256

/* Workers one database can have (lead_enrich.workers_per_database). */
#define LE_MAX_WORKERS 4

/*
 * One worker of a database.  Protected by LeShared.lock, except "wake",
 * which backends set at commit without the lock.
 */
typedef struct LeWorkerSlot
{
	pid_t			 pid;		 /* the worker's pid, 0 when not running */
	Latch			*latch;		 /* its latch (in its PGPROC) */
	pg_atomic_uint32 wake;		 /* LE_WAKE_* bits */
	TimestampTz		 started_at; /* when the launcher last started it */
	TimestampTz		 last_run;	 /* end of the last pass */
	TimestampTz		 last_error_at;
	TimestampTz		 paused_since; /* 0 when not paused */
	int64			 runs;		   /* passes made */
	int64			 requests;	   /* provider calls made */
	char			 activity[64]; /* idle, claiming, calling, applying */
	char			 last_error[LE_TEXT_LEN];
	char			 pause_reason[LE_TEXT_LEN];
} LeWorkerSlot;

/*
 * One database: what backends ask of its workers, and the workers.
 * Protected by LeShared.lock.
 */
typedef struct LeDbSlot
{
	Oid			 dboid;		   /* InvalidOid: free slot */
	bool		 requested;	   /* a backend wants the workers started */
	bool		 stopped;	   /* worker_stop() was called */
	bool		 no_extension; /* the last worker found no extension */
	LeWorkerSlot workers[LE_MAX_WORKERS];
} LeDbSlot;

typedef struct LeShared
{
	LWLock	*lock;
	pid_t	 launcher_pid;
	Latch	*launcher_latch;
	LeDbSlot slots[LE_MAX_DATABASES];
} LeShared;

/* shmem.c (the SQL functions that use it: worker_ctl.c) */
extern LeShared *le_shared;
extern void		 le_shmem_init(void);
extern void		 le_slot_clear(LeDbSlot *slot);
extern LeDbSlot *le_slot_find(Oid dboid, bool create);
extern void		 le_request_worker(Oid dboid);
extern void		 le_wake_at_commit(void);
extern bool		 le_wake_worker(Oid dboid, uint32 bits);
extern void		 le_wake_others(Oid dboid, const LeWorkerSlot *self);
extern void		 le_slot_set_activity(LeWorkerSlot *w, const char *activity);

/* worker.c */
extern void				le_register_launcher(void);
extern PGDLLEXPORT void le_launcher_main(Datum arg);
extern PGDLLEXPORT void le_worker_main(Datum arg);

#endif /* LEAD_ENRICH_WORKER_H */
