/* Blocking requests made before the mount exists: the index, listings, HEADs. */
#include "easy_i.h"

#include <gio/gio.h>
#include <string.h>
#include <xxhash.h>

#include "fetch/fetch.h"
#include "remote/listing.h"
#include "util/options.h"
#include "fetch/redirect.h"
#include "remote/remote.h"
#include "remote/s3error.h"
#include "util/times.h"
#include "util/url.h"

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
	if (len >= 5 && g_ascii_strncasecmp(line, "HTTP/", 5) == 0) {
		g_clear_pointer(&c->etag, g_free); /* a new response: a redirect's tag is not ours */
	} else if (len > 5 && g_ascii_strncasecmp(line, "etag:", 5) == 0) {
		g_free(c->etag);
		c->etag = g_strstrip(g_strndup(line + 5, len - 5));
	}
	return len;
}

/* The Last-Modified of the last response (a redirect's is not the object's), or unknown. */
static size_t capture_last_modified(char *line, size_t size, size_t n, void *p)
{
	int64_t *mtime_us = p;
	size_t len = size * n;
	static const char field[] = "last-modified:";
	if (len >= 5 && g_ascii_strncasecmp(line, "HTTP/", 5) == 0) {
		*mtime_us = CFS_TIME_UNKNOWN;
	} else if (len > sizeof(field) - 1 &&
		   g_ascii_strncasecmp(line, field, sizeof(field) - 1) == 0) {
		char *value = g_strstrip(
			g_strndup(line + sizeof(field) - 1, len - (sizeof(field) - 1)));
		int64_t s;
		*mtime_us = cfs_http_date_parse(value, strlen(value),
						g_get_real_time() / G_USEC_PER_SEC, &s)
				    ? s * G_USEC_PER_SEC
				    : CFS_TIME_UNKNOWN;
		g_free(value);
	}
	return len;
}

/*
 * A blocking request ends within (retries + 1) x timeout, redirects
 * included: what a read may take before its last retry gives up, so a
 * trickling server cannot hold a lookup longer than a stalled read (the
 * stall timeout alone only ends a request that sends nothing at all for
 * that long). In ms.
 */
static gint64 request_deadline_ms(const struct cfs_options *opts)
{
	return (gint64)(opts->retries + 1) * (gint64)opts->timeout_s * 1000;
}

int64_t cfs_fetch_listing_deadline(const struct cfs_options *opts)
{
	return g_get_monotonic_time() + (int64_t)cfs_fetch_read_bound_ms(opts) * 1000;
}

/*
 * Run the request easy is set up for, following redirects as
 * cfs_redirect_follow() allows; a hop to another origin drops the remote's
 * credentials, all hops within one request_deadline_ms() and by
 * deadline_us (0: none). body (may be NULL) is emptied of each redirect's
 * page. Returns false with *error set (the object's URL redacted) when a
 * redirect is refused, else true with the last transfer's result in *rc.
 */
static bool perform_following(CURL *easy, const struct cfs_options *opts, const char *url,
			      int64_t deadline_us, GByteArray *body, CURLcode *rc, GError **error)
{
	struct cfs_redirect_chain chain = { 0 };
	cfs_redirect_start(&chain, url);
	gint64 end_ms = g_get_monotonic_time() / 1000 + request_deadline_ms(opts);
	if (deadline_us)
		end_ms = MIN(end_ms, deadline_us / 1000);
	bool followed = true;
	for (unsigned hop = 0; hop <= CFS_REDIRECT_MAX_HOPS; hop++) {
		/* 0 would mean no limit at all */
		long left_ms = (long)MAX(end_ms - g_get_monotonic_time() / 1000, 1);
		curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, left_ms);
		*rc = curl_easy_perform(easy);
		long status = 0;
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
		if (*rc != CURLE_OK || !cfs_redirect_status(status))
			break;
		char *target = NULL;
		curl_easy_getinfo(easy, CURLINFO_REDIRECT_URL, &target);
		followed = cfs_redirect_follow(&chain, target, error);
		if (!followed)
			break;
		if (chain.plain)
			cfs_easy_drop_credentials(easy);
		curl_easy_setopt(easy, CURLOPT_URL, cfs_redirect_url(&chain));
		if (body)
			g_byte_array_set_size(body, 0);
	}
	cfs_redirect_clear(&chain);
	if (!followed) {
		char *safe = cfs_url_redact(url);
		g_prefix_error(error, "%s: ", safe);
		g_free(safe);
	}
	return followed;
}

