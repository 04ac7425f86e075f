/*
 * Warming (mem.h, cfs_cache_warm()): a range of an object fetched into the
 * tiers ahead of a job, one window at a time, at readahead priority, and
 * written to the spill tier as soon as its blocks are complete; and where
 * the bytes of a range are (cfs_cache_residency()). Part of the reads
 * layer beside mem.c: it calls the sources (fill.c) and the block store
 * (store.c), and nothing calls back.
 */
#include "cache/mem.h"

#include <errno.h>

#include "cache_i.h"
#include "remote/listing.h"
#include "spill/spill.h"
#include "cache/zstream.h"

/*
 * Bytes one warm of an object has on the wire at most: this, or this
 * fraction of the cap (at least a block), so that a few files warmed at
 * once leave most of the memory tier to the readers of a running job.
 */
#define WARM_WINDOW_MAX (UINT64_C(32) << 20)
#define WARM_WINDOW_CAP_DIVISOR 8

static uint64_t warm_window(const struct cfs_cache *c)
{
	return MAX(c->block_size, MIN(WARM_WINDOW_MAX, c->cap / WARM_WINDOW_CAP_DIVISOR));
}

/*
 * Blocks one hold of the cache lock walks at most: a step walks its whole
 * range (an 8 GiB file of 64 KiB blocks is 131072 blocks, milliseconds of
 * lookups), and readers must get the lock in between (docs/architecture.md,
 * "Warming", has the measures).
 */
#define BATCH_BLOCKS 4096

/* The end of the batch of [from, end) that starts at from. */
static uint64_t batch_end(const struct cfs_cache *c, uint64_t from, uint64_t end)
{
	return MIN(end, block_start(c, from / c->block_size + BATCH_BLOCKS));
}

/* Bytes of [lo, hi) that the set covers. */
static uint64_t overlap(const struct cfs_extents *set, uint32_t lo, uint32_t hi)
{
	uint64_t n = 0;
	for (uint32_t i = 0; i < set->n; i++)
		if (set->v[i].lo < hi && lo < set->v[i].hi)
			n += MIN(hi, set->v[i].hi) - MAX(lo, set->v[i].lo);
	return n;
}

static uint64_t block_count(const struct cfs_cache *c, const struct cfs_object *obj)
{
	return (obj->size + c->block_size - 1) / c->block_size;
}

/*
 * The spill tier holds block idx of obj. etag is the one its file must
 * carry, or NULL while it is not known (the next read asks for it before
 * trusting the file, and a changed object is fetched again then).
 */
static bool on_disk(struct cfs_cache *c, struct cfs_object *obj, uint64_t idx, const char *etag)
{
	return c->disk && cfs_disk_has(c->disk, obj->name, idx, etag, block_count(c, obj));
}

/*
 * The first and last blocks of a range are where another range's bytes
 * were likely spilled alone (a chunk header, a neighbouring item, a tar
 * index window), and the spill tier's index does not say which bytes a
 * file holds: a warm reads them back to see (when the ETag they must carry
 * is known), and counts them warm once memory holds them complete and the
 * spill tier exactly that.
 */
static bool is_edge(const struct cfs_cache *c, uint64_t off, uint64_t len, uint64_t idx)
{
	return idx == off / c->block_size || idx == (off + len - 1) / c->block_size;
}

/* Where bytes [lo, hi) of block idx of obj are, counted into *res; verify: see is_edge(). */
static void count_block(struct cfs_cache *c, struct cfs_object *obj, uint64_t idx, uint32_t lo,
			uint32_t hi, const char *etag, bool verify, struct cfs_residency *res)
{
	struct block *b = cache_block_get(c, obj, idx);
	uint64_t len = hi - lo, mem = b ? overlap(&b->filled, lo, hi) : 0;
	bool disk = verify && etag ? c->disk && b && b->clean && mem == len
				   : on_disk(c, obj, idx, etag);
	res->mem += mem;
	res->disk += disk ? len : 0;
	res->remote += disk ? 0 : len - mem;
	res->warm += c->disk ? (disk ? len : 0) : mem;
}

/*
 * Add where the bytes of [from, to), a batch of [off, off + len) of obj,
 * are to *res; warming: verify the edges of the range (is_edge()).
 */
static void count_batch(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, uint64_t len,
			uint64_t from, uint64_t to, bool warming, struct cfs_residency *res)
{
	char *etag = c->disk ? cache_validator(c, obj) : NULL;
	FOR_EACH_BLOCK(c, from, to - from, idx, lo, hi) {
		bool verify = warming && !obj->compressed && is_edge(c, off, len, idx);
		count_block(c, obj, idx, (uint32_t)lo, (uint32_t)hi, etag, verify, res);
	}
	g_free(etag);
}

