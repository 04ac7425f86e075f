/*
 * Unit tests of the memory tier (src/cache/mem.c, fill.c, store.c) driven
 * through its public interface against a scripted source (source.h): no
 * FUSE, no network. Requests wait in a queue until a test answers them, in
 * its own thread, as a fetcher thread would. Reads are mostly quick reads
 * (cfs_cache_read_quick()), whose answers of up to 256 KiB run in the
 * thread that completes them, so that "answered" and "not answered yet"
 * are exact at every step.
 */
#include <errno.h>
#include <glib.h>
#include <string.h>
#include <sys/uio.h>

#include "cache/mem.h"
#include "tree/object.h"
#include "cache/source.h"
#include "util/stats.h"

#define BLOCK (UINT64_C(64) << 10)
#define CAP (4 * BLOCK)
#define PIECE (UINT64_C(8) << 10) /* bytes per on_data call */
#define WAIT_US (5 * G_USEC_PER_SEC)

/* ---- the scripted source ---- */

struct request {
	const struct cfs_object *obj;
	uint64_t start, end;
	enum cfs_fetch_priority prio;
	const struct cfs_fetch_ops *ops;
	void *ctx;
};

/* Requests submitted and not answered yet, oldest first. Only the test's thread submits. */
static GQueue pending = G_QUEUE_INIT;
static unsigned submitted;

static void script_submit(void *src, const struct cfs_object *obj, uint64_t start, uint64_t end,
			  enum cfs_fetch_priority prio, const struct cfs_fetch_ops *ops, void *ctx)
{
	(void)src;
	g_assert_cmpuint(start, <, end);
	g_assert_cmpuint(end, <=, obj->size);
	struct request *q = g_new(struct request, 1);
	*q = (struct request){ obj, start, end, prio, ops, ctx };
	g_queue_push_tail(&pending, q);
	submitted++;
}

static void script_submit_head(void *src, const struct cfs_object *obj,
			       const struct cfs_fetch_ops *ops, void *ctx)
{
	(void)src, (void)obj, (void)ops, (void)ctx;
	g_assert_not_reached(); /* only a spill tier asks for ETags, and these tests have none */
}

static const struct cfs_source_ops script_ops = { script_submit, script_submit_head };

/* The byte at off of obj: differs between neighbouring bytes, blocks and objects. */
static uint8_t byte_at(const struct cfs_object *obj, uint64_t off)
{
	return (uint8_t)(off * 7 + off / 251 + obj->id * 13);
}

/* Take the oldest pending request, checking what it asks for. */
static struct request *take(const struct cfs_object *obj, uint64_t start, uint64_t end)
{
	struct request *q = g_queue_pop_head(&pending);
	g_assert_nonnull(q);
	g_assert_true(q->obj == obj);
	g_assert_cmpuint(q->start, ==, start);
	g_assert_cmpuint(q->end, ==, end);
	return q;
}

/* The response's head: the object's size and an ETag. Returns what on_response says. */
static int respond(struct request *q, uint64_t size)
{
	struct cfs_response_info info = { size, "\"v1\"" };
	return q->ops->on_response ? q->ops->on_response(q->ctx, &info) : 0;
}

/* Deliver the object's bytes [from, to) of q in pieces. */
static void send_bytes(struct request *q, uint64_t from, uint64_t to)
{
	static uint8_t buf[PIECE];
	for (uint64_t off = from; off < to;) {
		size_t len = (size_t)MIN(PIECE, to - off);
		for (size_t i = 0; i < len; i++)
			buf[i] = byte_at(q->obj, off + i);
		q->ops->on_data(q->ctx, off, buf, len);
		off += len;
	}
}

static void end_request(struct request *q, int err)
{
	q->ops->on_done(q->ctx, err);
	g_free(q);
}

