/*
 * What the mount shows of the remote: its directories, listed on demand,
 * with every object as a file, and every tar archive's members under
 * NAME.tar.d/. A directory that holds a dataset index (LitData's or
 * MosaicML MDS's index.json) shows the chunks the index lists with the
 * sizes the index gives (the index is the truth for its chunks), .items/
 * with every item, and for zstd chunks .decompressed/ with the index and
 * chunks as an uncompressed dataset. An HTTP server that does not list
 * directories still mounts a dataset through its index.json alone.
 *
 * The views and .chunkfs/ are hidden unless --views=visible: found by
 * name, not listed by readdir, so that du, cp -r, tar, find and rsync walk
 * the remote's files only (as ZFS hides .zfs with snapdir=hidden).
 */
#include "tree/dataset.h"

#include <errno.h>
#include <gio/gio.h>
#include <string.h>

#include "formats/dsindex.h"
#include "util/errors.h"
#include "fetch/fetch.h"
#include "remote/listing.h"
#include "tree/object.h"
#include "util/options.h"
#include "remote/remote.h"
#include "util/metrics.h"
#include "util/stats.h"
#include "util/times.h"
#include "tree/tree.h"
#include "util/url.h"
#include "views/view.h"

#define INDEX_NAME "index.json"
#define INDEX_MAX_BYTES (256 * CFS_MIB)
#define ITEMS_NAME ".items"
#define PLAIN_NAME ".decompressed"
#define TAR_SUFFIX ".tar"
#define TAR_VIEW_SUFFIX ".d"

struct dataset {
	const struct cfs_options *opts;
	const struct cfs_remote *remote;
	struct cfs_views *views;
};

/* Whether the views and .chunkfs/ are left out of readdir (--views=hidden). */
static bool views_hidden(const struct dataset *d)
{
	return !d->opts->views_visible;
}

/*
 * Add an object file for name in dir, as e lists it (NULL: nothing
 * listed); size may be CFS_SIZE_UNKNOWN (asked for at lookup). A listed
 * ETag becomes the one every response must carry.
 */
static struct cfs_node *add_object(struct dataset *d, struct cfs_tree *t, struct cfs_node *dir,
				   const char *name, uint64_t size, const struct cfs_entry *e)
{
	char *path = cfs_node_child_path(dir, name);
	char *url = cfs_url_join(d->remote->base_url, path);
	struct cfs_object *obj = cfs_object_new(cfs_tree_next_object_id(t), path, url, size);
	obj->etag = g_strdup(e ? e->etag : NULL);
	obj->mtime_us = e ? e->mtime_us : CFS_TIME_UNKNOWN;
	struct cfs_node *n = cfs_tree_add_object(t, dir, name, obj);
	g_free(url);
	g_free(path);
	return n;
}

/* A file of dir showing the decompressed bytes of the zstd object compressed. */
static struct cfs_node *add_decompressed(struct cfs_tree *t, struct cfs_node *dir,
					 const char *name, uint64_t size,
					 struct cfs_object *compressed)
{
	char *path = cfs_node_child_path(dir, name);
	struct cfs_object *obj = cfs_object_new(cfs_tree_next_object_id(t), path, NULL, size);
	obj->compressed = cfs_object_ref(compressed);
	g_free(path);
	return cfs_tree_add_object(t, dir, name, obj);
}

/*
 * True when name may be added to dir; logs once why not. A name dir has
 * already (from an earlier listing, or .chunkfs) is kept by this listing.
 */
static bool acceptable(struct cfs_tree *t, struct cfs_node *dir, const char *name)
{
	const char *why;
	if (cfs_tree_keep(t, dir, name))
		return false;
	if (cfs_name_valid(name, &why))
		return true;
	g_warning("%s: skipping \"%s\": %s", *dir->path ? dir->path : "/", name, why);
	return false;
}

/* The index.json of dir, fetched by deadline_us (that of the listing it is part of). */
static GBytes *fetch_index(struct dataset *d, const struct cfs_node *dir, int64_t deadline_us,
			   GError **error)
{
	char *path = cfs_node_child_path(dir, INDEX_NAME);
	char *url = cfs_url_join(d->remote->base_url, path);
	GBytes *body = NULL;
	char *etag = NULL;
	GError *err = NULL;
	if (!cfs_fetch_small(d->opts, d->remote, url, INDEX_MAX_BYTES, deadline_us, &body, &etag,
			     &err)) {
		if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
			g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
				    "no dataset index at %s: %s", d->remote->shown, err->message);
		else
			g_propagate_error(error, g_steal_pointer(&err));
		g_clear_error(&err);
	}
	g_free(etag);
	g_free(url);
	g_free(path);
	return body;
}

