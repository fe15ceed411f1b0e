/*
 * main.c
 *		lead_provider: command line (flags and environment) and subcommands.
 *
 *	lead_provider init --db CONNINFO [--data PATH] [--psl PATH]
 *	lead_provider serve [--listen ADDR] [--port N] [--db CONNINFO] ...
 *	lead_provider credits add TOKEN N [--db CONNINFO]
 *	lead_provider accounts [--db CONNINFO]
 */
#include <errno.h>
#include <getopt.h> /* struct option */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "provider.h"

#define DEFAULT_DB	"dbname=lead_provider"
#define DEFAULT_PSL "/usr/share/publicsuffix/public_suffix_list.dat"

static char exe_dir_buf[PATH_MAX] = ".";

static const char *usage_text =
	"lead_provider: a self-hostable IAP-compatible lead enrichment and mining service\n"
	"\n"
	"Usage:\n"
	"  lead_provider init [--db CONNINFO] [--data PATH] [--psl PATH]\n"
	"      Create or update schema \"provider\" and (re)load the company directory\n"
	"      (default data/directory.csv.gz, or ../data/directory.csv.gz next to the\n"
	"      binary).  Accounts, ledger, replies and mined companies are kept.\n"
	"  lead_provider serve [options]\n"
	"      --listen ADDR        address to bind (LEAD_PROVIDER_LISTEN, 127.0.0.1)\n"
	"      --port N             TCP port (LEAD_PROVIDER_PORT, 7070)\n"
	"      --db CONNINFO        libpq conninfo (LEAD_PROVIDER_DB, \"" DEFAULT_DB "\")\n"
	"      --threads N          database connections: requests served at once (LEAD_PROVIDER_THREADS, 4)\n"
	"      --trial-credits N    credits granted to a new account on its first\n"
	"                           enrichment or mining call (LEAD_PROVIDER_TRIAL_CREDITS,\n"
	"                           0: none; credits are then added with \"credits add\")\n"
	"      --statement-timeout MS  statement_timeout of every database connection\n"
	"                           (LEAD_PROVIDER_STATEMENT_TIMEOUT, 30000)\n"
	"      --max-body BYTES     largest request body (LEAD_PROVIDER_MAX_BODY, 1048576)\n"
	"      --max-domains N      most domains per enrichment call (LEAD_PROVIDER_MAX_DOMAINS, 1000)\n"
	"      --public-url URL     public base URL, for the credit page link\n"
	"                           (LEAD_PROVIDER_PUBLIC_URL, http://ADDR:PORT)\n"
	"      --access-log FILE|-  one line per request (LEAD_PROVIDER_ACCESS_LOG, none)\n"
	"  lead_provider credits add TOKEN N [--db CONNINFO]\n"
	"      Add N credits to an account (created if needed); N < 0 removes credits,\n"
	"      never below zero.  Credits and accounts are managed only here (and in\n"
	"      SQL): no HTTP request reaches them.\n"
	"  lead_provider accounts [--db CONNINFO]\n"
	"      List accounts: token, balance, spent, created.\n"
	"\n"
	"Flags win over environment variables.  --help shows this text.\n";

/*
 * exe_dir
 *		The directory of the running binary, to find ../data next to it.
 */
const char *
exe_dir(void)
{
	return exe_dir_buf;
}

static void
find_exe_dir(void)
{
	char	buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	char   *slash;

	if (n <= 0)
		return;
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (slash != NULL)
	{
		*slash = '\0';
		snprintf(exe_dir_buf, sizeof(exe_dir_buf), "%s", buf[0] ? buf : "/");
	}
}

/*
 * parse_long
 *		A whole decimal number within [min, max]; exits with a message
 *		naming the setting otherwise.
 */
static long
parse_long(const char *s, const char *what, long min, long max)
{
	char *end;
	long  v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
	{
		log_error("invalid %s \"%s\": expected an integer from %ld to %ld", what, s, min, max);
		exit(2);
	}
	return v;
}

/*
 * env_or
 *		The environment variable if set and non-empty, else the default.
 */
static const char *
env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return (v != NULL && v[0] != '\0') ? v : dflt;
}

enum
{
	OPT_LISTEN = 1000,
	OPT_PORT,
	OPT_DB,
	OPT_THREADS,
	OPT_TRIAL,
	OPT_MAXBODY,
	OPT_MAXDOM,
	OPT_PUBURL,
	OPT_ACCESSLOG,
	OPT_STMT_TIMEOUT,
	OPT_DATA,
	OPT_PSL,
	OPT_HELP
};

static const struct option long_opts[] = {
	{"listen", required_argument, NULL, OPT_LISTEN},
	{"port", required_argument, NULL, OPT_PORT},
	{"db", required_argument, NULL, OPT_DB},
	{"threads", required_argument, NULL, OPT_THREADS},
	{"trial-credits", required_argument, NULL, OPT_TRIAL},
	{"max-body", required_argument, NULL, OPT_MAXBODY},
	{"max-domains", required_argument, NULL, OPT_MAXDOM},
	{"public-url", required_argument, NULL, OPT_PUBURL},
	{"access-log", required_argument, NULL, OPT_ACCESSLOG},
	{"statement-timeout", required_argument, NULL, OPT_STMT_TIMEOUT},
	{"data", required_argument, NULL, OPT_DATA},
	{"psl", required_argument, NULL, OPT_PSL},
	{"help", no_argument, NULL, OPT_HELP},
	{NULL, 0, NULL, 0},
};

