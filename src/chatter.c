/*-------------------------------------------------------------------------
 *
 * chatter.c
 *	  The notes an Odoo user finds in a lead's chatter: what enrichment
 *	  found (a company card), that nothing was found, that the e-mail
 *	  does not look valid (once), and the company and contacts of a mined
 *	  lead.
 *
 * Odoo 17 posts these notes itself when it enriches or mines (subtype
 * "note", message type "notification", OdooBot as author); lead_enrich
 * writes the same rows into Odoo's mail_message, so that a salesperson
 * opening the lead sees what was found, and why nothing was.  The HTML is
 * lead_enrich's own rendering of the same facts.
 *
 * Everything in a card comes from the provider, so it is treated as
 * untrusted: text is HTML-escaped, links are built only from handles and
 * paths of safe characters, the logo only from an http(s) URL without
 * quotes or spaces, telephone links keep only digits and '+'.  Odoo
 * sanitises a body when its ORM writes it; rows written here bypass the
 * ORM, so this file is the sanitiser.
 *
 * This file renders; the INSERT is lt_post_notes (lead_table.c), which
 * owns every statement on Odoo's tables.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "lib/stringinfo.h"
#include "utils/jsonb.h"

#include "chatter.h"
#include "lead_enrich.h"

/* at most this many items of a list (phones, technologies...) in a card */
#define CARD_MAX_ITEMS 20

/* Odoo's header of its enrichment notes, and their texts */
#define NOTE_HEADER "Lead Enrichment (based on email address)"
#define NOTE_NOT_FOUND \
	"No company data found based on the email address or email address " \
	"is one of an email provider. No credit was consumed."
#define NOTE_INVALID	"Enrichment could not be done because the email address does not look valid."
#define FLAVOR_ENRICHED "Lead enriched based on email address"
#define FLAVOR_MINED	"Opportunity created by Odoo Lead Generation"

/*
 * html_text: s, HTML-escaped (element content and quoted attribute values).
 */
static void
html_text(StringInfo buf, const char *s)
{
	for (; *s; s++)
	{
		switch (*s)
		{
			case '&':
				appendStringInfoString(buf, "&amp;");
				break;
			case '<':
				appendStringInfoString(buf, "&lt;");
				break;
			case '>':
				appendStringInfoString(buf, "&gt;");
				break;
			case '"':
				appendStringInfoString(buf, "&quot;");
				break;
			case '\'':
				appendStringInfoString(buf, "&#39;");
				break;
			default:
				appendStringInfoChar(buf, *s);
		}
	}
}

/*
 * safe_path: a social handle or URL path made only of letters, digits and
 * "._-/", not starting with '/' nor holding "..": safe to append to a
 * fixed https:// prefix.
 */
static bool
safe_path(const char *p)
{
	if (p == NULL || *p == '\0' || *p == '/' || strlen(p) > 200 || strstr(p, "..") != NULL)
		return false;
	for (; *p; p++)
		if (!isalnum((unsigned char) *p) && strchr("._-/", *p) == NULL)
			return false;
	return true;
}

/*
 * append_image_url: u as an attribute value when it is an http(s) URL,
 * spaces percent-encoded; false (nothing appended) when it holds a
 * character that could leave the attribute or is not printable.
 */
static bool
append_image_url(StringInfo buf, const char *u)
{
	if (u == NULL || strlen(u) > 2000 ||
		(strncmp(u, "https://", 8) != 0 && strncmp(u, "http://", 7) != 0))
		return false;
	for (const char *p = u; *p; p++)
		if ((unsigned char) *p < ' ' || *p == 0x7f || strchr("\"'<>\\`", *p) != NULL)
			return false;
	for (; *u; u++)
	{
		if (*u == ' ')
			appendStringInfoString(buf, "%20");
		else if (*u == '&')
			appendStringInfoString(buf, "&amp;");
		else
			appendStringInfoChar(buf, *u);
	}
	return true;
}

/*
 * array_size: the number of elements of an array-valued key (0 if absent
 * or not an array), at most CARD_MAX_ITEMS.
 */
