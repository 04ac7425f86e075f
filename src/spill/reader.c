/* The spill tier's readers: block files read back, checked, into the memory tier's blocks. */
#include "spill/spill.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spill_i.h"
#include "util/errors.h"
#include "util/stats.h"

/* Largest block file read back: a block, its header and extents. */
#define MAX_HEADER (UINT64_C(1) << 20)

struct load {
	struct cfs_disk *d;
	struct dkey key;
	struct cfs_spill_id id;
	uint8_t *data;
	int fd;
	int open_errno;
	bool held; /* counted among its entry's readers (it was there) */
	cfs_disk_load_fn done;
	void *ctx;
};

/*
 * Delete the files of the blocks of object obj (nblocks of them) that no
 * read-back holds, before their room is given back, which the writer may
 * take at once; returns how many. Under the lock.
 */
static guint drop_object(struct cfs_disk *d, uint64_t obj, uint64_t nblocks)
{
	GArray *gone = g_array_new(FALSE, FALSE, sizeof(struct dkey));
	for (uint64_t i = 0; i < nblocks; i++) {
		struct dkey b = { obj, i };
		struct dentry *e = g_hash_table_lookup(d->index, &b);
		if (e && e->readers == 0)
			g_array_append_val(gone, b);
	}
	disk_unlink_files(d, gone);
	for (guint i = 0; i < gone->len; i++)
		disk_entry_drop(
			d, g_hash_table_lookup(d->index, &g_array_index(gone, struct dkey, i)));
	disk_note_gone(d, gone);
	guint n = gone->len;
	g_array_free(gone, TRUE);
	return n;
}

bool cfs_disk_has(struct cfs_disk *d, const char *name, uint64_t index, const char *etag,
		  uint64_t nblocks)
{
	struct dkey k = { disk_hash_text(name), index };
	g_mutex_lock(&d->lock);
	struct dentry *e = g_hash_table_lookup(d->index, &k);
	bool stale = etag && e && e->etag_hash != disk_hash_text(etag);
	guint dropped = stale ? drop_object(d, k.obj, nblocks) : 0;
	g_mutex_unlock(&d->lock);
	if (stale)
		g_message("%s changed on the server (ETag %s): dropping its %u spilled blocks",
			  name, *etag ? etag : "none", dropped);
	return e && !stale;
}

/* Read exactly len bytes at off; false with errno set (EIO for a short file). */
static bool read_at(struct load *l, void *buf, size_t len, uint64_t off)
{
	ssize_t n = pread(l->fd, buf, len, (off_t)off);
	if (n == (ssize_t)len)
		return true;
	if (n >= 0)
		errno = EIO;
	return false;
}

static bool io_error(GError **error)
{
	int e = errno;
	g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "%s", g_strerror(e));
	return false;
}

/* The checked header of the file; its bytes are read in one go in the usual case. */
static bool load_header(struct load *l, uint64_t size, struct cfs_spill_layout *out, GError **error)
{
	uint8_t probe[CFS_SPILL_HEADER_PROBE];
	size_t len = (size_t)MIN(size, sizeof(probe)), need = 0;
	if (!read_at(l, probe, len, 0))
		return io_error(error);
	if (cfs_spill_read_header(probe, len, size, &l->id, out, &need, error))
		return true;
	if (!need)
		return false;
	uint8_t *head = g_malloc(need);
	bool ok = read_at(l, head, need, 0)
			  ? cfs_spill_read_header(head, need, size, &l->id, out, &need, error)
			  : io_error(error);
	g_free(head);
	return ok;
}

/* A raw payload goes straight into the block, extent by extent; a compressed one is unpacked. */
static bool load_payload(struct load *l, const struct cfs_spill_layout *lay, GError **error)
{
	if (lay->compressed) {
		uint8_t *payload = g_malloc(MAX(lay->stored, 1));
		bool ok = read_at(l, payload, lay->stored, lay->header)
				  ? cfs_spill_unpack(lay, payload, l->data, error)
				  : io_error(error);
		g_free(payload);
		return ok;
	}
	uint64_t at = lay->header;
	for (uint32_t i = 0; i < lay->extents.n; i++) {
		uint32_t lo = lay->extents.v[i].lo, n = lay->extents.v[i].hi - lo;
		if (!read_at(l, l->data + lo, n, at))
			return io_error(error);
		at += n;
	}
	return cfs_spill_check_raw(lay, l->data, error);
}

