/*-------------------------------------------------------------------------
 *
 * mining.c
 *	  Lead mining: lead_enrich.generate_leads(criteria), Odoo's "Generate
 *	  Leads" (addons/crm_iap_mine).
 *
 * One call does, in C beside enrichment:
 *
 *	1. the criteria checked (check_criteria, below) against the attached
 *	   table, lead_enrich's reference tables (industries, roles,
 *	   seniorities, ISO codes) and, on Odoo's layout, Odoo's own
 *	   (res_country, crm_team, crm_tag, ...): every error names the key
 *	   and the value and records nothing.  The result is the normalised
 *	   criteria, the IAP payload and what Odoo's request row gets.
 *	2. the request recorded: its row in lead_enrich.mining_request
 *	   (LMR001, ...) as the extension's owner (le_guard_extension), and, on
 *	   an Odoo table, Odoo's crm_iap_lead_mining_request row and links as
 *	   the caller (lead_table.c, le_guard_crm).
 *	3. one JSON-RPC call to /iap/clearbit/2/lead_mining_request.
 *	4. the leads: companies already in the table (same reveal id, website
 *	   domain or e-mail domain, or mined before) are skipped, the others
 *	   inserted through the attached table's column mapping with Odoo's
 *	   rules (and, on Odoo's table, the values Odoo's ORM would set), tags
 *	   added, and the company and its contacts kept in lead_state with
 *	   status "mined", so enrichment never sends them.  The statements on
 *	   the CRM table are lead_table.c's (lt_mine_*), kept per process.
 *	5. the outcome, on both request rows.
 *
 * Statements on lead_enrich's own tables run as the extension's owner
 * from plans kept for the process; those on the CRM table and Odoo's
 * tables run as the caller (generate_leads holds le_guard_crm throughout),
 * with search_path pinned and identifiers from the catalog quoted.
 * No SQL-callable function writes mining_request: the caller only reads
 * it, and only this C code records a request, for the call it runs.
 *
 * Outcomes follow Odoo, with its credit bug fixed (reference 9.4): no
 * credits ends the request in state "error" / "credits" and returns no
 * rows with a WARNING (the request row is kept: that is its point); no
 * result keeps it "draft" / "no_result" with a NOTICE.  Any other failure
 * of the provider is an ERROR and nothing is kept, as in Odoo.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "miscadmin.h"

#include "chatter.h"
#include "enrich.h"
#include "errcodes.h"
#include "guard.h"
#include "lead_enrich.h"

PG_FUNCTION_INFO_V1(lead_enrich_generate_leads);

/* The request, as check_criteria returned it and as recorded. */
typedef struct MiningRequest
{
	int	   id;
	char  *name;
	int32  odoo_id; /* Odoo's crm_iap_lead_mining_request row, or 0 */
	bool   people;
	char  *payload; /* JSON text of the "data" object */
	char  *lead_type;
	char  *team_id;
	char  *user_id;
	char  *stage_id;
	char  *link_id; /* what the lead's mining_request column gets */
	char  *tag_ids; /* int4[] literal, NULL if none */
	int	   max_credits;
	Jsonb *prep; /* check_criteria's answer */
} MiningRequest;

/*
 * request_write: one statement on lead_enrich.mining_request, as the
 * extension's owner, from a plan kept for the process; returns SPI's
 * result code (the rows in SPI_tuptable).
 */
static int
request_write(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types, Datum *args,
			  const char *nulls)
{
	LeGuard g;
	int		ret;

	le_guard_extension(&g);
	if (*plan == NULL)
		*plan = le_keep_plan(sql, nargs, types);
	ret = SPI_execute_plan(*plan, args, nulls, false, 0);
	le_guard_end(&g);
	if (ret < 0)
		elog(ERROR, "could not record the mining request: %s", SPI_result_code_string(ret));
	return ret;
}

/*
 * request_open: the request's row (its normalised criteria, the table, the
 * caller); sets req->id and req->name.
 */
static void
request_open(MiningRequest *req, LeadTable *lt)
{
	static SPIPlanPtr plan = NULL;
	Oid				  types[3] = {JSONBOID, TEXTOID, NAMEOID};
	Datum			  args[3];
	JsonbValue		  buf;
	JsonbValue		 *criteria = jb_get(&req->prep->root, "criteria", &buf);
	bool			  isnull;

	if (criteria == NULL || criteria->type != jbvBinary)
		elog(ERROR, "the checked criteria are missing");
	args[0] = JsonbPGetDatum(JsonbValueToJsonb(criteria));
	args[1] = CStringGetTextDatum(lt->qualname);
	args[2] = DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(GetUserId(), false)));
	if (request_write(&plan,
					  "INSERT INTO lead_enrich.mining_request (criteria, lead_table, requested_by) "
					  "VALUES ($1, $2, $3) RETURNING id, name",
					  3, types, args, NULL) != SPI_OK_INSERT_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "could not record the mining request");
	req->id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	req->name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
}

/*
 * request_link: the row of Odoo's crm_iap_lead_mining_request that goes
 * with the request.
 */
static void
request_link(MiningRequest *req)
{
	static SPIPlanPtr plan = NULL;
	Oid				  types[2] = {INT4OID, INT4OID};
	Datum			  args[2] = {Int32GetDatum(req->id), Int32GetDatum(req->odoo_id)};

	(void) request_write(&plan,
						 "UPDATE lead_enrich.mining_request SET odoo_request_id = $2 "
						 "WHERE id OPERATOR(pg_catalog.=) $1",
						 2, types, args, NULL);
}

/*
 * company_with_people: the company object with the contacts under
 * "people_data", as kept in lead_state.company.
 */
static char *
company_with_people(JsonbContainer *company, JsonbValue *people)
{
	char *c = jsonb_container_to_cstring(company);
	char *p;
	int	  len = strlen(c);

	if (people == NULL || people->type != jbvBinary)
		return c;
	p = JsonbToCString(NULL, people->val.binary.data, people->val.binary.len);
	while (len > 0 && c[len - 1] != '}')
		len--;
	if (len == 0)
		return c;
	c[len - 1] = '\0';
	/* an empty object is "{}": no comma then */
	return psprintf("%s%s\"people_data\": %s}", c,
					JsonContainerSize(company) > 0 ? ", " : "", p);
}


/* ========================================================================
 * The criteria: every one checked against the attached table and the
 * reference tables before anything is recorded or sent.  Each error names
 * the key and the value (invalid_parameter_value) with a hint listing what
 * is accepted.  Look-ups in lead_enrich's reference tables run as the
 * extension's owner from plans kept for the process; look-ups in Odoo's
 * tables (res_country, crm_team, crm_tag, ...) run as the caller, under
 * the guard generate_leads() holds, their statements prepared once per
 * call.  The result is the normalised criteria (what mining_request
 * keeps), the IAP payload and what Odoo's request row gets, as JSON.
 * ========================================================================
 */

/* the keys generate_leads() takes */
static const char *const crit_keys[] = {
	"lead_number", "search_type", "countries", "states", "industries",
	"company_size_min", "company_size_max", "contact_number", "contact_filter_type",
	"preferred_role", "other_roles", "seniority", "lead_type", "team_id", "user_id", "tags"};

/* Odoo's countries with state filtering (iap_tools) */
static const char *const state_countries[] = {"AR", "AU", "BR", "CA", "IN", "MY", "MX", "NZ", "AE", "US"};

/* One element of a list criterion. */
typedef struct CritItem
{
	bool  is_num;
	char *text; /* the string, trimmed, or the number as jsonb prints it */
	char *json; /* as jsonb prints the element: quoted when a string */
} CritItem;

/* A look-up's statement: a plan kept for the process or for the call. */
typedef struct CritQuery
{
	SPIPlanPtr	plan;
	const char *sql;
	bool		keep; /* lead_enrich's tables: kept, as the extension's owner */
	int			nargs;
	Oid			types[2];
} CritQuery;

LE_NORETURN_BEGIN static void crit_invalid(const char *key, const char *problem, const char *hint) LE_NORETURN_END;

