/*-------------------------------------------------------------------------
 *
 * http.c
 *	  POST requests to the provider with libcurl's multi interface.
 *
 * One multi handle lives as long as the process, so its connection cache
 * keeps connections to the provider alive between calls and batches.  The
 * transfer loop polls the sockets for at most 100 ms at a time and checks
 * for interrupts in between, so a query cancel, statement_timeout or the
 * worker's SIGTERM stops a request in flight promptly.  curl never
 * allocates through palloc: its lifetimes are not ours.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "miscadmin.h"
#include "pgstat.h"

#include "lead_enrich.h"

#if LIBCURL_VERSION_NUM < 0x075500
#error "lead_enrich needs libcurl 7.85 or later (CURLOPT_PROTOCOLS_STR)"
#endif

static CURLM			 *multi = NULL;
static struct curl_slist *headers = NULL;
static int				  multi_max_parallel = 0;

/*
 * http_setup: global and per-process libcurl state, created on first use.
 */
static void
http_setup(int max_parallel)
{
	if (multi == NULL)
	{
		if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not initialise libcurl")));
		multi = curl_multi_init();
		headers = curl_slist_append(NULL, "Content-Type: application/json");
		headers = curl_slist_append(headers, "Accept: application/json");
		headers = curl_slist_append(headers, "Expect:");
		if (multi == NULL || headers == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("could not initialise libcurl")));
	}
	if (max_parallel != multi_max_parallel)
	{
		curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long) max_parallel);
		curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long) max_parallel);
		curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long) max_parallel);
		multi_max_parallel = max_parallel;
	}
}

/*
 * write_cb: append the response body, refusing more than the cap.
 */
static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	HttpRequest *req = (HttpRequest *) userdata;
	size_t		 n = size * nmemb;

	if ((size_t) req->response.len + n > (size_t) le_max_response_kb * 1024)
	{
		req->too_large = true;
		return 0;
	}
	appendBinaryStringInfo(&req->response, ptr, (int) n);
	return n;
}

/*
 * http_request_init: an empty request to url; the caller fills the body.
 */
void
http_request_init(HttpRequest *req, const char *url)
{
	memset(req, 0, sizeof(HttpRequest));
	req->url = pstrdup(url);
	initStringInfo(&req->body);
	initStringInfo(&req->response);
}

#define SETOPT(h, opt, val) \
	do \
	{ \
		if (curl_easy_setopt((h), (opt), (val)) != CURLE_OK) \
			elog(ERROR, "curl_easy_setopt(%s) failed", #opt); \
	} while (0)

/*
 * easy_for: a configured easy handle for one request.
 */
static CURL *
easy_for(HttpRequest *req)
{
	CURL *h = curl_easy_init();

	if (h == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl handle")));
	req->easy = h;
	SETOPT(h, CURLOPT_URL, req->url);
	SETOPT(h, CURLOPT_POST, 1L);
	SETOPT(h, CURLOPT_POSTFIELDS, req->body.data);
	SETOPT(h, CURLOPT_POSTFIELDSIZE, (long) req->body.len);
	SETOPT(h, CURLOPT_HTTPHEADER, headers);
	SETOPT(h, CURLOPT_USERAGENT, "lead_enrich/1.0");
	SETOPT(h, CURLOPT_NOSIGNAL, 1L);
	SETOPT(h, CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(h, CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(h, CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(h, CURLOPT_SSL_VERIFYHOST, 2L);
	SETOPT(h, CURLOPT_TCP_KEEPALIVE, 1L);
	SETOPT(h, CURLOPT_TCP_NODELAY, 1L);
	SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, (long) le_connect_timeout_ms);
	SETOPT(h, CURLOPT_TIMEOUT_MS, (long) le_timeout_ms);
	SETOPT(h, CURLOPT_WRITEFUNCTION, write_cb);
	SETOPT(h, CURLOPT_WRITEDATA, req);
	SETOPT(h, CURLOPT_ERRORBUFFER, req->errbuf);
	SETOPT(h, CURLOPT_PRIVATE, req);
	return h;
}

/*
 * finish_one: collect the outcome of a finished transfer.
 */
static void
finish_one(CURL *h, CURLcode code)
{
	HttpRequest *req = NULL;

	curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **) &req);
	req->curl_code = (int) code;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &req->status);
	curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &req->total_time);
	curl_easy_getinfo(h, CURLINFO_CONNECT_TIME, &req->connect_time);
	if (code != CURLE_OK && req->errbuf[0] == '\0')
		strlcpy(req->errbuf, curl_easy_strerror(code), sizeof(req->errbuf));
	curl_multi_remove_handle(multi, h);
	curl_easy_cleanup(h);
	req->easy = NULL;
}

