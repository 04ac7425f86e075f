/*
 * libFuzzer target: the input scanned as a tar archive twice, once in windows whose sizes
 * the input's own bytes choose (exactly what the scanner wants, or more) and once whole;
 * both scans must end the same way with the same members. Every window is a copy of exactly
 * its bytes, so that a read past it is caught by AddressSanitizer.
 */
#include <gio/gio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "formats/tar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Bytes beyond the wanted ones in window number step: 0..127, or a multiple of 512. */
static uint64_t extra_bytes(const uint8_t *data, size_t size, unsigned step)
{
	uint8_t b = data[(size_t)step * 7919 % size];
	return b < 128 ? b : (uint64_t)(b - 128) * CFS_TAR_BLOCK;
}

static enum cfs_tar_status scan(const uint8_t *data, size_t size, bool split, GPtrArray *out)
{
	struct cfs_tar_scan *s = cfs_tar_scan_new(size);
	uint64_t last_pos = UINT64_MAX, last_len = 0;
	enum cfs_tar_status st;
	unsigned step = 0;
	do {
		uint64_t pos, len;
		cfs_tar_scan_want(s, &pos, &len);
		if (pos > size || len > size - pos || len > CFS_TAR_MAX_META + CFS_TAR_BLOCK ||
		    (pos == last_pos && len == last_len))
			abort(); /* out of the archive, too much, or no progress */
		last_pos = pos;
		last_len = len;
		uint64_t extra = split ? extra_bytes(data, size, step++) : size;
		uint64_t n = MIN(len + extra, size - pos);
		uint8_t *window = g_memdup2(data + pos, (gsize)n);
		GError *err = NULL;
		st = cfs_tar_scan_feed(s, pos, window, (size_t)n, out, &err);
		g_free(window);
		if ((st == CFS_TAR_ERROR) != (err != NULL) ||
		    (err && !g_error_matches(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA)))
			abort();
		g_clear_error(&err);
	} while (st == CFS_TAR_NEED);
	cfs_tar_scan_free(s);
	return st;
}

static void check_members(GPtrArray *out, size_t size)
{
	for (guint i = 0; i < out->len; i++) {
		const struct cfs_tar_member *m = out->pdata[i];
		if (!m->path || m->type == '\0' || m->type == '7' ||
		    m->offset % CFS_TAR_BLOCK != 0 || m->offset > size || m->size > size - m->offset)
			abort();
	}
}

static bool same_members(GPtrArray *a, GPtrArray *b)
{
	if (a->len != b->len)
		return false;
	for (guint i = 0; i < a->len; i++) {
		const struct cfs_tar_member *x = a->pdata[i], *y = b->pdata[i];
		if (strcmp(x->path, y->path) != 0 || x->type != y->type || x->offset != y->offset ||
		    x->size != y->size)
			return false;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	GPtrArray *split = g_ptr_array_new_with_free_func(cfs_tar_member_free);
	GPtrArray *whole = g_ptr_array_new_with_free_func(cfs_tar_member_free);
	enum cfs_tar_status a = scan(data, size, true, split);
	enum cfs_tar_status b = scan(data, size, false, whole);
	check_members(whole, size);
	if (a != b || !same_members(split, whole))
		abort();
	g_ptr_array_unref(split);
	g_ptr_array_unref(whole);
	return 0;
}
