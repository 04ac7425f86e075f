/* chunkfs: mount an S3 bucket path or an HTTP(S) directory as a read-only FUSE file system. */
#include <curl/curl.h>
#include <errno.h>
#include <gio/gio.h>
#include <glib.h>
#include <locale.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <zstd.h>

#include "shared/shared.h"
#include "spill/spill.h"
#include "cache/mem.h"
#include "tree/dataset.h"
#include "fetch/fetch.h"
#include "fuse/fs.h"
#include "util/log.h"
#include "util/metrics_http.h"
#include "util/notify.h"
#include "tree/object.h"
#include "util/options.h"
#include "remote/creds.h"
#include "remote/remote.h"
#include "tree/tree.h"
#include "util/url.h"
#include "views/view.h"
#include "warmup/warmup.h"

/*
 * Blocks live in the memory tier's own arena (blockmem.h). What glibc
 * serves: libcurl's receive buffer of every transfer (256 KiB, allocated
 * at its start and freed at its end), which must come from the heap, warm,
 * rather than from a fresh mmap that every random item would fault in
 * again (one mmap, 64 page faults and one munmap per request, measured),
 * nor from heap memory given back and faulted in again at every request
 * (a heap keeps up to 2 MiB free at its top: a fetcher's transfers'
 * buffers); and a fixed mmap threshold, so that buffers larger than a
 * block (zstd windows, listings) are still returned to the system when
 * freed and RSS follows the cap.
 */
#define MALLOC_MMAP_THRESHOLD (1024 * 1024)
#define MALLOC_TRIM_THRESHOLD (2 * 1024 * 1024)
/* glibc's arenas: a few for the threads that allocate, not 8 per core, each keeping free memory. */
#define MALLOC_ARENAS 4

static void tune_malloc(void)
{
	mallopt(M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD);
	mallopt(M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD);
	mallopt(M_ARENA_MAX, MALLOC_ARENAS);
}

/*
 * argv, custom headers and S3 credentials are in memory for the life of the
 * process: it writes no core file and other processes of the user cannot
 * ptrace it or read its memory (kept across fuse_daemonize's fork). Done
 * before the options are read.
 */
static bool not_dumpable(void)
{
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0)
		return true;
	fprintf(stderr, "chunkfs: prctl(PR_SET_DUMPABLE, 0): %s\n", strerror(errno));
	return false;
}

/*
 * The spill tier of the remote (keyed by its URL without secrets), or NULL
 * when it is off. Opened before the mount, so that a cache another mount
 * holds fails this one at once.
 */
static struct cfs_disk *open_disk(const struct cfs_options *opts, const struct cfs_remote *remote,
				  GError **error)
{
	char *url = cfs_url_redact(remote->base_url);
	struct cfs_disk_config cfg = { .dir = opts->cache_dir, .url = url, .cap = opts->disk_cache,
				       .block_size = opts->block_size, .policy = opts->eviction,
				       .compress = opts->spill_compress };
	GError *err = NULL;
	struct cfs_disk *disk = cfs_disk_open(&cfg, &err);
	g_free(url);
	if (!disk && g_error_matches(err, G_IO_ERROR, G_IO_ERROR_BUSY))
		g_propagate_error(error, err);
	else if (!disk) {
		/* a default directory (under HOME, or /var/cache for root) may not be the user's */
		g_set_error(error, err->domain, err->code,
			    "%s: give a writable directory with --cache-dir=DIR, or --disk-cache=0 "
			    "for no spill tier",
			    err->message);
		g_error_free(err);
	}
	return disk;
}

/* The shared tier of --shared-cache, checked before the mount; its threads start in serve(). */
static struct cfs_shared *open_shared(const struct cfs_options *opts, GError **error)
{
	struct cfs_shared_config cfg = { opts->shared_cache, opts->shared_cache_timeout_ms,
					 opts->block_size };
	return cfs_shared_new(&cfg, error);
}

/* The socket of --metrics-addr, bound before the mount so that a port in use fails it. */
static bool bind_metrics(const struct cfs_options *opts, struct cfs_metrics_http **metrics,
			 GError **error)
{
	if (!opts->metrics_addr)
		return true;
	*metrics = cfs_metrics_http_bind(opts->metrics_addr, error);
	return *metrics != NULL;
}

/*
 * Its thread, started in the process that serves (fuse_daemonize forks). Its
 * failure costs the scrapes, which Prometheus reports, not the mount.
 */
static void start_metrics(struct cfs_metrics_http *metrics)
{
	GError *error = NULL;
	if (metrics && !cfs_metrics_http_start(metrics, &error)) {
		g_warning("%s: the mount is served without metrics", error->message);
		g_error_free(error);
	}
}

/*
 * GLib's help text is UTF-8 ("[OPTION…]"), which g_print converts to the
 * locale's charset, turning what it cannot show into '?': outside a UTF-8
 * locale the ellipsis is written as three dots instead.
 */
static void print_utf8_or_ascii(const gchar *text)
{
	if (g_get_charset(NULL)) {
		fputs(text, stdout);
		return;
	}
	char **parts = g_strsplit(text, "\u2026", -1);
	char *ascii = g_strjoinv("...", parts);
	fputs(ascii, stdout);
	g_free(ascii);
	g_strfreev(parts);
}

