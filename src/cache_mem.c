/* The memory tier: blocks with fill marks, parked reads, the fetch planner and LRU eviction. */
#include "chunkfs/cache_mem.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "chunkfs/extents.h"
#include "chunkfs/fetch.h"
#include "chunkfs/listing.h"
#include "chunkfs/object.h"
#include "chunkfs/readahead.h"
#include "chunkfs/stats.h"
#include "chunkfs/zstream.h"

/*
 * Larger gaps are split so that a long readahead runs over several
 * connections; long requests keep the server's own readahead going.
 */
#define MAX_REQUEST_BYTES (UINT64_C(32) << 20)
/*
 * Threads that send the replies of reads answered by arriving bytes: sending
 * copies the bytes into the kernel's page cache, which the fetcher thread
 * should not wait for while the next bytes arrive.
 */
#define REPLY_THREADS 2

struct block_key {
	uint32_t obj;
	uint64_t index;
};

struct block {
	struct block_key key;
	uint32_t len;                 /* bytes of the object this block holds when full */
	uint8_t *data;                /* len bytes, mmap'd so that eviction returns them */
	struct cfs_extents filled;    /* bytes that have landed */
	struct cfs_extents inflight;  /* bytes a running request will deliver */
	unsigned pins;                /* parked reads and requests using the block */
	bool in_lru;
	GList lru;                    /* in cache.lru while unpinned and holding bytes */
};

/*
 * A read: parked until its bytes land (in obj->parked), waiting for room (in
 * cache.mem_wait), or being answered.
 */
struct parked {
	struct cfs_object *obj;
	uint64_t off, len;
	GBytes *head;                 /* bytes answered before the object's, or NULL */
	cfs_read_done_fn done;
	void *cookie;
	bool pinned;                  /* holds a pin on each of its blocks */
	GList link;
};

/* One request filling blocks; the blocks it covers stay pinned until it ends. */
struct fill {
	struct cfs_cache *cache;
	struct cfs_object *obj;
	uint64_t start, end, next;    /* asked [start, end); delivered up to next */
	GPtrArray *blocks;            /* struct block *, covering [start, end) in order */
};

