/*
 * Private to the fetch module: the options every libcurl easy handle gets,
 * the fetcher's (fetch.c) and the blocking requests' (sync.c) alike.
 */
#ifndef CHUNKFS_EASY_I_H
#define CHUNKFS_EASY_I_H

#include <curl/curl.h>

struct cfs_options;
struct cfs_remote;

/*
 * The remote's extra headers as a libcurl list (NULL when there are none),
 * to pass to cfs_easy_setup(); free with curl_slist_free_all() once no
 * transfer uses it.
 */
struct curl_slist *cfs_easy_headers(const struct cfs_remote *remote);

/*
 * Set the options common to every request on a fresh easy handle: URL,
 * connect timeout, stall timeout (no byte for opts->timeout_s seconds),
 * no signals, TCP keep-alive, user agent, http and https only (libcurl
 * 7.85's CURLOPT_PROTOCOLS_STR), no redirect followed by libcurl (callers
 * follow them, see fetch/redirect.h), TLS trust and the remote's
 * credentials (cfs_easy_send_credentials()).
 */
void cfs_easy_setup(CURL *easy, const struct cfs_options *opts, const struct cfs_remote *remote,
		    struct curl_slist *headers, const char *url);

/*
 * Make easy send the remote's credentials: its headers (the list, from
 * cfs_easy_headers(), must outlive the transfer; it holds --header and
 * S3's x-amz-security-token), its SigV4 signature (CURLOPT_AWS_SIGV4 with
 * the key pair) or else ~/.netrc when the remote found one.
 */
void cfs_easy_send_credentials(CURL *easy, const struct cfs_remote *remote,
			       struct curl_slist *headers);

/*
 * Make easy send none of them, for a redirect to another origin: no extra
 * header, no SigV4 signature nor user name or password, no ~/.netrc (a
 * user name and password in the URL itself are still used, as libcurl
 * does). Undone by cfs_easy_send_credentials().
 */
void cfs_easy_drop_credentials(CURL *easy);

#endif
