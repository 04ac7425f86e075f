/*
 * The memory tier's block store: blocks of objects with their fill marks,
 * the tier's state about each object, pins, room under the cap by eviction,
 * and the writes of blocks to the spill tier as they leave memory. The
 * bottom of the tier: the sources (fill.c) and the reads
 * (mem.c) call it; it tells the reads layer that a write ended,
 * which may have made room, through c->reads (cache_i.h).
 */
#include <limits.h>

#include "cache_i.h"
#include "cache/blockmem.h"
#include "spill/spill.h"
#include "tree/object.h"
#include "util/stats.h"

/*
 * Once less room is left under the cap than the spill writes may have in
 * flight (cache_spill_budget(): a quarter of the cap, at most 32 MiB), the
 * blocks next in line for eviction are written to the spill tier ahead of
 * time (each is written once anyway: at eviction or at unmount), so that
 * room is there when a read needs it and the next epoch does not start
 * with the writes of this one. This many are looked at each time. With
 * more room, nothing is written while reads run: the writes' checksums,
 * copies, fresh page cache and ext4 inode work cost a cold read a third to
 * two thirds of its speed, and 8 random readers a fifth, on the 2-core VM
 * (docs/performance.md).
 */
#define CLEAN_AHEAD_SCAN 256
/* Blocks on their way to the spill tier at once: at most this, or a quarter of the cap. */
#define SPILL_BUDGET_MAX (UINT64_C(32) << 20)
#define SPILL_BUDGET_CAP_DIVISOR 4

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

static struct block *block_of(struct cfs_policy_entry *e)
{
	return (struct block *)((char *)e - offsetof(struct block, pol));
}

/* Free the state of an object that no read waits on. */
static void object_state_free(gpointer data)
{
	struct object_state *st = data;
	g_assert(g_queue_is_empty(&st->parked));
	g_free(st->failed);
	g_free(st);
}

void cache_store_init(struct cfs_cache *c, uint64_t cap, uint64_t block_size, const char *policy)
{
	c->cap = cap;
	c->block_size = block_size;
	c->mem = cfs_blockmem_new(cap, block_size);
	c->policy = cfs_policy_new(policy);
	c->blocks = g_hash_table_new(key_hash, key_equal);
	c->objects = g_hash_table_new_full(NULL, NULL, NULL, object_state_free);
}

uint32_t cache_block_len(const struct cfs_cache *c, const struct cfs_object *obj, uint64_t index)
{
	return (uint32_t)MIN(c->block_size, obj->size - block_start(c, index));
}

struct object_state *cache_object_find(struct cfs_cache *c, const struct cfs_object *obj)
{
	return g_hash_table_lookup(c->objects, GUINT_TO_POINTER(obj->id));
}

struct object_state *cache_object(struct cfs_cache *c, const struct cfs_object *obj)
{
	struct object_state *st = cache_object_find(c, obj);
	if (!st) {
		st = g_new0(struct object_state, 1);
		g_queue_init(&st->parked);
		g_hash_table_insert(c->objects, GUINT_TO_POINTER(obj->id), st);
	}
	return st;
}

void cache_object_drop(struct cfs_cache *c, const struct cfs_object *obj)
{
	g_hash_table_remove(c->objects, GUINT_TO_POINTER(obj->id));
}

struct block *cache_block_get(struct cfs_cache *c, const struct cfs_object *obj, uint64_t index)
{
	struct block_key k = { obj->id, index };
	return g_hash_table_lookup(c->blocks, &k);
}

void cache_block_free(struct cfs_cache *c, struct block *b)
{
	g_assert(b->pins == 0);
	cfs_policy_remove(c->policy, &b->pol);
	g_hash_table_remove(c->blocks, &b->key);
	cfs_blockmem_put(c->mem, b->data, b->len);
	cfs_extents_clear(&b->filled);
	cfs_extents_clear(&b->inflight);
	c->used -= b->len;
	cache_trim_idle(c);
	cfs_stats_gauge_set(CFS_MEM_BYTES, (int64_t)c->used);
	cfs_stats_gauge_add(CFS_MEM_BLOCKS, -1);
	g_free(b);
}

/* Nothing holds it, and letting it go now loses nothing or starts its spill. */
static bool can_evict(struct cfs_policy_entry *e, void *ctx)
{
	struct cfs_cache *c = ctx;
	struct block *b = block_of(e);
	return b->pins == 0 &&
	       (!cache_needs_spill(c, b) || c->spilling + b->len <= cache_spill_budget(c));
}

/*
 * Start writing to the spill tier the unpinned blocks that it lacks among
 * the first scan in eviction order, while the writes in flight stay within
 * budget bytes.
 */
static void spill_ahead(struct cfs_cache *c, unsigned scan, uint64_t budget)
{
	if (!c->disk)
		return;
	struct cfs_policy_entry *e = cfs_policy_first(c->policy);
	for (unsigned seen = 0; e && seen < scan; seen++) {
		struct block *b = block_of(e);
		e = cfs_policy_next(c->policy, e);
		if (b->pins == 0 && cache_needs_spill(c, b) && c->spilling + b->len <= budget)
			cache_spill(c, b);
	}
}

void cache_spill_all(struct cfs_cache *c)
{
	spill_ahead(c, UINT_MAX, UINT64_MAX);
}

void cache_trim_idle(struct cfs_cache *c)
{
	cfs_blockmem_trim(c->mem, c->cap - MIN(c->used, c->cap));
	cfs_stats_gauge_set(CFS_MEM_IDLE, (int64_t)cfs_blockmem_idle_bytes(c->mem));
}

