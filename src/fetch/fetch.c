/* The fetcher threads: libcurl multi handles running Range GETs with retries. */
#include "fetch/fetch.h"

#include <errno.h>
#include <gio/gio.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "util/errors.h"
#include "util/options.h"
#include "fetch/redirect.h"
#include "util/stats.h"
#include "easy_i.h"
#include "headers_i.h"
#include "retry_i.h"

/* The poll's longest sleep with nothing due; a due retry or a new request wakes it sooner. */
#define IDLE_POLL_MS 1000
/* The longest error page read to keep its connection; a longer one ends it. */
#define ERROR_BODY_MAX (64 * 1024)
/* The part of a 400 or 403 error page kept to read its S3 Code (ExpiredToken...) from. */
#define REFUSAL_BODY_MAX 4096
/* Larger receive buffers mean fewer trips through the memory tier's lock. */
#define RECEIVE_BUFFER_BYTES (256L << 10)

#ifndef CURL_WRITEFUNC_ERROR
#define CURL_WRITEFUNC_ERROR 0
#endif

struct request {
	char *name, *url;
	uint64_t next, end;           /* bytes [next, end) are still to come */
	enum cfs_fetch_priority prio;
	bool head;                    /* a HEAD: no body, the response's headers only */
	const struct cfs_fetch_ops *ops;
	void *ctx;
	unsigned attempt;             /* 1 for the first */
	unsigned timeout_s;
	gint64 due_us;                /* monotonic time a retry may start */
	struct cfs_redirect_chain chain; /* the attempt's redirects, from url */
	gint64 retry_after_s;         /* the response's Retry-After in seconds, -1 without one */

	/* The running attempt. */
	GList link;                   /* in cfs_fetcher.active while an attempt runs */
	CURL *easy;
	gint64 started_us;
	gint64 last_byte_us;          /* when the last header or body byte arrived */
	bool stalled;                 /* aborted: nothing arrived for the timeout */
	bool checked;                 /* the response passed its checks */
	int fatal;                    /* negative errno that ends the request, no retry */
	long http_error;              /* an error status whose body is being drained */
	uint64_t drained;             /* bytes of that body so far */
	GByteArray *refusal;          /* the start of a 400 or 403 body, or NULL */
	struct cfs_easy_auth auth;    /* the attempt's headers and keys */
	bool renewed;                 /* refused keys were renewed once for this request */
	char *content_range, *etag;
	char errbuf[CURL_ERROR_SIZE];
};

/*
 * One fetcher thread with its own libcurl multi handle and connections.
 * Requests are spread over the engines, so that receiving and copying the
 * bytes of several responses runs on several cores.
 */
struct engine {
	struct cfs_options cfg;          /* a copy without the strings; max_connections its share */
	const struct cfs_remote *remote;
	CURLM *multi;
	GThread *thread;
	unsigned load;                   /* requests queued or running (atomic) */

	GMutex lock;                     /* guards incoming and quit */
	GQueue incoming;
	bool quit;

	/* Fetcher thread only. */
	GQueue demand, readahead, waiting; /* waiting: retries until due_us */
	GQueue active;                     /* requests with a running attempt */
	GQueue idle_easy;                  /* GET handles kept for the next attempts */
};

struct cfs_fetcher {
	struct engine *engines;
	unsigned n;
};

static void request_free(struct request *r)
{
	cfs_redirect_clear(&r->chain);
	g_free(r->name);
	g_free(r->url);
	g_free(r->content_range);
	g_free(r->etag);
	if (r->refusal)
		g_byte_array_unref(r->refusal);
	cfs_easy_auth_clear(&r->auth);
	g_free(r);
}

static void finish(struct engine *f, struct request *r, int err)
{
	__atomic_fetch_sub(&f->load, 1, __ATOMIC_RELAXED);
	if (err && err != -ECANCELED)
		cfs_stats_add(CFS_REQUESTS_FAILED, 1);
	r->ops->on_done(r->ctx, err);
	request_free(r);
}

static void reset_response(struct request *r)
{
	g_clear_pointer(&r->content_range, g_free);
	g_clear_pointer(&r->etag, g_free);
	r->checked = false;
	r->http_error = 0;
	r->drained = 0;
	if (r->refusal)
		g_byte_array_set_size(r->refusal, 0);
	r->retry_after_s = -1;
}

