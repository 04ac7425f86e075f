/*
 * Unit tests of the spill tier's pure parts (GLib test framework): the
 * eviction policies, the block file format and the journal. Run by
 * `meson test`.
 */
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "journal_i.h"
#include "cache/policy/policy.h"
#include "spill/spillfmt.h"

#define N 6

static bool always(struct cfs_policy_entry *e, void *ctx)
{
	(void)e, (void)ctx;
	return true;
}

static bool not_first(struct cfs_policy_entry *e, void *ctx)
{
	return e != ctx;
}

/* The entries of p in eviction order, as indexes into e[]. */
static void order(struct cfs_policy *p, struct cfs_policy_entry *e, int *out)
{
	int n = 0;
	for (struct cfs_policy_entry *x = cfs_policy_first(p); x; x = cfs_policy_next(p, x))
		out[n++] = (int)(x - e);
	g_assert_cmpint(n, ==, N);
}

static void check_order(const char *name, const int *want)
{
	struct cfs_policy *p = cfs_policy_new(name);
	struct cfs_policy_entry e[N] = { 0 };
	for (int i = 0; i < N; i++)
		cfs_policy_add(p, &e[i]);
	/* 2 is used twice, 4 once, 0 let go by a request (recent, not a use) */
	cfs_policy_use(p, &e[2]);
	cfs_policy_use(p, &e[4]);
	cfs_policy_use(p, &e[2]);
	cfs_policy_release(p, &e[0]);
	int got[N];
	order(p, e, got);
	for (int i = 0; i < N; i++)
		g_assert_cmpint(got[i], ==, want[i]);
	g_assert_true(cfs_policy_victim(p, always, NULL) == &e[want[0]]);
	g_assert_true(cfs_policy_victim(p, not_first, &e[want[0]]) == &e[want[1]]);
	cfs_policy_remove(p, &e[want[0]]);
	g_assert_true(cfs_policy_first(p) == &e[want[1]]);
	for (int i = 1; i < N; i++)
		cfs_policy_remove(p, &e[want[i]]);
	g_assert_null(cfs_policy_first(p));
	cfs_policy_free(p);
}

static void test_policies(void)
{
	check_order("lru", (int[]){ 1, 3, 5, 4, 2, 0 });
	check_order("fifo", (int[]){ 0, 1, 2, 3, 4, 5 });
	/* fewest uses first; among equals the newest first */
	check_order("lfu", (int[]){ 5, 3, 1, 0, 4, 2 });
	g_assert_null(cfs_policy_new("mru"));
	g_assert_true(cfs_policy_known("lfu"));
	g_assert_false(cfs_policy_known(""));
}

static const struct cfs_spill_id block_id = { "ds/chunk-0-1.bin", "\"6560b1c5-10000\"",
					      3 * 65536 + 100, 2, 65536 };

/* A block with two extents of recognisable bytes. */
static void make_block(uint8_t *data, struct cfs_extents *x)
{
	for (uint32_t i = 0; i < block_id.len; i++)
		data[i] = (uint8_t)(i % 251);
	cfs_extents_add(x, 100, 5000);
	cfs_extents_add(x, 9000, 65536);
}

/* Encode make_block()'s block as id (of block_id's length) and decode it back. */
static void roundtrip(const struct cfs_spill_id *id, bool compress, bool expect_smaller)
{
	uint8_t *data = g_malloc(id->len), *back = g_malloc0(id->len);
	struct cfs_extents x = { 0 }, got = { 0 };
	make_block(data, &x);
	GBytes *file = cfs_spill_encode(id, &x, data, compress);
	gsize len;
	const uint8_t *buf = g_bytes_get_data(file, &len);
	g_assert_cmpint(len < 4900 + 56536, ==, expect_smaller);
	GError *err = NULL;
	g_assert_true(cfs_spill_decode(buf, len, id, back, &got, &err));
	g_assert_no_error(err);
	g_assert_cmpuint(got.n, ==, 2);
	g_assert_true(cfs_extents_covers(&got, 100, 5000) && cfs_extents_covers(&got, 9000, 65536));
	g_assert_false(cfs_extents_covers(&got, 5000, 5001));
	g_assert_cmpmem(back + 100, 4900, data + 100, 4900);
	g_assert_cmpmem(back + 9000, 65536 - 9000, data + 9000, 65536 - 9000);
	g_assert_cmpuint(back[5000], ==, 0);
	cfs_extents_clear(&x);
	cfs_extents_clear(&got);
	g_bytes_unref(file);
	g_free(data);
	g_free(back);
}

