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
extern bool		   lt_has_chatter(LeadTable *lt);
extern void		   lt_post_notes(LeadTable *lt, int64 *lead_ids, const char **names,
								 const char **companies, const char **bodies, bool *once, int n);

/* ========================================================================
 * Lead mining (lead_table.c's last section, used by mining.c)
 * ========================================================================
 */

/* the parameters of the mined lead's INSERT (lt_mine_insert) */
enum
{
	MINE_P_NAME = 1,
	MINE_P_PARTNER_NAME,
	MINE_P_EMAIL,
	MINE_P_PHONE,
	MINE_P_WEBSITE,
	MINE_P_STREET,
	MINE_P_CITY,
	MINE_P_ZIP,
	MINE_P_COUNTRY,
	MINE_P_STATE,
	MINE_P_CONTACT_NAME,
	MINE_P_FUNCTION,
	MINE_P_REVEAL_ID,
	MINE_P_EMAIL_NORMALIZED,
	MINE_P_EMAIL_DOMAIN,
	MINE_P_TYPE,
	MINE_P_TEAM,
	MINE_P_USER,
	MINE_P_REQUEST,
	MINE_P_STAGE,
	MINE_P_COUNT = MINE_P_STAGE
};

extern bool	 lt_has_odoo_table(LeadTable *lt, const char *name);
extern void	 lt_mine_prepare(LeadTable *lt);
extern bool *lt_mine_duplicates(LeadTable *lt, Jsonb *data, int n);
extern int64 lt_mine_insert(LeadTable *lt, Datum *values, const char *nulls, char **name,
							char **company);
extern void	 lt_mine_tag(LeadTable *lt, Datum lead_ids, const char *tag_ids);
extern int32 lt_mine_odoo_request(LeadTable *lt, const char *name, Jsonb *prep);
extern void	 lt_mine_odoo_finish(LeadTable *lt, int32 request, const char *state,
								 const char *error_type);

#endif /* LEAD_ENRICH_LEAD_TABLE_H */
