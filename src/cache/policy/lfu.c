/*
 * Least frequently used: entries ordered by their number of uses, fewest
 * first; among equals the newest goes first, so that a scan larger than the
 * cache passes through one corner of it instead of flushing what is used
 * again and again (an entry must earn its place by being used).
 */
#include <glib.h>

#include "cache/policy/policy.h"

static gint order(gconstpointer a, gconstpointer b, gpointer data)
{
	(void)data;
	const struct cfs_policy_entry *x = a, *y = b;
	if (x->uses != y->uses)
		return x->uses < y->uses ? -1 : 1;
	return x->seq > y->seq ? -1 : x->seq < y->seq ? 1 : 0;
}

static void *lfu_create(void)
{
	return g_sequence_new(NULL);
}

static void lfu_destroy(void *state)
{
	g_sequence_free(state);
}

static void lfu_add(void *state, struct cfs_policy_entry *e)
{
	e->pos = g_sequence_insert_sorted(state, e, order, NULL);
}

static void lfu_remove(void *state, struct cfs_policy_entry *e)
{
	(void)state;
	g_sequence_remove(e->pos);
}

static void lfu_touch(void *state, struct cfs_policy_entry *e, bool used)
{
	(void)state;
	if (used)
		g_sequence_sort_changed(e->pos, order, NULL);
}

static struct cfs_policy_entry *lfu_first(void *state)
{
	GSequenceIter *it = g_sequence_get_begin_iter(state);
	return g_sequence_iter_is_end(it) ? NULL : g_sequence_get(it);
}

static struct cfs_policy_entry *lfu_next(void *state, struct cfs_policy_entry *e)
{
	(void)state;
	GSequenceIter *it = g_sequence_iter_next(e->pos);
	return g_sequence_iter_is_end(it) ? NULL : g_sequence_get(it);
}

const struct cfs_policy_ops cfs_policy_lfu = {
	.name = "lfu",
	.adds_first = true,
	.create = lfu_create,
	.destroy = lfu_destroy,
	.add = lfu_add,
	.remove = lfu_remove,
	.touch = lfu_touch,
	.first = lfu_first,
	.next = lfu_next,
};
