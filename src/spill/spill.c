/* The spill tier: block files, the journal, the cap, the writer and the readers. */
#include "spill/spill.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <gio/gio.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include "util/errors.h"
#include "cache/policy/policy.h"
#include "util/stats.h"
#include "journal_i.h"

/* du counts files and directories in blocks of this size. */
#define FS_BLOCK UINT64_C(4096)
/* DIR, the cache's directory, tmp/, lock: one block each (blocks/ is measured). */
#define FIXED_BYTES (4 * FS_BLOCK)
/* What adding one name can grow a directory by (a leaf split and an index block). */
#define DIR_GROWTH (2 * FS_BLOCK)
/* Read-backs at once: 1 MiB reads, enough of them at a time to keep a disk busy. */
#define READERS 8
/* The journal is rewritten once it holds this many more records than blocks. */
#define COMPACT_SLACK 4096
/* Largest block file read back: a block, its header and extents. */
#define MAX_HEADER (UINT64_C(1) << 20)
/* Extents ext4 keeps in the inode itself (ext4's on-disk format: i_block holds 4). */
#define EXT4_INODE_EXTENTS 4
/* Extents one 4 KiB ext4 extent block holds: 12-byte entries after a 12-byte header. */
#define EXT4_EXTENTS_PER_BLOCK 340
/* The automatic cap is this fraction (1/N) of the space: room left for everything else. */
#define AUTO_CAP_DIVISOR 10
/* The journal is rewritten once it holds this many records per block (plus COMPACT_SLACK). */
#define COMPACT_RATIO 2

struct dkey {
	uint64_t obj;
	uint64_t index;
};

struct dentry {
	struct dkey key;
	uint64_t bytes;              /* what it costs under the cap */
	uint64_t etag_hash;
	unsigned readers;            /* reads back in progress: not evicted meanwhile */
	struct cfs_policy_entry pol;
};

struct cfs_disk {
	char *root, *blocks, *tmp;   /* for messages: every file is reached through the fds */
	uint64_t cap, block_size;
	bool compress;
	int lock_fd;
	int root_fd, blocks_fd, tmp_fd; /* the directories, opened O_NOFOLLOW and checked */
	GThreadPool *writer, *readers;

	GMutex lock;                 /* guards everything below */
	GHashTable *index;           /* struct dkey * -> struct dentry * */
	struct cfs_policy *policy;
	uint64_t used;               /* bytes of the block files, as counted */
	uint64_t pending;            /* bytes of the file being written */
	uint64_t dir_bytes;          /* blocks/ as du counts it (it never shrinks on ext4) */
	struct cfs_journal *journal;
	bool failing;                /* the last write failed */
};

static struct dentry *entry_of(struct cfs_policy_entry *p)
{
	return (struct dentry *)((char *)p - offsetof(struct dentry, pol));
}

static guint dkey_hash(gconstpointer p)
{
	const struct dkey *k = p;
	return (guint)(k->obj ^ (k->index * 0x9E3779B97F4A7C15ull));
}

static gboolean dkey_equal(gconstpointer a, gconstpointer b)
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

static uint64_t hash_text(const char *s)
{
	return XXH3_64bits(s, strlen(s));
}

static uint64_t file_cost(uint64_t size)
{
	return du_bytes(size);
}

/* A block file's name in blocks/: "<object key, 16 hex digits>-<index>". */
#define BLOCK_NAME 48

static void block_name(const struct dkey *k, char name[BLOCK_NAME])
{
	snprintf(name, BLOCK_NAME, "%016" PRIx64 "-%" PRIu64, k->obj, k->index);
}

/* Its path, for messages. */
static char *block_path(const struct cfs_disk *d, const struct dkey *k)
{
	char name[BLOCK_NAME];
	block_name(k, name);
	return g_build_filename(d->blocks, name, NULL);
}

/*
 * Bytes under the cap with the journal grown by records more, and room to
 * rewrite it with grow blocks more than there are.
 */
