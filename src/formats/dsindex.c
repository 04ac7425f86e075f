/* Dataset indexes: which format an index.json is, and what the format parsers share. */
#include "formats/dsindex.h"

#include "formats/jsondepth.h"
#include "formats/leaves.h"
#include "dsindex_i.h"

#include <gio/gio.h>

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

static void chunk_clear(gpointer p)
{
	struct cfs_ds_chunk *c = p;
	g_free(c->name);
	g_free(c->plain_name);
}

void cfs_ds_index_free(struct cfs_ds_index *idx)
{
	if (!idx)
		return;
	g_array_free(idx->chunks, TRUE);
	g_free(idx->compression);
	if (idx->plain_index)
		g_bytes_unref(idx->plain_index);
	g_ptr_array_unref(idx->schemas);
	g_free(idx);
}

static struct cfs_ds_index *index_new(enum cfs_ds_format format)
{
	struct cfs_ds_index *idx = g_new0(struct cfs_ds_index, 1);
	idx->format = format;
	idx->chunks = g_array_new(FALSE, TRUE, sizeof(struct cfs_ds_chunk));
	g_array_set_clear_func(idx->chunks, chunk_clear);
	idx->schemas = g_ptr_array_new_with_free_func((GDestroyNotify)cfs_leaf_schema_free);
	return idx;
}

static GBytes *json_bytes(JsonNode *root)
{
	JsonGenerator *gen = json_generator_new();
	json_generator_set_root(gen, root);
	gsize len;
	char *text = json_generator_to_data(gen, &len);
	g_object_unref(gen);
	return g_bytes_new_take(text, len);
}

/* The root object, parsed by its format's parser (which may edit it for plain_index). */
static struct cfs_ds_index *parse_root(JsonObject *root, GError **error)
{
	struct cfs_ds_index *idx;
	bool ok;
	if (json_object_has_member(root, "chunks")) {
		idx = index_new(CFS_DS_LITDATA);
		ok = cfs_ds_parse_litdata(root, idx, error);
	} else if (json_object_has_member(root, "shards")) {
		idx = index_new(CFS_DS_MDS);
		ok = cfs_ds_parse_mds(root, idx, error);
	} else {
		cfs_ds_invalid(error, "neither a LitData index (no \"chunks\") nor an MDS index "
			       "(no \"shards\")");
		return NULL;
	}
	if (!ok) {
		cfs_ds_index_free(idx);
		return NULL;
	}
	return idx;
}

struct cfs_ds_index *cfs_ds_index_parse(const char *json, size_t len, GError **error)
{
	/* Mutable: a compressed dataset's index is edited into its decompressed view's. */
	JsonParser *parser = json_parser_new();
	GError *err = NULL;
	struct cfs_ds_index *idx = NULL;
	JsonNode *root = NULL;
	/* An empty body may come as NULL, which json-glib refuses without setting err. */
	const char *text = json ? json : "";
	if (!cfs_json_depth_ok(text, len, &err)) {
		cfs_ds_invalid(error, "%s", err->message);
		g_error_free(err);
	} else if (!json_parser_load_from_data(parser, text, (gssize)len, &err)) {
		cfs_ds_invalid(error, "not JSON: %s", err->message);
		g_error_free(err);
	} else if (!(root = json_parser_get_root(parser)) || !JSON_NODE_HOLDS_OBJECT(root)) {
		cfs_ds_invalid(error, "the JSON is not an object");
	} else {
		idx = parse_root(json_node_get_object(root), error);
		if (idx && idx->zstd)
			idx->plain_index = json_bytes(root);
	}
	g_object_unref(parser);
	return idx;
}
