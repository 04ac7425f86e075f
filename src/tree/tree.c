/* Inodes come from a counter and are never reused; a hash table finds their nodes. */
#include "tree/tree.h"

#include <limits.h>

#include "remote/listing.h"
#include "tree/object.h"
#include "util/stats.h"
#include "util/times.h"
#include "views/view.h"

/*
 * Sizing an object takes one of these, by object id: two nodes may share
 * an object (a chunk and its decompressed view), and one lock per object
 * would cost a mutex for every file of the tree.
 */
#define SIZING_LOCKS 16

/* Readdir offsets 0 and 1 are "." and ".."; children count from here. */
#define FIRST_COOKIE 2

struct cfs_tree {
	GRWLock lock;          /* guards inodes, next_ino and every directory's children */
	GHashTable *inodes;    /* uint64_t ino -> struct cfs_node * */
	uint64_t next_ino;
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
	n->ino = ++t->next_ino;
	n->tree = t;
	n->parent_ino = parent ? parent->ino : n->ino;
	n->name = g_strdup(name);
	n->path = parent ? cfs_node_child_path(parent, name) : g_strdup(name);
	n->kind = kind;
	n->mtime_us = CFS_TIME_UNKNOWN;
	n->refs = 1; /* its place in parent; the root's is the tree's */
	if (kind == CFS_NODE_DIR) {
		n->children = g_ptr_array_new();
		n->by_name = g_hash_table_new(g_str_hash, g_str_equal);
		n->next_cookie = FIRST_COOKIE;
		g_mutex_init(&n->listing);
	}
	g_hash_table_insert(t->inodes, &n->ino, n);
	if (parent) {
		n->cookie = parent->next_cookie++;
		g_ptr_array_add(parent->children, n);
		g_hash_table_insert(parent->by_name, n->name, n);
	}
	cfs_stats_gauge_add(CFS_NODES, 1);
	return n;
}

/* Without the tree's lock: dropping an object may reach the memory tier. */
static void node_free(struct cfs_node *n)
{
	if (n->object)
		cfs_object_unref(n->object);
	if (n->bytes)
		g_bytes_unref(n->bytes);
	cfs_view_unref(n->view);
	g_free(n->etag);
	if (n->kind == CFS_NODE_DIR) {
		g_ptr_array_free(n->children, TRUE);
		g_hash_table_destroy(n->by_name);
		g_mutex_clear(&n->listing);
	}
	g_free(n->name);
	g_free(n->path);
	g_free(n);
	cfs_stats_gauge_add(CFS_NODES, -1);
}

static void free_nodes(GPtrArray *dead)
{
	for (guint i = 0; i < dead->len; i++)
		node_free(g_ptr_array_index(dead, i));
	g_ptr_array_free(dead, TRUE);
}

/*
 * Drop count references to n under the write lock. A node left with none
 * leaves the inode table for dead, and a directory's children lose the
 * reference of their place in it: a loop over a queue, not a recursion,
 * as a remote may nest directories deeply.
 */
static void release_locked(struct cfs_tree *t, struct cfs_node *n, uint64_t count,
			   GPtrArray *dead)
{
	if (__atomic_sub_fetch(&n->refs, count, __ATOMIC_ACQ_REL) != 0)
		return;
	GQueue gone = G_QUEUE_INIT;
	g_queue_push_tail(&gone, n);
	while ((n = g_queue_pop_head(&gone))) {
		g_hash_table_remove(t->inodes, &n->ino);
		g_ptr_array_add(dead, n);
		for (guint i = 0; n->children && i < n->children->len; i++) {
			struct cfs_node *c = g_ptr_array_index(n->children, i);
			c->owner = NULL;
			if (__atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0)
				g_queue_push_tail(&gone, c);
		}
		if (n->children)
			g_ptr_array_set_size(n->children, 0);
	}
}

struct cfs_node *cfs_node_ref(struct cfs_node *n)
{
	__atomic_add_fetch(&n->refs, 1, __ATOMIC_RELAXED);
	return n;
}

