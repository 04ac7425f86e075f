/*
 * Directory listings of a remote, parsed into entries: S3's ListObjectsV2
 * response and the HTML or JSON index pages of HTTP servers. Pure functions
 * over the bytes of one response (the clock is read only to place the
 * two-digit years of RFC 850 dates): no I/O, thread-safe.
 */
#ifndef CHUNKFS_LISTING_H
#define CHUNKFS_LISTING_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CFS_SIZE_UNKNOWN UINT64_MAX

/* Deepest nesting of elements accepted in a ListObjectsV2 response (it needs 4). */
#define CFS_LISTING_MAX_DEPTH 16

struct cfs_entry {
	char *name;      /* one path segment, decoded (no '/'); not yet validated as a file name */
	bool is_dir;
	uint64_t size;   /* bytes, or CFS_SIZE_UNKNOWN when the listing does not say */
	char *etag;      /* as listed, or NULL */
	int64_t mtime_us; /* last modified, microseconds since the epoch; CFS_TIME_UNKNOWN
			     (util/times.h) when the listing does not say or says it unreadably */
};

struct cfs_listing {
	GArray *entries;     /* struct cfs_entry, in listing order */
	bool truncated;      /* S3: more keys follow */
	char *next_token;    /* S3: NextContinuationToken, or NULL */
};

/*
 * Parse one page of an S3 ListObjectsV2 response (S3 API Reference,
 * "ListObjectsV2": ListBucketResult with Contents/Key, Size, ETag,
 * LastModified, CommonPrefixes/Prefix, IsTruncated, NextContinuationToken)
 * for a request made with prefix (ending in '/', or empty) and delimiter
 * '/'. Names are the keys with the prefix removed; a common prefix becomes
 * a directory; the key equal to the prefix itself (a "folder marker") is
 * dropped.
 * Fails with G_MARKUP_ERROR on malformed XML, G_IO_ERROR_INVALID_DATA when
 * the root is not ListBucketResult, elements nest deeper than
 * CFS_LISTING_MAX_DEPTH, a key lies outside the prefix or a Size is not
 * decimal digits of at most G_MAXINT64 (no sign, no space). A LastModified
 * that is not ISO 8601 with a zone leaves the time unknown. Of a repeated
 * element (Key, ETag, LastModified, NextContinuationToken) the last
 * counts. xml may be NULL when len is 0 (an empty body, as GBytes gives
 * it): a GMarkup error.
 * Returns a listing to free with cfs_listing_free().
 */
struct cfs_listing *cfs_listing_parse_s3(const char *xml, size_t len, const char *prefix,
					 GError **error);

/*
 * Parse the index page an HTTP server shows for a directory: nginx's JSON
 * autoindex (a list of {"name", "type", "mtime", "size"}), or HTML with one
 * link per entry (nginx, Apache, Python's http.server). In HTML, only
 * relative links to a direct child count ("name" or "name/";
 * percent-decoded), and sizes and times are unknown. In JSON, an entry
 * needs a string "name"; a "type" other than the string "directory" is a
 * file, a "size" other than a non-negative integer unknown, an "mtime"
 * other than an HTTP-date (cfs_http_date_parse(), the form nginx writes)
 * unknown. Fails with G_IO_ERROR_INVALID_DATA when the text is
 * neither, or is JSON nested deeper than CFS_JSON_MAX_DEPTH (jsondepth.h).
 * text may be NULL when len is 0 (an empty body): not a listing.
 */
struct cfs_listing *cfs_listing_parse_http(const char *text, size_t len, GError **error);

/* Free listing, its entries and its continuation token; listing may be NULL. */
void cfs_listing_free(struct cfs_listing *listing);

#endif
