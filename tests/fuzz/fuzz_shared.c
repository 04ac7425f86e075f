/*
 * libFuzzer target of the shared tier's values (shared/value.h), which come
 * from memcached servers other nodes write to. The input is decoded as a
 * value: refused, or accepted with a part inside its block whose data lies
 * inside the input, its parts covering the block, and which encodes back
 * to exactly the input (so no two inputs decode to the same part and
 * data). Then the input's bytes are taken as the data of a part of a block
 * whose length the first four bytes give (at most CFS_SHARED_PART_BYTES +
 * 4096): encoded, it must decode back whole, and with its last byte
 * changed it must be refused.
 */
#include <errno.h>
#include <glib.h>
#include <stdlib.h>
#include <string.h>

#include "shared/value.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode_input(const uint8_t *data, size_t size)
{
	struct cfs_shared_part p;
	const uint8_t *bytes;
	if (cfs_shared_value_decode(data, size, &p, &bytes) != 0)
		return;
	if (p.part >= p.parts || p.lo + (uint64_t)p.len > p.block_len ||
	    (uint64_t)p.parts * CFS_SHARED_PART_BYTES < p.block_len || bytes < data ||
	    bytes + p.len != data + size)
		abort();
	uint8_t *again = g_malloc(CFS_SHARED_HEADER_BYTES + p.len);
	cfs_shared_value_encode(&p, bytes, again);
	if (memcmp(again, data, size) != 0)
		abort();
	g_free(again);
}

static void roundtrip(const uint8_t *data, size_t size)
{
	if (size < 4)
		return;
	/* Mostly short blocks, which run fast; data[3] 0xff: one of two parts. */
	uint32_t block_len = (uint32_t)(data[0] | data[1] << 8) % 4096 + 1 +
			     (data[3] == 0xff ? CFS_SHARED_PART_BYTES : 0);
	struct cfs_shared_id id = { "http://fuzz/object", "\"etag\"", 5u << 20, 1u << 20, data[3],
				    data[3] & 1 };
	struct cfs_shared_hash h = cfs_shared_hash_of(&id);
	struct cfs_shared_part p = cfs_shared_part_of(&h, block_len,
						      data[3] % cfs_shared_parts(block_len));
	uint8_t *src = g_malloc(p.len), *value = g_malloc(CFS_SHARED_HEADER_BYTES + p.len);
	for (uint32_t i = 0; i < p.len; i++)
		src[i] = size > 4 ? data[4 + i % (size - 4)] : (uint8_t)i;
	cfs_shared_value_encode(&p, src, value);
	struct cfs_shared_part got;
	const uint8_t *bytes;
	size_t n = CFS_SHARED_HEADER_BYTES + p.len;
	if (cfs_shared_value_decode(value, n, &got, &bytes) != 0 ||
	    !cfs_shared_part_equal(&got, &p) || memcmp(bytes, src, p.len) != 0)
		abort();
	value[n - 1] ^= 1;
	if (cfs_shared_value_decode(value, n, &got, &bytes) != -EBADMSG)
		abort();
	g_free(value);
	g_free(src);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	decode_input(data, size);
	roundtrip(data, size);
	return 0;
}