/*
 * crit_invalid: the error of a bad criterion.
 */
static void
crit_invalid(const char *key, const char *problem, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("criteria \"%s\": %s", key, problem),
			 hint ? errhint("%s", hint) : 0));
}

/*
 * jv_json: a value as jsonb prints it (what the errors show).
 */
static char *
jv_json(JsonbValue *v)
{
	Jsonb *jb;

	if (v->type == jbvBinary)
		return JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
	jb = JsonbValueToJsonb(v);
	return JsonbToCString(NULL, &jb->root, VARSIZE(jb));
}

/*
 * crit_get: a key of the criteria, NULL when absent or JSON null (a null
 * is the same as leaving the key out).
 */
static JsonbValue *
crit_get(JsonbContainer *c, const char *key)
{
	JsonbValue *buf = palloc(sizeof(JsonbValue));
	JsonbValue *v = jb_get(c, key, buf);

	return v != NULL && v->type != jbvNull ? v : NULL;
}

/*
 * jv_string: a string value as a C string, NULL when not a string.
 */
static char *
jv_string(JsonbValue *v)
{
	return v != NULL && v->type == jbvString ? pnstrdup(v->val.string.val, v->val.string.len) : NULL;
}

/*
 * jv_text: what ->> gives for a value: the string itself, else its JSON.
 */
static char *
jv_text(JsonbValue *v)
{
	return v->type == jbvString ? jv_string(v) : jv_json(v);
}

/*
 * btrim_spaces: s without its leading and trailing spaces (SQL's btrim).
 */
static char *
btrim_spaces(const char *s)
{
	int len;

	while (*s == ' ')
		s++;
	len = strlen(s);
	while (len > 0 && s[len - 1] == ' ')
		len--;
	return pnstrdup(s, len);
}

/*
 * crit_int: an integer criterion within lo..hi.
 */
static int32
crit_int(const char *key, JsonbValue *v, int64 lo, int64 hi, const char *hint)
{
	Datum n;
	Datum t;

	if (v->type != jbvNumeric)
		crit_invalid(key, psprintf("%s is not an integer", jv_json(v)), hint);
	n = NumericGetDatum(v->val.numeric);
	t = DirectFunctionCall2(numeric_trunc, n, Int32GetDatum(0));
	if (!DatumGetBool(DirectFunctionCall2(numeric_eq, n, t)))
		crit_invalid(key, psprintf("%s is not an integer", jv_json(v)), hint);
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, n, NumericGetDatum(int64_to_numeric(lo)))) < 0 ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, n, NumericGetDatum(int64_to_numeric(hi)))) > 0)
		crit_invalid(key, psprintf("%s is out of range", jv_json(v)), hint);
	return DatumGetInt32(DirectFunctionCall1(numeric_int4, n));
}

/*
 * crit_list: a list criterion's elements, all checked before any is used;
 * a lone value is a list of one.  Elements are non-blank strings (or
 * numbers where numbers_ok).
 */
static List *
crit_list(const char *key, JsonbValue *v, bool numbers_ok, const char *hint)
{
	List *items = NIL;
	int	  n = 1;
	bool  array = v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data);

	if (array)
		n = JsonContainerSize(v->val.binary.data);
	for (int i = 0; i < n; i++)
	{
		JsonbValue *e = array ? getIthJsonbValueFromContainer(v->val.binary.data, i) : v;
		CritItem   *item = palloc0(sizeof(CritItem));

		if (e->type == jbvString && *(item->text = btrim_spaces(jv_string(e))) != '\0')
		{
			StringInfoData s;

			initStringInfo(&s);
			escape_json(&s, item->text);
			item->json = s.data;
		}
		else if (numbers_ok && e->type == jbvNumeric)
		{
			item->is_num = true;
			item->text = item->json = jv_json(e);
		}
		else
			crit_invalid(key, psprintf("%s is not a %s", jv_json(e), numbers_ok ? "name or an id" : "code"),
						 hint);
		items = lappend(items, item);
	}
	return items;
}

/*
 * crit_query: run a look-up with up to two text (or as declared)
 * arguments; returns whether it found a row, whose columns are then in
 * vals (text, NULL for SQL null; vals may be NULL when unneeded).
 */
static bool
crit_query(CritQuery *q, Datum *args, const char *nulls, int ncols, char **vals)
{
	LeGuard g;
	int		ret;

	if (q->keep)
		le_guard_extension(&g);
	if (q->plan == NULL)
	{
		if (q->keep)
			q->plan = le_keep_plan(q->sql, q->nargs, q->types);
		else if ((q->plan = SPI_prepare(q->sql, q->nargs, q->types)) == NULL)
			elog(ERROR, "could not prepare a look-up of the criteria: %s",
				 SPI_result_code_string(SPI_result));
	}
	ret = SPI_execute_plan(q->plan, args, nulls, true, 1);
	if (q->keep)
		le_guard_end(&g);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not check the criteria: %s", SPI_result_code_string(ret));
	for (int i = 0; i < ncols && SPI_processed == 1; i++)
		vals[i] = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1);
	return SPI_processed == 1;
}

/*
 * crit_value: the value of a look-up without arguments (a hint), or NULL.
 */
static char *
crit_value(CritQuery *q)
{
	char *v = NULL;

	(void) crit_query(q, NULL, NULL, 1, &v);
	return v;
}

/*
 * crit_value_sql: the same for a statement of this call only.
 */
static char *
crit_value_sql(const char *sql)
{
	CritQuery q = {NULL, sql, false, 0, {InvalidOid, InvalidOid}};

	return crit_value(&q);
}

/*
 * has_str: whether a list of C strings holds s.
 */
static bool
has_str(List *l, const char *s)
{
	ListCell *lc;

	foreach(lc, l)
	{
		if (strcmp((char *) lfirst(lc), s) == 0)
			return true;
	}
	return false;
}

/*
 * in_array: whether a C array of strings holds s.
 */
static bool
in_array(const char *const *a, int n, const char *s)
{
	for (int i = 0; i < n; i++)
		if (strcmp(a[i], s) == 0)
			return true;
	return false;
}

/*
 * sql_upper, sql_lower: SQL's upper() and lower(), for the same answers
 * as the look-ups.
 */
static char *
sql_upper(const char *s)
{
	return TextDatumGetCString(DirectFunctionCall1Coll(upper, DEFAULT_COLLATION_OID,
													   CStringGetTextDatum(s)));
}

static char *
sql_lower(const char *s)
{
	return TextDatumGetCString(DirectFunctionCall1Coll(lower, DEFAULT_COLLATION_OID,
													   CStringGetTextDatum(s)));
}

/*
 * json_list: a list of C strings as a JSON array (of strings, or of
 * numbers written as they are).
 */
static void
json_list(StringInfo s, List *l, bool numbers)
{
	ListCell *lc;

	appendStringInfoChar(s, '[');
	foreach(lc, l)
	{
		if (lc != list_head(l))
			appendStringInfoString(s, ", ");
		if (numbers)
			appendStringInfoString(s, (char *) lfirst(lc));
		else
			escape_json(s, (char *) lfirst(lc));
	}
	appendStringInfoChar(s, ']');
}

/*
 * json_key: a key and a string value, or nothing when the value is NULL.
 */
static void
json_key(StringInfo s, const char *key, const char *value, bool number)
{
	if (value == NULL)
		return;
	appendStringInfo(s, "%s\"%s\": ", s->len > 1 ? ", " : "", key);
	if (number)
		appendStringInfoString(s, value);
	else
		escape_json(s, value);
}

/*
 * json_key_or_null: a key and a value, null when the value is NULL.
 */
static void
json_key_or_null(StringInfo s, const char *key, const char *value, bool number)
{
	if (value != NULL)
		json_key(s, key, value, number);
	else
		appendStringInfo(s, "%s\"%s\": null", s->len > 1 ? ", " : "", key);
}

/*
 * json_key_list: a key and a list, or nothing when the list is empty
 * (unless always).
 */
