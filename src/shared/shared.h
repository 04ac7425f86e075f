/*
 * The shared tier: blocks kept in a memcached cluster that every node of a
 * job reads and fills, between a node's spill tier and the remote. A
 * lookup runs in a thread of the tier's own and never fails: a server
 * that is down, slow, refusing or answering with a value that fails its
 * checks (value.h) is a miss, and the block comes from the remote. A
 * lookup has a total deadline of two --shared-cache-timeouts: past it, it
 * is a miss whatever its thread is doing. A store is write-behind: queued
 * in a bounded queue, dropped (and counted) when the queue is full, never
 * waited for.
 *
 * The client is libmemcached (docs: https://awesomized.github.io/libmemcached/):
 * ketama consistent hashing (MEMCACHED_BEHAVIOR_DISTRIBUTION), the binary
 * protocol, non-blocking I/O with the connect, poll, send and receive
 * timeouts of --shared-cache-timeout, and a server that failed skipped for
 * MEMCACHED_BEHAVIOR_RETRY_TIMEOUT seconds before it is tried again. Those
 * timeouts restart with each byte, hence the tier's own deadline. Host
 * names are resolved once, by cfs_shared_new(): libmemcached gets numeric
 * addresses. While a thread of the tier talks to a server, libmemcached's
 * allocations (memcached_set_memory_allocators()) larger than a part's
 * value plus 64 KiB are refused, so a value length a server declares
 * cannot make an allocation larger. A memcached_st is not thread-safe:
 * each thread has its own clone.
 */
#ifndef CHUNKFS_SHARED_H
#define CHUNKFS_SHARED_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "shared/value.h"

struct cfs_shared;

struct cfs_shared_config {
	const char *servers; /* "memcached://HOST:PORT[,HOST:PORT...]" (--shared-cache) */
	unsigned timeout_ms; /* each connect, poll, send and receive, in ms (at least 1) */
	uint64_t block_size; /* bytes, the mount's --block-size: the store queue holds two */
};

/*
 * Make the tier's client, connected on first use; no thread runs before
 * cfs_shared_start(). Resolves each HOST (getaddrinfo(3), which may block
 * on DNS) to its first address. Fails with G_OPTION_ERROR_BAD_VALUE naming
 * the text when cfg->servers is not a list of HOST:PORT after
 * "memcached://" or a HOST does not resolve, and with G_IO_ERROR_FAILED
 * when libmemcached cannot be set up. Not thread-safe.
 */
struct cfs_shared *cfs_shared_new(const struct cfs_shared_config *cfg, GError **error);

/*
 * Start the lookup threads and the store thread: in the process that
 * serves, after daemonizing (fork keeps no thread). Before it, no lookup or
 * store may be made. Not thread-safe.
 */
void cfs_shared_start(struct cfs_shared *s);

/*
 * Called once a lookup ends, from a thread of the tier (a lookup thread, or
 * the timer at the lookup's deadline): hit is true when every part of the
 * block was present and valid, and all len bytes of buf hold it; else buf
 * holds unspecified bytes. buf is never written after the call.
 */
typedef void (*cfs_shared_done_fn)(void *ctx, bool hit);

/*
 * Look up the block id of len bytes (1 to 64 MiB) and copy it into buf,
 * then call done(ctx, hit) once: at the latest two --shared-cache-timeouts
 * after this call (the wait for one of the four lookup threads included),
 * as a miss. Demand lookups are run before readahead ones. buf stays the
 * caller's and must stay valid and untouched by others until done is
 * called. id is not used after the return.
 * Thread-safe; never blocks on the network.
 */
void cfs_shared_lookup(struct cfs_shared *s, const struct cfs_shared_id *id, uint8_t *buf,
		       uint32_t len, bool demand, cfs_shared_done_fn done, void *ctx);

/*
 * Queue the len bytes (1 to 64 MiB) of the complete, checked block id for
 * storing: data is copied before the return. Dropped and counted
 * (shared_store_drops) when it would not fit in the queue, which holds
 * 16 MiB or two blocks (cfg->block_size), the larger. Thread-safe; never
 * blocks on the network.
 */
void cfs_shared_store(struct cfs_shared *s, const struct cfs_shared_id *id, const uint8_t *data,
		      uint32_t len);

/*
 * End the lookups not yet started as misses without touching the network,
 * wait for those in flight (a server trickling a reply holds this until
 * libmemcached's timeouts end it), drop the stores not yet sent (counted as
 * drops), stop the threads and free s. NULL is a no-op.
 */
void cfs_shared_free(struct cfs_shared *s);

#endif
