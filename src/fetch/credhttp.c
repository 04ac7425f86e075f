/*
 * The requests of the credential chain (remote/creds.h) to IMDS, the
 * container endpoint and STS: small, bounded, never redirected, never
 * logged with their headers or body (which hold tokens).
 */
#include "fetch/fetch.h"

#include <curl/curl.h>
#include <gio/gio.h>
#include <string.h>

#include "easy_i.h"
#include "remote/creds.h"
#include "util/url.h"

struct answer {
	GByteArray *body;
	bool too_large;
};

static size_t answer_write(char *data, size_t size, size_t n, void *p)
{
	struct answer *a = p;
	if (a->body->len + size * n > CFS_CREDS_ANSWER_MAX) {
		a->too_large = true;
		return 0;
	}
	g_byte_array_append(a->body, (const guint8 *)data, (guint)(size * n));
	return size * n;
}

static struct curl_slist *request_headers(const struct cfs_creds_request *req)
{
	struct curl_slist *list = NULL;
	for (const char *const *h = req->headers; h && *h; h++)
		list = curl_slist_append(list, *h);
	return list;
}

static void setup(CURL *easy, const struct cfs_creds_request *req, struct curl_slist *headers,
		  struct answer *a, char *errbuf)
{
	curl_easy_setopt(easy, CURLOPT_URL, req->url);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "chunkfs/" CHUNKFS_VERSION);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)req->connect_timeout_ms);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, answer_write);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
	cfs_easy_setup_tls(easy, req->tls->ca_file, req->tls->ca_dir, req->tls->insecure);
	if (req->body || !g_str_equal(req->method, "GET"))
		/* Not copied by libcurl (unlike COPYPOSTFIELDS): the token stays in our memory only. */
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req->body ? req->body : "");
	if (!g_str_equal(req->method, "GET") && !g_str_equal(req->method, "POST"))
		curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->method);
	if (req->sigv4) {
		curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, req->sigv4);
		curl_easy_setopt(easy, CURLOPT_USERNAME, req->sign_keys->access_key);
		curl_easy_setopt(easy, CURLOPT_PASSWORD, req->sign_keys->secret_key);
	}
}

bool cfs_fetch_creds_http(const struct cfs_creds_request *req, GByteArray *body, long *status,
			  GError **error)
{
	CURL *easy = curl_easy_init();
	char errbuf[CURL_ERROR_SIZE] = "";
	struct answer a = { body, false };
	struct curl_slist *headers = request_headers(req);
	g_byte_array_set_size(body, 0);
	setup(easy, req, headers, &a, errbuf);
	CURLcode rc = curl_easy_perform(easy);
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, status);
	bool ok = rc == CURLE_OK && !a.too_large;
	if (!ok) {
		char *safe = cfs_url_redact(req->url);
		char *cut = strchr(safe, '?');
		if (cut)
			*cut = '\0';
		g_set_error(error, G_IO_ERROR,
			    rc == CURLE_OPERATION_TIMEDOUT ? G_IO_ERROR_TIMED_OUT
							   : G_IO_ERROR_FAILED,
			    "%s %s: %s", req->method, safe,
			    a.too_large ? "answer over 64 KiB"
					: (*errbuf ? errbuf : curl_easy_strerror(rc)));
		g_free(safe);
	}
	curl_easy_cleanup(easy);
	cfs_easy_slist_free_secret(headers);
	return ok;
}
