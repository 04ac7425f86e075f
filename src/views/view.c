/* The set of views of a mount, dispatch of operations, and helpers every view uses. */
#include "views/view.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "util/errors.h"
#include "tree/tree.h"
#include "view_i.h"

/* HEADs at a time for views: each holds its thread up to the deadline of cfs_fetch_head(). */
#define SIZING_THREADS 4

struct cfs_views {
	GRWLock lock;          /* guards views */
	GPtrArray *views;      /* struct cfs_view *, by id */
	struct cfs_cache *cache;
	struct cfs_tree *tree;
	GMutex sizing_lock;    /* guards sizing */
	GThreadPool *sizing;   /* runs struct sizing_job; NULL before start and after stop */
	gint stopping;         /* set by cfs_views_stop(): queued jobs ask nothing */
};

struct sizing_job {
	struct cfs_node *node;
	views_sized_fn sized;
	void *data;
};

struct cfs_views *cfs_views_new(void)
{
	struct cfs_views *vs = g_new0(struct cfs_views, 1);
	g_rw_lock_init(&vs->lock);
	g_mutex_init(&vs->sizing_lock);
	vs->views = g_ptr_array_new();
	return vs;
}

void cfs_views_free(struct cfs_views *vs)
{
	if (!vs)
		return;
	cfs_views_stop(vs);
	for (guint i = 0; i < vs->views->len; i++) {
		struct cfs_view *v = g_ptr_array_index(vs->views, i);
		v->ops->free(v);
	}
	g_ptr_array_free(vs->views, TRUE);
	g_mutex_clear(&vs->sizing_lock);
	g_rw_lock_clear(&vs->lock);
	g_free(vs);
}

static void sizing_run(gpointer p, gpointer user)
{
	struct sizing_job *job = p;
	struct cfs_views *vs = user;
	GError *err = NULL;
	bool ok = !g_atomic_int_get(&vs->stopping) &&
		  cfs_tree_prepare_file(vs->tree, job->node, &err);
	if (err) {
		cfs_errors_report(job->node->path, 0, 0, -EIO, "%s", err->message);
		g_error_free(err);
	}
	job->sized(job->data, ok);
	g_free(job);
}

void cfs_views_start(struct cfs_views *vs, struct cfs_cache *cache, struct cfs_tree *tree)
{
	vs->cache = cache;
	vs->tree = tree;
	vs->sizing = g_thread_pool_new(sizing_run, vs, SIZING_THREADS, FALSE, NULL);
}

void cfs_views_stop(struct cfs_views *vs)
{
	g_mutex_lock(&vs->sizing_lock);
	GThreadPool *pool = g_steal_pointer(&vs->sizing);
	g_mutex_unlock(&vs->sizing_lock);
	if (!pool)
		return;
	g_atomic_int_set(&vs->stopping, 1);
	g_thread_pool_free(pool, FALSE, TRUE);
}

void views_prepare_file(struct cfs_views *vs, struct cfs_node *node, views_sized_fn sized,
			void *data)
{
	if (cfs_tree_file_sized(node)) {
		sized(data, true);
		return;
	}
	struct sizing_job *job = g_new(struct sizing_job, 1);
	*job = (struct sizing_job){ node, sized, data };
	g_mutex_lock(&vs->sizing_lock);
	bool queued = vs->sizing && g_thread_pool_push(vs->sizing, job, NULL);
	g_mutex_unlock(&vs->sizing_lock);
	if (!queued) {
		g_free(job);
		sized(data, false);
	}
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
