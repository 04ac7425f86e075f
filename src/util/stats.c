/* Counters as relaxed atomics; TTFB in a log-scale histogram. */
#include "util/stats.h"

#include <glib.h>
#include <string.h>
#include <json-glib/json-glib.h>

#define SUB_BITS 3                      /* 8 buckets per power of two: about 9% wide */
#define TTFB_BUCKETS (64 << SUB_BITS)

static uint64_t counters[CFS_COUNTER_COUNT];
static int64_t gauges[CFS_GAUGE_COUNT];
static uint64_t ttfb[TTFB_BUCKETS];
static uint64_t ttfb_sum_usec;

static const char *const counter_names[CFS_COUNTER_COUNT] = {
	[CFS_READS] = "reads",
	[CFS_READ_ERRORS] = "read_errors",
	[CFS_BYTES_SERVED] = "bytes_served",
	[CFS_BYTES_FETCHED] = "bytes_fetched",
	[CFS_READAHEAD_BYTES] = "readahead_bytes",
	[CFS_REQUESTS] = "requests",
	[CFS_REQUESTS_FAILED] = "requests_failed",
	[CFS_RETRIES] = "retries",
	[CFS_MEM_HITS] = "mem_hits",
	[CFS_MEM_MISSES] = "mem_misses",
	[CFS_MEM_EVICTIONS] = "mem_evictions",
	[CFS_DECOMPRESSED_BYTES] = "decompressed_bytes",
	[CFS_CHUNK_HEADERS] = "chunk_headers",
	[CFS_DISK_HITS] = "disk_hits",
	[CFS_DISK_MISSES] = "disk_misses",
	[CFS_SPILLS] = "spills",
	[CFS_SPILL_ERRORS] = "spill_errors",
	[CFS_DISK_EVICTIONS] = "disk_evictions",
	[CFS_DISK_BAD_BLOCKS] = "checksum_failures",
	[CFS_VALIDATIONS] = "validations",
	[CFS_OPENS] = "opens",
	[CFS_ERRORS] = "errors",
	[CFS_SHARED_HITS] = "shared_hits",
	[CFS_SHARED_MISSES] = "shared_misses",
	[CFS_SHARED_STORES] = "shared_stores",
	[CFS_SHARED_STORE_FAILURES] = "shared_store_failures",
	[CFS_SHARED_STORE_DROPS] = "shared_store_drops",
	[CFS_SHARED_BAD_VALUES] = "shared_checksum_failures",
	[CFS_SHARED_TIMEOUTS] = "shared_timeouts",
	[CFS_SHARED_BYTES] = "shared_bytes_read",
};

static const char *const gauge_names[CFS_GAUGE_COUNT] = {
	[CFS_MEM_BYTES] = "mem_bytes",
	[CFS_MEM_BLOCKS] = "mem_blocks",
	[CFS_MEM_CAP] = "mem_cap",
	[CFS_READS_PARKED] = "reads_parked",
	[CFS_ZSTD_STREAMS] = "zstd_streams",
	[CFS_DISK_BYTES] = "disk_bytes",
	[CFS_DISK_BLOCKS] = "disk_blocks",
	[CFS_DISK_CAP] = "disk_cap",
	[CFS_NODES] = "nodes",
	[CFS_OBJECTS] = "objects",
	[CFS_VIEWS] = "views",
	[CFS_VIEW_BYTES] = "view_bytes",
	[CFS_MEM_IDLE] = "mem_idle_bytes",
};

void cfs_stats_add(enum cfs_counter c, uint64_t n)
{
	__atomic_fetch_add(&counters[c], n, __ATOMIC_RELAXED);
}

uint64_t cfs_stats_get(enum cfs_counter c)
{
	return __atomic_load_n(&counters[c], __ATOMIC_RELAXED);
}

void cfs_stats_gauge_set(enum cfs_gauge g, int64_t value)
{
	__atomic_store_n(&gauges[g], value, __ATOMIC_RELAXED);
}

void cfs_stats_gauge_add(enum cfs_gauge g, int64_t delta)
{
	__atomic_fetch_add(&gauges[g], delta, __ATOMIC_RELAXED);
}

int64_t cfs_stats_gauge_get(enum cfs_gauge g)
{
	return __atomic_load_n(&gauges[g], __ATOMIC_RELAXED);
}

static unsigned bucket_of(uint64_t v)
{
	if (v < (1u << SUB_BITS))
		return (unsigned)v;
	unsigned top = 63 - (unsigned)__builtin_clzll(v);
	unsigned sub = (unsigned)(v >> (top - SUB_BITS)) & ((1u << SUB_BITS) - 1);
	return ((top - SUB_BITS + 1) << SUB_BITS) + sub;
}

