/*
 * Unit tests of the shared tier's keys and values (shared/value.h): the
 * documented key of a known identity (the same as the Python of
 * tests/cfsutil.py computes), the parts of a block, and value headers
 * encoded and decoded back, with every field, the length and the checksum
 * checked; run by `meson test`.
 */
#include <errno.h>
#include <glib.h>
#include <string.h>

#include "shared/value.h"

static const struct cfs_shared_id known = {
	"http://127.0.0.1:8080/chunk-0-0.bin", "\"abc-12\"", 3000000, 1048576, 2, false
};

static void test_keys(void)
{
	struct cfs_shared_hash h = cfs_shared_hash_of(&known);
	struct cfs_shared_part p = cfs_shared_part_of(&h, 1048576, 3);
	char key[CFS_SHARED_KEY_SIZE];
	cfs_shared_key(&p, key);
	/* XXH3-128 of the identity text, as python3-xxhash's xxh3_128_hexdigest() gives it */
	g_assert_cmpstr(key, ==, "chunkfs:f300500238db1f28ca395963fcbaacf2:3");
	struct cfs_shared_id decompressed = known;
	decompressed.decompressed = true;
	h = cfs_shared_hash_of(&decompressed);
	p = cfs_shared_part_of(&h, 1048576, 0);
	cfs_shared_key(&p, key);
	g_assert_cmpstr(key, ==, "chunkfs:324f7720978633ece743ae3b363a1c50:0");
	struct cfs_shared_part last = cfs_shared_part_of(&h, 64u << 20, 255);
	cfs_shared_key(&last, key);
	g_assert_cmpuint(strlen(key) + 1, <=, CFS_SHARED_KEY_SIZE);
}

/* URLs that differ only in their query (a presigned URL's signature) are other blocks. */
static void test_url_query(void)
{
	struct cfs_shared_id a = known, b = known;
	a.url = "http://127.0.0.1:8080/chunk-0-0.bin?X-Amz-Signature=aaaa";
	b.url = "http://127.0.0.1:8080/chunk-0-0.bin?X-Amz-Signature=bbbb";
	struct cfs_shared_hash ha = cfs_shared_hash_of(&a), hb = cfs_shared_hash_of(&b);
	g_assert_true(memcmp(ha.b, hb.b, sizeof(ha.b)) != 0);
}

static void test_parts(void)
{
	struct cfs_shared_hash h = cfs_shared_hash_of(&known);
	g_assert_cmpuint(cfs_shared_parts(1), ==, 1);
	g_assert_cmpuint(cfs_shared_parts(CFS_SHARED_PART_BYTES), ==, 1);
	g_assert_cmpuint(cfs_shared_parts(CFS_SHARED_PART_BYTES + 1), ==, 2);
	g_assert_cmpuint(cfs_shared_parts(1048576), ==, 4);
	g_assert_cmpuint(cfs_shared_parts(64u << 20), ==, 256);
	/* Lengths above the largest block, where block_len + part - 1 would wrap. */
	g_assert_cmpuint(cfs_shared_parts(CFS_SHARED_MAX_BLOCK + 1), ==, 0);
	g_assert_cmpuint(cfs_shared_parts(UINT32_MAX), ==, 0);
	struct cfs_shared_part p = cfs_shared_part_of(&h, 900000, 3);
	g_assert_cmpuint(p.lo, ==, 3 * CFS_SHARED_PART_BYTES);
	g_assert_cmpuint(p.len, ==, 900000 - 3 * CFS_SHARED_PART_BYTES);
	g_assert_cmpuint(p.parts, ==, 4);
}

/* A value of part 1 of a block of 300000 bytes, its data a pattern. */
static uint8_t *make_value(struct cfs_shared_part *p, size_t *n)
{
	struct cfs_shared_hash h = cfs_shared_hash_of(&known);
	*p = cfs_shared_part_of(&h, 300000, 1);
	uint8_t *data = g_malloc(p->len);
	for (uint32_t i = 0; i < p->len; i++)
		data[i] = (uint8_t)(i * 7 + 3);
	*n = CFS_SHARED_HEADER_BYTES + p->len;
	uint8_t *value = g_malloc(*n);
	cfs_shared_value_encode(p, data, value);
	g_free(data);
	return value;
}

