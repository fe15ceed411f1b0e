/*-------------------------------------------------------------------------
 *
 * webmail.c
 *	  The generic webmail check: is an e-mail domain, or a parent domain
 *	  of it that is not a public suffix, listed in
 *	  lead_enrich.webmail_domain?
 *
 * email.c gives the names to look up (webmail_candidates); this file asks
 * the table, one query for a whole batch.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "lead_enrich.h"

PG_FUNCTION_INFO_V1(lead_enrich_webmail_match);

/*
 * webmail_matches: for each of the n domains, the webmail_domain entry it
 * falls under (the domain itself, or its most specific listed parent that
 * is not a public suffix), or NULL.  The entries point into the domains.
 * Needs SPI.
 */
void
webmail_matches(const char **domains, int n, const char **out)
{
	static SPIPlanPtr plan = NULL;
	List			**cands = palloc(sizeof(List *) * Max(n, 1));
	List			 *all = NIL;
	Datum			 *elems;
	int				  nelems = 0;
	Datum			  arg;
	int				  ret;
	char			**matches;
	uint64			  nmatches;
	ListCell		 *lc;

	for (int i = 0; i < n; i++)
	{
		out[i] = NULL;
		cands[i] = webmail_candidates(domains[i]);
		all = list_concat(all, cands[i]);
	}
	if (all == NIL)
		return;
	elems = palloc(sizeof(Datum) * list_length(all));
	foreach(lc, all)
		elems[nelems++] = CStringGetTextDatum((char *) lfirst(lc));
	arg = PointerGetDatum(construct_array(elems, nelems, TEXTOID, -1, false, TYPALIGN_INT));

	if (plan == NULL)
	{
		Oid argtype = TEXTARRAYOID;

		plan = le_keep_plan("SELECT domain FROM lead_enrich.webmail_domain WHERE domain = ANY ($1)",
							1, &argtype);
	}
	ret = SPI_execute_plan(plan, &arg, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "webmail look-up failed: %s", SPI_result_code_string(ret));
	nmatches = SPI_processed;
	matches = palloc(sizeof(char *) * Max(nmatches, 1));
	for (uint64 r = 0; r < nmatches; r++)
		matches[r] = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);
	SPI_freetuptable(SPI_tuptable);

	/* a domain's own candidates only, most specific first */
	for (int i = 0; i < n && nmatches > 0; i++)
	{
		foreach(lc, cands[i])
		{
			const char *c = lfirst(lc);

			for (uint64 r = 0; r < nmatches && out[i] == NULL; r++)
				if (strcmp(c, matches[r]) == 0)
					out[i] = c;
			if (out[i] != NULL)
				break;
		}
	}
}

/*
 * lead_enrich.webmail_match(domain text): the webmail_domain entry under
 * which an e-mail domain counts as generic (status generic_domain), or
 * NULL when it would be sent to the provider.  The domain is read as
 * enrichment reads it: ASCII letters lower-cased, a trailing dot dropped.
 */
Datum
lead_enrich_webmail_match(PG_FUNCTION_ARGS)
{
	char	   *domain = text_to_cstring(PG_GETARG_TEXT_PP(0));
	size_t		len = strlen(domain);
	const char *match;
	text	   *result = NULL;

	for (char *p = domain; *p; p++)
		*p = pg_ascii_tolower((unsigned char) *p);
	if (len > 0 && domain[len - 1] == '.')
		domain[len - 1] = '\0';
	if (*domain == '\0')
		PG_RETURN_NULL();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	webmail_matches((const char **) &domain, 1, &match);
	SPI_finish();
	if (match != NULL)
		result = cstring_to_text(match);
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(result);
}
