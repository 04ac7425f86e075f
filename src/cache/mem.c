/*
 * The memory tier's reads: answered from the block store (store.c),
 * or parked while the sources (fill.c) bring their bytes, or waiting
 * for room or an ETag; readahead, the bound on a parked read, and the
 * public functions of mem.h.
 */
#include "cache/mem.h"

#include <errno.h>

#include "cache_i.h"
#include "shared/shared.h"
#include "spill/spill.h"
#include "util/errors.h"
#include "remote/listing.h"
#include "tree/object.h"
#include "cache/readahead.h"
#include "util/stats.h"
#include "cache/zstream.h"

/*
 * Threads that send the replies of reads answered by arriving bytes: sending
 * copies the bytes into the kernel's page cache, which the fetcher thread
 * should not wait for while the next bytes arrive.
 */
#define REPLY_THREADS 2
/*
 * Quick answers (cfs_cache_read_quick(): a FUSE reply) up to this many
 * bytes, and their errors, are sent by the thread that completed them, a
 * fetcher thread as their last bytes land: handing one over costs two
 * thread wake-ups (four futex calls per random item, counted with
 * strace -c), more than its copy. Larger answers, a sequential reader's
 * 1 MiB reads, and every answer whose completion does more work (item
 * views parse headers and may wait on the tree's listing lock), go to the
 * reply threads.
 */
#define INLINE_REPLY_MAX (256 * 1024)
/*
 * How long a failed read's range fails again at once (struct
 * failed_read). The kernel re-asks within milliseconds of the failure;
 * a reader that tries again later gets fresh attempts.
 */
#define FAILED_READ_MS 1000
/*
 * A stream's readahead window is at most this fraction (1/N) of the cap, so
 * that the windows of several streams do not evict each other's prefetched
 * bytes before they are read.
 */
#define READAHEAD_CAP_DIVISOR 8

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
		struct block *b = cache_block_get(c, r->obj, idx);
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
		struct block *b = cache_block_get(c, r->obj, idx);
		if (b)
			cache_unpin(c, b);
	}
	r->pinned = false;
}

/*
 * Pin the blocks of r, creating the missing ones, and count the use; false
 * (holding nothing) when they do not fit.
 */
static bool pin_read(struct cfs_cache *c, struct parked *r)
{
	uint64_t missing = 0;
	FOR_EACH_BLOCK(c, r->off, r->len, idx, lo, hi) {
		struct block *b = cache_block_get(c, r->obj, idx);
		if (b)
			cache_pin(c, b);
		else
			missing += cache_block_len(c, r->obj, idx);
	}
	r->pinned = true;
	if (!cache_make_room(c, missing)) {
		unpin_read(c, r);
		return false;
	}
	FOR_EACH_BLOCK(c, r->off, r->len, idx, lo, hi) {
		struct block *b = cache_block_get(c, r->obj, idx);
		if (!b) {
			if (!(b = cache_block_new(c, r->obj, idx))) {
				unpin_read(c, r);
				return false;
			}
			cache_pin(c, b);
		}
		cfs_policy_use(c->policy, &b->pol);
	}
	return true;
}

/*
 * An object whose bytes cannot be had: compressed, of a size nobody could
 * tell, or empty (no frame to decompress a byte from: a stream of it could
 * neither deliver nor fail, and its readers would wait for ever).
 */
static bool undecodable(const struct cfs_object *obj)
{
	return obj->compressed &&
	       (obj->compressed->size == CFS_SIZE_UNKNOWN || obj->compressed->size == 0);
}

/*
 * Fetch [start, end) of obj ahead of any reader: read back what the spill
 * tier has, request the rest. The range's blocks are held while it is
 * planned, so that making room for one of them cannot evict another; it is
 * cut short at the first block that finds no room.
 */
