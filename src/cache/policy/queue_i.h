/*
 * Private to the policies kept as one queue (LRU, FIFO): the queue in
 * eviction order, head first. They differ only in what touch does.
 */
#ifndef CHUNKFS_POLICY_QUEUE_I_H
#define CHUNKFS_POLICY_QUEUE_I_H

#include "cache/policy/policy.h"

/*
 * A policy's state: an empty queue (a GQueue), freed with
 * policy_queue_destroy(), which leaves the entries to their owner. Not
 * thread-safe: the caller's lock (the memory tier's, or the spill tier's)
 * guards every call.
 */
void *policy_queue_create(void);
void policy_queue_destroy(void *state);
/* At the tail: evicted last. */
void policy_queue_add(void *state, struct cfs_policy_entry *e);
/* Take e, which is in the queue, out of it. */
void policy_queue_remove(void *state, struct cfs_policy_entry *e);
/* Move e to the tail. */
void policy_queue_to_tail(void *state, struct cfs_policy_entry *e);
/* The entry evicted first (the head), then the one after e; NULL past the tail. */
struct cfs_policy_entry *policy_queue_first(void *state);
struct cfs_policy_entry *policy_queue_next(void *state, struct cfs_policy_entry *e);

#endif
