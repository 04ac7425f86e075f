/*
 * Snapshot inodes of rendered files (.chunkfs/stats, metrics, errors).
 *
 * Reads are served by inode, with no per-open state: the kernel does not
 * send OPEN at all once it knows the file system has none (no-open
 * support). A rendered file's text changes between renderings, so each
 * lookup of it renders once into an inode of its own whose bytes never
 * change: a reader reads one rendering from its first byte to its last,
 * and the page cache may keep it.
 */
#include "fs_i.h"

struct snapshot {
	GBytes *bytes;
	int64_t mtime_us; /* when it was rendered, microseconds since the epoch */
	uint64_t nlookup; /* lookups the kernel holds */
};

static void snapshot_free(gpointer p)
{
	struct snapshot *s = p;
	g_bytes_unref(s->bytes);
	g_free(s);
}

void snapshots_init(struct snapshots *ss)
{
	g_mutex_init(&ss->lock);
	ss->table = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, snapshot_free);
	ss->next = 0;
}

void snapshots_clear(struct snapshots *ss)
{
	g_hash_table_destroy(ss->table);
	g_mutex_clear(&ss->lock);
}

uint64_t snapshot_add(struct snapshots *ss, GBytes *bytes, int64_t mtime_us)
{
	struct snapshot *s = g_new(struct snapshot, 1);
	*s = (struct snapshot){ g_bytes_ref(bytes), mtime_us, 1 };
	g_mutex_lock(&ss->lock);
	uint64_t ino = SNAPSHOT_INO_FLAG | ++ss->next;
	g_hash_table_insert(ss->table, g_memdup2(&ino, sizeof(ino)), s);
	g_mutex_unlock(&ss->lock);
	return ino;
}

GBytes *snapshot_get(struct snapshots *ss, uint64_t ino, int64_t *mtime_us)
{
	g_mutex_lock(&ss->lock);
	struct snapshot *s = g_hash_table_lookup(ss->table, &ino);
	GBytes *bytes = s ? g_bytes_ref(s->bytes) : NULL;
	if (s && mtime_us)
		*mtime_us = s->mtime_us;
	g_mutex_unlock(&ss->lock);
	return bytes;
}

void snapshot_forget(struct snapshots *ss, uint64_t ino, uint64_t nlookup)
{
	g_mutex_lock(&ss->lock);
	struct snapshot *s = g_hash_table_lookup(ss->table, &ino);
	if (s && s->nlookup <= nlookup)
		g_hash_table_remove(ss->table, &ino);
	else if (s)
		s->nlookup -= nlookup;
	g_mutex_unlock(&ss->lock);
}