static void prefetch(struct cfs_cache *c, struct cfs_object *obj, uint64_t start, uint64_t end)
{
	if (undecodable(obj))
		return;
	GPtrArray *held = g_ptr_array_new();
	FOR_EACH_BLOCK(c, start, end - start, idx, lo, hi) {
		struct block *b = cache_block_get(c, obj, idx);
		if (!b && (!cache_make_room(c, cache_block_len(c, obj, idx)) ||
			   !(b = cache_block_new(c, obj, idx)))) {
			end = MAX(start, block_start(c, idx));
			break;
		}
		cache_pin(c, b);
		g_ptr_array_add(held, b);
	}
	if (start < end) {
		cache_load_blocks(c, obj, start, end - start);
		cache_lookup_shared(c, obj, start, end - start, CFS_FETCH_READAHEAD);
		cache_request_missing(c, obj, start, end - start, CFS_FETCH_READAHEAD);
	}
	for (guint i = 0; i < held->len; i++)
		cache_unpin(c, g_ptr_array_index(held, i));
	g_ptr_array_free(held, TRUE);
}

/* Ask for the readahead window of the stream r continues, if any. */
static void readahead(struct cfs_cache *c, struct parked *r)
{
	uint64_t start, end;
	if (cfs_readahead_advise(&r->state->streams, r->off, r->len, r->obj->size, c->readahead,
				 &start, &end))
		prefetch(c, r->obj, start, end);
}

/*
 * Remember that r failed with err. The slot reused is a free or expired
 * one, else the one that expires first.
 */
static void remember_failure(const struct parked *r, int err)
{
	struct object_state *st = r->state;
	if (!st->failed)
		st->failed = g_new0(struct failed_read, FAILED_READS);
	struct failed_read *slot = &st->failed[0];
	for (unsigned i = 1; i < FAILED_READS; i++)
		if (st->failed[i].until_us < slot->until_us)
			slot = &st->failed[i];
	*slot = (struct failed_read){ r->off, r->off + r->len,
				      g_get_monotonic_time() + FAILED_READ_MS * 1000, err };
}

/* The error of a recent failed read that r overlaps, or 0. */
static int recent_failure(const struct parked *r)
{
	if (!r->state->failed)
		return 0;
	gint64 now = g_get_monotonic_time();
	for (unsigned i = 0; i < FAILED_READS; i++) {
		const struct failed_read *f = &r->state->failed[i];
		if (f->until_us > now && f->off < r->off + r->len && r->off < f->end)
			return f->err;
	}
	return 0;
}

/* r needs bytes of its object that proved bad. */
static bool hits_bad_bytes(const struct parked *r)
{
	return r->state->error && r->off + r->len > r->state->bad_from;
}

/* A read now parked for its bytes fails with -ETIMEDOUT once the bound has passed. */
static void start_deadline(struct cfs_cache *c, struct parked *r)
{
	if (!c->read_timeout_us)
		return;
	r->deadline_us = g_get_monotonic_time() + c->read_timeout_us;
	/* The bound is one for all, so the queue stays in deadline order. */
	g_queue_push_tail_link(&c->parked_by_age, &r->age_link);
	/*
	 * An expirer already asleep until an earlier deadline finds r when it
	 * wakes; waking it for every read cost random items 5% of the daemon's
	 * CPU (perf, 2026-12-07).
	 */
	if (r->deadline_us < c->expiry_at)
		g_cond_signal(&c->expiry);
}

/* r leaves its object's parked list: it no longer has a deadline. */
static void end_deadline(struct cfs_cache *c, struct parked *r)
{
	if (r->deadline_us)
		g_queue_unlink(&c->parked_by_age, &r->age_link);
	r->deadline_us = 0;
}

enum outcome { ANSWERED, PARKED, WAITING };

/*
 * Serve r: answer it from memory (filling *ans), or park it on its object
 * after asking for its missing bytes (from the spill tier, else the
 * network), or queue it to wait for room or for its object's ETag.
 */