/* Answer q in full and end it. */
static void answer(struct request *q)
{
	g_assert_cmpint(respond(q, q->obj->size), ==, 0);
	send_bytes(q, q->start, q->end);
	end_request(q, 0);
}

/* Answer the oldest pending request, which must be for [start, end) of obj. */
static void answer_next(const struct cfs_object *obj, uint64_t start, uint64_t end)
{
	answer(take(obj, start, end));
}

/* ---- reads ---- */

struct result {
	GMutex lock;
	GCond cond;
	bool done;
	int err;
	size_t len;
	uint8_t *bytes; /* len bytes, the answer's */
};

static void read_done(void *cookie, const struct iovec *iov, int iovcnt, size_t len, int err)
{
	struct result *r = cookie;
	g_mutex_lock(&r->lock);
	g_assert_false(r->done); /* exactly once */
	r->bytes = g_malloc(MAX(len, 1));
	size_t at = 0;
	for (int i = 0; i < iovcnt; i++) {
		memcpy(r->bytes + at, iov[i].iov_base, iov[i].iov_len);
		at += iov[i].iov_len;
	}
	g_assert_cmpuint(at, ==, len);
	r->len = len;
	r->err = err;
	r->done = true;
	g_cond_signal(&r->cond);
	g_mutex_unlock(&r->lock);
}

static struct result *result_new(void)
{
	struct result *r = g_new0(struct result, 1);
	g_mutex_init(&r->lock);
	g_cond_init(&r->cond);
	return r;
}

static void result_free(struct result *r)
{
	g_mutex_clear(&r->lock);
	g_cond_clear(&r->cond);
	g_free(r->bytes);
	g_free(r);
}

static bool is_done(struct result *r)
{
	g_mutex_lock(&r->lock);
	bool done = r->done;
	g_mutex_unlock(&r->lock);
	return done;
}

/* Wait, up to WAIT_US, for an answer that a reply thread sends. */
static void wait_done(struct result *r)
{
	gint64 deadline = g_get_monotonic_time() + WAIT_US;
	g_mutex_lock(&r->lock);
	while (!r->done && g_cond_wait_until(&r->cond, &r->lock, deadline))
		;
	bool done = r->done;
	g_mutex_unlock(&r->lock);
	g_assert_true(done);
}

static struct result *read_quick(struct cfs_cache *c, struct cfs_object *obj, uint64_t off,
				 size_t len)
{
	struct result *r = result_new();
	cfs_cache_read_quick(c, obj, off, len, NULL, read_done, r);
	return r;
}

/* r was answered with the bytes [off, off + len) of obj; frees r. */
static void check_bytes(struct result *r, const struct cfs_object *obj, uint64_t off, size_t len)
{
	g_assert_true(is_done(r));
	g_assert_cmpint(r->err, ==, 0);
	g_assert_cmpuint(r->len, ==, len);
	for (size_t i = 0; i < len; i++)
		if (r->bytes[i] != byte_at(obj, off + i))
			g_error("%s byte %" G_GUINT64_FORMAT ": %u, not %u", obj->name, off + i,
				r->bytes[i], byte_at(obj, off + i));
	result_free(r);
}

/* r failed with err; frees r. */
static void check_error(struct result *r, int err)
{
	g_assert_true(is_done(r));
	g_assert_cmpint(r->err, ==, err);
	result_free(r);
}

/* A read answered at once from memory, with no request. */
static void check_hit(struct cfs_cache *c, struct cfs_object *obj, uint64_t off, size_t len)
{
	unsigned before = submitted;
	check_bytes(read_quick(c, obj, off, len), obj, off, len);
	g_assert_cmpuint(submitted, ==, before);
}

/* ---- fixture ---- */

/* A cache whose parked reads fail after read_timeout_ms (0: never). */
static struct cfs_cache *cache_new_bounded(unsigned read_timeout_ms)
{
	struct cfs_cache_config cfg = { CAP, BLOCK, 0, "lru", read_timeout_ms, NULL, false };
	struct cfs_source source = { &script_ops, NULL };
	g_assert_true(g_queue_is_empty(&pending));
	return cfs_cache_new(&cfg, &source, NULL);
}