static size_t on_header(char *line, size_t size, size_t n, void *p)
{
	struct request *r = p;
	size_t len = size * n;
	r->last_byte_us = g_get_monotonic_time();
	if (len >= 5 && g_ascii_strncasecmp(line, "HTTP/", 5) == 0) {
		reset_response(r); /* a new response: a redirect or an interim 1xx came first */
	} else if (len > 14 && g_ascii_strncasecmp(line, "content-range:", 14) == 0) {
		g_free(r->content_range);
		r->content_range = g_strstrip(g_strndup(line + 14, len - 14));
	} else if (len > 5 && g_ascii_strncasecmp(line, "etag:", 5) == 0) {
		g_free(r->etag);
		r->etag = g_strstrip(g_strndup(line + 5, len - 5));
	} else if (len > 12 && g_ascii_strncasecmp(line, "retry-after:", 12) == 0) {
		char *value = g_strstrip(g_strndup(line + 12, len - 12));
		r->retry_after_s = cfs_retry_after_parse(value, time(NULL));
		g_free(value);
	}
	return len;
}

static bool transient_http(long status)
{
	return status >= 500 || status == 429 || status == 408;
}

/* Decide on a response when its first body byte (or its end) arrives. */
static int check_response(struct request *r)
{
	long status = 0;
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	struct cfs_response_info info = { .etag = r->etag };
	uint64_t first, last;
	if (status == 206) {
		if (!cfs_content_range_parse(r->content_range, &first, &last, &info.total_size) ||
		    first != r->next || last != r->end - 1) {
			cfs_errors_report(r->name, r->next, r->end - r->next, -EIO, "the server "
					  "answered with Content-Range '%s'",
					  r->content_range ? r->content_range : "(none)");
			return -EIO;
		}
	} else if (status == 200 && r->next == 0) {
		curl_off_t len = -1;
		curl_easy_getinfo(r->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
		if (len < (curl_off_t)r->end) {
			cfs_errors_report(r->name, r->next, r->end - r->next, -EIO, "the server "
					  "ignored the Range and sent %" CURL_FORMAT_CURL_OFF_T
					  " bytes without a valid length", len);
			return -EIO;
		}
		info.total_size = (uint64_t)len;
	} else if (status == 200) {
		cfs_errors_report(r->name, r->next, r->end - r->next, -EIO, "the server does not "
				  "support Range requests (HTTP 200)");
		return -EIO;
	} else {
		r->http_error = status; /* decided when its body has been drained */
		return 0;
	}
	int err = r->ops->on_response ? r->ops->on_response(r->ctx, &info) : 0;
	if (err == 0)
		r->checked = true;
	return err;
}

/* Keep the start of a signed request's 400 or 403 body: it may say the keys expired. */
static void keep_refusal(struct request *r, const char *data, size_t len)
{
	if (!r->auth.keys || (r->http_error != 400 && r->http_error != 403))
		return;
	if (!r->refusal)
		r->refusal = g_byte_array_new();
	size_t room = REFUSAL_BODY_MAX - MIN(r->refusal->len, REFUSAL_BODY_MAX);
	g_byte_array_append(r->refusal, (const guint8 *)data, (guint)MIN(len, room));
}

static size_t on_body(char *data, size_t size, size_t n, void *p)
{
	struct request *r = p;
	size_t len = size * n;
	r->last_byte_us = g_get_monotonic_time();
	if (!r->checked && !r->http_error) {
		cfs_stats_ttfb((uint64_t)(r->last_byte_us - r->started_us));
		r->fatal = check_response(r);
		if (r->fatal)
			return CURL_WRITEFUNC_ERROR;
	}
	if (r->http_error) {
		/*
		 * An error page: drain a short one, so the connection stays
		 * usable; a longer one ends the transfer (and the connection)
		 * rather than being downloaded for nothing.
		 */
		keep_refusal(r, data, len);
		r->drained += len;
		return r->drained <= ERROR_BODY_MAX ? len : CURL_WRITEFUNC_ERROR;
	}
	size_t use = (size_t)MIN((uint64_t)len, r->end - r->next);
	if (use) {
		/* Counted first: on_data can wake a reader, who may read the stats next. */
		cfs_stats_add(CFS_BYTES_FETCHED, use);
		r->ops->on_data(r->ctx, r->next, data, use);
		r->next += use;
	}
	/* A 200 sends the whole object: stop once the part asked for is here. */
	return r->next == r->end && use < len ? CURL_WRITEFUNC_ERROR : len;
}

/*
 * libcurl's low-speed limit averages over several seconds, so a response that
 * stops after a burst would be noticed late: measure the silence here (called
 * at least once a second while the transfer runs).
 */
static int on_progress(void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	struct request *r = p;
	gint64 limit = (gint64)r->timeout_s * G_USEC_PER_SEC;
	if (g_get_monotonic_time() - r->last_byte_us <= limit)
		return 0;
	r->stalled = true;
	return 1;
}

/* A new easy handle with every option but those of one request. */
static CURL *new_handle(struct engine *f, const struct cfs_easy_auth *auth, const char *url)
{
	CURL *easy = curl_easy_init();
	cfs_easy_setup(easy, &f->cfg, f->remote, auth, url);
	curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, RECEIVE_BUFFER_BYTES);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, on_progress);
	return easy;
}

