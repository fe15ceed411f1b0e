/*-------------------------------------------------------------------------
 *
 * guard.h
 *	  Whose rights lead_enrich's statements run with (see guard.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LEAD_ENRICH_GUARD_H
#define LEAD_ENRICH_GUARD_H

#include "lead_enrich.h"

/*
 * A statement group run under other rights and a pinned search_path; what
 * it saved to restore.
 */
typedef struct LeGuard
{
	Oid save_uid;
	int save_sec;
	int save_nestlevel;
} LeGuard;

/* The search_path every statement of lead_enrich is planned under. */
#define LE_SAFE_SEARCH_PATH "pg_catalog, pg_temp"

/* Set by the background worker: it acts for the attached table's owner. */
extern bool le_acting_for_owner;

extern void	 le_guard_crm(LeGuard *g, LeadTable *lt);
extern void	 le_guard_owner(LeGuard *g, Oid owner);
extern void	 le_guard_extension(LeGuard *g);
extern void	 le_guard_end(LeGuard *g);
extern Oid	 le_extension_owner(void);
extern char *le_redact_token(const char *s);

#endif /* LEAD_ENRICH_GUARD_H */
