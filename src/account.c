/*-------------------------------------------------------------------------
 *
 * account.c
 *	  The IAP account token: the superuser-only setting, else Odoo's own
 *	  iap_account row for the reveal service.
 *
 * Unlike Odoo, no account is ever created silently: a database without a
 * token gets a clear error saying where to put one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/builtins.h"

#include "lead_enrich.h"

/*
 * le_account_token_lookup: the token to send, or NULL (missing_ok).
 * Needs SPI when the token comes from Odoo's table.
 */
char *
le_account_token_lookup(LeadTable *lt, bool missing_ok)
{
	if (le_account_token != NULL && le_account_token[0] != '\0')
		return pstrdup(le_account_token);

	if (lt != NULL)
	{
		char *token = lt_odoo_token(lt);

		if (token != NULL)
			return token;
	}
	if (missing_ok)
		return NULL;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("no IAP account token is configured"),
			 errdetail("lead_enrich.account_token is empty and no iap_account row exists for service \"reveal\"."),
			 errhint("As a superuser: ALTER SYSTEM SET lead_enrich.account_token = '...'; SELECT pg_reload_conf();")));
	return NULL; /* keep compiler quiet */
}