/*
 * A GET handle: a kept one when there is one. A handle keeps its receive
 * buffer, which a fresh one would allocate (and fault in) at every request.
 */
static CURL *get_handle(struct engine *f, const struct cfs_easy_auth *auth, const char *url)
{
	CURL *easy = g_queue_pop_head(&f->idle_easy);
	if (!easy)
		return new_handle(f, auth, url);
	curl_easy_setopt(easy, CURLOPT_URL, url);
	cfs_easy_send_credentials(easy, f->remote, auth);
	return easy;
}

/*
 * Keep a GET handle for the next attempt, pointing at nothing of the
 * request it ran; get_handle() gives it the next attempt's credentials.
 */
static void keep_handle(struct engine *f, CURL *easy)
{
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, NULL);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, NULL);
	curl_easy_setopt(easy, CURLOPT_XFERINFODATA, NULL);
	g_queue_push_head(&f->idle_easy, easy);
}

/* Run the request on its chain's URL: the attempt's first transfer or a redirect's. */
static void start_transfer(struct engine *f, struct request *r)
{
	char range[64] = "";
	const char *url = cfs_redirect_url(&r->chain);
	/* Each transfer signs with the keys current now: a retry never reuses renewed ones. */
	cfs_easy_auth_clear(&r->auth);
	cfs_easy_auth_take(&r->auth, f->remote);
	if (r->head) {
		r->easy = new_handle(f, &r->auth, url);
		curl_easy_setopt(r->easy, CURLOPT_NOBODY, 1L);
	} else {
		snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, r->next, r->end - 1);
		r->easy = get_handle(f, &r->auth, url);
		curl_easy_setopt(r->easy, CURLOPT_RANGE, range);
	}
	if (r->chain.plain)
		cfs_easy_drop_credentials(r->easy);
	r->errbuf[0] = '\0';
	r->fatal = 0;
	r->stalled = false;
	r->timeout_s = f->cfg.timeout_s;
	reset_response(r);
	curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
	curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_XFERINFODATA, r);
	r->started_us = r->last_byte_us = g_get_monotonic_time();
	cfs_stats_add(CFS_REQUESTS, 1);
	g_debug("%s %s%s%s (attempt %u, redirect %u%s)", r->head ? "HEAD" : "GET", r->name,
		*range ? " bytes=" : "", range, r->attempt, r->chain.hops,
		r->chain.plain ? ", another origin" : "");
	curl_multi_add_handle(f->multi, r->easy);
	r->link.data = r;
	g_queue_push_tail_link(&f->active, &r->link);
}

/* A new attempt starts at the request's own URL: a redirect may have been to a URL that expired. */
static void start_attempt(struct engine *f, struct request *r)
{
	cfs_redirect_start(&r->chain, r->url);
	if (r->attempt > 1)
		cfs_stats_add(CFS_RETRIES, 1);
	start_transfer(f, r);
}

/* Why the attempt failed, for the log line; NULL when it did not fail. */
static const char *attempt_failure(struct request *r, CURLcode rc, char *buf, size_t size)
{
	if (r->http_error) {
		snprintf(buf, size, "HTTP %ld", r->http_error);
		return buf;
	}
	if (r->stalled) {
		snprintf(buf, size, "no byte for %u s", r->timeout_s);
		return buf;
	}
	if (rc != CURLE_OK)
		return *r->errbuf ? r->errbuf : curl_easy_strerror(rc);
	if (r->next < r->end)
		return "the body ended early";
	return NULL;
}

/*
 * The seconds the server asked to wait, or -1: Retry-After counts on a 503
 * (RFC 9110 section 15.6.4) and a 429 (RFC 6585 section 4) only.
 */
static gint64 server_wait_s(const struct request *r)
{
	return r->http_error == 503 || r->http_error == 429 ? r->retry_after_s : -1;
}

