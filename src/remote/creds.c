/*
 * The credential chain of an S3 remote: the link that gave keys, the
 * current keys (swapped whole under a lock, shared by reference count) and
 * the thread that renews them before they expire (AWS SDKs and Tools
 * Reference Guide, "Understand the credential provider chain": temporary
 * credentials are refreshed before their Expiration).
 */
#include "remote/creds.h"

#include <gio/gio.h>

#include "creds_i.h"
#include "remote_i.h"

/* Renew this long before Expiration, or at half the lifetime when that is shorter. */
#define RENEW_LEAD_US (300 * G_USEC_PER_SEC)
/* The least time between two renewals: keys that claim to expire at once do not spin. */
#define RENEW_MIN_US G_USEC_PER_SEC
/* The back-off of a failed renewal: 1 s, doubling up to 60 s. */
#define RENEW_RETRY_FIRST_US G_USEC_PER_SEC
#define RENEW_RETRY_MAX_US (60 * G_USEC_PER_SEC)

cfs_creds_http_fn cred_http;

struct cfs_creds {
	struct cred_link link;
	GMutex lock; /* guards keys, obtained_us, generation, quit */
	GCond changed;
	struct cfs_aws_keys *keys;
	gint64 obtained_us; /* real time the keys came */
	unsigned generation;
	bool quit;
	GMutex renewing;     /* one renewal from the link at a time; guards the three below */
	bool failing;        /* the last renewal failed, and that was logged */
	gint64 backoff_us;   /* the wait after that failure before the next try, 0 if none */
	gint64 failed_at_us; /* monotonic time of that failure */
	GThread *thread;
};

void cfs_creds_set_http(cfs_creds_http_fn fn)
{
	cred_http = fn;
}

const char *cfs_creds_link(const struct cfs_creds *c)
{
	return c->link.name;
}

struct cfs_aws_keys *cfs_creds_current(struct cfs_creds *c)
{
	g_mutex_lock(&c->lock);
	struct cfs_aws_keys *k = cfs_aws_keys_ref(c->keys);
	g_mutex_unlock(&c->lock);
	return k;
}

static void install(struct cfs_creds *c, struct cfs_aws_keys *keys)
{
	g_mutex_lock(&c->lock);
	keys->generation = ++c->generation;
	struct cfs_aws_keys *old = c->keys;
	c->keys = keys;
	c->obtained_us = g_get_real_time();
	g_cond_broadcast(&c->changed);
	g_mutex_unlock(&c->lock);
	cfs_aws_keys_unref(old);
}

/* Real time (µs) the current keys are to be renewed at; G_MAXINT64 for keys that never expire. */
static gint64 renew_due_us(const struct cfs_creds *c)
{
	if (!c->keys->expiration)
		return G_MAXINT64;
	gint64 expires_us = c->keys->expiration * G_USEC_PER_SEC;
	gint64 lead = MIN(RENEW_LEAD_US, (expires_us - c->obtained_us) / 2);
	return MAX(expires_us - lead, c->obtained_us + RENEW_MIN_US);
}

/* New keys from the link, installed; false with *error when the link gave none. */
static bool renew(struct cfs_creds *c, GError **error)
{
	GError *err = NULL;
	struct cfs_aws_keys *keys = c->link.fetch(&c->link, &err);
	if (!keys && !err) /* a link that failed without saying why still gets a log line */
		g_set_error_literal(&err, G_IO_ERROR, G_IO_ERROR_FAILED, "no reason given");
	if (!keys) {
		g_propagate_error(error, err);
		return false;
	}
	install(c, keys);
	return true;
}

/*
 * One renewal, with c->renewing held: logs the change from working to
 * failing once (the rest only with -d) and sets the back-off. refused: the
 * server refused the keys, which a renewal then says. Returns the wait
 * before the next try: 0 when renewed.
 */
static gint64 renew_logged(struct cfs_creds *c, bool refused)
{
	GError *err = NULL;
	bool ok = renew(c, &err);
	if (ok && c->failing)
		g_message("credentials from %s renewed again", c->link.name);
	else if (ok && refused)
		g_message("credentials from %s were refused by the server as expired: renewed",
			  c->link.name);
	else if (ok)
		g_debug("credentials from %s renewed", c->link.name);
	else if (!c->failing)
		g_warning("credentials from %s: renewal failed, retrying with back-off: %s",
			  c->link.name, err->message);
	else
		g_debug("credentials from %s: renewal failed again: %s", c->link.name,
			err->message);
	c->failing = !ok;
	c->backoff_us = ok ? 0 : CLAMP(c->backoff_us * 2, RENEW_RETRY_FIRST_US, RENEW_RETRY_MAX_US);
	c->failed_at_us = g_get_monotonic_time();
	g_clear_error(&err);
	return c->backoff_us;
}

