/*-------------------------------------------------------------------------
 *
 * errcodes.h
 *	  SQLSTATEs of lead_enrich's own errors (class LE).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LEAD_ENRICH_ERRCODES_H
#define LEAD_ENRICH_ERRCODES_H

#include "utils/elog.h"

/* LE402: the provider refused for lack of credits (HTTP's 402 in spirit) */
#define ERRCODE_LE_INSUFFICIENT_CREDIT MAKE_SQLSTATE('L', 'E', '4', '0', '2')

#endif
