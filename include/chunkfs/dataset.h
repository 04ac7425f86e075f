/*
 * Building the tree of a mount from the dataset index at the URL: the index
 * itself as a file, each chunk it lists as an object file, and .chunkfs/.
 * Called once from the main thread, before the mount.
 */
#ifndef CHUNKFS_DATASET_H
#define CHUNKFS_DATASET_H

#include <glib.h>

struct cfs_options;
struct cfs_remote;
struct cfs_tree;

/*
 * Fetch index.json of the remote's dataset directory (blocking, before the
 * mount exists), parse it as a
 * LitData index and return the tree. Chunk names that cannot be file names
 * are skipped with one log line each. For a compressed dataset, whose index
 * gives uncompressed sizes, each chunk's size is asked of the server.
 * Errors (GError, message names the redacted URL): the server cannot be
 * reached, there is no index.json (G_IO_ERROR_NOT_FOUND), or it is not a
 * LitData index (G_IO_ERROR_INVALID_DATA).
 */
struct cfs_tree *cfs_dataset_build(const struct cfs_options *opts, const struct cfs_remote *remote,
				   GError **error);

#endif
