/*
 * The inode tree the mount shows: directories, remote objects, small
 * in-memory files (a dataset index) and the control files (.chunkfs/stats,
 * .chunkfs/errors), rendered when opened. Directories of the
 * remote are listed on demand, on their first lookup or readdir and again
 * when their listing is older than the metadata TTL; files whose size the
 * listing did not give are sized on their first lookup.
 *
 * A relisting removes from the directory the names the remote no longer
 * lists, with the nodes shown for them (cfs_tree_tie(): a dataset's
 * chunks, .items/ and .decompressed/ go with its index.json, NAME.tar.d/
 * with NAME.tar). A name that comes back is a new node with a new inode;
 * inode numbers are never reused.
 *
 * Lifetime: a node counts one reference (cfs_node.refs) for its place in
 * a directory, one per lookup the kernel has not forgotten (FUSE's lookup
 * count, libfuse fuse_lowlevel.h, "forget"), one per operation using it
 * (cfs_tree_get(), cfs_tree_lookup(): the caller puts it) and one per view
 * showing it. It is freed, outside every lock, when the count reaches 0;
 * a directory freed lets go of its children. The root lives as long as
 * the tree. Objects are counted likewise (object.h).
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
	struct cfs_tree *tree;
	uint64_t parent_ino;       /* the root is its own parent */
	char *name;
	char *path;                /* below the mount root, '/'-separated; "" for the root */
	enum cfs_node_kind kind;
	struct cfs_object *object; /* CFS_NODE_OBJECT: a reference of the node's */
	GBytes *bytes;             /* CFS_NODE_BYTES */
	char *etag;                /* CFS_NODE_BYTES: the ETag listed for them, or NULL; set by the
				      listing that adds the node, read by later listings */
	int64_t mtime_us;          /* CFS_NODE_BYTES, atomic: last modified as listed (microseconds
				      since the epoch), or CFS_TIME_UNKNOWN; set like etag */
	struct cfs_view *view;     /* CFS_NODE_VIEW: a reference of the node's */
	cfs_render_fn render;      /* CFS_NODE_RENDERED */
	uint64_t refs;             /* atomic: references, as described above */
	uint64_t lookups;          /* atomic: lookups the kernel has not forgotten */
	uint64_t named;            /* atomic: the listing of its directory that last named it */
	bool hidden;               /* left out of its directory's readdir, found by lookup */
	/* Guarded by the tree's lock. */
	bool listed;               /* added by a listing: a later one that omits it removes it */
	struct cfs_node *owner;    /* a sibling it is shown for (cfs_tree_tie()), or NULL */
	uint64_t cookie;           /* its readdir offset in its directory; never reused there */
	/* CFS_NODE_DIR, guarded by the tree's lock. */
	GPtrArray *children;       /* struct cfs_node *, by cookie */
	GHashTable *by_name;       /* name -> struct cfs_node * */
	bool remote;               /* a directory of the remote: listed on demand */
	gint64 listed_us;          /* monotonic time of the last listing; 0: never */
	uint64_t listing_id;       /* the listing running or last run; 0: none */
	bool listing_now;          /* a listing runs: the nodes it adds are listed */
	uint64_t next_cookie;      /* readdir offset of the next child added */
	GMutex listing;            /* CFS_NODE_DIR: held while this directory is listed */
};

/*
 * Fill dir (a remote directory) from a listing of the remote, adding the
 * children it lacks with the cfs_tree_add_* functions and marking those it
 * has with cfs_tree_keep(). When it returns true, the children that a
 * listing added before and that it neither added nor kept (nor tied to one
 * that stays, cfs_tree_tie()) are removed from dir. Called with dir's
 * listing mutex held, never with the tree's read-write lock; other
 * directories may be listed at the same time, in other threads. Returns
 * false with *error set when the remote cannot be listed; dir then counts
 * as never listed, nothing is removed, and the next cfs_tree_prepare_dir()
 * lists it again.
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
 * refreshed (new names are added, names that disappeared are removed).
 */
struct cfs_tree *cfs_tree_new(cfs_list_fn list, cfs_size_fn size, void *ctx,
			      GDestroyNotify ctx_free, unsigned ttl_s);

/*
 * Free the tree and every node it still has, whatever holds them, and drop
 * their references to objects. No other thread may use it, and no view may
 * hold a node any more: cfs_views_free() first, which freed the views
 * nodes point at (they are left alone here).
 */
void cfs_tree_free(struct cfs_tree *t);

/* The root directory: valid without a reference for the life of the tree. */
struct cfs_node *cfs_tree_root(struct cfs_tree *t);

/* The node with inode ino with a new reference (cfs_node_put() it), or NULL. */
struct cfs_node *cfs_tree_get(struct cfs_tree *t, uint64_t ino);

/* Returns n with a new reference, for a caller that holds one already. Thread-safe. */
struct cfs_node *cfs_node_ref(struct cfs_node *n);

/*
 * Drop count references to n (n may be NULL). The last one frees n, and
 * drops a directory's references to its children, once the tree's lock is
 * released. Thread-safe; never call it with the tree's lock held.
 */
void cfs_node_put(struct cfs_node *n, uint64_t count);

/*
 * The kernel is sent an entry for n (a lookup answered with it): the
 * caller's reference becomes the kernel's, until cfs_tree_forget(). Call
 * it before sending the entry, whose FORGET may come as soon as the kernel
 * has it; when the kernel does not take the entry, cfs_tree_forget(t,
 * n->ino, 1). Thread-safe.
 */
void cfs_node_looked_up(struct cfs_node *n);

