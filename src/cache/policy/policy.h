/*
 * Eviction policies, shared by the memory tier and the spill tier. A tier
 * embeds a struct cfs_policy_entry in everything it keeps, adds it when it
 * is created and removes it when it is freed; the policy orders the entries
 * from the first to evict to the last, and the tier takes the first one it
 * can evict now (one no read or request holds).
 *
 * A policy is one file (lru.c, lfu.c, fifo.c) that
 * fills a struct cfs_policy_ops; cfs_policy_new() finds it by name. LRU
 * and FIFO share the queue of queue.c and differ only in touch.
 * Not thread-safe: the tier's lock protects its policy.
 */
#ifndef CHUNKFS_POLICY_H
#define CHUNKFS_POLICY_H

#include <stdbool.h>
#include <stdint.h>

struct cfs_policy_entry {
	void *pos;     /* the policy's handle on the entry (a list link, a tree node) */
	uint64_t seq;  /* when it was added: 1, 2, 3... in the order of cfs_policy_add() */
	uint64_t uses; /* cfs_policy_use() calls since it was added */
};

struct cfs_policy_ops {
	const char *name; /* as --eviction spells it */
	/*
	 * Where add places a new entry: first to evict (LFU, whose ties go
	 * newest first) or, false, last (LRU, FIFO). A tier that saves its
	 * order and adds the entries back in turn lists them in the order
	 * that rebuilds it.
	 */
	bool adds_first;
	/* The policy's state with no entry, and its release (no entry left in it). */
	void *(*create)(void);
	void (*destroy)(void *state);
	/* e is new (seq set, uses 0): place it. */
	void (*add)(void *state, struct cfs_policy_entry *e);
	/* e, placed by add, leaves: forget it. */
	void (*remove)(void *state, struct cfs_policy_entry *e);
	/* e was read (uses already counted) or, with used false, just let go by its last holder. */
	void (*touch)(void *state, struct cfs_policy_entry *e, bool used);
	/* Entries in eviction order: the first, and the one after e; NULL past the last. */
	struct cfs_policy_entry *(*first)(void *state);
	struct cfs_policy_entry *(*next)(void *state, struct cfs_policy_entry *e);
};

extern const struct cfs_policy_ops cfs_policy_lru;  /* least recently used first */
extern const struct cfs_policy_ops cfs_policy_lfu;  /* fewest uses first; ties: newest first */
extern const struct cfs_policy_ops cfs_policy_fifo; /* oldest first, whatever its use */

struct cfs_policy;

/*
 * The policy named name ("lru", "lfu", "fifo"), with no entry; NULL for
 * another name. The caller owns it: cfs_policy_free() once every entry is
 * removed (NULL is ignored).
 */
struct cfs_policy *cfs_policy_new(const char *name);
void cfs_policy_free(struct cfs_policy *p);

/* True when name names a policy. */
bool cfs_policy_known(const char *name);

/* Whether a new entry is placed first to evict (cfs_policy_ops.adds_first). */
bool cfs_policy_adds_first(const struct cfs_policy *p);

/*
 * Add e, which is in no policy, as new (uses 0); remove e, which is in p.
 * The caller owns e and keeps it in place while it is in p.
 */
void cfs_policy_add(struct cfs_policy *p, struct cfs_policy_entry *e);
void cfs_policy_remove(struct cfs_policy *p, struct cfs_policy_entry *e);

/* e was read (a hit, or the read that brought it). */
void cfs_policy_use(struct cfs_policy *p, struct cfs_policy_entry *e);

/* e's last holder let it go (a request that filled it ended). */
void cfs_policy_release(struct cfs_policy *p, struct cfs_policy_entry *e);

/* Entries in eviction order: the first, and the one after e; NULL past the last. */
struct cfs_policy_entry *cfs_policy_first(struct cfs_policy *p);
struct cfs_policy_entry *cfs_policy_next(struct cfs_policy *p, struct cfs_policy_entry *e);

/*
 * The first entry in eviction order for which can_evict(e, ctx) is true, or
 * NULL. Entries that cannot be evicted now are stepped over; can_evict must
 * not change p. The entry stays in p: the caller removes it.
 */
struct cfs_policy_entry *cfs_policy_victim(struct cfs_policy *p,
					   bool (*can_evict)(struct cfs_policy_entry *e, void *ctx),
					   void *ctx);

#endif
