/*
 * Least recently used: a queue, the entry read or let go last at its tail.
 * Letting go counts as recent so that readahead, held by its request until
 * it lands, is not the first thing evicted once it has.
 */
#include "queue_i.h"

static void lru_touch(void *state, struct cfs_policy_entry *e, bool used)
{
	(void)used;
	policy_queue_to_tail(state, e);
}

const struct cfs_policy_ops cfs_policy_lru = {
	.name = "lru",
	.create = policy_queue_create,
	.destroy = policy_queue_destroy,
	.add = policy_queue_add,
	.remove = policy_queue_remove,
	.touch = lru_touch,
	.first = policy_queue_first,
	.next = policy_queue_next,
};
