/*
 * Views: directories whose entries are computed instead of listed. An item
 * view is a dataset's .items/ (one file per item, NNN.d/ with its leaves);
 * a tar view is NAME.tar.d/ (the archive's members). The view's root is a
 * tree node (CFS_NODE_VIEW); everything below it has a virtual inode
 * number that encodes the view and the entry (bit 63 set, then the kind,
 * the view id, the item or member index and the leaf), so that a million
 * items cost no memory until they are used.
 *
 * What an entry needs (a chunk header for an item's size, an item's leaf
 * table, a tar archive's member index) is read through the memory tier on
 * first use and kept. Operations never block on the network: one that needs
 * what is not there yet returns -EAGAIN and calls its waiter once, from
 * whichever thread finishes the read, with 0 (try again) or a negative
 * errno (fail with it). A waiter may also be called before the operation
 * returns -EAGAIN.
 *
 * Lifetime: a view counts one reference for the tree node showing it (its
 * root), one per lookup of its virtual inodes the kernel has not forgotten
 * (FUSE's lookup count, libfuse fuse_lowlevel.h, "forget"), one per
 * operation using it (cfs_views_get(): the caller drops it) and one per
 * load in flight (a chunk header, a leaf table, a tar scan). The last one
 * frees the view with what it loaded, its dataset index, and its
 * references to nodes and objects; its id may then be given to a new view,
 * as no inode of the old one is known to the kernel any more.
 *
 * Thread-safe: every view has its own mutex, never held while calling the
 * memory tier or a waiter.
 */
#ifndef CHUNKFS_VIEW_H
#define CHUNKFS_VIEW_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

struct cfs_cache;
struct cfs_ds_index;
struct cfs_node;
struct cfs_object;
struct cfs_tree;
struct cfs_view;
struct cfs_views;

#define CFS_VINO_FLAG (UINT64_C(1) << 63)

/* True when ino is a virtual inode of some view. */
static inline bool cfs_ino_is_virtual(uint64_t ino)
{
	return (ino & CFS_VINO_FLAG) != 0;
}

/* What the FUSE layer replies for an entry. */
struct cfs_ventry {
	uint64_t ino;
	bool dir;
	uint64_t size;    /* bytes, for files */
	int64_t mtime_us; /* last modified, microseconds since the epoch: an item's or leaf's
			     chunk's, a tar member's own; CFS_TIME_UNKNOWN: the mount's time */
};

/*
 * The bytes of an open file: head (a generated header such as a .npy's,
 * or NULL), then [off, off + len) of obj. The holder owns a reference to
 * head; obj is the view's, which holds it until it is freed (the holder
 * takes a reference of its own to keep it longer: object.h).
 */
struct cfs_vfile {
	GBytes *head;
	struct cfs_object *obj;
	uint64_t off, len;
};

struct cfs_wait {
	void (*fn)(void *cookie, int err);
	void *cookie;
};

/*
 * Add one directory entry: name, its inode and kind, and the offset of the
 * entry after it. Returns false when the reply buffer is full (the entry
 * was not added).
 */
typedef bool (*cfs_dirent_fn)(void *ctx, const char *name, uint64_t ino, bool dir,
			      uint64_t next_off);

/* The set of views of a mount. */
struct cfs_views *cfs_views_new(void);

/*
 * Free every view still alive, whatever holds it, at unmount: no operation
 * may be running and the tree must still exist (views drop their nodes);
 * cfs_tree_free() afterwards leaves the views its nodes pointed at alone.
 */
void cfs_views_free(struct cfs_views *vs);

/*
 * Let the views read: cache serves their reads, tree sizes objects whose
 * listing gave no size (a blocking HEAD, in a thread of the views' own,
 * never in one that answers reads). Call once the cache exists, before the
 * first operation.
 */
void cfs_views_start(struct cfs_views *vs, struct cfs_cache *cache, struct cfs_tree *tree);

/*
 * Wait for the sizing threads to finish what they run and drop what is
 * queued (each HEAD ends within the deadline of cfs_fetch_head()). Call
 * at unmount after cfs_cache_close(), which answers the reads they go on
 * to make, and before the fetcher and the cache are freed. Idempotent.
 */
