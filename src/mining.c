/*-------------------------------------------------------------------------
 *
 * mining.c
 *	  Lead mining: lead_enrich.generate_leads(criteria), Odoo's "Generate
 *	  Leads" (addons/crm_iap_mine).
 *
 * One call does:
 *
 *	1. lead_enrich._mining_prepare(criteria) (PL/pgSQL, run as the caller,
 *	   reading only): check every criterion against the attached table and
 *	   the reference tables; it returns the normalised criteria, the IAP
 *	   payload and the ids Odoo's request row links to.
 *	2. the request recorded here: its row in lead_enrich.mining_request
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

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "miscadmin.h"

#include "enrich.h"
#include "errcodes.h"
#include "guard.h"
#include "lead_enrich.h"

PG_FUNCTION_INFO_V1(lead_enrich_generate_leads);

/* The request, as _mining_prepare returned it and as recorded. */
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
	Jsonb *prep; /* _mining_prepare's answer */
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
		elog(ERROR, "lead_enrich._mining_prepare returned no criteria");
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


/*
 * prepare_request: check the criteria (_mining_prepare), then record the
 * request in lead_enrich.mining_request and, on Odoo's table, in Odoo's
 * crm_iap_lead_mining_request.
 */
static MiningRequest *
prepare_request(Jsonb *criteria, LeadTable *lt)
{
	Oid				argtypes[1] = {JSONBOID};
	Datum			args[1];
	char			nulls[1] = {' '};
	bool			isnull;
	JsonbContainer *root;
	JsonbValue		buf;
	JsonbValue	   *v;
	MiningRequest  *req = palloc0(sizeof(MiningRequest));
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
	req->prep = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
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
	lt_mine_prepare(lt);
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

		lead_id = lt_mine_insert(lt, values, nulls);
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
