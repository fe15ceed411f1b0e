/*-------------------------------------------------------------------------
 *
 * chatter.h
 *	  The notes lead_enrich posts in an Odoo lead's chatter (see chatter.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LEAD_ENRICH_CHATTER_H
#define LEAD_ENRICH_CHATTER_H

#include "postgres.h"

#include "utils/jsonb.h"

#include "lead_table.h"

/*
 * The notes of one batch, posted together by chatter_flush (one INSERT).
 * A note marked once is not posted when the lead's chatter already has
 * the same note (the invalid e-mail's, which Odoo repeats on every pass).
 */
typedef struct ChatterBuf
{
	bool		 on; /* the table has a chatter (chatter_init) */
	int			 n;
	int			 size;
	int64		*lead_ids;
	const char **names;		/* what each note copies from its lead, as */
	const char **companies; /* text (lt_post_notes), or NULL */
	const char **bodies;
	bool		*once;
} ChatterBuf;

/*
 * The lead a note is posted on: its id, and its name and company as the
 * statement that locked it read them (text, NULL for none).
 */
typedef struct NoteLead
{
	int64		id;
	const char *name;
	const char *company;
} NoteLead;

extern void chatter_init(ChatterBuf *cb, LeadTable *lt);
extern void chatter_enriched(ChatterBuf *cb, NoteLead lead, JsonbContainer *company);
extern void chatter_not_found(ChatterBuf *cb, NoteLead lead);
extern void chatter_invalid_email(ChatterBuf *cb, NoteLead lead);
extern void chatter_mined(ChatterBuf *cb, NoteLead lead, JsonbContainer *company,
						  JsonbContainer *people);
extern void chatter_flush(LeadTable *lt, ChatterBuf *cb);

#endif /* LEAD_ENRICH_CHATTER_H */
