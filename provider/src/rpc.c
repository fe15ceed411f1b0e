/*
 * rpc.c
 *		JSON-RPC error envelopes for the errors the HTTP front detects itself
 *		(wrong method or path, oversized body, database down), before any
 *		body is parsed: their id is always null.  Every other response is
 *		built by provider.rpc() in the database.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider.h"

/*
 * json_escape_into
 *		Append s as a JSON string body (without quotes) to buf.  The texts
 *		passed here are the daemon's own ASCII messages and request paths,
 *		so control characters are escaped as \u00XX and the rest is copied.
 */
static size_t
json_escape_into(char *buf, size_t size, size_t pos, const char *s)
{
	for (; *s != '\0' && pos + 7 < size; s++)
	{
		unsigned char c = (unsigned char) *s;

		if (c == '"' || c == '\\')
		{
			buf[pos++] = '\\';
			buf[pos++] = (char) c;
		}
		else if (c < 0x20 || c >= 0x7f)
			pos += snprintf(buf + pos, size - pos, "\\u%04x", c);
		else
			buf[pos++] = (char) c;
	}
	buf[pos] = '\0';
	return pos;
}

/*
 * rpc_error_json
 *		A malloc'd JSON-RPC 2.0 error response with id null:
 *		{"jsonrpc":"2.0","id":null,"error":{"code":..,"message":..,
 *		 "data":{"name":kind,"message":detail}}}.
 */
char *
rpc_error_json(int code, const char *kind, const char *detail)
{
	size_t		size = 256 + 6 * (strlen(kind) + strlen(detail));
	char	   *buf = malloc(size);
	const char *message;
	size_t		pos;

	if (buf == NULL)
		return NULL;
	switch (code)
	{
		case -32700:
			message = "Parse error";
			break;
		case -32600:
			message = "Invalid Request";
			break;
		case -32601:
			message = "Method not found";
			break;
		case -32602:
			message = "Invalid params";
			break;
		default:
			message = "Internal error";
			break;
	}
	pos = snprintf(buf, size,
				   "{\"jsonrpc\": \"2.0\", \"id\": null, \"error\": {\"code\": %d, "
				   "\"message\": \"%s\", \"data\": {\"name\": \"",
				   code, message);
	pos = json_escape_into(buf, size, pos, kind);
	pos += snprintf(buf + pos, size - pos, "\", \"message\": \"");
	pos = json_escape_into(buf, size, pos, detail);
	snprintf(buf + pos, size - pos, "\"}}}");
	return buf;
}
