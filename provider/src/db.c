/*
 * db.c
 *		libpq connections: a pool of --threads of them, opened lazily,
 *		dropped and reopened when the server goes away.
 *
 * Each HTTP connection has its own thread (http.c); a request borrows a
 * database connection for its one statement (one implicit transaction)
 * and gives it back, so a connection is never shared and never left inside
 * a transaction.  When every connection is busy, a request waits for one.
 * (With a fixed pool of HTTP threads, each owning a database connection,
 * libmicrohttpd handed most keep-alive connections to one thread, and their
 * requests queued behind each other on one database session while the
 * others sat idle.)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider.h"

static const char	  *db_conninfo = NULL;
static long			   db_timeout_ms = 30000;
static PGconn		 **pool = NULL; /* pool_size connections, NULL until opened */
static bool			  *pool_busy = NULL;
static int			   pool_size = 0;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t  pool_free = PTHREAD_COND_INITIALIZER;

static void slot_drop(int slot);

#define RPC_SQL \
	"SELECT status, response FROM provider.rpc($1, $2, $3::numeric, $4, $5::integer)"
#define PAGE_SQL \
	"SELECT provider.credit_page($1, $2, $3, $4)"

/*
 * db_setup
 *		Remember the conninfo every connection is opened with, the
 *		statement_timeout each of them sets, and how many there may be.
 */
bool
db_setup(const char *conninfo, long statement_timeout_ms, int connections)
{
	db_conninfo = conninfo;
	db_timeout_ms = statement_timeout_ms;
	pool_size = connections;
	pool = calloc(connections, sizeof(PGconn *));
	pool_busy = calloc(connections, sizeof(bool));
	return pool != NULL && pool_busy != NULL;
}

/*
 * db_acquire
 *		A free slot of the pool, waiting for one when all are busy.
 */
static int
db_acquire(void)
{
	int slot = -1;

	pthread_mutex_lock(&pool_lock);
	for (;;)
	{
		for (int i = 0; i < pool_size && slot < 0; i++)
			if (!pool_busy[i])
				slot = i;
		if (slot >= 0)
			break;
		pthread_cond_wait(&pool_free, &pool_lock);
	}
	pool_busy[slot] = true;
	pthread_mutex_unlock(&pool_lock);
	return slot;
}

/*
 * db_release
 *		Give a slot back.
 */
static void
db_release(int slot)
{
	pthread_mutex_lock(&pool_lock);
	pool_busy[slot] = false;
	pthread_cond_signal(&pool_free);
	pthread_mutex_unlock(&pool_lock);
}

/*
 * db_close_all
 *		Close the pool's connections (at shutdown, once no request runs).
 */
void
db_close_all(void)
{
	for (int i = 0; i < pool_size; i++)
	{
		if (pool[i] != NULL)
			PQfinish(pool[i]);
		pool[i] = NULL;
	}
}

/*
 * db_set_timeout
 *		Set the session's statement_timeout, so that no request (a lock wait,
 *		an unexpectedly slow query) holds a connection of the pool
 *		for longer; false when the server refused it.
 */
bool
db_set_timeout(PGconn *conn, long statement_timeout_ms)
{
	char	  sql[64];
	PGresult *res;
	bool	  ok;

	snprintf(sql, sizeof(sql), "SET statement_timeout = %ld", statement_timeout_ms);
	res = PQexec(conn, sql);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	return ok;
}

/*
 * db_connect_checked
 *		Open a connection; on failure return NULL and a malloc'd message.
 */
PGconn *
db_connect_checked(const char *conninfo, char **errmsg)
{
	PGconn *conn = PQconnectdb(conninfo);

	if (PQstatus(conn) != CONNECTION_OK)
	{
		const char *m = PQerrorMessage(conn);
		size_t		n = strlen(m);

		*errmsg = strdup(m);
		if (*errmsg != NULL && n > 0 && (*errmsg)[n - 1] == '\n')
			(*errmsg)[n - 1] = '\0';
		PQfinish(conn);
		return NULL;
	}
	*errmsg = NULL;
	return conn;
}

/*
 * slot_conn
 *		The connection of a slot the caller holds, (re)connecting and
 *		preparing the statements when needed.  NULL if the database cannot
 *		be reached.
 */
static PGconn *
slot_conn(int slot)
{
	PGconn	 *conn = pool[slot];
	char	 *err;
	PGresult *res;

	if (conn != NULL && PQstatus(conn) == CONNECTION_OK)
		return conn;
	slot_drop(slot);

	conn = db_connect_checked(db_conninfo, &err);
	if (conn == NULL)
	{
		log_error("database connection failed: %s", err ? err : "out of memory");
		free(err);
		return NULL;
	}
	/* short statements: JIT compilation would cost more than it saves */
	res = PQexec(conn, "SET application_name = 'lead_provider'; SET jit = off");
	PQclear(res);
	if (!db_set_timeout(conn, db_timeout_ms))
	{
		log_error("cannot set statement_timeout: %s", PQerrorMessage(conn));
		PQfinish(conn);
		return NULL;
	}
	res = PQprepare(conn, "rpc", RPC_SQL, 5, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		log_error("cannot prepare provider.rpc (was \"lead_provider init\" run?): %s",
				  PQerrorMessage(conn));
		PQclear(res);
		PQfinish(conn);
		return NULL;
	}
	PQclear(res);
	res = PQprepare(conn, "page", PAGE_SQL, 4, NULL);
	PQclear(res);
	pool[slot] = conn;
	return conn;
}