/* Raw option values as given on the command line (NULL = not given). */
typedef struct Flags
{
	const char *v[OPT_HELP - OPT_LISTEN + 1];
	const char *pos[4]; /* positional arguments */
	int			npos;
} Flags;

/*
 * parse_flags
 *		Collect "--name VALUE" / "--name=VALUE" flags and positional arguments
 *		after the subcommand, in any order; only the flags in "allowed" are
 *		accepted.  Hand-rolled rather than getopt so that negative numbers
 *		("credits add TOKEN -20") stay positional.
 */
static void
parse_flags(int argc, char **argv, Flags *f, const int *allowed)
{
	int i;

	memset(f, 0, sizeof(*f));
	for (i = 1; i < argc; i++)
	{
		const char			*a = argv[i];
		const struct option *o;
		const char			*eq;
		size_t				 n;
		bool				 ok = false;
		int					 j;

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
		{
			fputs(usage_text, stdout);
			exit(0);
		}
		if (strncmp(a, "--", 2) != 0)
		{
			if (f->npos >= 4)
			{
				log_error("too many arguments");
				exit(2);
			}
			f->pos[f->npos++] = a;
			continue;
		}
		eq = strchr(a, '=');
		n = eq ? (size_t) (eq - a - 2) : strlen(a + 2);
		for (o = long_opts; o->name != NULL; o++)
			if (strlen(o->name) == n && strncmp(o->name, a + 2, n) == 0)
				break;
		for (j = 0; o->name != NULL && allowed[j] != 0; j++)
			if (allowed[j] == o->val)
				ok = true;
		if (!ok)
		{
			log_error("unknown option %s for \"%s\"", a, argv[0]);
			fputs("Try \"lead_provider --help\".\n", stderr);
			exit(2);
		}
		if (eq != NULL)
			f->v[o->val - OPT_LISTEN] = eq + 1;
		else if (i + 1 < argc)
			f->v[o->val - OPT_LISTEN] = argv[++i];
		else
		{
			log_error("option %s needs a value", a);
			exit(2);
		}
	}
}

/*
 * flag
 *		A setting: the flag if given, else the environment variable, else the
 *		default.
 */
static const char *
flag(const Flags *f, int opt, const char *env, const char *dflt)
{
	if (f->v[opt - OPT_LISTEN] != NULL)
		return f->v[opt - OPT_LISTEN];
	return env != NULL ? env_or(env, dflt) : dflt;
}

/*
 * cmd_serve
 *		Read the settings, check the database, run the HTTP daemon.
 */
