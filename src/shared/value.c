/* Keys and values of the shared tier: identity hashes, part headers, checksums. */
#include "shared/value.h"

#include <errno.h>
#include <glib.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#define MAGIC "CFSB"
#define VERSION 1
#define SUM_AT (CFS_SHARED_HEADER_BYTES - 8)

struct cfs_shared_hash cfs_shared_hash_of(const struct cfs_shared_id *id)
{
	char *url = g_compute_checksum_for_string(G_CHECKSUM_SHA256, id->url, -1);
	char *text = g_strdup_printf("chunkfs-block-v2\n%s\n%s\n%" PRIu64 "\n%" PRIu64 "\n%" PRIu64
				     "\n%s",
				     url, id->etag, id->size, id->block_size, id->index,
				     id->decompressed ? "decompressed" : "raw");
	XXH128_canonical_t canon;
	XXH128_canonicalFromHash(&canon, XXH3_128bits(text, strlen(text)));
	g_free(text);
	g_free(url);
	struct cfs_shared_hash h;
	memcpy(h.b, canon.digest, sizeof(h.b));
	return h;
}

uint32_t cfs_shared_parts(uint32_t block_len)
{
	if (block_len > CFS_SHARED_MAX_BLOCK)
		return 0;
	uint32_t parts = block_len / CFS_SHARED_PART_BYTES +
			 (block_len % CFS_SHARED_PART_BYTES != 0);
	return MAX(1, parts);
}

struct cfs_shared_part cfs_shared_part_of(const struct cfs_shared_hash *hash, uint32_t block_len,
					  uint32_t part)
{
	uint32_t lo = part * CFS_SHARED_PART_BYTES;
	return (struct cfs_shared_part){ .hash = *hash,
					 .part = part,
					 .parts = cfs_shared_parts(block_len),
					 .lo = lo,
					 .len = MIN(CFS_SHARED_PART_BYTES, block_len - lo),
					 .block_len = block_len };
}

void cfs_shared_key(const struct cfs_shared_part *p, char key[CFS_SHARED_KEY_SIZE])
{
	char hex[33];
	for (unsigned i = 0; i < sizeof(p->hash.b); i++)
		snprintf(hex + 2 * i, 3, "%02x", p->hash.b[i]);
	snprintf(key, CFS_SHARED_KEY_SIZE, "chunkfs:%s:%" PRIu32, hex, p->part);
}

static void put32(uint8_t *p, uint32_t v)
{
	v = GUINT32_TO_LE(v);
	memcpy(p, &v, 4);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return GUINT32_FROM_LE(v);
}

/* XXH3-64 of the data seeded with the XXH3-64 of the header before the sum: both covered. */
static uint64_t checksum(const uint8_t *header, const uint8_t *data, uint32_t len)
{
	return XXH3_64bits_withSeed(data, len, XXH3_64bits(header, SUM_AT));
}

void cfs_shared_value_encode(const struct cfs_shared_part *p, const void *data, uint8_t *out)
{
	memset(out, 0, CFS_SHARED_HEADER_BYTES);
	memcpy(out, MAGIC, 4);
	out[4] = VERSION;
	out[6] = CFS_SHARED_HEADER_BYTES;
	memcpy(out + 8, p->hash.b, sizeof(p->hash.b));
	put32(out + 24, p->part);
	put32(out + 28, p->parts);
	put32(out + 32, p->lo);
	put32(out + 36, p->len);
	put32(out + 40, p->block_len);
	memcpy(out + CFS_SHARED_HEADER_BYTES, data, p->len);
	uint64_t sum = GUINT64_TO_LE(checksum(out, out + CFS_SHARED_HEADER_BYTES, p->len));
	memcpy(out + SUM_AT, &sum, 8);
}

static bool header_valid(const uint8_t *b, size_t n)
{
	static const uint8_t zero[SUM_AT - 44];
	return n >= CFS_SHARED_HEADER_BYTES && memcmp(b, MAGIC, 4) == 0 && b[4] == VERSION &&
	       b[5] == 0 && b[6] == CFS_SHARED_HEADER_BYTES && b[7] == 0 &&
	       memcmp(b + 44, zero, sizeof(zero)) == 0;
}

/* The part lies inside its block, in the place its number gives it. */
static bool part_valid(const struct cfs_shared_part *p)
{
	if (p->block_len == 0 || p->block_len > CFS_SHARED_MAX_BLOCK ||
	    p->part >= cfs_shared_parts(p->block_len))
		return false;
	struct cfs_shared_part want = cfs_shared_part_of(&p->hash, p->block_len, p->part);
	return cfs_shared_part_equal(p, &want);
}

int cfs_shared_value_decode(const void *buf, size_t n, struct cfs_shared_part *p,
			    const uint8_t **data)
{
	const uint8_t *b = buf;
	if (!header_valid(b, n))
		return -EBADMSG;
	memcpy(p->hash.b, b + 8, sizeof(p->hash.b));
	p->part = get32(b + 24);
	p->parts = get32(b + 28);
	p->lo = get32(b + 32);
	p->len = get32(b + 36);
	p->block_len = get32(b + 40);
	if (!part_valid(p) || n - CFS_SHARED_HEADER_BYTES != p->len)
		return -EBADMSG;
	uint64_t sum;
	memcpy(&sum, b + SUM_AT, 8);
	if (checksum(b, b + CFS_SHARED_HEADER_BYTES, p->len) != GUINT64_FROM_LE(sum))
		return -EBADMSG;
	*data = b + CFS_SHARED_HEADER_BYTES;
	return 0;
}

bool cfs_shared_part_equal(const struct cfs_shared_part *got, const struct cfs_shared_part *want)
{
	return memcmp(got->hash.b, want->hash.b, sizeof(got->hash.b)) == 0 &&
	       got->part == want->part && got->parts == want->parts && got->lo == want->lo &&
	       got->len == want->len && got->block_len == want->block_len;
}