/* The wait before the next attempt: the back-off, or the server's Retry-After if longer. */
static gint64 retry_wait_us(const struct request *r)
{
	gint64 backoff = MIN((gint64)BACKOFF_FIRST_US << MIN(r->attempt - 1, BACKOFF_MAX_DOUBLINGS),
			     BACKOFF_MAX_US);
	return MAX(backoff, MAX(server_wait_s(r), 0) * G_USEC_PER_SEC);
}

static void schedule_retry(struct engine *f, struct request *r, gint64 wait_us)
{
	r->attempt++;
	r->due_us = g_get_monotonic_time() + wait_us;
	g_queue_push_tail(&f->waiting, r);
}

static void stop_attempt(struct engine *f, struct request *r)
{
	curl_multi_remove_handle(f->multi, r->easy);
	if (!r->head && f->idle_easy.length < f->cfg.max_connections)
		keep_handle(f, r->easy);
	else
		curl_easy_cleanup(r->easy);
	r->easy = NULL;
	g_queue_unlink(&f->active, &r->link);
}

/*
 * The attempt goes on at the redirect's target, when cfs_redirect_follow()
 * allows it; else the request fails with -EIO.
 */
static void follow_redirect(struct engine *f, struct request *r)
{
	char *target = NULL;
	curl_easy_getinfo(r->easy, CURLINFO_REDIRECT_URL, &target);
	target = g_strdup(target); /* the handle owns it, and stop_attempt() frees or reuses the handle */
	stop_attempt(f, r);
	GError *err = NULL;
	if (cfs_redirect_follow(&r->chain, target, &err)) {
		start_transfer(f, r);
	} else {
		cfs_errors_report(r->name, r->next, r->end - r->next, -EIO, "%s", err->message);
		g_error_free(err);
		finish(f, r, -EIO);
	}
	g_free(target);
}

/*
 * A Retry-After longer than --timeout is not waited for: the read's bound
 * is (retries + 1) x timeout plus the back-off, and a wait past it would
 * hold the reader longer than any stall could (docs/hostile.md).
 */
static bool waits_too_long(const struct engine *f, const struct request *r)
{
	return server_wait_s(r) > (gint64)f->cfg.timeout_s;
}

/*
 * Whether the attempt's keys were refused as expired or unknown and newer
 * ones are current: once per request, the request is then retried at once
 * without counting as a retry (which may block this thread for a renewal,
 * cfs_creds_renew_rejected()).
 */
static bool retry_with_new_keys(struct engine *f, struct request *r, long status)
{
	if (r->renewed || !r->refusal)
		return false;
	r->renewed = cfs_easy_keys_refused(f->remote, &r->auth, status,
					   (const char *)r->refusal->data, r->refusal->len);
	if (r->renewed)
		g_debug("%s: S3 refused the credentials as expired; retrying with renewed ones",
			r->name);
	return r->renewed;
}

/* S3 refused the keys (an ExpiredToken that renewal did not cure): a permission error. */
static bool keys_refused(const struct request *r, long status)
{
	return r->refusal &&
	       cfs_easy_keys_code(status, (const char *)r->refusal->data, r->refusal->len);
}

static void end_attempt(struct engine *f, struct request *r, CURLcode rc)
{
	if (!r->checked && !r->fatal && (rc == CURLE_OK || r->next == r->end))
		r->fatal = check_response(r); /* a response with no body at all */
	if (!r->fatal && cfs_redirect_status(r->http_error)) {
		follow_redirect(f, r);
		return;
	}
	char buf[64];
	const char *why = r->fatal ? NULL : attempt_failure(r, rc, buf, sizeof(buf));
	bool timed_out = r->stalled || rc == CURLE_OPERATION_TIMEDOUT;
	long status = r->http_error;
	stop_attempt(f, r);
	if (r->fatal || (r->next == r->end && !status)) {
		finish(f, r, r->fatal);
	} else if (retry_with_new_keys(f, r, status)) {
		r->due_us = g_get_monotonic_time();
		g_queue_push_tail(&f->waiting, r);
	} else if (status && !transient_http(status)) {
		int err = keys_refused(r, status) ? -EACCES : cfs_http_errno(status, false);
		cfs_errors_report(r->name, r->next, r->end - r->next, err, "%s", why);
		finish(f, r, err);
	} else if (r->attempt <= f->cfg.retries && waits_too_long(f, r)) {
		cfs_errors_report(r->name, r->next, r->end - r->next, -EIO,
				  "%s with Retry-After %" G_GINT64_FORMAT " s, longer than --timeout=%u s; "
				  "failing instead of waiting", why, r->retry_after_s, f->cfg.timeout_s);
		finish(f, r, -EIO);
	} else if (r->attempt <= f->cfg.retries) {
		gint64 wait_us = retry_wait_us(r);
		g_message("%s bytes %" PRIu64 "-%" PRIu64 ": %s; retry %u of %u in %" G_GINT64_FORMAT
			  " ms", r->name, r->next, r->end - 1, why, r->attempt, f->cfg.retries,
			  wait_us / 1000);
		schedule_retry(f, r, wait_us);
	} else {
		int err = cfs_http_errno(status, timed_out);
		cfs_errors_report(r->name, r->next, r->end - r->next, err,
				  "%s; giving up after %u attempts", why, r->attempt);
		finish(f, r, err);
	}
}

