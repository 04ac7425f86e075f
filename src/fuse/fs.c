/*
 * FUSE low-level operations on the tree, mount and session loop. Only the
 * files of this folder include fuse_lowlevel.h.
 */
#include "fuse/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "util/errors.h"
#include "fetch/fetch.h"
#include "util/log.h"
#include "tree/object.h"
#include "util/options.h"
#include "util/stats.h"
#include "tree/tree.h"
#include "util/url.h"
#include "views/view.h"
#include "fs_i.h"

/*
 * Kernel readahead per open file, set on the mount's bdi once it is up: one
 * FUSE request's worth (1 MiB). 4 MiB made random items slower: the kernel
 * reads an item together with as many pages as precede it in the page
 * cache, up to this (mm/readahead.c), which fetched 16 to 21% more than
 * 2000 random items needed, against 12 to 15% at 1 MiB; and a sequential
 * reader was no faster (1179 MB/s at 4 MiB, 1365 at 1 MiB, 1255 at 512 KiB,
 * medians of 3 on the 2-core VM), chunkfs's own readahead keeping the
 * network busy beyond the kernel's window.
 */
#define KERNEL_READAHEAD_KB 1024
#define MAX_BACKGROUND 64
/* Congested at 3/4 of it: the kernel's own default ratio (fs/fuse/inode.c). */
#define CONGESTION_THRESHOLD (MAX_BACKGROUND * 3 / 4)
/*
 * Threads of libfuse's loop: lookups may block on a directory's listing,
 * so up to 16 leave threads for the reads that hit meanwhile; 4 stay idle,
 * ready for the next burst without starting threads.
 */
#define FUSE_MAX_THREADS 16
#define FUSE_IDLE_THREADS 4

/* The device number of the mount at path, from /proc/self/mountinfo (proc(5)). */
static bool mount_device(const char *path, unsigned *maj, unsigned *min)
{
	char *text = NULL;
	if (!g_file_get_contents("/proc/self/mountinfo", &text, NULL, NULL))
		return false;
	bool found = false;
	char **lines = g_strsplit(text, "\n", -1);
	for (char **l = lines; *l; l++) {
		unsigned a, b;
		char point[4096];
		/* "ID PARENT MAJ:MIN ROOT POINT ..."; the last match is the topmost mount. */
		if (sscanf(*l, "%*u %*u %u:%u %*s %4095s", &a, &b, point) == 3 &&
		    g_str_equal(point, path) && strstr(*l, " - fuse.chunkfs ")) {
			*maj = a;
			*min = b;
			found = true;
		}
	}
	g_strfreev(lines);
	g_free(text);
	return found;
}

/*
 * The kernel clamps its readahead to what FUSE_INIT negotiated (128 KiB);
 * the bdi's sysfs knob raises it, and only takes effect after INIT, so it is
 * written on the first request that follows. Needs root; skipped with a
 * debug line otherwise. Paths with characters mountinfo escapes are skipped.
 */
static gpointer raise_kernel_readahead(gpointer p)
{
	struct cfs_fs *fs = p;
	unsigned maj, min;
	if (!mount_device(fs->opts->mountpoint, &maj, &min)) {
		g_debug("kernel readahead left as it is: %s not found in mountinfo",
			fs->opts->mountpoint);
		return NULL;
	}
	char path[96];
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", maj, min);
	FILE *f = fopen(path, "w");
	if (!f || fprintf(f, "%d\n", KERNEL_READAHEAD_KB) < 0 || fclose(f) != 0)
		g_debug("cannot raise kernel readahead at %s: %s", path, g_strerror(errno));
	else
		g_debug("kernel readahead of the mount set to %d KiB", KERNEL_READAHEAD_KB);
	return NULL;
}

static void after_init(struct cfs_fs *fs)
{
	g_once(&fs->readahead_once, raise_kernel_readahead, fs);
}

static bool node_is_dir(const struct cfs_node *n)
{
	return n->kind == CFS_NODE_DIR || n->kind == CFS_NODE_VIEW;
}

static void node_attr(const struct cfs_fs *fs, const struct cfs_node *n, struct stat *st)
{
	fill_attr(fs, n->ino, node_is_dir(n), cfs_node_size(n), cfs_node_mtime(n), st);
}

/*
 * The view that ino belongs to or is the root of, with a new reference
 * (cfs_view_unref(), or give it to a view operation); NULL for other tree
 * nodes and unknown inodes.
 */
