/*-------------------------------------------------------------------------
 *
 * mining.c
 *	  Lead mining: lead_enrich.generate_leads(criteria), Odoo's "Generate
 *	  Leads" (addons/crm_iap_mine).
 *
 * One call does:
 *
 *	1. lead_enrich._mining_prepare(criteria) (PL/pgSQL): check every
 *	   criterion, record the request (LMR001, ...) in
 *	   lead_enrich.mining_request and, on an Odoo table, in Odoo's
 *	   crm_iap_lead_mining_request; it returns the IAP payload.
 *	2. one JSON-RPC call to /iap/clearbit/2/lead_mining_request.
 *	3. the leads: companies already in the table (same reveal id, website
 *	   domain or e-mail domain, or mined before) are skipped, the others
 *	   inserted through the attached table's column mapping with Odoo's
 *	   rules (and, on Odoo's table, the values Odoo's ORM would set), tags
 *	   added, and the company and its contacts kept in lead_state with
 *	   status "mined", so enrichment never sends them.
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

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "access/xact.h"
#include "miscadmin.h"

#include "enrich.h"
#include "errcodes.h"
#include "guard.h"
#include "lead_enrich.h"

PG_FUNCTION_INFO_V1(lead_enrich_generate_leads);
PG_FUNCTION_INFO_V1(lead_enrich_mining_request_open);
PG_FUNCTION_INFO_V1(lead_enrich_mining_request_link);
PG_FUNCTION_INFO_V1(lead_enrich_mining_request_close);

/*
 * Who writes lead_enrich.mining_request.  The criteria checks and Odoo's
 * own request row are PL/pgSQL run as the caller (_mining_prepare,
 * _mining_finish); the caller has no rights on mining_request, so those
 * functions record the request through the three C functions below, which
 * write as the extension's owner (guard.c) and only for the request that
 * generate_leads is running in this transaction: mining_active is -1
 * outside generate_leads, 0 until the request is opened, then its id.
 */
static int	mining_active = -1;
static bool mining_callback_set = false;

/*
 * mining_xact_end: a transaction's end ends any request in progress.
 */
static void
mining_xact_end(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
		mining_active = -1;
}

/*
 * mining_check_active: refuse a call from outside generate_leads, or for
 * another request than the one it runs.
 */
static void
mining_check_active(int32 request_id)
{
	if (mining_active < 0 || (request_id >= 0 && request_id != mining_active))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("lead mining requests are recorded by lead_enrich.generate_leads() only")));
}

/*
 * mining_record: run one statement on mining_request as the extension's
 * owner and return its single jsonb column (or NULL).
 */
static Datum
mining_record(const char *sql, int nargs, Oid *types, Datum *args, const char *nulls,
			  bool *isnull)
{
	LeGuard		  g;
	int			  ret;
	Datum		  result = (Datum) 0;
	MemoryContext outer = CurrentMemoryContext;

	*isnull = true;
	SPI_connect();
	le_guard_extension(&g);
	ret = SPI_execute_with_args(sql, nargs, types, args, nulls, false, 0);
	le_guard_end(&g);
	if (ret < 0)
		elog(ERROR, "could not record the mining request: %s", SPI_result_code_string(ret));
	if (SPI_tuptable != NULL && SPI_processed == 1)
	{
		result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
		if (!*isnull)
		{
			MemoryContext old = MemoryContextSwitchTo(outer);

			result = PointerGetDatum(DatumGetJsonbPCopy(result));
			MemoryContextSwitchTo(old);
		}
	}
	SPI_finish();
	return result;
}

/*
 * lead_enrich._mining_request_open(criteria, lead_table): the request's
 * row; returns {"id": ..., "name": ...}.  requested_by is the caller.
 */
Datum
lead_enrich_mining_request_open(PG_FUNCTION_ARGS)
{
	Oid	   types[3] = {JSONBOID, TEXTOID, NAMEOID};
	Datum  args[3];
	Datum  result;
	bool   isnull;
	Jsonb *jb;

	mining_check_active(-1);
	if (mining_active != 0)
		elog(ERROR, "the mining request is already recorded");
	args[0] = PG_GETARG_DATUM(0);
	args[1] = PG_GETARG_DATUM(1);
	args[2] = DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(GetUserId(), false)));
	result = mining_record("INSERT INTO lead_enrich.mining_request (criteria, lead_table, requested_by) "
						   "VALUES ($1, $2, $3) "
						   "RETURNING pg_catalog.jsonb_build_object('id', id, 'name', name)",
						   3, types, args, NULL, &isnull);
	jb = DatumGetJsonbP(result);
	mining_active = atoi(jb_get_text(&jb->root, "id"));
	PG_RETURN_DATUM(result);
}

