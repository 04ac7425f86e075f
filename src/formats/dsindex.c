/* Dataset indexes: which format an index.json is, parsed by that format's parser. */
#include "formats/dsindex.h"

#include "formats/jsondepth.h"
#include "formats/leaves.h"
#include "dsindex_i.h"
#include "dsjson_i.h"

#include <json-glib/json-glib.h>

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
