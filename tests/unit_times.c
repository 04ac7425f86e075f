/*
 * Unit tests of the times of remote objects (util/times.h): HTTP-dates in
 * the three forms of RFC 9110 section 5.6.7, what is not one, and S3's
 * ISO 8601 LastModified; run by `meson test`.
 */
#include <glib.h>
#include <string.h>

#include "util/times.h"

/* 2026-12-07 00:00:00 UTC: "now" for two-digit RFC 850 years. */
#define NOW 1796601600

static bool parse(const char *text, int64_t *s)
{
	return cfs_http_date_parse(text, strlen(text), NOW, s);
}

/* The example of RFC 9110 section 5.6.7 in its three forms, and other dates of each. */
static void test_forms(void)
{
	static const struct {
		const char *text;
		int64_t unix_s;
	} cases[] = {
		{ "Sun, 06 Nov 1994 08:49:37 GMT", 784111777 },
		{ "Sunday, 06-Nov-94 08:49:37 GMT", 784111777 },
		{ "Sun Nov  6 08:49:37 1994", 784111777 },
		{ "Sun Nov 06 08:49:37 1994", 784111777 },
		{ "Thu, 01 Jan 1970 00:00:00 GMT", 0 },
		{ "Wed, 31 Dec 1969 23:59:59 GMT", -1 },
		{ "Tue, 29 Feb 2028 12:00:00 GMT", 1835438400 },
		{ "Fri, 31 Dec 9999 23:59:59 GMT", 253402300799 },
		{ "Mon, 07 Dec 2026 06:20:50 GMT", 1796624450 },
		{ "Sat, 31 Dec 2016 23:59:60 GMT", 1483228800 }, /* a leap second */
		{ "Monday, 07-Dec-26 06:20:50 GMT", 1796624450 },
		{ "Mon Dec  7 06:20:50 2026", 1796624450 },
	};
	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		int64_t s = 42;
		g_assert_true(parse(cases[i].text, &s));
		g_assert_cmpint(s, ==, cases[i].unix_s);
	}
}

/* A two-digit year more than 50 years ahead is the past century's (RFC 9110 section 5.6.7). */
static void test_rfc850_years(void)
{
	int64_t s;
	g_assert_true(parse("Wednesday, 01-Jan-76 00:00:00 GMT", &s)); /* 2076: 50 years ahead */
	g_assert_cmpint(s, ==, 3345062400);
	g_assert_true(parse("Saturday, 01-Jan-77 00:00:00 GMT", &s)); /* 2077 is past it: 1977 */
	g_assert_cmpint(s, ==, 220924800);
	g_assert_true(parse("Saturday, 01-Jan-00 00:00:00 GMT", &s));
	g_assert_cmpint(s, ==, 946684800);
}

static void test_malformed(void)
{
	static const char *const bad[] = {
		"",
		"Sun, 06 Nov 1994 08:49:37",      /* no zone */
		"Sun, 06 Nov 1994 08:49:37 UTC",  /* not GMT */
		"Sun, 06 Nov 1994 08:49:37 GMT ", /* trailing bytes */
		" Sun, 06 Nov 1994 08:49:37 GMT", /* leading space */
		"sun, 06 Nov 1994 08:49:37 GMT",  /* names are case-sensitive */
		"Sun, 06 nov 1994 08:49:37 GMT",
		"Sun, 6 Nov 1994 08:49:37 GMT",  /* one-digit day */
		"Sun, 06 Nov 94 08:49:37 GMT",   /* two-digit year in IMF-fixdate */
		"Sun, 31 Nov 1994 08:49:37 GMT", /* past the month's end */
		"Tue, 29 Feb 2100 08:49:37 GMT", /* 2100 is no leap year */
		"Sun, 00 Nov 1994 08:49:37 GMT",
		"Sun, 06 Nov 1994 24:00:00 GMT",
		"Sun, 06 Nov 1994 08:60:00 GMT",
		"Sun, 06 Nov 1994 08:49:61 GMT",
		"Sun, 06 Nov 1994 8:49:37 GMT",
		"Sun, 06 Nov 1994 08:49 GMT",
		"Xyz, 06 Nov 1994 08:49:37 GMT", /* no such day */
		"Sun, 06 Nov +994 08:49:37 GMT",
		"Sunday, 06-Nov-1994 08:49:37 GMT", /* four-digit year in RFC 850 */
		"Sun, 06-Nov-94 08:49:37 GMT",      /* RFC 850 wants the long day name */
		"Sun Nov 6 08:49:37 1994",          /* asctime pads the day with a space */
		"Sun Nov  6 08:49:37 94",
		"2026-12-07T06:20:50Z", /* ISO 8601 is not an HTTP-date */
		"1796624450",
	};
	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		int64_t s = 42;
		if (parse(bad[i], &s))
			g_error("accepted '%s'", bad[i]);
		g_assert_cmpint(s, ==, 42);
	}
	int64_t s = 42;
	g_assert_false(cfs_http_date_parse(NULL, 0, NOW, &s));
	/* len bounds the text: a valid date cut short is not one */
	g_assert_false(cfs_http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT", 28, NOW, &s));
	g_assert_cmpint(s, ==, 42);
}

static void test_iso8601(void)
{
	int64_t us = 42;
	g_assert_true(cfs_iso8601_parse("2009-10-12T17:50:30.000Z", &us));
	g_assert_cmpint(us, ==, G_GINT64_CONSTANT(1255369830) * G_USEC_PER_SEC);
	g_assert_true(cfs_iso8601_parse("2026-12-07T06:20:50.123Z", &us));
	g_assert_cmpint(us, ==, G_GINT64_CONSTANT(1796624450123000));
	g_assert_true(cfs_iso8601_parse("2026-12-07T07:20:50+01:00", &us));
	g_assert_cmpint(us, ==, G_GINT64_CONSTANT(1796624450) * G_USEC_PER_SEC);
	us = 42;
	g_assert_false(cfs_iso8601_parse("2026-12-07T06:20:50", &us)); /* no zone */
	g_assert_false(cfs_iso8601_parse("Mon, 07 Dec 2026 06:20:50 GMT", &us));
	g_assert_false(cfs_iso8601_parse("", &us));
	g_assert_false(cfs_iso8601_parse(NULL, &us));
	g_assert_cmpint(us, ==, 42);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/times/http-date-forms", test_forms);
	g_test_add_func("/times/rfc850-years", test_rfc850_years);
	g_test_add_func("/times/http-date-malformed", test_malformed);
	g_test_add_func("/times/iso8601", test_iso8601);
	return g_test_run();
}
