/*
 * The item view of a dataset: .items/NNN, one file per item in dataset
 * order, and .items/NNN.d/ with the item's leaves. An item's bytes are a
 * range of its chunk (or of the chunk's decompressed object), found in the
 * chunk's header, which is read on first use and kept while the view lives;
 * an item's leaf table is read when its NNN.d/ is used, and the last
 * META_CACHE are kept. Every load in flight holds a reference to the view.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cache/mem.h"
#include "formats/chunkhdr.h"
#include "formats/dsindex.h"
#include "util/errors.h"
#include "formats/leaves.h"
#include "tree/object.h"
#include "util/stats.h"
#include "tree/tree.h"
#include "util/times.h"
#include "view_i.h"

/* Chunk headers read ahead of a listing of .items/, past the chunks it shows. */
#define PREFETCH_CHUNKS 8
/* Headers a listing has in flight at once (each may hold a zstd stream's window). */
#define PREFETCH_LOADS 16
/* Leaf tables kept for items whose NNN.d/ was used. */
#define META_CACHE 1024
/* A header is read in slices that always fit the memory tier's smallest cap. */
#define HEADER_SLICE (UINT64_C(1) << 20)
/* A reader in order within this many bytes of its chunk's end gets the next chunk started. */
#define NEAR_END_BYTES (UINT64_C(4) << 20)
#define NEXT_CHUNK_BYTES (UINT64_C(1) << 20)
#define RECENT 8

/* Every leaf of a schema has an inode number (the leaf tables are sized by the schema). */
G_STATIC_ASSERT(CFS_LEAF_MAX <= VINO_MAX_LEAVES);

struct itemview;

enum hstate { H_NONE, H_LOADING, H_READY, H_BAD };

struct ichunk {
	struct itemview *v;
	struct cfs_node *node;            /* the chunk the tree shows, held; NULL when it does not */
	struct cfs_object *src;           /* where its items' bytes are, held; may be NULL */
	const struct cfs_ds_chunk *info;
	uint64_t first;                   /* global index of its first item */
	/* Guarded by v->lock; offsets are immutable once H_READY. */
	enum hstate state;
	uint32_t *offsets;                /* info->items + 1 */
	GSList *waiters;
	bool next_started;
};

enum mstate { M_LOADING, M_READY, M_BAD };

/* The leaf table of one item. */
struct imeta {
	struct itemview *v;
	uint64_t item;
	struct ichunk *chunk;
	uint64_t off, len;                /* the item's bytes in chunk->src */
	int64_t bytes;                    /* counted in the view's bytes while kept */
	guint n;
	struct cfs_leaf *loc;
	struct cfs_leaf_file *files;
	gint pending;                     /* reads not answered yet, plus one while issuing */
	gint read_err;                    /* the first failed read's negative errno */
	/* Guarded by v->lock. */
	enum mstate state;
	int err;
	GSList *waiters;
	GList lru;
};

struct itemview {
	struct cfs_view base;
	GMutex lock;
	struct cfs_ds_index *idx;
	struct ichunk *chunks;
	guint nchunks;
	uint64_t total;                   /* items */
	unsigned width;                   /* digits of an item's name */
	bool leaves;                      /* some chunk's items have leaves */
	/* Guarded by lock. */
	GHashTable *metas;                /* item (uint64_t *) -> struct imeta * */
	GQueue meta_lru;                  /* settled metas, least recently used first */
	uint64_t recent[RECENT];          /* items opened last (+1), to spot readers going in order */
	unsigned recent_at;
	guint loading;                    /* headers being read */
	guint prefetch_at, prefetch_to;   /* chunks a listing wants headers of, not started yet */
	bool pumping;                     /* a thread is starting them */
};

static const struct view_ops item_ops;

static struct itemview *itemview_of(struct cfs_view *v)
{
	return (struct itemview *)v;
}

/* The chunk holding item: the last one whose first item is at most item. */
static struct ichunk *chunk_of(struct itemview *v, uint64_t item)
{
	guint lo = 0, hi = v->nchunks;
	while (hi - lo > 1) {
		guint mid = lo + (hi - lo) / 2;
		if (v->chunks[mid].first <= item)
			lo = mid;
		else
			hi = mid;
	}
	return &v->chunks[lo];
}

