/*
 * The FUSE layer: mounting, the low-level operations and the multi-threaded
 * session loop. Only this module talks to libfuse. The functions below are
 * called from the main thread, in the order they are declared.
 */
#ifndef CHUNKFS_FS_H
#define CHUNKFS_FS_H

#include <glib.h>
#include <stdbool.h>

struct cfs_cache;
struct cfs_options;
struct cfs_tree;
struct cfs_views;
struct cfs_fs;

/*
 * Create the FUSE session and mount it on opts->mountpoint (read-only,
 * plus opts->fuse_opts), and set libfuse's handlers of SIGINT, SIGTERM and
 * SIGHUP, which end cfs_fs_serve()'s loop, or make it return at once when
 * they come before it. The tree and the views must outlive the returned
 * handle. Fails with a GError naming the mountpoint.
 */
struct cfs_fs *cfs_fs_mount(const struct cfs_options *opts, struct cfs_tree *tree,
			    struct cfs_views *views, GError **error);

/*
 * The version of the libfuse this process runs with (fuse_pkgversion(), for
 * example "3.14.0"): a static string, not to be freed. Thread-safe.
 */
const char *cfs_fs_libfuse_version(void);

/*
 * Detach from the terminal unless foreground; the calling process returns
 * only in the daemon (the parent exits 0 once the daemon is running). Call
 * before any thread is started.
 */
void cfs_fs_daemonize(bool foreground);

/*
 * Serve requests with the multi-threaded loop until the file system is
 * unmounted or a signal (SIGINT, SIGTERM, SIGHUP) asks to stop. Reads go to
 * cache. Returns 0 on a clean stop, else a negative errno.
 */
int cfs_fs_serve(struct cfs_fs *fs, struct cfs_cache *cache);

/* Unmount if still mounted and free the session. */
void cfs_fs_free(struct cfs_fs *fs);

#endif
