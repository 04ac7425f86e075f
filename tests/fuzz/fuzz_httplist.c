/*
 * libFuzzer target: cfs_listing_parse_http() on an HTTP server's index
 * page (nginx's JSON autoindex, or HTML links), handed over as a copy of
 * exactly its bytes. Every entry must be a direct child: a non-empty name
 * without '/', each named once in HTML.
 */
#include <gio/gio.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "remote/listing.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool is_json(const uint8_t *data, size_t size)
{
	size_t i = 0;
	while (i < size && g_ascii_isspace(data[i]))
		i++;
	return i < size && data[i] == '[';
}

static void check_entries(const struct cfs_listing *l, bool json)
{
	GHashTable *seen = g_hash_table_new(g_str_hash, g_str_equal);
	for (guint i = 0; i < l->entries->len; i++) {
		const struct cfs_entry *e = &g_array_index(l->entries, struct cfs_entry, i);
		if (!e->name || e->etag || l->truncated || l->next_token)
			abort();
		if (!json && (!*e->name || strchr(e->name, '/') || e->size != CFS_SIZE_UNKNOWN ||
			      !g_hash_table_add(seen, e->name)))
			abort();
		if (e->is_dir && e->size != CFS_SIZE_UNKNOWN)
			abort();
	}
	g_hash_table_destroy(seen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = g_memdup2(data, size);
	GError *err = NULL;
	struct cfs_listing *l = cfs_listing_parse_http(text, size, &err);
	if (l) {
		if (err)
			abort();
		check_entries(l, is_json(data, size));
		cfs_listing_free(l);
	} else {
		if (!g_error_matches(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA))
			abort();
		g_error_free(err);
	}
	g_free(text);
	return 0;
}
