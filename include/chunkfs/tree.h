/*
 * The inode tree the mount shows: directories, remote objects, small
 * in-memory files (a dataset index) and the control files (.chunkfs/stats,
 * .chunkfs/errors), rendered when opened. Directories of the
 * remote are listed on demand, on their first lookup or readdir and again
 * when their listing is older than the metadata TTL; files whose size the
 * listing did not give are sized on their first lookup. Nodes are never
 * removed while mounted (the kernel may hold their inode numbers), so node
 * pointers stay valid for the life of the tree.
 *
 * Thread-safe: a read-write lock guards the inode table and every
 * directory's children, and is never held across the network. Each
 * directory has its own listing mutex, so that concurrent lookups in a
 * directory being listed wait for that one listing while lookups and
 * listings of other directories go on; objects are sized under one of a
 * few mutexes picked by object id.
 */
#ifndef CHUNKFS_TREE_H
#define CHUNKFS_TREE_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

struct cfs_object;
struct cfs_tree;
struct cfs_view;

/*
 * The current text of a rendered file: a g_malloc'd string the caller
 * frees, its length in bytes in *len. Thread-safe.
 */
typedef char *(*cfs_render_fn)(uint64_t *len);

#define CFS_ROOT_INO 1

enum cfs_node_kind {
	CFS_NODE_DIR,
	CFS_NODE_OBJECT, /* bytes of a remote object, through the memory tier */
	CFS_NODE_BYTES,  /* bytes held in memory (a dataset index as fetched) */
	CFS_NODE_RENDERED, /* text rendered at each open (.chunkfs/stats, .chunkfs/errors) */
	CFS_NODE_VIEW,   /* a directory whose entries a view computes (view.h) */
};

struct cfs_node {
	uint64_t ino;
	struct cfs_node *parent;   /* the root is its own parent */
	char *name;
	char *path;                /* below the mount root, '/'-separated; "" for the root */
	enum cfs_node_kind kind;
	struct cfs_object *object; /* CFS_NODE_OBJECT: owned by the tree */
	GBytes *bytes;             /* CFS_NODE_BYTES */
	struct cfs_view *view;     /* CFS_NODE_VIEW: owned by the views of the mount */
	cfs_render_fn render;      /* CFS_NODE_RENDERED */
	/* CFS_NODE_DIR, guarded by the tree's lock. */
	GPtrArray *children;       /* struct cfs_node *, in insertion order */
	GHashTable *by_name;       /* name -> struct cfs_node * */
	bool remote;               /* a directory of the remote: listed on demand */
	gint64 listed_us;          /* monotonic time of the last listing; 0: never */
	GMutex listing;            /* CFS_NODE_DIR: held while this directory is listed */
};

/*
 * Fill dir (a remote directory) from a listing of the remote, adding the
 * children it lacks with the cfs_tree_add_* functions. Called with dir's
 * listing mutex held, never with the tree's read-write lock; other
 * directories may be listed at the same time, in other threads. Returns
 * false with *error set when the remote cannot be listed; dir then counts
 * as never listed, and the next cfs_tree_prepare_dir() lists it again.
 */
typedef bool (*cfs_list_fn)(void *ctx, struct cfs_tree *t, struct cfs_node *dir, GError **error);

/*
 * Ask the remote for the size of a remote object (its listing gave none).
 * Called with a sizing mutex of the tree held, never with its read-write lock.
 */
typedef bool (*cfs_size_fn)(void *ctx, struct cfs_object *obj, GError **error);

/*
 * A tree holding only the root directory (inode CFS_ROOT_INO), a remote
 * directory. list and size are called as described above with ctx, which
 * the tree frees with ctx_free; listings older than ttl_s seconds are
 * refreshed (new names are added; names that disappeared stay).
 */
struct cfs_tree *cfs_tree_new(cfs_list_fn list, cfs_size_fn size, void *ctx,
			      GDestroyNotify ctx_free, unsigned ttl_s);

/* Free the tree, its nodes and the objects they own. No other thread may use it. */
void cfs_tree_free(struct cfs_tree *t);

struct cfs_node *cfs_tree_root(struct cfs_tree *t);

/* The node with inode ino, or NULL. */
struct cfs_node *cfs_tree_get(struct cfs_tree *t, uint64_t ino);

/*
 * Make dir's children current: list it if it is a remote directory never
 * listed or listed longer ago than the TTL. Blocks on the network while
 * listing (each request within the deadline of cfs_fetch_small()); waits
 * only for a listing of the same directory. Returns false with *error set
 * when the listing failed: nothing of it is remembered, the next call
 * tries again.
 */
bool cfs_tree_prepare_dir(struct cfs_tree *t, struct cfs_node *dir, GError **error);

/*
 * Make sure file's remote object has a size (for a decompressed object,
 * the compressed one it is read from), asking the remote once if needed.
 */
bool cfs_tree_prepare_file(struct cfs_tree *t, struct cfs_node *file, GError **error);

/*
 * True when cfs_tree_prepare_file() has nothing to ask the remote for file
 * (its object's size is known, or it is not an object). Never blocks on
 * the network. Thread-safe.
 */
bool cfs_tree_file_sized(struct cfs_node *file);

/* The child of dir named name, or NULL. */
struct cfs_node *cfs_tree_lookup(struct cfs_tree *t, struct cfs_node *dir, const char *name);

/* The index-th child of dir in insertion order, or NULL past the last. */
struct cfs_node *cfs_tree_child(struct cfs_tree *t, struct cfs_node *dir, guint index);

/*
 * Add a child to dir. name is copied; it must be valid (cfs_name_valid) and
 * not present yet, else NULL is returned and nothing is added. The object
 * passed becomes the tree's (freed at once when NULL is returned); the bytes
 * are referenced. A remote directory is listed on demand; another directory
 * holds what is added to it.
 */
struct cfs_node *cfs_tree_add_dir(struct cfs_tree *t, struct cfs_node *dir, const char *name,
				  bool remote);
struct cfs_node *cfs_tree_add_object(struct cfs_tree *t, struct cfs_node *dir, const char *name,
				     struct cfs_object *obj);
struct cfs_node *cfs_tree_add_bytes(struct cfs_tree *t, struct cfs_node *dir, const char *name,
				    GBytes *bytes);
/* A file whose text render gives at each open. */
struct cfs_node *cfs_tree_add_rendered(struct cfs_tree *t, struct cfs_node *dir, const char *name,
				       cfs_render_fn render);
/* A directory showing view, which learns the node's inode as its root (cfs_view_set_root). */
struct cfs_node *cfs_tree_add_view(struct cfs_tree *t, struct cfs_node *dir, const char *name,
				   struct cfs_view *view);

/* A new object id, unique in this tree. */
uint32_t cfs_tree_next_object_id(struct cfs_tree *t);

/*
 * The path below the mount root of dir's child name ('/'-separated, as in
 * cfs_node.path); g_malloc'd, the caller frees it. Thread-safe.
 */
char *cfs_node_child_path(const struct cfs_node *dir, const char *name);

/* Size in bytes a node shows in stat (a rendered file's current length; 0 while unknown). */
uint64_t cfs_node_size(const struct cfs_node *n);

/*
 * True when name can be a file name in the mount: not empty, not "." or
 * "..", no '/', no NUL or control character, at most 255 bytes, valid
 * UTF-8. Else false with a static reason in *why (may be NULL).
 */
bool cfs_name_valid(const char *name, const char **why);

#endif
