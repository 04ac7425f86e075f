/* Unit tests of the pure modules (GLib test framework); run by tests/test_units.py. */
#include <gio/gio.h>
#include <string.h>

#include "chunkfs/extents.h"
#include "chunkfs/listing.h"
#include "chunkfs/litdata.h"
#include "chunkfs/options.h"
#include "chunkfs/readahead.h"
#include "chunkfs/stats.h"
#include "chunkfs/tree.h"
#include "chunkfs/url.h"

static void test_sizes(void)
{
	uint64_t v;
	g_assert_true(cfs_parse_size("65536", &v) && v == 65536);
	g_assert_true(cfs_parse_size("64M", &v) && v == 64 * CFS_MIB);
	g_assert_true(cfs_parse_size("1g", &v) && v == 1024 * CFS_MIB);
	g_assert_true(cfs_parse_size("2KiB", &v) && v == 2048);
	g_assert_true(cfs_parse_size("3T", &v) && v == UINT64_C(3) << 40);
	const char *bad[] = { "", "-1", "12Q", "1.5G", "M", "1 G", "99999999999999999999", "17179869184T" };
	for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++)
		g_assert_false(cfs_parse_size(bad[i], &v));
}

static void test_extents(void)
{
	struct cfs_extents s = { 0 };
	cfs_extents_add(&s, 10, 20);
	cfs_extents_add(&s, 30, 40);
	cfs_extents_add(&s, 20, 25); /* touches [10, 20): merges */
	g_assert_cmpuint(s.n, ==, 2);
	g_assert_true(cfs_extents_covers(&s, 12, 25));
	g_assert_false(cfs_extents_covers(&s, 12, 26));
	cfs_extents_add(&s, 24, 31);
	g_assert_cmpuint(s.n, ==, 1);
	cfs_extents_remove(&s, 15, 18);
	g_assert_cmpuint(s.n, ==, 2);
	g_assert_false(cfs_extents_covers(&s, 14, 16));

	struct cfs_extents inflight = { 0 };
	cfs_extents_add(&inflight, 18, 19);
	struct cfs_extent gap;
	g_assert_true(cfs_extents_first_gap(&s, &inflight, 0, 50, &gap));
	g_assert_cmpuint(gap.lo, ==, 0);
	g_assert_cmpuint(gap.hi, ==, 10);
	g_assert_true(cfs_extents_first_gap(&s, &inflight, 10, 50, &gap));
	g_assert_cmpuint(gap.lo, ==, 15);
	g_assert_cmpuint(gap.hi, ==, 18);
	g_assert_true(cfs_extents_first_gap(&s, &inflight, 18, 50, &gap));
	g_assert_cmpuint(gap.lo, ==, 40);
	g_assert_cmpuint(gap.hi, ==, 50);
	g_assert_false(cfs_extents_first_gap(&s, &inflight, 20, 40, &gap));
	cfs_extents_clear(&s);
	cfs_extents_clear(&inflight);
}

static void test_names(void)
{
	g_assert_true(cfs_name_valid("chunk-0-0.bin", NULL));
	const char *why;
	const char *bad[] = { "", ".", "..", "a/b", "tab\there", "\x7f", "\xff\xfe" };
	for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_assert_false(cfs_name_valid(bad[i], &why));
		g_assert_nonnull(why);
	}
	char long_name[300];
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[299] = '\0';
	g_assert_false(cfs_name_valid(long_name, NULL));
}

static void test_urls(void)
{
	GError *err = NULL;
	char *u = cfs_url_normalize_dir("http://127.0.0.1:8080/data/set", &err);
	g_assert_cmpstr(u, ==, "http://127.0.0.1:8080/data/set/");
	char *j = cfs_url_join(u, "chunk 0.bin");
	g_assert_cmpstr(j, ==, "http://127.0.0.1:8080/data/set/chunk%200.bin");
	g_free(j);
	g_free(u);
	g_assert_null(cfs_url_normalize_dir("ftp://host/x", &err));
	g_clear_error(&err);
	g_assert_null(cfs_url_normalize_dir("not a url", &err));
	g_clear_error(&err);
	char *r = cfs_url_redact("https://user:secret@host/p?token=abc");
	g_assert_null(strstr(r, "secret"));
	g_assert_null(strstr(r, "abc"));
	g_free(r);
}

