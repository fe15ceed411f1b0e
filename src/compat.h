/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  Differences between the PostgreSQL major versions lead_enrich builds
 *	  against (15, 17 and 18 are tested; see META.json).
 *
 * Every PG_VERSION_NUM test of the extension lives here and nowhere else:
 * the rest of the code calls PostgreSQL's API as one version spells it and
 * this header supplies that spelling on the others.  Where a function was
 * only renamed or removed, the old name is kept as a macro (so code written
 * against 15 builds unchanged); where a signature changed, a le_ wrapper
 * with the extension's own name is used instead.  Included from
 * lead_enrich.h, so every source file has it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LEAD_ENRICH_COMPAT_H
#define LEAD_ENRICH_COMPAT_H

#include "postgres.h"

#include "catalog/pg_class.h"
#include "catalog/pg_database.h"
#include "common/jsonapi.h"
#include "utils/acl.h"

/*
 * PostgreSQL 16 replaced the per-catalog ownership checks
 * (pg_class_ownercheck, pg_proc_ownercheck, ...) with one
 * object_ownercheck(classid, objectid, roleid).
 */
#if PG_VERSION_NUM >= 160000
#define pg_class_ownercheck(relid, roleid) \
	object_ownercheck(RelationRelationId, (relid), (roleid))
#endif

/*
 * database_is_invalid_form() came with 15.4 (and 11.21 ... 14.9), together
 * with the "invalid" state an interrupted DROP DATABASE leaves a database
 * in; before it there are no invalid databases.
 */
#if PG_VERSION_NUM < 150004
#define database_is_invalid_form(datform) ((void) (datform), false)
#endif

/*
 * le_json_lex_cstring: a JSON lexer over len bytes of json, in the given
 * encoding, without de-escaped strings (for validation only).
 *
 * PostgreSQL 17 added a first argument, a JsonLexContext to initialise or
 * NULL to have one palloc'd.
 */
static inline JsonLexContext *
le_json_lex_cstring(char *json, int len, int encoding)
{
#if PG_VERSION_NUM >= 170000
	return makeJsonLexContextCstringLen(NULL, json, len, encoding, false);
#else
	return makeJsonLexContextCstringLen(json, len, encoding, false);
#endif
}

/*
 * A function that does not return: PostgreSQL 18 replaced the suffix
 * pg_attribute_noreturn() by the prefix pg_noreturn.  Declare it as
 * LE_NORETURN_BEGIN void f(...) LE_NORETURN_END;
 */
#if PG_VERSION_NUM >= 180000
#define LE_NORETURN_BEGIN pg_noreturn
#define LE_NORETURN_END
#else
#define LE_NORETURN_BEGIN
#define LE_NORETURN_END pg_attribute_noreturn()
#endif

#endif /* LEAD_ENRICH_COMPAT_H */
