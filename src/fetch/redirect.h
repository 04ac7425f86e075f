/*
 * Redirects followed by chunkfs's own code rather than by libcurl, which
 * cannot be told to keep custom headers (--header, S3's
 * x-amz-security-token) to the host they were meant for: libcurl drops
 * only Authorization and Cookie on a redirect to another host (libcurl
 * docs, CURLOPT_FOLLOWLOCATION). A chain of redirects starts at the URL a
 * request was made to; each hop's target is checked here before the
 * request is made again:
 * - only http:// and https:// targets, never from https:// to http://;
 * - at most CFS_REDIRECT_MAX_HOPS hops;
 * - once a hop leaves the origin of the first URL (scheme, host and port,
 *   RFC 6454 section 4), the chain is "plain": the remote's credentials
 *   (headers, SigV4 signature, ~/.netrc) are not sent for the rest of it,
 *   even to a later hop that comes back, since that hop's URL was chosen
 *   by another server. A hop within the origin keeps them, and the first
 *   URL's userinfo when the target names none.
 * The redirect statuses are those of RFC 9110 section 15.4 that carry a
 * Location to follow (301, 302, 303, 307, 308). Pure functions on the
 * caller's chain; thread-safe for distinct chains.
 */
#ifndef CHUNKFS_REDIRECT_H
#define CHUNKFS_REDIRECT_H

#include <glib.h>
#include <stdbool.h>

/* The most redirects one request follows (libcurl's CURLOPT_MAXREDIRS was 5 here). */
#define CFS_REDIRECT_MAX_HOPS 5

struct cfs_redirect_chain {
	const char *first;  /* the URL first requested; not owned, must outlive the chain */
	char *current;      /* the latest hop's URL (g_malloc'd), NULL while at first */
	unsigned hops;      /* redirects followed so far */
	bool plain;         /* a hop left first's origin: no credentials from then on */
};

/* Start (or restart) c at the URL first, dropping any hop it had. */
void cfs_redirect_start(struct cfs_redirect_chain *c, const char *first);

/* Free what c holds; c may be started again. */
void cfs_redirect_clear(struct cfs_redirect_chain *c);

/* The URL to request now: the latest hop's, or first. Valid until c changes. */
const char *cfs_redirect_url(const struct cfs_redirect_chain *c);

/* Whether an HTTP status is a redirect chunkfs follows (301, 302, 303, 307, 308). */
bool cfs_redirect_status(long status);

/*
 * Follow one redirect to target (an absolute URL: libcurl's
 * CURLINFO_REDIRECT_URL, the Location resolved against the request's URL;
 * NULL when the response had no Location). On success c's URL is the
 * target (with first's userinfo when same-origin and the target has none),
 * hops is one more, and plain is set when the target's origin is not
 * first's. Else c is unchanged and false is returned with *error set
 * (G_IO_ERROR), its message naming the target redacted (cfs_url_redact()):
 * G_IO_ERROR_TOO_MANY_LINKS past CFS_REDIRECT_MAX_HOPS,
 * G_IO_ERROR_NOT_SUPPORTED for a scheme other than http or https or a
 * hop from https to http, G_IO_ERROR_INVALID_DATA for no Location or a
 * target that is not an absolute URL with a host.
 */
bool cfs_redirect_follow(struct cfs_redirect_chain *c, const char *target, GError **error);

/*
 * Whether the URLs a and b have the same origin (RFC 6454 section 4):
 * scheme and host equal ignoring ASCII case, and the same port, a missing
 * one being the scheme's default (80 for http, 443 for https). False when
 * either does not parse.
 */
bool cfs_url_same_origin(const char *a, const char *b);

#endif