struct cfs_cache {
	GMutex lock;
	uint64_t cap, used, block_size, readahead;
	struct cfs_fetcher *fetcher;
	struct cfs_zstd *zstd;        /* streams that fill decompressed objects */
	GHashTable *blocks;           /* struct block_key * -> struct block * */
	GQueue lru;                   /* unpinned blocks, least recently used first */
	GQueue mem_wait;              /* struct parked waiting for room, oldest first */
	GThreadPool *repliers;        /* sends struct answer * queued by the fetcher thread */
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

static const struct cfs_fetch_ops fill_ops;

static guint key_hash(gconstpointer p)
{
	const struct block_key *k = p;
	return (guint)(k->index * 0x9E3779B97F4A7C15ull >> 32) ^ k->obj;
}

static gboolean key_equal(gconstpointer a, gconstpointer b)
{
	const struct block_key *x = a, *y = b;
	return x->obj == y->obj && x->index == y->index;
}

static uint64_t block_start(const struct cfs_cache *c, uint64_t index)
{
	return index * c->block_size;
}

static uint32_t block_len(const struct cfs_cache *c, const struct cfs_object *obj, uint64_t index)
{
	return (uint32_t)MIN(c->block_size, obj->size - block_start(c, index));
}

static struct block *block_get(struct cfs_cache *c, const struct cfs_object *obj, uint64_t index)
{
	struct block_key k = { obj->id, index };
	return g_hash_table_lookup(c->blocks, &k);
}

static void block_free(struct cfs_cache *c, struct block *b)
{
	g_hash_table_remove(c->blocks, &b->key);
	munmap(b->data, b->len);
	cfs_extents_clear(&b->filled);
	cfs_extents_clear(&b->inflight);
	c->used -= b->len;
	cfs_stats_gauge_set(CFS_MEM_BYTES, (int64_t)c->used);
	cfs_stats_gauge_add(CFS_MEM_BLOCKS, -1);
	g_free(b);
}

static void evict_lru(struct cfs_cache *c)
{
	struct block *b = c->lru.head->data;
	g_queue_unlink(&c->lru, &b->lru);
	b->in_lru = false;
	block_free(c, b);
	cfs_stats_add(CFS_MEM_EVICTIONS, 1);
}

/* Evict unpinned blocks until bytes more fit under the cap. */
static bool make_room(struct cfs_cache *c, uint64_t bytes)
{
	while (c->used + bytes > c->cap && c->lru.head)
		evict_lru(c);
	return c->used + bytes <= c->cap;
}

/* A new, empty, unpinned block that is in no list; the caller pins it. */
static struct block *block_new(struct cfs_cache *c, const struct cfs_object *obj, uint64_t index)
{
	uint32_t len = block_len(c, obj, index);
	void *data = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (data == MAP_FAILED)
		return NULL;
	struct block *b = g_new0(struct block, 1);
	b->key = (struct block_key){ obj->id, index };
	b->len = len;
	b->data = data;
	b->lru.data = b;
	g_hash_table_insert(c->blocks, &b->key, b);
	c->used += len;
	cfs_stats_gauge_set(CFS_MEM_BYTES, (int64_t)c->used);
	cfs_stats_gauge_add(CFS_MEM_BLOCKS, 1);
	return b;
}

static void pin(struct cfs_cache *c, struct block *b)
{
	b->pins++;
	if (b->in_lru) {
		g_queue_unlink(&c->lru, &b->lru);
		b->in_lru = false;
	}
}

static void unpin(struct cfs_cache *c, struct block *b)
{
	if (--b->pins > 0)
		return;
	if (b->filled.n == 0 && b->inflight.n == 0) {
		block_free(c, b); /* nothing landed and nothing will */
	} else {
		g_queue_push_tail_link(&c->lru, &b->lru);
		b->in_lru = true;
	}
}

/* Loop over the block indexes of [off, off + len); lo and hi bound the range inside each block. */
#define FOR_EACH_BLOCK(c, off, len, idx, lo, hi)                                              \
	for (uint64_t idx = (off) / (c)->block_size, _end = (off) + (len), lo G_GNUC_UNUSED,   \
	     hi G_GNUC_UNUSED;                                                                \
	     block_start(c, idx) < _end &&                                                    \
	     (lo = MAX(off, block_start(c, idx)) - block_start(c, idx),                       \
	     hi = MIN(_end, block_start(c, idx + 1)) - block_start(c, idx), 1);               \
	     idx++)

static bool is_present(struct cfs_cache *c, const struct cfs_object *obj, uint64_t off,
		       uint64_t len)
{
	FOR_EACH_BLOCK(c, off, len, idx, lo, hi) {
		struct block *b = block_get(c, obj, idx);
		if (!b || !cfs_extents_covers(&b->filled, (uint32_t)lo, (uint32_t)hi))
			return false;
	}
	return true;
}

/* r's head, then the bytes of its pinned, present range: one iovec per block (g_malloc'd). */
static struct iovec *read_iov(struct cfs_cache *c, const struct parked *r, int *count)
{
	uint64_t first = r->off / c->block_size;
	uint64_t last = r->len ? (r->off + r->len - 1) / c->block_size : first;
	struct iovec *iov = g_new(struct iovec, last - first + 2);
	int n = 0;
	if (r->head) {
		gsize len;
		const void *data = g_bytes_get_data(r->head, &len);
		iov[n++] = (struct iovec){ (void *)data, len };
	}
	FOR_EACH_BLOCK(c, r->off, r->len, idx, lo, hi) {
		struct block *b = block_get(c, r->obj, idx);
		iov[n++] = (struct iovec){ b->data + lo, hi - lo };
	}
	*count = n;
	return iov;
}

/* The answer of r: its bytes, or err. r's blocks must be pinned unless err. */
static struct answer make_answer(struct cfs_cache *c, struct parked *r, int err)
{
	struct answer a = { r, NULL, 0, err };
	if (!err)
		a.iov = read_iov(c, r, &a.iovcnt);
	return a;
}

/* Drop the pins of r; a block missing here is one pin_read() failed to create. */
static void unpin_read(struct cfs_cache *c, struct parked *r)
{
	if (!r->pinned)
		return;
	FOR_EACH_BLOCK(c, r->off, r->len, idx, lo, hi) {
		struct block *b = block_get(c, r->obj, idx);
		if (b)
			unpin(c, b);
	}
	r->pinned = false;
}

/* Pin the blocks of r, creating the missing ones; false (holding nothing) when they do not fit. */
static bool pin_read(struct cfs_cache *c, struct parked *r)
{
	uint64_t missing = 0;
	FOR_EACH_BLOCK(c, r->off, r->len, idx, lo, hi) {
		struct block *b = block_get(c, r->obj, idx);
		if (b)
			pin(c, b);
		else
			missing += block_len(c, r->obj, idx);
	}
	r->pinned = true;
	if (!make_room(c, missing)) {
		unpin_read(c, r);
		return false;
	}
	FOR_EACH_BLOCK(c, r->off, r->len, idx, lo, hi) {
		if (block_get(c, r->obj, idx))
			continue;
		struct block *b = block_new(c, r->obj, idx);
		if (!b) {
			unpin_read(c, r);
			return false;
		}
		pin(c, b);
	}
	return true;
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
		struct block *b = block_get(c, obj, idx);
		struct cfs_extent gap = { (uint32_t)lo, (uint32_t)lo };
		while (cfs_extents_first_gap(&b->filled, &b->inflight, gap.hi, (uint32_t)hi, &gap))
			append_range(ranges, block_start(c, idx) + gap.lo, block_start(c, idx) + gap.hi);
	}
}

