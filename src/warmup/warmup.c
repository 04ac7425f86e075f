/*
 * The warm-up command (warmup.h). The daemon owns the cache tiers, so the
 * command asks it, file by file, through the virtual extended attributes
 * of the mount (fuse/xattr.c): each read of user.chunkfs.warm runs one
 * step of warming the file and says where its bytes are, until all of
 * them are where a warm file's bytes live (the spill tier, or memory
 * without one). Files are taken in order, --jobs at a time.
 */
#include "warmup/warmup.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "warmup_i.h"

#define XATTR_WARM "user.chunkfs.warm"
#define XATTR_RESIDENCY "user.chunkfs.residency"
#define JOBS_DEFAULT 4
#define JOBS_MAX 64
/* The attribute of each file being warmed is read again this often. */
#define POLL_US (50 * 1000)
/* A file whose bytes have not moved for this long has failed (the daemon retries each request). */
#define STALL_US (G_USEC_PER_SEC * 120)
/*
 * What a run plans to warm on a mount: the disk cap less a sixteenth (the
 * block files' headers and 4 KiB rounding, the journal and directories
 * count under it too), or without a spill tier three quarters of the
 * memory cap (the rest is the readers' and the readahead's).
 */
#define DISK_ROOM(cap) ((cap) - (cap) / 16)
#define MEM_ROOM(cap) ((cap) / 4 * 3)

struct wargs {
	int jobs;
	gboolean check;
	char **paths;
};

/* The command line; false after one line on stderr. */
static bool parse_args(int argc, char **argv, struct wargs *a)
{
	GOptionEntry entries[] = {
		{ "jobs", 'j', 0, G_OPTION_ARG_INT, &a->jobs,
		  "Files warmed at once (default 4, at most 64)", "N" },
		{ "check", 0, 0, G_OPTION_ARG_NONE, &a->check,
		  "Only say how much of each file is in memory, on disk, or only remote", NULL },
		{ G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &a->paths, NULL,
		  "PATH..." },
		{ NULL, 0, 0, 0, NULL, NULL, NULL },
	};
	GOptionContext *ctx = g_option_context_new(
		"- warm files of a chunkfs mount into its cache");
	g_option_context_add_main_entries(ctx, entries, NULL);
	GError *error = NULL;
	bool ok = g_option_context_parse(ctx, &argc, &argv, &error);
	g_option_context_free(ctx);
	if (!ok)
		fprintf(stderr, "chunkfs warmup: %s\n", error->message);
	else if (!a->paths || !a->paths[0])
		fprintf(stderr, "chunkfs warmup: no PATH given (\"-\" reads them from stdin)\n");
	else if (a->jobs < 1 || a->jobs > JOBS_MAX)
		fprintf(stderr, "chunkfs warmup: --jobs must be between 1 and %d\n", JOBS_MAX);
	else
		return true;
	g_clear_error(&error);
	return false;
}

/* Report f's failure with err (an errno), once. */
static void fail_file(struct wfile *f, int err, const char *why)
{
	progress_end();
	fprintf(stderr, "chunkfs warmup: %s: %s\n", f->path, why ? why : g_strerror(err));
	f->state = W_FAILED;
}

/* Where every file's bytes are now; false after reporting a file that could not be asked. */
static bool read_all(struct wplan *plan)
{
	bool ok = true;
	for (guint i = 0; i < plan->files->len; i++) {
		struct wfile *f = g_ptr_array_index(plan->files, i);
		int err = read_residency(f->path, XATTR_RESIDENCY, &f->res);
		if (err == ENODATA || err == ENOTSUP)
			fail_file(f, err, "not a file of a chunkfs mount");
		else if (err)
			fail_file(f, err, NULL);
		ok = ok && !err;
	}
	return ok;
}

static int run_check(struct wplan *plan)
{
	bool ok = read_all(plan);
	struct residency total = { 0 };
	for (guint i = 0; i < plan->files->len; i++) {
		struct wfile *f = g_ptr_array_index(plan->files, i);
		if (f->state == W_FAILED)
			continue;
		print_check(f->path, &f->res);
		total.size += f->res.size;
		total.mem += f->res.mem;
		total.disk += f->res.disk;
		total.remote += f->res.remote;
	}
	print_check("total", &total);
	return ok ? 0 : 1;
}

static uint64_t mount_room(const struct wmount *m)
{
	return m->disk_cap ? DISK_ROOM(m->disk_cap) : MEM_ROOM(m->mem_cap);
}

/*
 * Plan the files that fit under their mount's caps, in order; the rest are
 * skipped, and said so in one line per mount before anything is fetched.
 */
