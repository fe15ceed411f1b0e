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
 * New leads a claim takes straight from the list, written to lead_state
 * once, as members of their batch (or with their outcome), instead of as
 * pending rows the claim reads back: at most cap of them, each with the
 * e-mail the collect read (for the pending row of one the claim cannot
 * take after all).  Sorted by id once collected (le_direct_find).
 */
typedef struct LeDirectLead
{
	int64 id;
	char *email;
} LeDirectLead;

typedef struct LeDirect
{
	LeDirectLead *leads;
	int			  n;
	int			  cap;
} LeDirect;

/*
 * Called by the worker at the start of every claim, in a transaction with
 * SPI connected: turns the committed new leads of this database into
 * 'pending' rows of lead_enrich.lead_state (and, once after shared memory
 * was set up, scans the attached table for those a crash, a restart or a
 * failover took from shared memory).  With direct (cap above 0), at most
 * cap leads are taken from the list, and those with no row in lead_state
 * yet are handed to the caller in it instead of being written (the caller
 * must write each one, in this transaction); otherwise at most 2,000.  The
 * list's newest first, then its overflow range; *left says that leads were
 * left for the next call.  The rows it wrote are visible to the caller's
 * active snapshot when it returns.  lt is the attached table the caller
 * read in this transaction (read again when NULL).
 */
extern uint64		 le_intake_collect(LeadTable *lt, bool *left, LeDirect *direct);
extern LeDirectLead *le_direct_find(LeDirect *direct, int64 id);
extern void			 le_intake_enqueue(const LeDirectLead *leads, int n);

#endif /* LEAD_ENRICH_INTAKE_H */
