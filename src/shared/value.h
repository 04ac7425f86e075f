/*
 * The keys and values of the shared tier (shared.h) in memcached. A block
 * of an object is stored as parts of at most CFS_SHARED_PART_BYTES, each
 * under its own key, so that a block plus its header fits memcached's
 * default item size limit of 1 MiB (memcached(1) -I). The format is in
 * docs/architecture.md, "The shared tier".
 *
 * Values come from servers other nodes write to: decoding checks every
 * field and a checksum before one byte of data is trusted.
 */
#ifndef CHUNKFS_SHARED_VALUE_H
#define CHUNKFS_SHARED_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CFS_SHARED_PART_BYTES (UINT32_C(256) << 10)
#define CFS_SHARED_HEADER_BYTES 64
/* The largest block the tier holds (256 parts): a header declaring more is refused. */
#define CFS_SHARED_MAX_BLOCK (UINT32_C(64) << 20)
/* "chunkfs:", 32 hex digits, ':', a part number of at most 3 digits, NUL. */
#define CFS_SHARED_KEY_SIZE 48

/* Which bytes a block holds: what its keys and values identify exactly. */
struct cfs_shared_id {
	const char *url;     /* the object's full URL, secrets included: only its SHA-256 is kept */
	const char *etag;    /* the remote object's ETag, as sent; never empty */
	uint64_t size;       /* bytes of the object (decompressed: of the output) */
	uint64_t block_size; /* bytes, the mount's --block-size */
	uint64_t index;      /* the block's index in the object */
	bool decompressed;   /* a block of the object's zstd output (.decompressed/) */
};

/* The XXH3-128 of a block's identity, which its keys and value headers carry. */
struct cfs_shared_hash {
	uint8_t b[16];
};

/* What a value's header says. */
struct cfs_shared_part {
	struct cfs_shared_hash hash; /* the block's identity */
	uint32_t part, parts;        /* this part's number, of parts in the block */
	uint32_t lo, len;            /* the part's bytes: [lo, lo + len) of the block */
	uint32_t block_len;          /* bytes of the block */
};

/*
 * The hash of id: XXH3-128 of the text "chunkfs-block-v2\n" SHA-256 of the
 * URL (lowercase hex) "\n" ETag "\n" size "\n" block size "\n" index "\n"
 * then "raw" or "decompressed", numbers in decimal. The URL goes in as its
 * SHA-256 so that URLs differing only in their query are told apart while
 * no secret of theirs (a presigned query, userinfo) reaches a key or a
 * value. Thread-safe.
 */
struct cfs_shared_hash cfs_shared_hash_of(const struct cfs_shared_id *id);

/*
 * Parts of a block of block_len bytes (1 to 256 for blocks up to
 * CFS_SHARED_MAX_BLOCK; 0 above it, a length no header may declare).
 */
uint32_t cfs_shared_parts(uint32_t block_len);

/*
 * Part number part of a block of block_len bytes, as its header must say
 * it: hash, [lo, lo + len), parts.
 */
struct cfs_shared_part cfs_shared_part_of(const struct cfs_shared_hash *hash, uint32_t block_len,
					  uint32_t part);

/*
 * Write the key of part p into key (CFS_SHARED_KEY_SIZE bytes): "chunkfs:",
 * the hash in lowercase hex (the first byte first), ':', the part number in
 * decimal. memcached keys are at most 250 bytes without spaces or control
 * characters (memcached's protocol.txt, "Keys"). Thread-safe.
 */
void cfs_shared_key(const struct cfs_shared_part *p, char key[CFS_SHARED_KEY_SIZE]);

/*
 * Encode part p with its p->len bytes of data into out, which holds
 * CFS_SHARED_HEADER_BYTES + p->len bytes. Thread-safe.
 */
void cfs_shared_value_encode(const struct cfs_shared_part *p, const void *data, uint8_t *out);

/*
 * Decode the value buf of n bytes (untrusted): the magic, version, header
 * length, a length equal to the header's plus its data's, the part inside
 * its block, and the XXH3-64 of header and data. On success fills *p,
 * points *data into buf at the part's bytes and returns 0; else returns
 * -EBADMSG and leaves both unspecified. Thread-safe.
 */
int cfs_shared_value_decode(const void *buf, size_t n, struct cfs_shared_part *p,
			    const uint8_t **data);

/* Whether the decoded header got is the one expected for a part (same identity and place). */
bool cfs_shared_part_equal(const struct cfs_shared_part *got, const struct cfs_shared_part *want);

#endif
