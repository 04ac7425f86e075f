/* Private to the remote module: the S3 side of cfs_remote_new() and a shared helper. */
#ifndef CHUNKFS_REMOTE_S3_I_H
#define CHUNKFS_REMOTE_S3_I_H

#include <glib.h>
#include <stdbool.h>

struct cfs_options;
struct cfs_remote;

/* The value of the environment variable name, or NULL when it is unset or empty. */
const char *cfs_remote_env(const char *name);

/* Fill r from an s3://BUCKET/PREFIX URL (base_url, sigv4, keys, headers). */
bool cfs_remote_s3_init(struct cfs_remote *r, const struct cfs_options *opts, GError **error);

#endif