static struct cfs_cache *cache_of(struct itemview *v)
{
	return views_cache(v->base.set);
}

/* ---- chunk headers ---- */

struct hread {
	struct ichunk *ch;
	uint8_t *buf;
	uint64_t len, got, asked;
};

static void pump_prefetch(struct itemview *v);

static void header_settle(struct ichunk *ch, uint32_t *offsets, int err, bool bad)
{
	struct itemview *v = ch->v;
	if (offsets)
		views_bytes_add(&v->base,
				(int64_t)((ch->info->items + UINT64_C(1)) * sizeof(*offsets)));
	g_mutex_lock(&v->lock);
	ch->offsets = offsets;
	ch->state = offsets ? H_READY : bad ? H_BAD : H_NONE;
	v->loading--;
	GSList *waiters = g_steal_pointer(&ch->waiters);
	g_mutex_unlock(&v->lock);
	waiters_wake(waiters, offsets ? 0 : err);
	pump_prefetch(v);
	cfs_view_unref(&v->base); /* the load's */
}

static void header_parse(struct hread *h)
{
	struct ichunk *ch = h->ch;
	GError *err = NULL;
	uint32_t *offsets = cfs_chunk_header_parse(h->buf, h->got, ch->info->items, ch->src->size,
						   &err);
	if (!offsets) {
		cfs_errors_report(ch->src->name, 0, h->len, -EIO,
				  "bad chunk header: %s; its items give EIO", err->message);
		g_error_free(err);
	}
	header_settle(ch, offsets, -EIO, offsets == NULL);
}

static void header_next(struct hread *h);

static void header_read(void *cookie, const struct iovec *iov, int iovcnt, size_t len, int err)
{
	struct hread *h = cookie;
	if (err) {
		header_settle(h->ch, NULL, err, false);
	} else {
		gather_into(h->buf + h->got, iov, iovcnt, len);
		h->got += len;
		if (len == h->asked && h->got < h->len) {
			header_next(h);
			return;
		}
		header_parse(h);
	}
	g_free(h->buf);
	g_free(h);
}

static void header_next(struct hread *h)
{
	h->asked = MIN(HEADER_SLICE, h->len - h->got);
	cfs_cache_read(cache_of(h->ch->v), h->ch->src, h->got, h->asked, NULL, header_read, h);
}

/* Read ch's header once its source has a size (that of its compressed object). */
static void header_sized(void *data, bool sized)
{
	struct ichunk *ch = data;
	GError *err = NULL;
	if (!sized) {
		header_settle(ch, NULL, -EIO, false);
		return;
	}
	if (!cfs_chunk_header_fits(ch->info->items, ch->src->size, &err)) {
		cfs_errors_report(ch->src->name, 0, 0, -EIO,
				  "bad chunk header: %s; its items give EIO", err->message);
		g_error_free(err);
		header_settle(ch, NULL, -EIO, true);
		return;
	}
	struct hread *h = g_new0(struct hread, 1);
	h->ch = ch;
	h->len = cfs_chunk_header_bytes(ch->info->items);
	h->buf = g_malloc(h->len);
	cfs_stats_add(CFS_CHUNK_HEADERS, 1);
	header_next(h);
}

static void header_start(struct ichunk *ch)
{
	views_prepare_file(ch->v->base.set, ch->node, header_sized, ch);
}

/* 0 when ch's header is ready; else -EAGAIN (w will be called, the read started) or -EIO. */
static int need_header(struct ichunk *ch, const struct cfs_wait *w)
{
	struct itemview *v = ch->v;
	if (!ch->src)
		return -EIO;
	g_mutex_lock(&v->lock);
	int rc = ch->state == H_READY ? 0 : ch->state == H_BAD ? -EIO : -EAGAIN;
	bool start = ch->state == H_NONE;
	if (rc == -EAGAIN)
		waiters_add(&ch->waiters, w);
	if (start) {
		ch->state = H_LOADING;
		v->loading++;
		cfs_view_ref(&v->base); /* the load's, until header_settle() */
	}
	g_mutex_unlock(&v->lock);
	if (start)
		header_start(ch);
	return rc;
}

