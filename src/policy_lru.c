/*
 * Least recently used: a queue, the entry read or let go last at its tail.
 * Letting go counts as recent so that readahead, held by its request until
 * it lands, is not the first thing evicted once it has.
 */
#include <glib.h>

#include "chunkfs/policy.h"

static void *lru_create(void)
{
	return g_queue_new(); /* g_queue_free() returns it to GSlice */
}

static void lru_destroy(void *state)
{
	g_queue_free(state);
}

static void lru_add(void *state, struct cfs_policy_entry *e)
{
	g_queue_push_tail(state, e);
	e->pos = g_queue_peek_tail_link(state);
}

static void lru_remove(void *state, struct cfs_policy_entry *e)
{
	g_queue_delete_link(state, e->pos);
}

static void lru_touch(void *state, struct cfs_policy_entry *e, bool used)
{
	(void)used;
	g_queue_unlink(state, e->pos);
	g_queue_push_tail_link(state, e->pos);
}

static struct cfs_policy_entry *lru_first(void *state)
{
	return g_queue_peek_head(state);
}

static struct cfs_policy_entry *lru_next(void *state, struct cfs_policy_entry *e)
{
	(void)state;
	GList *next = ((GList *)e->pos)->next;
	return next ? next->data : NULL;
}

const struct cfs_policy_ops cfs_policy_lru = {
	.name = "lru",
	.create = lru_create,
	.destroy = lru_destroy,
	.add = lru_add,
	.remove = lru_remove,
	.touch = lru_touch,
	.first = lru_first,
	.next = lru_next,
};