static uint64_t total(const struct cfs_disk *d, unsigned records, unsigned grow)
{
	uint64_t live = g_hash_table_size(d->index) + grow;
	uint64_t journal = cfs_journal_bytes(d->journal) + records * (uint64_t)CFS_JOURNAL_RECORD;
	return d->used + d->pending + FIXED_BYTES + MAX(d->dir_bytes, FS_BLOCK) + DIR_GROWTH +
	       du_bytes(journal) + du_bytes(cfs_journal_size_for(live));
}

static void publish(const struct cfs_disk *d)
{
	cfs_stats_gauge_set(CFS_DISK_BYTES, (int64_t)total(d, 0, 0));
	cfs_stats_gauge_set(CFS_DISK_BLOCKS, g_hash_table_size(d->index));
}

static void entry_drop(struct cfs_disk *d, struct dentry *e)
{
	cfs_policy_remove(d->policy, &e->pol);
	d->used -= e->bytes;
	g_hash_table_remove(d->index, &e->key);
	g_free(e);
}

static struct dentry *entry_put(struct cfs_disk *d, const struct dkey *k, uint64_t bytes,
				uint64_t etag_hash, unsigned readers)
{
	struct dentry *e = g_hash_table_lookup(d->index, k);
	if (e)
		entry_drop(d, e);
	e = g_new0(struct dentry, 1);
	*e = (struct dentry){ .key = *k, .bytes = bytes, .etag_hash = etag_hash,
			      .readers = readers };
	g_hash_table_insert(d->index, &e->key, e);
	cfs_policy_add(d->policy, &e->pol);
	d->used += bytes;
	return e;
}

/* ---- the journal's records ---- */

static void note_del(struct cfs_disk *d, const struct dkey *k)
{
	struct cfs_journal_rec r = { k->obj, k->index, 0, 0, false };
	cfs_journal_append(d->journal, &r);
}

static void replay_one(const struct cfs_journal_rec *r, void *ctx)
{
	struct cfs_disk *d = ctx;
	struct dkey k = { r->obj, r->index };
	struct dentry *e = g_hash_table_lookup(d->index, &k);
	if (r->add)
		entry_put(d, &k, r->bytes, r->etag_hash, 0);
	else if (e)
		entry_drop(d, e);
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
static bool compact(struct cfs_disk *d, GError **error)
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
	return e->readers == 0 && !(keep && dkey_equal(&e->key, keep));
}

/* What blocks/ takes now: ext4 grows a directory with its names, and never shrinks it. */
static void measure_dir(struct cfs_disk *d)
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
static bool make_room(struct cfs_disk *d, uint64_t need, const struct dkey *keep, GArray *gone)
{
	measure_dir(d);
	while (total(d, gone->len + 2, need > 0) + need > d->cap) {
		struct cfs_policy_entry *p = cfs_policy_victim(d->policy, evictable, (void *)keep);
		if (!p)
			return false;
		struct dentry *e = entry_of(p);
		g_array_append_val(gone, e->key);
		entry_drop(d, e);
		cfs_stats_add(CFS_DISK_EVICTIONS, 1);
	}
	return true;
}

static void unlink_files(struct cfs_disk *d, GArray *gone)
{
	for (guint i = 0; i < gone->len; i++) {
		char name[BLOCK_NAME];
		block_name(&g_array_index(gone, struct dkey, i), name);
		if (unlinkat(d->blocks_fd, name, 0) != 0 && errno != ENOENT)
			g_warning("cannot delete %s/%s: %s", d->blocks, name, g_strerror(errno));
	}
}

/* Record the files of gone deleted. Under the lock. */
static void note_gone(struct cfs_disk *d, GArray *gone)
{
	for (guint i = 0; i < gone->len; i++)
		note_del(d, &g_array_index(gone, struct dkey, i));
	publish(d);
}

/* Delete the files of gone, then record it: a crash in between leaves a record without a file. */
static void delete_files(struct cfs_disk *d, GArray *gone)
{
	unlink_files(d, gone);
	g_mutex_lock(&d->lock);
	note_gone(d, gone);
	g_mutex_unlock(&d->lock);
}

/* ---- set-up ---- */

/*
 * A directory of the cache must be this user's and writable by no one else:
 * anyone who can write there can make chunkfs serve their bytes, or delete
 * files where a symlink points.
 */