/*
 * Start the headers a listing asked for, at most PREFETCH_LOADS at a time;
 * every settled header calls again. One thread pumps at a time and loops,
 * so that headers answered at once from memory do not recurse.
 */
static void pump_prefetch(struct itemview *v)
{
	g_mutex_lock(&v->lock);
	if (v->pumping) {
		g_mutex_unlock(&v->lock);
		return;
	}
	v->pumping = true;
	for (;;) {
		struct ichunk *ch = NULL;
		while (!ch && v->loading < PREFETCH_LOADS && v->prefetch_at < v->prefetch_to) {
			struct ichunk *c = &v->chunks[v->prefetch_at++];
			if (c->state == H_NONE && c->src)
				ch = c;
		}
		if (!ch)
			break;
		g_mutex_unlock(&v->lock);
		need_header(ch, NULL);
		g_mutex_lock(&v->lock);
	}
	v->pumping = false;
	g_mutex_unlock(&v->lock);
}

/* The bytes of item in its chunk; the chunk's header must be ready. */
static void item_range(struct ichunk *ch, uint64_t item, uint64_t *off, uint64_t *len)
{
	uint64_t i = item - ch->first;
	*off = ch->offsets[i];
	*len = ch->offsets[i + 1] - ch->offsets[i];
}

/* ---- leaf tables ---- */

static void meta_free(struct imeta *m)
{
	for (guint i = 0; m->files && i < m->n; i++)
		if (m->files[i].prefix)
			g_bytes_unref(m->files[i].prefix);
	g_free(m->files);
	g_free(m->loc);
	g_free(m);
}

/* Drop settled metas beyond the limit; returns them to free outside the lock. */
static GSList *meta_trim(struct itemview *v)
{
	GSList *gone = NULL;
	while (v->meta_lru.length > META_CACHE) {
		struct imeta *m = g_queue_pop_head_link(&v->meta_lru)->data;
		g_hash_table_remove(v->metas, &m->item);
		views_bytes_add(&v->base, -m->bytes);
		gone = g_slist_prepend(gone, m);
	}
	return gone;
}

/* Bytes a kept leaf table holds: the table, its leaves' descriptions and .npy headers. */
static int64_t meta_bytes(const struct imeta *m)
{
	uint64_t bytes = sizeof(*m) + m->n * (sizeof(*m->loc) + sizeof(*m->files));
	for (guint i = 0; m->files && i < m->n; i++)
		bytes += m->files[i].prefix ? g_bytes_get_size(m->files[i].prefix) : 0;
	return (int64_t)bytes;
}

/*
 * Settle m: ready (err 0), bad for good (bad), or failed for now, in
 * which case it is forgotten so that the next use reads it again.
 */
static void meta_settle(struct imeta *m, int err, bool bad)
{
	struct itemview *v = m->v;
	bool forget = err && !bad;
	if (!forget) {
		m->bytes = meta_bytes(m);
		views_bytes_add(&v->base, m->bytes);
	}
	g_mutex_lock(&v->lock);
	m->state = err ? M_BAD : M_READY;
	m->err = err;
	GSList *waiters = g_steal_pointer(&m->waiters);
	if (forget)
		g_hash_table_remove(v->metas, &m->item);
	else
		g_queue_push_tail_link(&v->meta_lru, &m->lru);
	GSList *gone = meta_trim(v);
	g_mutex_unlock(&v->lock);
	waiters_wake(waiters, err);
	if (forget)
		meta_free(m);
	g_slist_free_full(gone, (GDestroyNotify)meta_free);
	cfs_view_unref(&v->base); /* the load's */
}

static void meta_done_one(struct imeta *m)
{
	if (g_atomic_int_dec_and_test(&m->pending))
		meta_settle(m, g_atomic_int_get(&m->read_err), false);
}

struct probe {
	struct imeta *m;
	guint leaf;
};

