/*
 * The AWS credentials of an S3 remote, found along the chain of the AWS
 * SDKs and CLI (AWS SDKs and Tools Reference Guide, "Understand the
 * credential provider chain"): the environment, web identity (STS
 * AssumeRoleWithWebIdentity), the profile of the shared files (its keys,
 * its credential_process), container credentials, IMDSv2. Temporary keys
 * are renewed from the link that gave them, before they expire, by a
 * thread of their own; requests sign with the keys current when they start.
 */
#ifndef CHUNKFS_CREDS_H
#define CHUNKFS_CREDS_H

#include <glib.h>
#include <stdbool.h>

#include "remote/credparse.h"

struct cfs_options;
struct cfs_creds;

/*
 * The TLS trust of the chain's requests: the remote's, as S3's requests
 * have it (--cacert, else AWS_CA_BUNDLE; SSL_CERT_DIR; --insecure), so
 * that STS or an https container URI behind a private CA verifies.
 */
struct cfs_creds_tls {
	char *ca_file; /* PEM bundle added to the system's trust, or NULL */
	char *ca_dir;  /* hashed CA directory to trust as well, or NULL */
	bool insecure; /* --insecure: no verification */
};

/* One request of the chain to a credentials endpoint (IMDS, container, STS). */
struct cfs_creds_request {
	const char *method;         /* "GET", "PUT" or "POST" */
	const char *url;            /* never logged: an STS URL may hold no secret, but be safe */
	const char *const *headers; /* "Name: value", NULL-terminated or NULL; may hold secrets */
	const char *body;           /* POST body (NUL-terminated), or NULL; may hold secrets */
	unsigned connect_timeout_ms, timeout_ms; /* the whole request, redirects not followed */
	/*
	 * SigV4 by libcurl (CURLOPT_AWS_SIGV4, e.g. "aws:amz:us-east-1:sts") with
	 * sign_keys, or NULL for an unsigned request; a session token of the keys
	 * goes in headers as x-amz-security-token.
	 */
	const char *sigv4;
	const struct cfs_aws_keys *sign_keys;
	const struct cfs_creds_tls *tls; /* never NULL */
};

/*
 * Make one request and put the answer's body, at most
 * CFS_CREDS_ANSWER_MAX bytes, into body (emptied first) and its HTTP
 * status into *status. False with *error set (the URL without its query,
 * never a header or the body) when there is no answer: no connection, a
 * timeout, a body too long. Called from the refresh thread and from the
 * fetcher threads at once: must be thread-safe.
 */
typedef bool (*cfs_creds_http_fn)(const struct cfs_creds_request *req, GByteArray *body,
				  long *status, GError **error);

/*
 * Set how the chain makes HTTP requests (the fetcher's libcurl, set by
 * main.c: remote/ does not include curl.h). Before cfs_creds_find(); not
 * thread-safe.
 */
void cfs_creds_set_http(cfs_creds_http_fn fn);

/*
 * Walk the chain for opts (--profile), region (that of STS), config (the
 * AWS config file as read for the remote, or NULL; not kept) and tls (the
 * remote's trust, copied) and keep
 * the first link that yields keys. Fails with G_IO_ERROR_NOT_FOUND and a
 * one-line message naming every link tried and why it gave nothing (never
 * a secret). Blocks for the links' requests: IMDS gives up within about 2 s
 * when nothing answers at its address. Returns a chain to free with cfs_creds_free().
 */
struct cfs_creds *cfs_creds_find(const struct cfs_options *opts, const char *region,
				 GKeyFile *config, const struct cfs_creds_tls *tls, GError **error);

/* The name of the link that gave the keys, for log lines ("environment", "IMDS", ...). */
const char *cfs_creds_link(const struct cfs_creds *c);

/*
 * A reference to the current keys (drop with cfs_aws_keys_unref()), never
 * NULL: renewed keys replace them atomically, so a request signs with one
 * whole set. Thread-safe.
 */
struct cfs_aws_keys *cfs_creds_current(struct cfs_creds *c);

/*
 * The server refused a request signed with the keys of generation as
 * expired or unknown (S3's ExpiredToken, InvalidAccessKeyId, InvalidToken):
 * renew them now, in the caller's thread, unless they were renewed since.
 * Concurrent callers wait for one renewal. Returns whether keys newer than
 * generation are current (then the request is worth one more attempt);
 * false for keys that never expire, when the renewal failed, and at once,
 * without asking the link, within the back-off of a failed renewal (the
 * renewal thread's: 1 s doubling up to 60 s). A renewal is logged once
 * when it cures a refusal, and once at the change from working to failing
 * (shared with the renewal thread). Blocks for the link's requests.
 * Thread-safe.
 */
bool cfs_creds_renew_rejected(struct cfs_creds *c, unsigned generation);

/*
 * Start the thread that renews temporary keys 5 minutes before they
 * expire, or at half their lifetime when that is shorter, retrying a
 * failed renewal with a back-off from 1 s to 60 s (logged once until one
 * succeeds). Nothing for keys that never expire. Called once, in the
 * process that serves (after daemonizing: a fork keeps no thread).
 */
void cfs_creds_start(struct cfs_creds *c);

/* Stop the thread, if started, and free c (NULL is ignored). */
void cfs_creds_free(struct cfs_creds *c);

#endif
