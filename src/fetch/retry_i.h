/*
 * Private to the fetch module: the back-off between a request's attempts,
 * which the fetcher waits (fetch.c) and the read bound counts (retry.c).
 */
#ifndef CHUNKFS_RETRY_I_H
#define CHUNKFS_RETRY_I_H

/* The wait before retry n is BACKOFF_FIRST_US << (n - 1), at most BACKOFF_MAX_US (README.md). */
#define BACKOFF_FIRST_US (100 * 1000)
#define BACKOFF_MAX_US (5 * 1000 * 1000)
/* Doublings counted at most: BACKOFF_MAX_US comes long before, and no shift overflows. */
#define BACKOFF_MAX_DOUBLINGS 16u

#endif
