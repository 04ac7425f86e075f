/* The spill tier's index of block files, their records in the journal, the room under the cap. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "spill_i.h"
#include "util/stats.h"

/* du counts files and directories in blocks of this size. */
#define FS_BLOCK UINT64_C(4096)
/* DIR, the cache's directory, tmp/, lock: one block each (blocks/ is measured). */
#define FIXED_BYTES (4 * FS_BLOCK)
/* What adding one name can grow a directory by (a leaf split and an index block). */
#define DIR_GROWTH (2 * FS_BLOCK)
/* Extents ext4 keeps in the inode itself (ext4's on-disk format: i_block holds 4). */
#define EXT4_INODE_EXTENTS 4
/* Extents one 4 KiB ext4 extent block holds: 12-byte entries after a 12-byte header. */
#define EXT4_EXTENTS_PER_BLOCK 340

static struct dentry *entry_of(struct cfs_policy_entry *p)
{
	return (struct dentry *)((char *)p - offsetof(struct dentry, pol));
}

guint disk_key_hash(gconstpointer p)
{
	const struct dkey *k = p;
	return (guint)(k->obj ^ (k->index * 0x9E3779B97F4A7C15ull));
}

gboolean disk_key_equal(gconstpointer a, gconstpointer b)
{
	const struct dkey *x = a, *y = b;
	return x->obj == y->obj && x->index == y->index;
}

/*
 * What du counts for a file of n bytes at most: its data blocks, and the
 * blocks that map them. ext4 keeps 4 extents in the inode; past that, a
 * fragmented file (the cache's churn fragments the free space) needs an
 * extent block for every 340 extents, up to one extent a data block.
 */
static uint64_t du_bytes(uint64_t n)
{
	uint64_t blocks = (n + FS_BLOCK - 1) / FS_BLOCK;
	uint64_t map = blocks > EXT4_INODE_EXTENTS
			       ? (blocks + EXT4_EXTENTS_PER_BLOCK - 1) / EXT4_EXTENTS_PER_BLOCK
			       : 0;
	/* past as many extent blocks as the inode points to, a level more */
	return (blocks + map + (map > EXT4_INODE_EXTENTS)) * FS_BLOCK;
}

uint64_t disk_hash_text(const char *s)
{
	return XXH3_64bits(s, strlen(s));
}

uint64_t disk_file_cost(uint64_t size)
{
	return du_bytes(size);
}

void disk_block_name(const struct dkey *k, char name[BLOCK_NAME])
{
	snprintf(name, BLOCK_NAME, "%016" PRIx64 "-%" PRIu64, k->obj, k->index);
}

/* Its path, for messages. */
char *disk_block_path(const struct cfs_disk *d, const struct dkey *k)
{
	char name[BLOCK_NAME];
	disk_block_name(k, name);
	return g_build_filename(d->blocks, name, NULL);
}

/*
 * Bytes under the cap with the journal grown by records more, and room to
 * rewrite it with grow blocks more than there are.
 */
uint64_t disk_total(const struct cfs_disk *d, unsigned records, unsigned grow)
{
	uint64_t live = g_hash_table_size(d->index) + grow;
	uint64_t journal = cfs_journal_bytes(d->journal) + records * (uint64_t)CFS_JOURNAL_RECORD;
	return d->used + d->pending + FIXED_BYTES + MAX(d->dir_bytes, FS_BLOCK) + DIR_GROWTH +
	       du_bytes(journal) + du_bytes(cfs_journal_size_for(live));
}

void disk_publish(const struct cfs_disk *d)
{
	cfs_stats_gauge_set(CFS_DISK_BYTES, (int64_t)disk_total(d, 0, 0));
	cfs_stats_gauge_set(CFS_DISK_BLOCKS, g_hash_table_size(d->index));
}

void disk_entry_drop(struct cfs_disk *d, struct dentry *e)
{
	cfs_policy_remove(d->policy, &e->pol);
	d->used -= e->bytes;
	g_hash_table_remove(d->index, &e->key);
	g_free(e);
}

struct dentry *disk_entry_put(struct cfs_disk *d, const struct dkey *k, uint64_t bytes,
			      uint64_t etag_hash, unsigned readers)
{
	struct dentry *e = g_hash_table_lookup(d->index, k);
	if (e)
		disk_entry_drop(d, e);
	e = g_new0(struct dentry, 1);
	*e = (struct dentry){
		.key = *k, .bytes = bytes, .etag_hash = etag_hash, .readers = readers
	};
	g_hash_table_insert(d->index, &e->key, e);
	cfs_policy_add(d->policy, &e->pol);
	d->used += bytes;
	return e;
}

/* ---- the journal's records ---- */