static enum outcome serve(struct cfs_cache *c, struct parked *r, struct answer *ans)
{
	if (c->closing) {
		*ans = make_answer(c, r, -ECANCELED);
		return ANSWERED;
	}
	if (hits_bad_bytes(r) || undecodable(r->obj)) {
		*ans = make_answer(c, r, r->state->error ? r->state->error : -EIO);
		return ANSWERED;
	}
	int failed = recent_failure(r);
	if (failed) {
		*ans = make_answer(c, r, failed);
		return ANSWERED;
	}
	if (cache_is_present(c, r->obj, r->off, r->len)) {
		pin_read(c, r); /* needs no room: every block is there */
		*ans = make_answer(c, r, 0);
		cfs_stats_add(CFS_MEM_HITS, 1);
		readahead(c, r);
		return ANSWERED;
	}
	if (cache_needs_validation(c, r)) {
		g_queue_push_tail_link(&c->val_wait, &r->link);
		return WAITING;
	}
	if (!pin_read(c, r)) {
		g_queue_push_tail_link(&c->mem_wait, &r->link);
		return WAITING;
	}
	cache_load_blocks(c, r->obj, r->off, r->len);
	cache_lookup_shared(c, r->obj, r->off, r->len, CFS_FETCH_DEMAND);
	cache_request_missing(c, r->obj, r->off, r->len, CFS_FETCH_DEMAND);
	g_queue_push_tail_link(&r->state->parked, &r->link);
	start_deadline(c, r);
	cfs_stats_add(CFS_MEM_MISSES, 1);
	cfs_stats_gauge_add(CFS_READS_PARKED, 1);
	readahead(c, r);
	return PARKED;
}

static void parked_free(struct parked *r)
{
	if (r->head)
		g_bytes_unref(r->head);
	g_free(r);
}

/* Send the answer, then drop the pins that kept its bytes in place. Without the lock. */
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

/* Hand answers (collected under the lock) to the reply threads, and free it. Without the lock. */
static void deliver_all(struct cfs_cache *c, GArray *answers)
{
	for (guint i = 0; i < answers->len; i++) {
		struct answer *a = &g_array_index(answers, struct answer, i);
		if (a->r->quick && (a->err || a->r->len <= INLINE_REPLY_MAX))
			deliver(c, a);
		else
			g_thread_pool_push(c->repliers, g_memdup2(a, sizeof(*a)), NULL);
	}
	g_array_free(answers, TRUE);
}

/* Take r off its object's parked list and queue its answer. */
static void unpark(struct cfs_cache *c, struct parked *r, int err, GArray *answers)
{
	g_queue_unlink(&r->state->parked, &r->link);
	end_deadline(c, r);
	cfs_stats_gauge_add(CFS_READS_PARKED, -1);
	struct answer a = make_answer(c, r, err);
	if (err) {
		unpin_read(c, r);
		/*
		 * Bytes that proved bad are known exactly and fail on their own;
		 * remembering the whole read would also fail good bytes beside them.
		 */
		if (err != -ECANCELED && !hits_bad_bytes(r))
			remember_failure(r, err);
	}
	g_array_append_val(answers, a);
}

/* Answer the parked reads of the object of state st that overlap [off, end) and are complete. */
static void answer_ready(struct cfs_cache *c, struct object_state *st, uint64_t off, uint64_t end,
			 GArray *answers)
{
	for (GList *l = st->parked.head; l;) {
		struct parked *r = l->data;
		l = l->next;
		if (r->off < end && off < r->off + r->len &&
		    cache_is_present(c, r->obj, r->off, r->len))
			unpark(c, r, 0, answers);
	}
}

/*
 * Fail the parked reads of the object of state st that need bytes of
 * [off, end), now lost, with err, and those that need its bad bytes with its error.
 */
static void fail_stranded(struct cfs_cache *c, struct object_state *st, uint64_t off, uint64_t end,
			  int err, GArray *answers)
{
	for (GList *l = st->parked.head; l;) {
		struct parked *r = l->data;
		l = l->next;
		bool bad = hits_bad_bytes(r);
		if (bad || (r->off < end && off < r->off + r->len))
			unpark(c, r, bad ? st->error : err, answers);
	}
}

/*
 * Serve again the reads of q (waiting for room, or for an ETag), release
 * the lock, and answer them with the rest of answers (which it frees).
 */
