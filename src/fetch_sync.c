/* Blocking requests made before the mount exists, and the shared easy-handle setup. */
#include "fetch_easy.h"

#include <gio/gio.h>
#include <stdlib.h>
#include <string.h>

#include "chunkfs/fetch.h"
#include "chunkfs/listing.h"
#include "chunkfs/options.h"
#include "chunkfs/remote.h"
#include "chunkfs/url.h"

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
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(easy, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "chunkfs/" CHUNKFS_VERSION);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT, (long)opts->connect_timeout_s);
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, (long)opts->timeout_s);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
	setup_tls(easy, remote);
	if (remote->sigv4) {
		curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, remote->sigv4);
		curl_easy_setopt(easy, CURLOPT_USERNAME, remote->access_key);
		curl_easy_setopt(easy, CURLOPT_PASSWORD, remote->secret_key);
	} else if (remote->netrc) {
		curl_easy_setopt(easy, CURLOPT_NETRC, (long)CURL_NETRC_OPTIONAL);
		curl_easy_setopt(easy, CURLOPT_NETRC_FILE, remote->netrc);
	}
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

struct s3_error_parse {
	GString *text;
	char *code, *message;
};

static void s3_error_start(GMarkupParseContext *ctx, const char *element, const char **names,
			   const char **values, gpointer data, GError **error)
{
	(void)ctx, (void)element, (void)names, (void)values, (void)error;
	g_string_truncate(((struct s3_error_parse *)data)->text, 0);
}

static void s3_error_end(GMarkupParseContext *ctx, const char *element, gpointer data,
			 GError **error)
{
	(void)ctx, (void)error;
	struct s3_error_parse *p = data;
	if (g_str_equal(element, "Code") && !p->code)
		p->code = g_strdup(p->text->str);
	else if (g_str_equal(element, "Message") && !p->message)
		p->message = g_strdup(p->text->str);
}

static void s3_error_text(GMarkupParseContext *ctx, const char *text, gsize len, gpointer data,
			  GError **error)
{
	(void)ctx, (void)error;
	g_string_append_len(((struct s3_error_parse *)data)->text, text, (gssize)len);
}

char *cfs_s3_error_detail(const char *body, size_t len)
{
	static const GMarkupParser parser = { s3_error_start, s3_error_end, s3_error_text, NULL,
					      NULL };
	if (!len)
		return NULL;
	struct s3_error_parse p = { .text = g_string_new(NULL) };
	GMarkupParseContext *ctx = g_markup_parse_context_new(&parser, 0, &p, NULL);
	char *result = NULL;
	if (g_markup_parse_context_parse(ctx, body, (gssize)len, NULL) &&
	    g_markup_parse_context_end_parse(ctx, NULL) && p.code)
		result = g_strdup_printf(" (%s%s%s)", p.code, p.message ? ": " : "",
					 p.message ? p.message : "");
	g_markup_parse_context_free(ctx);
	g_string_free(p.text, TRUE);
	g_free(p.code);
	g_free(p.message);
	return result;
}

/* Map a finished blocking request to a GError; true when it succeeded. */
static bool check_result(CURL *easy, CURLcode rc, const char *url, const char *errbuf,
			 GByteArray *body, GError **error)
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
	else {
		char *detail = body ? cfs_s3_error_detail((const char *)body->data, body->len)
				    : NULL;
		int code = status == 404		     ? G_IO_ERROR_NOT_FOUND
			   : status == 401 || status == 403 ? G_IO_ERROR_PERMISSION_DENIED
							    : G_IO_ERROR_FAILED;
		g_set_error(error, G_IO_ERROR, code, "%s: HTTP %ld%s", safe, status,
			    detail ? detail : "");
		g_free(detail);
	}
	g_free(safe);
	return false;
}