/*
 * The G_IO_ERROR code of a failed request: that of cfs_http_errno()'s errno,
 * which cfs_fetch_error_errno() gives back.
 */
static int failure_code(long status, bool timed_out)
{
	return g_io_error_from_errno(-cfs_http_errno(status, timed_out));
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
	if (rc == CURLE_OPERATION_TIMEDOUT)
		g_set_error(error, G_IO_ERROR, failure_code(status, true), "%s: timed out: %s",
			    safe, why);
	else if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
		 rc == CURLE_COULDNT_RESOLVE_PROXY)
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_HOST_UNREACHABLE, "cannot reach %s: %s",
			    safe, why);
	else if (rc != CURLE_OK)
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: %s", safe, why);
	else {
		char *detail = body ? cfs_s3_error_detail((const char *)body->data, body->len)
				    : NULL;
		g_set_error(error, G_IO_ERROR, failure_code(status, false), "%s: HTTP %ld%s", safe,
			    status, detail ? detail : "");
		g_free(detail);
	}
	g_free(safe);
	return false;
}

/*
 * Whether a failed request's keys were refused as expired or unknown and
 * renewed since: then it is worth one more attempt.
 */
static bool keys_renewed(CURL *easy, const struct cfs_remote *remote,
			 const struct cfs_easy_auth *auth, const GByteArray *body)
{
	long status = 0;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	return cfs_easy_keys_refused(remote, auth, status, (const char *)body->data, body->len);
}

/* One attempt of cfs_fetch_small(); *renewed is set when it is worth another. */
static bool fetch_small_once(const struct cfs_options *opts, const struct cfs_remote *remote,
			     const char *url, size_t max_bytes, int64_t deadline_us, GBytes **body,
			     char **etag, bool *renewed, GError **error)
{
	CURL *easy = curl_easy_init();
	char errbuf[CURL_ERROR_SIZE] = "";
	struct sink s = { .buf = g_byte_array_new(), .max = max_bytes };
	struct etag_capture cap = { NULL };
	struct cfs_easy_auth auth;
	cfs_easy_auth_take(&auth, remote);
	cfs_easy_setup(easy, opts, remote, &auth, url);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, capture_etag);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, &cap);
	CURLcode rc;
	bool ok = perform_following(easy, opts, url, deadline_us, s.buf, &rc, error);
	if (ok && s.too_large) {
		char *safe = cfs_url_redact(url);
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
			    "%s: larger than %zu bytes", safe, max_bytes);
		g_free(safe);
		ok = false;
	} else if (ok) {
		ok = check_result(easy, rc, url, errbuf, s.buf, error);
		*renewed = !ok && rc == CURLE_OK && keys_renewed(easy, remote, &auth, s.buf);
	}
	curl_easy_cleanup(easy);
	cfs_easy_auth_clear(&auth);
	if (ok) {
		*body = g_byte_array_free_to_bytes(s.buf);
		*etag = cap.etag;
	} else {
		g_byte_array_unref(s.buf);
		g_free(cap.etag);
	}
	return ok;
}

