/*
 * admin.c
 *		The administrative subcommands: init (schema and directory load),
 *		credits add, accounts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <zlib.h>

#include "provider.h"
#include "schema_sql.h"

/*
 * connect_or_die
 *		Connect for an admin command; report a clear error and return NULL.
 */
static PGconn *
connect_or_die(const char *conninfo)
{
	char   *err;
	PGconn *conn = db_connect_checked(conninfo, &err);

	if (conn == NULL)
	{
		log_error("cannot connect to database \"%s\": %s", conninfo,
				  err ? err : "out of memory");
		free(err);
	}
	return conn;
}

/*
 * exec_ok
 *		Run a command; print the server's error and return false on failure.
 */
static bool
exec_ok(PGconn *conn, const char *sql, const char *what)
{
	PGresult	  *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);
	bool		   ok = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);

	if (!ok)
		log_error("%s failed: %s", what, PQerrorMessage(conn));
	PQclear(res);
	return ok;
}

/*
 * file_exists
 *		Is path a readable regular file?
 */
static bool
file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/*
 * resolve_data_path
 *		The directory file: the --data path, else data/directory.csv.gz in
 *		the current directory, else ../data/directory.csv.gz next to the
 *		binary (provider/lead_provider in the repository).
 */
static const char *
resolve_data_path(const char *given, char *buf, size_t size)
{
	if (given != NULL)
		return given;
	if (file_exists("data/directory.csv.gz"))
		return "data/directory.csv.gz";
	snprintf(buf, size, "%s/../data/directory.csv.gz", exe_dir());
	return buf;
}

/*
 * copy_end
 *		Finish a COPY FROM STDIN (aborting it with failure when !ok) and
 *		collect its results; true when the rows were loaded.
 */
static bool
copy_end(PGconn *conn, bool ok, const char *failure, const char *path)
{
	PGresult *res;

	PQputCopyEnd(conn, ok ? NULL : failure);
	res = PQgetResult(conn);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		log_error("loading %s failed: %s", path, PQerrorMessage(conn));
		ok = false;
	}
	PQclear(res);
	while ((res = PQgetResult(conn)) != NULL)
		PQclear(res);
	return ok;
}

/*
 * copy_gzip
 *		Stream a (gzip or plain) file into a COPY FROM STDIN already started.
 */
static bool
copy_gzip(PGconn *conn, const char *path)
{
	gzFile gz = gzopen(path, "rb");
	char   buf[65536];
	int	   n;
	bool   ok = true;

	if (gz == NULL)
	{
		log_error("cannot open %s", path);
		PQputCopyEnd(conn, "cannot open the input file");
		PQclear(PQgetResult(conn));
		return false;
	}
	while ((n = gzread(gz, buf, sizeof(buf))) > 0)
	{
		if (PQputCopyData(conn, buf, n) != 1)
		{
			ok = false;
			break;
		}
	}
	if (n < 0)
	{
		int errnum;

		log_error("cannot read %s: %s", path, gzerror(gz, &errnum));
		ok = false;
	}
	gzclose(gz);
	return copy_end(conn, ok, "read error", path);
}

/*
 * copy_psl
 *		Stream the rules of the Public Suffix List into provider.psl_stage
 *		(one rule per line; comments and blank lines skipped).
 */
static bool
copy_psl(PGconn *conn, const char *path)
{
	FILE	 *f = fopen(path, "r");
	char	  line[1024];
	PGresult *res;
	bool	  ok = true;

	if (f == NULL)
	{
		fprintf(stderr, "lead_provider: warning: no Public Suffix List at %s; "
						"look-ups still never match a single label\n",
				path);
		return true;
	}
	res = PQexec(conn, "COPY provider.psl_stage (line) FROM STDIN");
	if (PQresultStatus(res) != PGRES_COPY_IN)
	{
		log_error("COPY provider.psl_stage failed: %s", PQerrorMessage(conn));
		PQclear(res);
		fclose(f);
		return false;
	}
	PQclear(res);
	while (fgets(line, sizeof(line), f) != NULL)
	{
		if (line[0] == '/' || line[0] == '\n' || line[0] == '\r' ||
			strchr(line, '\\') != NULL || strchr(line, '\t') != NULL)
			continue;
		if (PQputCopyData(conn, line, (int) strlen(line)) != 1)
		{
			ok = false;
			break;
		}
	}
	fclose(f);
	return copy_end(conn, ok, "write error", path);
}

