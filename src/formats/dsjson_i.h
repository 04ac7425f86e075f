/*
 * Private to the index parsers (dsindex.c, litdata.c, mds.c): what both
 * formats' parsers share, below them all so that calls go one way (dsindex.c
 * dispatches to litdata.c and mds.c, all three use this): reading typed
 * members of a JSON object (json-glib), the error they fail with, and the
 * pieces of an index both formats fill in. Thread-safe: nothing here keeps state.
 */
#ifndef CHUNKFS_DSJSON_I_H
#define CHUNKFS_DSJSON_I_H

#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stdint.h>

struct cfs_ds_index;
struct cfs_leaf_schema;

/* Sets *error (G_IO_ERROR_INVALID_DATA) to the message; returns false. */
bool cfs_ds_invalid(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/*
 * Members of o by type; NULL or false when key is missing or of another
 * type. The strings, objects and arrays returned are owned by o's tree.
 */
const char *cfs_json_string(JsonObject *o, const char *key);
JsonObject *cfs_json_object(JsonObject *o, const char *key);
JsonArray *cfs_json_array(JsonObject *o, const char *key);
/* Element i of a (i < its length) when it is a string, else NULL; owned by a's tree. */
const char *cfs_json_string_at(JsonArray *a, guint i);
/* An integer in [0, max] into *v. */
bool cfs_json_uint(JsonObject *o, const char *key, uint64_t max, uint64_t *v);
/* A string or null (or no member, also *v = NULL); false for anything else. */
bool cfs_json_opt_string(JsonObject *o, const char *key, const char **v);

/* "zstd", or "zstd:LEVEL" as MDS writes it (streaming base/compression.py). */
bool cfs_ds_is_zstd(const char *compression);

/*
 * Keeps s (which may be NULL; taken) in idx->schemas, or frees it when an
 * equal schema is already there; returns the schema kept, owned by idx.
 */
const struct cfs_leaf_schema *cfs_ds_keep_schema(struct cfs_ds_index *idx,
						 struct cfs_leaf_schema *s);

#endif
