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
 * (measured: twice the resident memory and more CPU for 2000 random items),
 * and on the project's VM a sequential read into huge pages ran at half
 * the speed of 4 KiB ones (2026-12-07, no compaction stall counted).
 * Fresh slots can be faulted in ahead of use (cfs_blockmem_fresh_slot(),
 * by the memory tier's fault-ahead thread), so that a first read finds
 * them warm.
 *
 * Blocks shorter than the block size (the last block of an object, small
 * objects) are mapped on their own, as they do not fit the slot grid
 * without wasting most of a slot.
 *
 * The cap counts what is resident: the bytes of live blocks plus the idle
 * slots kept for reuse. When a short block (or a zstd window) needs room
 * that idle slots hold, the owner gives slots back to the kernel
 * (cfs_blockmem_trim(), MADV_DONTNEED).
 *
 * Not thread-safe: the memory tier's lock guards every call.
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
 * line says so), every buffer is mapped on its own instead. Never NULL.
 */
struct cfs_blockmem *cfs_blockmem_new(uint64_t cap, uint64_t block_size);

/* Unmap the arena: every buffer must have been put back first. NULL is a no-op. */
void cfs_blockmem_free(struct cfs_blockmem *m);

/*
 * A buffer of len bytes (1 to block_size): a slot of the arena when len is
 * the block size (an idle slot first, then one given back, then one never
 * used), else a mapping of its own (also when every slot is out). Its
 * contents are undefined: a reused slot holds an earlier block's bytes.
 * *cold_slot is true when it is a slot whose pages may not be faulted in
 * yet (never used, or given back): the arena is never unmapped, so such a
 * slot can be prefaulted at any time, even after it was put back. NULL when
 * the mapping fails.
 */
void *cfs_blockmem_get(struct cfs_blockmem *m, uint32_t len, bool *cold_slot);

/*
 * A slot never handed out yet, for faulting in ahead of use: the caller
 * owns it until it returns it with cfs_blockmem_put(), which makes it idle
 * (the next one handed out). NULL when every slot has been used once.
 */
void *cfs_blockmem_fresh_slot(struct cfs_blockmem *m);

/* Return a buffer of len bytes got from cfs_blockmem_get() or cfs_blockmem_fresh_slot(). */
void cfs_blockmem_put(struct cfs_blockmem *m, void *buf, uint32_t len);

/* Give idle slots back to the kernel until at most keep bytes of them stay resident. */
void cfs_blockmem_trim(struct cfs_blockmem *m, uint64_t keep);

/* Bytes resident in idle slots kept for reuse (outside any block). */
uint64_t cfs_blockmem_idle_bytes(const struct cfs_blockmem *m);

#endif
