/* Command-line parsing with GOptionContext, and the SIZE syntax. */
#include "util/options.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "spill/spill.h"
#include "cache/policy/policy.h"
#include "util/memlimit.h"

#define DEFAULT_MEM_CAP_MAX (UINT64_C(1) << 30)
/*
 * The default memory cap is this fraction (1/N) of RAM or of the control
 * groups' memory limit: the loader reading it needs the rest.
 */
#define DEFAULT_MEM_CAP_RAM_DIVISOR 8
/* The default memory cap when the size of RAM is unknown: 1/8 of a small (2 GiB) machine. */
#define DEFAULT_MEM_CAP_NO_RAM (256 * CFS_MIB)
/* A block is a unit of eviction and of the spill tier's files: from a page to 64 MiB. */
#define BLOCK_SIZE_MIN 4096
#define BLOCK_SIZE_MAX (64 * CFS_MIB)
/* The memory cap holds at least this many blocks and bytes: a read and its neighbours fit. */
#define MEM_CAP_MIN_BLOCKS 4
#define MEM_CAP_MIN (4 * CFS_MIB)
/* Readahead past 1 GiB would fetch bytes evicted before they are read. */
#define READAHEAD_MAX (1024 * CFS_MIB)
/* A sequential reader's window grows to 64 MiB: two requests of 32 MiB in flight. */
#define DEFAULT_READAHEAD (64 * CFS_MIB)
/* Transfers at once: parallel ranges for random readers, few enough for one server. */
#define DEFAULT_MAX_CONNECTIONS 8
/* More connections than this to one server is a flood, not a mount. */
#define MAX_CONNECTIONS_MAX 256
/* Fetcher threads: two let receiving and copying use a second core (sequential +8%). */
#define DEFAULT_FETCH_THREADS 2
/* Past this many threads, each has too few connections to keep busy. */
#define FETCH_THREADS_MAX 16
/* Seconds: a TCP and TLS handshake that takes longer is a server that is down. */
#define DEFAULT_CONNECT_TIMEOUT_S 10
/* Seconds without a byte before an attempt is stalled: a slow server still makes it. */
#define DEFAULT_TIMEOUT_S 30
/* A timeout of more than an hour would let a hung server hang its readers as long. */
#define TIMEOUT_MAX_S 3600
/* Attempts after a failed one: with the back-off, 1.5 s of a server's trouble ridden out. */
#define DEFAULT_RETRIES 4
/* More retries than this keep a reader waiting on a server that is gone. */
#define RETRIES_MAX 100
/* Seconds a listing is trusted: datasets are written once, and an hour keeps listings rare. */
#define DEFAULT_METADATA_TTL_S 3600
/* A year: longer is never listing again, which a TTL is not for. */
#define METADATA_TTL_MAX_S (365 * 86400)
/* Entries of one directory by default: 1.5 GB of listing at most (see below). */
#define DEFAULT_MAX_DIR_ENTRIES 10000000
/* A listing entry costs about 150 bytes before it becomes a node: 100 million is 15 GB. */
#define MAX_DIR_ENTRIES_MAX 100000000
#define DEFAULT_SHARED_CACHE_TIMEOUT_MS 100
#define SHARED_CACHE_TIMEOUT_MAX_MS 60000
/* A --header-file holds a few tokens: 64 KiB and 1024 lines are far more than any server takes. */
#define HEADER_FILE_MAX_BYTES (64 * 1024)
#define HEADER_FILE_MAX_LINES 1024
/* The spill tier of a system mount (root, no XDG_CACHE_HOME): the FHS's place for caches. */
#define ROOT_CACHE_DIR "/var/cache/chunkfs"

bool cfs_parse_size(const char *text, uint64_t *out)
{
	if (!text || !g_ascii_isdigit(text[0]))
		return false;
	errno = 0;
	char *end;
	guint64 value = g_ascii_strtoull(text, &end, 10);
	if (errno)
		return false;
	unsigned shift = 0;
	switch (g_ascii_toupper(*end)) {
	case '\0': break;
	case 'K': shift = 10; end++; break;
	case 'M': shift = 20; end++; break;
	case 'G': shift = 30; end++; break;
	case 'T': shift = 40; end++; break;
	default: return false;
	}
	if (shift && (g_ascii_strcasecmp(end, "iB") == 0 || g_ascii_strcasecmp(end, "B") == 0))
		end += strlen(end);
	if (*end != '\0')
		return false;
	if (shift && value > (G_MAXUINT64 >> shift))
		return false;
	*out = value << shift;
	return true;
}

/*
 * A fraction of the memory the daemon may use: the machine's, or its
 * control groups' limit where that is smaller (a container's, a unit's
 * MemoryMax=), so that the tier, faulted in from mounting on, leaves the
 * rest to the loader beside it.
 */
