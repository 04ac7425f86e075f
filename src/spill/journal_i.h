/*
 * Private to the spill tier: its journal, the on-disk index of the block
 * files. A 24-byte header ("CFSJRNL\n", uint32 LE version 1, 4 zero
 * bytes, uint64 LE block size), then 32-byte records: uint64 object key,
 * uint64 block index, uint64 ETag hash, uint32 bytes the block costs under
 * the cap, one byte of flags (1: added; 0: dropped), and the low 24 bits of
 * the XXH3-64 of the 29 bytes before them. Records are appended with one
 * write() each; a torn last record fails its check and ends the replay.
 * Not thread-safe: the spill tier's lock guards it, except for
 * cfs_journal_rewrite_write().
 */
#ifndef CHUNKFS_JOURNAL_I_H
#define CHUNKFS_JOURNAL_I_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define CFS_JOURNAL_RECORD 32

struct cfs_journal_rec {
	uint64_t obj, index, bytes, etag_hash;
	bool add;
};

struct cfs_journal;

typedef void (*cfs_journal_replay_fn)(const struct cfs_journal_rec *r, void *ctx);

/*
 * Read the file "journal" of the directory dir_fd (shown as path in
 * messages; the caller keeps both) and replay its records in order. A
 * journal that is missing, torn in its header, or of another version or
 * block size is not replayed: *unknown is set, and the files it would have
 * counted must go. It is read in slices, whatever its length (never a
 * buffer of its size), and opened with O_NOFOLLOW | O_NONBLOCK: a symlink,
 * a FIFO or anything else that is not a regular file fails. Appending
 * starts after the first rewrite, which writes its new file "journal" in
 * the directory tmp_fd (same file system; a file there of that name is
 * replaced, a symlink never followed) and renames it into dir_fd. Fails
 * with a GError naming path when it cannot be read.
 */
struct cfs_journal *cfs_journal_open(int dir_fd, const char *path, int tmp_fd,
				     uint64_t block_size, cfs_journal_replay_fn replay, void *ctx,
				     bool *unknown, GError **error);

/*
 * Append one record; false (logged once) when it could not be written.
 * During a rewrite it is kept for the new file either way (a record of a
 * file that is not there is harmless: a read-back drops it).
 */
bool cfs_journal_append(struct cfs_journal *j, const struct cfs_journal_rec *r);

/*
 * Replace the journal with the header and recs[0, n) (a new file renamed
 * over it), in three steps so that the lock is not held while the file is
 * written: begin (under the lock: from now on appended records are kept
 * for the new file too), write (without it; recs is what the journal held
 * at begin), end (under it: the kept records follow recs, and the new file
 * replaces the old one if ok and every step worked; false with error set
 * otherwise, the old journal still in use). One rewrite at a time.
 */
void cfs_journal_rewrite_begin(struct cfs_journal *j);
bool cfs_journal_rewrite_write(struct cfs_journal *j, const struct cfs_journal_rec *recs,
			       guint n, GError **error);
bool cfs_journal_rewrite_end(struct cfs_journal *j, bool ok, GError **error);

/*
 * The journal's length in bytes (until the first rewrite, that of the file
 * read at open, which is still there), and the records appended since.
 */
uint64_t cfs_journal_bytes(const struct cfs_journal *j);
uint64_t cfs_journal_records(const struct cfs_journal *j);

/*
 * Whether an append or a rewrite failed since the last rewrite: the journal
 * may then count a block whose file is gone, until a rewrite puts it right.
 */
bool cfs_journal_lost(const struct cfs_journal *j);

/* The length of a journal holding records records. */
uint64_t cfs_journal_size_for(uint64_t records);

/* Close the journal's file and free j (may be NULL); appends were written as they came. */
void cfs_journal_close(struct cfs_journal *j);

#endif
