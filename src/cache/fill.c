/*
 * The sources of the memory tier's bytes: Range requests for the gaps of
 * remote objects, zstd streams for decompressed ones, read-backs from the
 * spill tier, and the HEADs that learn an ETag before a read-back. Each
 * puts what lands into the block store (store.c) and reports it to
 * the reads layer through c->reads (cache_i.h): bytes landed, bytes
 * that will not come, room or an ETag that reads wait for.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cache_i.h"
#include "shared/shared.h"
#include "spill/spill.h"
#include "tree/object.h"
#include "util/stats.h"
#include "cache/zstream.h"

/*
 * Larger gaps are split so that a long readahead runs over several
 * connections; long requests keep the server's own readahead going.
 */
#define MAX_REQUEST_BYTES (UINT64_C(32) << 20)
static const struct cfs_fetch_ops fill_ops;
static void note_complete(struct cfs_cache *c, struct block *b, GPtrArray *complete);
static char *complete_validator(struct cfs_cache *c, struct cfs_object *obj,
				const GPtrArray *complete);
static void store_and_unpin(struct cfs_cache *c, char *etag, GPtrArray *complete);

/* One request filling blocks; the blocks it covers stay pinned until it ends. */
struct fill {
	struct cfs_cache *cache;
	struct cfs_object *obj;
	struct object_state *state;   /* obj's */
	uint64_t start, end, next;    /* asked [start, end); delivered up to next */
	GPtrArray *blocks;            /* struct block *, covering [start, end) in order */
	bool warm;                    /* a warm started it: its failure is kept for the warm */
};

/* ---- Range requests ---- */

static __thread struct prefault *prefault_list;

void cache_prefault_begin(struct prefault *p)
{
	p->n = 0;
	prefault_list = p;
}

void cache_prefault_end(struct prefault *p)
{
	prefault_list = NULL;
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	for (unsigned i = 0; i < p->n; i++) {
		uintptr_t lo = (uintptr_t)p->v[i].addr & ~(page - 1);
		uintptr_t hi = ((uintptr_t)p->v[i].addr + p->v[i].len + page - 1) & ~(page - 1);
		/*
		 * Safe even when the request has ended and the slot went to
		 * another block: the arena stays mapped, and populating never
		 * changes bytes. A slot given back meanwhile is made resident
		 * again: at most these 32 ranges, until the slot is reused.
		 */
		madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
	}
}

static void note_prefault(void *addr, size_t len)
{
	struct prefault *p = prefault_list;
	if (p && p->n < G_N_ELEMENTS(p->v))
		p->v[p->n++] = (typeof(p->v[0])){ addr, len };
}

struct range {
	uint64_t start, end;
};

static void append_range(GArray *ranges, uint64_t start, uint64_t end)
{
	if (ranges->len) {
		struct range *prev = &g_array_index(ranges, struct range, ranges->len - 1);
		if (prev->end == start && end - prev->start <= MAX_REQUEST_BYTES) {
			prev->end = end;
			return;
		}
	}
	struct range r = { start, end };
	g_array_append_val(ranges, r);
}

/* Append the gaps of [off, off + len) (bytes neither landed nor coming) to ranges. */
static void add_gaps(struct cfs_cache *c, const struct cfs_object *obj, uint64_t off,
		     uint64_t len, GArray *ranges)
{
	FOR_EACH_BLOCK(c, off, len, idx, lo, hi) {
		struct block *b = cache_block_get(c, obj, idx);
		struct cfs_extent gap = { (uint32_t)lo, (uint32_t)lo };
		while (cfs_extents_first_gap(&b->filled, &b->inflight, gap.hi, (uint32_t)hi, &gap))
			append_range(ranges, block_start(c, idx) + gap.lo, block_start(c, idx) + gap.hi);
	}
}

