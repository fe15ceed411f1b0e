/*-------------------------------------------------------------------------
 *
 * email.c
 *	  E-mail normalisation as Odoo's strict email_normalize does it, and
 *	  the generic webmail check.
 *
 * A lead's email_from may hold "Name <addr>", several addresses or
 * garbage.  Exactly one address must be found, otherwise the e-mail is
 * invalid.  The domain is lower-cased always, the local part only when it
 * is ASCII.  Domains are checked more strictly than Odoo does (labels,
 * a dot), so that nothing unusable is sent to the provider.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "lead_enrich.h"

/*
 * split_addresses: the address parts of raw that contain an '@', as
 * RFC 2822 getaddresses would find them: split at commas outside quotes,
 * comments and angle brackets; take the <...> part when there is one.
 */
static List *
split_addresses(const char *raw)
{
	List	   *out = NIL;
	const char *p = raw;
	const char *start = raw;
	bool		quoted = false;
	int			angle = 0;
	int			paren = 0;

	for (;; p++)
	{
		if (*p == '\0' || (*p == ',' && !quoted && angle == 0 && paren == 0))
		{
			char *part = pnstrdup(start, p - start);
			char *lt = NULL;
			char *q;

			/* an angle-addr wins over the display name */
			for (q = part; *q; q++)
			{
				if (*q == '"')
					quoted = !quoted;
				else if (*q == '<' && !quoted)
					lt = q;
			}
			quoted = false;
			if (lt != NULL)
			{
				char *gt = strchr(lt, '>');

				part = gt ? pnstrdup(lt + 1, gt - lt - 1) : pstrdup(lt + 1);
			}
			/* drop (comments) and surrounding blanks */
			part = pstrdup(part);
			{
				char *w = part;
				int	  depth = 0;

				for (q = part; *q; q++)
				{
					if (*q == '(')
						depth++;
					else if (*q == ')' && depth > 0)
						depth--;
					else if (depth == 0)
						*w++ = *q;
				}
				*w = '\0';
			}
			while (*part == ' ' || *part == '\t' || *part == '\r' || *part == '\n')
				part++;
			q = part + strlen(part);
			while (q > part && (q[-1] == ' ' || q[-1] == '\t' || q[-1] == '\r' || q[-1] == '\n'))
				*--q = '\0';
			if (strchr(part, '@') != NULL)
				out = lappend(out, part);
			if (*p == '\0')
				break;
			start = p + 1;
			continue;
		}
		if (*p == '"')
			quoted = !quoted;
		else if (!quoted && *p == '<')
			angle++;
		else if (!quoted && *p == '>' && angle > 0)
			angle--;
		else if (!quoted && *p == '(')
			paren++;
		else if (!quoted && *p == ')' && paren > 0)
			paren--;
	}
	return out;
}

/*
 * valid_domain: host name labels separated by dots, at least two labels,
 * a top-level label that is not all digits.
 */
static bool
valid_domain(const char *d)
{
	int			labels = 0;
	const char *label = d;
	const char *p;
	bool		all_digits = true;

	if (*d == '\0' || strlen(d) > 253)
		return false;
	for (p = d;; p++)
	{
		if (*p == '.' || *p == '\0')
		{
			int len = p - label;

			if (len == 0 || len > 63 || label[0] == '-' || p[-1] == '-')
				return false;
			labels++;
			if (*p == '\0')
				break;
			label = p + 1;
			all_digits = true;
			continue;
		}
		if (!(isalnum((unsigned char) *p) || *p == '-' || (unsigned char) *p >= 0x80))
			return false;
		if (!isdigit((unsigned char) *p))
			all_digits = false;
	}
	return labels >= 2 && !all_digits;
}

/*
 * email_normalize_strict: the normalised address, or NULL if raw does not
 * hold exactly one valid address.
 */
char *
email_normalize_strict(const char *raw)
{
	List *addrs;
	char *addr;
	char *at;
	char *p;
	bool  ascii = true;

	if (raw == NULL)
		return NULL;
	addrs = split_addresses(raw);
	if (list_length(addrs) != 1)
		return NULL;
	addr = (char *) linitial(addrs);
	at = strchr(addr, '@');
	if (at == addr || strchr(at + 1, '@') != NULL)
		return NULL;
	for (p = addr; *p; p++)
	{
		if ((unsigned char) *p <= ' ' || *p == '<' || *p == '>' || *p == ',' || *p == ';')
			return NULL;
		if ((unsigned char) *p >= 0x80 && p < at)
			ascii = false;
	}
	for (p = at + 1; *p; p++)
		*p = pg_ascii_tolower((unsigned char) *p);
	if (at[1] != '\0' && p[-1] == '.')
		p[-1] = '\0'; /* a trailing root dot */
	if (!valid_domain(at + 1))
		return NULL;
	if (ascii)
		for (p = addr; p < at; p++)
			*p = pg_ascii_tolower((unsigned char) *p);
	return addr;
}

/*
 * email_domain: the part after the first '@' of a normalised address.
 */
const char *
email_domain(const char *normalized)
{
	const char *at = strchr(normalized, '@');

	return at ? at + 1 : NULL;
}

/*
 * webmail_flags: for each domain, whether it, or a parent domain of it
 * (mail.yahoo.co.uk's yahoo.co.uk), is a generic webmail provider.  One
 * query for the whole list.  Needs SPI.
 */
void
webmail_flags(const char **domains, int n, bool *out)
{
	static SPIPlanPtr plan = NULL;
	Datum			 *elems;
	int				  nelems = 0;
	size_t			  cap = 0;
	Datum			  arg;
	int				  ret;
	char			**matches;
	uint64			  nmatches;

	memset(out, 0, sizeof(bool) * n);
	for (int i = 0; i < n; i++)
		cap += strlen(domains[i]) / 2 + 2;
	if (cap == 0)
		return;
	elems = palloc(sizeof(Datum) * cap);
	for (int i = 0; i < n; i++)
	{
		for (const char *p = domains[i]; p != NULL; p = strchr(p, '.'))
		{
			if (*p == '.')
				p++;
			if (strchr(p, '.') == NULL)
				break; /* never a bare top-level domain */
			elems[nelems++] = CStringGetTextDatum(p);
		}
	}
	if (nelems == 0)
		return;
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
	if (nmatches == 0)
	{
		SPI_freetuptable(SPI_tuptable);
		return;
	}
	matches = palloc(sizeof(char *) * nmatches);
	for (uint64 r = 0; r < nmatches; r++)
		matches[r] = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);
	SPI_freetuptable(SPI_tuptable);

	/* a domain matches when it ends with a match at a label boundary */
	for (int i = 0; i < n; i++)
	{
		size_t dlen = strlen(domains[i]);

		for (uint64 r = 0; r < nmatches && !out[i]; r++)
		{
			size_t mlen = strlen(matches[r]);

			if (mlen <= dlen && strcmp(domains[i] + dlen - mlen, matches[r]) == 0 &&
				(mlen == dlen || domains[i][dlen - mlen - 1] == '.'))
				out[i] = true;
		}
	}
}
