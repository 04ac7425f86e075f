/* Unit tests of the pure modules (GLib test framework); run by `meson test`. */
#include <gio/gio.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "formats/chunkhdr.h"
#include "formats/dataspec.h"
#include "formats/dsindex.h"
#include "cache/extents.h"
#include "formats/jsondepth.h"
#include "formats/leaves.h"
#include "remote/listing.h"
#include "util/log.h"
#include "formats/npy.h"
#include "util/options.h"
#include "cache/readahead.h"
#include "util/stats.h"
#include "util/times.h"
#include "formats/tar.h"
#include "tree/tree.h"
#include "util/url.h"
#include "headers_i.h"

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

/* Control characters, backslashes and bytes that are not UTF-8 are shown as \xNN. */
static void test_log_escape(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "plain text, caf\xc3\xa9 \xe2\x82\xac", "plain text, caf\xc3\xa9 \xe2\x82\xac" },
		{ "\x1b[2Jwiped\r\nforged line", "\\x1b[2Jwiped\\x0d\\x0aforged line" },
		{ "tab\there, del\x7f", "tab\\x09here, del\\x7f" },
		{ "back\\slash", "back\\x5cslash" },
		{ "bad \xff\xfe utf-8 \xc3", "bad \\xff\\xfe utf-8 \\xc3" },
		{ "overlong \xc0\xaf", "overlong \\xc0\\xaf" },
		{ "csi \xc2\x9b" "2J", "csi \\xc2\\x9b2J" },
		{ "rtl \xe2\x80\xae" "evil \xe2\x81\xa6" "x", "rtl \\xe2\\x80\\xaeevil \\xe2\\x81\\xa6x" },
		{ "", "" },
	};
	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		char *got = cfs_log_escape(cases[i].in);
		g_assert_cmpstr(got, ==, cases[i].out);
		g_free(got);
	}
	char *null = cfs_log_escape(NULL);
	g_assert_cmpstr(null, ==, "(null)");
	g_free(null);
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
	g_assert_cmpuint(cfs_extents_bytes(&s), ==, (15 - 10) + (40 - 18));
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

/* Text that is not a URL is shown as typed, with what may be secret masked. */
static void test_url_redact_text(void)
{
	const char *cases[][2] = {
		{ "127.0.0.1:8080/data/", "127.0.0.1:8080/data/" },
		{ "user:secret@host:80/p?token=abc", "***@host:80/p?***" },
		{ "http://u:secret@[::1/p?x=abc", "http://***@[::1/p?***" },
		{ "not a url", "not a url" },
		{ "https:/user:s3cret@example.com/ds/", "https:/***@example.com/ds/" },
		{ "https//user:s3cret@example.com/ds/", "https//***@example.com/ds/" },
		{ "https:///user:s3cret@example.com/ds/", "https:///***@example.com/ds/" },
		{ "https:/a@b:s3cret@example.com/ds/?k=v", "https:/***@example.com/ds/?***" },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		char *r = cfs_url_redact(cases[i][0]);
		g_assert_cmpstr(r, ==, cases[i][1]);
		g_free(r);
	}
}