/* Issue one request per range: its bytes become in flight and its blocks pinned. */
static void issue(struct cfs_cache *c, struct cfs_object *obj, GArray *ranges,
		  enum cfs_fetch_priority prio, bool warm)
{
	for (guint i = 0; i < ranges->len; i++) {
		struct range *r = &g_array_index(ranges, struct range, i);
		struct fill *f = g_new0(struct fill, 1);
		f->cache = c;
		f->obj = obj;
		f->state = cache_object(c, obj);
		f->start = f->next = r->start;
		f->end = r->end;
		f->blocks = g_ptr_array_new();
		f->warm = warm;
		FOR_EACH_BLOCK(c, r->start, r->end - r->start, idx, lo, hi) {
			struct block *b = cache_block_get(c, obj, idx);
			cfs_extents_add(&b->inflight, (uint32_t)lo, (uint32_t)hi);
			cache_pin(c, b);
			g_ptr_array_add(f->blocks, b);
			if (b->cold)
				note_prefault(b->data + lo, hi - lo);
		}
		if (prio == CFS_FETCH_READAHEAD)
			cfs_stats_add(CFS_READAHEAD_BYTES, r->end - r->start);
		c->source.ops->submit(c->source.src, obj, r->start, r->end, prio, &fill_ops, f);
	}
}

/* The first byte of [off, off + len) neither landed nor coming; false when there is none. */
static bool first_missing(struct cfs_cache *c, const struct cfs_object *obj, uint64_t off,
			  uint64_t len, uint64_t *first)
{
	FOR_EACH_BLOCK(c, off, len, idx, lo, hi) {
		struct block *b = cache_block_get(c, obj, idx);
		struct cfs_extent gap = { (uint32_t)lo, (uint32_t)hi };
		if (!b || cfs_extents_first_gap(&b->filled, &b->inflight, (uint32_t)lo, (uint32_t)hi,
						&gap)) {
			*first = block_start(c, idx) + gap.lo;
			return true;
		}
	}
	return false;
}

/*
 * A decompressed object's bytes come from a zstd stream, in order: ask for
 * everything from the first missing byte to the end of the range (short of
 * bytes known to be bad).
 */
static void want_decompressed(struct cfs_cache *c, struct cfs_object *obj, uint64_t off,
			      uint64_t len, enum cfs_fetch_priority prio)
{
	const struct object_state *st = cache_object(c, obj);
	uint64_t first, end = st->error ? MIN(off + len, st->bad_from) : off + len;
	if (first_missing(c, obj, off, len, &first) && first < end)
		cfs_zstd_want(c->zstd, obj, first, end, prio);
}

static void request_missing(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, uint64_t len,
			    enum cfs_fetch_priority prio, bool warm)
{
	if (obj->compressed) {
		want_decompressed(c, obj, off, len, prio);
		return;
	}
	GArray *ranges = g_array_new(FALSE, FALSE, sizeof(struct range));
	add_gaps(c, obj, off, len, ranges);
	issue(c, obj, ranges, prio, warm);
	g_array_free(ranges, TRUE);
}

void cache_request_missing(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, uint64_t len,
			   enum cfs_fetch_priority prio)
{
	request_missing(c, obj, off, len, prio, false);
}

void cache_request_warm(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, uint64_t len)
{
	request_missing(c, obj, off, len, CFS_FETCH_READAHEAD, true);
}

static void note_warm_failure(struct object_state *st, uint64_t off, uint64_t end, int err)
{
	st->warm_failed = (struct warm_failure){ off, end, err };
}

/* Bytes [off, end) of the object of st came: a kept failure over any of them is over. */
static void forget_warm_failure(struct object_state *st, uint64_t off, uint64_t end)
{
	if (st->warm_failed.err && st->warm_failed.off < end && off < st->warm_failed.end)
		st->warm_failed.err = 0;
}

static int fill_on_response(void *ctx, const struct cfs_response_info *info)
{
	struct fill *f = ctx;
	int err = cfs_object_check_response(f->obj, info);
	if (err) {
		g_mutex_lock(&f->cache->lock);
		f->state->error = err;
		g_mutex_unlock(&f->cache->lock);
	}
	return err;
}

