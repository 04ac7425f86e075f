/*
 * Private to the spill tier (spill.h): its state, shared by the files it is
 * split into. room.c keeps the index of block files, their records in the
 * journal and the room under the cap; spill.c opens the directory, replays
 * the journal, sweeps and closes; writer.c and reader.c are the threads
 * that write block files and read them back. Each function below says
 * whether it wants the tier's lock held, takes it, or needs none.
 */
#ifndef CHUNKFS_SPILL_I_H
#define CHUNKFS_SPILL_I_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache/policy/policy.h"
#include "journal_i.h"
#include "spill/spill.h"

/* A block file's name in blocks/: "<object key, 16 hex digits>-<index>". */
#define BLOCK_NAME 48

struct dkey {
	uint64_t obj;
	uint64_t index;
};

struct dentry {
	struct dkey key;
	uint64_t bytes; /* what it costs under the cap */
	uint64_t etag_hash;
	unsigned readers; /* reads back in progress: not evicted meanwhile */
	struct cfs_policy_entry pol;
};

struct cfs_disk {
	char *root, *blocks, *tmp; /* for messages: every file is reached through the fds */
	uint64_t cap, block_size;
	bool compress;
	int lock_fd;
	int root_fd, blocks_fd, tmp_fd; /* the directories, opened O_NOFOLLOW and checked */
	GThreadPool *writer, *readers;

	GMutex lock;       /* guards everything below */
	GHashTable *index; /* struct dkey * -> struct dentry * */
	struct cfs_policy *policy;
	uint64_t used;      /* bytes of the block files, as counted */
	uint64_t pending;   /* bytes of the file being written */
	uint64_t dir_bytes; /* blocks/ as du counts it (it never shrinks on ext4) */
	struct cfs_journal *journal;
	bool failing; /* the last write failed */
};

/* ---- room.c ---- */

/* The GHashFunc and GEqualFunc of struct dkey (the index's keys). */
guint disk_key_hash(gconstpointer p);
gboolean disk_key_equal(gconstpointer a, gconstpointer b);
/* XXH3-64 of the NUL-terminated s: the key of an object's name, the hash of an ETag. */
uint64_t disk_hash_text(const char *s);
/* Bytes that a file of size bytes costs under the cap (what du counts on ext4). */
uint64_t disk_file_cost(uint64_t size);
/* The name of k's block file in blocks/, NUL-terminated, into name. */
void disk_block_name(const struct dkey *k, char name[BLOCK_NAME]);
/* The path of k's block file, for messages; the caller frees it (g_free()). */
char *disk_block_path(const struct cfs_disk *d, const struct dkey *k);

/*
 * The index, under the lock (or before the threads start): bytes under the
 * cap with records more in the journal and room to rewrite it with grow
 * blocks more; the gauges of .stats; a block counted (replacing any entry
 * of k) or dropped (e freed).
 */
uint64_t disk_total(const struct cfs_disk *d, unsigned records, unsigned grow);
void disk_publish(const struct cfs_disk *d);
struct dentry *disk_entry_put(struct cfs_disk *d, const struct dkey *k, uint64_t bytes,
			      uint64_t etag_hash, unsigned readers);
void disk_entry_drop(struct cfs_disk *d, struct dentry *e);

/* The journal's record of k dropped. Under the lock. */
void disk_note_del(struct cfs_disk *d, const struct dkey *k);
/* The cfs_journal_replay_fn of cfs_journal_open(): ctx is the struct cfs_disk. */
void disk_replay_one(const struct cfs_journal_rec *r, void *ctx);
/* Rewrite the journal as the blocks there are. Takes the lock; false with error set. */
bool disk_compact(struct cfs_disk *d, GError **error);

/*
 * Room under the cap, under the lock: blocks/ measured again; blocks other
 * than keep dropped until need bytes more fit, their keys (struct dkey)
 * appended to gone, false when they cannot fit; the records of gone.
 */
void disk_measure_dir(struct cfs_disk *d);
bool disk_make_room(struct cfs_disk *d, uint64_t need, const struct dkey *keep, GArray *gone);
void disk_note_gone(struct cfs_disk *d, GArray *gone);
/* The block files of gone deleted, without the lock; then (taking it) recorded. */
void disk_unlink_files(struct cfs_disk *d, GArray *gone);
void disk_delete_files(struct cfs_disk *d, GArray *gone);

/* ---- spill.c ---- */

/* Delete the files of blocks/ that the journal does not count. Takes the lock. */
void disk_sweep(struct cfs_disk *d);

/* ---- the GFunc of the thread pools; user is the struct cfs_disk ---- */

/* reader.c: data is a struct load, freed here. */
void disk_load_run(gpointer data, gpointer user);
/* writer.c: data is a struct spill (freed here), or the struct cfs_disk: the sweep. */
void disk_spill_run(gpointer data, gpointer user);

#endif
