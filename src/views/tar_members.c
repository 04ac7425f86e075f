/*
 * The tar view of an archive: NAME.tar.d/ with the archive's members as
 * files and its directories as directories. The member index is built on
 * first use by one pass over the archive's headers through the memory tier
 * (windows of 1 MiB, so small members' headers come many to a request and
 * large members are jumped over), and kept while the view lives; the scan
 * holds a reference to the view.
 */
#include <errno.h>
#include <string.h>

#include "cache/mem.h"
#include "util/errors.h"
#include "tree/object.h"
#include "formats/tar.h"
#include "tree/tree.h"
#include "util/times.h"
#include "view_i.h"

#define WINDOW (UINT64_C(1) << 20)
#define NO_ENTRY UINT32_MAX

struct tentry {
	char *name;
	uint32_t parent;
	bool dir;
	uint64_t off, size;     /* files: the data in the archive */
	int64_t mtime_us;       /* the member's own (its header's), or CFS_TIME_UNKNOWN for a
				   directory no member names */
	GArray *children;       /* dirs: uint32_t entry indexes, in archive order */
	GHashTable *by_name;    /* dirs: name -> GUINT_TO_POINTER(index + 1) */
};

enum tstate { T_NONE, T_SCANNING, T_READY };

struct tarview {
	struct cfs_view base;
	struct cfs_node *node;  /* the archive */
	GMutex lock;
	/* Guarded by lock. */
	enum tstate state;
	GSList *waiters;
	bool issuing, answered; /* a window's answer came while it was being asked for */
	/* The scan's own while T_SCANNING; entries are immutable once T_READY. */
	GArray *entries;        /* struct tentry; entry 0 is the root */
	int64_t entry_bytes;    /* of entries, counted in the view's bytes */
	struct cfs_tar_scan *scan;
	GPtrArray *found;
	uint64_t asked_pos, asked_len;
	bool over;
	int err;                /* a window that could not be read */
	unsigned skipped;
};

static const struct view_ops tar_ops;

static struct tarview *tarview_of(struct cfs_view *v)
{
	return (struct tarview *)v;
}

static struct tentry *entry(struct tarview *v, uint32_t i)
{
	return &g_array_index(v->entries, struct tentry, i);
}

static uint64_t entry_ino(struct tarview *v, uint32_t i)
{
	return i == 0 ? v->base.root_ino : vino_make(VK_MEMBER, v->base.id, i, 0);
}

static void entry_clear(gpointer p)
{
	struct tentry *e = p;
	g_free(e->name);
	if (e->children)
		g_array_free(e->children, TRUE);
	if (e->by_name)
		g_hash_table_destroy(e->by_name);
}

/*
 * Bytes an entry holds: itself, its name, its place among its parent's
 * children (an index and a hash table slot), a directory's tables.
 */
static int64_t entry_bytes(const char *name, bool dir)
{
	size_t slot = sizeof(uint32_t) + 3 * sizeof(gpointer);
	return (int64_t)(sizeof(struct tentry) + strlen(name) + 1 + slot +
			 (dir ? sizeof(GArray) + sizeof(gpointer) * 8 : 0));
}

static uint32_t entry_add(struct tarview *v, uint32_t parent, const char *name, bool dir)
{
	int64_t bytes = entry_bytes(name, dir);
	v->entry_bytes += bytes;
	views_bytes_add(&v->base, bytes);
	struct tentry e = {
		.name = g_strdup(name), .parent = parent, .dir = dir, .mtime_us = CFS_TIME_UNKNOWN
	};
	if (dir) {
		e.children = g_array_new(FALSE, FALSE, sizeof(uint32_t));
		e.by_name = g_hash_table_new(g_str_hash, g_str_equal);
	}
	uint32_t i = v->entries->len;
	g_array_append_val(v->entries, e);
	if (i > 0) {
		struct tentry *p = entry(v, parent);
		g_array_append_val(p->children, i);
		g_hash_table_insert(p->by_name, entry(v, i)->name, GUINT_TO_POINTER(i + 1));
	}
	return i;
}

