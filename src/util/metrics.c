/* The counters of stats.c in the Prometheus text exposition format 0.0.4. */
#include "util/metrics.h"

#include <inttypes.h>
#include <limits.h>
#include <string.h>

#include "util/stats.h"

#define NO_TIER UINT_MAX
#define TTFB_FIRST_OCTAVE 6 /* the first bucket: TTFBs under 2^6 us */
#define TTFB_LAST_OCTAVE 26 /* the last finite bucket: under 2^26 us, about 67 s */

/* A metric family: one series, or one per tier (memory, disk, and shared where it counts). */
struct family {
	const char *name; /* after the chunkfs_ prefix */
	const char *help;
	unsigned value; /* the counter or gauge; the memory tier's when disk is set */
	unsigned disk;  /* the disk tier's counter or gauge, or NO_TIER */
};

/* The counter families of both tiers that have a shared tier's series too, by memory's counter. */
static const struct {
	unsigned mem, shared;
} shared_series[] = { { CFS_MEM_HITS, CFS_SHARED_HITS }, { CFS_MEM_MISSES, CFS_SHARED_MISSES } };

static const struct family counters[] = {
	{ "reads_total", "FUSE reads answered with data.", CFS_READS, NO_TIER },
	{ "read_errors_total", "FUSE reads answered with an errno.", CFS_READ_ERRORS, NO_TIER },
	{ "served_bytes_total", "Bytes returned to readers.", CFS_BYTES_SERVED, NO_TIER },
	{ "fetched_bytes_total", "Body bytes received from the server.", CFS_BYTES_FETCHED,
	  NO_TIER },
	{ "readahead_bytes_total", "Bytes requested by readahead, not by a read.",
	  CFS_READAHEAD_BYTES, NO_TIER },
	{ "requests_total", "HTTP requests started, retries included.", CFS_REQUESTS, NO_TIER },
	{ "requests_failed_total", "HTTP requests that gave up after their retries.",
	  CFS_REQUESTS_FAILED, NO_TIER },
	{ "retries_total", "HTTP attempts after a failed attempt.", CFS_RETRIES, NO_TIER },
	{ "cache_hits_total",
	  "memory: reads answered without waiting for a fetch; disk: blocks read back from the "
	  "spill tier; shared: blocks the shared tier had.",
	  CFS_MEM_HITS, CFS_DISK_HITS },
	{ "cache_misses_total",
	  "memory: reads that had to wait for a fetch; disk: blocks the spill tier did not have "
	  "when memory missed them; shared: blocks looked up in the shared tier and not had.",
	  CFS_MEM_MISSES, CFS_DISK_MISSES },
	{ "evictions_total", "Blocks dropped from the tier to make room.", CFS_MEM_EVICTIONS,
	  CFS_DISK_EVICTIONS },
	{ "decompressed_bytes_total", "Bytes produced by decompressing zstd chunks.",
	  CFS_DECOMPRESSED_BYTES, NO_TIER },
	{ "chunk_headers_total", "Chunk headers read to find items.", CFS_CHUNK_HEADERS, NO_TIER },
	{ "spills_total", "Blocks written to the spill tier.", CFS_SPILLS, NO_TIER },
	{ "spill_errors_total", "Block writes to the spill tier that failed.", CFS_SPILL_ERRORS,
	  NO_TIER },
	{ "checksum_failures_total",
	  "Spilled files refused on read: torn, truncated, corrupt or foreign.",
	  CFS_DISK_BAD_BLOCKS, NO_TIER },
	{ "validations_total", "HEADs made to learn an ETag before reusing spilled blocks.",
	  CFS_VALIDATIONS, NO_TIER },
	{ "errors_total", "Failures reported to .chunkfs/errors, dropped ones included.",
	  CFS_ERRORS, NO_TIER },
	{ "opens_total",
	  "FUSE OPEN requests: the first only where the kernel opens files by itself.", CFS_OPENS,
	  NO_TIER },
	{ "shared_stores_total", "Blocks stored in the shared tier.", CFS_SHARED_STORES, NO_TIER },
	{ "shared_store_failures_total", "Blocks a shared tier server did not take.",
	  CFS_SHARED_STORE_FAILURES, NO_TIER },
	{ "shared_store_drops_total", "Blocks not stored: the shared tier's queue was full.",
	  CFS_SHARED_STORE_DROPS, NO_TIER },
	{ "shared_checksum_failures_total", "Values from the shared tier that failed a check.",
	  CFS_SHARED_BAD_VALUES, NO_TIER },
	{ "shared_timeouts_total", "Shared tier operations that ran out of time.",
	  CFS_SHARED_TIMEOUTS, NO_TIER },
	{ "shared_read_bytes_total", "Bytes of blocks read from the shared tier.", CFS_SHARED_BYTES,
	  NO_TIER },
};

