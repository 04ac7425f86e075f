/*
 * FUSE operations on views (.items/, NAME.tar.d/). What a view needs may
 * still be on its way (a chunk header, a tar index): the operation is then
 * kept and run again from the thread that brought it, so no FUSE worker
 * waits on the network; the low-level API lets any thread reply.
 */
#include <errno.h>
#include <sys/stat.h>

#include "views/view.h"
#include "fs_i.h"

enum vop { VOP_LOOKUP, VOP_GETATTR, VOP_READDIR, VOP_OPEN, VOP_READ, VOP_GETXATTR };

/* A view operation being answered. */
struct vreq {
	fuse_req_t req;
	enum vop op;
	struct cfs_view *view;        /* a reference of the request's */
	uint64_t ino;                 /* the directory of a lookup or readdir */
	char *name;                   /* lookup */
	size_t size;                  /* readdir, read, getxattr */
	uint64_t off;                 /* readdir, read */
	struct fuse_file_info fi;     /* open */
	enum xattr_kind xattr;        /* getxattr */
};

/* Answer a lookup with v, a virtual inode of view, whose lookup the view then counts. */
static void reply_entry(fuse_req_t req, struct cfs_view *view, const struct cfs_ventry *v)
{
	struct cfs_fs *fs = fs_of(req);
	struct fuse_entry_param e = { .ino = v->ino, .entry_timeout = entry_timeout(fs),
				      .attr_timeout = entry_timeout(fs) };
	fill_attr(fs, v->ino, v->dir, v->size, v->mtime_us, &e.attr);
	cfs_view_looked_up(view); /* before the reply: its FORGET may come as soon as it is sent */
	if (fuse_reply_entry(req, &e) != 0)
		cfs_views_forget(fs->views, v->ino, 1); /* the kernel did not take it */
}

static void reply_attr(fuse_req_t req, const struct cfs_ventry *v)
{
	struct cfs_fs *fs = fs_of(req);
	struct stat st;
	fill_attr(fs, v->ino, v->dir, v->size, v->mtime_us, &st);
	fuse_reply_attr(req, &st, entry_timeout(fs));
}

static int run_readdir(struct vreq *q, const struct cfs_wait *w)
{
	struct dirbuf d = { q->req, g_malloc(q->size), q->size, 0 };
	int rc = cfs_view_readdir(q->view, q->ino, q->off, dirbuf_add, &d, w);
	if (rc == 0)
		fuse_reply_buf(q->req, d.buf, d.used);
	g_free(d.buf);
	return rc;
}

/* On a kernel without no-open support: the file is located, so that a bad one fails here. */
static int run_open(struct vreq *q, const struct cfs_wait *w)
{
	struct cfs_vfile f;
	int rc = cfs_view_open(q->view, q->ino, CFS_OPEN_LOCATE, &f, w);
	if (rc == 0) {
		reply_open(q->req, &q->fi);
		if (f.head)
			g_bytes_unref(f.head);
	}
	return rc;
}

/*
 * A file's first read counts as its opening for the in-order prefetch of
 * the next chunk (note_open() in views/items.c); its other reads only
 * locate it, so that one item read in many pieces does not crowd other
 * readers out of that bookkeeping.
 */
static int run_read(struct vreq *q, const struct cfs_wait *w)
{
	struct cfs_vfile f;
	int rc = cfs_view_open(q->view, q->ino, q->off == 0 ? CFS_OPEN_READ : CFS_OPEN_LOCATE, &f,
			       w);
	if (rc == 0) {
		reply_read(q->req, &(struct file_bytes){ f.head, f.obj, f.off, f.len }, q->size,
			   q->off);
		if (f.head)
			g_bytes_unref(f.head);
	}
	return rc;
}

static int run_getxattr(struct vreq *q, const struct cfs_wait *w)
{
	struct cfs_vfile f;
	int rc = cfs_view_open(q->view, q->ino, CFS_OPEN_LOCATE, &f, w);
	if (rc == -EISDIR) {
		fuse_reply_err(q->req, ENODATA);
		return 0;
	}
	if (rc == 0) {
		xattr_reply_range(q->req, q->xattr, q->size, f.obj, f.off, f.len);
		if (f.head)
			g_bytes_unref(f.head);
	}
	return rc;
}