static void test_readahead(void)
{
	struct cfs_ra_streams rs = { 0 };
	uint64_t s, e, size = 1024 * CFS_MIB, max = 8 * CFS_MIB;
	g_assert_false(cfs_readahead_advise(&rs, 0, CFS_MIB, size, max, &s, &e));
	uint64_t last = 0;
	for (uint64_t off = CFS_MIB; off < 64 * CFS_MIB; off += CFS_MIB) {
		if (cfs_readahead_advise(&rs, off, CFS_MIB, size, max, &s, &e)) {
			g_assert_cmpuint(s, >=, off + CFS_MIB);
			g_assert_cmpuint(e - (off + CFS_MIB), <=, max);
			last = e;
		}
	}
	g_assert_cmpuint(last, >=, 64 * CFS_MIB + max / 2);
	/* A random reader elsewhere gets nothing. */
	g_assert_false(cfs_readahead_advise(&rs, 512 * CFS_MIB, 65536, size, max, &s, &e));
	g_assert_false(cfs_readahead_advise(&rs, 300 * CFS_MIB, 65536, size, max, &s, &e));
}

static void test_litdata_index(void)
{
	const char good[] = "{\"chunks\":[{\"filename\":\"a.bin\",\"chunk_bytes\":10,\"chunk_size\":2}],"
			    "\"config\":{\"compression\":null}}";
	GError *err = NULL;
	struct cfs_litdata_index *idx = cfs_litdata_parse_index(good, strlen(good), &err);
	g_assert_no_error(err);
	g_assert_cmpuint(idx->chunks->len, ==, 1);
	g_assert_cmpuint(g_array_index(idx->chunks, struct cfs_litdata_chunk, 0).bytes, ==, 10);
	cfs_litdata_index_free(idx);
	const char *bad[] = { "nope", "{}", "{\"chunks\":[{\"filename\":1}]}",
			      "{\"chunks\":[{\"filename\":\"a\",\"chunk_bytes\":-1,\"chunk_size\":1}]}" };
	for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_assert_null(cfs_litdata_parse_index(bad[i], strlen(bad[i]), &err));
		g_assert_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
		g_clear_error(&err);
	}
}

static void test_ttfb(void)
{
	for (int i = 1; i <= 100; i++)
		cfs_stats_ttfb((uint64_t)i * 1000);
	double p50 = cfs_stats_ttfb_percentile(50), p99 = cfs_stats_ttfb_percentile(99);
	g_assert_cmpfloat(p50, >, 45.0);
	g_assert_cmpfloat(p50, <, 55.0);
	g_assert_cmpfloat(p99, >, 90.0);
	g_assert_cmpfloat(p99, <, 108.0);
}

static const struct cfs_entry *entry(const struct cfs_listing *l, guint i)
{
	return &g_array_index(l->entries, struct cfs_entry, i);
}

