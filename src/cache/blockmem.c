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
	/*
	 * Slots [low, high) were never handed out. Blocks a request will fill
	 * whole take them from the low end, where the warmer keeps up to lead
	 * of them ([low, warm)) faulted in; blocks filled in part (a random
	 * item) take them from the high end, cold, and fault in only what
	 * lands. low and high move under the memory tier's lock, warm in the
	 * warmer alone: all three atomic, as the other side reads them.
	 */
	gint low, high, warm;
	uint32_t lead;
	GThread *warmer;
	GMutex wake_lock;
	GCond wake;       /* a warm slot was taken, or stop */
	bool woken, stop; /* under wake_lock */
};

static void *slot_addr(const struct cfs_blockmem *m, uint32_t slot)
{
	return m->map + (uint64_t)slot * m->block_size;
}

/* Slots faulted in ahead of the getters, not yet handed out. */
static uint32_t warm_ahead(const struct cfs_blockmem *m)
{
	int ahead = MIN(g_atomic_int_get(&m->warm), g_atomic_int_get(&m->high)) -
		    g_atomic_int_get(&m->low);
	return ahead > 0 ? (uint32_t)ahead : 0;
}

/* The next slot to warm, or false when the lead is full or no fresh slot is left. */
static bool warm_next(const struct cfs_blockmem *m, uint32_t *slot)
{
	gint next = MAX(g_atomic_int_get(&m->warm), g_atomic_int_get(&m->low));
	*slot = (uint32_t)next;
	return warm_ahead(m) < m->lead && next < g_atomic_int_get(&m->high);
}

/*
 * Wait until the first block to be filled whole took a slot and there is
 * one to warm, or until stop. True: warm *slot.
 */
static bool warmer_wait(struct cfs_blockmem *m, uint32_t *slot)
{
	g_mutex_lock(&m->wake_lock);
	while (!m->stop && !(m->woken && warm_next(m, slot)))
		g_cond_wait(&m->wake, &m->wake_lock);
	bool go = !m->stop;
	g_mutex_unlock(&m->wake_lock);
	return go;
}

/*
 * Fault in the fresh slots next in line for whole blocks, up to lead of
 * them, so that a stream's bytes land in pages that exist: the faults cost
 * this thread's time, which the fetch would otherwise spend. A slot a
 * getter takes while it is being faulted in is safe: populating never
 * changes bytes, and that getter faults in what it needs itself.
 */
static gpointer warmer_thread(gpointer data)
{
	struct cfs_blockmem *m = data;
	uint32_t slot;
	while (warmer_wait(m, &slot)) {
		if (madvise(slot_addr(m, slot), m->block_size, MADV_POPULATE_WRITE) != 0) {
			g_debug("memory tier: block memory not faulted in ahead: %s",
				g_strerror(errno));
			break;
		}
		g_atomic_int_set(&m->warm, (gint)slot + 1);
	}
	return NULL;
}

static void warmer_start(struct cfs_blockmem *m, uint64_t lead_bytes)
{
	m->lead = (uint32_t)MIN(lead_bytes / m->block_size, m->nslots);
	if (m->lead == 0)
		return;
	g_mutex_init(&m->wake_lock);
	g_cond_init(&m->wake);
	m->warmer = g_thread_new("blockmem-warm", warmer_thread, m);
}

static void warmer_stop(struct cfs_blockmem *m)
{
	if (!m->warmer)
		return;
	g_mutex_lock(&m->wake_lock);
	m->stop = true;
	g_cond_signal(&m->wake);
	g_mutex_unlock(&m->wake_lock);
	g_thread_join(m->warmer);
	g_mutex_clear(&m->wake_lock);
	g_cond_clear(&m->wake);
}

/* Wake the warmer once half its lead is eaten (one signal per half lead, not per slot). */
static void warmer_poke(struct cfs_blockmem *m)
{
	if (!m->warmer || warm_ahead(m) > m->lead / 2)
		return;
	g_mutex_lock(&m->wake_lock);
	m->woken = true;
	g_cond_signal(&m->wake);
	g_mutex_unlock(&m->wake_lock);
}

struct cfs_blockmem *cfs_blockmem_new(uint64_t cap, uint64_t block_size, uint64_t lead)
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
	m->high = (gint)nslots;
	m->free = g_new(uint32_t, MAX(nslots, 1));
	if (m->map)
		warmer_start(m, lead);
	return m;
}

void cfs_blockmem_free(struct cfs_blockmem *m)
{
	if (!m)
		return;
	warmer_stop(m);
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

/* The fresh slot at the low end; false when there is none, or it is cold and warm_only. */
static bool low_get(struct cfs_blockmem *m, bool warm_only, uint32_t *slot, bool *cold)
{
	gint low = g_atomic_int_get(&m->low);
	*cold = low >= g_atomic_int_get(&m->warm);
	if (low >= g_atomic_int_get(&m->high) || (warm_only && *cold))
		return false;
	g_atomic_int_set(&m->low, low + 1);
	*slot = (uint32_t)low;
	warmer_poke(m);
	return true;
}

/* The fresh slot at the high end, warm only when the warmer got that far. */
static bool high_get(struct cfs_blockmem *m, uint32_t *slot, bool *cold)
{
	gint high = g_atomic_int_get(&m->high);
	if (high <= g_atomic_int_get(&m->low))
		return false;
	g_atomic_int_set(&m->high, high - 1);
	*slot = (uint32_t)high - 1;
	*cold = *slot >= (uint32_t)g_atomic_int_get(&m->warm);
	return true;
}

static bool given_get(struct cfs_blockmem *m, uint32_t *slot, bool *cold)
{
	if (!m->ngiven)
		return false;
	*slot = m->free[m->nslots - m->ngiven--];
	*cold = true;
	return true;
}

/*
 * Idle slots first. Then, for a block to be filled whole, a warm fresh
 * slot, a given-back one, a cold fresh one; for a block filled in part, a
 * given-back slot, then a fresh one from the high end, so that it takes
 * none of the warm ones.
 */
static void *slot_get(struct cfs_blockmem *m, bool whole, bool *cold)
{
	uint32_t slot;
	*cold = false;
	if (m->nidle)
		return slot_addr(m, m->free[--m->nidle]);
	bool got = whole ? low_get(m, true, &slot, cold) || given_get(m, &slot, cold) ||
				   low_get(m, false, &slot, cold)
			 : given_get(m, &slot, cold) || high_get(m, &slot, cold);
	return got ? slot_addr(m, slot) : NULL;
}

void *cfs_blockmem_get(struct cfs_blockmem *m, uint32_t len, bool whole, bool *cold_slot)
{
	if (len == m->block_size) {
		void *slot = slot_get(m, whole, cold_slot);
		if (slot)
			return slot;
	}
	*cold_slot = false;
	void *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return buf == MAP_FAILED ? NULL : buf;
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
	keep -= MIN(keep, (uint64_t)warm_ahead(m) * m->block_size);
	while (m->nidle && (uint64_t)m->nidle * m->block_size > keep) {
		uint32_t slot = m->free[--m->nidle];
		madvise(slot_addr(m, slot), m->block_size, MADV_DONTNEED);
		m->free[m->nslots - ++m->ngiven] = slot;
	}
}

uint64_t cfs_blockmem_idle_bytes(const struct cfs_blockmem *m)
{
	return (uint64_t)m->nidle * m->block_size;
}

uint64_t cfs_blockmem_warm_bytes(const struct cfs_blockmem *m)
{
	return (uint64_t)warm_ahead(m) * m->block_size;
}
