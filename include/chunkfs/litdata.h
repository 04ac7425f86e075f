/*
 * LitData dataset index (index.json) as written by litdata's
 * streaming/writer.py (`_merge_no_wait` / `write_chunks_index`): a JSON
 * object with "chunks", a list of {"filename", "chunk_bytes", "chunk_size",
 * "dim"}, and "config" (compression, data_format, ...). Parsing is
 * thread-safe; an index is not shared between threads.
 */
#ifndef CHUNKFS_LITDATA_H
#define CHUNKFS_LITDATA_H

#include <glib.h>
#include <stdint.h>

struct cfs_litdata_chunk {
	char *filename;     /* as in the index; validated by the caller */
	uint64_t bytes;     /* chunk_bytes: size of the object on the server */
	uint32_t items;     /* chunk_size: number of items */
};

struct cfs_litdata_index {
	GArray *chunks;     /* struct cfs_litdata_chunk, in dataset order */
	char *compression;  /* "zstd" or NULL */
};

/*
 * Parse the bytes of an index.json. Fails with G_IO_ERROR_INVALID_DATA and
 * a message saying what is missing or wrong when the text is not JSON, has
 * no "chunks" list, or a chunk lacks a string filename or a non-negative
 * integer chunk_bytes. Chunk sizes of a compressed dataset are the
 * uncompressed sizes, so for it bytes is 0 (unknown) and the object size
 * comes from the server. Returns a new index; free with cfs_litdata_index_free().
 */
struct cfs_litdata_index *cfs_litdata_parse_index(const char *json, size_t len, GError **error);
void cfs_litdata_index_free(struct cfs_litdata_index *idx);

#endif
