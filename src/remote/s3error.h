/*
 * The error body of an S3 response, parsed for the log line and the GError
 * of a failed request: an S3 XML document, as the ListObjectsV2 pages of
 * listing.h are. Pure: no I/O, thread-safe.
 */
#ifndef CHUNKFS_S3ERROR_H
#define CHUNKFS_S3ERROR_H

#include <stddef.h>

/*
 * The " (Code: Message)" of an S3 error body (S3 API Reference, "Error
 * responses": <Error><Code>...</Code><Message>...</Message></Error>), the
 * first Code and Message elements at any depth, for a GError message; the
 * len bytes of body need no terminating NUL. Returns a g_malloc'd string,
 * or NULL when the body is empty, is not well-formed XML or has no Code.
 * The text is the server's, unescaped. Pure, thread-safe.
 */
char *cfs_s3_error_detail(const char *body, size_t len);

/*
 * The first Code element of an S3 error body (as cfs_s3_error_detail()
 * finds it), g_malloc'd, or NULL when there is none. Pure, thread-safe.
 */
char *cfs_s3_error_code(const char *body, size_t len);

#endif
