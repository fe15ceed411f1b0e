/*-------------------------------------------------------------------------
 *
 * balance.c
 *	  iap_balance() and iap_credit_url().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "lead_enrich.h"

PG_FUNCTION_INFO_V1(lead_enrich_iap_balance);
PG_FUNCTION_INFO_V1(lead_enrich_iap_credit_url);

/*
 * le_fetch_balance: ask the provider for the reveal service's balance.
 * NULL on failure, with the reason in *call (status and message), so that
 * the SQL function can raise it and the worker log it.
 */
Numeric
le_fetch_balance(const char *dbuuid, const char *token, RpcCall *call)
{
	HttpRequest *h = &call->http;
	char		 id[33];
	JsonbValue	 v;

	rpc_make_id(id, NULL);
	rpc_init(call, LE_SERVICE_IAP, "/iap/1/balance", id);
	rpc_params_begin(call);
	appendStringInfoString(&h->body, "{\"dbuuid\": ");
	append_json_string(&h->body, dbuuid);
	appendStringInfoString(&h->body, ", \"account_token\": ");
	append_json_string(&h->body, token);
	appendStringInfoString(&h->body, ", \"service_name\": \"reveal\"}");
	rpc_params_end(call);
	http_perform(&h, 1, 1);
	rpc_finish(call);
	if (call->status != RPC_OK)
		return NULL;
	if (!JsonbExtractScalar(&call->result->root, &v) || v.type != jbvNumeric)
	{
		call->status = RPC_BAD_RESPONSE;
		call->message = pstrdup("the balance is not a number");
		return NULL;
	}
	return v.val.numeric;
}

/*
 * lead_enrich.iap_balance(): the reveal service's balance.  As in Odoo,
 * 0 without an account (and no call); unlike Odoo, a provider that cannot
 * answer is an error, not -1.
 */
Datum
lead_enrich_iap_balance(PG_FUNCTION_ARGS)
{
	LeadTable	 *lt;
	char		 *token;
	RpcCall		  call;
	Numeric		  balance;
	Numeric		  result;
	MemoryContext outer = CurrentMemoryContext;

	SPI_connect();
	lt = lead_table_load(true);
	token = le_account_token_lookup(lt, true);
	if (token == NULL)
	{
		ereport(NOTICE,
				(errmsg("no IAP account token is configured"),
				 errhint("Set lead_enrich.account_token as a superuser.")));
		SPI_finish();
		PG_RETURN_NUMERIC(int64_to_numeric(0));
	}
	balance = le_fetch_balance(lt ? lt->dbuuid : "", token, &call);
	if (balance == NULL)
		rpc_report(&call, ERROR);
	MemoryContextSwitchTo(outer);
	result = DatumGetNumericCopy(NumericGetDatum(balance));
	SPI_finish();
	PG_RETURN_NUMERIC(result);
}

/*
 * append_param: &name=value, URL-encoded.
 */
static void
append_param(StringInfo s, const char *name, const char *value)
{
	char *enc = curl_easy_escape(NULL, value, 0);

	if (enc == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	appendStringInfo(s, "%s%s=%s", s->data[s->len - 1] == '?' ? "" : "&", name, enc);
	curl_free(enc);
}

/*
 * lead_enrich.iap_credit_url(credit): the buy-credits page, as Odoo's
 * get_credits_url builds it.  The account token is part of it only for a
 * superuser, the only role that can set lead_enrich.account_token: for
 * any other caller the URL leaves it out (the page then asks to log in).
 */
Datum
lead_enrich_iap_credit_url(PG_FUNCTION_ARGS)
{
	int32		   credit = PG_GETARG_INT32(0);
	LeadTable	  *lt;
	char		  *token;
	StringInfoData s;
	const char	  *base = le_service_url(LE_SERVICE_IAP);
	int			   blen = strlen(base);
	text		  *result;
	MemoryContext  outer = CurrentMemoryContext;

	SPI_connect();
	lt = lead_table_load(true);
	token = superuser() ? le_account_token_lookup(lt, true) : NULL;
	MemoryContextSwitchTo(outer);
	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	initStringInfo(&s);
	appendBinaryStringInfo(&s, base, blen);
	appendStringInfoString(&s, "/iap/1/credit?");
	append_param(&s, "dbuuid", lt ? lt->dbuuid : "");
	append_param(&s, "service_name", "reveal");
	if (token != NULL)
		append_param(&s, "account_token", token);
	appendStringInfo(&s, "&credit=%d", credit);
	result = cstring_to_text(s.data);
	SPI_finish();
	PG_RETURN_TEXT_P(result);
}