/*
 * lead_enrich._mining_request_link(request_id, odoo_request_id): the row
 * of Odoo's crm_iap_lead_mining_request that goes with the request.
 */
Datum
lead_enrich_mining_request_link(PG_FUNCTION_ARGS)
{
	Oid	  types[2] = {INT4OID, INT4OID};
	Datum args[2] = {PG_GETARG_DATUM(0), PG_GETARG_DATUM(1)};
	bool  isnull;

	mining_check_active(PG_GETARG_INT32(0));
	(void) mining_record("UPDATE lead_enrich.mining_request SET odoo_request_id = $2 WHERE id = $1",
						 2, types, args, NULL, &isnull);
	PG_RETURN_VOID();
}

/*
 * lead_enrich._mining_request_close(request_id, state, error_type, error,
 * lead_ids, companies, contacts, skipped): the request's outcome; returns
 * {"odoo_request_id": ..., "lead_table": ...} for _mining_finish.
 */
Datum
lead_enrich_mining_request_close(PG_FUNCTION_ARGS)
{
	Oid	  types[8] = {INT4OID, TEXTOID, TEXTOID, TEXTOID, INT8ARRAYOID,
					  INT4OID, INT4OID, INT4OID};
	Datum args[8];
	char  nulls[8];
	bool  isnull;
	Datum result;

	mining_check_active(PG_GETARG_INT32(0));
	for (int i = 0; i < 8; i++)
	{
		nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
		args[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
	}
	result = mining_record("UPDATE lead_enrich.mining_request m "
						   "SET state = $2, error_type = $3, error = $4, lead_ids = $5, "
						   "    companies = $6, contacts = $7, skipped = $8, "
						   "    credits = $6 OPERATOR(pg_catalog.+) $7, finished_at = clock_timestamp() "
						   "WHERE m.id = $1 "
						   "RETURNING pg_catalog.jsonb_build_object('odoo_request_id', m.odoo_request_id, "
						   "                                        'lead_table', m.lead_table)",
						   8, types, args, nulls, &isnull);
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}

/* parameters of the lead INSERT */
enum
{
	P_NAME = 1,
	P_PARTNER_NAME,
	P_EMAIL,
	P_PHONE,
	P_WEBSITE,
	P_STREET,
	P_CITY,
	P_ZIP,
	P_COUNTRY,
	P_STATE,
	P_CONTACT_NAME,
	P_FUNCTION,
	P_REVEAL_ID,
	P_EMAIL_NORMALIZED,
	P_EMAIL_DOMAIN,
	P_TYPE,
	P_TEAM,
	P_USER,
	P_REQUEST,
	P_STAGE,
	P_COUNT = P_STAGE
};

/* The request, as _mining_prepare returned it. */
typedef struct MiningRequest
{
	int	  id;
	char *name;
	bool  people;
	char *payload; /* JSON text of the "data" object */
	char *lead_type;
	char *team_id;
	char *user_id;
	char *stage_id;
	char *link_id; /* what the lead's mining_request column gets */
	char *tag_ids; /* int4[] literal, NULL if none */
	int	  max_credits;
} MiningRequest;

/* A column of the INSERT being built. */
typedef struct InsertBuild
{
	StringInfoData cols;
	StringInfoData vals;
	List		  *used; /* column names already in the list */
} InsertBuild;

/*
 * add_col: one column and its value expression, unless the column is
 * already set (a mapping and an Odoo default naming the same column).
 */
static void
add_col(InsertBuild *b, const char *name, const char *expr)
{
	ListCell *lc;

	foreach(lc, b->used)
	{
		if (strcmp((char *) lfirst(lc), name) == 0)
			return;
	}
	b->used = lappend(b->used, pstrdup(name));
	appendStringInfo(&b->cols, "%s%s", b->cols.len ? ", " : "", quote_identifier(name));
	appendStringInfo(&b->vals, "%s%s", b->vals.len ? ", " : "", expr);
}

/*
 * add_mapped: a mapped logical key, if the table has it.
 */
static void
add_mapped(InsertBuild *b, LeadTable *lt, const char *key, const char *expr)
{
	char *col = jb_get_text(&lt->columns->root, key);

	if (col != NULL)
		add_col(b, col, expr);
}

/*
 * add_mapped_text: a mapped text key from a parameter, cast to the
 * column's type so that a varchar(n) gets a cut value instead of an error.
 */
static void
add_mapped_text(InsertBuild *b, LeadTable *lt, const char *key, int param)
{
	if (lt_col(lt, key) != NULL)
		add_mapped(b, lt, key, psprintf("$%d::%s", param, lt_type(lt, key)));
}

/*
 * odoo_columns: which of the given columns the table has.
 */
static List *
odoo_columns(LeadTable *lt)
{
	static const char *const wanted[] = {
		"priority", "color", "message_bounce", "stage_id", "date_open",
		"date_last_stage_update", "create_date", "write_date", "create_uid",
		"write_uid", "email_normalized", "email_domain_criterion", "email_state",
		"active", "type"};
	StringInfoData q;
	List		  *found = NIL;
	int			   i;

	initStringInfo(&q);
	appendStringInfo(&q,
					 "SELECT attname::text FROM pg_catalog.pg_attribute "
					 "WHERE attrelid = %u AND attnum > 0 AND NOT attisdropped AND attname IN (",
					 lt->relid);
	for (i = 0; i < (int) lengthof(wanted); i++)
		appendStringInfo(&q, "%s%s", i ? ", " : "", quote_literal_cstr(wanted[i]));
	appendStringInfoChar(&q, ')');
	if (SPI_execute(q.data, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the columns of %s", lt->qualname);
	for (uint64 r = 0; r < SPI_processed; r++)
		found = lappend(found, SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1));
	return found;
}

/*
 * has_name: whether a list of C strings holds s.
 */
static bool
has_name(List *names, const char *s)
{
	ListCell *lc;

	foreach(lc, names)
	{
		if (strcmp((char *) lfirst(lc), s) == 0)
			return true;
	}
	return false;
}

/*
 * build_insert_sql: the INSERT of one lead for this table, parameters as
 * in the enum above; it returns the new id.  Columns that are not mapped
 * (or, for Odoo's defaults, do not exist) are left out.
 */
static char *
build_insert_sql(LeadTable *lt)
{
	InsertBuild	   b;
	StringInfoData s;

	memset(&b, 0, sizeof(b));
	initStringInfo(&b.cols);
	initStringInfo(&b.vals);

	add_mapped_text(&b, lt, "name", P_NAME);
	add_mapped_text(&b, lt, "partner_name", P_PARTNER_NAME);
	add_mapped_text(&b, lt, "email", P_EMAIL);
	add_mapped_text(&b, lt, "phone", P_PHONE);
	add_mapped_text(&b, lt, "website", P_WEBSITE);
	add_mapped_text(&b, lt, "street", P_STREET);
	add_mapped_text(&b, lt, "city", P_CITY);
	add_mapped_text(&b, lt, "zip", P_ZIP);
	add_mapped_text(&b, lt, "contact_name", P_CONTACT_NAME);
	add_mapped_text(&b, lt, "function", P_FUNCTION);
	add_mapped_text(&b, lt, "reveal_id", P_REVEAL_ID);
	add_mapped_text(&b, lt, "type", P_TYPE);
	if (lt_col(lt, "country") != NULL)
	{
		if (lt->country_fk)
			add_mapped(&b, lt, "country",
					   psprintf("(SELECT rc.id FROM %s.res_country rc WHERE rc.code = upper($%d) "
								"ORDER BY rc.id LIMIT 1)",
								lt->nspname, P_COUNTRY));
		else
			add_mapped(&b, lt, "country",
					   psprintf("upper($%d)::%s", P_COUNTRY, lt_type(lt, "country")));
	}
	if (lt_col(lt, "state") != NULL)
	{
		if (lt->state_fk && lt->country_fk)
			add_mapped(&b, lt, "state",
					   psprintf("(SELECT s.id FROM %s.res_country_state s JOIN %s.res_country rc "
								"ON rc.id = s.country_id WHERE rc.code = upper($%d) AND s.code = $%d "
								"ORDER BY s.id LIMIT 1)",
								lt->nspname, lt->nspname, P_COUNTRY, P_STATE));
		else if (!lt->state_fk)
			add_mapped(&b, lt, "state", psprintf("$%d::%s", P_STATE, lt_type(lt, "state")));
	}
	add_mapped(&b, lt, "team_id", psprintf("$%d", P_TEAM));
	add_mapped(&b, lt, "user_id", psprintf("$%d", P_USER));
	add_mapped(&b, lt, "mining_request", psprintf("$%d", P_REQUEST));
	add_mapped(&b, lt, "active", "true");
	/* without a reveal id column, the done flag keeps enrichment away */
	if (lt_col(lt, "reveal_id") == NULL)
		add_mapped(&b, lt, "enrich_done", "true");
	if (lt_col(lt, "write_date") != NULL)
		add_mapped(&b, lt, "write_date", lt_now(lt, "write_date"));

	/* what Odoo's ORM sets on create and the database has no default for */
	if (lt->odoo)
	{
		List *have = odoo_columns(lt);
		static const struct
		{
			const char *col;
			const char *expr;
		} defaults[] =
			{
				{"active", "true"},
				{"priority", "'0'"},
				{"color", "0"},
				{"message_bounce", "0"},
				{"stage_id", "$20"},
				{"date_open", "CASE WHEN $18 IS NOT NULL THEN (now() AT TIME ZONE 'UTC') END"},
				{"date_last_stage_update", "(now() AT TIME ZONE 'UTC')"},
				{"create_date", "(now() AT TIME ZONE 'UTC')"},
				{"write_date", "(now() AT TIME ZONE 'UTC')"},
				{"create_uid", "$18"},
				{"write_uid", "$18"},
				{"email_normalized", "$14"},
				{"email_domain_criterion", "$15"},
				{"email_state", "CASE WHEN $14 IS NOT NULL THEN 'correct' WHEN $3 IS NOT NULL THEN 'incorrect' END"},
				{"type", "$16"},
			};

		StaticAssertStmt(P_USER == 18 && P_STAGE == 20 && P_EMAIL_NORMALIZED == 14 &&
							 P_EMAIL_DOMAIN == 15 && P_EMAIL == 3 && P_TYPE == 16,
						 "parameter numbers of the Odoo defaults");
		for (int i = 0; i < (int) lengthof(defaults); i++)
			if (has_name(have, defaults[i].col))
				add_col(&b, defaults[i].col, defaults[i].expr);
	}

	/*
	 * INSERT ... SELECT, not VALUES: Citus refuses subqueries (the country
	 * and state look-ups) in the VALUES of an INSERT into a distributed
	 * table, and runs this one on the coordinator (docs/citus.md).
	 */
	initStringInfo(&s);
	appendStringInfo(&s, "INSERT INTO %s (%s) SELECT %s RETURNING %s::bigint",
					 lt->qualname, b.cols.data, b.vals.data, lt_col(lt, "id"));
	return s.data;
}

/*
 * find_duplicates: which companies of the answer (by position) are already
 * in the table: same reveal id, same website domain, same e-mail domain,
 * or mined before into a lead that still exists.  Each test is one hashed
 * subplan over the table, so this is a few scans whatever the answer size.
 */
static bool *
find_duplicates(LeadTable *lt, Jsonb *data, int n)
{
	StringInfoData q;
	bool		  *dup = palloc0(sizeof(bool) * Max(n, 1));
	const char	  *reveal = lt_col(lt, "reveal_id");
	const char	  *website = lt_col(lt, "website");
	const char	  *email = lt_col(lt, "email");
	const char	  *id = lt_col(lt, "id");
	Oid			   argtypes[1] = {JSONBOID};
	Datum		   args[1];

	initStringInfo(&q);
	appendStringInfoString(&q,
						   "SELECT e.ord::int4 FROM jsonb_array_elements($1) WITH ORDINALITY AS e(v, ord) "
						   "CROSS JOIN LATERAL (SELECT e.v #>> '{company_data,clearbit_id}' AS cid, "
						   "lower(e.v #>> '{company_data,domain}') AS dom) c WHERE ");
	if (reveal != NULL)
		appendStringInfo(&q, "c.cid IN (SELECT l.%s::text FROM %s l) OR ", reveal, lt->qualname);
	if (website != NULL)
		appendStringInfo(&q,
						 "c.dom IN (SELECT lower(substring(l.%s::text from "
						 "'^(?:[A-Za-z][A-Za-z0-9+.-]*://)?(?:www\\.)?([^/:?#[:space:]]+)')) FROM %s l) OR ",
						 website, lt->qualname);
	appendStringInfo(&q,
					 "c.dom IN (SELECT lower(substring(l.%s::text from '@([^@>[:space:]]+)')) FROM %s l) OR "
					 "c.dom IN (SELECT s.domain FROM lead_enrich.lead_state s JOIN %s l ON l.%s = s.lead_id "
					 "WHERE s.status = 'mined')",
					 email, lt->qualname, lt->qualname, id);
	args[0] = JsonbPGetDatum(data);
	if (SPI_execute_with_args(q.data, 1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not look for duplicates in %s", lt->qualname);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool isnull;
		int	 ord = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r],
											   SPI_tuptable->tupdesc, 1, &isnull));

		if (ord >= 1 && ord <= n)
			dup[ord - 1] = true;
	}
	return dup;
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

/*
 * prepare_request: run _mining_prepare and read its answer.
 */
static MiningRequest *
prepare_request(Jsonb *criteria, LeadTable *lt)
{
	Oid				argtypes[1] = {JSONBOID};
	Datum			args[1];
	char			nulls[1] = {' '};
	bool			isnull;
	Jsonb		   *res;
	JsonbContainer *root;
	JsonbValue		buf;
	JsonbValue	   *v;
	MiningRequest  *req = palloc0(sizeof(MiningRequest));
	char		   *odoo_req;
	int				lead_number;
	int				contacts;

	if (criteria != NULL)
		args[0] = JsonbPGetDatum(criteria);
	else
		nulls[0] = 'n';
	if (SPI_execute_with_args("SELECT lead_enrich._mining_prepare($1)", 1, argtypes, args,
							  nulls, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "lead_enrich._mining_prepare failed");
	res = DatumGetJsonbP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	root = &res->root;

	req->id = atoi(jb_get_text(root, "request_id"));
	req->name = jb_get_text(root, "request_name");
	req->people = jb_get_text(root, "people") != NULL;
	req->lead_type = jb_get_text(root, "lead_type");
	req->team_id = jb_get_text(root, "team_id");
	req->user_id = jb_get_text(root, "user_id");
	req->stage_id = jb_get_text(root, "stage_id");
	odoo_req = jb_get_text(root, "odoo_request_id");
	req->link_id = odoo_req ? odoo_req : psprintf("%d", req->id);
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
	return req;
}

/*
 * finish_request: record the outcome through _mining_finish.
 */
static void
finish_request(MiningRequest *req, const char *state, const char *error_type,
			   const char *error, Datum lead_ids, int companies, int contacts,
			   int skipped)
{
	Oid	  argtypes[8] = {INT4OID, TEXTOID, TEXTOID, TEXTOID, INT8ARRAYOID,
						 INT4OID, INT4OID, INT4OID};
	Datum args[8];
	char  nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

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
	if (SPI_execute_with_args("SELECT lead_enrich._mining_finish($1, $2, $3, $4, $5, $6, $7, $8)",
							  8, argtypes, args, nulls, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "lead_enrich._mining_finish failed");
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
	SPIPlanPtr		plan;
	Oid				argtypes[P_COUNT];
	Datum		   *id_datums;
	int				nleads = 0;
	int				ncontacts = 0;
	int				nskipped = 0;
	StringInfoData	skipped;
	char		  **seen_cid;
	char		  **seen_dom;
	int				i;
	TimestampTz		t0 = GetCurrentTimestamp();
	TimestampTz		t1;
	LeGuard			guard;

	InitMaterializedSRF(fcinfo, 0);
	if (!mining_callback_set)
	{
		RegisterXactCallback(mining_xact_end, NULL);
		mining_callback_set = true;
	}
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
	mining_active = 0;
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
		finish_request(req, "error", "credits", call.message, empty_ids(), 0, 0, 0);
		ereport(WARNING,
				(errcode(ERRCODE_LE_INSUFFICIENT_CREDIT),
				 errmsg("not enough credits to generate leads: request %s created no leads", req->name),
				 errdetail("%s The request may cost up to %d credits.", call.message, req->max_credits),
				 errhint("Buy credits at %s, then run the request again with its criteria from lead_enrich.mining_request.",
						 call.credit_url ? call.credit_url : "the URL lead_enrich.iap_credit_url() returns")));
		le_guard_end(&guard);
		mining_active = -1;
		SPI_finish();
		return (Datum) 0;
	}
	if (call.status != RPC_OK)
		rpc_report(&call, ERROR); /* rolls the request back, as Odoo does */
	if (n == 0)
	{
		finish_request(req, "draft", "no_result", NULL, empty_ids(), 0, 0, 0);
		ereport(NOTICE,
				(errmsg("request %s did not return any result (no credits were used)", req->name),
				 errhint("Try removing some filters.")));
		le_guard_end(&guard);
		mining_active = -1;
		SPI_finish();
		return (Datum) 0;
	}

	/* the leads */
	data_jb = JsonbValueToJsonb(data);
	dup = find_duplicates(lt, data_jb, n);
	for (i = 0; i < P_COUNT; i++)
		argtypes[i] = TEXTOID;
	argtypes[P_TEAM - 1] = INT8OID;
	argtypes[P_USER - 1] = INT8OID;
	argtypes[P_REQUEST - 1] = INT8OID;
	argtypes[P_STAGE - 1] = INT8OID;
	plan = SPI_prepare(build_insert_sql(lt), P_COUNT, argtypes);
	if (plan == NULL)
		elog(ERROR, "could not prepare the lead INSERT: %s", SPI_result_code_string(SPI_result));

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
		Datum			values[P_COUNT];
		char			nulls[P_COUNT];
		bool			isnull;
		int64			lead_id;
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
		opt_text(values, nulls, P_NAME, name);
		opt_text(values, nulls, P_PARTNER_NAME,
				 jb_get_text(cd, "legal_name") ? jb_get_text(cd, "legal_name") : jb_get_text(cd, "name"));
		email = jb_get_array_text(cd, "email", 0);
		if (email == NULL)
			email = jb_get_text(cd, "email"); /* a lone string */
		if (req->people && first != NULL)
		{
			email = jb_get_text(first, "email");
			opt_text(values, nulls, P_CONTACT_NAME, jb_get_text(first, "full_name"));
			opt_text(values, nulls, P_FUNCTION, jb_get_text(first, "title"));
		}
		else
		{
			opt_text(values, nulls, P_CONTACT_NAME, NULL);
			opt_text(values, nulls, P_FUNCTION, NULL);
		}
		opt_text(values, nulls, P_EMAIL, email);
		norm = email ? email_normalize_strict(email) : NULL;
		opt_text(values, nulls, P_EMAIL_NORMALIZED, norm);
		opt_text(values, nulls, P_EMAIL_DOMAIN, norm ? psprintf("@%s", email_domain(norm)) : NULL);
		opt_text(values, nulls, P_PHONE,
				 jb_get_text(cd, "phone") ? jb_get_text(cd, "phone") : jb_get_array_text(cd, "phone_numbers", 0));
		opt_text(values, nulls, P_WEBSITE, dom ? psprintf("https://www.%s", dom) : NULL);
		opt_text(values, nulls, P_STREET, jb_get_text(cd, "location"));
		opt_text(values, nulls, P_CITY, jb_get_text(cd, "city"));
		opt_text(values, nulls, P_ZIP, jb_get_text(cd, "postal_code"));
		opt_text(values, nulls, P_COUNTRY, jb_get_text(cd, "country_code"));
		opt_text(values, nulls, P_STATE, jb_get_text(cd, "state_code"));
		opt_text(values, nulls, P_REVEAL_ID, cid);
		opt_text(values, nulls, P_TYPE, req->lead_type);
		opt_int8(values, nulls, P_TEAM, req->team_id);
		opt_int8(values, nulls, P_USER, req->user_id);
		opt_int8(values, nulls, P_REQUEST, req->link_id);
		opt_int8(values, nulls, P_STAGE, req->stage_id);

		if (SPI_execute_plan(plan, values, nulls, false, 1) != SPI_OK_INSERT_RETURNING ||
			SPI_processed != 1)
			elog(ERROR, "could not insert a lead into %s", lt->qualname);
		lead_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		id_datums[nleads] = Int64GetDatum(lead_id);
		nleads++;

		le_record_state(lead_id, LEAD_MINED, email, dom, company_with_people(cd, people),
						NULL, 1 + npeople, NULL, "mining");

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

	/* default tags, in Odoo's crm_tag_rel */
	if (req->tag_ids != NULL && nleads > 0)
	{
		Oid	  types[2] = {INT8ARRAYOID, TEXTOID};
		Datum args[2];

		args[0] = PointerGetDatum(construct_array(id_datums, nleads, INT8OID, 8,
												  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		args[1] = CStringGetTextDatum(req->tag_ids);
		if (SPI_execute_with_args(psprintf("INSERT INTO %s.crm_tag_rel (lead_id, tag_id) "
										   "SELECT l, t FROM unnest($1) l, unnest($2::int4[]) t "
										   "ON CONFLICT DO NOTHING",
										   lt->nspname),
								  2, types, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not tag the mined leads");
	}

	finish_request(req, "done", NULL, NULL,
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
	mining_active = -1;
	SPI_finish();
	return (Datum) 0;
}