static uint64_t default_mem_cache(void)
{
	long pages = sysconf(_SC_PHYS_PAGES);
	long page = sysconf(_SC_PAGESIZE);
	uint64_t ram = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : UINT64_MAX;
	uint64_t usable = MIN(ram, cfs_memory_limit_at("/"));
	if (usable == UINT64_MAX)
		return DEFAULT_MEM_CAP_NO_RAM;
	return MIN(usable / DEFAULT_MEM_CAP_RAM_DIVISOR, DEFAULT_MEM_CAP_MAX);
}

struct raw_args {
	char *mem_cache, *block_size, *readahead, *fuse_opts;
	int max_connections, fetch_threads, connect_timeout, timeout, retries, metadata_ttl;
	int max_dir_entries;
	gboolean foreground, debug, version, insecure, no_sign_request, nonempty;
	char **headers;
	char *header_file;
	char *cacert, *endpoint, *region, *s3_addressing, *profile;
	char *cache_dir, *disk_cache, *eviction;
	char *views;
	gboolean spill_compress;
	gboolean lazy_memory;
	char *log_file;
	char *metrics_addr;
	char *shared_cache;
	int shared_cache_timeout;
	char **rest;
};

static bool parse_size_opt(const char *name, const char *text, uint64_t *out, GError **error)
{
	if (!text)
		return true;
	if (cfs_parse_size(text, out))
		return true;
	g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
		    "invalid size for --%s: '%s' (bytes, or a number with K, M, G or T)", name, text);
	return false;
}

static bool check_int_opt(const char *name, int value, int min, int max, GError **error)
{
	if (value >= min && value <= max)
		return true;
	g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
		    "--%s must be between %d and %d, not %d", name, min, max, value);
	return false;
}

/*
 * Check the sizes; without --mem-cache (cap_given false), set the default
 * cap, raised to the minimum of 4 blocks, which a small control group's
 * limit with a large --block-size would otherwise fall under.
 */
static bool check_sizes(struct cfs_options *o, bool cap_given, GError **error)
{
	if (o->block_size < BLOCK_SIZE_MIN || o->block_size > BLOCK_SIZE_MAX ||
	    (o->block_size & (o->block_size - 1))) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "--block-size must be a power of two from 4K to 64M");
		return false;
	}
	uint64_t min_cap = MAX(MEM_CAP_MIN_BLOCKS * o->block_size, MEM_CAP_MIN);
	if (!cap_given)
		o->mem_cache = MAX(default_mem_cache(), min_cap);
	if (o->mem_cache < min_cap) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "--mem-cache must be at least %" G_GUINT64_FORMAT " MiB (4 blocks and 4 MiB)",
			    min_cap / CFS_MIB);
		return false;
	}
	if (o->disk_cache != 0 && o->disk_cache != CFS_DISK_CAP_AUTO &&
	    o->disk_cache < o->block_size) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "--disk-cache must be 0 (no spill tier) or at least one block of "
			    "--block-size (%" G_GUINT64_FORMAT " KiB)",
			    o->block_size >> 10);
		return false;
	}
	if (o->readahead > READAHEAD_MAX) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "--readahead must be at most 1G");
		return false;
	}
	return true;
}

/*
 * A mount on a mount hides the first and leaves two entries in the mount
 * table. STATX_ATTR_MOUNT_ROOT (statx(2), Linux 5.8) also sees bind mounts;
 * older kernels fall back to a device other than the parent's.
 */
static bool is_mount_root(const char *path, const struct statx *stx)
{
	if (stx->stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)
		return stx->stx_attributes & STATX_ATTR_MOUNT_ROOT;
	char *parent = g_build_filename(path, "..", NULL);
	struct stat st;
	bool other_dev = stat(parent, &st) == 0 &&
			 st.st_dev != makedev(stx->stx_dev_major, stx->stx_dev_minor);
	g_free(parent);
	return other_dev;
}

static bool dir_is_empty(const char *path)
{
	GDir *dir = g_dir_open(path, 0, NULL);
	bool empty = dir && !g_dir_read_name(dir);
	if (dir)
		g_dir_close(dir);
	return empty;
}

/* libfuse takes /dev/fd/N as a /dev/fuse descriptor its caller opened (fuse_session_mount()). */
static bool is_fuse_fd(const char *path)
{
	unsigned fd;
	char end;
	return sscanf(path, "/dev/fd/%u%c", &fd, &end) == 1;
}

static bool check_mountpoint(const char *path, bool nonempty, GError **error)
{
	if (is_fuse_fd(path))
		return true;
	struct statx stx;
	const char *problem = NULL;
	if (statx(AT_FDCWD, path, 0, STATX_TYPE, &stx) != 0)
		problem = g_strerror(errno);
	else if (!S_ISDIR(stx.stx_mode))
		problem = "not a directory";
	else if (is_mount_root(path, &stx))
		problem = "already a mount (unmount it first)";
	else if (!nonempty && !dir_is_empty(path))
		problem = "not empty (-o nonempty mounts over its files)";
	if (problem)
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "mountpoint %s: %s", path,
			    problem);
	return !problem;
}