static unsigned plan_caps(struct wplan *plan)
{
	unsigned skipped = 0;
	for (guint i = 0; i < plan->files->len; i++) {
		struct wfile *f = g_ptr_array_index(plan->files, i);
		struct wmount *m = f->mount;
		if (f->state != W_QUEUED)
			continue;
		m->asked += f->res.size;
		if (m->planned + f->res.size <= mount_room(m))
			m->planned += f->res.size;
		else
			f->state = W_SKIPPED;
		skipped += f->state == W_SKIPPED;
	}
	return skipped;
}

static void say_caps(const struct wplan *plan)
{
	for (guint i = 0; i < plan->mounts->len; i++) {
		const struct wmount *m = g_ptr_array_index(plan->mounts, i);
		if (m->asked <= m->planned)
			continue;
		char *asked = human_size(m->asked), *room = human_size(mount_room(m));
		char *planned = human_size(m->planned);
		fprintf(stderr,
			"chunkfs warmup: %s asked for on %s, whose %s cap holds %s: warming the "
			"first %s, in order\n",
			asked, m->root, m->disk_cap ? "disk" : "memory", room, planned);
		g_free(asked);
		g_free(room);
		g_free(planned);
	}
}

/* One warm step of f; it is done, failed, or goes on. */
static void step(struct wfile *f, gint64 now)
{
	struct residency r;
	int err = read_residency(f->path, XATTR_WARM, &r);
	if (err) {
		fail_file(f, err, NULL);
		return;
	}
	if (r.warm != f->res.warm || r.mem != f->res.mem || r.disk != f->res.disk)
		f->progress_us = now;
	f->res = r;
	if (r.warm >= r.size)
		f->state = W_DONE;
	else if (now - f->progress_us > STALL_US)
		fail_file(f, 0, "no progress for 120 s: not all of it could be fetched or kept");
}

/* Totals of the planned files (every one not skipped). */
static void count(const struct wplan *plan, struct wtotals *t)
{
	uint64_t at_start = t->bytes_at_start;
	*t = (struct wtotals){ .bytes_at_start = at_start };
	for (guint i = 0; i < plan->files->len; i++) {
		const struct wfile *f = g_ptr_array_index(plan->files, i);
		if (f->state == W_SKIPPED)
			continue;
		t->files++;
		t->bytes += f->res.size;
		t->bytes_done += MIN(f->res.warm, f->res.size);
		t->files_done += f->state == W_DONE || f->state == W_FAILED;
		t->failed += f->state == W_FAILED;
	}
}

/* Start queued files, in order, while fewer than jobs are active; false when none is left. */
static bool fill_jobs(struct wplan *plan, int jobs, gint64 now)
{
	int active = 0;
	for (guint i = 0; i < plan->files->len; i++) {
		struct wfile *f = g_ptr_array_index(plan->files, i);
		if (f->state == W_QUEUED && active < jobs) {
			f->state = W_ACTIVE;
			f->progress_us = now;
		}
		active += f->state == W_ACTIVE;
	}
	return active > 0;
}

/*
 * Warm the planned files until each is done or failed: every round steps
 * the active ones. Bounded: a file fails after STALL_US without progress,
 * so a round that moves nothing ends the run within that time.
 */
static void warm_all(struct wplan *plan, int jobs, struct wtotals *t, gint64 start)
{
	while (fill_jobs(plan, jobs, g_get_monotonic_time())) {
		gint64 now = g_get_monotonic_time();
		for (guint i = 0; i < plan->files->len; i++) {
			struct wfile *f = g_ptr_array_index(plan->files, i);
			if (f->state == W_ACTIVE)
				step(f, now);
		}
		count(plan, t);
		progress_show(t, start, false);
		if (fill_jobs(plan, jobs, now))
			g_usleep(POLL_US);
	}
}

static int run_warm(struct wplan *plan, int jobs)
{
	if (!read_all(plan))
		return 1;
	unsigned skipped = plan_caps(plan);
	say_caps(plan);
	struct wtotals t = { 0 };
	count(plan, &t);
	t.bytes_at_start = t.bytes_done;
	gint64 start = g_get_monotonic_time();
	warm_all(plan, jobs, &t, start);
	progress_show(&t, start, true);
	progress_end();
	char *done = human_size(t.bytes_done);
	fprintf(stderr, "chunkfs warmup: %u of %u files warm (%s), %u failed, %u skipped\n",
		t.files_done - t.failed, t.files + skipped, done, t.failed, skipped);
	g_free(done);
	return t.failed || skipped ? 1 : 0;
}

int cfs_warmup_main(int argc, char **argv)
{
	struct wargs a = { .jobs = JOBS_DEFAULT };
	if (!parse_args(argc, argv, &a))
		return 2;
	struct wplan plan;
	plan_init(&plan);
	bool ok = true;
	for (char **p = a.paths; ok && *p; p++)
		ok = plan_add(&plan, *p);
	int rc = !ok ? 2 : a.check ? run_check(&plan) : run_warm(&plan, a.jobs);
	plan_clear(&plan);
	g_strfreev(a.paths);
	return rc;
}
