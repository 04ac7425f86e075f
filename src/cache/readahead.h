/*
 * Readahead policy: detects sequential streams among the reads of one
 * object by their positions (not by file descriptor, so forked DataLoader
 * workers sharing a descriptor are seen for what they read) and gives each
 * stream a window that starts small and doubles up to a maximum, once the
 * stream has run 8 MiB (half the object, for a smaller one). A read that continues no stream starts a new one
 * and gets no readahead.
 * Not thread-safe: the owner (the memory tier) holds its lock.
 */
#ifndef CHUNKFS_READAHEAD_H
#define CHUNKFS_READAHEAD_H

#include <stdbool.h>
#include <stdint.h>

#define CFS_RA_STREAMS 8

struct cfs_ra_stream {
	uint64_t start;     /* offset of the stream's first read */
	uint64_t next;      /* offset just past the last read of the stream */
	uint64_t ahead;     /* readahead was asked for up to here */
	uint64_t window;    /* bytes; 0 until its first readahead */
	bool continued;     /* seen more than once: it gets the wide slack */
	uint64_t last_use;  /* tick of the last read, for replacing streams */
};

struct cfs_ra_streams {
	struct cfs_ra_stream s[CFS_RA_STREAMS];
	uint64_t tick;
};

/*
 * Account the read [off, off + len) of an object of obj_size bytes and say
 * what to prefetch: returns true with [*start, *end) when the read continues
 * a stream that has run at least 8 MiB (or half the object) and whose readahead runs low (less
 * than half a window ahead), false otherwise. max_window is in bytes; 0 turns readahead off.
 */
bool cfs_readahead_advise(struct cfs_ra_streams *rs, uint64_t off, uint64_t len,
			  uint64_t obj_size, uint64_t max_window,
			  uint64_t *start, uint64_t *end);

#endif