static void test_url_file_and_parent(void)
{
	char *f = cfs_url_dir_as_file("http://h:1/ds/x.bin/?q=1");
	g_assert_cmpstr(f, ==, "http://h:1/ds/x.bin?q=1");
	g_free(f);
	g_assert_null(cfs_url_dir_as_file("http://h/"));
	const char *cases[][2] = {
		{ "http://h/ds/index.json", "http://h/ds/" },
		{ "http://h/ds/index.json/", "http://h/ds/" },
		{ "s3://b/p/chunk-0-0.bin?***", "s3://b/p/" },
		{ "nothing", "" },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		char *p = cfs_url_parent_dir(cases[i][0]);
		g_assert_cmpstr(p, ==, cases[i][1]);
		g_free(p);
	}
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
	/* Reads that continue each other get nothing until they have run 8 MiB. */
	uint64_t off = 700 * CFS_MIB;
	for (int i = 0; i < 63; i++, off += 128 * 1024)
		g_assert_false(cfs_readahead_advise(&rs, off, 128 * 1024, size, max, &s, &e));
	g_assert_true(cfs_readahead_advise(&rs, off, 128 * 1024, size, max, &s, &e));
	g_assert_cmpuint(s, ==, off + 128 * 1024);
	/* Reads that arrive a little out of order (several FUSE threads) stay one stream. */
	struct cfs_ra_streams ro = { 0 };
	bool got = false;
	for (uint64_t o = 0; o < 16 * CFS_MIB; o += 2 * CFS_MIB) {
		got |= cfs_readahead_advise(&ro, o + CFS_MIB, CFS_MIB, size, max, &s, &e);
		got |= cfs_readahead_advise(&ro, o, CFS_MIB, size, max, &s, &e);
	}
	g_assert_true(got);
	/* An object smaller than 8 MiB gets readahead once half of it is read. */
	struct cfs_ra_streams small = { 0 };
	uint64_t osize = 4 * CFS_MIB;
	g_assert_false(cfs_readahead_advise(&small, 0, CFS_MIB, osize, max, &s, &e));
	g_assert_true(cfs_readahead_advise(&small, CFS_MIB, CFS_MIB, osize, max, &s, &e));
	g_assert_cmpuint(e, <=, osize);
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

/* ---- Format parsers, against the fixtures of tests/data (see its README.md) ---- */

/* A file of tests/data; the tests run from the repository root (workdir in tests/meson.build). */
static GBytes *fixture(const char *name)
{
	char *path = g_build_filename("tests", "data", name, NULL);
	GError *err = NULL;
	gchar *data;
	gsize len;
	if (!g_file_get_contents(path, &data, &len, &err))
		g_test_message("cannot read %s: run from the repository root", path);
	g_assert_no_error(err);
	g_free(path);
	return g_bytes_new_take(data, len);
}

static const uint8_t *bytes_of(GBytes *b, size_t *len)
{
	return g_bytes_get_data(b, len);
}

static void assert_invalid(GError **err, const char *text)
{
	g_assert_error(*err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
	if (!strstr((*err)->message, text))
		g_error("message \"%s\" lacks \"%s\"", (*err)->message, text);
	g_clear_error(err);
}

/* A Size is decimal digits of at most G_MAXINT64; elements nest at most 16 deep. */
static void test_listing_s3_hostile(void)
{
	const char *sizes[] = { "-2", " 5", "5 ", "+5", "0x10", "", "9223372036854775808",
				"18446744073709551614", "99999999999999999999" };
	GError *err = NULL;
	for (unsigned i = 0; i < G_N_ELEMENTS(sizes); i++) {
		char *xml = g_strdup_printf("<ListBucketResult><Contents><Key>d/x</Key><Size>%s"
					    "</Size></Contents></ListBucketResult>", sizes[i]);
		g_assert_null(cfs_listing_parse_s3(xml, strlen(xml), "d/", &err));
		assert_invalid(&err, "is not a number of bytes");
		g_free(xml);
	}
	const char ok[] = "<ListBucketResult><Contents><Key>d/x</Key><Size>9223372036854775807"
			  "</Size></Contents></ListBucketResult>";
	struct cfs_listing *l = cfs_listing_parse_s3(ok, strlen(ok), "d/", &err);
	g_assert_no_error(err);
	g_assert_cmpuint(entry(l, 0)->size, ==, G_MAXINT64);
	cfs_listing_free(l);

	for (unsigned depth = CFS_LISTING_MAX_DEPTH; depth <= CFS_LISTING_MAX_DEPTH + 1; depth++) {
		GString *xml = g_string_new("<ListBucketResult>");
		for (unsigned i = 1; i < depth; i++)
			g_string_append(xml, "<a>");
		for (unsigned i = 1; i < depth; i++)
			g_string_append(xml, "</a>");
		g_string_append(xml, "</ListBucketResult>");
		l = cfs_listing_parse_s3(xml->str, xml->len, "d/", &err);
		if (depth == CFS_LISTING_MAX_DEPTH) {
			g_assert_no_error(err);
			cfs_listing_free(l);
		} else {
			g_assert_null(l);
			assert_invalid(&err, "nested deeper than 16 levels");
		}
		g_string_free(xml, TRUE);
	}
}

/* depth times open, then depth times close (open "[", close "]" or "{\"a\":", "}"). */
static char *nested(unsigned depth, const char *open, const char *inner, const char *close)
{
	GString *s = g_string_new(NULL);
	for (unsigned i = 0; i < depth; i++)
		g_string_append(s, open);
	g_string_append(s, inner);
	for (unsigned i = 0; i < depth; i++)
		g_string_append(s, close);
	return g_string_free(s, FALSE);
}

/* JSON from servers nests at most CFS_JSON_MAX_DEPTH deep, at any size. */
static void test_json_depth(void)
{
	GError *err = NULL;
	char *ok = nested(CFS_JSON_MAX_DEPTH, "[", "", "]");
	char *deep = nested(200000, "[", "", "]");
	g_assert_true(cfs_json_depth_ok(ok, strlen(ok), &err));
	g_assert_false(cfs_json_depth_ok(deep, strlen(deep), &err));
	assert_invalid(&err, "JSON nested deeper than 64 levels (at byte 64)");
	char *objects = nested(CFS_JSON_MAX_DEPTH + 1, "{\"a\":", "1", "}");
	g_assert_false(cfs_json_depth_ok(objects, strlen(objects), &err));
	assert_invalid(&err, "deeper than 64");
	/* Brackets inside strings, escaped quotes included, do not count. */
	char *strings = nested(CFS_JSON_MAX_DEPTH, "[\"[{\\\"[\",", "\"\\\\\"", "]");
	g_assert_true(cfs_json_depth_ok(strings, strlen(strings), &err));
	g_assert_no_error(err);
	/* Single quotes and comments, which json-glib takes, could hide brackets behind a '"'. */
	const char *hiders[] = { "['\"', [[[]]]]", "[/* \" */ [[]]]", "[// \"\n[]]", "[# \"\n[]]" };
	for (guint i = 0; i < G_N_ELEMENTS(hiders); i++) {
		g_assert_false(cfs_json_depth_ok(hiders[i], strlen(hiders[i]), &err));
		assert_invalid(&err, "outside a string");
	}

	/* The parsers refuse it before json-glib sees it (which would overflow the stack). */
	g_assert_null(cfs_listing_parse_http(deep, strlen(deep), &err));
	assert_invalid(&err, "not a JSON autoindex: JSON nested deeper than 64 levels");
	g_assert_null(cfs_ds_index_parse(deep, strlen(deep), &err));
	assert_invalid(&err, "JSON nested deeper than 64 levels");
	char *index = nested(200000, "{\"chunks\":", "[]", "}");
	g_assert_null(cfs_ds_index_parse(index, strlen(index), &err));
	assert_invalid(&err, "deeper than 64");
	g_free(index);
	g_free(strings);
	g_free(objects);
	g_free(deep);
	g_free(ok);
}

/* Offsets as Python's struct.unpack_from("<%dI" % (n + 2), chunk) gives them. */
static void test_chunkhdr_fixtures(void)
{
	static const struct {
		const char *file;
		uint32_t n, first, second, last;
	} chunks[] = {
		{ "litdata-mixed/chunk-0-0.bin", 16, 72, 1573, 26124 },
		{ "litdata-mixed/chunk-1-5.bin", 14, 64, 1560, 22347 },
		{ "litdata-tokens/chunk-0-0.bin", 18, 80, 360, 15540 },
		/* an MDS shard's config JSON lies between the table and the first sample */
		{ "mds-plain/shard.00000.mds", 70, 552, 881, 16291 },
		{ "mds-plain/shard.00002.mds", 62, 520, 895, 15293 },
	};
	for (guint i = 0; i < G_N_ELEMENTS(chunks); i++) {
		GBytes *b = fixture(chunks[i].file);
		size_t len;
		const uint8_t *p = bytes_of(b, &len);
		g_assert_cmpuint(len, ==, chunks[i].last);
		GError *err = NULL;
		uint32_t *off = cfs_chunk_header_parse(p, len, chunks[i].n, len, &err);
		g_assert_no_error(err);
		g_assert_cmpuint(off[0], ==, chunks[i].first);
		g_assert_cmpuint(off[1], ==, chunks[i].second);
		g_assert_cmpuint(off[chunks[i].n], ==, chunks[i].last);
		g_free(off);
		/* The header alone is enough. */
		size_t header = (size_t)cfs_chunk_header_bytes(chunks[i].n);
		off = cfs_chunk_header_parse(p, header, chunks[i].n, len, &err);
		g_assert_no_error(err);
		g_free(off);
		g_bytes_unref(b);
	}
	g_assert_cmpuint(cfs_chunk_header_bytes(16), ==, 72);
	g_assert_cmpuint(cfs_chunk_header_bytes(UINT32_MAX), ==, 4 + 4 * (UINT64_C(1) << 32));
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void test_chunkhdr_bad(void)
{
	GBytes *b = fixture("litdata-mixed/chunk-0-0.bin");
	size_t len;
	const uint8_t *p = bytes_of(b, &len);
	GError *err = NULL;
	g_assert_null(cfs_chunk_header_parse(p, len, 15, len, &err));
	assert_invalid(&err, "holds 16 items, the index says 15");
	g_assert_null(cfs_chunk_header_parse(p, 40, 16, len, &err));
	assert_invalid(&err, "header truncated: 40 of 72 bytes");
	g_assert_null(cfs_chunk_header_parse(p, 3, 16, len, &err));
	assert_invalid(&err, "header truncated: 3 of 72 bytes");
	g_assert_null(cfs_chunk_header_parse(p, len, 16, 26000, &err));
	assert_invalid(&err, "offset 16 (26124) is past the end (26000)");

	uint8_t hdr[72];
	memcpy(hdr, p, sizeof(hdr));
	put_le32(hdr + 4 + 4 * 5, 40);
	g_assert_null(cfs_chunk_header_parse(hdr, sizeof(hdr), 16, len, &err));
	assert_invalid(&err, "offset 5 (40) is inside the header (72 bytes)");
	put_le32(hdr + 4 + 4 * 5, 7000); /* offset 4 is 7143 */
	g_assert_null(cfs_chunk_header_parse(hdr, sizeof(hdr), 16, len, &err));
	assert_invalid(&err, "offset 5 (7000) is below offset 4 (7143)");
	g_bytes_unref(b);

	uint8_t empty[8] = { 0 };
	put_le32(empty + 4, 8);
	uint32_t *off = cfs_chunk_header_parse(empty, sizeof(empty), 0, 8, &err);
	g_assert_no_error(err);
	g_assert_cmpuint(off[0], ==, 8);
	g_free(off);
}

/* The dict np.save writes for a C-order array, e.g. NPY_DICT("<f4", "(3, 5)"). */
#define NPY_DICT(descr, shape) \
	"{'descr': '" descr "', 'fortran_order': False, 'shape': " shape ", }"

/* The bytes numpy 1.24's np.save writes in front of the array. */
static void assert_npy(GBytes *h, const char *dict)
{
	size_t len;
	const uint8_t *p = bytes_of(h, &len);
	g_assert_cmpuint(len % 64, ==, 0);
	g_assert_cmpmem(p, 8, "\x93NUMPY\x01\x00", 8);
	g_assert_cmpuint(p[8] | p[9] << 8, ==, len - 10);
	g_assert_cmpmem(p + 10, strlen(dict), dict, strlen(dict));
	for (size_t i = 10 + strlen(dict); i < len - 1; i++)
		g_assert_cmpint(p[i], ==, ' ');
	g_assert_cmpint(p[len - 1], ==, '\n');
}

static void test_npy_header(void)
{
	GBytes *h = cfs_npy_header("<f4", (const uint64_t[]){ 3, 5 }, 2);
	assert_npy(h, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 5), }");
	g_assert_cmpuint(g_bytes_get_size(h), ==, 128);
	g_bytes_unref(h);
	h = cfs_npy_header("<i2", (const uint64_t[]){ 9 }, 1);
	assert_npy(h, "{'descr': '<i2', 'fortran_order': False, 'shape': (9,), }");
	g_assert_cmpuint(g_bytes_get_size(h), ==, 128);
	g_bytes_unref(h);
	h = cfs_npy_header("|b1", NULL, 0);
	assert_npy(h, "{'descr': '|b1', 'fortran_order': False, 'shape': (), }");
	g_assert_cmpuint(g_bytes_get_size(h), ==, 128);
	g_bytes_unref(h);
	uint64_t big[CFS_NPY_MAX_DIMS];
	for (unsigned i = 0; i < CFS_NPY_MAX_DIMS; i++)
		big[i] = UINT64_MAX;
	h = cfs_npy_header("<c16", big, CFS_NPY_MAX_DIMS);
	g_assert_cmpuint(g_bytes_get_size(h) % 64, ==, 0);
	const char tail[] = ", 18446744073709551615), }";
	size_t len;
	const uint8_t *p = bytes_of(h, &len);
	g_assert_nonnull(memmem(p, len, tail, strlen(tail)));
	g_bytes_unref(h);
}

static const char *const mixed_format[] = { "int",  "float", "str",		 "bytes",
					    "jpeg", "numpy", "no_header_numpy:1" };

/* Describes leaf i of an item that starts at item, as the views would. */
static void describe(const struct cfs_leaf_schema *s, guint i, const uint8_t *item,
		     const struct cfs_leaf *leaf, struct cfs_leaf_file *out)
{
	size_t probe = cfs_leaf_probe_bytes(s, i, leaf->len);
	g_assert_cmpuint(probe, <=, leaf->len);
	cfs_leaf_describe(s, i, probe ? item + leaf->off : NULL, probe, leaf->len, out);
	g_assert_cmpuint(out->off + out->len, <=, leaf->len);
}

static void assert_leaf_npy(const struct cfs_leaf_file *f, const char *dict, uint64_t off,
			    uint64_t len)
{
	g_assert_cmpstr(f->ext, ==, "npy");
	g_assert_nonnull(f->prefix);
	assert_npy(f->prefix, dict);
	g_assert_cmpuint(f->off, ==, off);
	g_assert_cmpuint(f->len, ==, len);
}

/* Item 0 of litdata-mixed/chunk-0-0.bin: sizes (8, 8, 18, 15, 1330, 76, 18) by struct. */
static void test_leaves_litdata(void)
{
	struct cfs_leaf_schema *s = cfs_leaf_schema_litdata(mixed_format, 7, "PyTreeLoader");
	g_assert_cmpuint(cfs_leaf_count(s), ==, 7);
	g_assert_cmpuint(cfs_leaf_table_bytes(s), ==, 28);
	GBytes *b = fixture("litdata-mixed/chunk-0-0.bin");
	const uint8_t *item = bytes_of(b, NULL) + 72;
	struct cfs_leaf leaves[7];
	GError *err = NULL;
	g_assert_true(cfs_leaves_locate(s, item, 28, 1573 - 72, leaves, &err));
	g_assert_no_error(err);
	static const struct cfs_leaf want[] = { { 28, 8 },    { 36, 8 },     { 44, 18 }, { 62, 15 },
						{ 77, 1330 }, { 1407, 76 }, { 1483, 18 } };
	static const char *const exts[] = { "bin", "bin", "txt", "bin", "jpg", "npy", "npy" };
	for (guint i = 0; i < 7; i++) {
		g_assert_cmpuint(leaves[i].off, ==, want[i].off);
		g_assert_cmpuint(leaves[i].len, ==, want[i].len);
		struct cfs_leaf_file f;
		describe(s, i, item, &leaves[i], &f);
		g_assert_cmpstr(f.ext, ==, exts[i]);
		if (i == 5) /* numpy: dtype index 9, ndim 2, dims 3 5, then 60 bytes */
			assert_leaf_npy(&f, NPY_DICT("<f4", "(3, 5)"), 16, 60);
		else if (i == 6) /* no_header_numpy:1: 9 int16 */
			assert_leaf_npy(&f, NPY_DICT("<i2", "(9,)"), 0, 18);
		else
			g_assert_true(!f.prefix && f.off == 0 && f.len == want[i].len);
		if (f.prefix)
			g_bytes_unref(f.prefix);
	}
	g_assert_cmpmem(item + 44, 9, "item 31 h", 9);
	g_assert_cmpmem(item + 77, 3, "\xff\xd8\xff", 3);
	g_assert_cmpuint(cfs_leaf_probe_bytes(s, 5, 76), ==, 76);
	g_assert_cmpuint(cfs_leaf_probe_bytes(s, 5, 100000), ==, CFS_LEAF_PROBE_BYTES);
	g_assert_cmpuint(cfs_leaf_probe_bytes(s, 6, 18), ==, 0);

	/* Sizes that do not add up to the item. */
	uint8_t head[28];
	memcpy(head, item, sizeof(head));
	put_le32(head + 8, 19);
	g_assert_false(cfs_leaves_locate(s, head, 28, 1501, leaves, &err));
	assert_invalid(&err, "add up to 1502 bytes, the item has 1501");
	put_le32(head + 8, UINT32_MAX);
	g_assert_false(cfs_leaves_locate(s, head, 28, 1501, leaves, &err));
	assert_invalid(&err, "the item has 1501");
	g_assert_false(cfs_leaves_locate(s, head, 20, 20, leaves, &err));
	assert_invalid(&err, "item of 20 bytes is shorter than its size table (28 bytes)");
	g_bytes_unref(b);
	cfs_leaf_schema_free(s);
}

/* A numpy leaf (litdata NumpySerializer) holding dtype index, dims and count values. */
static struct cfs_leaf_file numpy_leaf(const struct cfs_leaf_schema *s, guint i, uint32_t dtype,
				       uint32_t ndim, uint32_t dim, size_t values)
{
	uint8_t leaf[64] = { 0 };
	put_le32(leaf, dtype);
	put_le32(leaf + 4, ndim);
	for (uint32_t d = 0; d < ndim && d < 4; d++)
		put_le32(leaf + 8 + 4 * d, dim);
	size_t len = MIN(sizeof(leaf), 8 + 4 * (size_t)MIN(ndim, 4) + values);
	struct cfs_leaf_file f;
	cfs_leaf_describe(s, i, leaf, MIN(len, cfs_leaf_probe_bytes(s, i, len)), len, &f);
	return f;
}

static void assert_bin(struct cfs_leaf_file f, uint64_t len)
{
	g_assert_cmpstr(f.ext, ==, "bin");
	g_assert_null(f.prefix);
	g_assert_cmpuint(f.off, ==, 0);
	g_assert_cmpuint(f.len, ==, len);
}

/* Leaves that cannot be .npy files are shown raw. */
static void test_leaves_litdata_raw(void)
{
	const char *const format[] = { "numpy", "tensor", "no_header_numpy:1", "no_header_numpy:14",
				       "no_header_tensor:10", "no_header_numpy:x", "file:mp4",
				       "video:MOV", "file:../x", "pickle", "tifffile", "pil" };
	struct cfs_leaf_schema *s = cfs_leaf_schema_litdata(format, G_N_ELEMENTS(format), NULL);
	struct cfs_leaf_file f = numpy_leaf(s, 0, 9, 2, 2, 16);
	assert_leaf_npy(&f, NPY_DICT("<f4", "(2, 2)"), 16, 16);
	g_bytes_unref(f.prefix);
	f = numpy_leaf(s, 1, 17, 1, 2, 16); /* torch int64 */
	assert_leaf_npy(&f, NPY_DICT("<i8", "(2,)"), 12, 16);
	g_bytes_unref(f.prefix);
	assert_bin(numpy_leaf(s, 0, 14, 1, 2, 16), 28);  /* object: no .npy dtype */
	assert_bin(numpy_leaf(s, 0, 99, 1, 2, 16), 28);  /* unknown dtype */
	assert_bin(numpy_leaf(s, 0, 9, 2, 2, 12), 28);   /* values short of the shape */
	assert_bin(numpy_leaf(s, 0, 9, 65, 1, 0), 24);   /* more dims than NumPy has */
	assert_bin(numpy_leaf(s, 1, 10, 1, 2, 4), 16);   /* bfloat16 */
	f = numpy_leaf(s, 0, 0, 0, 0, 1); /* a scalar int8 */
	assert_leaf_npy(&f, NPY_DICT("|i1", "()"), 8, 1);
	g_bytes_unref(f.prefix);
	struct cfs_leaf_file out;
	cfs_leaf_describe(s, 2, NULL, 0, 7, &out); /* 7 bytes of int16 */
	assert_bin(out, 7);
	for (guint i = 3; i <= 5; i++) {
		cfs_leaf_describe(s, i, NULL, 0, 8, &out);
		assert_bin(out, 8);
	}
	static const char *const exts[] = { "mp4", "MOV", "bin", "pkl", "tif", "bin" };
	for (guint i = 6; i < G_N_ELEMENTS(format); i++) {
		g_assert_cmpuint(cfs_leaf_probe_bytes(s, i, 10), ==, 0);
		cfs_leaf_describe(s, i, NULL, 0, 10, &out);
		g_assert_cmpstr(out.ext, ==, exts[i - 6]);
		g_assert_null(out.prefix);
	}
	cfs_leaf_schema_free(s);

	const char *const tokens[] = { "str" };
	g_assert_null(cfs_leaf_schema_litdata(tokens, 1, "TokensLoader"));
	g_assert_null(cfs_leaf_schema_litdata(mixed_format, 7, "ParquetLoader"));
	g_assert_null(cfs_leaf_schema_litdata(mixed_format, 0, NULL));
}

/* litdata-tokens: an item is raw int32 tokens; item 0 of chunk-0-0.bin is 280 bytes. */
static void test_leaves_tokens(void)
{
	const char *const format[] = { "no_header_numpy:2" };
	struct cfs_leaf_schema *s = cfs_leaf_schema_litdata(format, 1, "TokensLoader");
	g_assert_cmpuint(cfs_leaf_count(s), ==, 1);
	g_assert_cmpuint(cfs_leaf_table_bytes(s), ==, 0);
	struct cfs_leaf leaf;
	GError *err = NULL;
	g_assert_true(cfs_leaves_locate(s, NULL, 0, 280, &leaf, &err));
	g_assert_cmpuint(leaf.off, ==, 0);
	g_assert_cmpuint(leaf.len, ==, 280);
	struct cfs_leaf_file f;
	describe(s, 0, NULL, &leaf, &f);
	assert_leaf_npy(&f, NPY_DICT("<i4", "(70,)"), 0, 280);
	g_bytes_unref(f.prefix);
	struct cfs_leaf_schema *same = cfs_leaf_schema_litdata(format, 1, "TokensLoader");
	struct cfs_leaf_schema *tree = cfs_leaf_schema_litdata(format, 1, NULL);
	g_assert_true(cfs_leaf_schema_equal(s, same));
	g_assert_false(cfs_leaf_schema_equal(s, tree));
	g_assert_false(cfs_leaf_schema_equal(s, NULL));
	g_assert_true(cfs_leaf_schema_equal(NULL, NULL));
	cfs_leaf_schema_free(same);
	cfs_leaf_schema_free(tree);
	cfs_leaf_schema_free(s);
}

static const char *const mds_encodings[] = { "ndarray:float32:4", "bytes", "int", "int32", "str" };
static const int64_t mds_sizes[] = { 16, -1, 8, 4, -1 };

/* Sample 0 of mds-plain/shard.00000.mds: sizes (284, 9) of blob and text, by struct. */
static void test_leaves_mds(void)
{
	struct cfs_leaf_schema *s = cfs_leaf_schema_mds(mds_encodings, mds_sizes, 5);
	g_assert_cmpuint(cfs_leaf_table_bytes(s), ==, 8);
	GBytes *b = fixture("mds-plain/shard.00000.mds");
	const uint8_t *item = bytes_of(b, NULL) + 552;
	struct cfs_leaf leaves[5];
	GError *err = NULL;
	g_assert_true(cfs_leaves_locate(s, item, 8, 881 - 552, leaves, &err));
	static const struct cfs_leaf want[] = { { 8, 16 }, { 24, 284 }, { 308, 8 }, { 316, 4 },
						{ 320, 9 } };
	static const char *const exts[] = { "npy", "bin", "bin", "bin", "txt" };
	for (guint i = 0; i < 5; i++) {
		g_assert_cmpuint(leaves[i].off, ==, want[i].off);
		g_assert_cmpuint(leaves[i].len, ==, want[i].len);
		g_assert_cmpuint(cfs_leaf_probe_bytes(s, i, leaves[i].len), ==, 0);
		struct cfs_leaf_file f;
		describe(s, i, item, &leaves[i], &f);
		g_assert_cmpstr(f.ext, ==, exts[i]);
		if (i == 0)
			assert_leaf_npy(&f, NPY_DICT("<f4", "(4,)"), 0, 16);
		else
			g_assert_null(f.prefix);
		if (f.prefix)
			g_bytes_unref(f.prefix);
	}
	g_assert_cmpmem(item + 320, 9, "sample 0 ", 9);
	g_assert_false(cfs_leaves_locate(s, item, 8, 330, leaves, &err));
	assert_invalid(&err, "add up to 329 bytes, the item has 330");
	g_assert_false(cfs_leaves_locate(s, item, 4, 4, leaves, &err));
	assert_invalid(&err, "shorter than its size table");
	g_bytes_unref(b);
	cfs_leaf_schema_free(s);
	g_assert_null(cfs_leaf_schema_mds(NULL, NULL, 0));
	g_assert_null(cfs_leaf_schema_mds(mds_encodings, (const int64_t[]){ 16, -2, 8, 4, -1 }, 5));
}

/* Schemas of up to CFS_LEAF_MAX leaves are made; one more is refused, in both formats. */
static void test_leaves_limit(void)
{
	const char *formats[CFS_LEAF_MAX + 1];
	int64_t sizes[CFS_LEAF_MAX + 1];
	for (guint i = 0; i <= CFS_LEAF_MAX; i++) {
		formats[i] = "bytes";
		sizes[i] = -1;
	}
	struct cfs_leaf_schema *s = cfs_leaf_schema_litdata(formats, CFS_LEAF_MAX, NULL);
	g_assert_cmpuint(cfs_leaf_count(s), ==, CFS_LEAF_MAX);
	g_assert_cmpuint(cfs_leaf_table_bytes(s), ==, 4 * CFS_LEAF_MAX);
	cfs_leaf_schema_free(s);
	s = cfs_leaf_schema_mds(formats, sizes, CFS_LEAF_MAX);
	g_assert_cmpuint(cfs_leaf_count(s), ==, CFS_LEAF_MAX);
	cfs_leaf_schema_free(s);
	g_assert_null(cfs_leaf_schema_litdata(formats, CFS_LEAF_MAX + 1, NULL));
	g_assert_null(cfs_leaf_schema_litdata(formats, CFS_LEAF_MAX + 1, "PyTreeLoader"));
	g_assert_null(cfs_leaf_schema_mds(formats, sizes, CFS_LEAF_MAX + 1));
}

/* ---- leaf names ---- */

/*
 * A data_spec (torch/utils/_pytree.py treespec_dumps) written short: ' for ", ` for \" (the
 * quotes of a context's own JSON text), @ for a leaf. Free with g_free().
 */
static char *spec_text(const char *shorthand)
{
	GString *out = g_string_new(NULL);
	for (const char *p = shorthand; *p; p++) {
		if (*p == '\'')
			g_string_append_c(out, '"');
		else if (*p == '`')
			g_string_append(out, "\\\"");
		else if (*p == '@')
			g_string_append(
				out, "{\"type\": null, \"context\": null, \"children_spec\": []}");
		else
			g_string_append_c(out, *p);
	}
	return g_string_free(out, FALSE);
}

/* The names of shorthand's n leaves are want[0..n): NULL for a position name. */
static void assert_spec_names(const char *shorthand, guint n, const char *const *want)
{
	char *spec = spec_text(shorthand);
	GPtrArray *names = cfs_data_spec_names(spec, n);
	g_assert_nonnull(names);
	g_assert_cmpuint(names->len, ==, n);
	for (guint i = 0; i < n; i++)
		g_assert_cmpstr(names->pdata[i], ==, want[i]);
	g_ptr_array_unref(names);
	g_free(spec);
}

static bool spec_readable(const char *shorthand, guint n)
{
	char *spec = spec_text(shorthand);
	GPtrArray *names = cfs_data_spec_names(spec, n);
	g_free(spec);
	if (names)
		g_ptr_array_unref(names);
	return names != NULL;
}

/* A flat dict as litdata-mixed's index.json has it: one name per key, in the dict's order. */
static void test_data_spec_dict(void)
{
	const char *spec = "[1, {'type': 'builtins.dict', 'context': '[`image`, `label`]', "
			   "'children_spec': [@, @]}]";
	assert_spec_names(spec, 2, (const char *const[]){ "image", "label" });
	/* The names are of exactly as many leaves as data_format has. */
	g_assert_false(spec_readable(spec, 1));
	g_assert_false(spec_readable(spec, 3));
}

/* Nested dicts join keys with '.'; a list inside a dict adds the index; OrderedDict and
 * defaultdict (whose keys are in "dict_context") name like dict. */
static void test_data_spec_nested(void)
{
	const char *spec =
		"[1, {'type': 'builtins.dict', 'context': '[`meta`, `boxes`, `o`, `d`]', "
		"'children_spec': ["
		"{'type': 'builtins.dict', 'context': '[`label`]', 'children_spec': [@]}, "
		"{'type': 'builtins.list', 'context': 'null', 'children_spec': [@, @]}, "
		"{'type': 'collections.OrderedDict', 'context': '[`k`]', 'children_spec': [@]}, "
		"{'type': 'collections.defaultdict', 'context': '{`default_factory_module`: "
		"`builtins`, `default_factory_name`: `list`, `dict_context`: [`v`]}', "
		"'children_spec': [@]}]}]";
	assert_spec_names(
		spec, 5, (const char *const[]){ "meta.label", "boxes.0", "boxes.1", "o.k", "d.v" });
}

/* An item that is a list or tuple, or a single leaf, has no names; nor has a leaf under a
 * key that is not a string. */
static void test_data_spec_positions(void)
{
	assert_spec_names("[1, {'type': 'builtins.list', 'context': 'null', "
			  "'children_spec': [@, @]}]",
			  2, (const char *const[]){ NULL, NULL });
	assert_spec_names(
		"[1, {'type': 'builtins.tuple', 'context': 'null', 'children_spec': ["
		"{'type': 'builtins.list', 'context': 'null', 'children_spec': [@]}, @]}]",
		2, (const char *const[]){ NULL, NULL });
	assert_spec_names("[1, @]", 1, (const char *const[]){ NULL });
	assert_spec_names(
		"[1, {'type': 'builtins.dict', 'context': '[7, `a`]', 'children_spec': ["
		"{'type': 'builtins.dict', 'context': '[`b`]', 'children_spec': [@]}, @]}]",
		2, (const char *const[]){ NULL, "a" });
}

/* A data_spec of one leaf inside depth nested lists. */
static char *nested_lists(guint depth)
{
	GString *spec = g_string_new("[1, ");
	for (guint i = 0; i < depth; i++)
		g_string_append(spec, "{'type': 'builtins.list', 'context': 'null', "
				      "'children_spec': [");
	g_string_append(spec, "@");
	for (guint i = 0; i < depth; i++)
		g_string_append(spec, "]}");
	g_string_append(spec, "]");
	return g_string_free(spec, FALSE);
}

/* What cannot be read gives no names (the caller keeps positions), never a crash. */
static void test_data_spec_garbage(void)
{
	const char *const bad[] = {
		"",
		"not json",
		"{}",
		"[2, @]",
		"[1]",
		"[1, @, 3]",
		"[1, 7]",
		"[1, {'type': null, 'context': null}]",
		"[1, {'type': null, 'context': null, 'children_spec': [@]}]",
		"[1, {'type': 'builtins.dict', 'context': '[`a`]', 'children_spec': [@, @]}]",
		"[1, {'type': 'builtins.dict', 'context': 'not json', 'children_spec': [@]}]",
		"[1, {'type': 'builtins.dict', 'context': null, 'children_spec': [@]}]",
		"[1, {'type': 'builtins.dict', 'context': '{`a`: 1}', 'children_spec': [@]}]",
		"[1, {'type': 'collections.defaultdict', 'context': '[`a`]', 'children_spec': "
		"[@]}]",
		"[1, {'type': 3, 'context': null, 'children_spec': [@]}]",
	};
	for (guint i = 0; i < G_N_ELEMENTS(bad); i++)
		g_assert_false(spec_readable(bad[i], 1));
	/* Containers nested up to CFS_DATA_SPEC_MAX_DEPTH are read, one more is not; nor is
	 * JSON past CFS_JSON_MAX_DEPTH. */
	for (guint depth = CFS_DATA_SPEC_MAX_DEPTH; depth <= CFS_JSON_MAX_DEPTH; depth++) {
		char *spec = nested_lists(depth);
		g_assert_true(spec_readable(spec, 1) == (depth <= CFS_DATA_SPEC_MAX_DEPTH));
		g_free(spec);
	}
}

/* Keys that are no safe file name, and keys two leaves share, keep the position name. */
static void test_leaf_names_unsafe_and_duplicates(void)
{
	static const char *const formats[] = { "bytes", "bytes", "bytes", "bytes", "bytes", "bytes",
					       "bytes", "bytes", "bytes", "bytes", "bytes", "str" };
	char long_key[CFS_LEAF_STEM_MAX + 2];
	memset(long_key, 'k', sizeof(long_key) - 1);
	long_key[sizeof(long_key) - 1] = '\0';
	const char *names[] = { "a/b", ".",   "..",     "",         "12", "tab\there",
				"dup", "dup", long_key, "\xff\xfe", "ok", NULL };
	struct cfs_leaf_schema *s = cfs_leaf_schema_litdata(formats, G_N_ELEMENTS(formats), NULL);
	cfs_leaf_schema_set_names(s, names);
	for (guint i = 0; i < 10; i++) {
		char pos[8];
		g_snprintf(pos, sizeof(pos), "%u", i);
		g_assert_cmpstr(cfs_leaf_stem(s, i), ==, pos);
	}
	g_assert_cmpstr(cfs_leaf_stem(s, 10), ==, "ok");
	g_assert_cmpstr(cfs_leaf_stem(s, 11), ==, "11");
	g_assert_cmpint(cfs_leaf_find(s, "ok"), ==, 10);
	g_assert_cmpint(cfs_leaf_find(s, "11"), ==, 11);
	g_assert_cmpint(cfs_leaf_find(s, "dup"), ==, -1);
	/* The longest key that fits is taken: "<stem>.<ext>" stays within 255 bytes. */
	long_key[CFS_LEAF_STEM_MAX] = '\0';
	names[8] = long_key;
	struct cfs_leaf_schema *t = cfs_leaf_schema_litdata(formats, G_N_ELEMENTS(formats), NULL);
	cfs_leaf_schema_set_names(t, names);
	g_assert_cmpstr(cfs_leaf_stem(t, 8), ==, long_key);
	/* Schemas that differ only in names are not equal: chunks sharing one must name alike. */
	g_assert_false(cfs_leaf_schema_equal(s, t));
	cfs_leaf_schema_free(s);
	cfs_leaf_schema_free(t);
}

/* mosaicml NDArray's four forms (encodings.py), and the other encodings' extensions. */
static void test_leaves_mds_ndarray(void)
{
	const char *const enc[] = { "ndarray", "ndarray:int32", "ndarray:float64:2,2",
				    "ndarray:bad", "ndarray:uint8:0", "jpeg:90", "png", "str_int",
				    "json", "pkl", "pil", "uint16" };
	const int64_t sizes[] = { -1, -1, 32, -1, -1, -1, -1, -1, -1, -1, -1, 2 };
	struct cfs_leaf_schema *s = cfs_leaf_schema_mds(enc, sizes, G_N_ELEMENTS(enc));
	/* dtype code 16 (uint16), ndim 2 with uint8 dims 2 3, then 6 values */
	uint8_t dyn[4 + 12] = { 16, 2 << 2 | 0, 2, 3 };
	g_assert_cmpuint(cfs_leaf_probe_bytes(s, 0, sizeof(dyn)), ==, sizeof(dyn));
	struct cfs_leaf_file f;
	cfs_leaf_describe(s, 0, dyn, sizeof(dyn), sizeof(dyn), &f);
	assert_leaf_npy(&f, NPY_DICT("<u2", "(2, 3)"), 4, 12);
	g_bytes_unref(f.prefix);
	dyn[0] = 7; /* no such dtype code */
	cfs_leaf_describe(s, 0, dyn, sizeof(dyn), sizeof(dyn), &f);
	assert_bin(f, sizeof(dyn));
	/* static int32, ndim 1 with uint16 dims: 5 */
	uint8_t shaped[3 + 20] = { 1 << 2 | 1, 5, 0 };
	cfs_leaf_describe(s, 1, shaped, sizeof(shaped), sizeof(shaped), &f);
	assert_leaf_npy(&f, NPY_DICT("<i4", "(5,)"), 3, 20);
	g_bytes_unref(f.prefix);
	cfs_leaf_describe(s, 1, shaped, 2, sizeof(shaped), &f); /* probe short of the dims */
	assert_bin(f, sizeof(shaped));
	g_assert_cmpuint(cfs_leaf_probe_bytes(s, 2, 32), ==, 0);
	cfs_leaf_describe(s, 2, NULL, 0, 32, &f);
	assert_leaf_npy(&f, NPY_DICT("<f8", "(2, 2)"), 0, 32);
	g_bytes_unref(f.prefix);
	cfs_leaf_describe(s, 2, NULL, 0, 24, &f);
	assert_bin(f, 24);
	static const char *const exts[] = { "bin", "bin", "jpg", "png", "txt", "json", "pkl", "bin",
					    "bin" };
	for (guint i = 3; i < G_N_ELEMENTS(enc); i++) {
		g_assert_cmpuint(cfs_leaf_probe_bytes(s, i, 2), ==, 0);
		cfs_leaf_describe(s, i, NULL, 0, 2, &f);
		g_assert_cmpstr(f.ext, ==, exts[i - 3]);
		g_assert_null(f.prefix);
	}
	struct cfs_leaf leaves[G_N_ELEMENTS(enc)];
	uint8_t head[4 * 10] = { 0 }; /* every variable-size column empty */
	GError *err = NULL;
	g_assert_cmpuint(cfs_leaf_table_bytes(s), ==, sizeof(head));
	g_assert_true(cfs_leaves_locate(s, head, sizeof(head), 40 + 32 + 2, leaves, &err));
	g_assert_cmpuint(leaves[2].off, ==, 40);
	g_assert_cmpuint(leaves[2].len, ==, 32);
	g_assert_cmpuint(leaves[11].off, ==, 72);
	g_assert_cmpuint(leaves[11].len, ==, 2);
	cfs_leaf_schema_free(s);
}

/* A ustar header with its checksum; GNU's magic has no prefix field. */
static void tar_header(uint8_t *h, const char *name, uint64_t size, char type, bool gnu)
{
	memset(h, 0, CFS_TAR_BLOCK);
	memcpy(h, name, MIN(strlen(name), 100));
	memcpy(h + 100, "0000644", 7);
	snprintf((char *)h + 124, 12, "%011" PRIo64, size);
	h[156] = (uint8_t)type;
	memcpy(h + 257, gnu ? "ustar  " : "ustar\0" "00", 8);
}

static void tar_checksum(uint8_t *h)
{
	unsigned sum = 0;
	memset(h + 148, ' ', 8);
	for (unsigned i = 0; i < CFS_TAR_BLOCK; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
}

/* Appends a header and data (NULL: zeros) padded to a block; returns the data's offset. */
static uint64_t tar_add(GByteArray *a, uint8_t *h, const void *data, size_t len)
{
	tar_checksum(h);
	g_byte_array_append(a, h, CFS_TAR_BLOCK);
	uint64_t off = a->len;
	g_byte_array_set_size(a, a->len + (guint)((len + CFS_TAR_BLOCK - 1) / CFS_TAR_BLOCK *
						  CFS_TAR_BLOCK));
	memset(a->data + off, 0, a->len - off);
	if (data)
		memcpy(a->data + off, data, len);
	return off;
}

/* "LEN key=value\n" with LEN counting itself. */
static void pax_record(GString *s, const char *key, const char *value)
{
	size_t body = strlen(key) + strlen(value) + 3, len = body + 1;
	while (len != body + (size_t)snprintf(NULL, 0, "%zu", len))
		len++;
	g_string_append_printf(s, "%zu %s=%s\n", len, key, value);
}

/* Scans an archive feeding windows of what the scanner wants plus extra bytes. */
static enum cfs_tar_status tar_scan(const uint8_t *a, uint64_t size, uint64_t extra,
				    GPtrArray *out, GError **err)
{
	struct cfs_tar_scan *s = cfs_tar_scan_new(size);
	enum cfs_tar_status st;
	do {
		uint64_t pos, len;
		cfs_tar_scan_want(s, &pos, &len);
		g_assert_cmpuint(len, <=, CFS_TAR_MAX_META + CFS_TAR_BLOCK);
		len = MIN(len + extra, size - pos);
		/* A copy of exactly the window: reads past it are caught by ASan. */
		uint8_t *w = g_memdup2(a + pos, len);
		st = cfs_tar_scan_feed(s, pos, w, len, out, err);
		g_free(w);
	} while (st == CFS_TAR_NEED);
	cfs_tar_scan_free(s);
	return st;
}

static const struct cfs_tar_member *member_at(GPtrArray *out, guint i)
{
	return out->pdata[i];
}

/* Reference: `tar -tvf` and Python's tarfile (offset_data) on the fixtures. */
static void test_tar_fixtures(void)
{
	char *x110 = g_strnfill(110, 'x');
	char *long_name = g_strconcat("long_", x110, "_000007.jpg", NULL);
	static const struct {
		const char *file, *first, *last;
		uint64_t first_size, last_off;
	} shards[] = {
		{ "wds/shard-000000.tar", "000000.jpg", "000039.json", 1356, 167936 },
		{ "wds/shard-000001.tar", "000040.jpg", "000079.json", 1359, 165376 },
	};
	for (guint i = 0; i < G_N_ELEMENTS(shards); i++) {
		GBytes *b = fixture(shards[i].file);
		size_t len;
		const uint8_t *p = bytes_of(b, &len);
		g_assert_cmpuint(len, ==, 174080);
		static const uint64_t extras[] = { 0, 1, 4096, UINT32_MAX };
		for (guint e = 0; e < G_N_ELEMENTS(extras); e++) {
			GPtrArray *out = g_ptr_array_new_with_free_func(cfs_tar_member_free);
			GError *err = NULL;
			g_assert_cmpint(tar_scan(p, len, extras[e], out, &err), ==, CFS_TAR_END);
			g_assert_no_error(err);
			g_assert_cmpuint(out->len, ==, 120);
			g_assert_cmpstr(member_at(out, 0)->path, ==, shards[i].first);
			g_assert_cmpint(member_at(out, 0)->type, ==, '0');
			g_assert_cmpuint(member_at(out, 0)->offset, ==, 512);
			g_assert_cmpuint(member_at(out, 0)->size, ==, shards[i].first_size);
			g_assert_cmpstr(member_at(out, 119)->path, ==, shards[i].last);
			g_assert_cmpuint(member_at(out, 119)->offset, ==, shards[i].last_off);
			g_assert_cmpuint(member_at(out, 119)->size, ==, 37);
			if (i == 0) { /* GNU 'L' long names */
				g_assert_cmpstr(member_at(out, 21)->path, ==, long_name);
				g_assert_cmpuint(member_at(out, 21)->offset, ==, 30208);
				g_assert_cmpuint(member_at(out, 21)->size, ==, 1519);
			}
			g_ptr_array_unref(out);
		}
		g_bytes_unref(b);
	}
	g_free(long_name);
	g_free(x110);
}

/* pax 'g' and 'x' headers, the ustar prefix, GNU magic, base-256 sizes, a directory, and an
 * end of one zero block followed by the archive's end. */
static GByteArray *synthetic_tar(uint64_t *offsets)
{
	GByteArray *a = g_byte_array_new();
	uint8_t h[CFS_TAR_BLOCK];
	GString *rec = g_string_new(NULL);
	pax_record(rec, "path", "global/ignored");
	pax_record(rec, "comment", "made by unit_tests");
	tar_header(h, "pax_global_header", rec->len, 'g', false);
	tar_add(a, h, rec->str, rec->len);
	g_string_truncate(rec, 0);
	char *long_path = g_strnfill(150, 'p');
	pax_record(rec, "path", long_path);
	pax_record(rec, "size", "700");
	pax_record(rec, "linkpath", "");
	tar_header(h, "PaxHeaders/short", rec->len, 'x', false);
	tar_add(a, h, rec->str, rec->len);
	tar_header(h, "short", 0, '0', false);
	offsets[0] = tar_add(a, h, NULL, 700);
	tar_header(h, "file.txt", 3, '\0', false);
	memcpy(h + 345, "some/dir", 8);
	offsets[1] = tar_add(a, h, "abc", 3);
	tar_header(h, "gnu.txt", 2, '0', true);
	memcpy(h + 345, "\x31\x32", 2); /* GNU keeps atime here, not a prefix */
	offsets[2] = tar_add(a, h, "hi", 2);
	tar_header(h, "big.bin", 0, '0', true);
	memset(h + 124, 0, 12);
	h[124] = 0x80;
	h[134] = 0x03; /* 1000 in base-256 */
	h[135] = 0xe8;
	offsets[3] = tar_add(a, h, NULL, 1000);
	tar_header(h, "dir/", 0, '5', false);
	offsets[4] = tar_add(a, h, NULL, 0);
	g_byte_array_set_size(a, a->len + CFS_TAR_BLOCK);
	memset(a->data + a->len - CFS_TAR_BLOCK, 0, CFS_TAR_BLOCK);
	g_string_free(rec, TRUE);
	g_free(long_path);
	return a;
}

static void test_tar_synthetic(void)
{
	uint64_t off[5];
	GByteArray *a = synthetic_tar(off);
	char *long_path = g_strnfill(150, 'p');
	static const uint64_t extras[] = { 0, 100, 1 << 20 };
	for (guint e = 0; e < G_N_ELEMENTS(extras); e++) {
		GPtrArray *out = g_ptr_array_new_with_free_func(cfs_tar_member_free);
		GError *err = NULL;
		g_assert_cmpint(tar_scan(a->data, a->len, extras[e], out, &err), ==, CFS_TAR_END);
		g_assert_no_error(err);
		g_assert_cmpuint(out->len, ==, 5);
		static const struct {
			const char *path;
			char type;
			uint64_t size;
		} want[] = { { NULL, '0', 700 },     { "some/dir/file.txt", '0', 3 },
			     { "gnu.txt", '0', 2 }, { "big.bin", '0', 1000 },
			     { "dir/", '5', 0 } };
		for (guint i = 0; i < 5; i++) {
			const struct cfs_tar_member *m = member_at(out, i);
			g_assert_cmpstr(m->path, ==, want[i].path ? want[i].path : long_path);
			g_assert_cmpint(m->type, ==, want[i].type);
			g_assert_cmpuint(m->offset, ==, off[i]);
			g_assert_cmpuint(m->size, ==, want[i].size);
		}
		g_ptr_array_unref(out);
	}
	g_free(long_path);
	g_byte_array_unref(a);
}

/* Scans a and expects an error naming what; returns the members found before it. */
static guint tar_expect_error(const uint8_t *a, uint64_t size, const char *what)
{
	GPtrArray *out = g_ptr_array_new_with_free_func(cfs_tar_member_free);
	GError *err = NULL;
	g_assert_cmpint(tar_scan(a, size, 0, out, &err), ==, CFS_TAR_ERROR);
	assert_invalid(&err, what);
	guint n = out->len;
	g_ptr_array_unref(out);
	return n;
}

/* A member whose header's mtime field is mtime (12 bytes), after an 'x' header with a pax
 * mtime record when pax is not NULL; its mtime as the scanner reads it. */
static int64_t tar_member_mtime(const char *mtime, const char *pax)
{
	GByteArray *a = g_byte_array_new();
	uint8_t h[CFS_TAR_BLOCK];
	if (pax) {
		GString *rec = g_string_new(NULL);
		pax_record(rec, "mtime", pax);
		tar_header(h, "PaxHeader", rec->len, 'x', false);
		tar_add(a, h, rec->str, rec->len);
		g_string_free(rec, TRUE);
	}
	tar_header(h, "m.txt", 2, '0', false);
	memcpy(h + 136, mtime, 12);
	tar_add(a, h, "m\n", 2);
	g_byte_array_set_size(a, a->len + 2 * CFS_TAR_BLOCK);
	memset(a->data + a->len - 2 * CFS_TAR_BLOCK, 0, 2 * CFS_TAR_BLOCK);
	GPtrArray *out = g_ptr_array_new_with_free_func(cfs_tar_member_free);
	GError *err = NULL;
	g_assert_cmpint(tar_scan(a->data, a->len, 0, out, &err), ==, CFS_TAR_END);
	g_assert_no_error(err);
	g_assert_cmpuint(out->len, ==, 1);
	int64_t us = member_at(out, 0)->mtime_us;
	g_ptr_array_unref(out);
	g_byte_array_unref(a);
	return us;
}

/* Member times: octal and base-256 header fields, pax records with fractions and signs; a
 * malformed or negative one is unknown, or the header's when a pax record is malformed. */
static void test_tar_mtimes(void)
{
	static const char octal[12] = "13132027400"; /* 1500000000 */
	static const char base256[12] = { (char)0x80, 0, 0, 0, 0, 0, 0, 0, 0x59, 0x68, 0x2f, 0 };
	static const char negative[12] = { (char)0xff, (char)0xff, (char)0xff, (char)0xff,
					   (char)0xff, (char)0xff, (char)0xff, (char)0xff,
					   (char)0xff, (char)0xff, (char)0xff, (char)0xff };
	const int64_t s = G_GINT64_CONSTANT(1500000000) * G_USEC_PER_SEC;
	g_assert_cmpint(tar_member_mtime(octal, NULL), ==, s);
	g_assert_cmpint(tar_member_mtime(base256, NULL), ==, s);
	g_assert_cmpint(tar_member_mtime(negative, NULL), ==, CFS_TIME_UNKNOWN);
	g_assert_cmpint(tar_member_mtime("1313202740x", NULL), ==, CFS_TIME_UNKNOWN);
	g_assert_cmpint(tar_member_mtime(octal, "1700000000.25"), ==,
			G_GINT64_CONSTANT(1700000000250000));
	g_assert_cmpint(tar_member_mtime(octal, "1700000000.1234567"), ==,
			G_GINT64_CONSTANT(1700000000123456));
	g_assert_cmpint(tar_member_mtime(octal, "-1.5"), ==, -1500000);
	g_assert_cmpint(tar_member_mtime(octal, "0"), ==, 0);
	g_assert_cmpint(tar_member_mtime(octal, "12x"), ==, s);
	g_assert_cmpint(tar_member_mtime(octal, ".5"), ==, s);
	g_assert_cmpint(tar_member_mtime(octal, "9223372036854.999999"), ==, s);
	g_assert_cmpint(tar_member_mtime(octal, "99999999999999999999"), ==, s);
}

static void test_tar_bad(void)
{
	GBytes *b = fixture("wds/shard-000000.tar");
	size_t len;
	const uint8_t *shard = bytes_of(b, &len);
	uint8_t *p = g_memdup2(shard, len);
	g_bytes_unref(b);
	/* 000000.cls's header is at 2048 */
	p[2048] ^= 1;
	g_assert_cmpuint(tar_expect_error(p, len, "tar header at byte 2048: bad checksum"), ==, 1);
	p[2048] ^= 1;
	g_assert_cmpuint(tar_expect_error(p, 1000, "member of 1356 bytes runs past the end (1000)"),
			 ==, 0);
	g_assert_cmpuint(tar_expect_error(p, 2048 + 100, "truncated"), ==, 1);
	memcpy(p + 2048 + 124, "0000000001x", 11);
	tar_checksum(p + 2048);
	g_assert_cmpuint(tar_expect_error(p, len, "the size field is not a number"), ==, 1);
	g_free(p);

	uint64_t off[5];
	GByteArray *a = synthetic_tar(off);
	/* The 'x' header is at 1024: break its first record's length. */
	uint8_t *rec = a->data + 1024 + CFS_TAR_BLOCK;
	g_assert_cmpint(rec[0], ==, '1');
	rec[0] = '9';
	g_assert_cmpuint(tar_expect_error(a->data, a->len, "malformed pax record at byte 0"), ==,
			 0);
	rec[0] = '1';
	uint8_t *x = a->data + 1024;
	snprintf((char *)x + 124, 12, "%011o", CFS_TAR_MAX_META + 1);
	tar_checksum(x);
	tar_expect_error(a->data, a->len, "over the 1048576-byte limit");
	/* A lone zero block with headers after it. */
	memset(x, 0, CFS_TAR_BLOCK);
	tar_expect_error(a->data, a->len, "lone zero block");
	g_byte_array_unref(a);

	/* A window that is not the one wanted. */
	struct cfs_tar_scan *s = cfs_tar_scan_new(4096);
	uint8_t zero[CFS_TAR_BLOCK] = { 0 };
	GPtrArray *out = g_ptr_array_new_with_free_func(cfs_tar_member_free);
	GError *err = NULL;
	g_assert_cmpint(cfs_tar_scan_feed(s, 512, zero, sizeof(zero), out, &err), ==,
			CFS_TAR_ERROR);
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
	g_clear_error(&err);
	/* Two zero blocks: the end-of-archive marker. */
	uint8_t zeros[2 * CFS_TAR_BLOCK] = { 0 };
	g_assert_cmpint(cfs_tar_scan_feed(s, 0, zeros, sizeof(zeros), out, &err), ==, CFS_TAR_END);
	g_assert_cmpuint(out->len, ==, 0);
	cfs_tar_scan_free(s);
	g_ptr_array_unref(out);
}

static struct cfs_ds_index *parse_fixture_index(const char *dir)
{
	char *name = g_build_filename(dir, "index.json", NULL);
	GBytes *b = fixture(name);
	size_t len;
	const char *json = (const char *)bytes_of(b, &len);
	GError *err = NULL;
	struct cfs_ds_index *idx = cfs_ds_index_parse(json, len, &err);
	g_assert_no_error(err);
	g_bytes_unref(b);
	g_free(name);
	return idx;
}

static const struct cfs_ds_chunk *ds_chunk(const struct cfs_ds_index *idx, guint i)
{
	return &g_array_index(idx->chunks, struct cfs_ds_chunk, i);
}

/* Every item of every chunk of a plain fixture: its header, and its leaves with their
 * extensions. */
static void check_fixture_chunks(const char *dir, const struct cfs_ds_index *idx,
				 const char *const *exts)
{
	for (guint c = 0; c < idx->chunks->len; c++) {
		const struct cfs_ds_chunk *ch = ds_chunk(idx, c);
		char *name = g_build_filename(dir, ch->name, NULL);
		GBytes *b = fixture(name);
		size_t len;
		const uint8_t *p = bytes_of(b, &len);
		g_assert_cmpuint(len, ==, ch->size);
		GError *err = NULL;
		uint32_t *off = cfs_chunk_header_parse(p, len, ch->items, ch->plain_size, &err);
		g_assert_no_error(err);
		guint n = cfs_leaf_count(ch->schema);
		struct cfs_leaf *leaves = g_new(struct cfs_leaf, n);
		for (uint32_t i = 0; i < ch->items; i++) {
			uint64_t item_len = off[i + 1] - off[i];
			g_assert_true(cfs_leaves_locate(ch->schema, p + off[i], item_len, item_len,
							leaves, &err));
			for (guint l = 0; l < n; l++) {
				struct cfs_leaf_file f;
				describe(ch->schema, l, p + off[i], &leaves[l], &f);
				g_assert_cmpstr(f.ext, ==, exts[l]);
				if (f.prefix)
					g_bytes_unref(f.prefix);
			}
		}
		g_free(leaves);
		g_free(off);
		g_bytes_unref(b);
		g_free(name);
	}
}

static void test_dsindex_litdata(void)
{
	static const char *const mixed_exts[] = { "bin", "bin", "txt", "bin", "jpg", "npy", "npy" };
	struct cfs_ds_index *idx = parse_fixture_index("litdata-mixed");
	g_assert_cmpint(idx->format, ==, CFS_DS_LITDATA);
	g_assert_cmpuint(idx->chunks->len, ==, 10);
	g_assert_null(idx->compression);
	g_assert_false(idx->zstd || idx->encrypted);
	g_assert_null(idx->plain_index);
	g_assert_cmpuint(idx->schemas->len, ==, 1);
	const struct cfs_ds_chunk *c = ds_chunk(idx, 0);
	g_assert_cmpstr(c->name, ==, "chunk-0-0.bin");
	g_assert_cmpuint(c->size, ==, 26124);
	g_assert_cmpuint(c->plain_size, ==, 26124);
	g_assert_null(c->plain_name);
	g_assert_cmpuint(cfs_leaf_count(c->schema), ==, 7);
	uint64_t items = 0;
	for (guint i = 0; i < idx->chunks->len; i++) {
		items += ds_chunk(idx, i)->items;
		g_assert_true(ds_chunk(idx, i)->schema == c->schema);
	}
	g_assert_cmpuint(items, ==, 150);
	g_assert_cmpstr(ds_chunk(idx, 9)->name, ==, "chunk-1-5.bin");
	g_assert_cmpuint(ds_chunk(idx, 9)->items, ==, 14);
	check_fixture_chunks("litdata-mixed", idx, mixed_exts);
	cfs_ds_index_free(idx);

	idx = parse_fixture_index("litdata-mixed-zstd");
	g_assert_cmpstr(idx->compression, ==, "zstd");
	g_assert_true(idx->zstd);
	c = ds_chunk(idx, 0);
	g_assert_cmpstr(c->name, ==, "chunk-0-0.zstd.bin");
	g_assert_cmpuint(c->size, ==, CFS_SIZE_UNKNOWN);
	g_assert_cmpstr(c->plain_name, ==, "chunk-0-0.bin");
	g_assert_cmpuint(c->plain_size, ==, 25091);
	g_assert_cmpuint(ds_chunk(idx, 9)->items, ==, 6);
	g_assert_cmpuint(cfs_leaf_count(c->schema), ==, 7);
	size_t len;
	const char *plain = g_bytes_get_data(idx->plain_index, &len);
	GError *err = NULL;
	struct cfs_ds_index *view = cfs_ds_index_parse(plain, len, &err);
	g_assert_no_error(err);
	g_assert_null(view->compression);
	g_assert_false(view->zstd);
	g_assert_cmpuint(view->chunks->len, ==, 10);
	g_assert_cmpstr(ds_chunk(view, 9)->name, ==, "chunk-0-9.bin");
	g_assert_cmpuint(ds_chunk(view, 9)->size, ==, 9884);
	g_assert_true(cfs_leaf_schema_equal(ds_chunk(view, 0)->schema, c->schema));
	cfs_ds_index_free(view);
	cfs_ds_index_free(idx);

	static const char *const token_exts[] = { "npy" };
	idx = parse_fixture_index("litdata-tokens");
	g_assert_cmpuint(idx->chunks->len, ==, 4);
	items = 0;
	for (guint i = 0; i < idx->chunks->len; i++)
		items += ds_chunk(idx, i)->items;
	g_assert_cmpuint(items, ==, 64);
	g_assert_cmpuint(cfs_leaf_count(ds_chunk(idx, 0)->schema), ==, 1);
	g_assert_cmpuint(cfs_leaf_table_bytes(ds_chunk(idx, 0)->schema), ==, 0);
	check_fixture_chunks("litdata-tokens", idx, token_exts);
	cfs_ds_index_free(idx);
}

static void test_dsindex_mds(void)
{
	static const char *const exts[] = { "npy", "bin", "bin", "bin", "txt" };
	struct cfs_ds_index *idx = parse_fixture_index("mds-plain");
	g_assert_cmpint(idx->format, ==, CFS_DS_MDS);
	g_assert_cmpuint(idx->chunks->len, ==, 3);
	g_assert_null(idx->compression);
	g_assert_false(idx->zstd);
	g_assert_cmpuint(idx->schemas->len, ==, 1); /* the shards share their columns */
	const struct cfs_ds_chunk *c = ds_chunk(idx, 0);
	g_assert_cmpstr(c->name, ==, "shard.00000.mds");
	g_assert_cmpuint(c->size, ==, 16291);
	g_assert_cmpuint(c->items, ==, 70);
	g_assert_null(c->plain_name);
	g_assert_cmpuint(ds_chunk(idx, 1)->items + ds_chunk(idx, 2)->items, ==, 130);
	check_fixture_chunks("mds-plain", idx, exts);
	cfs_ds_index_free(idx);

	idx = parse_fixture_index("mds-zstd");
	g_assert_cmpstr(idx->compression, ==, "zstd:7");
	g_assert_true(idx->zstd);
	g_assert_cmpuint(idx->schemas->len, ==, 1);
	c = ds_chunk(idx, 0);
	g_assert_cmpstr(c->name, ==, "shard.00000.mds.zstd");
	g_assert_cmpuint(c->size, ==, 13012);
	g_assert_cmpstr(c->plain_name, ==, "shard.00000.mds");
	g_assert_cmpuint(c->plain_size, ==, 16295);
	g_assert_cmpuint(ds_chunk(idx, 2)->items, ==, 63);
	size_t len;
	const char *plain = g_bytes_get_data(idx->plain_index, &len);
	GError *err = NULL;
	struct cfs_ds_index *view = cfs_ds_index_parse(plain, len, &err);
	g_assert_no_error(err);
	g_assert_null(view->compression);
	g_assert_cmpstr(ds_chunk(view, 2)->name, ==, "shard.00002.mds");
	g_assert_cmpuint(ds_chunk(view, 2)->size, ==, 15403);
	g_assert_cmpuint(cfs_leaf_count(ds_chunk(view, 2)->schema), ==, 5);
	cfs_ds_index_free(view);
	cfs_ds_index_free(idx);
}

/* Parses JSON written with ' for " (easier to read here). */
static struct cfs_ds_index *parse_quoted(const char *text, GError **err)
{
	char *json = g_strdelimit(g_strdup(text), "'", '"');
	struct cfs_ds_index *idx = cfs_ds_index_parse(json, strlen(json), err);
	g_free(json);
	return idx;
}

static void test_dsindex_bad(void)
{
	static const struct {
		const char *json, *what;
	} bad[] = {
		{ "{'chunks': [", "not JSON" },
		{ "[1, 2]", "not an object" },
		{ "{'version': 2}", "neither" },
		{ "{'chunks': {}}", "not a list" },
		{ "{'chunks': [{'filename': 'a', 'chunk_bytes': 1, 'chunk_size': 1}, 7]}",
		  "chunk 1 is not a JSON object" },
		{ "{'chunks': [{'chunk_bytes': 1, 'chunk_size': 1}]}",
		  "chunk 0 has no string 'filename'" },
		{ "{'chunks': [{'filename': 'a', 'chunk_bytes': -1, 'chunk_size': 1}]}",
		  "chunk 0 has no non-negative integer 'chunk_bytes'" },
		{ "{'chunks': [{'filename': 'a', 'chunk_bytes': 1, 'chunk_size': 4294967296}]}",
		  "chunk 0 has no non-negative integer 'chunk_size'" },
		{ "{'chunks': [], 'config': {'compression': 5}}", "compression" },
		{ "{'version': 1, 'shards': []}", "version 2" },
		{ "{'version': 2, 'shards': [{'format': 'jsonl'}]}", "shard 0 is not" },
		{ "{'version': 2, 'shards': [{'format': 'mds', 'raw_data': {'basename': 's', "
		  "'bytes': 1}}]}",
		  "shard 0 has no non-negative integer 'samples'" },
		{ "{'version': 2, 'shards': [{'format': 'mds', 'samples': 1, 'raw_data': "
		  "{'basename': 's'}}]}",
		  "shard 0 has no 'raw_data'" },
		{ "{'version': 2, 'shards': [{'format': 'mds', 'samples': 1, 'raw_data': "
		  "{'basename': 's', 'bytes': 1}, 'compression': 'zstd', 'zip_data': null}]}",
		  "shard 0 has no 'zip_data'" },
	};
	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		GError *err = NULL;
		g_assert_null(parse_quoted(bad[i].json, &err));
		char *what = g_strdelimit(g_strdup(bad[i].what), "'", '"');
		assert_invalid(&err, what);
		g_free(what);
	}
	/* Columns that cannot be split leave the chunk without leaves, not the index broken. */
	GError *err = NULL;
	struct cfs_ds_index *idx = parse_quoted(
		"{'version': 2, 'shards': [{'format': 'mds', 'samples': 3, 'raw_data': "
		"{'basename': 's', 'bytes': 9}, 'column_encodings': ['int'], "
		"'column_sizes': [8, 8]}]}", &err);
	g_assert_no_error(err);
	g_assert_null(ds_chunk(idx, 0)->schema);
	cfs_ds_index_free(idx);
	idx = parse_quoted("{'chunks': [], 'config': {'encryption': {'level': 'sample'}, "
			   "'data_format': ['int']}}", &err);
	g_assert_no_error(err);
	g_assert_true(idx->encrypted);
	g_assert_cmpuint(idx->schemas->len, ==, 0);
	cfs_ds_index_free(idx);
}

/* Fuzzing found these (docs/hostile.md, "Fuzzing"). An empty body, which GBytes gives as NULL. */
static void test_fuzz_empty_bodies(void)
{
	GError *err = NULL;
	g_assert_null(cfs_listing_parse_s3(NULL, 0, "", &err));
	g_assert_error(err, G_MARKUP_ERROR, G_MARKUP_ERROR_EMPTY);
	g_clear_error(&err);
	g_assert_null(cfs_listing_parse_http(NULL, 0, &err));
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
	g_clear_error(&err);
	g_assert_null(cfs_ds_index_parse(NULL, 0, &err));
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
	g_clear_error(&err);
}

/* Elements repeated in a ListObjectsV2 page: the last counts, the others were leaked (ASan). */
static void test_fuzz_s3_repeated(void)
{
	const char xml[] = "<ListBucketResult><Contents><Key>a</Key><ETag>1</ETag><Key>b</Key>"
			   "<ETag>2</ETag></Contents><NextContinuationToken>x"
			   "</NextContinuationToken><NextContinuationToken>y"
			   "</NextContinuationToken></ListBucketResult>";
	GError *err = NULL;
	struct cfs_listing *l = cfs_listing_parse_s3(xml, strlen(xml), "", &err);
	g_assert_no_error(err);
	g_assert_cmpuint(l->entries->len, ==, 1);
	g_assert_cmpstr(entry(l, 0)->name, ==, "b");
	g_assert_cmpstr(entry(l, 0)->etag, ==, "2");
	g_assert_cmpstr(l->next_token, ==, "y");
	cfs_listing_free(l);
}

/*
 * JSON autoindex members of other types: a "type" that is not a string was compared as a
 * NULL string; an object or an array where a value belongs made json-glib log a critical.
 */
static void test_fuzz_autoindex_type(void)
{
	const char json[] = "[{\"name\": \"a\", \"type\": 6124}, {\"name\": \"b\", \"type\": null},"
			    " {\"name\": \"c\", \"type\": [\"directory\"], \"size\": {\"n\": 1}},"
			    " {\"name\": \"d\", \"size\": \"7\"}]";
	GError *err = NULL;
	struct cfs_listing *l = cfs_listing_parse_http(json, strlen(json), &err);
	g_assert_no_error(err);
	g_assert_cmpuint(l->entries->len, ==, 4);
	for (guint i = 0; i < 4; i++) {
		g_assert_false(entry(l, i)->is_dir);
		g_assert_cmpuint(entry(l, i)->size, ==, CFS_SIZE_UNKNOWN);
	}
	cfs_listing_free(l);
	const char bad[] = "[{\"name\": {\"name\": \"u0e\"}}]";
	g_assert_null(cfs_listing_parse_http(bad, strlen(bad), &err));
	g_assert_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
	g_clear_error(&err);
}

/*
 * A second top-level value, a lone surrogate escape: json-glib 1.6 leaked memory refusing
 * them (seen with G_SLICE=always-malloc).
 */
static void test_fuzz_json_leaks(void)
{
	const char *bad[] = { "\"a\"[1]", "1{\"a\": 1}", "[1][2]", "{\"a\": [1]} {\"b\": 2}",
			      "{\"k\\ud800\\u0041\": 1}", "[\"\\ud800\\u002\"]", "[\"\\uDBFF\"]",
			      "[\"\\udc00\"]", "{\"k\\ud80 \\u0041\": 1}", "[\"\\u00\"]" };
	for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
		GError *err = NULL;
		g_assert_false(cfs_json_depth_ok(bad[i], strlen(bad[i]), &err));
		g_assert_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
		g_clear_error(&err);
	}
	const char *good[] = { " [1, [2], {\"a\": [3]}]\n", "{\"a\": \"[x]\"}", "\"[]\"",
			       "[\"\\ud83d\\ude00 \\u00e9 \\\\ud800\"]" };
	for (unsigned i = 0; i < G_N_ELEMENTS(good); i++)
		g_assert_true(cfs_json_depth_ok(good[i], strlen(good[i]), NULL));
}

/* RFC 9110 section 14.4 exactly: "/-62" was read as 2^64 - 62, "Bytes" refused. */
static void test_fuzz_content_range(void)
{
	uint64_t first, last, total;
	g_assert_true(cfs_content_range_parse("Bytes 25-25/26", &first, &last, &total));
	g_assert_cmpuint(first, ==, 25);
	g_assert_cmpuint(last, ==, 25);
	g_assert_cmpuint(total, ==, 26);
	const char *bad[] = { "bytes 0-65535/-62", "bytes +0-5/10", "bytes  0-5/10", "bytes0-5/10",
			      "bytes 0-5/10 ", "bytes 0-5/18446744073709551616", "bytes 0-5/*",
			      "bytes 5-4/10", "bytes 0-10/10", NULL };
	for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++)
		g_assert_false(cfs_content_range_parse(bad[i], &first, &last, &total));
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/options/sizes", test_sizes);
	g_test_add_func("/extents/ops", test_extents);
	g_test_add_func("/log/escape", test_log_escape);
	g_test_add_func("/tree/names", test_names);
	g_test_add_func("/url/normalize-join-redact", test_urls);
	g_test_add_func("/url/redact-text", test_url_redact_text);
	g_test_add_func("/url/file-and-parent", test_url_file_and_parent);
	g_test_add_func("/readahead/sequential-and-random", test_readahead);
	g_test_add_func("/stats/ttfb", test_ttfb);
	g_test_add_func("/listing/s3", test_listing_s3);
	g_test_add_func("/listing/s3-hostile", test_listing_s3_hostile);
	g_test_add_func("/listing/http", test_listing_http);
	g_test_add_func("/json/depth", test_json_depth);
	g_test_add_func("/chunkhdr/fixtures", test_chunkhdr_fixtures);
	g_test_add_func("/chunkhdr/bad", test_chunkhdr_bad);
	g_test_add_func("/npy/header", test_npy_header);
	g_test_add_func("/leaves/litdata", test_leaves_litdata);
	g_test_add_func("/leaves/litdata-raw", test_leaves_litdata_raw);
	g_test_add_func("/leaves/tokens", test_leaves_tokens);
	g_test_add_func("/leaves/mds", test_leaves_mds);
	g_test_add_func("/leaves/mds-ndarray", test_leaves_mds_ndarray);
	g_test_add_func("/leaves/limit", test_leaves_limit);
	g_test_add_func("/leaves/data-spec-dict", test_data_spec_dict);
	g_test_add_func("/leaves/data-spec-nested", test_data_spec_nested);
	g_test_add_func("/leaves/data-spec-positions", test_data_spec_positions);
	g_test_add_func("/leaves/data-spec-garbage", test_data_spec_garbage);
	g_test_add_func("/leaves/names-unsafe-and-duplicates",
			test_leaf_names_unsafe_and_duplicates);
	g_test_add_func("/tar/fixtures", test_tar_fixtures);
	g_test_add_func("/tar/synthetic", test_tar_synthetic);
	g_test_add_func("/tar/bad", test_tar_bad);
	g_test_add_func("/tar/mtimes", test_tar_mtimes);
	g_test_add_func("/dsindex/litdata", test_dsindex_litdata);
	g_test_add_func("/dsindex/mds", test_dsindex_mds);
	g_test_add_func("/dsindex/bad", test_dsindex_bad);
	g_test_add_func("/fuzz/empty-bodies", test_fuzz_empty_bodies);
	g_test_add_func("/fuzz/s3-repeated", test_fuzz_s3_repeated);
	g_test_add_func("/fuzz/autoindex-type", test_fuzz_autoindex_type);
	g_test_add_func("/fuzz/content-range", test_fuzz_content_range);
	g_test_add_func("/fuzz/json-leaks", test_fuzz_json_leaks);
	return g_test_run();
}
