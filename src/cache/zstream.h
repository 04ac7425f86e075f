/*
 * Decompressed objects: the bytes of a zstd-compressed remote object (one
 * or more frames or skippable frames of RFC 8878; libzstd's pre-1.0 frame
 * formats are bad data), produced as its compressed bytes arrive. A
 * stream fetches the compressed object in pieces from a source (source.h)
 * (Range GETs that start small, so the first bytes come out early, and
 * double up to 8 MiB) and decompresses each piece in a source's thread as
 * it lands, handing every decompressed piece to a sink (the memory tier).
 *
 * zstd cannot seek, so a stream only moves forward: it produces
 * [pos, target) in order and stops fetching once pos passes target. Bytes
 * wanted behind every stream of an object (evicted since) start a new
 * stream from the object's start. Idle streams are kept for reuse (at most
 * CFS_ZSTD_IDLE_MAX idle ones, the least recently used idle one is dropped
 * first); their decompression window is reserved from the sink's memory
 * cap, and a frame whose window exceeds a quarter of the cap is refused.
 *
 * Thread-safe. One mutex guards the streams' positions and targets; the
 * sink is never called with it held, and cfs_zstd_want() may be called
 * with the sink's own lock held.
 */
#ifndef CHUNKFS_ZSTREAM_H
#define CHUNKFS_ZSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/source.h"

#define CFS_ZSTD_IDLE_MAX 16

struct cfs_object;
struct cfs_zstd;

/*
 * Where decompressed bytes go. Every callback runs in a source's thread;
 * one stream's callbacks never run at once (it has one piece in flight),
 * but different streams' can.
 */
struct cfs_zstd_sink {
	/* Bytes [off, off + len) of obj, decompressed; buf is valid during the call only. */
	void (*deliver)(void *ctx, struct cfs_object *obj, uint64_t off, const void *buf,
			size_t len);
	/*
	 * A stream of obj ended at off without producing what was wanted past
	 * it. err is a negative errno. permanent: the object's bytes from off
	 * on are bad for good (a corrupt frame or a size other than the
	 * index's: off is where the good bytes end; a changed ETag or a
	 * missing object: off is 0), so no later read of them should try again.
	 */
	void (*failed)(void *ctx, struct cfs_object *obj, uint64_t off, int err, bool permanent);
	/* Account bytes of decompression state against the cap; false when they do not fit. */
	bool (*reserve)(void *ctx, uint64_t bytes);
	void (*release)(void *ctx, uint64_t bytes);
};

/*
 * Create the stream set. cap is the sink's memory cap in bytes (it bounds
 * the window a frame may ask for). source is copied; what it points to and
 * the sink must outlive it; free it once every request to the source has
 * ended (after cfs_fetcher_free(), whose cancellations end every running
 * stream).
 */
struct cfs_zstd *cfs_zstd_new(const struct cfs_source *source, const struct cfs_zstd_sink *sink,
			      void *sink_ctx, uint64_t cap);

/* Free the idle streams, releasing their reservations. No stream may be fetching. */
void cfs_zstd_free(struct cfs_zstd *z);

/*
 * Make sure the bytes [off, end) of obj (whose compressed field names the
 * remote object, of known size of at least 1 byte: a stream of an empty one
 * has nothing to fetch and so would never end) are delivered: extend the
 * target of a stream of obj standing at or before off, or start one from
 * byte 0.
 * Bytes not wanted by a demand read are fetched at readahead priority.
 * Never blocks on the network.
 */
void cfs_zstd_want(struct cfs_zstd *z, struct cfs_object *obj, uint64_t off, uint64_t end,
		   enum cfs_fetch_priority prio);

/*
 * Drop the idle streams of obj, an object with no read left that nothing
 * outside the memory tier holds (cfs_cache_forget_object()). Returns false
 * when a stream of obj is fetching a piece, and so still uses obj: ask
 * again later. Thread-safe; call without the sink's lock (dropping a
 * stream releases its reservation).
 */
bool cfs_zstd_forget(struct cfs_zstd *z, const struct cfs_object *obj);

#endif
