/* Inodes are indexes into one array: inode N is nodes[N - 1]. */
#include "chunkfs/tree.h"

#include <limits.h>

#include "chunkfs/listing.h"
#include "chunkfs/object.h"
#include "chunkfs/view.h"

/*
 * Sizing an object takes one of these, by object id: two nodes may share
 * an object (a chunk and its decompressed view), and one lock per object
 * would cost a mutex for every file of the tree.
 */
#define SIZING_LOCKS 16

struct cfs_tree {
	GRWLock lock;          /* guards nodes and every directory's children */
	GPtrArray *nodes;
	GMutex sizing[SIZING_LOCKS];
	cfs_list_fn list;
	cfs_size_fn size;
	void *ctx;
	GDestroyNotify ctx_free;
	gint64 ttl_us;
	uint32_t next_object_id;
};

/* Called with the write lock held (or before the tree is shared). */
static struct cfs_node *node_new(struct cfs_tree *t, struct cfs_node *parent, const char *name,
				 enum cfs_node_kind kind)
{
	struct cfs_node *n = g_new0(struct cfs_node, 1);
	n->ino = t->nodes->len + 1;
	n->parent = parent ? parent : n;
	n->name = g_strdup(name);
	n->path = parent ? cfs_node_child_path(parent, name) : g_strdup(name);
	n->kind = kind;
	if (kind == CFS_NODE_DIR) {
		n->children = g_ptr_array_new();
		n->by_name = g_hash_table_new(g_str_hash, g_str_equal);
		g_mutex_init(&n->listing);
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
	if (n->kind == CFS_NODE_DIR) {
		g_ptr_array_free(n->children, TRUE);
		g_hash_table_destroy(n->by_name);
		g_mutex_clear(&n->listing);
	}
	g_free(n->name);
	g_free(n->path);
	g_free(n);
}

struct cfs_tree *cfs_tree_new(cfs_list_fn list, cfs_size_fn size, void *ctx,
			      GDestroyNotify ctx_free, unsigned ttl_s)
{
	struct cfs_tree *t = g_new0(struct cfs_tree, 1);
	g_rw_lock_init(&t->lock);
	for (unsigned i = 0; i < SIZING_LOCKS; i++)
		g_mutex_init(&t->sizing[i]);
	t->nodes = g_ptr_array_new_with_free_func(node_free);
	t->list = list;
	t->size = size;
	t->ctx = ctx;
	t->ctx_free = ctx_free;
	t->ttl_us = (gint64)ttl_s * G_USEC_PER_SEC;
	node_new(t, NULL, "", CFS_NODE_DIR)->remote = true;
	return t;
}

void cfs_tree_free(struct cfs_tree *t)
{
	if (!t)
		return;
	g_ptr_array_free(t->nodes, TRUE);
	if (t->ctx_free)
		t->ctx_free(t->ctx);
	for (unsigned i = 0; i < SIZING_LOCKS; i++)
		g_mutex_clear(&t->sizing[i]);
	g_rw_lock_clear(&t->lock);
	g_free(t);
}

struct cfs_node *cfs_tree_root(struct cfs_tree *t)
{
	return cfs_tree_get(t, CFS_ROOT_INO);
}

struct cfs_node *cfs_tree_get(struct cfs_tree *t, uint64_t ino)
{
	g_rw_lock_reader_lock(&t->lock);
	struct cfs_node *n = ino && ino <= t->nodes->len ? g_ptr_array_index(t->nodes, ino - 1) : NULL;
	g_rw_lock_reader_unlock(&t->lock);
	return n;
}

static bool listing_is_current(struct cfs_tree *t, struct cfs_node *dir)
{
	g_rw_lock_reader_lock(&t->lock);
	bool current = !dir->remote ||
		       (dir->listed_us && g_get_monotonic_time() - dir->listed_us < t->ttl_us);
	g_rw_lock_reader_unlock(&t->lock);
	return current;
}

bool cfs_tree_prepare_dir(struct cfs_tree *t, struct cfs_node *dir, GError **error)
{
	if (dir->kind != CFS_NODE_DIR || listing_is_current(t, dir))
		return true;
	g_mutex_lock(&dir->listing);
	bool ok = true;
	if (!listing_is_current(t, dir)) { /* another thread may have listed it meanwhile */
		ok = t->list(t->ctx, t, dir, error);
		if (ok) {
			g_rw_lock_writer_lock(&t->lock);
			dir->listed_us = g_get_monotonic_time();
			g_rw_lock_writer_unlock(&t->lock);
		}
	}
	g_mutex_unlock(&dir->listing);
	return ok;
}

/* The object whose size file's bytes depend on: the compressed one of a decompressed file. */
static struct cfs_object *sized_object(struct cfs_node *file)
{
	return file->object->compressed ? file->object->compressed : file->object;
}

bool cfs_tree_prepare_file(struct cfs_tree *t, struct cfs_node *file, GError **error)
{
	if (file->kind != CFS_NODE_OBJECT)
		return true;
	struct cfs_object *obj = sized_object(file);
	GMutex *sizing = &t->sizing[obj->id % SIZING_LOCKS];
	g_mutex_lock(sizing);
	bool ok = obj->size != CFS_SIZE_UNKNOWN || t->size(t->ctx, obj, error);
	g_mutex_unlock(sizing);
	return ok;
}

bool cfs_tree_file_sized(struct cfs_node *file)
{
	if (file->kind != CFS_NODE_OBJECT)
		return true;
	/* Not under the sizing mutex: a HEAD may hold it, and this must not wait. */
	return __atomic_load_n(&sized_object(file)->size, __ATOMIC_ACQUIRE) != CFS_SIZE_UNKNOWN;
}

struct cfs_node *cfs_tree_lookup(struct cfs_tree *t, struct cfs_node *dir, const char *name)
{
	if (dir->kind != CFS_NODE_DIR)
		return NULL;
	g_rw_lock_reader_lock(&t->lock);
	struct cfs_node *n = g_hash_table_lookup(dir->by_name, name);
	g_rw_lock_reader_unlock(&t->lock);
	return n;
}

struct cfs_node *cfs_tree_child(struct cfs_tree *t, struct cfs_node *dir, guint index)
{
	g_rw_lock_reader_lock(&t->lock);
	struct cfs_node *n = index < dir->children->len ? g_ptr_array_index(dir->children, index)
							: NULL;
	g_rw_lock_reader_unlock(&t->lock);
	return n;
}

/* What a new node holds, set before other threads can see it. */
struct content {
	enum cfs_node_kind kind;
	bool remote;
	struct cfs_object *object;
	GBytes *bytes;
	struct cfs_view *view;
	cfs_render_fn render;
};

/* Add a node under the write lock, unless the name is invalid or taken. */
static struct cfs_node *add(struct cfs_tree *t, struct cfs_node *dir, const char *name,
			    struct content c)
{
	if (dir->kind != CFS_NODE_DIR || !cfs_name_valid(name, NULL))
		return NULL;
	g_rw_lock_writer_lock(&t->lock);
	struct cfs_node *n = NULL;
	if (!g_hash_table_contains(dir->by_name, name)) {
		n = node_new(t, dir, name, c.kind);
		n->remote = c.remote;
		n->object = c.object;
		n->bytes = c.bytes ? g_bytes_ref(c.bytes) : NULL;
		n->view = c.view;
		n->render = c.render;
		if (c.view)
			cfs_view_set_root(c.view, n->ino);
	}
	g_rw_lock_writer_unlock(&t->lock);
	return n;
}

struct cfs_node *cfs_tree_add_dir(struct cfs_tree *t, struct cfs_node *dir, const char *name,
				  bool remote)
{
	return add(t, dir, name, (struct content){ .kind = CFS_NODE_DIR, .remote = remote });
}

struct cfs_node *cfs_tree_add_object(struct cfs_tree *t, struct cfs_node *dir, const char *name,
				     struct cfs_object *obj)
{
	struct cfs_node *n = add(t, dir, name, (struct content){ .kind = CFS_NODE_OBJECT,
								  .object = obj });
	if (!n)
		cfs_object_free(obj);
	return n;
}

struct cfs_node *cfs_tree_add_bytes(struct cfs_tree *t, struct cfs_node *dir, const char *name,
				    GBytes *bytes)
{
	return add(t, dir, name, (struct content){ .kind = CFS_NODE_BYTES, .bytes = bytes });
}

struct cfs_node *cfs_tree_add_rendered(struct cfs_tree *t, struct cfs_node *dir, const char *name,
				       cfs_render_fn render)
{
	return add(t, dir, name, (struct content){ .kind = CFS_NODE_RENDERED, .render = render });
}

struct cfs_node *cfs_tree_add_view(struct cfs_tree *t, struct cfs_node *dir, const char *name,
				   struct cfs_view *view)
{
	return add(t, dir, name, (struct content){ .kind = CFS_NODE_VIEW, .view = view });
}

uint32_t cfs_tree_next_object_id(struct cfs_tree *t)
{
	return __atomic_fetch_add(&t->next_object_id, 1, __ATOMIC_RELAXED);
}

char *cfs_node_child_path(const struct cfs_node *dir, const char *name)
{
	return *dir->path ? g_strconcat(dir->path, "/", name, NULL) : g_strdup(name);
}

uint64_t cfs_node_size(const struct cfs_node *n)
{
	switch (n->kind) {
	case CFS_NODE_OBJECT:
		return n->object->size == CFS_SIZE_UNKNOWN ? 0 : n->object->size;
	case CFS_NODE_BYTES:
		return g_bytes_get_size(n->bytes);
	case CFS_NODE_RENDERED: {
		uint64_t len;
		g_free(n->render(&len));
		return len;
	}
	case CFS_NODE_DIR:
	case CFS_NODE_VIEW:
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
	else if (len > NAME_MAX)
		reason = "longer than " G_STRINGIFY(NAME_MAX) " bytes";
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