/* Smallest value that falls in bucket b. */
static uint64_t bucket_floor(unsigned b)
{
	if (b < (1u << SUB_BITS))
		return b;
	unsigned top = (b >> SUB_BITS) + SUB_BITS - 1;
	uint64_t sub = b & ((1u << SUB_BITS) - 1);
	return (UINT64_C(1) << top) | (sub << (top - SUB_BITS));
}

void cfs_stats_ttfb(uint64_t usec)
{
	__atomic_fetch_add(&ttfb[bucket_of(usec)], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&ttfb_sum_usec, usec, __ATOMIC_RELAXED);
}

/*
 * Every power of two from 2^SUB_BITS up starts a bucket, so below[k] is exact;
 * below 2^SUB_BITS each bucket holds a single value.
 */
void cfs_stats_ttfb_snapshot(struct cfs_ttfb_snapshot *s)
{
	memset(s, 0, sizeof(*s));
	s->sum_usec = __atomic_load_n(&ttfb_sum_usec, __ATOMIC_RELAXED);
	unsigned k = 0, used = bucket_of(UINT64_MAX) + 1; /* bucket_floor overflows past it */
	for (unsigned b = 0; b < used; b++) {
		while (k < CFS_TTFB_OCTAVES && bucket_floor(b) >= (UINT64_C(1) << k))
			s->below[k++] = s->count;
		s->count += __atomic_load_n(&ttfb[b], __ATOMIC_RELAXED);
	}
	while (k < CFS_TTFB_OCTAVES)
		s->below[k++] = s->count;
}

double cfs_stats_ttfb_percentile(double p)
{
	uint64_t snap[TTFB_BUCKETS], total = 0;
	for (unsigned b = 0; b < TTFB_BUCKETS; b++)
		total += snap[b] = __atomic_load_n(&ttfb[b], __ATOMIC_RELAXED);
	if (total == 0)
		return 0.0;
	uint64_t rank = (uint64_t)((double)total * p / 100.0 + 0.5), seen = 0;
	rank = CLAMP(rank, 1, total);
	for (unsigned b = 0; b < TTFB_BUCKETS; b++) {
		seen += snap[b];
		if (seen >= rank) {
			double lo = (double)bucket_floor(b);
			double hi = b + 1 < TTFB_BUCKETS ? (double)bucket_floor(b + 1) : lo;
			return (lo + hi) / 2.0 / 1000.0;
		}
	}
	return 0.0;
}

/* part / whole, or 0 when whole is 0. */
static void add_ratio(JsonBuilder *b, const char *name, uint64_t part, uint64_t whole)
{
	json_builder_set_member_name(b, name);
	json_builder_add_double_value(b, whole ? (double)part / (double)whole : 0.0);
}

char *cfs_stats_render(uint64_t *len)
{
	JsonBuilder *b = json_builder_new();
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "version");
	json_builder_add_string_value(b, CHUNKFS_VERSION);
	for (unsigned c = 0; c < CFS_COUNTER_COUNT; c++) {
		json_builder_set_member_name(b, counter_names[c]);
		json_builder_add_int_value(b, (gint64)cfs_stats_get(c));
	}
	for (unsigned g = 0; g < CFS_GAUGE_COUNT; g++) {
		json_builder_set_member_name(b, gauge_names[g]);
		json_builder_add_int_value(b, cfs_stats_gauge_get(g));
	}
	json_builder_set_member_name(b, "ttfb_ms_p50");
	json_builder_add_double_value(b, cfs_stats_ttfb_percentile(50));
	json_builder_set_member_name(b, "ttfb_ms_p99");
	json_builder_add_double_value(b, cfs_stats_ttfb_percentile(99));
	uint64_t served = cfs_stats_get(CFS_BYTES_SERVED);
	add_ratio(b, "read_amplification", cfs_stats_get(CFS_BYTES_FETCHED), served);
	add_ratio(b, "mem_hit_ratio", cfs_stats_get(CFS_MEM_HITS),
		  cfs_stats_get(CFS_MEM_HITS) + cfs_stats_get(CFS_MEM_MISSES));
	add_ratio(b, "disk_hit_ratio", cfs_stats_get(CFS_DISK_HITS),
		  cfs_stats_get(CFS_DISK_HITS) + cfs_stats_get(CFS_DISK_MISSES));
	add_ratio(b, "shared_hit_ratio", cfs_stats_get(CFS_SHARED_HITS),
		  cfs_stats_get(CFS_SHARED_HITS) + cfs_stats_get(CFS_SHARED_MISSES));
	json_builder_end_object(b);

	JsonGenerator *gen = json_generator_new();
	JsonNode *root = json_builder_get_root(b);
	json_generator_set_root(gen, root);
	json_generator_set_pretty(gen, TRUE);
	gsize n;
	char *text = json_generator_to_data(gen, &n);
	char *out = g_strconcat(text, "\n", NULL);
	*len = n + 1;
	g_free(text);
	json_node_unref(root);
	g_object_unref(gen);
	g_object_unref(b);
	return out;
}