static void fill_on_data(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct fill *f = ctx;
	struct cfs_cache *c = f->cache;
	uint64_t first = f->start / c->block_size;
	/* The request owns these bytes and pins their blocks: copy without the lock. */
	FOR_EACH_BLOCK(c, off, len, idx, lo, hi) {
		struct block *b = g_ptr_array_index(f->blocks, idx - first);
		memcpy(b->data + lo, (const uint8_t *)buf + (block_start(c, idx) + lo - off), hi - lo);
	}
	GArray *answers = cache_answers_new();
	GPtrArray *complete = c->shared ? g_ptr_array_new() : NULL; /* NULL: no shared tier */
	g_mutex_lock(&c->lock);
	FOR_EACH_BLOCK(c, off, len, idx, lo, hi) {
		struct block *b = g_ptr_array_index(f->blocks, idx - first);
		cfs_extents_add(&b->filled, (uint32_t)lo, (uint32_t)hi);
		cfs_extents_remove(&b->inflight, (uint32_t)lo, (uint32_t)hi);
		b->clean = false;
		note_complete(c, b, complete);
	}
	f->next = off + len;
	c->reads->landed(c, f->state, off, off + len, answers);
	char *etag = complete_validator(c, f->obj, complete);
	g_mutex_unlock(&c->lock);
	c->reads->deliver(c, answers);
	store_and_unpin(c, etag, complete);
}

static void fill_on_done(void *ctx, int err)
{
	struct fill *f = ctx;
	struct cfs_cache *c = f->cache;
	uint64_t first = f->start / c->block_size;
	GArray *answers = cache_answers_new();
	g_mutex_lock(&c->lock);
	FOR_EACH_BLOCK(c, f->next, f->end - f->next, idx, lo, hi) {
		struct block *b = g_ptr_array_index(f->blocks, idx - first);
		cfs_extents_remove(&b->inflight, (uint32_t)lo, (uint32_t)hi);
	}
	if (err == -ENOENT && !f->state->error) {
		f->state->error = -EIO; /* listed but gone: do not ask again at every read */
		err = -EIO;
	}
	if (err || f->next < f->end) {
		c->reads->lost(c, f->state, f->next, f->end, err ? err : -EIO, answers);
		if (f->warm && err != -ECANCELED) /* the warm polling the object learns it failed */
			note_warm_failure(f->state, f->next, f->end, err ? err : -EIO);
	} else {
		forget_warm_failure(f->state, f->start, f->end);
	}
	for (guint i = 0; i < f->blocks->len; i++)
		cache_unpin(c, g_ptr_array_index(f->blocks, i));
	c->reads->wake_unlock(c, &c->mem_wait, answers);
	g_ptr_array_free(f->blocks, TRUE);
	g_free(f);
}

static const struct cfs_fetch_ops fill_ops = {
	.on_response = fill_on_response,
	.on_data = fill_on_data,
	.on_done = fill_on_done,
};

/* ---- zstd streams ---- */

/*
 * Copy the bytes of [lo, hi) of block b that have not landed from src,
 * which holds the bytes of the object from src_off on.
 */
static void fill_missing(struct cfs_cache *c, struct block *b, uint32_t lo, uint32_t hi,
			 const uint8_t *src, uint64_t src_off)
{
	uint64_t base = block_start(c, b->key.index);
	struct cfs_extent gap = { lo, lo };
	while (cfs_extents_first_gap(&b->filled, &b->inflight, gap.hi, hi, &gap)) {
		memcpy(b->data + gap.lo, src + (base + gap.lo - src_off), gap.hi - gap.lo);
		cfs_extents_add(&b->filled, gap.lo, gap.hi);
		b->clean = false;
	}
}

/*
 * Decompressed bytes from a zstd stream go into the blocks that exist (the
 * reads waiting for them pinned theirs) and into new blocks while room can
 * be made. No request owns these blocks, and a piece is at most
 * ZSTD_DStreamOutSize() bytes, so the copy is made under the lock; bytes a
 * read-back from the spill tier is bringing are left to it.
 */
