/*
 * URLs of the remote: validation, joining names onto a base, redaction for
 * logs (RFC 3986, through GLib's GUri). Every function is thread-safe.
 */
#ifndef CHUNKFS_URL_H
#define CHUNKFS_URL_H

#include <glib.h>

/*
 * Check that text is an absolute http:// or https:// URL with a host and no
 * fragment, and return it normalised as a directory URL (path ending in
 * '/'), g_malloc'd. Fails with G_URI_ERROR (malformed) or G_IO_ERROR_NOT_SUPPORTED
 * (another scheme) and a message that names the redacted URL.
 */
char *cfs_url_normalize_dir(const char *text, GError **error);

/*
 * base (a directory URL from cfs_url_normalize_dir) joined with a relative
 * path whose segments are percent-encoded (RFC 3986 section 2.1; '/' kept
 * as the separator). g_malloc'd; the caller frees it.
 */
char *cfs_url_join(const char *base, const char *path);

/*
 * The URL fit for a log line: userinfo replaced by "***" and the query
 * string by "?***". g_malloc'd. Never fails: an unparsable text gives
 * "<unparsable URL>".
 */
char *cfs_url_redact(const char *url);

#endif