/* Issue one request per range: its bytes become in flight and its blocks pinned. */
static void issue(struct cfs_cache *c, struct cfs_object *obj, GArray *ranges,
		  enum cfs_fetch_priority prio)
{
	for (guint i = 0; i < ranges->len; i++) {
		struct range *r = &g_array_index(ranges, struct range, i);
		struct fill *f = g_new0(struct fill, 1);
		f->cache = c;
		f->obj = obj;
		f->start = f->next = r->start;
		f->end = r->end;
		f->blocks = g_ptr_array_new();
		FOR_EACH_BLOCK(c, r->start, r->end - r->start, idx, lo, hi) {
			struct block *b = block_get(c, obj, idx);
			cfs_extents_add(&b->inflight, (uint32_t)lo, (uint32_t)hi);
			pin(c, b);
			g_ptr_array_add(f->blocks, b);
		}
		if (prio == CFS_FETCH_READAHEAD)
			cfs_stats_add(CFS_READAHEAD_BYTES, r->end - r->start);
		cfs_fetcher_submit(c->fetcher, obj->name, obj->url, r->start, r->end, prio,
				   &fill_ops, f);
	}
}

/* Request the gaps of [off, off + len); its blocks must exist and be pinned. */
static void fetch_gaps(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, uint64_t len,
		       enum cfs_fetch_priority prio)
{
	GArray *ranges = g_array_new(FALSE, FALSE, sizeof(struct range));
	add_gaps(c, obj, off, len, ranges);
	issue(c, obj, ranges, prio);
	g_array_free(ranges, TRUE);
}

/* The first byte of [off, off + len) that has not landed; false when all have. */
static bool first_missing(struct cfs_cache *c, const struct cfs_object *obj, uint64_t off,
			  uint64_t len, uint64_t *first)
{
	FOR_EACH_BLOCK(c, off, len, idx, lo, hi) {
		struct block *b = block_get(c, obj, idx);
		struct cfs_extent gap = { (uint32_t)lo, (uint32_t)hi };
		if (!b || cfs_extents_first_gap(&b->filled, NULL, (uint32_t)lo, (uint32_t)hi, &gap)) {
			*first = block_start(c, idx) + gap.lo;
			return true;
		}
	}
	return false;
}

/*
 * A decompressed object's bytes come from a zstd stream, in order: ask for
 * everything from the first missing byte to the end of the range.
 */