static void probe_read(void *cookie, const struct iovec *iov, int iovcnt, size_t len, int err)
{
	struct probe *p = cookie;
	struct imeta *m = p->m;
	const struct cfs_leaf_schema *s = m->chunk->info->schema;
	if (err) {
		g_atomic_int_compare_and_exchange(&m->read_err, 0, err);
	} else {
		uint8_t *probe = gather(iov, iovcnt, len);
		cfs_leaf_describe(s, p->leaf, probe, len, m->loc[p->leaf].len, &m->files[p->leaf]);
		g_free(probe);
	}
	g_free(p);
	meta_done_one(m);
}

/* Describe every leaf, reading the first bytes of those that carry their own header. */
static void meta_describe(struct imeta *m)
{
	const struct cfs_leaf_schema *s = m->chunk->info->schema;
	m->files = g_new0(struct cfs_leaf_file, m->n);
	g_atomic_int_set(&m->pending, 1);
	for (guint i = 0; i < m->n; i++) {
		size_t need = cfs_leaf_probe_bytes(s, i, m->loc[i].len);
		if (!need) {
			cfs_leaf_describe(s, i, NULL, 0, m->loc[i].len, &m->files[i]);
			continue;
		}
		struct probe *p = g_new(struct probe, 1);
		*p = (struct probe){ m, i };
		g_atomic_int_inc(&m->pending);
		cfs_cache_read(cache_of(m->v), m->chunk->src, m->off + m->loc[i].off, need, NULL,
			       probe_read, p);
	}
	meta_done_one(m);
}

static void table_read(void *cookie, const struct iovec *iov, int iovcnt, size_t len, int err)
{
	struct imeta *m = cookie;
	if (err) {
		meta_settle(m, err, false);
		return;
	}
	uint8_t *head = gather(iov, iovcnt, len);
	GError *gerr = NULL;
	m->loc = g_new0(struct cfs_leaf, m->n);
	bool ok = cfs_leaves_locate(m->chunk->info->schema, head, len, m->len, m->loc, &gerr);
	g_free(head);
	if (ok) {
		meta_describe(m);
		return;
	}
	cfs_errors_report(m->chunk->src->name, m->off, m->len, -EIO,
			  "item %" PRIu64 ": %s; its leaves give EIO", m->item, gerr->message);
	g_error_free(gerr);
	meta_settle(m, -EIO, true);
}

static void meta_header_ready(void *cookie, int err)
{
	struct imeta *m = cookie;
	if (err) {
		meta_settle(m, err, false);
		return;
	}
	const struct cfs_leaf_schema *s = m->chunk->info->schema;
	item_range(m->chunk, m->item, &m->off, &m->len);
	m->n = cfs_leaf_count(s);
	uint64_t table = MIN(cfs_leaf_table_bytes(s), m->len);
	cfs_cache_read(cache_of(m->v), m->chunk->src, m->off, table, NULL, table_read, m);
}

static void meta_start(struct imeta *m)
{
	struct cfs_wait w = { meta_header_ready, m };
	int rc = need_header(m->chunk, &w);
	if (rc != -EAGAIN)
		meta_header_ready(m, rc);
}

typedef void (*meta_use_fn)(const struct imeta *m, void *ctx);

/*
 * Call use(m, ctx) under the view's lock with the ready leaf table of item
 * (use copies what it needs). Returns 0, -EAGAIN (w will be called) or the
 * table's error.
 */
static int with_meta(struct itemview *v, uint64_t item, const struct cfs_wait *w, meta_use_fn use,
		     void *ctx)
{
	struct ichunk *ch = chunk_of(v, item);
	if (!ch->info->schema)
		return -ENOENT;
	g_mutex_lock(&v->lock);
	struct imeta *m = g_hash_table_lookup(v->metas, &item);
	bool start = !m;
	if (start) {
		m = g_new0(struct imeta, 1);
		*m = (struct imeta){ .v = v, .item = item, .chunk = ch, .state = M_LOADING };
		m->lru.data = m;
		g_hash_table_insert(v->metas, &m->item, m);
		cfs_view_ref(&v->base); /* the load's, until meta_settle() */
	} else if (m->state != M_LOADING) {
		g_queue_unlink(&v->meta_lru, &m->lru);
		g_queue_push_tail_link(&v->meta_lru, &m->lru);
	}
	int rc = m->state == M_READY ? 0 : m->state == M_BAD ? m->err : -EAGAIN;
	if (rc == 0)
		use(m, ctx);
	else if (rc == -EAGAIN)
		waiters_add(&m->waiters, w);
	g_mutex_unlock(&v->lock);
	if (start)
		meta_start(m);
	return rc;
}