/* With c->renewing held: a renewal failed and its back-off has not passed. */
static bool backing_off(const struct cfs_creds *c)
{
	return c->failing && g_get_monotonic_time() < c->failed_at_us + c->backoff_us;
}

bool cfs_creds_renew_rejected(struct cfs_creds *c, unsigned generation)
{
	if (!c->link.fetch || c->link.keys)
		return false; /* static keys: renewing gives the same */
	g_mutex_lock(&c->renewing);
	g_mutex_lock(&c->lock);
	bool newer = c->generation != generation;
	g_mutex_unlock(&c->lock);
	if (!newer && !backing_off(c))
		newer = renew_logged(c, true) == 0;
	g_mutex_unlock(&c->renewing);
	return newer;
}

/* One renewal by the thread; the wait before the next try, 0 when renewed. */
static gint64 renew_by_thread(struct cfs_creds *c)
{
	g_mutex_lock(&c->renewing);
	gint64 backoff_us = renew_logged(c, false);
	g_mutex_unlock(&c->renewing);
	return backoff_us;
}

static gpointer renew_thread(gpointer p)
{
	struct cfs_creds *c = p;
	gint64 backoff_us = 0, retry_at_us = 0;
	g_mutex_lock(&c->lock);
	while (!c->quit) {
		gint64 now = g_get_real_time();
		gint64 due = backoff_us ? retry_at_us : renew_due_us(c);
		if (now < due) {
			gint64 wait = MIN(due - now, RENEW_RETRY_MAX_US); /* the clock may jump */
			g_cond_wait_until(&c->changed, &c->lock, g_get_monotonic_time() + wait);
			continue;
		}
		g_mutex_unlock(&c->lock);
		backoff_us = renew_by_thread(c);
		g_mutex_lock(&c->lock);
		retry_at_us = g_get_real_time() + backoff_us;
	}
	g_mutex_unlock(&c->lock);
	return NULL;
}

void cfs_creds_start(struct cfs_creds *c)
{
	if (c->keys->expiration)
		c->thread = g_thread_new("credentials", renew_thread, c);
}

static struct cfs_creds *creds_new(struct cred_link *link, struct cfs_aws_keys *keys)
{
	struct cfs_creds *c = g_new0(struct cfs_creds, 1);
	c->link = *link;
	g_mutex_init(&c->lock);
	g_cond_init(&c->changed);
	g_mutex_init(&c->renewing);
	install(c, keys);
	return c;
}

struct cfs_creds *cfs_creds_find(const struct cfs_options *opts, const char *region,
				 GKeyFile *config, const struct cfs_creds_tls *tls, GError **error)
{
	struct cred_link links[CRED_LINKS_MAX] = { 0 };
	GString *tried = g_string_new(NULL);
	struct cred_where where = { opts, region, config,
				    remote_aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
				    tls };
	unsigned n = cred_links_configure(links, &where, tried);
	if (where.shared)
		g_key_file_free(where.shared);
	struct cfs_creds *c = NULL;
	for (unsigned i = 0; i < n; i++) {
		GError *err = NULL;
		struct cfs_aws_keys *keys = c ? NULL : links[i].fetch(&links[i], &err);
		if (keys) {
			c = creds_new(&links[i], keys);
			g_debug("S3 credentials from %s", links[i].name);
			continue;
		}
		if (err)
			g_string_append_printf(tried, "%s%s: %s", tried->len ? "; " : "",
					       links[i].name, err->message);
		g_clear_error(&err);
		cred_link_clear(&links[i]);
	}
	if (!c)
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
			    "no AWS credentials (use --no-sign-request for a public bucket): %s",
			    tried->str);
	g_string_free(tried, TRUE);
	return c;
}

void cfs_creds_free(struct cfs_creds *c)
{
	if (!c)
		return;
	if (c->thread) {
		g_mutex_lock(&c->lock);
		c->quit = true;
		g_cond_broadcast(&c->changed);
		g_mutex_unlock(&c->lock);
		g_thread_join(c->thread);
	}
	cred_link_clear(&c->link);
	cfs_aws_keys_unref(c->keys);
	g_mutex_clear(&c->lock);
	g_cond_clear(&c->changed);
	g_mutex_clear(&c->renewing);
	g_free(c);
}