/*
 * drive: one turn of the transfer loop: let libcurl move every transfer as
 * far as it can without blocking, and collect the finished ones.  With
 * wait, then sleep until a socket is ready, for at most 100 ms, so that the
 * caller can check for interrupts.
 */
static void
drive(bool wait)
{
	CURLMsg	 *msg;
	int		  left;
	int		  running = 0;
	CURLMcode mc;

	mc = curl_multi_perform(multi, &running);
	if (mc != CURLM_OK)
		elog(ERROR, "curl_multi_perform failed: %s", curl_multi_strerror(mc));
	while ((msg = curl_multi_info_read(multi, &left)) != NULL)
	{
		if (msg->msg == CURLMSG_DONE)
			finish_one(msg->easy_handle, msg->data.result);
	}
	if (wait && running > 0)
	{
		mc = curl_multi_poll(multi, NULL, 0, 100, NULL);
		if (mc != CURLM_OK)
			elog(ERROR, "curl_multi_poll failed: %s", curl_multi_strerror(mc));
	}
}

/*
 * http_start: put the requests in flight, at most max_parallel at once,
 * and return without waiting for their answers.  They progress in
 * http_progress() and http_wait(); http_abort() tears them down.  The
 * worker sends a round this way and writes the previous round's answers
 * while the provider works on it.
 */
void
http_start(HttpRequest **reqs, int nreqs, int max_parallel)
{
	http_setup(Max(max_parallel, 1));

	PG_TRY();
	{
		for (int i = 0; i < nreqs; i++)
		{
			CURL *h = easy_for(reqs[i]);

			if (curl_multi_add_handle(multi, h) != CURLM_OK)
				elog(ERROR, "curl_multi_add_handle failed");
		}
		/* the requests leave now (on a kept-alive connection, whole) */
		drive(false);
	}
	PG_CATCH();
	{
		http_abort(reqs, nreqs);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * http_progress: move the transfers in flight on without blocking (the
 * worker calls it between the statements of other work).
 */
void
http_progress(void)
{
	if (multi != NULL)
		drive(false);
}

/*
 * http_wait: wait until every request started by http_start() is done.
 * Transport outcomes land in each request; nothing here raises an error for
 * a failed transfer.  An interrupt raises the usual error after the
 * transfers are torn down.
 */
void
http_wait(HttpRequest **reqs, int nreqs)
{
	PG_TRY();
	{
		pgstat_report_wait_start(PG_WAIT_EXTENSION);
		for (;;)
		{
			bool running = false;

			for (int i = 0; i < nreqs && !running; i++)
				running = reqs[i]->easy != NULL;
			if (!running)
				break;
			drive(true);
			CHECK_FOR_INTERRUPTS();
		}
		pgstat_report_wait_end();
	}
	PG_CATCH();
	{
		http_abort(reqs, nreqs);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * http_abort: tear down the requests still in flight; each is marked
 * aborted.  Safe to call for requests already done.
 */
void
http_abort(HttpRequest **reqs, int nreqs)
{
	for (int i = 0; i < nreqs; i++)
	{
		if (reqs[i]->easy != NULL)
		{
			curl_multi_remove_handle(multi, reqs[i]->easy);
			curl_easy_cleanup(reqs[i]->easy);
			reqs[i]->easy = NULL;
			if (reqs[i]->curl_code == 0)
				reqs[i]->curl_code = CURLE_ABORTED_BY_CALLBACK;
		}
	}
}

/*
 * http_perform: run the requests, at most max_parallel at once, until all
 * are done (http_start() and http_wait()).
 */
void
http_perform(HttpRequest **reqs, int nreqs, int max_parallel)
{
	http_start(reqs, nreqs, max_parallel);
	http_wait(reqs, nreqs);
}
