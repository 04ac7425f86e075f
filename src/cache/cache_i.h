/*
 * Private to the memory tier, three layers whose calls go one way:
 * - mem.c, the reads: the public functions (mem.h), reads
 *   answered, parked or waiting, readahead, deadlines;
 * - fill.c, the sources: Range requests, zstd streams, read-backs
 *   from the spill tier and HEADs, which put bytes into blocks;
 * - store.c, the block store: blocks and their fill marks, the
 *   tier's state of each object, pins, room under the cap by eviction,
 *   and the writes of blocks leaving memory to the spill tier.
 * The reads call the sources and the store, the sources call the store;
 * the sources and the store tell the reads what happened (bytes landed,
 * bytes lost, room made, an ETag learnt) through c->reads, a table the
 * reads layer sets. Every function here is called with the cache's lock
 * held unless it says otherwise.
 *
 * The invariants that a wrong count would break silently (a pin count
 * going below zero, used bytes above the cap, a block freed while pinned,
 * each a use after free or a cap that no longer holds) are checked where
 * they change with g_assert(): GLib compiles it out only under
 * G_DISABLE_ASSERT, which no build defines (meson's b_ndebug defines
 * NDEBUG, which g_assert() ignores), so the checks stay on in the normal
 * and the sanitizer build alike, and a broken count aborts at once with
 * the place, instead of corrupting a block another read is sent from.
 */
#ifndef CHUNKFS_CACHE_I_H
#define CHUNKFS_CACHE_I_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "spill/spill.h"
#include "cache/mem.h"
#include "cache/extents.h"
#include "tree/object.h"
#include "cache/policy/policy.h"
#include "cache/readahead.h"
#include "cache/source.h"

struct cache_reads_ops;
struct cfs_blockmem;
struct cfs_zstd;
struct cfs_zstd_sink;

/* Asking the server for a remote object's ETag before trusting spilled blocks of it. */
enum validation {
	UNVALIDATED,        /* not asked */
	VALIDATING,         /* a HEAD is on its way */
	VALIDATED,          /* answered: its ETag is known, or it has none */
	VALIDATION_FAILED,  /* no answer: spilled blocks wait until a GET brings the ETag */
};

/*
 * A read of the object that failed: for FAILED_READ_MS (mem.c) a read
 * overlapping it fails the same way without a request, so that the kernel's
 * re-asks after a failed read (its readahead, then page by page) neither
 * start a fresh series of attempts nor assemble a short count from the
 * pages that did land (docs/hostile.md).
 */
struct failed_read {
	uint64_t off, end;  /* bytes [off, end) of the object */
	gint64 until_us;    /* monotonic time it is forgotten; 0: an unused slot */
	int err;            /* the negative errno the read got */
};

#define FAILED_READS 8

/*
 * A request of the object that failed, kept for the warms of ranges
 * overlapping it (warm.c), until one reports it or a later request over
 * bytes of it succeeds: an old failure elsewhere in the object must not
 * fail a warm that never needed those bytes.
 */
struct warm_failure {
	uint64_t off, end; /* bytes [off, end) of the object that did not come */
	int err;           /* its negative errno; 0: none */
};

/*
 * What the memory tier knows of an object, beside what the object is
 * (object.h): made at the tier's first use of the object and kept, as its
 * blocks are, under the object's id until the cache is freed.
 */
struct object_state {
	int error;                      /* sticky negative errno once the object proved bad */
	uint64_t bad_from;              /* with error: reads of bytes from here on fail (0: all) */
	enum validation validation;     /* whether its ETag was asked for (a HEAD) */
	GQueue parked;                  /* struct parked, oldest first */
	struct cfs_ra_streams streams;  /* readahead state of the readers of this object */
	struct failed_read *failed;     /* the latest FAILED_READS failed reads; NULL before one */
	struct warm_failure warm_failed; /* the last failed request a warm started, or stream */
};

struct block_key {
	uint32_t obj;
	uint64_t index;
};

