/*-------------------------------------------------------------------------
 *
 * jsonrpc.c
 *	  The JSON-RPC 2.0 envelope Odoo's IAP speaks, and its errors.
 *
 * A call is built as text (StringInfo), sent by http.c, and its answer is
 * parsed into jsonb.  Every way a provider can fail (down, slow, HTTP
 * errors, garbage, JSON-RPC errors, no credits) ends in one RpcStatus with
 * a message, so callers decide what to do without parsing anything.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "access/xlog.h"
#include "common/jsonapi.h"
#include "common/md5.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "guard.h"
#include "lead_enrich.h"
#include "errcodes.h"

/*
 * rpc_init: a call to path on a service, with a given JSON-RPC id.
 */
void
rpc_init(RpcCall *call, LeService service, const char *path, const char *id)
{
	const char	  *base = le_service_url(service);
	StringInfoData url;
	int			   blen = strlen(base);

	memset(call, 0, sizeof(RpcCall));
	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	initStringInfo(&url);
	appendBinaryStringInfo(&url, base, blen);
	appendStringInfoString(&url, path);
	http_request_init(&call->http, url.data);
	strlcpy(call->id, id, sizeof(call->id));
}

/*
 * rpc_params_begin: open the envelope; the caller appends the params
 * object right after.
 */
void
rpc_params_begin(RpcCall *call)
{
	appendStringInfo(&call->http.body,
					 "{\"jsonrpc\": \"2.0\", \"method\": \"call\", \"id\": \"%s\", \"params\": ",
					 call->id);
}

/*
 * rpc_params_end: close the envelope.
 */
void
rpc_params_end(RpcCall *call)
{
	appendStringInfoChar(&call->http.body, '}');
}

/*
 * rpc_make_id: a 32-hex-digit id.  With a seed, the id is the MD5 of the
 * cluster, the database and the seed, so the same request sent again
 * carries the same id and the provider's replay rule answers it without
 * charging twice; without one, it is random.
 */
void
rpc_make_id(char *dst, const char *seed)
{
	const char *errstr = NULL;

	if (seed != NULL)
	{
		/*
		 * Scoped to this cluster and database: two databases that share an
		 * Odoo database.uuid (a copy) and a token never get each other's
		 * replies from the provider's replay store.
		 */
		char *scoped = psprintf(UINT64_FORMAT "|%u|%s", GetSystemIdentifier(), MyDatabaseId, seed);

		if (!pg_md5_hash(scoped, strlen(scoped), dst, &errstr))
			elog(ERROR, "could not compute an MD5 hash: %s", errstr);
	}
	else
	{
		uint8 rnd[16];
		int	  i;

		if (!pg_strong_random(rnd, sizeof(rnd)))
			elog(ERROR, "could not generate a random request id");
		for (i = 0; i < 16; i++)
			snprintf(dst + 2 * i, 3, "%02x", rnd[i]);
	}
}

/*
 * parse_json: the text as jsonb, or NULL if it is not valid JSON.
 * One parse: jsonb_in's error (invalid JSON, or what jsonb cannot store such
 * as \u0000) is caught; it holds no resource when it throws.  A first pass
 * of pg_parse_json to validate without throwing used to parse every answer
 * twice, for an error path that this catch covers.
 */
static Jsonb *
parse_json(char *text, int len)
{
	Jsonb *volatile result = NULL;
	MemoryContext oldcxt = CurrentMemoryContext;

	if (len == 0 || strlen(text) != (size_t) len)
		return NULL;
	if (pg_verifymbstr(text, len, true) == false)
		return NULL;
	PG_TRY();
	{
		result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		FlushErrorState();
		result = NULL;
	}
	PG_END_TRY();
	return result;
}

/*
 * excerpt: the start of a response body, for error details.
 */
static char *
excerpt(StringInfo s)
{
	int	  n = Min(s->len, 120);
	char *out;

	if (s->len == 0)
		return pstrdup("(empty body)");
	n = pg_mbcliplen(s->data, n, n);
	out = pnstrdup(s->data, n);
	for (char *p = out; *p; p++)
		if ((unsigned char) *p < 0x20)
			*p = ' ';
	return psprintf("\"%s%s\"", out, s->len > n ? "..." : "");
}

/*
 * classify_error: a JSON-RPC "error" member.
 */
static void
classify_error(RpcCall *call, JsonbContainer *err)
{
	JsonbContainer *data = jb_get_object(err, "data");
	char		   *name = jb_get_text(data, "name");
	char		   *msg = jb_get_text(data, "message");
	const char	   *last;

	if (msg == NULL)
		msg = jb_get_text(err, "message");
	last = name ? strrchr(name, '.') : NULL;
	last = last ? last + 1 : name;
	if (last != NULL && strcmp(last, "InsufficientCreditError") == 0)
	{
		Jsonb *detail;

		call->status = RPC_INSUFFICIENT_CREDIT;
		call->message = pstrdup("You don't have enough credits on your account to use this service.");
		/* data.message is itself a JSON string with the details */
		if (msg != NULL && (detail = parse_json(msg, strlen(msg))) != NULL)
		{
			char *m = jb_get_text(&detail->root, "message");

			call->credit_url = jb_get_text(&detail->root, "base_url");
			if (m != NULL)
				call->message = m;
		}
		return;
	}
	call->status = RPC_SERVER_ERROR;
	call->message = psprintf("%s%s%s", name ? name : "error",
							 msg ? ": " : "", msg ? msg : "");
}

/*
 * rpc_finish: classify a finished call.
 */
