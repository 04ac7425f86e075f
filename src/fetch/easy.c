/* What every libcurl easy handle gets: headers, TLS trust, credentials; libcurl's global init. */
#include "easy_i.h"

#include "fetch/fetch.h"
#include "remote/remote.h"
#include "util/options.h"

struct curl_slist *cfs_easy_headers(const struct cfs_remote *remote)
{
	struct curl_slist *list = NULL;
	for (char **h = remote->headers; h && *h; h++)
		list = curl_slist_append(list, *h);
	return list;
}

/* --cacert adds to the system's trust: the file as CAINFO, the default directory as CAPATH. */
static void setup_tls(CURL *easy, const struct cfs_remote *remote)
{
	if (remote->insecure) {
		curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
		return;
	}
	if (remote->ca_file) {
		curl_easy_setopt(easy, CURLOPT_CAINFO, remote->ca_file);
		const char *capath = curl_version_info(CURLVERSION_NOW)->capath;
		if (capath && !remote->ca_dir)
			curl_easy_setopt(easy, CURLOPT_CAPATH, capath);
	}
	if (remote->ca_dir)
		curl_easy_setopt(easy, CURLOPT_CAPATH, remote->ca_dir);
}

void cfs_easy_setup(CURL *easy, const struct cfs_options *opts, const struct cfs_remote *remote,
		    struct curl_slist *headers, const char *url)
{
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "chunkfs/" CHUNKFS_VERSION);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT, (long)opts->connect_timeout_s);
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, (long)opts->timeout_s);
	setup_tls(easy, remote);
	cfs_easy_send_credentials(easy, remote, headers);
}

void cfs_easy_send_credentials(CURL *easy, const struct cfs_remote *remote,
			       struct curl_slist *headers)
{
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
	if (remote->sigv4) {
		curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, remote->sigv4);
		curl_easy_setopt(easy, CURLOPT_USERNAME, remote->access_key);
		curl_easy_setopt(easy, CURLOPT_PASSWORD, remote->secret_key);
	} else if (remote->netrc) {
		curl_easy_setopt(easy, CURLOPT_NETRC, (long)CURL_NETRC_OPTIONAL);
		curl_easy_setopt(easy, CURLOPT_NETRC_FILE, remote->netrc);
	}
}

void cfs_easy_drop_credentials(CURL *easy)
{
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, NULL);
	/* Setting CURLOPT_AWS_SIGV4 made SigV4 the auth method (libcurl docs): undo both. */
	curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, NULL);
	curl_easy_setopt(easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	curl_easy_setopt(easy, CURLOPT_USERNAME, NULL);
	curl_easy_setopt(easy, CURLOPT_PASSWORD, NULL);
	curl_easy_setopt(easy, CURLOPT_NETRC, (long)CURL_NETRC_IGNORED);
}

void cfs_fetch_global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

void cfs_fetch_global_cleanup(void)
{
	curl_global_cleanup();
}
