/*-------------------------------------------------------------------------
 *
 * email.c
 *	  E-mail normalisation as Odoo's strict email_normalize does it, and
 *	  the names under which a domain may be listed as webmail.  Pure
 *	  parsing: no database access (the look-up is in webmail.c).
 *
 * A lead's email_from may hold "Name <addr>", "Name addr", several
 * addresses or garbage.  Exactly one address must be found, otherwise the
 * e-mail is invalid.  The domain is lower-cased always, the local part only
 * when it is ASCII.  Where lead_enrich departs from Odoo's results (Odoo's
 * own test cases, sql/odoo_email.sql), the README's rules section says so
 * and why.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "nodes/pg_list.h"
#include "utils/builtins.h"

#include "lead_enrich.h"

PG_FUNCTION_INFO_V1(lead_enrich_email_normalize);

/*
 * is_blank: a white-space character of a header (space, tab, CR, LF).
 */
static inline bool
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * trim_blanks: s without leading and trailing white space (in place).
 */
static char *
trim_blanks(char *s)
{
	char *end;

	while (is_blank(*s))
		s++;
	end = s + strlen(s);
	while (end > s && is_blank(end[-1]))
		*--end = '\0';
	return s;
}

/*
 * part_addresses: append to *out the addresses of one list element (the
 * text between two top-level commas or semicolons).
 *
 * Angle-addrs ("Name <addr>") win: each <...> outside quotes and comments
 * whose content holds an '@' gives its address, read the same way, so that
 * "Name" <"Other" <addr>> gives addr and "A <a@x.com> B <b@y.com>" two
 * addresses.  Without one, (comments) are dropped and the element is split
 * into words at white space outside quotes; every word holding an '@' is
 * an address and the other words are a display name, so "Name addr" and
 * "addr Name" both give addr, and "a@x.com Cc b@y.com" two addresses.
 */
static void
part_addresses(const char *part, List **out)
{
	bool  found = false;
	bool  quoted = false;
	int	  depth = 0;
	char *text;
	char *w;
	char *word;

	for (const char *p = part; *p; p++)
	{
		if (*p == '\\' && p[1] != '\0')
			p++;
		else if (*p == '"' && depth == 0)
			quoted = !quoted;
		else if (quoted)
			continue;
		else if (*p == '(')
			depth++;
		else if (*p == ')' && depth > 0)
			depth--;
		else if (*p == '<' && depth == 0)
		{
			/* the matching '>' (or the end: a missing one is forgiven) */
			const char *q;
			int			level = 1;
			bool		inq = false;
			char	   *content;

			for (q = p + 1; *q; q++)
			{
				if (*q == '\\' && q[1] != '\0')
					q++;
				else if (*q == '"')
					inq = !inq;
				else if (!inq && *q == '<')
					level++;
				else if (!inq && *q == '>' && --level == 0)
					break;
			}
			content = trim_blanks(pnstrdup(p + 1, q - p - 1));
			if (strchr(content, '@') != NULL)
			{
				if (strchr(content, '<') != NULL)
					part_addresses(content, out);
				else
					*out = lappend(*out, content);
				found = true;
			}
			if (*q == '\0')
				break;
			p = q;
		}
	}
	if (found)
		return;

	/* no angle-addr: drop (comments), then one address per word with an '@' */
	text = palloc(strlen(part) + 1);
	w = text;
	quoted = false;
	depth = 0;
	for (const char *p = part; *p; p++)
	{
		if (*p == '"' && depth == 0)
			quoted = !quoted;
		if (!quoted && *p == '(')
			depth++;
		else if (!quoted && *p == ')' && depth > 0)
			depth--;
		else if (depth == 0)
			*w++ = *p;
	}
	*w = '\0';

	word = text;
	quoted = false;
	for (char *p = text;; p++)
	{
		if (*p == '"')
			quoted = !quoted;
		if (*p == '\0' || (is_blank(*p) && !quoted))
		{
			bool last = (*p == '\0');

			*p = '\0';
			if (strchr(word, '@') != NULL)
				*out = lappend(*out, word);
			if (last)
				break;
			word = p + 1;
		}
	}
}

/*
 * split_addresses: the addresses found in raw.  The text is split into
 * elements at commas and semicolons outside quotes, comments and angle
 * brackets; each element gives its addresses (part_addresses).  A
 * fragment without a local part ("@gmail.com") counts only when no real
 * address was found, as in Odoo.
 */
static List *
split_addresses(const char *raw)
{
	List	   *found = NIL;
	List	   *out = NIL;
	const char *start = raw;
	bool		quoted = false;
	int			angle = 0;
	int			paren = 0;
	bool		any_local = false;
	ListCell   *lc;

	for (const char *p = raw;; p++)
	{
		if (*p == '\0' || ((*p == ',' || *p == ';') && !quoted && angle == 0 && paren == 0))
		{
			part_addresses(pnstrdup(start, p - start), &found);
			if (*p == '\0')
				break;
			start = p + 1;
			continue;
		}
		if (*p == '\\' && p[1] != '\0')
			p++;
		else if (*p == '"')
			quoted = !quoted;
		else if (quoted)
			continue;
		else if (*p == '<')
			angle++;
		else if (*p == '>' && angle > 0)
			angle--;
		else if (*p == '(')
			paren++;
		else if (*p == ')' && paren > 0)
			paren--;
	}

	foreach(lc, found)
		if (((char *) lfirst(lc))[0] != '@')
			any_local = true;
	foreach(lc, found)
		if (!any_local || ((char *) lfirst(lc))[0] != '@')
			out = lappend(out, lfirst(lc));
	return out;
}

/*
 * valid_domain: host name labels separated by dots, a top-level label that
 * is not all digits.  A single label ("test1") is accepted, as Odoo does.
 */
static bool
valid_domain(const char *d)
{
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
	return !all_digits;
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
	addr = pstrdup((char *) linitial(addrs));
	at = strchr(addr, '@');
	if (strchr(at + 1, '@') != NULL)
		return NULL; /* "a@b@c": which domain is meant is a guess */
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
 * webmail_candidates: the names under which domain counts as webmail, most
 * specific first: the domain itself, then every parent domain that is not
 * a public suffix (mail.yahoo.co.uk: itself and yahoo.co.uk, not co.uk or
 * uk).  A listed public suffix (com.ar) thus never matches the companies
 * registered under it.  The names point into domain.
 */
List *
webmail_candidates(const char *domain)
{
	List *out = list_make1((char *) domain);

	for (const char *p = strchr(domain, '.'); p != NULL; p = strchr(p + 1, '.'))
	{
		if (!psl_is_public_suffix(p + 1))
			out = lappend(out, (char *) (p + 1));
	}
	return out;
}

/*
 * lead_enrich.email_normalize(text): the address enrichment would use, or
 * NULL when the text does not hold exactly one valid address.  Lets a user
 * (and the tests ported from Odoo) see how an e-mail is read.
 */
Datum
lead_enrich_email_normalize(PG_FUNCTION_ARGS)
{
	char *norm = email_normalize_strict(text_to_cstring(PG_GETARG_TEXT_PP(0)));

	if (norm == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(norm));
}