static void retry_unlock(struct cfs_cache *c, GQueue *q, GArray *answers)
{
	GQueue waiting = *q;
	g_queue_init(q);
	GList *l;
	while ((l = g_queue_pop_head_link(&waiting))) {
		struct answer a;
		if (serve(c, l->data, &a) == ANSWERED)
			g_array_append_val(answers, a);
	}
	g_mutex_unlock(&c->lock);
	deliver_all(c, answers);
}

/* How the block store and the sources report to the reads: see cache_i.h. */
static const struct cache_reads_ops reads_ops = {
	.landed = answer_ready,
	.lost = fail_stranded,
	.wake_unlock = retry_unlock,
	.deliver = deliver_all,
};

/* Bytes of the blocks r spans: what pinning it takes under the cap. */
static uint64_t span_bytes(const struct cfs_cache *c, const struct parked *r)
{
	if (r->len == 0)
		return 0;
	uint64_t first = block_start(c, r->off / c->block_size);
	uint64_t last = block_start(c, (r->off + r->len - 1) / c->block_size + 1);
	return MIN(last, r->obj->size) - first;
}

/*
 * A read whose blocks exceed the cap could never be pinned and would wait
 * for room forever: it fails at once (the FUSE reads, at most 1 MiB, always
 * fit; a view's read of a remote-declared length may not).
 */
static bool too_large(const struct cfs_cache *c, const struct parked *r)
{
	if (span_bytes(c, r) <= c->cap)
		return false;
	g_warning("%s bytes %" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT ": a read of %" G_GUINT64_FORMAT
		  " bytes needs more than the memory cap (%" G_GUINT64_FORMAT " bytes); failing it",
		  r->obj->name, r->off, r->off + r->len, r->len, c->cap);
	return true;
}

static void read_range(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, size_t len,
		       GBytes *head, bool quick, cfs_read_done_fn done, void *cookie)
{
	__atomic_store_n(&c->last_read_us, g_get_monotonic_time(), __ATOMIC_RELAXED);
	struct parked *r = g_new0(struct parked, 1);
	r->quick = quick;
	r->obj = obj;
	r->off = MIN(off, obj->size);
	r->len = MIN((uint64_t)len, obj->size - r->off);
	r->head = head ? g_bytes_ref(head) : NULL;
	r->done = done;
	r->cookie = cookie;
	r->link.data = r;
	r->age_link.data = r;
	struct answer a;
	if (too_large(c, r)) {
		a = make_answer(c, r, -EIO);
		deliver(c, &a);
		return;
	}
	struct prefault pf;
	cache_prefault_begin(&pf);
	g_mutex_lock(&c->lock);
	r->state = cache_object(c, obj);
	enum outcome o = serve(c, r, &a);
	g_mutex_unlock(&c->lock);
	if (o == ANSWERED)
		deliver(c, &a);
	cache_prefault_end(&pf);
}

void cfs_cache_read(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, size_t len,
		    GBytes *head, cfs_read_done_fn done, void *cookie)
{
	read_range(c, obj, off, len, head, false, done, cookie);
}

void cfs_cache_read_quick(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, size_t len,
			  GBytes *head, cfs_read_done_fn done, void *cookie)
{
	read_range(c, obj, off, len, head, true, done, cookie);
}

static bool withdraw(struct cfs_cache *c, GQueue *q, struct cfs_object *obj, void *cookie)
{
	for (GList *l = q->head; l; l = l->next) {
		struct parked *r = l->data;
		if (r->obj != obj || r->cookie != cookie)
			continue;
		g_queue_unlink(q, l);
		end_deadline(c, r);
		if (r->pinned)
			cfs_stats_gauge_add(CFS_READS_PARKED, -1);
		unpin_read(c, r);
		parked_free(r);
		return true;
	}
	return false;
}

/* obj proved bad; an object the tier knows nothing of is not (and gets no state by asking). */
static bool proved_bad(struct cfs_cache *c, const struct cfs_object *obj)
{
	const struct object_state *st = cache_object_find(c, obj);
	return st && st->error;
}

