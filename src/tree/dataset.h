/*
 * What the tree of a mount shows: the remote's directories, listed on
 * demand (every object a file, NAME.tar.d/ beside every tar archive), and
 * in a directory holding a dataset index (dsindex.h) the chunks it lists,
 * .items/ and, for zstd chunks, .decompressed/; plus .chunkfs/.
 */
#ifndef CHUNKFS_DATASET_H
#define CHUNKFS_DATASET_H

#include <glib.h>

struct cfs_options;
struct cfs_remote;
struct cfs_tree;
struct cfs_views;

/*
 * The tree of the remote, with its root listed now (blocking, before the
 * mount exists); other directories are listed when first used. Views of
 * datasets and archives are added to views. Names that cannot be file names
 * are skipped with one log line each. A dataset index that cannot be parsed
 * is logged and its directory shown as it is. Errors (GError, the message
 * names the redacted URL): the root cannot be listed; an HTTP root that does
 * not list has no index.json (G_IO_ERROR_NOT_FOUND, saying whether the
 * directory is missing too or only not listed) or one that is not a
 * dataset index (G_IO_ERROR_INVALID_DATA); the URL names a file, by a HEAD
 * of it when its directory is not found, or by its name index.json
 * (G_IO_ERROR_NOT_DIRECTORY, the message gives its directory). Called once,
 * from the main thread.
 */
struct cfs_tree *cfs_dataset_build(const struct cfs_options *opts, const struct cfs_remote *remote,
				   struct cfs_views *views, GError **error);

#endif