static void zstd_deliver(void *ctx, struct cfs_object *obj, uint64_t off, const void *buf,
			 size_t len)
{
	struct cfs_cache *c = ctx;
	GArray *answers = cache_answers_new();
	GPtrArray *complete = c->shared ? g_ptr_array_new() : NULL; /* NULL: no shared tier */
	g_mutex_lock(&c->lock);
	FOR_EACH_BLOCK(c, off, len, idx, lo, hi) {
		struct block *b = cache_block_get(c, obj, idx);
		if (!b && cache_make_room(c, cache_block_len(c, obj, idx)))
			b = cache_block_new(c, obj, idx);
		if (!b)
			continue;
		cache_pin(c, b);
		fill_missing(c, b, (uint32_t)lo, (uint32_t)hi, buf, off);
		note_complete(c, b, complete);
		cache_unpin(c, b);
	}
	struct object_state *st = cache_object(c, obj);
	forget_warm_failure(st, off, off + len);
	c->reads->landed(c, st, off, off + len, answers);
	char *etag = complete_validator(c, obj, complete);
	c->reads->wake_unlock(c, &c->mem_wait, answers);
	store_and_unpin(c, etag, complete);
}

static void zstd_failed(void *ctx, struct cfs_object *obj, uint64_t off, int err, bool permanent)
{
	struct cfs_cache *c = ctx;
	GArray *answers = cache_answers_new();
	g_mutex_lock(&c->lock);
	struct object_state *st = cache_object(c, obj);
	if (permanent && (!st->error || off < st->bad_from)) {
		st->error = err;
		st->bad_from = off;
	}
	c->reads->lost(c, st, off, obj->size, err, answers);
	/* Warms and reads share a stream, which brings the bytes in order: kept for either. */
	if (err != -ECANCELED)
		note_warm_failure(st, off, obj->size, err);
	c->reads->wake_unlock(c, &c->mem_wait, answers);
}

static bool zstd_reserve(void *ctx, uint64_t bytes)
{
	struct cfs_cache *c = ctx;
	g_mutex_lock(&c->lock);
	bool ok = cache_reserve(c, bytes);
	g_mutex_unlock(&c->lock);
	return ok;
}

static void zstd_release(void *ctx, uint64_t bytes)
{
	struct cfs_cache *c = ctx;
	GArray *answers = cache_answers_new();
	g_mutex_lock(&c->lock);
	cache_unreserve(c, bytes);
	c->reads->wake_unlock(c, &c->mem_wait, answers);
}

const struct cfs_zstd_sink cache_zstd_sink = {
	.deliver = zstd_deliver,
	.failed = zstd_failed,
	.reserve = zstd_reserve,
	.release = zstd_release,
};

/* ---- read-backs from the spill tier ---- */

static uint64_t block_count(const struct cfs_cache *c, const struct cfs_object *obj)
{
	return (obj->size + c->block_size - 1) / c->block_size;
}

/* A block being read back from the spill tier. */
struct readback {
	struct cfs_cache *c;
	struct block *b;
};

static void load_done(void *ctx, const struct cfs_extents *extents, int err)
{
	struct readback *t = ctx;
	struct cfs_cache *c = t->c;
	struct block *b = t->b;
	g_free(t);
	GArray *answers = cache_answers_new();
	g_mutex_lock(&c->lock);
	cfs_extents_remove(&b->inflight, 0, b->len);
	for (uint32_t i = 0; !err && i < extents->n; i++)
		cfs_extents_add(&b->filled, extents->v[i].lo, extents->v[i].hi);
	b->clean = !err; /* nothing else could land while the whole block was in flight */
	cfs_stats_add(err ? CFS_DISK_MISSES : CFS_DISK_HITS, 1);
	uint64_t start = block_start(c, b->key.index);
	c->reads->landed(c, b->state, start, start + b->len, answers);
	/* What the spill tier did not have is asked for now, unless nothing is any more. */
	if (c->closing)
		c->reads->lost(c, b->state, start, start + b->len, -ECANCELED, answers);
	for (GList *l = b->state->parked.head; l && !c->closing; l = l->next) {
		struct parked *r = l->data;
		if (r->off < start + b->len && start < r->off + r->len)
			cache_request_missing(c, r->obj, r->off, r->len, CFS_FETCH_DEMAND);
	}
	cache_unpin(c, b);
	c->reads->wake_unlock(c, &c->mem_wait, answers);
}