bool cache_make_room(struct cfs_cache *c, uint64_t bytes)
{
	while (c->used + bytes > c->cap) {
		struct cfs_policy_entry *e = cfs_policy_victim(c->policy, can_evict, c);
		if (!e)
			return false;
		struct block *b = block_of(e);
		if (cache_needs_spill(c, b)) {
			cache_spill(c, b); /* pinned until written, then evictable at once */
			continue;
		}
		cache_block_free(c, b);
		cfs_stats_add(CFS_MEM_EVICTIONS, 1);
	}
	uint64_t budget = cache_spill_budget(c);
	if (c->used + bytes + budget > c->cap)
		spill_ahead(c, CLEAN_AHEAD_SCAN, budget);
	return true;
}

/* bytes more are used (a block's buffer, or a stream's); room was made for them. */
static void use(struct cfs_cache *c, uint64_t bytes)
{
	c->used += bytes;
	g_assert(c->used <= c->cap);
	cache_trim_idle(c);
	cfs_stats_gauge_set(CFS_MEM_BYTES, (int64_t)c->used);
}

bool cache_reserve(struct cfs_cache *c, uint64_t bytes)
{
	if (!cache_make_room(c, bytes))
		return false;
	use(c, bytes);
	return true;
}

void cache_unreserve(struct cfs_cache *c, uint64_t bytes)
{
	g_assert(bytes <= c->used);
	c->used -= bytes;
	cfs_stats_gauge_set(CFS_MEM_BYTES, (int64_t)c->used);
}

struct block *cache_block_new(struct cfs_cache *c, struct cfs_object *obj, uint64_t index)
{
	uint32_t len = cache_block_len(c, obj, index);
	bool cold;
	void *data = cfs_blockmem_get(c->mem, len, &cold);
	if (!data)
		return NULL;
	struct block *b = g_new0(struct block, 1);
	b->cold = cold;
	b->key = (struct block_key){ obj->id, index };
	b->obj = obj;
	b->state = cache_object(c, obj);
	b->len = len;
	b->data = data;
	g_hash_table_insert(c->blocks, &b->key, b);
	cfs_policy_add(c->policy, &b->pol);
	use(c, len);
	cfs_stats_gauge_add(CFS_MEM_BLOCKS, 1);
	return b;
}

void cache_pin(struct cfs_cache *c, struct block *b)
{
	(void)c;
	b->pins++;
}

void cache_unpin(struct cfs_cache *c, struct block *b)
{
	g_assert(b->pins > 0);
	if (--b->pins > 0)
		return;
	if (b->filled.n == 0 && b->inflight.n == 0)
		cache_block_free(c, b); /* nothing landed and nothing will */
	else
		cfs_policy_release(c->policy, &b->pol);
}

bool cache_is_present(struct cfs_cache *c, const struct cfs_object *obj, uint64_t off, uint64_t len)
{
	FOR_EACH_BLOCK(c, off, len, idx, lo, hi) {
		struct block *b = cache_block_get(c, obj, idx);
		if (!b || !cfs_extents_covers(&b->filled, (uint32_t)lo, (uint32_t)hi))
			return false;
	}
	return true;
}

/* ---- writes to the spill tier ---- */

char *cache_validator(struct cfs_cache *c, struct cfs_object *obj)
{
	struct cfs_object *remote = cache_remote_of(obj);
	char *etag = cfs_object_etag(remote);
	if (!etag && cache_object(c, remote)->validation == VALIDATED)
		etag = g_strdup("");
	return etag;
}

struct cfs_spill_id cache_spill_id(const struct block *b, const char *etag)
{
	return (struct cfs_spill_id){ b->obj->name, etag, b->obj->size, b->key.index, b->len };
}

uint64_t cache_spill_budget(const struct cfs_cache *c)
{
	return MIN(SPILL_BUDGET_MAX, c->cap / SPILL_BUDGET_CAP_DIVISOR);
}

bool cache_needs_spill(const struct cfs_cache *c, const struct block *b)
{
	return c->disk && !b->clean && !b->spilling && !b->unspillable && b->filled.n > 0 &&
	       !b->state->error;
}

/* A block on its way to the spill tier. */
struct spill_write {
	struct cfs_cache *c;
	struct block *b;
};

static void spill_done(void *ctx, bool ok)
{
	struct spill_write *w = ctx;
	struct cfs_cache *c = w->c;
	struct block *b = w->b;
	g_free(w);
	GArray *answers = cache_answers_new();
	g_mutex_lock(&c->lock);
	c->spilling -= b->len;
	b->spilling = false;
	b->clean = ok &&
		   cfs_extents_bytes(&b->filled) == b->spilled_bytes; /* nothing landed meanwhile */
	b->unspillable = !ok;
	cache_unpin(c, b);
	c->reads->wake_unlock(c, &c->mem_wait, answers);
}

void cache_spill(struct cfs_cache *c, struct block *b)
{
	char *etag = cache_validator(c, b->obj);
	struct cfs_spill_id id = cache_spill_id(b, etag ? etag : "");
	struct spill_write *w = g_new(struct spill_write, 1);
	*w = (struct spill_write){ c, b };
	cache_pin(c, b);
	b->spilling = true;
	b->spilled_bytes = cfs_extents_bytes(&b->filled);
	c->spilling += b->len;
	cfs_disk_spill(c->disk, &id, &b->filled, b->data, spill_done, w);
	g_free(etag);
}

void cache_store_free(struct cfs_cache *c)
{
	struct cfs_policy_entry *e;
	while ((e = cfs_policy_first(c->policy)))
		cache_block_free(c, block_of(e));
	g_warn_if_fail(g_hash_table_size(c->blocks) == 0);
	g_hash_table_destroy(c->blocks);
	g_hash_table_destroy(c->objects);
	cfs_blockmem_free(c->mem);
	cfs_policy_free(c->policy);
}
