/*
 * Private to the warm-up command (warmup.h): what its files share.
 * paths.c turns the command line's paths into the files to warm, in
 * order, and finds the mount each is on; progress.c shows how far a run
 * is; warmup.c runs the steps. Calls go one way: warmup.c calls the other
 * two, which never call back.
 */
#ifndef CHUNKFS_WARMUP_I_H
#define CHUNKFS_WARMUP_I_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Where a file's bytes are: the value of its user.chunkfs.* attribute, in bytes. */
struct residency {
	uint64_t size, mem, disk, remote, warm;
};

/* A chunkfs mount that files to warm are on, with its caps from .chunkfs/stats. */
struct wmount {
	char *root;        /* the mount's root directory */
	dev_t dev;         /* its device number (st_dev) */
	uint64_t mem_cap;  /* bytes */
	uint64_t disk_cap; /* bytes; 0 without a spill tier */
	uint64_t asked;    /* bytes of its files asked for */
	uint64_t planned;  /* bytes of them that fit under its cap, planned to warm */
};

enum wstate { W_QUEUED, W_ACTIVE, W_DONE, W_FAILED, W_SKIPPED };

/* A file to warm, in the order given. */
struct wfile {
	char *path;
	struct wmount *mount; /* borrowed from the struct wplan */
	struct residency res; /* the latest answer */
	enum wstate state;
	gint64 progress_us; /* monotonic time res last moved */
};

/* The files of a run and the mounts they are on. */
struct wplan {
	GPtrArray *files;  /* struct wfile *, owned */
	GPtrArray *mounts; /* struct wmount *, owned */
	GHashTable *seen;  /* the paths of files, so that each is warmed once */
};

/* ---- paths.c ---- */

/*
 * Add the files named by path to plan, in order: a file itself, a
 * directory's files in name order, depth first (skipping names that start
 * with '.' and NAME.tar.d/ beside NAME.tar: views of files it lists
 * already), "-" the paths read from stdin, one a line. A file given twice
 * is warmed once. False, after one line on stderr, for a path that cannot
 * be read or is not inside a chunkfs mount.
 */
bool plan_add(struct wplan *plan, const char *path);
/* Make plan empty: no files, no mounts. Not thread-safe (the command has one thread). */
void plan_init(struct wplan *plan);
/*
 * Free every file and mount of plan (plan itself is the caller's);
 * plan_init() makes it usable again. Not thread-safe.
 */
void plan_clear(struct wplan *plan);

/*
 * Read the attribute name ("user.chunkfs.warm" or ".residency") of path
 * into *out. Returns 0 or the errno of getxattr(2) (EINVAL for a value
 * that does not parse).
 */
int read_residency(const char *path, const char *name, struct residency *out);

/* ---- progress.c ---- */

/* Files and bytes of a run, for the progress line. */
struct wtotals {
	unsigned files, files_done, failed;
	uint64_t bytes, bytes_done, bytes_at_start;
};

/* Show the progress now if it is due (a bar redrawn on a terminal, a line every 2 s otherwise). */
void progress_show(const struct wtotals *t, gint64 start_us, bool force);
/* End the bar's line on a terminal. */
void progress_end(void);
/* bytes for people: "1.5 GiB" (g_free() it). */
char *human_size(uint64_t bytes);
/* Print one line of --check for a file (or "total"). */
void print_check(const char *what, const struct residency *r);

#endif
