/*-------------------------------------------------------------------------
 *
 * guard.c
 *	  Whose rights lead_enrich's statements run with, under which
 *	  search_path, and keeping the account token out of messages.
 *
 * PostgreSQL's model for code that acts on a table for its owner
 * (autovacuum, REFRESH MATERIALIZED VIEW, CREATE INDEX) is followed:
 *
 *	the CRM table and Odoo's tables	 in the background worker, and when
 *									 attach() reads Odoo's settings: as the
 *									 attached table's owner, with
 *									 SECURITY_RESTRICTED_OPERATION; in a
 *									 function a user calls: as that user,
 *									 who needs the same rights as for the
 *									 UPDATE itself;
 *	lead_enrich's own tables		 as the extension's owner, restricted:
 *									 lead_enrich_user only reads them.
 *
 * Every group of statements runs with search_path pinned to
 * LE_SAFE_SEARCH_PATH, so that no operator or function an ordinary role
 * put in another schema is picked by name resolution (pg_temp comes last
 * and is never searched for operators or functions), and inside its own
 * GUC nest level, so that a setting changed by a trigger of the table's
 * owner does not outlive the statement.  An error needs no clean-up here:
 * aborting the (sub)transaction restores the user and the settings, as
 * for a SECURITY DEFINER function.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/rel.h"

#include "guard.h"

bool le_acting_for_owner = false;

/*
 * guard_begin: switch to role (InvalidOid: stay the current user) with the
 * given extra security flags, and pin the search_path.
 */
static void
guard_begin(LeGuard *g, Oid role, int flags)
{
	GetUserIdAndSecContext(&g->save_uid, &g->save_sec);
	if (OidIsValid(role) && role != g->save_uid)
		flags |= SECURITY_LOCAL_USERID_CHANGE;
	SetUserIdAndSecContext(OidIsValid(role) ? role : g->save_uid, g->save_sec | flags);
	g->save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", LE_SAFE_SEARCH_PATH, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

/*
 * le_guard_crm: statements on the attached table and Odoo's tables.  The
 * background worker runs them as the table's owner, restricted (a trigger
 * or a view the owner wrote gets the owner's rights, never more); a
 * function called by a user runs them as that user.
 */
void
le_guard_crm(LeGuard *g, LeadTable *lt)
{
	if (le_acting_for_owner)
		guard_begin(g, lt->owner, SECURITY_RESTRICTED_OPERATION);
	else
		guard_begin(g, InvalidOid, 0);
}

/*
 * le_guard_owner: statements on Odoo's tables for a given table owner,
 * restricted, whoever calls (attach() reading Odoo's settings).
 */
void
le_guard_owner(LeGuard *g, Oid owner)
{
	guard_begin(g, owner, SECURITY_RESTRICTED_OPERATION);
}

/*
 * le_guard_extension: statements on lead_enrich's own tables, as the
 * extension's owner, restricted.
 */
void
le_guard_extension(LeGuard *g)
{
	guard_begin(g, le_extension_owner(), SECURITY_RESTRICTED_OPERATION);
}

/*
 * le_guard_end: undo what the matching le_guard_* did.
 */
void
le_guard_end(LeGuard *g)
{
	AtEOXact_GUC(false, g->save_nestlevel);
	SetUserIdAndSecContext(g->save_uid, g->save_sec);
}

/*
 * le_extension_owner: the role that owns the extension (and its tables).
 * A catalog look-up by name through the index; it is cheap next to the
 * statements it guards.
 */
Oid
le_extension_owner(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			owner = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("lead_enrich"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("extension \"lead_enrich\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION lead_enrich;")));
	return owner;
}

/*
 * le_redact_token: s with the configured account token, and the value of
 * any account_token= URL parameter, replaced by asterisks.  Everything
 * that leaves the extension as a message, a status or a URL for a role
 * other than a superuser goes through here.
 */
char *
le_redact_token(const char *s)
{
	StringInfoData out;
	const char	  *tok = le_account_token;
	size_t		   toklen = tok ? strlen(tok) : 0;
	const char	  *p = s;

	if (s == NULL)
		return NULL;
	initStringInfo(&out);
	while (*p)
	{
		if (toklen >= 4 && strncmp(p, tok, toklen) == 0)
		{
			appendStringInfoString(&out, "********");
			p += toklen;
		}
		else if (strncmp(p, "account_token=", 14) == 0)
		{
			appendStringInfoString(&out, "account_token=********");
			p += 14;
			while (*p && *p != '&' && *p != '"' && *p != '\'' && !isspace((unsigned char) *p))
				p++;
		}
		else
			appendStringInfoChar(&out, *p++);
	}
	return out.data;
}