static struct cfs_view *view_of(struct cfs_fs *fs, uint64_t ino)
{
	if (cfs_ino_is_virtual(ino))
		return cfs_views_get(fs->views, ino);
	struct cfs_node *n = cfs_tree_get(fs->tree, ino);
	struct cfs_view *view = n && n->kind == CFS_NODE_VIEW ? cfs_view_ref(n->view) : NULL;
	cfs_node_put(n, 1);
	return view;
}

static double attr_timeout(const struct cfs_fs *fs, const struct cfs_node *n)
{
	return n->kind == CFS_NODE_RENDERED ? 0.0 : entry_timeout(fs);
}

/*
 * A failed listing or sizing of node as an errno for the kernel; reported
 * once, here. ENOENT only when the server said the object is absent: any
 * other failure must not read as a name that does not exist.
 */
static int remote_errno(const struct cfs_node *node, GError *err)
{
	int e = -cfs_fetch_error_errno(err);
	cfs_errors_report(*node->path ? node->path : "/", 0, 0, -e, "%s", err->message);
	g_error_free(err);
	return e;
}

/*
 * The directory of inode ino with a reference (put it), listed if
 * list_due and its listing is due; NULL after replying an error.
 */
static struct cfs_node *ready_dir(fuse_req_t req, struct cfs_fs *fs, fuse_ino_t ino,
				  bool list_due)
{
	struct cfs_node *dir = cfs_tree_get(fs->tree, ino);
	GError *err = NULL;
	if (!dir || dir->kind != CFS_NODE_DIR)
		fuse_reply_err(req, dir ? ENOTDIR : ENOENT);
	else if (list_due && !cfs_tree_prepare_dir(fs->tree, dir, &err))
		fuse_reply_err(req, remote_errno(dir, err));
	else
		return dir;
	cfs_node_put(dir, 1);
	return NULL;
}

static void op_init(void *data, struct fuse_conn_info *conn)
{
	struct cfs_fs *fs = data;
	/*
	 * No per-open state: where the kernel can skip OPEN and RELEASE, a
	 * per-sample open and close (MosaicML's MDS reader, LitData's) costs
	 * no round trip to this process.
	 */
	fs->no_open = conn->capable & FUSE_CAP_NO_OPEN_SUPPORT;
	conn->max_background = MAX_BACKGROUND;
	conn->congestion_threshold = CONGESTION_THRESHOLD;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	conn->want &= ~(unsigned)FUSE_CAP_AUTO_INVAL_DATA; /* objects never change */
	/* Asynchronous direct I/O waits without sending interrupts: a killed reader would hang. */
	conn->want &= ~(unsigned)FUSE_CAP_ASYNC_DIO;
}

static GBytes *render(const struct cfs_node *n)
{
	uint64_t len;
	char *text = n->render(&len);
	return g_bytes_new_take(text, len);
}

/*
 * Answer a lookup of the rendered file n (the reference dropped) with a
 * new snapshot inode of one rendering. The entry is not cached (timeout
 * 0): each path walk looks it up again, so each open reads a rendering of
 * its own from start to end; the snapshot's attributes never change.
 */
static void reply_snapshot(fuse_req_t req, struct cfs_fs *fs, struct cfs_node *n)
{
	GBytes *bytes = render(n);
	cfs_node_put(n, 1);
	int64_t now = g_get_real_time();
	struct fuse_entry_param e = { .ino = snapshot_add(&fs->snapshots, bytes, now),
				      .attr_timeout = entry_timeout(fs) };
	fill_attr(fs, e.ino, false, g_bytes_get_size(bytes), now, &e.attr);
	g_bytes_unref(bytes);
	if (fuse_reply_entry(req, &e) != 0)
		snapshot_forget(&fs->snapshots, e.ino, 1); /* the kernel did not take it */
}

/*
 * Answer a lookup with n (NULL: a negative entry the kernel caches). The
 * reference to n becomes the kernel's lookup when the kernel takes the
 * entry, and is dropped otherwise.
 */
