/* Private to the fetch module: the options every libcurl easy handle gets. */
#ifndef CHUNKFS_FETCH_I_H
#define CHUNKFS_FETCH_I_H

#include <curl/curl.h>
#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct cfs_options;
struct cfs_remote;

/*
 * The remote's extra headers as a libcurl list (NULL when there are none),
 * to pass to cfs_easy_setup(); free with curl_slist_free_all() once no
 * transfer uses it.
 */
struct curl_slist *cfs_easy_headers(const struct cfs_remote *remote);

/*
 * Set the options common to every request on a fresh easy handle: URL,
 * connect timeout, stall timeout (no byte for opts->timeout_s seconds),
 * no signals, TCP keep-alive, user agent, http and https only (libcurl
 * 7.85's CURLOPT_PROTOCOLS_STR), no redirect followed by libcurl (callers
 * follow them, see chunkfs/redirect.h), TLS trust and the remote's
 * credentials (cfs_easy_send_credentials()).
 */
void cfs_easy_setup(CURL *easy, const struct cfs_options *opts, const struct cfs_remote *remote,
		    struct curl_slist *headers, const char *url);

/*
 * Make easy send the remote's credentials: its headers (the list, from
 * cfs_easy_headers(), must outlive the transfer; it holds --header and
 * S3's x-amz-security-token), its SigV4 signature (CURLOPT_AWS_SIGV4 with
 * the key pair) or else ~/.netrc when the remote found one.
 */
void cfs_easy_send_credentials(CURL *easy, const struct cfs_remote *remote,
			       struct curl_slist *headers);

/*
 * Make easy send none of them, for a redirect to another origin: no extra
 * header, no SigV4 signature nor user name or password, no ~/.netrc (a
 * user name and password in the URL itself are still used, as libcurl
 * does). Undone by cfs_easy_send_credentials().
 */
void cfs_easy_drop_credentials(CURL *easy);

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
bool cfs_content_range_parse(const char *text, uint64_t *first, uint64_t *last,
			     uint64_t *total);

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
