/* Block memory: an arena of block-size slots, faulted in once and reused. */
#include "cache/blockmem.h"

#include <errno.h>
#include <glib.h>
#include <stdbool.h>
#include <sys/mman.h>

struct cfs_blockmem {
	uint8_t *map;                 /* the reservation, map_len bytes; slot 0; NULL: none */
	uint64_t map_len;
	uint64_t block_size;
	uint32_t nslots;
	/*
	 * Free slots in one array: idle ones (resident, reused first) count up
	 * from the front, given-back ones count down from the back.
	 */
	uint32_t *free;
	uint32_t nidle, ngiven;
	uint32_t fresh;               /* slots [fresh, nslots) were never handed out */
};

struct cfs_blockmem *cfs_blockmem_new(uint64_t cap, uint64_t block_size)
{
	struct cfs_blockmem *m = g_new0(struct cfs_blockmem, 1);
	m->block_size = block_size;
	uint64_t nslots = MIN(cap / block_size, G_MAXUINT32);
	uint64_t len = nslots * block_size;
	void *map = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (map == MAP_FAILED) {
		g_message("cannot reserve %" G_GUINT64_FORMAT " bytes of address space for the "
			  "memory tier (%s): each block is mapped on its own", len, g_strerror(errno));
		nslots = 0;
	} else {
		m->map = map;
		m->map_len = len;
	}
	m->nslots = (uint32_t)nslots;
	m->free = g_new(uint32_t, MAX(nslots, 1));
	return m;
}

void cfs_blockmem_free(struct cfs_blockmem *m)
{
	if (!m)
		return;
	if (m->map)
		munmap(m->map, m->map_len);
	g_free(m->free);
	g_free(m);
}

static bool in_arena(const struct cfs_blockmem *m, const void *buf)
{
	const uint8_t *p = buf;
	return m->map && p >= m->map && p < m->map + (uint64_t)m->nslots * m->block_size;
}

static void *slot_get(struct cfs_blockmem *m, bool *cold)
{
	uint32_t slot;
	*cold = m->nidle == 0;
	if (m->nidle)
		slot = m->free[--m->nidle];
	else if (m->ngiven)
		slot = m->free[m->nslots - m->ngiven--];
	else if (m->fresh < m->nslots)
		slot = m->fresh++;
	else
		return NULL;
	return m->map + (uint64_t)slot * m->block_size;
}

void *cfs_blockmem_get(struct cfs_blockmem *m, uint32_t len, bool *cold_slot)
{
	if (len == m->block_size) {
		void *slot = slot_get(m, cold_slot);
		if (slot)
			return slot;
	}
	*cold_slot = false;
	void *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return buf == MAP_FAILED ? NULL : buf;
}

void *cfs_blockmem_fresh_slot(struct cfs_blockmem *m)
{
	if (m->fresh >= m->nslots)
		return NULL;
	return m->map + (uint64_t)m->fresh++ * m->block_size;
}

void cfs_blockmem_put(struct cfs_blockmem *m, void *buf, uint32_t len)
{
	if (!in_arena(m, buf)) {
		munmap(buf, len);
		return;
	}
	m->free[m->nidle++] = (uint32_t)(((uint8_t *)buf - m->map) / m->block_size);
}

void cfs_blockmem_trim(struct cfs_blockmem *m, uint64_t keep)
{
	while (m->nidle && (uint64_t)m->nidle * m->block_size > keep) {
		uint32_t slot = m->free[--m->nidle];
		madvise(m->map + (uint64_t)slot * m->block_size, m->block_size, MADV_DONTNEED);
		m->free[m->nslots - ++m->ngiven] = slot;
	}
}

uint64_t cfs_blockmem_idle_bytes(const struct cfs_blockmem *m)
{
	return (uint64_t)m->nidle * m->block_size;
}