/*
 * Count where the bytes of [off, off + len) of obj are, a batch per hold
 * of the lock (taken here): each block is counted once, as it is when its
 * batch is walked.
 */
static void count_range(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, uint64_t len,
			bool warming, struct cfs_residency *res)
{
	*res = (struct cfs_residency){ .size = len };
	for (uint64_t from = off, to; from < off + len; from = to) {
		to = batch_end(c, from, off + len);
		g_mutex_lock(&c->lock);
		count_batch(c, obj, off, len, from, to, warming, res);
		g_mutex_unlock(&c->lock);
	}
}

/*
 * Write b, complete over the range warmed, to the spill tier when it lacks
 * it and the writes in flight leave room: the spill tier is where warmed
 * bytes live, and a block written now is evicted later without a write.
 */
static void spill_warmed(struct cfs_cache *c, struct block *b)
{
	if (b->pins == 0 && cache_needs_spill(c, b) &&
	    c->spilling + b->len <= cache_spill_budget(c))
		cache_spill(c, b);
}

/* Bytes of [off, off + len) of obj that requests are bringing; takes the lock a batch at once. */
static uint64_t inflight_bytes(struct cfs_cache *c, struct cfs_object *obj, uint64_t off,
			       uint64_t len)
{
	uint64_t n = 0;
	for (uint64_t from = off, to; from < off + len; from = to) {
		to = batch_end(c, from, off + len);
		g_mutex_lock(&c->lock);
		FOR_EACH_BLOCK(c, from, to - from, idx, lo, hi) {
			struct block *b = cache_block_get(c, obj, idx);
			n += b ? overlap(&b->inflight, (uint32_t)lo, (uint32_t)hi) : 0;
		}
		g_mutex_unlock(&c->lock);
	}
	return n;
}

/* Where a warm pass over a range stands: the blocks held for the run of misses being planned. */
struct warm_pass {
	struct cfs_object *obj;
	uint64_t off, len; /* the range warmed */
	char *etag;        /* see on_disk(), learnt under the lock at the pass's first batch */
	uint64_t budget;   /* bytes it may still ask for */
	uint64_t run_off, run_end;
	GPtrArray *held;
};

/* Ask for the missing bytes of the run planned, at readahead priority, and let its blocks go. */
static void flush_run(struct cfs_cache *c, struct warm_pass *p)
{
	if (p->run_off < p->run_end)
		cache_request_warm(c, p->obj, p->run_off, p->run_end - p->run_off);
	for (guint i = 0; i < p->held->len; i++)
		cache_unpin(c, g_ptr_array_index(p->held, i));
	g_ptr_array_set_size(p->held, 0);
	p->run_off = p->run_end = 0;
}

/*
 * Add bytes [lo, hi) of block idx, missing from both tiers, to the run;
 * false when the window is full or no room can be made without touching
 * what reads and requests hold.
 */
static bool add_to_run(struct cfs_cache *c, struct warm_pass *p, struct block *b, uint64_t idx,
		       uint32_t lo, uint32_t hi)
{
	if (p->budget < hi - lo)
		return false;
	if (!b && (!cache_make_room(c, cache_block_len(c, p->obj, idx)) ||
		   !(b = cache_block_new(c, p->obj, idx))))
		return false;
	cache_pin(c, b);
	g_ptr_array_add(p->held, b);
	if (p->run_off == p->run_end)
		p->run_off = block_start(c, idx) + lo;
	p->run_end = block_start(c, idx) + hi;
	p->budget -= hi - lo;
	return true;
}

/*
 * Read back edge block idx (is_edge()), which the spill tier holds and
 * memory does not, to learn which bytes it holds; false when there is no
 * room for it.
 */
static bool read_back(struct cfs_cache *c, struct warm_pass *p, struct block *b, uint64_t idx)
{
	if (b)
		return true; /* being read back, or holding bytes: the next pass sees */
	if (!cache_make_room(c, cache_block_len(c, p->obj, idx)) ||
	    !(b = cache_block_new(c, p->obj, idx)))
		return false;
	cache_pin(c, b);
	cache_load_blocks(c, p->obj, block_start(c, idx), b->len);
	cache_unpin(c, b);
	return true;
}

/*
 * One pass over the batch [from, to) of the range of a remote object:
 * complete blocks go to the spill tier, blocks the spill tier holds are
 * left there (not read back), and the rest is asked for in runs of
 * neighbouring blocks while the window allows. False once it does not.
 */
