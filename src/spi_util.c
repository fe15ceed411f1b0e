/*-------------------------------------------------------------------------
 *
 * spi_util.c
 *	  SPI helpers shared by the extension's files.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"

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