static struct cfs_cache *cache_new(void)
{
	return cache_new_bounded(0);
}

/* Close the cache, end what still runs as a stopping fetcher does, and free it. */
static void cache_free(struct cfs_cache *c)
{
	cfs_cache_close(c);
	struct request *q;
	while ((q = g_queue_pop_head(&pending)))
		end_request(q, -ECANCELED);
	cfs_cache_free(c);
}

static struct cfs_object *object_new(uint32_t id, uint64_t size)
{
	char *name = g_strdup_printf("chunk-%u.bin", id);
	struct cfs_object *obj = cfs_object_new(id, name, "http://127.0.0.1:1/chunk.bin", size);
	g_free(name);
	return obj;
}

static void check_used_within_cap(void)
{
	g_assert_cmpint(cfs_stats_gauge_get(CFS_MEM_BYTES), <=, (int64_t)CAP);
}

/* Wait, up to WAIT_US, for gauge g to read value. */
static void wait_gauge(enum cfs_gauge g, int64_t value)
{
	gint64 deadline = g_get_monotonic_time() + WAIT_US;
	while (cfs_stats_gauge_get(g) != value && g_get_monotonic_time() < deadline)
		g_usleep(1000);
	g_assert_cmpint(cfs_stats_gauge_get(g), ==, value);
}

/* ---- tests ---- */

/*
 * Faulting in ahead: the arena becomes idle memory up to the cap, blocks
 * take it, and blocks and idle memory together stay within the cap.
 */
static void test_fault_ahead(void)
{
	struct cfs_cache_config cfg = { CAP, BLOCK, 0, "lru", 0, NULL, true };
	struct cfs_source source = { &script_ops, NULL };
	struct cfs_cache *c = cfs_cache_new(&cfg, &source, NULL);
	wait_gauge(CFS_MEM_IDLE, (int64_t)CAP);
	struct cfs_object *obj = object_new(20, 6 * BLOCK);
	struct result *r = read_quick(c, obj, BLOCK / 2, 2 * BLOCK);
	answer_next(obj, BLOCK / 2, BLOCK / 2 + 2 * BLOCK);
	check_bytes(r, obj, BLOCK / 2, 2 * BLOCK);
	g_assert_cmpint(cfs_stats_gauge_get(CFS_MEM_BYTES), ==, (int64_t)(3 * BLOCK));
	g_assert_cmpint(cfs_stats_gauge_get(CFS_MEM_IDLE), ==, (int64_t)BLOCK);
	/* More blocks than the cap holds: eviction, and no idle memory beside a full tier. */
	r = read_quick(c, obj, 3 * BLOCK, 3 * BLOCK);
	answer_next(obj, 3 * BLOCK, 6 * BLOCK);
	check_bytes(r, obj, 3 * BLOCK, 3 * BLOCK);
	check_used_within_cap();
	int64_t resident = cfs_stats_gauge_get(CFS_MEM_BYTES) + cfs_stats_gauge_get(CFS_MEM_IDLE);
	g_assert_cmpint(resident, <=, (int64_t)CAP);
	cache_free(c);
	cfs_object_unref(obj);
}

