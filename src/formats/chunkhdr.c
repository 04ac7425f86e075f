/* The item table at the start of LitData chunks and MDS shards. */
#include "formats/chunkhdr.h"

#include "remote/listing.h"

#include <gio/gio.h>
#include <stdbool.h>
#include <string.h>

static uint32_t le32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return GUINT32_FROM_LE(v);
}

uint64_t cfs_chunk_header_bytes(uint32_t n)
{
	return 4 + 4 * ((uint64_t)n + 1);
}

/* Sets *error (G_IO_ERROR_INVALID_DATA) to the message; returns false. */
#define invalid(error, ...) \
	(g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, __VA_ARGS__), false)

bool cfs_chunk_header_fits(uint32_t n, uint64_t size, GError **error)
{
	uint64_t header = cfs_chunk_header_bytes(n);
	if (n > CFS_CHUNK_MAX_ITEMS)
		return invalid(error, "the index gives %u items, more than the %u a chunk may hold",
			       n, CFS_CHUNK_MAX_ITEMS);
	if (size != CFS_SIZE_UNKNOWN && header > size)
		return invalid(error, "a header of %" G_GUINT64_FORMAT " bytes for %u items is "
			       "larger than the chunk (%" G_GUINT64_FORMAT " bytes)", header, n, size);
	return true;
}

/* Offset i against the end of the header, the offset before it and the end of the chunk. */
static bool offset_ok(const uint32_t *off, uint64_t i, uint64_t header, uint64_t size,
		      GError **error)
{
	if (off[i] < header)
		return invalid(error, "offset %" G_GUINT64_FORMAT " (%u) is inside the header (%"
			       G_GUINT64_FORMAT " bytes)", i, off[i], header);
	if (i > 0 && off[i] < off[i - 1])
		return invalid(error, "offset %" G_GUINT64_FORMAT " (%u) is below offset %"
			       G_GUINT64_FORMAT " (%u)", i, off[i], i - 1, off[i - 1]);
	if (off[i] > size)
		return invalid(error, "offset %" G_GUINT64_FORMAT " (%u) is past the end (%"
			       G_GUINT64_FORMAT ")", i, off[i], size);
	return true;
}

uint32_t *cfs_chunk_header_parse(const uint8_t *buf, size_t len, uint32_t n, uint64_t size,
				 GError **error)
{
	uint64_t header = cfs_chunk_header_bytes(n);
	/* A wrong count explains a short buffer better than "truncated" would. */
	if (len >= 4 && le32(buf) != n) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			    "holds %u items, the index says %u", le32(buf), n);
		return NULL;
	}
	if (len < header) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			    "header truncated: %zu of %" G_GUINT64_FORMAT " bytes", len, header);
		return NULL;
	}
	uint32_t *off = g_new(uint32_t, (gsize)n + 1);
	for (uint64_t i = 0; i <= n; i++) {
		off[i] = le32(buf + 4 + 4 * i);
		if (!offset_ok(off, i, header, size, error)) {
			g_free(off);
			return NULL;
		}
	}
	return off;
}