/*
 * Start reading b back when it holds nothing and the spill tier has it;
 * etag is NULL when the tier cannot be trusted for its object yet.
 */
static void load_block(struct cfs_cache *c, struct block *b, const char *etag)
{
	if (b->filled.n || b->inflight.n)
		return;
	if (!etag ||
	    !cfs_disk_has(c->disk, b->obj->name, b->key.index, etag, block_count(c, b->obj))) {
		cfs_stats_add(CFS_DISK_MISSES, 1);
		return;
	}
	struct cfs_spill_id id = cache_spill_id(b, etag);
	struct readback *t = g_new(struct readback, 1);
	*t = (struct readback){ c, b };
	cfs_extents_add(&b->inflight, 0, b->len);
	cache_pin(c, b);
	cfs_disk_load(c->disk, &id, b->data, load_done, t);
}

void cache_load_blocks(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, uint64_t len)
{
	if (!c->disk)
		return;
	char *etag = cache_validator(c, obj);
	FOR_EACH_BLOCK(c, off, len, idx, lo, hi) {
		struct block *b = cache_block_get(c, obj, idx);
		if (b)
			load_block(c, b, etag);
	}
	g_free(etag);
}

/* ---- the shared tier ---- */

/*
 * The shared tier's name of b's bytes of ETag etag: the full URL, whose
 * query may be all that tells two objects apart (value.h keeps only its
 * SHA-256).
 */
static struct cfs_shared_id shared_id(const struct cfs_cache *c, const struct block *b,
				      const char *etag)
{
	return (struct cfs_shared_id){
		cache_remote_of(b->obj)->url, etag, b->obj->size, c->block_size, b->key.index,
		b->obj->compressed != NULL
	};
}

/*
 * When b, filled by the remote, is complete: pin it and add it to complete
 * (NULL without a shared tier: nothing to do), to be stored in the shared
 * tier once the lock is dropped (a block is stored once).
 */
static void note_complete(struct cfs_cache *c, struct block *b, GPtrArray *complete)
{
	if (!complete || b->shared_stored || cfs_extents_bytes(&b->filled) != b->len)
		return;
	b->shared_stored = true;
	cache_pin(c, b);
	g_ptr_array_add(complete, b);
}

/* The ETag the blocks of complete, all of obj, are stored under; NULL when there are none. */
static char *complete_validator(struct cfs_cache *c, struct cfs_object *obj,
				const GPtrArray *complete)
{
	return complete && complete->len ? cache_validator(c, obj) : NULL;
}

/*
 * Queue the blocks of complete for the shared tier under etag (freed
 * here), then unpin them. Called without the lock: filled bytes never
 * change and the pins keep the blocks in place. Blocks of an object
 * without an ETag are not stored: nothing would tell their versions apart.
 */
static void store_and_unpin(struct cfs_cache *c, char *etag, GPtrArray *complete)
{
	if (!complete || !complete->len) {
		if (complete)
			g_ptr_array_free(complete, TRUE);
		return;
	}
	for (guint i = 0; etag && *etag && i < complete->len; i++) {
		struct block *b = g_ptr_array_index(complete, i);
		struct cfs_shared_id id = shared_id(c, b, etag);
		cfs_shared_store(c->shared, &id, b->data, b->len);
	}
	g_free(etag);
	g_mutex_lock(&c->lock);
	for (guint i = 0; i < complete->len; i++)
		cache_unpin(c, g_ptr_array_index(complete, i));
	g_ptr_array_free(complete, TRUE);
	c->reads->wake_unlock(c, &c->mem_wait, cache_answers_new());
}

