/*
 * What the mount shows of the remote: its directories, listed on demand,
 * with every object as a file; a directory that holds a LitData index.json
 * shows the chunks the index lists with the sizes the index gives (the
 * index is the truth for its chunks). An HTTP server that does not list
 * directories still mounts a dataset through its index.json alone.
 */
#include "chunkfs/dataset.h"

#include <gio/gio.h>

#include "chunkfs/fetch.h"
#include "chunkfs/listing.h"
#include "chunkfs/litdata.h"
#include "chunkfs/object.h"
#include "chunkfs/options.h"
#include "chunkfs/remote.h"
#include "chunkfs/tree.h"
#include "chunkfs/url.h"

#define INDEX_NAME "index.json"
#define INDEX_MAX_BYTES (256 * CFS_MIB)

struct dataset {
	const struct cfs_options *opts;
	const struct cfs_remote *remote;
};

/*
 * Add an object file for name in dir; size may be CFS_SIZE_UNKNOWN (asked
 * for at lookup). A listed ETag becomes the one every response must carry.
 */
static void add_object(struct dataset *d, struct cfs_tree *t, struct cfs_node *dir,
		       const char *name, uint64_t size, const char *etag)
{
	char *path = cfs_node_child_path(dir, name);
	char *url = cfs_url_join(d->remote->base_url, path);
	struct cfs_object *obj = cfs_object_new(cfs_tree_next_object_id(t), path, url, size);
	obj->etag = g_strdup(etag);
	cfs_tree_add_object(t, dir, name, obj);
	g_free(url);
	g_free(path);
}

/* True when name may be added to dir; logs once why not. */
static bool acceptable(struct cfs_tree *t, struct cfs_node *dir, const char *name)
{
	const char *why;
	if (cfs_tree_lookup(t, dir, name))
		return false; /* known from an earlier listing, or .chunkfs */
	if (cfs_name_valid(name, &why))
		return true;
	char *shown = g_strescape(name, NULL);
	g_warning("%s: skipping \"%s\": %s", *dir->path ? dir->path : "/", shown, why);
	g_free(shown);
	return false;
}

static GBytes *fetch_index(struct dataset *d, const struct cfs_node *dir, GError **error)
{
	char *path = cfs_node_child_path(dir, INDEX_NAME);
	char *url = cfs_url_join(d->remote->base_url, path);
	GBytes *body = NULL;
	char *etag = NULL;
	GError *err = NULL;
	if (!cfs_fetch_small(d->opts, d->remote, url, INDEX_MAX_BYTES, &body, &etag, &err)) {
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

/* The index.json of dir, parsed; NULL with *error when it cannot be had or is not LitData's. */
static struct cfs_litdata_index *load_index(struct dataset *d, const struct cfs_node *dir,
					    GBytes **bytes, GError **error)
{
	*bytes = fetch_index(d, dir, error);
	if (!*bytes)
		return NULL;
	gsize len;
	const char *text = g_bytes_get_data(*bytes, &len);
	GError *err = NULL;
	struct cfs_litdata_index *idx = cfs_litdata_parse_index(text, len, &err);
	if (!idx) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s%s%s: not a LitData index: %s",
			    d->remote->shown, *dir->path ? dir->path : "", "/" INDEX_NAME, err->message);
		g_error_free(err);
		g_clear_pointer(bytes, g_bytes_unref);
	}
	return idx;
}

/* The file entry of the listing named name, or NULL (also when there is no listing). */
static const struct cfs_entry *listed_file(const struct cfs_listing *l, const char *name)
{
	for (guint i = 0; l && i < l->entries->len; i++) {
		const struct cfs_entry *e = &g_array_index(l->entries, struct cfs_entry, i);
		if (!e->is_dir && g_str_equal(e->name, name))
			return e;
	}
	return NULL;
}

/* The index file and the chunks it lists, in dataset order. */
static void add_index_chunks(struct dataset *d, struct cfs_tree *t, struct cfs_node *dir,
			     GBytes *bytes, const struct cfs_litdata_index *idx,
			     const struct cfs_listing *listing)
{
	cfs_tree_add_bytes(t, dir, INDEX_NAME, bytes);
	for (guint i = 0; i < idx->chunks->len; i++) {
		const struct cfs_litdata_chunk *c =
			&g_array_index(idx->chunks, struct cfs_litdata_chunk, i);
		if (!acceptable(t, dir, c->filename))
			continue;
		/* A compressed dataset's index gives uncompressed sizes: the listing's, or ask. */
		const struct cfs_entry *e = listed_file(listing, c->filename);
		uint64_t size = c->bytes ? c->bytes : e ? e->size : CFS_SIZE_UNKNOWN;
		add_object(d, t, dir, c->filename, size, NULL);
	}
}

