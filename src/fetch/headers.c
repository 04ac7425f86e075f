/* Content-Range and Retry-After values parsed (RFC 9110 sections 14.4 and 10.2.3). */
#include "headers_i.h"

#include <curl/curl.h>
#include <string.h>

gint64 cfs_retry_after_parse(const char *value, time_t now)
{
	if (*value && value[strspn(value, "0123456789")] == '\0')
		return (gint64)MIN(g_ascii_strtoull(value, NULL, 10), G_MAXINT32); /* saturates */
	time_t when = curl_getdate(value, NULL);
	return when == -1 ? -1 : MAX(0, (gint64)when - (gint64)now);
}

/* 1*DIGIT at *p, at most UINT64_MAX; *p moves past it. */
static bool parse_digits(const char **p, uint64_t *v)
{
	const char *s = *p;
	uint64_t n = 0;
	if (!g_ascii_isdigit(*s))
		return false;
	for (; g_ascii_isdigit(*s); s++) {
		unsigned d = (unsigned)(*s - '0');
		if (n > (UINT64_MAX - d) / 10)
			return false;
		n = n * 10 + d;
	}
	*p = s;
	*v = n;
	return true;
}

bool cfs_content_range_parse(const char *text, uint64_t *first, uint64_t *last, uint64_t *total)
{
	if (!text || g_ascii_strncasecmp(text, "bytes ", 6) != 0)
		return false;
	const char *p = text + 6;
	return parse_digits(&p, first) && *p++ == '-' && parse_digits(&p, last) && *p++ == '/' &&
	       parse_digits(&p, total) && *p == '\0' && *first <= *last && *last < *total;
}