/* The libraries' versions are those loaded at run time, which a bug report needs. */
static void print_version(void)
{
	printf("chunkfs %s\nlibfuse %s\nlibcurl %s\nzstd %s\n", CHUNKFS_VERSION,
	       cfs_fs_libfuse_version(), curl_version_info(CURLVERSION_NOW)->version,
	       ZSTD_versionString());
}

/* An object nobody holds is freed once the memory tier keeps nothing of it. */
static bool release_object(void *cache, struct cfs_object *obj)
{
	return cfs_cache_forget_object(cache, obj);
}

static int serve(const struct cfs_options *opts, const struct cfs_remote *remote,
		 struct cfs_tree *tree, struct cfs_views *views, struct cfs_fs *fs,
		 struct cfs_disk *disk, struct cfs_shared *shared)
{
	GError *error = NULL;
	struct cfs_fetcher *fetcher = cfs_fetcher_new(opts, remote, &error);
	if (!fetcher) {
		g_warning("%s", error->message);
		g_error_free(error);
		cfs_disk_free(disk);
		cfs_shared_free(shared);
		return 1;
	}
	if (disk)
		cfs_disk_start(disk);
	if (shared)
		cfs_shared_start(shared);
	if (remote->creds)
		cfs_creds_start(remote->creds);
	struct cfs_source source = cfs_fetcher_source(fetcher);
	struct cfs_cache_config cfg = { opts->mem_cache,
					opts->block_size,
					opts->readahead,
					opts->eviction,
					cfs_fetch_read_bound_ms(opts),
					shared,
					!opts->lazy_memory };
	struct cfs_cache *cache = cfs_cache_new(&cfg, &source, disk);
	cfs_objects_set_release(release_object, cache);
	cfs_views_start(views, cache, tree);
	g_message("mounted %s on %s", remote->shown, opts->mountpoint);
	/* The kernel queues requests until the loop takes them: the mount serves from here. */
	cfs_notify_ready(remote->shown, opts->mountpoint);
	int rc = cfs_fs_serve(fs, cache);
	cfs_notify_stopping();
	cfs_cache_close(cache);
	cfs_views_stop(views);
	cfs_fetcher_free(fetcher);
	cfs_cache_free(cache);
	cfs_objects_set_release(NULL, NULL); /* frees the objects that waited for the cache */
	return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct cfs_options opts;
	bool exit_now;
	GError *error = NULL;
	/* messages in the user's language and charset; numbers stay C's (JSON of .chunkfs/) */
	setlocale(LC_ALL, "");
	setlocale(LC_NUMERIC, "C");
	g_set_print_handler(print_utf8_or_ascii);
	if (argc > 1 && strcmp(argv[1], "warmup") == 0)
		return cfs_warmup_main(argc - 1, argv + 1); /* a command, not a mount */
	if (!not_dumpable())
		return 1;
	tune_malloc();
	if (!cfs_options_parse(argc, argv, &opts, &exit_now, &error)) {
		fprintf(stderr, "chunkfs: %s\n", error->message);
		g_error_free(error);
		return 2;
	}
	if (exit_now) {
		if (opts.version)
			print_version();
		return 0;
	}
	cfs_options_hide_secrets(argc, argv);
	cfs_log_init(opts.debug);
	if (opts.log_file && !cfs_log_to_file(opts.log_file, &error)) {
		fprintf(stderr, "chunkfs: %s\n", error->message);
		g_error_free(error);
		cfs_options_clear(&opts);
		return 1;
	}
	cfs_fetch_global_init();
	cfs_creds_set_http(cfs_fetch_creds_http);
	int rc = 1;
	struct cfs_fs *fs = NULL;
	struct cfs_tree *tree = NULL;
	struct cfs_views *views = cfs_views_new();
	struct cfs_disk *disk = NULL;
	struct cfs_shared *shared = NULL;
	struct cfs_metrics_http *metrics = NULL;
	struct cfs_remote *remote = cfs_remote_new(&opts, &error);
	bool ok = remote && bind_metrics(&opts, &metrics, &error) &&
		  (opts.disk_cache == 0 || (disk = open_disk(&opts, remote, &error))) &&
		  (!opts.shared_cache || (shared = open_shared(&opts, &error)));
	if (ok)
		tree = cfs_dataset_build(&opts, remote, views, &error);
	if (tree)
		fs = cfs_fs_mount(&opts, tree, views, &error);
	if (!fs) {
		char *msg = cfs_log_escape(error->message); /* it may quote the server */
		fprintf(stderr, "chunkfs: %s\n", msg);
		g_free(msg);
		g_error_free(error);
		cfs_disk_free(disk);
		cfs_shared_free(shared);
	} else {
		cfs_fs_daemonize(opts.foreground);
		start_metrics(metrics);
		rc = serve(&opts, remote, tree, views, fs, disk, shared);
	}
	cfs_metrics_http_free(metrics);
	cfs_fs_free(fs);
	cfs_views_free(views);
	cfs_tree_free(tree);
	cfs_remote_free(remote);
	cfs_fetch_global_cleanup();
	cfs_options_clear(&opts);
	return rc;
}
