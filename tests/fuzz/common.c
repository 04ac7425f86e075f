/* Helpers of the fuzz targets; see common.h. */
#include "common.h"

#include <gio/gio.h>
#include <stdlib.h>
#include <string.h>

/* A critical is a g_return_if_fail() that failed: a bug, like a crash. */
static GLogWriterOutput drop(GLogLevelFlags level, const GLogField *fields, gsize n,
			     gpointer data)
{
	(void)data;
	if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR)) {
		g_log_writer_standard_streams(level, fields, n, NULL);
		abort();
	}
	return G_LOG_WRITER_HANDLED;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	g_log_set_writer_func(drop, NULL, NULL);
	return 0;
}

static void check_file(const struct cfs_leaf_schema *s, guint i, const uint8_t *leaf,
		       uint64_t len)
{
	size_t probe_len = cfs_leaf_probe_bytes(s, i, len);
	if (probe_len > len || probe_len > CFS_LEAF_PROBE_BYTES)
		abort();
	uint8_t *probe = g_memdup2(leaf, probe_len);
	struct cfs_leaf_file f;
	cfs_leaf_describe(s, i, probe, probe_len, len, &f);
	g_free(probe);
	if (!f.ext || f.off > len || f.len > len - f.off)
		abort();
	if (f.prefix) {
		size_t n;
		const uint8_t *h = g_bytes_get_data(f.prefix, &n);
		if (n % 64 != 0 || memcmp(h, "\x93NUMPY\x01\x00", 8) != 0 || h[n - 1] != '\n')
			abort();
		g_bytes_unref(f.prefix);
	}
}

void fuzz_check_item(const struct cfs_leaf_schema *s, const uint8_t *item, uint64_t len)
{
	uint64_t table = cfs_leaf_table_bytes(s);
	size_t head_len = (size_t)MIN(len, table);
	uint8_t *head = g_memdup2(item, head_len);
	guint n = cfs_leaf_count(s);
	struct cfs_leaf *leaves = g_new(struct cfs_leaf, n);
	GError *err = NULL;
	if (cfs_leaves_locate(s, head, head_len, len, leaves, &err)) {
		uint64_t pos = table;
		for (guint i = 0; i < n; i++) {
			if (leaves[i].off != pos || leaves[i].len > len - pos)
				abort();
			pos += leaves[i].len;
			check_file(s, i, item + leaves[i].off, leaves[i].len);
		}
		if (pos != len)
			abort();
	} else if (!g_error_matches(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA)) {
		abort();
	}
	g_clear_error(&err);
	g_free(leaves);
	g_free(head);
}