static void
json_key_list(StringInfo s, const char *key, List *l, bool numbers, bool always)
{
	if (l == NIL && !always)
		return;
	appendStringInfo(s, "%s\"%s\": ", s->len > 1 ? ", " : "", key);
	json_list(s, l, numbers);
}

/*
 * int_text: an integer criterion as text, NULL when not set.
 */
static char *
int_text(bool set, int32 v)
{
	return set ? psprintf("%d", v) : NULL;
}

/*
 * crit_assignee: team_id or user_id: an id the table can store and, on
 * Odoo's layout, an id of Odoo's table of them.  Returns whether it is set.
 */
static bool
crit_assignee(JsonbContainer *c, LeadTable *lt, const char *key, const char *column_word,
			  const char *table, const char *what, const char *hint, int32 *id)
{
	JsonbValue *v = crit_get(c, key);
	CritQuery	q = {NULL, NULL, false, 1, {INT4OID}};
	Datum		arg;

	if (v == NULL)
		return false;
	*id = crit_int(key, v, 1, PG_INT32_MAX, hint);
	if (lt_col(lt, key) == NULL)
		crit_invalid(key, psprintf("%d cannot be stored: %s has no %s column", *id, lt->qualname, column_word),
					 psprintf("Map \"%s\" to a column with lead_enrich.attach(), or leave %s out.", key, key));
	if (lt->odoo && lt_has_odoo_table(lt, table))
	{
		q.sql = psprintf("SELECT id FROM %s.%s WHERE id = $1", lt->nspname, table);
		arg = Int32GetDatum(*id);
		if (!crit_query(&q, &arg, NULL, 0, NULL))
			crit_invalid(key, psprintf("unknown %s %d", what, *id),
						 psprintf("%s is an id of %s.%s.", key, lt->nspname, table));
	}
	return true;
}

/* the kept look-ups in lead_enrich's reference tables */
/* a look-up in lead_enrich's tables, its plan kept for the process */
#define KEPT_QUERY(sql, nargs, ...) \
	{ \
		NULL, sql, true, nargs, \
		{ \
			__VA_ARGS__ \
		} \
	}

static CritQuery q_iso_country = KEPT_QUERY("SELECT ic.code FROM lead_enrich.iso_country ic WHERE ic.code = upper($1)", 1, TEXTOID);
static CritQuery q_iso_state = KEPT_QUERY("SELECT s.code FROM lead_enrich.iso_subdivision s WHERE s.country = $1 AND s.code = $2", 2, TEXTOID, TEXTOID);
static CritQuery q_industry = KEPT_QUERY("SELECT i.name, array_to_string(i.reveal_ids, ',') FROM lead_enrich.mining_industry i "
										 "WHERE lower(i.name) = lower($1) OR lower($1) = ANY (i.reveal_ids) "
										 "OR lower($1) = array_to_string(i.reveal_ids, ',')",
										 1, TEXTOID);
static CritQuery q_role = KEPT_QUERY("SELECT r.name, r.reveal_id FROM lead_enrich.mining_role r "
									 "WHERE lower(r.name) = $1 OR lower(r.reveal_id) = $1",
									 1, TEXTOID);
static CritQuery q_industry_hint = KEPT_QUERY("SELECT 'Industries: ' || string_agg(name, ', ' ORDER BY sequence, id) || '.' "
											  "FROM lead_enrich.mining_industry",
											  0, InvalidOid);
static CritQuery q_role_hint = KEPT_QUERY("SELECT 'Roles: ' || string_agg(r.name, ', ' ORDER BY r.id) || '.' FROM lead_enrich.mining_role r", 0, InvalidOid);
static CritQuery q_seniority_hint = KEPT_QUERY("SELECT 'Seniorities: ' || string_agg(s.name, ', ' ORDER BY s.id) || '.' "
											   "FROM lead_enrich.mining_seniority s",
											   0, InvalidOid);
static CritQuery q_seniority = KEPT_QUERY("SELECT s.name, s.reveal_id FROM lead_enrich.mining_seniority s "
										  "WHERE lower(s.name) = $1 OR lower(s.reveal_id) = $1",
										  1, TEXTOID);

/*
 * check_criteria: check every criterion (see the section's comment) and
 * return the request to record and send:
 *
 *	{"criteria" (normalised: defaults applied, names and codes resolved),
 *	 "payload" (the "data" object of the IAP call), "lead_type", "team_id",
 *	 "user_id", "tag_ids", "stage_id", "people",
 *	 "odoo_request" (the values of Odoo's request row, on Odoo's layout),
 *	 "country_ids", "state_ids", "industry_reveal_ids", "other_role_rids",
 *	 "preferred_rid", "seniority_rid" (what Odoo's request row links to)}
 */
