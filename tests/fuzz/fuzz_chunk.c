/*
 * libFuzzer target: a chunk's header, the leaves of its items and their files.
 * Input: 1 byte choosing a schema (byte % N_SCHEMAS), uint32 LE item count n, uint32 LE chunk
 * size, then the chunk's bytes. Schemas 0..2 are those of the fixtures litdata-mixed,
 * litdata-tokens and mds-plain (the seeds scripts/test makes from them use these numbers);
 * the others reach the remaining kinds of leaves.
 * Every buffer a parser gets is a copy of exactly the bytes its contract gives it, so that a
 * read past them is caught by AddressSanitizer.
 */
#include <gio/gio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "formats/chunkhdr.h"
#include "formats/leaves.h"
#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_SCHEMAS 5
#define PREFIX 9

static struct cfs_leaf_schema *schemas[N_SCHEMAS];

static void make_schemas(void)
{
	static const char *const mixed[] = { "int",  "float", "str",		 "bytes",
					     "jpeg", "numpy", "no_header_numpy:1" };
	static const char *const tokens[] = { "no_header_numpy:2" };
	static const char *const mds[] = { "ndarray:float32:4", "bytes", "int", "int32", "str" };
	static const int64_t mds_sizes[] = { 16, -1, 8, 4, -1 };
	static const char *const tensors[] = { "tensor", "no_header_tensor:10", "numpy", "file:mp4",
					       "no_header_numpy:0", "no_header_tensor:17" };
	static const char *const arrays[] = { "ndarray", "ndarray:uint16", "ndarray:float64:2,3",
					      "jpeg:90", "str_int" };
	static const int64_t array_sizes[] = { -1, -1, 48, -1, -1 };
	schemas[0] = cfs_leaf_schema_litdata(mixed, G_N_ELEMENTS(mixed), "PyTreeLoader");
	schemas[1] = cfs_leaf_schema_litdata(tokens, 1, "TokensLoader");
	schemas[2] = cfs_leaf_schema_mds(mds, mds_sizes, G_N_ELEMENTS(mds));
	schemas[3] = cfs_leaf_schema_litdata(tensors, G_N_ELEMENTS(tensors), NULL);
	schemas[4] = cfs_leaf_schema_mds(arrays, array_sizes, G_N_ELEMENTS(arrays));
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!schemas[0])
		make_schemas();
	if (size < PREFIX)
		return 0;
	const struct cfs_leaf_schema *s = schemas[data[0] % N_SCHEMAS];
	uint32_t n = le32(data + 1);
	uint64_t chunk_size = le32(data + 5);
	const uint8_t *chunk = data + PREFIX;
	size_t len = size - PREFIX;
	GError *err = NULL;
	uint32_t *off = cfs_chunk_header_parse(chunk, len, n, chunk_size, &err);
	if (!off) {
		if (!g_error_matches(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA))
			abort();
		g_error_free(err);
		return 0;
	}
	if (err || off[0] < cfs_chunk_header_bytes(n) || off[n] > chunk_size)
		abort();
	/* Items past the bytes at hand are another chunk size's business. */
	for (uint32_t i = 0; i < n && off[i + 1] <= len; i++) {
		if (off[i + 1] < off[i])
			abort();
		fuzz_check_item(s, chunk + off[i], off[i + 1] - off[i]);
	}
	g_free(off);
	return 0;
}