void cfs_node_put(struct cfs_node *n, uint64_t count)
{
	if (!n || count == 0)
		return;
	/* Not the last references: no lock, nothing can be freed. */
	uint64_t refs = __atomic_load_n(&n->refs, __ATOMIC_RELAXED);
	while (refs > count)
		if (__atomic_compare_exchange_n(&n->refs, &refs, refs - count, true, __ATOMIC_ACQ_REL,
						__ATOMIC_RELAXED))
			return;
	/*
	 * Perhaps the last: under the write lock, so that no thread finds n in
	 * the inode table or a directory (which take references under the read
	 * lock) while it goes.
	 */
	struct cfs_tree *t = n->tree;
	GPtrArray *dead = g_ptr_array_new();
	g_rw_lock_writer_lock(&t->lock);
	release_locked(t, n, count, dead);
	g_rw_lock_writer_unlock(&t->lock);
	free_nodes(dead);
}

void cfs_node_looked_up(struct cfs_node *n)
{
	__atomic_add_fetch(&n->lookups, 1, __ATOMIC_RELAXED);
}

void cfs_tree_forget(struct cfs_tree *t, uint64_t ino, uint64_t nlookup)
{
	GPtrArray *dead = g_ptr_array_new();
	g_rw_lock_writer_lock(&t->lock);
	struct cfs_node *n = g_hash_table_lookup(t->inodes, &ino);
	/* Lookups are only added outside the lock: what is read here can only grow. */
	uint64_t forgotten = n ? MIN(nlookup, __atomic_load_n(&n->lookups, __ATOMIC_ACQUIRE)) : 0;
	if (forgotten) {
		__atomic_sub_fetch(&n->lookups, forgotten, __ATOMIC_ACQ_REL);
		release_locked(t, n, forgotten, dead);
	}
	g_rw_lock_writer_unlock(&t->lock);
	free_nodes(dead);
}

struct cfs_tree *cfs_tree_new(cfs_list_fn list, cfs_size_fn size, void *ctx,
			      GDestroyNotify ctx_free, unsigned ttl_s)
{
	struct cfs_tree *t = g_new0(struct cfs_tree, 1);
	g_rw_lock_init(&t->lock);
	for (unsigned i = 0; i < SIZING_LOCKS; i++)
		g_mutex_init(&t->sizing[i]);
	t->inodes = g_hash_table_new(g_int64_hash, g_int64_equal);
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
	GPtrArray *all = g_ptr_array_new();
	GHashTableIter it;
	gpointer n;
	g_hash_table_iter_init(&it, t->inodes);
	while (g_hash_table_iter_next(&it, NULL, &n)) {
		((struct cfs_node *)n)->view = NULL; /* freed by cfs_views_free() */
		g_ptr_array_add(all, n);
	}
	g_hash_table_destroy(t->inodes);
	free_nodes(all);
	if (t->ctx_free)
		t->ctx_free(t->ctx);
	for (unsigned i = 0; i < SIZING_LOCKS; i++)
		g_mutex_clear(&t->sizing[i]);
	g_rw_lock_clear(&t->lock);
	g_free(t);
}

struct cfs_node *cfs_tree_root(struct cfs_tree *t)
{
	g_rw_lock_reader_lock(&t->lock);
	uint64_t ino = CFS_ROOT_INO;
	struct cfs_node *root = g_hash_table_lookup(t->inodes, &ino);
	g_rw_lock_reader_unlock(&t->lock);
	return root;
}