static Jsonb *
check_criteria(Jsonb *criteria, LeadTable *lt)
{
	JsonbContainer	  *c;
	JsonbIterator	  *it;
	JsonbValue		   kv;
	JsonbIteratorToken tok;
	JsonbValue		  *v;
	char			  *hint;
	char			  *vals[2];
	Datum			   args[2];
	ListCell		  *lc;
	const char		  *nsp = lt->nspname;
	bool			   odoo = lt->odoo;
	int32			   lead_number = 3;
	const char		  *search_type = "companies";
	bool			   people;
	List			  *countries = NIL;
	List			  *country_ids = NIL;
	List			  *states = NIL;
	List			  *state_ids = NIL;
	List			  *industries = NIL;
	List			  *industry_rids = NIL; /* each industry's reveal ids, "a,b" */
	List			  *reveal_ids = NIL;
	bool			   has_min = false,
		 has_max = false;
	int32 size_min = 0,
		  size_max = 0;
	bool		has_contacts = false;
	int32		contact_number = 0;
	const char *filter_type = NULL;
	char	   *preferred = NULL;
	char	   *preferred_rid = NULL;
	List	   *other = NIL;
	List	   *other_rids = NIL;
	char	   *seniority = NULL;
	char	   *seniority_rid = NULL;
	char	   *lead_type;
	bool		has_team = false,
		 has_user = false;
	int32 team_id = 0,
		  user_id = 0;
	List		  *tag_ids = NIL;
	char		  *stage_id = NULL;
	StringInfoData norm;
	StringInfoData payload;
	StringInfoData out;

	if (criteria == NULL || !JB_ROOT_IS_OBJECT(criteria))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("criteria must be a JSON object"),
				 errhint("For example '{\"countries\": [\"BE\"], \"industries\": [\"Software & Services\"], \"lead_number\": 10}'.")));
	c = &criteria->root;
	it = JsonbIteratorInit(c);
	while ((tok = JsonbIteratorNext(&it, &kv, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			char *k = pnstrdup(kv.val.string.val, kv.val.string.len);

			if (!in_array(crit_keys, lengthof(crit_keys), k))
			{
				StringInfoData known;

				initStringInfo(&known);
				for (int i = 0; i < (int) lengthof(crit_keys); i++)
					appendStringInfo(&known, "%s%s", i ? ", " : "", crit_keys[i]);
				crit_invalid(k, "unknown key", psprintf("Known keys: %s.", known.data));
			}
		}
	}

	/* how many, and what */
	if ((v = crit_get(c, "lead_number")) != NULL)
		lead_number = crit_int("lead_number", v, 1, 200, "lead_number goes from 1 to 200 (default 3).");
	if ((v = crit_get(c, "search_type")) != NULL)
	{
		search_type = jv_text(v);
		if (v->type != jbvString ||
			(strcmp(search_type, "companies") != 0 && strcmp(search_type, "people") != 0))
			crit_invalid("search_type", psprintf("%s is not a search type", jv_json(v)),
						 "Use \"companies\" (companies only) or \"people\" (companies and their contacts).");
	}
	people = strcmp(search_type, "people") == 0;

	/* countries: ISO 3166-1 alpha-2, in res_country on Odoo's layout */
#define COUNTRIES_HINT "For example \"countries\": [\"BE\", \"FR\"] (ISO 3166-1 alpha-2 codes)."
	if ((v = crit_get(c, "countries")) == NULL)
		crit_invalid("countries", "at least one country is required", COUNTRIES_HINT);
	if (odoo)
		hint = crit_value_sql(psprintf("SELECT CASE WHEN count(*) <= 40 THEN %s || string_agg(code, ', ' ORDER BY code) || '.' "
									   "ELSE %s END FROM %s.res_country",
									   quote_literal_cstr(psprintf("Countries of %s.res_country: ", nsp)),
									   quote_literal_cstr(psprintf("Use the codes of %s.res_country (ISO 3166-1 alpha-2, e.g. BE, US).", nsp)),
									   nsp));
	else
		hint = "Use ISO 3166-1 alpha-2 codes such as BE, DE or US (lead_enrich.iso_country lists them).";
	{
		List	 *items = crit_list("countries", v, false, hint);
		CritQuery q = {NULL, NULL, false, 1, {TEXTOID}};

		q.sql = psprintf("SELECT id, upper(code) FROM %s.res_country WHERE upper(code) = upper($1) "
						 "ORDER BY id LIMIT 1",
						 nsp);
		foreach(lc, items)
		{
			CritItem *e = lfirst(lc);
			char	 *id = NULL;
			char	 *code = NULL;

			args[0] = CStringGetTextDatum(e->text);
			if (odoo)
			{
				if (crit_query(&q, args, NULL, 2, vals))
					id = vals[0], code = vals[1];
			}
			else if (crit_query(&q_iso_country, args, NULL, 1, vals))
				code = vals[0];
			if (code == NULL)
				crit_invalid("countries", psprintf("unknown country %s", e->json), hint);
			if (!has_str(countries, code))
			{
				countries = lappend(countries, code);
				country_ids = lappend(country_ids, id);
			}
		}
		if (countries == NIL)
			crit_invalid("countries", "at least one country is required", COUNTRIES_HINT);
	}

	/* states: "CA" or "US-CA", only in the selected state-filtering countries */
	if ((v = crit_get(c, "states")) != NULL)
	{
		List	 *items;
		CritQuery q = {NULL, NULL, false, 2, {TEXTOID, TEXTOID}};
		char	 *last_country = NULL; /* of the last state added */

		hint = "States are subdivision codes of the selected countries, \"CA\" or \"US-CA\"; "
			   "state filtering exists for AR, AU, BR, CA, IN, MY, MX, NZ, AE, US only.";
		items = crit_list("states", v, false, hint);
		q.sql = psprintf("SELECT s.id, s.code FROM %s.res_country_state s JOIN %s.res_country rc ON rc.id = s.country_id "
						 "WHERE upper(rc.code) = $1 AND upper(s.code) = $2 ORDER BY s.id LIMIT 1",
						 nsp, nsp);
		foreach(lc, items)
		{
			CritItem *e = lfirst(lc);
			char	 *x = sql_upper(e->text);
			char	 *dash = strchr(x, '-');
			char	 *prefix = dash ? pnstrdup(x, dash - x) : NULL;
			int		  n = 0;
			ListCell *cc;

			foreach(cc, countries)
			{
				char *cn = lfirst(cc);
				char *code = NULL;
				char *id = NULL;

				if (dash && strcmp(prefix, cn) != 0)
					continue;
				if (dash && !in_array(state_countries, lengthof(state_countries), cn))
					crit_invalid("states", psprintf("%s: Odoo offers no state filtering for %s", e->json, cn), hint);
				if (!in_array(state_countries, lengthof(state_countries), cn))
					continue;
				args[0] = CStringGetTextDatum(cn);
				args[1] = CStringGetTextDatum(dash ? x + strlen(cn) + 1 : x);
				if (odoo)
				{
					if (crit_query(&q, args, NULL, 2, vals))
						id = vals[0], code = vals[1];
				}
				else if (crit_query(&q_iso_state, args, NULL, 1, vals))
					code = vals[0];
				if (code != NULL)
				{
					char *st = psprintf("%s-%s", cn, code);

					if (++n > 1)
						crit_invalid("states",
									 psprintf("%s is ambiguous: it is a state of %s and of %s", e->json,
											  last_country, cn),
									 "Prefix the country: \"US-CA\".");
					if (!has_str(states, st))
					{
						states = lappend(states, st);
						state_ids = lappend(state_ids, id);
						last_country = cn;
					}
				}
			}
			if (n == 0)
			{
				if (dash && !has_str(countries, prefix))
					crit_invalid("states", psprintf("%s is not in a selected country", e->json),
								 "Add its country to \"countries\".");
				crit_invalid("states", psprintf("unknown state %s", e->json),
							 psprintf("%s%s", hint,
									  odoo ? psprintf(" Odoo's states are in %s.res_country_state.", nsp)
										   : " ISO 3166-2 codes are in lead_enrich.iso_subdivision."));
			}
		}
	}

	/* industries: Odoo's names or reveal ids */
	if ((v = crit_get(c, "industries")) != NULL)
	{
		List *items;

		hint = crit_value(&q_industry_hint);
		items = crit_list("industries", v, true, hint);
		foreach(lc, items)
		{
			CritItem *e = lfirst(lc);

			args[0] = CStringGetTextDatum(e->text);
			if (!crit_query(&q_industry, args, NULL, 2, vals))
				crit_invalid("industries", psprintf("unknown industry %s", e->json), hint);
			if (!has_str(industries, vals[0]))
			{
				char *r = pstrdup(vals[1]);
				char *tok_r;

				industries = lappend(industries, vals[0]);
				industry_rids = lappend(industry_rids, pstrdup(vals[1]));
				for (char *t = strtok_r(r, ",", &tok_r); t != NULL; t = strtok_r(NULL, ",", &tok_r))
					reveal_ids = lappend(reveal_ids, t);
			}
		}
	}

	/* company size (employees): a bound left out is not sent */
	if ((v = crit_get(c, "company_size_min")) != NULL)
	{
		size_min = crit_int("company_size_min", v, 1, PG_INT32_MAX,
							"company_size_min is a number of employees, at least 1.");
		has_min = true;
	}
	if ((v = crit_get(c, "company_size_max")) != NULL)
	{
		size_max = crit_int("company_size_max", v, 1, PG_INT32_MAX,
							"company_size_max is a number of employees, at least 1.");
		has_max = true;
	}
	if (has_min && has_max && size_min > size_max)
		crit_invalid("company_size_min",
					 psprintf("%d exceeds company_size_max %d", size_min, size_max),
					 "company_size_min must not exceed company_size_max.");

	/* contacts */
	{
		static const char *const contact_keys[] = {"contact_number", "contact_filter_type",
												   "preferred_role", "other_roles", "seniority"};

		for (int i = 0; i < (int) lengthof(contact_keys); i++)
			if ((v = crit_get(c, contact_keys[i])) != NULL && !people)
				crit_invalid(contact_keys[i], psprintf("%s applies to contacts only", jv_json(v)),
							 "Add \"search_type\": \"people\" to get companies and their contacts.");
	}
	if (people)
	{
		has_contacts = true;
		contact_number = 5;
		if ((v = crit_get(c, "contact_number")) != NULL)
			contact_number = crit_int("contact_number", v, 1, 5,
									  "contact_number goes from 1 to 5 contacts per company (default 5).");
		filter_type = crit_get(c, "seniority") != NULL ? "seniority" : "role";
		if ((v = crit_get(c, "contact_filter_type")) != NULL)
		{
			filter_type = jv_text(v);
			if (v->type != jbvString ||
				(strcmp(filter_type, "role") != 0 && strcmp(filter_type, "seniority") != 0))
				crit_invalid("contact_filter_type", psprintf("%s is not a filter type", jv_json(v)),
							 "Use \"role\" (preferred_role, other_roles) or \"seniority\".");
		}
		hint = crit_value(&q_role_hint);
		if (strcmp(filter_type, "role") == 0)
		{
			if ((v = crit_get(c, "seniority")) != NULL)
				crit_invalid("seniority", psprintf("%s needs \"contact_filter_type\": \"seniority\"", jv_json(v)),
							 "Filter contacts by role or by seniority, not both.");
			if ((v = crit_get(c, "preferred_role")) != NULL)
			{
				if (v->type != jbvString)
					crit_invalid("preferred_role", psprintf("%s is not a role name", jv_json(v)), hint);
				args[0] = CStringGetTextDatum(sql_lower(btrim_spaces(jv_string(v))));
				if (!crit_query(&q_role, args, NULL, 2, vals))
					crit_invalid("preferred_role", psprintf("unknown role %s", jv_json(v)), hint);
				preferred = vals[0];
				preferred_rid = vals[1];
			}
			if ((v = crit_get(c, "other_roles")) != NULL)
			{
				List *items = crit_list("other_roles", v, false, hint);

				foreach(lc, items)
				{
					CritItem *e = lfirst(lc);

					args[0] = CStringGetTextDatum(sql_lower(e->text));
					if (!crit_query(&q_role, args, NULL, 2, vals))
						crit_invalid("other_roles", psprintf("unknown role %s", e->json), hint);
					if (!has_str(other, vals[0]))
					{
						other = lappend(other, vals[0]);
						other_rids = lappend(other_rids, vals[1]);
					}
				}
			}
		}
		else
		{
			static const char *const role_keys[] = {"preferred_role", "other_roles"};

			hint = crit_value(&q_seniority_hint);
			for (int i = 0; i < (int) lengthof(role_keys); i++)
				if ((v = crit_get(c, role_keys[i])) != NULL)
					crit_invalid(role_keys[i], psprintf("%s needs \"contact_filter_type\": \"role\"", jv_json(v)),
								 "Filter contacts by role or by seniority, not both.");
			if ((v = crit_get(c, "seniority")) == NULL)
				crit_invalid("seniority", "a seniority is required to filter contacts by seniority", hint);
			if (v->type != jbvString)
				crit_invalid("seniority", psprintf("%s is not a seniority name", jv_json(v)), hint);
			args[0] = CStringGetTextDatum(sql_lower(btrim_spaces(jv_string(v))));
			if (!crit_query(&q_seniority, args, NULL, 2, vals))
				crit_invalid("seniority", psprintf("unknown seniority %s", jv_json(v)), hint);
			seniority = vals[0];
			seniority_rid = vals[1];
		}
	}

	/* assignment: team, salesperson, type, tags */
	has_team = crit_assignee(c, lt, "team_id", "team", "crm_team", "sales team",
							 "team_id is the id of a sales team.", &team_id);
	has_user = crit_assignee(c, lt, "user_id", "salesperson", "res_users", "user",
							 "user_id is the id of a salesperson.", &user_id);
	if ((v = crit_get(c, "lead_type")) != NULL)
	{
		lead_type = jv_text(v);
		if (v->type != jbvString ||
			(strcmp(lead_type, "lead") != 0 && strcmp(lead_type, "opportunity") != 0))
			crit_invalid("lead_type", psprintf("%s is not a lead type", jv_json(v)),
						 "Use \"lead\" or \"opportunity\".");
		if (lt_col(lt, "type") == NULL)
			crit_invalid("lead_type", psprintf("%s cannot be stored: %s has no type column", jv_json(v), lt->qualname),
						 "Map \"type\" to a column with lead_enrich.attach(), or leave lead_type out.");
	}
	else
	{
		/* Odoo: leads if the team uses leads (or no team), else opportunities */
		lead_type = "lead";
		if (odoo && has_team && lt_has_odoo_table(lt, "crm_team"))
		{
			CritQuery q = {NULL, NULL, false, 1, {INT4OID}};

			q.sql = psprintf("SELECT CASE WHEN use_leads IS FALSE THEN 'opportunity' ELSE 'lead' END "
							 "FROM %s.crm_team WHERE id = $1",
							 nsp);
			if (crit_value_sql(psprintf("SELECT 1 FROM pg_catalog.pg_attribute "
										"WHERE attrelid = %s::pg_catalog.regclass AND attname = 'use_leads' "
										"AND NOT attisdropped",
										quote_literal_cstr(psprintf("%s.crm_team", nsp)))) != NULL)
			{
				args[0] = Int32GetDatum(team_id);
				if (crit_query(&q, args, NULL, 1, vals) && vals[0] != NULL)
					lead_type = vals[0];
			}
		}
	}
	if ((v = crit_get(c, "tags")) != NULL)
	{
		List	 *items;
		CritQuery qn = {NULL, NULL, false, 1, {NUMERICOID}};
		CritQuery qs = {NULL, NULL, false, 1, {TEXTOID}};

		if (!odoo || !lt_has_odoo_table(lt, "crm_tag") || !lt_has_odoo_table(lt, "crm_tag_rel"))
			crit_invalid("tags",
						 psprintf("%s cannot be stored: tags need Odoo's crm_tag and crm_tag_rel next to %s",
								  jv_json(v), lt->qualname),
						 "Leave tags out for a table that is not Odoo's crm_lead.");
		hint = crit_value_sql(psprintf("SELECT %s || string_agg(coalesce(name ->> 'en_US', name::text) || ' (' || id || ')', "
									   "', ' ORDER BY id) || '.' FROM %s.crm_tag",
									   quote_literal_cstr(psprintf("Tags of %s.crm_tag: ", nsp)), nsp));
		items = crit_list("tags", v, true, hint);
		qn.sql = psprintf("SELECT id::int4 FROM %s.crm_tag WHERE id::numeric = $1 ORDER BY id", nsp);
		qs.sql = psprintf("SELECT id::int4 FROM %s.crm_tag t WHERE EXISTS "
						  "(SELECT 1 FROM jsonb_each_text(CASE WHEN jsonb_typeof(to_jsonb(t.name)) = 'object' "
						  "THEN to_jsonb(t.name) ELSE jsonb_build_object('x', t.name) END) n "
						  "WHERE lower(n.value) = lower($1)) ORDER BY id",
						  nsp);
		foreach(lc, items)
		{
			CritItem  *e = lfirst(lc);
			CritQuery *q = e->is_num ? &qn : &qs;
			int		   ret;

			args[0] = e->is_num ? DirectFunctionCall3(numeric_in, CStringGetDatum(e->text),
													  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1))
								: CStringGetTextDatum(e->text);
			if (q->plan == NULL && (q->plan = SPI_prepare(q->sql, 1, q->types)) == NULL)
				elog(ERROR, "could not prepare a look-up of the criteria");
			ret = SPI_execute_plan(q->plan, args, NULL, true, 0);
			if (ret != SPI_OK_SELECT)
				elog(ERROR, "could not check the criteria: %s", SPI_result_code_string(ret));
			if (SPI_processed == 0)
				crit_invalid("tags", psprintf("unknown tag %s", e->json), hint);
			if (SPI_processed > 1)
			{
				StringInfoData ids;

				initStringInfo(&ids);
				for (uint64 r = 0; r < SPI_processed; r++)
					appendStringInfo(&ids, "%s%s", r ? ", " : "",
									 SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1));
				crit_invalid("tags", psprintf("%s names several tags (%s)", e->json, ids.data),
							 "Give the tag's id instead.");
			}
			vals[0] = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
			if (!has_str(tag_ids, vals[0]))
				tag_ids = lappend(tag_ids, vals[0]);
		}
	}

	/* Odoo's stage on create: the first non-folded stage of the team or of no team */
	if (odoo && lt_has_odoo_table(lt, "crm_stage"))
	{
		CritQuery q = {NULL, NULL, false, 1, {INT4OID}};
		char	  nulls[1] = {has_team ? ' ' : 'n'};

		q.sql = psprintf("SELECT id FROM %s.crm_stage WHERE (team_id IS NULL OR team_id = $1) "
						 "AND fold IS NOT TRUE ORDER BY sequence, id LIMIT 1",
						 nsp);
		args[0] = Int32GetDatum(team_id);
		if (crit_query(&q, args, nulls, 1, vals))
			stage_id = vals[0];
	}

	/* the normalised criteria: what mining_request keeps */
	initStringInfo(&norm);
	appendStringInfoChar(&norm, '{');
	json_key(&norm, "lead_number", int_text(true, lead_number), true);
	json_key(&norm, "search_type", search_type, false);
	json_key_list(&norm, "countries", countries, false, true);
	json_key_list(&norm, "states", states, false, false);
	json_key_list(&norm, "industries", industries, false, false);
	json_key(&norm, "company_size_min", int_text(has_min, size_min), true);
	json_key(&norm, "company_size_max", int_text(has_max, size_max), true);
	json_key(&norm, "contact_number", int_text(has_contacts, contact_number), true);
	json_key(&norm, "contact_filter_type", filter_type, false);
	json_key(&norm, "preferred_role", preferred, false);
	json_key_list(&norm, "other_roles", other, false, false);
	json_key(&norm, "seniority", seniority, false);
	json_key(&norm, "lead_type", lead_type, false);
	json_key(&norm, "team_id", int_text(has_team, team_id), true);
	json_key(&norm, "user_id", int_text(has_user, user_id), true);
	json_key_list(&norm, "tags", tag_ids, true, false);
	appendStringInfoChar(&norm, '}');

	/* the "data" object of Odoo's _prepare_iap_payload */
	initStringInfo(&payload);
	appendStringInfoChar(&payload, '{');
	json_key(&payload, "lead_number", int_text(true, lead_number), true);
	json_key(&payload, "search_type", search_type, false);
	appendStringInfoString(&payload, ", \"countries\": [");
	foreach(lc, countries)
	{
		char	 *cn = lfirst(lc);
		List	 *sub = NIL;
		ListCell *sc;

		foreach(sc, states)
		{
			char *st = lfirst(sc);

			if (strncmp(st, cn, strlen(cn)) == 0 && st[strlen(cn)] == '-')
				sub = lappend(sub, st + strlen(cn) + 1);
		}
		appendStringInfo(&payload, "%s{\"code\": ", lc == list_head(countries) ? "" : ", ");
		escape_json(&payload, cn);
		appendStringInfoString(&payload, ", \"states\": ");
		json_list(&payload, sub, false);
		appendStringInfoChar(&payload, '}');
	}
	appendStringInfoChar(&payload, ']');
	json_key_list(&payload, "industry_ids", reveal_ids, false, false);
	json_key(&payload, "company_size_min", int_text(has_min, size_min), true);
	json_key(&payload, "company_size_max", int_text(has_max, size_max), true);
	if (people)
	{
		json_key(&payload, "contact_number", int_text(true, contact_number), true);
		json_key(&payload, "contact_filter_type", filter_type, false);
		if (strcmp(filter_type, "role") == 0)
		{
			if (preferred_rid != NULL)
				json_key(&payload, "preferred_role", preferred_rid, false);
			else
				appendStringInfoString(&payload, ", \"preferred_role\": false");
			json_key_list(&payload, "other_roles", other_rids, false, true);
		}
		else
			json_key(&payload, "seniority", seniority_rid, false);
	}
	appendStringInfoChar(&payload, '}');

	/* what src/mining.c and lead_table.c need */
	initStringInfo(&out);
	appendStringInfo(&out, "{\"criteria\": %s, \"payload\": %s", norm.data, payload.data);
	appendStringInfo(&out, ", \"people\": %s", people ? "true" : "false");
	json_key(&out, "lead_type", lead_type, false);
	json_key(&out, "team_id", int_text(has_team, team_id), true);
	json_key(&out, "user_id", int_text(has_user, user_id), true);
	json_key_list(&out, "tag_ids", tag_ids, true, true);
	json_key(&out, "stage_id", stage_id, true);
	if (odoo)
	{
		StringInfoData o;

		initStringInfo(&o);
		appendStringInfoString(&o, "{\"state\": \"draft\"");
		json_key(&o, "lead_number", int_text(true, lead_number), true);
		json_key(&o, "search_type", search_type, false);
		json_key(&o, "lead_type", lead_type, false);
		json_key_or_null(&o, "team_id", int_text(has_team, team_id), true);
		json_key_or_null(&o, "user_id", int_text(has_user, user_id), true);
		json_key(&o, "filter_on_size", has_min || has_max ? "true" : "false", true);
		json_key(&o, "company_size_min", int_text(true, has_min ? size_min : 1), true);
		json_key(&o, "company_size_max", int_text(true, has_max ? size_max : 1000), true);
		json_key_or_null(&o, "contact_number", int_text(has_contacts, contact_number), true);
		json_key_or_null(&o, "contact_filter_type", filter_type, false);
		json_key_or_null(&o, "create_uid", int_text(has_user, user_id), true);
		json_key_or_null(&o, "write_uid", int_text(has_user, user_id), true);
		appendStringInfoChar(&o, '}');
		appendStringInfo(&out, ", \"odoo_request\": %s", o.data);
		json_key_list(&out, "country_ids", country_ids, true, true);
		json_key_list(&out, "state_ids", state_ids, true, true);
	}
	json_key_list(&out, "industry_reveal_ids", industry_rids, false, false);
	json_key_list(&out, "other_role_rids", other_rids, false, true);
	json_key(&out, "preferred_rid", preferred_rid, false);
	json_key(&out, "seniority_rid", seniority_rid, false);
	appendStringInfoChar(&out, '}');

	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data)));
}

