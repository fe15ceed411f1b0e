/*
 * http.c
 *		The HTTP front: libmicrohttpd with a thread per connection, routing,
 *		body collection with a size cap, the access log and graceful shutdown.
 *
 * A JSON-RPC body is handed unparsed to provider.rpc() in the database,
 * which parses it, validates it and answers it in one transaction.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "provider.h"

/* What a route answers to. */
typedef enum RouteKind
{
	ROUTE_NONE,
	ROUTE_RPC,	  /* POST, JSON-RPC, endpoint in Route.endpoint */
	ROUTE_CREDIT, /* GET, HTML credit page */
	ROUTE_HEALTH  /* GET, readiness */
} RouteKind;

typedef struct Route
{
	const char *path;
	RouteKind	kind;
	const char *endpoint; /* provider.rpc() endpoint name */
} Route;

static const Route routes[] = {
	{"/iap/clearbit/1/lead_enrichment_email", ROUTE_RPC, "enrich"},
	{"/iap/clearbit/2/lead_mining_request", ROUTE_RPC, "mine"},
	{"/iap/clearbit/1/lead_mining_request", ROUTE_RPC, "mine"},
	{"/iap/1/balance", ROUTE_RPC, "balance"},
	{"/iap/1/credit", ROUTE_CREDIT, NULL},
	{"/iap/1/credit/", ROUTE_CREDIT, NULL},
	{"/health", ROUTE_HEALTH, NULL},
	{NULL, ROUTE_NONE, NULL},
};

/* Per-request state, kept in MHD's con_cls from first call to completion. */
typedef struct Request
{
	struct timespec start;
	const Route	   *route;
	char		   *body;
	size_t			len;
	size_t			cap;
	bool			too_large;
	bool			answered;
	unsigned int	status;
	size_t			bytes;
	char			method[16];
	char			path[256];
} Request;

static const ServeConfig *config;
static atomic_int		  inflight = 0;

/*
 * elapsed_ms
 *		Milliseconds since t.
 */
static double
elapsed_ms(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t->tv_sec) * 1000.0 + (now.tv_nsec - t->tv_nsec) / 1e6;
}

/*
 * reply
 *		Queue a response whose body (malloc'd, taken over) is sent with the
 *		given status and content type; extra header optional.
 */
static enum MHD_Result
reply(struct MHD_Connection *conn, Request *req, unsigned int status,
	  char *body, const char *content_type, const char *hname, const char *hvalue)
{
	struct MHD_Response *resp;
	enum MHD_Result		 ret;
	size_t				 len;

	if (body == NULL)
	{
		body = strdup("{\"jsonrpc\": \"2.0\", \"id\": null, \"error\": {\"code\": -32603, "
					  "\"message\": \"Internal error\", \"data\": {\"name\": \"InternalError\", "
					  "\"message\": \"out of memory\"}}}");
		status = 500;
		if (body == NULL)
			return MHD_NO;
	}
	len = strlen(body);
	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL)
	{
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	if (hname != NULL)
		MHD_add_response_header(resp, hname, hvalue);
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	req->answered = true;
	req->status = status;
	req->bytes = len;
	return ret;
}

/*
 * reply_error
 *		Queue a JSON-RPC error detected by the front itself.
 */
static enum MHD_Result
reply_error(struct MHD_Connection *conn, Request *req, unsigned int status,
			int code, const char *kind, const char *detail,
			const char *hname, const char *hvalue)
{
	return reply(conn, req, status, rpc_error_json(code, kind, detail),
				 "application/json", hname, hvalue);
}

/*
 * find_route
 *		The route for a path (query string already removed by MHD).
 */
static const Route *
find_route(const char *url)
{
	const Route *r;

	for (r = routes; r->path != NULL; r++)
		if (strcmp(r->path, url) == 0)
			return r;
	return NULL;
}

/*
 * check_early
 *		Decide on the first call, before any body is read, whether the
 *		request can be refused: unknown path (404), wrong method (405 with
 *		Allow) or a declared Content-Length over the cap (413).  Returns true
 *		when a response was queued.
 */
static bool
check_early(struct MHD_Connection *conn, Request *req, const char *method,
			enum MHD_Result *ret)
{
	const Route *r = req->route;
	const char	*cl;
	char		 msg[512];

