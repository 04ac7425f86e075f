/* Private to the fetch module: the options every libcurl easy handle gets. */
#ifndef CHUNKFS_FETCH_EASY_H
#define CHUNKFS_FETCH_EASY_H

#include <curl/curl.h>

struct cfs_options;

/*
 * Set the options common to every request on a fresh easy handle: URL,
 * connect timeout, stall timeout (no byte for opts->timeout_s seconds),
 * no signals, TCP keep-alive, user agent, and the CA bundle named by
 * CURL_CA_BUNDLE or SSL_CERT_FILE / SSL_CERT_DIR, as the curl tool reads them.
 */
void cfs_easy_setup(CURL *easy, const struct cfs_options *opts, const char *url);

#endif
