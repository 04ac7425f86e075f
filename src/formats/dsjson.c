/* What the index parsers share: typed members of a JSON object, errors, schemas (dsjson_i.h). */
#include "dsjson_i.h"

#include <gio/gio.h>

#include "formats/dsindex.h"
#include "formats/leaves.h"

bool cfs_ds_invalid(GError **error, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, msg);
	g_free(msg);
	return false;
}

const char *cfs_json_string(JsonObject *o, const char *key)
{
	JsonNode *n = json_object_get_member(o, key);
	if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING)
		return NULL;
	return json_node_get_string(n);
}

const char *cfs_json_string_at(JsonArray *a, guint i)
{
	JsonNode *n = json_array_get_element(a, i);
	if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING)
		return NULL;
	return json_node_get_string(n);
}

JsonObject *cfs_json_object(JsonObject *o, const char *key)
{
	JsonNode *n = json_object_get_member(o, key);
	return n && JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
}

JsonArray *cfs_json_array(JsonObject *o, const char *key)
{
	JsonNode *n = json_object_get_member(o, key);
	return n && JSON_NODE_HOLDS_ARRAY(n) ? json_node_get_array(n) : NULL;
}

bool cfs_json_uint(JsonObject *o, const char *key, uint64_t max, uint64_t *v)
{
	JsonNode *n = json_object_get_member(o, key);
	if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64)
		return false;
	gint64 i = json_node_get_int(n);
	if (i < 0 || (uint64_t)i > max)
		return false;
	*v = (uint64_t)i;
	return true;
}

bool cfs_json_opt_string(JsonObject *o, const char *key, const char **v)
{
	JsonNode *n = json_object_get_member(o, key);
	*v = cfs_json_string(o, key);
	return !n || JSON_NODE_HOLDS_NULL(n) || *v;
}

bool cfs_ds_is_zstd(const char *compression)
{
	return compression &&
	       (g_str_equal(compression, "zstd") || g_str_has_prefix(compression, "zstd:"));
}

const struct cfs_leaf_schema *cfs_ds_keep_schema(struct cfs_ds_index *idx,
						 struct cfs_leaf_schema *s)
{
	if (!s)
		return NULL;
	for (guint i = 0; i < idx->schemas->len; i++) {
		if (cfs_leaf_schema_equal(idx->schemas->pdata[i], s)) {
			cfs_leaf_schema_free(s);
			return idx->schemas->pdata[i];
		}
	}
	g_ptr_array_add(idx->schemas, s);
	return s;
}