static int
array_size(JsonbContainer *c, const char *key)
{
	JsonbValue	buf;
	JsonbValue *v = jb_get(c, key, &buf);

	if (v == NULL || v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		return 0;
	return Min((int) JsonContainerSize(v->val.binary.data), CARD_MAX_ITEMS);
}

/*
 * words: s with '_' as spaces, each word capitalised when title is set
 * ("google_analytics" -> "Google Analytics"; "Europe/Paris" unchanged).
 */
static void
words(StringInfo buf, const char *s, bool title)
{
	StringInfoData w;
	bool		   start = true;

	initStringInfo(&w);
	for (; *s; s++)
	{
		char ch = *s == '_' ? ' ' : *s;

		if (title && start && ch >= 'a' && ch <= 'z')
			ch = ch - 'a' + 'A';
		start = ch == ' ';
		appendStringInfoChar(&w, ch);
	}
	html_text(buf, w.data);
	pfree(w.data);
}

/*
 * row: one label/value line of the card's table; value is HTML, already
 * escaped.  Nothing when the value is empty.
 */
static void
row(StringInfo buf, const char *label, StringInfo value)
{
	if (value->len == 0)
		return;
	appendStringInfo(buf, "<tr><th style=\"padding-right:12px; text-align:left\">%s</th><td>%s</td></tr>",
					 label, value->data);
	resetStringInfo(value);
}

/*
 * card_links: the company's social accounts, as links after its name.
 */
static void
card_links(StringInfo buf, JsonbContainer *c)
{
	static const struct
	{
		const char *key;
		const char *prefix;
		const char *label;
	} links[] = {
		{"twitter", "https://twitter.com/", "Twitter"},
		{"facebook", "https://www.facebook.com/", "Facebook"},
		{"linkedin", "https://www.linkedin.com/", "LinkedIn"},
		{"crunchbase", "https://www.crunchbase.com/", "Crunchbase"},
	};

	for (int i = 0; i < (int) lengthof(links); i++)
	{
		char *v = jb_get_text(c, links[i].key);

		if (!safe_path(v))
			continue;
		appendStringInfo(buf, " <a href=\"%s%s\" target=\"_blank\" rel=\"noopener noreferrer\">%s</a>",
						 links[i].prefix, v, links[i].label);
	}
}

/*
 * card_rows: the card's table: company type, founded, sectors, employees,
 * revenue, phones, e-mails, time zone, technologies, Twitter.
 */
static void
card_rows(StringInfo buf, JsonbContainer *c)
{
	static const char *const sector_keys[] = {"sector_primary", "industry", "industry_group",
											  "sub_industry"};
	StringInfoData			 v;
	char					*t;
	int						 n;

	initStringInfo(&v);
	if ((t = jb_get_text(c, "company_type")) != NULL)
		words(&v, t, true);
	row(buf, "Company type", &v);
	if ((t = jb_get_text(c, "founded_year")) != NULL)
		html_text(&v, t);
	row(buf, "Founded", &v);

	for (int i = 0; i < (int) lengthof(sector_keys); i++)
	{
		bool dup = false;

		if ((t = jb_get_text(c, sector_keys[i])) == NULL)
			continue;
		/* the same name under two keys is shown once */
		for (int j = 0; j < i && !dup; j++)
		{
			char *u = jb_get_text(c, sector_keys[j]);

			dup = u != NULL && strcmp(u, t) == 0;
		}
		if (dup)
			continue;
		appendStringInfo(&v, "%s<span class=\"badge rounded-pill text-bg-light\">", v.len ? " " : "");
		html_text(&v, t);
		appendStringInfoString(&v, "</span>");
	}
	row(buf, "Sectors", &v);

	if ((t = jb_get_text(c, "employees")) != NULL)
	{
		char  *end;
		double e = strtod(t, &end);

		if (*end == '\0' && e >= 0 && e < 1e12)
			appendStringInfo(&v, "%.0f", e);
		else
			html_text(&v, t);
	}
	row(buf, "Employees", &v);
	if ((t = jb_get_text(c, "estimated_annual_revenue")) != NULL)
	{
		html_text(&v, t);
		appendStringInfoString(&v, " per year");
	}
	row(buf, "Estimated revenue", &v);

	n = array_size(c, "phone_numbers");
	for (int i = 0; i < n; i++)
	{
		if ((t = jb_get_array_text(c, "phone_numbers", i)) == NULL)
			continue;
		appendStringInfo(&v, "%s<a href=\"tel:", v.len ? ", " : "");
		for (const char *p = t; *p; p++)
			if (isdigit((unsigned char) *p) || *p == '+')
				appendStringInfoChar(&v, *p);
		appendStringInfoString(&v, "\">");
		html_text(&v, t);
		appendStringInfoString(&v, "</a>");
	}
	row(buf, "Phone", &v);

	n = array_size(c, "email");
	for (int i = 0; i < n; i++)
	{
		if ((t = jb_get_array_text(c, "email", i)) == NULL || strchr(t, '@') == NULL)
			continue;
		appendStringInfo(&v, "%s<a href=\"mailto:", v.len ? ", " : "");
		html_text(&v, t);
		appendStringInfoString(&v, "\">");
		html_text(&v, t);
		appendStringInfoString(&v, "</a>");
	}
	row(buf, "Email", &v);

	if ((t = jb_get_text(c, "timezone")) != NULL)
		words(&v, t, false);
	row(buf, "Timezone", &v);

	n = array_size(c, "tech");
	for (int i = 0; i < n; i++)
	{
		if ((t = jb_get_array_text(c, "tech", i)) == NULL)
			continue;
		if (v.len)
			appendStringInfoString(&v, ", ");
		words(&v, t, true);
	}
	row(buf, "Technologies Used", &v);

	if ((t = jb_get_text(c, "twitter")) != NULL && safe_path(t))
	{
		char *followers = jb_get_text(c, "twitter_followers");
		char *bio = jb_get_text(c, "twitter_bio");

		appendStringInfo(&v, "<a href=\"https://twitter.com/%s\" target=\"_blank\" "
							 "rel=\"noopener noreferrer\">@%s</a>",
						 t, t);
		if (followers != NULL && strspn(followers, "0123456789") == strlen(followers))
			appendStringInfo(&v, ", %s followers", followers);
		if (bio != NULL)
		{
			appendStringInfoString(&v, "<br/>");
			html_text(&v, bio);
		}
	}
	row(buf, "Twitter", &v);
	pfree(v.data);
}

/*
 * render_card: the company card (name, links, description, logo, then the
 * table), under a line saying where it comes from.
 */
static void
render_card(StringInfo buf, JsonbContainer *c, const char *flavor)
{
	char *name = jb_get_text(c, "name");
	char *description = jb_get_text(c, "description");
	char *logo = jb_get_text(c, "logo");

	appendStringInfo(buf, "<div class=\"o_lead_enrich_card\"><p><em>%s</em></p>", flavor);
	appendStringInfoString(buf, "<div style=\"display:flex; justify-content:space-between\"><div>");
	if (name == NULL)
		name = jb_get_text(c, "domain");
	if (name != NULL)
	{
		appendStringInfoString(buf, "<h4 style=\"margin:0\">");
		html_text(buf, name);
		appendStringInfoString(buf, "</h4>");
	}
	card_links(buf, c);
	if (description != NULL)
	{
		appendStringInfoString(buf, "<p>");
		html_text(buf, description);
		appendStringInfoString(buf, "</p>");
	}
	appendStringInfoString(buf, "</div>");
	if (logo != NULL)
	{
		int len = buf->len;

		appendStringInfoString(buf, "<img src=\"");
		if (append_image_url(buf, logo))
			appendStringInfoString(buf, "\" alt=\"\" style=\"max-width:80px; max-height:80px\"/>");
		else
		{
			buf->len = len;
			buf->data[len] = '\0';
		}
	}
	appendStringInfoString(buf, "</div><table>");
	card_rows(buf, c);
	appendStringInfoString(buf, "</table></div>");
}

/*
 * render_contacts: a mined lead's contacts: name and title, e-mail, and a
 * phone column when any contact has one.
 */
static void
render_contacts(StringInfo buf, JsonbContainer *people)
{
	int	 n = Min((int) JsonContainerSize(people), CARD_MAX_ITEMS);
	bool phones = false;

	for (int i = 0; i < n; i++)
	{
		JsonbValue *p = getIthJsonbValueFromContainer(people, i);

		if (p != NULL && p->type == jbvBinary && jb_get_text(p->val.binary.data, "phone") != NULL)
			phones = true;
	}
	appendStringInfo(buf, "<p><b>Contacts</b></p><table><tr><th>Name</th><th>Email</th>%s</tr>",
					 phones ? "<th>Phone</th>" : "");
	for (int i = 0; i < n; i++)
	{
		JsonbValue	   *p = getIthJsonbValueFromContainer(people, i);
		JsonbContainer *c;
		char		   *t;

		if (p == NULL || p->type != jbvBinary || !JsonContainerIsObject(p->val.binary.data))
			continue;
		c = p->val.binary.data;
		appendStringInfo(buf, "<tr%s><td>", i % 2 ? " style=\"background-color:#f2f2f2\"" : "");
		if ((t = jb_get_text(c, "full_name")) != NULL)
			html_text(buf, t);
		if ((t = jb_get_text(c, "title")) != NULL)
		{
			appendStringInfoString(buf, "<br/><small>");
			html_text(buf, t);
			appendStringInfoString(buf, "</small>");
		}
		appendStringInfoString(buf, "</td><td>");
		if ((t = jb_get_text(c, "email")) != NULL && strchr(t, '@') != NULL)
		{
			appendStringInfoString(buf, "<a href=\"mailto:");
			html_text(buf, t);
			appendStringInfoString(buf, "\">");
			html_text(buf, t);
			appendStringInfoString(buf, "</a>");
		}
		appendStringInfoString(buf, "</td>");
		if (phones)
		{
			appendStringInfoString(buf, "<td>");
			if ((t = jb_get_text(c, "phone")) != NULL)
				html_text(buf, t);
			appendStringInfoString(buf, "</td>");
		}
		appendStringInfoString(buf, "</tr>");
	}
	appendStringInfoString(buf, "</table>");
}

/*
 * add: one note into the buffer.
 */
static void
add(ChatterBuf *cb, NoteLead lead, char *body, bool once)
{
	if (cb->n == cb->size)
	{
		cb->size = Max(16, cb->size * 2);
		if (cb->lead_ids == NULL)
		{
			cb->lead_ids = palloc(sizeof(int64) * cb->size);
			cb->names = palloc(sizeof(char *) * cb->size);
			cb->companies = palloc(sizeof(char *) * cb->size);
			cb->bodies = palloc(sizeof(char *) * cb->size);
			cb->once = palloc(sizeof(bool) * cb->size);
		}
		else
		{
			cb->lead_ids = repalloc(cb->lead_ids, sizeof(int64) * cb->size);
			cb->names = repalloc(cb->names, sizeof(char *) * cb->size);
			cb->companies = repalloc(cb->companies, sizeof(char *) * cb->size);
			cb->bodies = repalloc(cb->bodies, sizeof(char *) * cb->size);
			cb->once = repalloc(cb->once, sizeof(bool) * cb->size);
		}
	}
	cb->lead_ids[cb->n] = lead.id;
	cb->names[cb->n] = lead.name;
	cb->companies[cb->n] = lead.company;
	cb->bodies[cb->n] = body;
	cb->once[cb->n] = once;
	cb->n++;
}

/*
 * chatter_init: an empty buffer, which takes notes only when the table has
 * a chatter and lead_enrich.odoo_chatter is on (nothing is rendered
 * otherwise).  After lt_prepare.
 */
void
chatter_init(ChatterBuf *cb, LeadTable *lt)
{
	memset(cb, 0, sizeof(ChatterBuf));
	cb->on = le_odoo_chatter && lt_has_chatter(lt);
}

/*
 * chatter_enriched: the company card of an enriched lead.
 */
void
chatter_enriched(ChatterBuf *cb, NoteLead lead, JsonbContainer *company)
{
	StringInfoData s;

	if (!cb->on)
		return;
	initStringInfo(&s);
	render_card(&s, company, FLAVOR_ENRICHED);
	add(cb, lead, s.data, false);
}

/*
 * chatter_not_found: nothing found, or a webmail domain; no credit used.
 */
void
chatter_not_found(ChatterBuf *cb, NoteLead lead)
{
	if (!cb->on)
		return;
	add(cb, lead, "<p><b>" NOTE_HEADER "</b></p><p>" NOTE_NOT_FOUND "</p>", false);
}

/*
 * chatter_invalid_email: the e-mail does not look valid.  Posted once per
 * lead (Odoo 17 posts it again on every pass, which floods the chatter).
 */
void
chatter_invalid_email(ChatterBuf *cb, NoteLead lead)
{
	if (!cb->on)
		return;
	add(cb, lead, "<p><b>" NOTE_HEADER "</b></p><p>" NOTE_INVALID "</p>", true);
}

/*
 * chatter_mined: a mined lead's company card and its contacts.
 */
void
chatter_mined(ChatterBuf *cb, NoteLead lead, JsonbContainer *company, JsonbContainer *people)
{
	StringInfoData s;

	if (!cb->on)
		return;
	initStringInfo(&s);
	render_card(&s, company, FLAVOR_MINED);
	if (people != NULL && JsonContainerIsArray(people) && JsonContainerSize(people) > 0)
		render_contacts(&s, people);
	add(cb, lead, s.data, false);
}

/*
 * chatter_flush: post the buffer's notes (one statement) and empty it.
 * Nothing on a table without a chatter.
 */
void
chatter_flush(LeadTable *lt, ChatterBuf *cb)
{
	if (cb->n > 0)
		lt_post_notes(lt, cb->lead_ids, cb->names, cb->companies, cb->bodies, cb->once, cb->n);
	cb->n = 0;
}
