/* Private to the remote module: the S3 side of cfs_remote_new(). */
#ifndef CHUNKFS_REMOTE_S3_H
#define CHUNKFS_REMOTE_S3_H

#include <glib.h>
#include <stdbool.h>

struct cfs_options;
struct cfs_remote;

/* Fill r from an s3://BUCKET/PREFIX URL (base_url, sigv4, keys, headers). */
bool cfs_remote_s3_init(struct cfs_remote *r, const struct cfs_options *opts, GError **error);

#endif