static void add_entries(struct dataset *d, struct cfs_tree *t, struct cfs_node *dir,
			const struct cfs_listing *l)
{
	for (guint i = 0; i < l->entries->len; i++) {
		const struct cfs_entry *e = &g_array_index(l->entries, struct cfs_entry, i);
		if (!acceptable(t, dir, e->name))
			continue;
		if (e->is_dir)
			cfs_tree_add_dir(t, dir, e->name, true);
		else
			add_object(d, t, dir, e->name, e->size, e->etag);
	}
}

/* A listed directory with index.json: its chunks come from the index when it is LitData's. */
static void add_dataset_dir(struct dataset *d, struct cfs_tree *t, struct cfs_node *dir,
			    const struct cfs_listing *l)
{
	GBytes *bytes = NULL;
	GError *err = NULL;
	struct cfs_litdata_index *idx = cfs_tree_lookup(t, dir, INDEX_NAME)
						? NULL : load_index(d, dir, &bytes, &err);
	if (idx)
		add_index_chunks(d, t, dir, bytes, idx, l);
	else if (err)
		g_warning("%s; showing the directory as it is", err->message);
	g_clear_error(&err);
	cfs_litdata_index_free(idx);
	if (bytes)
		g_bytes_unref(bytes);
	add_entries(d, t, dir, l);
}

static bool is_unlisted_http(const struct dataset *d, const GError *err)
{
	return !d->remote->s3 && (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED) ||
				  g_error_matches(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND) ||
				  g_error_matches(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA));
}

/* An HTTP root that cannot be listed: the dataset index must be there, and is the tree. */
static bool add_index_only(struct dataset *d, struct cfs_tree *t, struct cfs_node *dir,
			   GError **error)
{
	GBytes *bytes = NULL;
	struct cfs_litdata_index *idx = load_index(d, dir, &bytes, error);
	if (!idx)
		return false;
	add_index_chunks(d, t, dir, bytes, idx, NULL);
	cfs_litdata_index_free(idx);
	g_bytes_unref(bytes);
	return true;
}

static bool list_dir(void *ctx, struct cfs_tree *t, struct cfs_node *dir, GError **error)
{
	struct dataset *d = ctx;
	struct cfs_listing *l = NULL;
	GError *err = NULL;
	if (!cfs_fetch_listing(d->opts, d->remote, dir->path, &l, &err)) {
		if (dir->ino == CFS_ROOT_INO && is_unlisted_http(d, err)) {
			g_debug("%s cannot be listed (%s): using its %s", d->remote->shown,
				err->message, INDEX_NAME);
			g_error_free(err);
			return add_index_only(d, t, dir, error);
		}
		g_propagate_error(error, err);
		return false;
	}
	if (listed_file(l, INDEX_NAME))
		add_dataset_dir(d, t, dir, l);
	else
		add_entries(d, t, dir, l);
	cfs_listing_free(l);
	return true;
}

static bool size_file(void *ctx, struct cfs_node *file, GError **error)
{
	struct dataset *d = ctx;
	uint64_t size;
	if (!cfs_fetch_head(d->opts, d->remote, file->object->url, &size, error))
		return false;
	file->object->size = size;
	return true;
}

struct cfs_tree *cfs_dataset_build(const struct cfs_options *opts, const struct cfs_remote *remote,
				   GError **error)
{
	struct dataset *d = g_new0(struct dataset, 1);
	d->opts = opts;
	d->remote = remote;
	struct cfs_tree *t = cfs_tree_new(list_dir, size_file, d, g_free, opts->metadata_ttl_s);
	struct cfs_node *root = cfs_tree_root(t);
	cfs_tree_add_stats(t, cfs_tree_add_dir(t, root, ".chunkfs", false), "stats");
	if (!cfs_tree_prepare_dir(t, root, error)) {
		cfs_tree_free(t);
		return NULL;
	}
	return t;
}