/* The index.json of dir, parsed; NULL with *error when it cannot be had or is not understood. */
static struct cfs_ds_index *load_index(struct dataset *d, const struct cfs_node *dir,
				       int64_t deadline_us, GBytes **bytes, GError **error)
{
	*bytes = fetch_index(d, dir, deadline_us, error);
	if (!*bytes)
		return NULL;
	gsize len;
	const char *text = g_bytes_get_data(*bytes, &len);
	GError *err = NULL;
	struct cfs_ds_index *idx = cfs_ds_index_parse(text, len, &err);
	if (!idx) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			    "%s%s%s: not a dataset index: %s", d->remote->shown,
			    *dir->path ? dir->path : "", "/" INDEX_NAME, err->message);
		g_error_free(err);
		g_clear_pointer(bytes, g_bytes_unref);
	}
	return idx;
}

/*
 * The file entries of a listing by name (the first of a repeated name), so
 * that placing a dataset's chunks costs one lookup per chunk.
 */
static GHashTable *listed_files(const struct cfs_listing *l)
{
	GHashTable *files = g_hash_table_new(g_str_hash, g_str_equal);
	for (guint i = l->entries->len; i-- > 0;) {
		struct cfs_entry *e = &g_array_index(l->entries, struct cfs_entry, i);
		if (!e->is_dir)
			g_hash_table_insert(files, e->name, e);
	}
	return files;
}

/* The listed file named name, or NULL (also when there is no listing: files NULL). */
static const struct cfs_entry *listed_file(GHashTable *files, const char *name)
{
	return files ? g_hash_table_lookup(files, name) : NULL;
}

/* Whether a listed size or ETag says the object is another than the one n shows. */
static bool listed_differs(const struct cfs_entry *e, uint64_t size, const char *etag)
{
	return (e->size != CFS_SIZE_UNKNOWN && size != CFS_SIZE_UNKNOWN && e->size != size) ||
	       (e->etag && etag && strcmp(e->etag, etag) != 0);
}

/* Whether the file n is another object now that e lists it (held bytes or an object). */
static bool changed(const struct cfs_node *n, const struct cfs_entry *e)
{
	if (n->kind == CFS_NODE_BYTES)
		return listed_differs(e, g_bytes_get_size(n->bytes), n->etag);
	if (n->kind != CFS_NODE_OBJECT)
		return false;
	char *etag = cfs_object_etag(n->object);
	bool differs = listed_differs(e, __atomic_load_n(&n->object->size, __ATOMIC_RELAXED), etag);
	g_free(etag);
	return differs;
}

/*
 * The file e names (an index.json or a tar archive, whose views hold what
 * was read of it) is taken out of dir with what is shown for it when the
 * listing says it was replaced by another object, so that this listing
 * shows the new one.
 */
static void drop_replaced(struct cfs_tree *t, struct cfs_node *dir, const struct cfs_entry *e)
{
	struct cfs_node *n = e ? cfs_tree_lookup(t, dir, e->name) : NULL;
	bool replaced = n && changed(n, e);
	cfs_node_put(n, 1);
	if (replaced)
		cfs_tree_drop(t, dir, e->name);
}

/* Items can be shown for plain chunks and zstd ones, not for other codecs or encryption. */
static bool items_shown(const struct cfs_node *dir, const struct cfs_ds_index *idx)
{
	if (!idx->encrypted && (!idx->compression || idx->zstd))
		return true;
	g_message("%s: %s chunks: no %s view", *dir->path ? dir->path : "/",
		  idx->encrypted ? "encrypted" : idx->compression, ITEMS_NAME);
	return false;
}

/* A dataset's chunk nodes and the objects its items are read from, in dataset order. */
struct chunks {
	struct cfs_node **nodes;
	struct cfs_object **sources;
};

/* n (may be NULL) is shown for owner (may be NULL): a relisting without owner removes it. */
static void tie(struct cfs_tree *t, struct cfs_node *n, struct cfs_node *owner)
{
	if (n && owner)
		cfs_tree_tie(t, n, owner);
}

/*
 * The file dir shows already as name (an index.json that left and came
 * back finds its chunks listed as plain files), or NULL. Valid while this
 * listing of dir runs: it named the file, which keeps it.
 */
static struct cfs_node *shown_file(struct cfs_tree *t, struct cfs_node *dir, const char *name)
{
	struct cfs_node *n = cfs_tree_lookup(t, dir, name);
	bool file = n && n->kind == CFS_NODE_OBJECT;
	cfs_node_put(n, 1);
	return file ? n : NULL;
}

