/*
 * libFuzzer target: HTTP-dates (util/times.c, cfs_http_date_parse()), as
 * Last-Modified and nginx's JSON autoindex give them. Input: the date's
 * bytes, in a buffer of exactly their length (no NUL after them).
 * - An accepted date lies in years 0000 to 9999 (the grammar's 4DIGIT).
 * - An accepted IMF-fixdate (RFC 9110 section 5.6.7) is the text its
 *   result formats back to, after the day name (which the parser does not
 *   check against the date), unless its second is a leap second (60).
 */
#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/times.h"

#define NOW 1700000000
#define YEAR_0 G_GINT64_CONSTANT(-62167219200)     /* 0000-01-01T00:00:00Z */
#define YEAR_10000 G_GINT64_CONSTANT(253402300800) /* 10000-01-01T00:00:00Z */

static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
				      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* IMF-fixdate after "Ddd, " for t, from GLib's calendar. */
static void format_imf(int64_t t, char *buf, size_t size)
{
	GDateTime *d = g_date_time_new_from_unix_utc(t);
	if (!d)
		abort();
	snprintf(buf, size, "%02d %s %04d %02d:%02d:%02d GMT", g_date_time_get_day_of_month(d),
		 months[g_date_time_get_month(d) - 1], g_date_time_get_year(d),
		 g_date_time_get_hour(d), g_date_time_get_minute(d), g_date_time_get_second(d));
	g_date_time_unref(d);
}

static bool imf_shaped(const uint8_t *data, size_t size)
{
	return size == 29 && data[3] == ',' && memcmp(data + 25, " GMT", 4) == 0 &&
	       memcmp(data + 23, "60", 2) != 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = g_malloc(MAX(size, 1));
	memcpy(text, data, size);
	int64_t t;
	if (cfs_http_date_parse(size ? text : NULL, size, NOW, &t)) {
		if (t < YEAR_0 || t >= YEAR_10000)
			abort();
		char back[64];
		if (t >= 0 && imf_shaped(data, size)) { /* GLib's calendar starts at year 1 */
			format_imf(t, back, sizeof(back));
			if (memcmp(data + 5, back, 24) != 0)
				abort();
		}
	}
	g_free(text);
	return 0;
}
