/*
 * The fetcher: fetch_threads threads, each owning a libcurl multi handle
 * and its share of max_connections, running HTTP Range GETs (RFC 9110
 * section 14) for the memory tier. A request is queued, from any thread, on
 * the thread with the fewest requests queued or running, and picked up
 * through curl_multi_wakeup(); each thread runs demand before readahead,
 * over reused keep-alive connections (and reused easy handles, whose
 * receive buffers stay faulted in). Several threads let the receiving and
 * copying of several responses use several cores.
 *
 * Each request delivers the bytes [start, end) of one object in order,
 * resuming after the last delivered byte when an attempt fails with a
 * transient error (connection reset, no byte for the timeout, short body,
 * 5xx, 429, 408), up to the configured number of retries with exponential
 * backoff (100 ms, doubling, at most 5 s), or after the Retry-After of a 503
 * or 429 (RFC 9110 section 10.2.3) when that is longer; a Retry-After
 * longer than the timeout fails the request with -EIO at once. A retry
 * starts when it is due (the fetcher's poll sleeps until then). Error
 * bodies of up to 64 KiB are drained so that the connection stays usable;
 * a longer one ends the transfer and its connection. Every
 * response is checked before its body is used: status 206 with exactly the
 * Content-Range asked for (RFC 9110 section 14.4), or 200 with the whole
 * object when the range asked for is the whole object.
 *
 * Redirects (301, 302, 303, 307, 308) are followed here, not by libcurl,
 * by every request, GETs, HEADs and the blocking ones alike, as
 * fetch/redirect.h allows: at most 5 hops, to http or https only,
 * never from https to http, and without the remote's credentials once a
 * hop leaves the origin of the request's URL. A refused redirect fails
 * the request with -EIO (the blocking ones with a GError). A retry starts
 * again at the request's own URL.
 *
 * Only this module includes curl.h.
 */
#ifndef CHUNKFS_FETCH_H
#define CHUNKFS_FETCH_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/source.h"

struct cfs_creds_request;
struct cfs_options;
struct cfs_remote;
struct cfs_fetcher;

/*
 * One request of the S3 credential chain to IMDS, a container endpoint or
 * STS, as remote/creds.h's cfs_creds_http_fn describes it (main.c hands it
 * to cfs_creds_set_http()): its own timeouts (req's, in ms), no redirect,
 * the body at most CFS_CREDS_ANSWER_MAX bytes into body, the status into
 * *status. False with *error set (the method and the URL without its query
 * and user info, never a header or the body) when no whole answer came.
 * Thread-safe.
 */
bool cfs_fetch_creds_http(const struct cfs_creds_request *req, GByteArray *body, long *status,
			  GError **error);

/*
 * Create the fetcher and start its threads (opts->fetch_threads, at most
 * one per connection). opts is read during the call (connections,
 * threads, timeouts, retries) and not kept; remote (headers, TLS
 * trust, signing) must outlive the fetcher. Returns NULL with *error set
 * when libcurl cannot be initialised.
 */
struct cfs_fetcher *cfs_fetcher_new(const struct cfs_options *opts,
				    const struct cfs_remote *remote, GError **error);

/*
 * The longest a read may wait for its bytes under opts, in ms: (retries +
 * 1) attempts of at most connect timeout + timeout + 1 s each (a stall is
 * noticed within a second of --timeout), the waits between them (the back-off, or a
 * Retry-After, which is at most --timeout), and a second for the queue.
 * The memory tier fails a read parked longer with -ETIMEDOUT
 * (cfs_cache_config.read_timeout_ms), so that a server that trickles
 * bytes holds no reader longer than one that stalls (docs/hostile.md).
 */
unsigned cfs_fetch_read_bound_ms(const struct cfs_options *opts);

/*
 * The deadline of a listing that starts now, as a g_get_monotonic_time()
 * in microseconds: every page of it and the directory's index.json end
 * within cfs_fetch_read_bound_ms(opts) in all, so that a lookup waiting for
 * a listing is held no longer than a read may be (docs/hostile.md).
 * Thread-safe.
 */
int64_t cfs_fetch_listing_deadline(const struct cfs_options *opts);

/*
 * Stop the threads: every queued or running request ends with -ECANCELED
 * (its on_done is called), then the handles are freed. Call once, from a
 * thread that is not a fetcher thread.
 */
void cfs_fetcher_free(struct cfs_fetcher *f);

/*
 * Queue a GET of bytes [start, end) of url (end > start). name (the
 * object's path, for log lines) and url are copied. The ops and ctx must
 * stay valid until on_done has returned. Thread-safe; never blocks on the
 * network.
 */
void cfs_fetcher_submit(struct cfs_fetcher *f, const char *name, const char *url, uint64_t start,
			uint64_t end, enum cfs_fetch_priority prio, const struct cfs_fetch_ops *ops,
			void *ctx);

/*
 * Queue a HEAD of url: on_response gets the object's size (Content-Length)
 * and ETag, on_data is not called, on_done ends it as for a GET (retries
 * included). Used to learn an object's ETag without its bytes.
 * Thread-safe; never blocks on the network.
 */
void cfs_fetcher_submit_head(struct cfs_fetcher *f, const char *name, const char *url,
			     const struct cfs_fetch_ops *ops, void *ctx);