/* RFC 9110 section 5: a header field is a token name, a colon, a value on one line. */
static bool header_valid(const char *h)
{
	const char *colon = strchr(h, ':');
	bool ok = colon && colon > h;
	for (const char *p = h; ok && p < colon; p++)
		ok = g_ascii_isgraph(*p) && !strchr("\"(),/:;<=>?@[\\]{}", *p);
	for (const char *p = h; ok && *p; p++)
		ok = *p != '\r' && *p != '\n';
	return ok;
}

static bool check_headers(char **headers, GError **error)
{
	for (char **h = headers; h && *h; h++) {
		if (!header_valid(*h)) {
			g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
				    "--header must be 'Name: value' (a field name, a colon, one line)");
			return false;
		}
	}
	return true;
}

static bool header_file_error(const char *path, const char *problem, GError **error)
{
	g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--header-file %s: %s", path,
		    problem);
	return false;
}

/*
 * The file holds tokens: like ssh with a private key, refuse one that
 * another user could read or change, or that a symlink could swap.
 */
static bool header_file_safe(int fd, const char *path, GError **error)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return header_file_error(path, g_strerror(errno), error);
	if (!S_ISREG(st.st_mode))
		return header_file_error(path, "not a regular file", error);
	if (st.st_uid != geteuid() && st.st_uid != 0)
		return header_file_error(path, "owned by another user (it must be yours or root's)",
					 error);
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		char *why = g_strdup_printf("mode %04o lets group or others at it (chmod 600 it)",
					    (unsigned)(st.st_mode & 07777));
		header_file_error(path, why, error);
		g_free(why);
		return false;
	}
	if (st.st_size > HEADER_FILE_MAX_BYTES)
		return header_file_error(path, "larger than 64 KiB", error);
	return true;
}

/*
 * Up to HEADER_FILE_MAX_BYTES + 1 bytes of fd into buf (that size) and
 * *len: one more than the limit is a file that grew past it. False with errno.
 */
static bool read_bounded(int fd, char *buf, size_t *len)
{
	*len = 0;
	while (*len <= HEADER_FILE_MAX_BYTES) {
		ssize_t n = read(fd, buf + *len, HEADER_FILE_MAX_BYTES + 1 - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0;
		*len += (size_t)n;
	}
	return true;
}

/* What is wrong with the text read from a header file, or NULL. */
static const char *header_text_problem(const char *text, size_t len)
{
	if (len > HEADER_FILE_MAX_BYTES)
		return "larger than 64 KiB";
	if (memchr(text, '\0', len))
		return "holds a NUL byte";
	return NULL;
}

/* Free strv after zeroing its strings: header values are tokens. */
static void strfreev_zeroed(char **strv)
{
	for (char **p = strv; p && *p; p++)
		explicit_bzero(*p, strlen(*p));
	g_strfreev(strv);
}

/* The text of a safe --header-file (g_free), or NULL with *error set. */
static char *read_header_file(const char *path, GError **error)
{
	/* O_NONBLOCK: a FIFO put in its place is refused, not waited on. */
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		header_file_error(path,
				  errno == ELOOP ? "a symlink (give the file itself)"
						 : g_strerror(errno),
				  error);
		return NULL;
	}
	char *text = NULL;
	if (header_file_safe(fd, path, error)) {
		text = g_malloc(HEADER_FILE_MAX_BYTES + 2);
		size_t len;
		const char *problem = read_bounded(fd, text, &len) ? header_text_problem(text, len)
								   : g_strerror(errno);
		text[len] = '\0';
		if (problem) {
			header_file_error(path, problem, error);
			g_clear_pointer(&text, g_free);
		}
	}
	close(fd);
	return text;
}

/* A line the header file skips: blank, or a comment. */
static bool header_line_skipped(const char *line)
{
	return line[strspn(line, " \t")] == '\0' || line[0] == '#';
}

/* Lines of text, the last one with or without its newline. */
static size_t count_lines(const char *text)
{
	size_t n = 0;
	for (const char *p = text; *p; p++)
		n += *p == '\n' || p[1] == '\0';
	return n;
}

/* Check the lines of a header file's text and append its headers to *headers. */
static bool add_header_lines(const char *path, const char *text, char ***headers, GError **error)
{
	if (count_lines(text) > HEADER_FILE_MAX_LINES)
		return header_file_error(path, "more than 1024 lines", error);
	char **lines = g_strsplit(text, "\n", -1);
	bool ok = true;
	GStrvBuilder *b = g_strv_builder_new();
	g_strv_builder_addv(b, (const char **)(*headers ? *headers : (char *[]){ NULL }));
	for (guint i = 0; ok && lines[i]; i++) {
		if (header_line_skipped(lines[i]))
			continue;
		ok = header_valid(lines[i]);
		if (ok)
			g_strv_builder_add(b, lines[i]);
		else
			g_set_error(
				error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
				"--header-file %s: line %u is not 'Name: value' (a field name, a "
				"colon, no CR)",
				path, i + 1);
	}
	strfreev_zeroed(*headers);
	*headers = g_strv_builder_end(b);
	g_strv_builder_unref(b);
	strfreev_zeroed(lines);
	return ok;
}