/*
 * prepare_request: check the criteria, then record the
 * request in lead_enrich.mining_request and, on Odoo's table, in Odoo's
 * crm_iap_lead_mining_request.
 */
static MiningRequest *
prepare_request(Jsonb *criteria, LeadTable *lt)
{
	JsonbContainer *root;
	JsonbValue		buf;
	JsonbValue	   *v;
	MiningRequest  *req = palloc0(sizeof(MiningRequest));
	int				lead_number;
	int				contacts;

	req->prep = check_criteria(criteria, lt);
	root = &req->prep->root;

	req->people = jb_get_text(root, "people") != NULL && strcmp(jb_get_text(root, "people"), "true") == 0;
	req->lead_type = jb_get_text(root, "lead_type");
	req->team_id = jb_get_text(root, "team_id");
	req->user_id = jb_get_text(root, "user_id");
	req->stage_id = jb_get_text(root, "stage_id");
	req->payload = jsonb_container_to_cstring(jb_get_object(root, "payload"));
	v = jb_get(root, "tag_ids", &buf);
	if (v != NULL && v->type == jbvBinary && JsonContainerSize(v->val.binary.data) > 0)
	{
		char *t = JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);

		/* [1, 2] -> {1, 2} */
		t[0] = '{';
		t[strlen(t) - 1] = '}';
		req->tag_ids = t;
	}
	lead_number = atoi(jb_get_text(jb_get_object(root, "payload"), "lead_number"));
	contacts = req->people
				   ? atoi(jb_get_text(jb_get_object(root, "payload"), "contact_number"))
				   : 0;
	req->max_credits = lead_number * (1 + contacts);

	request_open(req, lt);
	/* Odoo's own request row, so that leads can point to it */
	req->odoo_id = lt_mine_odoo_request(lt, req->name, req->prep);
	if (req->odoo_id != 0)
		request_link(req);
	req->link_id = psprintf("%d", req->odoo_id != 0 ? req->odoo_id : req->id);
	return req;
}

