/*
 * The inode tree the mount shows: directories, remote objects, small
 * in-memory files (the dataset index) and the stats file. Built before the
 * mount and read-only while it is served, so lookups need no lock.
 */
#ifndef CHUNKFS_TREE_H
#define CHUNKFS_TREE_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

struct cfs_object;

#define CFS_ROOT_INO 1

enum cfs_node_kind {
	CFS_NODE_DIR,
	CFS_NODE_OBJECT, /* bytes of a remote object, through the memory tier */
	CFS_NODE_BYTES,  /* bytes held in memory (the index as fetched at mount) */
	CFS_NODE_STATS,  /* .chunkfs/stats, rendered at open */
};

struct cfs_node {
	uint64_t ino;
	struct cfs_node *parent;  /* the root is its own parent */
	char *name;
	enum cfs_node_kind kind;
	struct cfs_object *object; /* CFS_NODE_OBJECT: owned by the tree */
	GBytes *bytes;             /* CFS_NODE_BYTES */
	GPtrArray *children;       /* CFS_NODE_DIR: struct cfs_node *, in insertion order */
	GHashTable *by_name;       /* CFS_NODE_DIR: name -> struct cfs_node * */
};

struct cfs_tree;

/* A tree holding only the root directory (inode CFS_ROOT_INO). */
struct cfs_tree *cfs_tree_new(void);

/* Free the tree, its nodes and the objects they own. */
void cfs_tree_free(struct cfs_tree *t);

struct cfs_node *cfs_tree_root(struct cfs_tree *t);

/* The node with inode ino, or NULL. */
struct cfs_node *cfs_tree_get(struct cfs_tree *t, uint64_t ino);

/* The child of dir named name, or NULL. */
struct cfs_node *cfs_tree_lookup(struct cfs_node *dir, const char *name);

/*
 * Add a child to dir. name is copied; it must be valid (cfs_name_valid) and
 * not present yet, else NULL is returned and nothing changes. The object or
 * bytes passed become the tree's (the bytes are referenced).
 */
struct cfs_node *cfs_tree_add_dir(struct cfs_tree *t, struct cfs_node *dir, const char *name);
struct cfs_node *cfs_tree_add_object(struct cfs_tree *t, struct cfs_node *dir, const char *name,
				     struct cfs_object *obj);
struct cfs_node *cfs_tree_add_bytes(struct cfs_tree *t, struct cfs_node *dir, const char *name,
				    GBytes *bytes);
struct cfs_node *cfs_tree_add_stats(struct cfs_tree *t, struct cfs_node *dir, const char *name);

/* Size in bytes a node shows in stat (the rendered length for stats). */
uint64_t cfs_node_size(const struct cfs_node *n);

/*
 * True when name can be a file name in the mount: not empty, not "." or
 * "..", no '/', no NUL or control character, at most 255 bytes, valid
 * UTF-8. Else false with a static reason in *why (may be NULL).
 */
bool cfs_name_valid(const char *name, const char **why);

#endif
