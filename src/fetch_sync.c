/* Blocking requests made before the mount exists, and the shared easy-handle setup. */
#include "fetch_easy.h"

#include <gio/gio.h>
#include <stdlib.h>

#include "chunkfs/fetch.h"
#include "chunkfs/options.h"
#include "chunkfs/url.h"

void cfs_easy_setup(CURL *easy, const struct cfs_options *opts, const char *url)
{
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(easy, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "chunkfs/" CHUNKFS_VERSION);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT, (long)opts->connect_timeout_s);
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, (long)opts->timeout_s);
	const char *bundle = getenv("CURL_CA_BUNDLE");
	if (!bundle || !*bundle)
		bundle = getenv("SSL_CERT_FILE");
	if (bundle && *bundle)
		curl_easy_setopt(easy, CURLOPT_CAINFO, bundle);
	const char *dir = getenv("SSL_CERT_DIR");
	if (dir && *dir)
		curl_easy_setopt(easy, CURLOPT_CAPATH, dir);
}

void cfs_fetch_global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

void cfs_fetch_global_cleanup(void)
{
	curl_global_cleanup();
}

struct sink {
	GByteArray *buf;
	size_t max;
	bool too_large;
};

static size_t sink_write(char *data, size_t size, size_t n, void *p)
{
	struct sink *s = p;
	if (s->buf->len + n > s->max) {
		s->too_large = true;
		return 0;
	}
	g_byte_array_append(s->buf, (const guint8 *)data, (guint)n);
	return size * n;
}

struct etag_capture {
	char *etag;
};

static size_t capture_etag(char *line, size_t size, size_t n, void *p)
{
	struct etag_capture *c = p;
	size_t len = size * n;
	if (len > 5 && g_ascii_strncasecmp(line, "etag:", 5) == 0) {
		g_free(c->etag);
		c->etag = g_strstrip(g_strndup(line + 5, len - 5));
	}
	return len;
}

/* Map a finished blocking request to a GError; true when it succeeded. */
static bool check_result(CURL *easy, CURLcode rc, const char *url, const char *errbuf,
			 GError **error)
{
	long status = 0;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	if (rc == CURLE_OK && status >= 200 && status < 300)
		return true;
	char *safe = cfs_url_redact(url);
	const char *why = *errbuf ? errbuf : curl_easy_strerror(rc);
	if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
	    rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_COULDNT_RESOLVE_PROXY)
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_HOST_UNREACHABLE, "cannot reach %s: %s",
			    safe, why);
	else if (rc != CURLE_OK)
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: %s", safe, why);
	else if (status == 404)
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "%s: HTTP 404 Not Found", safe);
	else
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: HTTP %ld", safe, status);
	g_free(safe);
	return false;
}

bool cfs_fetch_small(const struct cfs_options *opts, const char *url, size_t max_bytes,
		     GBytes **body, char **etag, GError **error)
{
	CURL *easy = curl_easy_init();
	char errbuf[CURL_ERROR_SIZE] = "";
	struct sink s = { .buf = g_byte_array_new(), .max = max_bytes };
	struct etag_capture cap = { NULL };
	cfs_easy_setup(easy, opts, url);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, capture_etag);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, &cap);
	CURLcode rc = curl_easy_perform(easy);
	bool ok;
	if (s.too_large) {
		char *safe = cfs_url_redact(url);
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
			    "%s: larger than %zu bytes", safe, max_bytes);
		g_free(safe);
		ok = false;
	} else {
		ok = check_result(easy, rc, url, errbuf, error);
	}
	curl_easy_cleanup(easy);
	if (ok) {
		*body = g_byte_array_free_to_bytes(s.buf);
		*etag = cap.etag;
	} else {
		g_byte_array_unref(s.buf);
		g_free(cap.etag);
	}
	return ok;
}

bool cfs_fetch_head(const struct cfs_options *opts, const char *url, uint64_t *size,
		    GError **error)
{
	CURL *easy = curl_easy_init();
	char errbuf[CURL_ERROR_SIZE] = "";
	cfs_easy_setup(easy, opts, url);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
	CURLcode rc = curl_easy_perform(easy);
	bool ok = check_result(easy, rc, url, errbuf, error);
	curl_off_t len = -1;
	if (ok)
		curl_easy_getinfo(easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
	if (ok && len < 0) {
		char *safe = cfs_url_redact(url);
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			    "%s: the server sent no Content-Length", safe);
		g_free(safe);
		ok = false;
	}
	if (ok)
		*size = (uint64_t)len;
	curl_easy_cleanup(easy);
	return ok;
}