/* The node of chunk c in dir: added for the node index, or the file dir shows already. */
static struct cfs_node *chunk_node(struct dataset *d, struct cfs_tree *t, struct cfs_node *dir,
				   struct cfs_node *index, const struct cfs_ds_chunk *c,
				   GHashTable *files)
{
	if (!acceptable(t, dir, c->name))
		return shown_file(t, dir, c->name);
	/* A compressed dataset's index gives uncompressed sizes: the listing's, or ask. */
	const struct cfs_entry *e = listed_file(files, c->name);
	uint64_t size = c->size != CFS_SIZE_UNKNOWN ? c->size : e ? e->size : CFS_SIZE_UNKNOWN;
	struct cfs_node *node = add_object(d, t, dir, c->name, size, e);
	tie(t, node, index);
	return node;
}

/*
 * The chunks the index lists, shown for the node index (NULL when the
 * index was shown before); zstd ones also decompressed, under plain_dir.
 */
static struct chunks add_chunks(struct dataset *d, struct cfs_tree *t, struct cfs_node *dir,
				struct cfs_node *index, struct cfs_node *plain_dir,
				const struct cfs_ds_index *idx, GHashTable *files)
{
	guint n = idx->chunks->len;
	struct chunks ch = { g_new0(struct cfs_node *, MAX(n, 1)),
			     g_new0(struct cfs_object *, MAX(n, 1)) };
	for (guint i = 0; i < n; i++) {
		const struct cfs_ds_chunk *c = &g_array_index(idx->chunks, struct cfs_ds_chunk, i);
		struct cfs_node *node = chunk_node(d, t, dir, index, c, files);
		ch.nodes[i] = node;
		ch.sources[i] = node ? node->object : NULL;
		if (node && c->plain_name && plain_dir) {
			struct cfs_node *plain = acceptable(t, plain_dir, c->plain_name)
				? add_decompressed(t, plain_dir, c->plain_name, c->plain_size,
						   node->object)
				: NULL;
			ch.sources[i] = plain ? plain->object : NULL;
		}
	}
	return ch;
}

/*
 * The index file, the chunks it lists in dataset order, and the views of
 * the dataset, all shown for the index file: a relisting without
 * index.json removes them with it.
 */
static void add_dataset(struct dataset *d, struct cfs_tree *t, struct cfs_node *dir,
			GBytes *bytes, struct cfs_ds_index *idx, GHashTable *files)
{
	struct cfs_node *index = acceptable(t, dir, INDEX_NAME)
		? cfs_tree_add_bytes(t, dir, INDEX_NAME, bytes) : NULL;
	const struct cfs_entry *listed = listed_file(files, INDEX_NAME);
	if (index && listed) {
		index->etag = g_strdup(listed->etag);
		__atomic_store_n(&index->mtime_us, listed->mtime_us, __ATOMIC_RELAXED);
	}
	struct cfs_node *plain_dir = NULL;
	if (idx->plain_index && acceptable(t, dir, PLAIN_NAME)) {
		plain_dir = cfs_tree_add_dir(t, dir, PLAIN_NAME, false, views_hidden(d));
		tie(t, plain_dir, index);
		cfs_tree_add_bytes(t, plain_dir, INDEX_NAME, idx->plain_index);
	}
	struct chunks ch = add_chunks(d, t, dir, index, plain_dir, idx, files);
	struct cfs_view *view = NULL;
	if (items_shown(dir, idx) && acceptable(t, dir, ITEMS_NAME))
		view = cfs_views_add_items(d->views, g_steal_pointer(&idx), ch.nodes, ch.sources,
					   dir->ino);
	if (view)
		tie(t, cfs_tree_add_view(t, dir, ITEMS_NAME, view, views_hidden(d)), index);
	cfs_ds_index_free(idx);
	g_free(ch.nodes);
	g_free(ch.sources);
}

/* NAME.tar.d/ beside the archive NAME.tar: its members. */
static void add_tar_view(struct dataset *d, struct cfs_tree *t, struct cfs_node *dir,
			 struct cfs_node *tar)
{
	char *name = g_strconcat(tar->name, TAR_VIEW_SUFFIX, NULL);
	struct cfs_view *view = acceptable(t, dir, name)
		? cfs_views_add_tar(d->views, tar, dir->ino) : NULL;
	if (view)
		tie(t, cfs_tree_add_view(t, dir, name, view, views_hidden(d)), tar);
	g_free(name);
}