static bool dir_safe(int fd, const char *path, GError **error)
{
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "cannot stat %s: %s",
			    path, g_strerror(e));
		return false;
	}
	if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
			    "refusing the cache directory %s: %s (mode %03o, owner %u); it must be "
			    "yours and writable by you alone", path,
			    st.st_uid != geteuid() ? "owned by another user" :
			    "writable by group or others", (unsigned)(st.st_mode & 07777),
			    (unsigned)st.st_uid);
		return false;
	}
	return true;
}

/*
 * Open (making it, 0700, when missing) the directory name of dir_fd, never
 * through a symlink, and check it; path is for messages. -1 on failure.
 */
static int open_dir_at(int dir_fd, const char *name, const char *path, GError **error)
{
	if (mkdirat(dir_fd, name, 0700) != 0 && errno != EEXIST) {
		int e = errno;
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "cannot create %s: %s",
			    path, g_strerror(e));
		return -1;
	}
	int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e),
			    "cannot open the cache directory %s: %s", path,
			    e == ELOOP || e == ENOTDIR ? "not a directory (a symlink?)" :
			    g_strerror(e));
		return -1;
	}
	if (!dir_safe(fd, path, error)) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * --cache-dir itself, made 0700 with its missing parents. The path is the
 * user's: a symlink in it is followed, but the directory it reaches is
 * checked like those below it.
 */
static int open_top(const char *dir, GError **error)
{
	if (g_mkdir_with_parents(dir, 0700) != 0) {
		int e = errno;
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "cannot create %s: %s",
			    dir, g_strerror(e));
		return -1;
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "cannot open %s: %s", dir,
			    g_strerror(e));
		return -1;
	}
	if (!dir_safe(fd, dir, error)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Take the cache's lock and record this process in it. */
static bool take_lock(struct cfs_disk *d, GError **error)
{
	char *path = g_build_filename(d->root, "lock", NULL);
	d->lock_fd = openat(d->root_fd, "lock",
			    O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
	struct stat st;
	if (d->lock_fd >= 0 && (fstat(d->lock_fd, &st) != 0 || !S_ISREG(st.st_mode))) {
		close(d->lock_fd);
		d->lock_fd = -1;
		errno = EINVAL;
	}
	bool ok = d->lock_fd >= 0 && flock(d->lock_fd, LOCK_EX | LOCK_NB) == 0;
	if (!ok && d->lock_fd >= 0 && errno == EWOULDBLOCK) {
		char pid[32] = "";
		ssize_t n = pread(d->lock_fd, pid, sizeof(pid) - 1, 0);
		pid[MAX(n, 0)] = '\0';
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_BUSY,
			    "the cache %s is in use by another chunkfs mount of the same URL (PID %s);"
			    " give another --cache-dir, or --disk-cache=0", d->root, g_strstrip(pid));
	} else if (!ok) {
		int e = errno;
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "cannot lock %s: %s", path,
			    g_strerror(e));
	}
	g_free(path);
	return ok;
}

static void write_pid(struct cfs_disk *d)
{
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(d->lock_fd, 0) != 0 || pwrite(d->lock_fd, pid, (size_t)n, 0) != n)
		g_debug("cannot write the PID into %s/lock: %s", d->root, g_strerror(errno));
}

/* A new stream over the directory dir_fd (whose own offset is left alone), or NULL. */
static DIR *list_dir(int dir_fd)
{
	int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dp = fd >= 0 ? fdopendir(fd) : NULL;
	if (fd >= 0 && !dp)
		close(fd);
	return dp;
}

/*
 * Delete every entry of the directory dir_fd (shown as path): a crash's
 * temporaries, or blocks of another block size. A symlink is deleted
 * itself, never what it points to.
 */
static void empty_dir(int dir_fd, const char *path)
{
	DIR *dp = list_dir(dir_fd);
	struct dirent *de;
	while (dp && (de = readdir(dp))) {
		if (de->d_name[0] == '.')
			continue;
		if (unlinkat(dir_fd, de->d_name, 0) != 0)
			g_warning("cannot delete %s/%s: %s", path, de->d_name, g_strerror(errno));
	}
	if (dp)
		closedir(dp);
}

