/*
 * What the operations on the tree (fs.c) and on views (view_ops.c) both reply
 * with: open-file handles, the attributes of a file or directory, and
 * directory entries. Below both, so that neither calls the other's file
 * for them.
 */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

struct handle *handle_new(GBytes *head, struct cfs_object *obj, uint64_t off, uint64_t len)
{
	struct handle *h = g_atomic_rc_box_new0(struct handle);
	*h = (struct handle){ head ? g_bytes_ref(head) : NULL, obj ? cfs_object_ref(obj) : NULL,
			      off, len };
	return h;
}

static void handle_clear(gpointer p)
{
	struct handle *h = p;
	if (h->head)
		g_bytes_unref(h->head);
	if (h->obj)
		cfs_object_unref(h->obj);
}

void handle_put(struct handle *h)
{
	g_atomic_rc_box_release_full(h, handle_clear);
}

void handles_init(struct handles *hs)
{
	g_mutex_init(&hs->lock);
	hs->table = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free,
					  (GDestroyNotify)handle_put);
	hs->next_fh = 0;
}

void handles_clear(struct handles *hs)
{
	g_hash_table_destroy(hs->table);
	g_mutex_clear(&hs->lock);
}

void handle_open(struct handles *hs, fuse_req_t req, struct fuse_file_info *fi, struct handle *h)
{
	g_mutex_lock(&hs->lock);
	fi->fh = ++hs->next_fh;
	g_hash_table_insert(hs->table, g_memdup2(&fi->fh, sizeof(fi->fh)), h);
	g_mutex_unlock(&hs->lock);
	fuse_reply_open(req, fi);
}

struct handle *handle_get(struct handles *hs, uint64_t fh)
{
	g_mutex_lock(&hs->lock);
	struct handle *h = g_hash_table_lookup(hs->table, &fh);
	if (h)
		g_atomic_rc_box_acquire(h);
	g_mutex_unlock(&hs->lock);
	return h;
}

void handle_release(struct handles *hs, uint64_t fh)
{
	g_mutex_lock(&hs->lock);
	g_hash_table_remove(hs->table, &fh);
	g_mutex_unlock(&hs->lock);
}
