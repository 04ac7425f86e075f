/*
 * The memory tier: fixed-size blocks of objects, each with the byte ranges
 * that have landed (fill marks) and the ranges a running request will
 * deliver. Reads are answered as soon as their own bytes are present; a
 * read that cannot be answered is parked and answered from a fetcher
 * thread when its bytes land. Misses are turned into Range requests for the
 * missing bytes only (neighbouring gaps coalesced, widened by readahead),
 * and bytes already being fetched are never asked for twice.
 *
 * The cap is hard: buffers are reserved before a request is issued; the
 * blocks that no read or request holds are evicted to make room, in the
 * order of the eviction policy (policy.h), and a read whose blocks cannot
 * get room waits, holding nothing, until a request or a spill ends.
 *
 * With a spill tier (spill/spill.h), a block about to be evicted that holds
 * bytes the tier lacks is written there first (and ahead of time once the
 * room left is less than the writes may have in flight; with more room,
 * nothing is written until unmount); a miss on a block the tier holds reads it back
 * instead of fetching it, once the object's ETag is known (a HEAD asks for
 * it when neither the listing nor a response gave it).
 *
 * A decompressed object (obj->compressed set) is filled by zstd streams
 * (zstream.h) instead of Range requests: its missing bytes become a want
 * on a stream, and every piece a stream decompresses lands in the blocks
 * that exist or that room can be made for, counted against the same cap.
 *
 * One mutex guards all of it; buffers are written by the fetcher outside
 * the lock (a request owns the bytes it will deliver) and sent to readers
 * straight from the blocks, which their reads pin.
 */
#ifndef CHUNKFS_CACHE_MEM_H
#define CHUNKFS_CACHE_MEM_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfs_cache;
struct cfs_disk;
struct cfs_object;
struct cfs_source;

/*
 * Completion of a read: called exactly once per cfs_cache_read(), either
 * before cfs_cache_read() returns (in the caller's thread) or later from a
 * reply thread (see cfs_cache_read_quick() for the exception). On success
 * err is 0 and the len bytes read are in iov[0..iovcnt) (pieces of cache
 * blocks, valid during the call only: no copy is made); len is short only
 * at the end of the object, 0 at or past it. On failure err is a negative
 * errno and iov NULL. Called without the cache's lock held.
 */
struct iovec;
typedef void (*cfs_read_done_fn)(void *cookie, const struct iovec *iov, int iovcnt, size_t len,
				 int err);

struct cfs_cache_config {
	uint64_t cap;         /* bytes: at least 4 blocks and 4 MiB (checked by options) */
	uint64_t block_size;  /* bytes, a power of two */
	uint64_t readahead;   /* largest readahead window in bytes (0: none) */
	const char *policy;   /* eviction policy name (policy.h) */
	unsigned read_timeout_ms; /* a read parked longer fails with -ETIMEDOUT (0: never) */
	struct cfs_shared *shared; /* the shared tier (shared/shared.h), which the cache then
				      owns and frees; NULL: none */
	/* Fault block memory in up to the cap (at most 1 GiB) while no read comes
	 * (cache/faultahead.c), rather than as blocks arrive. */
	bool fault_ahead;
};

/*
 * Create the memory tier. The readahead window is lowered to an eighth of
 * the cap so that a few streams fit. disk (may be NULL) is the spill tier,
 * started, which the cache now owns: blocks leaving memory are written to
 * it and read back from it. A read parked for its bytes longer than
 * cfg->read_timeout_ms is answered with -ETIMEDOUT (by a thread of the
 * cache's own), whatever its request still does: a server that trickles
 * bytes forever holds no reader past the bound. source (source.h: the fetcher in the daemon)
 * is copied; what it points to must outlive the cache's last request: see
 * cfs_cache_close().
 */
struct cfs_cache *cfs_cache_new(const struct cfs_cache_config *cfg,
				const struct cfs_source *source, struct cfs_disk *disk);

/*
 * Stop serving, at unmount: every read from now on (new, waiting for room
 * or an ETag, or left by a read-back) is answered with -ECANCELED, and no
 * request is made, so that callbacks still running (item views reading
 * on, read-backs and spills ending) never reach a freed source. Call it
 * before the source is stopped (cfs_fetcher_free(), which then cancels
 * what runs). Thread-safe.
 */
void cfs_cache_close(struct cfs_cache *c);

/*
 * Write every block the spill tier lacks to it (so that the next mount
 * finds it), wait for the writes, then free every block and the spill
 * tier. Call after cfs_cache_close() and once every request to the source
 * has ended (after cfs_fetcher_free()).
 */