/*
 * The kernel forgot nlookup lookups of inode ino (FUSE_FORGET and
 * FUSE_BATCH_FORGET; libfuse, fuse_lowlevel.h, "forget"): as many of the
 * references cfs_node_looked_up() made are dropped, never more than were
 * made. Unknown inodes are ignored. Thread-safe.
 */
void cfs_tree_forget(struct cfs_tree *t, uint64_t ino, uint64_t nlookup);

/*
 * Make dir's children current: list it if it is a remote directory never
 * listed or listed longer ago than the TTL. Blocks on the network while
 * listing (each request within the deadline of cfs_fetch_small()); waits
 * only for a listing of the same directory. Returns false with *error set
 * when the listing failed: nothing of it is remembered, the next call
 * tries again. The caller holds a reference to dir.
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

/* The child of dir named name with a new reference (cfs_node_put() it), or NULL. */
struct cfs_node *cfs_tree_lookup(struct cfs_tree *t, struct cfs_node *dir, const char *name);

/*
 * For a listing of dir (cfs_list_fn): true when dir has a child called
 * name, which this listing then keeps. Thread-safe.
 */
bool cfs_tree_keep(struct cfs_tree *t, struct cfs_node *dir, const char *name);

/*
 * For a listing of dir (cfs_list_fn): take dir's child called name out of
 * dir now, with the children shown for it (cfs_tree_tie()), as a listing
 * that omits it would; the listing may then add name anew (the object
 * changed). Their nodes are freed once nothing holds them. Thread-safe.
 */
void cfs_tree_drop(struct cfs_tree *t, struct cfs_node *dir, const char *name);

/*
 * For a listing of n's directory (cfs_list_fn): n is shown for owner, a
 * sibling added before it, and stays as long as owner does, whether or
 * not a listing names it. Ignored when owner is not an older sibling.
 */
void cfs_tree_tie(struct cfs_tree *t, struct cfs_node *n, struct cfs_node *owner);

/*
 * One entry of a readdir: its name, inode and kind, and the offset to
 * resume after it. Returns false when the reply is full (it was not
 * added). Called with the tree's read lock held: it must not call the tree.
 */
typedef bool (*cfs_dirent_add_fn)(void *ctx, const char *name, uint64_t ino, bool dir,
				  uint64_t next_off);

/*
 * Give add() the entries of dir from offset off on, until it returns
 * false: 0 is ".", 1 "..", and every child has an offset of its own
 * (cfs_node.cookie, growing in the order children are added) that it keeps
 * while it stays, so that a readdir resumed across a relisting neither
 * skips nor repeats a name that stayed. Hidden children are skipped, their
 * offsets unused. Thread-safe.
 */
void cfs_tree_readdir(struct cfs_tree *t, struct cfs_node *dir, uint64_t off,
		      cfs_dirent_add_fn add, void *ctx);

/*
 * Add a child to dir. name is copied; it must be valid (cfs_name_valid) and
 * not present yet, else NULL is returned and nothing is added. The caller's
 * reference to the object passed becomes the node's (dropped at once when
 * NULL is returned); the bytes are referenced. A remote directory is listed
 * on demand; another directory holds what is added to it. A hidden
 * directory (hidden) is found by lookup but left out of dir's readdir, as
 * ZFS hides .zfs (snapdir=hidden), so that tree walkers see the remote's
 * names only. A child added while dir is being listed is removed by a
 * later listing that omits it.
 * The caller gets no reference: the node returned is valid while dir's
 * listing runs, or as long as dir is not a remote directory.
 */
struct cfs_node *cfs_tree_add_dir(struct cfs_tree *t, struct cfs_node *dir, const char *name,
				  bool remote, bool hidden);
struct cfs_node *cfs_tree_add_object(struct cfs_tree *t, struct cfs_node *dir, const char *name,
				     struct cfs_object *obj);
struct cfs_node *cfs_tree_add_bytes(struct cfs_tree *t, struct cfs_node *dir, const char *name,
				    GBytes *bytes);
/* A file whose text render gives at each open. */
struct cfs_node *cfs_tree_add_rendered(struct cfs_tree *t, struct cfs_node *dir, const char *name,
				       cfs_render_fn render);
/*
 * A directory showing view, which learns the node's inode as its root
 * (cfs_view_set_root). The caller's reference to view becomes the node's
 * (dropped at once when NULL is returned).
 */
struct cfs_node *cfs_tree_add_view(struct cfs_tree *t, struct cfs_node *dir, const char *name,
				   struct cfs_view *view, bool hidden);

/* A new object id, unique in this tree. */
uint32_t cfs_tree_next_object_id(struct cfs_tree *t);

/*
 * The path below the mount root of dir's child name ('/'-separated, as in
 * cfs_node.path); g_malloc'd, the caller frees it. Thread-safe.
 */
char *cfs_node_child_path(const struct cfs_node *dir, const char *name);

/*
 * When n was last modified, in microseconds since the epoch: its object's
 * time (cfs_object_mtime()), a held file's listed time, else
 * CFS_TIME_UNKNOWN (directories, rendered files). Thread-safe.
 */
int64_t cfs_node_mtime(const struct cfs_node *n);

/* Size in bytes a node shows in stat (a rendered file's current length; 0 while unknown). */
uint64_t cfs_node_size(const struct cfs_node *n);

/*
 * True when name can be a file name in the mount: not empty, not "." or
 * "..", no '/', no NUL or control character, at most 255 bytes, valid
 * UTF-8. Else false with a static reason in *why (may be NULL).
 */
bool cfs_name_valid(const char *name, const char **why);

#endif