static const struct family gauges[] = {
	{ "cache_bytes", "Bytes the tier holds (disk: as du counts them).", CFS_MEM_BYTES,
	  CFS_DISK_BYTES },
	{ "cache_blocks", "Blocks resident in the tier.", CFS_MEM_BLOCKS, CFS_DISK_BLOCKS },
	{ "cache_capacity_bytes", "The tier's cap in bytes; 0 when the tier is off.", CFS_MEM_CAP,
	  CFS_DISK_CAP },
	{ "mem_idle_bytes",
	  "Block memory of the memory tier resident and free for the next blocks (faulted in"
	  " ahead, or left by evicted ones).",
	  CFS_MEM_IDLE, NO_TIER },
	{ "reads_parked", "Reads waiting for bytes now.", CFS_READS_PARKED, NO_TIER },
	{ "zstd_streams", "zstd decompression streams alive, idle ones included.", CFS_ZSTD_STREAMS,
	  NO_TIER },
	{ "nodes", "Tree nodes alive: shown, or removed and still held.", CFS_NODES, NO_TIER },
	{ "objects", "Objects alive: held, or waiting for the memory tier to let go.", CFS_OBJECTS,
	  NO_TIER },
	{ "views", "Item and tar views alive: shown, or removed and still held.", CFS_VIEWS,
	  NO_TIER },
	{ "view_bytes", "Bytes of views' indexes and tables, outside the memory cap (about).",
	  CFS_VIEW_BYTES, NO_TIER },
};

void cfs_metrics_append_name(GString *out, const char *name)
{
	if (!*name)
		g_string_append_c(out, '_');
	for (const char *p = name; *p; p++) {
		gboolean ok = g_ascii_isalpha(*p) || *p == '_' || *p == ':' ||
			      (p != name && g_ascii_isdigit(*p));
		g_string_append_c(out, ok ? *p : '_');
	}
}

/* Backslash and line feed always; the double quote only in label values. */
static void append_escaped(GString *out, const char *text, gboolean quote)
{
	for (const char *p = text; *p; p++) {
		if (*p == '\\')
			g_string_append(out, "\\\\");
		else if (*p == '\n')
			g_string_append(out, "\\n");
		else if (*p == '"' && quote)
			g_string_append(out, "\\\"");
		else
			g_string_append_c(out, *p);
	}
}

void cfs_metrics_append_label_value(GString *out, const char *value)
{
	append_escaped(out, value, TRUE);
}

void cfs_metrics_append_help(GString *out, const char *text)
{
	append_escaped(out, text, FALSE);
}

static void append_header(GString *out, const char *name, const char *type, const char *help)
{
	g_string_append(out, "# HELP chunkfs_");
	cfs_metrics_append_name(out, name);
	g_string_append_c(out, ' ');
	cfs_metrics_append_help(out, help);
	g_string_append(out, "\n# TYPE chunkfs_");
	cfs_metrics_append_name(out, name);
	g_string_append_printf(out, " %s\n", type);
}

