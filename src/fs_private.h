/* Private to the FUSE layer (fs.c, fs_view.c): the mount's state and open-file handles. */
#ifndef CHUNKFS_FS_PRIVATE_H
#define CHUNKFS_FS_PRIVATE_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <glib.h>
#include <stdint.h>

struct cfs_cache;
struct cfs_object;
struct cfs_options;
struct cfs_tree;
struct cfs_views;

struct cfs_fs {
	const struct cfs_options *opts;
	struct cfs_tree *tree;
	struct cfs_views *views;
	struct cfs_cache *cache;
	struct fuse_session *se;
	struct timespec mount_time;
	bool mounted;
	GOnce readahead_once;

	GMutex handles_lock;          /* guards the two below */
	GHashTable *handles;          /* file handle (uint64_t *) -> struct handle * */
	uint64_t next_fh;
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

/* A new handle holding a reference to head (may be NULL). */
struct handle *handle_new(GBytes *head, struct cfs_object *obj, uint64_t off, uint64_t len);

/* Register h (taking the caller's reference) as fi->fh and reply to the open. */
void handle_open(struct cfs_fs *fs, fuse_req_t req, struct fuse_file_info *fi, struct handle *h);

static inline struct cfs_fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Attributes of a directory (dir) or a read-only file of size bytes. */
void fill_attr(const struct cfs_fs *fs, uint64_t ino, bool dir, uint64_t size, struct stat *st);

/* Seconds the kernel may keep names and attributes: the metadata TTL. */
double entry_timeout(const struct cfs_fs *fs);

/*
 * The view that ino belongs to or is the root of, with a new reference
 * (cfs_view_unref(), or give it to a view operation below); NULL for other
 * tree nodes and unknown inodes.
 */
struct cfs_view *view_of(struct cfs_fs *fs, uint64_t ino);

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

/*
 * View operations (fs_view.c): answered now or from the thread that loads
 * what they need. Each takes the caller's reference to view and drops it
 * once answered.
 */
void view_lookup(fuse_req_t req, struct cfs_view *view, uint64_t dir, const char *name);
void view_getattr(fuse_req_t req, struct cfs_view *view, uint64_t ino);
void view_readdir(fuse_req_t req, struct cfs_view *view, uint64_t dir, size_t size, off_t off);
void view_open(fuse_req_t req, struct cfs_view *view, uint64_t ino, struct fuse_file_info *fi);

#endif