/*
 * finish_request: the request's outcome, in lead_enrich.mining_request
 * (credits: one per company delivered plus one per contact) and on Odoo's
 * request row.
 */
static void
finish_request(MiningRequest *req, LeadTable *lt, const char *state, const char *error_type,
			   const char *error, Datum lead_ids, int companies, int contacts,
			   int skipped)
{
	static SPIPlanPtr plan = NULL;
	Oid				  types[8] = {INT4OID, TEXTOID, TEXTOID, TEXTOID, INT8ARRAYOID,
								  INT4OID, INT4OID, INT4OID};
	Datum			  args[8];
	char			  nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	args[0] = Int32GetDatum(req->id);
	args[1] = CStringGetTextDatum(state);
	if (error_type)
		args[2] = CStringGetTextDatum(error_type);
	else
		nulls[2] = 'n';
	if (error)
		args[3] = CStringGetTextDatum(error);
	else
		nulls[3] = 'n';
	args[4] = lead_ids;
	args[5] = Int32GetDatum(companies);
	args[6] = Int32GetDatum(contacts);
	args[7] = Int32GetDatum(skipped);
	(void) request_write(&plan,
						 "UPDATE lead_enrich.mining_request "
						 "SET state = $2, error_type = $3, error = $4, lead_ids = $5, "
						 "    companies = $6, contacts = $7, skipped = $8, "
						 "    credits = $6 OPERATOR(pg_catalog.+) $7, "
						 "    finished_at = pg_catalog.clock_timestamp() "
						 "WHERE id OPERATOR(pg_catalog.=) $1",
						 8, types, args, nulls);
	if (req->odoo_id != 0)
		lt_mine_odoo_finish(lt, req->odoo_id, state, error_type);
}