/* ---- names ---- */

/* The item a name denotes: NNN (width digits) or, with leaves, NNN.d. */
static bool parse_item(const struct itemview *v, const char *name, uint64_t *item, bool *dir)
{
	size_t len = strlen(name);
	*dir = v->leaves && len == v->width + 2 && g_str_has_suffix(name, ".d");
	if (len != v->width + (*dir ? 2 : 0))
		return false;
	uint64_t x = 0;
	for (unsigned i = 0; i < v->width; i++) {
		if (!g_ascii_isdigit(name[i]))
			return false;
		x = x * 10 + (uint64_t)(name[i] - '0');
	}
	*item = x;
	return x < v->total;
}

static void item_name(const struct itemview *v, uint64_t item, bool dir, char *buf, size_t size)
{
	snprintf(buf, size, "%0*" PRIu64 "%s", (int)v->width, item, dir ? ".d" : "");
}

/*
 * "<stem>.<ext>": the leaf of s with that stem (its key or position), or -1. Extensions have
 * no '.', so the ext is what follows the last one.
 */
static int parse_leaf(const struct cfs_leaf_schema *s, const char *name, const char **ext)
{
	const char *dot = strrchr(name, '.');
	if (!dot || dot == name || dot - name > CFS_LEAF_STEM_MAX)
		return -1;
	char stem[CFS_LEAF_STEM_MAX + 1];
	memcpy(stem, name, (size_t)(dot - name));
	stem[dot - name] = '\0';
	*ext = dot + 1;
	return cfs_leaf_find(s, stem);
}

/* ---- operations ---- */

/* An item, its NNN.d/ and its leaves were last modified with their chunk. */
static int64_t chunk_mtime(const struct ichunk *ch)
{
	return ch->src ? cfs_object_mtime(ch->src) : CFS_TIME_UNKNOWN;
}

static int item_entry(struct itemview *v, uint64_t item, bool dir, struct cfs_ventry *out,
		      const struct cfs_wait *w)
{
	struct ichunk *ch = chunk_of(v, item);
	if (dir) {
		if (!ch->info->schema)
			return -ENOENT;
		*out = (struct cfs_ventry){ .ino = vino_make(VK_ITEM_DIR, v->base.id,
							     (uint32_t)item, 0),
					    .dir = true,
					    .mtime_us = chunk_mtime(ch) };
		return 0;
	}
	int rc = need_header(ch, w);
	if (rc)
		return rc;
	uint64_t off, len;
	item_range(ch, item, &off, &len);
	*out = (struct cfs_ventry){ .ino = vino_make(VK_ITEM, v->base.id, (uint32_t)item, 0),
				    .size = len,
				    .mtime_us = chunk_mtime(ch) };
	return 0;
}

struct leaf_query {
	unsigned leaf;
	const char *ext;          /* lookup: the extension asked for; NULL to skip the check */
	struct cfs_ventry *entry;
	struct cfs_vfile *file;
	int rc;
};

static void leaf_use(const struct imeta *m, void *ctx)
{
	struct leaf_query *q = ctx;
	if (q->leaf >= m->n || (q->ext && strcmp(q->ext, m->files[q->leaf].ext) != 0)) {
		q->rc = -ENOENT;
		return;
	}
	const struct cfs_leaf_file *f = &m->files[q->leaf];
	uint64_t head = f->prefix ? g_bytes_get_size(f->prefix) : 0;
	if (q->entry)
		*q->entry = (struct cfs_ventry){ .ino = vino_make(VK_LEAF, m->v->base.id,
								  (uint32_t)m->item, q->leaf),
						 .size = head + f->len,
						 .mtime_us = chunk_mtime(m->chunk) };
	if (q->file)
		*q->file = (struct cfs_vfile){ .head = f->prefix ? g_bytes_ref(f->prefix) : NULL,
					       .obj = m->chunk->src,
					       .off = m->off + m->loc[q->leaf].off + f->off,
					       .len = f->len };
}

