/*-------------------------------------------------------------------------
 *
 * enrich.h
 *	  The three steps of enriching a batch of leads (see enrich.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LEAD_ENRICH_ENRICH_H
#define LEAD_ENRICH_ENRICH_H

#include "lead_enrich.h"
#include "queue.h"

typedef struct LeadRow
{
	int64		id;
	char	   *email_raw;
	char	   *email;		 /* normalised, NULL if invalid */
	char	   *rec_name;	 /* what its chatter note copies from it: its */
	char	   *rec_company; /* name and company, as text (lt_select) */
	const char *domain;
	LeadStatus	status;
	const char *skip;	 /* why skipped */
	int			owner;	 /* index into EnrichBatch.domains, -1 */
	char	   *filled;	 /* text[] literal of filled columns */
	Jsonb	   *company; /* the company the provider answered, as it came */
	int			credits;
	char	   *error;
	char	   *note;	  /* no error: what enrich_leads' detail says (why no credit) */
	bool		rejected; /* the CRM row refused the company (error says why) */
} LeadRow;

/*
 * lead_awaits_answer: the lead is in its batch's request (it has a domain
 * entry) and nothing has been decided for it yet: what is claimed, split,
 * recorded and rechecked.
 */
static inline bool
lead_awaits_answer(const LeadRow *row)
{
	return row->owner >= 0 && row->status == LEAD_PENDING;
}

typedef struct EnrichBatch
{
	LeadTable *lt;
	int		   n;
	LeadRow	  *rows;
	int		   ndomains;
	char	 **domains;
	int		  *owner; /* row index of the lead sent per domain */
	RpcCall	  *call;
	int64	   batch_id;   /* the worker's recorded batch (queue.c), or 0 */
	char	  *request_id; /* its JSON-RPC id, or NULL: derived from the contents */
} EnrichBatch;

/*
 * Who prepares a batch: a user's call (waits for locked leads, leaves the
 * leads of an unsettled worker batch alone), the worker's claim (skips
 * locked and archived leads), or the worker writing an answer (waits, and
 * finds which leads changed since the claim).
 */
typedef enum PrepareMode
{
	PREPARE_MANUAL,
	PREPARE_CLAIM,
	PREPARE_RECHECK
} PrepareMode;

extern EnrichBatch *enrich_prepare(LeadTable *lt, int64 *ids, int nids,
								   PrepareMode mode);
extern RpcCall	   *enrich_call(EnrichBatch *b, const char *token);
extern void			enrich_apply_local(EnrichBatch *b, const char *source);
extern void			enrich_apply(EnrichBatch *b, const char *source);
extern void			enrich_apply_many(EnrichBatch **bs, int nb, const char *source);
extern int			sort_unique_ids(int64 *ids, int n);

extern Datum int8_array(int64 *ids, int n);
extern Datum text_array(const char **v, int n);

/* for the background worker (worker.c) */
extern void			 enrich_recheck(EnrichBatch **bs, int nb);
extern void			 enrich_add_domain(EnrichBatch *b, int i);
extern EnrichBatch **enrich_split(EnrichBatch *b, const int64 *ids, int nids, int size);
extern EnrichBatch	*enrich_batch_copy(EnrichBatch *b, MemoryContext cxt);
extern bool			 le_lock_key(int64 key, uint16 space, bool session, bool wait);
extern void			 le_unlock_key(int64 key, uint16 space);

/* The key spaces of our advisory locks (see set_key_locktag). */
#define LE_LOCK_LEAD  0x4c45 /* a lead: the worker's claim, a manual call */
#define LE_LOCK_BATCH 0x4c42 /* a batch: the worker that owns it (queue.c) */

/* a lead's advisory lock */
static inline bool
le_lock_lead(int64 lead_id, bool session, bool wait)
{
	return le_lock_key(lead_id, LE_LOCK_LEAD, session, wait);
}

static inline void
le_unlock_lead(int64 lead_id)
{
	le_unlock_key(lead_id, LE_LOCK_LEAD);
}

#endif /* LEAD_ENRICH_ENRICH_H */
