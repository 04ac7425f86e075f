/*
 * The remote a mount reads from: where objects are (a base URL that object
 * names are joined onto) and how every request to it is made (extra
 * headers, TLS trust, S3 signing). Built once from the options and the
 * environment before the mount, then read-only and shared by all threads
 * (the S3 keys inside creds are renewed under its own lock).
 */
#ifndef CHUNKFS_REMOTE_H
#define CHUNKFS_REMOTE_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>

struct cfs_creds;
struct cfs_listing;
struct cfs_options;
struct cfs_remote;

/*
 * How a remote of one kind is listed: chosen once by cfs_remote_new() from
 * the URL's scheme (an HTTP index page, or S3 ListObjectsV2 pages chained
 * by continuation-token: AWS S3 API Reference, "ListObjectsV2"), so that
 * the callers (sync.c, dataset.c) never ask which kind it is. Every
 * function is thread-safe.
 */
struct cfs_remote_ops {
	/*
	 * The URL of a page of the listing of the directory whose keys start
	 * with prefix (list_prefix, then the directory's path and '/'): the
	 * first page when token is NULL, else the page that token (the last
	 * page's, from parse_listing) continues with. g_malloc'd; the caller
	 * frees it.
	 */
	char *(*list_url)(const struct cfs_remote *r, const char *prefix, const char *token);
	/*
	 * Parse the len bytes of a listing page asked for with prefix
	 * (listing.h). Returns a listing to free with cfs_listing_free(), or
	 * NULL with *error set (G_IO_ERROR_INVALID_DATA) for a page that is not
	 * a listing.
	 */
	struct cfs_listing *(*parse_listing)(const char *data, size_t len, const char *prefix,
					     GError **error);
	/*
	 * Whether err (from cfs_fetch_listing(), fetch.h) failing the listing
	 * of the dataset root means only that the server does not list
	 * directories, so that the dataset index is to be read without a
	 * listing: an HTTP server that refuses or lacks index pages (403, 404,
	 * or a page that is not one). Never for S3, where such a failure is
	 * the bucket's answer.
	 */
	bool (*unlisted)(const GError *err);
	/*
	 * Whether an empty listing of the root may mean that the URL names an
	 * object, to be asked with a HEAD: S3, where a key is no directory and
	 * the listing of KEY/ is empty. Not HTTP, whose servers redirect a
	 * directory's name without '/' to the directory.
	 */
	bool empty_root_may_be_object;
};

struct cfs_remote {
	const struct cfs_remote_ops *ops; /* how it is listed */
	char *base_url;     /* http(s) URL of the dataset directory, ending in '/'; may hold secrets */
	char *list_url;     /* S3: the bucket's URL, for ListObjectsV2; HTTP: NULL */
	char *list_prefix;  /* what the keys of the dataset directory start with: S3, its key
			       prefix, "" or ending in '/'; HTTP: "" (paths are below base_url) */
	char *shown;        /* the URL as the user gave it, redacted: for messages */
	char **headers;     /* "Name: value" sent with every request, NULL-terminated; never logged */
	char *ca_file;      /* PEM bundle to trust, or NULL for libcurl's default */
	char *ca_dir;       /* hashed CA directory to trust as well, or NULL */
	bool insecure;      /* no certificate or host name verification */
	char *netrc;        /* HTTP: ~/.netrc if it existed at mount, else NULL */
	char *sigv4;        /* CURLOPT_AWS_SIGV4 provider string ("aws:amz:REGION:s3"), or NULL */
	struct cfs_creds *creds; /* with sigv4: the keys to sign with (remote/creds.h) */
};

/*
 * Build the remote of opts->url:
 * - http(s)://HOST/PATH: the URL itself (user:password in it is used for
 *   HTTP authentication, as is ~/.netrc if it exists at mount); CA bundle from --cacert, else
 *   CURL_CA_BUNDLE, else SSL_CERT_FILE (and SSL_CERT_DIR), as the curl tool
 *   reads them.
 * - s3://BUCKET/PREFIX: the endpoint from --endpoint, AWS_ENDPOINT_URL_S3 or
 *   AWS_ENDPOINT_URL, else https://s3.REGION.amazonaws.com; path-style or
 *   virtual-hosted-style addressing (AWS S3 User Guide, "Virtual hosting of
 *   buckets"); requests signed with SigV4 by libcurl using the keys of the
 *   credential chain (remote/creds.h), unless --no-sign-request; CA
 *   bundle from --cacert, else AWS_CA_BUNDLE, else as for HTTP.
 * Logs one warning when --insecure is given. Fails with a GError whose
 * message names the redacted URL: G_URI_ERROR for a malformed URL or one
 * without "SCHEME://", G_IO_ERROR_NOT_SUPPORTED for a scheme other than
 * http, https and s3 (both list the forms a mount takes), G_IO_ERROR_NOT_FOUND
 * when no link of the credential chain yields S3 credentials
 * (cfs_creds_find()). Returns a remote to free with cfs_remote_free().
 */
struct cfs_remote *cfs_remote_new(const struct cfs_options *opts, GError **error);
void cfs_remote_free(struct cfs_remote *remote);

#endif