static int leaf_query(struct itemview *v, uint64_t item, struct leaf_query *q,
		      const struct cfs_wait *w)
{
	int rc = with_meta(v, item, w, leaf_use, q);
	return rc ? rc : q->rc;
}

static int item_lookup(struct cfs_view *view, uint64_t dir, const char *name,
		       struct cfs_ventry *out, const struct cfs_wait *w)
{
	struct itemview *v = itemview_of(view);
	if (dir == view->root_ino) {
		uint64_t item;
		bool is_dir;
		if (!parse_item(v, name, &item, &is_dir))
			return -ENOENT;
		return item_entry(v, item, is_dir, out, w);
	}
	if (vino_kind(dir) != VK_ITEM_DIR)
		return -ENOTDIR;
	const struct cfs_leaf_schema *s = chunk_of(v, vino_index(dir))->info->schema;
	struct leaf_query q = { .entry = out };
	int leaf = s ? parse_leaf(s, name, &q.ext) : -1;
	if (leaf < 0)
		return -ENOENT;
	q.leaf = (unsigned)leaf;
	return leaf_query(v, vino_index(dir), &q, w);
}

static int item_getattr(struct cfs_view *view, uint64_t ino, struct cfs_ventry *out,
			const struct cfs_wait *w)
{
	struct itemview *v = itemview_of(view);
	uint64_t item = vino_index(ino);
	if (item >= v->total)
		return -ENOENT;
	switch (vino_kind(ino)) {
	case VK_ITEM:
		return item_entry(v, item, false, out, w);
	case VK_ITEM_DIR:
		return item_entry(v, item, true, out, w);
	case VK_LEAF: {
		struct leaf_query q = { .leaf = vino_leaf(ino), .entry = out };
		return leaf_query(v, item, &q, w);
	}
	case VK_MEMBER:
		break;
	}
	return -ENOENT;
}

/* Read the headers of the chunks a listing reached, and of a few after them. */
static void prefetch_headers(struct itemview *v, uint64_t first_item, uint64_t last_item)
{
	guint from = (guint)(chunk_of(v, first_item) - v->chunks);
	guint to = (guint)(chunk_of(v, last_item) - v->chunks) + 1 + PREFETCH_CHUNKS;
	g_mutex_lock(&v->lock);
	v->prefetch_at = MIN(v->prefetch_at, from);
	v->prefetch_to = MIN(MAX(v->prefetch_to, to), v->nchunks);
	g_mutex_unlock(&v->lock);
	pump_prefetch(v);
}

static int readdir_items(struct itemview *v, uint64_t off, cfs_dirent_fn add, void *ctx)
{
	if (!emit_dots(&off, v->base.root_ino, v->base.parent_ino, add, ctx))
		return 0;
	unsigned per = v->leaves ? 2 : 1;
	uint64_t first = (off - 2) / per, item = first;
	for (; off - 2 < v->total * per; off++) {
		item = (off - 2) / per;
		bool dir = (off - 2) % per == 1;
		if (dir && !chunk_of(v, item)->info->schema)
			continue;
		char name[32];
		item_name(v, item, dir, name, sizeof(name));
		uint64_t ino = vino_make(dir ? VK_ITEM_DIR : VK_ITEM, v->base.id, (uint32_t)item, 0);
		if (!add(ctx, name, ino, dir, off + 1))
			break;
	}
	if (first < v->total)
		prefetch_headers(v, first, MIN(item, v->total - 1));
	return 0;
}

struct leaf_list {
	uint64_t off, self, parent;
	cfs_dirent_fn add;
	void *ctx;
};

