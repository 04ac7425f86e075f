/*
 * Leaves of an item: the typed fields inside one item, shown as files
 * under .items/NNN.d/ named "<stem>.<extension>", the stem being the
 * leaf's key where the index records one (cfs_leaf_schema_set_names()),
 * else its position (leaf index). A LitData PyTree
 * item is one uint32 LE size per leaf, then the leaves in data_format
 * order (litdata streaming/writer.py `BinaryWriter.serialize`,
 * item_loader.py `PyTreeLoader`); a TokensLoader item is raw tokens, one
 * leaf; an MDS sample is one uint32 LE size per variable-size column, then
 * every column's bytes in column order (mosaicml streaming
 * base/format/mds/writer.py `MDSWriter.encode_sample`).
 *
 * Extensions follow the leaf's declared format: LitData "jpeg" -> jpg,
 * "str" -> txt, "bytes" -> bin, "pickle" -> pkl, "tifffile" -> tif,
 * "file:EXT", "video:EXT", "image:EXT", "audio:EXT" -> EXT;
 * "numpy", "tensor", "no_header_numpy:N", "no_header_tensor:N" and token
 * items -> npy (a .npy header in front of the values, dtype indexes from
 * litdata constants.py `_NUMPY_DTYPES_MAPPING` / `_TORCH_DTYPES_MAPPING`;
 * serialized headers from serializers.py); MDS "jpeg" -> jpg, "png" -> png,
 * "str", "str_int", "str_float", "str_decimal" -> txt, "json" -> json,
 * "pkl" -> pkl, "ndarray[:DTYPE[:SHAPE]]" -> npy (mosaicml streaming
 * base/format/mds/encodings.py `NDArray`); anything else -> bin. A leaf
 * whose array cannot be written as .npy (a dtype NumPy files cannot hold,
 * a malformed header, values that do not fill the shape) is shown raw as
 * .bin instead.
 *
 * Pure functions over the bytes given: no I/O; a schema is immutable once
 * made, so every function here is thread-safe.
 */
#ifndef CHUNKFS_LEAVES_H
#define CHUNKFS_LEAVES_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes from a leaf's start that cfs_leaf_describe() may need at most. */
#define CFS_LEAF_PROBE_BYTES (8 + 4 * 64)

/*
 * Most leaves an item may have (LitData data_format entries, MDS columns):
 * a leaf's number is 8 bits of its inode number. A schema of more is
 * refused, so its items show without NNN.d/.
 */
#define CFS_LEAF_MAX 255

/*
 * Longest extension a leaf file gets (bytes, without the dot): the EXT of
 * LitData's "file:EXT" is kept only up to this; longer is not an extension
 * a file name would carry.
 */
#define CFS_LEAF_EXT_MAX 16

/* Longest stem (bytes): "<stem>.<ext>" then fits NAME_MAX (255). */
#define CFS_LEAF_STEM_MAX (255 - 1 - CFS_LEAF_EXT_MAX)

/* How the items of one chunk are made of leaves. Opaque. */
struct cfs_leaf_schema;

/*
 * The schema of a LitData dataset from its config: data_format[0..n) and
 * item_loader ("PyTreeLoader", or "TokensLoader" whose items are raw
 * tokens of dtype data_format[0], "no_header_numpy:N" or
 * "no_header_tensor:N"; NULL counts as PyTreeLoader). Returns NULL when
 * the items cannot be split into leaves (another item loader, no
 * data_format, more than CFS_LEAF_MAX of them, a TokensLoader format that
 * is not a no-header array); the item files are still shown, without
 * NNN.d/.
 */
struct cfs_leaf_schema *cfs_leaf_schema_litdata(const char *const *data_format, guint n,
						const char *item_loader);

/*
 * The schema of an MDS shard from its column_encodings[0..n) and
 * column_sizes[0..n) (bytes, -1 for a variable-size column, as null in
 * index.json). Returns NULL when n is 0 or above CFS_LEAF_MAX, or a size
 * is below -1.
 */
