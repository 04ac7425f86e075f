/* HTTP-dates by the grammar of RFC 9110 section 5.6.7; ISO 8601 through GLib. */
#include "util/times.h"

#include <glib.h>
#include <string.h>

#define SECONDS_PER_DAY 86400

static const char *const days[] = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" };
static const char *const long_days[] = { "Monday", "Tuesday",  "Wednesday", "Thursday",
					 "Friday", "Saturday", "Sunday" };
static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
				      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* What is left of the text being parsed. */
struct cursor {
	const char *p;
	size_t left;
};

static bool lit(struct cursor *c, const char *s)
{
	size_t n = strlen(s);
	if (c->left < n || memcmp(c->p, s, n) != 0)
		return false;
	c->p += n;
	c->left -= n;
	return true;
}

/* Exactly n digits. */
static bool digits(struct cursor *c, unsigned n, int *v)
{
	if (c->left < n)
		return false;
	*v = 0;
	for (unsigned i = 0; i < n; i++) {
		if (!g_ascii_isdigit(c->p[i]))
			return false;
		*v = *v * 10 + (c->p[i] - '0');
	}
	c->p += n;
	c->left -= n;
	return true;
}

/* One of the n names; its index in *i. */
static bool name(struct cursor *c, const char *const *names, int n, int *i)
{
	for (*i = 0; *i < n; (*i)++)
		if (lit(c, names[*i]))
			return true;
	return false;
}

static bool day_name(struct cursor *c)
{
	int i;
	return name(c, days, G_N_ELEMENTS(days), &i);
}

/* A month name; its number (1 to 12) in *m. */
static bool month(struct cursor *c, int *m)
{
	if (!name(c, months, G_N_ELEMENTS(months), m))
		return false;
	*m += 1;
	return true;
}

/* time-of-day = hour ":" minute ":" second; the second may be a leap second (60). */
static bool time_of_day(struct cursor *c, int *secs)
{
	int h, m, s;
	if (!digits(c, 2, &h) || !lit(c, ":") || !digits(c, 2, &m) || !lit(c, ":") ||
	    !digits(c, 2, &s) || h > 23 || m > 59 || s > 60)
		return false;
	*secs = (h * 60 + m) * 60 + s;
	return true;
}

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static bool valid_date(int y, int m, int d)
{
	static const int month_days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	return m >= 1 && m <= 12 && d >= 1 && d <= month_days[m - 1] + (m == 2 && leap(y));
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant, "days_from_civil"). */
static int64_t days_from_civil(int y, int m, int d)
{
	int64_t yy = (int64_t)y - (m <= 2);
	int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
	int64_t yoe = yy - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* IMF-fixdate after its day name: ", " DD " " Mon " " YYYY " " time " GMT". */
static bool imf_fixdate(struct cursor *c, int *y, int *m, int *d, int *secs)
{
	return lit(c, ", ") && digits(c, 2, d) && lit(c, " ") && month(c, m) && lit(c, " ") &&
	       digits(c, 4, y) && lit(c, " ") && time_of_day(c, secs) && lit(c, " GMT");
}

/* asctime after its day name: " " Mon " " (DD | " " D) " " time " " YYYY. */
static bool asctime_date(struct cursor *c, int *y, int *m, int *d, int *secs)
{
	if (!lit(c, " ") || !month(c, m) || !lit(c, " "))
		return false;
	bool day = lit(c, " ") ? digits(c, 1, d) : digits(c, 2, d);
	return day && lit(c, " ") && time_of_day(c, secs) && lit(c, " ") && digits(c, 4, y);
}

/* The full year of a two-digit RFC 850 year: not more than 50 years after now. */
static int rfc850_year(int yy, int64_t now_s)
{
	GDateTime *now = g_date_time_new_from_unix_utc(now_s);
	int now_year = now ? g_date_time_get_year(now) : 1970;
	if (now)
		g_date_time_unref(now);
	int y = now_year - now_year % 100 + yy;
	if (y > now_year + 50)
		y -= 100;
	return y;
}

/* RFC 850 from its day name on: Day ", " DD "-" Mon "-" YY " " time " GMT". */
static bool rfc850_date(struct cursor *c, int64_t now_s, int *y, int *m, int *d, int *secs)
{
	int i, yy;
	if (!name(c, long_days, G_N_ELEMENTS(long_days), &i) || !lit(c, ", ") || !digits(c, 2, d) ||
	    !lit(c, "-") || !month(c, m) || !lit(c, "-") || !digits(c, 2, &yy) || !lit(c, " ") ||
	    !time_of_day(c, secs) || !lit(c, " GMT"))
		return false;
	*y = rfc850_year(yy, now_s);
	return true;
}

bool cfs_http_date_parse(const char *text, size_t len, int64_t now_s, int64_t *unix_s)
{
	int y = 0, m = 0, d = 0, secs = 0;
	const struct cursor start = { text, text ? len : 0 };
	struct cursor c = start;
	bool named = day_name(&c);
	struct cursor after_day = c;
	bool ok = named && imf_fixdate(&c, &y, &m, &d, &secs);
	if (!ok && named) {
		c = after_day;
		ok = asctime_date(&c, &y, &m, &d, &secs);
	}
	if (!ok) {
		c = start;
		ok = rfc850_date(&c, now_s, &y, &m, &d, &secs);
	}
	if (!ok || c.left != 0 || !valid_date(y, m, d))
		return false;
	*unix_s = days_from_civil(y, m, d) * SECONDS_PER_DAY + secs;
	return true;
}

bool cfs_iso8601_parse(const char *text, int64_t *unix_us)
{
	GDateTime *t = text ? g_date_time_new_from_iso8601(text, NULL) : NULL;
	if (!t)
		return false;
	*unix_us = g_date_time_to_unix(t) * G_USEC_PER_SEC + g_date_time_get_microsecond(t);
	g_date_time_unref(t);
	return true;
}
