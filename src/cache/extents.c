/* Sorted disjoint ranges in a small array. */
#include "cache/extents.h"

#include <glib.h>
#include <string.h>

/* Room of a set's first array: most blocks hold one or a few ranges, and so never grow it. */
#define MIN_CAP 4u

static void reserve(struct cfs_extents *s, uint32_t n)
{
	if (n <= s->cap)
		return;
	s->cap = MAX(MIN_CAP, MAX(n, s->cap * 2));
	s->v = g_renew(struct cfs_extent, s->v, s->cap);
}

static void insert_at(struct cfs_extents *s, uint32_t i, uint32_t lo, uint32_t hi)
{
	reserve(s, s->n + 1);
	memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof(s->v[0]));
	s->v[i] = (struct cfs_extent){ lo, hi };
	s->n++;
}

static void erase(struct cfs_extents *s, uint32_t i, uint32_t count)
{
	memmove(&s->v[i], &s->v[i + count], (s->n - i - count) * sizeof(s->v[0]));
	s->n -= count;
}

void cfs_extents_add(struct cfs_extents *s, uint32_t lo, uint32_t hi)
{
	if (lo >= hi)
		return;
	uint32_t i = 0;
	while (i < s->n && s->v[i].hi < lo)
		i++;
	uint32_t j = i;
	while (j < s->n && s->v[j].lo <= hi) {
		lo = MIN(lo, s->v[j].lo);
		hi = MAX(hi, s->v[j].hi);
		j++;
	}
	if (j > i) {
		s->v[i] = (struct cfs_extent){ lo, hi };
		erase(s, i + 1, j - i - 1);
	} else {
		insert_at(s, i, lo, hi);
	}
}

void cfs_extents_remove(struct cfs_extents *s, uint32_t lo, uint32_t hi)
{
	if (lo >= hi)
		return;
	for (uint32_t i = 0; i < s->n;) {
		struct cfs_extent e = s->v[i];
		if (e.hi <= lo || e.lo >= hi) {
			i++;
		} else if (e.lo < lo && e.hi > hi) {
			s->v[i].hi = lo;
			insert_at(s, i + 1, hi, e.hi);
			return;
		} else if (e.lo < lo) {
			s->v[i++].hi = lo;
		} else if (e.hi > hi) {
			s->v[i].lo = hi;
			return;
		} else {
			erase(s, i, 1);
		}
	}
}

bool cfs_extents_covers(const struct cfs_extents *s, uint32_t lo, uint32_t hi)
{
	if (lo >= hi)
		return true;
	for (uint32_t i = 0; i < s->n; i++)
		if (s->v[i].lo <= lo && s->v[i].hi >= hi)
			return true;
	return false;
}

/* The end of the range of s that contains pos, or pos when none does. */
static uint32_t skip_covered(const struct cfs_extents *s, uint32_t pos)
{
	if (s)
		for (uint32_t i = 0; i < s->n; i++)
			if (s->v[i].lo <= pos && pos < s->v[i].hi)
				return s->v[i].hi;
	return pos;
}

/* The start of the first range of s after pos, or limit. */
static uint32_t next_start(const struct cfs_extents *s, uint32_t pos, uint32_t limit)
{
	if (s)
		for (uint32_t i = 0; i < s->n; i++)
			if (s->v[i].lo > pos)
				return MIN(limit, s->v[i].lo);
	return limit;
}

bool cfs_extents_first_gap(const struct cfs_extents *a, const struct cfs_extents *b,
			   uint32_t lo, uint32_t hi, struct cfs_extent *gap)
{
	uint32_t pos = lo;
	for (;;) {
		uint32_t next = skip_covered(b, skip_covered(a, pos));
		if (next == pos)
			break;
		pos = next;
	}
	if (pos >= hi)
		return false;
	uint32_t end = next_start(b, pos, next_start(a, pos, hi));
	*gap = (struct cfs_extent){ pos, end };
	return true;
}

uint32_t cfs_extents_bytes(const struct cfs_extents *s)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < s->n; i++)
		n += s->v[i].hi - s->v[i].lo;
	return n;
}

void cfs_extents_clear(struct cfs_extents *s)
{
	g_free(s->v);
	memset(s, 0, sizeof(*s));
}
