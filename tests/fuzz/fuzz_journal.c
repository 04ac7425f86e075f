/*
 * libFuzzer target: the spill tier's journal as read back at mount, from a
 * cache directory someone else may have written. Input: a flags byte, then
 * a body. The file "journal" is the body repeated 1 + (flags >> 1) * 16
 * times (at most 96 KiB: long enough for a record to straddle the end of
 * the reader's first 64 KiB slice; every later slice starts and ends on a
 * record, as a file of whole records does at its end), after the header
 * of a 1 MiB block size when flags bit 0 is set. Each buffer is made at its
 * size, not grown, and all stay under 128 KiB: AddressSanitizer maps and
 * unmaps larger ones at each input, which took most of the time. It is
 * replayed with cfs_journal_open(), and then:
 * - *unknown must be set exactly when the file does not start with the
 *   header the journal itself writes, and then nothing may be replayed;
 * - the records replayed, written back by a rewrite, must give the file's
 *   first bytes again (every record is decoded as it was written);
 * - the record the replay stopped at, alone after the header, must not
 *   replay either (it stopped for the record, not for where it lay).
 * The files live in a directory of /dev/shm (else $TMPDIR) made at start.
 */
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal_i.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BLOCK_SIZE (1u << 20)
#define MAX_FILE (96u << 10)
#define HEADER_LEN 24

static int dir_fd = -1, tmp_fd = -1;
static char *dir_path, *tmp_path;
static uint8_t header[HEADER_LEN];

static void put_file(const uint8_t *bytes, size_t len)
{
	int fd = openat(dir_fd, "journal", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, bytes, len) != (ssize_t)len || close(fd) != 0)
		abort();
}

/* The file "journal" of dir_fd, whole (read into an array of its size, not grown). */
static GByteArray *get_file(void)
{
	int fd = openat(dir_fd, "journal", O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0 || st.st_size > HEADER_LEN + MAX_FILE)
		abort();
	GByteArray *b = g_byte_array_sized_new((guint)st.st_size);
	g_byte_array_set_size(b, (guint)st.st_size);
	if (read(fd, b->data, b->len) != (ssize_t)b->len)
		abort();
	close(fd);
	return b;
}

static void collect(const struct cfs_journal_rec *r, void *ctx)
{
	g_array_append_vals(ctx, r, 1);
}

/*
 * Replay the file "journal" of len bytes; the records it held, the journal
 * left open in *out.
 */
static GArray *replay(size_t len, struct cfs_journal **out, bool *unknown)
{
	GArray *recs = g_array_sized_new(FALSE, FALSE, sizeof(struct cfs_journal_rec),
					 (guint)(len / CFS_JOURNAL_RECORD));
	GError *err = NULL;
	*out = cfs_journal_open(dir_fd, "fuzz/journal", tmp_fd, BLOCK_SIZE, collect, recs, unknown,
				&err);
	if (!*out)
		abort(); /* a regular file there is always readable */
	return recs;
}

/* Rewrite j with recs: the file "journal" then holds exactly them. */
static void rewrite(struct cfs_journal *j, const GArray *recs)
{
	cfs_journal_rewrite_begin(j);
	if (!cfs_journal_rewrite_write(j, (const struct cfs_journal_rec *)recs->data, recs->len,
				       NULL) ||
	    !cfs_journal_rewrite_end(j, true, NULL))
		abort();
}

static void remove_dirs(void)
{
	unlinkat(tmp_fd, "journal", 0);
	unlinkat(dir_fd, "journal", 0);
	g_rmdir(tmp_path);
	g_rmdir(dir_path);
}

static void setup(void)
{
	const char *base = g_access("/dev/shm", W_OK) == 0 ? "/dev/shm" : g_get_tmp_dir();
	dir_path = g_build_filename(base, "chunkfs-fuzz-journal-XXXXXX", NULL);
	if (!g_mkdtemp(dir_path))
		abort();
	tmp_path = g_build_filename(dir_path, "tmp", NULL);
	if (g_mkdir(tmp_path, 0700) != 0)
		abort();
	dir_fd = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	tmp_fd = open(tmp_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	atexit(remove_dirs);
	put_file(NULL, 0);
	bool unknown;
	struct cfs_journal *j;
	GArray *none = replay(0, &j, &unknown);
	rewrite(j, none);
	cfs_journal_close(j);
	g_array_free(none, TRUE);
	GByteArray *h = get_file();
	if (h->len != HEADER_LEN)
		abort();
	memcpy(header, h->data, HEADER_LEN);
	g_byte_array_free(h, TRUE);
}

static GByteArray *make_file(const uint8_t *data, size_t size)
{
	size_t body = size - 1, reps = 1 + (size_t)(data[0] >> 1) * 16;
	if (body)
		reps = MIN(reps, MAX_FILE / body);
	GByteArray *file = g_byte_array_sized_new((guint)(HEADER_LEN + body * reps));
	if (data[0] & 1)
		g_byte_array_append(file, header, HEADER_LEN);
	for (size_t i = 0; body && i < reps; i++)
		g_byte_array_append(file, data + 1, (guint)body);
	return file;
}

/* The record at which a replay of file stopped must not replay on its own. */
static void check_stop(const GByteArray *file, guint n)
{
	size_t at = HEADER_LEN + (size_t)n * CFS_JOURNAL_RECORD;
	if (file->len < at + CFS_JOURNAL_RECORD)
		return;
	uint8_t alone[HEADER_LEN + CFS_JOURNAL_RECORD];
	memcpy(alone, header, HEADER_LEN);
	memcpy(alone + HEADER_LEN, file->data + at, CFS_JOURNAL_RECORD);
	put_file(alone, sizeof(alone));
	bool unknown;
	struct cfs_journal *j;
	GArray *recs = replay(sizeof(alone), &j, &unknown);
	if (unknown || recs->len != 0)
		abort();
	cfs_journal_close(j);
	g_array_free(recs, TRUE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (dir_fd < 0)
		setup();
	if (size < 1)
		return 0;
	GByteArray *file = make_file(data, size);
	put_file(file->data, file->len);
	bool unknown;
	struct cfs_journal *j;
	GArray *recs = replay(file->len, &j, &unknown);
	bool foreign = file->len < HEADER_LEN || memcmp(file->data, header, HEADER_LEN) != 0;
	if (unknown != foreign || (unknown && recs->len))
		abort();
	if (!unknown) {
		rewrite(j, recs);
		GByteArray *back = get_file();
		if (back->len != HEADER_LEN + (size_t)recs->len * CFS_JOURNAL_RECORD ||
		    back->len > file->len || memcmp(back->data, file->data, back->len) != 0)
			abort();
		g_byte_array_free(back, TRUE);
		check_stop(file, recs->len);
	}
	cfs_journal_close(j);
	g_array_free(recs, TRUE);
	g_byte_array_free(file, TRUE);
	return 0;
}