static void add_entries(struct dataset *d, struct cfs_tree *t, struct cfs_node *dir,
			const struct cfs_listing *l)
{
	for (guint i = 0; i < l->entries->len; i++) {
		const struct cfs_entry *e = &g_array_index(l->entries, struct cfs_entry, i);
		if (!e->is_dir && g_str_has_suffix(e->name, TAR_SUFFIX))
			drop_replaced(t, dir, e);
		if (!acceptable(t, dir, e->name))
			continue;
		struct cfs_node *file = NULL;
		if (e->is_dir)
			cfs_tree_add_dir(t, dir, e->name, true, false);
		else
			file = add_object(d, t, dir, e->name, e->size, e);
		if (file && g_str_has_suffix(e->name, TAR_SUFFIX))
			add_tar_view(d, t, dir, file);
	}
}

/* The index of dir failed to load or parse: the directory shows its files only. */
static void report_bad_index(const struct cfs_node *dir, const GError *err)
{
	char *path = cfs_node_child_path(dir, INDEX_NAME);
	cfs_errors_report(path, 0, 0, -EIO, "%s; showing the directory as it is", err->message);
	g_free(path);
}

/*
 * True when an index that could not be had is the server's answer about
 * it: absent (404, 410), refused (401, 403), not a dataset index, or too
 * large. Any other failure (a timeout, a 5xx, a reset) may pass, so it
 * must not be remembered as a directory without a dataset.
 */
static bool index_failure_is_lasting(const GError *err)
{
	return g_error_matches(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND) ||
	       g_error_matches(err, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED) ||
	       g_error_matches(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA) ||
	       g_error_matches(err, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE);
}

/*
 * A listed directory with index.json: its chunks come from the index when
 * it is understood, and the directory is shown as it is when the index is
 * lastingly bad. Any other failure fails the listing (nothing is added), so
 * that the next lookup fetches the index again.
 */
static bool add_dataset_dir(struct dataset *d, struct cfs_tree *t, struct cfs_node *dir,
			    const struct cfs_listing *l, GHashTable *files, int64_t deadline_us,
			    GError **error)
{
	GBytes *bytes = NULL;
	GError *err = NULL;
	drop_replaced(t, dir, listed_file(files, INDEX_NAME));
	struct cfs_ds_index *idx = cfs_tree_keep(t, dir, INDEX_NAME)
					   ? NULL
					   : load_index(d, dir, deadline_us, &bytes, &err);
	if (err && !index_failure_is_lasting(err)) {
		g_propagate_error(error, err);
		return false;
	}
	if (idx)
		add_dataset(d, t, dir, bytes, idx, files);
	else if (err)
		report_bad_index(dir, err);
	g_clear_error(&err);
	if (bytes)
		g_bytes_unref(bytes);
	add_entries(d, t, dir, l);
	return true;
}

/* Whether the URL as typed ends in the name of a dataset index, a file. */
static bool shown_ends_in_index(const char *shown)
{
	char *path = g_strndup(shown, strcspn(shown, "?#"));
	size_t len = strlen(path);
	while (len > 0 && path[len - 1] == '/')
		path[--len] = '\0';
	bool index = g_str_has_suffix(path, "/" INDEX_NAME);
	g_free(path);
	return index;
}

/*
 * Whether the mount's URL names an object, not a directory (a slip: the URL
 * of index.json or of a chunk): by its name, or by a HEAD of it without the
 * '/' that makes it a directory. Asked only when the directory was not
 * found or is empty on a remote whose keys are no directories (S3), since
 * an HTTP server may redirect a directory's name to the directory.
 */
static bool root_names_file(struct dataset *d)
{
	if (shown_ends_in_index(d->remote->shown))
		return true;
	char *url = cfs_url_dir_as_file(d->remote->base_url);
	uint64_t size;
	int64_t mtime_us;
	GError *err = NULL;
	bool file = url && cfs_fetch_head(d->opts, d->remote, url, &size, &mtime_us, &err);
	g_clear_error(&err);
	g_free(url);
	return file;
}

static void set_names_file(const struct dataset *d, GError **error)
{
	char *parent = cfs_url_parent_dir(d->remote->shown);
	g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_DIRECTORY,
		    "URL '%s' names a file; give its directory: %s", d->remote->shown, parent);
	g_free(parent);
}

/*
 * Why a root the server does not list shows nothing, now that its
 * index.json is not found either: the URL names a file; or no directory is
 * there (its listing was not found too); or the server does not list it.
 */
