/* The queue shared by the LRU and FIFO policies: a GQueue, e->pos its link. */
#include "queue_i.h"

#include <glib.h>

void *policy_queue_create(void)
{
	return g_queue_new(); /* g_queue_free() returns it to GSlice */
}

void policy_queue_destroy(void *state)
{
	g_queue_free(state);
}

void policy_queue_add(void *state, struct cfs_policy_entry *e)
{
	g_queue_push_tail(state, e);
	e->pos = g_queue_peek_tail_link(state);
}

void policy_queue_remove(void *state, struct cfs_policy_entry *e)
{
	g_queue_delete_link(state, e->pos);
}

void policy_queue_to_tail(void *state, struct cfs_policy_entry *e)
{
	g_queue_unlink(state, e->pos);
	g_queue_push_tail_link(state, e->pos);
}

struct cfs_policy_entry *policy_queue_first(void *state)
{
	return g_queue_peek_head(state);
}

struct cfs_policy_entry *policy_queue_next(void *state, struct cfs_policy_entry *e)
{
	(void)state;
	GList *next = ((GList *)e->pos)->next;
	return next ? next->data : NULL;
}