static uint32_t child_of(struct tarview *v, uint32_t dir, const char *name)
{
	gpointer p = g_hash_table_lookup(entry(v, dir)->by_name, name);
	return p ? GPOINTER_TO_UINT(p) - 1 : NO_ENTRY;
}

static void reset_entries(struct tarview *v)
{
	if (v->entries)
		g_array_free(v->entries, TRUE);
	views_bytes_add(&v->base, -v->entry_bytes);
	v->entry_bytes = 0;
	v->entries = g_array_new(FALSE, TRUE, sizeof(struct tentry));
	g_array_set_clear_func(v->entries, entry_clear);
	entry_add(v, 0, "", true);
}

/*
 * Place one path segment under dir: the member m itself when its path ends
 * there, else (m NULL) a directory on its path. NO_ENTRY when it clashes
 * with what is there.
 */
static uint32_t place(struct tarview *v, uint32_t dir, const char *name, bool as_dir,
		      const struct cfs_tar_member *m)
{
	uint32_t i = child_of(v, dir, name);
	if (i == NO_ENTRY)
		i = entry_add(v, dir, name, as_dir);
	else if (entry(v, i)->dir != as_dir)
		return NO_ENTRY;
	if (m && !as_dir) { /* a later member of the same name replaces it, as tar -x does */
		entry(v, i)->off = m->offset;
		entry(v, i)->size = m->size;
	}
	if (m)
		entry(v, i)->mtime_us = m->mtime_us;
	return i;
}

/* Add a member (a regular file or a directory) under its path's directories. */
static void add_member(struct tarview *v, const struct cfs_tar_member *m)
{
	bool dir = m->type == '5';
	if (m->type != '0' && !dir) {
		v->skipped++;
		return;
	}
	char **parts = g_strsplit(m->path, "/", -1);
	GPtrArray *segs = g_ptr_array_new();
	for (guint i = 0; parts[i]; i++)
		if (*parts[i] && strcmp(parts[i], ".") != 0)
			g_ptr_array_add(segs, parts[i]);
	uint32_t at = 0;
	for (guint i = 0; i < segs->len && at != NO_ENTRY; i++) {
		const char *seg = g_ptr_array_index(segs, i);
		bool last = i + 1 == segs->len;
		at = cfs_name_valid(seg, NULL) ? place(v, at, seg, !last || dir, last ? m : NULL)
					       : NO_ENTRY;
	}
	v->skipped += at == NO_ENTRY;
	g_ptr_array_free(segs, TRUE);
	g_strfreev(parts);
}

static void scan_feed(struct tarview *v, const struct iovec *iov, int iovcnt, size_t len, int err)
{
	if (err) {
		v->err = err;
		v->over = true;
		return;
	}
	uint8_t *buf = gather(iov, iovcnt, len);
	GError *gerr = NULL;
	enum cfs_tar_status st = cfs_tar_scan_feed(v->scan, v->asked_pos, buf, len, v->found,
						   &gerr);
	g_free(buf);
	for (guint i = 0; i < v->found->len; i++)
		add_member(v, g_ptr_array_index(v->found, i));
	g_ptr_array_set_size(v->found, 0);
	if (st == CFS_TAR_ERROR) {
		cfs_errors_report(v->node->object->name, v->asked_pos, len, -EIO,
				  "%s; the members after it are not shown", gerr->message);
		g_error_free(gerr);
	}
	v->over = st != CFS_TAR_NEED;
}

