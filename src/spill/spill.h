/*
 * The spill tier: blocks that fall out of the memory tier are written to a
 * local directory by a background writer, under a hard size cap, and read
 * back (checked) when the memory tier misses them, in this mount or a later
 * one of the same URL.
 *
 * Layout, under DIR/<XXH3-64 of the URL, hex>/:
 *   lock      flock()ed by the mount using it; holds its PID
 *   journal   the index: a header, then 32-byte records, one per block added
 *             or dropped, appended before a block file appears and after it
 *             is gone; replayed and rewritten compact at the next mount
 *   blocks/   one file per block, named <XXH3-64 of the object name>-<index>
 *             (spillfmt.h); written under tmp/ and renamed into place; files
 *             the journal does not count are deleted after each mount
 *   tmp/      files being written; emptied at mount
 *
 * DIR (and its missing parents), DIR/<hash>/, blocks/ and tmp/ are made
 * 0700 when missing; each, new or found, must be this user's and writable
 * by no one else, or the cache is refused. Everything below DIR is reached through directory descriptors
 * opened O_NOFOLLOW, every file opened O_NOFOLLOW (and O_NONBLOCK, checked
 * to be a regular file, where it is read): a symlink is never followed.
 *
 * The cap counts every file and directory of that tree as du sees it on
 * ext4 (4 KiB blocks, the extent blocks of fragmented files, blocks/ as
 * measured), and space is reserved, by evicting blocks at once, before a
 * file is written, so du never exceeds the cap. A write that fails
 * (ENOSPC, EIO) drops that block only, with one log line until writes work
 * again.
 *
 * Thread-safe. The writer is one thread, the readers a pool of eight; their
 * callbacks run there, without the tier's lock.
 */
#ifndef CHUNKFS_SPILL_H
#define CHUNKFS_SPILL_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache/extents.h"
#include "spill/spillfmt.h"

struct cfs_disk;

/*
 * A cap of a tenth of the free space of the directory's file system plus
 * the bytes the URL's cache already holds there, at most CFS_DISK_CAP_AUTO_MAX.
 */
#define CFS_DISK_CAP_AUTO UINT64_MAX
#define CFS_DISK_CAP_AUTO_MAX (UINT64_C(10) << 30)

struct cfs_disk_config {
	const char *dir;      /* --cache-dir: shared by the caches of every URL */
	const char *url;      /* what the cache is of: the dataset's base URL, credentials redacted */
	uint64_t cap;         /* bytes, more than 0, or CFS_DISK_CAP_AUTO */
	uint64_t block_size;  /* bytes; a cache of another block size is emptied */
	const char *policy;   /* eviction policy name (policy.h) */
	bool compress;        /* zstd-compress blocks that shrink */
};

/*
 * Open the cache of cfg->url in cfg->dir, creating what is missing: take
 * its lock, empty tmp/, replay the journal (a torn last record is dropped)
 * and rewrite it compact, and evict down to the cap. Takes time in the
 * number of blocks, not their bytes (no block file is read). Call before
 * any thread exists. cfg is not kept; cfg->policy must name a policy
 * (cfs_policy_known()). The caller owns the result: cfs_disk_free().
 * Fails with a GError naming the directory: G_IO_ERROR_BUSY when another
 * mount of the same URL holds the lock (with its PID),
 * G_IO_ERROR_PERMISSION_DENIED when a directory of the cache is another
 * user's or writable by group or others, else the errno of what could not
 * be made or read (ELOOP or ENOTDIR for a symlink where a directory should
 * be, EINVAL for a lock or journal that is not a regular file).
 */
struct cfs_disk *cfs_disk_open(const struct cfs_disk_config *cfg, GError **error);

/*
 * Start the writer and readers, once, before the first spill or load
 * (after daemonizing: the lock then records this PID). Cannot fail: a
 * thread that cannot start aborts, as glib does.
 */
void cfs_disk_start(struct cfs_disk *d);

/*
 * Finish the writes and read-backs queued (their callbacks run here, on the
 * tier's threads), stop the threads, save the eviction order in the
 * journal, and close. No spill or load may be queued meanwhile or after.
 * Safe on NULL.
 */
void cfs_disk_free(struct cfs_disk *d);

/*
 * Whether the cache holds block index of the object name with the given
 * ETag ("" for an object without one; NULL: whatever its ETag). A block
 * of another ETag means the object changed: every block of the object
 * (nblocks of them) is dropped and false returned. Fast: an index lookup,
 * no I/O but the deletion of a changed object's files.
 */
bool cfs_disk_has(struct cfs_disk *d, const char *name, uint64_t index, const char *etag,
		  uint64_t nblocks);

/*
 * Read block id back, in a reader thread: on success its bytes are in data
 * (id->len bytes, only the extents written) and done(ctx, extents, 0) gets
 * the extents it held; a missing, torn, corrupt or foreign file is deleted,
 * counted and logged, and done gets -EIO (or -ENOENT when the file is gone)
 * and NULL. A block evicted since cfs_disk_has() said yes gets -ENOENT
 * quietly. id's strings are copied; data must stay valid until done.
 */
typedef void (*cfs_disk_load_fn)(void *ctx, const struct cfs_extents *extents, int err);
void cfs_disk_load(struct cfs_disk *d, const struct cfs_spill_id *id, uint8_t *data,
		   cfs_disk_load_fn done, void *ctx);

/*
 * Write block id, holding the bytes of extents from data, in the writer
 * thread: room is made by evicting other blocks (never one being read
 * back), then the file is written and renamed into place; done(ctx, ok)
 * follows. ok is false when it could not be written (no room, a write
 * error). id's strings and extents are copied; data must stay valid
 * until done.
 */
typedef void (*cfs_disk_spill_fn)(void *ctx, bool ok);
void cfs_disk_spill(struct cfs_disk *d, const struct cfs_spill_id *id,
		    const struct cfs_extents *extents, const uint8_t *data, cfs_disk_spill_fn done,
		    void *ctx);

#endif