/* A miss asks for exactly its missing bytes and is answered with them; the same bytes then hit. */
static void test_miss_then_hit(void)
{
	struct cfs_cache *c = cache_new();
	struct cfs_object *obj = object_new(1, 3 * BLOCK + 1000);
	struct result *r = read_quick(c, obj, 100, 1000);
	g_assert_false(is_done(r));
	struct request *q = take(obj, 100, 1100);
	g_assert_cmpint(q->prio, ==, CFS_FETCH_DEMAND);
	answer(q);
	check_bytes(r, obj, 100, 1000);
	check_hit(c, obj, 200, 500);
	/* The object's last, short block, read past its end: short at the end, empty past it. */
	r = read_quick(c, obj, 3 * BLOCK, 4096);
	answer_next(obj, 3 * BLOCK, 3 * BLOCK + 1000);
	check_bytes(r, obj, 3 * BLOCK, 1000);
	check_bytes(read_quick(c, obj, 3 * BLOCK + 1000, 10), obj, 3 * BLOCK + 1000, 0);
	/* A read that is not quick is answered from a reply thread. */
	r = result_new();
	cfs_cache_read(c, obj, BLOCK, 100000, NULL, read_done, r);
	answer_next(obj, BLOCK, BLOCK + 100000);
	wait_done(r);
	check_bytes(r, obj, BLOCK, 100000);
	g_assert_true(g_queue_is_empty(&pending));
	cache_free(c);
	cfs_object_unref(obj);
}

/* A parked read is answered as soon as its own bytes land, while the response goes on. */
static void test_answered_as_bytes_land(void)
{
	struct cfs_cache *c = cache_new();
	struct cfs_object *obj = object_new(2, 4 * BLOCK);
	struct result *whole = read_quick(c, obj, 0, 2 * BLOCK);
	struct result *head = read_quick(c, obj, 0, 4096);
	struct result *tail = read_quick(c, obj, BLOCK + 100, 4096);
	struct request *q = take(obj, 0, 2 * BLOCK);
	g_assert_true(g_queue_is_empty(&pending)); /* the later reads' bytes were already coming */
	g_assert_cmpint(respond(q, obj->size), ==, 0);
	send_bytes(q, 0, PIECE);
	check_bytes(head, obj, 0, 4096);
	g_assert_false(is_done(tail));
	send_bytes(q, PIECE, BLOCK + 100 + 4096);
	check_bytes(tail, obj, BLOCK + 100, 4096);
	g_assert_false(is_done(whole));
	send_bytes(q, BLOCK + 100 + 4096, 2 * BLOCK);
	check_bytes(whole, obj, 0, 2 * BLOCK); /* before the request ends */
	end_request(q, 0);
	cache_free(c);
	cfs_object_unref(obj);
}

/* Misses on the same bytes make one request; an overlapping miss asks for what is not coming. */
static void test_concurrent_misses_merged(void)
{
	struct cfs_cache *c = cache_new();
	struct cfs_object *obj = object_new(3, 4 * BLOCK);
	struct result *a = read_quick(c, obj, 0, 10000);
	struct result *b = read_quick(c, obj, 0, 10000);
	struct result *d = read_quick(c, obj, 5000, 20000);
	g_assert_cmpuint(g_queue_get_length(&pending), ==, 2);
	answer_next(obj, 0, 10000);
	check_bytes(a, obj, 0, 10000);
	check_bytes(b, obj, 0, 10000);
	g_assert_false(is_done(d));
	answer_next(obj, 10000, 25000);
	check_bytes(d, obj, 5000, 20000);
	cache_free(c);
	cfs_object_unref(obj);
}

/* Fill the whole block index of obj with one read, answered. */
static void fill_block(struct cfs_cache *c, struct cfs_object *obj, uint64_t index)
{
	struct result *r = read_quick(c, obj, index * BLOCK, BLOCK);
	answer_next(obj, index * BLOCK, (index + 1) * BLOCK);
	check_bytes(r, obj, index * BLOCK, BLOCK);
	check_used_within_cap();
}