struct cfs_leaf_schema *cfs_leaf_schema_mds(const char *const *encodings, const int64_t *sizes,
					    guint n);

/*
 * Name the leaves of s by names[0..cfs_leaf_count(s)) (UTF-8 keys as the
 * index records them, e.g. "meta.label"; NULL entries keep the position
 * name; copied). A name is taken only when it is a safe file name stem:
 * not empty, not "." or "..", no '/' or control byte, valid UTF-8, at
 * most CFS_LEAF_STEM_MAX bytes, and not digits only (which would read as
 * a position); and when no other leaf has the same name: leaves that would
 * share one keep their positions. Positions are unique and keys are never
 * digits only, so the stems of a schema are unique. Call before s is
 * shared (a schema is immutable once made); never fails.
 */
void cfs_leaf_schema_set_names(struct cfs_leaf_schema *s, const char *const *names);

/* The stem of leaf i's file name (its key, or its position in decimal); lives as long as s. */
const char *cfs_leaf_stem(const struct cfs_leaf_schema *s, guint i);

/* The leaf whose stem is stem, or -1 when none is. */
int cfs_leaf_find(const struct cfs_leaf_schema *s, const char *stem);

/* Free s and its leaves' descriptions; s may be NULL. */
void cfs_leaf_schema_free(struct cfs_leaf_schema *s);

/* True when a and b split items the same way and name their leaves alike (both may be NULL). */
bool cfs_leaf_schema_equal(const struct cfs_leaf_schema *a, const struct cfs_leaf_schema *b);

/* Number of leaves of every item. */
guint cfs_leaf_count(const struct cfs_leaf_schema *s);

/*
 * Bytes from the item's start that hold its leaf sizes: 4 per leaf for
 * PyTree, 4 per variable-size column for MDS, 0 for tokens.
 */
uint64_t cfs_leaf_table_bytes(const struct cfs_leaf_schema *s);

/* A leaf located inside its item: bytes [off, off + len) of the item. */
struct cfs_leaf {
	uint64_t off, len;
};

/*
 * Locate the leaves of an item of item_len bytes from its first head_len
 * bytes (head_len >= min(item_len, cfs_leaf_table_bytes(s))). Stores
 * cfs_leaf_count(s) leaves in out, which must have room for them (at most
 * CFS_LEAF_MAX). Fails with G_IO_ERROR_INVALID_DATA when
 * the sizes do not add up to exactly item_len (the message gives both
 * numbers) or the item is shorter than its size table.
 */
bool cfs_leaves_locate(const struct cfs_leaf_schema *s, const uint8_t *head, size_t head_len,
		       uint64_t item_len, struct cfs_leaf *out, GError **error);

/*
 * Bytes from the start of leaf i that cfs_leaf_describe() needs: 0 when
 * the schema alone decides (raw leaves, arrays of known dtype and shape),
 * else min(leaf_len, CFS_LEAF_PROBE_BYTES) for arrays that carry their
 * own dtype and shape.
 */
size_t cfs_leaf_probe_bytes(const struct cfs_leaf_schema *s, guint i, uint64_t leaf_len);

/* What file leaf i is shown as. */
struct cfs_leaf_file {
	const char *ext;   /* extension without the dot; a static string, or (LitData
			      "file:EXT" and the like) one that lives as long as the schema */
	GBytes *prefix;    /* bytes shown before the data (a .npy header), or NULL; owned */
	uint64_t off, len; /* then bytes [off, off + len) of the leaf */
};

/*
 * Describe leaf i (len leaf_len) from its first probe_len bytes
 * (probe_len >= cfs_leaf_probe_bytes(s, i, leaf_len); probe may be NULL
 * when that is 0). Never fails: a leaf that cannot be shown as its
 * declared format is described as raw .bin. Free out->prefix with
 * g_bytes_unref().
 */
void cfs_leaf_describe(const struct cfs_leaf_schema *s, guint i, const uint8_t *probe,
		       size_t probe_len, uint64_t leaf_len, struct cfs_leaf_file *out);

#endif
