/* LitData index.json, as litdata's streaming/writer.py writes it. */
#include "chunkfs/litdata.h"

#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>

static void chunk_clear(gpointer p)
{
	g_free(((struct cfs_litdata_chunk *)p)->filename);
}

void cfs_litdata_index_free(struct cfs_litdata_index *idx)
{
	if (!idx)
		return;
	g_array_free(idx->chunks, TRUE);
	g_free(idx->compression);
	g_free(idx);
}

static bool invalid(GError **error, const char *fmt, guint i)
{
	g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, fmt, i);
	return false;
}

static bool is_int(JsonNode *n)
{
	return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_INT64;
}

static bool parse_chunk(JsonNode *node, guint i, bool compressed, struct cfs_litdata_chunk *c,
			GError **error)
{
	if (!JSON_NODE_HOLDS_OBJECT(node))
		return invalid(error, "chunk %u is not a JSON object", i);
	JsonObject *o = json_node_get_object(node);
	JsonNode *name = json_object_get_member(o, "filename");
	JsonNode *bytes = json_object_get_member(o, "chunk_bytes");
	JsonNode *items = json_object_get_member(o, "chunk_size");
	if (!name || !JSON_NODE_HOLDS_VALUE(name) || json_node_get_value_type(name) != G_TYPE_STRING)
		return invalid(error, "chunk %u has no string \"filename\"", i);
	if (!is_int(bytes) || json_node_get_int(bytes) < 0)
		return invalid(error, "chunk %u has no non-negative integer \"chunk_bytes\"", i);
	if (!is_int(items) || json_node_get_int(items) < 0 || json_node_get_int(items) > G_MAXUINT32)
		return invalid(error, "chunk %u has no non-negative integer \"chunk_size\"", i);
	c->filename = g_strdup(json_node_get_string(name));
	c->bytes = compressed ? 0 : (uint64_t)json_node_get_int(bytes);
	c->items = (uint32_t)json_node_get_int(items);
	return true;
}

static char *parse_compression(JsonObject *root)
{
	JsonNode *config = json_object_get_member(root, "config");
	if (!config || !JSON_NODE_HOLDS_OBJECT(config))
		return NULL;
	JsonNode *c = json_object_get_member(json_node_get_object(config), "compression");
	if (!c || !JSON_NODE_HOLDS_VALUE(c) || json_node_get_value_type(c) != G_TYPE_STRING)
		return NULL;
	return g_strdup(json_node_get_string(c));
}

struct cfs_litdata_index *cfs_litdata_parse_index(const char *json, size_t len, GError **error)
{
	JsonParser *parser = json_parser_new_immutable();
	GError *err = NULL;
	struct cfs_litdata_index *idx = NULL;
	if (!json_parser_load_from_data(parser, json, (gssize)len, &err)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "not JSON: %s", err->message);
		g_error_free(err);
		goto out;
	}
	JsonNode *root = json_parser_get_root(parser);
	JsonNode *chunks = root && JSON_NODE_HOLDS_OBJECT(root)
				   ? json_object_get_member(json_node_get_object(root), "chunks")
				   : NULL;
	if (!chunks || !JSON_NODE_HOLDS_ARRAY(chunks)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			    "not a LitData index: no \"chunks\" list");
		goto out;
	}
	idx = g_new0(struct cfs_litdata_index, 1);
	idx->compression = parse_compression(json_node_get_object(root));
	idx->chunks = g_array_new(FALSE, TRUE, sizeof(struct cfs_litdata_chunk));
	g_array_set_clear_func(idx->chunks, chunk_clear);
	JsonArray *list = json_node_get_array(chunks);
	for (guint i = 0; i < json_array_get_length(list); i++) {
		struct cfs_litdata_chunk c = { 0 };
		if (!parse_chunk(json_array_get_element(list, i), i, idx->compression != NULL, &c,
				 error)) {
			cfs_litdata_index_free(idx);
			idx = NULL;
			goto out;
		}
		g_array_append_val(idx->chunks, c);
	}
out:
	g_object_unref(parser);
	return idx;
}
