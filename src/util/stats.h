/*
 * Process-wide counters, rendered as JSON in .chunkfs/stats.
 * Every function here is thread-safe (relaxed atomics; a rendering is not a
 * consistent snapshot across counters, each counter is exact on its own).
 */
#ifndef CHUNKFS_STATS_H
#define CHUNKFS_STATS_H

#include <stdint.h>

enum cfs_counter {
	CFS_READS,              /* FUSE reads answered with data */
	CFS_READ_ERRORS,        /* FUSE reads answered with an errno */
	CFS_BYTES_SERVED,       /* bytes returned to readers */
	CFS_BYTES_FETCHED,      /* body bytes received from the server */
	CFS_READAHEAD_BYTES,    /* bytes requested by readahead, not by a read */
	CFS_REQUESTS,           /* HTTP requests started, retries included */
	CFS_REQUESTS_FAILED,    /* requests that gave up after their retries */
	CFS_RETRIES,            /* attempts after a failed attempt */
	CFS_MEM_HITS,           /* reads answered from memory without waiting */
	CFS_MEM_MISSES,         /* reads that had to wait for a fetch */
	CFS_MEM_EVICTIONS,      /* blocks dropped from the memory tier */
	CFS_DECOMPRESSED_BYTES, /* bytes produced by decompressing zstd chunks */
	CFS_CHUNK_HEADERS,      /* chunk headers read to find items */
	CFS_DISK_HITS,          /* blocks read back from the spill tier */
	CFS_DISK_MISSES,        /* blocks the spill tier did not have when memory missed them */
	CFS_SPILLS,             /* blocks written to the spill tier */
	CFS_SPILL_ERRORS,       /* block writes that failed (no space, I/O error) */
	CFS_DISK_EVICTIONS,     /* blocks dropped from the spill tier to make room */
	CFS_DISK_BAD_BLOCKS, /* spilled files refused on read: torn, truncated, corrupt, foreign */
	CFS_VALIDATIONS,     /* HEADs made to learn an ETag before reusing spilled blocks */
	CFS_ERRORS,          /* failures reported to .chunkfs/errors (errors.h), dropped ones too */
	CFS_OPENS,           /* FUSE OPENs: the first only, where the kernel opens by itself */
	CFS_SHARED_HITS,     /* blocks the shared tier had, every part valid */
	CFS_SHARED_MISSES,   /* blocks looked up in the shared tier and not had whole */
	CFS_SHARED_STORES,   /* blocks stored in the shared tier */
	CFS_SHARED_STORE_FAILURES, /* blocks a server did not take (down, slow, full) */
	CFS_SHARED_STORE_DROPS,    /* blocks not stored: the store queue was full, or unmount */
	CFS_SHARED_BAD_VALUES,     /* values from the shared tier that failed a check */
	CFS_SHARED_TIMEOUTS,       /* shared tier operations that ran out of time */
	CFS_SHARED_BYTES,          /* bytes of blocks read from the shared tier */
	CFS_COUNTER_COUNT
};

enum cfs_gauge {
	CFS_MEM_BYTES,    /* bytes of block buffers allocated */
	CFS_MEM_BLOCKS,   /* blocks resident */
	CFS_MEM_CAP,      /* memory tier cap, bytes */
	CFS_READS_PARKED, /* reads waiting for bytes now */
	CFS_ZSTD_STREAMS, /* zstd decompression streams alive, idle ones included */
	CFS_DISK_BYTES,   /* bytes the spill tier takes on disk, as du counts them */
	CFS_DISK_BLOCKS,  /* blocks in the spill tier */
	CFS_DISK_CAP,     /* spill tier cap, bytes; 0 when it is off */
	CFS_NODES,        /* tree nodes alive: shown, or removed and still held */
	CFS_OBJECTS,      /* objects alive: held, or waiting for the memory tier to let go */
	CFS_VIEWS,        /* item and tar views alive: shown, or removed and still held */
	CFS_VIEW_BYTES,   /* bytes of views' indexes and tables, outside the cap (about) */
	CFS_MEM_IDLE,     /* block memory resident and free for the next blocks, bytes */
	CFS_GAUGE_COUNT
};

/*
 * Add n to counter c, set or move gauge g, read either back, in the unit
 * of the counter or gauge (above). Thread-safe: relaxed atomics, so a
 * reader sees each value whole but not a consistent set of them.
 */
void cfs_stats_add(enum cfs_counter c, uint64_t n);
void cfs_stats_gauge_set(enum cfs_gauge g, int64_t value);
void cfs_stats_gauge_add(enum cfs_gauge g, int64_t delta);
uint64_t cfs_stats_get(enum cfs_counter c);
int64_t cfs_stats_gauge_get(enum cfs_gauge g);

/* Record one time to first byte, in microseconds, into the TTFB histogram. */
void cfs_stats_ttfb(uint64_t usec);

/*
 * Percentile (0 < p < 100) of the recorded TTFBs in milliseconds, from a
 * log-scale histogram (resolution about 9%); 0 when none were recorded.
 */
double cfs_stats_ttfb_percentile(double p);

/* The TTFB histogram's counts at each power of two of microseconds. */
#define CFS_TTFB_OCTAVES 64
struct cfs_ttfb_snapshot {
	uint64_t below[CFS_TTFB_OCTAVES]; /* below[k]: TTFBs under 2^k microseconds */
	uint64_t count;                   /* TTFBs recorded */
	uint64_t sum_usec;                /* their sum, in microseconds */
};

/*
 * Fill *s from the TTFB histogram: below[] is cumulative (non-decreasing in
 * k) and below[CFS_TTFB_OCTAVES - 1] <= count, both read in one pass. sum_usec
 * is read apart from the counts, so it may include a TTFB recorded meanwhile.
 */
void cfs_stats_ttfb_snapshot(struct cfs_ttfb_snapshot *s);

/*
 * Render all counters, gauges, TTFB p50/p99 (ms), read amplification
 * (bytes fetched / bytes served) and each tier's hit ratio (memory: reads
 * answered without waiting / reads; disk: blocks read back / blocks that
 * memory missed; shared: blocks had / blocks looked up) as a pretty-printed JSON object followed
 * by a newline. Returns a g_malloc'd string the caller frees; *len gets its
 * length in bytes.
 */
char *cfs_stats_render(uint64_t *len);

#endif
