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

#include "citus.h"
#include "intake.h"
#include "lead_enrich.h"
#include "worker.h"

PG_MODULE_MAGIC;

void _PG_init(void);

/*
 * _PG_init: define the settings.  Loaded from shared_preload_libraries, also
 * reserve the workers' shared memory and register the launcher (worker.c);
 * loaded later, the extension works without automatic enrichment.
 */
void
_PG_init(void)
{
	le_define_settings();
	le_citus_define_settings();
	MarkGUCPrefixReserved("lead_enrich");
	if (process_shared_preload_libraries_in_progress && !IsBinaryUpgrade)
	{
		le_shmem_init();
		le_intake_shmem_init();
		le_register_launcher();
	}
}