	if (r == NULL)
	{
		snprintf(msg, sizeof(msg), "no such endpoint: %s", req->path);
		*ret = reply_error(conn, req, MHD_HTTP_NOT_FOUND, -32601, "NotFound", msg,
						   NULL, NULL);
		return true;
	}
	if (r->kind == ROUTE_RPC && strcmp(method, "POST") != 0)
	{
		snprintf(msg, sizeof(msg), "%s is not allowed on %s: use POST with a JSON-RPC 2.0 body",
				 req->method, r->path);
		*ret = reply_error(conn, req, MHD_HTTP_METHOD_NOT_ALLOWED, -32600,
						   "MethodNotAllowed", msg, MHD_HTTP_HEADER_ALLOW, "POST");
		return true;
	}
	if (r->kind != ROUTE_RPC && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
	{
		snprintf(msg, sizeof(msg), "%s is not allowed on %s: use GET", req->method, r->path);
		*ret = reply_error(conn, req, MHD_HTTP_METHOD_NOT_ALLOWED, -32600,
						   "MethodNotAllowed", msg, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
		return true;
	}
	cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl != NULL && strtoull(cl, NULL, 10) > config->max_body)
	{
		snprintf(msg, sizeof(msg), "the request body is larger than %zu bytes",
				 config->max_body);
		*ret = reply_error(conn, req, 413, -32600,
						   "PayloadTooLarge", msg, MHD_HTTP_HEADER_CONNECTION, "close");
		return true;
	}
	return false;
}

/*
 * append_body
 *		Collect an upload chunk, up to max_body bytes; beyond that the
 *		request is marked too large and the rest is discarded.
 */
static void
append_body(Request *req, const char *data, size_t size)
{
	if (req->too_large)
		return;
	if (req->len + size > config->max_body)
	{
		req->too_large = true;
		free(req->body);
		req->body = NULL;
		req->len = req->cap = 0;
		return;
	}
	if (req->len + size + 1 > req->cap)
	{
		size_t cap = req->cap ? req->cap : 4096;
		char  *nb;

		while (cap < req->len + size + 1)
			cap *= 2;
		nb = realloc(req->body, cap);
		if (nb == NULL)
		{
			req->too_large = true;
			return;
		}
		req->body = nb;
		req->cap = cap;
	}
	memcpy(req->body + req->len, data, size);
	req->len += size;
	req->body[req->len] = '\0';
}

/*
 * answer_get
 *		GET routes: the health check and the credit page.
 */
static enum MHD_Result
answer_get(struct MHD_Connection *conn, Request *req)
{
	if (req->route->kind == ROUTE_HEALTH)
	{
		if (db_ping())
			return reply(conn, req, MHD_HTTP_OK, strdup("{\"status\": \"ok\"}"),
						 "application/json", NULL, NULL);
		return reply(conn, req, MHD_HTTP_SERVICE_UNAVAILABLE,
					 strdup("{\"status\": \"unavailable\", \"reason\": \"database not reachable\"}"),
					 "application/json", NULL, NULL);
	}
	else
	{
		const char *tok = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "account_token");
		const char *db = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "dbuuid");
		const char *svc = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "service_name");
		const char *cr = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "credit");
		char	   *page = db_credit_page(tok ? tok : "", db ? db : "", svc ? svc : "",
									  cr ? cr : "");

		if (page == NULL)
			return reply(conn, req, MHD_HTTP_SERVICE_UNAVAILABLE,
						 strdup("<!DOCTYPE html><p>The provider's database is unavailable.</p>\n"),
						 "text/html; charset=utf-8", NULL, NULL);
		return reply(conn, req, MHD_HTTP_OK, page, "text/html; charset=utf-8", NULL, NULL);
	}
}

/*
 * answer_rpc
 *		POST routes: hand the complete body to provider.rpc().
 */
static enum MHD_Result
answer_rpc(struct MHD_Connection *conn, Request *req)
{
	char *response = NULL;
	int	  status;

	if (req->too_large)
	{
		char msg[128];

		snprintf(msg, sizeof(msg), "the request body is larger than %zu bytes",
				 config->max_body);
		return reply_error(conn, req, 413, -32600,
						   "PayloadTooLarge", msg, MHD_HTTP_HEADER_CONNECTION, "close");
	}
	if (req->len == 0 || memchr(req->body, '\0', req->len) != NULL)
		return reply_error(conn, req, MHD_HTTP_BAD_REQUEST, -32700, "ParseError",
						   req->len == 0 ? "the request body is empty"
										 : "the request body contains a NUL byte",
						   NULL, NULL);
	status = db_rpc(req->route->endpoint, req->body, req->len, config, &response);
	return reply(conn, req, (unsigned int) status, response, "application/json",
				 NULL, NULL);
}

/*
 * handle
 *		libmicrohttpd's access handler, called once when the headers are in,
 *		then per body chunk, then once more with no data.
 */