static void scan_finish(struct tarview *v)
{
	if (v->skipped)
		g_message("%s: %u members not shown (links, special files, or names that cannot "
			  "be file names)", v->node->object->name, v->skipped);
	cfs_tar_scan_free(g_steal_pointer(&v->scan));
	g_ptr_array_free(g_steal_pointer(&v->found), TRUE);
	if (v->err)
		reset_entries(v);
	g_mutex_lock(&v->lock);
	v->state = v->err ? T_NONE : T_READY;
	GSList *waiters = g_steal_pointer(&v->waiters);
	g_mutex_unlock(&v->lock);
	waiters_wake(waiters, v->err);
	cfs_view_unref(&v->base); /* the scan's */
}

static void scan_loop(struct tarview *v);

static void scan_read(void *cookie, const struct iovec *iov, int iovcnt, size_t len, int err)
{
	struct tarview *v = cookie;
	scan_feed(v, iov, iovcnt, len, err);
	g_mutex_lock(&v->lock);
	bool issuer_goes_on = v->issuing;
	v->answered = true;
	g_mutex_unlock(&v->lock);
	if (issuer_goes_on)
		return;
	if (v->over)
		scan_finish(v);
	else
		scan_loop(v);
}

/*
 * Ask for windows until one is not answered at once; its answer goes on
 * from the thread that gives it. Looping here rather than recursing keeps
 * the stack flat when the whole archive is in memory.
 */
static void scan_loop(struct tarview *v)
{
	uint64_t size = v->node->object->size;
	while (!v->over) {
		cfs_tar_scan_want(v->scan, &v->asked_pos, &v->asked_len);
		v->asked_len = MIN(MAX(v->asked_len, WINDOW), size - MIN(size, v->asked_pos));
		if (v->asked_len == 0) {
			v->over = true;
			break;
		}
		g_mutex_lock(&v->lock);
		v->issuing = true;
		v->answered = false;
		g_mutex_unlock(&v->lock);
		cfs_cache_read(views_cache(v->base.set), v->node->object, v->asked_pos, v->asked_len,
			       NULL, scan_read, v);
		g_mutex_lock(&v->lock);
		v->issuing = false;
		bool answered = v->answered;
		g_mutex_unlock(&v->lock);
		if (!answered)
			return;
	}
	scan_finish(v);
}

/* Scan the archive once its size is known. */
static void scan_sized(void *data, bool sized)
{
	struct tarview *v = data;
	if (sized) {
		v->scan = cfs_tar_scan_new(v->node->object->size);
	} else {
		v->err = -EIO;
		v->over = true;
	}
	scan_loop(v);
}

static void scan_start(struct tarview *v)
{
	v->err = 0;
	v->over = false;
	v->skipped = 0;
	v->found = g_ptr_array_new_with_free_func(cfs_tar_member_free);
	reset_entries(v);
	views_prepare_file(v->base.set, v->node, scan_sized, v);
}

/* 0 once the member index is built; else -EAGAIN (w will be called, the scan started). */
static int need_scan(struct tarview *v, const struct cfs_wait *w)
{
	g_mutex_lock(&v->lock);
	int rc = v->state == T_READY ? 0 : -EAGAIN;
	bool start = v->state == T_NONE;
	if (rc)
		waiters_add(&v->waiters, w);
	if (start) {
		v->state = T_SCANNING;
		cfs_view_ref(&v->base); /* the scan's, until scan_finish() */
	}
	g_mutex_unlock(&v->lock);
	if (start)
		scan_start(v);
	return rc;
}

/* The entry of ino, or NO_ENTRY. The index must be built. */
static uint32_t entry_of(struct tarview *v, uint64_t ino)
{
	if (ino == v->base.root_ino)
		return 0;
	uint32_t i = vino_index(ino);
	return vino_kind(ino) == VK_MEMBER && i > 0 && i < v->entries->len ? i : NO_ENTRY;
}

static void fill_entry(struct tarview *v, uint32_t i, struct cfs_ventry *out)
{
	struct tentry *e = entry(v, i);
	*out = (struct cfs_ventry){
		.ino = entry_ino(v, i), .dir = e->dir, .size = e->size, .mtime_us = e->mtime_us
	};
}