void cfs_views_stop(struct cfs_views *vs);

/*
 * The item view of a dataset directory, with one reference, the caller's
 * (cfs_tree_add_view() gives it to the node showing the view). idx is
 * taken (freed with the view); chunks[i] is the node of idx's chunk i
 * (NULL for a chunk the tree does not show: its items fail with EIO), and
 * sources[i] the object its items are read from: the node's object, or its
 * decompressed object. The view holds a reference to each node and object
 * until it is freed. parent_ino is the directory holding the view's root.
 * Returns NULL when idx has no item (nothing to show).
 */
struct cfs_view *cfs_views_add_items(struct cfs_views *vs, struct cfs_ds_index *idx,
				     struct cfs_node *const *chunks,
				     struct cfs_object *const *sources, uint64_t parent_ino);

/*
 * The tar view of the archive of node tar, shown in the directory
 * parent_ino, with one reference, the caller's; it holds a reference to
 * tar until it is freed.
 */
struct cfs_view *cfs_views_add_tar(struct cfs_views *vs, struct cfs_node *tar,
				   uint64_t parent_ino);

/* Record the inode of the tree node that is view's root. */
void cfs_view_set_root(struct cfs_view *view, uint64_t root_ino);

/*
 * The view a virtual inode belongs to, with a new reference (drop it with
 * cfs_view_unref()), or NULL for an inode no live view made. Thread-safe.
 */
struct cfs_view *cfs_views_get(struct cfs_views *vs, uint64_t ino);

/* Returns view with a new reference, for a caller that holds one already. Thread-safe. */
struct cfs_view *cfs_view_ref(struct cfs_view *view);

/*
 * Drop a reference to view (may be NULL). The last one frees it, as
 * described above. Thread-safe; never call it with the tree's lock, a
 * view's lock or the memory tier's lock held.
 */
void cfs_view_unref(struct cfs_view *view);

/*
 * The kernel is sent an entry for one of view's virtual inodes (a lookup
 * answered with it): the view keeps a reference for it until
 * cfs_views_forget(). Call it before sending the entry; when the kernel
 * does not take it, cfs_views_forget(vs, ino, 1). Thread-safe.
 */
void cfs_view_looked_up(struct cfs_view *view);

/*
 * The kernel forgot nlookup lookups of the virtual inode ino (FUSE_FORGET,
 * FUSE_BATCH_FORGET): as many of the references cfs_view_looked_up() made
 * for its view are dropped, never more than were made. Inodes of no live
 * view are ignored. Thread-safe.
 */
void cfs_views_forget(struct cfs_views *vs, uint64_t ino, uint64_t nlookup);

/*
 * The operations, on dir or ino: the view's root inode or one of its
 * virtual inodes. Each returns 0 (done), -EAGAIN (w will be called), or a
 * negative errno: -ENOENT for a name that cannot exist, -ENOTDIR, -EIO for
 * an entry whose data proved bad (logged once where it was found).
 */
int cfs_view_lookup(struct cfs_view *view, uint64_t dir, const char *name,
		    struct cfs_ventry *out, const struct cfs_wait *w);
int cfs_view_getattr(struct cfs_view *view, uint64_t ino, struct cfs_ventry *out,
		     const struct cfs_wait *w);
/* Entries from offset off on (0 is ".", 1 is ".."), until add() says the buffer is full. */
int cfs_view_readdir(struct cfs_view *view, uint64_t dir, uint64_t off, cfs_dirent_fn add,
		     void *ctx, const struct cfs_wait *w);
/* Why a view file is opened: what its opening may start besides. */
enum cfs_open_mode {
	CFS_OPEN_READ,   /* to be read: items taken in order start the next chunk's prefetch */
	CFS_OPEN_LOCATE, /* only to learn its range (a residency count, a warm step): no prefetch */
};

/*
 * The bytes of file ino; out->head is a new reference. -EISDIR for a
 * directory. Either mode loads the chunk header or tar index that locates
 * the file; only CFS_OPEN_READ starts anything else.
 */
int cfs_view_open(struct cfs_view *view, uint64_t ino, enum cfs_open_mode mode,
		  struct cfs_vfile *out, const struct cfs_wait *w);

#endif