/*
 * A tenth of the space there is for the cache: what is free where it lives
 * and what it holds already, which it may reuse (counting only the free
 * space would shrink the cap at every mount of a filled cache), at most
 * CFS_DISK_CAP_AUTO_MAX. After the journal is read.
 */
static uint64_t auto_cap(const struct cfs_disk *d)
{
	struct statvfs sv;
	if (fstatvfs(d->root_fd, &sv) != 0)
		return 0;
	uint64_t space = (uint64_t)sv.f_bavail * sv.f_frsize + total(d, 0, 0);
	uint64_t cap = MIN(space / AUTO_CAP_DIVISOR, CFS_DISK_CAP_AUTO_MAX);
	g_debug("spill tier %s: cap %" PRIu64 " MiB (a tenth of the free space and what it holds)",
		d->root, cap >> 20);
	return cap;
}

static bool make_tree(struct cfs_disk *d, const struct cfs_disk_config *cfg, GError **error)
{
	char key[17];
	snprintf(key, sizeof(key), "%016" PRIx64, hash_text(cfg->url));
	d->root = g_build_filename(cfg->dir, key, NULL);
	d->blocks = g_build_filename(d->root, "blocks", NULL);
	d->tmp = g_build_filename(d->root, "tmp", NULL);
	int top = open_top(cfg->dir, error);
	if (top < 0)
		return false;
	d->root_fd = open_dir_at(top, key, d->root, error);
	close(top);
	return d->root_fd >= 0 &&
	       (d->blocks_fd = open_dir_at(d->root_fd, "blocks", d->blocks, error)) >= 0 &&
	       (d->tmp_fd = open_dir_at(d->root_fd, "tmp", d->tmp, error)) >= 0;
}

/*
 * Read the journal into the index. Without a journal that can be trusted
 * (none, or another block size), files it does not count may be there:
 * they go, so that the cap holds.
 */
static bool load_journal(struct cfs_disk *d, GError **error)
{
	char *path = g_build_filename(d->root, "journal", NULL);
	bool unknown = false;
	d->journal = cfs_journal_open(d->root_fd, path, d->tmp_fd, d->block_size, replay_one, d,
				      &unknown, error);
	g_free(path);
	if (!d->journal)
		return false;
	if (unknown)
		empty_dir(d->blocks_fd, d->blocks);
	return true;
}

/*
 * Rewrite the journal compact, so that appending can start. On a full disk
 * the mount goes on: blocks are read back, but none is spilled until a
 * later try (after each spill refused) can write it.
 */
static void start_journal(struct cfs_disk *d)
{
	GError *err = NULL;
	if (!compact(d, &err)) {
		g_warning("%s; blocks are not spilled until it can be written", err->message);
		g_error_free(err);
	}
}

struct cfs_disk *cfs_disk_open(const struct cfs_disk_config *cfg, GError **error)
{
	struct cfs_disk *d = g_new0(struct cfs_disk, 1);
	g_mutex_init(&d->lock);
	d->lock_fd = -1;
	d->root_fd = -1;
	d->blocks_fd = -1;
	d->tmp_fd = -1;
	d->cap = cfg->cap;
	d->block_size = cfg->block_size;
	d->compress = cfg->compress;
	d->index = g_hash_table_new(dkey_hash, dkey_equal);
	d->policy = cfs_policy_new(cfg->policy);
	GArray *gone = g_array_new(FALSE, FALSE, sizeof(struct dkey));
	bool ok = make_tree(d, cfg, error) && take_lock(d, error);
	if (ok) {
		empty_dir(d->tmp_fd, d->tmp);
		ok = load_journal(d, error);
	}
	if (ok && d->cap == CFS_DISK_CAP_AUTO) {
		measure_dir(d);
		d->cap = auto_cap(d);
	}
	if (ok) {
		make_room(d, 0, NULL, gone); /* a smaller cap than last time */
		unlink_files(d, gone); /* the compacted journal leaves them out */
		start_journal(d);
	}
	g_array_free(gone, TRUE);
	if (!ok) {
		cfs_disk_free(d);
		return NULL;
	}
	cfs_stats_gauge_set(CFS_DISK_CAP, (int64_t)d->cap);
	publish(d);
	return d;
}

