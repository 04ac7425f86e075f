/* Unit tests of the memory tier's block memory (src/cache/blockmem.c). */
#include <glib.h>
#include <string.h>
#include <sys/mman.h>

#include "cache/blockmem.h"

#define BLOCK (UINT64_C(1) << 20)

/* Pages of [p, p + len) that are resident, from mincore(2). */
static size_t resident_pages(const void *p, size_t len)
{
	size_t pages = len / 4096, n = 0;
	unsigned char *vec = g_malloc(pages);
	g_assert_cmpint(mincore((void *)p, len, vec), ==, 0);
	for (size_t i = 0; i < pages; i++)
		n += vec[i] & 1;
	g_free(vec);
	return n;
}

/* A freed slot is the next one handed out, with its pages still there. */
static void test_slots_are_reused_last_in_first_out(void)
{
	bool fresh; /* a cold slot */
	struct cfs_blockmem *m = cfs_blockmem_new(8 * BLOCK, BLOCK);
	uint8_t *a = cfs_blockmem_get(m, BLOCK, &fresh), *b = cfs_blockmem_get(m, BLOCK, &fresh);
	g_assert_nonnull(a);
	g_assert_nonnull(b);
	g_assert_true(fresh);
	g_assert_true(a != b);
	memset(a, 0xa5, BLOCK);
	memset(b, 0x5a, BLOCK);
	cfs_blockmem_put(m, a, BLOCK);
	g_assert_cmpuint(cfs_blockmem_idle_bytes(m), ==, BLOCK);
	uint8_t *c = cfs_blockmem_get(m, BLOCK, &fresh);
	g_assert_true(c == a);
	g_assert_false(fresh);
	g_assert_cmpuint(c[0], ==, 0xa5); /* not zeroed: no fresh page behind it */
	g_assert_cmpuint(resident_pages(c, BLOCK), ==, BLOCK / 4096);
	g_assert_cmpuint(cfs_blockmem_idle_bytes(m), ==, 0);
	cfs_blockmem_put(m, b, BLOCK);
	cfs_blockmem_put(m, c, BLOCK);
	cfs_blockmem_free(m);
}

/*
 * Fresh slots, taken for faulting in ahead, come once each and in order;
 * put back, they are idle, handed out warm before any other.
 */
static void test_fresh_slots_become_idle(void)
{
	bool fresh; /* a cold slot */
	struct cfs_blockmem *m = cfs_blockmem_new(2 * BLOCK, BLOCK);
	uint8_t *a = cfs_blockmem_fresh_slot(m), *b = cfs_blockmem_fresh_slot(m);
	g_assert_nonnull(a);
	g_assert_true(b == a + BLOCK);
	g_assert_null(cfs_blockmem_fresh_slot(m));
	g_assert_cmpint(madvise(a, BLOCK, MADV_POPULATE_WRITE), ==, 0);
	g_assert_cmpuint(resident_pages(a, BLOCK), ==, BLOCK / 4096);
	cfs_blockmem_put(m, a, BLOCK);
	g_assert_cmpuint(cfs_blockmem_idle_bytes(m), ==, BLOCK);
	g_assert_true(cfs_blockmem_get(m, BLOCK, &fresh) == a);
	g_assert_false(fresh);
	cfs_blockmem_put(m, a, BLOCK);
	cfs_blockmem_put(m, b, BLOCK);
	cfs_blockmem_free(m);
}

/* Short buffers are mappings of their own; the arena's slots stay for full blocks. */
static void test_short_buffers_are_mapped_alone(void)
{
	bool fresh; /* a cold slot */
	struct cfs_blockmem *m = cfs_blockmem_new(2 * BLOCK, BLOCK);
	uint8_t *full[2];
	for (int i = 0; i < 2; i++)
		full[i] = cfs_blockmem_get(m, BLOCK, &fresh);
	uint8_t *s = cfs_blockmem_get(m, 5000, &fresh);
	g_assert_nonnull(s);
	g_assert_false(fresh); /* a mapping of its own is never called cold: it may go away */
	g_assert_true(s < full[0] || s >= full[0] + 2 * BLOCK);
	memset(s, 1, 5000);
	cfs_blockmem_put(m, s, 5000);
	g_assert_cmpuint(cfs_blockmem_idle_bytes(m), ==, 0);
	/* Every slot is out: a full block still gets a buffer, of its own. */
	uint8_t *extra = cfs_blockmem_get(m, BLOCK, &fresh);
	g_assert_nonnull(extra);
	memset(extra, 2, BLOCK);
	cfs_blockmem_put(m, extra, BLOCK);
	g_assert_cmpuint(cfs_blockmem_idle_bytes(m), ==, 0);
	for (int i = 0; i < 2; i++)
		cfs_blockmem_put(m, full[i], BLOCK);
	g_assert_cmpuint(cfs_blockmem_idle_bytes(m), ==, 2 * BLOCK);
	cfs_blockmem_free(m);
}

/* Trimming gives idle slots back to the kernel; they are handed out again after the idle ones. */
static void test_trim_gives_memory_back(void)
{
	bool fresh; /* a cold slot */
	struct cfs_blockmem *m = cfs_blockmem_new(4 * BLOCK, BLOCK);
	uint8_t *v[4];
	for (int i = 0; i < 4; i++) {
		v[i] = cfs_blockmem_get(m, BLOCK, &fresh);
		memset(v[i], i + 1, BLOCK);
	}
	for (int i = 0; i < 4; i++)
		cfs_blockmem_put(m, v[i], BLOCK);
	cfs_blockmem_trim(m, BLOCK + BLOCK / 2);
	g_assert_cmpuint(cfs_blockmem_idle_bytes(m), ==, BLOCK);
	size_t resident = 0;
	for (int i = 0; i < 4; i++)
		resident += resident_pages(v[i], BLOCK);
	g_assert_cmpuint(resident, ==, BLOCK / 4096);
	/* The one idle slot first (the first one put), then the given-back ones, zeroed. */
	uint8_t *first = cfs_blockmem_get(m, BLOCK, &fresh);
	g_assert_true(first == v[0]);
	g_assert_false(fresh);
	g_assert_cmpuint(first[0], ==, 1);
	for (int i = 1; i < 4; i++) {
		uint8_t *p = cfs_blockmem_get(m, BLOCK, &fresh);
		g_assert_nonnull(p);
		g_assert_true(fresh);
		g_assert_cmpuint(p[BLOCK - 1], ==, 0);
	}
	cfs_blockmem_trim(m, 0);
	cfs_blockmem_free(m);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/blockmem/reuse", test_slots_are_reused_last_in_first_out);
	g_test_add_func("/blockmem/short", test_short_buffers_are_mapped_alone);
	g_test_add_func("/blockmem/fresh", test_fresh_slots_become_idle);
	g_test_add_func("/blockmem/trim", test_trim_gives_memory_back);
	return g_test_run();
}
