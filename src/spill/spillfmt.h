/*
 * The file a spilled block lives in (chunkfs's own format, version 1):
 *
 *   offset  size  field
 *   0       8     magic "CFSBLK\r\n"
 *   8       2     version (1), uint16 LE like every number here
 *   10      2     flags: bit 0 = the payload is one zstd frame
 *   12      4     header bytes (this table, the name, the ETag, the extents and the
 *                 header checksum)
 *   16      8     block index
 *   24      8     object size in bytes
 *   32      4     block length in bytes (the last block of an object is shorter)
 *   36      4     extent count
 *   40      4     payload bytes once decompressed (the sum of the extents)
 *   44      4     payload bytes as stored
 *   48      2     name length, then 2 bytes of ETag length, 4 of zero
 *   56      8     XXH3-64 of the payload as stored
 *   64      ...   the object's name, its ETag ("" when the server sent none), then
 *                 extent count pairs of uint32 [lo, hi) inside the block
 *   ...     8     XXH3-64 of every header byte before it
 *   then the payload: the extents' bytes in order, raw or zstd-compressed
 *
 * A block holds only the bytes that had landed (a random reader fetches
 * parts of blocks), so the extents say which. Every read of a file checks
 * all of it, and the name, ETag, object size and index against what is
 * wanted, so a torn, truncated, corrupt, stale or foreign file is refused.
 * Pure functions, thread-safe.
 */
#ifndef CHUNKFS_SPILLFMT_H
#define CHUNKFS_SPILLFMT_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/extents.h"

/*
 * Which block a file must hold. The name and the ETag are at most
 * CFS_SPILL_TEXT_MAX bytes each (their lengths are 16-bit): see
 * cfs_spill_id_fits().
 */
#define CFS_SPILL_TEXT_MAX 65535
struct cfs_spill_id {
	const char *name;      /* the object's name (path below the mount root) */
	const char *etag;      /* the object's ETag as the server sent it; "" when none */
	uint64_t object_size;  /* bytes */
	uint64_t index;        /* block index */
	uint32_t len;          /* bytes of the whole block */
};

/*
 * A block file to write: header, then the payload, which is packed (a zstd
 * frame) or, when packed is NULL, the extents' bytes of the block as they
 * are, so that they are written straight from the block without a copy.
 */
struct cfs_spill_file {
	GBytes *header;
	uint8_t *packed;
	size_t packed_len;
};

/* Whether the file format can name id (its name and ETag fit). */
bool cfs_spill_id_fits(const struct cfs_spill_id *id);

/*
 * The file of the block id (which must fit) holding the bytes of extents
 * (sorted, disjoint, inside [0, id->len)) of data (the whole block). With
 * compress, the payload is a zstd frame (level 1) when that is smaller.
 * *out owns its header and packed payload; a raw payload is not copied,
 * so data must stay as it is until the file is written. Clear *out with
 * cfs_spill_file_clear(), which frees what it owns and leaves it empty.
 */
void cfs_spill_prepare(const struct cfs_spill_id *id, const struct cfs_extents *extents,
		       const uint8_t *data, bool compress, struct cfs_spill_file *out);
void cfs_spill_file_clear(struct cfs_spill_file *f);

/* The same file as one buffer of bytes (a new GBytes). */
GBytes *cfs_spill_encode(const struct cfs_spill_id *id, const struct cfs_extents *extents,
			 const uint8_t *data, bool compress);

/* Bytes of a file's start that hold its header, in the usual case. */
#define CFS_SPILL_HEADER_PROBE 4096

/* Where a block file's bytes are, from its checked header. */
struct cfs_spill_layout {
	size_t header;               /* bytes before the payload */
	bool compressed;             /* the payload is one zstd frame */
	uint32_t raw, stored;        /* payload bytes once decompressed, and in the file */
	uint64_t checksum;           /* XXH3-64 of the stored payload */
	struct cfs_extents extents;  /* the bytes of the block it holds; raw payloads in order */
};

/*
 * Check the header of a block file of file_len bytes from its first len
 * bytes (buf) against id, and describe the rest in *out (clear it with
 * cfs_spill_layout_clear()). When len is too short for the header, fails
 * with *need set to the bytes needed and no error; otherwise fails with
 * G_IO_ERROR_INVALID_DATA and a message saying what is wrong (bad magic,
 * another version, the header checksum, a truncated file, another object,
 * ETag or block, bad extents). The payload is not checked yet.
 */
bool cfs_spill_read_header(const uint8_t *buf, size_t len, uint64_t file_len,
			   const struct cfs_spill_id *id, struct cfs_spill_layout *out,
			   size_t *need, GError **error);
/* Free the extents of l, leaving it empty. */
void cfs_spill_layout_clear(struct cfs_spill_layout *l);

/*
 * A raw payload read straight into place (extent i's bytes at data + lo):
 * true when its checksum matches, else G_IO_ERROR_INVALID_DATA.
 */
bool cfs_spill_check_raw(const struct cfs_spill_layout *l, const uint8_t *data, GError **error);

/*
 * A compressed payload (l->stored bytes): check it, decompress it and put
 * the extents' bytes into data. Fails (G_IO_ERROR_INVALID_DATA) on a
 * checksum mismatch or a frame that does not give l->raw bytes; data may
 * then hold garbage in the extents.
 */
bool cfs_spill_unpack(const struct cfs_spill_layout *l, const uint8_t *payload, uint8_t *data,
		      GError **error);

/*
 * The whole check of the file buf[0, len) as id: when it holds that block
 * intact, copy its bytes into data (id->len bytes; only the extents are
 * written) and add its extents to *extents. Fails as the functions above
 * do and leaves data and *extents alone.
 */
bool cfs_spill_decode(const uint8_t *buf, size_t len, const struct cfs_spill_id *id,
		      uint8_t *data, struct cfs_extents *extents, GError **error);

#endif
