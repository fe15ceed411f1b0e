/*
 * provider.h
 *		Shared declarations of lead_provider, the reference IAP-compatible
 *		enrichment and mining service.
 *
 * The daemon is a thin HTTP front: every business rule lives in SQL in
 * schema "provider" (see ../schema.sql).
 */
#ifndef LEAD_PROVIDER_H
#define LEAD_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

/* Settings of the "serve" subcommand (flags, then environment, then defaults). */
typedef struct ServeConfig
{
	const char *listen; /* IPv4 or IPv6 address to bind */
	int			port;
	const char *db;					  /* libpq conninfo */
	int			threads;			  /* libmicrohttpd thread pool size */
	long		trial_credits;		  /* credits granted to a new account (0: none) */
	long		statement_timeout_ms; /* statement_timeout of every connection */
	size_t		max_body;			  /* largest accepted request body, bytes */
	int			max_domains;		  /* most domains in one enrichment call */
	const char *public_url;			  /* base of the credit page URL in errors */
	const char *access_log;			  /* file, "-" for stdout, NULL for none */
} ServeConfig;

/* db.c */
extern bool	   db_setup(const char *conninfo, long statement_timeout_ms, int connections);
extern void	   db_close_all(void);
extern bool	   db_set_timeout(PGconn *conn, long statement_timeout_ms);
extern PGconn *db_connect_checked(const char *conninfo, char **errmsg);
extern bool	   db_ping(void);
extern int	   db_rpc(const char *endpoint, const char *body, size_t len,
					  const ServeConfig *cfg, char **response);
extern char	  *db_credit_page(const char *token, const char *dbuuid,
							  const char *service, const char *credit);

/* rpc.c */
extern char *rpc_error_json(int code, const char *kind, const char *detail);

/* log.c */
extern bool log_open(const char *path);
extern void log_close(void);
extern void log_access(const char *remote, const char *method, const char *path,
					   unsigned int status, size_t bytes, double ms);
extern void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* http.c */
extern int http_serve(const ServeConfig *cfg);

/* admin.c */
extern int admin_init(const char *conninfo, const char *data_path,
					  const char *psl_path);
extern int admin_credits_add(const char *conninfo, const char *token,
							 const char *credits);
extern int admin_accounts(const char *conninfo);

/* main.c */
extern const char *exe_dir(void);

#endif /* LEAD_PROVIDER_H */
