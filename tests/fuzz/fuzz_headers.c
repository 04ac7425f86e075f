/*
 * libFuzzer target: the HTTP header values chunkfs parses itself. Input:
 * lines; the first is a Content-Range value, the next two are ETag values
 * (an empty one is absent), the fourth a Retry-After value, each stripped of surrounding whitespace as the
 * header callbacks store them.
 * - cfs_content_range_parse() must accept exactly RFC 9110 section 14.4's
 *   "bytes first-last/complete" (unit case-insensitive, numbers all digits
 *   and within uint64) with first <= last < complete, and return its
 *   numbers: checked against a regular expression of that grammar.
 * - cfs_object_check_response() must take the first ETag and then accept
 *   the second exactly when their opaque tags match (RFC 9110 section
 *   8.8.3.2, weak comparison), and refuse any other size.
 * - cfs_retry_after_parse() must read delay-seconds (digits only) exactly,
 *   saturating at G_MAXINT32, and anything else as a date (0 or more
 *   seconds) or nothing (-1) (RFC 9110 section 10.2.3).
 */
#include <errno.h>
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tree/object.h"
#include "cache/source.h"
#include "headers_i.h"

/* delay-seconds as the grammar says: digits only, read saturating at G_MAXINT32. */
static gint64 delay_seconds(const char *value)
{
	if (!*value)
		return -1;
	gint64 v = 0;
	for (const char *c = value; *c; c++) {
		if (!g_ascii_isdigit(*c))
			return -1;
		v = MIN(v * 10 + (*c - '0'), (gint64)G_MAXINT32);
	}
	return v;
}

/* Retry-After: delay-seconds exactly; anything else a date (0 or more seconds) or -1. */
static void check_retry_after(const char *value)
{
	gint64 got = cfs_retry_after_parse(value, 1700000000);
	gint64 want = delay_seconds(value);
	if (want >= 0 ? got != want : got < -1)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static GRegex *grammar;

static bool number(GMatchInfo *m, int group, uint64_t *v)
{
	char *text = g_match_info_fetch(m, group);
	guint64 n;
	bool ok = g_ascii_string_to_unsigned(text, 10, 0, G_MAXUINT64, &n, NULL);
	g_free(text);
	*v = n;
	return ok;
}

/* What RFC 9110 says of value: whether it is a valid range of a 206, and its numbers. */
static bool rfc_content_range(const char *value, uint64_t v[3])
{
	GMatchInfo *m;
	bool ok = g_regex_match(grammar, value, 0, &m) && number(m, 1, &v[0]) &&
		  number(m, 2, &v[1]) && number(m, 3, &v[2]) && v[0] <= v[1] && v[1] < v[2];
	g_match_info_free(m);
	return ok;
}

static void check_content_range(const char *value)
{
	uint64_t want[3], got[3];
	bool ok = cfs_content_range_parse(value, &got[0], &got[1], &got[2]);
	if (ok != rfc_content_range(value, want) || (ok && memcmp(got, want, sizeof(got)) != 0))
		abort();
}

static const char *opaque(const char *etag)
{
	return g_str_has_prefix(etag, "W/") ? etag + 2 : etag;
}

static void check_etags(const char *first, const char *second)
{
	struct cfs_object *obj = cfs_object_new(0, "fuzz.bin", "http://127.0.0.1/fuzz.bin", 42);
	struct cfs_response_info a = { 42, *first ? first : NULL };
	struct cfs_response_info b = { 42, *second ? second : NULL };
	struct cfs_response_info other_size = { 43, a.etag };
	if (cfs_object_check_response(obj, &other_size) != -EIO ||
	    cfs_object_check_response(obj, &a) != 0)
		abort();
	bool same = !a.etag || !b.etag || strcmp(opaque(a.etag), opaque(b.etag)) == 0;
	if (cfs_object_check_response(obj, &b) != (same ? 0 : -EIO))
		abort();
	cfs_object_unref(obj);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!grammar)
		grammar = g_regex_new("^bytes ([0-9]+)-([0-9]+)/([0-9]+)$",
				      G_REGEX_CASELESS | G_REGEX_RAW | G_REGEX_DOLLAR_ENDONLY, 0,
				      NULL);
	char *text = g_strndup((const char *)data, size);
	char **lines = g_strsplit(text, "\n", 4);
	const char *values[4] = { "", "", "", "" };
	for (guint i = 0; lines[i]; i++)
		values[i] = g_strstrip(lines[i]);
	check_content_range(values[0]);
	check_etags(values[1], values[2]);
	check_retry_after(values[3]);
	g_strfreev(lines);
	g_free(text);
	return 0;
}