static void test_spill_roundtrip(void)
{
	roundtrip(&block_id, false, false);
	roundtrip(&block_id, true, true); /* i % 251 compresses */
}

/* The longest name and ETag the format's 16-bit lengths hold round-trip; one more does not fit. */
static void test_spill_id_fits(void)
{
	char *longest = g_strnfill(CFS_SPILL_TEXT_MAX, 'e');
	char *over = g_strnfill(CFS_SPILL_TEXT_MAX + 1, 'e');
	struct cfs_spill_id id = block_id;
	g_assert_true(cfs_spill_id_fits(&id));
	id.etag = over;
	g_assert_false(cfs_spill_id_fits(&id));
	id.etag = block_id.etag;
	id.name = over;
	g_assert_false(cfs_spill_id_fits(&id));
	id.name = longest;
	id.etag = longest;
	g_assert_true(cfs_spill_id_fits(&id));
	roundtrip(&id, false, false);
	g_free(longest);
	g_free(over);
}

/* Decoding buf (a copy of a good file, changed by the caller) as id must fail. */
static void expect_refused(const uint8_t *buf, size_t len, const struct cfs_spill_id *id,
			   const char *why)
{
	uint8_t *back = g_malloc0(block_id.len);
	struct cfs_extents got = { 0 };
	GError *err = NULL;
	g_assert_false(cfs_spill_decode(buf, len, id, back, &got, &err));
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
	g_assert_nonnull(strstr(err->message, why));
	g_assert_cmpuint(got.n, ==, 0);
	for (uint32_t i = 0; i < block_id.len; i++)
		g_assert_cmpuint(back[i], ==, 0); /* nothing written */
	g_error_free(err);
	g_free(back);
}

static void test_spill_refused(void)
{
	uint8_t *data = g_malloc(block_id.len);
	struct cfs_extents x = { 0 };
	make_block(data, &x);
	GBytes *file = cfs_spill_encode(&block_id, &x, data, false);
	gsize len;
	const void *bytes = g_bytes_get_data(file, &len);
	uint8_t *buf = g_memdup2(bytes, len);
	buf[len - 10] ^= 1;
	expect_refused(buf, len, &block_id, "payload");
	buf[len - 10] ^= 1;
	buf[70] ^= 1; /* in the name */
	expect_refused(buf, len, &block_id, "header checksum");
	buf[70] ^= 1;
	expect_refused(buf, len - 1, &block_id, "truncated");
	expect_refused(buf, 40, &block_id, "not a chunkfs block");
	struct cfs_spill_id other = block_id;
	other.etag = "\"new\"";
	expect_refused(buf, len, &other, "ETag");
	other = block_id;
	other.index = 3;
	expect_refused(buf, len, &other, "another block");
	other = block_id;
	other.name = "ds/chunk-0-2.bin";
	expect_refused(buf, len, &other, "another block");
	memcpy(buf, "FOREIGN!", 8);
	expect_refused(buf, len, &block_id, "not a chunkfs block");
	g_free(buf);
	g_bytes_unref(file);
	cfs_extents_clear(&x);
	g_free(data);
}

struct replayed {
	GArray *recs;
};

static void keep(const struct cfs_journal_rec *r, void *ctx)
{
	g_array_append_val(((struct replayed *)ctx)->recs, *r);
}

/* The directory of the journals the tests open, and its tmp/ (what the spill tier passes). */
static int dir_fd = -1, tmp_fd = -1;

static struct cfs_journal *open_journal(const char *dir, uint64_t block_size, GArray *recs,
					bool *unknown)
{
	char *path = g_build_filename(dir, "journal", NULL);
	struct replayed r = { recs };
	GError *err = NULL;
	struct cfs_journal *j = cfs_journal_open(dir_fd, path, tmp_fd, block_size, keep, &r,
						 unknown, &err);
	g_assert_no_error(err);
	g_free(path);
	return j;
}

/* The three steps of a rewrite with nothing appended between them. */
static bool rewrite(struct cfs_journal *j, const struct cfs_journal_rec *recs, guint n)
{
	cfs_journal_rewrite_begin(j);
	return cfs_journal_rewrite_end(j, cfs_journal_rewrite_write(j, recs, n, NULL), NULL);
}