struct block {
	struct block_key key;
	struct cfs_object *obj;
	struct object_state *state;   /* obj's */
	uint32_t len;                 /* bytes of the object this block holds when full */
	uint8_t *data;                /* len bytes (blockmem.h) */
	struct cfs_extents filled;    /* bytes that have landed */
	struct cfs_extents inflight;  /* bytes a running request or read-back will deliver */
	unsigned pins;                /* reads, requests, read-backs and spills using it */
	struct cfs_policy_entry pol;
	bool clean;                   /* the spill tier holds exactly the filled bytes */
	bool spilling;                /* being written to the spill tier, which pins it */
	bool unspillable;             /* its spill failed: let go without another try */
	bool cold;                    /* a cold arena slot: prefault what requests will fill */
	bool shared_stored;           /* complete, and handed to the shared tier's store queue */
	uint64_t spilled_bytes;       /* filled bytes when its spill began */
};

/*
 * A read: parked until its bytes land (in its object's state), waiting for room (in
 * cache.mem_wait) or for its object's ETag (in cache.val_wait), or being
 * answered.
 */
struct parked {
	struct cfs_object *obj;
	struct object_state *state;   /* obj's: set under the lock before the read is served */
	uint64_t off, len;
	GBytes *head;                 /* bytes answered before the object's, or NULL */
	cfs_read_done_fn done;
	void *cookie;
	bool pinned;                  /* holds a pin on each of its blocks */
	bool quick;                   /* done only replies: may run in a fetcher thread */
	GList link;
	gint64 deadline_us;           /* parked: monotonic time it fails with -ETIMEDOUT; 0: none */
	GList age_link;               /* in cache.parked_by_age while parked with a deadline */
};

struct cfs_cache {
	GMutex lock;
	const struct cache_reads_ops *reads; /* the reads layer's, set by cfs_cache_new() */
	uint64_t cap, used, block_size, readahead;
	struct cfs_source source;     /* where the bytes of objects come from */
	struct cfs_zstd *zstd;        /* streams that fill decompressed objects */
	struct cfs_disk *disk;        /* the spill tier, or NULL */
	struct cfs_shared *shared;    /* the shared tier, or NULL */
	struct cfs_policy *policy;
	uint64_t spilling;            /* bytes of blocks being written to the spill tier */
	GHashTable *blocks;           /* struct block_key * -> struct block * */
	GHashTable *objects;          /* object id -> struct object_state * */
	struct cfs_blockmem *mem;     /* the blocks' buffers */
	GQueue mem_wait;              /* struct parked waiting for room, oldest first */
	GQueue val_wait;              /* struct parked waiting for an ETag before a read-back */
	bool closing;                 /* cfs_cache_close(): reads fail, nothing is fetched */
	gint64 read_timeout_us;       /* cfs_cache_config.read_timeout_ms; 0: reads wait as long
					 as it takes */
	GQueue parked_by_age;         /* struct parked with a deadline, oldest (first due) first */
	GCond expiry;                 /* wakes the expirer: a deadline before expiry_at, or closing */
	gint64 expiry_at;             /* when the expirer wakes; G_MAXINT64: when signalled; past:
					 awake, it reads the queue before it sleeps again */
	GThread *expirer;             /* fails the reads parked past their deadline; NULL without one */
	GThread *faulter;             /* faults the arena in (faultahead.c); NULL: none */
	GCond faulter_wake;           /* wakes it: closing; set up with the cache */
	gint64 last_read_us;          /* monotonic time of the latest read; atomic, no lock */
	GThreadPool *repliers;        /* sends struct answer * queued by other threads */
};

/*
 * A read ready to be answered once the lock is dropped: on success it still
 * pins its blocks, and iov points into them, until the reply has been sent.
 */
struct answer {
	struct parked *r;
	struct iovec *iov;            /* NULL on error */
	int iovcnt;
	int err;
};

static inline uint64_t block_start(const struct cfs_cache *c, uint64_t index)
{
	return index * c->block_size;
}