static enum MHD_Result
handle(void *cls, struct MHD_Connection *conn, const char *url,
	   const char *method, const char *version, const char *upload_data,
	   size_t *upload_data_size, void **con_cls)
{
	Request		   *req = *con_cls;
	enum MHD_Result ret;

	(void) cls;
	(void) version;
	if (req == NULL)
	{
		req = calloc(1, sizeof(Request));
		if (req == NULL)
			return MHD_NO;
		clock_gettime(CLOCK_MONOTONIC, &req->start);
		snprintf(req->method, sizeof(req->method), "%s", method);
		snprintf(req->path, sizeof(req->path), "%s", url);
		req->route = find_route(url);
		*con_cls = req;
		atomic_fetch_add(&inflight, 1);
		if (check_early(conn, req, method, &ret))
			return ret;
		return MHD_YES;
	}
	if (req->answered)
	{
		/* refused early: drop whatever body still arrives */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size > 0)
	{
		append_body(req, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (req->route->kind == ROUTE_RPC)
		return answer_rpc(conn, req);
	return answer_get(conn, req);
}

/*
 * completed
 *		Called when a request ends (answered, failed or the client left):
 *		write the access log line and free the request state.
 */
static void
completed(void *cls, struct MHD_Connection *conn, void **con_cls,
		  enum MHD_RequestTerminationCode toe)
{
	Request						   *req = *con_cls;
	const union MHD_ConnectionInfo *ci;
	char							remote[INET6_ADDRSTRLEN] = "-";

	(void) cls;
	(void) toe;
	if (req == NULL)
		return;
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci != NULL && ci->client_addr != NULL)
	{
		const struct sockaddr *sa = ci->client_addr;

		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *) sa)->sin_addr,
					  remote, sizeof(remote));
		else if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *) sa)->sin6_addr,
					  remote, sizeof(remote));
	}
	log_access(remote, req->method, req->path, req->answered ? req->status : 0,
			   req->bytes, elapsed_ms(&req->start));
	free(req->body);
	free(req);
	*con_cls = NULL;
	atomic_fetch_sub(&inflight, 1);
}

/*
 * http_serve
 *		Start the daemon, announce it, wait for SIGTERM/SIGINT, then shut
 *		down gracefully: stop accepting, let in-flight requests finish (up to
 *		10 s), stop the connections' threads, close the database connections.
 *		Returns the process exit code.
 */
int
http_serve(const ServeConfig *cfg)
{
	struct sockaddr_storage ss;
	socklen_t				sslen;
	unsigned int			flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
						 MHD_USE_ITC | MHD_USE_ERROR_LOG;
	struct MHD_Daemon	 *d;
	sigset_t			  sigs;
	int					  sig = 0;
	int					  waited;
	const struct timespec tick = {0, 10 * 1000 * 1000}; /* 10 ms */
	bool				  v6 = strchr(cfg->listen, ':') != NULL;

	config = cfg;
	memset(&ss, 0, sizeof(ss));
	if (v6)
	{
		struct sockaddr_in6 *a = (struct sockaddr_in6 *) &ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t) cfg->port);
		if (inet_pton(AF_INET6, cfg->listen, &a->sin6_addr) != 1)
		{
			log_error("invalid listen address \"%s\"", cfg->listen);
			return 1;
		}
		sslen = sizeof(*a);
		flags |= MHD_USE_IPv6;
	}
	else
	{
		struct sockaddr_in *a = (struct sockaddr_in *) &ss;

		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t) cfg->port);
		if (inet_pton(AF_INET, cfg->listen, &a->sin_addr) != 1)
		{
			log_error("invalid listen address \"%s\" (an IPv4 or IPv6 address)", cfg->listen);
			return 1;
		}
		sslen = sizeof(*a);
	}
	(void) sslen;
	/* a thread per connection (db.c: the requests share a pool) */
	if (MHD_is_feature_supported(MHD_FEATURE_POLL) == MHD_YES)
		flags |= MHD_USE_POLL;

	/* Workers inherit this mask: only the main thread takes the signals. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	d = MHD_start_daemon(flags, (uint16_t) cfg->port, NULL, NULL, handle, NULL,
						 MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &ss,
						 MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int) 4096,
						 MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int) 1,
						 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) 60,
						 MHD_OPTION_CONNECTION_LIMIT, (unsigned int) 1024,
						 MHD_OPTION_THREAD_STACK_SIZE, (size_t) (512 * 1024),
						 MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
						 MHD_OPTION_END);
	if (d == NULL)
	{
		log_error("cannot listen on %s port %d: %s", cfg->listen, cfg->port,
				  errno ? strerror(errno) : "libmicrohttpd failed to start");
		return 1;
	}
	fprintf(stderr, "lead_provider listening on http://%s%s%s:%d\n",
			v6 ? "[" : "", cfg->listen, v6 ? "]" : "", cfg->port);
	fflush(stderr);

	while (sigwait(&sigs, &sig) != 0)
		;
	fprintf(stderr, "lead_provider: %s received, shutting down\n",
			sig == SIGTERM ? "SIGTERM" : "SIGINT");
	MHD_quiesce_daemon(d);
	for (waited = 0; waited < 1000 && atomic_load(&inflight) > 0; waited++)
		nanosleep(&tick, NULL);
	MHD_stop_daemon(d);
	db_close_all();
	log_close();
	fprintf(stderr, "lead_provider: stopped\n");
	return 0;
}
