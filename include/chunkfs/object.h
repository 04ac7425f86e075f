/*
 * An object: one file of the bucket path, addressed by URL, with the size
 * the index or listing gave; or the decompressed bytes of such a file (a
 * zstd chunk), which has no URL of its own. Objects live as long as the
 * mount. What the memory tier knows of an object (its reads waiting for
 * bytes, its readahead streams, its recent failed reads, whether it proved
 * bad) is the memory tier's, kept under the object's id (cache_mem.h).
 */
#ifndef CHUNKFS_OBJECT_H
#define CHUNKFS_OBJECT_H

#include <stdint.h>

struct cfs_response_info;

struct cfs_object {
	uint32_t id;       /* dense, 0-based, unique within the mount */
	char *name;        /* path below the mount root, for log lines */
	char *url;         /* full URL, may hold credentials: log name, not url; NULL when decompressed */
	uint64_t size;     /* bytes, as the index says */
	struct cfs_object *compressed; /* the remote object this one decompresses (zstream.h), or NULL */

	int bad_logged;    /* atomic: the zstd streams reported bad data of it */

	/* Guarded by a lock private to object.c. */
	char *etag;        /* as listed, else of the first response; NULL until then or if none */
};

/*
 * Create an object. name and url are copied. Returns a new object that the
 * caller frees with cfs_object_free() after the last reader is gone.
 */
struct cfs_object *cfs_object_new(uint32_t id, const char *name, const char *url, uint64_t size);
void cfs_object_free(struct cfs_object *obj);

/*
 * Check a response against what is known of the object: the total size must
 * equal obj->size, and the ETag must equal the one of the first response that
 * carried one, or the ETag the listing gave (weak validators compare by
 * their opaque tag, RFC 9110 section 8.8.3). A mismatch is reported once, naming the object
 * (cfs_errors_report()). Returns 0 or -EIO. Thread-safe.
 */
int cfs_object_check_response(struct cfs_object *obj, const struct cfs_response_info *info);

/* The ETag known for obj (listed, or of a response), g_malloc'd; NULL when none. Thread-safe. */
char *cfs_object_etag(struct cfs_object *obj);

#endif