/* The entry of ino once the index is built, in *i; else -EAGAIN (w will be called) or -ENOENT. */
static int find(struct tarview *v, uint64_t ino, uint32_t *i, const struct cfs_wait *w)
{
	int rc = need_scan(v, w);
	if (rc)
		return rc;
	*i = entry_of(v, ino);
	return *i == NO_ENTRY ? -ENOENT : 0;
}

/* The same for a directory: -ENOTDIR for a file. */
static int find_dir(struct tarview *v, uint64_t ino, uint32_t *d, const struct cfs_wait *w)
{
	int rc = find(v, ino, d, w);
	return rc ? rc : entry(v, *d)->dir ? 0 : -ENOTDIR;
}

static int tar_lookup(struct cfs_view *view, uint64_t dir, const char *name,
		      struct cfs_ventry *out, const struct cfs_wait *w)
{
	struct tarview *v = tarview_of(view);
	uint32_t d;
	int rc = find_dir(v, dir, &d, w);
	if (rc)
		return rc;
	uint32_t i = child_of(v, d, name);
	if (i == NO_ENTRY)
		return -ENOENT;
	fill_entry(v, i, out);
	return 0;
}

static int tar_getattr(struct cfs_view *view, uint64_t ino, struct cfs_ventry *out,
		       const struct cfs_wait *w)
{
	struct tarview *v = tarview_of(view);
	uint32_t i;
	int rc = find(v, ino, &i, w);
	if (rc == 0)
		fill_entry(v, i, out);
	return rc;
}

static int tar_readdir(struct cfs_view *view, uint64_t dir, uint64_t off, cfs_dirent_fn add,
		       void *ctx, const struct cfs_wait *w)
{
	struct tarview *v = tarview_of(view);
	uint32_t d;
	int rc = find_dir(v, dir, &d, w);
	if (rc)
		return rc;
	uint64_t parent = d == 0 ? v->base.parent_ino : entry_ino(v, entry(v, d)->parent);
	if (!emit_dots(&off, entry_ino(v, d), parent, add, ctx))
		return 0;
	GArray *children = entry(v, d)->children;
	for (uint64_t k = off - 2; k < children->len; k++) {
		uint32_t i = g_array_index(children, uint32_t, k);
		if (!add(ctx, entry(v, i)->name, entry_ino(v, i), entry(v, i)->dir, k + 3))
			break;
	}
	return 0;
}

static int tar_open(struct cfs_view *view, uint64_t ino, enum cfs_open_mode mode,
		    struct cfs_vfile *out, const struct cfs_wait *w)
{
	(void)mode; /* opening a member starts nothing in either mode */
	struct tarview *v = tarview_of(view);
	uint32_t i;
	int rc = find(v, ino, &i, w);
	if (rc)
		return rc;
	if (entry(v, i)->dir)
		return -EISDIR;
	*out = (struct cfs_vfile){ .obj = v->node->object, .off = entry(v, i)->off,
				   .len = entry(v, i)->size };
	return 0;
}

static void tar_free(struct cfs_view *view)
{
	struct tarview *v = tarview_of(view);
	if (v->entries)
		g_array_free(v->entries, TRUE);
	cfs_node_put(v->node, 1);
	g_mutex_clear(&v->lock);
	g_free(v);
}

static const struct view_ops tar_ops = {
	.lookup = tar_lookup,
	.getattr = tar_getattr,
	.readdir = tar_readdir,
	.open = tar_open,
	.free = tar_free,
};

struct cfs_view *cfs_views_add_tar(struct cfs_views *vs, struct cfs_node *tar,
				   uint64_t parent_ino)
{
	struct tarview *v = g_new0(struct tarview, 1);
	g_mutex_init(&v->lock);
	v->node = cfs_node_ref(tar); /* a relisting that drops the archive leaves it to the view */
	if (!views_register(vs, &v->base, &tar_ops, parent_ino)) {
		tar_free(&v->base);
		return NULL;
	}
	return &v->base;
}
