/*
 * Private to the FUSE layer: the mount's state, and what the operations on
 * the tree (fs.c) and on views (view_ops.c) share. Calls go one way: fs.c
 * calls the view operations (view_ops.c); both reply with the attributes,
 * directory entries and file bytes of reply.c.
 */
#ifndef CHUNKFS_FS_I_H
#define CHUNKFS_FS_I_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct cfs_cache;
struct cfs_object;
struct cfs_options;
struct cfs_tree;
struct cfs_view;
struct cfs_views;

/*
 * Snapshot inodes (snapshots.c): one per lookup of a rendered file, holding
 * that rendering until the kernel forgets the inode.
 */
struct snapshots {
	GMutex lock;       /* guards the two below */
	GHashTable *table; /* inode (uint64_t *) -> struct snapshot * */
	uint64_t next;
};

/* Snapshot inodes have this bit set, and not the views' (CFS_VINO_FLAG, bit 63). */
#define SNAPSHOT_INO_FLAG (UINT64_C(1) << 62)

static inline bool ino_is_snapshot(uint64_t ino)
{
	return (ino >> 62) == 1;
}

struct cfs_fs {
	const struct cfs_options *opts;
	struct cfs_tree *tree;
	struct cfs_views *views;
	struct cfs_cache *cache;
	struct fuse_session *se;
	struct timespec mount_time;
	bool mounted;
	bool signals; /* libfuse's SIGINT/SIGTERM/SIGHUP handlers are set */
	GOnce readahead_once;
	bool no_open; /* the kernel skips OPEN and RELEASE once told ENOSYS (FUSE_CAP_NO_OPEN_SUPPORT) */
	struct snapshots snapshots;
};

/*
 * What a file reads: the bytes of head, then [off, off + len) of obj (none
 * when obj is NULL). The caller holds both for the call.
 */
struct file_bytes {
	GBytes *head;
	struct cfs_object *obj;
	uint64_t off, len;
};

/*
 * Answer a read of size bytes at off (bytes) of the file f: the part in
 * the head at once, the rest through the memory tier, replied from the
 * thread that brings it (an interrupt cancels a read still waiting). The
 * read takes its own reference to f->obj. Thread-safe.
 */
void reply_read(fuse_req_t req, const struct file_bytes *f, size_t size, uint64_t off);

/*
 * Answer the OPEN of a file, on a kernel without no-open support: file
 * handle 0 (reads are served by inode) with keep_cache. Thread-safe.
 */
void reply_open(fuse_req_t req, struct fuse_file_info *fi);

/* An empty table of snapshot inodes, before the session starts. */
void snapshots_init(struct snapshots *ss);
/* Free every snapshot the table still holds; not thread-safe: after the session ended. */
void snapshots_clear(struct snapshots *ss);
/*
 * A new snapshot inode of bytes (a reference taken), rendered at mtime_us
 * (microseconds since the epoch), with one lookup of the kernel's.
 * Thread-safe.
 */
uint64_t snapshot_add(struct snapshots *ss, GBytes *bytes, int64_t mtime_us);
/*
 * The bytes of snapshot inode ino with a new reference, and its rendering
 * time (microseconds since the epoch) in *mtime_us when not NULL; NULL once
 * forgotten. Thread-safe.
 */
GBytes *snapshot_get(struct snapshots *ss, uint64_t ino, int64_t *mtime_us);
/* The kernel forgot nlookup lookups of ino; the last frees it. Thread-safe. */
void snapshot_forget(struct snapshots *ss, uint64_t ino, uint64_t nlookup);

static inline struct cfs_fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/*
 * Attributes of a directory (dir) or a read-only file of size bytes, into
 * *st. Its times (access, modification, change alike) are mtime_us
 * (microseconds since the epoch), or the mount's start for
 * CFS_TIME_UNKNOWN: a stable time, never the time of the call.
 */
void fill_attr(const struct cfs_fs *fs, uint64_t ino, bool dir, uint64_t size, int64_t mtime_us,
	       struct stat *st);

/* Seconds the kernel may keep names and attributes: the metadata TTL. */
double entry_timeout(const struct cfs_fs *fs);

/* The reply buffer of a readdir: size bytes at buf, used of them filled. */
struct dirbuf {
	fuse_req_t req;
	char *buf;
	size_t size, used;
};

/*
 * Add one entry to the dirbuf ctx: name, its inode and kind, and the
 * offset of the entry after it (fuse_add_direntry()). Returns false, adding
 * nothing, when it does not fit. Never blocks.
 */
bool dirbuf_add(void *ctx, const char *name, uint64_t ino, bool dir, uint64_t next_off);

/* The virtual extended attributes of files (xattr.c), by name. */
enum xattr_kind {
	XATTR_NONE,           /* not one of ours: ENODATA */
	XATTR_WARM_STEP,      /* user.chunkfs.warm */
	XATTR_RESIDENCY_ONLY, /* user.chunkfs.residency */
};

/*
 * The kind of the extended attribute name (a NUL-terminated string, as
 * getxattr(2) passes it): XATTR_NONE for any name not ours. Pure;
 * thread-safe.
 */
enum xattr_kind xattr_kind_of(const char *name);

/*
 * Answer a getxattr of kind (not XATTR_NONE) on a file whose bytes are
 * [off, off + len) of obj: a warm step or a residency count of that range
 * (cfs_cache_warm(), cfs_cache_residency()), as text; its length when size
 * is 0, ERANGE when size is too small, the errno of a failed step.
 */
void xattr_reply_range(fuse_req_t req, enum xattr_kind kind, size_t size, struct cfs_object *obj,
		       uint64_t off, uint64_t len);

/* The same for a file of len bytes held in memory for good (index.json, .chunkfs/ files). */
void xattr_reply_held(fuse_req_t req, size_t size, uint64_t len);

/*
 * View operations (view_ops.c): each replies to req, now or from the thread
 * that loads what it needs (a chunk header, a tar index). Each takes the
 * caller's reference to view and drops it once answered.
 */
void view_lookup(fuse_req_t req, struct cfs_view *view, uint64_t dir, const char *name);
void view_getattr(fuse_req_t req, struct cfs_view *view, uint64_t ino);
void view_readdir(fuse_req_t req, struct cfs_view *view, uint64_t dir, size_t size, off_t off);
void view_open(fuse_req_t req, struct cfs_view *view, uint64_t ino, struct fuse_file_info *fi);
/* A read of size bytes at off (bytes) of file ino. */
void view_read(fuse_req_t req, struct cfs_view *view, uint64_t ino, size_t size, uint64_t off);
/* A getxattr of kind on file ino: ENODATA for a directory. */
void view_getxattr(fuse_req_t req, struct cfs_view *view, uint64_t ino, enum xattr_kind kind,
		   size_t size);

#endif
