/* The spill tier's writer: one block file at a time, under the cap. */
#include "spill/spill.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <sys/uio.h>
#include <unistd.h>

#include "spill_i.h"
#include "util/stats.h"

/* The journal is rewritten once it holds this many more records than blocks. */
#define COMPACT_SLACK 4096
/* The journal is rewritten once it holds this many records per block (plus COMPACT_SLACK). */
#define COMPACT_RATIO 2

struct spill {
	struct cfs_disk *d;
	struct dkey key;
	struct cfs_spill_id id;
	struct cfs_extents extents;
	const uint8_t *data;
	cfs_disk_spill_fn done;
	void *ctx;
};

/* The pieces of the file of s: its header, then its payload (packed, or the block's extents). */
static GArray *file_iov(const struct spill *s, const struct cfs_spill_file *f)
{
	GArray *iov = g_array_new(FALSE, FALSE, sizeof(struct iovec));
	gsize len;
	const void *header = g_bytes_get_data(f->header, &len);
	struct iovec v = { (void *)header, len };
	g_array_append_val(iov, v);
	if (f->packed) {
		v = (struct iovec){ f->packed, f->packed_len };
		g_array_append_val(iov, v);
	}
	for (uint32_t i = 0; !f->packed && i < s->extents.n; i++) {
		v = (struct iovec){ (void *)(s->data + s->extents.v[i].lo),
				    s->extents.v[i].hi - s->extents.v[i].lo };
		g_array_append_val(iov, v);
	}
	return iov;
}

static uint64_t iov_bytes(const GArray *iov)
{
	uint64_t n = 0;
	for (guint i = 0; i < iov->len; i++)
		n += g_array_index(iov, struct iovec, i).iov_len;
	return n;
}

/* Write every byte of iov to fd (consumed as it goes); false with errno set. */
static bool write_all(int fd, GArray *iov)
{
	struct iovec *v = (struct iovec *)iov->data;
	int n = (int)iov->len;
	while (n > 0) {
		ssize_t done = writev(fd, v, MIN(n, IOV_MAX));
		if (done <= 0)
			return false;
		while (n > 0 && (size_t)done >= v->iov_len) {
			done -= (ssize_t)v->iov_len;
			v++, n--;
		}
		if (n > 0) {
			v->iov_base = (uint8_t *)v->iov_base + done;
			v->iov_len -= (size_t)done;
		}
	}
	return true;
}

/* Write iov to a new file under tmp/ and rename it to name in blocks/. */
static bool write_block(struct cfs_disk *d, const char *name, GArray *iov, GError **error)
{
	char tmp[BLOCK_NAME + 16];
	snprintf(tmp, sizeof(tmp), "%s.%08" PRIx32, name, g_random_int());
	int fd = openat(d->tmp_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && write_all(fd, iov);
	int e = errno;
	if (fd >= 0 && close(fd) != 0 && ok) {
		ok = false;
		e = errno;
	}
	if (ok && renameat(d->tmp_fd, tmp, d->blocks_fd, name) != 0) {
		ok = false;
		e = errno;
	}
	if (!ok) {
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "%s", g_strerror(e));
		if (fd >= 0)
			unlinkat(d->tmp_fd, tmp, 0);
	}
	return ok;
}

/*
 * Room for the file of s (cost bytes), reserved until it is written, and
 * its record appended; false when there is none. A block being rewritten
 * keeps its old file counted until the new one replaces it.
 */
static bool reserve(struct spill *s, uint64_t cost, uint64_t etag_hash)
{
	struct cfs_disk *d = s->d;
	GArray *gone = g_array_new(FALSE, FALSE, sizeof(struct dkey));
	g_mutex_lock(&d->lock);
	struct dentry *old = g_hash_table_lookup(d->index, &s->key);
	/* A crash before the rename leaves the old file under the name: count the larger. */
	struct cfs_journal_rec r = { s->key.obj, s->key.index, MAX(cost, old ? old->bytes : 0),
				     etag_hash, true };
	bool room = (!old || old->readers == 0) && disk_make_room(d, cost, &s->key, gone);
	bool ok = room && cfs_journal_append(d->journal, &r); /* before the file: none uncounted */
	if (ok)
		d->pending = cost;
	g_mutex_unlock(&d->lock);
	if (room && !ok)
		cfs_stats_add(CFS_SPILL_ERRORS, 1); /* the append said why, once */
	disk_delete_files(d, gone);
	g_array_free(gone, TRUE);
	return ok;
}

