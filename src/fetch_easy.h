/* Private to the fetch module: the options every libcurl easy handle gets. */
#ifndef CHUNKFS_FETCH_EASY_H
#define CHUNKFS_FETCH_EASY_H

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
 * no signals, TCP keep-alive, user agent, ~/.netrc when the remote found
 * one, and the remote's headers (the list must outlive the transfer), TLS
 * trust and SigV4 signature.
 */
void cfs_easy_setup(CURL *easy, const struct cfs_options *opts, const struct cfs_remote *remote,
		    struct curl_slist *headers, const char *url);

#endif
