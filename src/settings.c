/*-------------------------------------------------------------------------
 *
 * settings.c
 *	  The extension's GUCs.
 *
 * Where the extension connects and with which account are superuser-only:
 * a role that could point the endpoint elsewhere could read the token off
 * the wire.  Timeouts and the batch size are per-session tunables.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "nodes/pg_list.h"
#include "utils/guc.h"
#include "utils/varlena.h"

#include "lead_enrich.h"
#include "worker.h"

char *le_endpoint = NULL;
char *le_enrich_endpoint = NULL;
char *le_mining_endpoint = NULL;
char *le_iap_endpoint = NULL;
char *le_account_token = NULL;
int	  le_connect_timeout_ms = 2000;
int	  le_timeout_ms = 30000;
int	  le_batch_size = 50;
int	  le_max_response_kb = 8192;
int	  le_max_connections = 8;
int	  le_interval_min = 60;
int	  le_workers_per_database = 1;
int	  le_max_attempts = 5;
int	  le_retry_delay_s = 10;
char *le_databases = NULL;
bool  le_odoo_chatter = true;

/*
 * check_endpoint: only http:// and https:// URLs, no trailing garbage.
 */
static bool
check_endpoint(char **newval, void **extra, GucSource source)
{
	const char *v = *newval;

	if (v == NULL || v[0] == '\0')
		return true;
	if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
	{
		GUC_check_errdetail("The endpoint must start with http:// or https://.");
		return false;
	}
	if (strpbrk(v, " \t\r\n") != NULL)
	{
		GUC_check_errdetail("The endpoint must not contain white space.");
		return false;
	}
	return true;
}

/*
 * check_account_token: the token may live in postgresql.conf, in
 * postgresql.auto.conf (ALTER SYSTEM) or be SET by a superuser in a
 * session, all readable by superusers only.  A database- or role-level
 * setting (ALTER DATABASE / ALTER ROLE ... SET) is stored in
 * pg_db_role_setting, which every role can read: refused there.  The
 * values stored before this check existed are ignored when a session
 * starts, with a warning.
 */
static bool
check_account_token(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (source == PGC_S_TEST || source == PGC_S_DATABASE || source == PGC_S_USER ||
		source == PGC_S_DATABASE_USER)
	{
		GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
		GUC_check_errmsg("lead_enrich.account_token cannot be set per database or per role");
		GUC_check_errdetail("Such settings are stored in pg_db_role_setting, which every role can read.");
		GUC_check_errhint("Use ALTER SYSTEM SET lead_enrich.account_token = '...' and SELECT pg_reload_conf(), "
						  "or Odoo's iap_account table; remove this one with ALTER DATABASE ... RESET "
						  "lead_enrich.account_token or ALTER ROLE ... RESET lead_enrich.account_token.");
		return false;
	}
	return true;
}

/*
 * check_databases: a list of names, as SplitIdentifierString reads it.
 */
static bool
check_databases(char **newval, void **extra, GucSource source)
{
	char *copy;
	List *names;
	bool  ok;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	copy = pstrdup(*newval);
	ok = SplitIdentifierString(copy, ',', &names);
	list_free(names);
	pfree(copy);
	if (!ok)
		GUC_check_errdetail("The list of databases is not valid: use names separated by commas.");
	return ok;
}

/*
 * le_database_served: whether the worker serves the database, according to
 * lead_enrich.databases.
 */
bool
le_database_served(const char *dbname)
{
	char	 *copy;
	List	 *names;
	ListCell *lc;
	bool	  found = false;

	if (le_databases == NULL || le_databases[0] == '\0')
		return true;
	copy = pstrdup(le_databases);
	if (!SplitIdentifierString(copy, ',', &names))
		return false;
	foreach(lc, names)
	{
		if (strcmp((char *) lfirst(lc), dbname) == 0)
			found = true;
	}
	list_free(names);
	pfree(copy);
	return found;
}

/*
 * le_define_settings: called from _PG_init.
 */
