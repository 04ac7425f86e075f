/* Redirect targets checked before chunkfs requests them (see redirect.h). */
#include "fetch/redirect.h"

#include <gio/gio.h>

#include "util/url.h"

void cfs_redirect_start(struct cfs_redirect_chain *c, const char *first)
{
	g_free(c->current);
	*c = (struct cfs_redirect_chain){ .first = first };
}

void cfs_redirect_clear(struct cfs_redirect_chain *c)
{
	g_clear_pointer(&c->current, g_free);
}

const char *cfs_redirect_url(const struct cfs_redirect_chain *c)
{
	return c->current ? c->current : c->first;
}

bool cfs_redirect_status(long status)
{
	return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

static bool is_scheme(GUri *uri, const char *scheme)
{
	return g_ascii_strcasecmp(g_uri_get_scheme(uri), scheme) == 0;
}

static bool is_http(GUri *uri)
{
	return is_scheme(uri, "http") || is_scheme(uri, "https");
}

/* The port a URI names, or its scheme's default (-1 for a scheme without one here). */
static int effective_port(GUri *uri)
{
	int port = g_uri_get_port(uri);
	if (port >= 0)
		return port;
	return is_scheme(uri, "https") ? 443 : is_scheme(uri, "http") ? 80 : -1;
}

static bool same_origin(GUri *a, GUri *b)
{
	const char *ha = g_uri_get_host(a), *hb = g_uri_get_host(b);
	return is_scheme(a, g_uri_get_scheme(b)) && ha && hb && g_ascii_strcasecmp(ha, hb) == 0 &&
	       effective_port(a) == effective_port(b);
}

static GUri *parse(const char *url)
{
	return url ? g_uri_parse(url, G_URI_FLAGS_ENCODED, NULL) : NULL;
}

bool cfs_url_same_origin(const char *a, const char *b)
{
	GUri *ua = parse(a), *ub = parse(b);
	bool same = ua && ub && same_origin(ua, ub);
	if (ua)
		g_uri_unref(ua);
	if (ub)
		g_uri_unref(ub);
	return same;
}

/* Why target may not be requested after from, with its G_IO_ERROR code; NULL when it may. */
static const char *refusal(GUri *from, GUri *target, unsigned hops, int *code)
{
	*code = G_IO_ERROR_INVALID_DATA;
	if (!target)
		return "not an absolute URL";
	const char *host = g_uri_get_host(target);
	if (is_http(target) && (!host || !*host))
		return "the URL has no host";
	*code = G_IO_ERROR_NOT_SUPPORTED;
	if (!is_http(target))
		return "only http and https are followed";
	if (from && is_scheme(from, "https") && is_scheme(target, "http"))
		return "a redirect from https to http is not followed";
	*code = G_IO_ERROR_TOO_MANY_LINKS;
	if (hops >= CFS_REDIRECT_MAX_HOPS)
		return "more than " G_STRINGIFY(CFS_REDIRECT_MAX_HOPS) " redirects";
	return NULL;
}

/* target with first's userinfo, when the target names none: same origin, same login. */
static char *with_login(const char *text, GUri *target, GUri *first)
{
	if (g_uri_get_userinfo(target) || !g_uri_get_userinfo(first))
		return g_strdup(text);
	GUri *u = g_uri_build(G_URI_FLAGS_ENCODED, g_uri_get_scheme(target),
			      g_uri_get_userinfo(first), g_uri_get_host(target),
			      g_uri_get_port(target), g_uri_get_path(target),
			      g_uri_get_query(target), g_uri_get_fragment(target));
	char *s = g_uri_to_string(u);
	g_uri_unref(u);
	return s;
}

static void take_hop(struct cfs_redirect_chain *c, const char *text, GUri *target, GUri *first)
{
	bool stays = !c->plain && first && same_origin(first, target);
	char *next = stays ? with_login(text, target, first) : g_strdup(text);
	g_free(c->current);
	c->current = next;
	c->plain = !stays;
	c->hops++;
}

bool cfs_redirect_follow(struct cfs_redirect_chain *c, const char *target, GError **error)
{
	if (!target) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			    "a redirect without a Location");
		return false;
	}
	GUri *from = parse(cfs_redirect_url(c)), *to = parse(target), *first = parse(c->first);
	int code;
	const char *why = refusal(from, to, c->hops, &code);
	if (why) {
		char *safe = cfs_url_redact(target);
		g_set_error(error, G_IO_ERROR, code, "not following the redirect to '%s': %s",
			    safe, why);
		g_free(safe);
	} else {
		take_hop(c, target, to, first);
	}
	g_clear_pointer(&from, g_uri_unref);
	g_clear_pointer(&to, g_uri_unref);
	g_clear_pointer(&first, g_uri_unref);
	return why == NULL;
}
