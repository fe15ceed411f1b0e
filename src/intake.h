/*-------------------------------------------------------------------------
 *
 * intake.h
 *	  New leads on their way to the queue: kept in shared memory by the
 *	  enqueue trigger, made durable by the worker (see intake.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LEAD_ENRICH_INTAKE_H
#define LEAD_ENRICH_INTAKE_H

#include "postgres.h"

#include "lead_table.h"

/* Leads the shared list holds (for all databases) before it overflows. */
#define LE_INTAKE_ENTRIES 65536

extern void le_intake_shmem_init(void);
extern bool le_intake_add(Oid relid, const int64 *ids, int n);

/*
 * Called by the worker at the start of every claim, in a transaction with
 * SPI connected: turns the committed new leads of this database into
 * 'pending' rows of lead_enrich.lead_state (and, once after shared memory
 * was set up, scans the attached table for those a crash, a restart or a
 * failover took from shared memory).  At most 2,000 leads a call: the
 * list's, the newest first, then its overflow range; *left says that leads
 * were left for the next call.  The rows it wrote are visible to the
 * caller's active snapshot when it returns.  lt is the attached table the
 * caller read in this transaction (read again when NULL).
 */
extern uint64 le_intake_collect(LeadTable *lt, bool *left);

#endif /* LEAD_ENRICH_INTAKE_H */