/* Under the LRU policy the block used least recently goes first. */
static void test_eviction_order(void)
{
	struct cfs_cache *c = cache_new();
	struct cfs_object *obj = object_new(4, 8 * BLOCK);
	uint64_t evictions = cfs_stats_get(CFS_MEM_EVICTIONS);
	for (uint64_t i = 0; i < 4; i++)
		fill_block(c, obj, i);
	check_hit(c, obj, 0, 100); /* block 0 is now the most recently used */
	fill_block(c, obj, 4);     /* evicts block 1 */
	g_assert_cmpuint(cfs_stats_get(CFS_MEM_EVICTIONS), ==, evictions + 1);
	check_hit(c, obj, 0, 100);
	check_hit(c, obj, 2 * BLOCK, 100);
	check_hit(c, obj, 3 * BLOCK, 100);
	check_hit(c, obj, 4 * BLOCK, 100);
	struct result *r = read_quick(c, obj, BLOCK, 100); /* gone: a miss, evicting block 0 */
	answer_next(obj, BLOCK, BLOCK + 100);
	check_bytes(r, obj, BLOCK, 100);
	g_assert_cmpuint(cfs_stats_get(CFS_MEM_EVICTIONS), ==, evictions + 2);
	check_hit(c, obj, 2 * BLOCK, 100);
	r = read_quick(c, obj, 0, 100);
	g_assert_cmpuint(g_queue_get_length(&pending), ==, 1);
	answer_next(obj, 0, 100);
	check_bytes(r, obj, 0, 100);
	cache_free(c);
	cfs_object_unref(obj);
}

/*
 * With every block pinned by a parked read, another read waits for room
 * without a request, holding nothing; it is served again, and asks for its
 * bytes, when a request ends and its blocks can go. Used bytes never pass
 * the cap.
 */
static void test_cap_under_pressure(void)
{
	struct cfs_cache *c = cache_new();
	struct cfs_object *obj = object_new(5, 8 * BLOCK);
	struct result *r[6];
	for (uint64_t i = 0; i < 6; i++) {
		r[i] = read_quick(c, obj, i * BLOCK + 10, 1000);
		check_used_within_cap();
	}
	g_assert_cmpuint(g_queue_get_length(&pending), ==, 4); /* blocks 4 and 5 wait for room */
	g_assert_cmpint(cfs_stats_gauge_get(CFS_MEM_BYTES), ==, (int64_t)CAP);
	for (uint64_t i = 0; i < 6; i++) {
		answer_next(obj, i * BLOCK + 10, i * BLOCK + 1010);
		check_bytes(r[i], obj, i * BLOCK + 10, 1000);
		check_used_within_cap();
		/* The ended request let its block go: the next waiting read took its room. */
		g_assert_cmpuint(g_queue_get_length(&pending), ==, i < 2 ? 4 : 5 - i);
	}
	cache_free(c);
	cfs_object_unref(obj);
}

/* A block a parked read pins is never evicted, however many other reads need room. */
static void test_pinned_block_stays(void)
{
	struct cfs_cache *c = cache_new();
	struct cfs_object *obj = object_new(6, 16 * BLOCK);
	struct result *pinned = read_quick(c, obj, 0, 4096);
	struct request *q = take(obj, 0, 4096);
	uint64_t evictions = cfs_stats_get(CFS_MEM_EVICTIONS);
	for (uint64_t i = 1; i < 16; i++)
		fill_block(c, obj, i);
	g_assert_cmpuint(cfs_stats_get(CFS_MEM_EVICTIONS), ==, evictions + 12);
	g_assert_false(is_done(pinned));
	answer(q);
	check_bytes(pinned, obj, 0, 4096);
	check_hit(c, obj, 0, 4096);
	cache_free(c);
	cfs_object_unref(obj);
}

/*
 * A request that fails fails the reads whose bytes did not land, not those
 * whose did; for a second the failed range fails again at once without a
 * request (the kernel's re-asks), while other bytes are still fetched.
 */