/*
 * The lookups of one cache_lookup_shared() call. The blocks that miss are
 * asked of the source once every lookup has ended, in runs of neighbours:
 * as few Range requests as without the tier, not one per block.
 */
struct shared_batch {
	struct cfs_cache *c;
	struct cfs_object *obj;
	enum cfs_fetch_priority prio; /* of the bytes that made the lookups */
	GPtrArray *lookups;           /* struct shared_lookup *, in block order */
	guint pending;                /* lookups not ended yet; under c->lock */
};

/* A block being looked up; pinned, and in flight until it hits or its batch ends. */
struct shared_lookup {
	struct shared_batch *batch;
	struct block *b;
	bool missed;
};

/*
 * Ask the source for [start, end), a run of missed blocks of the object of
 * st, unless nothing is asked for any more.
 */
static void request_run(struct shared_batch *batch, struct object_state *st, uint64_t start,
			uint64_t end, GArray *answers)
{
	struct cfs_cache *c = batch->c;
	if (start == end)
		return;
	if (c->closing)
		c->reads->lost(c, st, start, end, -ECANCELED, answers);
	else
		cache_request_missing(c, batch->obj, start, end - start, batch->prio);
}

/*
 * Every lookup of batch has ended: its missed blocks are no longer in
 * flight and are asked for, one request per run of neighbouring blocks
 * (cache_request_missing() splits a long run); then the pins go and the
 * batch is freed. Lock held.
 */
static void end_batch(struct shared_batch *batch, GArray *answers)
{
	struct cfs_cache *c = batch->c;
	struct object_state *st = NULL;
	uint64_t run_start = 0, run_end = 0;
	for (guint i = 0; i < batch->lookups->len; i++) {
		struct shared_lookup *t = g_ptr_array_index(batch->lookups, i);
		if (!t->missed)
			continue;
		cfs_extents_remove(&t->b->inflight, 0, t->b->len);
		uint64_t start = block_start(c, t->b->key.index);
		if (start != run_end) {
			request_run(batch, st, run_start, run_end, answers);
			run_start = start;
		}
		run_end = start + t->b->len;
		st = t->b->state;
	}
	request_run(batch, st, run_start, run_end, answers);
	for (guint i = 0; i < batch->lookups->len; i++) {
		struct shared_lookup *t = g_ptr_array_index(batch->lookups, i);
		cache_unpin(c, t->b);
		g_free(t);
	}
	g_ptr_array_free(batch->lookups, TRUE);
	g_free(batch);
}

/* A hit lands at once; a miss stays in flight until its batch ends. */
static void shared_done(void *ctx, bool hit)
{
	struct shared_lookup *t = ctx;
	struct shared_batch *batch = t->batch;
	struct cfs_cache *c = batch->c;
	struct block *b = t->b;
	GArray *answers = cache_answers_new();
	g_mutex_lock(&c->lock);
	t->missed = !hit;
	uint64_t start = block_start(c, b->key.index);
	if (hit) {
		cfs_extents_remove(&b->inflight, 0, b->len);
		cfs_extents_add(&b->filled, 0, b->len);
		b->clean = false; /* the spill tier does not hold it */
		c->reads->landed(c, b->state, start, start + b->len, answers);
	}
	if (c->closing)
		c->reads->lost(c, b->state, start, start + b->len, -ECANCELED, answers);
	if (--batch->pending == 0)
		end_batch(batch, answers);
	c->reads->wake_unlock(c, &c->mem_wait, answers);
}

