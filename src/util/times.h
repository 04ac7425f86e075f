/*
 * The times of remote objects: HTTP-dates (Last-Modified, nginx's JSON
 * autoindex) and ISO 8601 timestamps (S3's LastModified), as the file
 * times the mount shows. Pure functions, thread-safe.
 */
#ifndef CHUNKFS_TIMES_H
#define CHUNKFS_TIMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A time the remote did not give (as microseconds since the Unix epoch it
 * is 292,277 years before it); the mount shows its own start instead.
 */
#define CFS_TIME_UNKNOWN INT64_MIN

/*
 * Parse an HTTP-date (RFC 9110 section 5.6.7) of len bytes at text (not
 * NUL-terminated; surrounding whitespace is not part of it): IMF-fixdate
 * ("Sun, 06 Nov 1994 08:49:37 GMT") and the two obsolete forms a recipient
 * must accept, RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime
 * ("Sun Nov  6 08:49:37 1994"). Names are case-sensitive, as the grammar
 * says; the day name is not checked against the date. A two-digit RFC 850
 * year more than 50 years after now_s (seconds since the epoch) is the
 * latest year of the past century with those digits (section 5.6.7).
 * Stores seconds since the Unix epoch in *unix_s. Returns false, storing
 * nothing, for anything else: another form, a field out of range (a day
 * past its month's end, an hour above 23, a second above 60), trailing
 * bytes. text may be NULL when len is 0.
 */
bool cfs_http_date_parse(const char *text, size_t len, int64_t now_s, int64_t *unix_s);

/*
 * Parse an ISO 8601 timestamp with its time zone, as S3's ListObjectsV2
 * gives LastModified ("2009-10-12T17:50:30.000Z"; S3 API Reference,
 * "Object": LastModified), with GLib's g_date_time_new_from_iso8601().
 * Stores microseconds since the Unix epoch in *unix_us. Returns false,
 * storing nothing, when text (NUL-terminated) is not one or has no zone.
 */
bool cfs_iso8601_parse(const char *text, int64_t *unix_us);

#endif
