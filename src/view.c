/* The set of views of a mount, dispatch of operations, and helpers every view uses. */
#include "chunkfs/view.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "view_impl.h"

struct cfs_views {
	GRWLock lock;          /* guards views */
	GPtrArray *views;      /* struct cfs_view *, by id */
	struct cfs_cache *cache;
	struct cfs_tree *tree;
};

struct cfs_views *cfs_views_new(void)
{
	struct cfs_views *vs = g_new0(struct cfs_views, 1);
	g_rw_lock_init(&vs->lock);
	vs->views = g_ptr_array_new();
	return vs;
}

void cfs_views_free(struct cfs_views *vs)
{
	if (!vs)
		return;
	for (guint i = 0; i < vs->views->len; i++) {
		struct cfs_view *v = g_ptr_array_index(vs->views, i);
		v->ops->free(v);
	}
	g_ptr_array_free(vs->views, TRUE);
	g_rw_lock_clear(&vs->lock);
	g_free(vs);
}

void cfs_views_start(struct cfs_views *vs, struct cfs_cache *cache, struct cfs_tree *tree)
{
	vs->cache = cache;
	vs->tree = tree;
}

struct cfs_cache *views_cache(const struct cfs_views *vs)
{
	return vs->cache;
}

struct cfs_tree *views_tree(const struct cfs_views *vs)
{
	return vs->tree;
}

bool views_register(struct cfs_views *vs, struct cfs_view *v, const struct view_ops *ops,
		    uint64_t parent_ino)
{
	g_rw_lock_writer_lock(&vs->lock);
	bool ok = vs->views->len < VINO_MAX_VIEWS;
	if (ok) {
		v->ops = ops;
		v->set = vs;
		v->id = vs->views->len;
		v->parent_ino = parent_ino;
		g_ptr_array_add(vs->views, v);
	}
	g_rw_lock_writer_unlock(&vs->lock);
	if (!ok)
		g_warning("more than %u item and tar views: not showing another", VINO_MAX_VIEWS);
	return ok;
}

void cfs_view_set_root(struct cfs_view *view, uint64_t root_ino)
{
	view->root_ino = root_ino;
}

struct cfs_view *cfs_views_get(struct cfs_views *vs, uint64_t ino)
{
	if (!cfs_ino_is_virtual(ino))
		return NULL;
	uint32_t id = vino_view(ino);
	g_rw_lock_reader_lock(&vs->lock);
	struct cfs_view *v = id < vs->views->len ? g_ptr_array_index(vs->views, id) : NULL;
	g_rw_lock_reader_unlock(&vs->lock);
	return v;
}

int cfs_view_lookup(struct cfs_view *view, uint64_t dir, const char *name,
		    struct cfs_ventry *out, const struct cfs_wait *w)
{
	return view->ops->lookup(view, dir, name, out, w);
}

int cfs_view_getattr(struct cfs_view *view, uint64_t ino, struct cfs_ventry *out,
		     const struct cfs_wait *w)
{
	if (ino == view->root_ino) {
		*out = (struct cfs_ventry){ .ino = ino, .dir = true };
		return 0;
	}
	return view->ops->getattr(view, ino, out, w);
}

int cfs_view_readdir(struct cfs_view *view, uint64_t dir, uint64_t off, cfs_dirent_fn add,
		     void *ctx, const struct cfs_wait *w)
{
	return view->ops->readdir(view, dir, off, add, ctx, w);
}

int cfs_view_open(struct cfs_view *view, uint64_t ino, struct cfs_vfile *out,
		  const struct cfs_wait *w)
{
	if (ino == view->root_ino)
		return -EISDIR;
	return view->ops->open(view, ino, out, w);
}

void waiters_add(GSList **list, const struct cfs_wait *w)
{
	if (w)
		*list = g_slist_prepend(*list, g_memdup2(w, sizeof(*w)));
}

void waiters_wake(GSList *list, int err)
{
	for (GSList *l = list; l; l = l->next) {
		struct cfs_wait *w = l->data;
		w->fn(w->cookie, err);
	}
	g_slist_free_full(list, g_free);
}

bool emit_dots(uint64_t *off, uint64_t self, uint64_t parent, cfs_dirent_fn add, void *ctx)
{
	if (*off == 0) {
		if (!add(ctx, ".", self, true, 1))
			return false;
		*off = 1;
	}
	if (*off == 1) {
		if (!add(ctx, "..", parent, true, 2))
			return false;
		*off = 2;
	}
	return true;
}

void gather_into(uint8_t *dst, const struct iovec *iov, int iovcnt, size_t len)
{
	size_t at = 0;
	for (int i = 0; i < iovcnt && at < len; i++) {
		size_t n = MIN(iov[i].iov_len, len - at);
		memcpy(dst + at, iov[i].iov_base, n);
		at += n;
	}
}

uint8_t *gather(const struct iovec *iov, int iovcnt, size_t len)
{
	uint8_t *buf = g_malloc(MAX(len, 1));
	gather_into(buf, iov, iovcnt, len);
	return buf;
}