/*
 * Append the headers of --header-file to a->headers, checked as --header's
 * are: tokens stay out of argv, fstab and the process title.
 */
static bool take_header_file(struct raw_args *a, GError **error)
{
	if (!a->header_file)
		return true;
	char *text = read_header_file(a->header_file, error);
	bool ok = text && add_header_lines(a->header_file, text, &a->headers, error);
	if (text)
		explicit_bzero(text, strlen(text));
	g_free(text);
	return ok;
}

/* A CA file libcurl cannot read would fail every TLS connection later, with less said. */
static bool check_cacert(const char *path, GError **error)
{
	struct stat st;
	const char *problem = NULL;
	if (!path)
		return true;
	if (stat(path, &st) != 0 || access(path, R_OK) != 0)
		problem = g_strerror(errno);
	else if (!S_ISREG(st.st_mode))
		problem = "not a regular file";
	if (problem)
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "--cacert=%s: %s (give a readable PEM file of CA certificates)", path,
			    problem);
	return !problem;
}

static bool check_eviction(const char *value, GError **error)
{
	if (!value || cfs_policy_known(value))
		return true;
	g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
		    "--eviction must be lru, lfu or fifo, not '%s'", value);
	return false;
}

/* --views: hidden (the default) or visible. */
static bool check_views(const char *value, GError **error)
{
	if (!value || g_str_equal(value, "hidden") || g_str_equal(value, "visible"))
		return true;
	g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
		    "--views must be 'hidden' or 'visible', not '%s'", value);
	return false;
}

/* The value of an environment variable that holds an absolute path, else NULL. */
static const char *env_path(const char *name)
{
	const char *value = g_getenv(name);
	return value && g_path_is_absolute(value) ? value : NULL;
}

/*
 * The default --cache-dir (g_free), or NULL when there is none: an
 * XDG_CACHE_HOME that is set (the XDG Base Directory Specification ignores
 * a relative one) is the user's choice, root's or not; root's mounts,
 * started by systemd or at boot without HOME, share the FHS's /var/cache;
 * any other user's go under ~/.cache. HOME is not looked up in passwd: a
 * service without it is told to say where.
 */
static char *default_cache_dir(void)
{
	const char *xdg = env_path("XDG_CACHE_HOME");
	if (xdg)
		return g_build_filename(xdg, "chunkfs", NULL);
	if (geteuid() == 0)
		return g_strdup(ROOT_CACHE_DIR);
	const char *home = env_path("HOME");
	return home ? g_build_filename(home, ".cache", "chunkfs", NULL) : NULL;
}

/*
 * The spill tier's settings; the directory is made absolute, it outlives a
 * daemon's chdir. Without a default, only a mount without the tier goes on.
 */
static bool take_spill_settings(struct raw_args *a, struct cfs_options *o, GError **error)
{
	o->cache_dir = a->cache_dir ? g_canonicalize_filename(a->cache_dir, NULL)
				    : default_cache_dir();
	o->eviction = a->eviction ? g_steal_pointer(&a->eviction) : g_strdup("lru");
	o->spill_compress = a->spill_compress;
	if (o->cache_dir || o->disk_cache == 0)
		return true;
	g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
		    "no --cache-dir given and no default for it: neither XDG_CACHE_HOME nor HOME "
		    "is an absolute path (give --cache-dir=DIR, or --disk-cache=0)");
	return false;
}

static bool check_addressing(const char *value, GError **error)
{
	if (!value || g_str_equal(value, "path") || g_str_equal(value, "virtual"))
		return true;
	g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
		    "--s3-addressing must be 'path' or 'virtual', not '%s'", value);
	return false;
}

/* Move the strings of the remote's settings from the raw arguments into o. */
static void take_remote_settings(struct raw_args *a, struct cfs_options *o)
{
	o->headers = g_steal_pointer(&a->headers);
	o->cacert = g_steal_pointer(&a->cacert);
	o->insecure = a->insecure;
	o->endpoint = g_steal_pointer(&a->endpoint);
	o->region = g_steal_pointer(&a->region);
	o->s3_addressing = g_steal_pointer(&a->s3_addressing);
	o->profile = g_steal_pointer(&a->profile);
	o->no_sign_request = a->no_sign_request;
}

