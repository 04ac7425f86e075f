/*
 * What the operations on the tree (fs.c) and on views (view_ops.c) both reply
 * with: the attributes of a file or directory, directory entries, and the
 * bytes of a file. Below both, so that neither calls the other's file for
 * them.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/mem.h"
#include "tree/object.h"
#include "util/options.h"
#include "util/times.h"
#include "fs_i.h"

/* A time the remote gave, or the mount's when it gave none. */
static struct timespec shown_time(const struct cfs_fs *fs, int64_t mtime_us)
{
	if (mtime_us == CFS_TIME_UNKNOWN)
		return fs->mount_time;
	int64_t us = mtime_us % G_USEC_PER_SEC, s = mtime_us / G_USEC_PER_SEC;
	if (us < 0) { /* before the epoch: tv_nsec counts up from the second below */
		us += G_USEC_PER_SEC;
		s--;
	}
	return (struct timespec){ .tv_sec = (time_t)s, .tv_nsec = (long)us * 1000 };
}

void fill_attr(const struct cfs_fs *fs, uint64_t ino, bool dir, uint64_t size, int64_t mtime_us,
	       struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = getuid();
	st->st_gid = getgid();
	/* Data and attributes change only with the object: its mtime serves as atime and ctime. */
	st->st_atim = st->st_mtim = st->st_ctim = shown_time(fs, mtime_us);
	if (dir) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)size;
		st->st_blocks = (st->st_size + S_BLKSIZE - 1) / S_BLKSIZE;
	}
	st->st_blksize = (blksize_t)fs->opts->block_size;
}

/* Names and attributes are trusted for the metadata TTL: datasets are immutable. */
double entry_timeout(const struct cfs_fs *fs)
{
	return (double)fs->opts->metadata_ttl_s;
}

bool dirbuf_add(void *ctx, const char *name, uint64_t ino, bool dir, uint64_t next_off)
{
	struct dirbuf *d = ctx;
	struct stat st = { .st_ino = ino, .st_mode = dir ? S_IFDIR : S_IFREG };
	size_t need = fuse_add_direntry(d->req, d->buf + d->used, d->size - d->used, name, &st,
					(off_t)next_off);
	if (need > d->size - d->used)
		return false;
	d->used += need;
	return true;
}

/*
 * A FUSE read waiting for the memory tier. It holds its object: the file's
 * node or view may be dropped by a relisting while the read waits, and an
 * interrupt may still come for it.
 */
struct pending_read {
	fuse_req_t req;
	struct cfs_object *obj;
};

static void pending_free(struct pending_read *p)
{
	cfs_object_unref(p->obj);
	g_free(p);
}

static void read_done(void *cookie, const struct iovec *iov, int iovcnt, size_t len, int err)
{
	struct pending_read *p = cookie;
	/*
	 * libfuse may have taken read_interrupted() for a call just before the
	 * reply: clearing it waits for such a call (under the request's lock)
	 * and prevents later ones, which would use the object freed below.
	 */
	fuse_req_interrupt_func(p->req, NULL, NULL);
	if (err)
		fuse_reply_err(p->req, -err);
	else if (len == 0)
		fuse_reply_buf(p->req, NULL, 0);
	else
		fuse_reply_iov(p->req, iov, iovcnt);
	pending_free(p);
}

static void read_interrupted(fuse_req_t req, void *data)
{
	struct pending_read *p = data;
	if (cfs_cache_cancel(fs_of(req)->cache, p->obj, p)) {
		fuse_reply_err(req, EINTR);
		pending_free(p);
	}
}

void reply_read(fuse_req_t req, const struct file_bytes *f, size_t size, uint64_t off)
{
	gsize head_len = 0;
	const char *head = f->head ? g_bytes_get_data(f->head, &head_len) : NULL;
	uint64_t total = head_len + f->len;
	uint64_t n = off < total ? MIN(size, total - off) : 0;
	if (!f->obj || off + n <= head_len) {
		fuse_reply_buf(req, n ? head + off : NULL, n);
		return;
	}
	GBytes *part = off < head_len ? g_bytes_new_from_bytes(f->head, off, head_len - off) : NULL;
	uint64_t start = off > head_len ? off - head_len : 0;
	uint64_t len = n - (part ? head_len - off : 0);
	struct pending_read *p = g_new(struct pending_read, 1);
	*p = (struct pending_read){ req, cfs_object_ref(f->obj) };
	/* Registered first: the read may be answered, and req freed, by another thread. */
	fuse_req_interrupt_func(req, read_interrupted, p);
	cfs_cache_read_quick(fs_of(req)->cache, f->obj, f->off + start, len, part, read_done, p);
	if (part)
		g_bytes_unref(part);
}

void reply_open(fuse_req_t req, struct fuse_file_info *fi)
{
	fi->fh = 0;
	fi->keep_cache = 1; /* what an inode reads never changes */
	fuse_reply_open(req, fi);
}