static void leaf_list_use(const struct imeta *m, void *ctx)
{
	struct leaf_list *l = ctx;
	if (!emit_dots(&l->off, l->self, l->parent, l->add, l->ctx))
		return;
	for (uint64_t i = l->off - 2; i < m->n; i++) {
		char name[CFS_LEAF_STEM_MAX + 1 + CFS_LEAF_EXT_MAX + 1];
		snprintf(name, sizeof(name), "%s.%s",
			 cfs_leaf_stem(m->chunk->info->schema, (guint)i), m->files[i].ext);
		uint64_t ino = vino_make(VK_LEAF, m->v->base.id, (uint32_t)m->item, (unsigned)i);
		if (!l->add(l->ctx, name, ino, false, i + 3))
			break;
	}
}

static int item_readdir(struct cfs_view *view, uint64_t dir, uint64_t off, cfs_dirent_fn add,
			void *ctx, const struct cfs_wait *w)
{
	struct itemview *v = itemview_of(view);
	if (dir == view->root_ino)
		return readdir_items(v, off, add, ctx);
	if (vino_kind(dir) != VK_ITEM_DIR)
		return -ENOTDIR;
	struct leaf_list l = { off, dir, view->root_ino, add, ctx };
	return with_meta(v, vino_index(dir), w, leaf_list_use, &l);
}

/*
 * A reader taking items in order that nears the end of a chunk gets the
 * next chunk's header and first bytes on their way.
 */
static void note_open(struct itemview *v, struct ichunk *ch, uint64_t item)
{
	struct ichunk *next = ch + 1 < v->chunks + v->nchunks ? ch + 1 : NULL;
	uint64_t left = ch->offsets[ch->info->items] - ch->offsets[item - ch->first + 1];
	g_mutex_lock(&v->lock);
	bool in_order = false;
	for (unsigned i = 0; i < RECENT; i++)
		in_order |= v->recent[i] == item;
	v->recent[v->recent_at++ % RECENT] = item + 1;
	bool go = in_order && left <= NEAR_END_BYTES && next && next->src && !ch->next_started;
	if (go)
		ch->next_started = true;
	g_mutex_unlock(&v->lock);
	/* The header is asked for first: a chunk whose header cannot fit is bad at once. */
	if (go && need_header(next, NULL) != -EIO &&
	    cfs_chunk_header_fits(next->info->items, next->src->size, NULL))
		cfs_cache_prefetch(cache_of(v), next->src, 0,
				   cfs_chunk_header_bytes(next->info->items) + NEXT_CHUNK_BYTES);
}

static int item_open(struct cfs_view *view, uint64_t ino, enum cfs_open_mode mode,
		     struct cfs_vfile *out, const struct cfs_wait *w)
{
	struct itemview *v = itemview_of(view);
	uint64_t item = vino_index(ino);
	if (item >= v->total)
		return -ENOENT;
	if (vino_kind(ino) == VK_LEAF) {
		struct leaf_query q = { .leaf = vino_leaf(ino), .file = out };
		return leaf_query(v, item, &q, w);
	}
	if (vino_kind(ino) != VK_ITEM)
		return -EISDIR;
	struct ichunk *ch = chunk_of(v, item);
	int rc = need_header(ch, w);
	if (rc)
		return rc;
	*out = (struct cfs_vfile){ .obj = ch->src };
	item_range(ch, item, &out->off, &out->len);
	if (mode == CFS_OPEN_READ)
		note_open(v, ch, item);
	return 0;
}

static void item_free(struct cfs_view *view)
{
	struct itemview *v = itemview_of(view);
	for (guint i = 0; i < v->nchunks; i++) {
		g_free(v->chunks[i].offsets);
		cfs_node_put(v->chunks[i].node, 1);
		if (v->chunks[i].src)
			cfs_object_unref(v->chunks[i].src);
	}
	g_free(v->chunks);
	GHashTableIter it;
	gpointer m;
	g_hash_table_iter_init(&it, v->metas);
	while (g_hash_table_iter_next(&it, NULL, &m))
		meta_free(m);
	g_hash_table_destroy(v->metas);
	cfs_ds_index_free(v->idx);
	g_mutex_clear(&v->lock);
	g_free(v);
}