void cfs_cache_prefetch(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, uint64_t len)
{
	struct prefault pf;
	cache_prefault_begin(&pf);
	g_mutex_lock(&c->lock);
	if (!c->closing && !proved_bad(c, obj) && obj->size != CFS_SIZE_UNKNOWN && off < obj->size)
		prefetch(c, obj, off, off + MIN(len, obj->size - off));
	g_mutex_unlock(&c->lock);
	cache_prefault_end(&pf);
}

bool cfs_cache_cancel(struct cfs_cache *c, struct cfs_object *obj, void *cookie)
{
	g_mutex_lock(&c->lock);
	/* Without a state, no read of obj is parked: looking must not make one. */
	struct object_state *st = cache_object_find(c, obj);
	bool found = (st && withdraw(c, &st->parked, obj, cookie)) ||
		     withdraw(c, &c->mem_wait, obj, cookie) ||
		     withdraw(c, &c->val_wait, obj, cookie);
	g_mutex_unlock(&c->lock);
	return found;
}

/* A read of obj waits in q (for room, or for an ETag). */
static bool waits_in(const GQueue *q, const struct cfs_object *obj)
{
	for (const GList *l = q->head; l; l = l->next)
		if (((const struct parked *)l->data)->obj == obj)
			return true;
	return false;
}

/* A read of obj waits, or a HEAD of it runs. Called with the lock held. */
static bool object_waited_on(struct cfs_cache *c, const struct cfs_object *obj)
{
	const struct object_state *st = cache_object_find(c, obj);
	return (st && (st->parked.length || st->validation == VALIDATING)) ||
	       waits_in(&c->mem_wait, obj) || waits_in(&c->val_wait, obj);
}

bool cfs_cache_forget_object(struct cfs_cache *c, struct cfs_object *obj)
{
	g_mutex_lock(&c->lock);
	bool busy = object_waited_on(c, obj);
	g_mutex_unlock(&c->lock);
	/* With no read of obj left, nothing starts a stream of it any more: drop its idle ones. */
	if (busy || (obj->compressed && !cfs_zstd_forget(c->zstd, obj)))
		return false;
	GPtrArray *idle = g_ptr_array_new();
	g_mutex_lock(&c->lock);
	busy = object_waited_on(c, obj);
	GHashTableIter it;
	gpointer value;
	g_hash_table_iter_init(&it, c->blocks);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		struct block *b = value;
		if (b->obj == obj && b->pins)
			busy = true; /* a request, read-back or spill: it ends, and obj is asked again */
		else if (b->obj == obj)
			g_ptr_array_add(idle, b);
	}
	/* Evictable already, so no read waiting for room waits for these. */
	for (guint i = 0; i < idle->len; i++)
		cache_block_free(c, g_ptr_array_index(idle, i));
	/* No block, read or HEAD points at its state any more: a reused id starts afresh. */
	if (!busy)
		cache_object_drop(c, obj);
	g_mutex_unlock(&c->lock);
	g_ptr_array_free(idle, TRUE);
	return !busy;
}

/* Fail the reads whose deadline has passed (lock held); their answers go to answers. */
static void expire_due(struct cfs_cache *c, gint64 now, GArray *answers)
{
	struct parked *r;
	while ((r = g_queue_peek_head(&c->parked_by_age)) && r->deadline_us <= now) {
		cfs_errors_report(r->obj->name, r->off, r->len, -ETIMEDOUT,
				  "no answer within %" G_GINT64_FORMAT " ms, the bound of a read",
				  c->read_timeout_us / 1000);
		unpark(c, r, -ETIMEDOUT, answers);
	}
}