/*
 * empty_ids: an empty bigint[].
 */
static Datum
empty_ids(void)
{
	return PointerGetDatum(construct_empty_array(INT8OID));
}

/*
 * opt_text: a parameter that may be NULL.
 */
static void
opt_text(Datum *values, char *nulls, int param, const char *v)
{
	if (v != NULL)
	{
		values[param - 1] = CStringGetTextDatum(v);
		nulls[param - 1] = ' ';
	}
	else
		nulls[param - 1] = 'n';
}

/*
 * opt_int8: an integer parameter given as text, or NULL.
 */
static void
opt_int8(Datum *values, char *nulls, int param, const char *v)
{
	if (v != NULL)
	{
		values[param - 1] = DirectFunctionCall1(int8in, CStringGetDatum(v));
		nulls[param - 1] = ' ';
	}
	else
		nulls[param - 1] = 'n';
}

/*
 * mining_seed: what the request's JSON-RPC id is derived from: the
 * database, the table, the criteria and how many requests with the same
 * criteria were answered before.  A call that failed after the provider
 * committed (a timeout) is rolled back, so the same call made again gets
 * the same id and the provider's replay store answers it with the same
 * companies, free; a new run after an answered one gets a new id.
 */
static char *
mining_seed(LeadTable *lt, MiningRequest *req)
{
	Oid			  type = INT4OID;
	Datum		  arg = Int32GetDatum(req->id);
	LeGuard		  g;
	char		 *seed = NULL;
	MemoryContext cxt = CurrentMemoryContext;

	le_guard_extension(&g);
	if (SPI_execute_with_args("SELECT r.criteria::text || '|' || r.lead_table || '|' || "
							  "  (SELECT count(*) FROM lead_enrich.mining_request p "
							  "   WHERE p.criteria = r.criteria AND p.lead_table = r.lead_table "
							  "     AND p.id <> r.id AND (p.state = 'done' OR p.error_type = 'no_result')) "
							  "FROM lead_enrich.mining_request r WHERE r.id = $1",
							  1, &type, &arg, NULL, false, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		MemoryContextSwitchTo(cxt);
		seed = psprintf("%s|mining|%s", lt->dbuuid,
						SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	}
	le_guard_end(&g);
	MemoryContextSwitchTo(cxt);
	if (seed == NULL)
		elog(ERROR, "could not read mining request %d", req->id);
	return seed;
}

/*
 * lead_enrich.generate_leads(criteria): see the file header.
 */
Datum
lead_enrich_generate_leads(PG_FUNCTION_ARGS)
{
	ReturnSetInfo  *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Jsonb		   *criteria = PG_ARGISNULL(0) ? NULL : PG_GETARG_JSONB_P(0);
	LeadTable	   *lt;
	char		   *token;
	MiningRequest  *req;
	RpcCall			call;
	HttpRequest	   *h;
	char			rpc_id[33];
	JsonbContainer *result;
	JsonbValue		buf;
	JsonbValue	   *data;
	Jsonb		   *data_jb;
	int				n;
	bool		   *dup;
	Datum		   *id_datums;
	int				nleads = 0;
	int				ncontacts = 0;
	int				nskipped = 0;
	StringInfoData	skipped;
	ChatterBuf		notes;
	OutcomeBuf		outcomes = {0};
	char		  **seen_cid;
	char		  **seen_dom;
	int				i;
	TimestampTz		t0 = GetCurrentTimestamp();
	TimestampTz		t1;
	LeGuard			guard;

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	lt = lead_table_load(false);
	lead_table_check(lt);
	token = le_account_token_lookup(lt, false);

	/*
	 * The caller's statements on the CRM table run under the pinned
	 * search_path (guard.c), to the end of the call: every operator and
	 * function below is pg_catalog's.
	 */
	le_guard_crm(&guard, lt);
	req = prepare_request(criteria, lt);

	/* the call: Odoo's _perform_request */
	t1 = GetCurrentTimestamp();
	rpc_make_id(rpc_id, mining_seed(lt, req));
	rpc_init(&call, LE_SERVICE_MINING, "/iap/clearbit/2/lead_mining_request", rpc_id);
	rpc_params_begin(&call);
	appendStringInfoString(&call.http.body, "{\"account_token\": ");
	append_json_string(&call.http.body, token);
	appendStringInfoString(&call.http.body, ", \"dbuuid\": ");
	append_json_string(&call.http.body, lt->dbuuid);
	appendStringInfo(&call.http.body, ", \"data\": %s}", req->payload);
	rpc_params_end(&call);
	h = &call.http;
	http_perform(&h, 1, 1);
	rpc_finish(&call);
	elog(DEBUG1, "lead mining request %s: checked in %.1f ms, provider answered in %.1f ms (%s)",
		 req->name, (double) (t1 - t0) / 1000.0, h->total_time * 1000.0,
		 rpc_status_name(call.status));
	t1 = GetCurrentTimestamp();

	result = call.status == RPC_OK ? &call.result->root : NULL;
	data = result ? jb_get(result, "data", &buf) : NULL;
	if (call.status == RPC_OK &&
		(data == NULL || data->type != jbvBinary || !JsonContainerIsArray(data->val.binary.data)) &&
		!(data == NULL || data->type == jbvNull || (data->type == jbvBool && !data->val.boolean)))
	{
		call.status = RPC_BAD_RESPONSE;
		call.message = pstrdup("\"data\" is not a list of companies");
	}
	n = (call.status == RPC_OK && data != NULL && data->type == jbvBinary)
			? JsonContainerSize(data->val.binary.data)
			: 0;
	/* Odoo 17 ignores credit_error and says "no result" (reference 9.4) */
	if (call.status == RPC_OK && n == 0 && jb_get_text(result, "credit_error") != NULL)
	{
		call.status = RPC_INSUFFICIENT_CREDIT;
		call.message = pstrdup("The provider answered with credit_error.");
	}

	if (call.status == RPC_INSUFFICIENT_CREDIT)
	{
		finish_request(req, lt, "error", "credits", call.message, empty_ids(), 0, 0, 0);
		ereport(WARNING,
				(errcode(ERRCODE_LE_INSUFFICIENT_CREDIT),
				 errmsg("not enough credits to generate leads: request %s created no leads", req->name),
				 errdetail("%s The request may cost up to %d credits.", call.message, req->max_credits),
				 errhint("Buy credits at %s, then run the request again with its criteria from lead_enrich.mining_request.",
						 call.credit_url ? call.credit_url : "the URL lead_enrich.iap_credit_url() returns")));
		le_guard_end(&guard);
		SPI_finish();
		return (Datum) 0;
	}
	if (call.status != RPC_OK)
		rpc_report(&call, ERROR); /* rolls the request back, as Odoo does */
	if (n == 0)
	{
		finish_request(req, lt, "draft", "no_result", NULL, empty_ids(), 0, 0, 0);
		ereport(NOTICE,
				(errmsg("request %s did not return any result (no credits were used)", req->name),
				 errhint("Try removing some filters.")));
		le_guard_end(&guard);
		SPI_finish();
		return (Datum) 0;
	}

	/* the leads */
	data_jb = JsonbValueToJsonb(data);
	lt_prepare(lt);
	lt_mine_prepare(lt);
	chatter_init(&notes, lt);
	dup = lt_mine_duplicates(lt, data_jb, n);

	id_datums = palloc(sizeof(Datum) * n);
	seen_cid = palloc0(sizeof(char *) * n);
	seen_dom = palloc0(sizeof(char *) * n);
	initStringInfo(&skipped);

	for (i = 0; i < n; i++)
	{
		JsonbValue	   *item = getIthJsonbValueFromContainer(data->val.binary.data, i);
		JsonbContainer *cd;
		JsonbContainer *first = NULL;
		JsonbValue		pbuf;
		JsonbValue	   *people = NULL;
		int				npeople = 0;
		char		   *cid;
		char		   *dom;
		char		   *name;
		char		   *email;
		char		   *norm;
		Datum			values[MINE_P_COUNT];
		char			nulls[MINE_P_COUNT];
		int64			lead_id;
		NoteLead		lead;
		char		   *rec_name;
		char		   *rec_company;
		Datum			out[6];
		bool			outnull[6] = {false, false, false, false, false, false};
		bool			again = false;

		if (item == NULL || item->type != jbvBinary ||
			(cd = jb_get_object(item->val.binary.data, "company_data")) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("the mining provider sent an invalid response"),
					 errdetail("Item %d of \"data\" has no \"company_data\" object.", i)));
		people = jb_get(item->val.binary.data, "people_data", &pbuf);
		if (people != NULL && people->type == jbvBinary && JsonContainerIsArray(people->val.binary.data))
		{
			JsonbValue *p0;

			npeople = JsonContainerSize(people->val.binary.data);
			p0 = npeople > 0 ? getIthJsonbValueFromContainer(people->val.binary.data, 0) : NULL;
			if (p0 != NULL && p0->type == jbvBinary && JsonContainerIsObject(p0->val.binary.data))
				first = p0->val.binary.data;
		}
		else
			people = NULL;
		ncontacts += npeople;

		cid = jb_get_text(cd, "clearbit_id");
		dom = jb_get_text(cd, "domain");
		for (char *c = dom; c && *c; c++)
			*c = pg_tolower((unsigned char) *c);
		/* the same company twice in one answer */
		for (int j = 0; j < i && !again; j++)
			again = (cid && seen_cid[j] && strcmp(cid, seen_cid[j]) == 0) ||
					(dom && seen_dom[j] && strcmp(dom, seen_dom[j]) == 0);
		seen_cid[i] = cid;
		seen_dom[i] = dom;
		if (dup[i] || again)
		{
			/* name the first ten in the NOTICE */
			if (++nskipped <= 10)
				appendStringInfo(&skipped, "%s%s", skipped.len ? ", " : "",
								 dom ? dom : (cid ? cid : "?"));
			continue;
		}

		/* Odoo's lead_vals_from_response */
		name = jb_get_text(cd, "name");
		if (name == NULL)
			name = dom;
		if (name == NULL)
			name = jb_get_text(cd, "legal_name");
		if (name == NULL)
			name = cid ? cid : "?";
		opt_text(values, nulls, MINE_P_NAME, name);
		opt_text(values, nulls, MINE_P_PARTNER_NAME,
				 jb_get_text(cd, "legal_name") ? jb_get_text(cd, "legal_name") : jb_get_text(cd, "name"));
		email = jb_get_array_text(cd, "email", 0);
		if (email == NULL)
			email = jb_get_text(cd, "email"); /* a lone string */
		if (req->people && first != NULL)
		{
			email = jb_get_text(first, "email");
			opt_text(values, nulls, MINE_P_CONTACT_NAME, jb_get_text(first, "full_name"));
			opt_text(values, nulls, MINE_P_FUNCTION, jb_get_text(first, "title"));
		}
		else
		{
			opt_text(values, nulls, MINE_P_CONTACT_NAME, NULL);
			opt_text(values, nulls, MINE_P_FUNCTION, NULL);
		}
		opt_text(values, nulls, MINE_P_EMAIL, email);
		norm = email ? email_normalize_strict(email) : NULL;
		opt_text(values, nulls, MINE_P_EMAIL_NORMALIZED, norm);
		opt_text(values, nulls, MINE_P_EMAIL_DOMAIN, norm ? psprintf("@%s", email_domain(norm)) : NULL);
		opt_text(values, nulls, MINE_P_PHONE,
				 jb_get_text(cd, "phone") ? jb_get_text(cd, "phone") : jb_get_array_text(cd, "phone_numbers", 0));
		opt_text(values, nulls, MINE_P_WEBSITE, dom ? psprintf("https://www.%s", dom) : NULL);
		opt_text(values, nulls, MINE_P_STREET, jb_get_text(cd, "location"));
		opt_text(values, nulls, MINE_P_CITY, jb_get_text(cd, "city"));
		opt_text(values, nulls, MINE_P_ZIP, jb_get_text(cd, "postal_code"));
		opt_text(values, nulls, MINE_P_COUNTRY, jb_get_text(cd, "country_code"));
		opt_text(values, nulls, MINE_P_STATE, jb_get_text(cd, "state_code"));
		opt_text(values, nulls, MINE_P_REVEAL_ID, cid);
		opt_text(values, nulls, MINE_P_TYPE, req->lead_type);
		opt_int8(values, nulls, MINE_P_TEAM, req->team_id);
		opt_int8(values, nulls, MINE_P_USER, req->user_id);
		opt_int8(values, nulls, MINE_P_REQUEST, req->link_id);
		opt_int8(values, nulls, MINE_P_STAGE, req->stage_id);

		lead_id = lt_mine_insert(lt, values, nulls, &rec_name, &rec_company);
		id_datums[nleads] = Int64GetDatum(lead_id);
		nleads++;

		queue_outcome_add(&outcomes, lead_id, LEAD_MINED, email, dom,
						  DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
															 CStringGetDatum(company_with_people(cd, people)))),
						  NULL, 1 + npeople, NULL);
		lead.id = lead_id;
		lead.name = rec_name;
		lead.company = rec_company;
		chatter_mined(&notes, lead, cd, people ? people->val.binary.data : NULL);

		out[0] = Int32GetDatum(req->id);
		out[1] = CStringGetTextDatum(req->name);
		out[2] = Int64GetDatum(lead_id);
		out[3] = CStringGetTextDatum(name);
		if (dom)
			out[4] = CStringGetTextDatum(dom);
		else
			outnull[4] = true;
		out[5] = Int32GetDatum(npeople);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, outnull);
	}

	/* the leads' outcomes in one statement, then their notes in one */
	queue_outcomes_write(&outcomes, "mining");
	chatter_flush(lt, &notes);

	/* default tags, in Odoo's crm_tag_rel */
	if (req->tag_ids != NULL && nleads > 0)
		lt_mine_tag(lt, PointerGetDatum(construct_array(id_datums, nleads, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE)),
					req->tag_ids);

	finish_request(req, lt, "done", NULL, NULL,
				   nleads > 0
					   ? PointerGetDatum(construct_array(id_datums, nleads, INT8OID, 8,
														 FLOAT8PASSBYVAL, TYPALIGN_DOUBLE))
					   : empty_ids(),
				   n, ncontacts, nskipped);
	elog(DEBUG1, "lead mining request %s: %d leads created in %.1f ms",
		 req->name, nleads, (double) (GetCurrentTimestamp() - t1) / 1000.0);
	if (nskipped > 0)
		ereport(NOTICE,
				(errmsg("request %s: skipped %d of %d companies already in %s",
						req->name, nskipped, n, lt->qualname),
				 errdetail("Already there (same reveal id, website or e-mail domain): %s%s.", skipped.data,
						   nskipped > 10 ? psprintf(" and %d more", nskipped - 10) : "")));
	le_guard_end(&guard);
	SPI_finish();
	return (Datum) 0;
}
