/*-------------------------------------------------------------------------
 *
 * spi_util.c
 *	  SPI helpers shared by the extension's files.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "utils/resowner.h"

#include "lead_enrich.h"

/*
 * le_keep_plan: prepare a statement and keep its plan for the life of the
 * process, or fail with the statement in the message.
 */
SPIPlanPtr
le_keep_plan(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr p = SPI_prepare(sql, nargs, argtypes);

	if (p == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(p);
	return p;
}

/*
 * le_run_isolated: fn(arg) in a subtransaction, as PL/pgSQL runs a block
 * with an EXCEPTION clause.  On error, whatever fn did is rolled back (a
 * trigger's work included), the error is returned in *err (allocated in
 * the caller's memory context) and the result is false.
 */
bool
le_run_isolated(void (*fn)(void *arg), void *arg, ErrorData **err)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		*err = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		ok = false;
	}
	PG_END_TRY();
	return ok;
}
