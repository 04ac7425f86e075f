/*
 * Private to the fetch module: the options every libcurl easy handle gets,
 * the fetcher's (fetch.c) and the blocking requests' (sync.c) alike.
 */
#ifndef CHUNKFS_EASY_I_H
#define CHUNKFS_EASY_I_H

#include <curl/curl.h>
#include <stdbool.h>

struct cfs_aws_keys;
struct cfs_options;
struct cfs_remote;

/*
 * What one transfer sends to prove who it is: the remote's extra headers
 * (with S3's x-amz-security-token of the keys) and, for S3, the keys it
 * signs with, current when the transfer starts (cfs_creds_current()).
 */
struct cfs_easy_auth {
	struct curl_slist *headers; /* must outlive the transfer */
	struct cfs_aws_keys *keys;  /* a reference, or NULL for an unsigned remote */
};

/* Fill auth for a transfer to remote that starts now. Thread-safe. */
void cfs_easy_auth_take(struct cfs_easy_auth *auth, const struct cfs_remote *remote);
/* Free what auth holds, once no transfer uses it; a cleared auth may be cleared again. */
void cfs_easy_auth_clear(struct cfs_easy_auth *auth);

/*
 * Whether an answer with status and the len bytes of its error body says
 * that the keys it was signed with are expired or unknown to S3: a 400 or
 * 403 with the Code ExpiredToken, InvalidToken or InvalidAccessKeyId (S3
 * API Reference, "Error responses"). Pure, thread-safe.
 */
bool cfs_easy_keys_code(long status, const char *body, size_t len);

/*
 * Whether such an answer (cfs_easy_keys_code()) came to a request signed
 * with the keys of auth and the credential chain has newer keys now
 * (cfs_creds_renew_rejected(), which may block for a renewal): then the
 * request is worth one more attempt.
 */
bool cfs_easy_keys_refused(const struct cfs_remote *remote, const struct cfs_easy_auth *auth,
			   long status, const char *body, size_t len);

/*
 * Set the options common to every request on a fresh easy handle: URL,
 * connect timeout, stall timeout (no byte for opts->timeout_s seconds),
 * no signals, TCP keep-alive, user agent, http and https only (libcurl
 * 7.85's CURLOPT_PROTOCOLS_STR), no redirect followed by libcurl (callers
 * follow them, see fetch/redirect.h), TLS trust and the remote's
 * credentials (cfs_easy_send_credentials()).
 */
void cfs_easy_setup(CURL *easy, const struct cfs_options *opts, const struct cfs_remote *remote,
		    const struct cfs_easy_auth *auth, const char *url);

/*
 * Make easy send the remote's credentials: the headers of auth (--header
 * and S3's x-amz-security-token), the SigV4 signature with its keys
 * (CURLOPT_AWS_SIGV4; libcurl copies the key strings) or else ~/.netrc
 * when the remote found one.
 */
void cfs_easy_send_credentials(CURL *easy, const struct cfs_remote *remote,
			       const struct cfs_easy_auth *auth);

/*
 * Make easy send none of them, for a redirect to another origin: no extra
 * header, no SigV4 signature nor user name or password, no ~/.netrc (a
 * user name and password in the URL itself are still used, as libcurl
 * does). Undone by cfs_easy_send_credentials().
 */
void cfs_easy_drop_credentials(CURL *easy);

/*
 * Set the TLS trust of easy: ca_file (a PEM bundle, or NULL) added to the
 * system's trust, ca_dir (a hashed CA directory, or NULL) as well, or no
 * verification at all when insecure (libcurl docs: CURLOPT_CAINFO,
 * CURLOPT_CAPATH, CURLOPT_SSL_VERIFYPEER). The strings are copied by
 * libcurl. Thread-safe for distinct handles.
 */
void cfs_easy_setup_tls(CURL *easy, const char *ca_file, const char *ca_dir, bool insecure);

/*
 * Zero the text of each header of list (tokens, session tokens), then free
 * it with curl_slist_free_all(); NULL is ignored. Copies libcurl made of
 * them when the request was sent are libcurl's, and not zeroed.
 */
void cfs_easy_slist_free_secret(struct curl_slist *list);

#endif
