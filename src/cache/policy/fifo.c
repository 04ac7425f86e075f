/* First in, first out: a queue in the order entries were added; use changes nothing. */
#include "queue_i.h"

static void fifo_touch(void *state, struct cfs_policy_entry *e, bool used)
{
	(void)state, (void)e, (void)used;
}

const struct cfs_policy_ops cfs_policy_fifo = {
	.name = "fifo",
	.create = policy_queue_create,
	.destroy = policy_queue_destroy,
	.add = policy_queue_add,
	.remove = policy_queue_remove,
	.touch = fifo_touch,
	.first = policy_queue_first,
	.next = policy_queue_next,
};