static void want_decompressed(struct cfs_cache *c, struct cfs_object *obj, uint64_t off,
			      uint64_t len, enum cfs_fetch_priority prio)
{
	uint64_t first, end = obj->error ? MIN(off + len, obj->bad_from) : off + len;
	if (first_missing(c, obj, off, len, &first) && first < end)
		cfs_zstd_want(c->zstd, obj, first, end, prio);
}

/* An object whose bytes cannot be had: compressed, of a size nobody could tell. */
static bool undecodable(const struct cfs_object *obj)
{
	return obj->compressed && obj->compressed->size == CFS_SIZE_UNKNOWN;
}

/*
 * Fetch [start, end) of obj ahead of any reader. The range's blocks are
 * held while it is planned, so that making room for one of them cannot
 * evict another; it is cut short at the first block that finds no room.
 * A decompressed object's stream makes its own blocks as bytes come out.
 */
static void prefetch(struct cfs_cache *c, struct cfs_object *obj, uint64_t start, uint64_t end)
{
	if (obj->compressed) {
		if (!undecodable(obj))
			want_decompressed(c, obj, start, end - start, CFS_FETCH_READAHEAD);
		return;
	}
	GPtrArray *held = g_ptr_array_new();
	FOR_EACH_BLOCK(c, start, end - start, idx, lo, hi) {
		struct block *b = block_get(c, obj, idx);
		if (!b && (!make_room(c, block_len(c, obj, idx)) || !(b = block_new(c, obj, idx)))) {
			end = MAX(start, block_start(c, idx));
			break;
		}
		pin(c, b);
		g_ptr_array_add(held, b);
	}
	if (start < end)
		fetch_gaps(c, obj, start, end - start, CFS_FETCH_READAHEAD);
	for (guint i = 0; i < held->len; i++)
		unpin(c, g_ptr_array_index(held, i));
	g_ptr_array_free(held, TRUE);
}

/* Ask for the readahead window of the stream this read continues, if any. */
static void readahead(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, uint64_t len)
{
	uint64_t start, end;
	if (cfs_readahead_advise(&obj->streams, off, len, obj->size, c->readahead, &start, &end))
		prefetch(c, obj, start, end);
}

/* r needs bytes of its object that proved bad. */
static bool hits_bad_bytes(const struct parked *r)
{
	return r->obj->error && r->off + r->len > r->obj->bad_from;
}

enum outcome { ANSWERED, PARKED, WAITING };

/*
 * Serve r under the lock: answer it from memory (filling *ans), or park it
 * on its object after asking for its missing bytes, or queue it to wait for
 * room.
 */
static enum outcome serve(struct cfs_cache *c, struct parked *r, struct answer *ans)
{
	if (hits_bad_bytes(r)) {
		*ans = make_answer(c, r, r->obj->error);
		return ANSWERED;
	}
	if (is_present(c, r->obj, r->off, r->len)) {
		pin_read(c, r); /* needs no room: every block is there */
		*ans = make_answer(c, r, 0);
		cfs_stats_add(CFS_MEM_HITS, 1);
		readahead(c, r->obj, r->off, r->len);
		return ANSWERED;
	}
	if (undecodable(r->obj)) {
		*ans = make_answer(c, r, -EIO);
		return ANSWERED;
	}
	if (!pin_read(c, r)) {
		g_queue_push_tail_link(&c->mem_wait, &r->link);
		return WAITING;
	}
	if (r->obj->compressed)
		want_decompressed(c, r->obj, r->off, r->len, CFS_FETCH_DEMAND);
	else
		fetch_gaps(c, r->obj, r->off, r->len, CFS_FETCH_DEMAND);
	g_queue_push_tail_link(&r->obj->parked, &r->link);
	cfs_stats_add(CFS_MEM_MISSES, 1);
	cfs_stats_gauge_add(CFS_READS_PARKED, 1);
	readahead(c, r->obj, r->off, r->len);
	return PARKED;
}

static void parked_free(struct parked *r)
{
	if (r->head)
		g_bytes_unref(r->head);
	g_free(r);
}