void disk_note_del(struct cfs_disk *d, const struct dkey *k)
{
	struct cfs_journal_rec r = { k->obj, k->index, 0, 0, false };
	cfs_journal_append(d->journal, &r);
}

void disk_replay_one(const struct cfs_journal_rec *r, void *ctx)
{
	struct cfs_disk *d = ctx;
	struct dkey k = { r->obj, r->index };
	struct dentry *e = g_hash_table_lookup(d->index, &k);
	if (r->add)
		disk_entry_put(d, &k, r->bytes, r->etag_hash, 0);
	else if (e)
		disk_entry_drop(d, e);
}

static void rec_of_entry(struct cfs_policy_entry *p, struct cfs_journal_rec *r)
{
	struct dentry *e = entry_of(p);
	*r = (struct cfs_journal_rec){ e->key.obj, e->key.index, e->bytes, e->etag_hash, true };
}

/*
 * The blocks there are as records, listed so that the next mount, adding
 * them back in turn, rebuilds their eviction order (counts of use are not
 * kept). Under the lock.
 */
static struct cfs_journal_rec *records_in_order(struct cfs_disk *d, guint *n)
{
	*n = g_hash_table_size(d->index);
	struct cfs_journal_rec *recs = g_new(struct cfs_journal_rec, MAX(*n, 1));
	bool reverse = cfs_policy_adds_first(d->policy);
	guint i = 0;
	for (struct cfs_policy_entry *p = cfs_policy_first(d->policy); p;
	     p = cfs_policy_next(d->policy, p), i++)
		rec_of_entry(p, &recs[reverse ? *n - 1 - i : i]);
	return recs;
}

/*
 * Rewrite the journal as the blocks there are. Takes the lock, but lets it
 * go while the new file is written: reads go on meanwhile.
 */
bool disk_compact(struct cfs_disk *d, GError **error)
{
	guint n;
	g_mutex_lock(&d->lock);
	struct cfs_journal_rec *recs = records_in_order(d, &n);
	cfs_journal_rewrite_begin(d->journal);
	g_mutex_unlock(&d->lock);
	bool ok = cfs_journal_rewrite_write(d->journal, recs, n, error);
	g_mutex_lock(&d->lock);
	ok = cfs_journal_rewrite_end(d->journal, ok, error);
	g_mutex_unlock(&d->lock);
	g_free(recs);
	return ok;
}

/* ---- room ---- */

/* Not being read back, and not the block being written (keep), which the write replaces. */
static bool evictable(struct cfs_policy_entry *p, void *keep)
{
	struct dentry *e = entry_of(p);
	return e->readers == 0 && !(keep && disk_key_equal(&e->key, keep));
}

/* What blocks/ takes now: ext4 grows a directory with its names, and never shrinks it. */
void disk_measure_dir(struct cfs_disk *d)
{
	struct stat st;
	if (d->blocks_fd >= 0 && fstat(d->blocks_fd, &st) == 0)
		d->dir_bytes = (uint64_t)st.st_blocks * S_BLKSIZE;
}

/*
 * Drop blocks other than keep until need more bytes (and the records it
 * takes) fit under the cap, returning the keys of the files to delete;
 * false when they cannot fit. Under the lock.
 */
bool disk_make_room(struct cfs_disk *d, uint64_t need, const struct dkey *keep, GArray *gone)
{
	disk_measure_dir(d);
	while (disk_total(d, gone->len + 2, need > 0) + need > d->cap) {
		struct cfs_policy_entry *p = cfs_policy_victim(d->policy, evictable, (void *)keep);
		if (!p)
			return false;
		struct dentry *e = entry_of(p);
		g_array_append_val(gone, e->key);
		disk_entry_drop(d, e);
		cfs_stats_add(CFS_DISK_EVICTIONS, 1);
	}
	return true;
}

void disk_unlink_files(struct cfs_disk *d, GArray *gone)
{
	for (guint i = 0; i < gone->len; i++) {
		char name[BLOCK_NAME];
		disk_block_name(&g_array_index(gone, struct dkey, i), name);
		if (unlinkat(d->blocks_fd, name, 0) != 0 && errno != ENOENT)
			g_warning("cannot delete %s/%s: %s", d->blocks, name, g_strerror(errno));
	}
}

/* Record the files of gone deleted. Under the lock. */
void disk_note_gone(struct cfs_disk *d, GArray *gone)
{
	for (guint i = 0; i < gone->len; i++)
		disk_note_del(d, &g_array_index(gone, struct dkey, i));
	disk_publish(d);
}

/* Delete the files of gone, then record it: a crash in between leaves a record without a file. */
void disk_delete_files(struct cfs_disk *d, GArray *gone)
{
	disk_unlink_files(d, gone);
	g_mutex_lock(&d->lock);
	disk_note_gone(d, gone);
	g_mutex_unlock(&d->lock);
}
