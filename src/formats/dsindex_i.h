/*
 * Private to the index parsers: dsindex.c (the dispatch and what both formats share),
 * litdata.c and mds.c (one format each).
 */
#ifndef CHUNKFS_DSINDEX_I_H
#define CHUNKFS_DSINDEX_I_H

#include "formats/dsindex.h"

#include <json-glib/json-glib.h>

/* Sets *error (G_IO_ERROR_INVALID_DATA) to the message; returns false. */
bool cfs_ds_invalid(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Members of o by type; NULL or false when key is missing or of another type. */
const char *cfs_json_string(JsonObject *o, const char *key);
JsonObject *cfs_json_object(JsonObject *o, const char *key);
JsonArray *cfs_json_array(JsonObject *o, const char *key);
/* An integer in [0, max]. */
bool cfs_json_uint(JsonObject *o, const char *key, uint64_t max, uint64_t *v);
/* A string or null (or no member, also *v = NULL); false for anything else. */
bool cfs_json_opt_string(JsonObject *o, const char *key, const char **v);

/* "zstd", or "zstd:LEVEL" as MDS writes it. */
bool cfs_ds_is_zstd(const char *compression);

/*
 * Keeps s (which may be NULL) in idx->schemas, or frees it when an equal schema is already
 * there; returns the schema kept.
 */
const struct cfs_leaf_schema *cfs_ds_keep_schema(struct cfs_ds_index *idx,
						  struct cfs_leaf_schema *s);

/*
 * Fill idx (chunks, compression, zstd, encrypted, schemas) from the root object of an
 * index.json of the format; when idx->zstd comes out true, root is also edited into the
 * index of the decompressed view (see plain_index).
 */
bool cfs_ds_parse_litdata(JsonObject *root, struct cfs_ds_index *idx, GError **error);
bool cfs_ds_parse_mds(JsonObject *root, struct cfs_ds_index *idx, GError **error);

#endif
