/*
 * Block memory: the buffers of the memory tier's blocks, from one arena
 * reserved for the whole cap and faulted in once.
 *
 * A fresh anonymous page costs a page fault, a zeroed page and a memory
 * cgroup charge on first touch; on a virtual machine whose host has taken
 * the page back, it also costs an exit to the hypervisor. Measured on the
 * project's 2-core VM: 0.12 to 0.4 s per GiB touched, up to 3 s per GiB when
 * the host had reclaimed the memory, against 0.06 s per GiB to copy into a
 * page already faulted. A cold read at 1 GB/s would spend a third of a core
 * on faults alone, and a larger cap made it worse (more memory that was
 * never touched). So full-size blocks live in slots of one arena that is
 * never unmapped: a slot freed by eviction keeps its pages and is the next
 * one handed out (last in, first out, so the pages are warm in the CPU's
 * caches too). The arena does not ask for transparent huge pages: a random
 * item touches a fifth of its block, and a huge page faults 2 MiB for it
 * (measured: twice the resident memory and more CPU for 2000 random items).
 *
 * Blocks shorter than the block size (the last block of an object, small
 * objects) are mapped on their own, as they do not fit the slot grid
 * without wasting most of a slot.
 *
 * Until the arena has been used once, a new block's pages are still cold.
 * For blocks a stream fills whole, a thread of the arena's own (the
 * warmer) faults in up to a lead of fresh slots ahead of them
 * (MADV_POPULATE_WRITE), so the fetch that fills them does not take the
 * faults. A block filled in part (a random item: a fifth of a slot) takes
 * a cold slot from the other end of the fresh ones and faults in only
 * what lands: warming all of its slot would cost five times the faults and
 * the resident memory (docs/performance.md).
 *
 * The cap counts what is resident: the bytes of live blocks plus the idle
 * slots kept for reuse, plus the warm slots ahead (at most the lead). When a short block (or a zstd window) needs room
 * that idle slots hold, the owner gives slots back to the kernel
 * (cfs_blockmem_trim(), MADV_DONTNEED).
 *
 * Not thread-safe: the memory tier's lock guards every call. The warmer
 * thread shares only two atomic counters with the callers.
 */
#ifndef CHUNKFS_BLOCKMEM_H
#define CHUNKFS_BLOCKMEM_H

#include <stdbool.h>
#include <stdint.h>

struct cfs_blockmem;

/*
 * Reserve address space for cap / block_size slots of block_size bytes
 * (no memory is used until a slot is touched). block_size is a power of
 * two of at least 4096 bytes. When the space cannot be reserved (one log
 * line says so), every buffer is mapped on its own instead. lead is how
 * many bytes of never-used slots a thread of the arena's own keeps faulted
 * in ahead of cfs_blockmem_get(), rounded down to slots and at most the
 * arena; 0 starts no thread. The thread waits until the first slot is
 * handed out, so an unused mount stays small, and stops for good when
 * the kernel refuses MADV_POPULATE_WRITE (before Linux 5.14). Never NULL.
 */
struct cfs_blockmem *cfs_blockmem_new(uint64_t cap, uint64_t block_size, uint64_t lead);

/*
 * Stop the warmer thread and unmap the arena: every buffer must have been
 * put back first. NULL is a no-op.
 */
void cfs_blockmem_free(struct cfs_blockmem *m);

/*
 * A buffer of len bytes (1 to block_size). When len is the block size, a
 * slot of the arena: an idle one first; then, when whole (the caller
 * expects to fill most of the block, as a stream does), a fresh slot the
 * warmer faulted in, one given back, a cold fresh one; when not whole, one
 * given back, then a fresh one the warmer is not heading for. Else, or when
 * every slot is out, a mapping of its own. Its contents are undefined: a
 * reused slot holds an earlier block's bytes. *cold_slot is true when it
 * is a slot whose pages may not be faulted in yet (never used, or given
 * back): the arena is never unmapped, so such a slot can be prefaulted at
 * any time, even after it was put back. NULL when the mapping fails.
 */
void *cfs_blockmem_get(struct cfs_blockmem *m, uint32_t len, bool whole, bool *cold_slot);

/* Return a buffer of len bytes got from cfs_blockmem_get(). */
void cfs_blockmem_put(struct cfs_blockmem *m, void *buf, uint32_t len);

/*
 * Give idle slots back to the kernel until at most keep bytes of them, and
 * of the warm slots ahead, stay resident.
 */
void cfs_blockmem_trim(struct cfs_blockmem *m, uint64_t keep);

/* Bytes resident in idle slots kept for reuse (outside any block). */
uint64_t cfs_blockmem_idle_bytes(const struct cfs_blockmem *m);

/*
 * Bytes of never-used slots faulted in ahead by the warmer, at most the
 * lead. Safe from any thread (a snapshot).
 */
uint64_t cfs_blockmem_warm_bytes(const struct cfs_blockmem *m);

#endif