/* ---- reading back ---- */

struct load {
	struct cfs_disk *d;
	struct dkey key;
	struct cfs_spill_id id;
	uint8_t *data;
	int fd;
	int open_errno;
	bool held;                   /* counted among its entry's readers (it was there) */
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
	unlink_files(d, gone);
	for (guint i = 0; i < gone->len; i++)
		entry_drop(d, g_hash_table_lookup(d->index, &g_array_index(gone, struct dkey, i)));
	note_gone(d, gone);
	guint n = gone->len;
	g_array_free(gone, TRUE);
	return n;
}

bool cfs_disk_has(struct cfs_disk *d, const char *name, uint64_t index, const char *etag,
		  uint64_t nblocks)
{
	struct dkey k = { hash_text(name), index };
	g_mutex_lock(&d->lock);
	struct dentry *e = g_hash_table_lookup(d->index, &k);
	bool stale = etag && e && e->etag_hash != hash_text(etag);
	guint dropped = stale ? drop_object(d, k.obj, nblocks) : 0;
	g_mutex_unlock(&d->lock);
	if (stale)
		g_message("%s changed on the server (ETag %s): dropping its %u spilled blocks", name,
			  *etag ? etag : "none", dropped);
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
static bool load_header(struct load *l, uint64_t size, struct cfs_spill_layout *out,
			GError **error)
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
	bool ok = read_at(l, head, need, 0) ?
		cfs_spill_read_header(head, need, size, &l->id, out, &need, error) : io_error(error);
	g_free(head);
	return ok;
}

/* A raw payload goes straight into the block, extent by extent; a compressed one is unpacked. */
static bool load_payload(struct load *l, const struct cfs_spill_layout *lay, GError **error)
{
	if (lay->compressed) {
		uint8_t *payload = g_malloc(MAX(lay->stored, 1));
		bool ok = read_at(l, payload, lay->stored, lay->header) ?
			cfs_spill_unpack(lay, payload, l->data, error) : io_error(error);
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
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%" G_GUINT64_FORMAT
			    " bytes: too large for a block", (uint64_t)st.st_size);
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
		entry_drop(d, e);
		note_del(d, &l->key);
	}
	publish(d);
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

