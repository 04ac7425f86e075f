/*
 * Private to the fetch module: the values of the HTTP response headers that
 * chunkfs parses itself rather than libcurl (Content-Range, Retry-After), as
 * the fetcher's header callback (fetch.c) stores them.
 */
#ifndef CHUNKFS_HEADERS_I_H
#define CHUNKFS_HEADERS_I_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/*
 * Parse a Content-Range header value of a 206 response (RFC 9110 section
 * 14.4: "bytes" SP first-pos "-" last-pos "/" complete-length, each number
 * 1*DIGIT; the range unit compared case-insensitively, section 14.1), as
 * the header callback stores it: a NUL-terminated string with surrounding
 * whitespace stripped. Stores the first and last byte positions (inclusive)
 * and the complete length in bytes. False for anything else: a missing
 * value (NULL), other characters, signs or spaces, "*" for an unknown
 * length, a number above UINT64_MAX, first > last or last >= complete.
 * Pure, thread-safe.
 */
bool cfs_content_range_parse(const char *text, uint64_t *first, uint64_t *last, uint64_t *total);

/*
 * The seconds a Retry-After header value asks to wait (RFC 9110 section
 * 10.2.3), as the header callback stores it (NUL-terminated, whitespace
 * stripped): delay-seconds (1*DIGIT, saturated at G_MAXINT32), or an
 * HTTP-date (parsed by curl_getdate(), which reads the three formats of
 * RFC 9110 section 5.6.7) turned into seconds after now, 0 for a date in
 * the past. -1 when the value is neither. Pure, thread-safe.
 */
gint64 cfs_retry_after_parse(const char *value, time_t now);

#endif