static void reply_lookup(fuse_req_t req, struct cfs_fs *fs, struct cfs_node *n)
{
	struct fuse_entry_param e = { .entry_timeout = entry_timeout(fs) };
	GError *err = NULL;
	if (n && n->kind == CFS_NODE_RENDERED) {
		reply_snapshot(req, fs, n);
		return;
	}
	if (n && !cfs_tree_prepare_file(fs->tree, n, &err)) {
		fuse_reply_err(req, remote_errno(n, err));
		cfs_node_put(n, 1);
		return;
	}
	if (n) {
		e.ino = n->ino;
		e.attr_timeout = attr_timeout(fs, n);
		node_attr(fs, n, &e.attr);
	}
	if (n) /* before the reply: its FORGET may come as soon as the kernel has it */
		cfs_node_looked_up(n);
	if (fuse_reply_entry(req, &e) != 0 && n)
		cfs_tree_forget(fs->tree, n->ino, 1); /* the kernel did not take it */
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct cfs_fs *fs = fs_of(req);
	after_init(fs);
	struct cfs_view *view = view_of(fs, parent);
	if (view) {
		view_lookup(req, view, parent, name);
		return;
	}
	struct cfs_node *dir = ready_dir(req, fs, parent, true);
	if (!dir)
		return;
	struct cfs_node *n = cfs_tree_lookup(fs->tree, dir, name);
	cfs_node_put(dir, 1);
	reply_lookup(req, fs, n);
}

static void snapshot_getattr(fuse_req_t req, struct cfs_fs *fs, uint64_t ino)
{
	int64_t mtime_us;
	GBytes *bytes = snapshot_get(&fs->snapshots, ino, &mtime_us);
	if (!bytes) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct stat st;
	fill_attr(fs, ino, false, g_bytes_get_size(bytes), mtime_us, &st);
	g_bytes_unref(bytes);
	fuse_reply_attr(req, &st, entry_timeout(fs));
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	struct cfs_fs *fs = fs_of(req);
	after_init(fs);
	if (ino_is_snapshot(ino)) {
		snapshot_getattr(req, fs, ino);
		return;
	}
	if (cfs_ino_is_virtual(ino)) {
		struct cfs_view *view = view_of(fs, ino);
		if (view)
			view_getattr(req, view, ino);
		else
			fuse_reply_err(req, ENOENT);
		return;
	}
	struct cfs_node *n = cfs_tree_get(fs->tree, ino);
	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct stat st;
	node_attr(fs, n, &st);
	fuse_reply_attr(req, &st, attr_timeout(fs, n));
	cfs_node_put(n, 1);
}

