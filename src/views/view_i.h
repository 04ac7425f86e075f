/* Private to the views: the view base, virtual inode numbers, waiters. */
#ifndef CHUNKFS_VIEW_I_H
#define CHUNKFS_VIEW_I_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "views/view.h"

/*
 * A virtual inode: bit 63 set, 2 bits of kind, 21 of view id, 32 of index
 * (item or member), 8 of leaf.
 */
enum vkind { VK_ITEM, VK_ITEM_DIR, VK_LEAF, VK_MEMBER };

#define VINO_MAX_VIEWS (UINT32_C(1) << 21)
#define VINO_MAX_INDEX UINT32_MAX
#define VINO_MAX_LEAVES 255

static inline uint64_t vino_make(enum vkind kind, uint32_t view, uint32_t index, unsigned leaf)
{
	return CFS_VINO_FLAG | (uint64_t)kind << 61 | (uint64_t)view << 40 | (uint64_t)index << 8 |
	       leaf;
}

static inline enum vkind vino_kind(uint64_t ino)
{
	return (enum vkind)((ino >> 61) & 3);
}

static inline uint32_t vino_view(uint64_t ino)
{
	return (uint32_t)((ino >> 40) & (VINO_MAX_VIEWS - 1));
}

static inline uint32_t vino_index(uint64_t ino)
{
	return (uint32_t)(ino >> 8);
}

static inline unsigned vino_leaf(uint64_t ino)
{
	return (unsigned)(ino & 0xff);
}

struct view_ops {
	int (*lookup)(struct cfs_view *v, uint64_t dir, const char *name, struct cfs_ventry *out,
		      const struct cfs_wait *w);
	int (*getattr)(struct cfs_view *v, uint64_t ino, struct cfs_ventry *out,
		       const struct cfs_wait *w);
	int (*readdir)(struct cfs_view *v, uint64_t dir, uint64_t off, cfs_dirent_fn add,
		       void *ctx, const struct cfs_wait *w);
	int (*open)(struct cfs_view *v, uint64_t ino, enum cfs_open_mode mode,
		    struct cfs_vfile *out, const struct cfs_wait *w);
	void (*free)(struct cfs_view *v);
};

struct cfs_view {
	const struct view_ops *ops;
	struct cfs_views *set;
	uint32_t id;
	uint64_t root_ino;    /* the tree node showing the view */
	uint64_t parent_ino;  /* the directory holding that node */
	uint64_t refs;        /* atomic: references (view.h, "Lifetime") */
	uint64_t lookups;     /* atomic: kernel lookups of its virtual inodes not forgotten */
	int64_t bytes;        /* atomic: bytes of its tables, as counted in view_bytes */
};

/*
 * Give v an id in vs that no live view has, and one reference, the
 * caller's; false when 2^21 views are alive (the inode space is full).
 */
bool views_register(struct cfs_views *vs, struct cfs_view *v, const struct view_ops *ops,
		    uint64_t parent_ino);

/*
 * v holds delta more bytes of tables (fewer when negative): counted in v
 * and in the view_bytes gauge, which drops v's count when v is freed.
 * Thread-safe.
 */
void views_bytes_add(struct cfs_view *v, int64_t delta);

/* The memory tier the views of vs read through (cfs_views_start()); NULL before it. */
struct cfs_cache *views_cache(const struct cfs_views *vs);

/* Called once node's size is known (ok), or could not be had (!ok: logged). */
typedef void (*views_sized_fn)(void *data, bool ok);

/*
 * Call sized(data, ...) once node (an object file) has a size: at once in
 * this thread when it has one, else from a sizing thread after a blocking
 * HEAD. A view's loads also start in the threads that answer reads (a
 * resumed open starts the next chunk's header, a settled header the next
 * of a listing), where a HEAD would hold that answer, and those queued
 * behind it, past the read bound. After cfs_views_stop(), sized is called
 * with false without asking the remote. Thread-safe.
 */
void views_prepare_file(struct cfs_views *vs, struct cfs_node *node, views_sized_fn sized,
			void *data);

/* Waiters of something being loaded: a GSList of g_malloc'd struct cfs_wait. */
void waiters_add(GSList **list, const struct cfs_wait *w);
/* Call and free every waiter of list with err. Call without any view lock held. */
void waiters_wake(GSList *list, int err);

/* Emit "." and ".." for offsets 0 and 1; returns false when the buffer filled. */
bool emit_dots(uint64_t *off, uint64_t self, uint64_t parent, cfs_dirent_fn add, void *ctx);

/* The len bytes an answered read gave, copied to dst, or into a new buffer (g_malloc'd). */
void gather_into(uint8_t *dst, const struct iovec *iov, int iovcnt, size_t len);
uint8_t *gather(const struct iovec *iov, int iovcnt, size_t len);

#endif