/* Loop over the block indexes of [off, off + len); lo and hi bound the range inside each block. */
#define FOR_EACH_BLOCK(c, off, len, idx, lo, hi)                                              \
	for (uint64_t idx = (off) / (c)->block_size, _end = (off) + (len), lo G_GNUC_UNUSED,   \
	     hi G_GNUC_UNUSED;                                                                \
	     block_start(c, idx) < _end &&                                                    \
	     (lo = MAX(off, block_start(c, idx)) - block_start(c, idx),                       \
	     hi = MIN(_end, block_start(c, idx + 1)) - block_start(c, idx), 1);               \
	     idx++)

/*
 * What the sources and the block store report to the reads layer
 * (mem.c), with the lock held; answers collects the reads answered,
 * to be delivered once the lock is dropped.
 */
struct cache_reads_ops {
	/* Bytes [off, end) of the object of st landed: answer its parked reads they complete. */
	void (*landed)(struct cfs_cache *c, struct object_state *st, uint64_t off, uint64_t end,
		       GArray *answers);
	/*
	 * Bytes [off, end) of the object of st will not come: fail its parked
	 * reads that need them with err (a negative errno), and those that
	 * need its bad bytes (st->error, from st->bad_from) with st->error.
	 */
	void (*lost)(struct cfs_cache *c, struct object_state *st, uint64_t off, uint64_t end,
		     int err, GArray *answers);
	/*
	 * Room was made (q is c->mem_wait) or an ETag learnt (c->val_wait):
	 * serve again the reads of q, release the lock, and deliver them with
	 * the rest of answers, which it frees.
	 */
	void (*wake_unlock)(struct cfs_cache *c, GQueue *q, GArray *answers);
	/* Deliver answers and free it. Called without the lock. */
	void (*deliver)(struct cfs_cache *c, GArray *answers);
};

/* An empty array of struct answer, for the functions above. */
static inline GArray *cache_answers_new(void)
{
	return g_array_new(FALSE, FALSE, sizeof(struct answer));
}

/* The remote object whose version a block's bytes are of: itself, or the one it decompresses. */
static inline struct cfs_object *cache_remote_of(struct cfs_object *obj)
{
	return obj->compressed ? obj->compressed : obj;
}

/* ---- store.c: the block store ---- */

/* The tables, buffers and eviction policy (policy.h name) of blocks of block_size bytes. */
void cache_store_init(struct cfs_cache *c, uint64_t cap, uint64_t block_size, const char *policy);
/* Free every block (none pinned) and what cache_store_init() made. */
void cache_store_free(struct cfs_cache *c);

/* The state of obj, made empty at the first call. */
struct object_state *cache_object(struct cfs_cache *c, const struct cfs_object *obj);
/* The state of obj, or NULL when the tier has none: for callers that only look. */
struct object_state *cache_object_find(struct cfs_cache *c, const struct cfs_object *obj);
/* Free the state of obj, which no block, read or HEAD points at any more. */
void cache_object_drop(struct cfs_cache *c, const struct cfs_object *obj);

/* Bytes of block index of obj: the block size, less for its last block. */
uint32_t cache_block_len(const struct cfs_cache *c, const struct cfs_object *obj,
			 uint64_t index);
/* Block index of obj, or NULL when it is not in memory. */
struct block *cache_block_get(struct cfs_cache *c, const struct cfs_object *obj,
			      uint64_t index);
/* A new, empty, unpinned block (room must have been made); NULL when mmap fails. */
struct block *cache_block_new(struct cfs_cache *c, struct cfs_object *obj, uint64_t index);
/* Free b, which nothing pins, and give back its bytes. */
void cache_block_free(struct cfs_cache *c, struct block *b);
/* Make bytes more fit under the cap, evicting (or starting to spill) unpinned blocks. */
bool cache_make_room(struct cfs_cache *c, uint64_t bytes);

/* Give back idle block memory that no longer fits under the cap beside what is used. Lock held. */
void cache_trim_idle(struct cfs_cache *c);

/*
 * Start c->faulter, which faults the arena's fresh slots in ahead of use
 * while no read comes, until the cap is resident (live blocks and idle
 * slots), 1 GiB was faulted in, or c->closing is set (signalled through
 * c->faulter_wake); the slots become idle ones, the first handed out.
 */
