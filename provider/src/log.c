/*
 * log.c
 *		Access log (one line per request) and error messages.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "provider.h"

static FILE			  *access_fp = NULL;
static bool			   access_owned = false;
static pthread_mutex_t access_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * log_open
 *		Open the access log: a file appended to, "-" for stdout, NULL for none.
 */
bool
log_open(const char *path)
{
	if (path == NULL || path[0] == '\0')
		return true;
	if (strcmp(path, "-") == 0)
	{
		access_fp = stdout;
		access_owned = false;
		return true;
	}
	access_fp = fopen(path, "a");
	if (access_fp == NULL)
		return false;
	access_owned = true;
	return true;
}

/*
 * log_close
 *		Flush and close the access log at shutdown.
 */
void
log_close(void)
{
	pthread_mutex_lock(&access_lock);
	if (access_fp != NULL)
	{
		fflush(access_fp);
		if (access_owned)
			fclose(access_fp);
	}
	access_fp = NULL;
	pthread_mutex_unlock(&access_lock);
}

/*
 * log_access
 *		Write one access log line: UTC time, remote address, method, path,
 *		HTTP status, response bytes and duration in milliseconds.  The lock
 *		keeps lines from different connection threads whole.
 */
void
log_access(const char *remote, const char *method, const char *path,
		   unsigned int status, size_t bytes, double ms)
{
	/* access_fp is read under the lock only: log_close() may clear it */
	pthread_mutex_lock(&access_lock);
	if (access_fp != NULL)
	{
		struct timeval tv;
		struct tm	   tm;
		char		   ts[32];

		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(access_fp, "%s.%03dZ %s %s %s %u %zu %.3fms\n",
				ts, (int) (tv.tv_usec / 1000), remote, method, path,
				status, bytes, ms);
		fflush(access_fp);
	}
	pthread_mutex_unlock(&access_lock);
}

/*
 * log_error
 *		An operational message on stderr, prefixed with the program name.
 */
void
log_error(const char *fmt, ...)
{
	va_list ap;
	char	buf[2048];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "lead_provider: %s\n", buf);
}