/* The kernel forgot nlookup lookups of ino: a tree node's, a view's or a snapshot's. */
static void forget(struct cfs_fs *fs, uint64_t ino, uint64_t nlookup)
{
	if (ino_is_snapshot(ino))
		snapshot_forget(&fs->snapshots, ino, nlookup);
	else if (cfs_ino_is_virtual(ino))
		cfs_views_forget(fs->views, ino, nlookup);
	else
		cfs_tree_forget(fs->tree, ino, nlookup);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	forget(fs_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct cfs_fs *fs = fs_of(req);
	for (size_t i = 0; i < count; i++)
		forget(fs, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)fi;
	struct cfs_fs *fs = fs_of(req);
	struct cfs_view *view = view_of(fs, ino);
	if (view) {
		view_readdir(req, view, ino, size, off);
		return;
	}
	/* Listed when a reader starts; a reader going on is not listed again midway. */
	struct cfs_node *dir = ready_dir(req, fs, ino, off == 0);
	if (!dir)
		return;
	struct dirbuf d = { req, g_malloc(size), size, 0 };
	cfs_tree_readdir(fs->tree, dir, (uint64_t)off, dirbuf_add, &d);
	cfs_node_put(dir, 1);
	fuse_reply_buf(req, d.buf, d.used);
	g_free(d.buf);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct cfs_fs *fs = fs_of(req);
	cfs_stats_add(CFS_OPENS, 1);
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (fs->no_open) { /* the kernel opens every file by itself from now on */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	struct cfs_view *view = cfs_ino_is_virtual(ino) ? view_of(fs, ino) : NULL;
	if (view) {
		view_open(req, view, ino, fi);
		return;
	}
	GBytes *snap = ino_is_snapshot(ino) ? snapshot_get(&fs->snapshots, ino, NULL) : NULL;
	struct cfs_node *n = snap ? NULL : cfs_tree_get(fs->tree, ino);
	if (!snap && !n)
		fuse_reply_err(req, ENOENT);
	else if (n && node_is_dir(n))
		fuse_reply_err(req, EISDIR);
	else
		reply_open(req, fi);
	if (snap)
		g_bytes_unref(snap);
	cfs_node_put(n, 1);
}

/* A read of the tree file n: an object's bytes, bytes held in memory, a rendering. */
static void read_node(fuse_req_t req, const struct cfs_node *n, size_t size, uint64_t off)
{
	GBytes *bytes = NULL;
	switch (n->kind) {
	case CFS_NODE_OBJECT:
		reply_read(req, &(struct file_bytes){ .obj = n->object, .len = n->object->size },
			   size, off);
		return;
	case CFS_NODE_BYTES:
		bytes = g_bytes_ref(n->bytes);
		break;
	case CFS_NODE_RENDERED: /* by its own inode, which no lookup gives out (reply_snapshot) */
		bytes = render(n);
		break;
	case CFS_NODE_DIR:
	case CFS_NODE_VIEW:
		fuse_reply_err(req, EISDIR);
		return;
	}
	reply_read(req, &(struct file_bytes){ .head = bytes }, size, off);
	g_bytes_unref(bytes);
}

/*
 * Reads come by inode; no file handle holds anything (op_open). The kernel
 * holds a lookup of the inode of a file open, so its node, view or
 * snapshot stays until the kernel forgets it.
 */
static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	(void)fi;
	struct cfs_fs *fs = fs_of(req);
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	struct cfs_view *view = cfs_ino_is_virtual(ino) ? view_of(fs, ino) : NULL;
	GBytes *snap = ino_is_snapshot(ino) ? snapshot_get(&fs->snapshots, ino, NULL) : NULL;
	struct cfs_node *n = view || snap ? NULL : cfs_tree_get(fs->tree, ino);
	if (view)
		view_read(req, view, ino, size, (uint64_t)off);
	else if (snap)
		reply_read(req, &(struct file_bytes){ .head = snap }, size, (uint64_t)off);
	else if (n)
		read_node(req, n, size, (uint64_t)off);
	else
		fuse_reply_err(req, ESTALE);
	if (snap)
		g_bytes_unref(snap);
	cfs_node_put(n, 1);
}

static void snapshot_getxattr(fuse_req_t req, struct cfs_fs *fs, uint64_t ino, size_t size)
{
	GBytes *bytes = snapshot_get(&fs->snapshots, ino, NULL);
	if (!bytes) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	xattr_reply_held(req, size, g_bytes_get_size(bytes));
	g_bytes_unref(bytes);
}

/* The virtual extended attributes of files (xattr.c); a name not ours is not there. */
static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct cfs_fs *fs = fs_of(req);
	enum xattr_kind kind = xattr_kind_of(name);
	struct cfs_view *view = kind != XATTR_NONE && cfs_ino_is_virtual(ino) ? view_of(fs, ino)
									      : NULL;
	if (view) {
		view_getxattr(req, view, ino, kind, size);
		return;
	}
	if (kind != XATTR_NONE && ino_is_snapshot(ino)) {
		snapshot_getxattr(req, fs, ino, size);
		return;
	}
	struct cfs_node *n = kind != XATTR_NONE ? cfs_tree_get(fs->tree, ino) : NULL;
	if (!n)
		fuse_reply_err(req, kind == XATTR_NONE ? ENODATA : ENOENT);
	else if (node_is_dir(n))
		fuse_reply_err(req, ENODATA);
	else if (n->kind == CFS_NODE_OBJECT)
		xattr_reply_range(req, kind, size, n->object, 0, n->object->size);
	else
		xattr_reply_held(req, size, cfs_node_size(n));
	cfs_node_put(n, 1);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	(void)ino;
	struct statvfs sv = { .f_bsize = (unsigned long)fs_of(req)->opts->block_size,
			      .f_frsize = S_BLKSIZE,
			      .f_namemax = NAME_MAX };
	fuse_reply_statfs(req, &sv);
}

/* Everything that would change the tree or a file: this is a read-only file system. */
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	(void)ino, (void)attr, (void)to_set, (void)fi;
	fuse_reply_err(req, EROFS);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	(void)parent, (void)name, (void)mode, (void)rdev;
	fuse_reply_err(req, EROFS);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void)parent, (void)name, (void)mode;
	fuse_reply_err(req, EROFS);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent, (void)name;
	fuse_reply_err(req, EROFS);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	(void)parent, (void)name, (void)newparent, (void)newname, (void)flags;
	fuse_reply_err(req, EROFS);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	(void)parent, (void)name, (void)mode, (void)fi;
	fuse_reply_err(req, EROFS);
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.readdir = op_readdir,
	.open = op_open,
	.read = op_read,
	.statfs = op_statfs,
	.getxattr = op_getxattr,
	.setattr = op_setattr,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_unlink,
	.rename = op_rename,
	.create = op_create,
};