/* Read the block back into l->data; its extents go to *got. Returns 0 or a negative errno. */
static int load_block(struct load *l, struct cfs_extents *got, GError **error)
{
	struct stat st;
	if (l->fd < 0 || fstat(l->fd, &st) != 0) {
		errno = l->fd < 0 ? l->open_errno : errno;
		int rc = errno == ENOENT ? -ENOENT : -EIO;
		io_error(error);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "not a regular file");
		return -EIO;
	}
	if ((uint64_t)st.st_size > l->d->block_size + MAX_HEADER) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			    "%" G_GUINT64_FORMAT " bytes: too large for a block",
			    (uint64_t)st.st_size);
		return -EIO;
	}
	struct cfs_spill_layout lay;
	if (!load_header(l, (uint64_t)st.st_size, &lay, error))
		return -EIO;
	bool ok = load_payload(l, &lay, error);
	for (uint32_t i = 0; ok && i < lay.extents.n; i++)
		cfs_extents_add(got, lay.extents.v[i].lo, lay.extents.v[i].hi);
	cfs_spill_layout_clear(&lay);
	return ok ? 0 : -EIO;
}

/* A block that cannot be read back: delete it and forget it. */
static void discard(struct load *l, const char *name)
{
	struct cfs_disk *d = l->d;
	unlinkat(d->blocks_fd, name, 0);
	g_mutex_lock(&d->lock);
	struct dentry *e = g_hash_table_lookup(d->index, &l->key);
	if (e) {
		disk_entry_drop(d, e);
		disk_note_del(d, &l->key);
	}
	disk_publish(d);
	g_mutex_unlock(&d->lock);
	cfs_stats_add(CFS_DISK_BAD_BLOCKS, 1);
}

static void release_reader(struct load *l, bool used)
{
	g_mutex_lock(&l->d->lock);
	struct dentry *e = g_hash_table_lookup(l->d->index, &l->key);
	if (e) {
		e->readers--;
		if (used)
			cfs_policy_use(l->d->policy, &e->pol);
	}
	g_mutex_unlock(&l->d->lock);
}

void disk_load_run(gpointer data, gpointer user)
{
	(void)user;
	struct load *l = data;
	char name[BLOCK_NAME];
	disk_block_name(&l->key, name);
	struct cfs_extents got = { 0 };
	GError *err = NULL;
	if (l->held) {
		/* Never through a symlink, never waiting on a FIFO: load_block() wants a file. */
		l->fd = openat(l->d->blocks_fd, name,
			       O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		l->open_errno = errno;
	}
	int rc = l->held ? load_block(l, &got, &err) : -ENOENT; /* evicted since cfs_disk_has */
	if (l->fd >= 0)
		close(l->fd);
	if (l->held)
		release_reader(l, rc == 0);
	if (rc && l->held) {
		cfs_errors_report(l->id.name, l->id.index * l->d->block_size, l->d->block_size, rc,
				  "spilled block %" PRIu64
				  " (%s/%s): %s; discarded, fetching it again",
				  l->id.index, l->d->blocks, name, err->message);
		discard(l, name);
		g_error_free(err);
	}
	l->done(l->ctx, rc ? NULL : &got, rc);
	cfs_extents_clear(&got);
	g_free((char *)l->id.name);
	g_free((char *)l->id.etag);
	g_free(l);
}

void cfs_disk_load(struct cfs_disk *d, const struct cfs_spill_id *id, uint8_t *data,
		   cfs_disk_load_fn done, void *ctx)
{
	struct load *l = g_new0(struct load, 1);
	*l = (struct load){
		d, { disk_hash_text(id->name), id->index }, *id, data, -1, 0, false, done, ctx
	};
	l->id.name = g_strdup(id->name);
	l->id.etag = g_strdup(id->etag);
	g_mutex_lock(&d->lock);
	struct dentry *e = g_hash_table_lookup(d->index, &l->key);
	if (e)
		e->readers++; /* from now on its file is not evicted */
	l->held = e != NULL;
	g_mutex_unlock(&d->lock);
	g_thread_pool_push(d->readers, l, NULL);
}