bool cfs_fetch_small(const struct cfs_options *opts, const struct cfs_remote *remote,
		     const char *url, size_t max_bytes, int64_t deadline_us, GBytes **body,
		     char **etag, GError **error)
{
	bool renewed = false;
	GError *err = NULL;
	bool ok = fetch_small_once(opts, remote, url, max_bytes, deadline_us, body, etag, &renewed,
				   &err);
	if (!ok && renewed) {
		g_debug("%s; retrying with renewed credentials", err->message);
		g_clear_error(&err);
		ok = fetch_small_once(opts, remote, url, max_bytes, deadline_us, body, etag,
				      &renewed, &err);
	}
	if (err)
		g_propagate_error(error, err);
	return ok;
}

bool cfs_fetch_head(const struct cfs_options *opts, const struct cfs_remote *remote,
		    const char *url, uint64_t *size, int64_t *mtime_us, GError **error)
{
	CURL *easy = curl_easy_init();
	char errbuf[CURL_ERROR_SIZE] = "";
	struct cfs_easy_auth auth;
	cfs_easy_auth_take(&auth, remote);
	cfs_easy_setup(easy, opts, remote, &auth, url);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
	int64_t last_modified = CFS_TIME_UNKNOWN;
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, capture_last_modified);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, &last_modified);
	CURLcode rc;
	bool ok = perform_following(easy, opts, url, 0, NULL, &rc, error) &&
		  check_result(easy, rc, url, errbuf, NULL, error);
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
	if (ok) {
		*size = (uint64_t)len;
		*mtime_us = last_modified;
	}
	curl_easy_cleanup(easy);
	cfs_easy_auth_clear(&auth);
	return ok;
}

#define LISTING_PAGE_MAX_BYTES (64 * CFS_MIB)

/* One page of the listing of prefix, fetched by deadline_us and parsed; NULL with *error set. */
static struct cfs_listing *fetch_page(const struct cfs_options *opts,
				      const struct cfs_remote *remote, const char *prefix,
				      const char *token, int64_t deadline_us, GError **error)
{
	char *url = remote->ops->list_url(remote, prefix, token);
	GBytes *body = NULL;
	char *etag = NULL;
	struct cfs_listing *l = NULL;
	if (cfs_fetch_small(opts, remote, url, LISTING_PAGE_MAX_BYTES, deadline_us, &body, &etag,
			    error)) {
		gsize len;
		const char *data = g_bytes_get_data(body, &len);
		l = remote->ops->parse_listing(data, len, prefix, error);
	}
	g_free(url);
	g_free(etag);
	if (body)
		g_bytes_unref(body);
	return l;
}

/* A listing being put together from its pages, within the bounds of the options. */
struct paging {
	const struct cfs_remote *remote;
	const char *dir;
	unsigned max_entries;  /* --max-dir-entries */
	unsigned max_pages;
	unsigned pages;
	GHashTable *tokens;    /* XXH3-64 of every continuation token followed (guint64 *) */
	char *token;           /* to ask for the next page with; NULL for the first */
	struct cfs_listing *all;
};

static bool paging_fail(const struct paging *p, GIOErrorEnum code, const char *why,
			GError **error)
{
	g_set_error(error, G_IO_ERROR, code, "%s: listing of /%s: %s", p->remote->shown, p->dir,
		    why);
	return false;
}

/* The token of a truncated page must be one never followed: else the listing loops. */
static bool token_is_new(struct paging *p, const char *token, GError **error)
{
	if (!token)
		return paging_fail(p, G_IO_ERROR_INVALID_DATA,
				   "IsTruncated without a NextContinuationToken", error);
	guint64 h = XXH3_64bits(token, strlen(token));
	if (!g_hash_table_add(p->tokens, g_memdup2(&h, sizeof(h))))
		return paging_fail(p, G_IO_ERROR_INVALID_DATA,
				   "a NextContinuationToken came back: the listing would not end",
				   error);
	return true;
}

/* Move the entries of page (freed) to the end of into. */
static void append_entries(struct cfs_listing *into, struct cfs_listing *page)
{
	for (guint i = 0; i < page->entries->len; i++) {
		struct cfs_entry *e = &g_array_index(page->entries, struct cfs_entry, i);
		g_array_append_val(into->entries, *e);
		memset(e, 0, sizeof(*e)); /* now into's */
	}
	cfs_listing_free(page);
}

