/*-------------------------------------------------------------------------
 *
 * queue.h
 *	  The queue of automatic enrichment and the batches sent and not yet
 *	  settled (see queue.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LEAD_ENRICH_QUEUE_H
#define LEAD_ENRICH_QUEUE_H

#include "lead_enrich.h"
#include "utils/timestamp.h"

/*
 * A lead's outcome, as lead_state.status stores it, and the states a lead
 * takes within one call (never stored).
 */
typedef enum LeadStatus
{
	LEAD_PENDING, /* queued, or being enriched */
	LEAD_ENRICHED,
	LEAD_NOT_FOUND,
	LEAD_GENERIC_DOMAIN,
	LEAD_INVALID_EMAIL,
	LEAD_NO_EMAIL,
	LEAD_INSUFFICIENT_CREDIT,
	LEAD_ERROR,
	LEAD_MINED,
	/* within one call only */
	LEAD_SKIPPED, /* needs no enrichment (LeadRow.skip says why) */
	LEAD_MISSING, /* not in the table */
	LEAD_STALE	  /* changed since its batch was claimed */
} LeadStatus;

typedef struct EnrichBatch EnrichBatch;

/* A batch of lead outcomes, written to lead_state by one statement. */
#define STATE_NCOLS 8
typedef struct OutcomeBuf
{
	int	   n;
	int	   cap;
	Datum *values[STATE_NCOLS];
	bool  *nulls[STATE_NCOLS];
} OutcomeBuf;

extern const char *lead_status_name(LeadStatus status);
extern bool		   lead_status_is_final(LeadStatus status);

extern void		   queue_batch_record(EnrichBatch **bs, int nb);
extern bool		   queue_batch_lock(int64 batch_id);
extern void		   queue_batch_unlock(int64 batch_id);
extern int		   queue_batch_unsettled(LeadTable *lt, int max, int64 *inflight,
										 int ninflight, EnrichBatch **out);
extern void		   queue_batch_settle(EnrichBatch **bs, int nb);
extern void		   queue_batch_failed(EnrichBatch *b, const char *msg);
extern const char *queue_requeue_clause(void);
extern void		   queue_add_credits(int64 lead_id, int credits);
extern void		   queue_record_failure(int64 *ids, int n, const char *msg);
extern void		   queue_forget(int64 *ids, int n);
extern int		   queue_claimable(int64 *skip, int nskip, int limit, int64 **ids);
extern TimestampTz queue_next_due(void);
extern void		   queue_outcome_add(OutcomeBuf *sb, int64 lead_id, LeadStatus status,
									 const char *email, const char *domain,
									 Jsonb *company, const char *filled,
									 int credits, const char *error);
extern void		   queue_outcomes_write(OutcomeBuf *sb, const char *source);
extern void		   queue_lead_flags(int64 *ids, int nids, int64 **final_ids, int *nfinal,
									int64 **queued_ids, int *nqueued);

#endif /* LEAD_ENRICH_QUEUE_H */