static bool warm_remote(struct cfs_cache *c, struct warm_pass *p, uint64_t from, uint64_t to)
{
	bool more = true;
	FOR_EACH_BLOCK(c, from, to - from, idx, lo, hi) {
		struct block *b = cache_block_get(c, p->obj, idx);
		bool complete = b && cfs_extents_covers(&b->filled, (uint32_t)lo, (uint32_t)hi);
		if (complete)
			spill_warmed(c, b);
		bool disk = !complete && on_disk(c, p->obj, idx, p->etag);
		bool edge = p->etag && is_edge(c, p->off, p->len, idx);
		if (complete || (disk && !edge)) {
			flush_run(c, p);
			continue;
		}
		if (disk && (!b || b->filled.n == 0)) {
			flush_run(c, p);
			if (!(more = read_back(c, p, b, idx)))
				break;
			continue;
		}
		if (!(more = add_to_run(c, p, b, idx, (uint32_t)lo, (uint32_t)hi)))
			break;
	}
	flush_run(c, p);
	return more;
}

/*
 * A decompressed object comes from a zstd stream, in order: complete
 * blocks of the batch [from, to) go to the spill tier, and the stream is
 * asked for a window from the first byte neither tier holds. False once
 * it has been.
 */
static bool warm_decompressed(struct cfs_cache *c, struct warm_pass *p, uint64_t from, uint64_t to)
{
	FOR_EACH_BLOCK(c, from, to - from, idx, lo, hi) {
		struct block *b = cache_block_get(c, p->obj, idx);
		if (b && cfs_extents_covers(&b->filled, (uint32_t)lo, (uint32_t)hi)) {
			spill_warmed(c, b);
			continue;
		}
		if (on_disk(c, p->obj, idx, p->etag))
			continue;
		uint64_t first = block_start(c, idx) + lo;
		cfs_zstd_want(c->zstd, p->obj, first, MIN(p->off + p->len, first + p->budget),
			      CFS_FETCH_READAHEAD);
		return false;
	}
	return true;
}

/* One batch [from, to) of the pass p, with the lock held; false when the pass is over. */
static bool warm_batch(struct cfs_cache *c, struct warm_pass *p, uint64_t from, uint64_t to)
{
	if (c->closing)
		return false;
	if (from == p->off && c->disk)
		p->etag = cache_validator(c, p->obj);
	if (p->obj->compressed)
		return warm_decompressed(c, p, from, to);
	return p->budget && warm_remote(c, p, from, to);
}

/*
 * The error that ends a warm of [off, off + len) of obj, or 0: the tier
 * closing, bytes that cannot be had, or the kept failure of a request a
 * warm of obj started (cache_request_warm()) over bytes of the range, which
 * is reported once.
 */
static int warm_error(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, uint64_t len)
{
	if (c->closing)
		return -ECANCELED;
	if (obj->size == CFS_SIZE_UNKNOWN || off + len > obj->size ||
	    (obj->compressed &&
	     (obj->compressed->size == CFS_SIZE_UNKNOWN || obj->compressed->size == 0)))
		return -EIO;
	struct object_state *st = cache_object_find(c, obj);
	if (!st)
		return 0;
	if (st->error && off + len > st->bad_from)
		return st->error;
	struct warm_failure *wf = &st->warm_failed;
	if (!wf->err || wf->end <= off || off + len <= wf->off)
		return 0;
	int err = wf->err;
	wf->err = 0;
	return err;
}

/*
 * Warm [off, off + len) of obj (len > 0), a batch per hold of the lock
 * (taken here); no run of a request spans two batches, as the blocks held
 * for a run are let go with the lock.
 */
static void warm_range(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, uint64_t len)
{
	uint64_t window = warm_window(c), busy = inflight_bytes(c, obj, off, len);
	struct warm_pass p = { .obj = obj,
			       .off = off,
			       .len = len,
			       .budget = window - MIN(window, busy),
			       .held = g_ptr_array_new() };
	bool more = true;
	for (uint64_t from = off, to; more && from < off + len; from = to) {
		to = batch_end(c, from, off + len);
		g_mutex_lock(&c->lock);
		more = warm_batch(c, &p, from, to);
		g_mutex_unlock(&c->lock);
	}
	g_ptr_array_free(p.held, TRUE);
	g_free(p.etag);
}

int cfs_cache_warm(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, uint64_t len,
		   struct cfs_residency *out)
{
	g_mutex_lock(&c->lock);
	int err = warm_error(c, obj, off, len);
	g_mutex_unlock(&c->lock);
	if (err)
		return err;
	struct prefault pf;
	cache_prefault_begin(&pf);
	if (len)
		warm_range(c, obj, off, len);
	cache_prefault_end(&pf);
	count_range(c, obj, off, len, true, out);
	return 0;
}

int cfs_cache_residency(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, uint64_t len,
			struct cfs_residency *out)
{
	if (obj->size == CFS_SIZE_UNKNOWN || off + len > obj->size)
		return -EIO;
	count_range(c, obj, off, len, false, out);
	return 0;
}