static void test_roundtrip(void)
{
	struct cfs_shared_part want, got;
	size_t n;
	uint8_t *value = make_value(&want, &n);
	const uint8_t *data = NULL;
	g_assert_cmpint(cfs_shared_value_decode(value, n, &got, &data), ==, 0);
	g_assert_true(cfs_shared_part_equal(&got, &want));
	g_assert_true(data == value + CFS_SHARED_HEADER_BYTES);
	for (uint32_t i = 0; i < got.len; i++)
		g_assert_cmpuint(data[i], ==, (uint8_t)(i * 7 + 3));
	g_free(value);
}

/* Any one byte of header or data changed, any length but the right one: refused. */
static void test_refused(void)
{
	struct cfs_shared_part want, got;
	size_t n;
	uint8_t *value = make_value(&want, &n);
	const uint8_t *data;
	for (size_t i = 0; i < n; i += i < CFS_SHARED_HEADER_BYTES ? 1 : 997) {
		value[i] ^= 0x20;
		g_assert_cmpint(cfs_shared_value_decode(value, n, &got, &data), ==, -EBADMSG);
		value[i] ^= 0x20;
	}
	size_t lens[] = { 0, 1, CFS_SHARED_HEADER_BYTES - 1, CFS_SHARED_HEADER_BYTES, n - 1 };
	for (size_t i = 0; i < G_N_ELEMENTS(lens); i++)
		g_assert_cmpint(cfs_shared_value_decode(value, lens[i], &got, &data), ==, -EBADMSG);
	uint8_t *longer = g_malloc0(n + 1);
	memcpy(longer, value, n);
	g_assert_cmpint(cfs_shared_value_decode(longer, n + 1, &got, &data), ==, -EBADMSG);
	g_free(longer);
	g_free(value);
}

/*
 * A header declaring a block of nearly 4 GiB as one part, checksum right:
 * refused (block_len + part - 1 once wrapped, making it one part).
 */
static void test_huge_block_refused(void)
{
	struct cfs_shared_hash h = cfs_shared_hash_of(&known);
	struct cfs_shared_part p = cfs_shared_part_of(&h, CFS_SHARED_PART_BYTES, 0);
	p.block_len = UINT32_MAX - 16;
	uint8_t *value = g_malloc0(CFS_SHARED_HEADER_BYTES + p.len);
	cfs_shared_value_encode(&p, value + CFS_SHARED_HEADER_BYTES, value);
	struct cfs_shared_part got;
	const uint8_t *data;
	g_assert_cmpint(
		cfs_shared_value_decode(value, CFS_SHARED_HEADER_BYTES + p.len, &got, &data), ==,
		-EBADMSG);
	g_free(value);
}

/* A valid value of another block or another part is decoded, and told apart. */
static void test_other_identity(void)
{
	struct cfs_shared_part want, got;
	size_t n;
	uint8_t *value = make_value(&want, &n);
	const uint8_t *data;
	g_assert_cmpint(cfs_shared_value_decode(value, n, &got, &data), ==, 0);
	struct cfs_shared_id other_id = known;
	other_id.etag = "\"abc-13\"";
	struct cfs_shared_hash other = cfs_shared_hash_of(&other_id);
	struct cfs_shared_part other_part = cfs_shared_part_of(&other, 300000, 1);
	g_assert_false(cfs_shared_part_equal(&got, &other_part));
	struct cfs_shared_part part0 = cfs_shared_part_of(&want.hash, 300000, 0);
	g_assert_false(cfs_shared_part_equal(&got, &part0));
	g_free(value);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/shared/keys", test_keys);
	g_test_add_func("/shared/parts", test_parts);
	g_test_add_func("/shared/roundtrip", test_roundtrip);
	g_test_add_func("/shared/refused", test_refused);
	g_test_add_func("/shared/other-identity", test_other_identity);
	g_test_add_func("/shared/huge-block-refused", test_huge_block_refused);
	g_test_add_func("/shared/url-query", test_url_query);
	return g_test_run();
}
