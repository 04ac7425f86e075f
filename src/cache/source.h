/*
 * A source: where the memory tier (cache/mem.h) and the zstd streams
 * (zstream.h) get the bytes of remote objects. They ask it for byte ranges
 * of an object and for an object's validators (its size and ETag without
 * its bytes), and it calls back as the response arrives. Over HTTP, a
 * range is a Range GET (RFC 9110 section 14) and the validators a HEAD
 * (RFC 9110 section 9.3.2).
 *
 * In the daemon the source is the fetcher (fetch.h, cfs_fetcher_source());
 * the unit tests of the memory tier script one (tests/unit_cache.c). The
 * memory tier never withdraws a request once submitted: a read that is
 * interrupted leaves its bytes to land for the next reader, and the owner
 * of the source ends what still runs at shutdown (each request's on_done
 * with -ECANCELED), after cfs_cache_close().
 */
#ifndef CHUNKFS_SOURCE_H
#define CHUNKFS_SOURCE_H

#include <stddef.h>
#include <stdint.h>

struct cfs_object;

/* What a response said about the object, handed to on_response. */
struct cfs_response_info {
	uint64_t total_size;  /* object size from Content-Range (or Content-Length of a 200) */
	const char *etag;     /* ETag header value as sent, or NULL when absent */
};

/*
 * What a request calls back. The callbacks of one request all run in one
 * thread of the source, in order; those of different requests may run at
 * the same time in different threads. None is called from inside the
 * submit that made the request: callers submit with their own lock held,
 * the lock the callbacks take.
 */
struct cfs_fetch_ops {
	/*
	 * Called for every attempt's response, before any of its body is
	 * delivered. Return 0 to accept, or a negative errno to
	 * fail the request at once without retrying (e.g. -EIO for a changed
	 * ETag or size). May be NULL.
	 */
	int (*on_response)(void *ctx, const struct cfs_response_info *info);
	/*
	 * Called for each piece of body, in order: the bytes [off, off + len)
	 * of the object. buf is valid during the call only.
	 */
	void (*on_data)(void *ctx, uint64_t off, const void *buf, size_t len);
	/*
	 * Called once when the request ends: err is 0 when all of
	 * [start, end) was delivered, else a negative errno: that of
	 * cfs_http_errno() (fetch.h) for an HTTP error (-ENOENT on 404 and
	 * 410, -EACCES on 401 and 403, -EIO for another), -EIO for a bad
	 * response or when the retries ran out (-ETIMEDOUT after stalls),
	 * -ECANCELED when the source is shutting down.
	 */
	void (*on_done)(void *ctx, int err);
};

enum cfs_fetch_priority {
	CFS_FETCH_DEMAND,    /* a reader is waiting for these bytes */
	CFS_FETCH_READAHEAD, /* speculative: runs only when no demand request waits */
};

/* The requests a source takes. Both are thread-safe and never block on the network. */
struct cfs_source_ops {
	/*
	 * Queue a request for bytes [start, end) of obj (start < end <=
	 * obj->size). ops and ctx must stay valid until on_done has returned;
	 * obj until then too.
	 */
	void (*submit)(void *src, const struct cfs_object *obj, uint64_t start, uint64_t end,
		       enum cfs_fetch_priority prio, const struct cfs_fetch_ops *ops, void *ctx);
	/*
	 * Queue a request for obj's validators: on_response gets its size and
	 * ETag, on_data is not called, on_done ends it as for a range.
	 */
	void (*submit_head)(void *src, const struct cfs_object *obj,
			    const struct cfs_fetch_ops *ops, void *ctx);
};

/* A source: its requests and its state, which the caller passes to them. */
struct cfs_source {
	const struct cfs_source_ops *ops;
	void *src;
};

#endif