static bool convert(struct raw_args *a, struct cfs_options *o, GError **error)
{
	o->lazy_memory = a->lazy_memory;
	if (!parse_size_opt("mem-cache", a->mem_cache, &o->mem_cache, error) ||
	    !parse_size_opt("block-size", a->block_size, &o->block_size, error) ||
	    !parse_size_opt("readahead", a->readahead, &o->readahead, error) ||
	    !parse_size_opt("disk-cache", a->disk_cache, &o->disk_cache, error) ||
	    !check_eviction(a->eviction, error) ||
	    !check_int_opt("max-connections", a->max_connections, 1, MAX_CONNECTIONS_MAX, error) ||
	    !check_int_opt("fetch-threads", a->fetch_threads, 1, FETCH_THREADS_MAX, error) ||
	    !check_int_opt("connect-timeout", a->connect_timeout, 1, TIMEOUT_MAX_S, error) ||
	    !check_int_opt("timeout", a->timeout, 1, TIMEOUT_MAX_S, error) ||
	    !check_int_opt("retries", a->retries, 0, RETRIES_MAX, error) ||
	    !check_int_opt("metadata-ttl", a->metadata_ttl, 0, METADATA_TTL_MAX_S, error) ||
	    !check_int_opt("max-dir-entries", a->max_dir_entries, 1, MAX_DIR_ENTRIES_MAX, error) ||
	    !check_int_opt("shared-cache-timeout", a->shared_cache_timeout, 1,
			   SHARED_CACHE_TIMEOUT_MAX_MS, error) ||
	    !check_sizes(o, a->mem_cache != NULL, error) || !check_headers(a->headers, error) ||
	    !take_header_file(a, error) || !check_cacert(a->cacert, error) ||
	    !check_addressing(a->s3_addressing, error) || !take_spill_settings(a, o, error) ||
	    !check_views(a->views, error))
		return false;
	o->views_visible = a->views && g_str_equal(a->views, "visible");
	take_remote_settings(a, o);
	o->max_connections = (unsigned)a->max_connections;
	o->fetch_threads = (unsigned)a->fetch_threads;
	o->connect_timeout_s = (unsigned)a->connect_timeout;
	o->timeout_s = (unsigned)a->timeout;
	o->retries = (unsigned)a->retries;
	o->metadata_ttl_s = (unsigned)a->metadata_ttl;
	o->max_dir_entries = (unsigned)a->max_dir_entries;
	o->foreground = a->foreground;
	o->debug = a->debug;
	o->fuse_opts = g_strdup(a->fuse_opts);
	o->log_file = g_steal_pointer(&a->log_file);
	o->metrics_addr = g_steal_pointer(&a->metrics_addr);
	o->shared_cache = g_steal_pointer(&a->shared_cache);
	o->shared_cache_timeout_ms = (unsigned)a->shared_cache_timeout;

	guint n = a->rest ? g_strv_length(a->rest) : 0;
	if (n != 2) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
			    n < 2 ? "missing URL or MOUNTPOINT (see --help)"
				  : "too many arguments: expected URL MOUNTPOINT");
		return false;
	}
	o->url = g_strdup(a->rest[0]);
	if (!check_mountpoint(a->rest[1], a->nonempty, error))
		return false;
	o->mountpoint = g_canonicalize_filename(a->rest[1], NULL);
	return true;
}

/*
 * Options mount(8) and mount.fuse3 pass to every file system (fstab(5),
 * mount.fuse(8)) that mean nothing to a FUSE daemon: accepted and dropped.
 * "rw" too: the mount is read-only whatever fstab says. dev, suid, exec and
 * their no- forms go to FUSE, which hands them to the kernel.
 */
static const char *const mount_only_opts[] = { "_netdev", "nofail", "noauto", "auto",  "user",
					       "users",   "nouser", "owner",  "group", "defaults",
					       "rw",      "ro",     NULL };

/* The end of the item of a -o list at p: the first comma not escaped by a backslash (fuse_opt). */
static const char *opt_item_end(const char *p)
{
	while (*p && *p != ',')
		p += p[0] == '\\' && p[1] ? 2 : 1;
	return p;
}

/* name is the long name of an entry of tables (NULL-terminated), other than -o's. */
static bool is_long_option(const GOptionEntry *const *tables, const char *name)
{
	for (const GOptionEntry *const *t = tables; *t; t++)
		for (const GOptionEntry *e = *t; e->long_name; e++)
			if (g_str_equal(e->long_name, name) && !g_str_equal(name, "options"))
				return true;
	return false;
}

/* "--NAME[=VALUE]" of a -o item naming an option of ours, its escapes removed. */
static char *long_form(const char *item, size_t len)
{
	GString *arg = g_string_new("--");
	for (size_t i = 0; i < len; i++) {
		if (item[i] == '\\' && i + 1 < len)
			i++;
		g_string_append_c(arg, item[i]);
	}
	return g_string_free(arg, FALSE);
}

/* Sort one item of a -o list: an option of ours onto args, FUSE's onto fuse, mount(8)'s away. */
static void sort_mount_opt(const char *item, size_t len, const GOptionEntry *const *tables,
			   GPtrArray *args, GString *fuse)
{
	char *name = g_strndup(item, MIN(len, strcspn(item, "=")));
	if (is_long_option(tables, name)) {
		g_ptr_array_add(args, long_form(item, len));
	} else if (*name && !g_strv_contains(mount_only_opts, name)) {
		if (fuse->len)
			g_string_append_c(fuse, ',');
		g_string_append_len(fuse, item, (gssize)len);
	}
	g_free(name);
}