static void load_run(gpointer data, gpointer user)
{
	(void)user;
	struct load *l = data;
	char name[BLOCK_NAME];
	block_name(&l->key, name);
	struct cfs_extents got = { 0 };
	GError *err = NULL;
	if (l->held) {
		/* Never through a symlink, never waiting on a FIFO: load_block() wants a file. */
		l->fd = openat(l->d->blocks_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		l->open_errno = errno;
	}
	int rc = l->held ? load_block(l, &got, &err) : -ENOENT; /* evicted since cfs_disk_has */
	if (l->fd >= 0)
		close(l->fd);
	if (l->held)
		release_reader(l, rc == 0);
	if (rc && l->held) {
		cfs_errors_report(l->id.name, l->id.index * l->d->block_size, l->d->block_size, rc,
				  "spilled block %" PRIu64 " (%s/%s): %s; discarded, fetching it again",
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
	*l = (struct load){ d, { hash_text(id->name), id->index }, *id, data, -1, 0, false, done,
			    ctx };
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

/* ---- writing ---- */

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
	bool room = (!old || old->readers == 0) && make_room(d, cost, &s->key, gone);
	bool ok = room && cfs_journal_append(d->journal, &r); /* before the file: none uncounted */
	if (ok)
		d->pending = cost;
	g_mutex_unlock(&d->lock);
	if (room && !ok)
		cfs_stats_add(CFS_SPILL_ERRORS, 1); /* the append said why, once */
	delete_files(d, gone);
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
		entry_put(d, &s->key, cost, etag_hash, old ? old->readers : 0);
	} else {
		unlinkat(d->blocks_fd, name, 0); /* an older version: deleted, then recorded gone */
		if (old)
			entry_drop(d, old);
		note_del(d, &s->key);
	}
	publish(d);
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
	if (due && !compact(d, &err)) {
		if (lost)
			g_debug("%s", err->message);
		else
			g_warning("%s", err->message);
		g_error_free(err);
	}
}

/*
 * At unmount, whatever the journal's length: the next mount then starts
 * from the eviction order of now, which read-backs changed unrecorded.
 */
static void save_order(struct cfs_disk *d)
{
	GError *err = NULL;
	if (!compact(d, &err)) {
		g_warning("%s; the next mount evicts in the order of the records", err->message);
		g_error_free(err);
	}
}

/* A block file's name as its key; false for any other name. */
static bool parse_name(const char *name, struct dkey *k)
{
	char *end;
	if (strlen(name) < 18 || name[16] != '-' || !g_ascii_isxdigit(name[0]))
		return false;
	k->obj = g_ascii_strtoull(name, &end, 16);
	if (end != name + 16 || !g_ascii_isdigit(name[17]))
		return false;
	k->index = g_ascii_strtoull(name + 17, &end, 10);
	return *end == '\0';
}

/*
 * Delete the files of blocks/ that the journal does not count: a crash
 * between a deletion and its record, or a foreign file. The writer's first
 * job, so that no file it renames into place meanwhile is mistaken for one,
 * and mounting never waits for a scan.
 */
static void sweep(struct cfs_disk *d)
{
	DIR *dp = list_dir(d->blocks_fd);
	struct dirent *de;
	unsigned n = 0;
	while (dp && (de = readdir(dp))) {
		struct dkey k;
		if (de->d_name[0] == '.' && (!de->d_name[1] || !strcmp(de->d_name, "..")))
			continue;
		g_mutex_lock(&d->lock);
		bool counted = parse_name(de->d_name, &k) && g_hash_table_lookup(d->index, &k);
		g_mutex_unlock(&d->lock);
		if (!counted && unlinkat(dirfd(dp), de->d_name, 0) == 0)
			n++;
	}
	if (dp)
		closedir(dp);
	if (n)
		g_message("%s: deleted %u files the journal did not count", d->blocks, n);
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
	block_name(&s->key, name);
	char *path = block_path(s->d, &s->key);
	GError *err = NULL;
	uint64_t cost = file_cost(iov_bytes(iov)), etag_hash = hash_text(s->id.etag);
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

static void spill_run(gpointer data, gpointer user)
{
	if (data == user) { /* the job cfs_disk_start() queues first */
		sweep(user);
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
	*s = (struct spill){ d, { hash_text(id->name), id->index }, *id, { 0 }, data, done, ctx };
	s->id.name = g_strdup(id->name);
	s->id.etag = g_strdup(id->etag);
	for (uint32_t i = 0; i < extents->n; i++)
		cfs_extents_add(&s->extents, extents->v[i].lo, extents->v[i].hi);
	g_thread_pool_push(d->writer, s, NULL);
}

void cfs_disk_start(struct cfs_disk *d)
{
	write_pid(d);
	d->writer = g_thread_pool_new(spill_run, d, 1, TRUE, NULL);
	g_thread_pool_push(d->writer, d, NULL);
	d->readers = g_thread_pool_new(load_run, d, READERS, TRUE, NULL);
}

void cfs_disk_free(struct cfs_disk *d)
{
	if (!d)
		return;
	if (d->writer)
		g_thread_pool_free(d->writer, FALSE, TRUE);
	if (d->readers)
		g_thread_pool_free(d->readers, FALSE, TRUE);
	if (d->writer)
		save_order(d);
	cfs_journal_close(d->journal);
	GHashTableIter it;
	gpointer e;
	g_hash_table_iter_init(&it, d->index);
	while (g_hash_table_iter_next(&it, NULL, &e)) {
		cfs_policy_remove(d->policy, &((struct dentry *)e)->pol);
		g_free(e);
	}
	g_hash_table_destroy(d->index);
	cfs_policy_free(d->policy);
	if (d->lock_fd >= 0)
		close(d->lock_fd);
	if (d->blocks_fd >= 0)
		close(d->blocks_fd);
	if (d->tmp_fd >= 0)
		close(d->tmp_fd);
	if (d->root_fd >= 0)
		close(d->root_fd);
	g_mutex_clear(&d->lock);
	g_free(d->root);
	g_free(d->blocks);
	g_free(d->tmp);
	g_free(d);
}