static void drain_incoming(struct engine *f)
{
	g_mutex_lock(&f->lock);
	struct request *r;
	while ((r = g_queue_pop_head(&f->incoming)))
		g_queue_push_tail(r->prio == CFS_FETCH_DEMAND ? &f->demand : &f->readahead, r);
	g_mutex_unlock(&f->lock);
}

/* Move the retries that are due to the front of their queue. */
static void promote_due(struct engine *f)
{
	gint64 now = g_get_monotonic_time();
	for (GList *l = f->waiting.head; l;) {
		GList *following = l->next;
		struct request *r = l->data;
		if (r->due_us <= now) {
			g_queue_delete_link(&f->waiting, l);
			g_queue_push_head(r->prio == CFS_FETCH_DEMAND ? &f->demand : &f->readahead, r);
		}
		l = following;
	}
}

/* How long the poll may sleep: until the next retry is due (rounded up), or IDLE_POLL_MS. */
static int poll_ms(struct engine *f)
{
	gint64 next = G_MAXINT64;
	for (GList *l = f->waiting.head; l; l = l->next)
		next = MIN(next, ((struct request *)l->data)->due_us);
	if (next == G_MAXINT64)
		return IDLE_POLL_MS;
	gint64 wait_ms = (next - g_get_monotonic_time() + 999) / 1000;
	return (int)CLAMP(wait_ms, 0, IDLE_POLL_MS);
}

static void start_queued(struct engine *f)
{
	while (f->active.length < f->cfg.max_connections) {
		struct request *r = g_queue_pop_head(&f->demand);
		if (!r)
			r = g_queue_pop_head(&f->readahead);
		if (!r)
			break;
		start_attempt(f, r);
	}
}

static void collect_done(struct engine *f)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(f->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct request *r;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		end_attempt(f, r, msg->data.result);
	}
}

/*
 * End every request of f; on_done may submit more, which are ended too if
 * they came to f. Returns whether there was any.
 */
static bool cancel_all(struct engine *f)
{
	GQueue *queues[] = { &f->demand, &f->readahead, &f->waiting };
	bool any = false;
	for (;; any = true) {
		drain_incoming(f);
		struct request *r = NULL;
		for (unsigned i = 0; !r && i < G_N_ELEMENTS(queues); i++)
			r = g_queue_pop_head(queues[i]);
		if (!r && f->active.head) {
			r = f->active.head->data;
			stop_attempt(f, r);
		}
		if (!r)
			return any;
		finish(f, r, -ECANCELED);
	}
}

static gpointer fetcher_thread(gpointer p)
{
	struct engine *f = p;
	for (;;) {
		g_mutex_lock(&f->lock);
		bool quit = f->quit;
		g_mutex_unlock(&f->lock);
		if (quit)
			break;
		drain_incoming(f);
		promote_due(f);
		start_queued(f);
		int still;
		curl_multi_perform(f->multi, &still);
		collect_done(f);
		start_queued(f);
		/* Measured after collect_done(), which may just have scheduled a retry. */
		curl_multi_poll(f->multi, NULL, 0, poll_ms(f), NULL);
	}
	cancel_all(f);
	g_queue_clear_full(&f->idle_easy, curl_easy_cleanup);
	return NULL;
}

static bool engine_start(struct engine *f, const struct cfs_options *opts,
			 const struct cfs_remote *remote, unsigned connections)
{
	f->cfg = (struct cfs_options){
		.max_connections = connections,
		.connect_timeout_s = opts->connect_timeout_s,
		.timeout_s = opts->timeout_s,
		.retries = opts->retries,
	};
	f->remote = remote;
	f->multi = curl_multi_init();
	if (!f->multi)
		return false;
	curl_multi_setopt(f->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)connections);
	curl_multi_setopt(f->multi, CURLMOPT_MAXCONNECTS, (long)connections);
	g_mutex_init(&f->lock);
	g_queue_init(&f->incoming);
	f->thread = g_thread_new("fetcher", fetcher_thread, f);
	return true;
}