void cache_fault_ahead_start(struct cfs_cache *c);
/*
 * Count bytes that are in no block (a zstd stream's) as used, once room is
 * made for them; false, counting nothing, when it cannot be.
 */
bool cache_reserve(struct cfs_cache *c, uint64_t bytes);
/* Give back bytes of cache_reserve(). */
void cache_unreserve(struct cfs_cache *c, uint64_t bytes);
void cache_pin(struct cfs_cache *c, struct block *b);
/* A block with nothing landed and nothing coming is freed by its last unpin. */
void cache_unpin(struct cfs_cache *c, struct block *b);
/* Every byte of [off, off + len) of obj has landed. */
bool cache_is_present(struct cfs_cache *c, const struct cfs_object *obj, uint64_t off,
		      uint64_t len);

/*
 * The ETag that spilled blocks of obj must carry: the remote's, or "" once
 * a HEAD has shown that it has none. NULL while it is not known, when the
 * spill tier cannot be trusted for obj. The caller frees it.
 */
char *cache_validator(struct cfs_cache *c, struct cfs_object *obj);
/* The spill tier's name of b's bytes (spill.h); strings borrowed from b and etag. */
struct cfs_spill_id cache_spill_id(const struct block *b, const char *etag);
/* b holds bytes the spill tier does not. */
bool cache_needs_spill(const struct cfs_cache *c, const struct block *b);
/* Write b to the spill tier; it stays pinned until written. */
void cache_spill(struct cfs_cache *c, struct block *b);
/* Start writing every unpinned block the spill tier lacks (at unmount). */
void cache_spill_all(struct cfs_cache *c);
/* Bytes of blocks that may be on their way to the spill tier at once. */
uint64_t cache_spill_budget(const struct cfs_cache *c);

/* ---- fill.c: the sources ---- */

/*
 * Block bytes that requests issued by this thread will deliver, to be
 * faulted in by this thread once it has dropped the lock, while the
 * requests are on the wire: the fetcher thread, which copies in every byte
 * that arrives, then finds the pages there instead of faulting each one.
 * Ranges past the array's room are left to fault as they are written.
 */
/* Ranges one plan prefaults: a read's misses rarely make more requests than this. */
#define PREFAULT_RANGES 32

struct prefault {
	struct {
		void *addr;
		size_t len;
	} v[PREFAULT_RANGES];
	unsigned n;
};

/* Collect into p the ranges of the requests this thread issues, until cache_prefault_end(). */
void cache_prefault_begin(struct prefault *p);
/* Stop collecting and fault in the ranges. Without the lock. */
void cache_prefault_end(struct prefault *p);

/* Ask for the bytes of [off, off + len) that are neither there nor coming. */
void cache_request_missing(struct cfs_cache *c, struct cfs_object *obj, uint64_t off,
			   uint64_t len, enum cfs_fetch_priority prio);
/*
 * The same for a warm (warm.c), at readahead priority: a request of it that
 * fails is kept in the object's warm_failed for the warm to report.
 */
void cache_request_warm(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, uint64_t len);
/* Read back from the spill tier the blocks of [off, off + len) that hold nothing yet. */
void cache_load_blocks(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, uint64_t len);
/*
 * Look up in the shared tier the blocks of [off, off + len) that hold
 * nothing and have nothing coming (after cache_load_blocks()), when the
 * object's ETag is known, as one batch: each block is in flight from then
 * on. A hit lands when its lookup ends; the blocks that missed stay in
 * flight until every lookup of the batch has ended (within the tier's
 * lookup deadline), then are asked of the source at prio as merged
 * ranges, one cache_request_missing() per run of neighbouring blocks.
 * Called with c->lock held; each block looked up is pinned until its batch
 * ends (in a thread of the tier, which takes c->lock).
 */
void cache_lookup_shared(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, uint64_t len,
			 enum cfs_fetch_priority prio);
/*
 * A read that must wait for its object's ETag before the spill tier can be
 * trusted (a HEAD is started for it once): true when so.
 */
bool cache_needs_validation(struct cfs_cache *c, const struct parked *r);

extern const struct cfs_zstd_sink cache_zstd_sink;

#endif
