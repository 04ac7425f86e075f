/*
 * libFuzzer target: cfs_listing_parse_s3() on a ListObjectsV2 response.
 * Input: 1 byte choosing the prefix the listing was asked for (byte % 3),
 * then the response body, handed over as a copy of exactly its bytes.
 */
#include <gio/gio.h>
#include <stdint.h>
#include <stdlib.h>

#include "remote/listing.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const prefixes[] = { "", "data/", "a b/\xc3\xa9t\xc3\xa9/" };

static void check_entries(const struct cfs_listing *l)
{
	for (guint i = 0; i < l->entries->len; i++) {
		const struct cfs_entry *e = &g_array_index(l->entries, struct cfs_entry, i);
		if (!e->name || (!e->is_dir && !*e->name))
			abort(); /* a file needs a name: the prefix's folder marker is dropped */
		if (e->is_dir ? e->size != CFS_SIZE_UNKNOWN || e->etag
			      : e->size != CFS_SIZE_UNKNOWN && e->size > G_MAXINT64)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *prefix = prefixes[data[0] % G_N_ELEMENTS(prefixes)];
	char *xml = g_memdup2(data + 1, size - 1);
	GError *err = NULL;
	struct cfs_listing *l = cfs_listing_parse_s3(xml, size - 1, prefix, &err);
	if (l) {
		if (err)
			abort();
		check_entries(l);
		cfs_listing_free(l);
	} else {
		if (!err || (err->domain != G_MARKUP_ERROR &&
			     !g_error_matches(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA)))
			abort();
		g_error_free(err);
	}
	g_free(xml);
	return 0;
}
