/*
 * The virtual extended attributes that `chunkfs warmup` reads on a file of
 * the mount (src/warmup/): user.chunkfs.warm runs one step of warming the
 * file's bytes into the tiers (cfs_cache_warm()) and says where they are;
 * user.chunkfs.residency only says where they are. The value is text:
 * "size=N mem=N disk=N remote=N warm=N", in bytes (struct cfs_residency).
 * The daemon owns the tiers, so the warm-up asks it through the mount
 * itself: no socket of its own, and the kernel's permission checks apply.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cache/mem.h"
#include "fs_i.h"

#define XATTR_WARM "user.chunkfs.warm"
#define XATTR_RESIDENCY "user.chunkfs.residency"
/* Five counters of at most 20 digits with their names. */
#define XATTR_VALUE_MAX 160

enum xattr_kind xattr_kind_of(const char *name)
{
	if (strcmp(name, XATTR_WARM) == 0)
		return XATTR_WARM_STEP;
	if (strcmp(name, XATTR_RESIDENCY) == 0)
		return XATTR_RESIDENCY_ONLY;
	return XATTR_NONE;
}

/* Reply with the value of res, or its length when size is 0 (getxattr(2)). */
static void reply_value(fuse_req_t req, size_t size, const struct cfs_residency *res)
{
	char text[XATTR_VALUE_MAX];
	int n = snprintf(text, sizeof(text),
			 "size=%" PRIu64 " mem=%" PRIu64 " disk=%" PRIu64 " remote=%" PRIu64
			 " warm=%" PRIu64,
			 res->size, res->mem, res->disk, res->remote, res->warm);
	if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else if (size < (size_t)n)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, text, (size_t)n);
}

void xattr_reply_range(fuse_req_t req, enum xattr_kind kind, size_t size, struct cfs_object *obj,
		       uint64_t off, uint64_t len)
{
	struct cfs_cache *cache = fs_of(req)->cache;
	struct cfs_residency res;
	int rc = kind == XATTR_WARM_STEP ? cfs_cache_warm(cache, obj, off, len, &res)
					 : cfs_cache_residency(cache, obj, off, len, &res);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		reply_value(req, size, &res);
}

void xattr_reply_held(fuse_req_t req, size_t size, uint64_t len)
{
	struct cfs_residency res = { .size = len, .mem = len, .warm = len };
	reply_value(req, size, &res);
}
