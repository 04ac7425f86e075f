/*
 * An object: one file of the bucket path, addressed by URL, with the size
 * the index or listing gave; or the decompressed bytes of such a file (a
 * zstd chunk), which has no URL of its own. What the memory tier knows of
 * an object (its reads waiting for bytes, its readahead streams, its recent
 * failed reads, whether it proved bad) is the memory tier's, kept under the
 * object's id (cache/mem.h).
 *
 * Objects are reference-counted: the node showing one, the open files and
 * reads of it (fs.c), the views reading it, and a decompressed object (its
 * compressed one) each hold a reference. The memory tier holds none; its
 * blocks, parked reads, requests, zstd streams and HEADs point at objects
 * all the same, so an object nobody holds waits, unfreed, until the memory
 * tier lets go of it (cfs_objects_set_release()).
 */
#ifndef CHUNKFS_OBJECT_H
#define CHUNKFS_OBJECT_H

#include <stdbool.h>
#include <stdint.h>

struct cfs_response_info;

struct cfs_object {
	uint32_t id;       /* dense, 0-based, unique within the mount */
	uint32_t refs;     /* atomic: references, as described above */
	char *name;        /* path below the mount root, for log lines */
	char *url;         /* full URL, may hold credentials: log name, not url; NULL when decompressed */
	uint64_t size;     /* bytes, as the index says */
	int64_t mtime_us;  /* atomic: last modified, microseconds since the epoch, as listed
			      or by a HEAD's Last-Modified; CFS_TIME_UNKNOWN (util/times.h) */
	struct cfs_object *compressed; /* the remote object this one decompresses (zstream.h),
					  held; or NULL */

	int bad_logged;    /* atomic: the zstd streams reported bad data of it */

	/* Guarded by a lock private to object.c. */
	char *etag;        /* as listed, else of the first response; NULL until then or if none */
};

/*
 * Create an object. name and url are copied. Returns a new object with one
 * reference, the caller's. Thread-safe.
 */
struct cfs_object *cfs_object_new(uint32_t id, const char *name, const char *url, uint64_t size);

/* Returns obj with a new reference, for a caller that holds one already. Thread-safe. */
struct cfs_object *cfs_object_ref(struct cfs_object *obj);

/*
 * Drop a reference to obj. After the last one obj is freed once the
 * release function says the memory tier keeps nothing of it, at once when
 * there is none. Thread-safe; never call it with the memory tier's lock.
 */
void cfs_object_unref(struct cfs_object *obj);

/*
 * The memory tier's say on an object nobody holds: true when it keeps
 * nothing of obj and never will (obj may be freed), false while it still
 * uses obj. Called with no lock of the memory tier held.
 */
typedef bool (*cfs_object_release_fn)(void *ctx, struct cfs_object *obj);

/*
 * Ask release(ctx, obj) before freeing an object nobody holds (NULL: free
 * at once), for every such object from now on and for those waiting now,
 * which are asked again whenever another object's last reference goes.
 * Set it once the memory tier exists; clear it (NULL) once the memory
 * tier is freed, which frees the objects still waiting. Thread-safe.
 */
void cfs_objects_set_release(cfs_object_release_fn release, void *ctx);

/*
 * Check a response against what is known of the object: the total size must
 * equal obj->size, and the ETag must equal the one of the first response that
 * carried one, or the ETag the listing gave (weak validators compare by
 * their opaque tag, RFC 9110 section 8.8.3). A mismatch is reported once, naming the object
 * (cfs_errors_report()). Returns 0 or -EIO. Thread-safe.
 */
int cfs_object_check_response(struct cfs_object *obj, const struct cfs_response_info *info);

/*
 * When obj was last modified, in microseconds since the epoch: its own
 * time, or for a decompressed object its compressed one's; CFS_TIME_UNKNOWN
 * when the remote has not said. Thread-safe.
 */
int64_t cfs_object_mtime(const struct cfs_object *obj);

/* The ETag known for obj (listed, or of a response), g_malloc'd; NULL when none. Thread-safe. */
char *cfs_object_etag(struct cfs_object *obj);

#endif