/* The list of a -o at argv[*i] (-o LIST, -oLIST, --options[=]LIST), *i moved past it; else NULL. */
static const char *mount_opts_at(int argc, char **argv, int *i)
{
	const char *arg = argv[*i];
	if ((g_str_equal(arg, "-o") || g_str_equal(arg, "--options")) && *i + 1 < argc)
		return argv[++*i];
	if (g_str_has_prefix(arg, "--options="))
		return arg + strlen("--options=");
	if (g_str_has_prefix(arg, "-o") && arg[2])
		return arg + 2;
	return NULL;
}

/*
 * argv (NULL-terminated, g_strfreev) with every -o list taken apart, as
 * mount.fuse3 passes fstab's options and sshfs and rclone take theirs: an
 * option of ours as --NAME[=VALUE], FUSE's joined in *fuse_opts (NULL: none).
 */
static char **expand_mount_opts(int argc, char **argv, const GOptionEntry *const *tables,
				char **fuse_opts)
{
	GPtrArray *args = g_ptr_array_new();
	GString *fuse = g_string_new(NULL);
	bool ended = false;
	for (int i = 0; i < argc; i++) {
		const char *list = ended ? NULL : mount_opts_at(argc, argv, &i);
		ended = ended || g_str_equal(argv[i], "--");
		for (const char *p = list; p;) {
			const char *end = opt_item_end(p);
			sort_mount_opt(p, (size_t)(end - p), tables, args, fuse);
			p = *end ? end + 1 : NULL;
		}
		if (!list)
			g_ptr_array_add(args, g_strdup(argv[i]));
	}
	g_ptr_array_add(args, NULL);
	*fuse_opts = fuse->len ? g_string_free(fuse, FALSE) : NULL;
	if (!*fuse_opts)
		g_string_free(fuse, TRUE);
	return (char **)g_ptr_array_free(args, FALSE);
}

static const char summary[] =
	"Mount an S3 bucket path or an HTTP(S) directory as a read-only file system:\n"
	"every object is a file, its bytes fetched in ranges as they are read.\n"
	"A LitData or MosaicML MDS dataset (a directory with an index.json) also\n"
	"shows each item as a file under .items/ (zstd chunks decompressed under\n"
	".decompressed/), and a WebDataset tar shard NAME.tar its members under\n"
	"NAME.tar.d/.\n"
	"URL is the directory to mount: http://HOST/PATH/, https://HOST/PATH/ or\n"
	"s3://BUCKET/PREFIX. SIZE is bytes or a number with K, M, G or T (powers\n"
	"of 1024).";

