/*-------------------------------------------------------------------------
 *
 * citus.h
 *	  lead_enrich on a Citus cluster with a distributed lead table (see
 *	  citus.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LEAD_ENRICH_CITUS_H
#define LEAD_ENRICH_CITUS_H

#include "postgres.h"

#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/timestamp.h"

#include "guard.h"

extern void		   le_enqueue_filter(StringInfo s, Trigger *tg);
extern void		   le_enqueue_begin(TriggerData *td, bool row, LeGuard *g);
extern int		   le_enqueue_run(SPIPlanPtr plan, TriggerData *td, bool row);
extern void		   le_citus_define_settings(void);
extern bool		   le_citus_distributed(Oid relid);
extern void		   le_citus_collect(void);
extern TimestampTz le_citus_next_pass(TimestampTz due);
extern void		   le_citus_order_claim(Oid relid, const char *idcol, int64 *ids, int n);
extern char		  *le_citus_tenant_column(Oid relid, const char *idcol, Oid *type);
extern int		   le_citus_tenant_groups(Oid relid, const char *qualname, const char *idcol,
										  const char *tcol, Oid ttype, Datum ids,
										  int **group_of, Datum **tenants);
extern int		   le_citus_shard_groups(Oid relid, Datum ids, int **group_of);
extern Datum	   le_citus_subarray(Datum array, Oid elemtype, const int *group_of, int group);
extern void		   le_citus_merge_results(SPITupleTable **tts, int n);

#endif /* LEAD_ENRICH_CITUS_H */