/* Add b to batch when it holds nothing and has nothing coming: in flight and pinned. */
static void add_lookup(struct cfs_cache *c, struct shared_batch *batch, struct block *b)
{
	if (b->filled.n || b->inflight.n)
		return;
	struct shared_lookup *t = g_new(struct shared_lookup, 1);
	*t = (struct shared_lookup){ batch, b, false };
	cfs_extents_add(&b->inflight, 0, b->len);
	cache_pin(c, b);
	g_ptr_array_add(batch->lookups, t);
}

/* Start the lookups of batch, which end no earlier than the caller drops c->lock. */
static void start_batch(struct cfs_cache *c, struct shared_batch *batch, const char *etag)
{
	batch->pending = batch->lookups->len;
	for (guint i = 0; i < batch->lookups->len; i++) {
		struct shared_lookup *t = g_ptr_array_index(batch->lookups, i);
		struct cfs_shared_id id = shared_id(c, t->b, etag);
		cfs_shared_lookup(c->shared, &id, t->b->data, t->b->len,
				  batch->prio == CFS_FETCH_DEMAND, shared_done, t);
	}
}

void cache_lookup_shared(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, uint64_t len,
			 enum cfs_fetch_priority prio)
{
	if (!c->shared || c->closing)
		return;
	char *etag = cache_validator(c, obj);
	struct shared_batch *batch = g_new(struct shared_batch, 1);
	*batch = (struct shared_batch){ c, obj, prio, g_ptr_array_new(), 0 };
	FOR_EACH_BLOCK(c, off, len, idx, lo, hi) {
		struct block *b = cache_block_get(c, obj, idx);
		if (b && etag && *etag)
			add_lookup(c, batch, b);
	}
	if (batch->lookups->len) {
		start_batch(c, batch, etag);
	} else {
		g_ptr_array_free(batch->lookups, TRUE);
		g_free(batch);
	}
	g_free(etag);
}

/* ---- learning an ETag before a read-back ---- */

struct check {
	struct cfs_cache *c;
	struct cfs_object *remote;
	struct object_state *state;   /* remote's */
};

static int head_on_response(void *ctx, const struct cfs_response_info *info)
{
	return cfs_object_check_response(((struct check *)ctx)->remote, info);
}

static void head_on_done(void *ctx, int err)
{
	struct check *k = ctx;
	struct cfs_cache *c = k->c;
	struct object_state *st = k->state;
	g_free(k);
	GArray *answers = cache_answers_new();
	g_mutex_lock(&c->lock);
	/* Without an answer the spill tier stays unused for it, until a GET brings the ETag. */
	st->validation = err ? VALIDATION_FAILED : VALIDATED;
	c->reads->wake_unlock(c, &c->val_wait, answers);
}

static const struct cfs_fetch_ops head_ops = {
	.on_response = head_on_response,
	.on_done = head_on_done,
};

/* The spill tier holds a block of r, whatever its ETag. */
static bool disk_holds(struct cfs_cache *c, const struct parked *r)
{
	FOR_EACH_BLOCK(c, r->off, r->len, idx, lo, hi)
		if (cfs_disk_has(c->disk, r->obj->name, idx, NULL, 0))
			return true;
	return false;
}

bool cache_needs_validation(struct cfs_cache *c, const struct parked *r)
{
	if (!c->disk && !c->shared)
		return false;
	struct cfs_object *remote = cache_remote_of(r->obj);
	struct object_state *st = cache_object(c, remote);
	if (st->validation == VALIDATED || st->validation == VALIDATION_FAILED)
		return false;
	if (st->validation == VALIDATING)
		return true;
	char *etag = cfs_object_etag(remote);
	/* The shared tier names blocks by ETag: without one no lookup can be made. */
	bool unknown = !etag && (c->shared || disk_holds(c, r));
	g_free(etag);
	if (!unknown)
		return false;
	struct check *k = g_new(struct check, 1);
	*k = (struct check){ c, remote, st };
	st->validation = VALIDATING;
	cfs_stats_add(CFS_VALIDATIONS, 1);
	c->source.ops->submit_head(c->source.src, remote, &head_ops, k);
	return true;
}
