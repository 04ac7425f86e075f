/* What every libcurl easy handle gets: headers, TLS trust, credentials; libcurl's global init. */
#include "easy_i.h"

#include <string.h>

#include "fetch/fetch.h"
#include "remote/creds.h"
#include "remote/remote.h"
#include "remote/s3error.h"
#include "util/options.h"

void cfs_easy_auth_take(struct cfs_easy_auth *auth, const struct cfs_remote *remote)
{
	struct curl_slist *list = NULL;
	for (char **h = remote->headers; h && *h; h++)
		list = curl_slist_append(list, *h);
	auth->keys = remote->creds ? cfs_creds_current(remote->creds) : NULL;
	if (auth->keys && auth->keys->session_token) {
		char *token = g_strconcat("x-amz-security-token: ", auth->keys->session_token,
					  NULL);
		list = curl_slist_append(list, token);
		explicit_bzero(token, strlen(token));
		g_free(token);
	}
	auth->headers = list;
}

void cfs_easy_auth_clear(struct cfs_easy_auth *auth)
{
	cfs_easy_slist_free_secret(auth->headers);
	cfs_aws_keys_unref(auth->keys);
	auth->headers = NULL;
	auth->keys = NULL;
}

bool cfs_easy_keys_code(long status, const char *body, size_t len)
{
	if (status != 400 && status != 403)
		return false;
	char *code = cfs_s3_error_code(body, len);
	bool refused = code &&
		       (g_str_equal(code, "ExpiredToken") || g_str_equal(code, "InvalidToken") ||
			g_str_equal(code, "InvalidAccessKeyId"));
	g_free(code);
	return refused;
}

bool cfs_easy_keys_refused(const struct cfs_remote *remote, const struct cfs_easy_auth *auth,
			   long status, const char *body, size_t len)
{
	return auth->keys && cfs_easy_keys_code(status, body, len) &&
	       cfs_creds_renew_rejected(remote->creds, auth->keys->generation);
}

/* --cacert adds to the system's trust: the file as CAINFO, the default directory as CAPATH. */
void cfs_easy_setup_tls(CURL *easy, const char *ca_file, const char *ca_dir, bool insecure)
{
	if (insecure) {
		curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
		return;
	}
	if (ca_file) {
		curl_easy_setopt(easy, CURLOPT_CAINFO, ca_file);
		const char *capath = curl_version_info(CURLVERSION_NOW)->capath;
		if (capath && !ca_dir)
			curl_easy_setopt(easy, CURLOPT_CAPATH, capath);
	}
	if (ca_dir)
		curl_easy_setopt(easy, CURLOPT_CAPATH, ca_dir);
}

void cfs_easy_slist_free_secret(struct curl_slist *list)
{
	for (struct curl_slist *l = list; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(list);
}

void cfs_easy_setup(CURL *easy, const struct cfs_options *opts, const struct cfs_remote *remote,
		    const struct cfs_easy_auth *auth, const char *url)
{
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "chunkfs/" CHUNKFS_VERSION);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT, (long)opts->connect_timeout_s);
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, (long)opts->timeout_s);
	cfs_easy_setup_tls(easy, remote->ca_file, remote->ca_dir, remote->insecure);
	cfs_easy_send_credentials(easy, remote, auth);
}

void cfs_easy_send_credentials(CURL *easy, const struct cfs_remote *remote,
			       const struct cfs_easy_auth *auth)
{
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, auth->headers);
	if (remote->sigv4 && auth->keys) {
		curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, remote->sigv4);
		curl_easy_setopt(easy, CURLOPT_USERNAME, auth->keys->access_key);
		curl_easy_setopt(easy, CURLOPT_PASSWORD, auth->keys->secret_key);
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
