/* The spill tier's journal: replay, appends, rewrite. */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#define MAGIC "CFSJRNL\n"
#define VERSION 1
#define HEADER 24
#define FLAG_ADD 1
#define CHECKED (CFS_JOURNAL_RECORD - 3)

struct cfs_journal {
	char *path, *tmpdir;
	uint64_t block_size;
	int fd;               /* open for appending once rewritten */
	uint64_t records;
	bool failed;          /* an append failed: said once */
	bool torn;            /* a short append is still at the end */
	bool lost;            /* an append or a rewrite failed since the last rewrite */
	uint64_t file_len;    /* bytes of the file read at open, there until the first rewrite */
	/* A rewrite between its begin and its end. */
	GByteArray *kept;     /* records appended since its begin, encoded */
	char *draft;          /* its new file under tmpdir, once written */
	int draft_fd;         /* open on draft for appending */
	guint draft_records;
};

static void put(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get(const uint8_t *p, int bytes)
{
	uint64_t v = 0;
	for (int i = bytes - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void encode(const struct cfs_journal_rec *r, uint8_t *p)
{
	put(p, r->obj, 8);
	put(p + 8, r->index, 8);
	put(p + 16, r->etag_hash, 8);
	put(p + 24, r->bytes, 4);
	p[28] = r->add ? FLAG_ADD : 0;
	put(p + CHECKED, XXH3_64bits(p, CHECKED), 3);
}

static bool decode(const uint8_t *p, struct cfs_journal_rec *r)
{
	if (get(p + CHECKED, 3) != (XXH3_64bits(p, CHECKED) & 0xffffff) || p[28] > FLAG_ADD)
		return false;
	*r = (struct cfs_journal_rec){ get(p, 8), get(p + 8, 8), get(p + 24, 4), get(p + 16, 8),
				       p[28] == FLAG_ADD };
	return true;
}

static void header(uint8_t *p, uint64_t block_size)
{
	memset(p, 0, HEADER);
	memcpy(p, MAGIC, 8);
	put(p + 8, VERSION, 4);
	put(p + 16, block_size, 8);
}

static void replay_all(const uint8_t *buf, gsize len, cfs_journal_replay_fn replay, void *ctx)
{
	for (gsize at = HEADER; at + CFS_JOURNAL_RECORD <= len; at += CFS_JOURNAL_RECORD) {
		struct cfs_journal_rec r;
		if (!decode(buf + at, &r))
			break; /* torn by a crash: what follows is not trusted either */
		replay(&r, ctx);
	}
}

struct cfs_journal *cfs_journal_open(const char *path, const char *tmpdir, uint64_t block_size,
				     cfs_journal_replay_fn replay, void *ctx, bool *unknown,
				     GError **error)
{
	gchar *buf = NULL;
	gsize len = 0;
	/*
	 * A new cache has none: asked first, because g_file_get_contents() would
	 * build an error message, and with it glib's per-thread charset, which
	 * LeakSanitizer reports.
	 */
	bool exists = access(path, F_OK) == 0 || errno != ENOENT;
	if (exists && !g_file_get_contents(path, &buf, &len, error)) {
		g_prefix_error(error, "cannot read the spill journal: ");
		return NULL;
	}
	uint8_t want[HEADER];
	header(want, block_size);
	*unknown = !buf || len < HEADER || memcmp(buf, want, HEADER) != 0;
	if (!*unknown)
		replay_all((const uint8_t *)buf, len, replay, ctx);
	g_free(buf);
	struct cfs_journal *j = g_new0(struct cfs_journal, 1);
	j->path = g_strdup(path);
	j->tmpdir = g_strdup(tmpdir);
	j->block_size = block_size;
	j->fd = -1;
	j->draft_fd = -1;
	j->file_len = len;
	return j;
}

/* Cut a torn record off the end, so that the records after it replay too. */
static bool untear(struct cfs_journal *j)
{
	if (j->torn && ftruncate(j->fd, (off_t)cfs_journal_size_for(j->records)) == 0)
		j->torn = false;
	return !j->torn;
}

bool cfs_journal_append(struct cfs_journal *j, const struct cfs_journal_rec *r)
{
	uint8_t rec[CFS_JOURNAL_RECORD];
	encode(r, rec);
	ssize_t n = -1;
	int e = EBADF;
	if (j->fd >= 0 && untear(j)) {
		n = write(j->fd, rec, sizeof(rec));
		e = n < 0 ? errno : ENOSPC; /* a short write is a full disk */
		j->torn = n > 0 && n < (ssize_t)sizeof(rec);
		untear(j);
	}
	bool ok = n == (ssize_t)sizeof(rec);
	if (j->kept)
		g_byte_array_append(j->kept, rec, sizeof(rec)); /* the new journal must have it */
	if (ok)
		j->records++;
	else if (!j->failed)
		g_warning("cannot append to %s: %s", j->path, g_strerror(e));
	j->failed = !ok;
	j->lost |= !ok;
	return ok;
}

void cfs_journal_rewrite_begin(struct cfs_journal *j)
{
	g_assert(!j->kept);
	j->kept = g_byte_array_new();
}

static bool set_io_error(GError **error, const char *what, const char *path)
{
	int e = errno;
	g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "cannot %s %s: %s", what, path,
		    g_strerror(e));
	return false;
}

bool cfs_journal_rewrite_write(struct cfs_journal *j, const struct cfs_journal_rec *recs,
			       guint n, GError **error)
{
	gsize len = cfs_journal_size_for(n);
	uint8_t *buf = g_malloc(len);
	header(buf, j->block_size);
	for (guint i = 0; i < n; i++)
		encode(&recs[i], buf + HEADER + (gsize)i * CFS_JOURNAL_RECORD);
	char *tmp = g_build_filename(j->tmpdir, "journal", NULL);
	bool ok = g_file_set_contents(tmp, (const gchar *)buf, (gssize)len, error);
	/* Opened before the rename: on any failure the old journal stays in use, whole. */
	int fd = ok ? open(tmp, O_WRONLY | O_APPEND | O_CLOEXEC) : -1;
	if (ok && fd < 0)
		ok = set_io_error(error, "open", tmp);
	/*
	 * On disk before it replaces the old one: a crash must not leave an empty
	 * journal (XFS can), which would empty the cache at the next mount.
	 */
	if (ok && fdatasync(fd) != 0)
		ok = set_io_error(error, "sync", tmp);
	if (!ok && fd >= 0)
		close(fd);
	g_free(buf);
	if (!ok) {
		unlink(tmp);
		g_free(tmp);
		return false;
	}
	j->draft = tmp;
	j->draft_fd = fd;
	j->draft_records = n;
	return true;
}

/* Append the records kept since the begin to the draft, and put it in place. */
static bool finish_draft(struct cfs_journal *j, GError **error)
{
	g_return_val_if_fail(j->draft, false);
	ssize_t n = j->kept->len ? write(j->draft_fd, j->kept->data, j->kept->len) : 0;
	if (n != (ssize_t)j->kept->len) {
		if (n >= 0)
			errno = ENOSPC; /* a short write is a full disk */
		return set_io_error(error, "write", j->draft);
	}
	if (rename(j->draft, j->path) != 0)
		return set_io_error(error, "put in place", j->draft);
	return true;
}

bool cfs_journal_rewrite_end(struct cfs_journal *j, bool ok, GError **error)
{
	ok = ok && finish_draft(j, error);
	if (ok) {
		if (j->fd >= 0)
			close(j->fd);
		j->fd = j->draft_fd;
		j->records = j->draft_records + j->kept->len / CFS_JOURNAL_RECORD;
		j->torn = false;
		j->lost = false;
	} else if (j->draft) {
		close(j->draft_fd);
		unlink(j->draft);
	}
	j->lost |= !ok;
	j->draft_fd = -1;
	g_clear_pointer(&j->draft, g_free);
	g_byte_array_free(j->kept, TRUE);
	j->kept = NULL;
	return ok;
}

uint64_t cfs_journal_size_for(uint64_t records)
{
	return HEADER + records * CFS_JOURNAL_RECORD;
}

uint64_t cfs_journal_bytes(const struct cfs_journal *j)
{
	return j->fd >= 0 ? cfs_journal_size_for(j->records) : j->file_len;
}

uint64_t cfs_journal_records(const struct cfs_journal *j)
{
	return j->records;
}

bool cfs_journal_lost(const struct cfs_journal *j)
{
	return j->lost;
}

void cfs_journal_close(struct cfs_journal *j)
{
	if (!j)
		return;
	if (j->fd >= 0)
		close(j->fd);
	g_free(j->path);
	g_free(j->tmpdir);
	g_free(j);
}
