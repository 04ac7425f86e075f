/* The spill tier: opening its directory, the journal's replay, the sweep, closing. */
#include "spill/spill.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "spill_i.h"
#include "util/stats.h"

/* Read-backs at once: 1 MiB reads, enough of them at a time to keep a disk busy. */
#define READERS 8
/* The automatic cap is this fraction (1/N) of the space: room left for everything else. */
#define AUTO_CAP_DIVISOR 10

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
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "cannot stat %s: %s", path,
			    g_strerror(e));
		return false;
	}
	if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
			    "refusing the cache directory %s: %s (mode %03o, owner %u); it must be "
			    "yours and writable by you alone",
			    path,
			    st.st_uid != geteuid() ? "owned by another user"
						   : "writable by group or others",
			    (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
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
			    e == ELOOP || e == ENOTDIR ? "not a directory (a symlink?)"
						       : g_strerror(e));
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
		g_set_error(
			error, G_IO_ERROR, G_IO_ERROR_BUSY,
			"the cache %s is in use by another chunkfs mount of the same URL (PID %s);"
			" give another --cache-dir, or --disk-cache=0",
			d->root, g_strstrip(pid));
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
	uint64_t space = (uint64_t)sv.f_bavail * sv.f_frsize + disk_total(d, 0, 0);
	uint64_t cap = MIN(space / AUTO_CAP_DIVISOR, CFS_DISK_CAP_AUTO_MAX);
	g_debug("spill tier %s: cap %" PRIu64 " MiB (a tenth of the free space and what it holds)",
		d->root, cap >> 20);
	return cap;
}

static bool make_tree(struct cfs_disk *d, const struct cfs_disk_config *cfg, GError **error)
{
	char key[17];
	snprintf(key, sizeof(key), "%016" PRIx64, disk_hash_text(cfg->url));
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
	d->journal = cfs_journal_open(d->root_fd, path, d->tmp_fd, d->block_size, disk_replay_one,
				      d, &unknown, error);
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
	if (!disk_compact(d, &err)) {
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
	d->index = g_hash_table_new(disk_key_hash, disk_key_equal);
	d->policy = cfs_policy_new(cfg->policy);
	GArray *gone = g_array_new(FALSE, FALSE, sizeof(struct dkey));
	bool ok = make_tree(d, cfg, error) && take_lock(d, error);
	if (ok) {
		empty_dir(d->tmp_fd, d->tmp);
		ok = load_journal(d, error);
	}
	if (ok && d->cap == CFS_DISK_CAP_AUTO) {
		disk_measure_dir(d);
		d->cap = auto_cap(d);
	}
	if (ok) {
		disk_make_room(d, 0, NULL, gone); /* a smaller cap than last time */
		disk_unlink_files(d, gone);       /* the compacted journal leaves them out */
		start_journal(d);
	}
	g_array_free(gone, TRUE);
	if (!ok) {
		cfs_disk_free(d);
		return NULL;
	}
	cfs_stats_gauge_set(CFS_DISK_CAP, (int64_t)d->cap);
	disk_publish(d);
	return d;
}

/*
 * At unmount, whatever the journal's length: the next mount then starts
 * from the eviction order of now, which read-backs changed unrecorded.
 */
static void save_order(struct cfs_disk *d)
{
	GError *err = NULL;
	if (!disk_compact(d, &err)) {
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
void disk_sweep(struct cfs_disk *d)
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

void cfs_disk_start(struct cfs_disk *d)
{
	write_pid(d);
	d->writer = g_thread_pool_new(disk_spill_run, d, 1, TRUE, NULL);
	g_thread_pool_push(d->writer, d, NULL);
	d->readers = g_thread_pool_new(disk_load_run, d, READERS, TRUE, NULL);
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
