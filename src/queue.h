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

#include "enrich.h"

extern void queue_batch_record(EnrichBatch *b);
extern int	queue_batch_unsettled(LeadTable *lt, int max, EnrichBatch **out);
extern void queue_batch_settle(EnrichBatch *b);
extern void queue_batch_failed(EnrichBatch *b, const char *msg);
extern void queue_add_credits(int64 lead_id, int credits);
extern void queue_lead_flags(int64 *ids, int nids, int64 **final_ids, int *nfinal,
							 int64 **queued_ids, int *nqueued);

#endif /* LEAD_ENRICH_QUEUE_H */