static void explain_bare_root(struct dataset *d, bool listing_missing, GError **error)
{
	const char *shown = d->remote->shown;
	if (listing_missing && root_names_file(d))
		set_names_file(d, error);
	else if (listing_missing)
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
			    "no directory at '%s': the server finds neither it nor its %s; "
			    "check the path",
			    shown, INDEX_NAME);
	else
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
			    "'%s' has no %s and the server does not list it: give a dataset's "
			    "directory, or have the server list directories (nginx: autoindex on)",
			    shown, INDEX_NAME);
}

/*
 * An HTTP root that cannot be listed (listing_missing: its listing was not
 * found): the dataset index must be there, and is the tree.
 */
static bool add_index_only(struct dataset *d, struct cfs_tree *t, struct cfs_node *dir,
			   bool listing_missing, int64_t deadline_us, GError **error)
{
	GBytes *bytes = NULL;
	GError *err = NULL;
	struct cfs_ds_index *idx = load_index(d, dir, deadline_us, &bytes, &err);
	if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
		explain_bare_root(d, listing_missing, error);
	else if (err)
		g_propagate_error(error, g_steal_pointer(&err));
	g_clear_error(&err);
	if (!idx)
		return false;
	add_dataset(d, t, dir, bytes, idx, NULL);
	g_bytes_unref(bytes);
	return true;
}

/* Whether dir, listed as l, is an empty root because the URL names an object. */
static bool empty_root_names_file(struct dataset *d, const struct cfs_node *dir,
				  const struct cfs_listing *l)
{
	if (dir->ino != CFS_ROOT_INO || l->entries->len)
		return false;
	return d->remote->ops->empty_root_may_be_object ? root_names_file(d)
							: shown_ends_in_index(d->remote->shown);
}

/* One deadline for all the pages of dir's listing and its index.json. */
static bool list_dir(void *ctx, struct cfs_tree *t, struct cfs_node *dir, GError **error)
{
	struct dataset *d = ctx;
	struct cfs_listing *l = NULL;
	GError *err = NULL;
	int64_t deadline_us = cfs_fetch_listing_deadline(d->opts);
	if (!cfs_fetch_listing(d->opts, d->remote, dir->path, deadline_us, &l, &err)) {
		if (dir->ino == CFS_ROOT_INO && d->remote->ops->unlisted(err)) {
			g_debug("%s cannot be listed (%s): using its %s", d->remote->shown,
				err->message, INDEX_NAME);
			bool missing = g_error_matches(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
			g_error_free(err);
			return add_index_only(d, t, dir, missing, deadline_us, error);
		}
		g_propagate_error(error, err);
		return false;
	}
	if (empty_root_names_file(d, dir, l)) {
		set_names_file(d, error);
		cfs_listing_free(l);
		return false;
	}
	GHashTable *files = listed_files(l);
	bool ok = true;
	if (listed_file(files, INDEX_NAME))
		ok = add_dataset_dir(d, t, dir, l, files, deadline_us, error);
	else
		add_entries(d, t, dir, l);
	g_hash_table_destroy(files);
	cfs_listing_free(l);
	return ok;
}

static bool size_object(void *ctx, struct cfs_object *obj, GError **error)
{
	struct dataset *d = ctx;
	uint64_t size;
	int64_t mtime_us;
	if (!cfs_fetch_head(d->opts, d->remote, obj->url, &size, &mtime_us, error))
		return false;
	if (mtime_us != CFS_TIME_UNKNOWN) /* before the size: a reader that sees it sees the time */
		__atomic_store_n(&obj->mtime_us, mtime_us, __ATOMIC_RELAXED);
	__atomic_store_n(&obj->size, size, __ATOMIC_RELEASE); /* read unlocked: cfs_tree_file_sized */
	return true;
}

struct cfs_tree *cfs_dataset_build(const struct cfs_options *opts, const struct cfs_remote *remote,
				   struct cfs_views *views, GError **error)
{
	struct dataset *d = g_new0(struct dataset, 1);
	d->opts = opts;
	d->remote = remote;
	d->views = views;
	struct cfs_tree *t = cfs_tree_new(list_dir, size_object, d, g_free, opts->metadata_ttl_s);
	struct cfs_node *root = cfs_tree_root(t);
	struct cfs_node *control = cfs_tree_add_dir(t, root, ".chunkfs", false, views_hidden(d));
	cfs_tree_add_rendered(t, control, "stats", cfs_stats_render);
	cfs_tree_add_rendered(t, control, "metrics", cfs_metrics_render);
	cfs_tree_add_rendered(t, control, "errors", cfs_errors_render);
	if (!cfs_tree_prepare_dir(t, root, error)) {
		cfs_tree_free(t);
		return NULL;
	}
	return t;
}