bool cfs_options_parse(int argc, char **argv, struct cfs_options *opts, bool *exit_now,
		       GError **error)
{
	struct raw_args a = { .max_connections = DEFAULT_MAX_CONNECTIONS,
			      .fetch_threads = DEFAULT_FETCH_THREADS,
			      .connect_timeout = DEFAULT_CONNECT_TIMEOUT_S,
			      .timeout = DEFAULT_TIMEOUT_S,
			      .retries = DEFAULT_RETRIES,
			      .metadata_ttl = DEFAULT_METADATA_TTL_S,
			      .max_dir_entries = DEFAULT_MAX_DIR_ENTRIES,
			      .shared_cache_timeout = DEFAULT_SHARED_CACHE_TIMEOUT_MS };
	GOptionEntry entries[] = {
		{ "foreground", 'f', 0, G_OPTION_ARG_NONE, &a.foreground, "Stay in the foreground",
		  NULL },
		{ "debug", 'd', 0, G_OPTION_ARG_NONE, &a.debug, "Log debug lines (every request)",
		  NULL },
		{ "log-file", 0, 0, G_OPTION_ARG_FILENAME, &a.log_file,
		  "Log to FILE (appended, created 0600, not a symlink) instead of stderr or syslog",
		  "FILE" },
		{ "mem-cache", 0, 0, G_OPTION_ARG_STRING, &a.mem_cache,
		  "Memory tier cap (default 1/8 of RAM or of the cgroup memory limit, at most 1G)",
		  "SIZE" },
		{ "lazy-memory", 0, 0, G_OPTION_ARG_NONE, &a.lazy_memory,
		  "Fault the memory tier in as blocks arrive, not ahead (up to the cap, at most"
		  " 1G) while the mount has no reads (resident memory grows with use; first"
		  " reads are slower)",
		  NULL },
		{ "block-size", 0, 0, G_OPTION_ARG_STRING, &a.block_size,
		  "Cache block size, a power of two (default 1M)", "SIZE" },
		{ "readahead", 0, 0, G_OPTION_ARG_STRING, &a.readahead,
		  "Largest readahead window of a sequential reader, 0 for none (default 64M)",
		  "SIZE" },
		{ "cache-dir", 0, 0, G_OPTION_ARG_FILENAME, &a.cache_dir,
		  "Spill tier directory (default $XDG_CACHE_HOME/chunkfs, else /var/cache/chunkfs"
		  " for root, else ~/.cache/chunkfs)",
		  "DIR" },
		{ "disk-cache", 0, 0, G_OPTION_ARG_STRING, &a.disk_cache,
		  "Spill tier cap, 0 for none (default a tenth of DIR's free space and what the"
		  " cache holds, at most 10G)",
		  "SIZE" },
		{ "eviction", 0, 0, G_OPTION_ARG_STRING, &a.eviction,
		  "Eviction policy of both tiers: lru, lfu or fifo (default lru)", "POLICY" },
		{ "spill-compress", 0, 0, G_OPTION_ARG_NONE, &a.spill_compress,
		  "zstd-compress spilled blocks that shrink", NULL },
		{ "shared-cache", 0, 0, G_OPTION_ARG_STRING, &a.shared_cache,
		  "Shared tier on memcached servers, between the spill tier and the remote",
		  "memcached://HOST:PORT[,HOST:PORT...]" },
		{ "shared-cache-timeout", 0, 0, G_OPTION_ARG_INT, &a.shared_cache_timeout,
		  "Milliseconds each connect, send and receive of the shared tier may take,"
		  " and a whole lookup twice that (default 100)",
		  "MS" },
		{ "max-connections", 0, 0, G_OPTION_ARG_INT, &a.max_connections,
		  "Concurrent HTTP requests (default 8)", "N" },
		{ "fetch-threads", 0, 0, G_OPTION_ARG_INT, &a.fetch_threads,
		  "Threads that receive responses, sharing the connections (default 2)", "N" },
		{ "connect-timeout", 0, 0, G_OPTION_ARG_INT, &a.connect_timeout,
		  "Seconds to wait for a connection (default 10)", "S" },
		{ "timeout", 0, 0, G_OPTION_ARG_INT, &a.timeout,
		  "Retry a request that delivers no byte for S seconds (default 30)", "S" },
		{ "retries", 0, 0, G_OPTION_ARG_INT, &a.retries,
		  "Attempts after a failed one before a read fails (default 4)", "N" },
		{ "metadata-ttl", 0, 0, G_OPTION_ARG_INT, &a.metadata_ttl,
		  "Seconds a directory listing is trusted (default 3600)", "S" },
		{ "max-dir-entries", 0, 0, G_OPTION_ARG_INT, &a.max_dir_entries,
		  "Fail the listing of a directory with more entries (default 10000000)", "N" },
		{ "header", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &a.headers,
		  "Send this header with every request (repeatable; never logged)",
		  "'NAME: VALUE'" },
		{ "header-file", 0, 0, G_OPTION_ARG_FILENAME, &a.header_file,
		  "Send the headers of FILE ('NAME: VALUE' lines; # comments) with every request;"
		  " FILE must be yours or root's, mode 600 or stricter (never logged)",
		  "FILE" },
		{ "cacert", 0, 0, G_OPTION_ARG_FILENAME, &a.cacert,
		  "Trust this CA (PEM) besides the system's", "FILE" },
		{ "insecure", 0, 0, G_OPTION_ARG_NONE, &a.insecure,
		  "Do not verify TLS certificates (warns)", NULL },
		{ "endpoint", 0, 0, G_OPTION_ARG_FILENAME, &a.endpoint,
		  "S3 endpoint (default AWS_ENDPOINT_URL, else AWS's for the region)", "URL" },
		{ "region", 0, 0, G_OPTION_ARG_FILENAME, &a.region,
		  "S3 region (default AWS_REGION, AWS_DEFAULT_REGION, the profile's, us-east-1)",
		  "NAME" },
		{ "s3-addressing", 0, 0, G_OPTION_ARG_STRING, &a.s3_addressing,
		  "S3 bucket addressing: path or virtual (default: virtual on AWS, else path)",
		  "STYLE" },
		{ "profile", 0, 0, G_OPTION_ARG_FILENAME, &a.profile,
		  "AWS profile of ~/.aws/credentials and ~/.aws/config (default AWS_PROFILE, else "
		  "default)",
		  "NAME" },
		{ "no-sign-request", 0, 0, G_OPTION_ARG_NONE, &a.no_sign_request,
		  "Send S3 requests unsigned (public buckets)", NULL },
		{ "metrics-addr", 0, 0, G_OPTION_ARG_STRING, &a.metrics_addr,
		  "Serve /metrics (Prometheus) over HTTP on [HOST:]PORT (HOST default 127.0.0.1;"
		  " [IPV6]:PORT)",
		  "ADDR" },
		{ "version", 'V', 0, G_OPTION_ARG_NONE, &a.version, "Print the version and exit",
		  NULL },
		/* FILENAME types: bytes as given, no conversion from the locale's charset. */
		{ G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &a.rest, NULL,
		  "URL MOUNTPOINT" },
		{ NULL, 0, 0, 0, NULL, NULL, NULL },
	};
	/* -o is parsed by expand_mount_opts: the entry is for --help */
	GOptionEntry mount_entries[] = {
		{ "options", 'o', 0, G_OPTION_ARG_FILENAME, &a.fuse_opts,
		  "Mount options: FUSE's, mount(8)'s, and any long option as NAME[=VALUE]",
		  "OPT[,OPT]" },
		{ "nonempty", 0, 0, G_OPTION_ARG_NONE, &a.nonempty,
		  "Mount over a directory that is not empty, hiding its files", NULL },
		{ "views", 0, 0, G_OPTION_ARG_STRING, &a.views,
		  "List .items/, .decompressed/, NAME.tar.d/ and .chunkfs/ in their directories"
		  " (visible), or only open them by name (hidden, the default)",
		  "hidden|visible" },
		{ NULL, 0, 0, 0, NULL, NULL, NULL },
	};
	const GOptionEntry *const tables[] = { entries, mount_entries, NULL };
	memset(opts, 0, sizeof(*opts));
	opts->block_size = CFS_MIB;
	opts->readahead = DEFAULT_READAHEAD;
	opts->disk_cache = CFS_DISK_CAP_AUTO;
	*exit_now = false;

	GOptionContext *ctx = g_option_context_new(NULL);
	g_option_context_set_summary(ctx, summary);
	g_option_context_add_main_entries(ctx, entries, NULL);
	g_option_context_add_main_entries(ctx, mount_entries, NULL);
	char **expanded = expand_mount_opts(argc, argv, tables, &a.fuse_opts);
	int n = (int)g_strv_length(expanded);
	/* the parser drops what it consumed from the array it is given: a copy of the pointers */
	char **args = g_memdup2(expanded, sizeof(char *) * (size_t)(n + 1));
	bool ok = g_option_context_parse(ctx, &n, &args, error);
	g_free(args);
	g_strfreev(expanded);
	g_option_context_free(ctx);
	if (ok && a.version) {
		opts->version = true;
		*exit_now = true;
	} else if (ok) {
		ok = convert(&a, opts, error);
	}
	g_free(a.mem_cache);
	g_free(a.block_size);
	g_free(a.readahead);
	g_free(a.fuse_opts);
	strfreev_zeroed(a.headers);
	g_free(a.header_file);
	g_free(a.cacert);
	g_free(a.endpoint);
	g_free(a.region);
	g_free(a.s3_addressing);
	g_free(a.profile);
	g_free(a.cache_dir);
	g_free(a.disk_cache);
	g_free(a.eviction);
	g_free(a.views);
	g_free(a.log_file);
	g_free(a.metrics_addr);
	g_free(a.shared_cache);
	g_strfreev(a.rest);
	if (!ok)
		cfs_options_clear(opts);
	return ok;
}

