/*
 * Private to the FUSE layer: the mount's state, and what the operations on
 * the tree (fs.c) and on views (view_ops.c) share. Calls go one way: fs.c
 * calls the view operations (view_ops.c); both reply with the handles,
 * attributes and directory entries of handles.c.
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

/* The open files of a mount, by file handle (fuse_file_info.fh). */
struct handles {
	GMutex lock;       /* guards the two below */
	GHashTable *table; /* file handle (uint64_t *) -> struct handle * */
	uint64_t next_fh;
};

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
	struct handles handles;
};

/*
 * An open file: the bytes of head, then [off, off + len) of obj (none when
 * obj is NULL). Reference-counted (g_atomic_rc_box): a read can still be
 * running when the kernel sends RELEASE for a killed reader.
 */
struct handle {
	GBytes *head;
	struct cfs_object *obj;
	uint64_t off, len;
};

/* A new handle (one reference) holding a reference to head and to obj (either may be NULL). */
struct handle *handle_new(GBytes *head, struct cfs_object *obj, uint64_t off, uint64_t len);
/* Drop a reference to h; the last one drops h's references to its head and object. */
void handle_put(struct handle *h);

/* An empty table of handles; handles_clear() drops every handle it still holds. */
void handles_init(struct handles *hs);
void handles_clear(struct handles *hs);
/*
 * Register h (taking the caller's reference) under a new file handle, set
 * as fi->fh, and reply to the open. Thread-safe.
 */
void handle_open(struct handles *hs, fuse_req_t req, struct fuse_file_info *fi, struct handle *h);
/* The handle of fh with a new reference (handle_put() it), or NULL once released. Thread-safe. */
struct handle *handle_get(struct handles *hs, uint64_t fh);
/* Forget fh (a RELEASE); reads still running keep their references. Thread-safe. */
void handle_release(struct handles *hs, uint64_t fh);

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
/* A getxattr of kind on file ino: ENODATA for a directory. */
void view_getxattr(fuse_req_t req, struct cfs_view *view, uint64_t ino, enum xattr_kind kind,
		   size_t size);

#endif