static void engine_quit(struct engine *f)
{
	g_mutex_lock(&f->lock);
	f->quit = true;
	g_mutex_unlock(&f->lock);
	curl_multi_wakeup(f->multi);
}

struct cfs_fetcher *cfs_fetcher_new(const struct cfs_options *opts,
				    const struct cfs_remote *remote, GError **error)
{
	struct cfs_fetcher *fetcher = g_new0(struct cfs_fetcher, 1);
	unsigned n = MAX(1, MIN(opts->fetch_threads, opts->max_connections));
	fetcher->engines = g_new0(struct engine, n);
	for (unsigned i = 0; i < n; i++) {
		/* The connections are shared out; the first engines take what does not divide. */
		unsigned share = opts->max_connections / n + (i < opts->max_connections % n);
		if (!engine_start(&fetcher->engines[i], opts, remote, share)) {
			g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
				    "cannot create a libcurl multi handle");
			cfs_fetcher_free(fetcher);
			return NULL;
		}
		fetcher->n = i + 1;
	}
	return fetcher;
}

void cfs_fetcher_free(struct cfs_fetcher *fetcher)
{
	if (!fetcher)
		return;
	for (unsigned i = 0; i < fetcher->n; i++)
		engine_quit(&fetcher->engines[i]);
	for (unsigned i = 0; i < fetcher->n; i++)
		g_thread_join(fetcher->engines[i].thread);
	/*
	 * Each thread ended its own requests, but their callbacks may have
	 * submitted more to engines whose threads were gone: end those here,
	 * until a pass finds none, before any engine's queue lock goes.
	 */
	bool more = true;
	while (more) {
		more = false;
		for (unsigned i = 0; i < fetcher->n; i++)
			more |= cancel_all(&fetcher->engines[i]);
	}
	for (unsigned i = 0; i < fetcher->n; i++) {
		curl_multi_cleanup(fetcher->engines[i].multi);
		g_mutex_clear(&fetcher->engines[i].lock);
	}
	g_free(fetcher->engines);
	g_free(fetcher);
}

/* The engine with the fewest requests queued or running. */
static struct engine *least_loaded(struct cfs_fetcher *fetcher)
{
	struct engine *best = &fetcher->engines[0];
	unsigned best_load = __atomic_load_n(&best->load, __ATOMIC_RELAXED);
	for (unsigned i = 1; i < fetcher->n && best_load; i++) {
		unsigned load = __atomic_load_n(&fetcher->engines[i].load, __ATOMIC_RELAXED);
		if (load < best_load) {
			best = &fetcher->engines[i];
			best_load = load;
		}
	}
	return best;
}

/* Queue a request for a fetcher thread: a HEAD when head, else GET of [start, end). */
static void submit(struct cfs_fetcher *fetcher, const char *name, const char *url, bool head,
		   uint64_t start, uint64_t end, enum cfs_fetch_priority prio,
		   const struct cfs_fetch_ops *ops, void *ctx)
{
	struct request *r = g_new(struct request, 1);
	*r = (struct request){ .name = g_strdup(name), .url = g_strdup(url), .head = head,
			       .next = start, .end = end, .prio = prio, .ops = ops, .ctx = ctx,
			       .attempt = 1 };
	struct engine *f = least_loaded(fetcher);
	__atomic_fetch_add(&f->load, 1, __ATOMIC_RELAXED);
	g_mutex_lock(&f->lock);
	g_queue_push_tail(&f->incoming, r);
	g_mutex_unlock(&f->lock);
	curl_multi_wakeup(f->multi);
}

void cfs_fetcher_submit_head(struct cfs_fetcher *f, const char *name, const char *url,
			     const struct cfs_fetch_ops *ops, void *ctx)
{
	submit(f, name, url, true, 0, 0, CFS_FETCH_DEMAND, ops, ctx);
}

void cfs_fetcher_submit(struct cfs_fetcher *f, const char *name, const char *url, uint64_t start,
			uint64_t end, enum cfs_fetch_priority prio, const struct cfs_fetch_ops *ops,
			void *ctx)
{
	submit(f, name, url, false, start, end, prio, ops, ctx);
}
