/*
 * A dataset index (index.json) of either format chunkfs understands,
 * reduced to what the tree and the item views need:
 * - LitData (litdata streaming/writer.py `_merge_no_wait`): an object with
 *   "chunks", a list of {"filename", "chunk_bytes", "chunk_size", "dim"},
 *   and "config" with "compression" (null or "zstd"), "encryption",
 *   "data_format" and "item_loader". For a compressed dataset,
 *   chunk_bytes is the uncompressed size.
 * - MosaicML MDS (mosaicml streaming base/format/mds/writer.py,
 *   base/format/base/writer.py `get_config`): {"version": 2, "shards":
 *   [...]}, each shard {"format": "mds", "samples", "raw_data": {"basename",
 *   "bytes"}, "zip_data": null or {"basename", "bytes"}, "compression": null
 *   or "zstd[:LEVEL]", "column_encodings", "column_names", "column_sizes"}.
 * Parsing is thread-safe; an index is immutable once parsed.
 */
#ifndef CHUNKFS_DSINDEX_H
#define CHUNKFS_DSINDEX_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfs_leaf_schema;

enum cfs_ds_format { CFS_DS_LITDATA, CFS_DS_MDS };

struct cfs_ds_chunk {
	char *name;          /* the object in the dataset directory: LitData filename; MDS
				zip_data.basename when compressed, else raw_data.basename.
				Not validated as a file name (the caller does) */
	uint64_t size;       /* bytes of that object; CFS_SIZE_UNKNOWN (listing.h) when the index
				does not give it (a compressed LitData chunk) */
	uint32_t items;      /* LitData chunk_size, MDS samples */
	char *plain_name;    /* compressed chunks: the name of the uncompressed chunk in the
				decompressed view (LitData: the filename with its ".zstd" before
				".bin" dropped, else the filename; MDS raw_data.basename); else NULL */
	uint64_t plain_size; /* bytes of the uncompressed chunk (LitData chunk_bytes, MDS
				raw_data.bytes); equal to size when not compressed */
	const struct cfs_leaf_schema *schema; /* how its items split into leaves; NULL: no leaves.
						 Owned by the index */
};

struct cfs_ds_index {
	enum cfs_ds_format format;
	GArray *chunks;      /* struct cfs_ds_chunk, in dataset order */
	char *compression;   /* as the index names it ("zstd", "zstd:7", "gzip"...; MDS: the first
				compressed shard's), NULL when none */
	bool zstd;           /* every compressed chunk is a zstd frame: items can be shown */
	bool encrypted;      /* LitData config.encryption is set: items cannot be shown (the chunks
				have no schema) */
	GBytes *plain_index; /* when zstd: the index.json of the decompressed view, the same JSON
				with compression null (LitData config.compression; MDS every
				shard's compression and zip_data) and the plain names as filenames
				(LitData); NULL otherwise */
	GPtrArray *schemas;  /* owns the chunks' schemas */
};

/*
 * Parse the bytes of an index.json: LitData when the root has "chunks",
 * MDS when it has "shards". Fails with G_IO_ERROR_INVALID_DATA and a
 * message saying what is missing or wrong (with the chunk's position) when
 * the text is not JSON, is neither format, a compression is neither null
 * nor a string, or a chunk lacks a field it needs (LitData: string
 * filename, non-negative integer chunk_bytes and chunk_size; MDS: version
 * 2, format "mds", samples, raw_data.basename and bytes, and zip_data's
 * when compressed). Columns or a data_format that do not describe leaves
 * only leave the chunks without a schema. json may be NULL when len is 0
 * (an empty body, as GBytes gives it): not JSON. Returns a new index; free
 * with cfs_ds_index_free().
 */
struct cfs_ds_index *cfs_ds_index_parse(const char *json, size_t len, GError **error);
void cfs_ds_index_free(struct cfs_ds_index *idx);

#endif