struct cfs_node *cfs_tree_get(struct cfs_tree *t, uint64_t ino)
{
	g_rw_lock_reader_lock(&t->lock);
	struct cfs_node *n = g_hash_table_lookup(t->inodes, &ino);
	if (n)
		cfs_node_ref(n);
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

/* n stays after the listing of its directory: it was named, or is tied to one that stays. */
static bool stays(const struct cfs_node *n, const void *listing)
{
	for (; n; n = n->owner)
		if (!n->listed ||
		    __atomic_load_n(&n->named, __ATOMIC_RELAXED) == *(const uint64_t *)listing)
			return true;
	return false;
}

/* n is not dropped with the node dropped: it is neither that node nor shown for it. */
static bool not_shown_for(const struct cfs_node *n, const void *dropped)
{
	for (; n; n = n->owner)
		if (n == dropped)
			return false;
	return true;
}

/*
 * Take out of dir the children for which keep(child, arg) is false, under
 * the write lock; their nodes go to dead once nothing holds them. The
 * others keep their order, hence their readdir offsets.
 */
static void sweep_locked(struct cfs_tree *t, struct cfs_node *dir,
			 bool (*keep)(const struct cfs_node *c, const void *arg), const void *arg,
			 GPtrArray *dead)
{
	GPtrArray *gone = g_ptr_array_new();
	guint kept = 0;
	for (guint i = 0; i < dir->children->len; i++) {
		struct cfs_node *c = g_ptr_array_index(dir->children, i);
		if (keep(c, arg))
			g_ptr_array_index(dir->children, kept++) = c;
		else
			g_ptr_array_add(gone, c);
	}
	g_ptr_array_set_size(dir->children, kept);
	for (guint i = 0; i < gone->len; i++)
		g_hash_table_remove(dir->by_name, ((struct cfs_node *)g_ptr_array_index(gone, i))->name);
	for (guint i = 0; i < kept; i++) { /* a survivor named on its own outlives its owner */
		struct cfs_node *c = g_ptr_array_index(dir->children, i);
		if (c->owner && g_hash_table_lookup(dir->by_name, c->owner->name) != c->owner)
			c->owner = NULL;
	}
	for (guint i = 0; i < gone->len; i++) {
		struct cfs_node *c = g_ptr_array_index(gone, i);
		c->owner = NULL;
		release_locked(t, c, 1, dead);
	}
	g_ptr_array_free(gone, TRUE);
}

/* Start a listing of dir: what it adds is listed, what it keeps is named by it. */
static void listing_begin(struct cfs_tree *t, struct cfs_node *dir)
{
	g_rw_lock_writer_lock(&t->lock);
	dir->listing_id++;
	dir->listing_now = true;
	g_rw_lock_writer_unlock(&t->lock);
}

/* End it; a listing that succeeded is now current, and removes what it did not name. */
static void listing_end(struct cfs_tree *t, struct cfs_node *dir, bool ok)
{
	GPtrArray *dead = g_ptr_array_new();
	g_rw_lock_writer_lock(&t->lock);
	dir->listing_now = false;
	if (ok) {
		dir->listed_us = g_get_monotonic_time();
		sweep_locked(t, dir, stays, &dir->listing_id, dead);
	}
	g_rw_lock_writer_unlock(&t->lock);
	free_nodes(dead);
}

bool cfs_tree_prepare_dir(struct cfs_tree *t, struct cfs_node *dir, GError **error)
{
	if (dir->kind != CFS_NODE_DIR || listing_is_current(t, dir))
		return true;
	g_mutex_lock(&dir->listing);
	bool ok = true;
	if (!listing_is_current(t, dir)) { /* another thread may have listed it meanwhile */
		listing_begin(t, dir);
		ok = t->list(t->ctx, t, dir, error);
		listing_end(t, dir, ok);
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
	if (n)
		cfs_node_ref(n);
	g_rw_lock_reader_unlock(&t->lock);
	return n;
}

bool cfs_tree_keep(struct cfs_tree *t, struct cfs_node *dir, const char *name)
{
	if (dir->kind != CFS_NODE_DIR)
		return false;
	g_rw_lock_reader_lock(&t->lock);
	struct cfs_node *n = g_hash_table_lookup(dir->by_name, name);
	if (n)
		__atomic_store_n(&n->named, dir->listing_id, __ATOMIC_RELAXED);
	g_rw_lock_reader_unlock(&t->lock);
	return n != NULL;
}

void cfs_tree_drop(struct cfs_tree *t, struct cfs_node *dir, const char *name)
{
	GPtrArray *dead = g_ptr_array_new();
	g_rw_lock_writer_lock(&t->lock);
	struct cfs_node *n = dir->kind == CFS_NODE_DIR ? g_hash_table_lookup(dir->by_name, name)
						       : NULL;
	if (n)
		sweep_locked(t, dir, not_shown_for, n, dead);
	g_rw_lock_writer_unlock(&t->lock);
	free_nodes(dead);
}

void cfs_tree_tie(struct cfs_tree *t, struct cfs_node *n, struct cfs_node *owner)
{
	g_rw_lock_writer_lock(&t->lock);
	/* An older sibling: owners form chains that end, never cycles. */
	if (owner->parent_ino == n->parent_ino && owner->cookie < n->cookie && owner != n)
		n->owner = owner;
	g_rw_lock_writer_unlock(&t->lock);
}

/* The position in dir's children of the first child whose offset is off or more. */
static guint first_at(const struct cfs_node *dir, uint64_t off)
{
	guint lo = 0, hi = dir->children->len;
	while (lo < hi) {
		guint mid = lo + (hi - lo) / 2;
		if (((struct cfs_node *)g_ptr_array_index(dir->children, mid))->cookie < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool node_is_dir(const struct cfs_node *n)
{
	return n->kind == CFS_NODE_DIR || n->kind == CFS_NODE_VIEW;
}

void cfs_tree_readdir(struct cfs_tree *t, struct cfs_node *dir, uint64_t off,
		      cfs_dirent_add_fn add, void *ctx)
{
	if (off == 0 && !add(ctx, ".", dir->ino, true, 1))
		return;
	if (off <= 1 && !add(ctx, "..", dir->parent_ino, true, FIRST_COOKIE))
		return;
	g_rw_lock_reader_lock(&t->lock);
	for (guint i = first_at(dir, off); i < dir->children->len; i++) {
		const struct cfs_node *c = g_ptr_array_index(dir->children, i);
		if (!c->hidden && !add(ctx, c->name, c->ino, node_is_dir(c), c->cookie + 1))
			break;
	}
	g_rw_lock_reader_unlock(&t->lock);
}

/* What a new node holds, set before other threads can see it. */
struct content {
	enum cfs_node_kind kind;
	bool remote;
	bool hidden;
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
		n->listed = dir->listing_now;
		n->named = dir->listing_id;
		n->remote = c.remote;
		n->hidden = c.hidden;
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
				  bool remote, bool hidden)
{
	return add(t, dir, name,
		   (struct content){ .kind = CFS_NODE_DIR, .remote = remote, .hidden = hidden });
}

struct cfs_node *cfs_tree_add_object(struct cfs_tree *t, struct cfs_node *dir, const char *name,
				     struct cfs_object *obj)
{
	struct cfs_node *n = add(t, dir, name, (struct content){ .kind = CFS_NODE_OBJECT,
								  .object = obj });
	if (!n)
		cfs_object_unref(obj);
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
				   struct cfs_view *view, bool hidden)
{
	struct cfs_node *n = add(
		t, dir, name,
		(struct content){ .kind = CFS_NODE_VIEW, .view = view, .hidden = hidden });
	if (!n)
		cfs_view_unref(view);
	return n;
}

uint32_t cfs_tree_next_object_id(struct cfs_tree *t)
{
	return __atomic_fetch_add(&t->next_object_id, 1, __ATOMIC_RELAXED);
}

char *cfs_node_child_path(const struct cfs_node *dir, const char *name)
{
	return *dir->path ? g_strconcat(dir->path, "/", name, NULL) : g_strdup(name);
}

int64_t cfs_node_mtime(const struct cfs_node *n)
{
	if (n->kind == CFS_NODE_OBJECT)
		return cfs_object_mtime(n->object);
	return __atomic_load_n(&n->mtime_us, __ATOMIC_RELAXED);
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