/*
 * Add page (taken) to the listing; true with *more set when a next page is
 * to be asked for with the page's token. False with *error when the
 * listing breaks a bound: more entries or pages than allowed, a repeated
 * token.
 */
static bool take_page(struct paging *p, struct cfs_listing *page, bool *more, GError **error)
{
	guint held = p->all ? p->all->entries->len : 0;
	*more = page->truncated;
	bool ok;
	if (page->entries->len > p->max_entries - held)
		ok = paging_fail(p, G_IO_ERROR_MESSAGE_TOO_LARGE,
				 "more entries than --max-dir-entries allows", error);
	else if (*more && ++p->pages >= p->max_pages)
		ok = paging_fail(p, G_IO_ERROR_MESSAGE_TOO_LARGE,
				 "more pages than --max-dir-entries allows", error);
	else
		ok = !*more || token_is_new(p, page->next_token, error);
	if (!ok) {
		cfs_listing_free(page);
		return false;
	}
	g_free(p->token);
	p->token = *more ? g_steal_pointer(&page->next_token) : NULL;
	page->truncated = false; /* the listing as a whole is complete once the last page is in */
	if (p->all)
		append_entries(p->all, page);
	else
		p->all = page;
	return true;
}

/*
 * A ListObjectsV2 page holds at most 1000 keys and prefixes (S3 API
 * Reference, "ListObjectsV2", max-keys); a listing of the most entries
 * allowed may come in pages ten times smaller than that, not smaller, plus
 * a few pages that hold next to nothing (a server may end a page early).
 */
#define LISTING_MIN_PAGE_ENTRIES 100
/*
 * A page request the listing's deadline cut short may end a little before
 * that deadline: libcurl keeps its own clock, in whole milliseconds.
 */
#define DEADLINE_SLACK_US 10000
#define LISTING_SPARE_PAGES 10

static unsigned max_pages(unsigned max_entries)
{
	return max_entries / LISTING_MIN_PAGE_ENTRIES + LISTING_SPARE_PAGES;
}

/*
 * False with a timeout in *error once deadline_us (g_get_monotonic_time())
 * has passed: a page asked for then could still be answered within the
 * 1 ms a request is given past it.
 */
static bool before_deadline(int64_t deadline_us, GError **error)
{
	if (g_get_monotonic_time() < deadline_us)
		return true;
	g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "more pages to fetch");
	return false;
}

bool cfs_fetch_listing(const struct cfs_options *opts, const struct cfs_remote *remote,
		       const char *dir, int64_t deadline_us, struct cfs_listing **out,
		       GError **error)
{
	char *prefix = g_strconcat(remote->list_prefix, dir, *dir ? "/" : "", NULL);
	struct paging p = { remote, dir, opts->max_dir_entries, max_pages(opts->max_dir_entries), 0,
			    g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL), NULL,
			    NULL };
	bool ok = true, more = true;
	GError *err = NULL;
	while (ok && more) { /* ends within p.max_pages pages: take_page() counts them */
		struct cfs_listing *page = NULL;
		ok = (!p.token || before_deadline(deadline_us, &err)) &&
		     (page = fetch_page(opts, remote, prefix, p.token, deadline_us, &err)) &&
		     take_page(&p, page, &more, &err);
	}
	if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT) &&
	    g_get_monotonic_time() + DEADLINE_SLACK_US >= deadline_us)
		g_prefix_error(&err,
			       "%s: listing of /%s: not complete by its deadline: ", remote->shown,
			       dir);
	if (err)
		g_propagate_error(error, err);
	g_hash_table_destroy(p.tokens);
	g_free(p.token);
	g_free(prefix);
	if (!ok) {
		cfs_listing_free(p.all);
		return false;
	}
	*out = p.all;
	return true;
}