static int
cmd_serve(int argc, char **argv)
{
	static const int allowed[] = {OPT_LISTEN, OPT_PORT, OPT_DB, OPT_THREADS,
								  OPT_TRIAL, OPT_MAXBODY, OPT_MAXDOM, OPT_PUBURL, OPT_ACCESSLOG,
								  OPT_STMT_TIMEOUT, 0};
	static char		 public_url[512];
	ServeConfig		 cfg;
	Flags			 f;
	char			*err;
	PGconn			*conn;
	PGresult		*res;
	bool			 ready;

	parse_flags(argc, argv, &f, allowed);
	if (f.npos > 0)
	{
		log_error("unexpected argument \"%s\"", f.pos[0]);
		return 2;
	}
	cfg.listen = flag(&f, OPT_LISTEN, "LEAD_PROVIDER_LISTEN", "127.0.0.1");
	cfg.port = (int) parse_long(flag(&f, OPT_PORT, "LEAD_PROVIDER_PORT", "7070"),
								"port", 1, 65535);
	cfg.db = flag(&f, OPT_DB, "LEAD_PROVIDER_DB", DEFAULT_DB);
	cfg.threads = (int) parse_long(flag(&f, OPT_THREADS, "LEAD_PROVIDER_THREADS", "4"),
								   "threads", 1, 256);
	/* no free credits unless the operator asks for them */
	cfg.trial_credits = parse_long(flag(&f, OPT_TRIAL, "LEAD_PROVIDER_TRIAL_CREDITS", "0"),
								   "trial credits", 0, 1000000000L);
	cfg.statement_timeout_ms = parse_long(flag(&f, OPT_STMT_TIMEOUT,
											   "LEAD_PROVIDER_STATEMENT_TIMEOUT", "30000"),
										  "statement timeout (ms)", 1, 86400000L);
	cfg.max_body = (size_t) parse_long(flag(&f, OPT_MAXBODY, "LEAD_PROVIDER_MAX_BODY", "1048576"),
									   "max body", 64, 1L << 30);
	cfg.max_domains = (int) parse_long(flag(&f, OPT_MAXDOM, "LEAD_PROVIDER_MAX_DOMAINS", "1000"),
									   "max domains", 1, 1000000);
	cfg.access_log = flag(&f, OPT_ACCESSLOG, "LEAD_PROVIDER_ACCESS_LOG", NULL);
	if (strchr(cfg.listen, ':') != NULL)
		snprintf(public_url, sizeof(public_url), "http://[%s]:%d", cfg.listen, cfg.port);
	else
		snprintf(public_url, sizeof(public_url), "http://%s:%d", cfg.listen, cfg.port);
	cfg.public_url = flag(&f, OPT_PUBURL, "LEAD_PROVIDER_PUBLIC_URL", public_url);
	{
		/* no trailing slash: "/iap/1/credit" is appended */
		size_t n = strlen(cfg.public_url);

		if (n > 0 && cfg.public_url[n - 1] == '/')
		{
			snprintf(public_url, sizeof(public_url), "%.*s", (int) n - 1, cfg.public_url);
			cfg.public_url = public_url;
		}
	}

	conn = db_connect_checked(cfg.db, &err);
	if (conn == NULL)
	{
		log_error("cannot connect to database \"%s\": %s", cfg.db, err ? err : "out of memory");
		free(err);
		return 1;
	}
	if (!db_set_timeout(conn, cfg.statement_timeout_ms))
	{
		log_error("cannot set statement_timeout on database \"%s\": %s", cfg.db,
				  PQerrorMessage(conn));
		PQfinish(conn);
		return 1;
	}
	res = PQexec(conn, "SELECT to_regprocedure('provider.rpc(text,text,numeric,text,integer)') "
					   "IS NOT NULL AND to_regclass('provider.org') IS NOT NULL");
	ready = PQresultStatus(res) == PGRES_TUPLES_OK && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	PQfinish(conn);
	if (!ready)
	{
		log_error("database \"%s\" has no schema provider: run \"lead_provider init\" first",
				  cfg.db);
		return 1;
	}
	if (!log_open(cfg.access_log))
	{
		log_error("cannot open access log %s", cfg.access_log);
		return 1;
	}
	if (!db_setup(cfg.db, cfg.statement_timeout_ms, cfg.threads))
	{
		log_error("out of memory");
		return 1;
	}
	return http_serve(&cfg);
}

/*
 * cmd_init
 *		Create the schema and load the directory.
 */
static int
cmd_init(int argc, char **argv)
{
	static const int allowed[] = {OPT_DB, OPT_DATA, OPT_PSL, 0};
	Flags			 f;

	parse_flags(argc, argv, &f, allowed);
	if (f.npos > 0)
	{
		log_error("unexpected argument \"%s\"", f.pos[0]);
		return 2;
	}
	return admin_init(flag(&f, OPT_DB, "LEAD_PROVIDER_DB", DEFAULT_DB),
					  f.v[OPT_DATA - OPT_LISTEN],
					  flag(&f, OPT_PSL, "LEAD_PROVIDER_PSL", DEFAULT_PSL));
}

/*
 * cmd_credits
 *		credits add TOKEN N
 */
static int
cmd_credits(int argc, char **argv)
{
	static const int allowed[] = {OPT_DB, 0};
	Flags			 f;

	parse_flags(argc, argv, &f, allowed);
	if (f.npos != 3 || strcmp(f.pos[0], "add") != 0)
	{
		log_error("usage: lead_provider credits add TOKEN N [--db CONNINFO]");
		return 2;
	}
	return admin_credits_add(flag(&f, OPT_DB, "LEAD_PROVIDER_DB", DEFAULT_DB),
							 f.pos[1], f.pos[2]);
}

/*
 * cmd_accounts
 *		accounts
 */
static int
cmd_accounts(int argc, char **argv)
{
	static const int allowed[] = {OPT_DB, 0};
	Flags			 f;

	parse_flags(argc, argv, &f, allowed);
	if (f.npos != 0)
	{
		log_error("usage: lead_provider accounts [--db CONNINFO]");
		return 2;
	}
	return admin_accounts(flag(&f, OPT_DB, "LEAD_PROVIDER_DB", DEFAULT_DB));
}

/*
 * main
 *		Dispatch on the subcommand.
 */
int
main(int argc, char **argv)
{
	const char *cmd;

	find_exe_dir();
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
		strcmp(argv[1], "help") == 0)
	{
		fputs(usage_text, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	cmd = argv[1];
	/* getopt sees the subcommand as argv[0] */
	if (strcmp(cmd, "serve") == 0)
		return cmd_serve(argc - 1, argv + 1);
	if (strcmp(cmd, "init") == 0)
		return cmd_init(argc - 1, argv + 1);
	if (strcmp(cmd, "credits") == 0)
		return cmd_credits(argc - 1, argv + 1);
	if (strcmp(cmd, "accounts") == 0)
		return cmd_accounts(argc - 1, argv + 1);
	log_error("unknown command \"%s\"", cmd);
	fputs(usage_text, stderr);
	return 2;
}
