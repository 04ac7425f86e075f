/* First in, first out: a queue in the order entries were added; use changes nothing. */
#include <glib.h>

#include "chunkfs/policy.h"

static void *fifo_create(void)
{
	return g_queue_new(); /* g_queue_free() returns it to GSlice */
}

static void fifo_destroy(void *state)
{
	g_queue_free(state);
}

static void fifo_add(void *state, struct cfs_policy_entry *e)
{
	g_queue_push_tail(state, e);
	e->pos = g_queue_peek_tail_link(state);
}

static void fifo_remove(void *state, struct cfs_policy_entry *e)
{
	g_queue_delete_link(state, e->pos);
}

static void fifo_touch(void *state, struct cfs_policy_entry *e, bool used)
{
	(void)state, (void)e, (void)used;
}

static struct cfs_policy_entry *fifo_first(void *state)
{
	return g_queue_peek_head(state);
}

static struct cfs_policy_entry *fifo_next(void *state, struct cfs_policy_entry *e)
{
	(void)state;
	GList *next = ((GList *)e->pos)->next;
	return next ? next->data : NULL;
}

const struct cfs_policy_ops cfs_policy_fifo = {
	.name = "fifo",
	.create = fifo_create,
	.destroy = fifo_destroy,
	.add = fifo_add,
	.remove = fifo_remove,
	.touch = fifo_touch,
	.first = fifo_first,
	.next = fifo_next,
};
