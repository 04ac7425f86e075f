/*
 * Private to the index parsers: the format parsers (litdata.c and mds.c, one
 * format each) that dsindex.c dispatches to. What they share is in dsjson_i.h.
 */
#ifndef CHUNKFS_DSINDEX_I_H
#define CHUNKFS_DSINDEX_I_H

#include <json-glib/json-glib.h>
#include <stdbool.h>

struct cfs_ds_index;

/*
 * Fill idx (chunks, compression, zstd, encrypted, schemas) from the root object of an
 * index.json of the format; when idx->zstd comes out true, root is also edited into the
 * index of the decompressed view (see plain_index). False with *error set
 * (G_IO_ERROR_INVALID_DATA) when a field the format needs is missing or wrong; idx then
 * holds what was parsed before, for the caller to free.
 */
bool cfs_ds_parse_litdata(JsonObject *root, struct cfs_ds_index *idx, GError **error);
bool cfs_ds_parse_mds(JsonObject *root, struct cfs_ds_index *idx, GError **error);

#endif
