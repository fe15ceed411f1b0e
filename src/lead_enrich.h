/*-------------------------------------------------------------------------
 *
 * lead_enrich.h
 *	  Shared declarations of the lead_enrich extension.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LEAD_ENRICH_H
#define LEAD_ENRICH_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "compat.h"

/* settings.c: GUCs */
extern char *le_endpoint;
extern char *le_enrich_endpoint;
extern char *le_mining_endpoint;
extern char *le_iap_endpoint;
extern char *le_account_token;
extern int	 le_connect_timeout_ms;
extern int	 le_timeout_ms;
extern int	 le_batch_size;
extern int	 le_max_response_kb;
extern int	 le_max_connections;
extern int	 le_interval_min;
extern int	 le_workers_per_database;
extern int	 le_max_attempts;
extern int	 le_retry_delay_s;
extern char *le_databases;
extern bool	 le_odoo_chatter;

extern bool le_database_served(const char *dbname);

extern void le_define_settings(void);

/* Which service an endpoint serves; each may point elsewhere. */
typedef enum LeService
{
	LE_SERVICE_ENRICH,
	LE_SERVICE_MINING,
	LE_SERVICE_IAP
} LeService;

extern const char *le_service_url(LeService service);

/* http.c: libcurl transfers that honour query cancel */
typedef struct HttpRequest
{
	/* in */
	char		  *url;
	StringInfoData body;
	/* out */
	StringInfoData response;
	long		   status;	  /* HTTP status, 0 if none */
	int			   curl_code; /* CURLcode, 0 on success */
	bool		   too_large; /* response exceeded the cap */
	char		   errbuf[256];
	double		   total_time;	 /* seconds */
	double		   connect_time; /* seconds */
	void		  *easy;		 /* CURL *, owned by http.c while running */
} HttpRequest;

extern void http_request_init(HttpRequest *req, const char *url);
extern void http_perform(HttpRequest **reqs, int nreqs, int max_parallel);
extern void http_start(HttpRequest **reqs, int nreqs, int max_parallel);
extern void http_progress(void);
extern void http_wait(HttpRequest **reqs, int nreqs);
extern void http_abort(HttpRequest **reqs, int nreqs);

/* jsonrpc.c: Odoo IAP JSON-RPC envelopes */
typedef enum RpcStatus
{
	RPC_OK,
	RPC_UNREACHABLE, /* connection refused, DNS, TLS */
	RPC_TIMEOUT,
	RPC_HTTP_ERROR,	  /* status >= 400 */
	RPC_BAD_RESPONSE, /* not JSON, not an envelope, too large */
	RPC_INSUFFICIENT_CREDIT,
	RPC_SERVER_ERROR /* a JSON-RPC error other than credits */
} RpcStatus;

typedef struct RpcCall
{
	HttpRequest http;
	char		id[33];
	RpcStatus	status;
	Jsonb	   *result;		/* "result" member when RPC_OK */
	char	   *message;	/* what went wrong, for errmsg/errdetail */
	char	   *credit_url; /* from InsufficientCreditError, may be NULL */
} RpcCall;

extern void		   rpc_init(RpcCall *call, LeService service, const char *path,
							const char *id);
extern void		   rpc_params_begin(RpcCall *call);
extern void		   rpc_params_end(RpcCall *call);
extern void		   rpc_finish(RpcCall *call);
extern bool		   rpc_is_transient(RpcStatus status);
extern const char *rpc_status_name(RpcStatus status);
extern void		   rpc_report(RpcCall *call, int elevel);
extern void		   rpc_make_id(char *dst, const char *seed);

/* spi_util.c */
#include "executor/spi.h"
extern SPIPlanPtr le_keep_plan(const char *sql, int nargs, Oid *argtypes);
extern bool		  le_run_isolated(void (*fn)(void *arg), void *arg, ErrorData **err);

/* json_util.c: small jsonb accessors */
extern JsonbValue	  *jb_get(JsonbContainer *obj, const char *key, JsonbValue *buf);
extern char			  *jb_get_text(JsonbContainer *obj, const char *key);
extern char			  *jb_get_array_text(JsonbContainer *obj, const char *key, int index);
extern JsonbContainer *jb_get_object(JsonbContainer *obj, const char *key);
extern void			   append_json_string(StringInfo buf, const char *s);
extern char			  *jsonb_container_to_cstring(JsonbContainer *c);

/* email.c: Odoo's strict normalisation, the names a webmail check looks up */
extern char		  *email_normalize_strict(const char *raw);
extern const char *email_domain(const char *normalized);
extern List		  *webmail_candidates(const char *domain);

/* psl.c: the Public Suffix List, compiled in */
extern bool psl_is_public_suffix(const char *domain);

/* webmail.c: the look-up in lead_enrich.webmail_domain (SPI) */
extern void webmail_matches(const char **domains, int n, const char **out);

/* account.c: token and database uuid */
typedef struct LeadTable LeadTable;
extern char				*le_account_token_lookup(LeadTable *lt, bool missing_ok);

/* balance.c */
extern Numeric le_fetch_balance(const char *dbuuid, const char *token, RpcCall *call);

/* lead_table.c: the attached CRM table and the statements on it */
#include "lead_table.h"

#endif /* LEAD_ENRICH_H */
