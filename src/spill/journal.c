/* The spill tier's journal: replay, appends, rewrite. */
#include "journal_i.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define MAGIC "CFSJRNL\n"
#define VERSION 1
#define HEADER 24
#define FLAG_ADD 1
#define CHECKED (CFS_JOURNAL_RECORD - 3)

#define NAME "journal"
/* Bytes read at a time at open. */
#define SLICE (CFS_JOURNAL_RECORD * 2048)

struct cfs_journal {
	char *path;           /* for messages */
	int dir_fd, tmp_fd;   /* the caller's */
	uint64_t block_size;
	int fd;               /* open for appending once rewritten */
	uint64_t records;
	bool failed;          /* an append failed: said once */
	bool torn;            /* a short append is still at the end */
	bool lost;            /* an append or a rewrite failed since the last rewrite */
	uint64_t file_len;    /* bytes of the file read at open, there until the first rewrite */
	/* A rewrite between its begin and its end. */
	GByteArray *kept;     /* records appended since its begin, encoded */
	bool drafted;         /* its new file is in tmp_fd */
	int draft_fd;         /* open on the draft for appending */
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

static bool set_io_error(GError **error, const char *what, const char *path)
{
	int e = errno;
	g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "cannot %s %s: %s", what, path,
		    g_strerror(e));
	return false;
}

/*
 * Read fd in slices, replaying the records after a header that must be
 * want (else *unknown) until the end or a record that fails its check
 * (torn by a crash: what follows is not trusted either). False with errno
 * set when a read fails.
 */
static bool replay_fd(int fd, const uint8_t *want, cfs_journal_replay_fn replay, void *ctx,
		      bool *unknown)
{
	uint8_t *buf = g_malloc(SLICE);
	size_t have = 0, at = 0;
	bool checked = false, replaying = true;
	*unknown = true;
	while (replaying) {
		ssize_t n = read(fd, buf + have, SLICE - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			g_free(buf);
			return n == 0;
		}
		have += (size_t)n;
		if (!checked && have < HEADER)
			continue;
		if (!checked) {
			checked = true;
			*unknown = memcmp(buf, want, HEADER) != 0;
			replaying = !*unknown;
			at = HEADER;
		}
		for (; replaying && at + CFS_JOURNAL_RECORD <= have; at += CFS_JOURNAL_RECORD) {
			struct cfs_journal_rec r;
			replaying = decode(buf + at, &r);
			if (replaying)
				replay(&r, ctx);
		}
		memmove(buf, buf + at, have - at);
		have -= at;
		at = 0;
	}
	g_free(buf);
	return true;
}

/*
 * Open name in dir_fd to read, never through a symlink, never blocking on a
 * FIFO; -1 with errno set (EINVAL: not a regular file). *size: its bytes.
 */
static int open_regular(int dir_fd, const char *name, uint64_t *size)
{
	int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		return -1;
	int e = fstat(fd, &st) != 0 ? errno : !S_ISREG(st.st_mode) ? EINVAL : 0;
	if (e) {
		close(fd);
		errno = e;
		return -1;
	}
	*size = (uint64_t)st.st_size;
	return fd;
}

struct cfs_journal *cfs_journal_open(int dir_fd, const char *path, int tmp_fd,
				     uint64_t block_size, cfs_journal_replay_fn replay, void *ctx,
				     bool *unknown, GError **error)
{
	uint8_t want[HEADER];
	header(want, block_size);
	uint64_t len = 0;
	*unknown = true;
	int fd = open_regular(dir_fd, NAME, &len);
	if (fd < 0 && errno != ENOENT) {
		set_io_error(error, "read the spill journal", path);
		return NULL;
	}
	bool ok = fd < 0 || replay_fd(fd, want, replay, ctx, unknown);
	if (!ok)
		set_io_error(error, "read the spill journal", path);
	if (fd >= 0)
		close(fd);
	if (!ok)
		return NULL;
	struct cfs_journal *j = g_new0(struct cfs_journal, 1);
	j->path = g_strdup(path);
	j->dir_fd = dir_fd;
	j->tmp_fd = tmp_fd;
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

/* Write all len bytes of buf to fd; false with errno set (ENOSPC for a short write). */
static bool write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ENOSPC;
			return false;
		}
		buf += n;
		len -= (size_t)n;
	}
	return true;
}

bool cfs_journal_rewrite_write(struct cfs_journal *j, const struct cfs_journal_rec *recs,
			       guint n, GError **error)
{
	gsize len = cfs_journal_size_for(n);
	uint8_t *buf = g_malloc(len);
	header(buf, j->block_size);
	for (guint i = 0; i < n; i++)
		encode(&recs[i], buf + HEADER + (gsize)i * CFS_JOURNAL_RECORD);
	char *shown = g_strdup_printf("%s (its new copy in tmp/)", j->path);
	/* A new file: whatever had the name (a crash's draft, a planted symlink) goes first. */
	if (unlinkat(j->tmp_fd, NAME, 0) != 0 && errno != ENOENT)
		g_debug("cannot delete the old draft of %s: %s", shown, g_strerror(errno));
	/* Kept open: on any failure the old journal stays in use, whole. */
	int fd = openat(j->tmp_fd, NAME,
			O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	bool ok = fd >= 0 || set_io_error(error, "create", shown);
	if (ok && !write_all(fd, buf, len))
		ok = set_io_error(error, "write", shown);
	/*
	 * On disk before it replaces the old one: a crash must not leave an empty
	 * journal (XFS can), which would empty the cache at the next mount.
	 */
	if (ok && fdatasync(fd) != 0)
		ok = set_io_error(error, "sync", shown);
	if (!ok && fd >= 0) {
		close(fd);
		unlinkat(j->tmp_fd, NAME, 0);
	}
	g_free(buf);
	g_free(shown);
	if (!ok)
		return false;
	j->drafted = true;
	j->draft_fd = fd;
	j->draft_records = n;
	return true;
}

/* Append the records kept since the begin to the draft, and put it in place. */
static bool finish_draft(struct cfs_journal *j, GError **error)
{
	g_return_val_if_fail(j->drafted, false);
	if (!write_all(j->draft_fd, j->kept->data, j->kept->len))
		return set_io_error(error, "write the new copy of", j->path);
	if (renameat(j->tmp_fd, NAME, j->dir_fd, NAME) != 0)
		return set_io_error(error, "put in place the new copy of", j->path);
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
	} else if (j->drafted) {
		close(j->draft_fd);
		unlinkat(j->tmp_fd, NAME, 0);
	}
	j->lost |= !ok;
	j->draft_fd = -1;
	j->drafted = false;
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
	g_free(j);
}