void
le_define_settings(void)
{
	DefineCustomStringVariable("lead_enrich.endpoint",
							   "Base URL of the enrichment provider (all services).",
							   "Paths such as /iap/clearbit/1/lead_enrichment_email are appended.",
							   &le_endpoint, "http://127.0.0.1:7070",
							   PGC_SUSET, 0, check_endpoint, NULL, NULL);
	DefineCustomStringVariable("lead_enrich.enrich_endpoint",
							   "Base URL for lead enrichment; empty means lead_enrich.endpoint.",
							   NULL, &le_enrich_endpoint, "",
							   PGC_SUSET, 0, check_endpoint, NULL, NULL);
	DefineCustomStringVariable("lead_enrich.mining_endpoint",
							   "Base URL for lead mining; empty means lead_enrich.endpoint.",
							   NULL, &le_mining_endpoint, "",
							   PGC_SUSET, 0, check_endpoint, NULL, NULL);
	DefineCustomStringVariable("lead_enrich.iap_endpoint",
							   "Base URL for the balance and buy-credits page; empty means lead_enrich.endpoint.",
							   NULL, &le_iap_endpoint, "",
							   PGC_SUSET, 0, check_endpoint, NULL, NULL);
	DefineCustomStringVariable("lead_enrich.account_token",
							   "IAP account token of the reveal service.",
							   "Empty: use Odoo's iap_account row for service reveal, if any.",
							   &le_account_token, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL,
							   check_account_token, NULL, NULL);
	DefineCustomIntVariable("lead_enrich.connect_timeout",
							"Time allowed to connect to the provider.",
							NULL, &le_connect_timeout_ms, 2000, 1, 600000,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("lead_enrich.timeout",
							"Time allowed for one request to the provider, connection included.",
							NULL, &le_timeout_ms, 30000, 1, 3600000,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("lead_enrich.batch_size",
							"Leads per enrichment request.",
							NULL, &le_batch_size, 50, 1, 1000,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("lead_enrich.max_response_size",
							"Largest provider response accepted.",
							NULL, &le_max_response_kb, 8192, 16, 1024 * 1024,
							PGC_SUSET, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("lead_enrich.max_connections",
							"Requests in flight at once to the provider, per process.",
							NULL, &le_max_connections, 8, 1, 64,
							PGC_SIGHUP, 0, NULL, NULL, NULL);

	/* the background worker (worker.c) */
	DefineCustomIntVariable("lead_enrich.interval",
							"Time between two periodic passes of the background worker.",
							"Each pass picks up every pending lead that is due, and checks "
							"the balance while enrichment is paused for lack of credits.",
							&le_interval_min, 60, 5, 7 * 24 * 60,
							PGC_SIGHUP, GUC_UNIT_MIN, NULL, NULL, NULL);
	DefineCustomIntVariable("lead_enrich.workers_per_database",
							"Background workers that enrich each database's queue at once.",
							"They share the queue: each claims its own leads and batches. "
							"One is enough while the provider bounds the rate; more use "
							"more cores and provider connections.",
							&le_workers_per_database, 1, 1, LE_MAX_WORKERS,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("lead_enrich.max_attempts",
							"Attempts of a lead the worker makes before marking it failed.",
							"Counts transient failures: connection refused, timeout, HTTP error.",
							&le_max_attempts, 5, 1, 100,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("lead_enrich.retry_delay",
							"Delay before the worker retries a lead after its first transient failure.",
							"Doubles with each further attempt, up to lead_enrich.interval.",
							&le_retry_delay_s, 10, 1, 24 * 3600,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomStringVariable("lead_enrich.databases",
							   "Databases the background worker serves (comma-separated); empty means all.",
							   "Databases without the extension are skipped either way.",
							   &le_databases, "",
							   PGC_SIGHUP, GUC_LIST_INPUT, check_databases, NULL, NULL);
	DefineCustomBoolVariable("lead_enrich.odoo_chatter",
							 "Post enrichment and mining notes in the chatter of Odoo's leads.",
							 "As Odoo does; off leaves Odoo's mail_message alone (a bulk back-fill, say).",
							 &le_odoo_chatter, true,
							 PGC_SUSET, 0, NULL, NULL, NULL);
}

/*
 * le_service_url: the base URL of one service.
 */
const char *
le_service_url(LeService service)
{
	const char *v = NULL;

	switch (service)
	{
		case LE_SERVICE_ENRICH:
			v = le_enrich_endpoint;
			break;
		case LE_SERVICE_MINING:
			v = le_mining_endpoint;
			break;
		case LE_SERVICE_IAP:
			v = le_iap_endpoint;
			break;
	}
	if (v == NULL || v[0] == '\0')
		v = le_endpoint;
	if (v == NULL || v[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("no provider endpoint is configured"),
				 errhint("Set lead_enrich.endpoint, for example with ALTER SYSTEM.")));
	return v;
}
