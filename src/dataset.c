/* The tree of a LitData dataset mount. */
#include "chunkfs/dataset.h"

#include <gio/gio.h>

#include "chunkfs/fetch.h"
#include "chunkfs/litdata.h"
#include "chunkfs/object.h"
#include "chunkfs/options.h"
#include "chunkfs/remote.h"
#include "chunkfs/tree.h"
#include "chunkfs/url.h"

#define INDEX_NAME "index.json"
#define INDEX_MAX_BYTES (256 * CFS_MIB)

static GBytes *fetch_index(const struct cfs_options *opts, const struct cfs_remote *remote,
			   GError **error)
{
	char *url = cfs_url_join(remote->base_url, INDEX_NAME);
	GBytes *body = NULL;
	char *etag = NULL;
	GError *err = NULL;
	if (!cfs_fetch_small(opts, remote, url, INDEX_MAX_BYTES, &body, &etag, &err)) {
		if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
			g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
				    "no dataset index at %s: %s", remote->shown, err->message);
		else
			g_propagate_error(error, g_steal_pointer(&err));
		g_clear_error(&err);
	}
	g_free(etag);
	g_free(url);
	return body;
}

static bool chunk_size(const struct cfs_options *opts, const struct cfs_remote *remote,
		       const struct cfs_litdata_chunk *c, const char *url, uint64_t *size,
		       GError **error)
{
	if (c->bytes) {
		*size = c->bytes;
		return true;
	}
	return cfs_fetch_head(opts, remote, url, size, error);
}

static bool add_chunks(const struct cfs_options *opts, const struct cfs_remote *remote,
		       struct cfs_tree *t, const struct cfs_litdata_index *idx, GError **error)
{
	struct cfs_node *root = cfs_tree_root(t);
	uint32_t next_id = 0;
	for (guint i = 0; i < idx->chunks->len; i++) {
		const struct cfs_litdata_chunk *c =
			&g_array_index(idx->chunks, struct cfs_litdata_chunk, i);
		const char *why;
		if (!cfs_name_valid(c->filename, &why) || g_str_equal(c->filename, INDEX_NAME) ||
		    cfs_tree_lookup(root, c->filename)) {
			char *shown = g_strescape(c->filename, NULL);
			g_warning("index.json: skipping chunk %u named \"%s\": %s", i, shown,
				  why ? why : "name used twice");
			g_free(shown);
			continue;
		}
		char *url = cfs_url_join(remote->base_url, c->filename);
		uint64_t size;
		bool ok = chunk_size(opts, remote, c, url, &size, error);
		if (ok)
			cfs_tree_add_object(t, root, c->filename,
					    cfs_object_new(next_id++, c->filename, url, size));
		g_free(url);
		if (!ok)
			return false;
	}
	return true;
}

struct cfs_tree *cfs_dataset_build(const struct cfs_options *opts, const struct cfs_remote *remote,
				   GError **error)
{
	GBytes *index = fetch_index(opts, remote, error);
	if (!index)
		return NULL;
	gsize len;
	const char *text = g_bytes_get_data(index, &len);
	GError *err = NULL;
	struct cfs_litdata_index *idx = cfs_litdata_parse_index(text, len, &err);
	struct cfs_tree *t = NULL;
	if (!idx) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			    "%s: " INDEX_NAME " is not a LitData index: %s", remote->shown, err->message);
		g_error_free(err);
		goto out;
	}
	t = cfs_tree_new();
	struct cfs_node *root = cfs_tree_root(t);
	cfs_tree_add_bytes(t, root, INDEX_NAME, index);
	cfs_tree_add_stats(t, cfs_tree_add_dir(t, root, ".chunkfs"), "stats");
	if (!add_chunks(opts, remote, t, idx, error)) {
		cfs_tree_free(t);
		t = NULL;
	}
out:
	cfs_litdata_index_free(idx);
	g_bytes_unref(index);
	return t;
}