/* Send the answer, then drop the pins that kept its bytes in place. */
static void deliver(struct cfs_cache *c, struct answer *a)
{
	struct parked *r = a->r;
	if (a->err) {
		cfs_stats_add(CFS_READ_ERRORS, 1);
		r->done(r->cookie, NULL, 0, 0, a->err);
	} else {
		size_t len = r->len + (r->head ? g_bytes_get_size(r->head) : 0);
		cfs_stats_add(CFS_READS, 1);
		cfs_stats_add(CFS_BYTES_SERVED, len);
		r->done(r->cookie, a->iov, a->iovcnt, len, 0);
	}
	if (r->pinned) {
		g_mutex_lock(&c->lock);
		unpin_read(c, r);
		g_mutex_unlock(&c->lock);
	}
	g_free(a->iov);
	parked_free(r);
}

static void deliver_queued(gpointer data, gpointer cache)
{
	deliver(cache, data);
	g_free(data);
}

/* Hand the answers collected in the fetcher thread to the reply threads. */
static void deliver_all(struct cfs_cache *c, GArray *answers)
{
	for (guint i = 0; i < answers->len; i++)
		g_thread_pool_push(c->repliers, g_memdup2(&g_array_index(answers, struct answer, i),
							  sizeof(struct answer)), NULL);
	g_array_free(answers, TRUE);
}

/* Take r off its object's parked list and queue its answer. */
static void unpark(struct cfs_cache *c, struct parked *r, int err, GArray *answers)
{
	g_queue_unlink(&r->obj->parked, &r->link);
	cfs_stats_gauge_add(CFS_READS_PARKED, -1);
	struct answer a = make_answer(c, r, err);
	if (err)
		unpin_read(c, r);
	g_array_append_val(answers, a);
}

/* Answer the parked reads of obj that overlap [off, end) and are now complete. */
static void answer_ready(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, uint64_t end,
			 GArray *answers)
{
	for (GList *l = obj->parked.head; l;) {
		struct parked *r = l->data;
		l = l->next;
		if (r->off < end && off < r->off + r->len && is_present(c, obj, r->off, r->len))
			unpark(c, r, 0, answers);
	}
}

/* Retry the reads waiting for room, oldest first, while they fit. */
static void retry_waiting(struct cfs_cache *c, GArray *answers)
{
	GQueue waiting = c->mem_wait;
	g_queue_init(&c->mem_wait);
	GList *l;
	while ((l = g_queue_pop_head_link(&waiting))) {
		struct answer a;
		if (serve(c, l->data, &a) == ANSWERED)
			g_array_append_val(answers, a);
	}
}