/*
 * slot_drop
 *		Close a slot's connection (after an error that broke it).
 */
static void
slot_drop(int slot)
{
	if (pool[slot] != NULL)
	{
		PQfinish(pool[slot]);
		pool[slot] = NULL;
	}
}

/*
 * session_lost
 *		Did the server end this session (a restart, pg_terminate_backend), or
 *		did libpq lose the connection?  After a crash restart libpq may still
 *		report CONNECTION_OK with "server closed the connection unexpectedly",
 *		an error of its own that carries no SQLSTATE.
 */
static bool
session_lost(const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	return state == NULL || strncmp(state, "57P", 3) == 0 || strncmp(state, "08", 2) == 0;
}

/*
 * exec_prepared
 *		Run a prepared statement on a connection of the pool; if the
 *		connection turns out to be broken, reconnect and try once more (safe:
 *		a charging call that did commit is answered from provider.reply the
 *		second time).
 */
static PGresult *
exec_prepared(const char *stmt, int nparams, const char *const *values)
{
	int		  slot = db_acquire();
	PGresult *res = NULL;

	for (int attempt = 0; attempt < 2 && res == NULL; attempt++)
	{
		PGconn *conn = slot_conn(slot);

		if (conn == NULL)
			break;
		res = PQexecPrepared(conn, stmt, nparams, values, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK ||
			(PQstatus(conn) == CONNECTION_OK && !session_lost(res)))
			break;
		PQclear(res);
		res = NULL;
		slot_drop(slot);
	}
	db_release(slot);
	return res;
}

/*
 * db_ping
 *		Does the database answer?  (For /health.)
 */
bool
db_ping(void)
{
	int		slot = db_acquire();
	PGconn *conn = slot_conn(slot);
	bool	ok = false;

	if (conn != NULL)
	{
		PGresult *res = PQexec(conn, "SELECT 1");

		ok = PQresultStatus(res) == PGRES_TUPLES_OK;
		PQclear(res);
		if (!ok && PQstatus(conn) != CONNECTION_OK)
			slot_drop(slot);
	}
	db_release(slot);
	return ok;
}

/*
 * db_rpc
 *		Call provider.rpc() with the raw body; return the HTTP status and set
 *		*response to a malloc'd JSON-RPC response.  Errors of the database
 *		itself become JSON-RPC errors here: invalid UTF-8 (rejected by the
 *		server before parsing) is a parse error, a cancelled statement (the
 *		statement_timeout) is 503 Timeout, anything else is 500/503.  A
 *		cancelled call was rolled back: nothing charged, nothing stored, so
 *		the client may send it again.
 */
int
db_rpc(const char *endpoint, const char *body, size_t len,
	   const ServeConfig *cfg, char **response)
{
	char		trial[32];
	char		maxd[32];
	const char *values[5];
	PGresult   *res;
	int			status;

	(void) len;
	snprintf(trial, sizeof(trial), "%ld", cfg->trial_credits);
	snprintf(maxd, sizeof(maxd), "%d", cfg->max_domains);
	values[0] = endpoint;
	values[1] = body;
	values[2] = trial;
	values[3] = cfg->public_url;
	values[4] = maxd;

	res = exec_prepared("rpc", 5, values);
	if (res == NULL)
	{
		*response = rpc_error_json(-32603, "ServiceUnavailable",
								   "the provider's database is unavailable");
		return 503;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		if (state != NULL && (strcmp(state, "22021") == 0 ||
							  strcmp(state, "22P05") == 0))
		{
			*response = rpc_error_json(-32700, "ParseError",
									   "the request body is not valid UTF-8");
			status = 400;
		}
		else if (state != NULL && strcmp(state, "57014") == 0)
		{
			char msg[256];

			snprintf(msg, sizeof(msg),
					 "the request was cancelled: it ran longer than the provider's "
					 "statement timeout (%ld ms) or the operator cancelled it; nothing "
					 "was charged, it may be sent again",
					 cfg->statement_timeout_ms);
			log_error("provider.rpc cancelled: %s", PQresultErrorMessage(res));
			*response = rpc_error_json(-32603, "Timeout", msg);
			status = 503;
		}
		else
		{
			log_error("provider.rpc failed: %s", PQresultErrorMessage(res));
			*response = rpc_error_json(-32603, "InternalError",
									   "the provider failed to process the request");
			status = 500;
		}
		PQclear(res);
		return status;
	}
	status = atoi(PQgetvalue(res, 0, 0));
	*response = strdup(PQgetvalue(res, 0, 1));
	PQclear(res);
	return status;
}

/*
 * db_credit_page
 *		The HTML credit page for the query arguments, malloc'd; NULL when the
 *		database is unavailable.
 */
char *
db_credit_page(const char *token, const char *dbuuid, const char *service,
			   const char *credit)
{
	const char *values[4] = {token, dbuuid, service, credit};
	PGresult   *res = exec_prepared("page", 4, values);
	char	   *page = NULL;

	if (res == NULL)
		return NULL;
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		page = strdup(PQgetvalue(res, 0, 0));
	else
		log_error("provider.credit_page failed: %s", PQresultErrorMessage(res));
	PQclear(res);
	return page;
}