static const struct view_ops item_ops = {
	.lookup = item_lookup,
	.getattr = item_getattr,
	.readdir = item_readdir,
	.open = item_open,
	.free = item_free,
};

static unsigned digits(uint64_t n)
{
	unsigned d = 1;
	while (n >= 10) {
		n /= 10;
		d++;
	}
	return d;
}

/* Say once which chunks' items show no leaves, because the index does not describe them. */
static void report_bare(const struct itemview *v)
{
	const struct ichunk *first = NULL;
	guint bare = 0;
	for (guint i = 0; i < v->nchunks; i++) {
		if (v->chunks[i].info->schema || !v->chunks[i].info->items)
			continue;
		first = first ? first : &v->chunks[i];
		bare++;
	}
	if (bare)
		g_message("%s%s: the index does not say how its items split into leaves (no "
			  "data_format or column sizes, or more than %u leaves); its items show "
			  "without NNN.d/",
			  first->node ? first->node->object->name : first->info->name,
			  bare > 1 ? " and other chunks" : "", CFS_LEAF_MAX);
}

/*
 * Bytes of the view's own tables and of its parsed index: the chunk
 * tables, names and the decompressed view's index (the leaf schemas, a
 * few hundred bytes each, are left out).
 */
static int64_t index_bytes(const struct itemview *v)
{
	uint64_t bytes = sizeof(*v) +
			 v->nchunks * (sizeof(struct ichunk) + sizeof(struct cfs_ds_chunk));
	for (guint i = 0; i < v->nchunks; i++) {
		const struct cfs_ds_chunk *c = v->chunks[i].info;
		bytes += strlen(c->name) + 1 + (c->plain_name ? strlen(c->plain_name) + 1 : 0);
	}
	if (v->idx->plain_index)
		bytes += g_bytes_get_size(v->idx->plain_index);
	return (int64_t)bytes;
}

/* Lay the chunks out in dataset order; false when there is no item at all. */
static bool place_chunks(struct itemview *v, struct cfs_node *const *nodes,
			 struct cfs_object *const *sources)
{
	v->nchunks = v->idx->chunks->len;
	v->chunks = g_new0(struct ichunk, MAX(v->nchunks, 1));
	for (guint i = 0; i < v->nchunks; i++) {
		struct ichunk *ch = &v->chunks[i];
		ch->v = v;
		/* Held: a relisting that drops the chunk leaves it to the view. */
		ch->node = nodes[i] ? cfs_node_ref(nodes[i]) : NULL;
		ch->src = sources[i] ? cfs_object_ref(sources[i]) : NULL;
		ch->info = &g_array_index(v->idx->chunks, struct cfs_ds_chunk, i);
		ch->first = v->total;
		v->total += ch->info->items;
		v->leaves |= ch->info->schema != NULL;
	}
	if (v->total > (uint64_t)VINO_MAX_INDEX + 1) {
		g_warning("a dataset of %" PRIu64 " items: .items shows the first %" PRIu64,
			  v->total, (uint64_t)VINO_MAX_INDEX + 1);
		v->total = (uint64_t)VINO_MAX_INDEX + 1;
	}
	v->width = v->total ? digits(v->total - 1) : 1;
	report_bare(v);
	return v->total > 0;
}

struct cfs_view *cfs_views_add_items(struct cfs_views *vs, struct cfs_ds_index *idx,
				     struct cfs_node *const *chunks,
				     struct cfs_object *const *sources, uint64_t parent_ino)
{
	struct itemview *v = g_new0(struct itemview, 1);
	g_mutex_init(&v->lock);
	v->idx = idx;
	v->metas = g_hash_table_new(g_int64_hash, g_int64_equal);
	if (!place_chunks(v, chunks, sources) || !views_register(vs, &v->base, &item_ops,
								 parent_ino)) {
		item_free(&v->base);
		return NULL;
	}
	views_bytes_add(&v->base, index_bytes(v));
	return &v->base;
}