bool cfs_fetch_small(const struct cfs_options *opts, const struct cfs_remote *remote,
		     const char *url, size_t max_bytes, GBytes **body, char **etag, GError **error)
{
	CURL *easy = curl_easy_init();
	char errbuf[CURL_ERROR_SIZE] = "";
	struct sink s = { .buf = g_byte_array_new(), .max = max_bytes };
	struct etag_capture cap = { NULL };
	struct curl_slist *headers = cfs_easy_headers(remote);
	cfs_easy_setup(easy, opts, remote, headers, url);
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
		ok = check_result(easy, rc, url, errbuf, s.buf, error);
	}
	curl_easy_cleanup(easy);
	curl_slist_free_all(headers);
	if (ok) {
		*body = g_byte_array_free_to_bytes(s.buf);
		*etag = cap.etag;
	} else {
		g_byte_array_unref(s.buf);
		g_free(cap.etag);
	}
	return ok;
}

bool cfs_fetch_head(const struct cfs_options *opts, const struct cfs_remote *remote,
		    const char *url, uint64_t *size, GError **error)
{
	CURL *easy = curl_easy_init();
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *headers = cfs_easy_headers(remote);
	cfs_easy_setup(easy, opts, remote, headers, url);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
	CURLcode rc = curl_easy_perform(easy);
	bool ok = check_result(easy, rc, url, errbuf, NULL, error);
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
	curl_slist_free_all(headers);
	return ok;
}

#define LISTING_PAGE_MAX_BYTES (64 * CFS_MIB)
#define LISTING_MAX_PAGES 100000

/* One ListObjectsV2 page; parameters in the order SigV4's canonical query string sorts them. */
static char *s3_list_url(const struct cfs_remote *remote, const char *prefix, const char *token)
{
	char *p = g_uri_escape_string(prefix, NULL, FALSE);
	char *t = token ? g_uri_escape_string(token, NULL, FALSE) : NULL;
	char *url = g_strconcat(remote->list_url, "?", t ? "continuation-token=" : "", t ? t : "",
				t ? "&" : "", "delimiter=%2F&list-type=2&prefix=", p, NULL);
	g_free(t);
	g_free(p);
	return url;
}

static struct cfs_listing *parse_page(const struct cfs_remote *remote, GBytes *body,
				      const char *prefix, GError **error)
{
	gsize len;
	const char *data = g_bytes_get_data(body, &len);
	return remote->s3 ? cfs_listing_parse_s3(data, len, prefix, error)
			  : cfs_listing_parse_http(data, len, error);
}

static void append_entries(struct cfs_listing *into, struct cfs_listing *page)
{
	for (guint i = 0; i < page->entries->len; i++) {
		struct cfs_entry *e = &g_array_index(page->entries, struct cfs_entry, i);
		g_array_append_val(into->entries, *e);
		memset(e, 0, sizeof(*e)); /* now into's */
	}
	cfs_listing_free(page);
}

bool cfs_fetch_listing(const struct cfs_options *opts, const struct cfs_remote *remote,
		       const char *dir, struct cfs_listing **out, GError **error)
{
	char *prefix = g_strconcat(remote->s3 ? remote->list_prefix : "", dir, *dir ? "/" : "", NULL);
	char *token = NULL;
	struct cfs_listing *all = NULL;
	bool ok = true;
	for (unsigned page = 0; ok && page < LISTING_MAX_PAGES; page++) {
		char *url = remote->s3 ? s3_list_url(remote, prefix, token)
				       : cfs_url_join(remote->base_url, prefix);
		GBytes *body = NULL;
		char *etag = NULL;
		ok = cfs_fetch_small(opts, remote, url, LISTING_PAGE_MAX_BYTES, &body, &etag, error);
		struct cfs_listing *l = ok ? parse_page(remote, body, prefix, error) : NULL;
		ok = l != NULL;
		g_free(url);
		g_free(etag);
		if (body)
			g_bytes_unref(body);
		if (!ok)
			break;
		g_free(token);
		token = l->truncated ? g_strdup(l->next_token) : NULL;
		if (all)
			append_entries(all, l);
		else
			all = l;
		if (!token)
			break;
	}
	g_free(token);
	g_free(prefix);
	if (!ok) {
		cfs_listing_free(all);
		return false;
	}
	*out = all;
	return true;
}