static void test_failed_range(void)
{
	struct cfs_cache *c = cache_new();
	struct cfs_object *obj = object_new(7, 4 * BLOCK);
	struct result *stranded = read_quick(c, obj, 0, BLOCK);
	struct result *landed = read_quick(c, obj, 0, 4096);
	struct request *q = take(obj, 0, BLOCK);
	g_assert_cmpint(respond(q, obj->size), ==, 0);
	send_bytes(q, 0, PIECE);
	check_bytes(landed, obj, 0, 4096);
	end_request(q, -ETIMEDOUT);
	check_error(stranded, -ETIMEDOUT);
	unsigned before = submitted;
	check_error(read_quick(c, obj, 100, 10), -ETIMEDOUT); /* landed, but it overlaps */
	check_error(read_quick(c, obj, BLOCK - 10, 100), -ETIMEDOUT);
	g_assert_cmpuint(submitted, ==, before);
	struct result *other = read_quick(c, obj, BLOCK, 100);
	answer_next(obj, BLOCK, BLOCK + 100);
	check_bytes(other, obj, BLOCK, 100);
	cache_free(c);
	cfs_object_unref(obj);
}

/* An object whose response has the wrong size fails its reads, and every later one at once. */
static void test_bad_object_fails_for_good(void)
{
	struct cfs_cache *c = cache_new();
	struct cfs_object *obj = object_new(8, 4 * BLOCK);
	struct result *r = read_quick(c, obj, 0, 100);
	struct request *q = take(obj, 0, 100);
	g_test_expect_message(NULL, G_LOG_LEVEL_WARNING, "*the server says*refusing to serve it*");
	int err = respond(q, obj->size + 1);
	g_test_assert_expected_messages();
	g_assert_cmpint(err, ==, -EIO);
	end_request(q, err);
	check_error(r, -EIO);
	check_error(read_quick(c, obj, 3 * BLOCK, 100), -EIO);
	g_assert_true(g_queue_is_empty(&pending));
	cache_free(c);
	cfs_object_unref(obj);
}

/* A read whose blocks exceed the cap fails at once with EIO, asking for nothing. */
static void test_read_larger_than_cap(void)
{
	struct cfs_cache *c = cache_new();
	struct cfs_object *obj = object_new(9, 8 * BLOCK);
	unsigned before = submitted;
	g_test_expect_message(NULL, G_LOG_LEVEL_WARNING, "*needs more than the memory cap*");
	struct result *r = read_quick(c, obj, 0, CAP + 1);
	g_test_assert_expected_messages();
	check_error(r, -EIO);
	/* Unaligned, a read of the cap's length spans one block more than the cap. */
	g_test_expect_message(NULL, G_LOG_LEVEL_WARNING, "*needs more than the memory cap*");
	r = read_quick(c, obj, 1, CAP);
	g_test_assert_expected_messages();
	check_error(r, -EIO);
	g_assert_cmpuint(submitted, ==, before);
	fill_block(c, obj, 0); /* the cache still serves */
	cache_free(c);
	cfs_object_unref(obj);
}

/*
 * A read parked past the bound fails with ETIMEDOUT while its request goes
 * on; as with any failed read, the kernel's re-ask of it fails at once.
 */
static void test_read_bound(void)
{
	struct cfs_cache *c = cache_new_bounded(50);
	struct cfs_object *obj = object_new(11, 4 * BLOCK);
	gint64 start = g_get_monotonic_time();
	g_test_expect_message(NULL, G_LOG_LEVEL_WARNING, "*the bound of a read*");
	struct result *r = read_quick(c, obj, 0, 1000);
	wait_done(r);
	g_test_assert_expected_messages();
	g_assert_cmpint(g_get_monotonic_time() - start, >=, 50 * 1000);
	check_error(r, -ETIMEDOUT);
	answer_next(obj, 0, 1000); /* still running: the expirer ends reads, not requests */
	unsigned before = submitted;
	check_error(read_quick(c, obj, 0, 1000), -ETIMEDOUT);
	g_assert_cmpuint(submitted, ==, before);
	cache_free(c);
	cfs_object_unref(obj);
}