static void mask(char *from, char *to)
{
	for (char *p = from; p < to; p++)
		*p = '*';
}

/* Mask "user:password" of "scheme://user:password@host..." and everything after '?'. */
static void mask_url(char *arg)
{
	char *start = strstr(arg, "://");
	if (!start)
		return;
	start += 3;
	char *end = start + strcspn(start, "/?#");
	char *at = memchr(start, '@', (size_t)(end - start));
	if (at)
		mask(start, at);
	char *query = strchr(arg, '?');
	if (query)
		mask(query + 1, query + strlen(query));
}

/* Mask the value of "Name: value". */
static void mask_header(char *arg)
{
	char *colon = strchr(arg, ':');
	if (colon)
		mask(colon + 1, colon + strlen(colon));
}

/* Mask the values of the header= items of a -o list. */
static void mask_header_items(char *list)
{
	for (char *p = list; p;) {
		char *end = (char *)opt_item_end(p);
		char *colon = memchr(p, ':', (size_t)(end - p));
		if (g_str_has_prefix(p, "header=") && colon)
			mask(colon + 1, end);
		p = *end ? end + 1 : NULL;
	}
}

void cfs_options_hide_secrets(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *list = mount_opts_at(argc, argv, &i);
		if (list) {
			mask_header_items((char *)list); /* list points into argv[i] */
			mask_url(argv[i]);
		} else if (g_str_has_prefix(argv[i], "--header="))
			mask_header(argv[i] + strlen("--header="));
		else if (g_str_equal(argv[i], "--header") && i + 1 < argc)
			mask_header(argv[++i]);
		else
			mask_url(argv[i]);
	}
}

void cfs_options_clear(struct cfs_options *opts)
{
	g_free(opts->url);
	g_free(opts->mountpoint);
	g_free(opts->fuse_opts);
	strfreev_zeroed(opts->headers);
	g_free(opts->cacert);
	g_free(opts->endpoint);
	g_free(opts->region);
	g_free(opts->s3_addressing);
	g_free(opts->profile);
	g_free(opts->cache_dir);
	g_free(opts->eviction);
	g_free(opts->log_file);
	g_free(opts->metrics_addr);
	g_free(opts->shared_cache);
	memset(opts, 0, sizeof(*opts));
}