/*
 * admin_init
 *		Create or update schema "provider" and load the directory, all in one
 *		transaction (a failed load leaves the previous directory in place).
 *		Accounts, ledger, replies and mined companies are kept.
 */
int
admin_init(const char *conninfo, const char *data_path, const char *psl_path)
{
	char			pathbuf[4096];
	char			buf[256];
	const char	   *path = resolve_data_path(data_path, pathbuf, sizeof(pathbuf));
	PGconn		   *conn;
	PGresult	   *res;
	struct timespec t0,
		t1;
	const char *loaded;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!file_exists(path))
	{
		log_error("directory file not found: %s (use --data PATH)", path);
		return 1;
	}
	conn = connect_or_die(conninfo);
	if (conn == NULL)
		return 1;
	if (!exec_ok(conn, "BEGIN", "BEGIN") ||
		!exec_ok(conn, schema_sql, "creating schema provider"))
		goto fail;

	res = PQexec(conn, "COPY provider.org_stage FROM STDIN (FORMAT csv, HEADER match)");
	if (PQresultStatus(res) != PGRES_COPY_IN)
	{
		log_error("COPY provider.org_stage failed: %s", PQerrorMessage(conn));
		PQclear(res);
		goto fail;
	}
	PQclear(res);
	if (!copy_gzip(conn, path))
		goto fail;
	if (!copy_psl(conn, psl_path))
		goto fail;

	res = PQexec(conn, "SELECT provider.finish_load()");
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
	{
		/* a new statement, to see the rows finish_load() inserted */
		PQclear(res);
		res = PQexec(conn, "SELECT (SELECT count(*) FROM provider.org), "
						   "(SELECT count(*) FROM provider.org_domain)");
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		log_error("building the directory failed: %s", PQerrorMessage(conn));
		PQclear(res);
		goto fail;
	}
	loaded = PQgetvalue(res, 0, 0);
	snprintf(buf, sizeof(buf), "%s organisations, %s domains and aliases",
			 loaded, PQgetvalue(res, 0, 1));
	PQclear(res);
	if (!exec_ok(conn, "COMMIT", "COMMIT") ||
		!exec_ok(conn, "ANALYZE provider.org; ANALYZE provider.org_domain; "
					   "ANALYZE provider.public_suffix; ANALYZE provider.mined",
				 "ANALYZE"))
		goto fail;
	PQfinish(conn);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr, "lead_provider: loaded %s from %s in %.2f s\n", buf, path,
			(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	return 0;

fail:
	PQfinish(conn);
	return 1;
}

/*
 * admin_credits_add
 *		Add (or remove, if negative) credits; prints the new balance.
 */
int
admin_credits_add(const char *conninfo, const char *token, const char *credits)
{
	PGconn	   *conn = connect_or_die(conninfo);
	const char *values[2] = {token, credits};
	PGresult   *res;
	int			rc = 0;

	if (conn == NULL)
		return 1;
	res = PQexecParams(conn, "SELECT provider.add_credits($1, $2::numeric)",
					   2, NULL, values, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		log_error("credits add failed: %s", PQerrorMessage(conn));
		rc = 1;
	}
	else
		printf("%s: balance %s\n", token, PQgetvalue(res, 0, 0));
	PQclear(res);
	PQfinish(conn);
	return rc;
}

/*
 * admin_accounts
 *		List accounts: token, balance, spent, created.
 */
int
admin_accounts(const char *conninfo)
{
	PGconn	 *conn = connect_or_die(conninfo);
	PGresult *res;
	int		  i;
	int		  w = 5;

	if (conn == NULL)
		return 1;
	res = PQexec(conn, "SELECT token, balance, spent, "
					   "to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') "
					   "FROM provider.accounts()");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		log_error("listing accounts failed: %s", PQerrorMessage(conn));
		PQclear(res);
		PQfinish(conn);
		return 1;
	}
	for (i = 0; i < PQntuples(res); i++)
		if ((int) strlen(PQgetvalue(res, i, 0)) > w)
			w = (int) strlen(PQgetvalue(res, i, 0));
	printf("%-*s  %12s  %12s  %s\n", w, "token", "balance", "spent", "created (UTC)");
	for (i = 0; i < PQntuples(res); i++)
		printf("%-*s  %12s  %12s  %s\n", w, PQgetvalue(res, i, 0),
			   PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
	printf("(%d account%s)\n", PQntuples(res), PQntuples(res) == 1 ? "" : "s");
	PQclear(res);
	PQfinish(conn);
	return 0;
}