/* One sample line; label is NULL for none. value is already formatted. */
static void append_sample(GString *out, const char *name, const char *label,
			  const char *label_value, const char *value)
{
	g_string_append(out, "chunkfs_");
	cfs_metrics_append_name(out, name);
	if (label) {
		g_string_append_c(out, '{');
		cfs_metrics_append_name(out, label);
		g_string_append(out, "=\"");
		cfs_metrics_append_label_value(out, label_value);
		g_string_append(out, "\"}");
	}
	g_string_append_printf(out, " %s\n", value);
}

static void append_counter(GString *out, const char *name, const char *tier, unsigned c)
{
	char value[24];
	g_snprintf(value, sizeof(value), "%" PRIu64, cfs_stats_get(c));
	append_sample(out, name, tier ? "tier" : NULL, tier, value);
}

static void append_gauge(GString *out, const char *name, const char *tier, unsigned g)
{
	char value[24];
	g_snprintf(value, sizeof(value), "%" PRId64, cfs_stats_gauge_get(g));
	append_sample(out, name, tier ? "tier" : NULL, tier, value);
}

static void append_families(GString *out, const struct family *f, size_t n, gboolean counter)
{
	void (*append)(GString *, const char *, const char *, unsigned) = counter ? append_counter
										  : append_gauge;
	for (size_t i = 0; i < n; i++) {
		append_header(out, f[i].name, counter ? "counter" : "gauge", f[i].help);
		if (f[i].disk == NO_TIER) {
			append(out, f[i].name, NULL, f[i].value);
			continue;
		}
		append(out, f[i].name, "memory", f[i].value);
		append(out, f[i].name, "disk", f[i].disk);
		for (size_t k = 0; counter && k < G_N_ELEMENTS(shared_series); k++)
			if (shared_series[k].mem == f[i].value)
				append(out, f[i].name, "shared", shared_series[k].shared);
	}
}

/*
 * Microseconds as an exact decimal number of seconds ("0.000063", "1"):
 * a float print of the division could round a bucket's bound across a value.
 */
static void format_seconds(char *buf, size_t size, uint64_t usec)
{
	g_snprintf(buf, size, "%" PRIu64 ".%06" PRIu64, usec / 1000000, usec % 1000000);
	char *end = buf + strlen(buf) - 1;
	while (*end == '0')
		*end-- = '\0';
	if (*end == '.')
		*end = '\0';
}

/*
 * TTFBs are whole microseconds, so "under 2^k us" is exactly "le 2^k - 1 us";
 * the bounds are the histogram's own bucket edges, so no bucket is split.
 */
static void append_ttfb(GString *out)
{
	static const char name[] = "time_to_first_byte_seconds";
	struct cfs_ttfb_snapshot s;
	cfs_stats_ttfb_snapshot(&s);
	append_header(out, name, "histogram",
		      "Time from starting an HTTP request to its first body byte, in seconds.");
	char le[32], value[24];
	for (unsigned k = TTFB_FIRST_OCTAVE; k <= TTFB_LAST_OCTAVE; k++) {
		format_seconds(le, sizeof(le), (UINT64_C(1) << k) - 1);
		g_snprintf(value, sizeof(value), "%" PRIu64, s.below[k]);
		append_sample(out, "time_to_first_byte_seconds_bucket", "le", le, value);
	}
	g_snprintf(value, sizeof(value), "%" PRIu64, s.count);
	append_sample(out, "time_to_first_byte_seconds_bucket", "le", "+Inf", value);
	format_seconds(le, sizeof(le), s.sum_usec);
	append_sample(out, "time_to_first_byte_seconds_sum", NULL, NULL, le);
	append_sample(out, "time_to_first_byte_seconds_count", NULL, NULL, value);
}

char *cfs_metrics_render(uint64_t *len)
{
	GString *out = g_string_new(NULL);
	append_families(out, counters, G_N_ELEMENTS(counters), TRUE);
	append_families(out, gauges, G_N_ELEMENTS(gauges), FALSE);
	append_ttfb(out);
	append_header(out, "build_info", "gauge", "Always 1; the version of chunkfs as a label.");
	append_sample(out, "build_info", "version", CHUNKFS_VERSION, "1");
	*len = out->len;
	return g_string_free(out, FALSE);
}
