/* The set of views of a mount, dispatch of operations, and helpers every view uses. */
#include "views/view.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "util/errors.h"
#include "util/stats.h"
#include "tree/tree.h"
#include "util/times.h"
#include "view_i.h"

/* HEADs at a time for views: each holds its thread up to the deadline of cfs_fetch_head(). */
#define SIZING_THREADS 4

struct cfs_views {
	GRWLock lock;     /* guards views and free_ids */
	GPtrArray *views; /* struct cfs_view *, by id; NULL for an id no live view has */
	GArray *free_ids; /* uint32_t: ids below views->len that no live view has */
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
	vs->free_ids = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	return vs;
}

/* Free v, which nothing holds any more and vs no longer shows. */
static void view_free(struct cfs_view *v)
{
	cfs_stats_gauge_add(CFS_VIEWS, -1);
	cfs_stats_gauge_add(CFS_VIEW_BYTES, -__atomic_load_n(&v->bytes, __ATOMIC_RELAXED));
	v->ops->free(v);
}

void cfs_views_free(struct cfs_views *vs)
{
	if (!vs)
		return;
	cfs_views_stop(vs);
	for (guint i = 0; i < vs->views->len; i++) {
		struct cfs_view *v = g_ptr_array_index(vs->views, i);
		if (v)
			view_free(v);
	}
	g_ptr_array_free(vs->views, TRUE);
	g_array_free(vs->free_ids, TRUE);
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

/* An id no live view has, taken for v; false when none is left. Under the write lock. */
static bool take_id_locked(struct cfs_views *vs, struct cfs_view *v)
{
	if (vs->free_ids->len) {
		v->id = g_array_index(vs->free_ids, uint32_t, vs->free_ids->len - 1);
		g_array_set_size(vs->free_ids, vs->free_ids->len - 1);
		g_ptr_array_index(vs->views, v->id) = v;
		return true;
	}
	if (vs->views->len >= VINO_MAX_VIEWS)
		return false;
	v->id = vs->views->len;
	g_ptr_array_add(vs->views, v);
	return true;
}

bool views_register(struct cfs_views *vs, struct cfs_view *v, const struct view_ops *ops,
		    uint64_t parent_ino)
{
	v->ops = ops;
	v->set = vs;
	v->parent_ino = parent_ino;
	v->refs = 1;
	g_rw_lock_writer_lock(&vs->lock);
	bool ok = take_id_locked(vs, v);
	g_rw_lock_writer_unlock(&vs->lock);
	if (!ok)
		g_warning("%u item and tar views are shown: not showing another", VINO_MAX_VIEWS);
	else
		cfs_stats_gauge_add(CFS_VIEWS, 1);
	return ok;
}

void views_bytes_add(struct cfs_view *v, int64_t delta)
{
	__atomic_add_fetch(&v->bytes, delta, __ATOMIC_RELAXED);
	cfs_stats_gauge_add(CFS_VIEW_BYTES, delta);
}

struct cfs_view *cfs_view_ref(struct cfs_view *view)
{
	__atomic_add_fetch(&view->refs, 1, __ATOMIC_RELAXED);
	return view;
}

/*
 * Drop count references to v. Perhaps the last under the write lock, so
 * that no thread finds v by its id (cfs_views_get() takes its reference
 * under the read lock) while it goes; the id is free from then on.
 */
static void view_put(struct cfs_view *v, uint64_t count)
{
	uint64_t refs = __atomic_load_n(&v->refs, __ATOMIC_RELAXED);
	while (refs > count)
		if (__atomic_compare_exchange_n(&v->refs, &refs, refs - count, true,
						__ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			return;
	struct cfs_views *vs = v->set;
	g_rw_lock_writer_lock(&vs->lock);
	bool last = __atomic_sub_fetch(&v->refs, count, __ATOMIC_ACQ_REL) == 0;
	if (last) {
		g_ptr_array_index(vs->views, v->id) = NULL;
		g_array_append_val(vs->free_ids, v->id);
	}
	g_rw_lock_writer_unlock(&vs->lock);
	if (last)
		view_free(v);
}

void cfs_view_unref(struct cfs_view *view)
{
	if (view)
		view_put(view, 1);
}

void cfs_view_looked_up(struct cfs_view *view)
{
	cfs_view_ref(view);
	__atomic_add_fetch(&view->lookups, 1, __ATOMIC_RELAXED);
}

/* Take up to n of v's kernel lookups away; returns how many were taken. */
static uint64_t claim_lookups(struct cfs_view *v, uint64_t n)
{
	uint64_t have = __atomic_load_n(&v->lookups, __ATOMIC_RELAXED);
	while (!__atomic_compare_exchange_n(&v->lookups, &have, have - MIN(n, have), true,
					    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		;
	return MIN(n, have);
}

/* The live view of id, under the lock; NULL when none has it. */
static struct cfs_view *view_by_id_locked(struct cfs_views *vs, uint32_t id)
{
	return id < vs->views->len ? g_ptr_array_index(vs->views, id) : NULL;
}

void cfs_views_forget(struct cfs_views *vs, uint64_t ino, uint64_t nlookup)
{
	g_rw_lock_reader_lock(&vs->lock);
	struct cfs_view *v = view_by_id_locked(vs, vino_view(ino));
	/* The claimed lookups are references: v stays until they are dropped. */
	uint64_t forgotten = v ? claim_lookups(v, nlookup) : 0;
	g_rw_lock_reader_unlock(&vs->lock);
	if (forgotten)
		view_put(v, forgotten);
}

void cfs_view_set_root(struct cfs_view *view, uint64_t root_ino)
{
	view->root_ino = root_ino;
}

struct cfs_view *cfs_views_get(struct cfs_views *vs, uint64_t ino)
{
	if (!cfs_ino_is_virtual(ino))
		return NULL;
	g_rw_lock_reader_lock(&vs->lock);
	struct cfs_view *v = view_by_id_locked(vs, vino_view(ino));
	if (v)
		cfs_view_ref(v);
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
		*out = (struct cfs_ventry){ .ino = ino, .dir = true, .mtime_us = CFS_TIME_UNKNOWN };
		return 0;
	}
	return view->ops->getattr(view, ino, out, w);
}

int cfs_view_readdir(struct cfs_view *view, uint64_t dir, uint64_t off, cfs_dirent_fn add,
		     void *ctx, const struct cfs_wait *w)
{
	return view->ops->readdir(view, dir, off, add, ctx, w);
}

int cfs_view_open(struct cfs_view *view, uint64_t ino, enum cfs_open_mode mode,
		  struct cfs_vfile *out, const struct cfs_wait *w)
{
	if (ino == view->root_ino)
		return -EISDIR;
	return view->ops->open(view, ino, mode, out, w);
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
