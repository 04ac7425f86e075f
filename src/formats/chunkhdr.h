/*
 * The header that LitData chunks and MosaicML MDS shards both begin with:
 * a uint32 LE item count N, then N + 1 uint32 LE offsets, absolute from the
 * start of the (uncompressed) chunk; item i is the bytes
 * [offsets[i], offsets[i + 1]). Sources: litdata streaming/writer.py
 * (`BinaryWriter._create_chunk`), mosaicml streaming
 * base/format/mds/writer.py (`MDSWriter.encode_joint_shard`; an MDS shard
 * puts its config JSON between the table and the first sample).
 * Pure functions: no I/O, thread-safe.
 */
#ifndef CHUNKFS_CHUNKHDR_H
#define CHUNKFS_CHUNKHDR_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Most items a chunk may hold: its header is then at most 64 MiB. The count
 * comes from the index, and the header buffer is sized by it before any
 * byte of the chunk is read.
 */
#define CFS_CHUNK_MAX_ITEMS (UINT32_C(1) << 24)

/* Bytes of the header of a chunk of n items: 4 + 4 * (n + 1). */
uint64_t cfs_chunk_header_bytes(uint32_t n);

/*
 * Whether a chunk whose index gives n items may have its header read: n is
 * at most CFS_CHUNK_MAX_ITEMS and the header fits in the chunk's size bytes
 * (the uncompressed object's; CFS_SIZE_UNKNOWN skips that check). Else
 * false with *error set (G_IO_ERROR_INVALID_DATA) and a message giving the
 * numbers, e.g. "the index gives 4294967295 items, more than the 16777216
 * a chunk may hold", "a header of 4000008 bytes for 1000000 items is
 * larger than the chunk (30 bytes)".
 */
bool cfs_chunk_header_fits(uint32_t n, uint64_t size, GError **error);

/*
 * Parse the header of a chunk that its index says holds n items and whose
 * (uncompressed) object is size bytes; buf holds the chunk's first len
 * bytes, len >= cfs_chunk_header_bytes(n) (a shorter len is a truncated
 * chunk and fails). Checks: the count equals n; every offset is at least
 * cfs_chunk_header_bytes(n); offsets never decrease; offsets[n] <= size.
 * Returns the n + 1 offsets (g_malloc'd, the caller frees them), or NULL
 * with *error set (G_IO_ERROR_INVALID_DATA) and a message naming the
 * problem and the numbers, e.g. "holds 17 items, the index says 16",
 * "offset 5 (120) is below offset 4 (300)", "offset 16 (30000) is past the
 * end (26124)", "header truncated: 40 of 76 bytes".
 */
uint32_t *cfs_chunk_header_parse(const uint8_t *buf, size_t len, uint32_t n, uint64_t size,
				 GError **error);

#endif
