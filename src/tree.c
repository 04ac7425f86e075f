/* Inodes are indexes into one array: inode N is nodes[N - 1]. */
#include "chunkfs/tree.h"

#include "chunkfs/object.h"
#include "chunkfs/stats.h"

struct cfs_tree {
	GPtrArray *nodes;
};

static struct cfs_node *node_new(struct cfs_tree *t, struct cfs_node *parent, const char *name,
				 enum cfs_node_kind kind)
{
	struct cfs_node *n = g_new0(struct cfs_node, 1);
	n->ino = t->nodes->len + 1;
	n->parent = parent ? parent : n;
	n->name = g_strdup(name);
	n->kind = kind;
	if (kind == CFS_NODE_DIR) {
		n->children = g_ptr_array_new();
		n->by_name = g_hash_table_new(g_str_hash, g_str_equal);
	}
	g_ptr_array_add(t->nodes, n);
	if (parent) {
		g_ptr_array_add(parent->children, n);
		g_hash_table_insert(parent->by_name, n->name, n);
	}
	return n;
}

static void node_free(gpointer p)
{
	struct cfs_node *n = p;
	if (n->object)
		cfs_object_free(n->object);
	if (n->bytes)
		g_bytes_unref(n->bytes);
	if (n->children)
		g_ptr_array_free(n->children, TRUE);
	if (n->by_name)
		g_hash_table_destroy(n->by_name);
	g_free(n->name);
	g_free(n);
}

struct cfs_tree *cfs_tree_new(void)
{
	struct cfs_tree *t = g_new0(struct cfs_tree, 1);
	t->nodes = g_ptr_array_new_with_free_func(node_free);
	node_new(t, NULL, "", CFS_NODE_DIR);
	return t;
}

void cfs_tree_free(struct cfs_tree *t)
{
	if (!t)
		return;
	g_ptr_array_free(t->nodes, TRUE);
	g_free(t);
}

struct cfs_node *cfs_tree_root(struct cfs_tree *t)
{
	return g_ptr_array_index(t->nodes, 0);
}

struct cfs_node *cfs_tree_get(struct cfs_tree *t, uint64_t ino)
{
	if (ino == 0 || ino > t->nodes->len)
		return NULL;
	return g_ptr_array_index(t->nodes, ino - 1);
}

struct cfs_node *cfs_tree_lookup(struct cfs_node *dir, const char *name)
{
	if (dir->kind != CFS_NODE_DIR)
		return NULL;
	return g_hash_table_lookup(dir->by_name, name);
}

static bool can_add(struct cfs_node *dir, const char *name)
{
	return dir->kind == CFS_NODE_DIR && cfs_name_valid(name, NULL) &&
	       !g_hash_table_contains(dir->by_name, name);
}

struct cfs_node *cfs_tree_add_dir(struct cfs_tree *t, struct cfs_node *dir, const char *name)
{
	return can_add(dir, name) ? node_new(t, dir, name, CFS_NODE_DIR) : NULL;
}

struct cfs_node *cfs_tree_add_object(struct cfs_tree *t, struct cfs_node *dir, const char *name,
				     struct cfs_object *obj)
{
	if (!can_add(dir, name))
		return NULL;
	struct cfs_node *n = node_new(t, dir, name, CFS_NODE_OBJECT);
	n->object = obj;
	return n;
}

struct cfs_node *cfs_tree_add_bytes(struct cfs_tree *t, struct cfs_node *dir, const char *name,
				    GBytes *bytes)
{
	if (!can_add(dir, name))
		return NULL;
	struct cfs_node *n = node_new(t, dir, name, CFS_NODE_BYTES);
	n->bytes = g_bytes_ref(bytes);
	return n;
}

struct cfs_node *cfs_tree_add_stats(struct cfs_tree *t, struct cfs_node *dir, const char *name)
{
	return can_add(dir, name) ? node_new(t, dir, name, CFS_NODE_STATS) : NULL;
}

uint64_t cfs_node_size(const struct cfs_node *n)
{
	switch (n->kind) {
	case CFS_NODE_OBJECT:
		return n->object->size;
	case CFS_NODE_BYTES:
		return g_bytes_get_size(n->bytes);
	case CFS_NODE_STATS: {
		uint64_t len;
		g_free(cfs_stats_render(&len));
		return len;
	}
	case CFS_NODE_DIR:
		break;
	}
	return 0;
}

bool cfs_name_valid(const char *name, const char **why)
{
	const char *reason = NULL;
	size_t len = name ? strlen(name) : 0;
	if (len == 0)
		reason = "empty name";
	else if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		reason = "'.' or '..'";
	else if (len > 255)
		reason = "longer than 255 bytes";
	else if (strchr(name, '/'))
		reason = "contains '/'";
	else if (!g_utf8_validate(name, (gssize)len, NULL))
		reason = "not valid UTF-8";
	for (const char *p = name; !reason && *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			reason = "contains a control character";
	if (why)
		*why = reason;
	return reason == NULL;
}