static void
classify(RpcCall *call)
{
	HttpRequest	   *h = &call->http;
	Jsonb		   *doc = NULL;
	JsonbContainer *err;
	JsonbValue		buf;
	JsonbValue	   *res;

	if (h->too_large)
	{
		call->status = RPC_BAD_RESPONSE;
		call->message = psprintf("the response exceeded lead_enrich.max_response_size (%d kB)",
								 le_max_response_kb);
		return;
	}
	if (h->curl_code == CURLE_OPERATION_TIMEDOUT)
	{
		call->status = RPC_TIMEOUT;
		call->message = psprintf("no complete answer within %d ms (connected after %.0f ms): %s",
								 le_timeout_ms, h->connect_time * 1000.0, h->errbuf);
		return;
	}
	if (h->curl_code != CURLE_OK)
	{
		call->status = RPC_UNREACHABLE;
		call->message = pstrdup(h->errbuf);
		return;
	}
	if (h->response.len > 0)
		doc = parse_json(h->response.data, h->response.len);
	if (doc != NULL && JB_ROOT_IS_OBJECT(doc) &&
		(err = jb_get_object(&doc->root, "error")) != NULL)
	{
		classify_error(call, err);
		if (h->status >= 400 && call->status == RPC_SERVER_ERROR)
		{
			call->status = RPC_HTTP_ERROR;
			call->message = psprintf("HTTP %ld: %s", h->status, call->message);
		}
		return;
	}
	if (h->status >= 400)
	{
		call->status = RPC_HTTP_ERROR;
		call->message = psprintf("HTTP %ld, body %s", h->status, excerpt(&h->response));
		return;
	}
	if (doc == NULL)
	{
		call->status = RPC_BAD_RESPONSE;
		call->message = psprintf("the body is not JSON: %s", excerpt(&h->response));
		return;
	}
	if (!JB_ROOT_IS_OBJECT(doc) || (res = jb_get(&doc->root, "result", &buf)) == NULL)
	{
		call->status = RPC_BAD_RESPONSE;
		call->message = psprintf("the body is not a JSON-RPC response: %s", excerpt(&h->response));
		return;
	}
	call->status = RPC_OK;
	call->result = JsonbValueToJsonb(res);
}

/*
 * rpc_finish: classify a finished call.  What the provider said goes into
 * errors, the worker's status and lead_state, which roles other than a
 * superuser read: a provider echoing the account token (a buy-credits URL
 * carrying it) must not show it to them.
 */
void
rpc_finish(RpcCall *call)
{
	classify(call);
	call->message = le_redact_token(call->message);
	call->credit_url = le_redact_token(call->credit_url);
}

/*
 * rpc_is_transient: failures worth retrying later.
 */
bool
rpc_is_transient(RpcStatus status)
{
	return status == RPC_UNREACHABLE || status == RPC_TIMEOUT ||
		   status == RPC_HTTP_ERROR;
}

/*
 * rpc_status_name: the outcome's name in lead_state and logs.
 */
const char *
rpc_status_name(RpcStatus status)
{
	switch (status)
	{
		case RPC_OK:
			return "ok";
		case RPC_UNREACHABLE:
			return "unreachable";
		case RPC_TIMEOUT:
			return "timeout";
		case RPC_HTTP_ERROR:
			return "http_error";
		case RPC_BAD_RESPONSE:
			return "bad_response";
		case RPC_INSUFFICIENT_CREDIT:
			return "insufficient_credit";
		case RPC_SERVER_ERROR:
			return "server_error";
	}
	return "unknown";
}

/*
 * rpc_report: raise (or log at elevel) a clear error for a failed call.
 */
void
rpc_report(RpcCall *call, int elevel)
{
	const char *url = call->http.url;

	switch (call->status)
	{
		case RPC_OK:
			break;
		case RPC_UNREACHABLE:
			ereport(elevel,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("could not reach the IAP provider"),
					 errdetail("POST %s failed: %s", url, call->message),
					 errhint("Check that the provider is running and that lead_enrich.endpoint points to it.")));
			break;
		case RPC_TIMEOUT:
			ereport(elevel,
					(errcode(ERRCODE_CONNECTION_EXCEPTION),
					 errmsg("the IAP provider did not answer in time"),
					 errdetail("POST %s: %s", url, call->message),
					 errhint("Raise lead_enrich.timeout, or check the provider's load.")));
			break;
		case RPC_HTTP_ERROR:
			ereport(elevel,
					(errcode(ERRCODE_CONNECTION_EXCEPTION),
					 errmsg("the IAP provider returned an HTTP error"),
					 errdetail("POST %s: %s", url, call->message)));
			break;
		case RPC_BAD_RESPONSE:
			ereport(elevel,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("the IAP provider sent an invalid response"),
					 errdetail("POST %s: %s", url, call->message),
					 errhint("Check that lead_enrich.endpoint points to an IAP-compatible provider.")));
			break;
		case RPC_INSUFFICIENT_CREDIT:
			ereport(elevel,
					(errcode(ERRCODE_LE_INSUFFICIENT_CREDIT),
					 errmsg("not enough IAP credits"),
					 errdetail("%s", call->message),
					 errhint("Buy credits at %s", call->credit_url ? call->credit_url : "the URL lead_enrich.iap_credit_url() returns")));
			break;
		case RPC_SERVER_ERROR:
			ereport(elevel,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("the IAP provider returned an error"),
					 errdetail("POST %s: %s", url, call->message)));
			break;
	}
}
