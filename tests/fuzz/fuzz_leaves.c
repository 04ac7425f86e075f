/*
 * libFuzzer target: leaf schemas made from the format strings of an index
 * (LitData data_format, MDS column_encodings and column_sizes), then one
 * item split into leaves under it. Input: 1 byte choosing the kind
 * (byte % 3: LitData PyTreeLoader, LitData TokensLoader, MDS), the format
 * strings one per line up to a NUL byte (MDS: "SIZE ENCODING" for a column
 * of SIZE bytes, -1 or no SIZE for a variable one), then the item's bytes.
 * A schema must equal the one the same strings make again.
 */
#include <glib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/leaves.h"
#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An MDS line: "SIZE ENCODING" sets the column's size, else it is variable (-1). */
static const char *mds_column(const char *line, int64_t *size)
{
	const char *space = strchr(line, ' ');
	char *end;
	*size = -1;
	if (!space || space == line)
		return line;
	gint64 v = g_ascii_strtoll(line, &end, 10);
	if (end != space)
		return line;
	*size = v;
	return space + 1;
}

static struct cfs_leaf_schema *make_schema(uint8_t kind, char **lines, guint n)
{
	if (kind == 0 || kind == 1)
		return cfs_leaf_schema_litdata((const char *const *)lines, n,
					       kind ? "TokensLoader" : "PyTreeLoader");
	const char **encodings = g_new(const char *, n + 1);
	int64_t *sizes = g_new(int64_t, n + 1);
	for (guint i = 0; i < n; i++)
		encodings[i] = mds_column(lines[i], &sizes[i]);
	struct cfs_leaf_schema *s = cfs_leaf_schema_mds(encodings, sizes, n);
	g_free(encodings);
	g_free(sizes);
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t *text = data + 1, *nul = memchr(text, '\0', size - 1);
	if (!nul)
		return 0;
	char *formats = g_strndup((const char *)text, (gsize)(nul - text));
	char **lines = g_strsplit(formats, "\n", 0);
	guint n = g_strv_length(lines);
	struct cfs_leaf_schema *s = make_schema(data[0] % 3, lines, n);
	struct cfs_leaf_schema *again = make_schema(data[0] % 3, lines, n);
	if (!s != !again || !cfs_leaf_schema_equal(s, again))
		abort();
	if (s) {
		/* A copy of exactly the item (never NULL: the item views read from a buffer). */
		size_t len = size - (size_t)(nul + 1 - data);
		uint8_t *item = g_malloc(MAX(len, 1));
		memcpy(item, nul + 1, len);
		fuzz_check_item(s, item, len);
		g_free(item);
	}
	cfs_leaf_schema_free(s);
	cfs_leaf_schema_free(again);
	g_strfreev(lines);
	g_free(formats);
	return 0;
}