/* The expirer thread: sleeps until the oldest parked read is due, fails it. */
static gpointer expire_reads(gpointer data)
{
	struct cfs_cache *c = data;
	g_mutex_lock(&c->lock);
	while (!c->closing) {
		struct parked *r = g_queue_peek_head(&c->parked_by_age);
		gint64 now = g_get_monotonic_time();
		if (!r) {
			c->expiry_at = G_MAXINT64;
			g_cond_wait(&c->expiry, &c->lock);
		} else if (r->deadline_us > now) {
			c->expiry_at = r->deadline_us;
			g_cond_wait_until(&c->expiry, &c->lock, r->deadline_us);
		} else {
			GArray *answers = cache_answers_new();
			expire_due(c, now, answers);
			g_mutex_unlock(&c->lock);
			deliver_all(c, answers);
			g_mutex_lock(&c->lock);
		}
	}
	g_mutex_unlock(&c->lock);
	return NULL;
}

/*
 * Stop *thread, a thread of the tier that waits on wake under c->lock and
 * ends when it sees c->closing (set), and wait for it. Without the lock;
 * nothing to do when it is not running.
 */
static void stop_thread(struct cfs_cache *c, GThread **thread, GCond *wake)
{
	if (!*thread)
		return;
	g_mutex_lock(&c->lock);
	g_cond_signal(wake);
	g_mutex_unlock(&c->lock);
	g_thread_join(*thread);
	*thread = NULL;
}

struct cfs_cache *cfs_cache_new(const struct cfs_cache_config *cfg,
				const struct cfs_source *source, struct cfs_disk *disk)
{
	struct cfs_cache *c = g_new0(struct cfs_cache, 1);
	g_mutex_init(&c->lock);
	c->reads = &reads_ops;
	cache_store_init(c, cfg->cap, cfg->block_size, cfg->policy);
	c->readahead = MIN(cfg->readahead, cfg->cap / READAHEAD_CAP_DIVISOR);
	c->source = *source;
	c->disk = disk;
	c->shared = cfg->shared;
	c->zstd = cfs_zstd_new(source, &cache_zstd_sink, c, cfg->cap);
	c->repliers = g_thread_pool_new(deliver_queued, c, REPLY_THREADS, TRUE, NULL);
	c->read_timeout_us = (gint64)cfg->read_timeout_ms * 1000;
	c->expiry_at = G_MAXINT64;
	g_cond_init(&c->expiry);
	g_cond_init(&c->faulter_wake);
	if (c->read_timeout_us)
		c->expirer = g_thread_new("read-expirer", expire_reads, c);
	if (cfg->fault_ahead)
		cache_fault_ahead_start(c);
	cfs_stats_gauge_set(CFS_MEM_CAP, (int64_t)cfg->cap);
	return c;
}

void cfs_cache_close(struct cfs_cache *c)
{
	g_mutex_lock(&c->lock);
	c->closing = true;
	GQueue waiting = c->mem_wait;
	g_queue_init(&c->mem_wait);
	while (c->val_wait.head)
		g_queue_push_tail_link(&waiting, g_queue_pop_head_link(&c->val_wait));
	retry_unlock(c, &waiting, cache_answers_new());
	stop_thread(c, &c->expirer, &c->expiry);
	stop_thread(c, &c->faulter, &c->faulter_wake);
}

void cfs_cache_free(struct cfs_cache *c)
{
	if (!c)
		return;
	g_mutex_lock(&c->lock);
	c->closing = true; /* normally already: cfs_cache_close() */
	g_mutex_unlock(&c->lock);
	stop_thread(c, &c->expirer, &c->expiry);
	stop_thread(c, &c->faulter, &c->faulter_wake);
	cfs_shared_free(c->shared); /* waits for the lookups, whose ends unpin their blocks */
	cfs_zstd_free(c->zstd);
	/* Every block the spill tier lacks, so that the next mount finds it. */
	g_mutex_lock(&c->lock);
	cache_spill_all(c);
	g_mutex_unlock(&c->lock);
	cfs_disk_free(c->disk); /* waits for the writes, whose ends unpin their blocks */
	g_thread_pool_free(c->repliers, FALSE, TRUE);
	cache_store_free(c);
	g_cond_clear(&c->expiry);
	g_cond_clear(&c->faulter_wake);
	g_mutex_clear(&c->lock);
	g_free(c);
}
