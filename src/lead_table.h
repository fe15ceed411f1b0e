/*-------------------------------------------------------------------------
 *
 * lead_table.h
 *	  The attached CRM table and the statements of enrichment on it (see
 *	  lead_table.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LEAD_ENRICH_LEAD_TABLE_H
#define LEAD_ENRICH_LEAD_TABLE_H

#include "postgres.h"

#include "utils/jsonb.h"

/* the batch UPDATE's parameters (lt_update) */
#define UPDATE_NARGS 10

typedef struct LeadTable LeadTable;

struct LeadTable
{
	Oid	   relid;
	Oid	   owner;	 /* the table's owner: the worker acts as this role */
	char  *qualname; /* quoted schema.table */
	char  *nspname;	 /* quoted schema */
	char  *dbuuid;
	bool   odoo; /* Odoo layout */
	bool   country_fk;
	bool   state_fk;
	char  *mode;
	Jsonb *columns; /* logical name -> column, and "<key>:type" */
	char  *missing; /* mapped columns gone or retyped since attach(), or NULL */
	bool   citus;	/* a Citus distributed table (citus.c), set by lt_prepare */
	char  *tenant;	/* its distribution column when not the id, or NULL */
	Oid	   tenant_type;
};

extern LeadTable  *lead_table_load(bool missing_ok);
extern void		   lead_table_check(LeadTable *lt);
extern const char *lt_col(LeadTable *lt, const char *key);
extern const char *lt_type(LeadTable *lt, const char *key);
extern const char *lt_now(LeadTable *lt, const char *key);
extern char		  *lt_odoo_token(LeadTable *lt);
extern void		   lt_prepare(LeadTable *lt);
extern int		   lt_select(LeadTable *lt, Datum ids, bool skip_locked);
extern int		   lt_update(LeadTable *lt, Datum *args);
extern void		   lt_mark_done(LeadTable *lt, int64 *ids, int n);
extern int		   lt_existing(LeadTable *lt, int64 *ids, int n);

#endif /* LEAD_ENRICH_LEAD_TABLE_H */
