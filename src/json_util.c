/*-------------------------------------------------------------------------
 *
 * json_util.c
 *	  Small accessors over jsonb containers, and JSON string output.
 *
 * Provider answers are parsed once into jsonb and read with these; the
 * company objects are kept as jsonb in lead_state.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "lead_enrich.h"

/*
 * jb_get: the value of key in an object container, or NULL if obj is not
 * an object or has no such key.
 */
JsonbValue *
jb_get(JsonbContainer *obj, const char *key, JsonbValue *buf)
{
	if (obj == NULL || !JsonContainerIsObject(obj))
		return NULL;
	return getKeyJsonValueFromContainer(obj, key, strlen(key), buf);
}

/*
 * scalar_text: a scalar as text; NULL for null, false, empty strings and
 * containers.  Numbers are printed as jsonb prints them.
 */
static char *
scalar_text(JsonbValue *v)
{
	if (v == NULL)
		return NULL;
	switch (v->type)
	{
		case jbvString:
			if (v->val.string.len == 0)
				return NULL;
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return v->val.boolean ? pstrdup("true") : NULL;
		default:
			return NULL;
	}
}

/*
 * jb_get_text: a key's scalar value as text, NULL when absent or falsy.
 */
char *
jb_get_text(JsonbContainer *obj, const char *key)
{
	JsonbValue buf;

	return scalar_text(jb_get(obj, key, &buf));
}

/*
 * jb_get_array_text: element index of an array-valued key, as text.
 */
char *
jb_get_array_text(JsonbContainer *obj, const char *key, int index)
{
	JsonbValue	buf;
	JsonbValue *arr = jb_get(obj, key, &buf);
	JsonbValue *elem;

	if (arr == NULL || arr->type != jbvBinary ||
		!JsonContainerIsArray(arr->val.binary.data))
		return NULL;
	elem = getIthJsonbValueFromContainer(arr->val.binary.data, index);
	return scalar_text(elem);
}

/*
 * jb_get_object: a key's value when it is an object, else NULL.
 */
JsonbContainer *
jb_get_object(JsonbContainer *obj, const char *key)
{
	JsonbValue	buf;
	JsonbValue *v = jb_get(obj, key, &buf);

	if (v == NULL || v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		return NULL;
	return v->val.binary.data;
}

/*
 * append_json_string: s as a quoted JSON string.
 */
void
append_json_string(StringInfo buf, const char *s)
{
	escape_json(buf, s);
}

/*
 * jsonb_container_to_cstring: the JSON text of a container.
 */
char *
jsonb_container_to_cstring(JsonbContainer *c)
{
	/* a container is not a varlena: no size to pass as an estimate */
	return JsonbToCString(NULL, c, -1);
}
