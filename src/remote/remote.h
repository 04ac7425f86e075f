/*
 * The remote a mount reads from: where objects are (a base URL that object
 * names are joined onto) and how every request to it is made (extra
 * headers, TLS trust, S3 signing). Built once from the options and the
 * environment before the mount, then read-only and shared by all threads.
 */
#ifndef CHUNKFS_REMOTE_H
#define CHUNKFS_REMOTE_H

#include <glib.h>
#include <stdbool.h>

struct cfs_options;

struct cfs_remote {
	bool s3;
	char *base_url;     /* http(s) URL of the dataset directory, ending in '/'; may hold secrets */
	char *list_url;     /* S3: the bucket's URL, for ListObjectsV2 */
	char *list_prefix;  /* S3: the key prefix of the dataset directory, "" or ending in '/' */
	char *shown;        /* the URL as the user gave it, redacted: for messages */
	char **headers;     /* "Name: value" sent with every request, NULL-terminated; never logged */
	char *ca_file;      /* PEM bundle to trust, or NULL for libcurl's default */
	char *ca_dir;       /* hashed CA directory to trust as well, or NULL */
	bool insecure;      /* no certificate or host name verification */
	char *netrc;        /* HTTP: ~/.netrc if it existed at mount, else NULL */
	char *sigv4;        /* CURLOPT_AWS_SIGV4 provider string ("aws:amz:REGION:s3"), or NULL */
	char *access_key;   /* with sigv4 */
	char *secret_key;   /* with sigv4; never logged */
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
 *   buckets"); requests signed with SigV4 by libcurl using the credentials
 *   the AWS CLI would find (see remote/s3.c), unless --no-sign-request; CA
 *   bundle from --cacert, else AWS_CA_BUNDLE, else as for HTTP.
 * Logs one warning when --insecure is given. Fails with a GError whose
 * message names the redacted URL: G_URI_ERROR for a malformed URL,
 * G_IO_ERROR_NOT_SUPPORTED for another scheme, G_IO_ERROR_NOT_FOUND when no
 * S3 credentials are found. Returns a remote to free with cfs_remote_free().
 */
struct cfs_remote *cfs_remote_new(const struct cfs_options *opts, GError **error);
void cfs_remote_free(struct cfs_remote *remote);

#endif