/* r, parked at parked_at (monotonic us), fails with ETIMEDOUT once the bound of ms has passed. */
static void check_expires(struct result *r, gint64 parked_at, unsigned ms)
{
	g_test_expect_message(NULL, G_LOG_LEVEL_WARNING, "*the bound of a read*");
	wait_done(r);
	g_test_assert_expected_messages();
	g_assert_cmpint(g_get_monotonic_time() - parked_at, >=, ms * 1000);
	check_error(r, -ETIMEDOUT);
}

/*
 * The expirer is woken only for a deadline before the one it sleeps until:
 * a read parked behind one that is then answered, and a read parked once
 * the queue has emptied, each still fail at their own bound.
 */
static void test_read_bound_after_answered(void)
{
	struct cfs_cache *c = cache_new_bounded(50);
	struct cfs_object *obj = object_new(12, 4 * BLOCK);
	struct result *first = read_quick(c, obj, 0, 1000);
	gint64 start = g_get_monotonic_time();
	struct result *behind = read_quick(c, obj, BLOCK, 1000);
	answer_next(obj, 0, 1000);
	check_bytes(first, obj, 0, 1000);
	check_expires(behind, start, 50);
	start = g_get_monotonic_time();
	check_expires(read_quick(c, obj, 2 * BLOCK, 1000), start, 50);
	answer_next(obj, BLOCK, BLOCK + 1000);
	answer_next(obj, 2 * BLOCK, 2 * BLOCK + 1000);
	cache_free(c);
	cfs_object_unref(obj);
}

/* A withdrawn read is never answered; its bytes still land for the next reader. */
static void test_cancel(void)
{
	struct cfs_cache *c = cache_new();
	struct cfs_object *obj = object_new(10, 4 * BLOCK);
	struct result *r = read_quick(c, obj, 0, 1000);
	g_assert_true(cfs_cache_cancel(c, obj, r));
	g_assert_false(cfs_cache_cancel(c, obj, r));
	answer_next(obj, 0, 1000);
	g_assert_false(is_done(r));
	result_free(r);
	check_hit(c, obj, 0, 1000);
	cache_free(c);
	cfs_object_unref(obj);
}

/* After close, reads fail with ECANCELED without a request, and parked ones when theirs ends. */
static void test_close(void)
{
	struct cfs_cache *c = cache_new();
	struct cfs_object *obj = object_new(11, 4 * BLOCK);
	struct result *parked = read_quick(c, obj, 0, 1000);
	cfs_cache_close(c);
	unsigned before = submitted;
	check_error(read_quick(c, obj, BLOCK, 10), -ECANCELED);
	g_assert_cmpuint(submitted, ==, before);
	end_request(take(obj, 0, 1000), -ECANCELED);
	check_error(parked, -ECANCELED);
	cache_free(c);
	cfs_object_unref(obj);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/cache/miss-then-hit", test_miss_then_hit);
	g_test_add_func("/cache/answered-as-bytes-land", test_answered_as_bytes_land);
	g_test_add_func("/cache/concurrent-misses-merged", test_concurrent_misses_merged);
	g_test_add_func("/cache/eviction-order", test_eviction_order);
	g_test_add_func("/cache/cap-under-pressure", test_cap_under_pressure);
	g_test_add_func("/cache/pinned-block-stays", test_pinned_block_stays);
	g_test_add_func("/cache/failed-range", test_failed_range);
	g_test_add_func("/cache/bad-object", test_bad_object_fails_for_good);
	g_test_add_func("/cache/read-larger-than-cap", test_read_larger_than_cap);
	g_test_add_func("/cache/read-bound", test_read_bound);
	g_test_add_func("/cache/read-bound-after-answered", test_read_bound_after_answered);
	g_test_add_func("/cache/cancel", test_cancel);
	g_test_add_func("/cache/close", test_close);
	g_test_add_func("/cache/fault-ahead", test_fault_ahead);
	return g_test_run();
}
