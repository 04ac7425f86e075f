/*
 * Faulting the memory tier's arena in ahead of use, while the mount has no
 * reads, so that a first read finds warm block memory.
 *
 * A block's first touch costs a page fault, a zeroed page and a memory
 * cgroup charge per 4 KiB. On the project's 2-core VM this was a third of
 * the daemon's CPU during a cold sequential read on a fresh mount (perf,
 * 2026-12-07), and the read is CPU-bound: with the arena faulted in
 * beforehand, the same read ran a third faster (docs/performance.md). The
 * tier fills up to its cap during a training epoch anyway; this moves the
 * cost of its first GiB to time the mount has to spare. It pauses while reads come, and
 * keeps the daemon's priority: at nice 19 it held 8 random readers at half
 * speed, preempted while holding the tier's lock or the address space's,
 * which every other thread of the daemon then waited for (measured twice:
 * without the pause, and with it while readers were served from the page
 * cache, which the tier never sees). --lazy-memory turns it off, for a
 * mount whose resident memory should grow only with use.
 */
#include <errno.h>
#include <glib.h>
#include <sys/mman.h>

#include "cache/blockmem.h"
#include "cache_i.h"

/*
 * Faulted in per call: the call holds the address space's lock for
 * reading, which an mmap() elsewhere in the daemon waits for.
 */
#define PIECE_BYTES (UINT64_C(128) << 10)
/*
 * At most this much is faulted in ahead, whatever the cap: it takes about a
 * third of a core-second per GiB, which a larger cap would spend for
 * seconds beside reads the kernel answers from its page cache (the tier
 * never sees them, so nothing pauses it), while a first epoch starts well
 * within it.
 */
#define AHEAD_MAX (UINT64_C(1) << 30)
/* The mount is idle when no read came for this long: a reader's reads come far closer. */
#define QUIET_US (20 * G_TIME_SPAN_MILLISECOND)

/* One more slot may become resident beside the live blocks and the idle slots. */
static bool room_for_slot(const struct cfs_cache *c)
{
	return c->used + cfs_blockmem_idle_bytes(c->mem) + c->block_size <= c->cap;
}

/* Wait, lock held, until no read came for QUIET_US; false when closing. */
static bool wait_quiet(struct cfs_cache *c)
{
	while (!c->closing) {
		gint64 quiet_at = __atomic_load_n(&c->last_read_us, __ATOMIC_RELAXED) + QUIET_US;
		if (g_get_monotonic_time() >= quiet_at)
			return true;
		g_cond_wait_until(&c->faulter_wake, &c->lock, quiet_at);
	}
	return false;
}

/* Under AHEAD_MAX faulted in so far (done bytes), room for a slot, and the mount idle. */
static bool may_fault_more(struct cfs_cache *c, uint64_t done)
{
	return done < AHEAD_MAX && wait_quiet(c) && room_for_slot(c);
}

/* Fault slot in, piece by piece; false when the kernel refuses. */
static bool fault_in(struct cfs_cache *c, uint8_t *slot)
{
	for (uint64_t off = 0; off < c->block_size; off += PIECE_BYTES) {
		if (madvise(slot + off, MIN(PIECE_BYTES, c->block_size - off),
			    MADV_POPULATE_WRITE) == 0)
			continue;
		g_debug("memory tier: faulting block memory in ahead stopped: %s",
			g_strerror(errno));
		return false;
	}
	return true;
}

static gpointer fault_ahead(gpointer p)
{
	struct cfs_cache *c = p;
	g_mutex_lock(&c->lock);
	bool ok = true;
	void *slot;
	uint64_t done = 0;
	while (ok && may_fault_more(c, done) && (slot = cfs_blockmem_fresh_slot(c->mem))) {
		g_mutex_unlock(&c->lock);
		ok = fault_in(c, slot);
		done += c->block_size;
		g_mutex_lock(&c->lock);
		cfs_blockmem_put(c->mem, slot, (uint32_t)c->block_size);
		cache_trim_idle(c); /* blocks may have taken the room meanwhile */
	}
	g_mutex_unlock(&c->lock);
	return NULL;
}

void cache_fault_ahead_start(struct cfs_cache *c)
{
	c->faulter = g_thread_new("fault-ahead", fault_ahead, c);
}