void cfs_cache_free(struct cfs_cache *c);

/*
 * Read [off, off + len) of obj (len at most 16 MiB), answered after the
 * bytes of head when head is not NULL (a generated file header in front of
 * an object's range; referenced until the answer is sent). done(cookie,
 * ...) is called exactly once as described above, with len counting the
 * head too. A read of an object that proved bad (size or ETag mismatch, a
 * corrupt zstd frame) fails with -EIO, as does a decompressed object whose
 * compressed size is unknown. Thread-safe.
 */
void cfs_cache_read(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, size_t len,
		    GBytes *head, cfs_read_done_fn done, void *cookie);

/*
 * As cfs_cache_read(), for a done that only sends a reply and returns (it
 * never blocks and never reads again): an answer of up to 256 KiB, or an
 * error, is then given to done in the thread that completed it, a fetcher
 * thread as the last bytes land, instead of through a reply thread.
 */
void cfs_cache_read_quick(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, size_t len,
			  GBytes *head, cfs_read_done_fn done, void *cookie);

/*
 * Fetch [off, off + len) of obj at readahead priority with no reader
 * waiting (the next chunk's first bytes, say): blocks are made while room
 * can be made without touching pinned ones. Does nothing once
 * cfs_cache_close() has run. Thread-safe; never blocks.
 */
void cfs_cache_prefetch(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, uint64_t len);

/*
 * Where the bytes of a range are, in bytes: mem landed in the memory tier;
 * disk in blocks the spill tier holds (a block counts whole: the spill
 * tier's index does not say which of its bytes a file holds); remote in
 * neither; warm those where a warm-up leaves them: on disk with a spill
 * tier, in memory without. mem and disk may overlap; size = the range's.
 */
struct cfs_residency {
	uint64_t size, mem, disk, remote, warm;
};

/*
 * One step of warming [off, off + len) of obj (a range of an object's
 * bytes: a whole object, an item, a tar member) into the tiers, for a
 * caller that calls it again until out->warm == out->size: blocks complete
 * over the range are written to the spill tier (a few at a time, within
 * the spill writes' budget), blocks the spill tier holds are left there,
 * and the rest is asked for at readahead priority, at most a window (a
 * block to 32 MiB, an eighth of the cap) on the wire per object, while
 * room can be made without touching what reads hold. A decompressed
 * object's zstd stream is asked for a window from its first missing byte.
 * *out is filled after the step. Returns 0, or a negative errno: -EIO for
 * an object of unknown size or a range past its end, the object's error
 * once it proved bad, -ECANCELED once cfs_cache_close() has run, and the
 * errno of the last failed request that a warm of obj started (or of obj's
 * zstd stream) when its bytes overlap the range and no later request
 * brought them (reported once: the next call tries again); a failed read's
 * request is not reported. Thread-safe; never blocks on the network.
 */
int cfs_cache_warm(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, uint64_t len,
		   struct cfs_residency *out);

/*
 * Where the bytes of [off, off + len) of obj are, into *out, fetching
 * nothing. The lock is held for a batch of blocks at a time, so counts
 * taken while bytes land mix moments (each block is counted once).
 * Returns 0, or -EIO for an object of unknown size or a range past its
 * end. Thread-safe; never blocks.
 */
int cfs_cache_residency(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, uint64_t len,
			struct cfs_residency *out);

/*
 * Withdraw the parked or waiting read of obj whose cookie is cookie (a FUSE
 * interrupt). Returns true when it was found: done will not be called and
 * the caller answers the read itself. Returns false when the read is not
 * waiting (answered already or being answered). Thread-safe.
 */
bool cfs_cache_cancel(struct cfs_cache *c, struct cfs_object *obj, void *cookie);

/*
 * Let go of obj, which nothing outside the memory tier holds any more (its
 * node, open files and views are gone; cfs_objects_set_release()): its
 * blocks that nothing pins are dropped, without being spilled (what the
 * spill tier has of it stays there, keyed by name and ETag, valid for an
 * object of the same name and ETag), and so are its idle zstd streams.
 * Returns true when the memory tier keeps nothing of obj and never will
 * again, so that obj may be freed; false while a read of it waits, or a
 * request, read-back, spill, zstd piece or HEAD of it runs: ask again
 * later. Thread-safe; takes the cache's lock, so call it without.
 */
bool cfs_cache_forget_object(struct cfs_cache *c, struct cfs_object *obj);

#endif