/* The write of s ended: its file replaced any older one, or (failed) the block is dropped. */
static void settle(struct spill *s, uint64_t cost, uint64_t etag_hash, bool written,
		   const char *name)
{
	struct cfs_disk *d = s->d;
	g_mutex_lock(&d->lock);
	d->pending = 0;
	struct dentry *old = g_hash_table_lookup(d->index, &s->key);
	if (written) {
		disk_entry_put(d, &s->key, cost, etag_hash, old ? old->readers : 0);
	} else {
		unlinkat(d->blocks_fd, name, 0); /* an older version: deleted, then recorded gone */
		if (old)
			disk_entry_drop(d, old);
		disk_note_del(d, &s->key);
	}
	disk_publish(d);
	g_mutex_unlock(&d->lock);
}

/* Say once that writes fail, and once that they work again. */
static void note_outcome(struct cfs_disk *d, const char *path, const GError *err)
{
	g_mutex_lock(&d->lock);
	bool was = d->failing;
	d->failing = err != NULL;
	g_mutex_unlock(&d->lock);
	if (err && !was)
		g_warning("cannot spill to %s: %s; blocks are not spilled until writes work again",
			  path, err->message);
	else if (!err && was)
		g_message("spilling to %s works again", d->root);
}

/*
 * Rewrite the journal when it has grown well past the blocks it counts, or
 * lost a record (a full disk): a failure there was said by the append.
 */
static void maybe_compact(struct cfs_disk *d)
{
	GError *err = NULL;
	g_mutex_lock(&d->lock);
	bool lost = cfs_journal_lost(d->journal);
	bool due = lost || cfs_journal_records(d->journal) >
				   COMPACT_RATIO * g_hash_table_size(d->index) + COMPACT_SLACK;
	g_mutex_unlock(&d->lock);
	if (due && !disk_compact(d, &err)) {
		if (lost)
			g_debug("%s", err->message);
		else
			g_warning("%s", err->message);
		g_error_free(err);
	}
}

/* Write the file of s under the cap; false when it was not written. */
static bool spill_one(struct spill *s)
{
	if (!cfs_spill_id_fits(&s->id))
		return false; /* a name or ETag too long for the format: the block stays in memory */
	struct cfs_spill_file f;
	cfs_spill_prepare(&s->id, &s->extents, s->data, s->d->compress, &f);
	GArray *iov = file_iov(s, &f);
	char name[BLOCK_NAME];
	disk_block_name(&s->key, name);
	char *path = disk_block_path(s->d, &s->key);
	GError *err = NULL;
	uint64_t cost = disk_file_cost(iov_bytes(iov)), etag_hash = disk_hash_text(s->id.etag);
	bool ok = reserve(s, cost, etag_hash);
	if (ok) {
		ok = write_block(s->d, name, iov, &err);
		settle(s, cost, etag_hash, ok, name);
		note_outcome(s->d, path, err);
		cfs_stats_add(ok ? CFS_SPILLS : CFS_SPILL_ERRORS, 1);
		g_clear_error(&err);
	}
	g_array_free(iov, TRUE);
	cfs_spill_file_clear(&f);
	g_free(path);
	return ok;
}

void disk_spill_run(gpointer data, gpointer user)
{
	if (data == user) { /* the job cfs_disk_start() queues first */
		disk_sweep(user);
		return;
	}
	struct spill *s = data;
	bool ok = spill_one(s);
	maybe_compact(s->d);
	s->done(s->ctx, ok);
	cfs_extents_clear(&s->extents);
	g_free((char *)s->id.name);
	g_free((char *)s->id.etag);
	g_free(s);
}

void cfs_disk_spill(struct cfs_disk *d, const struct cfs_spill_id *id,
		    const struct cfs_extents *extents, const uint8_t *data, cfs_disk_spill_fn done,
		    void *ctx)
{
	struct spill *s = g_new0(struct spill, 1);
	*s = (struct spill){
		d, { disk_hash_text(id->name), id->index }, *id, { 0 }, data, done, ctx
	};
	s->id.name = g_strdup(id->name);
	s->id.etag = g_strdup(id->etag);
	for (uint32_t i = 0; i < extents->n; i++)
		cfs_extents_add(&s->extents, extents->v[i].lo, extents->v[i].hi);
	g_thread_pool_push(d->writer, s, NULL);
}
