/*
 * Unit tests of .chunkfs/metrics (util/metrics.h): the escaping of the
 * Prometheus text format 0.0.4 and the TTFB histogram's cumulative buckets;
 * run by `meson test`.
 */
#include <glib.h>
#include <string.h>

#include "util/metrics.h"
#include "util/stats.h"

#define BUCKET "chunkfs_time_to_first_byte_seconds_bucket{le=\""

/* TTFBs in microseconds: both sides of bucket bounds, 0, and past the last finite bound. */
static const uint64_t ttfbs[] = {
	0,        1,         62, 63, 64, 100, 1000, 1023, 1024, 4095, 4096, 1000000, (1u << 26) - 1,
	1u << 26, 1ull << 40
};

static void test_escaping(void)
{
	GString *s = g_string_new(NULL);
	cfs_metrics_append_label_value(s, "a\\b\"c\nd");
	g_assert_cmpstr(s->str, ==, "a\\\\b\\\"c\\nd");
	g_string_truncate(s, 0);
	cfs_metrics_append_help(s, "a\\b\"c\nd");
	g_assert_cmpstr(s->str, ==, "a\\\\b\"c\\nd");
	g_string_truncate(s, 0);
	cfs_metrics_append_name(s, "9a-b.c:d_0");
	g_assert_cmpstr(s->str, ==, "_a_b_c:d_0");
	g_string_truncate(s, 0);
	cfs_metrics_append_name(s, "");
	g_assert_cmpstr(s->str, ==, "_");
	g_string_free(s, TRUE);
}

/* TTFBs recorded at most le_usec (G_MAXUINT64 for +Inf). */
static uint64_t count_at_most(uint64_t le_usec)
{
	uint64_t n = 0;
	for (guint i = 0; i < G_N_ELEMENTS(ttfbs); i++)
		n += ttfbs[i] <= le_usec;
	return n;
}

/* Check one bucket line; returns its count. */
static uint64_t check_bucket(const char *line)
{
	const char *le = line + strlen(BUCKET);
	const char *end = strchr(le, '"');
	g_assert_nonnull(end);
	uint64_t le_usec = G_MAXUINT64;
	if (strncmp(le, "+Inf\"", 5) != 0)
		le_usec = (uint64_t)(g_ascii_strtod(le, NULL) * 1e6 + 0.5);
	uint64_t count = g_ascii_strtoull(end + 2, NULL, 10);
	g_assert_cmpuint(count, ==, count_at_most(le_usec));
	return count;
}

static void test_histogram(void)
{
	uint64_t sum = 0;
	for (guint i = 0; i < G_N_ELEMENTS(ttfbs); i++) {
		cfs_stats_ttfb(ttfbs[i]);
		sum += ttfbs[i];
	}
	uint64_t len;
	char *text = cfs_metrics_render(&len);
	g_assert_cmpuint(len, ==, strlen(text));
	char **lines = g_strsplit(text, "\n", -1);
	uint64_t last = 0;
	guint buckets = 0;
	for (char **l = lines; *l; l++) {
		if (!g_str_has_prefix(*l, BUCKET))
			continue;
		uint64_t count = check_bucket(*l);
		g_assert_cmpuint(count, >=, last);
		last = count;
		buckets++;
	}
	g_assert_cmpuint(buckets, >, 2);
	g_assert_cmpuint(last, ==, G_N_ELEMENTS(ttfbs));
	char *want_count = g_strdup_printf("\nchunkfs_time_to_first_byte_seconds_count %u\n",
					   (unsigned)G_N_ELEMENTS(ttfbs));
	char *want_sum = g_strdup_printf(
		"\nchunkfs_time_to_first_byte_seconds_sum %" G_GUINT64_FORMAT
		".%06" G_GUINT64_FORMAT "\n",
		sum / 1000000, sum % 1000000);
	g_assert_nonnull(strstr(text, want_count));
	g_assert_nonnull(strstr(text, want_sum));
	g_assert_nonnull(strstr(text, "\n# TYPE chunkfs_time_to_first_byte_seconds histogram\n"));
	g_free(want_sum);
	g_free(want_count);
	g_strfreev(lines);
	g_free(text);
}

/* The snapshot's below[k] counts exactly the TTFBs under 2^k us, for every k. */
static void test_snapshot(void)
{
	struct cfs_ttfb_snapshot s;
	cfs_stats_ttfb_snapshot(&s);
	for (unsigned k = 0; k < CFS_TTFB_OCTAVES; k++)
		g_assert_cmpuint(s.below[k], ==, count_at_most((UINT64_C(1) << k) - 1));
	g_assert_cmpuint(s.count, ==, G_N_ELEMENTS(ttfbs));
}

/* A quantity kept per tier shows as one series per tier label. */
static void test_tiers(void)
{
	cfs_stats_add(CFS_MEM_HITS, 5);
	cfs_stats_add(CFS_DISK_HITS, 7);
	cfs_stats_gauge_set(CFS_DISK_CAP, 1 << 20);
	uint64_t len;
	char *text = cfs_metrics_render(&len);
	g_assert_nonnull(strstr(text, "\nchunkfs_cache_hits_total{tier=\"memory\"} 5\n"));
	g_assert_nonnull(strstr(text, "\nchunkfs_cache_hits_total{tier=\"disk\"} 7\n"));
	g_assert_nonnull(strstr(text, "\nchunkfs_cache_capacity_bytes{tier=\"disk\"} 1048576\n"));
	g_assert_nonnull(strstr(text, "\n# TYPE chunkfs_cache_hits_total counter\n"));
	g_free(text);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/metrics/escaping", test_escaping);
	g_test_add_func("/metrics/histogram", test_histogram);
	g_test_add_func("/metrics/snapshot", test_snapshot);
	g_test_add_func("/metrics/tiers", test_tiers);
	return g_test_run();
}