/*
 * The fetcher as the memory tier's source (source.h): its submit is
 * cfs_fetcher_submit() and its submit_head cfs_fetcher_submit_head(), with
 * the object's name and URL. Valid as long as f.
 */
struct cfs_source cfs_fetcher_source(struct cfs_fetcher *f);

/*
 * Blocking GET of a whole small object in the calling thread, outside the
 * fetcher thread, for use before the mount exists (the dataset index).
 * Stores at most max_bytes of body in *body (a GBytes the caller unrefs) and
 * the ETag, if any, in *etag (g_malloc'd, may be NULL). The request ends
 * within (opts->retries + 1) x opts->timeout_s seconds, body included, and
 * by deadline_us (a g_get_monotonic_time(), 0 for none) when that comes
 * first, and sooner when no byte comes for opts->timeout_s; it is not
 * retried. Fails
 * with a G_IO_ERROR, its code that of cfs_http_errno()'s errno
 * (g_io_error_from_errno()): G_IO_ERROR_NOT_FOUND on 404 and 410,
 * G_IO_ERROR_PERMISSION_DENIED on 401 and 403, G_IO_ERROR_TIMED_OUT past
 * either time, G_IO_ERROR_HOST_UNREACHABLE when the server cannot be
 * reached, G_IO_ERROR_MESSAGE_TOO_LARGE past max_bytes, G_IO_ERROR_FAILED
 * for other HTTP errors. The message names
 * the URL with its secrets redacted, and the error code and message of an
 * S3 error body (<Error><Code>...</Code><Message>...</Message>). Requests
 * carry remote's headers, TLS trust and signature. Thread-safe.
 */
bool cfs_fetch_small(const struct cfs_options *opts, const struct cfs_remote *remote,
		     const char *url, size_t max_bytes, int64_t deadline_us, GBytes **body,
		     char **etag, GError **error);

/*
 * Blocking HEAD of url in the calling thread: stores the object's size in
 * bytes (Content-Length) in *size, and its Last-Modified (RFC 9110
 * section 8.8.2, an HTTP-date: cfs_http_date_parse()) in microseconds
 * since the epoch in *mtime_us, CFS_TIME_UNKNOWN when the final response
 * has none or an unreadable one. Deadline (its own only) and errors as
 * cfs_fetch_small(), plus G_IO_ERROR_INVALID_DATA when the server sends
 * no Content-Length. Thread-safe.
 */
bool cfs_fetch_head(const struct cfs_options *opts, const struct cfs_remote *remote,
		    const char *url, uint64_t *size, int64_t *mtime_us, GError **error);

/*
 * List the directory dir of the remote (a path below the dataset root, ""
 * for the root), blocking in the calling thread: for S3, ListObjectsV2 with
 * delimiter '/' (query parameters in canonical order, as SigV4 signs
 * them), following continuation tokens; for HTTP, the server's index page
 * of the directory. Each page is a request of cfs_fetch_small() (its
 * deadline, at most 64 MiB), and all of them end by deadline_us
 * (cfs_fetch_listing_deadline()), else the listing fails with
 * G_IO_ERROR_TIMED_OUT. Stores a new listing in *out (free with
 * cfs_listing_free()). Errors as cfs_fetch_small(), plus
 * G_IO_ERROR_INVALID_DATA for a page that is not a listing, a truncated
 * page without a continuation token or with one already followed, and
 * G_IO_ERROR_MESSAGE_TOO_LARGE for more than opts->max_dir_entries entries
 * or more than max_dir_entries / 100 + 10 pages (S3 pages hold up to 1000
 * keys). Thread-safe.
 */
struct cfs_listing;
bool cfs_fetch_listing(const struct cfs_options *opts, const struct cfs_remote *remote,
		       const char *dir, int64_t deadline_us, struct cfs_listing **out,
		       GError **error);

/*
 * The one map from a request that failed for good to the errno a reader
 * gets, used by the fetcher, the blocking requests and the file system
 * alike. Returns -ETIMEDOUT when timed_out (no byte within the timeout,
 * or the request's deadline passed), else by the last HTTP status
 * (RFC 9110 section 15): -ENOENT for 404 Not Found and 410 Gone
 * (15.5.5, 15.5.11: the object is not there), -EACCES for 401
 * Unauthorized and 403 Forbidden (15.5.2, 15.5.4: the server refuses this
 * client), -EIO for any other status, and for 0 (no response). Pure;
 * thread-safe.
 */
int cfs_http_errno(long status, bool timed_out);

/*
 * The negative errno of err, a GError of a blocking request
 * (cfs_fetch_small(), cfs_fetch_head(), cfs_fetch_listing()): the inverse
 * of the G_IO_ERROR codes they set from cfs_http_errno(), so that a
 * listing refused with 403 fails with -EACCES like a read of an object
 * refused with 403. -ENOENT for G_IO_ERROR_NOT_FOUND, -EACCES for
 * G_IO_ERROR_PERMISSION_DENIED, -ETIMEDOUT for G_IO_ERROR_TIMED_OUT, -EIO
 * for every other error. Pure; thread-safe.
 */
int cfs_fetch_error_errno(const GError *err);

/* Global libcurl initialisation; call once from main before any thread exists. */
void cfs_fetch_global_init(void);
void cfs_fetch_global_cleanup(void);

#endif
