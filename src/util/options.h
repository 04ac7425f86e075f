/* Command-line configuration of one mount. */
#ifndef CHUNKFS_OPTIONS_H
#define CHUNKFS_OPTIONS_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define CFS_MIB (UINT64_C(1) << 20)

struct cfs_options {
	char *url;            /* as given: http(s):// or s3://; checked by cfs_remote_new() */
	char *mountpoint;     /* absolute path */
	bool foreground;      /* -f */
	bool debug;           /* -d */
	char *log_file;       /* --log-file: log here instead of stderr or syslog; NULL: none */
	bool version;         /* --version: print the versions and exit */
	char *fuse_opts;      /* -o items not ours, comma separated, for fuse_session_new */
	uint64_t mem_cache;   /* bytes, memory tier cap */
	bool lazy_memory;     /* --lazy-memory: no faulting of the memory tier in ahead of use */
	uint64_t block_size;  /* bytes, power of two */
	uint64_t readahead;   /* bytes, largest readahead window; 0 disables */
	unsigned max_connections;
	unsigned fetch_threads;   /* fetcher threads sharing max_connections */
	unsigned connect_timeout_s;
	unsigned timeout_s;   /* a request that delivers no byte for this long is retried */
	unsigned retries;     /* attempts after the first one */
	unsigned metadata_ttl_s; /* listings and sizes are trusted this long */
	unsigned max_dir_entries; /* a directory listing with more entries fails (EIO) */
	char **headers;           /* "Name: value" of --header, then --header-file; may be NULL */
	char *cacert;         /* --cacert: PEM file of an extra CA */
	bool insecure;        /* --insecure: no TLS verification */
	char *endpoint;       /* --endpoint: S3 endpoint URL */
	char *region;         /* --region */
	char *s3_addressing;  /* --s3-addressing: "path", "virtual", or NULL to choose by endpoint */
	char *profile;        /* --profile: AWS profile name */
	bool no_sign_request; /* --no-sign-request: anonymous S3 requests */
	char *cache_dir;      /* --cache-dir: the spill tier's files; NULL: no default, tier off */
	uint64_t disk_cache;  /* bytes, spill tier cap; 0: off; CFS_DISK_CAP_AUTO (spill/spill.h) */
	char *eviction;       /* --eviction: policy of both tiers (policy.h) */
	bool spill_compress;  /* --spill-compress: zstd-compress spilled blocks */
	char *metrics_addr;   /* --metrics-addr: [HOST:]PORT serving /metrics; NULL: none */
	char *shared_cache; /* --shared-cache: memcached://HOST:PORT[,...]; NULL: no shared tier */
	unsigned shared_cache_timeout_ms; /* --shared-cache-timeout: each memcached call's bound */
	bool views_visible; /* --views=visible: readdir lists the views and .chunkfs/ */
};


/*
 * Parse a size: a decimal number of bytes with an optional suffix K, M, G or T
 * (powers of 1024, case-insensitive, an optional trailing "B" or "iB").
 * Returns true and stores the value in *out; false on anything else
 * (empty, negative, fraction, unknown suffix, overflow of 64 bits).
 * Thread-safe.
 */
bool cfs_parse_size(const char *text, uint64_t *out);

/*
 * Parse argv into *opts, filling defaults first: mem_cache 1/8 of physical RAM
 * capped at 1 GiB, block_size 1 MiB, readahead 64 MiB, 8 connections over
 * 2 fetch threads, connect timeout 10 s, timeout 30 s, 4 retries,
 * max_dir_entries 10,000,000, shared_cache_timeout_ms 100, cache_dir
 * $XDG_CACHE_HOME/chunkfs (an absolute one), else /var/cache/chunkfs for
 * root (euid 0), else $HOME/.cache/chunkfs (refused without an absolute
 * HOME unless disk_cache is 0), disk_cache CFS_DISK_CAP_AUTO, eviction "lru",
 * views hidden.
 * --header-file is read here: a regular file, not a symlink, of the euid
 * or root, no group or other permission bits, at most 64 KiB and 1024
 * lines of "Name: value" (blank lines and '#' lines skipped), each checked
 * as a --header value is (RFC 9110 section 5); its headers follow those of
 * --header in opts->headers.
 * Every long option is also accepted as an item NAME[=VALUE] of a -o list
 * (as mount.fuse(8) passes fstab's options); the mount(8) options of every
 * file system (_netdev, nofail, noauto, auto, user, users, nouser, owner,
 * group, defaults, rw, ro) are dropped, the other items go to fuse_opts. A
 * comma escaped by a backslash stays inside its item (libfuse's fuse_opt).
 * The mountpoint must be a directory that is not a mount, and empty unless
 * --nonempty (-o nonempty); --cacert a readable regular file; --disk-cache
 * 0 or at least one block.
 * Handles --help itself by printing to stdout and exiting; --version sets
 * opts->version and *exit_now (return value true). On a usage error returns
 * false with a one-line message in *error. argv is not modified.
 * The strings in *opts are owned by opts: free them with cfs_options_clear().
 */
bool cfs_options_parse(int argc, char **argv, struct cfs_options *opts,
		       bool *exit_now, GError **error);

/*
 * Mask with '*' the secrets in the process's own argv, so that ps and
 * /proc/PID/cmdline do not show them: the userinfo and query string of URL
 * arguments and the values of --header and -o header=. Lengths are kept. Call after
 * cfs_options_parse(), which copied what it needs. Not thread-safe.
 */
void cfs_options_hide_secrets(int argc, char **argv);

/* Free the strings held by *opts and zero it. Safe on a zeroed struct. */
void cfs_options_clear(struct cfs_options *opts);

#endif