static int fill_on_response(void *ctx, const struct cfs_response_info *info)
{
	struct fill *f = ctx;
	int err = cfs_object_check_response(f->obj, info);
	if (err) {
		g_mutex_lock(&f->cache->lock);
		f->obj->error = err;
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
	GArray *answers = g_array_new(FALSE, FALSE, sizeof(struct answer));
	g_mutex_lock(&c->lock);
	FOR_EACH_BLOCK(c, off, len, idx, lo, hi) {
		struct block *b = g_ptr_array_index(f->blocks, idx - first);
		cfs_extents_add(&b->filled, (uint32_t)lo, (uint32_t)hi);
		cfs_extents_remove(&b->inflight, (uint32_t)lo, (uint32_t)hi);
	}
	f->next = off + len;
	answer_ready(c, f->obj, off, off + len, answers);
	g_mutex_unlock(&c->lock);
	deliver_all(c, answers);
}

/* Fail the parked reads of obj that needed bytes of [off, end) that will now not come. */
static void fail_stranded(struct cfs_cache *c, struct cfs_object *obj, uint64_t off,
			  uint64_t end, int err, GArray *answers)
{
	for (GList *l = obj->parked.head; l;) {
		struct parked *r = l->data;
		l = l->next;
		bool bad = hits_bad_bytes(r);
		if (bad || (r->off < end && off < r->off + r->len))
			unpark(c, r, bad ? obj->error : err, answers);
	}
}

static void fill_on_done(void *ctx, int err)
{
	struct fill *f = ctx;
	struct cfs_cache *c = f->cache;
	uint64_t first = f->start / c->block_size;
	GArray *answers = g_array_new(FALSE, FALSE, sizeof(struct answer));
	g_mutex_lock(&c->lock);
	FOR_EACH_BLOCK(c, f->next, f->end - f->next, idx, lo, hi) {
		struct block *b = g_ptr_array_index(f->blocks, idx - first);
		cfs_extents_remove(&b->inflight, (uint32_t)lo, (uint32_t)hi);
	}
	if (err == -ENOENT && !f->obj->error) {
		f->obj->error = -EIO; /* listed but gone: do not ask again at every read */
		err = -EIO;
	}
	if (err || f->next < f->end)
		fail_stranded(c, f->obj, f->next, f->end, err ? err : -EIO, answers);
	for (guint i = 0; i < f->blocks->len; i++)
		unpin(c, g_ptr_array_index(f->blocks, i));
	retry_waiting(c, answers);
	g_mutex_unlock(&c->lock);
	deliver_all(c, answers);
	g_ptr_array_free(f->blocks, TRUE);
	g_free(f);
}

static const struct cfs_fetch_ops fill_ops = {
	.on_response = fill_on_response,
	.on_data = fill_on_data,
	.on_done = fill_on_done,
};

/*
 * Copy the bytes of [lo, hi) of block b that have not landed from src,
 * which holds the bytes of the object from src_off on.
 */
static void fill_missing(struct cfs_cache *c, struct block *b, uint32_t lo, uint32_t hi,
			 const uint8_t *src, uint64_t src_off)
{
	uint64_t base = block_start(c, b->key.index);
	struct cfs_extent gap = { lo, lo };
	while (cfs_extents_first_gap(&b->filled, NULL, gap.hi, hi, &gap))
		memcpy(b->data + gap.lo, src + (base + gap.lo - src_off), gap.hi - gap.lo);
	cfs_extents_add(&b->filled, lo, hi);
}

/*
 * Decompressed bytes from a zstd stream go into the blocks that exist (the
 * reads waiting for them pinned theirs) and into new blocks while room can
 * be made. No request owns these blocks, and a piece is at most
 * ZSTD_DStreamOutSize() bytes, so the copy is made under the lock.
 */
static void zstd_deliver(void *ctx, struct cfs_object *obj, uint64_t off, const void *buf,
			 size_t len)
{
	struct cfs_cache *c = ctx;
	GArray *answers = g_array_new(FALSE, FALSE, sizeof(struct answer));
	g_mutex_lock(&c->lock);
	FOR_EACH_BLOCK(c, off, len, idx, lo, hi) {
		struct block *b = block_get(c, obj, idx);
		if (!b && make_room(c, block_len(c, obj, idx)))
			b = block_new(c, obj, idx);
		if (!b)
			continue;
		pin(c, b);
		fill_missing(c, b, (uint32_t)lo, (uint32_t)hi, buf, off);
		unpin(c, b);
	}
	answer_ready(c, obj, off, off + len, answers);
	retry_waiting(c, answers);
	g_mutex_unlock(&c->lock);
	deliver_all(c, answers);
}

static void zstd_failed(void *ctx, struct cfs_object *obj, uint64_t off, int err, bool permanent)
{
	struct cfs_cache *c = ctx;
	GArray *answers = g_array_new(FALSE, FALSE, sizeof(struct answer));
	g_mutex_lock(&c->lock);
	if (permanent && (!obj->error || off < obj->bad_from)) {
		obj->error = err;
		obj->bad_from = off;
	}
	fail_stranded(c, obj, off, obj->size, err, answers);
	retry_waiting(c, answers);
	g_mutex_unlock(&c->lock);
	deliver_all(c, answers);
}

static bool zstd_reserve(void *ctx, uint64_t bytes)
{
	struct cfs_cache *c = ctx;
	g_mutex_lock(&c->lock);
	bool ok = make_room(c, bytes);
	if (ok) {
		c->used += bytes;
		cfs_stats_gauge_set(CFS_MEM_BYTES, (int64_t)c->used);
	}
	g_mutex_unlock(&c->lock);
	return ok;
}

static void zstd_release(void *ctx, uint64_t bytes)
{
	struct cfs_cache *c = ctx;
	GArray *answers = g_array_new(FALSE, FALSE, sizeof(struct answer));
	g_mutex_lock(&c->lock);
	c->used -= bytes;
	cfs_stats_gauge_set(CFS_MEM_BYTES, (int64_t)c->used);
	retry_waiting(c, answers);
	g_mutex_unlock(&c->lock);
	deliver_all(c, answers);
}

static const struct cfs_zstd_sink zstd_sink = {
	.deliver = zstd_deliver,
	.failed = zstd_failed,
	.reserve = zstd_reserve,
	.release = zstd_release,
};

void cfs_cache_read(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, size_t len,
		    GBytes *head, cfs_read_done_fn done, void *cookie)
{
	struct parked *r = g_new0(struct parked, 1);
	r->obj = obj;
	r->off = MIN(off, obj->size);
	r->len = MIN((uint64_t)len, obj->size - r->off);
	r->head = head ? g_bytes_ref(head) : NULL;
	r->done = done;
	r->cookie = cookie;
	r->link.data = r;
	struct answer a;
	g_mutex_lock(&c->lock);
	enum outcome o = serve(c, r, &a);
	g_mutex_unlock(&c->lock);
	if (o == ANSWERED)
		deliver(c, &a);
}

static bool withdraw(struct cfs_cache *c, GQueue *q, struct cfs_object *obj, void *cookie)
{
	for (GList *l = q->head; l; l = l->next) {
		struct parked *r = l->data;
		if (r->obj != obj || r->cookie != cookie)
			continue;
		g_queue_unlink(q, l);
		if (r->pinned)
			cfs_stats_gauge_add(CFS_READS_PARKED, -1);
		unpin_read(c, r);
		parked_free(r);
		return true;
	}
	return false;
}

void cfs_cache_prefetch(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, uint64_t len)
{
	g_mutex_lock(&c->lock);
	if (!obj->error && obj->size != CFS_SIZE_UNKNOWN && off < obj->size)
		prefetch(c, obj, off, off + MIN(len, obj->size - off));
	g_mutex_unlock(&c->lock);
}

bool cfs_cache_cancel(struct cfs_cache *c, struct cfs_object *obj, void *cookie)
{
	g_mutex_lock(&c->lock);
	bool found = withdraw(c, &obj->parked, obj, cookie) || withdraw(c, &c->mem_wait, obj, cookie);
	g_mutex_unlock(&c->lock);
	return found;
}

struct cfs_cache *cfs_cache_new(uint64_t cap, uint64_t block_size, uint64_t readahead,
				struct cfs_fetcher *fetcher)
{
	struct cfs_cache *c = g_new0(struct cfs_cache, 1);
	g_mutex_init(&c->lock);
	c->cap = cap;
	c->block_size = block_size;
	/* Streams' windows must not evict each other's prefetched bytes before they are read. */
	c->readahead = MIN(readahead, cap / 8);
	c->fetcher = fetcher;
	c->zstd = cfs_zstd_new(fetcher, &zstd_sink, c, cap);
	c->blocks = g_hash_table_new(key_hash, key_equal);
	c->repliers = g_thread_pool_new(deliver_queued, c, REPLY_THREADS, TRUE, NULL);
	cfs_stats_gauge_set(CFS_MEM_CAP, (int64_t)cap);
	return c;
}

void cfs_cache_free(struct cfs_cache *c)
{
	if (!c)
		return;
	cfs_zstd_free(c->zstd);
	g_thread_pool_free(c->repliers, FALSE, TRUE);
	while (c->lru.head)
		evict_lru(c);
	g_warn_if_fail(g_hash_table_size(c->blocks) == 0);
	g_hash_table_destroy(c->blocks);
	g_mutex_clear(&c->lock);
	g_free(c);
}
