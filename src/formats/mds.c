/* MosaicML MDS index.json, as streaming's MDSWriter writes it. */
#include "formats/dsindex.h"
#include "formats/leaves.h"
#include "dsindex_i.h"
#include "dsjson_i.h"

/* raw_data or zip_data: {"basename", "bytes", ...}. */
static bool shard_file(JsonObject *shard, const char *key, guint i, const char **name,
		       uint64_t *bytes, GError **error)
{
	JsonObject *o = cfs_json_object(shard, key);
	if (!o || !(*name = cfs_json_string(o, "basename")) ||
	    !cfs_json_uint(o, "bytes", G_MAXINT64, bytes))
		return cfs_ds_invalid(error, "shard %u has no \"%s\" with a string \"basename\" "
				      "and a non-negative integer \"bytes\"", i, key);
	return true;
}

/* column_sizes: bytes of a fixed-size column, null for a variable-size one (-1). */
static bool column_sizes(JsonArray *list, int64_t *sizes)
{
	for (guint i = 0; i < json_array_get_length(list); i++) {
		JsonNode *n = json_array_get_element(list, i);
		if (JSON_NODE_HOLDS_NULL(n))
			sizes[i] = -1;
		else if (JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_INT64 &&
			 json_node_get_int(n) >= 0)
			sizes[i] = json_node_get_int(n);
		else
			return false;
	}
	return true;
}

/*
 * Columns named as the shard names them (column_names, in column order: streaming
 * base/format/mds/writer.py `MDSWriter.__init__` sorts the columns by name and writes
 * column_encodings, column_names and column_sizes in that one order); a list that is not n
 * strings leaves the position names.
 */
static void name_columns(JsonObject *shard, struct cfs_leaf_schema *s, guint n)
{
	JsonArray *list = cfs_json_array(shard, "column_names");
	if (!list || json_array_get_length(list) != n)
		return;
	const char **names = g_new0(const char *, n);
	for (guint i = 0; i < n; i++)
		names[i] = cfs_json_string_at(list, i);
	cfs_leaf_schema_set_names(s, names);
	g_free(names);
}

/* How the shard's samples split into columns; NULL when its columns are not described. */
static struct cfs_leaf_schema *shard_schema(JsonObject *shard)
{
	JsonArray *encodings = cfs_json_array(shard, "column_encodings");
	JsonArray *sizes = cfs_json_array(shard, "column_sizes");
	if (!encodings || !sizes ||
	    json_array_get_length(encodings) != json_array_get_length(sizes))
		return NULL;
	guint n = json_array_get_length(encodings);
	const char **enc = g_new(const char *, n);
	int64_t *size = g_new(int64_t, n);
	bool ok = column_sizes(sizes, size);
	for (guint i = 0; ok && i < n; i++) {
		JsonNode *e = json_array_get_element(encodings, i);
		ok = JSON_NODE_HOLDS_VALUE(e) && json_node_get_value_type(e) == G_TYPE_STRING;
		enc[i] = ok ? json_node_get_string(e) : NULL;
	}
	struct cfs_leaf_schema *s = ok ? cfs_leaf_schema_mds(enc, size, n) : NULL;
	if (s)
		name_columns(shard, s, n);
	g_free(enc);
	g_free(size);
	return s;
}

/* Appends shard i to idx->chunks; *all_zstd becomes false when it is compressed otherwise. */
static bool parse_shard(JsonNode *node, guint i, struct cfs_ds_index *idx, bool *all_zstd,
			GError **error)
{
	JsonObject *o = JSON_NODE_HOLDS_OBJECT(node) ? json_node_get_object(node) : NULL;
	const char *format = o ? cfs_json_string(o, "format") : NULL;
	/* NULL: at -O3 GCC 12 cannot see that shard_file() sets it when it returns true */
	const char *raw_name = NULL, *zip_name = NULL, *compression;
	uint64_t samples, raw_bytes, zip_bytes = 0;
	if (!o)
		return cfs_ds_invalid(error, "shard %u is not a JSON object", i);
	if (!format || !g_str_equal(format, "mds"))
		return cfs_ds_invalid(error, "shard %u is not of \"format\" \"mds\"", i);
	if (!cfs_json_uint(o, "samples", G_MAXUINT32, &samples))
		return cfs_ds_invalid(error, "shard %u has no non-negative integer \"samples\"", i);
	if (!shard_file(o, "raw_data", i, &raw_name, &raw_bytes, error))
		return false;
	if (!cfs_json_opt_string(o, "compression", &compression))
		return cfs_ds_invalid(error, "shard %u has a \"compression\" that is neither null "
				      "nor a string", i);
	if (compression && !shard_file(o, "zip_data", i, &zip_name, &zip_bytes, error))
		return false;
	struct cfs_ds_chunk c = {
		.name = g_strdup(compression ? zip_name : raw_name),
		.size = compression ? zip_bytes : raw_bytes,
		.items = (uint32_t)samples,
		.plain_name = compression ? g_strdup(raw_name) : NULL,
		.plain_size = raw_bytes,
		.schema = cfs_ds_keep_schema(idx, shard_schema(o)),
	};
	g_array_append_val(idx->chunks, c);
	if (compression && !idx->compression)
		idx->compression = g_strdup(compression);
	if (compression && !cfs_ds_is_zstd(compression))
		*all_zstd = false;
	return true;
}

bool cfs_ds_parse_mds(JsonObject *root, struct cfs_ds_index *idx, GError **error)
{
	JsonArray *shards = cfs_json_array(root, "shards");
	uint64_t version;
	bool all_zstd = true;
	if (!shards)
		return cfs_ds_invalid(error, "not an MDS index: \"shards\" is not a list");
	if (!cfs_json_uint(root, "version", G_MAXINT64, &version) || version != 2)
		return cfs_ds_invalid(error, "not an MDS index of version 2");
	for (guint i = 0; i < json_array_get_length(shards); i++)
		if (!parse_shard(json_array_get_element(shards, i), i, idx, &all_zstd, error))
			return false;
	idx->zstd = idx->compression && all_zstd;
	for (guint i = 0; idx->zstd && i < json_array_get_length(shards); i++) {
		JsonObject *shard = json_array_get_object_element(shards, i);
		json_object_set_null_member(shard, "compression");
		json_object_set_null_member(shard, "zip_data");
	}
	return true;
}
