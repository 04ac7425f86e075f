/*
 * An object: one file of the bucket path, addressed by URL, with the size
 * the index or listing gave; or the decompressed bytes of such a file (a
 * zstd chunk), which has no URL of its own.
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

#include <glib.h>
#include <stdint.h>

#include "chunkfs/readahead.h"

struct cfs_response_info;

/* Asking the server for a remote object's ETag before trusting spilled blocks of it. */
enum cfs_validation {
	CFS_UNVALIDATED,        /* not asked */
	CFS_VALIDATING,         /* a HEAD is on its way */
	CFS_VALIDATED,          /* answered: its ETag is known, or it has none */
	CFS_VALIDATION_FAILED,  /* no answer: spilled blocks wait until a GET brings the ETag */
};

/*
 * A read of the object that failed: for FAILED_READ_MS (cache_mem.c) a read
 * overlapping it fails the same way without a request, so that the kernel's
 * re-asks after a failed read (its readahead, then page by page) neither
 * start a fresh series of attempts nor assemble a short count from the
 * pages that did land (docs/hostile.md).
 */
struct cfs_failed_read {
	uint64_t off, end;  /* bytes [off, end) of the object */
	gint64 until_us;    /* monotonic time it is forgotten; 0: an unused slot */
	int err;            /* the negative errno the read got */
};

#define CFS_FAILED_READS 8

struct cfs_object {
	uint32_t id;       /* dense, 0-based, unique within the mount */
	uint32_t refs;     /* atomic: references, as described above */
	char *name;        /* path below the mount root, for log lines */
	char *url;         /* full URL, may hold credentials: log name, not url; NULL when decompressed */
	uint64_t size;     /* bytes, as the index says */
	struct cfs_object *compressed; /* the remote object this one decompresses (zstream.h), held; or NULL */

	/* Guarded by the memory tier's lock. */
	int error;                      /* sticky negative errno once the object proved bad */
	uint64_t bad_from;              /* with error: reads of bytes from here on fail (0: all) */
	int bad_logged;                 /* atomic: the zstd streams reported bad data of it */
	enum cfs_validation validation; /* whether its ETag was asked for (a HEAD) */
	GQueue parked;                  /* struct cfs_parked_read, oldest first */
	struct cfs_ra_streams streams;  /* readahead state of the readers of this object */
	struct cfs_failed_read *failed; /* the latest CFS_FAILED_READS failed reads; NULL before one */

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

/* The ETag known for obj (listed, or of a response), g_malloc'd; NULL when none. Thread-safe. */
char *cfs_object_etag(struct cfs_object *obj);

#endif