/* Run q's operation once: it replies, or returns -EAGAIN and is run again by w. */
static int run(struct vreq *q, const struct cfs_wait *w)
{
	struct cfs_ventry e;
	int rc;
	switch (q->op) {
	case VOP_LOOKUP:
		rc = cfs_view_lookup(q->view, q->ino, q->name, &e, w);
		if (rc == 0)
			reply_entry(q->req, q->view, &e);
		return rc;
	case VOP_GETATTR:
		rc = cfs_view_getattr(q->view, q->ino, &e, w);
		if (rc == 0)
			reply_attr(q->req, &e);
		return rc;
	case VOP_READDIR:
		return run_readdir(q, w);
	case VOP_OPEN:
		return run_open(q, w);
	case VOP_READ:
		return run_read(q, w);
	case VOP_GETXATTR:
		return run_getxattr(q, w);
	}
	return -EINVAL;
}

static void vreq_free(struct vreq *q)
{
	cfs_view_unref(q->view);
	g_free(q->name);
	g_free(q);
}

static void fail(struct vreq *q, int err)
{
	if (q->op == VOP_LOOKUP && err == -ENOENT) {
		struct fuse_entry_param e = { .entry_timeout = entry_timeout(fs_of(q->req)) };
		fuse_reply_entry(q->req, &e); /* ino 0: a negative entry the kernel caches */
	} else {
		fuse_reply_err(q->req, -err);
	}
}

static void resume(void *cookie, int err);

/* Answer q now, or leave it to the waiter; q is not touched after -EAGAIN. */
static void go(struct vreq *q)
{
	struct cfs_wait w = { resume, q };
	int rc = run(q, &w);
	if (rc == -EAGAIN)
		return;
	if (rc)
		fail(q, rc);
	vreq_free(q);
}

static void resume(void *cookie, int err)
{
	struct vreq *q = cookie;
	if (err) {
		fail(q, err);
		vreq_free(q);
	} else {
		go(q);
	}
}

static struct vreq *vreq_new(fuse_req_t req, enum vop op, struct cfs_view *view, uint64_t ino)
{
	struct vreq *q = g_new0(struct vreq, 1);
	q->req = req;
	q->op = op;
	q->view = view;
	q->ino = ino;
	return q;
}

void view_lookup(fuse_req_t req, struct cfs_view *view, uint64_t dir, const char *name)
{
	struct vreq *q = vreq_new(req, VOP_LOOKUP, view, dir);
	q->name = g_strdup(name);
	go(q);
}

void view_getattr(fuse_req_t req, struct cfs_view *view, uint64_t ino)
{
	go(vreq_new(req, VOP_GETATTR, view, ino));
}

void view_readdir(fuse_req_t req, struct cfs_view *view, uint64_t dir, size_t size, off_t off)
{
	struct vreq *q = vreq_new(req, VOP_READDIR, view, dir);
	q->size = size;
	q->off = (uint64_t)off;
	go(q);
}

void view_open(fuse_req_t req, struct cfs_view *view, uint64_t ino, struct fuse_file_info *fi)
{
	struct vreq *q = vreq_new(req, VOP_OPEN, view, ino);
	q->fi = *fi;
	go(q);
}

void view_read(fuse_req_t req, struct cfs_view *view, uint64_t ino, size_t size, uint64_t off)
{
	struct vreq *q = vreq_new(req, VOP_READ, view, ino);
	q->size = size;
	q->off = off;
	go(q);
}

void view_getxattr(fuse_req_t req, struct cfs_view *view, uint64_t ino, enum xattr_kind kind,
		   size_t size)
{
	struct vreq *q = vreq_new(req, VOP_GETXATTR, view, ino);
	q->xattr = kind;
	q->size = size;
	go(q);
}