static void test_journal(void)
{
	char *dir = g_dir_make_tmp("chunkfs-journal-XXXXXX", NULL);
	char *tmp = g_build_filename(dir, "tmp", NULL);
	g_assert_cmpint(g_mkdir(tmp, 0700), ==, 0);
	dir_fd = open(dir, O_RDONLY | O_DIRECTORY);
	tmp_fd = open(tmp, O_RDONLY | O_DIRECTORY);
	GArray *recs = g_array_new(FALSE, FALSE, sizeof(struct cfs_journal_rec));
	bool unknown;
	struct cfs_journal *j = open_journal(dir, 65536, recs, &unknown);
	g_assert_true(unknown); /* none yet */
	struct cfs_journal_rec a = { 1, 2, 4096, 77, true }, b = { 3, 4, 8192, 88, true };
	g_assert_true(rewrite(j, &a, 1));
	g_assert_true(cfs_journal_append(j, &b));
	struct cfs_journal_rec del = { 1, 2, 0, 0, false };
	g_assert_true(cfs_journal_append(j, &del));
	g_assert_cmpuint(cfs_journal_records(j), ==, 3);
	g_assert_cmpuint(cfs_journal_bytes(j), ==, cfs_journal_size_for(3));
	cfs_journal_close(j);

	/* A torn last record (a crash in the middle of a write) ends the replay before it. */
	char *path = g_build_filename(dir, "journal", NULL);
	FILE *f = fopen(path, "ab");
	fwrite("torn", 1, 4, f);
	fclose(f);
	j = open_journal(dir, 65536, recs, &unknown);
	g_assert_false(unknown);
	g_assert_cmpuint(recs->len, ==, 3);
	struct cfs_journal_rec *r = &g_array_index(recs, struct cfs_journal_rec, 1);
	g_assert_true(r->add && r->obj == 3 && r->index == 4 && r->bytes == 8192 &&
		      r->etag_hash == 88);
	g_assert_false(g_array_index(recs, struct cfs_journal_rec, 2).add);
	cfs_journal_close(j);

	/*
	 * A rewrite in three steps keeps what is appended while its file is
	 * written: the replay sees its records, then that one. One that failed
	 * leaves the journal as it was, what was appended meanwhile included.
	 */
	g_array_set_size(recs, 0);
	j = open_journal(dir, 65536, recs, &unknown);
	g_assert_true(rewrite(j, &a, 1));
	cfs_journal_rewrite_begin(j);
	struct cfs_journal_rec late = { 5, 6, 4096, 99, true };
	g_assert_true(cfs_journal_append(j, &late));
	g_assert_true(cfs_journal_rewrite_write(j, &b, 1, NULL));
	g_assert_true(cfs_journal_rewrite_end(j, true, NULL));
	g_assert_cmpuint(cfs_journal_records(j), ==, 2);
	cfs_journal_rewrite_begin(j);
	g_assert_true(cfs_journal_append(j, &del));
	g_assert_false(cfs_journal_rewrite_end(j, false, NULL));
	g_assert_true(cfs_journal_lost(j));
	g_assert_cmpuint(cfs_journal_records(j), ==, 3);
	cfs_journal_close(j);
	g_array_set_size(recs, 0);
	cfs_journal_close(open_journal(dir, 65536, recs, &unknown));
	g_assert_cmpuint(recs->len, ==, 3);
	g_assert_cmpuint(g_array_index(recs, struct cfs_journal_rec, 0).obj, ==, 3);
	g_assert_cmpuint(g_array_index(recs, struct cfs_journal_rec, 1).obj, ==, 5);
	g_assert_false(g_array_index(recs, struct cfs_journal_rec, 2).add);

	/* Another block size: not replayed. */
	g_array_set_size(recs, 0);
	j = open_journal(dir, 4096, recs, &unknown);
	g_assert_true(unknown);
	g_assert_cmpuint(recs->len, ==, 0);
	cfs_journal_close(j);

	g_unlink(path);
	close(tmp_fd);
	close(dir_fd);
	g_rmdir(tmp);
	g_rmdir(dir);
	g_free(path);
	g_array_free(recs, TRUE);
	g_free(tmp);
	g_free(dir);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/policy/order", test_policies);
	g_test_add_func("/spill/roundtrip", test_spill_roundtrip);
	g_test_add_func("/spill/refused", test_spill_refused);
	g_test_add_func("/spill/id-fits", test_spill_id_fits);
	g_test_add_func("/journal/replay", test_journal);
	return g_test_run();
}
