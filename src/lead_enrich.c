/*-------------------------------------------------------------------------
 *
 * lead_enrich.c
 *	  Module entry point.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "lead_enrich.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * _PG_init: define the settings.  The background worker, when loaded from
 * shared_preload_libraries, is registered by worker.c.
 */
void
_PG_init(void)
{
	le_define_settings();
	MarkGUCPrefixReserved("lead_enrich");
}
