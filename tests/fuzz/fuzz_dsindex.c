/*
 * libFuzzer target: cfs_ds_index_parse() on the input, then the invariants of what it
 * returns; a compressed index's plain_index must parse back to the decompressed view; every
 * leaf's name (from LitData's data_spec or MDS column_names) is a safe file name stem that
 * finds that leaf and no other.
 * The index is a copy of exactly the input's bytes, so that a read past them is caught.
 */
#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "formats/dsindex.h"
#include "formats/leaves.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct cfs_ds_chunk *chunk(const struct cfs_ds_index *idx, guint i)
{
	return &g_array_index(idx->chunks, struct cfs_ds_chunk, i);
}

static void check_stem(const struct cfs_leaf_schema *s, guint i)
{
	const char *stem = cfs_leaf_stem(s, i);
	size_t len = strlen(stem);
	if (len == 0 || len > CFS_LEAF_STEM_MAX || strchr(stem, '/') || g_str_equal(stem, ".") ||
	    g_str_equal(stem, "..") || !g_utf8_validate(stem, (gssize)len, NULL) ||
	    cfs_leaf_find(s, stem) != (int)i)
		abort();
	for (size_t j = 0; j < len; j++)
		if ((unsigned char)stem[j] < 0x20 || stem[j] == 0x7f)
			abort();
}

static void check_names(const struct cfs_ds_index *idx)
{
	for (guint j = 0; j < idx->schemas->len; j++) {
		const struct cfs_leaf_schema *s = idx->schemas->pdata[j];
		for (guint i = 0; i < cfs_leaf_count(s); i++)
			check_stem(s, i);
	}
}

static void check_chunks(const struct cfs_ds_index *idx)
{
	for (guint i = 0; i < idx->chunks->len; i++) {
		const struct cfs_ds_chunk *c = chunk(idx, i);
		bool owned = !c->schema;
		for (guint j = 0; j < idx->schemas->len; j++)
			owned |= idx->schemas->pdata[j] == c->schema;
		if (!c->name || !owned || (!c->plain_name && c->plain_size != c->size))
			abort();
	}
}

/*
 * json-glib writes numbers it read as infinite as "inf", which it cannot read back: such
 * inputs cannot have a valid plain_index, whatever the parser does.
 */
static bool json_glib_round_trips(const uint8_t *data, size_t size)
{
	JsonParser *parser = json_parser_new();
	bool ok = json_parser_load_from_data(parser, (const char *)data, (gssize)size, NULL);
	if (ok) {
		JsonGenerator *gen = json_generator_new();
		json_generator_set_root(gen, json_parser_get_root(parser));
		gsize len;
		char *text = json_generator_to_data(gen, &len);
		ok = json_parser_load_from_data(parser, text, (gssize)len, NULL);
		g_free(text);
		g_object_unref(gen);
	}
	g_object_unref(parser);
	return ok;
}

/* The decompressed view's index lists the plain chunks, uncompressed. */
static void check_plain_index(const struct cfs_ds_index *idx)
{
	size_t len;
	const char *json = g_bytes_get_data(idx->plain_index, &len);
	struct cfs_ds_index *view = cfs_ds_index_parse(json, len, NULL);
	if (!view || view->zstd || view->compression || view->format != idx->format ||
	    view->chunks->len != idx->chunks->len)
		abort();
	for (guint i = 0; i < idx->chunks->len; i++) {
		const struct cfs_ds_chunk *c = chunk(idx, i), *v = chunk(view, i);
		if (strcmp(v->name, c->plain_name ? c->plain_name : c->name) != 0 ||
		    v->size != c->plain_size ||
		    v->items != c->items || !cfs_leaf_schema_equal(v->schema, c->schema))
			abort();
	}
	cfs_ds_index_free(view);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	GError *err = NULL;
	/* A copy of exactly the bytes, NULL when there are none, as a body's GBytes gives it. */
	char *json = g_memdup2(data, size);
	struct cfs_ds_index *idx = cfs_ds_index_parse(json, size, &err);
	g_free(json);
	if (!idx) {
		if (!err || !g_error_matches(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA))
			abort();
		g_error_free(err);
		return 0;
	}
	if (err || idx->zstd != (idx->plain_index != NULL) || (idx->zstd && !idx->compression))
		abort();
	check_chunks(idx);
	check_names(idx);
	if (idx->plain_index && json_glib_round_trips(data, size))
		check_plain_index(idx);
	cfs_ds_index_free(idx);
	return 0;
}