/* The shape of the S3 API Reference's ListObjectsV2 example, with a delimiter. */
static void test_listing_s3(void)
{
	const char xml[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
		"<Name>bucket</Name><Prefix>data/</Prefix><KeyCount>4</KeyCount>"
		"<MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>"
		"<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
		"<Contents><Key>data/</Key><Size>0</Size></Contents>"
		"<Contents><Key>data/index.json</Key><LastModified>2026-11-20T23:43:00.000Z</LastModified>"
		"<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>1716</Size>"
		"<StorageClass>STANDARD</StorageClass></Contents>"
		"<Contents><Key>data/a b &#233;.bin</Key><ETag>\"x\"</ETag><Size>26124</Size></Contents>"
		"<CommonPrefixes><Prefix>data/sub/</Prefix></CommonPrefixes>"
		"</ListBucketResult>";
	GError *err = NULL;
	struct cfs_listing *l = cfs_listing_parse_s3(xml, strlen(xml), "data/", &err);
	g_assert_no_error(err);
	g_assert_cmpuint(l->entries->len, ==, 3);
	g_assert_cmpstr(entry(l, 0)->name, ==, "index.json");
	g_assert_cmpuint(entry(l, 0)->size, ==, 1716);
	g_assert_cmpstr(entry(l, 0)->etag, ==, "\"9b2cf535f27731c974343645a3985328\"");
	g_assert_cmpstr(entry(l, 1)->name, ==, "a b \xc3\xa9.bin");
	g_assert_false(entry(l, 1)->is_dir);
	g_assert_cmpstr(entry(l, 2)->name, ==, "sub");
	g_assert_true(entry(l, 2)->is_dir);
	g_assert_true(l->truncated);
	g_assert_cmpstr(l->next_token, ==, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
	cfs_listing_free(l);

	const char *bad[] = { "<Error><Code>NoSuchBucket</Code></Error>", "<ListBucketResult>",
			      "<ListBucketResult><Contents><Key>other/x</Key></Contents></ListBucketResult>" };
	for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_assert_null(cfs_listing_parse_s3(bad[i], strlen(bad[i]), "data/", &err));
		g_assert_nonnull(err);
		g_clear_error(&err);
	}
}

static void test_listing_http(void)
{
	const char nginx_html[] =
		"<html>\n<head><title>Index of /lst/</title></head>\n<body>\n"
		"<h1>Index of /lst/</h1><hr><pre><a href=\"../\">../</a>\n"
		"<a href=\"sub%20dir/\">sub dir/</a>            21-Nov-2026 00:49       -\n"
		"<a href=\"a%20b.bin\">a b.bin</a>              21-Nov-2026 00:49       3\n"
		"</pre><hr></body>\n</html>\n";
	const char python_html[] =
		"<!DOCTYPE HTML>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
		"<title>Directory listing for /</title>\n</head>\n<body>\n<ul>\n"
		"<li><a href=\"a%20b.bin\">a b.bin</a></li>\n"
		"<li><a href=\"sub%20dir/\">sub dir/</a></li>\n</ul>\n</body>\n</html>\n";
	const char apache_html[] =
		"<table><tr><th><a href=\"?C=N;O=D\">Name</a></th></tr>"
		"<tr><td><a href=\"/data/\">Parent Directory</a></td></tr>"
		"<tr><td><a href=\"a%20b.bin\">a b.bin</a></td></tr>"
		"<tr><td><a href=\"sub%20dir/\">sub dir/</a></td></tr></table>";
	const char *pages[] = { nginx_html, python_html, apache_html };
	for (unsigned i = 0; i < G_N_ELEMENTS(pages); i++) {
		GError *err = NULL;
		struct cfs_listing *l = cfs_listing_parse_http(pages[i], strlen(pages[i]), &err);
		g_assert_no_error(err);
		g_assert_cmpuint(l->entries->len, ==, 2);
		for (guint j = 0; j < 2; j++) {
			const struct cfs_entry *e = entry(l, j);
			g_assert_cmpstr(e->name, ==, e->is_dir ? "sub dir" : "a b.bin");
			g_assert_cmpuint(e->size, ==, CFS_SIZE_UNKNOWN);
		}
		cfs_listing_free(l);
	}
	const char nginx_json[] =
		"[\n{ \"name\":\"sub dir\", \"type\":\"directory\", \"mtime\":\"Sat, 21 Nov 2026 00:49:00 GMT\" },\n"
		"{ \"name\":\"a b.bin\", \"type\":\"file\", \"mtime\":\"Sat, 21 Nov 2026 00:49:00 GMT\", \"size\":3 }\n]\n";
	GError *err = NULL;
	struct cfs_listing *l = cfs_listing_parse_http(nginx_json, strlen(nginx_json), &err);
	g_assert_no_error(err);
	g_assert_cmpuint(l->entries->len, ==, 2);
	g_assert_true(entry(l, 0)->is_dir);
	g_assert_cmpuint(entry(l, 1)->size, ==, 3);
	cfs_listing_free(l);
	g_assert_null(cfs_listing_parse_http("plain text", 10, &err));
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
	g_clear_error(&err);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/options/sizes", test_sizes);
	g_test_add_func("/extents/ops", test_extents);
	g_test_add_func("/tree/names", test_names);
	g_test_add_func("/url/normalize-join-redact", test_urls);
	g_test_add_func("/readahead/sequential-and-random", test_readahead);
	g_test_add_func("/litdata/index", test_litdata_index);
	g_test_add_func("/stats/ttfb", test_ttfb);
	g_test_add_func("/listing/s3", test_listing_s3);
	g_test_add_func("/listing/http", test_listing_http);
	return g_test_run();
}
