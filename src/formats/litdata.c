/* LitData index.json, as litdata's streaming/writer.py writes it. */
#include "formats/dataspec.h"
#include "formats/dsindex.h"
#include "formats/leaves.h"
#include "remote/listing.h"
#include "dsindex_i.h"
#include "dsjson_i.h"

#include <string.h>

/* What every chunk entry must give. */
struct chunk_fields {
	const char *filename; /* owned by the JSON tree */
	uint64_t bytes;       /* chunk_bytes */
	uint32_t items;       /* chunk_size */
};

static bool chunk_fields(JsonNode *node, guint i, struct chunk_fields *f, GError **error)
{
	JsonObject *o = JSON_NODE_HOLDS_OBJECT(node) ? json_node_get_object(node) : NULL;
	uint64_t items;
	if (!o)
		return cfs_ds_invalid(error, "chunk %u is not a JSON object", i);
	if (!(f->filename = cfs_json_string(o, "filename")))
		return cfs_ds_invalid(error, "chunk %u has no string \"filename\"", i);
	if (!cfs_json_uint(o, "chunk_bytes", G_MAXINT64, &f->bytes))
		return cfs_ds_invalid(error, "chunk %u has no non-negative integer \"chunk_bytes\"",
				      i);
	if (!cfs_json_uint(o, "chunk_size", G_MAXUINT32, &items))
		return cfs_ds_invalid(error, "chunk %u has no non-negative integer \"chunk_size\"",
				      i);
	f->items = (uint32_t)items;
	return true;
}

/* litdata names a compressed chunk "chunk-R-I.zstd.bin"; the plain one is "chunk-R-I.bin". */
static char *plain_filename(const char *name)
{
	char *plain = g_strdup(name);
	if (g_str_has_suffix(plain, ".zstd.bin"))
		strcpy(plain + strlen(plain) - strlen(".zstd.bin"), ".bin");
	return plain;
}

/*
 * Leaves named by the item's dict keys, from config.data_spec (dataspec.h); a data_spec that is
 * missing or cannot be read leaves the position names: it never refuses the dataset.
 */
static void name_leaves(JsonObject *config, struct cfs_leaf_schema *s)
{
	const char *spec = cfs_json_string(config, "data_spec");
	GPtrArray *names = spec ? cfs_data_spec_names(spec, cfs_leaf_count(s)) : NULL;
	if (!names)
		return;
	cfs_leaf_schema_set_names(s, (const char *const *)names->pdata);
	g_ptr_array_unref(names);
}

/* The leaves of the dataset's items, from config.data_format, item_loader and data_spec. */
static struct cfs_leaf_schema *config_schema(JsonObject *config)
{
	JsonArray *formats = cfs_json_array(config, "data_format");
	const char *loader;
	if (!formats || !cfs_json_opt_string(config, "item_loader", &loader))
		return NULL;
	guint n = json_array_get_length(formats);
	const char **v = g_new(const char *, n);
	struct cfs_leaf_schema *s = NULL;
	guint i = 0;
	for (; i < n; i++) {
		JsonNode *f = json_array_get_element(formats, i);
		if (!JSON_NODE_HOLDS_VALUE(f) || json_node_get_value_type(f) != G_TYPE_STRING)
			break;
		v[i] = json_node_get_string(f);
	}
	if (i == n)
		s = cfs_leaf_schema_litdata(v, n, loader);
	if (s)
		name_leaves(config, s);
	g_free(v);
	return s;
}

/* config: compression, encryption and the schema; an index without one has neither. */
static bool parse_config(JsonObject *root, struct cfs_ds_index *idx,
			 const struct cfs_leaf_schema **schema, GError **error)
{
	JsonObject *config = cfs_json_object(root, "config");
	const char *compression;
	*schema = NULL;
	if (!config)
		return true;
	if (!cfs_json_opt_string(config, "compression", &compression))
		return cfs_ds_invalid(error, "config.compression is neither null nor a string");
	JsonNode *encryption = json_object_get_member(config, "encryption");
	idx->compression = g_strdup(compression);
	idx->zstd = cfs_ds_is_zstd(compression);
	idx->encrypted = encryption && !JSON_NODE_HOLDS_NULL(encryption);
	/* Encrypted items cannot be split. */
	if (!idx->encrypted)
		*schema = cfs_ds_keep_schema(idx, config_schema(config));
	return true;
}

bool cfs_ds_parse_litdata(JsonObject *root, struct cfs_ds_index *idx, GError **error)
{
	JsonArray *list = cfs_json_array(root, "chunks");
	const struct cfs_leaf_schema *schema;
	if (!list)
		return cfs_ds_invalid(error, "not a LitData index: \"chunks\" is not a list");
	if (!parse_config(root, idx, &schema, error))
		return false;
	for (guint i = 0; i < json_array_get_length(list); i++) {
		JsonNode *node = json_array_get_element(list, i);
		struct chunk_fields f;
		if (!chunk_fields(node, i, &f, error))
			return false;
		bool compressed = idx->compression != NULL;
		struct cfs_ds_chunk c = {
			.name = g_strdup(f.filename),
			/* chunk_bytes is the uncompressed size */
			.size = compressed ? CFS_SIZE_UNKNOWN : f.bytes,
			.items = f.items,
			.plain_name = compressed ? plain_filename(f.filename) : NULL,
			.plain_size = f.bytes,
			.schema = schema,
		};
		g_array_append_val(idx->chunks, c);
		if (idx->zstd)
			json_object_set_string_member(json_node_get_object(node), "filename",
						      c.plain_name);
	}
	if (idx->zstd)
		json_object_set_null_member(cfs_json_object(root, "config"), "compression");
	return true;
}