/*
 * The mount table shows the fsname as the source and "fuse." and the subtype
 * as the type (libfuse's mount options): the URL, secrets redacted, with
 * fuse_opt's escapes for ',' and '\'.
 */
static char *base_mount_opts(const char *url)
{
	char *shown = cfs_url_redact(url);
	GString *text = g_string_new("ro,default_permissions,subtype=chunkfs,fsname=");
	for (const char *p = shown; *p; p++) {
		if (*p == ',' || *p == '\\')
			g_string_append_c(text, '\\');
		g_string_append_c(text, *p);
	}
	g_free(shown);
	return g_string_free(text, FALSE);
}

static struct fuse_args mount_args(const struct cfs_options *opts)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	fuse_opt_add_arg(&args, "chunkfs");
	fuse_opt_add_arg(&args, "-o");
	char *base = base_mount_opts(opts->url);
	fuse_opt_add_arg(&args, base);
	g_free(base);
	if (opts->fuse_opts && *opts->fuse_opts) {
		fuse_opt_add_arg(&args, "-o");
		fuse_opt_add_arg(&args, opts->fuse_opts);
	}
	return args;
}

struct cfs_fs *cfs_fs_mount(const struct cfs_options *opts, struct cfs_tree *tree,
			    struct cfs_views *views, GError **error)
{
	struct cfs_fs *fs = g_new0(struct cfs_fs, 1);
	fs->opts = opts;
	fs->tree = tree;
	fs->views = views;
	snapshots_init(&fs->snapshots);
	clock_gettime(CLOCK_REALTIME, &fs->mount_time);
	struct fuse_args args = mount_args(opts);
	fs->se = fuse_session_new(&args, &ops, sizeof(ops), fs);
	fuse_opt_free_args(&args);
	if (!fs->se) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "cannot create the FUSE session (bad -o option?)");
		cfs_fs_free(fs);
		return NULL;
	}
	if (fuse_session_mount(fs->se, opts->mountpoint) != 0) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot mount on %s",
			    opts->mountpoint);
		fuse_session_destroy(fs->se);
		fs->se = NULL;
		cfs_fs_free(fs);
		return NULL;
	}
	fs->mounted = true;
	/*
	 * From the mount on, SIGTERM ends the session loop (at once, if it comes
	 * before the loop starts) instead of killing the process and leaving a
	 * dead mount: a service manager may stop the daemon as soon as it
	 * reports ready, before serving starts.
	 */
	if (fuse_set_signal_handlers(fs->se) != 0) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
			    "cannot set the signal handlers of the mount on %s", opts->mountpoint);
		cfs_fs_free(fs);
		return NULL;
	}
	fs->signals = true;
	return fs;
}

const char *cfs_fs_libfuse_version(void)
{
	return fuse_pkgversion();
}

void cfs_fs_daemonize(bool foreground)
{
	fuse_daemonize(foreground);
	if (!foreground)
		cfs_log_to_syslog();
}

/* Signals kill again: a tear-down that hangs can still be stopped. */
static void remove_signal_handlers(struct cfs_fs *fs)
{
	if (fs->signals)
		fuse_remove_signal_handlers(fs->se);
	fs->signals = false;
}

int cfs_fs_serve(struct cfs_fs *fs, struct cfs_cache *cache)
{
	fs->cache = cache;
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	fuse_loop_cfg_set_max_threads(cfg, FUSE_MAX_THREADS);
	fuse_loop_cfg_set_idle_threads(cfg, FUSE_IDLE_THREADS);
	int rc = fuse_session_loop_mt(fs->se, cfg);
	fuse_loop_cfg_destroy(cfg);
	remove_signal_handlers(fs);
	return rc < 0 ? rc : 0;
}

void cfs_fs_free(struct cfs_fs *fs)
{
	if (!fs)
		return;
	remove_signal_handlers(fs);
	if (fs->mounted)
		fuse_session_unmount(fs->se);
	if (fs->se)
		fuse_session_destroy(fs->se);
	snapshots_clear(&fs->snapshots);
	g_free(fs);
}
