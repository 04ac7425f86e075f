/*
 * A small sorted set of disjoint half-open byte ranges [lo, hi) inside one
 * block. The memory tier keeps two per block: the bytes that have landed
 * (each range's hi is a fill mark) and the bytes a running request will
 * deliver. Blocks hold a handful of ranges at most, so the set is a sorted
 * array and every operation is linear in its length.
 * Not thread-safe: the owner's lock protects it.
 */
#ifndef CHUNKFS_EXTENTS_H
#define CHUNKFS_EXTENTS_H

#include <stdbool.h>
#include <stdint.h>

struct cfs_extent {
	uint32_t lo, hi;
};

struct cfs_extents {
	struct cfs_extent *v; /* owned, g_malloc'd */
	uint32_t n, cap;
};

/* Add [lo, hi), merging with ranges it touches or overlaps. lo >= hi is a no-op. */
void cfs_extents_add(struct cfs_extents *set, uint32_t lo, uint32_t hi);

/* Remove [lo, hi) from the set, splitting a range when needed. */
void cfs_extents_remove(struct cfs_extents *set, uint32_t lo, uint32_t hi);

/* True when every byte of [lo, hi) is in the set (an empty range is covered). */
bool cfs_extents_covers(const struct cfs_extents *set, uint32_t lo, uint32_t hi);

/*
 * The first gap of [lo, hi) not covered by the union of a and b, at or after
 * lo. Returns false when there is none; else stores it in *gap.
 * b may be NULL.
 */
bool cfs_extents_first_gap(const struct cfs_extents *a, const struct cfs_extents *b,
			   uint32_t lo, uint32_t hi, struct cfs_extent *gap);

/* The bytes the set covers: the sum of its ranges' lengths. */
uint32_t cfs_extents_bytes(const struct cfs_extents *set);

/* Free the array; the set is empty and reusable afterwards. */
void cfs_extents_clear(struct cfs_extents *set);

#endif
