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
 * string by "?***". g_malloc'd. Never fails: a text that is not a URL is
 * given back as it is, with what stands before an '@' of its authority and
 * after its '?' masked the same way.
 */
char *cfs_url_redact(const char *url);

/*
 * The directory that holds the object url names: url cut after the '/'
 * before its last path segment (trailing slashes and the query and
 * fragment dropped first), e.g. "http://h/ds/" of "http://h/ds/index.json".
 * url is text for a message (redacted); the result is g_malloc'd, "" when
 * url has no '/'. Thread-safe.
 */
char *cfs_url_parent_dir(const char *url);

/*
 * The URL of the object that dir_url (a directory URL from
 * cfs_url_normalize_dir(), or a remote's base URL) would name without the
 * '/' that ends its path: "http://h/ds/x.bin?q" of "http://h/ds/x.bin/?q".
 * NULL for the root ("/"), which names no object. g_malloc'd; thread-safe.
 */
char *cfs_url_dir_as_file(const char *dir_url);

#endif
